//! Recovery, snapshots and checkpoints on real files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use wal_format::Lsn;
use wal_log::{RecoveryMode, Wal};
use wal_replay::checkpoint::{CheckpointStep, Checkpointer};
use wal_replay::inspect::replay_read_only;
use wal_replay::{Engine, RecoverOptions, ReplayError, StateMachine, recover};

/// Commits `n` transactions of a few events each, returning the expected state.
fn fill(engine: &mut Engine<Kv>, from: u64, n: u64) {
    for i in from..from + n {
        engine
            .commit(vec![
                put(&format!("k{:03}{}", i % 50, "p".repeat(150)), i),
                Op::Add("sum".into(), i),
            ])
            .unwrap();
    }
}

fn recovered(root: &std::path::Path, opts: RecoverOptions) -> (Kv, wal_replay::RecoveryReport) {
    let mut kv = Kv::default();
    let r = recover(root, &mut kv, opts).unwrap();
    (kv, r.report)
}

#[test]
fn engine_recovers_from_snapshot_plus_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut e, report) = Engine::open(dir.path(), Kv::default(), engine_opts()).unwrap();
    assert!(report.created);
    fill(&mut e, 0, 150);
    // The first checkpoint keeps the whole log: it is the fallback of the only snapshot.
    let first = e.checkpoint().unwrap();
    assert_eq!(
        (first.segments_removed, first.truncated_to),
        (0, None),
        "{first:?}"
    );
    fill(&mut e, 150, 150);
    let cp = e.checkpoint().unwrap();
    assert_eq!(cp.fence, e.applied_lsn());
    assert!(cp.segments_removed > 0, "{cp:?}");
    assert_eq!(cp.truncated_to, Some(first.fence));
    fill(&mut e, 300, 100);
    let expected = e.state().clone();
    drop(e);

    let (kv, report) = recovered(dir.path(), recover_opts());
    assert_eq!(kv, expected);
    assert_eq!(report.snapshot.as_ref().unwrap().fence, cp.fence);
    assert_eq!(report.applied, 100);
    assert_eq!(report.replay_from, cp.fence.next());
    assert!(report.rejected_snapshots.is_empty());
    assert!(report.elapsed >= report.replay_elapsed);
}

#[test]
fn recovering_twice_gives_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let (mut e, _) = Engine::open(dir.path(), Kv::default(), engine_opts()).unwrap();
    fill(&mut e, 0, 120);
    e.checkpoint().unwrap();
    fill(&mut e, 120, 80);
    drop(e);
    let (a, ra) = recovered(dir.path(), recover_opts());
    let (b, rb) = recovered(dir.path(), recover_opts());
    assert_eq!(a, b);
    assert_eq!(
        (ra.applied, ra.snapshot.clone(), ra.log_end),
        (rb.applied, rb.snapshot.clone(), rb.log_end)
    );
    // A read-only replay agrees and changes nothing.
    let before = snapshot_tree(dir.path());
    let mut c = Kv::default();
    let rc = replay_read_only(dir.path(), &mut c, recover_opts()).unwrap();
    assert_eq!(c, a);
    assert_eq!(rc.applied, ra.applied);
    assert!(rc.read_only);
    assert_eq!(snapshot_tree(dir.path()), before);
}

