//! Follow readers at the edges: waiting without a limit, a log closed or poisoned under a
//! waiting reader, errors that must not skip anything, truncation racing rotation and
//! readers. Regression tests for defects a review found; each failed before its fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wal_log::sim::{Fault, OpKind, SimVfs};
use wal_log::vfs::Vfs;
use wal_log::{Lsn, Options, SyncPolicy, TxReader, Wal, WalError};

#[path = "support/wait.rs"]
mod wait;
use wait::{WATCHDOG, until_readers_wait};

fn sim_opts(sim: &SimVfs) -> Options {
    Options::default()
        .vfs(Arc::new(sim.clone()))
        .segment_size(4 << 10)
        .preallocate(false)
}

fn sim_dir() -> SimVfs {
    let sim = SimVfs::new();
    sim.create_dir_all(Path::new("/db")).unwrap();
    sim
}

/// Runs `next_timeout(an hour)` on another thread, then `before`; the result, or a failure if
/// it is still waiting after the watchdog. With `parks`, `before` runs only once the reader
/// is parked in that log (so the news must wake it).
fn wait_next(
    mut reader: TxReader,
    parks: Option<Arc<Wal>>,
    before: impl FnOnce(),
) -> (TxReader, Result<Option<Lsn>, WalError>) {
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let got = reader.next_timeout(Duration::from_secs(3600));
        tx.send(got.map(|t| t.map(|t| t.lsn))).unwrap();
        reader
    });
    if let Some(wal) = parks {
        until_readers_wait(&wal, 1);
    }
    before();
    let got = rx.recv_timeout(WATCHDOG).expect("the reader kept waiting");
    (waiter.join().unwrap(), got)
}

/// `Duration::MAX` means no limit, not an overflow panic.
#[test]
fn next_timeout_without_a_limit_returns_the_next_transaction() {
    let sim = sim_dir();
    let (wal, _) = Wal::open("/db", sim_opts(&sim)).unwrap();
    let one = wal.append(b"one").unwrap();
    let mut r = wal.follow(Lsn::ZERO).unwrap();
    assert_eq!(r.next_timeout(Duration::MAX).unwrap().unwrap().lsn, one);
    let wal = Arc::new(wal);
    let two = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            until_readers_wait(&wal, 1);
            wal.append(b"two").unwrap()
        })
    };
    assert_eq!(r.next_timeout(Duration::MAX).unwrap().unwrap().lsn, Lsn(2));
    assert_eq!(two.join().unwrap(), Lsn(2));
}

/// A follow reader waiting when the `Wal` is dropped stops waiting with `Closed`, after the
/// transactions the close made durable.
#[test]
fn a_waiting_follow_reader_gets_closed_when_the_log_is_dropped() {
    let sim = sim_dir();
    let (wal, _) = Wal::open("/db", sim_opts(&sim).sync(SyncPolicy::Never)).unwrap();
    let wal = Arc::new(wal);
    let one = wal.append(b"one").unwrap();
    wal.sync().unwrap();
    let r = wal.follow(Lsn::ZERO).unwrap();
    let (r, got) = wait_next(r, None, || {});
    assert_eq!(got.unwrap(), Some(one));
    // Written, not yet durable: the close syncs it, and the reader gets it before `Closed`.
    let two = wal.append(b"two").unwrap();
    let (r, got) = wait_next(r, Some(wal.clone()), move || drop(wal));
    assert_eq!(got.unwrap(), Some(two));
    let (_r, got) = wait_next(r, None, || {});
    assert!(matches!(got, Err(WalError::Closed)), "{got:?}");
}

/// Poisoning wakes a waiting follow reader at once, also under `Interval`, whose failed
/// background fsync is latched for every later call.
#[test]
fn interval_background_fsync_failure_reaches_a_waiting_reader() {
    let sim = sim_dir();
    let opts = sim_opts(&sim).sync(SyncPolicy::Interval { ms: 2 });
    let (wal, _) = Wal::open("/db", opts).unwrap();
    let wal = Arc::new(wal);
    let mut r = wal.follow(Lsn::ZERO).unwrap();
    let first = wal.append(b"first").unwrap();
    wal.wait_durable(first).unwrap();
    assert_eq!(r.next_timeout(WATCHDOG).unwrap().unwrap().lsn, first);
    let (_r, got) = wait_next(r, Some(wal.clone()), || {
        sim.fail_nth(
            OpKind::SyncData,
            sim.op_count(OpKind::SyncData) + 1,
            Fault::Eio,
        );
        wal.append(b"lost").unwrap();
    });
    assert!(matches!(got, Err(WalError::Poisoned { .. })), "{got:?}");
    assert!(wal.durable_lsn() < Lsn(2));
    assert!(matches!(wal.append(b"x"), Err(WalError::Poisoned { .. })));
    assert!(matches!(wal.sync(), Err(WalError::Poisoned { .. })));
    assert!(matches!(
        wal.wait_durable(Lsn(2)),
        Err(WalError::Poisoned { .. })
    ));
}

