//! Each rule of the recorder's lifecycle, one test each, over a counting `SimVfs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use support::*;
use wal_format::frame::MAX_FRAME_PAYLOAD;
use wal_format::{Bincode, Codec, CodecError, Decoder, FrameKind};
use wal_log::sim::{OpKind, SimVfs};
use wal_log::{Lsn, SyncPolicy, Wal};
use wal_recorder::mirror::WalMirror;
use wal_recorder::{MutationRecorder, RecorderError, RecorderOptions, WalRecorder, WroteCommit};

type Rec = WalRecorder<Ev>;

fn setup(sync: SyncPolicy) -> (SimVfs, Rec) {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, sync));
    (vfs, rec)
}

fn poisoned<T: std::fmt::Debug>(r: Result<T, RecorderError>) -> String {
    match r {
        Err(RecorderError::Poisoned { reason, .. }) => reason,
        other => panic!("expected Poisoned, got {other:?}"),
    }
}

#[test]
fn arm_does_no_io() {
    let (vfs, rec) = setup(SyncPolicy::Always);
    let before = io_counts(&vfs);
    rec.arm().unwrap();
    assert_eq!(io_counts(&vfs), before);
    assert!(rec.is_armed());
}

#[test]
fn read_only_query_touches_the_log_zero_times() {
    // A short interval: the syncer only fsyncs when something was written, and wal-log's Drop
    // can wait up to one interval for the syncer thread to notice the shutdown.
    for sync in [
        SyncPolicy::Always,
        SyncPolicy::Never,
        SyncPolicy::Interval { ms: 20 },
    ] {
        let (vfs, rec) = setup(sync);
        let stats = rec.wal().stats();
        let before = io_counts(&vfs);
        for _ in 0..10 {
            rec.arm().unwrap();
            assert_eq!(rec.commit_and_flush().unwrap(), WroteCommit::No);
            rec.arm().unwrap();
            assert_eq!(rec.commit().unwrap(), WroteCommit::No);
            assert_eq!(rec.begin().unwrap().commit().unwrap(), WroteCommit::No);
            assert_eq!(
                rec.begin().unwrap().commit_and_flush().unwrap(),
                WroteCommit::No
            );
            rec.arm().unwrap();
            assert!(!rec.abort().unwrap());
        }
        if matches!(sync, SyncPolicy::Interval { .. }) {
            // Two whole rounds of the syncer after the calls above: it ran, and found nothing.
            let rounds = rec.wal().stats().syncer_rounds;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while rec.wal().stats().syncer_rounds < rounds + 2 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the interval syncer never ran"
                );
                std::thread::yield_now();
            }
        }
        assert_eq!(
            io_counts(&vfs),
            before,
            "{sync:?}: no write, no fsync, nothing"
        );
        assert_eq!(rec.wal().stats().appends, stats.appends);
        assert_eq!(rec.wal().last_lsn(), stats.last_lsn);
    }
}

#[test]
fn double_arm_poisons_and_errors() {
    let (_vfs, rec) = setup(SyncPolicy::Always);
    rec.arm().unwrap();
    rec.record(set(1, 1));
    assert!(matches!(rec.arm(), Err(RecorderError::AlreadyArmed)));
    assert!(rec.is_poisoned());
    assert!(rec.poisoned_reason().unwrap().contains("already armed"));
    poisoned(rec.commit());
    poisoned(rec.arm());
    assert_eq!(
        rec.wal().stats().appends,
        0,
        "the interleaved query was not written"
    );
}

#[test]
fn record_buffers_without_touching_the_log() {
    let (vfs, rec) = setup(SyncPolicy::Always);
    rec.arm().unwrap();
    let before = io_counts(&vfs);
    for i in 0..100 {
        rec.record(set(i, -(i as i64)));
    }
    assert_eq!(io_counts(&vfs), before);
    assert_eq!(rec.wal().stats().appends, 0);
    assert_eq!(rec.recorded_events(), 100);
    assert!(rec.buffered_bytes() > 0);
    assert!(!rec.is_streaming());
}