#[test]
fn damaged_newest_snapshot_falls_back_to_the_previous_one() {
    for damage in ["flip", "truncate", "zero-header"] {
        let dir = tempfile::tempdir().unwrap();
        let (mut e, _) = Engine::open(dir.path(), Kv::default(), engine_opts()).unwrap();
        fill(&mut e, 0, 200);
        let first = e.checkpoint().unwrap();
        fill(&mut e, 200, 200);
        let second = e.checkpoint().unwrap();
        // The log is kept from the older snapshot's fence, so the fallback has its log.
        assert_eq!(second.truncated_to, Some(first.fence));
        fill(&mut e, 400, 50);
        let expected = e.state().clone();
        drop(e);
        assert_eq!(snapshot_files(dir.path()).len(), 2);

        let newest = second.snapshot.clone();
        let mut bytes = std::fs::read(&newest).unwrap();
        match damage {
            "flip" => {
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x40;
            }
            "truncate" => bytes.truncate(bytes.len() / 2),
            _ => bytes[..64].fill(0),
        }
        std::fs::write(&newest, &bytes).unwrap();

        let (kv, report) = recovered(dir.path(), recover_opts());
        assert_eq!(kv, expected, "{damage}");
        assert_eq!(
            report.snapshot.as_ref().unwrap().fence,
            first.fence,
            "{damage}"
        );
        assert_eq!(report.rejected_snapshots.len(), 1, "{damage}");
        assert_eq!(report.rejected_snapshots[0].path, newest);
        assert_eq!(report.applied, 250, "{damage}");

        // The next checkpoint sets the damaged snapshot aside rather than deleting it.
        let (mut e, _) = Engine::open(dir.path(), Kv::default(), engine_opts()).unwrap();
        fill(&mut e, 450, 10);
        let third = e.checkpoint().unwrap();
        assert_eq!(third.set_aside.len(), 1, "{damage}: {third:?}");
        assert!(
            third.set_aside[0]
                .to_string_lossy()
                .ends_with(".snap.corrupt")
        );
    }
}

#[test]
fn crash_between_snapshot_rename_and_truncation_recovers() {
    for stop in [
        CheckpointStep::Snapshot,
        CheckpointStep::Marker,
        CheckpointStep::Prune,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (mut e, _) = Engine::open(dir.path(), Kv::default(), engine_opts()).unwrap();
        fill(&mut e, 0, 150);
        e.checkpoint().unwrap();
        fill(&mut e, 150, 150);
        e.checkpoint().unwrap();
        fill(&mut e, 300, 150);
        let segments_before = segment_files(dir.path()).len();
        let fence = e.wal().durable_lsn();
        let r = e
            .checkpointer()
            .checkpoint_until(e.state(), fence, stop)
            .unwrap();
        assert_eq!(r.truncated_to, None);
        assert_eq!(segment_files(dir.path()).len(), segments_before, "{stop:?}");
        let expected = e.state().clone();
        drop(e); // the "crash": nothing after `stop` ran
        let (kv, report) = recovered(dir.path(), recover_opts());
        assert_eq!(kv, expected, "{stop:?}");
        assert_eq!(report.snapshot.unwrap().fence, fence, "{stop:?}");
        assert_eq!(report.applied, 0);
        // And a full checkpoint afterwards converges: N snapshots, log truncated.
        let (mut e, _) = Engine::open(dir.path(), Kv::default(), engine_opts()).unwrap();
        fill(&mut e, 450, 5);
        let r = e.checkpoint().unwrap();
        assert!(r.segments_removed > 0, "{stop:?}: {r:?}");
        assert_eq!(snapshot_files(dir.path()).len(), 2, "{stop:?}");
    }
}

#[test]
fn point_in_time_recovery_stops_at_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let (mut e, _) = Engine::open(dir.path(), Kv::default(), engine_opts()).unwrap();
    let mut lsns = Vec::new();
    let mut states = Vec::new();
    for i in 0..60u64 {
        lsns.push(e.commit(vec![put("x", i), Op::Add("n".into(), 1)]).unwrap());
        states.push(e.state().clone());
        if i == 40 {
            e.checkpoint().unwrap();
        }
    }
    drop(e);
    // Before the snapshot: replay from the start of the log (not truncated yet: one
    // checkpoint keeps the log from its own fence only when segments rotate out; use a
    // target after the snapshot for that part).
    for k in [45usize, 50, 59] {
        let (kv, report) = recovered(dir.path(), recover_opts().target(lsns[k]));
        assert_eq!(kv, states[k], "target {}", lsns[k]);
        assert_eq!(report.applied_range.unwrap().1, lsns[k]);
        assert!(report.snapshot.is_some());
    }
    // A target before the snapshot ignores it and replays from the beginning when the log
    // still has it.
    let (kv, report) = recovered(dir.path(), recover_opts().target(lsns[10]));
    assert_eq!(kv, states[10]);
    assert!(report.snapshot.is_none());
    assert_eq!(report.snapshots_after_target.len(), 1);
    // A target between two transactions (the checkpoint marker's LSN) lands on the one
    // before.
    assert_eq!(
        lsns[41].0,
        lsns[40].0 + 2,
        "the checkpoint marker sits between them"
    );
    let (kv, _) = recovered(dir.path(), recover_opts().target(Lsn(lsns[40].0 + 1)));
    assert_eq!(kv.map, states[40].map);
}

