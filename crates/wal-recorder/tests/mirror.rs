//! `DirMirror`: the archive alone recovers the log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use support::*;
use wal_log::sim::SimVfs;
use wal_log::{Lsn, Options, SyncPolicy, Wal};
use wal_recorder::WalRecorder;
use wal_recorder::mirror::{DirMirror, WalMirror};

type Rec = WalRecorder<Ev>;

/// Copies the plain files of `from` into a fresh directory.
fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.path().join(entry.file_name())).unwrap();
        }
    }
    to
}

/// Opens the log in `dir` (real files) and decodes every transaction.
fn replay_dir(dir: &Path) -> Vec<Vec<Ev>> {
    let (wal, report) = Wal::open(dir, Options::default().create_if_missing(false)).unwrap();
    assert!(report.moved_aside.is_empty(), "{report:?}");
    transactions(&wal).into_iter().map(|(_, evs)| evs).collect()
}

/// A mix of small transactions and ones with frames larger than the mirror's read chunk.
fn workload(i: u64) -> Vec<Ev> {
    if i % 17 == 5 {
        vec![Ev::Blob(vec![i as u8; 600 << 10]), set(i, 0)]
    } else {
        vec![set(i, i as i64), Ev::Delete(i / 2)]
    }
}

fn segment_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".wal"))
        .collect();
    names.sort();
    names
}

#[test]
fn the_archive_alone_recovers_the_log() {
    let log = tempfile::tempdir().unwrap();
    let archive = tempfile::tempdir().unwrap();
    let archive_dir = archive.path().join("archive");
    let opts = Options::default().segment_size(256 << 10);
    let (wal, _) = Wal::open(log.path(), opts).unwrap();
    let rec = Rec::new(Arc::new(wal)).with_mirror(Arc::new(DirMirror::new(&archive_dir)));
    let mut committed = Vec::new();
    for i in 0..60 {
        rec.commit_events(workload(i)).unwrap();
        committed.push(workload(i));
        if i % 20 == 19 {
            // At every point the archive is a complete log of what was flushed.
            let copy = copy_dir(&archive_dir);
            assert_eq!(replay_dir(copy.path()), committed, "after {i}");
        }
    }
    assert!(rec.wal().stats().rotations >= 3);
    assert_eq!(segment_names(&archive_dir), segment_names(log.path()));
    // The archive holds frames, not the active segment's preallocated zeros.
    let archived: u64 = segment_names(&archive_dir)
        .iter()
        .map(|n| std::fs::metadata(archive_dir.join(n)).unwrap().len())
        .sum();
    let frames: u64 = rec.wal().segments().iter().map(|s| s.bytes).sum();
    assert_eq!(archived, frames);
    drop(rec);
    assert_eq!(replay_dir(copy_dir(&archive_dir).path()), committed);
}

/// Commits `n` transactions of about 230 bytes; returns the last LSN.
fn commit_small(rec: &Rec, committed: &mut Vec<Vec<Ev>>, from: u64, n: u64) -> Lsn {
    let mut last = Lsn::ZERO;
    for i in from..from + n {
        let evs = vec![set(i, 1), Ev::Blob(vec![1; 200])];
        last = rec.commit_events(evs.clone()).unwrap().lsn().unwrap();
        committed.push(evs);
    }
    last
}

/// With a mirror, `truncate_up_to` removes segments (it used to remove none, so a mirrored
/// log grew forever), and the archive keeps what left the log: it alone still recovers
/// every transaction.
#[test]
fn with_a_mirror_truncation_bounds_the_log_and_the_archive_keeps_the_history() {
    let log = tempfile::tempdir().unwrap();
    let archive = tempfile::tempdir().unwrap();
    let opts = Options::default().segment_size(8 << 10).preallocate(false);
    let (wal, _) = Wal::open(log.path(), opts).unwrap();
    let wal = Arc::new(wal);
    let rec = Rec::new(wal.clone()).with_mirror(Arc::new(DirMirror::new(archive.path())));
    let mut committed = Vec::new();
    let last = commit_small(&rec, &mut committed, 0, 200);
    let segments = wal.segments().len();
    assert!(segments > 3);
    rec.checkpoint_marker(last).unwrap();
    let removed = rec.truncate_up_to(last).unwrap();
    assert_eq!(removed, segments - 1, "every sealed segment was archived");
    assert_eq!(wal.segments().len(), 1);
    commit_small(&rec, &mut committed, 200, 20);
    assert!(segment_names(archive.path()).len() > wal.segments().len());
    assert_eq!(replay_dir(copy_dir(archive.path()).path()), committed);
}

/// A mirror that can be held back: `persist` and `persist_force` do nothing while `hold` is
/// set (a mirror whose destination is slow or away), so its position lags the log.
#[derive(Debug)]
struct HeldBack {
    inner: DirMirror,
    hold: std::sync::atomic::AtomicBool,
}

