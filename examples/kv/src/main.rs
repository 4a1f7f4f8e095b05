//! `kv`: a small ordered key-value store built on the whole stack.
//!
//! Every write is one transaction: the store arms the recorder, applies the mutation, records
//! its event and commits (written to the log) while it holds its lock, then waits for the
//! commit to become durable *outside* the lock, so concurrent writers share fsyncs (group
//! commit) while the log order stays the order in which the store applied the changes.
//! Opening always recovers (snapshot + log) first.
//!
//! ```text
//! kv --dir D [--sync always|interval:MS|never] put KEY VALUE | get KEY | del KEY | scan
//!    | checkpoint | stat
//! kv --dir D [--sync ...] load --count N [--start S] [--value-size B] [--threads T]
//! ```
//!
//! `--sync` is the log's policy (default `always`). Under `interval:MS` and `never` a write is
//! acknowledged once written; `load` still prints a key only once an fsync covers it (the
//! interval's, or a `sync()` at the end), and `put`/`del` sync before they return.
//!
//! `stat` only reads (a replay that takes no lock and changes no file); every other command
//! opens the store, which recovers under the directory's lock (cutting a torn tail a crash
//! left, removing the preallocated next segment) before it reads or writes.
//!
//! Exit codes: 0 success, 1 `get` of an absent key, 2 any error (the message says which,
//! for example that another process has the directory open).
#![forbid(unsafe_code)]

mod progress;

use clap::{Parser, Subcommand};
use kv::load_value as value_for;
use kv::store::{KvEvent, Store};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wal_log::{Lsn, Options, SyncPolicy, Wal};
use wal_replay::{Durable, DurableOptions};

#[derive(Parser, Debug)]
#[command(
    name = "kv",
    version,
    about = "An ordered key-value store on a write-ahead log"
)]
struct Cli {
    /// The data directory (created when missing).
    #[arg(long)]
    dir: PathBuf,
    /// The log's sync policy: `always` (every commit fsynced before it is acknowledged),
    /// `interval:MS` (fsynced in the background every MS milliseconds) or `never` (only by
    /// explicit syncs). Keys printed by `load` are durable under every policy.
    #[arg(long, default_value = "always", value_parser = parse_sync)]
    sync: SyncPolicy,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Set KEY to VALUE (durable when the command returns).
    Put { key: String, value: String },
    /// Print the value of KEY; exit 1 when absent.
    Get { key: String },
    /// Remove KEY (durable when the command returns).
    Del { key: String },
    /// Print every key and value, sorted, as `KEY<TAB>VALUE` lines.
    Scan,
    /// Snapshot the state, mark the log and truncate it.
    Checkpoint,
    /// Print what recovery finds (keys, snapshot, log range, what it would move aside) as
    /// `name=value` lines: read-only, without the lock; nothing in the directory changes.
    Stat,
    /// Write keys `k<i>` for i in START..START+COUNT, each its own durable transaction, from
    /// THREADS threads sharing one log; print each key right after its commit is durable.
    Load {
        #[command(flatten)]
        keys: kv::LoadKeys,
        /// Writer threads.
        #[arg(long, default_value_t = 1)]
        threads: u64,
    },
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Parses `--sync`: `always`, `interval:MS` or `never`.
fn parse_sync(s: &str) -> Result<SyncPolicy, String> {
    match s {
        "always" => Ok(SyncPolicy::Always),
        "never" => Ok(SyncPolicy::Never),
        _ => {
            let ms = s
                .strip_prefix("interval:")
                .ok_or_else(|| format!("`{s}`: expected always, interval:MS or never"))?;
            let ms: u64 = ms
                .parse()
                .map_err(|e| format!("`{s}`: the interval is not a number of milliseconds: {e}"))?;
            if ms == 0 {
                return Err(format!("`{s}`: the interval must be at least 1 ms"));
            }
            Ok(SyncPolicy::Interval { ms })
        }
    }
}

/// 8 MiB segments, so a checkpoint visibly truncates the log in the demo.
const SEGMENT_SIZE: u64 = 8 << 20;

/// An open database: the recovered store, recorded and checkpointed by `wal_replay::Durable`.
struct Db {
    store: Durable<Store>,
    sync: SyncPolicy,
}

impl Db {
    fn open(root: &Path, sync: SyncPolicy) -> Result<Db, Error> {
        // Under SyncPolicy::Always (the default) every flush writes and fsyncs in one step.
        // `Durable::write` queues each commit under the store lock and waits for it outside,
        // which is where group commit happens.
        let mut opts =
            DurableOptions::default().wal(Options::default().sync(sync).segment_size(SEGMENT_SIZE));
        // A bar on a terminal while a large log is replayed.
        let bar = progress::Bar::new("recovering", progress::Unit::Bytes);
        let told = bar.clone();
        opts.recover = opts
            .recover
            .on_progress(move |done, total| told.update(done, total));
        let store = Durable::open(root, Store::default(), opts);
        bar.finish();
        Ok(Db {
            store: store?,
            sync,
        })
    }