#[test]
fn target_before_truncated_log_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut e, _) = Engine::open(dir.path(), Kv::default(), engine_opts()).unwrap();
    fill(&mut e, 0, 200);
    e.checkpoint().unwrap();
    fill(&mut e, 200, 200);
    e.checkpoint().unwrap();
    drop(e);
    let mut kv = Kv::default();
    let err = recover(dir.path(), &mut kv, recover_opts().target(Lsn(3))).unwrap_err();
    assert!(matches!(err, ReplayError::LogTruncated { .. }), "{err}");
}

#[test]
fn aborted_and_unfinished_transactions_are_skipped() {
    // Unfinished: a crash image holding a fragment stream's beginning but not its end.
    let sim = wal_log::sim::SimVfs::new();
    let root = std::path::Path::new("/data");
    let opts = wal_log::Options::default()
        .preallocate(false)
        .segment_size(16 << 20)
        .vfs(std::sync::Arc::new(sim.clone()));
    {
        let (wal, _) = Wal::open(root.join("log"), opts.clone()).unwrap();
        wal.append(&encode(&[put("a", 1)])).unwrap();
        let mut s = wal.stream().unwrap();
        s.write(&vec![7u8; 5 << 20]).unwrap();
        s.abort().unwrap();
        let mut s = wal.stream().unwrap();
        s.write(&vec![8u8; 5 << 20]).unwrap();
        // A durable append after the stream's first fragment makes that fragment durable.
        wal.append(&encode(&[put("b", 2)])).unwrap();
        let image = sim.crash(&wal_log::sim::CrashImage {
            data: wal_log::sim::DataLoss::DurableOnly,
            dirs: wal_log::sim::DirLoss::UnsyncedLost,
        });
        std::mem::forget(s); // never committed nor aborted in the image
        drop(wal);
        let mut kv = Kv::default();
        let r = recover(
            root,
            &mut kv,
            RecoverOptions::default().wal(opts.clone().vfs(std::sync::Arc::new(image))),
        )
        .unwrap();
        assert_eq!(kv.map.len(), 2);
        assert_eq!(r.report.applied, 2);
        assert_eq!(r.report.skipped_aborted, 1);
        assert_eq!(r.report.skipped_unfinished, 1);
    }
}

#[test]
fn large_transactions_replay_within_budget_and_fail_clearly_beyond_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (wal, _) = Wal::open(dir.path().join("log"), small_log()).unwrap();
        let big: Vec<Op> = (0..400_000)
            .map(|i| put(&format!("key-{i:08}"), i))
            .collect();
        let payload = encode(&big);
        assert!(payload.len() > 4 << 20, "spans several frames");
        let mut s = wal.stream().unwrap();
        for chunk in payload.chunks(1 << 20) {
            s.write(chunk).unwrap();
        }
        s.commit().unwrap();
        wal.append(&encode(&[put("after", 1)])).unwrap();
    }
    let (kv, r) = recovered(dir.path(), recover_opts());
    assert_eq!(kv.map.len(), 400_001);
    assert_eq!(r.applied, 2);
    let mut kv = Kv::default();
    let err = recover(dir.path(), &mut kv, recover_opts().fragment_budget(1000)).unwrap_err();
    // Only a fragmented transaction counts against the budget.
    assert!(
        matches!(err, ReplayError::FragmentBudget { budget: 1000, .. }),
        "{err}"
    );
}

