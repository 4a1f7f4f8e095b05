//! `TailReader`, the reader of a log another process writes: only durable transactions (as
//! far as another process can prove them), no lock, a start by headers only, rotation,
//! truncation and a replaced log as typed errors, and saved positions.
//!
//! The writer runs in this process through `Wal`, but the reader shares nothing with it: it
//! sees only the directory, as a reader in another process does (`examples/ship` runs the
//! two in separate processes under SIGKILL).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wal_log::sim::{HookedVfs, OpKind, SimVfs};
use wal_log::vfs::Vfs;
use wal_log::{
    FollowPosition, Lsn, Options, SyncPolicy, TailOptions, TailReader, Transaction, Wal, WalError,
};

const WATCHDOG: Duration = Duration::from_secs(60);

fn sim_dir() -> SimVfs {
    let sim = SimVfs::new();
    sim.create_dir_all(Path::new("/db")).unwrap();
    sim
}

fn opts(vfs: Arc<dyn Vfs>) -> Options {
    Options::default()
        .vfs(vfs)
        .segment_size(2 << 10)
        .preallocate(false)
        .publish_durable(true)
}

fn tail_opts(vfs: Arc<dyn Vfs>) -> TailOptions {
    TailOptions::default().vfs(vfs)
}

/// Everything the reader has now, without waiting.
fn drain(r: &mut TailReader) -> Vec<Transaction> {
    let mut out = Vec::new();
    while let Some(t) = r.try_next().unwrap() {
        out.push(t);
    }
    out
}

fn body(i: u32) -> Vec<u8> {
    let mut b = i.to_le_bytes().to_vec();
    b.resize(100, i as u8);
    b
}

fn id(t: &Transaction) -> u32 {
    u32::from_le_bytes(t.body[..4].try_into().unwrap())
}

/// Written is not durable: under `Never` nothing is read until the writer syncs (it then
/// publishes its durable point), and a writer that does not publish is read only as far as
/// its segments are sealed.
#[test]
fn only_what_another_process_can_prove_durable_is_read() {
    let sim = sim_dir();
    let vfs: Arc<dyn Vfs> = Arc::new(sim.clone());
    let (wal, _) = Wal::open("/db", opts(vfs.clone()).sync(SyncPolicy::Never)).unwrap();
    let a = wal.append(&body(1)).unwrap();
    let mut r = TailReader::open("/db", Lsn::FIRST, tail_opts(vfs.clone())).unwrap();
    assert!(drain(&mut r).is_empty(), "written, not durable");
    assert!(r.published(), "the open published the recovered end");
    wal.sync().unwrap();
    let got = drain(&mut r);
    assert_eq!(got.iter().map(|t| t.lsn).collect::<Vec<_>>(), [a]);
    drop(wal);

    // The same writer without publishing: only sealed segments.
    let (wal, _) = Wal::open(
        "/db",
        opts(vfs.clone())
            .publish_durable(false)
            .sync(SyncPolicy::Always),
    )
    .unwrap();
    let mut r = TailReader::resume("/db", &r.position(), tail_opts(vfs.clone())).unwrap();
    let first = wal.append(&body(2)).unwrap();
    assert!(
        drain(&mut r).is_empty(),
        "durable, but nothing proves it outside"
    );
    let seg = wal.segments().len();
    let mut i = 3;
    while wal.segments().len() == seg {
        wal.append(&body(i)).unwrap();
        i += 1;
    }
    let got = drain(&mut r);
    assert_eq!(got.first().map(|t| t.lsn), Some(first));
    let sealed = wal.segments()[seg - 1].last_lsn;
    assert!(got.iter().all(|t| t.lsn < sealed));
    // The append that rotated went out with the seal: every one is in the sealed segment.
    assert_eq!(got.len() as u32, i - 2, "the whole sealed segment");
}