    /// Applies `event` and commits it as one transaction; returns once it is acknowledged
    /// (durable under `Always`, written under the other policies). Returns an LSN whose
    /// durability covers the transaction: [`Lsn::ZERO`] when it is durable already.
    fn write(&self, event: KvEvent) -> Result<Lsn, Error> {
        self.store.write(|store, tx| {
            store.apply_event(&event);
            tx.record(event);
        })?;
        if self.sync == SyncPolicy::Always {
            return Ok(Lsn::ZERO);
        }
        // The log is in the order of the writes: what is assigned now includes this one.
        Ok(self.wal().last_lsn())
    }

    /// Makes every write so far durable when the policy did not already.
    fn sync(&self) -> Result<(), Error> {
        if self.sync != SyncPolicy::Always {
            self.wal().sync()?;
        }
        Ok(())
    }

    fn with_store<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        self.store.read(f)
    }

    fn wal(&self) -> &Wal {
        self.store.wal()
    }
}

/// `1 thread`, `2 threads`.
fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Keys written but not yet printed, each with an LSN whose durability covers it.
#[derive(Default)]
struct Unsynced {
    keys: std::collections::VecDeque<(String, Lsn)>,
}

impl Unsynced {
    fn push(&mut self, key: String, covered_by: Lsn) {
        self.keys.push_back((key, covered_by));
    }

    /// Prints (and flushes) every key an fsync up to `durable` covers, in write order.
    fn print_durable(&mut self, durable: Lsn) -> std::io::Result<()> {
        if self.keys.front().is_none_or(|(_, l)| *l > durable) {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        while let Some((key, _)) = self.keys.front().filter(|(_, l)| *l <= durable) {
            writeln!(out, "{key}")?;
            self.keys.pop_front();
        }
        out.flush()
    }
}

/// More writer threads than this is a typo, not a load test.
const MAX_THREADS: u64 = 1024;

fn load(db: &Db, count: u64, start: u64, value_size: usize, threads: u64) -> Result<(), Error> {
    let threads = threads.max(1);
    if threads > MAX_THREADS {
        return Err(format!("--threads {threads}: at most {MAX_THREADS}").into());
    }
    let end = start
        .checked_add(count)
        .ok_or_else(|| format!("--start {start} + --count {count} is past the largest key"))?;
    let started = Instant::now();
    // Dropping the sender wakes the progress thread at once when the writers finish, so the
    // command exits then rather than after the rest of a progress interval.
    let (done, finished) = mpsc::channel::<()>();
    let stats_line = |db: &Db| {
        let s = db.wal().stats();
        format!(
            "commits={} fsyncs={} commits_per_fsync={:.2} elapsed_ms={}",
            s.commits,
            s.fsyncs,
            s.commits_per_fsync,
            started.elapsed().as_millis()
        )
    };
    let secs = std::thread::scope(|scope| -> Result<f64, Error> {
        scope.spawn(move || {
            // On a terminal a bar over the keys; otherwise progress lines on stderr, so a
            // killed run still leaves its numbers behind (the demo and the crash test read
            // them).
            let bar = std::io::stderr()
                .is_terminal()
                .then(|| progress::Bar::new("load", progress::Unit::Keys));
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                finished.recv_timeout(Duration::from_millis(250))
            {
                match &bar {
                    Some(bar) => bar.update(db.wal().stats().commits, count),
                    // A closed stderr loses the progress, not the load.
                    None => {
                        let _ = writeln!(std::io::stderr(), "progress: {}", stats_line(db));
                    }
                }
            }
            if let Some(bar) = bar {
                bar.finish();
            }
        });
        let mut workers = Vec::new();
        let mut workers_failed = None;
        for t in 0..threads {
            let worker =
                std::thread::Builder::new().spawn_scoped(scope, move || -> Result<(), Error> {
                    // `start + t` fits: it is below `end` or the worker has nothing to do.
                    let Some(mut i) = start.checked_add(t) else {
                        return Ok(());
                    };
                    let mut unsynced = Unsynced::default();
                    while i < end {
                        let key = format!("k{i}");
                        let covered_by = db.write(KvEvent::Put {
                            key: key.clone(),
                            value: value_for(i, value_size),
                        })?;
                        unsynced.push(key, covered_by);
                        // Printed and flushed only after an fsync covers the commit.
                        unsynced.print_durable(db.wal().durable_lsn())?;
                        let Some(next) = i.checked_add(threads) else {
                            break;
                        };
                        i = next;
                    }
                    if !unsynced.keys.is_empty() {
                        db.sync()?;
                        unsynced.print_durable(db.wal().durable_lsn())?;
                    }
                    Ok(())
                });
            match worker {
                Ok(w) => workers.push(w),
                Err(e) => {
                    // The writers already started finish; the failure is reported after them.
                    workers_failed = Some(format!("starting writer thread {t}: {e}"));
                    break;
                }
            }
        }
        let mut result = match workers_failed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        };
        for w in workers {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err("a writer thread panicked".into()),
            }
        }
        // Timed when the writers finish, not when the progress thread wakes up to stop.
        let secs = started.elapsed().as_secs_f64();
        drop(done);
        result.map(|()| secs)
    })?;
    let s = db.wal().stats();
    let _ = writeln!(
        std::io::stderr(),
        "load: {} from {} in {secs:.2} s = {:.0} commits/s; {} ({:.1} commits per fsync)",
        plural(count, "commit"),
        plural(threads, "thread"),
        count as f64 / secs.max(1e-9),
        plural(s.fsyncs, "fsync"),
        s.commits_per_fsync
    );
    Ok(())
}

