//! Scanning a recycled segment: a file that held an older segment of the same log, given a new
//! header with the `recycled` flag. Its bytes past the log's end are stale frames of the older
//! segment, not zeros. Both scanners must end the log at the writer's end marker (an all-zero
//! frame header), call anything else after the last frame a torn tail, and still call a
//! frame that verifies under the new seed after a hole (or after the seal) corruption.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use wal_format::frame::{FRAME_HEADER_LEN, FrameEncoder, FrameFlags, encode_frame};
use wal_format::header::HEADER_FLAG_RECYCLED;
use wal_format::scan::{ChunkedScanner, ScanEnd, SegmentScanner};
use wal_format::{FrameKind, LogId, Lsn, SegmentHeader, SegmentSeq};

const LOG: LogId = LogId::from_u128(0x5eed);

/// An old segment (seq 2) full of frames, `len` bytes long: what truncation leaves behind.
fn stale_file(len: usize) -> Vec<u8> {
    let h = SegmentHeader::new(LOG, SegmentSeq(2), Lsn(10));
    let mut out = h.encode().to_vec();
    let mut lsn = 10;
    while out.len() < len {
        let payload = vec![(lsn % 251) as u8 | 1; 37 + (lsn as usize * 13) % 200];
        encode_frame(&mut out, h.seed(), FrameKind::Tx, 0, Lsn(lsn), &payload).unwrap();
        lsn += 1;
    }
    out.truncate(len);
    out
}

fn new_header(recycled: bool) -> SegmentHeader {
    SegmentHeader {
        recycled,
        ..SegmentHeader::new(LOG, SegmentSeq(9), Lsn(5000))
    }
}

/// Writes a new header and `frames` frames over the stale file, returning the file and the
/// offset just past the last frame. Each frame claims the ones before it durable.
fn recycle(frames: u64, recycled: bool) -> (Vec<u8>, usize) {
    recycle_claiming(frames, recycled, true)
}

fn recycle_claiming(frames: u64, recycled: bool, claim: bool) -> (Vec<u8>, usize) {
    let mut file = stale_file(64 * 1024);
    let h = new_header(recycled);
    let mut out = h.encode().to_vec();
    for i in 0..frames {
        let payload = vec![0xA0 | (i as u8 & 0x0f); 90];
        let durable = if claim && i > 0 {
            Lsn(4999 + i)
        } else {
            Lsn::ZERO
        };
        FrameEncoder::new(h.seed())
            .claiming(durable)
            .frame(
                &mut out,
                FrameKind::Tx,
                FrameFlags::NONE,
                Lsn(5000 + i),
                &payload,
            )
            .unwrap();
    }
    let end = out.len();
    file[..end].copy_from_slice(&out);
    (file, end)
}

fn with_marker(mut file: Vec<u8>, at: usize) -> Vec<u8> {
    file[at..at + FRAME_HEADER_LEN].fill(0);
    file
}

/// Both scanners' frame count and end; they must agree.
fn scan(file: &[u8], expect_sealed: bool) -> (usize, ScanEnd) {
    let mut whole = SegmentScanner::new(Bytes::copy_from_slice(file), expect_sealed).unwrap();
    let n = whole.by_ref().count();
    let end = whole.end().cloned().unwrap();
    let header = SegmentHeader::decode(file).unwrap();
    for chunk in [64, 4096, 1 << 20] {
        let mut c = ChunkedScanner::new(header, file.len() as u64, expect_sealed).chunk_size(chunk);
        let mut m = 0;
        while c.next_frame(file).unwrap().is_some() {
            m += 1;
        }
        assert_eq!(
            (m, c.end().cloned().unwrap()),
            (n, end.clone()),
            "chunk {chunk}"
        );
    }
    (n, end)
}

#[test]
fn the_flag_is_bit_zero_of_the_header_flags() {
    let bytes = new_header(true).encode();
    assert_eq!(
        u16::from_le_bytes([bytes[10], bytes[11]]),
        HEADER_FLAG_RECYCLED
    );
    assert!(SegmentHeader::decode(&bytes).unwrap().recycled);
}

#[test]
fn the_end_marker_ends_a_recycled_segment_cleanly() {
    for frames in [0, 1, 7] {
        let (file, end) = recycle(frames, true);
        let file = with_marker(file, end);
        let (n, how) = scan(&file, false);
        assert_eq!(n as u64, frames);
        assert_eq!(
            how,
            ScanEnd::Clean {
                offset: end,
                sealed: None
            }
        );
    }
}

