//! Checkpoints of a mirrored log (`wal_recorder::mirror::DirMirror`): truncation waits for the
//! mirror, so the log stays bounded while the archive grows and `walctl verify` finds the
//! archive sound after every checkpoint. A checkpointer that truncates without waiting is an
//! error the engine sees (it used to be silent: every commit `Ok`, and the archive missing
//! segments, "segment ends without a seal frame, but a newer segment exists", in 20 of 20
//! cycles).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Kv, Op};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use wal_format::Lsn;
use wal_log::Options;
use wal_recorder::mirror::{DirMirror, MirrorError};
use wal_recorder::{RecorderError, WalRecorder};
use wal_replay::checkpoint::Checkpointer;
use wal_replay::{Durable, DurableOptions, RecoverOptions, StateMachine, recover};

/// `walctl --dir <root> verify`'s exit code (the archive is `<root>/log`).
fn walctl_verify(root: &Path) -> i32 {
    let out = Command::new(env!("CARGO_BIN_EXE_walctl"))
        .arg("--dir")
        .arg(root)
        .arg("verify")
        .output()
        .unwrap();
    out.status.code().unwrap_or(-1)
}

fn segments(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".wal")
        })
        .count()
}

/// Makes each transaction about 130 bytes.
const PAD: &str = "................................................................................................";

fn small_segments() -> Options {
    Options::default().segment_size(4 << 10).preallocate(false)
}

/// The experiment (a mirror throttled to one copy a second, ordinary checkpoints), on
/// `Durable` with the mirror attached: 20 cycles of writes and a checkpoint.
#[test]
fn checkpoints_of_a_mirrored_store_keep_the_archive_sound_and_the_log_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (data, archive_root) = (dir.path().join("data"), dir.path().join("archive"));
    let archive = archive_root.join("log");
    let mirror = DirMirror::new(&archive).min_interval(Duration::from_secs(1));
    let opts = DurableOptions::default()
        .wal(small_segments())
        .mirror(Arc::new(mirror));
    let store = Durable::open(&data, Kv::default(), opts).unwrap();
    let mut archived = Vec::new();
    for cycle in 0..20u64 {
        for i in 0..60u64 {
            store
                .write(|kv, tx| {
                    let (key, value) = (format!("k{}{PAD}", i % 17), cycle * 100 + i);
                    kv.map.insert(key.clone(), value);
                    *kv.map.entry("blob".into()).or_default() += 1;
                    tx.record(Op::Put(key, value));
                    tx.record(Op::Add("blob".into(), 1));
                })
                .unwrap();
            if i % 20 == 0 {
                store.recorder().flush().unwrap(); // throttled: at most once a second
            }
        }
        let report = store.checkpoint().unwrap();
        assert_eq!(
            walctl_verify(&archive_root),
            0,
            "cycle {cycle}: archive not sound"
        );
        assert!(
            segments(&data.join("log")) <= 3,
            "cycle {cycle}: the log holds {} segments ({report:?})",
            segments(&data.join("log"))
        );
        archived.push(segments(&archive));
    }
    assert!(archived.windows(2).all(|w| w[0] <= w[1]));
    assert!(*archived.last().unwrap() > 20, "{archived:?}");
    // The archive alone recovers the store (a data directory of its own: no snapshot, the
    // whole log from LSN 1).
    store.recorder().force_fsync().unwrap();
    let live = store.read(|kv| kv.map.clone());
    drop(store);
    let copy = tempfile::tempdir().unwrap();
    std::fs::create_dir(copy.path().join("log")).unwrap();
    for e in std::fs::read_dir(&archive).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.path().join("log").join(e.file_name())).unwrap();
    }
    let mut from_archive = Kv::default();
    recover(copy.path(), &mut from_archive, RecoverOptions::default()).unwrap();
    assert_eq!(from_archive.map, live);
}

/// The parts without the hook: a `Checkpointer` that truncates the log itself removes
/// segments the throttled mirror has not copied. The next flush fails and poisons the
/// recorder; the archive is still sound (it ends where its copy ended).
#[test]
fn a_checkpointer_truncating_behind_the_mirror_is_an_error_the_engine_sees() {
    let dir = tempfile::tempdir().unwrap();
    let (data, archive_root) = (dir.path().join("data"), dir.path().join("archive"));
    let mut kv = Kv::default();
    let opts = RecoverOptions::default().wal(small_segments());
    let wal = Arc::new(recover(&data, &mut kv, opts).unwrap().wal);
    let mirror = DirMirror::new(archive_root.join("log")).min_interval(Duration::from_secs(3600));
    let recorder: WalRecorder<Op> = WalRecorder::new(wal.clone()).with_mirror(Arc::new(mirror));
    let checkpointer = Checkpointer::new(&data, wal.clone(), 1);
    let mut last = Lsn::ZERO;
    for i in 0..400u64 {
        let events = vec![Op::Put(format!("k{i}{PAD}"), i), Op::Add("n".into(), 1)];
        last = recorder
            .commit_events(events.clone())
            .unwrap()
            .lsn()
            .unwrap();
        kv.apply(last, events).unwrap();
    }
    assert!(wal.segments().len() > 3);
    let report = checkpointer.checkpoint(&kv, last).unwrap();
    assert!(report.segments_removed > 0);
    // The next copy (throttled here; forced by `force_fsync` or any truncation) sees it.
    recorder.commit_events([Op::Del("k1".into())]).unwrap();
    let err = recorder.force_fsync().unwrap_err();
    let RecorderError::Mirror(io) = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(
            io.get_ref().and_then(|e| e.downcast_ref::<MirrorError>()),
            Some(MirrorError::SegmentLost { .. })
        ),
        "{err}"
    );
    assert!(recorder.is_poisoned());
    assert_eq!(walctl_verify(&archive_root), 0);
}

/// With the hook, the same checkpointer truncates only what the mirror holds.
#[test]
fn a_checkpointer_truncating_through_the_recorder_waits_for_the_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let (data, archive_root) = (dir.path().join("data"), dir.path().join("archive"));
    let mut kv = Kv::default();
    let opts = RecoverOptions::default().wal(small_segments());
    let wal = Arc::new(recover(&data, &mut kv, opts).unwrap().wal);
    let mirror = DirMirror::new(archive_root.join("log")).min_interval(Duration::from_secs(3600));
    let recorder: WalRecorder<Op> = WalRecorder::new(wal.clone()).with_mirror(Arc::new(mirror));
    let checkpointer =
        Checkpointer::new(&data, wal.clone(), 1).truncate_through(recorder.truncator());
    let mut last = Lsn::ZERO;
    for i in 0..400u64 {
        let events = vec![Op::Put(format!("k{i}{PAD}"), i), Op::Add("n".into(), 1)];
        last = recorder
            .commit_events(events.clone())
            .unwrap()
            .lsn()
            .unwrap();
        kv.apply(last, events).unwrap();
    }
    let report = checkpointer.checkpoint(&kv, last).unwrap();
    assert!(report.segments_removed > 0);
    assert_eq!(wal.segments().len(), 1);
    recorder.commit_events([Op::Del("k1".into())]).unwrap();
    recorder.force_fsync().unwrap();
    assert_eq!(walctl_verify(&archive_root), 0);
    assert_eq!(recorder.stats().mirror.unwrap().lsns_behind, 0);
}
