//! The systems under test, each behind the same small interface: a durable single-record
//! commit, a durable 1,000-record transaction, and a write-then-replay of N records.

use crate::raw::{Bulk, Raw, RawFile, raw_load, raw_replay};
use crate::spread::Spread;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Errors of any system, as text is enough for a report.
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// One system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sys {
    Ours,
    Okaywal,
    RaftEngine,
    /// raft-engine with batch compression off (`batch_compression_threshold` 0).
    RaftEngineNoLz4,
    Sqlite,
    LoraWal,
    /// The disk's limit: see [`crate::raw`].
    Raw,
    /// The naive raw loop: bulk writes unaligned, no early write-back.
    RawNaive,
    /// The fair raw bulk write into a new file that grows as it is written.
    RawNewFile,
}

impl Sys {
    pub const ALL: [Sys; 9] = [
        Sys::Ours,
        Sys::Okaywal,
        Sys::RaftEngine,
        Sys::RaftEngineNoLz4,
        Sys::Sqlite,
        Sys::LoraWal,
        Sys::Raw,
        Sys::RawNaive,
        Sys::RawNewFile,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Sys::Ours => "wal-log (ours)",
            Sys::Okaywal => "okaywal 0.3.1",
            Sys::RaftEngine => "raft-engine 0.4.2",
            Sys::RaftEngineNoLz4 => "raft-engine 0.4.2, LZ4 off",
            Sys::Sqlite => "SQLite (rusqlite 0.43, WAL, FULL)",
            Sys::LoraWal => "lora-wal 0.34.1",
            Sys::Raw => "raw pwrite+fdatasync",
            Sys::RawNaive => "raw, naive loop",
            Sys::RawNewFile => "raw, new file",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Sys::Ours => "wal-log",
            Sys::Okaywal => "okaywal",
            Sys::RaftEngine => "raft-engine",
            Sys::RaftEngineNoLz4 => "raft-engine, LZ4 off",
            Sys::Sqlite => "SQLite",
            Sys::LoraWal => "lora-wal",
            Sys::Raw => "raw",
            Sys::RawNaive => "raw naive",
            Sys::RawNewFile => "raw new file",
        }
    }

    /// The name `--only` takes.
    pub fn key(self) -> &'static str {
        match self {
            Sys::RaftEngineNoLz4 => "raft-engine-nolz4",
            Sys::RawNaive => "raw-naive",
            Sys::RawNewFile => "raw-new-file",
            other => other.short(),
        }
    }

    /// A peer: another log or database (not ours, not the raw disk loops).
    pub fn is_peer(self) -> bool {
        !matches!(self, Sys::Ours | Sys::Raw | Sys::RawNaive | Sys::RawNewFile)
    }

    /// Whether the single-record commit cells run it. Not raft-engine with LZ4 off: no
    /// single-record batch reaches the 8 KiB compression threshold, so it is the same run as
    /// raft-engine's; not the other raw loops: they differ from raw only in bulk writes.
    pub fn in_commits(self) -> bool {
        !matches!(self, Sys::RaftEngineNoLz4 | Sys::RawNaive | Sys::RawNewFile)
    }

    /// Whether the replay runs it (the other raw loops' reading is the raw loop's).
    pub fn in_replay(self) -> bool {
        !matches!(self, Sys::RawNaive | Sys::RawNewFile)
    }
}

/// An open system taking durable commits from several threads.
pub trait Writer: Sync {
    /// Appends one record and returns once it is durable.
    fn commit(&self, thread: usize, payload: &[u8]) -> Res<()>;
    /// Appends `records` as one atomic transaction and returns once it is durable. `flat` is
    /// the records concatenated (used only by the raw loop, which has no framing).
    fn commit_tx(&self, thread: usize, records: &[Vec<u8>], flat: &[u8]) -> Res<()>;
    /// Transactions committed and fsyncs done since the open, for a system that counts them
    /// (ours: [`wal_log::Stats`]).
    fn fsync_counts(&self) -> Option<(u64, u64)> {
        None
    }
}

