//! Benchmarks of the recorder's hot path and of committing a query.
//!
//! `cargo bench -p wal-recorder -- --warm-up-time 1 --measurement-time 3`
//!
//! * `record/*`: the cost of one `record` of a small event inside an armed query (target
//!   ≤ 100 ns), next to the alternative design that keeps the events and encodes them at commit.
//! * `commit_1000/*`: committing a 1,000-event query (one frame, one checksum, one write), under
//!   `SyncPolicy::Never` (CPU and the write system call) and `SyncPolicy::Always` (plus fsync).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wal_format::{Bincode, Codec};
use wal_log::{Options, SyncPolicy, Wal};
use wal_recorder::WalRecorder;

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Event {
    SetProp { node: u64, key: u32, value: i64 },
    Delete(u64),
}

fn event(i: u64) -> Event {
    Event::SetProp {
        node: i.wrapping_mul(2_654_435_761) % 1_000_000,
        key: (i % 16) as u32,
        value: i as i64 - 500,
    }
}

/// Events recorded per armed query while timing `record` (then aborted, untimed).
const BATCH: u64 = 10_000;

fn open(dir: &std::path::Path, sync: SyncPolicy) -> Arc<Wal> {
    Arc::new(Wal::open(dir, Options::default().sync(sync)).unwrap().0)
}

fn bench_record(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let rec: WalRecorder<Event> = WalRecorder::new(open(dir.path(), SyncPolicy::Never));
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(1));
    g.bench_function("small_event", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = (iters - done).min(BATCH);
                rec.arm().unwrap();
                let start = Instant::now();
                for i in done..done + n {
                    rec.record(black_box(event(i)));
                }
                total += start.elapsed();
                assert!(rec.abort().unwrap());
                done += n;
            }
            total
        });
    });
    // The alternative: one mutex and a push of the event itself, encoding at commit time
    // (timed here too, so the two totals compare).
    let buffer: Mutex<Vec<Event>> = Mutex::new(Vec::new());
    g.bench_function("alternative_keep_events_encode_at_commit", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            let mut out = Vec::new();
            while done < iters {
                let n = (iters - done).min(BATCH);
                let start = Instant::now();
                for i in done..done + n {
                    buffer.lock().unwrap().push(black_box(event(i)));
                }
                for e in buffer.lock().unwrap().drain(..) {
                    Bincode.encode(&e, &mut out).unwrap();
                }
                total += start.elapsed();
                black_box(&out);
                out.clear();
                done += n;
            }
            total
        });
    });
    g.finish();
}

fn bench_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("commit_1000");
    g.throughput(Throughput::Elements(1000));
    for (name, sync) in [("never", SyncPolicy::Never), ("always", SyncPolicy::Always)] {
        let dir = tempfile::tempdir().unwrap();
        let rec: WalRecorder<Event> = WalRecorder::new(open(dir.path(), sync));
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for it in 0..iters {
                    rec.arm().unwrap();
                    for i in 0..1000 {
                        rec.record(event(it * 1000 + i));
                    }
                    let start = Instant::now();
                    black_box(rec.commit().unwrap());
                    total += start.elapsed();
                }
                total
            });
        });
    }
    // The whole query: arm, 1,000 records, commit (no fsync).
    let dir = tempfile::tempdir().unwrap();
    let rec: WalRecorder<Event> = WalRecorder::new(open(dir.path(), SyncPolicy::Never));
    g.bench_function("whole_query_never", |b| {
        let mut it = 0u64;
        b.iter(|| {
            rec.arm().unwrap();
            for i in 0..1000 {
                rec.record(event(it * 1000 + i));
            }
            it += 1;
            black_box(rec.commit().unwrap())
        });
    });
    // A read-only query: arm and commit with nothing recorded.
    g.throughput(Throughput::Elements(1));
    g.bench_function("read_only_query", |b| {
        b.iter(|| {
            rec.arm().unwrap();
            black_box(rec.commit_and_flush().unwrap())
        });
    });
    g.finish();
    let _ = Event::Delete(0);
}

criterion_group!(benches, bench_record, bench_commit);
criterion_main!(benches);
