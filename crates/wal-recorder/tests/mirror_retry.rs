//! `DirMirror` persists that fail part-way: the next persist must start over from the same
//! point, not from where the failed one got to. Regression tests for defects a review found.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use support::*;
use wal_log::SyncPolicy;
use wal_log::sim::{CrashImage, DataLoss, DirLoss, Fault, OpKind, SimVfs};
use wal_recorder::WalRecorder;
use wal_recorder::mirror::{DirMirror, WalMirror};

type Rec = WalRecorder<Ev>;

/// An archive left by an earlier process is ahead of the log (the mirror copied a frame that
/// was written but not yet synced; a power loss then cut it from the log). The new process's
/// first persist must cut the archived copy back to the log's length. When that first persist
/// fails after it wrote the header (here: the `set_len`), the retried persist must still treat
/// the segment as "first" and cut it; otherwise the archive keeps a transaction the log does not
/// have, at an LSN the log is about to reuse. (It did, before `copy_frames` recorded its
/// progress only on success.)
#[test]
fn a_retried_first_persist_still_cuts_an_archive_that_is_ahead_of_the_log() {
    let vfs = SimVfs::new();
    // Process 1: e1 committed and synced; e2 written to the OS only, but copied by the mirror.
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Never));
    rec.commit_events([set(1, 1)]).unwrap(); // commit + flush (fsync)
    rec.arm().unwrap();
    rec.record(set(2, 2));
    rec.commit().unwrap(); // written, not synced
    let mirror = DirMirror::with_vfs(Arc::new(vfs.clone()), "/arch");
    mirror.persist_force(Path::new(DIR)).unwrap(); // the archive is durable: e1, e2
    // Power loss: the log keeps only what it synced (e1); the archive keeps e1, e2.
    let image = vfs.crash(&CrashImage {
        data: DataLoss::DurableOnly,
        dirs: DirLoss::UnsyncedLost,
    });
    drop(rec);
    assert_eq!(
        replay_at(&image, "/arch"),
        [vec![set(1, 1)], vec![set(2, 2)]]
    );

    // Process 2 on the image: the log recovers e1 only.
    let wal = open_sim(&image, SyncPolicy::Always);
    assert_eq!(transactions(&wal).len(), 1);
    let mirror = DirMirror::with_vfs(Arc::new(image.clone()), "/arch");
    // The first persist fails once, at its set_len (after writing header and frames).
    image.fail_nth(
        OpKind::SetLen,
        image.op_count(OpKind::SetLen) + 1,
        Fault::Eio,
    );
    assert!(mirror.persist_force(wal.dir()).is_err());
    // A retry succeeds and claims the archive holds what the log holds.
    mirror.persist_force(wal.dir()).unwrap();
    let log_now: Vec<Vec<Ev>> = transactions(&wal).into_iter().map(|(_, e)| e).collect();
    drop(wal);
    let full = image.crash(&CrashImage {
        data: DataLoss::AllWritten,
        dirs: DirLoss::AllKept,
    });
    assert_eq!(
        replay_at(&full, "/arch"),
        log_now,
        "after a successful persist the archive recovers a transaction the log does not hold"
    );
}

/// Control: without the fault, the first persist cuts the archive back in line.
#[test]
fn control_first_persist_cuts_an_archive_that_is_ahead_of_the_log() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Never));
    rec.commit_events([set(1, 1)]).unwrap();
    rec.arm().unwrap();
    rec.record(set(2, 2));
    rec.commit().unwrap();
    let mirror = DirMirror::with_vfs(Arc::new(vfs.clone()), "/arch");
    mirror.persist_force(Path::new(DIR)).unwrap();
    let image = vfs.crash(&CrashImage {
        data: DataLoss::DurableOnly,
        dirs: DirLoss::UnsyncedLost,
    });
    drop(rec);
    let wal = open_sim(&image, SyncPolicy::Always);
    let mirror = DirMirror::with_vfs(Arc::new(image.clone()), "/arch");
    mirror.persist_force(wal.dir()).unwrap();
    drop(wal);
    let full = image.crash(&CrashImage {
        data: DataLoss::AllWritten,
        dirs: DirLoss::AllKept,
    });
    assert_eq!(replay_at(&full, "/arch"), [vec![set(1, 1)]]);
}

/// A persist that fails while copying a sealed segment's frames (after it saw the seal) must
/// not leave the segment marked as done: the retry copies it, and the archive alone recovers
/// every transaction of the log.
#[test]
fn a_retried_persist_copies_a_sealed_segment_a_failed_one_did_not() {
    let vfs = SimVfs::new();
    let opts = sim_opts(&vfs, SyncPolicy::Always).segment_size(4 << 10);
    let wal = Arc::new(wal_log::Wal::open(DIR, opts).unwrap().0);
    let rec = Rec::new(wal.clone());
    while wal.segments().len() < 2 {
        let n = wal.last_lsn().0;
        rec.commit_events([set(n, n as i64)]).unwrap();
    }
    let mirror = DirMirror::with_vfs(Arc::new(vfs.clone()), "/arch");
    // The first segment's header is the first write; its frames (up to the seal) the second.
    vfs.fail_nth(OpKind::Write, vfs.op_count(OpKind::Write) + 2, Fault::Eio);
    assert!(mirror.persist_force(wal.dir()).is_err());
    mirror.persist_force(wal.dir()).unwrap();
    let log_now: Vec<Vec<Ev>> = transactions(&wal).into_iter().map(|(_, e)| e).collect();
    assert!(log_now.len() > 1);
    drop(rec);
    drop(wal);
    let durable = vfs.crash(&CrashImage {
        data: DataLoss::DurableOnly,
        dirs: DirLoss::UnsyncedLost,
    });
    assert_eq!(replay_at(&durable, "/arch"), log_now);
}
