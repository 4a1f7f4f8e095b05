//! `--profile`: times the parts of wal-log's own workloads, to explain a missed target without
//! a profiler. Prints to stderr; writes no report.

use crate::systems::{self, Res, ours};
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wal_log::{Lsn, Options, StdVfs, Wal};

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn best<T>(n: usize, mut f: impl FnMut() -> Res<T>) -> Res<(Duration, T)> {
    let mut out = None;
    let mut best = Duration::MAX;
    for _ in 0..n {
        let t = Instant::now();
        let v = f()?;
        let e = t.elapsed();
        if e < best {
            best = e;
            out = Some(v);
        }
    }
    Ok((best, out.ok_or("no run")?))
}

/// Runs every part, or only those named in `WAL_PROFILE` (comma-separated: replay, tx, commits,
/// group).
pub fn run(root: &Path) -> Res<()> {
    let only = std::env::var("WAL_PROFILE").unwrap_or_default();
    let want = |part: &str| only.is_empty() || only.split(',').any(|p| p == part);
    if want("replay") {
        replay(root)?;
    }
    if want("tx") {
        tx(root)?;
    }
    if want("commits") {
        commits(root)?;
    }
    if want("group") {
        group(root)?;
    }
    Ok(())
}

fn replay(root: &Path) -> Res<()> {
    let n = 1_000_000;
    let pool = crate::pool_of(128);
    let dir = systems::fresh_dir(root, "profile-replay")?;
    ours::load(&dir, &pool, n, crate::TX_RECORDS)?;
    let (wal, _) = Wal::open(&dir, Options::default().preallocate(false))?;
    let segs = wal.segments();
    let bytes: u64 = segs.iter().map(|s| s.bytes).sum();
    drop(wal);
    eprintln!(
        "replay: {n} x 128 B in 1000-record transactions, {} segments, {:.1} MB of frames",
        segs.len(),
        bytes as f64 / 1e6
    );

    let mut t = Duration::MAX;
    for _ in 0..3 {
        let s = Instant::now();
        let (w, _) = Wal::open(&dir, Options::default())?;
        t = t.min(s.elapsed());
        drop(w);
    }
    eprintln!(
        "  Wal::open, default options (drop not timed)      {}",
        secs(t)
    );
    let (t, _) = best(3, || {
        let (w, _) = Wal::open(&dir, Options::default())?;
        drop(w);
        Ok(())
    })?;
    eprintln!(
        "  Wal::open + drop, default options                {}",
        secs(t)
    );
    let (t, _) = best(3, || {
        let (w, _) = Wal::open(&dir, Options::default().preallocate(false))?;
        drop(w);
        Ok(())
    })?;
    eprintln!(
        "  Wal::open + drop, preallocate(false)             {}",
        secs(t)
    );
    let (t, n) = best(3, || ours::replay(&dir))?;
    eprintln!(
        "  the bench's replay (open, read every record, drop) {}  ({:.1} M records/s)",
        secs(t),
        n as f64 / t.as_secs_f64() / 1e6
    );
    let (wal, _) = Wal::open(&dir, Options::default().preallocate(false))?;
    let (t, txs) = best(3, || {
        let mut k = 0u64;
        for tx in wal.read_from(Lsn::ZERO)? {
            std::hint::black_box(tx?);
            k += 1;
        }
        Ok(k)
    })?;
    eprintln!(
        "  read_from: iterate {txs} transactions only           {}",
        secs(t)
    );
    let (t, recs) = best(3, || {
        let mut k = 0u64;
        for tx in wal.read_from(Lsn::ZERO)? {
            for r in tx?.records() {
                std::hint::black_box(r?);
                k += 1;
            }
        }
        Ok(k)
    })?;
    eprintln!(
        "  read_from + records(): {recs} records           {}  ({:.1} M records/s)",
        secs(t),
        recs as f64 / t.as_secs_f64() / 1e6
    );
    drop(wal);
    let (t, frames) = best(3, || {
        let mut k = 0u64;
        for f in wal_log::inspect::frames(Arc::new(StdVfs), &dir)? {
            std::hint::black_box(f?);
            k += 1;
        }
        Ok(k)
    })?;
    eprintln!(
        "  wal_log::inspect::frames (read-only, verifies CRC): {frames} frames {}",
        secs(t)
    );
    let (t, read) = best(3, || {
        let mut total = 0u64;
        let mut buf = vec![0u8; 4 << 20];
        for e in std::fs::read_dir(&dir)? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "wal")
                || p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("0"))
            {
                let mut f = File::open(&p)?;
                loop {
                    let k = f.read(&mut buf)?;
                    if k == 0 {
                        break;
                    }
                    total += k as u64;
                }
            }
        }
        Ok(total)
    })?;
    eprintln!(
        "  read(2) of the segment files: {:.1} MB             {}",
        read as f64 / 1e6,
        secs(t)
    );
    let (t, n) = best(3, || {
        // What the recovery scan does per segment: wal_log::vfs::read_all into a new buffer.
        let mut total = 0usize;
        for e in std::fs::read_dir(&dir)? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "wal") {
                let f = wal_log::Vfs::open(&StdVfs, &p, wal_log::OpenMode::Read)?;
                let data = wal_log::vfs::read_all(&*f)?;
                total += data.len();
                std::hint::black_box(&data);
            }
        }
        Ok(total)
    })?;
    eprintln!(
        "  wal_log::vfs::read_all of each segment: {:.1} MB    {}",
        n as f64 / 1e6,
        secs(t)
    );
    let buf = vec![0x5Au8; read as usize];
    let (t, c) = best(3, || Ok(crc32c::crc32c(&buf)))?;
    std::hint::black_box(c);
    eprintln!(
        "  crc32c over {:.1} MB in memory                   {}  ({:.1} GB/s)",
        read as f64 / 1e6,
        secs(t),
        read as f64 / t.as_secs_f64() / 1e9
    );
    let names: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    eprintln!("  files: {}", names.join(" "));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tx_run(
    dir: &Path,
    opts: Options,
    records: &[Vec<u8>],
    cell: Duration,
    steady: bool,
) -> Res<(f64, wal_log::Stats, Duration)> {
    let (wal, _) = Wal::open(dir, opts)?;
    if steady {
        // Warm up into the steady state of a log that truncates behind its checkpoints:
        // segments are recycled instead of zero-filled.
        let warm = Instant::now();
        while warm.elapsed() < Duration::from_millis(1500) {
            wal.append_batch(records)?;
            ours::keep_bounded(&wal)?;
        }
    }
    // Let the background preallocation of the next segment finish first.
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let mut n = 0u64;
    let mut max = Duration::ZERO;
    while start.elapsed() < cell {
        let t = Instant::now();
        wal.append_batch(records)?;
        if steady {
            ours::keep_bounded(&wal)?;
        }
        max = max.max(t.elapsed());
        n += 1;
    }
    let mb = n as f64 * records.iter().map(Vec::len).sum::<usize>() as f64
        / start.elapsed().as_secs_f64()
        / 1e6;
    Ok((mb, wal.stats(), max))
}

