//! Commit tickets (`commit_deferred` + `CommitTicket::wait`): group commit with the store lock
//! released before the fsync, what a wait guarantees under each sync policy, poisoning, empty
//! queries, dropped tickets, streamed transactions; and the guard's `commit`, which means what
//! the recorder's `commit` means (no fsync under `Interval`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io;
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex, PoisonError};
use support::*;
use wal_log::sim::{Fault, OpKind, SimVfs};
use wal_log::{Options, SyncPolicy, Wal, WalError};
use wal_recorder::mirror::WalMirror;
use wal_recorder::{CommitTicket, RecorderError, RecorderOptions, WalRecorder, WroteCommit};

type Rec = WalRecorder<Ev>;

/// Far longer than any test: the background syncer of `Interval` never fsyncs during one,
/// so fsync counts are exact.
const NO_BACKGROUND_FSYNC: SyncPolicy = SyncPolicy::Interval { ms: 3_600_000 };

fn open_dir(dir: &Path, sync: SyncPolicy) -> Rec {
    let (wal, _) = Wal::open(dir, Options::default().sync(sync)).unwrap();
    Rec::new(Arc::new(wal))
}

/// Reopens the log in `dir` (which must be closed) and decodes every transaction.
fn read_back(dir: &Path) -> Vec<Vec<Ev>> {
    let (wal, _) = Wal::open(dir, Options::default()).unwrap();
    transactions(&wal).into_iter().map(|(_, evs)| evs).collect()
}

/// One query through the guard, committed with a ticket.
fn deferred(rec: &Rec, events: &[Ev]) -> CommitTicket {
    let tx = rec.begin().unwrap();
    for e in events {
        tx.record(e.clone());
    }
    tx.commit_deferred().unwrap()
}

#[test]
fn a_ticket_is_send_sync_and_static() {
    fn waitable_anywhere<T: Send + Sync + 'static>() {}
    waitable_anywhere::<CommitTicket>();
}

/// Four threads hold a shared store lock only around `record` + `commit_deferred` and wait on
/// their tickets outside it. A barrier between the commits and the waits of each round forces
/// all four commits to be queued before anyone waits, so the first waiter's flush covers all
/// of them: exactly one fsync per round, whatever the scheduling.
#[test]
fn tickets_waited_outside_the_store_lock_share_one_fsync() {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 25;
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(open_dir(dir.path(), SyncPolicy::Always));
    let store = Arc::new(Mutex::new(Vec::<Ev>::new()));
    let before = rec.wal().stats();
    let committed = Arc::new(Barrier::new(THREADS as usize));
    let waited = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (rec, store) = (rec.clone(), store.clone());
            let (committed, waited) = (committed.clone(), waited.clone());
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    let event = set(t, round as i64);
                    let mut guard = store.lock().unwrap_or_else(PoisonError::into_inner);
                    let tx = rec.begin().unwrap();
                    guard.push(event.clone());
                    tx.record(event);
                    let ticket = tx.commit_deferred().unwrap();
                    drop(guard);
                    assert!(ticket.wrote());
                    committed.wait();
                    let lsn = ticket.wait().unwrap().lsn().unwrap();
                    assert!(
                        rec.wal().durable_lsn() >= lsn,
                        "wait returned before its transaction was durable"
                    );
                    waited.wait();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let after = rec.wal().stats();
    let commits = after.commits - before.commits;
    let fsyncs = after.fsyncs - before.fsyncs;
    assert_eq!(commits, THREADS * ROUNDS);
    assert!(fsyncs < commits, "{fsyncs} fsyncs for {commits} commits");
    assert_eq!(fsyncs, ROUNDS, "one fsync per round of {THREADS} commits");
    drop(rec);

    // Every waited commit is in the log, and nothing else, in the order the store applied
    // them (commit_deferred ran under the store lock).
    let live: Vec<Vec<Ev>> = store
        .lock()
        .unwrap()
        .iter()
        .map(|e| vec![e.clone()])
        .collect();
    assert_eq!(live.len() as u64, THREADS * ROUNDS);
    assert_eq!(read_back(dir.path()), live);
}

#[test]
fn a_ticket_waited_after_the_host_poisoned_the_recorder_fails_with_that_reason() {
    let dir = tempfile::tempdir().unwrap();
    let rec = open_dir(dir.path(), SyncPolicy::Always);
    let ticket = deferred(&rec, &[set(1, 1)]);
    rec.poison("the store diverged from the log");
    match ticket.wait() {
        Err(RecorderError::Poisoned { reason, .. }) => {
            assert_eq!(reason, "the store diverged from the log");
        }
        other => panic!("expected Poisoned, got {other:?}"),
    }
    assert!(rec.arm().unwrap_err().is_poisoned());
}

