//! What an engine author hit when embedding the crates from their docs alone: a log directory
//! passed where the data directory belongs, and a checkpoint fence read apart from the state
//! it describes. Each test failed before its fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Kv, Op};
use std::sync::{Arc, Barrier, Mutex};
use wal_log::{Options, Wal};
use wal_replay::checkpoint::Checkpointer;
use wal_replay::inspect::replay_read_only;
use wal_replay::{
    Durable, DurableOptions, Engine, EngineOptions, RecoverOptions, ReplayError, recover,
};

/// `Wal::open(dir)` makes `dir` a log directory; every entry point that takes a data
/// directory must refuse it instead of creating `dir/log` and starting empty.
#[test]
fn a_log_directory_passed_as_the_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), Options::default()).unwrap();
    wal.append(b"the user's data").unwrap();
    drop(wal);
    let before = common_listing(dir.path());
    let refused = |r: Result<(), ReplayError>, who: &str| match r {
        Err(ReplayError::NotADataDir { dir: d, reason }) => {
            assert_eq!(d, dir.path(), "{who}");
            assert!(
                reason.contains("looks like a log directory"),
                "{who}: {reason}"
            );
        }
        other => panic!("{who}: {other:?}"),
    };
    refused(
        recover(dir.path(), &mut Kv::default(), RecoverOptions::default()).map(drop),
        "recover",
    );
    refused(
        replay_read_only(dir.path(), &mut Kv::default(), RecoverOptions::default()).map(drop),
        "replay_read_only",
    );
    refused(
        Engine::open(dir.path(), Kv::default(), EngineOptions::default()).map(drop),
        "Engine::open",
    );
    refused(
        Durable::open(dir.path(), Kv::default(), DurableOptions::default()).map(drop),
        "Durable::open",
    );
    assert_eq!(
        common_listing(dir.path()),
        before,
        "nothing created or changed"
    );
}