/// A reader that cannot read a transaction (here: written under a larger size limit than
/// the reader's log allows) fails on it every time it is asked, and never skips it to
/// return the transactions after it.
#[test]
fn a_reader_error_is_repeated_not_skipped() {
    let sim = sim_dir();
    let big = sim_opts(&sim)
        .segment_size(64 << 20)
        .max_transaction_size(10 << 20);
    let (wal, _) = Wal::open("/db", big).unwrap();
    let small = wal.append(b"small").unwrap();
    let mut s = wal.stream().unwrap();
    s.write(&vec![7u8; 9 << 20]).unwrap();
    s.commit().unwrap();
    wal.append(b"after").unwrap();
    drop(wal);
    let strict = sim_opts(&sim)
        .segment_size(64 << 20)
        .max_transaction_size(4 << 20);
    let (wal, _) = Wal::open("/db", strict).unwrap();
    let mut r = wal.follow(Lsn::ZERO).unwrap();
    assert_eq!(r.next_timeout(WATCHDOG).unwrap().unwrap().lsn, small);
    for _ in 0..3 {
        let got = r.next_timeout(Duration::from_millis(10));
        assert!(
            matches!(got, Err(WalError::TransactionTooLarge { .. })),
            "{:?}",
            got.map(|t| t.map(|t| t.lsn))
        );
    }
    // The iterator stops at the error.
    let got: Vec<_> = wal
        .read_from(Lsn::ZERO)
        .unwrap()
        .map(|t| t.map(|t| t.lsn).map_err(|e| e.to_string()))
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], Ok(small));
    assert!(got[1].is_err());
}

/// A follower tailing the log while another thread truncates just behind it, reusing the
/// removed segments, sees every transaction once and in order.
#[test]
fn a_follower_keeps_up_with_truncation_and_recycling_behind_it() {
    const N: u32 = 5_000;
    let sim = sim_dir();
    let opts = sim_opts(&sim).recycle_segments(4).sync(SyncPolicy::Never);
    let (wal, _) = Wal::open("/db", opts).unwrap();
    let wal = Arc::new(wal);
    let consumed = Arc::new(AtomicU64::new(0));
    let writer = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            for i in 0..N {
                let mut b = i.to_le_bytes().to_vec();
                b.resize(100 + (i as usize % 300), 7);
                wal.append(&b).unwrap();
                if i % 7 == 0 {
                    wal.sync().unwrap();
                }
            }
            wal.sync().unwrap();
        })
    };
    let truncator = {
        let (wal, consumed) = (wal.clone(), consumed.clone());
        std::thread::spawn(move || {
            let mut removed = 0;
            loop {
                let c = consumed.load(Ordering::Acquire);
                if c >= u64::from(N) {
                    return removed;
                }
                if c > 0 {
                    removed += wal.truncate_prefix(Lsn(c)).unwrap();
                }
                std::thread::yield_now();
            }
        })
    };
    let mut r = wal.follow(Lsn::ZERO).unwrap();
    for expect in 0..N {
        let t = r
            .next_timeout(WATCHDOG)
            .unwrap()
            .expect("the follower stalled");
        assert_eq!(u32::from_le_bytes(t.body[..4].try_into().unwrap()), expect);
        consumed.store(t.lsn.0, Ordering::Release);
    }
    writer.join().unwrap();
    assert!(truncator.join().unwrap() > 10);
    assert!(wal.stats().recycled > 0);
}