/// The log fails under one ticket's wait: that wait gets the I/O error (and poisons), a
/// ticket queued before the failure gets `Poisoned` with the original reason, and neither
/// transaction is acknowledged.
#[test]
fn a_failed_fsync_under_one_wait_poisons_every_other_ticket_with_its_reason() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always));
    let first = deferred(&rec, &[set(1, 1)]);
    let first_lsn = first.lsn().unwrap();
    let second = deferred(&rec, &[set(2, 2)]);
    vfs.fail_nth(
        OpKind::SyncData,
        vfs.op_count(OpKind::SyncData) + 1,
        Fault::Eio,
    );
    let err = first.wait().unwrap_err();
    assert!(
        matches!(err, RecorderError::Wal(WalError::Io { .. })),
        "{err:?}"
    );
    let original = rec.poisoned_reason().unwrap();
    assert_eq!(original, err.to_string());
    match second.wait() {
        Err(RecorderError::Poisoned { reason, .. }) => assert_eq!(reason, original),
        other => panic!("expected Poisoned, got {other:?}"),
    }
    assert!(rec.wal().durable_lsn() < first_lsn, "nothing acknowledged");
    assert!(matches!(rec.arm(), Err(RecorderError::Poisoned { .. })));
}

/// A failure the log latched on its own (another user of the log failed) reaches a ticket
/// as `Poisoned` with the log's reason, although nothing failed in this wait.
#[test]
fn a_ticket_reports_a_log_poisoned_by_someone_else() {
    let vfs = SimVfs::new();
    let wal = open_sim(&vfs, SyncPolicy::Always);
    let rec = Rec::new(wal.clone());
    let ticket = deferred(&rec, &[set(1, 1)]);
    vfs.fail_nth(OpKind::Write, vfs.op_count(OpKind::Write) + 1, Fault::Eio);
    // Another user appends directly: its write fails and poisons the log.
    assert!(wal.append(b"admin").is_err());
    let reason = wal.poisoned_reason().unwrap();
    match ticket.wait() {
        Err(RecorderError::Poisoned { reason: got, .. }) => assert_eq!(got, reason),
        other => panic!("expected Poisoned, got {other:?}"),
    }
    assert_eq!(rec.poisoned_reason().unwrap(), reason);
}

#[derive(Debug)]
struct FailingMirror;

impl WalMirror for FailingMirror {
    fn persist(&self, _: &Path) -> io::Result<()> {
        Err(io::Error::other("archive disk gone"))
    }
}

/// `wait_and_flush` lets the mirror persist as `flush` does; its failure poisons. `wait`
/// (like `commit`) does not run the mirror.
#[test]
fn wait_and_flush_runs_the_mirror_and_a_mirror_failure_poisons() {
    let dir = tempfile::tempdir().unwrap();
    let rec = open_dir(dir.path(), SyncPolicy::Always).with_mirror(Arc::new(FailingMirror));
    let lsn = deferred(&rec, &[set(1, 1)]).wait().unwrap().lsn().unwrap();
    assert!(!rec.is_poisoned(), "wait does not run the mirror");

    let ticket = deferred(&rec, &[set(2, 2)]);
    let err = ticket.wait_and_flush().unwrap_err();
    assert!(matches!(err, RecorderError::Mirror(_)), "{err:?}");
    assert!(
        rec.wal().durable_lsn() > lsn,
        "the log itself made it durable"
    );
    assert_eq!(
        rec.poisoned_reason().unwrap(),
        "WAL mirror: archive disk gone"
    );
    assert!(matches!(rec.arm(), Err(RecorderError::Poisoned { .. })));
}

