//! Injected write and fsync failures (`SimVfs`) poison the recorder and acknowledge nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;
use wal_log::sim::{Fault, OpKind, SimVfs};
use wal_log::{Lsn, SyncPolicy, Wal, WalError};
use wal_recorder::{RecorderError, RecorderOptions, WalRecorder, WroteCommit};

type Rec = WalRecorder<Ev>;

/// Arms a fault on the next operation of kind `op`.
fn fail_next(vfs: &SimVfs, op: OpKind, fault: Fault) {
    vfs.fail_nth(op, vfs.op_count(op) + 1, fault);
}

fn is_io(e: &RecorderError) -> bool {
    matches!(e, RecorderError::Wal(WalError::Io { .. }))
}

fn assert_refuses(rec: &Rec) {
    assert!(rec.is_poisoned());
    assert!(matches!(rec.arm(), Err(RecorderError::Poisoned { .. })));
    assert!(matches!(rec.commit(), Err(RecorderError::Poisoned { .. })));
    assert!(matches!(
        rec.commit_events([set(9, 9)]),
        Err(RecorderError::Poisoned { .. })
    ));
    assert!(matches!(rec.flush(), Err(RecorderError::Poisoned { .. })));
}

/// Commits `n` one-event transactions and returns their events.
fn commit_some(rec: &Rec, n: u64) -> Vec<Vec<Ev>> {
    (0..n)
        .map(|i| {
            rec.commit_events([set(i, i as i64)]).unwrap();
            vec![set(i, i as i64)]
        })
        .collect()
}

#[test]
fn a_failed_write_poisons_and_acknowledges_nothing() {
    for fault in [Fault::Eio, Fault::Enospc] {
        let vfs = SimVfs::new();
        let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always));
        let acked = commit_some(&rec, 3);
        fail_next(&vfs, OpKind::Write, fault);
        rec.arm().unwrap();
        rec.record(set(100, 1));
        let err = rec.commit().unwrap_err();
        assert!(is_io(&err), "{err:?}");
        let reason = rec.poisoned_reason().unwrap();
        assert!(reason.contains("write"), "{reason}");
        assert_refuses(&rec);
        drop(rec);
        assert_eq!(replay(&durable_image(&vfs)), acked, "{fault:?}");
        assert_eq!(
            replay(&vfs),
            acked,
            "{fault:?}: nothing of the failed transaction was written"
        );
    }
}

#[test]
fn a_failed_fsync_poisons_and_acknowledges_nothing() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always));
    let acked = commit_some(&rec, 3);
    fail_next(&vfs, OpKind::SyncData, Fault::Eio);
    let err = rec.commit_events([set(100, 1)]).unwrap_err();
    assert!(is_io(&err), "{err:?}");
    assert!(rec.poisoned_reason().unwrap().contains("fsync"));
    assert_refuses(&rec);
    drop(rec);
    assert_eq!(replay(&durable_image(&vfs)), acked);
}

#[test]
fn a_failed_flush_under_never_poisons_and_the_commit_is_not_durable() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Never));
    let acked = commit_some(&rec, 2);
    fail_next(&vfs, OpKind::SyncData, Fault::Eio);
    rec.arm().unwrap();
    rec.record(set(100, 1));
    // The normal durable boundary reports the failure instead of `Yes`.
    let err = rec.commit_and_flush().unwrap_err();
    assert!(is_io(&err), "{err:?}");
    assert_refuses(&rec);
    drop(rec);
    assert_eq!(replay(&durable_image(&vfs)), acked);
}

#[test]
fn a_failed_force_fsync_poisons() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Never));
    rec.arm().unwrap();
    rec.record(set(1, 1));
    rec.commit().unwrap(); // written, not synced
    fail_next(&vfs, OpKind::SyncData, Fault::Eio);
    assert!(is_io(&rec.force_fsync().unwrap_err()));
    assert_refuses(&rec);
    drop(rec);
    assert_eq!(replay(&durable_image(&vfs)), Vec::<Vec<Ev>>::new());
}

