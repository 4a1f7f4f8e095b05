//! A snapshot that verifies but does not restore (its writer returned `Ok` with the body cut
//! short, or the state leaves part of the body unread) is treated like a damaged one: rejected,
//! renamed aside once recovery succeeded, and recovery falls back to an older snapshot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde::Deserialize;
use std::error::Error as _;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use wal_format::Lsn;
use wal_log::Transaction;
use wal_replay::inspect::replay_read_only;
use wal_replay::snapshot::SNAPSHOT_HEADER_LEN;
use wal_replay::snapshot::SnapshotStore;
use wal_replay::{
    ApplyError, Engine, EngineOptions, RecoveryReport, ReplayError, StateMachine, recover,
};

/// What [`Flaky::write_snapshot`] writes.
const WHOLE: u8 = 0;
/// Half of the state's bytes, and `Ok`: the bug this file is about.
const CUT_SHORT: u8 = 1;
/// The state's bytes followed by bytes `restore` never reads.
const TRAILING: u8 = 2;

/// [`Kv`] with a snapshot writer that can be told to misbehave, and a restore that leaves what
/// it did before failing in the state, as an incremental restore would.
#[derive(Default)]
struct Flaky {
    kv: Kv,
    body: Arc<AtomicU8>,
}

impl StateMachine for Flaky {
    type Event = Op;

    fn apply(&mut self, lsn: Lsn, events: Vec<Op>) -> Result<(), ApplyError> {
        self.kv.apply(lsn, events)
    }

    fn write_snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        let bytes = serde_json::to_vec(&self.kv).map_err(io::Error::other)?;
        match self.body.load(Ordering::Relaxed) {
            CUT_SHORT => out.write_all(&bytes[..bytes.len() / 2]),
            TRAILING => {
                out.write_all(&bytes)?;
                out.write_all(b"bytes a newer build wrote and this one does not read")
            }
            _ => out.write_all(&bytes),
        }
    }

    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        self.kv.map.insert("partly restored".into(), 1);
        // Reads one JSON value and stops there (no check for trailing bytes).
        let mut de = serde_json::Deserializer::from_reader(input);
        self.kv = Kv::deserialize(&mut de).map_err(io::Error::other)?;
        Ok(())
    }
}

/// [`Flaky`] that can reset itself ([`StateMachine::reset`]); `Flaky` keeps the default,
/// which refuses.
#[derive(Default)]
struct Resettable(Flaky);

impl StateMachine for Resettable {
    type Event = Op;
    fn apply(&mut self, lsn: Lsn, events: Vec<Op>) -> Result<(), ApplyError> {
        self.0.apply(lsn, events)
    }
    fn apply_transaction(
        &mut self,
        tx: &Transaction,
        codec: &dyn wal_format::Decoder<Op>,
    ) -> Result<(), ApplyError> {
        self.0.apply_transaction(tx, codec)
    }
    fn write_snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        self.0.write_snapshot(out)
    }
    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        self.0.restore(input)
    }
    fn reset(&mut self) -> io::Result<()> {
        self.0.kv = Kv::default();
        Ok(())
    }
}

fn fill(engine: &mut Engine<Flaky>, from: u64, n: u64) {
    for i in from..from + n {
        engine
            .commit(vec![
                put(&format!("k{:03}{}", i % 50, "p".repeat(150)), i),
                Op::Add("sum".into(), i),
            ])
            .unwrap();
    }
}

fn open(root: &std::path::Path, opts: EngineOptions) -> (Engine<Flaky>, Arc<AtomicU8>) {
    let body = Arc::new(AtomicU8::new(WHOLE));
    let state = Flaky {
        body: body.clone(),
        ..Flaky::default()
    };
    (Engine::open(root, state, opts).unwrap().0, body)
}

fn read_only<S: StateMachine>(
    root: &std::path::Path,
    state: &mut S,
) -> wal_replay::Result<RecoveryReport>
where
    wal_format::Bincode: wal_format::Codec<S::Event>,
{
    replay_read_only(root, state, recover_opts())
}

