//! `DirMirror` in a new process: it resumes where the archive ends and copies nothing the
//! archive already holds (it used to copy every segment again on each restart, so the first
//! commit after opening cost time in proportion to the whole log). Bytes are counted at the
//! file system (a `HookedVfs` over the real one), not timed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use support::*;
use wal_log::inspect::Verdict;
use wal_log::sim::{HookedVfs, OpKind};
use wal_log::{Options, StdVfs, Vfs, Wal};
use wal_recorder::mirror::{DirMirror, MirrorError};
use wal_recorder::{RecorderError, WalRecorder};

type Rec = WalRecorder<Ev>;

/// A log directory and an archive on real files, through a file system that counts the
/// bytes written into the archive.
struct Setup {
    _root: tempfile::TempDir,
    log: PathBuf,
    archive: PathBuf,
    archived_bytes: Arc<AtomicU64>,
    vfs: Arc<dyn Vfs>,
}

impl Setup {
    fn new() -> Setup {
        let root = tempfile::tempdir().unwrap();
        let log = root.path().join("log");
        let archive = root.path().join("archive");
        let archived_bytes = Arc::new(AtomicU64::new(0));
        let (counter, under) = (archived_bytes.clone(), archive.clone());
        let vfs = HookedVfs::new(Arc::new(StdVfs), move |call| {
            if call.op == OpKind::Write && call.path.starts_with(&under) {
                counter.fetch_add(call.len, Ordering::SeqCst);
            }
            Ok(())
        });
        Setup {
            _root: root,
            log,
            archive,
            archived_bytes,
            vfs: Arc::new(vfs),
        }
    }

    /// "A process": the log opened, with a mirror into the archive.
    fn open(&self) -> (Rec, Arc<DirMirror>) {
        let opts = Options::default()
            .vfs(self.vfs.clone())
            .segment_size(16 << 10)
            .preallocate(false);
        let (wal, _) = Wal::open(&self.log, opts).unwrap();
        let mirror = Arc::new(DirMirror::with_vfs(self.vfs.clone(), &self.archive));
        (Rec::new(Arc::new(wal)).with_mirror(mirror.clone()), mirror)
    }

    fn archived(&self) -> u64 {
        self.archived_bytes.load(Ordering::SeqCst)
    }

    fn newest_archived(&self) -> PathBuf {
        let mut names = wal_segments(&self.archive);
        self.archive.join(names.pop().unwrap())
    }
}

fn wal_segments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    names
}

fn tx(i: u64) -> Vec<Ev> {
    vec![set(i, 7), Ev::Blob(vec![i as u8; 300])]
}

/// Commits `from..to`, each flushed (so mirrored).
fn commit_range(rec: &Rec, committed: &mut Vec<Vec<Ev>>, from: u64, to: u64) {
    for i in from..to {
        rec.commit_events(tx(i)).unwrap();
        committed.push(tx(i));
    }
}

/// The watermark frame a clean close writes after the process's last persist: the next
/// process's first persist copies it along with what that process appended.
const CLOSE_WATERMARK: u64 = 20;

fn log_bytes(rec: &Rec) -> u64 {
    rec.wal().segments().iter().map(|s| s.bytes).sum()
}

/// The archive, as `walctl verify` sees it, and what it recovers (on a copy).
fn check_archive(archive: &Path, committed: &[Vec<Ev>]) {
    let ins = wal_log::inspect::inspect(&StdVfs, archive, &mut |_, _| {}).unwrap();
    assert_eq!(ins.verdict(), Verdict::Sound);
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(archive).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
    }
    let (wal, _) = Wal::open(copy.path(), Options::default().create_if_missing(false)).unwrap();
    let got: Vec<Vec<Ev>> = transactions(&wal).into_iter().map(|(_, e)| e).collect();
    assert_eq!(got, committed);
}

#[test]
fn a_restart_copies_nothing_the_archive_already_holds() {
    let s = Setup::new();
    let mut committed = Vec::new();
    {
        let (rec, _) = s.open();
        commit_range(&rec, &mut committed, 0, 300);
        assert!(rec.wal().segments().len() > 4);
    }
    let first_process = s.archived();
    assert!(first_process > 50 << 10);
    let (rec, mirror) = s.open();
    let before = (s.archived(), log_bytes(&rec));
    commit_range(&rec, &mut committed, 300, 301);
    let new_in_log = log_bytes(&rec) - before.1;
    assert_eq!(
        s.archived() - before.0,
        new_in_log + CLOSE_WATERMARK,
        "the first persist of a new process wrote more than what the log gained"
    );
    assert_eq!(mirror.stats().bytes_written, new_in_log + CLOSE_WATERMARK);
    assert_eq!(mirror.stats().segments_created, 0);
    drop(rec);
    check_archive(&s.archive, &committed);
}