#[test]
fn record_outside_a_query_poisons() {
    let (_vfs, rec) = setup(SyncPolicy::Always);
    rec.record(set(1, 1));
    assert!(
        rec.poisoned_reason()
            .unwrap()
            .contains("outside an armed query")
    );
    assert!(
        rec.poisoned().is_some(),
        "the store sees it through the trait"
    );
    poisoned(rec.arm());

    let (_vfs, rec) = setup(SyncPolicy::Always);
    assert!(matches!(
        rec.try_record(&set(1, 1)),
        Err(RecorderError::NotArmed)
    ));
    assert!(rec.is_poisoned());
}

#[test]
fn record_when_poisoned_is_a_no_op() {
    let (_vfs, rec) = setup(SyncPolicy::Always);
    rec.arm().unwrap();
    rec.record(set(1, 1));
    rec.poison("host found divergence");
    assert!(!rec.is_armed());
    rec.record(set(2, 2));
    assert_eq!(rec.recorded_events(), 0);
    assert_eq!(rec.buffered_bytes(), 0);
    assert_eq!(
        poisoned(rec.try_record(&set(3, 3))),
        "host found divergence"
    );
    assert_eq!(
        rec.poisoned_reason().unwrap(),
        "host found divergence",
        "the first reason stays"
    );
}

#[test]
fn commit_without_arm_poisons() {
    let (_vfs, rec) = setup(SyncPolicy::Always);
    assert!(matches!(rec.commit(), Err(RecorderError::NotArmed)));
    assert!(
        rec.poisoned_reason()
            .unwrap()
            .contains("without an armed query")
    );
    poisoned(rec.arm());
}

#[test]
fn commit_writes_one_tx_frame_with_one_write_and_one_fsync() {
    let (vfs, rec) = setup(SyncPolicy::Always);
    let stats = rec.wal().stats();
    let (writes, syncs) = (vfs.op_count(OpKind::Write), vfs.op_count(OpKind::SyncData));
    rec.arm().unwrap();
    let events: Vec<Ev> = (0..1000).map(|i| set(i, i as i64 * 3)).collect();
    for e in &events {
        rec.record(e.clone());
    }
    let WroteCommit::Yes(lsn) = rec.commit().unwrap() else {
        panic!("nothing written")
    };
    let after = rec.wal().stats();
    assert_eq!(after.appends - stats.appends, 1, "one frame");
    assert_eq!(after.commits - stats.commits, 1);
    assert_eq!(vfs.op_count(OpKind::Write) - writes, 1, "one write");
    assert_eq!(
        vfs.op_count(OpKind::SyncData) - syncs,
        1,
        "one fsync (policy Always)"
    );
    assert_eq!(
        rec.wal().durable_lsn(),
        lsn,
        "durable on return under Always"
    );
    assert_eq!(frame_kinds(&vfs, Path::new(DIR)), [FrameKind::Tx]);
    assert_eq!(transactions(rec.wal()), [(lsn, events.clone())]);
    drop(rec);
    assert_eq!(replay(&vfs), [events]);
}

#[test]
fn commit_under_never_writes_once_and_flush_is_the_durability_point() {
    let (vfs, rec) = setup(SyncPolicy::Never);
    rec.arm().unwrap();
    rec.record(set(1, 1));
    let (writes, syncs) = (vfs.op_count(OpKind::Write), vfs.op_count(OpKind::SyncData));
    let lsn = rec.commit().unwrap().lsn().unwrap();
    assert_eq!(vfs.op_count(OpKind::Write) - writes, 1);
    assert_eq!(
        vfs.op_count(OpKind::SyncData) - syncs,
        0,
        "Never: commit does not fsync"
    );
    assert!(rec.wal().durable_lsn() < lsn);
    assert_eq!(
        replay(&durable_image(&vfs)),
        Vec::<Vec<Ev>>::new(),
        "not durable yet"
    );
    rec.flush().unwrap();
    assert_eq!(vfs.op_count(OpKind::SyncData) - syncs, 1);
    assert_eq!(rec.wal().durable_lsn(), lsn);
    assert_eq!(replay(&durable_image(&vfs)), [vec![set(1, 1)]]);
}

