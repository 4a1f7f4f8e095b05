//! Recovery reads the log once: it chooses the snapshot before reading the log and applies
//! transactions during the open's verifying scan. These tests check that the log really is
//! read once, and the cases where the choice made before the read must be revised after it
//! (a snapshot ahead of a log that lost its end).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use wal_format::Lsn;
use wal_log::StdVfs;
use wal_log::sim::{HookedVfs, OpKind};
use wal_replay::checkpoint::CheckpointStep;
use wal_replay::inspect::replay_read_only;
use wal_replay::{Engine, RecoverOptions, recover};

/// The real file system, counting the bytes read from files in a directory named `log`.
fn counting_log_reads() -> (HookedVfs, Arc<AtomicU64>) {
    let read = Arc::new(AtomicU64::new(0));
    let counter = read.clone();
    let vfs = HookedVfs::new(Arc::new(StdVfs), move |call| {
        let in_log = call.path.parent().and_then(Path::file_name) == Some("log".as_ref());
        if call.op == OpKind::Read && in_log {
            // The hook runs before the read: count what it will return. Nothing writes the
            // log while it is recovered, so the length holds.
            let len = std::fs::metadata(call.path)?.len();
            let n = call.len.min(len.saturating_sub(call.offset));
            counter.fetch_add(n, Ordering::Relaxed);
        }
        Ok(())
    });
    (vfs, read)
}

fn log_bytes(root: &Path) -> (u64, u64) {
    let files = segment_files(root);
    let bytes = files
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    (bytes, files.len() as u64)
}

#[test]
fn recovery_reads_the_log_once() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = open_wal(&dir.path().join("log"), small_log());
        for i in 0..8000u64 {
            wal.append(&encode(&[put(&format!("k{i}"), i)])).unwrap();
        }
    }
    let (total, segments) = log_bytes(dir.path());
    assert!(segments > 10, "{segments}");
    for read_only in [false, true] {
        let (vfs, log_reads) = counting_log_reads();
        let opts = RecoverOptions::default().wal(small_log().vfs(Arc::new(vfs)));
        let mut kv = Kv::default();
        let report = if read_only {
            replay_read_only(dir.path(), &mut kv, opts.clone()).unwrap()
        } else {
            recover(dir.path(), &mut kv, opts).unwrap().report
        };
        assert_eq!((report.applied, kv.map.len()), (8000, 8000));
        let read = log_reads.load(Ordering::Relaxed);
        // Every byte once, plus a few headers read twice (to plan before the read).
        assert!(
            read >= total && read <= total + segments * 256,
            "read_only {read_only}: read {read} bytes of a {total}-byte log"
        );
        assert!(report.bytes_replayed >= total - 64, "{report:?}");
    }
}

/// Commits `n` transactions, remembering the state after each, by LSN.
fn fill(e: &mut Engine<Kv>, from: u64, n: u64, states: &mut BTreeMap<Lsn, Kv>) {
    for i in from..from + n {
        let lsn = e
            .commit(vec![
                put(&format!("k{:03}{}", i % 40, "p".repeat(120)), i),
                Op::Add("sum".into(), i),
            ])
            .unwrap();
        states.insert(lsn, e.state().clone());
    }
}

/// Removes every segment whose first LSN is above `keep_through`, so the log ends in the
/// segment holding `keep_through` (sealed, as if its successors were lost). Returns the
/// state the log now leads to.
fn lose_the_end(root: &Path, keep_through: Lsn, states: &BTreeMap<Lsn, Kv>) -> (Lsn, Kv) {
    let mut removed = Vec::<PathBuf>::new();
    for seg in segment_files(root) {
        let bytes = std::fs::read(&seg).unwrap();
        let h = wal_format::SegmentHeader::decode(&bytes).unwrap();
        if h.base_lsn > keep_through {
            std::fs::remove_file(&seg).unwrap();
            removed.push(seg);
        }
    }
    assert!(!removed.is_empty());
    let wal = open_wal(&root.join("log"), small_log());
    let end = wal.last_lsn();
    drop(wal);
    let (_, state) = states.range(..=end).next_back().unwrap();
    (end, state.clone())
}

#[test]
fn a_snapshot_ahead_of_the_log_falls_back_to_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut states = BTreeMap::new();
    let (mut e, _) = Engine::open(dir.path(), Kv::default(), engine_opts()).unwrap();
    fill(&mut e, 0, 150, &mut states);
    let first = e.checkpoint().unwrap();
    fill(&mut e, 150, 150, &mut states);
    let second = e.checkpoint().unwrap();
    fill(&mut e, 300, 20, &mut states);
    drop(e);
    // The log loses everything after a few transactions past the older snapshot's fence.
    let (end, expected) = lose_the_end(dir.path(), Lsn(first.fence.0 + 5), &states);
    assert!(end > first.fence && end < second.fence, "{end}");

    for read_only in [true, false] {
        let mut kv = Kv::default();
        let report = if read_only {
            replay_read_only(dir.path(), &mut kv, recover_opts()).unwrap()
        } else {
            recover(dir.path(), &mut kv, recover_opts()).unwrap().report
        };
        assert_eq!(kv, expected, "read_only {read_only}");
        assert_eq!(report.snapshot.as_ref().unwrap().fence, first.fence);
        assert_eq!(report.rejected_snapshots.len(), 1, "{report:?}");
        assert_eq!(report.rejected_snapshots[0].path, second.snapshot);
        assert!(
            report.rejected_snapshots[0]
                .reason
                .contains("ahead of the log")
        );
        assert_eq!(report.replay_from, first.fence.next());
        assert_eq!(report.log_end, end);
        assert_eq!(
            report.applied,
            states.range(first.fence.next()..=end).count() as u64
        );
    }
}