#[test]
fn a_snapshot_that_does_not_restore_falls_back_to_the_older_one() {
    for (body, says) in [(CUT_SHORT, "EOF"), (TRAILING, "left the rest unread")] {
        // With transactions after the bad snapshot (restored during the log's scan) and
        // without (restored once the scan is over).
        for after in [50, 0] {
            let case = format!("body {body}, {after} transactions after it");
            let dir = tempfile::tempdir().unwrap();
            let (mut e, mode) = open(dir.path(), engine_opts());
            fill(&mut e, 0, 200);
            let first = e.checkpoint().unwrap();
            fill(&mut e, 200, 200);
            mode.store(body, Ordering::Relaxed);
            let second = e.checkpoint().unwrap();
            // Both kept, the log kept from the older fence: the fallback has its log.
            assert_eq!(second.truncated_to, Some(first.fence), "{case}");
            fill(&mut e, 400, after);
            let expected = e.state().kv.clone();
            drop(e);
            let bad = second.snapshot.clone();
            let bad_bytes = std::fs::read(&bad).unwrap();

            // The read-only replay says what recovery does, and renames nothing.
            let before = snapshot_tree(dir.path());
            let mut dry = Flaky::default();
            let r = read_only(dir.path(), &mut dry).unwrap();
            assert_eq!(dry.kv, expected, "{case}");
            assert_eq!(r.snapshot.as_ref().unwrap().fence, first.fence, "{case}");
            assert_eq!(r.rejected_snapshots.len(), 1, "{case}: {r:?}");
            assert!(r.rejected_snapshots[0].restore_failed, "{case}");
            // It names the file recovery renames the snapshot to; no such file exists yet.
            let planned = r.rejected_snapshots[0].set_aside.clone().unwrap();
            assert!(!planned.exists(), "{case}");
            assert_eq!(snapshot_tree(dir.path()), before, "{case}");

            let mut kv = Flaky::default();
            let rec = recover(dir.path(), &mut kv, recover_opts()).unwrap();
            let report = rec.report;
            drop(rec.wal);
            // The dry run's plan is the plan executed, and the record is that plan done.
            assert_eq!(r.plan, report.plan, "{case}");
            assert_eq!(
                report.plan.rejected_snapshots, report.rejected_snapshots,
                "{case}"
            );
            assert_eq!(kv.kv, expected, "{case}");
            assert_eq!(
                report.snapshot.as_ref().unwrap().fence,
                first.fence,
                "{case}"
            );
            assert_eq!(report.replay_from, first.fence.next(), "{case}");
            assert_eq!(report.applied, 200 + after, "{case}");
            let [rejected] = &report.rejected_snapshots[..] else {
                panic!("{case}: {report:?}");
            };
            assert_eq!(rejected.path, bad, "{case}");
            assert!(rejected.restore_failed && !rejected.ahead_of_log, "{case}");
            assert!(
                rejected.reason.contains("restoring it failed") && rejected.reason.contains(says),
                "{case}: {}",
                rejected.reason
            );
            // Renamed aside, not deleted, byte for byte, to the name the dry run printed.
            let to = rejected.set_aside.clone().unwrap();
            assert_eq!(to, planned, "{case}");
            assert!(to.to_string_lossy().ends_with(".snap.corrupt"), "{case}");
            assert_eq!(std::fs::read(&to).unwrap(), bad_bytes, "{case}");
            assert!(!bad.exists(), "{case}");

            // The next recovery no longer meets it.
            let mut again = Flaky::default();
            let r = recover(dir.path(), &mut again, recover_opts())
                .unwrap()
                .report;
            assert_eq!(again.kv, expected, "{case}");
            assert!(r.rejected_snapshots.is_empty(), "{case}: {r:?}");
            assert_eq!(r.snapshot.unwrap().fence, first.fence, "{case}");
        }
    }
}