#[test]
fn commit_and_flush_flushes_only_when_something_was_written() {
    let (vfs, rec) = setup(SyncPolicy::Never);
    let syncs = vfs.op_count(OpKind::SyncData);
    rec.arm().unwrap();
    assert_eq!(rec.commit_and_flush().unwrap(), WroteCommit::No);
    assert_eq!(vfs.op_count(OpKind::SyncData), syncs);
    rec.arm().unwrap();
    rec.record(Ev::Delete(9));
    let lsn = rec.commit_and_flush().unwrap().lsn().unwrap();
    assert_eq!(vfs.op_count(OpKind::SyncData), syncs + 1);
    assert_eq!(rec.wal().durable_lsn(), lsn);
}

#[test]
fn flush_under_always_does_no_io() {
    let (vfs, rec) = setup(SyncPolicy::Always);
    rec.commit_events([set(1, 1)]).unwrap();
    let before = io_counts(&vfs);
    rec.flush().unwrap();
    assert_eq!(io_counts(&vfs), before);
}

#[test]
fn force_fsync_is_a_durability_point_under_any_policy() {
    for sync in [SyncPolicy::Always, SyncPolicy::Never] {
        let (vfs, rec) = setup(sync);
        rec.arm().unwrap();
        rec.record(set(1, 2));
        rec.commit().unwrap();
        rec.force_fsync().unwrap();
        assert_eq!(rec.wal().durable_lsn(), rec.wal().last_lsn());
        assert_eq!(replay(&durable_image(&vfs)), [vec![set(1, 2)]], "{sync:?}");
    }
}

#[test]
fn commit_events_arms_records_commits_and_flushes() {
    let (vfs, rec) = setup(SyncPolicy::Never);
    assert_eq!(rec.commit_events(Vec::new()).unwrap(), WroteCommit::No);
    let lsn = rec
        .commit_events([set(1, 1), Ev::Delete(1)])
        .unwrap()
        .lsn()
        .unwrap();
    assert!(!rec.is_armed());
    assert_eq!(rec.wal().durable_lsn(), lsn, "flushed");
    assert_eq!(
        replay(&durable_image(&vfs)),
        [vec![set(1, 1), Ev::Delete(1)]]
    );

    // Inside an armed query it is a double arm.
    rec.arm().unwrap();
    assert!(matches!(
        rec.commit_events([set(2, 2)]),
        Err(RecorderError::AlreadyArmed)
    ));
    assert!(rec.is_poisoned());
}

#[test]
fn abort_drops_the_buffer_and_reports_whether_the_store_saw_mutations() {
    let (vfs, rec) = setup(SyncPolicy::Always);
    rec.arm().unwrap();
    assert!(!rec.abort().unwrap(), "nothing recorded");
    rec.arm().unwrap();
    rec.record(set(1, 1));
    let before = io_counts(&vfs);
    assert!(rec.abort().unwrap(), "the live store must be quarantined");
    assert_eq!(
        io_counts(&vfs),
        before,
        "an aborted in-memory query never touches the log"
    );
    assert!(!rec.is_armed());
    assert!(!rec.is_poisoned(), "the host decides");
    // The recorder is usable again, and the aborted events are gone.
    rec.commit_events([set(2, 2)]).unwrap();
    drop(rec);
    assert_eq!(replay(&vfs), [vec![set(2, 2)]]);
}

#[test]
fn abort_without_arm_is_tolerated() {
    let (_vfs, rec) = setup(SyncPolicy::Always);
    assert!(!rec.abort().unwrap());
    assert!(!rec.abort().unwrap());
    assert!(!rec.is_poisoned());
    rec.arm().unwrap();
}

#[test]
fn checkpoint_marker_is_appended() {
    let (vfs, rec) = setup(SyncPolicy::Always);
    let lsn = rec.commit_events([set(1, 1)]).unwrap().lsn().unwrap();
    let marker = rec.checkpoint_marker(lsn).unwrap();
    assert!(marker > lsn);
    assert_eq!(rec.wal().stats().bytes_since_checkpoint, 0);
    assert_eq!(
        frame_kinds(&vfs, Path::new(DIR)),
        [FrameKind::Tx, FrameKind::Checkpoint]
    );
}