/// Opens `sys` in the empty directory `dir` for `threads` writer threads.
pub fn open_writer(
    sys: Sys,
    dir: &Path,
    threads: usize,
    ring: &Arc<RawFile>,
) -> Res<Box<dyn Writer>> {
    Ok(match sys {
        Sys::Ours => Box::new(ours::Ours::open(dir)?),
        Sys::Okaywal => Box::new(okay::Okay::open(dir)?),
        Sys::RaftEngine => Box::new(raft::Raft::open(dir, threads, true)?),
        Sys::RaftEngineNoLz4 => Box::new(raft::Raft::open(dir, threads, false)?),
        Sys::Sqlite => Box::new(sqlite::Sqlite::open(dir)?),
        Sys::LoraWal => Box::new(lora::Lora::open(dir)?),
        Sys::Raw => Box::new(Raw::new(ring, Bulk::Fair)),
        Sys::RawNaive => Box::new(Raw::new(ring, Bulk::Naive)),
        Sys::RawNewFile => {
            let file = Arc::new(RawFile::growing(&dir.join("raw-new.bin"))?);
            Box::new(Raw::new(&file, Bulk::Fair))
        }
    })
}

/// What a replay run measured.
#[derive(Clone, Debug)]
pub struct Replay {
    pub records: u64,
    /// Open + read every record back, page cache warm (just written), one per round.
    pub warm: Vec<Duration>,
    /// The same after `posix_fadvise(DONTNEED)` on every file of the log, one per round.
    pub cold: Vec<Duration>,
}

impl Replay {
    /// Records per second over the rounds, warm or cold.
    pub fn rate(&self, cold: bool) -> Option<Spread> {
        let times = if cold { &self.cold } else { &self.warm };
        let rates: Vec<f64> = times
            .iter()
            .map(|t| self.records as f64 / t.as_secs_f64())
            .collect();
        Spread::of(&rates)
    }
}

/// Writes `pool`-cycled records, `n` in all, as transactions of `tx` records, then times
/// `rounds` fresh opens that read every record back with the page cache warm, then `rounds`
/// with it cold.
pub fn replay(
    sys: Sys,
    dir: &Path,
    pool: &[Vec<u8>],
    (n, tx): (usize, usize),
    rounds: usize,
) -> Res<Replay> {
    let run: fn(&Path) -> Res<u64> = match sys {
        Sys::Ours => {
            ours::load(dir, pool, n, tx)?;
            ours::replay
        }
        Sys::Okaywal => {
            okay::load(dir, pool, n, tx)?;
            okay::replay
        }
        Sys::RaftEngine | Sys::RaftEngineNoLz4 => {
            raft::load(dir, pool, (n, tx), sys == Sys::RaftEngine)?;
            raft::replay
        }
        Sys::Sqlite => {
            sqlite::load(dir, pool, n, tx)?;
            sqlite::replay
        }
        Sys::LoraWal => {
            lora::load(dir, pool, n, tx)?;
            lora::replay
        }
        Sys::Raw | Sys::RawNaive | Sys::RawNewFile => {
            raw_load(dir, pool, n, tx)?;
            raw_replay
        }
    };
    let mut out = Replay {
        records: n as u64,
        warm: Vec::new(),
        cold: Vec::new(),
    };
    for cold in [false, true] {
        for _ in 0..rounds {
            if cold {
                drop_cache(dir)?;
            }
            let t = Instant::now();
            let got = run(dir)?;
            let took = t.elapsed();
            check_count(sys, got, n)?;
            if cold { &mut out.cold } else { &mut out.warm }.push(took);
        }
    }
    Ok(out)
}

fn check_count(sys: Sys, got: u64, want: usize) -> Res<()> {
    if got != want as u64 {
        return Err(format!("{} replayed {got} records, wrote {want}", sys.short()).into());
    }
    Ok(())
}

