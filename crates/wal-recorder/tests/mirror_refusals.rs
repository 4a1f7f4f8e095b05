//! Archives a `DirMirror` refuses to go on with, each with its own `MirrorError`, and the
//! archive left as it was: one of another log, one ahead of the log, one whose history the
//! log does not continue, one with a damaged header, and the log directory itself. (Before
//! the mirror resumed from the archive, a new process overwrote such an archive's segments
//! with the log's, silently.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod archive_support;
mod support;

use archive_support::*;
use std::path::{Path, PathBuf};
use support::*;
use wal_log::{Lsn, Options, Wal};
use wal_recorder::WalRecorder;
use wal_recorder::mirror::{DirMirror, MirrorError, WalMirror};

type Rec = WalRecorder<Ev>;

/// A log in `dir` with at least `segments` segments, mirrored into `archive` throughout.
fn mirrored_log(dir: &Path, archive: &Path, segments: usize) {
    let opts = Options::default().segment_size(8 << 10).preallocate(false);
    let (wal, _) = Wal::open(dir, opts).unwrap();
    let rec = Rec::new(std::sync::Arc::new(wal))
        .with_mirror(std::sync::Arc::new(DirMirror::new(archive)));
    let mut i = 0;
    while i == 0 || rec.wal().segments().len() < segments {
        rec.commit_events([set(i, 1), Ev::Blob(vec![4; 300])])
            .unwrap();
        i += 1;
    }
}

/// The failure of one persist of a fresh mirror (a new process) of `log` into `archive`,
/// checking that the archive's files are left exactly as they were.
fn refusal(log: &Path, archive: &Path) -> MirrorError {
    let before = files_and_bytes(archive);
    let err = DirMirror::new(archive).persist_force(log).unwrap_err();
    assert_eq!(
        files_and_bytes(archive),
        before,
        "a refusal changes nothing"
    );
    let text = mirror_error(&err).to_string();
    // Move the typed error out of the io::Error for the caller to match on.
    match err.into_inner().map(|b| b.downcast::<MirrorError>()) {
        Some(Ok(b)) => *b,
        _ => panic!("{text}"),
    }
}

fn files_and_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn an_archive_of_another_log_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (a, b, archive) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("archive"),
    );
    mirrored_log(&a, &archive, 1);
    let (wal, _) = Wal::open(&b, Options::default()).unwrap();
    wal.append(b"x").unwrap();
    let err = refusal(&b, &archive);
    assert!(
        matches!(&err, MirrorError::ForeignLog { log, .. } if *log == wal.log_id()),
        "{err}"
    );
}

/// The log was replaced by an older copy of itself: the archive holds newer segments.
#[test]
fn an_archive_ahead_of_the_log_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (log, old, archive) = (
        root.path().join("log"),
        root.path().join("old"),
        root.path().join("archive"),
    );
    mirrored_log(&log, &archive, 2);
    std::fs::create_dir(&old).unwrap();
    for f in segment_files(&log) {
        std::fs::copy(&f, old.join(f.file_name().unwrap())).unwrap();
    }
    mirrored_log(&log, &archive, 4);
    let err = refusal(&old, &archive);
    assert!(
        matches!(&err, MirrorError::ArchiveAhead { archive_seq, log_seq, .. }
            if archive_seq.0 >= 4 && log_seq.0 == 2),
        "{err}"
    );
}

/// The archive's newest segment names another first LSN than the log's segment of the same
/// number: the histories differ.
#[test]
fn an_archive_segment_with_another_first_lsn_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (log, archive) = (root.path().join("log"), root.path().join("archive"));
    mirrored_log(&log, &archive, 3);
    let newest = segment_files(&archive).pop().unwrap();
    rewrite_header(&newest, |h| h.base_lsn = Lsn(h.base_lsn.0 + 1));
    let err = refusal(&log, &archive);
    assert!(
        matches!(&err, MirrorError::Diverged { offset: 0, expected, found, .. }
            if expected.0 == found.0 + 1),
        "{err}"
    );
}