#[test]
fn truncate_up_to_removes_old_segments() {
    let vfs = SimVfs::new();
    let (wal, _) = Wal::open(DIR, sim_opts(&vfs, SyncPolicy::Always).segment_size(4096)).unwrap();
    let rec = Rec::new(Arc::new(wal));
    let mut last = Lsn::ZERO;
    for i in 0..100 {
        last = rec
            .commit_events([Ev::Blob(vec![i as u8; 200])])
            .unwrap()
            .lsn()
            .unwrap();
    }
    let segments = rec.wal().segments().len();
    assert!(segments > 3, "{segments}");
    rec.checkpoint_marker(last).unwrap();
    let removed = rec.truncate_up_to(last).unwrap();
    assert!(removed > 0);
    assert_eq!(rec.wal().segments().len(), segments - removed);
}

/// A mirror that counts its calls and can be told to fail.
#[derive(Debug, Default)]
struct CountingMirror {
    persists: AtomicUsize,
    forced: AtomicUsize,
    dirs: Mutex<Vec<PathBuf>>,
    fail: Mutex<bool>,
}

impl WalMirror for CountingMirror {
    fn persist(&self, wal_dir: &Path) -> io::Result<()> {
        self.persists.fetch_add(1, Ordering::SeqCst);
        self.dirs.lock().unwrap().push(wal_dir.to_path_buf());
        if *self.fail.lock().unwrap() {
            return Err(io::Error::other("archive disk unplugged"));
        }
        Ok(())
    }

    fn persist_force(&self, wal_dir: &Path) -> io::Result<()> {
        self.forced.fetch_add(1, Ordering::SeqCst);
        self.dirs.lock().unwrap().push(wal_dir.to_path_buf());
        Ok(())
    }
}

#[test]
fn mirror_persists_after_flush_and_forced_after_force_fsync() {
    let (_vfs, rec) = setup(SyncPolicy::Always);
    let mirror = Arc::new(CountingMirror::default());
    let rec = rec.with_mirror(mirror.clone());
    rec.arm().unwrap();
    rec.commit_and_flush().unwrap();
    assert_eq!(
        mirror.persists.load(Ordering::SeqCst),
        0,
        "a read-only query does not persist"
    );
    rec.commit_events([set(1, 1)]).unwrap();
    assert_eq!(mirror.persists.load(Ordering::SeqCst), 1);
    rec.flush().unwrap();
    assert_eq!(mirror.persists.load(Ordering::SeqCst), 2);
    rec.force_fsync().unwrap();
    assert_eq!(mirror.forced.load(Ordering::SeqCst), 1);
    assert!(
        mirror
            .dirs
            .lock()
            .unwrap()
            .iter()
            .all(|d| d == Path::new(DIR))
    );
}

#[test]
fn truncate_with_a_mirror_keeps_the_full_history() {
    let vfs = SimVfs::new();
    let (wal, _) = Wal::open(DIR, sim_opts(&vfs, SyncPolicy::Always).segment_size(4096)).unwrap();
    let mirror = Arc::new(CountingMirror::default());
    let rec = Rec::new(Arc::new(wal)).with_mirror(mirror.clone());
    let mut last = Lsn::ZERO;
    for i in 0..50 {
        last = rec
            .commit_events([Ev::Blob(vec![i as u8; 200])])
            .unwrap()
            .lsn()
            .unwrap();
    }
    let segments = rec.wal().segments().len();
    rec.checkpoint_marker(last).unwrap();
    assert_eq!(rec.truncate_up_to(last).unwrap(), 0);
    assert_eq!(rec.wal().segments().len(), segments);
    assert_eq!(
        mirror.forced.load(Ordering::SeqCst),
        1,
        "the mirror was brought up to date"
    );
}

#[test]
fn a_failing_mirror_poisons() {
    let (_vfs, rec) = setup(SyncPolicy::Always);
    let mirror = Arc::new(CountingMirror::default());
    let rec = rec.with_mirror(mirror.clone());
    *mirror.fail.lock().unwrap() = true;
    let err = rec.commit_events([set(1, 1)]).unwrap_err();
    assert!(matches!(err, RecorderError::Mirror(_)), "{err:?}");
    assert!(
        rec.poisoned_reason()
            .unwrap()
            .contains("archive disk unplugged")
    );
    poisoned(rec.arm());
}