/// The reader never takes the lock: the writer opens, closes and reopens while it reads,
/// the lock is free whenever the writer is closed, and it reads across the restart.
#[test]
fn the_reader_never_takes_the_writers_lock() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options::default()
        .segment_size(4 << 10)
        .publish_durable(true);
    let (wal, _) = Wal::open(dir.path(), o.clone()).unwrap();
    let one = wal.append(b"one").unwrap();
    let mut r = TailReader::open(dir.path(), Lsn::ZERO, TailOptions::default()).unwrap();
    assert_eq!(r.next_timeout(WATCHDOG).unwrap().unwrap().lsn, one);
    drop(wal);
    wal_log::inspect::check_not_open(&wal_log::StdVfs, dir.path()).unwrap();
    let (wal, _) = Wal::open(dir.path(), o).unwrap();
    let two = wal.append(b"two").unwrap();
    let t = r.next_timeout(WATCHDOG).unwrap().unwrap();
    assert_eq!((t.lsn, t.prev, &t.body[..]), (two, one, &b"two"[..]));
}

/// The offsets read in each file.
type Reads = Arc<Mutex<BTreeMap<PathBuf, Vec<u64>>>>;

/// Records the offsets read in each file.
fn reads_by_file(sim: &SimVfs) -> (Arc<dyn Vfs>, Reads) {
    let seen: Reads = Arc::default();
    let s = seen.clone();
    let vfs = HookedVfs::new(Arc::new(sim.clone()), move |call| {
        if call.op == OpKind::Read {
            let mut m = s.lock().unwrap();
            m.entry(call.path.to_path_buf())
                .or_default()
                .push(call.offset);
        }
        Ok(())
    });
    (Arc::new(vfs), seen)
}

/// Starting at an LSN reads segment headers (a binary search), then the segment holding the
/// LSN: never the frames of the segments before it.
#[test]
fn a_start_reads_headers_not_the_log_before_it() {
    let sim = sim_dir();
    let (wal, _) = Wal::open("/db", opts(Arc::new(sim.clone()))).unwrap();
    for i in 0..800 {
        wal.append(&body(i)).unwrap();
    }
    let segs = wal.segments();
    assert!(segs.len() > 30, "{}", segs.len());
    let target = &segs[segs.len() - 5];
    let from = Lsn(target.base_lsn.0 + 3);
    let (vfs, seen) = reads_by_file(&sim);
    let mut r = TailReader::open("/db", from, tail_opts(vfs)).unwrap();
    let t = r.try_next().unwrap().unwrap();
    assert!(
        t.lsn >= from && t.lsn <= from.next(),
        "{} from {from}",
        t.lsn
    );
    let seen = seen.lock().unwrap();
    let frames_read: Vec<&PathBuf> = seen
        .iter()
        .filter(|(_, offsets)| offsets.iter().any(|o| *o > 0))
        .map(|(p, _)| p)
        .collect();
    let start = PathBuf::from("/db").join(wal_log::layout::segment_file_name(target.seq));
    assert_eq!(
        frames_read,
        [&start],
        "only the segment holding {from} is read past its header"
    );
    let headers = seen.len();
    assert!(
        headers < 12,
        "{headers} files opened for a log of {} segments",
        segs.len()
    );
}

/// A start past the end of what is written is refused; the end + 1 is accepted.
#[test]
fn a_start_past_the_end_is_refused() {
    let sim = sim_dir();
    let vfs: Arc<dyn Vfs> = Arc::new(sim.clone());
    let (wal, _) = Wal::open("/db", opts(vfs.clone())).unwrap();
    for i in 0..50 {
        wal.append(&body(i)).unwrap();
    }
    let next = wal.last_lsn().next();
    match TailReader::open("/db", Lsn(next.0 + 10), tail_opts(vfs.clone())) {
        Err(WalError::BeyondEnd { requested, next: n }) => {
            assert_eq!((requested, n), (Lsn(next.0 + 10), next));
        }
        other => panic!("{other:?}"),
    }
    let mut r = TailReader::open("/db", next, tail_opts(vfs)).unwrap();
    assert!(drain(&mut r).is_empty());
    let lsn = wal.append(b"after").unwrap();
    assert_eq!(
        drain(&mut r).iter().map(|t| t.lsn).collect::<Vec<_>>(),
        [lsn]
    );
}