/// The step every system gets between its untimed warm-up and the timed part of a cell: an
/// fsync of every file under `dir` (the cell's directory) and of every directory, and of the
/// raw loops' ring, so no system starts timing with another's dirty pages, or its own, still
/// to be written. A file that disappears meanwhile (renamed, recycled) is skipped.
pub fn quiesce(dir: &Path, ring: &RawFile) -> Res<()> {
    sync_tree(dir)?;
    ring.sync()
}

fn sync_tree(dir: &Path) -> Res<()> {
    let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let path = entry?.path();
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => sync_tree(&path)?,
            Ok(m) if m.is_file() => match File::open(&path) {
                Ok(f) => f.sync_all()?,
                Err(e) if gone(&e) => {}
                Err(e) => return Err(e.into()),
            },
            Ok(_) => {}
            Err(e) if gone(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Syncs and drops from the page cache every file under `dir`.
pub fn drop_cache(dir: &Path) -> Res<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            drop_cache(&path)?;
        } else if path.is_file() {
            let f = File::open(&path)?;
            f.sync_all()?;
            rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed)?;
        }
    }
    Ok(())
}

/// A touch of every record so no reader can skip the bytes: adds its length and first byte.
#[inline]
pub fn touch(sum: &mut u64, rec: &[u8]) {
    *sum = sum.wrapping_add(rec.len() as u64 + u64::from(rec.first().copied().unwrap_or(0)));
}

// ---------------------------------------------------------------------------------------------

pub mod ours {
    use super::*;
    use wal_format::FrameKind;
    use wal_format::records::RecordIter;
    use wal_log::inspect::DirFrame;
    use wal_log::{Options, SyncPolicy, VisitError, Wal};

    pub struct Ours {
        wal: Wal,
    }

    impl Ours {
        pub fn open(dir: &Path) -> Res<Ours> {
            let (wal, _) = Wal::open(dir, Options::default())?;
            Ok(Ours { wal })
        }
    }

    impl Ours {
        /// One transaction, then [`keep_bounded`].
        pub fn commit_steady(&self, records: &[Vec<u8>]) -> Res<()> {
            self.wal.append_batch(records)?;
            keep_bounded(&self.wal)
        }
    }

    impl Writer for Ours {
        fn commit(&self, _thread: usize, payload: &[u8]) -> Res<()> {
            self.wal.append(payload)?;
            Ok(())
        }
        fn commit_tx(&self, _thread: usize, records: &[Vec<u8>], _flat: &[u8]) -> Res<()> {
            self.wal.append_batch(records)?;
            Ok(())
        }
        fn fsync_counts(&self) -> Option<(u64, u64)> {
            let s = self.wal.stats();
            Some((s.commits, s.fsyncs))
        }
    }

    /// What an engine that checkpoints does: once the log holds more sealed segments than
    /// the recycle pool takes, truncate everything durable (as if a snapshot covered it), so
    /// the freed files are reused for the next segments. The log stays bounded, as the raw
    /// loop's preallocated ring is.
    pub fn keep_bounded(wal: &Wal) -> Res<()> {
        if wal.segments().len() > wal.options().recycle_segments {
            wal.truncate_prefix(wal.durable_lsn())?;
        }
        Ok(())
    }

    /// Loads with `SyncPolicy::Never` and one `sync` at the end: the bytes on disk are the same.
    pub fn load(dir: &Path, pool: &[Vec<u8>], n: usize, tx: usize) -> Res<()> {
        let (wal, _) = Wal::open(dir, Options::default().sync(SyncPolicy::Never))?;
        let mut i = 0;
        let mut batch: Vec<&[u8]> = Vec::with_capacity(tx);
        while i < n {
            batch.clear();
            for _ in 0..tx.min(n - i) {
                batch.push(&pool[i % pool.len()]);
                i += 1;
            }
            if tx == 1 {
                wal.append(batch[0])?;
            } else {
                wal.append_batch(&batch)?;
            }
        }
        wal.sync()?;
        Ok(())
    }