/// Checkpoints with a bar over the keys the snapshot has written (the rest of a checkpoint,
/// the fsyncs, the marker and the truncation, is short next to it).
fn checkpoint(db: &Db) -> Result<wal_replay::checkpoint::CheckpointReport, Error> {
    let (keys, written) = db.with_store(|s| (s.map.len() as u64, s.snapshot_progress.clone()));
    let bar = progress::Bar::new("checkpoint: writing the snapshot", progress::Unit::Keys);
    let (done, finished) = mpsc::channel::<()>();
    let report = std::thread::scope(|scope| {
        let told = bar.clone();
        scope.spawn(move || {
            // Woken at once when the checkpoint ends (the sender is dropped).
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                finished.recv_timeout(Duration::from_millis(100))
            {
                told.update(written.load(std::sync::atomic::Ordering::Relaxed), keys);
            }
        });
        let report = db.store.checkpoint();
        drop(done);
        report
    });
    bar.finish();
    Ok(report?)
}

/// `kv stat`: what a recovery of `dir` would find and do, from a read-only replay that takes
/// no lock and creates, repairs, removes or grows nothing (an open would: it removes the
/// preallocated next segment, cuts a torn tail and prepares the active segment).
fn stat(dir: &Path) -> Result<(), Error> {
    let mut store = Store::default();
    let bar = progress::Bar::new("reading the log", progress::Unit::Bytes);
    let told = bar.clone();
    let opts = wal_replay::RecoverOptions::default()
        .wal(Options::default().segment_size(SEGMENT_SIZE))
        .on_progress(move |done, total| told.update(done, total));
    let r = wal_replay::inspect::replay_read_only(dir, &mut store, opts);
    bar.finish();
    let r = r?;
    let segments = std::fs::read_dir(dir.join(wal_replay::inspect::LOG_DIR))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    matches!(
                        wal_log::layout::classify(&e.file_name().to_string_lossy()),
                        wal_log::layout::Entry::Segment(_)
                    )
                })
                .count()
        })
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    writeln!(out, "keys={}", store.map.len())?;
    writeln!(
        out,
        "log_id={}",
        r.log_id.map_or_else(|| "-".to_owned(), |id| id.to_string())
    )?;
    writeln!(
        out,
        "snapshot_fence={}",
        r.snapshot.as_ref().map_or(0, |s| s.fence.get())
    )?;
    writeln!(out, "applied={}", r.applied)?;
    writeln!(out, "log_start={} log_end={}", r.log_start, r.log_end)?;
    writeln!(out, "segments={segments}")?;
    // What an open would move aside (nothing is moved here).
    writeln!(out, "bytes_moved_aside={}", r.bytes_moved_aside)?;
    writeln!(out, "recovery_ms={:.1}", r.elapsed.as_secs_f64() * 1000.0)?;
    out.flush()?;
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode, Error> {
    if let Command::Stat = cli.command {
        // Reports only: read without the lock and change nothing in the directory.
        stat(&cli.dir)?;
        return Ok(ExitCode::SUCCESS);
    }
    let db = Db::open(&cli.dir, cli.sync)?;
    // Written with `?`: a closed stdout is an error (exit 2), not a panic.
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Put { key, value } => {
            db.write(KvEvent::Put { key, value })?;
            db.sync()?;
        }
        Command::Del { key } => {
            db.write(KvEvent::Del { key })?;
            db.sync()?;
        }
        Command::Get { key } => match db.with_store(|s| s.map.get(&key).cloned()) {
            Some(v) => writeln!(stdout, "{v}")?,
            None => return Ok(ExitCode::from(1)),
        },
        Command::Scan => {
            let mut out = std::io::BufWriter::new(&mut stdout);
            db.with_store(|s| -> std::io::Result<()> {
                for (k, v) in &s.map {
                    writeln!(out, "{k}\t{v}")?;
                }
                Ok(())
            })?;
            out.flush()?;
        }
        Command::Checkpoint => {
            // The fence is taken under the store lock, with the state it describes.
            let report = checkpoint(&db)?;
            writeln!(
                stdout,
                "checkpoint: snapshot {} at fence {} ({} bytes, {:.2} MiB); {} removed; {} ms",
                report.snapshot.display(),
                report.fence,
                report.bytes,
                report.bytes as f64 / f64::from(1 << 20),
                plural(report.segments_removed as u64, "log segment"),
                report.elapsed.as_millis()
            )?;
        }
        // Answered before the store is opened.
        Command::Stat => {}
        Command::Load { keys, threads } => {
            // The writers print through stdout themselves.
            drop(stdout);
            load(&db, keys.count, keys.start, keys.value_size, threads)?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "kv: error: {e}");
            ExitCode::from(2)
        }
    }
}