/// Rotation is followed through the seals; truncation that passes the reader is a typed
/// `Truncated` naming the first transaction it has not returned, both when the files were
/// deleted (what the reader still has open it reads to the seal, then the next segment is
/// gone) and when the file it was reading was recycled and overwritten by a new segment.
#[test]
fn truncation_passing_the_reader_is_a_typed_error() {
    for recycle in [0, 4] {
        let sim = sim_dir();
        let vfs: Arc<dyn Vfs> = Arc::new(sim.clone());
        let o = opts(vfs.clone()).recycle_segments(recycle);
        let (wal, _) = Wal::open("/db", o).unwrap();
        for i in 0..5 {
            wal.append(&body(i)).unwrap();
        }
        let mut r = TailReader::open("/db", Lsn::ZERO, tail_opts(vfs.clone())).unwrap();
        let mut got = drain(&mut r);
        assert_eq!(got.len(), 5);
        // The writer goes on for many segments and truncates behind itself, past the reader;
        // with recycling, rotations then overwrite the files truncation kept.
        for i in 5..200 {
            wal.append(&body(i)).unwrap();
            if i % 20 == 0 {
                wal.truncate_prefix(wal.durable_lsn()).unwrap();
            }
        }
        if recycle > 0 {
            assert!(wal.stats().recycled > 0);
        }
        let err = loop {
            match r.try_next() {
                Ok(Some(t)) => got.push(t),
                Ok(None) => panic!("recycle {recycle}: caught up through truncated segments"),
                Err(e) => break e,
            }
        };
        // What it did return is the log's first transactions, without a gap.
        for (i, t) in got.iter().enumerate() {
            assert_eq!(id(t), i as u32, "recycle {recycle}");
        }
        let last = got.last().unwrap().lsn;
        for e in [err, r.try_next().map(|_| ()).unwrap_err()] {
            match e {
                WalError::Truncated { requested, oldest } => {
                    assert_eq!(requested, last.next(), "recycle {recycle}");
                    assert_eq!(oldest, wal.oldest_retained_lsn(), "recycle {recycle}");
                }
                other => panic!("recycle {recycle}: {other:?}"),
            }
        }
    }
}

/// A follower reading across many rotations gets every transaction once, in order, each
/// naming the one before it, including large fragmented ones and around checkpoint markers.
#[test]
fn every_transaction_across_rotations_with_the_previous_ones_lsn() {
    let sim = sim_dir();
    let vfs: Arc<dyn Vfs> = Arc::new(sim.clone());
    let (wal, _) = Wal::open("/db", opts(vfs.clone())).unwrap();
    let mut r = TailReader::open("/db", Lsn::ZERO, tail_opts(vfs)).unwrap();
    let mut expect = Vec::new();
    let mut got = Vec::new();
    for i in 0..300u32 {
        if i % 50 == 7 {
            // Larger than a segment: fragments across segments.
            let mut s = wal.stream().unwrap();
            let mut b = body(i);
            b.resize(5 << 10, 9);
            s.write(&b).unwrap();
            expect.push(s.commit().unwrap());
        } else {
            expect.push(wal.append(&body(i)).unwrap());
        }
        if i % 30 == 0 {
            wal.checkpoint_marker(wal.durable_lsn()).unwrap();
        }
        got.extend(drain(&mut r));
    }
    assert_eq!(got.iter().map(|t| t.lsn).collect::<Vec<_>>(), expect);
    let mut prev = Lsn::ZERO;
    for (i, t) in got.iter().enumerate() {
        assert_eq!(id(t), i as u32);
        assert_eq!(t.prev, prev, "transaction {i}");
        prev = t.lsn;
    }
    assert!(wal.segments().len() > 10);
}