/// MB/s of the raw loop writing `flat` per transaction, with an fdatasync each (`durable`)
/// or without (what is left is the copy into the page cache).
fn raw_tx(root: &Path, flat: &[u8], cell: Duration, durable: bool) -> Res<f64> {
    let raw = crate::raw::RawFile::create(&root.join("profile-raw.bin"), 256 << 20)?;
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < cell {
        if durable {
            raw.write_durable(flat)?;
        } else {
            raw.write_only(flat)?;
        }
        n += 1;
    }
    let mb = n as f64 * flat.len() as f64 / start.elapsed().as_secs_f64() / 1e6;
    let _ = std::fs::remove_file(root.join("profile-raw.bin"));
    Ok(mb)
}

fn tx(root: &Path) -> Res<()> {
    let cell = Duration::from_secs(2);
    let sizes: Vec<usize> = match std::env::var("WAL_PROFILE_SIZE") {
        Ok(v) => vec![v.parse()?],
        Err(_) => vec![128, 4096],
    };
    for size in sizes {
        let pool = crate::pool_of(size);
        let records: Vec<Vec<u8>> = pool[..crate::TX_RECORDS].to_vec();
        let flat = records.concat();
        eprintln!("tx: 1000 x {size} B, {} s each", cell.as_secs());
        for round in 0..2 {
            let variants: [(&str, Options, bool); 8] = [
                (
                    "default (32 MiB segments, preallocate)",
                    Options::default(),
                    false,
                ),
                (
                    "default, steady state (truncate, recycle)",
                    Options::default(),
                    true,
                ),
                (
                    "steady state, recycle_segments(0)",
                    Options::default().recycle_segments(0),
                    true,
                ),
                (
                    "steady state, segment_size(64 MiB)",
                    Options::default().segment_size(64 << 20),
                    true,
                ),
                (
                    "steady state, segment_size(128 MiB)",
                    Options::default().segment_size(128 << 20),
                    true,
                ),
                (
                    "preallocate(false)",
                    Options::default().preallocate(false),
                    false,
                ),
                (
                    "segment_size(1 GiB), preallocate",
                    Options::default().segment_size(1 << 30),
                    false,
                ),
                (
                    "segment_size(1 GiB), preallocate(false)",
                    Options::default().segment_size(1 << 30).preallocate(false),
                    false,
                ),
            ];
            let filter = std::env::var("WAL_PROFILE_VARIANT").ok();
            for (name, opts, steady) in variants {
                if filter.as_deref().is_some_and(|f| !name.contains(f)) {
                    continue;
                }
                let dir = systems::fresh_dir(root, "profile-tx")?;
                let (mb, st, max) = tx_run(&dir, opts, &records, cell, steady)?;
                eprintln!(
                    "  [{round}] {name:<42} {mb:>7.1} MB/s  rotations {:>3} (recycled {:>3}, unzeroed {:>3}) fsyncs {:>4} commits {:>4} max tx {:.1} ms",
                    st.rotations,
                    st.recycled,
                    st.zero_fills_skipped,
                    st.fsyncs,
                    st.commits,
                    max.as_secs_f64() * 1e3
                );
                let _ = std::fs::remove_dir_all(&dir);
            }
            eprintln!(
                "  [{round}] {:<42} {:>7.1} MB/s",
                "raw pwrite+fdatasync",
                raw_tx(root, &flat, cell, true)?
            );
            // Without any fsync: what is left is CPU and the copy into the page cache.
            let dir = systems::fresh_dir(root, "profile-tx")?;
            let (mb, _, _) = tx_run(
                &dir,
                Options::default().sync(wal_log::SyncPolicy::Never),
                &records,
                cell,
                true,
            )?;
            let _ = std::fs::remove_dir_all(&dir);
            eprintln!(
                "  [{round}] {:<42} {mb:>7.1} MB/s",
                "steady, SyncPolicy::Never"
            );
            let mb = raw_tx(root, &flat, cell, false)?;
            eprintln!("  [{round}] {:<42} {mb:>7.1} MB/s", "raw pwrite only");
            let start = Instant::now();
            let mut n = 0u64;
            let mut out = Vec::with_capacity(flat.len() + (1 << 16));
            let seed = wal_format::SegmentSeed::new(
                wal_format::LogId::from_u128(1),
                wal_format::SegmentSeq(1),
            );
            while start.elapsed() < cell {
                out.clear();
                wal_format::frame::encode_records_frame(&mut out, seed, Lsn(1), &records)?;
                std::hint::black_box(&out);
                n += 1;
            }
            let mb = n as f64 * flat.len() as f64 / start.elapsed().as_secs_f64() / 1e6;
            eprintln!(
                "  [{round}] {:<42} {mb:>7.1} MB/s",
                "encode_records_frame only"
            );
        }
    }
    Ok(())
}

