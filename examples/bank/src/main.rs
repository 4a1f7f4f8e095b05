//! `bank`: an in-memory bank on `wal_replay::Durable`, the engine an outside author built from
//! the READMEs (accounts, atomic transfers from several threads, large audit records mixed in,
//! checkpoints every few hundred milliseconds). `tests/sigkill.rs` kills it with SIGKILL again
//! and again and checks what comes back.
//!
//! ```text
//! bank --dir D run [--threads 4] [--accounts 100] [--checkpoint-ms 150] [--audit-every 200]
//!                  [--sync always|interval] [--ops N] [--mirror ARCHIVE]
//! bank --dir D check
//! ```
//!
//! `run` prints `ready` once recovered, `ack THREAD SEQ` once each transaction is acknowledged
//! under the sync policy (with `--mirror`, once it is in the archive too), `checkpoint FENCE
//! SEGMENTS` after each checkpoint, and with `--ops`
//! a final `stats` line (commits, fsyncs, commits per fsync). `check` recovers and prints one
//! JSON object: money in the bank and what it should be, each thread's last transaction, the
//! log's segment count and bytes. Exit codes: 0 success, 2 any error.
#![forbid(unsafe_code)]

mod bank;

use bank::{Bank, BankEvent, OPENING_BALANCE};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wal_log::{Options, SyncPolicy};
use wal_recorder::mirror::DirMirror;
use wal_replay::{Durable, DurableOptions};

