//! A `DirMirror` never falls silently behind its log. A segment that leaves the log before
//! the archive holds it whole is finished from the file the mirror holds open when it can,
//! and is otherwise an error the engine sees (the mirror used to forget it: every commit
//! returned `Ok` while the archive became unrecoverable, "segment ends without a seal frame,
//! but a newer segment exists"). The same for a sealed segment of the log that does not copy
//! through its seal, and for a frame that does not carry the next LSN.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod archive_support;
mod support;

use archive_support::*;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use support::*;
use wal_log::inspect::Verdict;
use wal_log::sim::SimVfs;
use wal_log::{Lsn, Options, SyncPolicy, Wal};
use wal_recorder::WalRecorder;
use wal_recorder::mirror::{DirMirror, MirrorError, WalMirror};

type Rec = WalRecorder<Ev>;

fn small_segments() -> Options {
    Options::default().segment_size(8 << 10).preallocate(false)
}

fn commit_until_segments(rec: &Rec, committed: &mut Vec<Vec<Ev>>, segments: usize) -> Lsn {
    let mut i = committed.len() as u64;
    while rec.wal().segments().len() < segments {
        let evs = vec![set(i, 1), Ev::Blob(vec![3; 300])];
        rec.commit_events(evs.clone()).unwrap();
        committed.push(evs);
        i += 1;
    }
    rec.wal().last_lsn()
}

/// The experiment in small: a throttled mirror, and the log truncated without
/// waiting for it. The next persist fails with `SegmentLost` and poisons the recorder; the
/// archive stays a sound log up to where it ends.
#[test]
fn a_segment_truncated_behind_the_mirror_is_an_error_not_a_hole() {
    let log = tempfile::tempdir().unwrap();
    let archive = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(log.path(), small_segments()).unwrap();
    let wal = Arc::new(wal);
    let mirror = DirMirror::new(archive.path()).min_interval(Duration::from_secs(3600));
    let rec = Rec::new(wal.clone()).with_mirror(Arc::new(mirror));
    let mut committed = Vec::new();
    let last = commit_until_segments(&rec, &mut committed, 6); // persisted once, at the start
    // A truncation that does not go through the recorder (an ordinary checkpoint).
    assert_eq!(wal.truncate_prefix(last).unwrap(), 5);
    let err = rec.force_fsync().unwrap_err();
    let MirrorError::SegmentLost {
        seq,
        archived_through,
        ..
    } = recorder_mirror_error(&err)
    else {
        panic!("{err}")
    };
    // Segment 1 was being copied: finished from its open file. Segment 2 was never seen.
    assert_eq!(seq.0, 2);
    assert!(rec.is_poisoned());
    assert_eq!(verdict(archive.path()), Verdict::Sound);
    let got = recovered(archive.path());
    assert_eq!(got[..], committed[..got.len()]);
    assert_eq!(
        Lsn(got.len() as u64 + 1),
        *archived_through,
        "through segment 1's seal (one transaction per LSN here)"
    );
}

/// A segment removed from the log while the mirror was copying it (its file still open) is
/// finished from that file: nothing is lost and nothing fails.
#[test]
fn a_segment_removed_while_being_copied_is_finished_from_its_open_file() {
    let log = tempfile::tempdir().unwrap();
    let archive = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(log.path(), small_segments()).unwrap();
    let wal = Arc::new(wal);
    let rec = Rec::new(wal.clone()); // the mirror is driven by hand
    let mirror = DirMirror::new(archive.path());
    let mut committed = Vec::new();
    rec.commit_events([set(0, 0)]).unwrap();
    committed.push(vec![set(0, 0)]);
    mirror.persist_force(wal.dir()).unwrap(); // segment 1 is being copied
    commit_until_segments(&rec, &mut committed, 3);
    let first = wal.segments()[0].clone();
    assert_eq!(wal.truncate_prefix(first.last_lsn).unwrap(), 1);
    mirror.persist_force(wal.dir()).unwrap();
    assert_eq!(verdict(archive.path()), Verdict::Sound);
    assert_eq!(recovered(archive.path()), committed);
    assert_eq!(mirror.stats().open_segments, 1, "only the newest is open");
}

/// A segment with a successor is sealed and durable: when its frames stop verifying before
/// the seal (damage, or a file reused under the mirror), the mirror fails instead of
/// archiving the part before the damage and going on with the next segment.
#[test]
fn a_sealed_segment_that_does_not_copy_through_its_seal_is_an_error() {
    let vfs = SimVfs::new();
    let opts = sim_opts(&vfs, SyncPolicy::Always).segment_size(4 << 10);
    let wal = Arc::new(Wal::open(DIR, opts).unwrap().0);
    let rec = Rec::new(wal.clone());
    while wal.segments().len() < 3 {
        let n = wal.last_lsn().0;
        rec.commit_events([set(n, 1), Ev::Blob(vec![5; 200])])
            .unwrap();
    }
    let seg = Path::new(DIR).join(wal_log::layout::segment_file_name(wal.segments()[0].seq));
    vfs.poke(&seg, 1000, &[0xFF; 4]);
    let mirror = DirMirror::with_vfs(Arc::new(vfs.clone()), "/arch");
    let err = mirror.persist_force(wal.dir()).unwrap_err();
    assert!(
        matches!(mirror_error(&err), MirrorError::SegmentIncomplete { offset, .. } if *offset < 1000),
        "{err}"
    );
}

/// A frame that verifies under the segment's seed but does not carry the next LSN is not
/// copied: the mirror fails.
#[test]
fn a_frame_that_does_not_carry_the_next_lsn_is_an_error() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always));
    rec.commit_events([set(1, 1)]).unwrap();
    let info = rec.wal().segments()[0].clone();
    let seg = Path::new(DIR).join(wal_log::layout::segment_file_name(info.seq));
    let bytes = vfs.read_file(&seg).unwrap();
    let seed = wal_format::SegmentHeader::decode(&bytes[..wal_format::header::SEGMENT_HEADER_LEN])
        .unwrap()
        .seed();
    let mut frame = Vec::new();
    let wrong = Lsn(info.last_lsn.0 + 5);
    wal_format::frame::encode_frame(
        &mut frame,
        seed,
        wal_format::FrameKind::Tx,
        0,
        wrong,
        &[1; 50],
    )
    .unwrap();
    vfs.poke(&seg, info.bytes, &frame);
    let mirror = DirMirror::with_vfs(Arc::new(vfs.clone()), "/arch");
    let err = mirror.persist_force(Path::new(DIR)).unwrap_err();
    assert!(
        matches!(
            mirror_error(&err),
            MirrorError::Diverged { offset, expected, found, .. }
                if *offset == info.bytes && *expected == info.last_lsn.next() && *found == wrong
        ),
        "{err}"
    );
}
