//! Durability at the edges of the recorder: a flush after queued commits, poisoning by the log
//! itself, and the mirror's archive directory after a failed persist. Regressions for defects
//! a review found (each test failed before its fix), plus a control.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use support::*;
use wal_log::SyncPolicy;
use wal_log::sim::{CrashImage, DataLoss, DirLoss, OpKind, SimVfs};
use wal_recorder::mirror::{DirMirror, WalMirror};
use wal_recorder::{RecorderError, WalRecorder};

type Rec = WalRecorder<Ev>;

/// `flush` makes every committed transaction durable, including one left queued under
/// `SyncPolicy::Always` by `commit_deferred` whose ticket was not waited (it used to return Ok
/// with that one still queued, and a power loss right after lost it). (Written with the
/// removed `commit_queued`, which queued the same way.)
#[test]
fn flush_after_a_queued_commit_under_always_makes_it_durable() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always));
    let tx = rec.begin().unwrap();
    tx.record(set(1, 1));
    let ticket = tx.commit_deferred().unwrap();
    let lsn = ticket.lsn().unwrap();
    drop(ticket); // not waited: the transaction stays queued in the log
    rec.flush().unwrap(); // "makes committed transactions durable"
    let durable = rec.wal().durable_lsn();
    let image = vfs.crash(&CrashImage {
        data: DataLoss::DurableOnly,
        dirs: DirLoss::UnsyncedLost,
    });
    assert!(
        durable >= lsn,
        "flush returned Ok but the committed transaction at {lsn} is not durable (durable_lsn {durable})"
    );
    assert_eq!(replay(&image), [vec![set(1, 1)]]);
}

/// Once the log is poisoned (by another user's failed fsync, say), `try_record` refuses with
/// `Poisoned` and records nothing, as documented (it used to keep buffering).
#[test]
fn try_record_refuses_once_the_log_is_poisoned() {
    let vfs = SimVfs::new();
    let wal = open_sim(&vfs, SyncPolicy::Never);
    let rec = Rec::new(wal.clone());
    rec.arm().unwrap();
    rec.record(set(1, 1));
    vfs.fail_nth(
        OpKind::SyncData,
        vfs.op_count(OpKind::SyncData) + 1,
        wal_log::sim::Fault::Eio,
    );
    wal.append(b"x").unwrap();
    assert!(wal.sync().is_err());
    assert!(wal.poisoned_reason().is_some());
    let before = rec.recorded_events();
    let r = rec.try_record(&set(2, 2));
    let after = rec.recorded_events();
    assert!(
        matches!(r, Err(RecorderError::Poisoned { .. })),
        "try_record on a poisoned log returned {r:?} (events buffered: {before} -> {after})"
    );
}

/// A persist that created an archive file and then failed (one transient write error) leaves
/// the directory entry to the next persist, which fsyncs the directory before returning Ok
/// (it used not to: a power loss then lost the archived segment).
#[test]
fn a_retried_persist_makes_an_archive_file_created_by_a_failed_one_durable() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always));
    rec.commit_events([set(1, 1)]).unwrap();
    let mirror = DirMirror::with_vfs(Arc::new(vfs.clone()), "/arch");
    // The first write of the first persist (the archived segment's header) fails once.
    vfs.fail_nth(
        OpKind::Write,
        vfs.op_count(OpKind::Write) + 1,
        wal_log::sim::Fault::Eio,
    );
    assert!(mirror.persist(std::path::Path::new(DIR)).is_err());
    mirror.persist(std::path::Path::new(DIR)).unwrap();
    let image = vfs.crash(&CrashImage {
        data: DataLoss::DurableOnly,
        dirs: DirLoss::UnsyncedLost,
    });
    let archived: Vec<String> =
        wal_log::vfs::Vfs::list(&image, std::path::Path::new("/arch")).unwrap();
    assert!(
        archived.iter().any(|n| n.ends_with(".wal")),
        "persist returned Ok, but after a power loss the archive holds {archived:?}"
    );
}

fn archived_after_power_loss(vfs: &SimVfs) -> Vec<String> {
    let image = vfs.crash(&CrashImage {
        data: DataLoss::DurableOnly,
        dirs: DirLoss::UnsyncedLost,
    });
    wal_log::vfs::Vfs::list(&image, std::path::Path::new("/arch")).unwrap()
}

/// Control: without the fault the archived segment survives the power loss.
#[test]
fn control_a_clean_persist_is_durable() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always));
    rec.commit_events([set(1, 1)]).unwrap();
    let mirror = DirMirror::with_vfs(Arc::new(vfs.clone()), "/arch");
    mirror.persist(std::path::Path::new(DIR)).unwrap();
    assert!(
        archived_after_power_loss(&vfs)
            .iter()
            .any(|n| n.ends_with(".wal"))
    );
}

/// The same across a process restart: the new process's mirror finds the archive file already
/// there (created, never made durable), and its first persist fsyncs the directory.
#[test]
fn a_new_process_makes_an_archive_file_left_by_a_failed_persist_durable() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always)).with_mirror(Arc::new(
        DirMirror::with_vfs(Arc::new(vfs.clone()), "/arch"),
    ));
    let tx = rec.begin().unwrap();
    tx.record(set(1, 1));
    vfs.fail_nth(
        OpKind::Write,
        vfs.op_count(OpKind::Write) + 2, // the log's write succeeds, the mirror's header write fails
        wal_log::sim::Fault::Eio,
    );
    assert!(matches!(
        tx.commit_and_flush(),
        Err(RecorderError::Mirror(_))
    ));
    drop(rec); // "restart the process and recover"
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always)).with_mirror(Arc::new(
        DirMirror::with_vfs(Arc::new(vfs.clone()), "/arch"),
    ));
    rec.commit_events([set(2, 2)]).unwrap(); // flush -> persist: Ok
    let archived = archived_after_power_loss(&vfs);
    assert!(
        archived.iter().any(|n| n.ends_with(".wal")),
        "every persist returned Ok, but after a power loss the archive holds {archived:?}"
    );
}
