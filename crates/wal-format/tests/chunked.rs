//! `ChunkedScanner` against the whole-buffer `SegmentScanner` on inputs the property tests do
//! not reach: frames larger than a chunk, the largest frame, a file shorter than its stated
//! length, resuming mid-segment, and buffer reuse. (`support/check.rs` compares the two on
//! every input of the property tests and the fuzz corpus.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use wal_format::frame::{FRAME_HEADER_LEN, MAX_FRAME_PAYLOAD, encode_frame};
use wal_format::scan::{ChunkedScanner, ScanEnd, SegmentScanner, scan_frames};
use wal_format::{Frame, FrameKind, LogId, Lsn, SegmentHeader, SegmentSeq};

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
        chunked(&data, data.len() as u64, wal_format::scan::DEFAULT_CHUNK),
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

/// After a failed frame, only a frame whose LSN could follow counts as valid data: one with
/// the expected LSN a few frames on still makes the tail corruption, a verifying frame with
/// an LSN no frame of the log could carry there does not (both scanners agree).
#[test]
fn only_a_frame_that_could_follow_makes_a_failure_corruption() {
    let h = header();
    let mut good = segment(&[10, 10], 0);
    let fail_at = good.len();
    // A torn frame: a header claiming 50 bytes, then garbage.
    let mut torn = vec![0xAB; 70];
    torn[4..8].copy_from_slice(&50u32.to_le_bytes());
    torn[8] = FrameKind::Tx as u8;
    torn[9..12].fill(0);
    good.extend_from_slice(&torn);
    for (lsn, corrupt) in [
        (103, true),
        (102, true),
        (104, true),
        (101, false),
        (9_999, false),
    ] {
        let mut data = good.clone();
        // The later frame claims the failed one (LSN 102) durable: evidence, if it could
        // follow.
        wal_format::frame::FrameEncoder::new(h.seed())
            .claiming(Lsn(102).min(Lsn(lsn)))
            .frame(
                &mut data,
                FrameKind::Tx,
                wal_format::frame::FrameFlags::NONE,
                Lsn(lsn),
                b"later",
            )
            .unwrap();
        let (frames, end) = whole(&data, false);
        assert_eq!(frames.len(), 2);
        match (&end, corrupt) {
            (ScanEnd::Corrupt { offset, .. }, true) | (ScanEnd::TornTail { offset, .. }, false) => {
                assert_eq!(*offset, fail_at, "LSN {lsn}");
            }
            _ => panic!("LSN {lsn}: {end:?}"),
        }
        for chunk in [1, 64, 4096] {
            let (f, e, _) = chunked(&data, data.len() as u64, chunk);
            assert_eq!(
                (f, e),
                (frames.clone(), end.clone()),
                "LSN {lsn}, chunk {chunk}"
            );
        }
    }
}

/// A torn tail of 1 MiB whose bytes look like frame headers with large declared lengths at
/// every eighth offset (an array of integers can): recovery's search for a valid frame after
/// it rejects them by their LSN before any CRC. Before the LSN bound this scan checksummed
/// hundreds of kilobytes at each of ~100k offsets (seconds here, minutes for 4 MiB); it is a
/// workload, not a timed assertion.
#[test]
fn a_tail_full_of_header_like_integers_scans_in_linear_time() {
    let mut data = segment(&[10], 0);
    let fail_at = data.len();
    // The integers 0x0000_0001_0008_0000, little-endian: a header starting 4 bytes into one
    // reads length 512 KiB, kind 1, zero flags and reserved bytes, and a huge LSN.
    for _ in 0..(1 << 20) / 8 {
        data.extend_from_slice(&0x0000_0001_0008_0000u64.to_le_bytes());
    }
    let (frames, end) = whole(&data, false);
    assert_eq!(frames.len(), 1);
    assert!(
        matches!(end, ScanEnd::TornTail { offset, .. } if offset == fail_at),
        "{end:?}"
    );
    let (_, e, _) = chunked(&data, data.len() as u64, 64 << 10);
    assert_eq!(e, end);
}

/// A byte flipped in the preallocated zeros after the last frame: both scanners say the
/// damage is past the last frame and name the damaged byte, not "unknown frame kind 0" at the
/// end of the data (the cut stays where the frames end).
#[test]
fn damage_in_the_zeros_past_the_last_frame_names_the_byte() {
    let mut data = segment(&[100, 200], 8192);
    let frames_end = data.len() - 8192;
    let damaged = frames_end + 5000;
    data[damaged] = 0x5a;
    let (frames, end) = whole(&data, false);
    assert_eq!(frames.len(), 2);
    match &end {
        ScanEnd::TornTail { offset, reason } => {
            assert_eq!(*offset, frames_end);
            assert!(
                reason.contains("past the last frame")
                    && reason.contains(&format!("offset {damaged}")),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    for chunk in [100, 4096, 65_536] {
        let (f, e, _) = chunked(&data, data.len() as u64, chunk);
        assert_eq!((f, e), (frames.clone(), end.clone()), "chunk {chunk}");
    }
}
