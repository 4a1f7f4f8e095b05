//! Event schema versions: recorded in every segment and snapshot, checked on recovery, and an
//! explicit upgrade path. The scenario is the one that bit us: an amount changed from `i64` to
//! `u64` reads back doubled (bincode's zigzag `i64` is a valid, larger `u64`), silently.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{engine_opts, recover_opts, snapshot_tree};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use wal_format::header::SEGMENT_HEADER_LEN;
use wal_format::{Bincode, Codec, Lsn, SegmentHeader, decode_into};
use wal_log::Transaction;
use wal_replay::inspect::replay_read_only;
use wal_replay::snapshot::SnapshotStore;
use wal_replay::{
    ApplyError, DataDir, Engine, EventDecodeError, ReplayError, StateMachine, recover,
};

mod v1 {
    /// Version 1 of the events: amounts are `i64`.
    #[derive(serde::Serialize, serde::Deserialize)]
    pub enum Event {
        Deposit { account: String, amount: i64 },
    }
}

mod v2 {
    /// Version 2: amounts are `u64`.
    #[derive(serde::Serialize, serde::Deserialize)]
    pub enum Event {
        Deposit { account: String, amount: u64 },
    }
}

/// The bank of version 1.
#[derive(Default)]
struct BankV1(BTreeMap<String, i64>);

impl StateMachine for BankV1 {
    type Event = v1::Event;
    const EVENT_SCHEMA: u32 = 1;
    fn apply(&mut self, _: Lsn, events: Vec<v1::Event>) -> Result<(), ApplyError> {
        for v1::Event::Deposit { account, amount } in events {
            *self.0.entry(account).or_default() += amount;
        }
        Ok(())
    }
    fn write_snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        serde_json::to_writer(out, &self.0).map_err(io::Error::other)
    }
    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        self.0 = serde_json::from_reader(input).map_err(io::Error::other)?;
        Ok(())
    }
}

/// The bank of version 2; with `Upgrading`, it also reads version 1.
#[derive(Default)]
struct BankV2(BTreeMap<String, u64>);

impl BankV2 {
    fn deposit(&mut self, account: String, amount: u64) {
        *self.0.entry(account).or_default() += amount;
    }
}

impl StateMachine for BankV2 {
    type Event = v2::Event;
    const EVENT_SCHEMA: u32 = 2;
    fn apply(&mut self, _: Lsn, events: Vec<v2::Event>) -> Result<(), ApplyError> {
        for v2::Event::Deposit { account, amount } in events {
            self.deposit(account, amount);
        }
        Ok(())
    }
    fn write_snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        serde_json::to_writer(out, &self.0).map_err(io::Error::other)
    }
    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        self.0 = serde_json::from_reader(input).map_err(io::Error::other)?;
        Ok(())
    }
}

/// [`BankV2`] with the upgrade path from version 1.
#[derive(Default)]
struct Upgrading(BankV2);

fn non_negative(amount: i64) -> Result<u64, String> {
    u64::try_from(amount).map_err(|_| format!("a negative amount {amount} has no u64"))
}

impl StateMachine for Upgrading {
    type Event = v2::Event;
    const EVENT_SCHEMA: u32 = 2;
    fn reads_event_schema(schema: u32) -> bool {
        schema == 1 || schema == 2
    }
    fn apply(&mut self, lsn: Lsn, events: Vec<v2::Event>) -> Result<(), ApplyError> {
        self.0.apply(lsn, events)
    }
    fn apply_upgrade(&mut self, schema: u32, tx: &Transaction) -> Result<(), ApplyError> {
        assert_eq!(schema, 1, "only version 1 is accepted besides 2");
        let mut old: Vec<v1::Event> = Vec::new();
        for record in tx.records() {
            decode_into(&Bincode, &record?, &mut old)
                .map_err(|e| EventDecodeError::new::<v1::Event>(tx.lsn, schema, e))?;
        }
        for v1::Event::Deposit { account, amount } in old {
            self.0.deposit(account, non_negative(amount)?);
        }
        Ok(())
    }
    fn write_snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        self.0.write_snapshot(out)
    }
    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        self.0.restore(input)
    }
    fn restore_upgrade(&mut self, schema: u32, input: &mut dyn Read) -> io::Result<()> {
        assert_eq!(schema, 1);
        let old: BTreeMap<String, i64> =
            serde_json::from_reader(input).map_err(io::Error::other)?;
        self.0.0 = old
            .into_iter()
            .map(|(k, v)| non_negative(v).map(|v| (k, v)))
            .collect::<Result<_, _>>()
            .map_err(io::Error::other)?;
        Ok(())
    }
}

fn deposit1(account: &str, amount: i64) -> v1::Event {
    v1::Event::Deposit {
        account: account.into(),
        amount,
    }
}

fn deposit2(account: &str, amount: u64) -> v2::Event {
    v2::Event::Deposit {
        account: account.into(),
        amount,
    }
}

