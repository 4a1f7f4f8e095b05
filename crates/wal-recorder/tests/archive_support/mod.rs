//! Helpers for the `DirMirror` tests on real files: what an archive verifies as, what it
//! recovers, and which `MirrorError` a failure carries.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use crate::support::{Ev, transactions};
use std::path::{Path, PathBuf};
use wal_log::inspect::Verdict;
use wal_log::{Options, StdVfs, Wal};
use wal_recorder::RecorderError;
use wal_recorder::mirror::MirrorError;

/// The `MirrorError` inside an I/O error from a `DirMirror`.
pub fn mirror_error(e: &std::io::Error) -> &MirrorError {
    e.get_ref()
        .and_then(|e| e.downcast_ref::<MirrorError>())
        .unwrap_or_else(|| panic!("not a MirrorError: {e:?}"))
}

/// The `MirrorError` inside a recorder's mirror failure.
pub fn recorder_mirror_error(e: &RecorderError) -> &MirrorError {
    match e {
        RecorderError::Mirror(io) => mirror_error(io),
        other => panic!("not a mirror failure: {other:?}"),
    }
}

/// What `walctl verify` (and `wal_log::inspect`) says about the log directory `dir`.
pub fn verdict(dir: &Path) -> Verdict {
    wal_log::inspect::inspect(&StdVfs, dir, &mut |_, _| {})
        .unwrap()
        .verdict()
}

/// Every transaction the log in `dir` recovers, opened on a copy (recovery may change what it
/// opens).
pub fn recovered(dir: &Path) -> Vec<Vec<Ev>> {
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
        }
    }
    let (wal, _) = Wal::open(copy.path(), Options::default().create_if_missing(false)).unwrap();
    transactions(&wal).into_iter().map(|(_, e)| e).collect()
}

/// Segment files in `dir`, sorted.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    names.sort();
    names
}

/// Rewrites the header of the segment file `path` (re-encoded, so it verifies).
pub fn rewrite_header(path: &Path, change: impl FnOnce(&mut wal_format::SegmentHeader)) {
    let mut bytes = std::fs::read(path).unwrap();
    let mut h = wal_format::SegmentHeader::decode(&bytes[..wal_format::header::SEGMENT_HEADER_LEN])
        .unwrap();
    change(&mut h);
    bytes[..wal_format::header::SEGMENT_HEADER_LEN].copy_from_slice(&h.encode());
    std::fs::write(path, bytes).unwrap();
}
