//! Replay throughput of 128-byte records and `verify` throughput, on a log pre-built in a
//! temporary directory (warm page cache).
//!
//! `cargo bench -p wal-replay --bench replay`. Set `WAL_REPLAY_BENCH_RECORDS` to change the
//! number of records (default 1 000 000, about 141 MiB of log).
//!
//! * `replay/recover_128B_records`: the whole recovery of one-record transactions into a
//!   state machine that sees raw payloads (`apply_transaction` overridden).
//! * `replay/replay_read_only_128B_records`: the same through `replay_read_only`.
//! * `replay/recover_bincode_events`: transactions of two bincode-encoded events (about 128
//!   bytes), decoded by the default `apply_transaction` and applied by `apply`.
//! * `verify/inspect`: `wal_log::inspect`, what `walctl verify` runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::io;
use std::time::Duration;
use wal_format::{Codec, Decoder, Lsn};
use wal_log::{Options, SyncPolicy, Transaction, Wal};
use wal_replay::{ApplyError, RecoverOptions, StateMachine};

/// An event of the decoding benchmark.
#[derive(serde::Serialize, serde::Deserialize)]
enum Op {
    Put { key: u64, value: Vec<u8> },
    Add(u64),
}

/// Applies decoded events (sums, so the work is not optimized away).
#[derive(Default)]
struct Sum {
    txs: u64,
    total: u64,
}

impl StateMachine for Sum {
    type Event = Op;
    fn apply(&mut self, _: Lsn, events: Vec<Op>) -> Result<(), ApplyError> {
        self.txs += 1;
        for e in events {
            self.total = self.total.wrapping_add(match e {
                Op::Put { key, value } => key + value.len() as u64,
                Op::Add(n) => n,
            });
        }
        Ok(())
    }
    fn write_snapshot(&self, _: &mut dyn io::Write) -> io::Result<()> {
        Ok(())
    }
    fn restore(&mut self, _: &mut dyn io::Read) -> io::Result<()> {
        Ok(())
    }
}

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
    fn write_snapshot(&self, _: &mut dyn io::Write) -> io::Result<()> {
        Ok(())
    }
    fn restore(&mut self, _: &mut dyn io::Read) -> io::Result<()> {
        Ok(())
    }
}

fn opts() -> Options {
    Options::default()
        .preallocate(false)
        .sync(SyncPolicy::Never)
}

fn bench(c: &mut Criterion) {
    let n: u64 = std::env::var("WAL_REPLAY_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    {
        let (wal, _) = Wal::open(dir.path().join("log"), opts()).unwrap();
        let rec = [0xa5u8; 128];
        for _ in 0..n {
            wal.append(&rec).unwrap();
        }
        wal.sync().unwrap();
    }
    let log_bytes: u64 = std::fs::read_dir(dir.path().join("log"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();

    let mut g = c.benchmark_group("replay");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(n));
    // The whole recovery: Wal::open's verifying scan and repair, then the replay.
    g.bench_function("recover_128B_records", |b| {
        b.iter(|| {
            let mut s = Count::default();
            let r = wal_replay::recover(dir.path(), &mut s, RecoverOptions::default().wal(opts()))
                .unwrap();
            assert_eq!(s.records, n);
            black_box(r.report.applied)
        });
    });
    // The read-only replay of `walctl replay`: a verifying scan (inspect), then the replay.
    g.bench_function("replay_read_only_128B_records", |b| {
        b.iter(|| {
            let mut s = Count::default();
            let r = wal_replay::inspect::replay_read_only_with_codec(
                dir.path(),
                &mut s,
                &NoCodec,
                RecoverOptions::default().wal(opts()),
            )
            .unwrap();
            assert_eq!(s.records, n);
            black_box(r.applied)
        });
    });
    // Decoding: half as many transactions, each `Put` (about 110 bytes) then `Add`.
    let decode_n = n / 2;
    let decode_dir = tempfile::tempdir().unwrap();
    {
        let (wal, _) = Wal::open(decode_dir.path().join("log"), opts()).unwrap();
        let mut payload = Vec::new();
        for i in 0..decode_n {
            payload.clear();
            let put = Op::Put {
                key: i,
                value: vec![0x5a; 100],
            };
            wal_format::Bincode.encode(&put, &mut payload).unwrap();
            wal_format::Bincode
                .encode(&Op::Add(i), &mut payload)
                .unwrap();
            wal.append(&payload).unwrap();
        }
        wal.sync().unwrap();
    }
    g.throughput(Throughput::Elements(decode_n));
    g.bench_function("recover_bincode_events", |b| {
        b.iter(|| {
            let mut s = Sum::default();
            let r = wal_replay::recover(
                decode_dir.path(),
                &mut s,
                RecoverOptions::default().wal(opts()),
            )
            .unwrap();
            assert_eq!(s.txs, decode_n);
            black_box((r.report.applied, s.total))
        });
    });
    g.finish();

    let mut g = c.benchmark_group("verify");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Bytes(log_bytes));
    g.bench_function("inspect", |b| {
        b.iter(|| {
            let ins = wal_log::inspect::inspect(
                &wal_log::StdVfs,
                &dir.path().join("log"),
                &mut |_, _| {},
            )
            .unwrap();
            black_box(ins.last_lsn())
        });
    });
    g.finish();
}

struct NoCodec;
impl Decoder<()> for NoCodec {
    fn decode(&self, _: &[u8]) -> Result<((), usize), wal_format::CodecError> {
        Ok(((), 1))
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
