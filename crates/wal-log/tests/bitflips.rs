//! Corruption detection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wal_format::SEGMENT_HEADER_LEN;
use wal_log::sim::{CrashImage, DataLoss, DirLoss, SimVfs};
use wal_log::vfs::Vfs;
use wal_log::{Options, RecoveryMode, SyncPolicy, Wal, WalError, segment_file_name};

const DIR: &str = "/db";
const SEGMENT: u64 = 64 << 10;

fn opts(v: &SimVfs) -> Options {
    Options::default()
        .vfs(Arc::new(v.clone()))
        .segment_size(SEGMENT)
        .preallocate(true)
        .sync(SyncPolicy::Always)
        .recovery(RecoveryMode::TolerateTornTail)
}

fn copy(v: &SimVfs) -> SimVfs {
    v.crash(&CrashImage {
        data: DataLoss::AllWritten,
        dirs: DirLoss::AllKept,
    })
}

fn seg_path(seq: u64) -> PathBuf {
    Path::new(DIR).join(segment_file_name(wal_format::SegmentSeq(seq)))
}

/// All files and their contents.
fn snapshot(v: &SimVfs) -> Vec<(PathBuf, Vec<u8>)> {
    v.files()
        .into_iter()
        .map(|(p, _)| (p.clone(), v.read_file(&p).unwrap()))
        .collect()
}

/// Regression (found by the bit-flip sweep): `Wal::open` removed a leftover `prealloc.tmp`
/// before it scanned the log, so an open refused for corruption had changed the directory
/// after all, although `WalError::Corrupt` promises that nothing on disk was changed.
#[test]
fn regression_a_refused_open_removed_the_preallocated_file() {
    let v = SimVfs::new();
    v.create_dir_all(Path::new(DIR)).unwrap();
    let o = || opts(&v).segment_size(4 << 10).preallocate(false);
    let (wal, _) = Wal::open(DIR, o()).unwrap();
    while wal.segments().len() < 2 {
        wal.append(&[7u8; 300]).unwrap();
    }
    drop(wal);
    let tmp = Path::new(DIR).join(wal_log::PREALLOC_FILE);
    v.put_file(&tmp, &[0u8; 4096]);
    // Damage the first frame of the sealed segment.
    let damaged = copy(&v);
    damaged.poke(&seg_path(1), SEGMENT_HEADER_LEN as u64 + 30, &[0xff]);
    let before = snapshot(&damaged);
    let e = Wal::open(DIR, opts(&damaged).segment_size(4 << 10)).unwrap_err();
    assert!(matches!(e, WalError::Corrupt { offset: 64, .. }), "{e}");
    assert!(
        snapshot(&damaged) == before,
        "a refused open changed the files"
    );
    // An open that succeeds still clears the leftover.
    let intact = copy(&v);
    drop(Wal::open(DIR, opts(&intact).segment_size(4 << 10).preallocate(false)).unwrap());
    assert!(intact.read_file(&tmp).is_none());
}