#[derive(Parser, Debug)]
#[command(name = "bank", about = "An in-memory bank on a write-ahead log")]
struct Cli {
    /// The data directory (created when missing).
    #[arg(long)]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Transfer money from several threads until killed (or `--ops` per thread).
    Run(RunArgs),
    /// Recover and print the bank's figures as JSON.
    Check,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Writer threads.
    #[arg(long, default_value_t = 4)]
    threads: u32,
    /// Accounts.
    #[arg(long, default_value_t = 100)]
    accounts: u32,
    /// Milliseconds between checkpoints (0: none).
    #[arg(long, default_value_t = 150)]
    checkpoint_ms: u64,
    /// Every this many transactions a thread writes a large audit record instead (0: none).
    #[arg(long, default_value_t = 200)]
    audit_every: u64,
    /// The log's sync policy.
    #[arg(long, value_enum, default_value_t = SyncArg::Always)]
    sync: SyncArg,
    /// Transactions per thread, then stop (0: until killed).
    #[arg(long, default_value_t = 0)]
    ops: u64,
    /// Keep an archive of the log in this directory (`wal_recorder::mirror::DirMirror`): each
    /// transaction is acknowledged once the archive holds it, and checkpoints truncate the
    /// log only up to what the archive holds.
    #[arg(long)]
    mirror: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SyncArg {
    Always,
    Interval,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Larger than one 4 MiB frame: each audit is a fragmented transaction, and with 8 MiB
/// segments many of them cross a segment boundary.
const AUDIT_BYTES: usize = (4 << 20) + (256 << 10);

fn open(dir: &Path, sync: SyncArg, mirror: Option<&Path>) -> Result<Durable<Bank>, Error> {
    let policy = match sync {
        SyncArg::Always => SyncPolicy::Always,
        SyncArg::Interval => SyncPolicy::Interval { ms: 20 },
    };
    let mut opts =
        DurableOptions::default().wal(Options::default().sync(policy).segment_size(8 << 20));
    if let Some(archive) = mirror {
        opts = opts.mirror(Arc::new(DirMirror::new(archive)));
    }
    Ok(Durable::open(dir, Bank::default(), opts)?)
}

/// Prints one line and flushes it: what is printed was acknowledged before the kill.
fn say(line: std::fmt::Arguments<'_>) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(line)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// A small deterministic generator (xorshift), one per thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One thread's transactions, numbered on from what recovery found.
fn writer(store: &Durable<Bank>, args: &RunArgs, thread: u32) -> Result<(), Error> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (u64::from(thread) + 1).wrapping_mul(0xA24B_AED4));
    let first = store.read(|b| b.last_seq[thread as usize]) + 1;
    let accounts = u64::from(args.accounts);
    let mut seq = first;
    while args.ops == 0 || seq < first + args.ops {
        let audit = args.audit_every > 0 && seq.is_multiple_of(args.audit_every);
        let event = if audit {
            BankEvent::Audit {
                thread,
                seq,
                note: vec![(seq % 251) as u8; AUDIT_BYTES],
            }
        } else {
            let from = (rng.next() % accounts) as u32;
            let to = (rng.next() % accounts) as u32;
            BankEvent::Transfer {
                thread,
                seq,
                from,
                to,
                amount: rng.next() % 1000,
            }
        };
        store.write(|bank, tx| -> Result<(), String> {
            // An overdraft becomes a smaller transfer: every transaction is recorded, so the
            // sequence numbers prove exactly-once.
            let event = match event {
                BankEvent::Transfer {
                    thread,
                    seq,
                    from,
                    to,
                    amount,
                } => BankEvent::Transfer {
                    thread,
                    seq,
                    from,
                    to,
                    amount: amount.min(bank.balances[from as usize]),
                },
                audit => audit,
            };
            bank.apply_event(&event)?;
            tx.record(event);
            Ok(())
        })??;
        if args.mirror.is_some() {
            // Durable in the log; now in the archive too.
            store.recorder().flush()?;
        }
        say(format_args!("ack {thread} {seq}"))?;
        seq += 1;
    }
    Ok(())
}

fn checkpoints(store: &Durable<Bank>, every: Duration, done: &AtomicBool) -> Result<(), Error> {
    while !done.load(Ordering::Acquire) {
        std::thread::sleep(every);
        let report = store.checkpoint()?;
        say(format_args!(
            "checkpoint {} {}",
            report.fence,
            store.wal().stats().segments
        ))?;
    }
    Ok(())
}

fn run(dir: &Path, args: &RunArgs) -> Result<(), Error> {
    let store = open(dir, args.sync, args.mirror.as_deref())?;
    let open = BankEvent::Open {
        accounts: args.accounts,
        threads: args.threads,
    };
    store.write(|bank, tx| -> Result<(), String> {
        bank.apply_event(&open)?;
        tx.record(open);
        Ok(())
    })??;
    say(format_args!("ready"))?;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| -> Result<(), Error> {
        let cp = (args.checkpoint_ms > 0).then(|| {
            let (store, done) = (&store, &done);
            let every = Duration::from_millis(args.checkpoint_ms);
            s.spawn(move || checkpoints(store, every, done))
        });
        let writers: Vec<_> = (0..args.threads)
            .map(|t| {
                let store = &store;
                s.spawn(move || writer(store, args, t))
            })
            .collect();
        let mut result = Ok(());
        for w in writers {
            result = result.and(w.join().map_err(|_| "a writer panicked")?);
        }
        done.store(true, Ordering::Release);
        if let Some(cp) = cp {
            result = result.and(cp.join().map_err(|_| "the checkpointer panicked")?);
        }
        result
    })?;
    store.recorder().flush()?;
    let s = store.wal().stats();
    say(format_args!(
        "stats commits={} fsyncs={} commits_per_fsync={:.2}",
        s.commits, s.fsyncs, s.commits_per_fsync
    ))
}

fn check(dir: &Path) -> Result<(), Error> {
    let store = open(dir, SyncArg::Always, None)?;
    let report = store.recovery_report().clone();
    let bank = store.read(Clone::clone);
    let segments = store.wal().segments();
    let json = serde_json::json!({
        "total": bank.total(),
        "expected_total": bank.balances.len() as u64 * OPENING_BALANCE,
        "last_seq": bank.last_seq,
        "audits": bank.audits,
        "segments": segments.len(),
        "log_bytes": segments.iter().map(|s| s.bytes).sum::<u64>(),
        "snapshot_fence": report.snapshot.as_ref().map(|s| s.fence.get()),
        "applied": report.applied,
    });
    say(format_args!("{json}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match &cli.command {
        Command::Run(args) => run(&cli.dir, args),
        Command::Check => check(&cli.dir),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "bank: error: {e}");
            ExitCode::from(2)
        }
    }
}