impl WalMirror for HeldBack {
    fn persist(&self, wal_dir: &Path) -> std::io::Result<()> {
        if self.hold.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        self.inner.persist(wal_dir)
    }
    fn persist_force(&self, wal_dir: &Path) -> std::io::Result<()> {
        self.persist(wal_dir)
    }
    fn position(&self) -> Option<wal_recorder::mirror::MirrorPosition> {
        self.inner.position()
    }
}

/// Truncation goes only up to what the mirror has durably copied, even when asked for more,
/// like a replication slot: the segment holding the mirror's position and every later one
/// stay in the log, so the archive plus the log still hold every transaction.
#[test]
fn truncation_stops_at_what_the_mirror_has_copied() {
    let log = tempfile::tempdir().unwrap();
    let archive = tempfile::tempdir().unwrap();
    let opts = Options::default().segment_size(8 << 10).preallocate(false);
    let (wal, _) = Wal::open(log.path(), opts).unwrap();
    let wal = Arc::new(wal);
    let mirror = Arc::new(HeldBack {
        inner: DirMirror::new(archive.path()),
        hold: std::sync::atomic::AtomicBool::new(false),
    });
    let rec = Rec::new(wal.clone()).with_mirror(mirror.clone());
    let mut committed = Vec::new();
    commit_small(&rec, &mut committed, 0, 100);
    let copied = mirror.position().unwrap();
    assert_eq!(copied.lsn, wal.last_lsn());
    mirror.hold.store(true, std::sync::atomic::Ordering::SeqCst);
    let last = commit_small(&rec, &mut committed, 100, 100);
    let before = wal.segments();
    let removed = rec.truncate_up_to(last).unwrap();
    assert!(removed > 0);
    let kept = wal.segments();
    assert_eq!(kept.len(), before.len() - removed);
    // Every segment removed lies wholly within the copy; the one the copy ends in is kept.
    assert!(before[..removed].iter().all(|s| s.last_lsn <= copied.lsn));
    assert_eq!(kept[0].seq, copied.segment);
    assert!(kept[0].base_lsn <= copied.lsn.next());
    // Once the mirror catches up, the rest can go.
    mirror
        .hold
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert!(rec.truncate_up_to(last).unwrap() > 0);
    assert_eq!(replay_dir(copy_dir(archive.path()).path()), committed);
}

/// `stats()` shows where the mirror's durable copy ends and how far behind the log it is.
#[test]
fn stats_show_the_mirrors_position_and_lag() {
    let log = tempfile::tempdir().unwrap();
    let archive = tempfile::tempdir().unwrap();
    let opts = Options::default().segment_size(8 << 10).preallocate(false);
    let (wal, _) = Wal::open(log.path(), opts).unwrap();
    let wal = Arc::new(wal);
    let mirror = Arc::new(DirMirror::new(archive.path()).min_interval(Duration::from_secs(3600)));
    let rec = Rec::new(wal.clone()).with_mirror(mirror.clone());
    assert_eq!(
        rec.stats().mirror,
        None,
        "no position before the first persist"
    );
    let first = rec.commit_events([set(1, 1)]).unwrap().lsn().unwrap(); // persists
    let lag = rec.stats().mirror.unwrap();
    assert_eq!(lag.position.lsn, first);
    assert_eq!((lag.lsns_behind, lag.bytes_behind), (0, 0));
    let mut committed = Vec::new();
    let last = commit_small(&rec, &mut committed, 2, 100); // throttled: not copied
    let stats = rec.stats();
    let lag = stats.mirror.unwrap();
    assert_eq!(lag.position.lsn, first);
    assert_eq!(lag.lsns_behind, last.0 - first.0);
    let log_bytes: u64 = wal.segments().iter().map(|s| s.bytes).sum();
    let archived: u64 = segment_names(archive.path())
        .iter()
        .map(|n| std::fs::metadata(archive.path().join(n)).unwrap().len())
        .sum();
    assert_eq!(lag.bytes_behind, log_bytes - archived);
    assert_eq!(stats.wal.last_lsn, last);
    assert_eq!(mirror.stats().position, Some(lag.position));
    rec.force_fsync().unwrap();
    let lag = rec.stats().mirror.unwrap();
    assert_eq!(lag.position.lsn, last);
    assert_eq!(lag.position.segment, wal.segments().last().unwrap().seq);
    assert_eq!((lag.lsns_behind, lag.bytes_behind), (0, 0));
}

