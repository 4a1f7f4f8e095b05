//! Durable commit throughput of the log beside the disk's limit, measured in one run:
//! a raw `pwrite` + `fdatasync` loop on a preallocated file.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wal_log::{Options, SyncPolicy, Wal};

const PAYLOAD: usize = 128;

fn raw_file(dir: &std::path::Path, size: u64) -> std::fs::File {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("raw"))
        .unwrap();
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < size {
        f.write_all_at(&zeros, at).unwrap();
        at += zeros.len() as u64;
    }
    f.sync_all().unwrap();
    f
}

fn single_writer(c: &mut Criterion) {
    let mut g = c.benchmark_group("durable_commit_1_writer");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    let payload = vec![0x5au8; PAYLOAD];
    {
        let dir = tempfile::tempdir().unwrap();
        let f = raw_file(dir.path(), 64 << 20);
        let frame = PAYLOAD as u64 + 20;
        let mut at = 0u64;
        g.bench_function("raw_pwrite_fdatasync", |b| {
            b.iter(|| {
                f.write_all_at(&payload, at % (60 << 20)).unwrap();
                f.sync_data().unwrap();
                at += frame;
            });
        });
    }
    {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), Options::default().segment_size(64 << 20)).unwrap();
        g.bench_function("wal_append_always", |b| {
            b.iter(|| wal.append(&payload).unwrap());
        });
    }
    g.finish();
}

fn many_writers(c: &mut Criterion) {
    let mut g = c.benchmark_group("durable_commit_8_writers");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10).measurement_time(Duration::from_secs(6));
    let threads = 8;
    {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), Options::default().segment_size(64 << 20)).unwrap();
        let wal = Arc::new(wal);
        g.bench_function("wal_append_always", |b| {
            b.iter_custom(|iters| {
                let per = iters.div_ceil(threads);
                let start = Instant::now();
                let hs: Vec<_> = (0..threads)
                    .map(|_| {
                        let wal = wal.clone();
                        std::thread::spawn(move || {
                            let p = vec![0x5au8; PAYLOAD];
                            for _ in 0..per {
                                wal.append(&p).unwrap();
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per * threads) as f64)
            });
        });
        let s = wal.stats();
        eprintln!(
            "8 writers: {} commits in {} fsyncs ({:.1} commits/fsync)",
            s.commits, s.fsyncs, s.commits_per_fsync
        );
    }
    g.finish();
}

fn big_transactions(c: &mut Criterion) {
    let mut g = c.benchmark_group("tx_1000_records_128B");
    let records: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; PAYLOAD]).collect();
    let bytes = wal_format::records::records_len(&records) as u64;
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    {
        let dir = tempfile::tempdir().unwrap();
        let f = raw_file(dir.path(), 256 << 20);
        let buf = vec![0x5au8; bytes as usize + 20];
        let mut at = 0u64;
        g.bench_function("raw_write_fdatasync", |b| {
            b.iter(|| {
                f.write_all_at(&buf, at % (250 << 20)).unwrap();
                f.sync_data().unwrap();
                at += buf.len() as u64;
            });
        });
    }
    {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), Options::default().segment_size(64 << 20)).unwrap();
        g.bench_function("wal_append_batch_always", |b| {
            b.iter(|| wal.append_batch(&records).unwrap());
        });
    }
    g.finish();
}

fn cpu_cost(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_cpu_cost");
    g.throughput(Throughput::Elements(1));
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(
        dir.path(),
        Options::default()
            .sync(SyncPolicy::Never)
            .segment_size(256 << 20),
    )
    .unwrap();
    let payload = vec![0x5au8; PAYLOAD];
    g.bench_function("append_128B_sync_never", |b| {
        b.iter(|| wal.append(&payload).unwrap());
    });
    g.finish();
}

criterion_group!(
    benches,
    single_writer,
    many_writers,
    big_transactions,
    cpu_cost
);
criterion_main!(benches);