/// A crash in the middle of a copy leaves the archive's newest segment ending inside a frame
/// (bytes the log has too): the next process cuts them and copies the frame again, nothing
/// before it.
#[test]
fn a_restart_after_a_torn_copy_copies_only_what_is_missing() {
    let s = Setup::new();
    let mut committed = Vec::new();
    let mut n = 0;
    {
        let (rec, _) = s.open();
        // Until the newest segment holds a few frames.
        while n < 40 || rec.wal().segments().last().unwrap().bytes < 1000 {
            commit_range(&rec, &mut committed, n, n + 1);
            n += 1;
        }
    }
    let newest = s.newest_archived();
    let len = std::fs::metadata(&newest).unwrap().len();
    let torn = 150; // the last frame is 20 + about 320 bytes
    std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap()
        .set_len(len - torn)
        .unwrap();
    let (rec, _) = s.open();
    let before = (s.archived(), log_bytes(&rec));
    commit_range(&rec, &mut committed, n, n + 1);
    let new_in_log = log_bytes(&rec) - before.1;
    let last_frame = {
        let t = tx(n - 1);
        // The frame of the last transaction of the first process, whole.
        let body: usize = t.iter().map(bincode_len).sum();
        (20 + body) as u64
    };
    assert_eq!(
        s.archived() - before.0,
        new_in_log + last_frame + CLOSE_WATERMARK
    );
    drop(rec);
    check_archive(&s.archive, &committed);
    let aside: Vec<_> = std::fs::read_dir(&s.archive)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".unmatched-")
        })
        .collect();
    assert!(
        aside.is_empty(),
        "a torn copy of the log's own bytes is not kept aside"
    );
}

fn bincode_len(e: &Ev) -> usize {
    let mut out = Vec::new();
    wal_format::Codec::encode(&wal_format::Bincode, e, &mut out).unwrap();
    out.len()
}

/// The archive's newest segment is sealed and the log no longer holds it (the process died
/// after finishing that segment's copy and before creating the next; the log truncated it
/// since): the next process goes on with the log's first segment.
#[test]
fn a_restart_goes_on_after_a_sealed_segment_the_log_no_longer_holds() {
    let s = Setup::new();
    let mut committed = Vec::new();
    {
        let (rec, _) = s.open();
        commit_range(&rec, &mut committed, 0, 200);
        let last = rec.wal().last_lsn();
        assert!(rec.truncate_up_to(last).unwrap() > 2);
    }
    let names = wal_segments(&s.archive);
    let log_first = wal_segments(&s.log).remove(0);
    assert_eq!(&log_first, names.last().unwrap());
    // As if the process had died before creating the archive's copy of the log's first.
    std::fs::remove_file(s.archive.join(&log_first)).unwrap();
    let (rec, mirror) = s.open();
    let before = (s.archived(), log_bytes(&rec));
    commit_range(&rec, &mut committed, 200, 201);
    assert_eq!(mirror.stats().segments_created, 1);
    assert_eq!(
        s.archived() - before.0,
        log_bytes(&rec),
        "the log's only segment, once"
    );
    assert!(before.1 < log_bytes(&rec));
    drop(rec);
    check_archive(&s.archive, &committed);
}

/// The archive's newest segment is archived through its seal, and the log also holds the
/// next one (the process died between the two): the next process goes on with it.
#[test]
fn a_restart_goes_on_after_a_sealed_segment_the_log_still_holds() {
    let s = Setup::new();
    let mut committed = Vec::new();
    {
        let (rec, _) = s.open();
        commit_range(&rec, &mut committed, 0, 200);
    }
    let newest = s.newest_archived();
    std::fs::remove_file(&newest).unwrap();
    let (rec, mirror) = s.open();
    let before = s.archived();
    commit_range(&rec, &mut committed, 200, 201);
    assert_eq!(mirror.stats().segments_created, 1);
    let newest_in_log = rec.wal().segments().last().unwrap().bytes;
    assert_eq!(
        s.archived() - before,
        newest_in_log,
        "the newest segment, once"
    );
    drop(rec);
    check_archive(&s.archive, &committed);
}

/// When the log no longer holds segments the archive never held whole, the new process's
/// mirror says so instead of archiving around the hole.
#[test]
fn a_restart_refuses_an_archive_the_log_has_left_behind() {
    let s = Setup::new();
    let mut committed = Vec::new();
    {
        let (rec, _) = s.open();
        commit_range(&rec, &mut committed, 0, 200);
        let last = rec.wal().last_lsn();
        assert!(rec.truncate_up_to(last).unwrap() > 2);
    }
    let mut names = wal_segments(&s.archive);
    // The archive lost its two newest segments (restored from an older backup, say).
    for n in names.split_off(names.len() - 2) {
        std::fs::remove_file(s.archive.join(n)).unwrap();
    }
    let (rec, _) = s.open();
    let err = rec.commit_events(tx(500)).unwrap_err();
    let RecorderError::Mirror(io) = &err else {
        panic!("{err:?}")
    };
    let inner = io.get_ref().and_then(|e| e.downcast_ref::<MirrorError>());
    assert!(
        matches!(inner, Some(MirrorError::SegmentLost { .. })),
        "{err}"
    );
    assert!(rec.is_poisoned());
}