    /// Replay as a caller rebuilding state does it (`wal-replay` too): `Wal::open_visit` shows
    /// every frame as the open's recovery scan verifies it, so the log is read and checked
    /// once, as okaywal's and lora-wal's replaying opens read theirs. (`Wal::open` followed by
    /// `read_from` reads and checks every byte a second time; ADR 0012.)
    pub fn replay(dir: &Path) -> Res<u64> {
        let (mut n, mut sum) = (0u64, 0u64);
        let mut visit = |f: DirFrame| -> Result<(), String> {
            let frame = f.frame;
            match frame.kind {
                FrameKind::Tx if frame.is_multi() => {
                    for r in RecordIter::new(frame.payload) {
                        touch(&mut sum, &r.map_err(|e| e.to_string())?);
                        n += 1;
                    }
                }
                FrameKind::Tx => {
                    touch(&mut sum, &frame.payload);
                    n += 1;
                }
                // The loads never make them; a count that leaves them out would be wrong.
                FrameKind::FragBegin | FrameKind::FragPart | FrameKind::FragEnd => {
                    return Err(format!("a fragment at LSN {}", frame.lsn));
                }
                _ => {}
            }
            Ok(())
        };
        let (wal, _) = Wal::open_visit(dir, Options::default(), &mut visit).map_err(|e| match e {
            VisitError::Wal(e) => e.to_string(),
            VisitError::Visitor(e) => e,
        })?;
        drop(wal);
        std::hint::black_box(sum);
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------

mod okay {
    use super::*;
    use okaywal::{Configuration, Entry, EntryId, LogManager, SegmentReader, WriteAheadLog};

    /// Checkpointing is a no-op (the bench has no store to apply to); recovery reads and
    /// CRC-checks every chunk.
    #[derive(Debug)]
    struct Manager {
        records: Arc<AtomicU64>,
        sum: Arc<AtomicU64>,
    }

    impl LogManager for Manager {
        fn recover(&mut self, entry: &mut Entry<'_>) -> io::Result<()> {
            if let Some(chunks) = entry.read_all_chunks()? {
                let mut sum = 0;
                for c in &chunks {
                    touch(&mut sum, c);
                }
                self.records
                    .fetch_add(chunks.len() as u64, Ordering::Relaxed);
                self.sum.fetch_add(sum, Ordering::Relaxed);
            }
            Ok(())
        }

        fn checkpoint_to(
            &mut self,
            _: EntryId,
            _: &mut SegmentReader,
            _: &WriteAheadLog,
        ) -> io::Result<()> {
            Ok(())
        }
    }

    fn manager() -> (Manager, Arc<AtomicU64>) {
        let records = Arc::new(AtomicU64::new(0));
        (
            Manager {
                records: records.clone(),
                sum: Arc::new(AtomicU64::new(0)),
            },
            records,
        )
    }

    pub struct Okay {
        log: WriteAheadLog,
    }

    impl Okay {
        /// The default configuration (1 MiB preallocated segments, checkpoint after 768 KiB).
        pub fn open(dir: &Path) -> Res<Okay> {
            let log = WriteAheadLog::recover(dir, manager().0)?;
            Ok(Okay { log })
        }
    }

    impl Writer for Okay {
        fn commit(&self, _thread: usize, payload: &[u8]) -> Res<()> {
            let mut e = self.log.begin_entry()?;
            e.write_chunk(payload)?;
            e.commit()?;
            Ok(())
        }
        fn commit_tx(&self, _thread: usize, records: &[Vec<u8>], _flat: &[u8]) -> Res<()> {
            let mut e = self.log.begin_entry()?;
            for r in records {
                e.write_chunk(r)?;
            }
            e.commit()?;
            Ok(())
        }
    }

    /// Replay must find every record, so the replay log never checkpoints (a checkpointed
    /// segment is recycled, not recovered).
    fn no_checkpoint(dir: &Path) -> Configuration {
        Configuration::default_for(dir).checkpoint_after_bytes(u64::MAX)
    }

    pub fn load(dir: &Path, pool: &[Vec<u8>], n: usize, tx: usize) -> Res<()> {
        let log = no_checkpoint(dir).open(manager().0)?;
        let mut i = 0;
        while i < n {
            let mut e = log.begin_entry()?;
            for _ in 0..tx.min(n - i) {
                e.write_chunk(&pool[i % pool.len()])?;
                i += 1;
            }
            e.commit()?;
        }
        log.shutdown()?;
        Ok(())
    }

    pub fn replay(dir: &Path) -> Res<u64> {
        let (m, records) = manager();
        let log = no_checkpoint(dir).open(m)?;
        let n = records.load(Ordering::Relaxed);
        log.shutdown()?;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------

mod raft {
    use super::*;
    use protobuf::well_known_types::BytesValue;
    use raft_engine::{Config, Engine, LogBatch, MessageExt, ReadableSize};

    /// Entries are protobuf `BytesValue`s whose first 8 bytes carry the entry index, so an
    /// entry is exactly as long as the payload (plus protobuf's few bytes of framing).
    #[derive(Clone)]
    struct Ext;

    impl MessageExt for Ext {
        type Entry = BytesValue;
        fn index(e: &BytesValue) -> u64 {
            let mut b = [0u8; 8];
            b.copy_from_slice(&e.value[..8]);
            u64::from_le_bytes(b)
        }
    }

    fn entry(index: u64, payload: &[u8]) -> BytesValue {
        let mut value = Vec::with_capacity(payload.len().max(8));
        value.extend_from_slice(&index.to_le_bytes());
        value.extend_from_slice(payload.get(8..).unwrap_or(&[]));
        let mut e = BytesValue::new();
        e.value = value;
        e
    }

    /// The default configuration, or with `lz4` false, batch compression off (raft-engine's
    /// documented meaning of a zero `batch_compression_threshold`).
    fn config(dir: &Path, lz4: bool) -> Res<Config> {
        let dir = dir.to_str().ok_or("non-UTF-8 path")?.to_owned();
        let mut c = Config {
            dir,
            ..Default::default()
        };
        if !lz4 {
            c.batch_compression_threshold = ReadableSize(0);
        }
        Ok(c)
    }

    /// The default configuration; one Raft group (region) per writer thread, as TiKV does
    /// with many regions sharing one engine.
    pub struct Raft {
        engine: Engine,
        next: Vec<AtomicU64>,
    }

    impl Raft {
        pub fn open(dir: &Path, threads: usize, lz4: bool) -> Res<Raft> {
            let engine = Engine::open(config(dir, lz4)?)?;
            Ok(Raft {
                engine,
                next: (0..threads).map(|_| AtomicU64::new(1)).collect(),
            })
        }
    }

    impl Writer for Raft {
        fn commit(&self, thread: usize, payload: &[u8]) -> Res<()> {
            let idx = self.next[thread].fetch_add(1, Ordering::Relaxed);
            let mut b = LogBatch::with_capacity(1);
            b.add_entries::<Ext>(thread as u64 + 1, &[entry(idx, payload)])?;
            self.engine.write(&mut b, true)?;
            Ok(())
        }
        fn commit_tx(&self, thread: usize, records: &[Vec<u8>], _flat: &[u8]) -> Res<()> {
            let first = self.next[thread].fetch_add(records.len() as u64, Ordering::Relaxed);
            let entries: Vec<BytesValue> = records
                .iter()
                .enumerate()
                .map(|(k, r)| entry(first + k as u64, r))
                .collect();
            let mut b = LogBatch::with_capacity(entries.len());
            b.add_entries::<Ext>(thread as u64 + 1, &entries)?;
            self.engine.write(&mut b, true)?;
            Ok(())
        }
    }

    pub fn load(dir: &Path, pool: &[Vec<u8>], (n, tx): (usize, usize), lz4: bool) -> Res<()> {
        let engine = Engine::open(config(dir, lz4)?)?;
        let mut i = 0;
        while i < n {
            let k = tx.min(n - i);
            let entries: Vec<BytesValue> = (0..k)
                .map(|j| entry((i + j + 1) as u64, &pool[(i + j) % pool.len()]))
                .collect();
            let mut b = LogBatch::with_capacity(k);
            b.add_entries::<Ext>(1, &entries)?;
            i += k;
            engine.write(&mut b, i == n)?;
        }
        Ok(())
    }

    /// Reopen (raft-engine's recovery rebuilds its in-memory index from every file), then
    /// fetch every entry of the group.
    pub fn replay(dir: &Path) -> Res<u64> {
        // Reading takes whatever the files hold: compressed or not is the writer's choice.
        let engine = Engine::open(config(dir, true)?)?;
        let (Some(first), Some(last)) = (engine.first_index(1), engine.last_index(1)) else {
            return Ok(0);
        };
        let (mut n, mut sum) = (0u64, 0u64);
        let mut v: Vec<BytesValue> = Vec::with_capacity(4096);
        let mut lo = first;
        while lo <= last {
            let hi = (lo + 4096).min(last + 1);
            v.clear();
            engine.fetch_entries_to::<Ext>(1, lo, hi, None, &mut v)?;
            for e in &v {
                touch(&mut sum, &e.value);
                n += 1;
            }
            lo = hi;
        }
        std::hint::black_box(sum);
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------

mod sqlite {
    use super::*;
    use rusqlite::Connection;

    fn connect(dir: &Path) -> Res<Connection> {
        let c = Connection::open(dir.join("bench.db"))?;
        let mode: String = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("journal_mode is {mode}, not wal").into());
        }
        c.pragma_update(None, "synchronous", "FULL")?;
        c.execute_batch(
            "CREATE TABLE IF NOT EXISTS log(id INTEGER PRIMARY KEY, body BLOB NOT NULL)",
        )?;
        Ok(c)
    }

    /// One connection shared under a mutex: SQLite allows one writer at a time anyway, and a
    /// connection per thread would wait in SQLite's sleeping busy handler instead of a queue.
    pub struct Sqlite {
        conn: Mutex<Connection>,
    }

    impl Sqlite {
        pub fn open(dir: &Path) -> Res<Sqlite> {
            Ok(Sqlite {
                conn: Mutex::new(connect(dir)?),
            })
        }
    }

    const INSERT: &str = "INSERT INTO log(body) VALUES (?1)";

    impl Writer for Sqlite {
        fn commit(&self, _thread: usize, payload: &[u8]) -> Res<()> {
            let c = self.conn.lock().map_err(|_| "poisoned")?;
            c.prepare_cached(INSERT)?.execute([payload])?;
            Ok(())
        }
        fn commit_tx(&self, _thread: usize, records: &[Vec<u8>], _flat: &[u8]) -> Res<()> {
            let mut c = self.conn.lock().map_err(|_| "poisoned")?;
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare_cached(INSERT)?;
                for r in records {
                    st.execute([r])?;
                }
            }
            tx.commit()?;
            Ok(())
        }
    }

    pub fn load(dir: &Path, pool: &[Vec<u8>], n: usize, tx: usize) -> Res<()> {
        let s = Sqlite::open(dir)?;
        let mut i = 0;
        let mut batch = Vec::with_capacity(tx);
        while i < n {
            batch.clear();
            for _ in 0..tx.min(n - i) {
                batch.push(pool[i % pool.len()].clone());
                i += 1;
            }
            s.commit_tx(0, &batch, &[])?;
        }
        Ok(())
    }

    pub fn replay(dir: &Path) -> Res<u64> {
        let c = connect(dir)?;
        let mut st = c.prepare("SELECT body FROM log ORDER BY id")?;
        let mut rows = st.query([])?;
        let (mut n, mut sum) = (0u64, 0u64);
        while let Some(row) = rows.next()? {
            touch(&mut sum, row.get_ref(0)?.as_blob()?);
            n += 1;
        }
        std::hint::black_box(sum);
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------

mod lora {
    use super::*;
    use lora_store::{LoraBinary, MutationEvent, PropertyValue};
    use lora_wal::{Lsn, ReplayStep, SyncMode, Wal, WalError};

    const SEGMENT: u64 = 8 << 20;
    const MODE: SyncMode = SyncMode::GroupSync { interval_ms: 50 };

    /// A record is a `SetNodeProperty` event whose value is the payload as a binary property.
    fn event(node: u64, payload: &[u8]) -> MutationEvent {
        MutationEvent::SetNodeProperty {
            node_id: node,
            key: "v".to_owned(),
            value: PropertyValue::Binary(LoraBinary::from_bytes(payload.to_vec())),
        }
    }

    /// lora-wal commits reach the OS on return and a background flusher fsyncs every 50 ms
    /// (its only `SyncMode`); a durable commit is `commit_tx_events` + `force_fsync`.
    pub struct Lora {
        wal: Arc<Wal>,
        node: AtomicU64,
    }

    impl Lora {
        pub fn open(dir: &Path) -> Res<Lora> {
            let (wal, _) = Wal::open(dir, MODE, SEGMENT, Lsn::ZERO)?;
            Ok(Lora {
                wal,
                node: AtomicU64::new(0),
            })
        }
    }

    impl Writer for Lora {
        fn commit(&self, _thread: usize, payload: &[u8]) -> Res<()> {
            let node = self.node.fetch_add(1, Ordering::Relaxed);
            self.wal.commit_tx_events(&[event(node, payload)])?;
            self.wal.force_fsync()?;
            Ok(())
        }
        fn commit_tx(&self, _thread: usize, records: &[Vec<u8>], _flat: &[u8]) -> Res<()> {
            let node = self.node.fetch_add(records.len() as u64, Ordering::Relaxed);
            let events: Vec<MutationEvent> = records
                .iter()
                .enumerate()
                .map(|(k, r)| event(node + k as u64, r))
                .collect();
            self.wal.commit_tx_events(&events)?;
            self.wal.force_fsync()?;
            Ok(())
        }
    }

    pub fn load(dir: &Path, pool: &[Vec<u8>], n: usize, tx: usize) -> Res<()> {
        let (wal, _) = Wal::open(dir, MODE, SEGMENT, Lsn::ZERO)?;
        let mut i = 0;
        while i < n {
            let k = tx.min(n - i);
            let events: Vec<MutationEvent> = (0..k)
                .map(|j| event((i + j) as u64, &pool[(i + j) % pool.len()]))
                .collect();
            wal.commit_tx_events(&events)?;
            i += k;
        }
        wal.force_fsync()?;
        Ok(())
    }

    /// `open_replaying` hands every committed transaction to the sink, which decodes each
    /// event.
    pub fn replay(dir: &Path) -> Res<u64> {
        let (mut n, mut sum) = (0u64, 0u64);
        let wal = Wal::open_replaying(dir, MODE, SEGMENT, Lsn::ZERO, &mut |step| match step {
            ReplayStep::Commit(tx) | ReplayStep::Partial(tx) => tx.for_each(|ev| {
                if let MutationEvent::SetNodeProperty {
                    value: PropertyValue::Binary(b),
                    ..
                } = &ev
                {
                    sum = sum.wrapping_add(b.len() as u64);
                }
                n += 1;
                Ok::<(), WalError>(())
            }),
            ReplayStep::Discard => Ok(()),
        })?;
        drop(wal);
        std::hint::black_box(sum);
        Ok(n)
    }
}

/// A fresh, empty directory for one cell.
pub fn fresh_dir(root: &Path, name: &str) -> Res<PathBuf> {
    let d = root.join(name);
    if d.exists() {
        std::fs::remove_dir_all(&d)?;
    }
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