#[test]
fn without_an_older_snapshot_the_state_is_reset_and_the_whole_log_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut e, mode) = open(dir.path(), engine_opts());
    fill(&mut e, 0, 20);
    mode.store(CUT_SHORT, Ordering::Relaxed);
    let cp = e.checkpoint().unwrap();
    fill(&mut e, 20, 10);
    let expected = e.state().kv.clone();
    drop(e);
    assert_eq!(cp.segments_removed, 0, "the log still starts at LSN 1");

    // A state that cannot reset: a clear error naming the restore failure, nothing renamed.
    let before = snapshot_tree(dir.path());
    let err = recover(dir.path(), &mut Flaky::default(), recover_opts()).unwrap_err();
    let ReplayError::Restore { path, source } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*path, cp.snapshot);
    let text = err.to_string();
    assert!(
        text.contains("cannot reset") && text.contains("EOF"),
        "{text}"
    );
    // The restore's own error is kept as the cause.
    assert!(
        source
            .source()
            .is_some_and(|s| s.to_string().contains("EOF")),
        "{source:?}"
    );
    let ro = read_only(dir.path(), &mut Flaky::default()).unwrap_err();
    assert!(matches!(ro, ReplayError::Restore { .. }), "{ro}");
    assert_eq!(snapshot_tree(dir.path()), before);

    // A state that can: reset (no trace of the partial restore), the whole log replayed.
    let mut state = Resettable::default();
    let r = read_only(dir.path(), &mut state).unwrap();
    assert_eq!(state.0.kv, expected);
    assert!(
        r.snapshot.is_none() && r.rejected_snapshots[0].restore_failed,
        "{r:?}"
    );
    let mut state = Resettable::default();
    let report = recover(dir.path(), &mut state, recover_opts())
        .unwrap()
        .report;
    assert_eq!(state.0.kv, expected);
    assert!(report.snapshot.is_none(), "{report:?}");
    assert_eq!(report.applied, 30);
    assert!(
        report.rejected_snapshots[0].set_aside.is_some(),
        "{report:?}"
    );
    assert!(!cp.snapshot.exists());
}

#[test]
fn without_an_older_snapshot_a_truncated_log_is_refused_naming_the_restore_failure() {
    let dir = tempfile::tempdir().unwrap();
    let opts = EngineOptions {
        keep_snapshots: 1,
        ..engine_opts()
    };
    let (mut e, mode) = open(dir.path(), opts);
    fill(&mut e, 0, 300);
    mode.store(CUT_SHORT, Ordering::Relaxed);
    let cp = e.checkpoint().unwrap();
    assert!(cp.segments_removed > 0, "{cp:?}");
    fill(&mut e, 300, 10);
    drop(e);

    let before = snapshot_tree(dir.path());
    let name = cp
        .snapshot
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    for err in [
        recover(dir.path(), &mut Resettable::default(), recover_opts()).unwrap_err(),
        read_only(dir.path(), &mut Resettable::default()).unwrap_err(),
    ] {
        let ReplayError::LogTruncated { reason, .. } = &err else {
            panic!("{err:?}");
        };
        assert!(
            reason.contains(&name) && reason.contains("restoring it failed: EOF"),
            "{reason}"
        );
    }
    // Nothing to fall back to: the snapshot stays where it is.
    assert_eq!(snapshot_tree(dir.path()), before);
}

/// The header records the body's length, the file is exactly header + body, and the checksum
/// covers the body and the header (so the length too): a body cut after the header was
/// written, or a length changed to match, never verifies. (A body cut short *before* it was
/// summed verifies: that is what restoring catches above.)
#[test]
fn the_header_records_the_body_length_and_the_checksum_covers_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::new(Arc::new(wal_log::StdVfs), dir.path());
    let mut state = Flaky::default();
    state.kv.map.insert("a".into(), 1);
    let id = wal_log::LogId::from_u128(7);
    let v = store.write(&state, id, Lsn(9)).unwrap();
    let bytes = std::fs::read(&v.file.path).unwrap();
    let body = &bytes[SNAPSHOT_HEADER_LEN..];
    assert_eq!(body, serde_json::to_vec(&state.kv).unwrap());
    assert_eq!(bytes[40..48], (body.len() as u64).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(body), &bytes[..60]);
    assert_eq!(bytes[60..64], crc.to_le_bytes());

    let verify = |data: &[u8]| {
        std::fs::write(&v.file.path, data).unwrap();
        let file = store.list().unwrap().snapshots.remove(0);
        store.verify(&file, Some(id))
    };
    assert!(verify(&bytes).is_ok());
    let mut longer = bytes.clone();
    longer.push(b' ');
    assert!(
        verify(&longer)
            .unwrap_err()
            .to_string()
            .contains("header says")
    );
    let mut cut = bytes[..bytes.len() - 1].to_vec();
    assert!(
        verify(&cut)
            .unwrap_err()
            .to_string()
            .contains("header says")
    );
    cut[40..48].copy_from_slice(&(body.len() as u64 - 1).to_le_bytes());
    assert!(
        verify(&cut)
            .unwrap_err()
            .to_string()
            .contains("checksum mismatch")
    );
    let mut flipped = bytes.clone();
    flipped[SNAPSHOT_HEADER_LEN] ^= 1;
    assert!(
        verify(&flipped)
            .unwrap_err()
            .to_string()
            .contains("checksum mismatch")
    );
}