#[test]
fn once_poisoned_every_entry_point_refuses() {
    let (vfs, rec) = setup(SyncPolicy::Always);
    let lsn = rec.commit_events([set(1, 1)]).unwrap().lsn().unwrap();
    rec.arm().unwrap();
    rec.record(set(2, 2));
    rec.poison("live store diverged");
    let before = io_counts(&vfs);
    assert!(rec.is_poisoned());
    assert_eq!(rec.poisoned_reason().unwrap(), "live store diverged");
    assert_eq!(rec.poisoned().unwrap(), "live store diverged");
    assert_eq!(poisoned(rec.ensure_not_poisoned()), "live store diverged");
    poisoned(rec.arm());
    poisoned(rec.begin());
    rec.record(set(3, 3));
    poisoned(rec.try_record(&set(3, 3)));
    poisoned(rec.commit());
    poisoned(rec.commit_and_flush());
    poisoned(rec.commit_events([set(4, 4)]));
    poisoned(rec.abort());
    poisoned(rec.flush());
    poisoned(rec.force_fsync());
    poisoned(rec.checkpoint_marker(lsn));
    poisoned(rec.truncate_up_to(lsn));
    rec.poison("a second reason");
    assert_eq!(rec.poisoned_reason().unwrap(), "live store diverged");
    assert_eq!(io_counts(&vfs), before, "refusals do no I/O");
    drop(rec);
    assert_eq!(replay(&vfs), [vec![set(1, 1)]]);
}

#[test]
fn the_guard_commits_and_aborts_explicitly() {
    let (vfs, rec) = setup(SyncPolicy::Never);
    let tx = rec.begin().unwrap();
    tx.record(set(1, 1));
    tx.try_record(&set(1, 2)).unwrap();
    let lsn = tx.commit_and_flush().unwrap().lsn().unwrap();
    assert_eq!(
        rec.wal().durable_lsn(),
        lsn,
        "the guard's commit_and_flush is the durable boundary"
    );

    let tx = rec.begin().unwrap();
    tx.record(set(2, 2));
    assert!(tx.abort().unwrap());
    assert!(
        !rec.is_poisoned(),
        "an explicit abort leaves the decision to the host"
    );

    let tx = rec.begin().unwrap();
    tx.record(set(3, 3));
    assert!(tx.commit().unwrap().wrote());
    rec.flush().unwrap();
    drop(rec);
    assert_eq!(
        replay(&durable_image(&vfs)),
        [vec![set(1, 1), set(1, 2)], vec![set(3, 3)]]
    );
}

#[test]
fn a_dropped_guard_aborts_and_poisons_only_if_it_recorded() {
    let (_vfs, rec) = setup(SyncPolicy::Always);
    {
        let _tx = rec.begin().unwrap();
    }
    assert!(!rec.is_armed());
    assert!(
        !rec.is_poisoned(),
        "nothing was recorded: a read-only query may just end"
    );
    {
        let tx = rec.begin().unwrap();
        tx.record(set(1, 1));
    }
    assert!(!rec.is_armed());
    let reason = rec.poisoned_reason().unwrap();
    assert!(
        reason.contains("dropped after recording 1 mutation"),
        "{reason}"
    );
    assert_eq!(rec.wal().stats().appends, 0);
}

#[test]
fn a_panic_through_the_guard_aborts_and_poisons() {
    let (_vfs, rec) = setup(SyncPolicy::Always);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let tx = rec.begin().unwrap();
        tx.record(set(1, 1));
        panic!("query executor bug");
    }));
    assert!(r.is_err());
    assert!(!rec.is_armed());
    assert!(
        rec.poisoned_reason()
            .unwrap()
            .contains("unwound by a panic")
    );
    assert_eq!(rec.wal().stats().appends, 0);
}

#[test]
fn a_second_guard_is_a_double_arm() {
    let (_vfs, rec) = setup(SyncPolicy::Always);
    let tx = rec.begin().unwrap();
    assert!(matches!(rec.begin(), Err(RecorderError::AlreadyArmed)));
    poisoned(tx.commit_and_flush());
}

