//! The state-machine adapter across reopens, which the storage suite never does: a snapshot
//! built or installed is what a reopened store restores; a damaged newest snapshot is a typed
//! error, not a silent fall back to an older one, and nothing is removed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Cfg, Kv, Op, open_sm};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, StoredMembership};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use wal_log::StdVfs;
use wal_raft::{RaftStoreError, StateMachineStore};

fn id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(1, 0), index)
}

fn put(index: u64, k: &str, v: &str) -> Entry<Cfg> {
    Entry {
        log_id: id(index),
        payload: EntryPayload::Normal(Op::Put(k.into(), v.into())),
    }
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn membership() -> Entry<Cfg> {
    Entry {
        log_id: id(1),
        payload: EntryPayload::Membership(Membership::new(vec![BTreeSet::from([1, 2])], ())),
    }
}

fn snapshot_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn a_built_snapshot_is_what_a_reopen_restores_and_installs_elsewhere() {
    let leader = tempfile::tempdir().unwrap();
    let mut sm = open_sm(leader.path(), Arc::new(StdVfs));
    let snap = block(async {
        sm.apply([membership(), put(2, "a", "1"), put(3, "b", "2")])
            .await
            .unwrap();
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap()
    });
    // Applied after the snapshot: gone after a reopen (openraft applies it again).
    block(sm.apply([put(4, "c", "3")])).unwrap();
    drop(sm);
    let mut sm = open_sm(leader.path(), Arc::new(StdVfs));
    let (applied, members) = block(sm.applied_state()).unwrap();
    assert_eq!(applied, Some(id(3)));
    assert_eq!(members.log_id(), &Some(id(1)));
    assert_eq!(
        sm.with_state(|s| s.map.clone()),
        [("a".into(), "1".into()), ("b".into(), "2".into())].into()
    );
    let current = block(sm.get_current_snapshot()).unwrap().unwrap();
    assert_eq!(current.meta, snap.meta);

    // Installed on another node, then reopened there.
    let follower = tempfile::tempdir().unwrap();
    let mut other = open_sm(follower.path(), Arc::new(StdVfs));
    block(other.install_snapshot(&snap.meta, snap.snapshot)).unwrap();
    drop(other);
    let mut other = open_sm(follower.path(), Arc::new(StdVfs));
    let (applied, members) = block(other.applied_state()).unwrap();
    assert_eq!(applied, Some(id(3)));
    assert_eq!(
        members,
        StoredMembership::new(
            Some(id(1)),
            Membership::new(vec![BTreeSet::from([1, 2])], ())
        )
    );
    assert_eq!(other.with_state(|s| s.map.len()), 2);
}

#[test]
fn a_damaged_snapshot_is_refused_on_open_and_on_install_with_nothing_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut sm = open_sm(dir.path(), Arc::new(StdVfs));
    let snap = block(async {
        sm.apply([membership(), put(2, "a", "1")]).await.unwrap();
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap()
    });
    drop(sm);
    let files = snapshot_files(dir.path());
    assert_eq!(files.len(), 1);
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&files[0], &bytes).unwrap();
    let err = StateMachineStore::<Cfg, Kv>::open(dir.path(), Kv::default(), Arc::new(StdVfs))
        .err()
        .unwrap();
    assert!(matches!(err, RaftStoreError::Snapshot(_)), "{err}");
    assert_eq!(snapshot_files(dir.path()), files, "nothing removed");
    assert_eq!(std::fs::read(&files[0]).unwrap(), bytes);

    // The same damage in transit: the install fails and the receiver keeps its state.
    let receiver = tempfile::tempdir().unwrap();
    let mut other = open_sm(receiver.path(), Arc::new(StdVfs));
    let mut sent = snap.snapshot.into_inner();
    let last = sent.len() - 1;
    sent[last] ^= 0x40;
    let r = block(other.install_snapshot(&snap.meta, Box::new(std::io::Cursor::new(sent))));
    assert!(r.is_err());
    assert_eq!(block(other.applied_state()).unwrap().0, None);
    assert!(block(other.get_current_snapshot()).unwrap().is_none());
}
