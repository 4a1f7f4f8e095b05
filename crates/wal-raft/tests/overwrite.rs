//! A follower's overwrite of conflicting entries, as openraft 0.9.25 makes it, with the power
//! cut at every I/O operation: the entries it replaced never come back.
//!
//! openraft never appends over present entries without truncating them first (read in its
//! source, `engine/handler/following_handler/mod.rs`): `append_entries` finds the first entry
//! that conflicts with the local log and, if there is one, emits `DeleteConflictLog` (our
//! `truncate`, not waited for) from that index; `do_append_entries` then emits
//! `AppendInputEntries` only for entries from that index on, asserting (in debug builds) that
//! the first one continues the local log. So an overwrite reaches the store as
//! `truncate(conflicting id)` then `append(entries from that index)`, and this is the sequence
//! tested here, in several rounds: shorter than the tail it replaces (the old entries past the
//! new ones must not come back either), inside the previous overwrite, and below both across a
//! segment boundary.
//!
//! After a crash the store must serve one of the states the calls passed through, at or after
//! the last round whose append callback fired: a truncation may be lost with its overwrite
//! (openraft does not need it durable), but an acknowledged overwrite never loses its entries
//! nor brings back the ones it replaced.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Cfg, append_durable, block, durable_copy, entry, id, open_log, try_append_durable};
use openraft::Vote;
use openraft::storage::{RaftLogReader, RaftLogStorage};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use wal_log::StdVfs;
use wal_log::sim::{CrashImage, DataLoss, DirLoss, SimVfs};
use wal_raft::LogStore;

const DIR: &str = "/raft";

/// Index to term: the entries a store serves.
type Log = BTreeMap<u64, u64>;

/// One overwrite: the conflicting entries from `at` are truncated and `n` entries of `term`
/// are appended from `at`.
struct Round {
    at: u64,
    n: u64,
    term: u64,
}

/// Shorter than the tail it replaces; inside the previous overwrite; below both, across a
/// segment boundary (the base log spans several 16 KiB segments).
const ROUNDS: [Round; 3] = [
    Round {
        at: 250,
        n: 10,
        term: 4,
    },
    Round {
        at: 255,
        n: 2,
        term: 5,
    },
    Round {
        at: 60,
        n: 20,
        term: 6,
    },
];

/// The base log: a vote and 300 entries of term 3, all durable.
fn base_log() -> Log {
    (0..300).map(|i| (i, 3)).collect()
}

async fn fill(store: &mut LogStore<Cfg>) {
    store.save_vote(&Vote::new(3, 0)).await.unwrap();
    for chunk in 0..30 {
        append_durable(store, (chunk * 10..chunk * 10 + 10).map(|i| id(3, i)));
    }
}

/// Runs the rounds as openraft calls the store, stopping at the first failure. Returns the
/// states the calls passed through (from `log`), and how many of them are acknowledged: the
/// index of the state after the last append whose callback fired.
async fn overwrite(store: &mut LogStore<Cfg>, log: &Log) -> (Vec<Log>, usize) {
    let mut states = vec![log.clone()];
    let mut acked = 0;
    for r in &ROUNDS {
        let mut m = states.last().cloned().unwrap();
        let conflicting = id(m[&r.at], r.at);
        if store.truncate(conflicting).await.is_err() {
            break;
        }
        m.split_off(&r.at);
        states.push(m.clone());
        let ids: Vec<_> = (r.at..r.at + r.n).map(|i| id(r.term, i)).collect();
        m.extend(ids.iter().map(|l| (l.index, r.term)));
        states.push(m);
        if try_append_durable(store, ids).is_err() {
            break;
        }
        acked = states.len() - 1;
    }
    (states, acked)
}

/// What a reopened store serves, each entry checked against what was written for its id,
/// `get_log_state` checked against the entries, and the vote checked.
async fn observe(store: &mut LogStore<Cfg>) -> Log {
    let entries = store.try_get_log_entries(..).await.unwrap();
    for e in &entries {
        assert_eq!(*e, entry(e.log_id), "an entry reads back as written");
    }
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, entries.last().map(|e| e.log_id));
    assert_eq!(state.last_purged_log_id, None);
    assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(3, 0)));
    entries
        .iter()
        .map(|e| (e.log_id.index, e.log_id.leader_id.term))
        .collect()
}