#[test]
fn snapshots_without_a_log_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut e, _) = Engine::open(dir.path(), Kv::default(), engine_opts()).unwrap();
    fill(&mut e, 0, 10);
    e.checkpoint().unwrap();
    drop(e);
    std::fs::remove_dir_all(dir.path().join("log")).unwrap();
    let mut kv = Kv::default();
    let err = recover(dir.path(), &mut kv, recover_opts()).unwrap_err();
    assert!(matches!(err, ReplayError::LogMissing { .. }), "{err}");
    assert!(!dir.path().join("log").exists(), "nothing was created");
}

#[test]
fn snapshot_of_another_log_is_rejected() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for d in [&a, &b] {
        let (mut e, _) = Engine::open(d.path(), Kv::default(), engine_opts()).unwrap();
        fill(&mut e, 0, 10);
        e.checkpoint().unwrap();
    }
    // Put b's snapshot into a, with a newer fence name.
    let from = snapshot_files(b.path()).pop().unwrap();
    let bytes = std::fs::read(&from).unwrap();
    // Same fence number, other log id.
    assert!(wal_replay::snapshot::SnapshotHeader::decode(&bytes).is_ok());
    let name = from.file_name().unwrap();
    std::fs::remove_file(a.path().join("snapshots").join(name)).ok();
    std::fs::write(a.path().join("snapshots").join(name), &bytes).unwrap();
    let mut kv = Kv::default();
    let r = recover(a.path(), &mut kv, recover_opts()).unwrap();
    assert_eq!(r.report.rejected_snapshots.len(), 1);
    assert!(
        r.report.rejected_snapshots[0]
            .reason
            .contains("belongs to log"),
        "{:?}",
        r.report.rejected_snapshots
    );
    assert_eq!(kv.map.len(), 11);
}

#[test]
fn torn_tail_is_moved_aside_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (mut e, _) = Engine::open(dir.path(), Kv::default(), engine_opts()).unwrap();
    fill(&mut e, 0, 20);
    let expected = e.state().clone();
    drop(e);
    let last = segment_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&[0x55; 30]); // a frame header that never finished
    std::fs::write(&last, &bytes).unwrap();

    // Strict refuses, read-only replay says what would happen, default recovery repairs.
    let mut kv = Kv::default();
    let strict = recover_opts().wal(small_log().recovery(RecoveryMode::Strict));
    assert!(recover(dir.path(), &mut kv, strict).is_err());
    let mut kv = Kv::default();
    let plan = replay_read_only(dir.path(), &mut kv, recover_opts()).unwrap();
    assert_eq!(plan.bytes_moved_aside, 30);
    // Read-only: the file the plan names does not exist.
    assert!(!plan.moved_aside[0].to.exists());
    let (kv, report) = recovered(dir.path(), recover_opts());
    assert_eq!(kv, expected);
    assert_eq!(report.bytes_moved_aside, 30);
    assert!(report.moved_aside[0].to.exists());
    // The read-only replay printed the plan recovery then executed.
    assert_eq!(plan.moved_aside, report.moved_aside);
}

