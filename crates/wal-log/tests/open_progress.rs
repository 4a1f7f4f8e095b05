//! `Options::progress` on real files: what an open tells a progress bar is monotone, keeps
//! one total (every segment file's length; twice under skip-damaged, whose plan reads the log
//! first) and reaches it. No terminal needed: the values are what a bar would draw.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use wal_log::{Options, RecoveryMode, Wal};

fn opts() -> Options {
    Options::default().segment_size(64 << 10).preallocate(false)
}

/// A log of several segments.
fn log(dir: &Path) {
    let (wal, _) = Wal::open(dir, opts()).unwrap();
    for i in 0..2_000u32 {
        wal.append(format!("payload {i:05} {}", "x".repeat(100)).as_bytes())
            .unwrap();
    }
}

fn segment_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// Opens `dir` in `mode` and returns every `(done, total)` the open reported.
fn open_told(dir: &Path, mode: RecoveryMode) -> Vec<(u64, u64)> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let o = opts()
        .recovery(mode)
        .on_progress(move |d, t| s.lock().unwrap().push((d, t)));
    let (wal, _) = Wal::open(dir, o).unwrap();
    drop(wal);
    seen.lock().unwrap().clone()
}

fn check(told: &[(u64, u64)], total: u64) {
    assert!(told.len() > 3, "one report a segment at least: {told:?}");
    assert!(told.iter().all(|&(_, t)| t == total), "{told:?} / {total}");
    assert!(
        told.windows(2).all(|w| w[0].0 <= w[1].0),
        "monotone: {told:?}"
    );
    assert_eq!(told.last().copied(), Some((total, total)));
    // Not a bar that jumps from nothing to the end.
    assert!(told.iter().any(|&(d, _)| d > 0 && d < total), "{told:?}");
}

#[test]
fn an_open_tells_its_bytes_read_up_to_the_total() {
    let dir = tempfile::tempdir().unwrap();
    log(dir.path());
    let bytes = segment_bytes(dir.path());
    assert!(bytes > 4 * (64 << 10), "several segments: {bytes}");
    check(
        &open_told(dir.path(), RecoveryMode::TolerateTornTail),
        bytes,
    );
}

#[test]
fn skip_damaged_counts_its_plan_read_too() {
    let dir = tempfile::tempdir().unwrap();
    log(dir.path());
    let bytes = segment_bytes(dir.path());
    check(&open_told(dir.path(), RecoveryMode::SkipDamaged), 2 * bytes);
}