#[test]
fn a_new_process_brings_an_existing_archive_back_in_line() {
    let log = tempfile::tempdir().unwrap();
    let archive = tempfile::tempdir().unwrap();
    let mut committed = Vec::new();
    for round in 0..3u64 {
        let (wal, _) = Wal::open(log.path(), Options::default().segment_size(64 << 10)).unwrap();
        let rec = Rec::new(Arc::new(wal)).with_mirror(Arc::new(DirMirror::new(archive.path())));
        for i in 0..30 {
            rec.commit_events([set(round * 100 + i, 0)]).unwrap();
            committed.push(vec![set(round * 100 + i, 0)]);
        }
    }
    // Junk past the end of an archived segment (as a copy ahead of a log that later cut a
    // torn tail would leave) is cut by the next process's first persist.
    let last = segment_names(archive.path()).pop().unwrap();
    let path = archive.path().join(&last);
    let len = std::fs::metadata(&path).unwrap().len();
    let mut junk = std::fs::read(&path).unwrap();
    junk.extend_from_slice(&[0xAB; 100]);
    std::fs::write(&path, &junk).unwrap();
    let (wal, _) = Wal::open(log.path(), Options::default().segment_size(64 << 10)).unwrap();
    let mirror = DirMirror::new(archive.path());
    mirror.persist(wal.dir()).unwrap();
    // Cut back to the log's bytes, then brought up to the log's end: the 20-byte watermark
    // the last round's clean close wrote after its last persist.
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len + 20);
    // The bytes cut were not the log's: they are kept beside the segment, not deleted.
    let aside = archive.path().join(format!("{last}.unmatched-{len}"));
    assert_eq!(std::fs::read(aside).unwrap(), [0xAB; 100]);
    drop(wal);
    assert_eq!(replay_dir(copy_dir(archive.path()).path()), committed);
}

#[test]
fn persist_is_throttled_and_persist_force_is_not() {
    let vfs = SimVfs::new();
    let mirror = DirMirror::with_vfs(Arc::new(vfs.clone()), "/archive")
        .min_interval(Duration::from_secs(3600));
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always)).with_mirror(Arc::new(mirror));
    rec.commit_events([set(1, 1)]).unwrap(); // the first persist copies
    assert_eq!(
        replay_at(&vfs.crash(&full_image()), "/archive"),
        [vec![set(1, 1)]]
    );
    rec.commit_events([set(2, 2)]).unwrap(); // throttled
    assert_eq!(
        replay_at(&vfs.crash(&full_image()), "/archive"),
        [vec![set(1, 1)]]
    );
    rec.force_fsync().unwrap();
    assert_eq!(
        replay_at(&vfs.crash(&full_image()), "/archive"),
        [vec![set(1, 1)], vec![set(2, 2)]]
    );
}

fn full_image() -> wal_log::sim::CrashImage {
    wal_log::sim::CrashImage {
        data: wal_log::sim::DataLoss::AllWritten,
        dirs: wal_log::sim::DirLoss::AllKept,
    }
}

#[test]
fn the_archive_is_durable_when_persist_returns() {
    let vfs = SimVfs::new();
    let mirror = DirMirror::with_vfs(Arc::new(vfs.clone()), "/backup/archive");
    let opts = sim_opts(&vfs, SyncPolicy::Never).segment_size(8 << 10);
    let (wal, _) = Wal::open(DIR, opts).unwrap();
    let rec = Rec::new(Arc::new(wal)).with_mirror(Arc::new(mirror));
    let mut committed = Vec::new();
    for i in 0..100 {
        rec.commit_events([set(i, 3), Ev::Blob(vec![2; 100])])
            .unwrap();
        committed.push(vec![set(i, 3), Ev::Blob(vec![2; 100])]);
    }
    // Committed but not flushed: not in the archive.
    rec.arm().unwrap();
    rec.record(set(1000, 0));
    rec.commit().unwrap();
    // Power loss: only what was synced survives, the archive included.
    let image = durable_image(&vfs);
    assert_eq!(replay_at(&image, "/backup/archive"), committed);
}

#[test]
fn a_segment_being_written_is_copied_only_up_to_its_last_whole_frame() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always));
    rec.commit_events([set(1, 1)]).unwrap();
    // A frame whose bytes have only partly reached the file, after the last whole frame.
    let info = rec.wal().segments()[0].clone();
    let seg = Path::new(DIR).join(wal_log::layout::segment_file_name(info.seq));
    let bytes = vfs.read_file(&seg).unwrap();
    let seed = wal_format::SegmentHeader::decode(&bytes[..wal_format::header::SEGMENT_HEADER_LEN])
        .unwrap()
        .seed();
    let end = info.bytes;
    let mut partial = Vec::new();
    wal_format::frame::encode_frame(
        &mut partial,
        seed,
        wal_format::FrameKind::Tx,
        0,
        info.last_lsn.next(),
        &[1; 50],
    )
    .unwrap();
    vfs.poke(&seg, end, &partial[..30]);
    let mirror = DirMirror::with_vfs(Arc::new(vfs.clone()), "/archive");
    mirror.persist(Path::new(DIR)).unwrap();
    let archived = vfs
        .read_file(&Path::new("/archive").join(seg.file_name().unwrap()))
        .unwrap();
    assert_eq!(archived.len() as u64, end);
    assert_eq!(archived, vfs.read_file(&seg).unwrap()[..end as usize]);
}