/// A codec that refuses negative values.
struct Picky;

impl Codec<Ev> for Picky {
    fn encode(&self, event: &Ev, out: &mut Vec<u8>) -> Result<(), CodecError> {
        if let Ev::SetProp { value, .. } = event
            && *value < 0
        {
            out.push(0xAA); // a partial encoding, which must not stay in the buffer
            return Err(CodecError("negative values are not supported".into()));
        }
        Bincode.encode(event, out)
    }
}

impl Decoder<Ev> for Picky {
    fn decode(&self, input: &[u8]) -> Result<(Ev, usize), CodecError> {
        Bincode.decode(input)
    }
}

#[test]
fn an_event_the_codec_refuses_poisons() {
    let vfs = SimVfs::new();
    let rec = WalRecorder::with_codec(open_sim(&vfs, SyncPolicy::Always), Picky);
    rec.arm().unwrap();
    rec.record(set(1, 1));
    let err = rec.try_record(&set(1, -1)).unwrap_err();
    assert!(matches!(err, RecorderError::Codec(_)), "{err:?}");
    assert!(rec.poisoned_reason().unwrap().contains("negative values"));
    poisoned(rec.commit());
    assert_eq!(rec.wal().stats().appends, 0);

    // The trait method latches the same failure.
    let rec = WalRecorder::with_codec(open_sim(&SimVfs::new(), SyncPolicy::Always), Picky);
    rec.arm().unwrap();
    rec.record(set(1, -1));
    assert!(rec.is_poisoned());
}

/// A codec that panics half-way through encoding a `Delete`.
struct Panicky;

impl Codec<Ev> for Panicky {
    fn encode(&self, event: &Ev, out: &mut Vec<u8>) -> Result<(), CodecError> {
        if let Ev::Delete(_) = event {
            out.push(0xAA);
            panic!("codec bug");
        }
        Bincode.encode(event, out)
    }
}

impl Decoder<Ev> for Panicky {
    fn decode(&self, input: &[u8]) -> Result<(Ev, usize), CodecError> {
        Bincode.decode(input)
    }
}

#[test]
fn a_panic_inside_the_codec_poisons() {
    let vfs = SimVfs::new();
    let rec = WalRecorder::with_codec(open_sim(&vfs, SyncPolicy::Always), Panicky);
    rec.arm().unwrap();
    rec.record(set(1, 1));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rec.record(Ev::Delete(1))));
    assert!(r.is_err());
    assert!(rec.is_poisoned());
    assert!(rec.poisoned_reason().unwrap().contains("panic"));
    assert!(!rec.is_armed());
    assert!(matches!(rec.commit(), Err(RecorderError::Poisoned { .. })));
    assert_eq!(
        rec.wal().stats().appends,
        0,
        "the partial encoding never reached the log"
    );
}

#[test]
fn zero_byte_events_are_refused() {
    let vfs = SimVfs::new();
    let rec: WalRecorder<()> = WalRecorder::new(open_sim(&vfs, SyncPolicy::Always));
    rec.arm().unwrap();
    assert!(matches!(rec.try_record(&()), Err(RecorderError::Codec(_))));
    assert!(rec.poisoned_reason().unwrap().contains("zero bytes"));
}

#[test]
fn a_log_poisoned_elsewhere_is_surfaced_and_refused() {
    let vfs = SimVfs::new();
    let wal = open_sim(&vfs, SyncPolicy::Never);
    let rec = Rec::new(wal.clone());
    rec.commit_events([set(1, 1)]).unwrap();
    // Another user of the log hits a failing fsync.
    vfs.fail_nth(
        OpKind::SyncData,
        vfs.op_count(OpKind::SyncData) + 1,
        wal_log::sim::Fault::Eio,
    );
    wal.append(b"x").unwrap();
    assert!(wal.sync().is_err());
    assert!(rec.is_poisoned());
    let reason = rec.poisoned_reason().unwrap();
    assert!(reason.contains("fsync"), "{reason}");
    assert_eq!(poisoned(rec.arm()), reason);
}

