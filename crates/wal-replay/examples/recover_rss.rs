//! Measures recovery throughput and peak memory on a large log (run by hand, not in CI).
//!
//! ```text
//! cargo run --release -p wal-replay --example recover_rss -- build   /tmp/rss 1024 128
//! cargo run --release -p wal-replay --example recover_rss -- recover /tmp/rss
//! cargo run --release -p wal-replay --example recover_rss -- verify  /tmp/rss
//! ```
//!
//! `build DIR MIB RECORD` writes a data directory whose log holds about `MIB` MiB of
//! one-record transactions of `RECORD` bytes. `recover DIR` recovers it into a state machine
//! that counts records (so the state is a few bytes) and prints records per second and the
//! peak resident set (`VmHWM`) of this process, which did nothing else. `verify DIR` times the
//! read-only scan that `walctl verify` does.
#![allow(clippy::print_stdout)]

use std::io;
use std::time::Instant;
use wal_format::{Decoder, Lsn};
use wal_log::{Options, SyncPolicy, Transaction, Wal};
use wal_replay::{ApplyError, RecoverOptions, StateMachine};

/// Counts records and sums their first bytes (so the payload is really read).
#[derive(Default)]
struct Count {
    records: u64,
    check: u64,
}

impl StateMachine for Count {
    type Event = ();
    fn apply(&mut self, _: Lsn, _: Vec<()>) -> Result<(), ApplyError> {
        Ok(())
    }
    fn apply_transaction(
        &mut self,
        tx: &Transaction,
        _: &dyn Decoder<()>,
    ) -> Result<(), ApplyError> {
        self.records += 1;
        self.check = self
            .check
            .wrapping_add(u64::from(tx.body.first().copied().unwrap_or(0)));
        Ok(())
    }
    fn write_snapshot(&self, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(&self.records.to_le_bytes())
    }
    fn restore(&mut self, input: &mut dyn io::Read) -> io::Result<()> {
        let mut b = [0u8; 8];
        input.read_exact(&mut b)?;
        self.records = u64::from_le_bytes(b);
        Ok(())
    }
}

fn kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn opts() -> Options {
    Options::default()
        .preallocate(false)
        .sync(SyncPolicy::Never)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: recover_rss build DIR MIB RECORD | recover DIR | verify DIR";
    let (Some(cmd), Some(dir)) = (args.get(1), args.get(2)) else {
        return Err(usage.into());
    };
    match cmd.as_str() {
        "build" => {
            let mib: u64 = args.get(3).map_or(Ok(1024), |s| s.parse())?;
            let record: usize = args.get(4).map_or(Ok(128), |s| s.parse())?;
            let t = Instant::now();
            let (wal, _) = Wal::open(std::path::Path::new(dir).join("log"), opts())?;
            let payload = vec![0xa5u8; record];
            let mut n = 0u64;
            while wal.stats().bytes < mib << 20 {
                for _ in 0..1024 {
                    wal.append(&payload)?;
                }
                n += 1024;
            }
            wal.sync()?;
            println!(
                "built {n} transactions of {record} bytes ({} MiB of frames) in {:.1?}",
                wal.stats().bytes >> 20,
                t.elapsed()
            );
        }
        "recover" => {
            let before = kib("VmRSS:");
            let mut state = Count::default();
            let t = Instant::now();
            let r = wal_replay::recover(dir, &mut state, RecoverOptions::default().wal(opts()))?;
            let total = t.elapsed();
            let rep = &r.report;
            let peak = kib("VmHWM:");
            let secs = |d: std::time::Duration| d.as_secs_f64().max(1e-9);
            println!(
                "recovered {} records ({} MiB of segments read) in {:.3}s: single pass (scan + apply) {:.3}s, rest of the open {:.3}s, snapshot {:.3}s",
                state.records,
                rep.bytes_replayed >> 20,
                secs(total),
                secs(rep.replay_elapsed),
                secs(rep.open_elapsed),
                secs(rep.snapshot_elapsed),
            );
            println!(
                "records/s: {:.2} M end to end, {:.2} M in the pass; {:.2} GB/s read",
                state.records as f64 / secs(total) / 1e6,
                state.records as f64 / secs(rep.replay_elapsed) / 1e6,
                rep.bytes_replayed as f64 / secs(rep.replay_elapsed) / 1e9
            );
            println!(
                "peak RSS {} MiB (VmHWM), {} MiB before recovery, growth {} MiB",
                peak / 1024,
                before / 1024,
                peak.saturating_sub(before) / 1024
            );
            drop(r);
        }
        "verify" => {
            let t = Instant::now();
            let log = std::path::Path::new(dir).join("log");
            let ins = wal_log::inspect::inspect(&wal_log::StdVfs, &log, &mut |_, _| {})?;
            let bytes: u64 = ins.segments.iter().map(|s| s.file_len).sum();
            let e = t.elapsed().as_secs_f64();
            println!(
                "verified {} MiB in {e:.3}s: {:.2} GB/s, verdict {:?}",
                bytes >> 20,
                bytes as f64 / e / 1e9,
                ins.verdict()
            );
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