/// A checkpointer whose log is not `<root>/log` would write snapshots where recovery never
/// looks (or into the log directory itself, which then no longer opens).
#[test]
fn a_checkpointer_refuses_a_log_that_is_not_its_data_directorys() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), Options::default()).unwrap();
    wal.append(b"x").unwrap();
    let cp = Checkpointer::new(dir.path(), Arc::new(wal), 2);
    let before = common_listing(dir.path());
    match cp.checkpoint(&Kv::default(), wal_format::Lsn(1)) {
        Err(ReplayError::NotADataDir { reason, .. }) => {
            assert!(reason.contains("not at"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(common_listing(dir.path()), before);
}

fn common_listing(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Deposits from four threads while another thread checkpoints: the recovered balance is
/// the live one. With the fence read before the state lock (what `examples/kv` did), a
/// deposit committed in between was in the snapshot and after its fence, and applied twice.
#[test]
fn checkpoints_taken_during_concurrent_writes_never_apply_a_transaction_twice() {
    const THREADS: u64 = 4;
    const DEPOSITS: u64 = 400;
    let dir = tempfile::tempdir().unwrap();
    let opts = || DurableOptions::default().wal(Options::default().segment_size(64 << 10));
    let store = Durable::open(dir.path(), Kv::default(), opts()).unwrap();
    let start = Barrier::new(THREADS as usize + 1);
    let checkpoints = Mutex::new(0u64);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (store, start) = (&store, &start);
            s.spawn(move || {
                start.wait();
                for i in 0..DEPOSITS {
                    let amount = t * 1000 + i + 1;
                    store
                        .write(|kv, tx| {
                            *kv.map.entry("balance".into()).or_default() += amount;
                            tx.record(Op::Add("balance".into(), amount));
                        })
                        .unwrap();
                }
            });
        }
        let (store, start, checkpoints) = (&store, &start, &checkpoints);
        s.spawn(move || {
            start.wait();
            // Checkpoint until the writers are done (counted by the deposits seen).
            while store.read(|kv| kv.map.get("balance").copied()) != Some(expected_total()) {
                store.checkpoint().unwrap();
                *checkpoints.lock().unwrap() += 1;
            }
        });
    });
    fn expected_total() -> u64 {
        (0..THREADS)
            .map(|t| (0..DEPOSITS).map(|i| t * 1000 + i + 1).sum::<u64>())
            .sum()
    }
    assert!(*checkpoints.lock().unwrap() > 0);
    let live = store.read(|kv| kv.map.clone());
    drop(store);
    let again = Durable::open(dir.path(), Kv::default(), opts()).unwrap();
    assert!(again.recovery_report().snapshot.is_some());
    assert_eq!(again.read(|kv| kv.map.clone()), live);
    assert_eq!(live["balance"], expected_total());
}

/// The event type as a read-only tool sees it: `Deserialize` only (its fields are decoded,
/// then only counted).
#[derive(serde::Deserialize)]
#[allow(dead_code)]
enum SeenOp {
    Put(String, u64),
    Del(String),
    Add(String, u64),
}

/// Counts events; only ever replays (no snapshot in these tests).
#[derive(Default)]
struct Seen(u64);

impl wal_replay::StateMachine for Seen {
    type Event = SeenOp;
    fn apply(
        &mut self,
        _: wal_format::Lsn,
        events: Vec<SeenOp>,
    ) -> Result<(), wal_replay::ApplyError> {
        for e in events {
            match e {
                SeenOp::Put(..) | SeenOp::Del(_) | SeenOp::Add(..) => self.0 += 1,
            }
        }
        Ok(())
    }
    fn write_snapshot(&self, _: &mut dyn std::io::Write) -> std::io::Result<()> {
        Err(std::io::Error::other("a read-only tool writes no snapshot"))
    }
    fn restore(&mut self, _: &mut dyn std::io::Read) -> std::io::Result<()> {
        Err(std::io::Error::other("no snapshot in this test"))
    }
}

/// `replay_read_only` and `recover` have the same shape (root, state, options), read-only
/// replay needs only `Deserialize` on the event type, and both report progress through the
/// options, ending at the total.
#[test]
fn read_only_replay_takes_the_same_arguments_and_reports_progress() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let store = Durable::open(
        dir.path(),
        Kv::default(),
        DurableOptions::default().wal(Options::default().segment_size(64 << 10)),
    )
    .unwrap();
    for i in 0..500u64 {
        store
            .write(|kv, tx| {
                // Keys long enough to fill several 64 KiB segments.
                let key = format!("k{i}-{}", "x".repeat(300));
                kv.map.insert(key.clone(), i);
                tx.record(Op::Put(key, i));
            })
            .unwrap();
    }
    drop(store);
    let watch = || {
        let seen = Arc::new((AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)));
        let s = seen.clone();
        let opts = RecoverOptions::default().on_progress(move |done, total| {
            assert!(done <= total, "{done} of {total}");
            s.0.store(done, Ordering::SeqCst);
            s.1.store(total, Ordering::SeqCst);
            s.2.fetch_add(1, Ordering::SeqCst);
        });
        (seen, opts)
    };
    let (seen, opts) = watch();
    let mut count = Seen::default();
    let report = replay_read_only(dir.path(), &mut count, opts).unwrap();
    assert_eq!((count.0, report.applied), (500, 500));
    let (done, total, calls) = (
        seen.0.load(Ordering::SeqCst),
        seen.1.load(Ordering::SeqCst),
        seen.2.load(Ordering::SeqCst),
    );
    assert!(
        total > 64 << 10 && done == total && calls > 1,
        "{done}/{total} in {calls}"
    );

    let (seen, opts) = watch();
    let mut kv = Kv::default();
    recover(dir.path(), &mut kv, opts).unwrap();
    assert_eq!(kv.map.len(), 500);
    let (done, total, calls) = (
        seen.0.load(Ordering::SeqCst),
        seen.1.load(Ordering::SeqCst),
        seen.2.load(Ordering::SeqCst),
    );
    assert!(
        total > 64 << 10 && done == total && calls > 1,
        "{done}/{total} in {calls}"
    );
}