/// The crash images worth taking of a disk: synced bytes only, everything written, every
/// prefix of the unsynced operations, the last write torn after one sector; directory
/// changes not synced lost or kept.
fn images(vfs: &SimVfs) -> Vec<CrashImage> {
    let mut data = vec![DataLoss::AllWritten, DataLoss::TornLastWrite { sectors: 1 }];
    data.extend((0..=vfs.unsynced_ops()).map(DataLoss::Prefix));
    data.into_iter()
        .flat_map(|data| {
            [DirLoss::UnsyncedLost, DirLoss::AllKept].map(|dirs| CrashImage {
                data: data.clone(),
                dirs,
            })
        })
        .collect()
}

/// The power is cut after every I/O operation of the three overwrites; each crash image of
/// each cut reopens to a state at or after the last acknowledged overwrite, never one holding
/// an entry an acknowledged overwrite replaced.
#[test]
fn a_power_cut_anywhere_in_an_overwrite_never_brings_back_replaced_entries() {
    let base = SimVfs::new();
    let mut store = open_log(Path::new(DIR), Arc::new(base.clone()));
    block(fill(&mut store));
    assert!(
        store.wal().segments().len() > 2,
        "the base log spans segments"
    );
    drop(store);
    let copy = || durable_copy(&base);
    // Count the operations of the whole sequence once, uncut.
    let vfs = copy();
    let mut store = open_log(Path::new(DIR), Arc::new(vfs.clone()));
    let before = vfs.mutating_ops();
    let (states, acked) = block(overwrite(&mut store, &base_log()));
    let ops = vfs.mutating_ops() - before;
    assert_eq!(
        (states.len(), acked),
        (7, 6),
        "every round ran and was acknowledged"
    );
    drop(store);
    let mut checked = 0;
    for k in 0..=ops {
        let vfs = copy();
        let mut store = open_log(Path::new(DIR), Arc::new(vfs.clone()));
        vfs.power_off_after(k);
        let (states, acked) = block(overwrite(&mut store, &base_log()));
        drop(store);
        for image in images(&vfs) {
            let mut store = open_log(Path::new(DIR), Arc::new(vfs.crash(&image)));
            let seen = block(observe(&mut store));
            assert!(
                states[acked..].contains(&seen),
                "power cut after {k} operations, image {image:?}: the store serves {:?}, \
                 no state from the acknowledged {:?} on",
                summary(&seen),
                summary(&states[acked]),
            );
            checked += 1;
        }
    }
    eprintln!("{ops} I/O operations in the overwrites, {checked} crash images checked");
    assert!(ops >= 6, "each round writes and fsyncs at least once");
}

/// A log as runs of `(first index, last index, term)`, for a readable failure.
fn summary(log: &Log) -> Vec<(u64, u64, u64)> {
    let mut runs: Vec<(u64, u64, u64)> = Vec::new();
    for (&i, &t) in log {
        match runs.last_mut() {
            Some(r) if r.2 == t && r.1 + 1 == i => r.1 = i,
            _ => runs.push((i, i, t)),
        }
    }
    runs
}

/// On a real disk, the store closed and reopened after every round: each reopen serves
/// exactly the acknowledged overwrite, and the next round truncates what the reopen served.
#[test]
fn a_real_reopen_after_each_overwrite_serves_only_the_new_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let mut store = open_log(&path, Arc::new(StdVfs));
    block(fill(&mut store));
    let mut want = base_log();
    for r in &ROUNDS {
        block(store.truncate(id(want[&r.at], r.at))).unwrap();
        append_durable(&store, (r.at..r.at + r.n).map(|i| id(r.term, i)));
        want.split_off(&r.at);
        want.extend((r.at..r.at + r.n).map(|i| (i, r.term)));
        drop(store);
        store = open_log(&path, Arc::new(StdVfs));
        assert_eq!(summary(&block(observe(&mut store))), summary(&want));
    }
    assert_eq!(summary(&want), [(0, 59, 3), (60, 79, 6)]);
}