#[test]
fn a_failed_background_fsync_is_surfaced_and_refused() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Interval { ms: 5 }));
    fail_next(&vfs, OpKind::SyncData, Fault::Eio);
    rec.arm().unwrap();
    rec.record(set(1, 1));
    // Written; the interval syncer's fsync fails in the background.
    assert!(rec.commit().unwrap().wrote());
    let deadline = Instant::now() + Duration::from_secs(10);
    while rec.poisoned_reason().is_none() {
        assert!(
            Instant::now() < deadline,
            "the background fsync never failed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(rec.poisoned_reason().unwrap().contains("fsync"));
    assert_refuses(&rec);
    drop(rec);
    assert_eq!(replay(&durable_image(&vfs)), Vec::<Vec<Ev>>::new());
}

#[test]
fn a_failed_fragment_write_poisons_the_streaming_query() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always))
        .with_options(RecorderOptions::default().max_buffered_bytes(4096));
    let acked = commit_some(&rec, 1);
    fail_next(&vfs, OpKind::Write, Fault::Eio);
    rec.arm().unwrap();
    for i in 0..80u8 {
        rec.record(Ev::Blob(vec![i; 64 << 10])); // cannot fail: the failure is latched
    }
    assert!(rec.poisoned_reason().unwrap().contains("write"));
    assert!(!rec.is_armed(), "the query was dropped");
    assert_refuses(&rec);
    drop(rec);
    assert_eq!(replay(&vfs), acked);
}

#[test]
fn a_failed_checkpoint_marker_poisons() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always));
    let lsn = rec.commit_events([set(1, 1)]).unwrap().lsn().unwrap();
    fail_next(&vfs, OpKind::Write, Fault::Enospc);
    assert!(is_io(&rec.checkpoint_marker(lsn).unwrap_err()));
    assert_refuses(&rec);
}

#[test]
fn power_loss_at_every_io_step_keeps_every_acknowledged_transaction() {
    // Count the mutating operations of a run of commits, then cut the power after each prefix
    // of them and check the crash image: every acknowledged transaction survives, and at most
    // the one in flight besides.
    let run = |vfs: &SimVfs, cut: Option<u64>| -> (Vec<Vec<Ev>>, Vec<Ev>) {
        let rec = Rec::new(open_sim(vfs, SyncPolicy::Always));
        if let Some(n) = cut {
            vfs.power_off_after(n);
        }
        let mut acked = Vec::new();
        for i in 0..6u64 {
            let evs = vec![set(i, 1), Ev::Blob(vec![i as u8; 300 * i as usize])];
            match rec.commit_events(evs.clone()) {
                Ok(WroteCommit::Yes(_)) => acked.push(evs),
                Ok(WroteCommit::No) => unreachable!(),
                Err(_) => {
                    assert!(rec.is_poisoned());
                    return (acked, evs);
                }
            }
        }
        (acked, Vec::new())
    };
    let probe = SimVfs::new();
    let before = {
        let _ = open_sim(&probe, SyncPolicy::Always);
        probe.mutating_ops()
    };
    let full = SimVfs::new();
    run(&full, None);
    let total = full.mutating_ops() - before;
    assert!(total >= 12, "{total}");
    for n in 0..=total {
        let vfs = SimVfs::new();
        let (acked, in_flight) = run(&vfs, Some(n));
        let found = replay(&durable_image(&vfs));
        assert!(
            found.len() >= acked.len(),
            "cut after {n}: lost an acknowledged transaction"
        );
        assert_eq!(found[..acked.len()], acked[..], "cut after {n}");
        match &found[acked.len()..] {
            [] => {}
            [one] => assert_eq!(one, &in_flight, "cut after {n}"),
            more => panic!("cut after {n}: unexpected transactions {more:?}"),
        }
    }
}

#[test]
fn a_recovered_log_accepts_new_transactions_after_the_failure() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always));
    let mut acked = commit_some(&rec, 2);
    fail_next(&vfs, OpKind::Write, Fault::Eio);
    assert!(rec.commit_events([set(50, 50)]).is_err());
    drop(rec);
    // The operator restarts: a new log handle and a new recorder.
    let image = durable_image(&vfs);
    let (wal, _) = Wal::open(DIR, sim_opts(&image, SyncPolicy::Always)).unwrap();
    let rec = Rec::new(Arc::new(wal));
    assert!(!rec.is_poisoned());
    rec.commit_events([set(60, 60)]).unwrap();
    acked.push(vec![set(60, 60)]);
    assert!(rec.wal().last_lsn() > Lsn::ZERO);
    drop(rec);
    assert_eq!(replay(&image), acked);
}