/// A closure that mutates the state and panics before it records anything left the store
/// taking writes on a state the log could not rebuild (the next recovery then failed to apply
/// a later transaction). Any panic in a write now poisons the store.
#[test]
fn a_panic_in_a_write_poisons_the_store_even_before_anything_was_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Durable::open(dir.path(), Kv::default(), DurableOptions::default()).unwrap();
    store
        .write(|kv, tx| {
            kv.map.insert("a".into(), 1);
            tx.record(Op::Put("a".into(), 1));
        })
        .unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.write(|kv, _tx| {
            kv.map.insert("phantom".into(), 9); // mutated, never recorded
            panic!("engine bug");
        })
    }));
    assert!(panicked.is_err());
    let err = store
        .write(|kv, tx| {
            *kv.map.get_mut("phantom").unwrap() += 1;
            tx.record(Op::Add("phantom".into(), 1));
        })
        .unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    assert!(
        store.checkpoint().is_err(),
        "no snapshot of a state the log lacks"
    );
    drop(store);
    let again = Durable::open(dir.path(), Kv::default(), DurableOptions::default()).unwrap();
    assert_eq!(
        again.read(|kv| kv.map.clone()),
        [("a".to_owned(), 1)].into()
    );
}

/// The snapshot directory passed as the data directory, and a point-in-time target for a
/// store that takes writes, are refused, not silently turned into something else.
#[test]
fn a_snapshot_directory_and_a_target_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Durable::open(dir.path(), Kv::default(), DurableOptions::default()).unwrap();
    store
        .write(|kv, tx| {
            kv.map.insert("a".into(), 1);
            tx.record(Op::Put("a".into(), 1));
        })
        .unwrap();
    store.checkpoint().unwrap();
    drop(store);
    let snaps = dir.path().join("snapshots");
    let before = common_listing(&snaps);
    match Durable::open(&snaps, Kv::default(), DurableOptions::default()) {
        Err(ReplayError::NotADataDir { reason, .. }) => {
            assert!(reason.contains("snapshot directory"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(common_listing(&snaps), before);
    let mut opts = DurableOptions::default();
    opts.recover = opts.recover.target(wal_format::Lsn(1));
    let err = Durable::open(dir.path(), Kv::default(), opts).unwrap_err();
    assert!(matches!(err, ReplayError::Unsupported { .. }), "{err:?}");
    let eopts = EngineOptions {
        recover: RecoverOptions::default().target(wal_format::Lsn(1)),
        ..EngineOptions::default()
    };
    let err = Engine::open(dir.path(), Kv::default(), eopts).unwrap_err();
    assert!(matches!(err, ReplayError::Unsupported { .. }), "{err:?}");
}

/// After the first checkpoint the only snapshot had no fallback: the log before its fence
/// was already gone, so one flipped byte in it made the directory unrecoverable ("the log
/// starts at LSN X, but replay must start at LSN 1"). The first checkpoint now keeps the log.
#[test]
fn the_only_snapshot_damaged_after_the_first_checkpoint_falls_back_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || DurableOptions::default().wal(Options::default().segment_size(16 << 10));
    let store = Durable::open(dir.path(), Kv::default(), opts()).unwrap();
    for i in 0..300u64 {
        store
            .write(|kv, tx| {
                let key = format!("k{i}-{}", "x".repeat(100));
                kv.map.insert(key.clone(), i);
                tx.record(Op::Put(key, i));
            })
            .unwrap();
    }
    assert!(store.wal().segments().len() > 2);
    store.checkpoint().unwrap();
    let live = store.read(|kv| kv.map.clone());
    drop(store);
    let snap = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "snap"))
        .unwrap();
    let mut b = std::fs::read(&snap).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    std::fs::write(&snap, b).unwrap();
    let again = Durable::open(dir.path(), Kv::default(), opts()).unwrap();
    assert_eq!(again.read(|kv| kv.map.clone()), live);
    assert!(again.recovery_report().snapshot.is_none());
    assert_eq!(again.recovery_report().rejected_snapshots.len(), 1);
}