/// A header that is not a segment's (neither a segment header nor blank).
#[test]
fn an_archive_segment_with_a_damaged_header_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (log, archive) = (root.path().join("log"), root.path().join("archive"));
    mirrored_log(&log, &archive, 2);
    let newest = segment_files(&archive).pop().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[..16].copy_from_slice(&[0xAB; 16]);
    std::fs::write(&newest, bytes).unwrap();
    let err = refusal(&log, &archive);
    assert!(
        matches!(&err, MirrorError::BadHeader { path, .. } if *path == newest),
        "{err}"
    );
}

#[test]
fn the_archive_cannot_be_the_log_directory() {
    let log = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(log.path(), Options::default()).unwrap();
    wal.append(b"x").unwrap();
    let err = DirMirror::new(log.path())
        .persist_force(log.path())
        .unwrap_err();
    assert!(
        matches!(mirror_error(&err), MirrorError::ArchiveIsLogDir { .. }),
        "{err}"
    );
}

/// The archive ends with a sealed segment the log no longer holds; the log's first segment
/// must continue it (same log, next LSN), and the archive must hold it through its seal.
mod archive_ends_before_the_log {
    use super::*;

    /// A mirrored log truncated through the recorder down to one segment, and an archive
    /// whose copy of that segment is gone: the archive ends with the segment before it.
    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let (log, archive) = (root.path().join("log"), root.path().join("archive"));
        {
            let opts = Options::default().segment_size(8 << 10).preallocate(false);
            let (wal, _) = Wal::open(&log, opts).unwrap();
            let rec = Rec::new(std::sync::Arc::new(wal))
                .with_mirror(std::sync::Arc::new(DirMirror::new(&archive)));
            for i in 0..100 {
                rec.commit_events([set(i, 1), Ev::Blob(vec![4; 300])])
                    .unwrap();
            }
            let last = rec.wal().last_lsn();
            assert!(rec.truncate_up_to(last).unwrap() > 1);
        }
        let first = segment_files(&log).remove(0);
        std::fs::remove_file(archive.join(first.file_name().unwrap())).unwrap();
        (root, log, archive)
    }

    #[test]
    fn of_another_log() {
        let (_root, log, archive) = setup();
        let first = segment_files(&log).remove(0);
        rewrite_header(&first, |h| h.log_id = wal_format::LogId::from_u128(7));
        let err = refusal(&log, &archive);
        assert!(matches!(&err, MirrorError::ForeignLog { .. }), "{err}");
    }

    #[test]
    fn not_continued_by_the_log() {
        let (_root, log, archive) = setup();
        let first = segment_files(&log).remove(0);
        rewrite_header(&first, |h| h.base_lsn = Lsn(h.base_lsn.0 + 3));
        let err = refusal(&log, &archive);
        assert!(
            matches!(&err, MirrorError::Diverged { offset: 0, expected, found, .. }
                if found.0 == expected.0 + 3),
            "{err}"
        );
    }

    /// The archive's newest segment is not sealed: its end left the log before it was
    /// copied (a truncation that did not wait for the mirror, in an earlier process).
    #[test]
    fn without_its_seal() {
        let (_root, log, archive) = setup();
        let newest = segment_files(&archive).pop().unwrap();
        let len = std::fs::metadata(&newest).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&newest)
            .unwrap()
            .set_len(len - 30)
            .unwrap();
        let seq = newest
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap();
        let before = files_and_bytes(&archive);
        let err = DirMirror::new(&archive).persist_force(&log).unwrap_err();
        assert_eq!(files_and_bytes(&archive), before);
        assert!(
            matches!(mirror_error(&err), MirrorError::SegmentLost { seq: s, .. } if s.0 == seq),
            "{err}"
        );
    }
}