/// A saved position resumes right after it, in this process (`Wal::follow_at`) and in
/// another (`TailReader::resume`); a position of another log is refused, and so is one that
/// a restored log no longer reaches or holds differently.
#[test]
fn saved_positions_resume_or_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    let o = Options::default()
        .segment_size(4 << 10)
        .publish_durable(true);
    let (wal, _) = Wal::open(dir.path(), o.clone()).unwrap();
    for i in 0..20 {
        wal.append(&body(i)).unwrap();
    }
    drop(wal);
    copy_dir(dir.path(), backup.path());
    let (wal, _) = Wal::open(dir.path(), o.clone()).unwrap();
    for i in 20..40 {
        wal.append(&body(i)).unwrap();
    }
    let mut r = TailReader::open(dir.path(), Lsn::ZERO, TailOptions::default()).unwrap();
    for _ in 0..30 {
        r.next_timeout(WATCHDOG).unwrap().unwrap();
    }
    let pos = FollowPosition::decode(&r.position().encode()).unwrap();
    let resumed = |t: Option<Transaction>| t.map(|t| id(&t));
    let mut again = TailReader::resume(dir.path(), &pos, TailOptions::default()).unwrap();
    assert_eq!(resumed(again.next_timeout(WATCHDOG).unwrap()), Some(30));
    let mut inproc = wal.follow_at(&pos).unwrap();
    assert_eq!(resumed(inproc.next_timeout(WATCHDOG).unwrap()), Some(30));
    drop(inproc);

    // Another log.
    let other = tempfile::tempdir().unwrap();
    let (w2, _) = Wal::open(other.path(), o.clone()).unwrap();
    w2.append(b"x").unwrap();
    assert!(matches!(w2.follow_at(&pos), Err(WalError::OtherLog { .. })));
    drop(w2);
    assert!(matches!(
        TailReader::resume(other.path(), &pos, TailOptions::default()),
        Err(WalError::OtherLog { .. })
    ));
    drop(wal);

    // The primary restored from the backup (20 transactions): the position is past its end.
    std::fs::remove_dir_all(dir.path()).unwrap();
    copy_dir(backup.path(), dir.path());
    let (wal, _) = Wal::open(dir.path(), o).unwrap();
    assert!(matches!(
        wal.follow_at(&pos),
        Err(WalError::BeyondEnd { .. })
    ));
    assert!(matches!(
        TailReader::resume(dir.path(), &pos, TailOptions::default()),
        Err(WalError::BeyondEnd { .. })
    ));
    // It takes other commits at the same LSNs: the follower diverged.
    for i in 100..140 {
        wal.append(&body(i)).unwrap();
    }
    let diverged = |got: Result<Option<Transaction>, WalError>| match got {
        Err(WalError::Diverged { lsn, .. }) => assert_eq!(lsn, pos.lsn),
        other => panic!("{:?}", other.map(|t| t.map(|t| t.lsn))),
    };
    diverged(wal.follow_at(&pos).unwrap().next_timeout(WATCHDOG));
    let mut tail = TailReader::resume(dir.path(), &pos, TailOptions::default()).unwrap();
    diverged(tail.next_timeout(WATCHDOG));
    diverged(tail.try_next());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A writer that cannot publish (its write to `LOCK` fails) goes on: the log is not