/// Segment sequence numbers with the event schema in their headers, read from the files.
fn segment_schemas(root: &Path) -> Vec<(u64, u32)> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(root.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segs.sort();
    segs.iter()
        .map(|p| {
            let h =
                SegmentHeader::decode(&std::fs::read(p).unwrap()[..SEGMENT_HEADER_LEN]).unwrap();
            (h.seq.0, h.payload_schema)
        })
        .collect()
}

fn snapshot_schemas(root: &Path) -> Vec<u32> {
    let store = DataDir::new(root).snapshots(std::sync::Arc::new(wal_log::StdVfs));
    let listing = store.list().unwrap();
    listing
        .snapshots
        .iter()
        .map(|f| store.read_header(f).unwrap().event_schema)
        .collect()
}

/// A version-1 bank: 200 deposits of 1..=200 to ten accounts, a checkpoint after 150, and the
/// balances expected.
fn bank_v1(root: &Path) -> BTreeMap<String, u64> {
    let (mut e, _) = Engine::open(root, BankV1::default(), engine_opts()).unwrap();
    for i in 1..=200i64 {
        e.commit(vec![deposit1(&format!("acct{}", i % 10), i)])
            .unwrap();
        if i == 150 {
            e.checkpoint().unwrap();
        }
    }
    let expected = e
        .state()
        .0
        .iter()
        .map(|(k, v)| (k.clone(), *v as u64))
        .collect();
    drop(e);
    expected
}

#[test]
fn a_bumped_event_schema_is_refused_naming_both_versions_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    bank_v1(dir.path());
    assert!(segment_schemas(dir.path()).iter().all(|&(_, v)| v == 1));
    assert_eq!(snapshot_schemas(dir.path()), [1]);
    let before = snapshot_tree(dir.path());

    let errors = [
        recover(dir.path(), &mut BankV2::default(), recover_opts()).unwrap_err(),
        replay_read_only(dir.path(), &mut BankV2::default(), recover_opts()).unwrap_err(),
        Engine::open(dir.path(), BankV2::default(), engine_opts()).unwrap_err(),
    ];
    for err in errors {
        let ReplayError::EventSchema {
            file,
            found,
            expected,
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!((*found, *expected), (1, 2));
        assert_eq!(file.extension().unwrap(), "wal", "{}", file.display());
        let text = err.to_string();
        assert!(
            text.contains("event schema version 1")
                && text.contains("is version 2")
                && text.contains(&*file.to_string_lossy()),
            "{text}"
        );
    }
    assert_eq!(snapshot_tree(dir.path()), before, "nothing changed");
    // The version-1 engine still recovers it.
    let mut v1 = BankV1::default();
    recover(dir.path(), &mut v1, recover_opts()).unwrap();
    assert_eq!(
        v1.0["acct0"],
        (1..=200).filter(|i| i % 10 == 0).sum::<i64>()
    );
}

#[test]
fn an_opted_in_upgrade_replays_old_events_and_the_log_goes_on_in_the_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = bank_v1(dir.path());
    let old_segments = segment_schemas(dir.path());

    // Snapshot of version 1 (restore_upgrade) and the version-1 transactions after it
    // (apply_upgrade), converted, not misread.
    let (mut e, report) = Engine::open(dir.path(), Upgrading::default(), engine_opts()).unwrap();
    assert_eq!(e.state().0.0, expected);
    assert!(report.snapshot.is_some());
    assert_eq!(report.applied, 50);
    // New transactions go to a new segment of version 2, at once.
    let now = segment_schemas(dir.path());
    assert_eq!(now[..old_segments.len()], old_segments[..]);
    assert_eq!(
        now[old_segments.len()..],
        [(old_segments.last().unwrap().0 + 1, 2)]
    );
    for i in 0..100u64 {
        e.commit(vec![deposit2("new", i)]).unwrap();
    }
    *expected.entry("new".into()).or_default() += (0..100).sum::<u64>();
    drop(e);
    let mut again = Upgrading::default();
    let rec = recover(dir.path(), &mut again, recover_opts()).unwrap();
    drop(rec.wal);
    assert_eq!(again.0.0, expected);
    let after = segment_schemas(dir.path());
    assert!(
        after[old_segments.len()..].iter().all(|&(_, v)| v == 2),
        "{after:?}"
    );

    // Checkpoints of the upgraded engine write version-2 snapshots; once they have pruned the
    // version-1 snapshot and truncated the version-1 segments, the plain version-2 engine
    // (no upgrade path) opens the directory.
    let (mut e, _) = Engine::open(dir.path(), Upgrading::default(), engine_opts()).unwrap();
    for round in 0..2u64 {
        for i in 0..200u64 {
            e.commit(vec![deposit2(&format!("r{round}"), i)]).unwrap();
        }
        e.checkpoint().unwrap();
    }
    let expected = e.state().0.0.clone();
    drop(e);
    assert_eq!(snapshot_schemas(dir.path()), [2, 2]);
    assert!(segment_schemas(dir.path()).iter().all(|&(_, v)| v == 2));
    let mut plain = BankV2::default();
    recover(dir.path(), &mut plain, recover_opts()).unwrap();
    assert_eq!(plain.0, expected);
}

