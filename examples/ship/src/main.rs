//! `ship`: log shipping between processes. A writer appends numbered transactions to a log;
//! a follower in another process tails that log with `wal_log::TailReader` (no lock, only
//! durable transactions) and ships each transaction into a replica log of its own, with its
//! position. `tests/sigkill.rs` kills both, again and again, and checks the replica.
//!
//! ```text
//! ship write  --dir LOG [--count N] [--size BYTES] [--segment-size BYTES]
//! ship follow --primary LOG --replica LOG [--poll-us U]
//! ship measure [--seconds S] [--size BYTES] [--rate PER_SEC] [--backlog N] [--poll-us U]
//! ```
//!
//! `write` prints `ready NEXT_ID` once the log is open, then `ack ID LSN` once each
//! transaction is durable (`SyncPolicy::Always`); it publishes its durable point for
//! readers in other processes (`Options::publish_durable`). A transaction's body is its id
//! (u64 LE), the wall-clock time its commit started (ns since the Unix epoch, u64 LE) and
//! filler; after a restart the ids go on from the last one in the log.
//!
//! `follow` prints `following LOG_ID from LSN`, then `shipped LSN` each time the replica has
//! made transactions of the primary up to `LSN` durable. It exits 3 if a transaction's
//! `prev` shows one it never got (a gap), 2 on any other error.
//!
//! `measure` runs a writer, a follower tailing it through the directory, and an in-process
//! follower (`Wal::follow`) for comparison, and prints follow lag percentiles and shipping
//! throughput (see [`measure`]).
#![forbid(unsafe_code)]

mod measure;
mod replica;

use clap::{Parser, Subcommand};
use replica::Replica;
use std::error::Error;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wal_log::{FollowPosition, Lsn, Options, TailOptions, TailReader, Transaction, Wal};

#[derive(Parser, Debug)]
#[command(name = "ship", about = "Log shipping between processes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Append numbered transactions, each durable before its `ack` line.
    Write {
        /// The log directory.
        #[arg(long)]
        dir: PathBuf,
        /// Transactions to write, then exit (default: until killed).
        #[arg(long)]
        count: Option<u64>,
        /// Bytes per transaction (at least 16).
        #[arg(long, default_value_t = 100)]
        size: usize,
        /// Segment size of the log.
        #[arg(long, default_value_t = 32 << 20)]
        segment_size: u64,
    },
    /// Tail another process's log and ship it into a replica, until killed.
    Follow {
        /// The primary's log directory.
        #[arg(long)]
        primary: PathBuf,
        /// The replica's log directory.
        #[arg(long)]
        replica: PathBuf,
        /// Microseconds between looks at the primary when caught up.
        #[arg(long, default_value_t = 2000)]
        poll_us: u64,
    },
    /// Measure follow lag and shipping throughput (in a temporary directory).
    Measure(measure::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Write {
            dir,
            count,
            size,
            segment_size,
        } => write(&dir, count, size, segment_size),
        Command::Follow {
            primary,
            replica,
            poll_us,
        } => follow(&primary, &replica, Duration::from_micros(poll_us)),
        Command::Measure(args) => measure::run(&args),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = if e.is::<Gap>() { 3 } else { 2 };
            let _ = writeln!(std::io::stderr(), "ship: {e}");
            ExitCode::from(code)
        }
    }
}

/// A transaction's body: id, commit start time, filler.
fn body(id: u64, size: usize) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut b = Vec::with_capacity(size.max(16));
    b.extend_from_slice(&id.to_le_bytes());
    b.extend_from_slice(&now.to_le_bytes());
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while b.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.push(x as u8);
    }
    b
}

/// The id at the start of a body.
fn id_of(body: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(body.get(..8)?.try_into().ok()?))
}

fn write(
    dir: &std::path::Path,
    count: Option<u64>,
    size: usize,
    segment: u64,
) -> Result<(), Box<dyn Error>> {
    let opts = Options::default()
        .segment_size(segment)
        .publish_durable(true);
    let (wal, _) = Wal::open(dir, opts)?;
    let mut last = None;
    for t in wal.read_from(wal.oldest_retained_lsn())? {
        last = id_of(&t?.body);
    }
    let first = last.map_or(0, |i| i + 1);
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {first}")?;
    out.flush()?;
    let end = first.saturating_add(count.unwrap_or(u64::MAX));
    for id in first..end {
        let lsn = wal.append(&body(id, size))?;
        writeln!(out, "ack {id} {lsn}")?;
        out.flush()?;
    }
    Ok(())
}

/// A transaction whose `prev` names one this follower never got.
#[derive(Debug)]
struct Gap {
    tx: Lsn,
    prev: Lsn,
    have: Lsn,
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "gap: transaction {} follows transaction {}, but this follower has only up to {}",
            self.tx, self.prev, self.have
        )
    }
}

impl Error for Gap {}

/// Collects the transaction `t` just read into `batch`, with the reader's position after it.
fn take(
    reader: &TailReader,
    at: &mut FollowPosition,
    t: Transaction,
    batch: &mut Vec<(FollowPosition, Transaction)>,
) -> Result<(), Gap> {
    if t.prev > at.lsn {
        return Err(Gap {
            tx: t.lsn,
            prev: t.prev,
            have: at.lsn,
        });
    }
    *at = reader.position();
    batch.push((*at, t));
    Ok(())
}

fn follow(
    primary: &std::path::Path,
    replica: &std::path::Path,
    poll: Duration,
) -> Result<(), Box<dyn Error>> {
    let replica = Replica::open(replica)?;
    let opts = TailOptions::default().poll(poll);
    let mut reader = match replica.position()? {
        Some(p) => TailReader::resume(primary, &p, opts)?,
        None => TailReader::open(primary, Lsn::FIRST, opts)?,
    };
    let mut at = reader.position();
    let mut out = std::io::stdout().lock();
    writeln!(out, "following {} from {}", at.log_id, at.next())?;
    out.flush()?;
    let mut batch = Vec::new();
    loop {
        let Some(t) = reader.next_timeout(Duration::from_secs(3600))? else {
            continue;
        };
        take(&reader, &mut at, t, &mut batch)?;
        // Whatever else is durable now goes in the same group commit.
        while batch.len() < 512 {
            let Some(t) = reader.try_next()? else { break };
            take(&reader, &mut at, t, &mut batch)?;
        }
        replica.ship(&batch)?;
        batch.clear();
        writeln!(out, "shipped {}", at.lsn)?;
        out.flush()?;
    }
}
