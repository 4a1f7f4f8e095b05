//! One round of a cell: open a system in a fresh directory, warm it up (untimed), quiesce,
//! time it; and the rounds of a cell summarised.

use crate::Outcome;
use crate::raw::{Ceiling, RawFile};
use crate::spread::Spread;
use crate::systems::{self, Res, Sys, Writer};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

/// How long each phase of a round lasts.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Untimed warm-up, the same for every system.
    pub warm: Duration,
    /// The timed part.
    pub cell: Duration,
}

/// One round of a cell.
pub struct Round {
    /// Operations per second in the timed part.
    pub per_s: f64,
    /// Every timed operation's latency in ns.
    pub lat: Vec<u32>,
    /// Commits per fsync in the timed part, for a system that counts them.
    pub per_fsync: Option<f64>,
    /// Opening the system on its empty directory plus its first durable operation.
    pub first: Option<Duration>,
}

/// A cell's rounds summarised.
#[derive(Clone, Debug)]
pub struct Cell {
    /// Operations (commits or transactions) per second.
    pub rate: Spread,
    pub p50: Duration,
    pub p99: Duration,
    pub per_fsync: Option<Spread>,
    /// Open + first durable operation, in seconds.
    pub first: Option<Spread>,
}

/// The rounds summarised: min/median/max of the rates, latency percentiles over every
/// operation of every round; or the first round's error.
pub fn aggregate(rounds: Vec<Outcome<Round>>) -> Outcome<Cell> {
    let (mut rates, mut per_fsync, mut first, mut lat) = (vec![], vec![], vec![], vec![]);
    for r in rounds {
        let r = r?;
        rates.push(r.per_s);
        per_fsync.extend(r.per_fsync);
        first.extend(r.first.map(|d| d.as_secs_f64()));
        lat.extend(r.lat);
    }
    let rate = Spread::of(&rates).ok_or("no rounds")?;
    lat.sort_unstable();
    Ok(Cell {
        rate,
        p50: pct(&lat, 0.50),
        p99: pct(&lat, 0.99),
        per_fsync: Spread::of(&per_fsync),
        first: Spread::of(&first),
    })
}

fn pct(sorted: &[u32], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Duration::from_nanos(u64::from(sorted[i]))
}

/// Runs `slots` for `rounds` rounds, each slot once per round in a fresh directory, the order
/// rotating from round to round so a slow spell of the (shared, virtual) disk does not land on
/// one slot. Returns each slot's rounds, in the order of `slots`.
pub fn rotate<S: Copy>(
    root: &Path,
    slots: &[S],
    rounds: usize,
    mut run: impl FnMut(S, &Path) -> Outcome<Round>,
) -> Res<Vec<Vec<Outcome<Round>>>> {
    let mut out: Vec<Vec<Outcome<Round>>> = slots.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for k in 0..slots.len() {
            let idx = (k + round) % slots.len();
            let dir = systems::fresh_dir(root, "cell")?;
            out[idx].push(run(slots[idx], &dir));
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    Ok(out)
}

/// One round of single-record commits: `sys` opened in `dir` (timed with its first commit),
/// then [`drive_commits`].
pub fn commit_round(
    sys: Sys,
    dir: &Path,
    threads: usize,
    pool: &[Vec<u8>],
    ring: &Arc<RawFile>,
    t: Timing,
) -> Res<Round> {
    let start = Instant::now();
    let w = systems::open_writer(sys, dir, threads, ring)?;
    w.commit(0, &pool[0])?;
    let first = start.elapsed();
    let mut r = drive_commits(&*w, threads, pool, t, &|| systems::quiesce(dir, ring))?;
    r.first = Some(first);
    Ok(r)
}

/// One round of the strict group-commit ceiling for `writers` writers: one thread writing
/// `writers` records of the pool at once and fdatasyncing, counted as `writers` commits.
///
/// A second thread spins meanwhile. On the bench VM an fdatasync issued while every vCPU is
/// idle took about 4 ms against about 0.2 ms with another process busy (a Python pwrite +
/// fdatasync loop, 2026-12-07, shared machine: 270/s alone, 468/s beside a busy loop): a lone
/// waiter's vCPU halts and is slow to come back. A cell of 8 or 16 writers never lets the
/// vCPUs idle, so the ceiling is measured with them awake too.
pub fn ceiling_round(
    dir: &Path,
    writers: usize,
    pool: &[Vec<u8>],
    ring: &Arc<RawFile>,
    t: Timing,
) -> Res<Round> {
    let w = Ceiling::new(ring, &pool[0], writers);
    let stop = AtomicBool::new(false);
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        let r = drive_commits(&w, 1, pool, t, &|| systems::quiesce(dir, ring));
        stop.store(true, Ordering::Relaxed);
        r
    });
    let mut r = r?;
    r.per_s *= writers as f64;
    Ok(r)
}

/// What [`Writer::fsync_counts`] reads: commits and fsyncs, when the system counts them.
type Counts = Option<(u64, u64)>;