#[test]
fn a_snapshot_of_another_version_is_refused_or_upgraded_when_opted_in() {
    let dir = tempfile::tempdir().unwrap();
    // A version-2 log whose only snapshot is of version 1 (restored from an old backup, say).
    let (mut e, _) = Engine::open(dir.path(), BankV2::default(), engine_opts()).unwrap();
    let mut old = BankV1::default();
    for i in 1..=20u64 {
        e.commit(vec![deposit2("a", i)]).unwrap();
        old.apply(Lsn(i), vec![deposit1("a", i as i64)]).unwrap();
    }
    let (fence, log_id) = (e.applied_lsn(), e.wal().log_id());
    e.commit(vec![deposit2("a", 1000)]).unwrap();
    let expected = e.state().0.clone();
    drop(e);
    let store: &SnapshotStore =
        &DataDir::new(dir.path()).snapshots(std::sync::Arc::new(wal_log::StdVfs));
    let snap = store.write(&old, log_id, fence).unwrap();
    assert_eq!(snap.header.event_schema, 1);
    let before = snapshot_tree(dir.path());

    let err = recover(dir.path(), &mut BankV2::default(), recover_opts()).unwrap_err();
    let ReplayError::EventSchema {
        file,
        found: 1,
        expected: 2,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*file, snap.file.path);
    assert_eq!(snapshot_tree(dir.path()), before, "nothing changed");

    let mut up = Upgrading::default();
    let report = recover(dir.path(), &mut up, recover_opts()).unwrap().report;
    assert_eq!(up.0.0, expected);
    assert_eq!(report.snapshot.unwrap().fence, fence);
    assert_eq!(report.applied, 1);
}

#[test]
fn unversioned_logs_and_snapshots_record_zero_and_recover_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let (mut e, _) = Engine::open(dir.path(), common::Kv::default(), engine_opts()).unwrap();
    for i in 0..300 {
        e.commit(vec![common::put(
            &format!("k{}{}", i % 7, "v".repeat(100)),
            i,
        )])
        .unwrap();
    }
    e.checkpoint().unwrap();
    e.commit(vec![common::put("last", 1)]).unwrap();
    let expected = e.state().clone();
    drop(e);
    assert!(segment_schemas(dir.path()).iter().all(|&(_, v)| v == 0));
    for f in common::snapshot_files(dir.path()) {
        assert_eq!(
            std::fs::read(&f).unwrap()[56..60],
            [0; 4],
            "{}",
            f.display()
        );
    }
    assert_eq!(snapshot_schemas(dir.path()), [0]);
    let mut kv = common::Kv::default();
    let report = recover(dir.path(), &mut kv, recover_opts()).unwrap().report;
    assert_eq!(kv, expected);
    assert_eq!(report.applied, 1);
}

#[test]
fn a_payload_that_does_not_decode_names_the_lsn_and_the_event_type() {
    let dir = tempfile::tempdir().unwrap();
    let (mut e, _) = Engine::open(dir.path(), BankV1::default(), engine_opts()).unwrap();
    e.commit(vec![deposit1("a", 1)]).unwrap();
    // A deposit whose amount is cut off: what a changed event type looks like to the codec.
    let mut cut = Vec::new();
    Bincode.encode(&deposit1("a", 1 << 40), &mut cut).unwrap();
    cut.truncate(cut.len() - 2);
    let bad = e.wal().append(&cut).unwrap();
    drop(e);
    for err in [
        recover(dir.path(), &mut BankV1::default(), recover_opts()).unwrap_err(),
        replay_read_only(dir.path(), &mut BankV1::default(), recover_opts()).unwrap_err(),
    ] {
        let ReplayError::Decode(d) = &err else {
            panic!("{err:?}");
        };
        assert_eq!((d.lsn, d.schema), (bad, 1));
        assert_eq!(d.event_type, std::any::type_name::<v1::Event>());
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "transaction at LSN {bad}: cannot decode event type `{}` (event schema version 1): ",
                std::any::type_name::<v1::Event>()
            )) && text.contains("ends before the event does"),
            "{text}"
        );
        assert!(!text.contains("UnexpectedEnd"), "{text}");
    }
}

/// `walctl` shows each file's version and, not decoding payloads, replays any version.
#[test]
fn walctl_shows_the_versions_and_replays_any() {
    let dir = tempfile::tempdir().unwrap();
    bank_v1(dir.path());
    let (code, v) = common::run_json(dir.path(), &["stat"]);
    assert_eq!(code, 0, "{v}");
    let segments = v["segments"].as_array().unwrap();
    assert!(!segments.is_empty());
    assert!(segments.iter().all(|s| s["payload_schema"] == 1), "{v}");
    assert_eq!(v["snapshots"][0]["event_schema"], 1, "{v}");
    let (code, out, _) = common::run(dir.path(), &["stat"]);
    assert_eq!(code, 0);
    assert!(out.contains("schema 1"), "{out}");
    let (code, v) = common::run_json(dir.path(), &["snapshot", "ls"]);
    assert_eq!(
        (code, &v["snapshots"][0]["event_schema"]),
        (0, &1.into()),
        "{v}"
    );
    let (code, v) = common::run_json(dir.path(), &["replay"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["transactions_applied"], 50, "{v}");
}
