//! The systems under test, each behind the same small interface: a durable single-record
//! commit, a durable 1,000-record transaction, and a write-then-replay of N records.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
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
    Sqlite,
    LoraWal,
    Raw,
}

impl Sys {
    pub const ALL: [Sys; 6] = [
        Sys::Ours,
        Sys::Okaywal,
        Sys::RaftEngine,
        Sys::Sqlite,
        Sys::LoraWal,
        Sys::Raw,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Sys::Ours => "wal-log (ours)",
            Sys::Okaywal => "okaywal 0.3.1",
            Sys::RaftEngine => "raft-engine 0.4.2",
            Sys::Sqlite => "SQLite (rusqlite 0.43, WAL, FULL)",
            Sys::LoraWal => "lora-wal 0.34.1",
            Sys::Raw => "raw pwrite+fdatasync",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Sys::Ours => "wal-log",
            Sys::Okaywal => "okaywal",
            Sys::RaftEngine => "raft-engine",
            Sys::Sqlite => "SQLite",
            Sys::LoraWal => "lora-wal",
            Sys::Raw => "raw",
        }
    }

    /// A peer: another log or database (not ours, not the raw disk loop).
    pub fn is_peer(self) -> bool {
        !matches!(self, Sys::Ours | Sys::Raw)
    }
}

/// An open system taking durable commits from several threads.
pub trait Writer: Sync {
    /// Appends one record and returns once it is durable.
    fn commit(&self, thread: usize, payload: &[u8]) -> Res<()>;
    /// Appends `records` as one atomic transaction and returns once it is durable. `flat` is
    /// the records concatenated (used only by the raw loop, which has no framing).
    fn commit_tx(&self, thread: usize, records: &[Vec<u8>], flat: &[u8]) -> Res<()>;
    /// Something worth reporting about the run (ours: commits per fsync).
    fn note(&self) -> Option<String> {
        None
    }
    /// Waits for work that opening started in the background, so a short cell does not
    /// charge a once-per-open cost as if it were the steady state.
    fn settle(&self) {}
}

/// Opens `sys` in the empty directory `dir` for `threads` writer threads.
pub fn open_writer(
    sys: Sys,
    dir: &Path,
    threads: usize,
    raw: &Arc<RawFile>,
) -> Res<Box<dyn Writer>> {
    Ok(match sys {
        Sys::Ours => Box::new(ours::Ours::open(dir)?),
        Sys::Okaywal => Box::new(okay::Okay::open(dir)?),
        Sys::RaftEngine => Box::new(raft::Raft::open(dir, threads)?),
        Sys::Sqlite => Box::new(sqlite::Sqlite::open(dir)?),
        Sys::LoraWal => Box::new(lora::Lora::open(dir)?),
        Sys::Raw => Box::new(RawWriter(raw.clone())),
    })
}

/// What a replay run measured.
#[derive(Clone, Debug)]
pub struct Replay {
    pub records: u64,
    /// Open + read every record back, page cache warm (just written); best of three.
    pub warm: Duration,
    /// The same after `posix_fadvise(DONTNEED)` on every file of the log; best of two.
    pub cold: Duration,
}

