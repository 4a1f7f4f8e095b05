//! Where the time between two fsyncs goes under group commit (issue 20, ADR 0012).
//!
//! N writers append small transactions under `SyncPolicy::Always` for a few seconds; the log
//! is built with the `gap-trace` feature, and this prints, per flush cycle, the time from the
//! previous fsync's end to each point of the next flush, the batch sizes, where each batch's
//! commits came from, and how late woken waiters run again.
//!
//! ```text
//! cargo run --release -p wal-log --features gap-trace --example fsync_gap -- \
//!     [--dir DIR] [--threads 8] [--secs 3] [--size 128]
//! ```
//!
//! `--dir` must be on a real disk (the default is a new directory under `target/`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wal_log::{GapCycle, Options, SyncPolicy, Wal};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Args {
    dir: Option<PathBuf>,
    threads: usize,
    secs: f64,
    size: usize,
}

fn parse() -> Res<Args> {
    let mut a = Args {
        dir: None,
        threads: 8,
        secs: 3.0,
        size: 128,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--dir" => a.dir = Some(v()?.into()),
            "--threads" => a.threads = v()?.parse()?,
            "--secs" => a.secs = v()?.parse()?,
            "--size" => a.size = v()?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

fn main() -> Res<()> {
    let a = parse()?;
    let base = match &a.dir {
        Some(d) => d.clone(),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tmp"),
    };
    std::fs::create_dir_all(&base)?;
    let tmp = tempfile::tempdir_in(&base)?;
    let (wal, _) = Wal::open(tmp.path(), Options::default().sync(SyncPolicy::Always))?;
    // Warm up past the first segment's preparation, then time.
    let stop = AtomicBool::new(false);
    let payload = vec![0x5a_u8; a.size];
    let (before, start) = (wal.stats(), Instant::now());
    std::thread::scope(|s| -> Res<()> {
        let writers: Vec<_> = (0..a.threads)
            .map(|_| {
                s.spawn(|| -> Result<(), wal_log::WalError> {
                    while !stop.load(Ordering::Relaxed) {
                        wal.append(&payload)?;
                    }
                    Ok(())
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(a.secs));
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().map_err(|_| "a writer panicked")??;
        }
        Ok(())
    })?;
    let elapsed = start.elapsed().as_secs_f64();
    let after = wal.stats();
    let report = wal.gap_trace();
    let commits = after.commits - before.commits;
    let fsyncs = after.fsyncs - before.fsyncs;
    println!(
        "{} writers x {} B, {:.1} s: {:.0} commits/s, {:.0} fsyncs/s, {:.2} commits/fsync, load {}",
        a.threads,
        a.size,
        elapsed,
        commits as f64 / elapsed,
        fsyncs as f64 / elapsed,
        commits as f64 / fsyncs.max(1) as f64,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    // Drop the first cycles (threads starting) and the last (threads stopping).
    let n = report.cycles.len();
    let cycles = &report.cycles[n.min(10)..n.saturating_sub(10)];
    phases("all cycles", cycles);
    let full: Vec<_> = cycles
        .iter()
        .filter(|c| c.commits as usize >= a.threads)
        .cloned()
        .collect();
    let short: Vec<_> = cycles
        .iter()
        .filter(|c| (c.commits as usize) < a.threads)
        .cloned()
        .collect();
    phases(&format!("full batches ({} commits)", a.threads), &full);
    phases("short batches", &short);
    batches(cycles, a.threads);
    let mut wakes = report.wake_latency.clone();
    wakes.sort();
    println!(
        "wake-up latency of {} woken waiters (from the start of the wake-ups), us: {}",
        wakes.len(),
        pcts(&wakes)
    );
    Ok(())
}

/// p10 / p50 / p90 / p99 in microseconds.
fn pcts(sorted: &[Duration]) -> String {
    if sorted.is_empty() {
        return "-".into();
    }
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    format!(
        "p10 {:>6.1}  p50 {:>6.1}  p90 {:>6.1}  p99 {:>7.1}",
        at(0.1),
        at(0.5),
        at(0.9),
        at(0.99)
    )
}

/// Each step of the cycle: its own length, percentiles over `cycles`.
fn phases(what: &str, cycles: &[GapCycle]) {
    println!("\n{what}: {} cycles; step lengths in us", cycles.len());
    if cycles.is_empty() {
        return;
    }
    type Step = (&'static str, fn(&GapCycle) -> Duration);
    let steps: [Step; 9] = [
        ("fsync end -> waiters unparked", |c| c.woken),
        ("fsync end -> next leader runs", |c| c.claimed),
        ("leader gathers (yields)", |c| c.gathered - c.claimed),
        ("takes the buffer", |c| c.taken - c.gathered),
        ("write syscall", |c| c.written - c.taken),
        ("write end -> fsync start", |c| c.sync_start - c.written),
        ("fsync", |c| c.sync_end - c.sync_start),
        ("gap: fsync end -> fsync start", |c| c.sync_start),
        ("whole cycle", |c| c.sync_end),
    ];
    for (name, f) in steps {
        let mut v: Vec<Duration> = cycles.iter().map(f).collect();
        v.sort();
        let mean = v.iter().sum::<Duration>().as_secs_f64() * 1e6 / v.len() as f64;
        println!("  {name:<31} mean {mean:>7.1}  {}", pcts(&v));
    }
    let mean =
        |f: fn(&GapCycle) -> u64| cycles.iter().map(f).sum::<u64>() as f64 / cycles.len() as f64;
    println!(
        "  commits per batch {:.2}: queued during the previous write+fsync {:.2}, at the leader's claim {:.2}, \
         arrived during the gather {:.2}; missed (queued during the write) {:.2}; waiters woken {:.2}",
        mean(|c| c.commits),
        mean(|c| c.queued_during_fsync),
        mean(|c| c.queued_at_claim),
        mean(|c| c.commits.saturating_sub(c.queued_at_claim)),
        mean(|c| c.missed),
        cycles.iter().map(|c| c.woke).sum::<usize>() as f64 / cycles.len() as f64,
    );
}

/// How many flushes made each number of commits durable.
fn batches(cycles: &[GapCycle], threads: usize) {
    let mut hist = vec![0usize; threads.max(1) * 2 + 1];
    for c in cycles {
        let i = (c.commits as usize).min(hist.len() - 1);
        hist[i] += 1;
    }
    println!("\ncommits per flush: flushes (share)");
    for (k, n) in hist.iter().enumerate().filter(|(_, n)| **n > 0) {
        println!(
            "  {k:>3}: {n:>7} ({:>5.1}%)",
            *n as f64 * 100.0 / cycles.len().max(1) as f64
        );
    }
}
