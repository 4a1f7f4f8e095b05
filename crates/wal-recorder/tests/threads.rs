//! Many threads committing through one recorder under a store lock, as a host does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use support::*;
use wal_format::{Bincode, decode_all};
use wal_log::sim::SimVfs;
use wal_log::{Lsn, Options, SyncPolicy, Wal};
use wal_recorder::{MutationRecorder, WalRecorder, WroteCommit};

type Rec = WalRecorder<Ev>;

/// An in-memory store that fires one event per primitive mutation, after applying it.
struct Store {
    data: BTreeMap<u64, i64>,
    recorder: Arc<dyn MutationRecorder<Ev>>,
}

impl Store {
    fn set(&mut self, node: u64, value: i64) -> Option<i64> {
        let old = self.data.insert(node, value);
        self.recorder.record(set(node, value));
        old
    }

    fn delete(&mut self, node: u64) -> Option<i64> {
        let old = self.data.remove(&node);
        self.recorder.record(Ev::Delete(node));
        old
    }
}

/// Applies a replayed transaction to a map.
fn apply(map: &mut BTreeMap<u64, i64>, events: &[Ev]) {
    for e in events {
        match e {
            Ev::SetProp { node, value, .. } => {
                map.insert(*node, *value);
            }
            Ev::Delete(node) => {
                map.remove(node);
            }
            Ev::Blob(_) => {}
        }
    }
}

/// A tiny deterministic generator per thread.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Runs `threads` hosts of `queries` queries each; returns how many transactions were written.
fn run_hosts(rec: &Arc<Rec>, store: &Arc<Mutex<Store>>, threads: u64, queries: u64) -> u64 {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let rec = rec.clone();
            let store = store.clone();
            std::thread::spawn(move || {
                let mut rng = Lcg(t + 1);
                let mut written = 0u64;
                for _ in 0..queries {
                    let mut s = store.lock().unwrap();
                    match rng.next(4) {
                        0 => {
                            // Read-only query.
                            rec.arm().unwrap();
                            let _ = s.data.get(&rng.next(64));
                            assert_eq!(rec.commit_and_flush().unwrap(), WroteCommit::No);
                        }
                        1 => {
                            rec.arm().unwrap();
                            for _ in 0..=rng.next(6) {
                                let node = rng.next(64);
                                if rng.next(5) == 0 {
                                    s.delete(node);
                                } else {
                                    s.set(node, (t * 1_000_000 + rng.next(1000)) as i64);
                                }
                            }
                            assert!(rec.commit_and_flush().unwrap().wrote());
                            written += 1;
                        }
                        2 => {
                            // A query that fails half-way: the host rolls its store back and
                            // aborts; the recorder tells it the store had been touched.
                            rec.arm().unwrap();
                            let mut undo = Vec::new();
                            for _ in 0..=rng.next(3) {
                                let node = rng.next(64);
                                undo.push((node, s.set(node, -1)));
                            }
                            for (node, old) in undo.into_iter().rev() {
                                match old {
                                    Some(v) => s.data.insert(node, v),
                                    None => s.data.remove(&node),
                                };
                            }
                            assert!(rec.abort().unwrap());
                        }
                        _ => {
                            let tx = rec.begin().unwrap();
                            let node = rng.next(64);
                            s.set(node, t as i64);
                            s.set(node + 64, t as i64);
                            assert!(tx.commit_and_flush().unwrap().wrote());
                            written += 1;
                        }
                    }
                    drop(s);
                }
                written
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

fn check(wal: &Wal, live: &BTreeMap<u64, i64>, written: u64) {
    let txs = transactions(wal);
    assert_eq!(txs.len() as u64, written);
    assert!(txs.windows(2).all(|w| w[0].0 < w[1].0));
    let mut replayed = BTreeMap::new();
    for (_, events) in &txs {
        apply(&mut replayed, events);
    }
    assert_eq!(&replayed, live, "replaying the log rebuilds the live store");
}

#[test]
fn many_threads_commit_through_one_recorder_under_a_store_lock() {
    for sync in [
        SyncPolicy::Always,
        SyncPolicy::Interval { ms: 2 },
        SyncPolicy::Never,
    ] {
        let vfs = SimVfs::new();
        let rec = Arc::new(Rec::new(open_sim(&vfs, sync)));
        let store = Arc::new(Mutex::new(Store {
            data: BTreeMap::new(),
            recorder: rec.clone(),
        }));
        let written = run_hosts(&rec, &store, 8, 150);
        assert!(written > 300, "{written}");
        assert!(rec.poisoned_reason().is_none());
        assert!(!rec.is_armed());
        rec.force_fsync().unwrap();
        let live = store.lock().unwrap().data.clone();
        check(rec.wal(), &live, written);
        // And after a power loss: every flushed transaction survives.
        let image = durable_image(&vfs);
        let (wal, _) = Wal::open(DIR, sim_opts(&image, SyncPolicy::Always)).unwrap();
        check(&wal, &live, written);
    }
}

#[test]
fn many_threads_on_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), Options::default().segment_size(1 << 10)).unwrap();
    let rec = Arc::new(Rec::new(Arc::new(wal)));
    let store = Arc::new(Mutex::new(Store {
        data: BTreeMap::new(),
        recorder: rec.clone(),
    }));
    let written = run_hosts(&rec, &store, 4, 80);
    assert!(rec.wal().stats().rotations > 0);
    let live = store.lock().unwrap().data.clone();
    drop((store, rec)); // closes the log
    let (wal, _) = Wal::open(dir.path(), Options::default()).unwrap();
    check(&wal, &live, written);
}

#[test]
fn threads_recording_into_one_armed_query_all_land_in_one_transaction() {
    let vfs = SimVfs::new();
    let rec = Arc::new(Rec::new(open_sim(&vfs, SyncPolicy::Always)));
    rec.arm().unwrap();
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let rec = &rec;
            s.spawn(move || {
                for i in 0..500 {
                    rec.record(set(t, i));
                }
            });
        }
    });
    rec.commit().unwrap();
    let txs: Vec<_> = rec
        .wal()
        .read_from(Lsn::ZERO)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(txs.len(), 1);
    let events: Vec<Ev> = decode_all(&Bincode, &txs[0].body).unwrap();
    assert_eq!(events.len(), 4000);
    for t in 0..8u64 {
        let mine: Vec<i64> = events
            .iter()
            .filter_map(|e| match e {
                Ev::SetProp { node, value, .. } if *node == t => Some(*value),
                _ => None,
            })
            .collect();
        assert_eq!(
            mine,
            (0..500).collect::<Vec<i64>>(),
            "each thread's events keep their order"
        );
    }
}