#[test]
fn a_snapshot_ahead_of_the_log_falls_back_to_an_empty_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut states = BTreeMap::new();
    let (mut e, _) = Engine::open(dir.path(), Kv::default(), engine_opts()).unwrap();
    fill(&mut e, 0, 200, &mut states);
    // A snapshot and its marker, without truncating the log.
    let fence = e.wal().durable_lsn();
    let cp = e
        .checkpointer()
        .checkpoint_until(e.state(), fence, CheckpointStep::Marker)
        .unwrap();
    assert_eq!(cp.truncated_to, None);
    fill(&mut e, 200, 10, &mut states);
    drop(e);
    let (end, expected) = lose_the_end(dir.path(), Lsn(60), &states);
    assert!(end < fence, "{end}");

    let mut kv = Kv::default();
    let r = recover(dir.path(), &mut kv, recover_opts()).unwrap();
    assert_eq!(kv, expected);
    let report = r.report;
    assert!(report.snapshot.is_none(), "{report:?}");
    assert_eq!(report.rejected_snapshots.len(), 1);
    assert_eq!(report.replay_from, Lsn::FIRST);
    assert_eq!(report.applied, states.range(..=end).count() as u64);
}

#[test]
fn a_snapshot_with_nothing_after_it_is_restored_after_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let mut states = BTreeMap::new();
    let (mut e, _) = Engine::open(dir.path(), Kv::default(), engine_opts()).unwrap();
    fill(&mut e, 0, 100, &mut states);
    let cp = e.checkpoint().unwrap();
    let expected = e.state().clone();
    drop(e);
    let mut kv = Kv::default();
    let report = recover(dir.path(), &mut kv, recover_opts()).unwrap().report;
    assert_eq!(kv, expected);
    assert_eq!(report.snapshot.unwrap().fence, cp.fence);
    assert_eq!((report.applied, report.applied_range), (0, None));
}

/// The real file system, removing a file (once, set in the slot) when the log's lock is about to
/// be taken: what another process could do between recovery planning from the first segment's
/// header and the open.
fn on_lock() -> (HookedVfs, Arc<Mutex<Option<PathBuf>>>) {
    let slot = Arc::new(Mutex::new(None::<PathBuf>));
    let victim = slot.clone();
    let vfs = HookedVfs::new(Arc::new(StdVfs), move |call| {
        if call.op == OpKind::Lock
            && let Some(victim) = victim.lock().unwrap().take()
        {
            std::fs::remove_file(victim)?;
        }
        Ok(())
    });
    (vfs, slot)
}

#[test]
fn a_first_segment_that_changes_before_the_open_is_planned_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut states = BTreeMap::new();
    let (mut e, _) = Engine::open(dir.path(), Kv::default(), engine_opts()).unwrap();
    fill(&mut e, 0, 40, &mut states);
    // A snapshot early in the first segment, the log kept whole.
    let fence = e.wal().durable_lsn();
    e.checkpointer()
        .checkpoint_until(e.state(), fence, CheckpointStep::Marker)
        .unwrap();
    fill(&mut e, 40, 300, &mut states);
    drop(e);
    let segs = segment_files(dir.path());
    assert!(segs.len() > 3);

    // Unchanged, recovery starts from the snapshot.
    let mut kv = Kv::default();
    let r = recover(dir.path(), &mut kv, recover_opts()).unwrap();
    assert_eq!(r.report.snapshot.as_ref().unwrap().fence, fence);
    assert_eq!(&kv, states.values().next_back().unwrap());
    drop(r);

    // The first segment disappears after planning, before the open reads the log: the log no
    // longer holds what follows the snapshot's fence. Replaying the rest on top of the snapshot
    // would silently lose transactions; recovery must notice and refuse.
    let (vfs, victim) = on_lock();
    *victim.lock().unwrap() = Some(segs[0].clone());
    let mut kv = Kv::default();
    let err = recover(
        dir.path(),
        &mut kv,
        RecoverOptions::default().wal(small_log().vfs(Arc::new(vfs))),
    )
    .unwrap_err();
    assert!(
        matches!(err, wal_replay::ReplayError::LogTruncated { .. }),
        "{err}"
    );
    assert_eq!(kv, Kv::default(), "nothing was applied");
}
