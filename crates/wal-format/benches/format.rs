//! Throughput of the frame encoder and of the scanner (decode + CRC32C verification).
//!
//! Run with `cargo bench -p wal-format -- --warm-up-time 1 --measurement-time 3`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use wal_format::frame::{encode_frame, encoded_frame_len};
use wal_format::scan::{ChunkedScanner, SegmentScanner};
use wal_format::{FrameKind, LogId, Lsn, SegmentHeader, SegmentSeq};

const SMALL: usize = 128;
const SMALL_FRAMES: usize = 8192;
const LARGE: usize = 64 << 10;
const LARGE_FRAMES: usize = 64;

fn header() -> SegmentHeader {
    SegmentHeader::new(LogId::from_u128(0x5eed), SegmentSeq(3), Lsn(1000))
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

/// A segment of `n` Tx frames with `len`-byte payloads.
fn segment(n: usize, len: usize) -> Bytes {
    let h = header();
    let p = payload(len);
    let mut out = Vec::with_capacity(64 + n * encoded_frame_len(len));
    out.extend_from_slice(&h.encode());
    for i in 0..n {
        encode_frame(
            &mut out,
            h.seed(),
            FrameKind::Tx,
            0,
            Lsn(1000 + i as u64),
            &p,
        )
        .unwrap();
    }
    Bytes::from(out)
}

fn scan(data: &Bytes) -> usize {
    let mut s = SegmentScanner::new(data.clone(), false).unwrap();
    let mut bytes = 0;
    for f in s.by_ref() {
        bytes += f.payload.len();
    }
    assert!(s.end().is_some());
    bytes
}

fn bench_encode(c: &mut Criterion) {
    let h = header();
    let seed = h.seed();
    let p = payload(SMALL);
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(SMALL_FRAMES as u64));
    // One buffer reused across iterations, as a writer reuses its batch buffer: measures the
    // encoder, not page faults on fresh memory.
    let mut out = Vec::with_capacity(SMALL_FRAMES * encoded_frame_len(SMALL));
    g.bench_function("frames_128B", |b| {
        b.iter(|| {
            out.clear();
            for i in 0..SMALL_FRAMES {
                encode_frame(
                    &mut out,
                    seed,
                    FrameKind::Tx,
                    0,
                    Lsn(i as u64 + 1),
                    black_box(&p),
                )
                .unwrap();
            }
            black_box(out.len())
        });
    });
    g.finish();
}

fn scan_chunked(data: &Bytes) -> usize {
    let mut s = ChunkedScanner::new(header(), data.len() as u64, false);
    let mut bytes = 0;
    while let Some(f) = s.next_frame(data).unwrap() {
        bytes += f.payload.len();
    }
    assert!(s.end().is_some());
    bytes
}

fn bench_scan(c: &mut Criterion) {
    let mut g = c.benchmark_group("scan");

    let small = segment(SMALL_FRAMES, SMALL);
    g.throughput(Throughput::Elements(SMALL_FRAMES as u64));
    g.bench_function("frames_128B", |b| {
        b.iter(|| black_box(scan(black_box(&small))));
    });

    // The same segment read through `ReadAt` a chunk at a time (copied into the scanner's
    // buffer, as a file read would), as the log's open scan reads it.
    g.bench_function("chunked_frames_128B", |b| {
        b.iter(|| black_box(scan_chunked(black_box(&small))));
    });

    let large = segment(LARGE_FRAMES, LARGE);
    g.throughput(Throughput::Bytes((LARGE_FRAMES * LARGE) as u64));
    g.bench_function("payloads_64KiB", |b| {
        b.iter(|| black_box(scan(black_box(&large))));
    });

    g.finish();
}

criterion_group!(benches, bench_encode, bench_scan);
criterion_main!(benches);