/// A fence past the end of the log ("everything sealed") never takes the segment being
/// written, not even in the moment a rotation has sealed one and not yet added the next:
/// the segment list is never empty, so a reader made then still finds the log. A fence of
/// `u64::MAX` removes the sealed segments too (it once wrapped to 0 and removed nothing).
#[test]
fn truncating_past_the_end_never_empties_the_segment_list() {
    let sim = sim_dir();
    let opts = sim_opts(&sim).segment_size(1 << 10).sync(SyncPolicy::Never);
    let (wal, _) = Wal::open("/db", opts).unwrap();
    for _ in 0..20 {
        wal.append(&[1u8; 200]).unwrap();
    }
    assert!(wal.segments().len() > 2);
    assert!(wal.truncate_prefix(Lsn(u64::MAX)).unwrap() > 0);
    assert_eq!(wal.segments().len(), 1);

    let wal = Arc::new(wal);
    let stop = Arc::new(AtomicBool::new(false));
    let empty_seen = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    {
        let (wal, stop) = (wal.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                wal.append(&[1u8; 200]).unwrap();
            }
        }));
    }
    {
        let (wal, stop) = (wal.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                wal.truncate_prefix(Lsn(u64::MAX - 1)).unwrap();
            }
        }));
    }
    {
        let (wal, stop, empty_seen) = (wal.clone(), stop.clone(), empty_seen.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if wal.segments().is_empty() {
                    empty_seen.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Stress only (it caught this under load); `truncation_never_takes_the_last_listed_segment`
    // in wal.rs stages the moment deterministically.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) && empty_seen.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        empty_seen.load(Ordering::Relaxed),
        0,
        "segment list seen empty"
    );
}

/// A follower asked to start past the end of the log is refused: with LSN 100 the last one,
/// `follow(151)` once returned a reader that, after 101..160 were appended, delivered from
/// 151 on and never 101..150 (while `wait_durable(151)` said `NotAssigned`). The end + 1 is
/// still a valid start, and a refused start changes nothing.
#[test]
fn a_follower_starting_past_the_end_is_refused() {
    let sim = sim_dir();
    let (wal, _) = Wal::open("/db", sim_opts(&sim).segment_size(1 << 20)).unwrap();
    for i in 0u32..100 {
        wal.append(&i.to_le_bytes()).unwrap();
    }
    assert_eq!(wal.durable_lsn(), Lsn(100));
    for refused in [wal.follow(Lsn(151)), wal.read_from(Lsn(151))] {
        match refused {
            Err(WalError::BeyondEnd { requested, next }) => {
                assert_eq!((requested, next), (Lsn(151), Lsn(101)));
            }
            other => panic!("expected BeyondEnd, got {:?}", other.map(|_| ())),
        }
    }
    let mut at_end = wal.follow(Lsn(101)).unwrap();
    for i in 100u32..160 {
        wal.append(&i.to_le_bytes()).unwrap();
    }
    let first = at_end.next_timeout(WATCHDOG).unwrap().unwrap();
    assert_eq!((first.lsn, first.prev), (Lsn(101), Lsn(100)));
    // Once assigned, 151 is a valid start again.
    assert_eq!(
        wal.follow(Lsn(151))
            .unwrap()
            .next_timeout(WATCHDOG)
            .unwrap()
            .unwrap()
            .lsn,
        Lsn(151)
    );
}

/// A follower that truncation passes gets `Truncated` naming the first transaction it has
/// not received (where it must resume), not the first LSN of the segment it could not open
/// (one past the seal, an LSN no transaction has).
#[test]
fn truncated_names_the_transaction_the_follower_needs_next() {
    let sim = sim_dir();
    let opts = sim_opts(&sim).segment_size(1 << 10).recycle_segments(0);
    let (wal, _) = Wal::open("/db", opts).unwrap();
    for _ in 0..30 {
        wal.append(&[5u8; 150]).unwrap();
    }
    let segs = wal.segments();
    assert!(segs.len() >= 4, "{segs:?}");
    // The first segment: transactions, then its seal.
    let seal = segs[0].last_lsn;
    let mut r = wal.follow(Lsn::ZERO).unwrap();
    let mut last = Lsn::ZERO;
    while last < seal.prev() {
        last = r.next_timeout(WATCHDOG).unwrap().unwrap().lsn;
    }
    assert_eq!(last, seal.prev());
    // Truncation passes the follower: the segment after the one it holds is gone.
    assert!(wal.truncate_prefix(segs[1].last_lsn).unwrap() >= 2);
    for _ in 0..2 {
        match r.next_timeout(WATCHDOG) {
            Err(WalError::Truncated { requested, oldest }) => {
                assert_eq!(
                    requested, seal,
                    "the LSN after {last}, the last one received"
                );
                assert_eq!(oldest, segs[2].base_lsn);
            }
            other => panic!(
                "expected Truncated, got {:?}",
                other.map(|t| t.map(|t| t.lsn))
            ),
        }
    }
    assert!(matches!(
        wal.follow(seal),
        Err(WalError::Truncated { requested, .. }) if requested == seal
    ));
}

/// `DirFrames::until(to)`: the frames up to `to` are those of the whole read, and the
/// progress total counts only the segments up to the one holding `to`.
#[test]
fn frames_until_reads_only_the_segments_up_to_the_end_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(
        dir.path(),
        Options::default().segment_size(16 << 10).preallocate(false),
    )
    .unwrap();
    for i in 0..800u32 {
        wal.append(format!("{i:05}{}", "y".repeat(100)).as_bytes())
            .unwrap();
    }
    drop(wal);
    let vfs: Arc<dyn Vfs> = Arc::new(wal_log::StdVfs);
    let lsns = |frames: wal_log::inspect::DirFrames, to: u64| -> (Vec<u64>, u64) {
        let mut frames = frames;
        let mut out = Vec::new();
        for f in frames.by_ref() {
            let lsn = f.unwrap().frame.lsn.0;
            if lsn > to {
                break;
            }
            out.push(lsn);
        }
        (out, frames.progress().1)
    };
    let all = wal_log::inspect::frames_from(vfs.clone(), dir.path(), Lsn(1)).unwrap();
    let (whole, whole_total) = lsns(all, 300);
    let part = wal_log::inspect::frames_from(vfs, dir.path(), Lsn(1))
        .unwrap()
        .until(Lsn(300))
        .unwrap();
    let (until, until_total) = lsns(part, 300);
    assert_eq!(until, whole);
    assert_eq!(until.last(), Some(&300));
    assert!(
        until_total < whole_total / 2,
        "{until_total} of {whole_total}"
    );
}