/// The dry run prints the data directory's whole plan and recovery executes exactly it: with a
/// damaged newest snapshot and a torn log tail together, the read-only replay names the same
/// snapshot to restore, the same rejected snapshot and reason, the same bytes moved aside to
/// the same file, and the same range of the log, as the recovery that follows does.
#[test]
fn the_dry_run_is_what_recovery_does_with_a_damaged_snapshot_and_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (mut e, _) = Engine::open(dir.path(), Kv::default(), engine_opts()).unwrap();
    fill(&mut e, 0, 100);
    let first = e.checkpoint().unwrap();
    fill(&mut e, 100, 100);
    let second = e.checkpoint().unwrap();
    fill(&mut e, 200, 30);
    let expected = e.state().clone();
    drop(e);
    let mut bytes = std::fs::read(&second.snapshot).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&second.snapshot, &bytes).unwrap();
    let last = segment_files(dir.path()).pop().unwrap();
    let mut seg = std::fs::read(&last).unwrap();
    seg.extend_from_slice(&[0x55; 30]); // a frame header that never finished
    std::fs::write(&last, &seg).unwrap();

    let before = snapshot_tree(dir.path());
    let mut dry_kv = Kv::default();
    let dry = replay_read_only(dir.path(), &mut dry_kv, recover_opts()).unwrap();
    assert_eq!(
        snapshot_tree(dir.path()),
        before,
        "the dry run changed nothing"
    );
    assert!(!dry.moved_aside[0].to.exists());
    let (kv, done) = recovered(dir.path(), recover_opts());
    assert_eq!(kv, expected);
    assert_eq!(dry_kv, expected);
    assert_eq!(done.snapshot.as_ref().unwrap().fence, first.fence);
    assert_eq!(done.rejected_snapshots.len(), 1, "{done:?}");
    assert_eq!(done.rejected_snapshots[0].path, second.snapshot);
    assert_eq!(done.bytes_moved_aside, 30);
    assert!(done.moved_aside[0].to.exists());
    // The plan printed is the plan executed, and what recovery did is what it planned.
    let plan = &dry.plan;
    assert_eq!(*plan, done.plan);
    assert_eq!(plan.snapshot, done.snapshot);
    assert_eq!(plan.rejected_snapshots, done.rejected_snapshots);
    assert_eq!(plan.snapshots_after_target, done.snapshots_after_target);
    assert_eq!(plan.moved_aside, done.moved_aside);
    assert_eq!(
        (plan.log_id, plan.log_start, plan.log_end, plan.replay_from),
        (done.log_id, done.log_start, done.log_end, done.replay_from)
    );
    assert_eq!(
        (dry.applied, dry.applied_range),
        (done.applied, done.applied_range)
    );
}

#[test]
fn raw_state_machines_see_payloads() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (wal, _) = Wal::open(dir.path().join("log"), small_log()).unwrap();
        wal.append(b"abc").unwrap();
        wal.append_batch(&[&b"de"[..], b"f"]).unwrap();
    }
    let mut c = Counter::default();
    recover(dir.path(), &mut c, recover_opts()).unwrap();
    assert_eq!(c.txs, 2);
    assert_eq!(c.bytes, 3 + 4 + 4 + 2 + 4 + 1);
}

#[test]
fn checkpointer_refuses_a_fence_beyond_the_durable_end() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path().join("log"), small_log()).unwrap();
    let wal = std::sync::Arc::new(wal);
    wal.append(b"x").unwrap();
    let cp = Checkpointer::new(dir.path(), wal, 2);
    let err = cp.checkpoint(&Counter::default(), Lsn(99)).unwrap_err();
    assert!(matches!(err, ReplayError::FenceNotDurable { .. }), "{err}");
    let ok = cp.checkpoint(&Counter::default(), Lsn(1)).unwrap();
    assert_eq!(ok.fence, Lsn(1));
}

#[test]
fn state_machine_errors_stop_recovery() {
    struct Picky;
    impl StateMachine for Picky {
        type Event = Op;
        fn apply(&mut self, lsn: Lsn, _: Vec<Op>) -> Result<(), wal_replay::ApplyError> {
            if lsn == Lsn(2) {
                Err("no".into())
            } else {
                Ok(())
            }
        }
        fn write_snapshot(&self, _: &mut dyn std::io::Write) -> std::io::Result<()> {
            Ok(())
        }
        fn restore(&mut self, _: &mut dyn std::io::Read) -> std::io::Result<()> {
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let (wal, _) = Wal::open(dir.path().join("log"), small_log()).unwrap();
        for i in 0..3 {
            wal.append(&encode(&[put("a", i)])).unwrap();
        }
    }
    let err = recover(dir.path(), &mut Picky, recover_opts()).unwrap_err();
    assert!(
        matches!(err, ReplayError::Apply { lsn: Lsn(2), .. }),
        "{err}"
    );
}
