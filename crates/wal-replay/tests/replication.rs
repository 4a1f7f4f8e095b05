//! A follower that truncation passed installs the primary's snapshot into its own data
//! directory (`install_snapshot`), recovers from it and follows on from its fence; and the
//! refusals of that call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Op, put};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use wal_format::Lsn;
use wal_log::{FollowPosition, Options, TailOptions, TailReader, Wal, WalError};
use wal_replay::install::install_snapshot;
use wal_replay::{
    ApplyError, Engine, EngineOptions, RecoverOptions, ReplayError, StateMachine, recover,
};

/// A map that knows nothing of LSNs: the same state on the primary and on the follower,
/// whose log numbers them differently.
#[derive(Default, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Map(BTreeMap<String, u64>);

impl StateMachine for Map {
    type Event = Op;
    fn apply(&mut self, _: Lsn, events: Vec<Op>) -> Result<(), ApplyError> {
        for e in events {
            match e {
                Op::Put(k, v) => {
                    self.0.insert(k, v);
                }
                Op::Del(k) => {
                    self.0.remove(&k);
                }
                Op::Add(k, n) => *self.0.entry(k).or_default() += n,
            }
        }
        Ok(())
    }
    fn write_snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        serde_json::to_writer(out, self).map_err(io::Error::other)
    }
    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        *self = serde_json::from_reader(input).map_err(io::Error::other)?;
        Ok(())
    }
}

fn log_opts() -> Options {
    Options::default()
        .segment_size(8 << 10)
        .preallocate(false)
        .publish_durable(true)
}

fn primary(root: &Path) -> Engine<Map> {
    let opts = EngineOptions {
        recover: RecoverOptions::default().wal(log_opts()),
        ..EngineOptions::default()
    };
    Engine::open(root, Map::default(), opts).unwrap().0
}

/// Ships everything durable in the primary's log after `from` into the follower's log, as
/// a follower process would (its own log, the primary's transaction bodies). Returns the new
/// position, or the reader's error.
fn ship(primary: &Path, follower: &Wal, from: &FollowPosition) -> Result<FollowPosition, WalError> {
    let mut r = TailReader::resume(primary.join("log"), from, TailOptions::default())?;
    let mut at = *from;
    while let Some(t) = r.try_next()? {
        assert!(t.prev <= at.lsn, "gap: {} after {}", t.prev, at.lsn);
        follower.append(&t.body).unwrap();
        at = r.position();
    }
    Ok(at)
}

fn follower_state(root: &Path) -> Map {
    let mut m = Map::default();
    recover(root, &mut m, RecoverOptions::default().wal(log_opts())).unwrap();
    m
}

fn newest_snapshot(root: &Path) -> PathBuf {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "snap"))
        .collect();
    v.sort();
    v.pop().unwrap()
}

#[test]
fn a_follower_passed_by_truncation_installs_the_primarys_snapshot() {
    let (p, f) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut e = primary(p.path());
    for i in 0..40 {
        e.commit(vec![put(&format!("k{}", i % 7), i)]).unwrap();
    }
    e.wal().sync().unwrap();
    let log_id = e.wal().log_id();
    // The follower ships what is durable, then stops.
    let (fw, _) = Wal::open(f.path().join("log"), log_opts()).unwrap();
    let pos = ship(p.path(), &fw, &FollowPosition::start(log_id)).unwrap();
    assert!(pos.lsn > Lsn(30));
    drop(fw);
    assert_eq!(follower_state(f.path()), *e.state());

    // While it is away, the primary checkpoints twice and truncates past it.
    for i in 40..400 {
        let pad = "x".repeat(200);
        e.commit(vec![put(&format!("k{}", i % 7), i), Op::Add(pad, 1)])
            .unwrap();
        if i == 200 || i == 350 {
            e.checkpoint().unwrap();
        }
    }
    assert!(e.wal().oldest_retained_lsn() > pos.next());
    let (fw, _) = Wal::open(f.path().join("log"), log_opts()).unwrap();
    match ship(p.path(), &fw, &pos) {
        Err(WalError::Truncated { requested, .. }) => assert_eq!(requested, pos.next()),
        other => panic!("{other:?}"),
    }
    drop(fw);

    // One call: the primary's newest snapshot becomes the follower's.
    let snap = newest_snapshot(p.path());
    let installed = install_snapshot(f.path(), &snap, log_opts()).unwrap();
    assert_eq!(installed.resume.log_id, log_id);
    let fence = installed.resume.lsn;
    assert_eq!(
        snap,
        p.path()
            .join("snapshots")
            .join(wal_replay::snapshot::snapshot_file_name(fence))
    );
    let mut at_fence = Map::default();
    let r = wal_replay::inspect::replay_read_only(
        p.path(),
        &mut at_fence,
        RecoverOptions::default().target(fence),
    )
    .unwrap();
    assert_eq!(r.applied, 0, "the snapshot at the fence holds it all");
    assert_eq!(follower_state(f.path()), at_fence);

    // And it follows on from the fence, to the primary's state.
    let (fw, _) = Wal::open(f.path().join("log"), log_opts()).unwrap();
    let end = ship(p.path(), &fw, &installed.resume).unwrap();
    assert_eq!(end.lsn, e.applied_lsn());
    drop(fw);
    assert_eq!(follower_state(f.path()), *e.state());
}

#[test]
fn install_refuses_what_it_cannot_install() {
    let (p, f) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut e = primary(p.path());
    e.commit(vec![put("a", 1)]).unwrap();
    e.checkpoint().unwrap();
    let snap = newest_snapshot(p.path());

    // The follower is running: its log is locked.
    let (fw, _) = Wal::open(f.path().join("log"), log_opts()).unwrap();
    let got = install_snapshot(f.path(), &snap, log_opts());
    assert!(
        matches!(got, Err(ReplayError::Wal(WalError::AlreadyOpen { .. }))),
        "{got:?}"
    );
    drop(fw);
    // A log directory given for the data directory.
    let got = install_snapshot(f.path().join("log"), &snap, log_opts());
    assert!(
        matches!(got, Err(ReplayError::NotADataDir { .. })),
        "{got:?}"
    );
    // A snapshot of the data directory's own log.
    let got = install_snapshot(p.path(), &snap, log_opts());
    match got {
        Err(ReplayError::BadSnapshot { reason, .. }) => {
            assert!(reason.contains("own log"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    drop(e);
    // A damaged snapshot.
    let mut b = std::fs::read(&snap).unwrap();
    let last = b.len() - 1;
    b[last] ^= 0x55;
    let damaged = f.path().join("copy.snap");
    std::fs::write(&damaged, &b).unwrap();
    let got = install_snapshot(f.path(), &damaged, log_opts());
    match got {
        Err(ReplayError::BadSnapshot { reason, .. }) => {
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // Nothing was installed by the refusals.
    assert!(!f.path().join("snapshots").exists());
}