#[test]
fn a_query_past_the_buffer_cap_streams_fragments_and_commits_atomically() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always))
        .with_options(RecorderOptions::default().max_buffered_bytes(64 << 10));
    let events: Vec<Ev> = (0..80u8).map(|i| Ev::Blob(vec![i; 100 << 10])).collect();
    rec.arm().unwrap();
    let mut peak = 0;
    for e in &events {
        rec.record(e.clone());
        peak = peak.max(rec.buffered_bytes());
    }
    assert!(rec.is_streaming());
    assert!(
        peak <= (64 << 10) + (101 << 10),
        "the buffer stays near the cap: {peak}"
    );
    assert!(
        rec.wal().stats().appends > 0,
        "fragments reached the log before the commit"
    );
    let lsn = rec.commit_and_flush().unwrap().lsn().unwrap();
    assert!(!rec.is_streaming());
    let kinds = frame_kinds(&vfs, Path::new(DIR));
    assert_eq!(kinds.first(), Some(&FrameKind::FragBegin));
    assert_eq!(kinds.last(), Some(&FrameKind::FragEnd));
    assert_eq!(
        kinds.len(),
        2,
        "8 MiB: a full first fragment and the rest: {kinds:?}"
    );
    assert_eq!(transactions(rec.wal()), [(lsn, events.clone())]);
    // A small query afterwards is one frame again.
    rec.commit_events([set(1, 1)]).unwrap();
    drop(rec);
    assert_eq!(replay(&vfs), [events, vec![set(1, 1)]]);
}

#[test]
fn aborting_a_streamed_query_writes_an_abort_frame() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always))
        .with_options(RecorderOptions::default().max_buffered_bytes(4096));
    rec.arm().unwrap();
    let mut n = 0;
    while rec.wal().stats().appends == 0 {
        rec.record(Ev::Blob(vec![n as u8; 64 << 10]));
        n += 1;
    }
    assert!(
        n as usize * (64 << 10) > MAX_FRAME_PAYLOAD - 8,
        "the first fragment holds a full frame"
    );
    assert!(rec.abort().unwrap());
    let kinds = frame_kinds(&vfs, Path::new(DIR));
    assert_eq!(kinds, [FrameKind::FragBegin, FrameKind::FragAbort]);
    rec.commit_events([set(5, 5)]).unwrap();
    drop(rec);
    assert_eq!(
        replay(&vfs),
        [vec![set(5, 5)]],
        "replay skips the aborted fragments"
    );
}

#[test]
fn a_small_cap_still_writes_small_queries_as_one_frame() {
    // The log's stream writer holds up to one frame, so a query that outgrows a tiny cap but
    // still fits a frame is written as one Tx frame at commit.
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always))
        .with_options(RecorderOptions::default().max_buffered_bytes(16));
    let events: Vec<Ev> = (0..50).map(|i| set(i, i as i64)).collect();
    rec.commit_events(events.clone()).unwrap();
    assert_eq!(frame_kinds(&vfs, Path::new(DIR)), [FrameKind::Tx]);
    drop(rec);
    assert_eq!(replay(&vfs), [events]);
}

#[test]
fn the_recorder_is_send_sync_and_usable_as_a_trait_object() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Rec>();
    let vfs = SimVfs::new();
    let rec = Arc::new(Rec::new(open_sim(&vfs, SyncPolicy::Always)));
    let store_side: Arc<dyn MutationRecorder<Ev>> = rec.clone();
    rec.arm().unwrap();
    store_side.record(set(1, 1));
    assert!(store_side.poisoned().is_none());
    rec.commit().unwrap();
    assert_eq!(transactions(rec.wal()).len(), 1);

    // A store generic over its recorder takes the recorder by reference, `Arc` or `Box`.
    fn fire<R: MutationRecorder<Ev>>(r: R, e: Ev) -> Option<String> {
        r.record(e);
        r.poisoned()
    }
    rec.arm().unwrap();
    assert!(fire(&*rec, set(2, 2)).is_none());
    assert!(fire(rec.clone(), set(3, 3)).is_none());
    assert!(fire(Box::new(rec.clone()), set(4, 4)).is_none());
    assert_eq!(rec.recorded_events(), 3);
    rec.commit().unwrap();
    assert_eq!(transactions(rec.wal()).len(), 2);
}
