//! `ship measure`: follow lag and shipping throughput.
//!
//! * **Lag.** A writer commits `--rate` transactions per second for `--seconds` (each durable
//!   under `SyncPolicy::Always`, its durable point published). A follower reads them through
//!   the directory only, with `TailReader`, exactly as another process would, and ships each
//!   batch into a replica log (one group commit per batch); another reads them in-process
//!   with `Wal::follow`. For every transaction: the time from its acknowledgement (the
//!   append returned) to its delivery by each reader, and to its being durable in the
//!   replica. A reader may deliver a transaction a moment before the writer's append
//!   returns (the fsync and the publication come first); such lags count as 0.
//! * **Throughput.** `--backlog` transactions are written first; then a follower ships them
//!   all into a replica, from the start, as fast as it can.
//!
//! The threads share one process to share a clock; the tailing reader shares nothing else
//! with the writer.

use crate::body;
use crate::id_of;
use crate::replica::Replica;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wal_log::{Lsn, Options, TailOptions, TailReader, Wal};

/// Options of `ship measure`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds of the lag run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Bytes per transaction.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Commits per second in the lag run.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Transactions written before the throughput run ships them.
    #[arg(long, default_value_t = 200_000)]
    backlog: u64,
    /// Microseconds between the tailing reader's looks at the log when caught up.
    #[arg(long, default_value_t = 2000)]
    poll_us: u64,
    /// Where to put the logs (a new directory under it, removed afterwards; default: the
    /// system's temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Runs both measurements and prints `name=value` lines.
///
/// # Errors
/// Any log error.
pub fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let base = args
        .dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("ship-measure-{}", std::process::id()));
    let r = lag(args, &base.join("lag")).and_then(|()| throughput(args, &base.join("tp")));
    let _ = std::fs::remove_dir_all(&base);
    r
}

/// Nanoseconds since `epoch`, plus one (0 means "not yet").
fn stamp(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64 + 1
}

type Stamps = Arc<Vec<AtomicU64>>;

fn stamps(n: usize) -> Stamps {
    Arc::new((0..n).map(|_| AtomicU64::new(0)).collect())
}

/// The tailing follower of the lag run: stamps each transaction when read and when durable
/// in the replica.
fn tail_follower(
    dirs: (PathBuf, PathBuf),
    n: usize,
    poll: Duration,
    (epoch, read, shipped): (Instant, Stamps, Stamps),
) -> JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let replica = Replica::open(&dirs.1).map_err(|e| err(&e))?;
        let opts = TailOptions::default().poll(poll);
        let mut r = TailReader::open(&dirs.0, Lsn::FIRST, opts).map_err(|e| err(&e))?;
        let (mut got, mut batch, mut ids) = (0, Vec::new(), Vec::new());
        while got < n {
            let mut next = r
                .next_timeout(Duration::from_secs(30))
                .map_err(|e| err(&e))?;
            if next.is_none() {
                return Err("the tailing reader stalled".into());
            }
            while let Some(t) = next {
                let id = id_of(&t.body).ok_or("short body")? as usize;
                read[id].store(stamp(epoch), Ordering::Relaxed);
                ids.push(id);
                batch.push((r.position(), t));
                next = r.try_next().map_err(|e| err(&e))?;
            }
            replica.ship(&batch).map_err(|e| err(&e))?;
            let now = stamp(epoch);
            for id in ids.drain(..) {
                shipped[id].store(now, Ordering::Relaxed);
            }
            got += batch.len();
            batch.clear();
        }
        Ok(())
    })
}

/// The in-process follower of the lag run (`Wal::follow`).
fn inproc_follower(
    wal: Arc<Wal>,
    n: usize,
    (epoch, read): (Instant, Stamps),
) -> JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        let mut r = wal.follow(Lsn::FIRST).map_err(|e| e.to_string())?;
        for _ in 0..n {
            let t = r
                .next_timeout(Duration::from_secs(30))
                .map_err(|e| e.to_string())?
                .ok_or("the in-process reader stalled")?;
            let id = id_of(&t.body).ok_or("short body")? as usize;
            read[id].store(stamp(epoch), Ordering::Relaxed);
        }
        Ok(())
    })
}