/// `threads` threads commit records from `pool` through `w`: for `t.warm` untimed, then,
/// once `quiesce` has run with every thread stopped, for `t.cell` timed.
pub fn drive_commits(
    w: &dyn Writer,
    threads: usize,
    pool: &[Vec<u8>],
    t: Timing,
    quiesce: &(dyn Fn() -> Res<()> + Sync),
) -> Res<Round> {
    let barrier = Barrier::new(threads);
    // A failed thread stops the others at their next commit; all still meet at the barriers.
    let failed = AtomicBool::new(false);
    // The writer's fsync counts when timing starts (read by thread 0 after the quiesce).
    let before: Mutex<Option<Res<Counts>>> = Mutex::new(None);
    let per_thread: Vec<Res<Vec<u32>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let (barrier, failed, before) = (&barrier, &failed, &before);
                s.spawn(move || -> Res<Vec<u32>> {
                    let mut i = k * 61;
                    let mut lat = Vec::with_capacity(1 << 16);
                    let mut commit = |lat: Option<&mut Vec<u32>>| -> Res<()> {
                        let t0 = Instant::now();
                        let r = w.commit(k, &pool[i % pool.len()]);
                        i += 1;
                        if r.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        if let (Ok(()), Some(lat)) = (&r, lat) {
                            lat.push(u32::try_from(t0.elapsed().as_nanos()).unwrap_or(u32::MAX));
                        }
                        r
                    };
                    let mut outcome = Ok(());
                    barrier.wait();
                    let warm_end = Instant::now() + t.warm;
                    while outcome.is_ok() && Instant::now() < warm_end {
                        outcome = commit(None);
                    }
                    barrier.wait();
                    if k == 0 {
                        let q = quiesce().map(|()| w.fsync_counts());
                        if q.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        *before.lock().unwrap_or_else(|p| p.into_inner()) = Some(q);
                    }
                    barrier.wait();
                    let end = Instant::now() + t.cell;
                    while outcome.is_ok() && !failed.load(Ordering::Relaxed) && Instant::now() < end
                    {
                        outcome = commit(Some(&mut lat));
                    }
                    outcome.map(|()| lat)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("writer thread panicked".into()))
            })
            .collect()
    });
    let mut all = Vec::new();
    for r in per_thread {
        all.extend(r?);
    }
    let before = before
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .ok_or("the quiesce step did not run")??;
    if all.is_empty() {
        return Err("no commit finished within the cell".into());
    }
    Ok(Round {
        per_s: all.len() as f64 / t.cell.as_secs_f64(),
        lat: all,
        per_fsync: fsync_delta(before, w.fsync_counts()),
        first: None,
    })
}

/// Commits per fsync between two readings of [`Writer::fsync_counts`].
fn fsync_delta(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> Option<f64> {
    let ((c0, f0), (c1, f1)) = (before?, after?);
    let fsyncs = f1.checked_sub(f0).filter(|&f| f > 0)?;
    Some(c1.saturating_sub(c0) as f64 / fsyncs as f64)
}

/// One round of 1,000-record transactions through `w`, opened by `open` in `dir` (timed with
/// its first transaction): warm-up, quiesce, then at least `t.cell` and three transactions.
pub fn tx_round<'a>(
    dir: &Path,
    ring: &RawFile,
    t: Timing,
    open: impl FnOnce() -> Res<Box<dyn Fn() -> Res<()> + 'a>>,
) -> Res<Round> {
    let start = Instant::now();
    let commit = open()?;
    commit()?;
    let first = start.elapsed();
    let warm_end = Instant::now() + t.warm;
    while Instant::now() < warm_end {
        commit()?;
    }
    systems::quiesce(dir, ring)?;
    let mut lat = Vec::new();
    let start = Instant::now();
    while start.elapsed() < t.cell || lat.len() < 3 {
        let t0 = Instant::now();
        commit()?;
        lat.push(u32::try_from(t0.elapsed().as_nanos()).unwrap_or(u32::MAX));
    }
    Ok(Round {
        per_s: lat.len() as f64 / start.elapsed().as_secs_f64(),
        lat,
        per_fsync: None,
        first: Some(first),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_per_fsync_counts_only_the_timed_part() {
        assert_eq!(fsync_delta(Some((100, 50)), Some((400, 100))), Some(6.0));
        assert_eq!(fsync_delta(Some((100, 50)), Some((100, 50))), None);
        assert_eq!(fsync_delta(None, Some((1, 1))), None);
    }

    #[test]
    fn a_cell_keeps_every_round_and_the_first_error() {
        let round = |per_s: f64| -> Outcome<Round> {
            Ok(Round {
                per_s,
                lat: vec![per_s as u32],
                per_fsync: Some(per_s / 10.0),
                first: Some(Duration::from_millis(per_s as u64)),
            })
        };
        let c = aggregate(vec![round(30.0), round(10.0), round(20.0)]).unwrap();
        assert_eq!((c.rate.min, c.rate.median, c.rate.max), (10.0, 20.0, 30.0));
        assert_eq!(c.per_fsync.map(|s| s.median), Some(2.0));
        assert_eq!(c.p50, Duration::from_nanos(20));
        let e = aggregate(vec![round(1.0), Err("boom".into())]);
        assert_eq!(e.err().as_deref(), Some("boom"));
    }
}
