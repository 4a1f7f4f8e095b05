//! `ChunkedScanner` against the whole-buffer `SegmentScanner` on inputs the property tests do
//! not reach: frames larger than a chunk, the largest frame, a file shorter than its stated
//! length, resuming mid-segment, and buffer reuse. (`support/check.rs` compares the two on
//! every input of the property tests and the fuzz corpus.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use wal_format::{
    ChunkedScanner, FRAME_HEADER_LEN, Frame, FrameKind, LogId, Lsn, MAX_FRAME_PAYLOAD, ScanEnd,
    SegmentHeader, SegmentScanner, SegmentSeq, encode_frame, scan_frames,
};

fn header() -> SegmentHeader {
    SegmentHeader::new(LogId::from_u128(0xc4u128), SegmentSeq(3), Lsn(100))
}

/// A segment of frames with the given payload lengths, then `zeros` zero bytes.
fn segment(lens: &[usize], zeros: usize) -> Vec<u8> {
    let h = header();
    let mut out = h.encode().to_vec();
    for (i, &n) in lens.iter().enumerate() {
        let payload: Vec<u8> = (0..n).map(|j| (i * 31 + j) as u8 | 1).collect();
        encode_frame(
            &mut out,
            h.seed(),
            FrameKind::Tx,
            0,
            Lsn(100 + i as u64),
            &payload,
        )
        .unwrap();
    }
    out.resize(out.len() + zeros, 0);
    out
}

fn whole(data: &[u8], expect_sealed: bool) -> (Vec<Frame>, ScanEnd) {
    let mut s = SegmentScanner::new(Bytes::copy_from_slice(data), expect_sealed).unwrap();
    let frames: Vec<Frame> = s.by_ref().collect();
    (frames, s.end().cloned().unwrap())
}

fn chunked(data: &[u8], file_len: u64, chunk: usize) -> (Vec<Frame>, ScanEnd, u64) {
    let mut s = ChunkedScanner::new(header(), file_len, false).chunk_size(chunk);
    let mut frames = Vec::new();
    while let Some(f) = s.next_frame(data).unwrap() {
        frames.push(f);
    }
    let end = s.end().cloned().unwrap();
    (frames, end, s.data_end(data).unwrap())
}

#[test]
fn frames_larger_than_a_chunk_grow_the_buffer_and_verify() {
    let data = segment(&[10, 5000, 3, 70_000, 1], 3000);
    let (frames, end) = whole(&data, false);
    assert_eq!(frames.len(), 5);
    for chunk in [1, 100, 4096, 65_536] {
        let (f, e, _) = chunked(&data, data.len() as u64, chunk);
        assert_eq!((f, e), (frames.clone(), end.clone()), "chunk {chunk}");
    }
}

#[test]
fn the_largest_frame_scans_with_the_default_chunk() {
    let mut data = segment(&[MAX_FRAME_PAYLOAD, 128, MAX_FRAME_PAYLOAD], 100);
    let (frames, end) = whole(&data, false);
    assert_eq!(frames.len(), 3);
    assert_eq!(
        chunked(&data, data.len() as u64, wal_format::DEFAULT_CHUNK),
        (frames, end, (data.len() - 100) as u64)
    );
    // Damage in the last frame: a torn tail (only zeros follow it).
    let last = 64 + FRAME_HEADER_LEN + MAX_FRAME_PAYLOAD + FRAME_HEADER_LEN + 128;
    data[last + 1000] ^= 4;
    let (frames, end) = whole(&data, false);
    assert!(matches!(end, ScanEnd::TornTail { .. }), "{end:?}");
    let (f, e, _) = chunked(&data, data.len() as u64, 1 << 20);
    assert_eq!((f, e), (frames, end));
}

#[test]
fn a_file_shorter_than_stated_ends_where_its_bytes_do() {
    let full = segment(&[40, 40, 40], 0);
    for cut in [full.len(), full.len() - 1, full.len() - 30, 64 + 20] {
        let data = &full[..cut];
        let (frames, end) = whole(data, false);
        for chunk in [1, 16, 1 << 20] {
            let (f, e, _) = chunked(data, full.len() as u64 + 1000, chunk);
            assert_eq!((&f, &e), (&frames, &end), "cut {cut} chunk {chunk}");
        }
    }
}

#[test]
fn resuming_mid_segment_matches_scan_frames() {
    let data = segment(&[30, 31, 32, 33], 50);
    let h = header();
    let second = 64 + FRAME_HEADER_LEN + 30;
    let mut w = scan_frames(Bytes::copy_from_slice(&data), h, second, Lsn(101), false);
    let frames: Vec<Frame> = w.by_ref().collect();
    let end = w.end().cloned().unwrap();
    let mut c =
        ChunkedScanner::resume(h, data.len() as u64, second as u64, Lsn(101), false).chunk_size(9);
    let mut got = Vec::new();
    while let Some(f) = c.next_frame(&data).unwrap() {
        got.push(f);
    }
    assert_eq!((got, c.end().cloned().unwrap()), (frames, end));
}

#[test]
fn the_buffer_passes_from_scanner_to_scanner_and_held_frames_stay_intact() {
    let data = segment(&[100; 50], 10);
    let (frames, _) = whole(&data, false);
    let mut s = ChunkedScanner::new(header(), data.len() as u64, false).chunk_size(1000);
    let mut held = Vec::new();
    while let Some(f) = s.next_frame(&data).unwrap() {
        held.push(f); // every window stays referenced: the scanner must not reuse them
    }
    assert_eq!(held, frames);
    // Nothing refers to the last window once the frames are dropped: its buffer is reusable.
    drop(held);
    let buf = s.into_buffer().expect("the buffer comes back");
    assert!(buf.capacity() >= 1000);
    let mut t = ChunkedScanner::new(header(), data.len() as u64, false)
        .chunk_size(1000)
        .with_buffer(buf);
    let mut n = 0;
    while t.next_frame(&data).unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 50);
    assert!(t.bytes_read() >= data.len() as u64 - 64);
}