fn lag(args: &Args, base: &Path) -> Result<(), Box<dyn Error>> {
    let (primary, replica) = (base.join("primary"), base.join("replica"));
    let (wal, _) = Wal::open(&primary, Options::default().publish_durable(true))?;
    let wal = Arc::new(wal);
    let n = (args.rate * args.seconds) as usize;
    let epoch = Instant::now();
    let (acked, read, shipped, inproc) = (stamps(n), stamps(n), stamps(n), stamps(n));
    let poll = Duration::from_micros(args.poll_us);
    let tail = tail_follower(
        (primary, replica),
        n,
        poll,
        (epoch, read.clone(), shipped.clone()),
    );
    let local = inproc_follower(wal.clone(), n, (epoch, inproc.clone()));
    let every = Duration::from_secs(1) / args.rate.max(1) as u32;
    let start = Instant::now();
    for id in 0..n {
        let due = start + every * id as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        wal.append(&body(id as u64, args.size))?;
        acked[id].store(stamp(epoch), Ordering::Relaxed);
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    tail.join().map_err(|_| "tail follower panicked")??;
    local.join().map_err(|_| "in-process follower panicked")??;
    println!(
        "lag_run transactions={n} size={} commits_per_s={rate:.0} poll_us={}",
        args.size, args.poll_us
    );
    report("tail_read", &acked, &read);
    report("tail_shipped", &acked, &shipped);
    report("inproc_read", &acked, &inproc);
    Ok(())
}

/// Prints p50, p99 and max of `to - from` in microseconds (negative as 0).
fn report(name: &str, from: &[AtomicU64], to: &[AtomicU64]) {
    let mut early = 0;
    let mut v: Vec<u64> = from
        .iter()
        .zip(to)
        .map(|(a, b)| {
            let (a, b) = (a.load(Ordering::Relaxed), b.load(Ordering::Relaxed));
            if b < a {
                early += 1;
            }
            b.saturating_sub(a) / 1000
        })
        .collect();
    v.sort_unstable();
    let at = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{name}_lag_us p50={} p99={} max={} delivered_before_ack={early}",
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

fn throughput(args: &Args, base: &Path) -> Result<(), Box<dyn Error>> {
    let (primary, replica) = (base.join("primary"), base.join("replica"));
    let (wal, _) = Wal::open(&primary, Options::default().publish_durable(true))?;
    // The backlog, in group commits of 1000.
    for id in 0..args.backlog {
        let last = wal.append_queued(&body(id, args.size))?;
        if id % 1000 == 999 {
            wal.wait_durable(last)?;
        }
    }
    wal.sync()?;
    drop(wal);
    let rep = Replica::open(&replica)?;
    let started = Instant::now();
    let mut r = TailReader::open(&primary, Lsn::FIRST, TailOptions::default())?;
    let (mut n, mut bytes, mut batches) = (0u64, 0u64, 0u64);
    let mut batch = Vec::new();
    while n < args.backlog {
        while batch.len() < 512 {
            let Some(t) = r.try_next()? else { break };
            bytes += t.body.len() as u64;
            batch.push((r.position(), t));
        }
        if batch.is_empty() {
            return Err("the backlog ended early".into());
        }
        rep.ship(&batch)?;
        n += batch.len() as u64;
        batches += 1;
        batch.clear();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "shipping backlog={n} size={} seconds={secs:.2} tx_per_s={:.0} mb_per_s={:.1} group_commits={batches}",
        args.size,
        n as f64 / secs,
        bytes as f64 / secs / 1e6
    );
    Ok(())
}