#[test]
fn stale_bytes_without_a_marker_are_a_torn_tail() {
    let (file, end) = recycle(5, true);
    let (n, how) = scan(&file, false);
    assert_eq!(n, 5);
    assert!(
        matches!(how, ScanEnd::TornTail { offset, .. } if offset == end),
        "{how:?}"
    );
}

#[test]
fn without_the_flag_a_marker_does_not_hide_stale_bytes() {
    let (file, end) = recycle(5, false);
    let file = with_marker(file, end);
    let (_, how) = scan(&file, false);
    assert!(matches!(how, ScanEnd::TornTail { .. }), "{how:?}");
}

#[test]
fn a_marker_in_a_segment_that_must_be_sealed_is_corruption() {
    let (file, end) = recycle(3, true);
    let file = with_marker(file, end);
    let (_, how) = scan(&file, true);
    assert!(matches!(how, ScanEnd::Corrupt { .. }), "{how:?}");
}

#[test]
fn stale_bytes_after_the_seal_of_a_recycled_segment_are_fine() {
    let (mut file, end) = recycle(4, true);
    let h = new_header(true);
    let mut seal = Vec::new();
    encode_frame(
        &mut seal,
        h.seed(),
        FrameKind::Seal,
        0,
        Lsn(5004),
        &10u64.to_le_bytes(),
    )
    .unwrap();
    file[end..end + seal.len()].copy_from_slice(&seal);
    let (n, how) = scan(&file, true);
    assert_eq!(n, 5);
    assert_eq!(
        how,
        ScanEnd::Clean {
            offset: end + seal.len(),
            sealed: Some(SegmentSeq(10))
        }
    );
}

#[test]
fn a_verifying_frame_after_the_seal_is_still_corruption() {
    let (mut file, end) = recycle(2, true);
    let h = new_header(true);
    let mut tail = Vec::new();
    encode_frame(
        &mut tail,
        h.seed(),
        FrameKind::Seal,
        0,
        Lsn(5002),
        &10u64.to_le_bytes(),
    )
    .unwrap();
    let after_seal = end + tail.len();
    // Some stale bytes, then a frame of this segment's seed.
    let stray_at = after_seal + 333;
    let mut stray = Vec::new();
    encode_frame(&mut stray, h.seed(), FrameKind::Tx, 0, Lsn(5003), b"x").unwrap();
    file[end..after_seal].copy_from_slice(&tail);
    file[stray_at..stray_at + stray.len()].copy_from_slice(&stray);
    let (_, how) = scan(&file, true);
    assert!(
        matches!(how, ScanEnd::Corrupt { offset, .. } if offset == stray_at),
        "{how:?}"
    );
}

#[test]
fn a_zeroed_frame_header_followed_by_valid_frames_is_corruption() {
    // A zeroed sector that happens to start at a frame boundary looks like the end marker;
    // the frames of this segment after it give it away.
    let (file, _) = recycle(6, true);
    let h = new_header(true);
    let mut whole = SegmentScanner::new(Bytes::copy_from_slice(&file), false).unwrap();
    let offsets: Vec<usize> = whole.by_ref().map(|f| f.offset).collect();
    assert_eq!(offsets.len(), 6);
    assert_eq!(h.seed(), whole.header().seed());
    let file = with_marker(file, offsets[2]);
    let (n, how) = scan(&file, false);
    assert_eq!(n, 2);
    assert!(
        matches!(how, ScanEnd::Corrupt { offset, .. } if offset == offsets[2]),
        "{how:?}"
    );
    // Frames that claim nothing: unsynced writes, a torn tail that takes them along, never a
    // clean end that would leave them behind to be mistaken for data after the next write.
    let (file, end) = recycle_claiming(6, true, false);
    let file = with_marker(file, offsets[2]);
    let (n, how) = scan(&file, false);
    assert_eq!(n, 2);
    assert!(
        matches!(how, ScanEnd::TornTail { offset, .. } if offset == offsets[2]),
        "{how:?}"
    );
    let mut whole = SegmentScanner::new(Bytes::copy_from_slice(&file), false).unwrap();
    assert_eq!(whole.by_ref().count(), 2);
    assert_eq!(whole.valid_after_damage(), Some(end));
}