fn commits(root: &Path) -> Res<()> {
    let cell = Duration::from_secs(2);
    let pool = crate::pool_of(128);
    eprintln!("commits: 1 writer, 128 B, {} s each", cell.as_secs());
    let raw = crate::raw::RawFile::create(&root.join("profile-raw.bin"), 64 << 20)?;
    for round in 0..3 {
        for (name, opts) in [
            ("default", Some(Options::default())),
            (
                "preallocate(false)",
                Some(Options::default().preallocate(false)),
            ),
            ("raw", None),
        ] {
            let dir = systems::fresh_dir(root, "profile-commit")?;
            let wal = match opts {
                Some(o) => Some(Wal::open(&dir, o)?.0),
                None => None,
            };
            std::thread::sleep(Duration::from_millis(300));
            let start = Instant::now();
            let mut lat = Vec::new();
            let mut i = 0;
            while start.elapsed() < cell {
                let t = Instant::now();
                match &wal {
                    Some(w) => {
                        w.append(&pool[i % pool.len()])?;
                    }
                    None => raw.write_durable(&pool[i % pool.len()])?,
                }
                lat.push(t.elapsed());
                i += 1;
            }
            lat.sort();
            let st = wal.as_ref().map(|w| w.stats());
            eprintln!(
                "  [{round}] {name:<20} {:>8.0}/s p50 {:>6.1} us p99 {:>7.1} us{}",
                lat.len() as f64 / cell.as_secs_f64(),
                lat[lat.len() / 2].as_secs_f64() * 1e6,
                lat[lat.len() * 99 / 100].as_secs_f64() * 1e6,
                st.map(|s| format!(
                    " fsyncs/commit {:.2}",
                    s.fsyncs as f64 / s.commits.max(1) as f64
                ))
                .unwrap_or_default()
            );
            drop(wal);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let _ = std::fs::remove_file(root.join("profile-raw.bin"));
    Ok(())
}

/// A group commit with nothing but the essentials, to bound what any design can reach on this
/// machine: one mutex and condition variable, a waiter leads (takes the buffer, one `pwrite`,
/// one `fdatasync`), everyone else waits for the durable mark. The shape sets how many flushes
/// may be in flight at once and whether the leader gathers first.
struct IdealGroup {
    file: File,
    size: u64,
    shape: GroupShape,
    /// Writes go out one at a time in batch order, so an fsync that starts after a batch's
    /// write covers every earlier batch too, even with several fsyncs in flight.
    write_order: std::sync::Mutex<()>,
    st: std::sync::Mutex<GroupState>,
    cv: std::sync::Condvar,
}

/// How [`IdealGroup`] leads.
#[derive(Clone, Copy)]
struct GroupShape {
    /// The leader yields once before taking the buffer, so that writers just woken can queue.
    gather: bool,
    /// Flushes (write + fsync) in flight at once; 1 is strict group commit (no write while an
    /// fsync runs), more overlaps fsyncs.
    in_flight: usize,
    /// With a flush in flight, another starts only once this many commits are queued.
    overlap_min: u64,
}

/// The variants `--profile group` runs beside wal-log and okaywal.
const GROUP_SHAPES: [(&str, GroupShape); 6] = {
    const fn shape(gather: bool, in_flight: usize, overlap_min: u64) -> GroupShape {
        GroupShape {
            gather,
            in_flight,
            overlap_min,
        }
    }
    [
        ("minimal", shape(false, 1, 1)),
        ("minimal+yield", shape(true, 1, 1)),
        ("overlap2", shape(false, 2, 1)),
        ("overlap2,min3", shape(false, 2, 3)),
        ("overlap2,min5", shape(false, 2, 5)),
        ("overlap2,min3+yield", shape(true, 2, 3)),
    ]
};

#[derive(Default)]
struct GroupState {
    buf: Vec<u8>,
    /// Commits in `buf`.
    in_buf: u64,
    queued: u64,
    durable: u64,
    /// Flushes in flight.
    leading: usize,
    pos: u64,
    fsyncs: u64,
}

impl IdealGroup {
    fn open(path: &Path, shape: GroupShape) -> Res<IdealGroup> {
        use std::os::unix::fs::FileExt;
        let size = 64u64 << 20;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let zeros = vec![0u8; 1 << 20];
        for i in 0..size >> 20 {
            file.write_all_at(&zeros, i << 20)?;
        }
        file.sync_all()?;
        Ok(IdealGroup {
            file,
            size,
            shape,
            write_order: std::sync::Mutex::new(()),
            st: std::sync::Mutex::default(),
            cv: std::sync::Condvar::new(),
        })
    }
}

impl systems::Writer for IdealGroup {
    fn commit(&self, _thread: usize, payload: &[u8]) -> Res<()> {
        use std::os::unix::fs::FileExt;
        let lock = || self.st.lock().map_err(|_| "poisoned");
        let mut g = lock()?;
        g.buf.extend_from_slice(payload);
        g.queued += 1;
        g.in_buf += 1;
        let me = g.queued;
        loop {
            if g.durable >= me {
                return Ok(());
            }
            if g.leading >= self.shape.in_flight
                || g.buf.is_empty()
                || (g.leading > 0 && g.in_buf < self.shape.overlap_min)
            {
                g = self.cv.wait(g).map_err(|_| "poisoned")?;
                continue;
            }
            g.leading += 1;
            if self.shape.gather {
                drop(g);
                std::thread::yield_now();
                g = lock()?;
            }
            let buf = std::mem::take(&mut g.buf);
            g.in_buf = 0;
            let upto = g.queued;
            let mut pos = g.pos;
            if pos + buf.len() as u64 > self.size {
                pos = 0;
            }
            g.pos = pos + buf.len() as u64;
            // Taken under the state lock: writes go out in batch order.
            let order = self.write_order.lock().map_err(|_| "poisoned")?;
            drop(g);
            self.file.write_all_at(&buf, pos)?;
            drop(order);
            self.file.sync_data()?;
            g = lock()?;
            g.durable = g.durable.max(upto);
            g.leading -= 1;
            g.fsyncs += 1;
            self.cv.notify_all();
        }
    }
    fn commit_tx(&self, thread: usize, _records: &[Vec<u8>], flat: &[u8]) -> Res<()> {
        self.commit(thread, flat)
    }
    fn fsync_counts(&self) -> Option<(u64, u64)> {
        let g = self.st.lock().ok()?;
        Some((g.queued, g.fsyncs))
    }
}

/// 8 writers of 128 B records: wal-log, okaywal, and the minimal group commit above in each of
/// its shapes, in turns.
fn group(root: &Path) -> Res<()> {
    let cell = Duration::from_secs(2);
    let warm = Duration::from_millis(250);
    let pool = crate::pool_of(128);
    let threads = 8;
    let raw = Arc::new(crate::raw::RawFile::create(
        &root.join("profile-raw.bin"),
        64 << 20,
    )?);
    eprintln!(
        "group commit: {threads} writers, 128 B, {} s each",
        cell.as_secs()
    );
    for round in 0..3 {
        let names = ["wal-log", "okaywal"]
            .into_iter()
            .chain(GROUP_SHAPES.iter().map(|(name, _)| *name));
        for name in names {
            let dir = systems::fresh_dir(root, "profile-group")?;
            let w: Box<dyn systems::Writer> = match name {
                "wal-log" => systems::open_writer(crate::Sys::Ours, &dir, threads, &raw)?,
                "okaywal" => systems::open_writer(crate::Sys::Okaywal, &dir, threads, &raw)?,
                other => {
                    let (_, shape) = GROUP_SHAPES
                        .iter()
                        .find(|(n, _)| *n == other)
                        .ok_or("unknown shape")?;
                    Box::new(IdealGroup::open(&dir.join("ideal.bin"), *shape)?)
                }
            };
            let timing = crate::cells::Timing { warm, cell };
            let r = crate::cells::drive_commits(&*w, threads, &pool, timing, &|| {
                systems::quiesce(&dir, &raw)
            })?;
            let mut lat = r.lat.clone();
            lat.sort_unstable();
            eprintln!(
                "  [{round}] {name:<20} {:>8.0}/s p50 {:>6.1} us {}",
                r.per_s,
                f64::from(lat[lat.len() / 2]) / 1e3,
                r.per_fsync
                    .map(|p| format!("{p:.1} commits/fsync"))
                    .unwrap_or_default()
            );
            drop(w);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let _ = std::fs::remove_file(root.join("profile-raw.bin"));
    Ok(())
}