/// Writes `pool`-cycled records, `n` in all, as transactions of `tx` records, then times a
/// fresh open that reads every record back (warm, then cold page cache).
pub fn replay(sys: Sys, dir: &Path, pool: &[Vec<u8>], n: usize, tx: usize) -> Res<Replay> {
    let run: fn(&Path) -> Res<u64> = match sys {
        Sys::Ours => {
            ours::load(dir, pool, n, tx)?;
            ours::replay
        }
        Sys::Okaywal => {
            okay::load(dir, pool, n, tx)?;
            okay::replay
        }
        Sys::RaftEngine => {
            raft::load(dir, pool, n, tx)?;
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
        Sys::Raw => {
            raw_load(dir, pool, n, tx)?;
            raw_replay
        }
    };
    // Best of three warm runs (the machine is shared; the fastest run is the least disturbed),
    // then best of two cold ones.
    let mut warm = Duration::MAX;
    let mut records = 0;
    for _ in 0..3 {
        let t = Instant::now();
        records = run(dir)?;
        warm = warm.min(t.elapsed());
        check_count(sys, records, n)?;
    }
    let mut cold = Duration::MAX;
    for _ in 0..2 {
        drop_cache(dir)?;
        let t = Instant::now();
        let again = run(dir)?;
        cold = cold.min(t.elapsed());
        check_count(sys, again, n)?;
    }
    Ok(Replay {
        records,
        warm,
        cold,
    })
}

fn check_count(sys: Sys, got: u64, want: usize) -> Res<()> {
    if got != want as u64 {
        return Err(format!("{} replayed {got} records, wrote {want}", sys.short()).into());
    }
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
fn touch(sum: &mut u64, rec: &[u8]) {
    *sum = sum.wrapping_add(rec.len() as u64 + u64::from(rec.first().copied().unwrap_or(0)));
}

// ---------------------------------------------------------------------------------------------
// The raw limit: pwrite + fdatasync on a preallocated file.

/// A preallocated file (zeros written and synced) shared by every raw cell; writes wrap around.
pub struct RawFile {
    file: File,
    size: u64,
    off: AtomicU64,
}

impl RawFile {
    pub fn create(path: &Path, size: u64) -> Res<RawFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let zeros = vec![0u8; 4 << 20];
        let mut at = 0;
        while at < size {
            file.write_all_at(&zeros, at)?;
            at += zeros.len() as u64;
        }
        file.sync_all()?;
        if let Some(parent) = path.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(RawFile {
            file,
            size: at,
            off: AtomicU64::new(0),
        })
    }

    /// Writes `buf` at the next place in the ring (no fdatasync).
    pub fn write_only(&self, buf: &[u8]) -> Res<()> {
        let len = buf.len() as u64;
        let mut pos = self.off.fetch_add(len, Ordering::Relaxed) % self.size;
        if pos + len > self.size {
            pos = 0;
        }
        self.file.write_all_at(buf, pos)?;
        Ok(())
    }

    /// [`RawFile::write_only`], then an fdatasync.
    pub fn write_durable(&self, buf: &[u8]) -> Res<()> {
        self.write_only(buf)?;
        self.file.sync_data()?;
        Ok(())
    }
}

struct RawWriter(Arc<RawFile>);

impl Writer for RawWriter {
    fn commit(&self, _thread: usize, payload: &[u8]) -> Res<()> {
        self.0.write_durable(payload)
    }
    fn commit_tx(&self, _thread: usize, _records: &[Vec<u8>], flat: &[u8]) -> Res<()> {
        self.0.write_durable(flat)
    }
}

fn raw_load(dir: &Path, pool: &[Vec<u8>], n: usize, tx: usize) -> Res<()> {
    let f = File::create(dir.join("raw.log"))?;
    let mut buf = Vec::new();
    let mut at = 0u64;
    let mut i = 0;
    while i < n {
        buf.clear();
        for _ in 0..tx.min(n - i) {
            buf.extend_from_slice(&pool[i % pool.len()]);
            i += 1;
        }
        f.write_all_at(&buf, at)?;
        at += buf.len() as u64;
    }
    f.sync_data()?;
    std::fs::write(dir.join("raw.size"), pool[0].len().to_string())?;
    Ok(())
}

/// Reads the file in 1 MiB chunks and walks its fixed-size records: no framing, no checksum.
fn raw_replay(dir: &Path) -> Res<u64> {
    let mut f = File::open(dir.join("raw.log"))?;
    let size = std::fs::read_to_string(dir.join("raw.size"))
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok());
    let rec = size.ok_or("raw.size missing")?;
    let mut buf = vec![0u8; (1 << 20) / rec * rec];
    let (mut n, mut sum) = (0u64, 0u64);
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match f.read(&mut buf[filled..])? {
                0 => break,
                k => filled += k,
            }
        }
        for r in buf[..filled].chunks_exact(rec) {
            touch(&mut sum, r);
            n += 1;
        }
        if filled < buf.len() {
            break;
        }
    }
    std::hint::black_box(sum);
    Ok(n)
}

// ---------------------------------------------------------------------------------------------

pub mod ours {
    use super::*;
    use wal_log::{Lsn, Options, SyncPolicy, Wal};

    pub struct Ours {
        wal: Wal,
        dir: PathBuf,
    }

    impl Ours {
        pub fn open(dir: &Path) -> Res<Ours> {
            let (wal, _) = Wal::open(dir, Options::default())?;
            Ok(Ours {
                wal,
                dir: dir.to_path_buf(),
            })
        }
    }

    impl Ours {
        /// One transaction, then [`keep_bounded`].
        pub fn commit_steady(&self, records: &[Vec<u8>]) -> Res<()> {
            self.wal.append_batch(records)?;
            keep_bounded(&self.wal)
        }

        pub fn stats(&self) -> wal_log::Stats {
            self.wal.stats()
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
        fn note(&self) -> Option<String> {
            let s = self.wal.stats();
            Some(format!("{:.1}", s.commits_per_fsync))
        }
        /// Opening a new log installs segment 1 and asks the background preallocator for
        /// segment 2: 32 MiB of zeros written and synced while the cell would run. It happens
        /// again once per 32 MiB of log, which a 1 s cell never reaches, so wait for it: until
        /// the file has its full size, then sync it ourselves (the preallocator's own sync then
        /// finds nothing left to write).
        fn settle(&self) {
            let path = self.dir.join(wal_log::layout::PREALLOC_FILE);
            let size = self.wal.options().segment_size;
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if std::fs::metadata(&path).is_ok_and(|m| m.len() >= size) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            if let Ok(f) = File::open(&path) {
                let _ = f.sync_all();
            }
            std::thread::sleep(Duration::from_millis(20));
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

    pub fn replay(dir: &Path) -> Res<u64> {
        let (wal, _) = Wal::open(dir, Options::default())?;
        let (mut n, mut sum) = (0u64, 0u64);
        for t in wal.read_from(Lsn::ZERO)? {
            let t = t?;
            for r in t.records() {
                touch(&mut sum, &r?);
                n += 1;
            }
        }
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
    use raft_engine::{Config, Engine, LogBatch, MessageExt};

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

    fn config(dir: &Path) -> Res<Config> {
        let dir = dir.to_str().ok_or("non-UTF-8 path")?.to_owned();
        Ok(Config {
            dir,
            ..Default::default()
        })
    }

    /// The default configuration; one Raft group (region) per writer thread, as TiKV does
    /// with many regions sharing one engine.
    pub struct Raft {
        engine: Engine,
        next: Vec<AtomicU64>,
    }

    impl Raft {
        pub fn open(dir: &Path, threads: usize) -> Res<Raft> {
            let engine = Engine::open(config(dir)?)?;
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

    pub fn load(dir: &Path, pool: &[Vec<u8>], n: usize, tx: usize) -> Res<()> {
        let engine = Engine::open(config(dir)?)?;
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
        let engine = Engine::open(config(dir)?)?;
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
