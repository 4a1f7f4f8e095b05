//! What a `DirMirror` costs: shipping throughput while the log is written, the copy of a whole
//! log into a new archive, and the first commit after a restart, at several log sizes.
//!
//! ```text
//! cargo run --release -p wal-recorder --example mirror_restart -- [SIZE_MB ...] [--dir D]
//! ```
//!
//! For each size (default 100 and 1000 MB) it writes a log of that size in 256 KiB
//! transactions under `SyncPolicy::Always`, each committed with `commit_and_flush` (so each
//! one is shipped to the archive before the next), closes it, reopens it with a new mirror on
//! the same archive and times the first commit. Everything is created under a temporary
//! directory (in `D` when given) and removed at the end. Needs about twice the largest size in
//! free disk space.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wal_log::{Options, SyncPolicy, Wal};
use wal_recorder::WalRecorder;
use wal_recorder::mirror::{DirMirror, WalMirror};

type Error = Box<dyn std::error::Error>;
type Rec = WalRecorder<Vec<u8>>;

const TX_BYTES: usize = 256 << 10;

fn open(log: &Path, archive: &Path) -> Result<(Rec, Arc<DirMirror>, Duration), Error> {
    let started = Instant::now();
    let (wal, _) = Wal::open(log, Options::default().sync(SyncPolicy::Always))?;
    let opened = started.elapsed();
    let mirror = Arc::new(DirMirror::new(archive));
    Ok((
        Rec::new(Arc::new(wal)).with_mirror(mirror.clone()),
        mirror,
        opened,
    ))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// One size: build, copy whole, restart. Prints one line per figure.
fn measure(base: &Path, size_mb: u64) -> Result<(), Error> {
    let dir = tempfile::tempdir_in(base)?;
    let (log, archive) = (dir.path().join("log"), dir.path().join("archive"));
    // Build: every transaction shipped before the next.
    let (rec, mirror, _) = open(&log, &archive)?;
    let payload = vec![0x5A_u8; TX_BYTES];
    let started = Instant::now();
    while rec.stats().wal.bytes < size_mb << 20 {
        rec.commit_events([payload.clone()])?;
    }
    let built = started.elapsed();
    let bytes = rec.stats().wal.bytes;
    let segments = rec.wal().segments().len();
    println!(
        "{size_mb} MB: wrote {:.0} MiB in {segments} segments, each 256 KiB transaction fsynced and \
         shipped: {:.1} s, {:.1} MiB/s (archive written: {:.0} MiB)",
        mib(bytes),
        built.as_secs_f64(),
        mib(bytes) / built.as_secs_f64(),
        mib(mirror.stats().bytes_written),
    );
    // A new archive of the whole log at once.
    let fresh = DirMirror::new(dir.path().join("fresh"));
    let started = Instant::now();
    fresh.persist_force(rec.wal().dir())?;
    let copied = started.elapsed();
    println!(
        "{size_mb} MB: a new archive copies the whole log in {:.2} s, {:.0} MiB/s",
        copied.as_secs_f64(),
        mib(fresh.stats().bytes_written) / copied.as_secs_f64()
    );
    drop(rec);
    std::fs::remove_dir_all(dir.path().join("fresh"))?;
    // Restart: open, then the first commit (the mirror's first persist resumes the archive).
    let (rec, mirror, opened) = open(&log, &archive)?;
    let started = Instant::now();
    rec.commit_events([vec![1_u8; 100]])?;
    let first = started.elapsed();
    let started = Instant::now();
    rec.commit_events([vec![2_u8; 100]])?;
    let second = started.elapsed();
    let newest = rec.wal().segments().last().map_or(0, |s| s.bytes);
    println!(
        "{size_mb} MB: restart: open {:.1} ms, first commit {:.1} ms (archive bytes written {}; \
         the newest segment, which the mirror reads to resume, holds {:.1} MiB), second commit \
         {:.1} ms",
        opened.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        mirror.stats().bytes_written,
        mib(newest),
        second.as_secs_f64() * 1e3,
    );
    drop(rec);
    Ok(())
}

fn main() -> Result<(), Error> {
    let mut sizes = Vec::new();
    let mut base: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--dir" {
            base = args.next().map(PathBuf::from);
        } else {
            sizes.push(a.parse::<u64>()?);
        }
    }
    if sizes.is_empty() {
        sizes = vec![100, 1000];
    }
    let base = base.unwrap_or_else(std::env::temp_dir);
    for size in sizes {
        measure(&base, size)?;
    }
    Ok(())
}