/// poisoned, and a reader still gets every transaction once its segment is sealed. Only the
/// open refuses, rather than leave an earlier run's record in place.
#[test]
fn a_failed_publish_costs_lag_not_the_log() {
    let sim = sim_dir();
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let fail = failing.clone();
    let vfs: Arc<dyn Vfs> = Arc::new(HookedVfs::new(Arc::new(sim.clone()), move |call| {
        if call.op == OpKind::Write
            && call.path.ends_with("LOCK")
            && fail.load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(std::io::Error::from_raw_os_error(5));
        }
        Ok(())
    }));
    match Wal::open("/db", opts(vfs.clone())) {
        Err(WalError::Io { op, path, source }) => {
            assert_eq!((op, path.ends_with("LOCK")), ("write", true));
            assert_eq!(source.raw_os_error(), Some(5));
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    failing.store(false, std::sync::atomic::Ordering::Relaxed);
    let (wal, _) = Wal::open("/db", opts(vfs)).unwrap();
    failing.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut r = TailReader::open("/db", Lsn::ZERO, tail_opts(Arc::new(sim.clone()))).unwrap();
    let first = wal.append(&body(0)).unwrap();
    assert!(drain(&mut r).is_empty(), "the record still says LSN 0");
    let mut i = 1;
    while wal.segments().len() == 1 {
        wal.append(&body(i)).unwrap();
        i += 1;
    }
    assert!(wal.poisoned_reason().is_none());
    let got = drain(&mut r);
    assert_eq!(got.first().map(|t| t.lsn), Some(first));
    assert_eq!(got.len() as u32, i, "the whole sealed segment");
}

/// A directory that holds another log now (the primary was replaced while a reader was in
/// its newest segment) is refused as foreign, not read as a continuation.
#[test]
fn a_replaced_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options::default()
        .segment_size(4 << 10)
        .publish_durable(true);
    let (wal, _) = Wal::open(dir.path(), o.clone()).unwrap();
    wal.append(b"old").unwrap();
    let mut r = TailReader::open(dir.path(), Lsn::ZERO, TailOptions::default()).unwrap();
    assert!(r.next_timeout(WATCHDOG).unwrap().is_some());
    drop(wal);
    std::fs::remove_dir_all(dir.path()).unwrap();
    let (wal, _) = Wal::open(dir.path(), o).unwrap();
    while wal.segments().len() < 3 {
        wal.append(&[1; 500]).unwrap();
    }
    match r.next_timeout(Duration::from_millis(50)) {
        Err(WalError::ForeignSegment {
            expected, found, ..
        }) => {
            assert_eq!((expected, found), (r.log_id(), wal.log_id()));
        }
        other => panic!("{:?}", other.map(|t| t.map(|t| t.lsn))),
    }
}

/// A writer that does not publish erases the record an earlier run left: in a directory
/// restored from a copy whose `LOCK` is newer than its segments (copied while the writer ran),
/// that record names LSNs the new run assigns again, to frames not yet durable.
#[test]
fn a_writer_that_does_not_publish_erases_an_earlier_record() {
    let (dir, backup) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let o = Options::default()
        .segment_size(1 << 20)
        .publish_durable(true);
    let (wal, _) = Wal::open(dir.path(), o.clone()).unwrap();
    for i in 0..5 {
        wal.append(&body(i)).unwrap();
    }
    copy_dir(dir.path(), backup.path());
    for i in 5..10 {
        wal.append(&body(i)).unwrap();
    }
    drop(wal);
    // The segments of the copy, the LOCK of the later run (its record says LSN 10).
    std::fs::copy(dir.path().join("LOCK"), backup.path().join("LOCK")).unwrap();
    let quiet = o.publish_durable(false).sync(SyncPolicy::Never);
    // An open that cannot erase it refuses.
    let failing = HookedVfs::new(Arc::new(wal_log::StdVfs), |call| {
        if call.op == OpKind::Write && call.path.ends_with("LOCK") {
            return Err(std::io::Error::from_raw_os_error(28));
        }
        Ok(())
    });
    match Wal::open(backup.path(), quiet.clone().vfs(Arc::new(failing))) {
        Err(WalError::Io {
            op: "write", path, ..
        }) => assert!(path.ends_with("LOCK")),
        other => panic!("{:?}", other.map(|_| ())),
    }
    let (wal, _) = Wal::open(backup.path(), quiet).unwrap();
    for i in 100..105 {
        wal.append(&body(i)).unwrap();
    }
    let mut r = TailReader::open(backup.path(), Lsn::FIRST, TailOptions::default()).unwrap();
    let got = drain(&mut r);
    assert!(
        got.is_empty(),
        "read {} frames that are not durable",
        got.len()
    );
    assert!(!r.published());
}