/// Under `Interval` the guard's `commit` (and a ticket's `wait`) write but do not fsync: the
/// same as the recorder's `commit`. `commit_and_flush` and `wait_and_flush` fsync.
#[test]
fn under_interval_commit_and_wait_do_not_fsync_and_the_flushing_variants_do() {
    let dir = tempfile::tempdir().unwrap();
    let rec = open_dir(dir.path(), NO_BACKGROUND_FSYNC);
    let fsyncs = |rec: &Rec| rec.wal().stats().fsyncs;
    let start = fsyncs(&rec);

    for i in 0..100 {
        let tx = rec.begin().unwrap();
        tx.record(set(i, 0));
        assert!(tx.commit().unwrap().wrote());
    }
    rec.arm().unwrap();
    rec.record(set(100, 0));
    rec.commit().unwrap();
    let lsn = deferred(&rec, &[set(101, 0)])
        .wait()
        .unwrap()
        .lsn()
        .unwrap();
    assert_eq!(
        fsyncs(&rec),
        start,
        "commit and wait do not fsync under Interval"
    );
    assert!(rec.wal().durable_lsn() < lsn);
    assert!(
        rec.wal().stats().last_lsn >= lsn,
        "written and acknowledged"
    );

    let tx = rec.begin().unwrap();
    tx.record(set(102, 0));
    let lsn = tx.commit_and_flush().unwrap().lsn().unwrap();
    assert_eq!(fsyncs(&rec), start + 1);
    assert!(rec.wal().durable_lsn() >= lsn);

    let lsn = deferred(&rec, &[set(103, 0)])
        .wait_and_flush()
        .unwrap()
        .lsn()
        .unwrap();
    assert_eq!(fsyncs(&rec), start + 2);
    assert!(rec.wal().durable_lsn() >= lsn);
    drop(rec);
    assert_eq!(read_back(dir.path()).len(), 104);
}

/// A ticket of a query that recorded nothing: no I/O at commit or at wait, `Ok(No)` from
/// both waits, even once the recorder is poisoned (there is nothing it could have lost), and
/// the mirror is not run.
#[test]
fn a_ticket_for_an_empty_query_is_a_no_op() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always)).with_mirror(Arc::new(FailingMirror));
    let before = io_counts(&vfs);
    let ticket = rec.begin().unwrap().commit_deferred().unwrap();
    assert!(!ticket.wrote());
    assert_eq!(ticket.lsn(), None);
    assert_eq!(ticket.wait().unwrap(), WroteCommit::No);
    rec.arm().unwrap();
    let ticket = rec.commit_deferred().unwrap();
    assert_eq!(ticket.wait_and_flush().unwrap(), WroteCommit::No);
    let ticket = rec.begin().unwrap().commit_deferred().unwrap();
    rec.poison("later");
    assert_eq!(ticket.wait().unwrap(), WroteCommit::No);
    assert_eq!(io_counts(&vfs), before, "no I/O at all");
    assert_eq!(rec.poisoned_reason().unwrap(), "later");
}

/// A dropped ticket undoes nothing and poisons nothing: its transaction keeps its place and
/// becomes durable with the log's next flush.
#[test]
fn a_dropped_ticket_leaves_its_transaction_to_the_next_flush() {
    let dir = tempfile::tempdir().unwrap();
    let rec = open_dir(dir.path(), SyncPolicy::Always);
    let ticket = deferred(&rec, &[set(1, 1)]);
    let lsn = ticket.lsn().unwrap();
    drop(ticket);
    assert!(!rec.is_poisoned());
    assert!(rec.wal().durable_lsn() < lsn, "queued, not acknowledged");
    deferred(&rec, &[set(2, 2)]).wait().unwrap();
    assert!(rec.wal().durable_lsn() > lsn, "the next flush covered it");
    drop(rec);
    assert_eq!(read_back(dir.path()), [vec![set(1, 1)], vec![set(2, 2)]]);
}

/// A query that outgrew `max_buffered_bytes` streamed fragments before its commit; its
/// ticket still waits correctly, under every policy, and the transaction reads back whole.
#[test]
fn a_streamed_transaction_commits_through_a_ticket() {
    for sync in [SyncPolicy::Always, NO_BACKGROUND_FSYNC, SyncPolicy::Never] {
        let dir = tempfile::tempdir().unwrap();
        let rec = open_dir(dir.path(), sync)
            .with_options(RecorderOptions::default().max_buffered_bytes(1024));
        let events: Vec<Ev> = (0..64).map(|i| Ev::Blob(vec![i as u8; 100])).collect();
        let tx = rec.begin().unwrap();
        for e in &events {
            tx.record(e.clone());
        }
        assert!(rec.is_streaming());
        let big = tx.commit_deferred().unwrap().wait_and_flush().unwrap();
        assert!(rec.wal().durable_lsn() >= big.lsn().unwrap(), "{sync:?}");
        let after = deferred(&rec, &[set(1, 1)]).wait().unwrap();
        assert!(after.lsn() > big.lsn());
        drop(rec);
        assert_eq!(read_back(dir.path()), [events, vec![set(1, 1)]], "{sync:?}");
    }
}
