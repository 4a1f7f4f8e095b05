//! The invariants every reader of the format must keep on any input, however malformed.
//!
//! Shared by the property tests, the corpus replay test (`tests/fuzz_corpus.rs`) and the
//! cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`, which include this file by path), so the fuzzer
//! and `cargo test` check exactly the same things. Every check panics on a violation.
#![allow(dead_code)]

use bytes::Bytes;
use wal_format::frame::{
    FLAG_MULTI, FRAME_HEADER_LEN, FrameEncoder, FrameFlags, MAX_FRAME_PAYLOAD,
};
use wal_format::header::{SEGMENT_HEADER_LEN, SEGMENT_MAGIC};
use wal_format::records::{RecordIter, encode_records};
use wal_format::scan::{ChunkedScanner, ReadAt, ScanEnd, SegmentScanner};
use wal_format::{
    Bincode, FormatError, Frame, FrameKind, LogId, Lsn, SegmentHeader, SegmentSeq, decode_all,
};

/// An event type with every shape bincode's decoder allocates for: strings, byte vectors,
/// sequences, options, wide integers and chars.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
pub enum Event {
    /// A key and value.
    Put {
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
    },
    /// A deletion.
    Del(String),
    /// Integers of several widths.
    Counter(u64, i32, u128),
    /// An optional note.
    Note(Option<String>),
    /// A nested sequence.
    Batch(Vec<(u16, char)>),
}

/// What one scan of a segment produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The verified frames, in order.
    pub frames: Vec<Frame>,
    /// How the scan ended.
    pub end: ScanEnd,
    /// [`SegmentScanner::valid_after_damage`].
    pub valid_after_damage: Option<usize>,
    /// [`SegmentScanner::claimed_after_damage`].
    pub claimed_after_damage: Lsn,
}

/// Re-encodes decoded frames after `header`: the inverse of a scan.
pub fn reencode(header: &SegmentHeader, frames: &[Frame]) -> Vec<u8> {
    let mut out = header.encode().to_vec();
    for f in frames {
        let enc = FrameEncoder::new(header.seed()).claiming(f.durable());
        let flags = if f.is_multi() {
            FrameFlags::MULTI
        } else {
            FrameFlags::NONE
        };
        if let Err(e) = enc.frame(&mut out, f.kind, flags, f.lsn, &f.payload) {
            panic!("a verified frame does not re-encode: {e}");
        }
    }
    out
}

/// Runs every reader over `data` and checks its invariants.
///
/// Returns the outcomes of scanning with `expect_sealed` false and true, or `None` when the
/// header does not decode.
pub fn check_segment(data: &[u8]) -> Option<[Outcome; 2]> {
    let header = check_header(data);
    let bytes = Bytes::copy_from_slice(data);
    check_body(&bytes);
    let mut outcomes = Vec::with_capacity(2);
    for expect_sealed in [false, true] {
        match (&header, SegmentScanner::new(bytes.clone(), expect_sealed)) {
            (Some(h), Ok(s)) => {
                let outcome = check_scan(h, s, &bytes, expect_sealed);
                check_chunked(h, data, expect_sealed, &outcome);
                outcomes.push(outcome);
            }
            (None, Err(_)) => return None,
            (h, s) => panic!(
                "SegmentHeader::decode gave {h:?} but SegmentScanner::new {:?}",
                s.err()
            ),
        }
    }
    let [a, b]: [Outcome; 2] = outcomes.try_into().ok()?;
    // The mode changes only how a scan ends, never which frames verify.
    assert_eq!(a.frames, b.frames, "the two modes disagree on frames");
    Some([a, b])
}

/// Reads at most `max` bytes per call, as a file may.
struct Dribble<'a> {
    data: &'a [u8],
    max: usize,
}

impl ReadAt for Dribble<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let n = buf.len().min(self.max);
        self.data.read_at(&mut buf[..n], offset)
    }
}

/// A [`ChunkedScanner`] reading `data` in chunks of several sizes (down to one byte, and
/// through a source that returns short reads) yields exactly the frames and the end that the
/// whole-buffer scan found, and the offset where non-zero data ends.
pub fn check_chunked(header: &SegmentHeader, data: &[u8], expect_sealed: bool, whole: &Outcome) {
    let data_end = data
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i as u64 + 1);
    for (chunk, max_read) in [(1, usize::MAX), (7, 3), (64, usize::MAX), (1 << 20, 5)] {
        let src = Dribble {
            data,
            max: max_read,
        };
        let mut s =
            ChunkedScanner::new(*header, data.len() as u64, expect_sealed).chunk_size(chunk);
        let mut frames = Vec::new();
        while let Some(f) = s.next_frame(&src).expect("reading a slice cannot fail") {
            frames.push(f);
        }
        assert_eq!(
            frames, whole.frames,
            "chunk {chunk}: frames differ from the whole scan"
        );
        assert_eq!(
            s.end(),
            Some(&whole.end),
            "chunk {chunk}: end differs from the whole scan"
        );
        assert!(
            s.next_frame(&src).unwrap().is_none(),
            "a finished scanner must stay finished"
        );
        assert_eq!(s.finish(&src).unwrap(), whole.end);
        assert_eq!(
            s.valid_after_damage().map(|e| e as usize),
            whole.valid_after_damage,
            "chunk {chunk}: valid frames after the damage"
        );
        assert_eq!(
            s.claimed_after_damage(),
            whole.claimed_after_damage,
            "chunk {chunk}: claims after the damage"
        );
        assert_eq!(
            s.data_end(&src).unwrap(),
            data_end,
            "chunk {chunk}: data end"
        );
    }
}

/// Decodes a header and checks that a decoded header re-encodes to the same 64 bytes, and
/// that a foreign file is reported as such.
pub fn check_header(data: &[u8]) -> Option<SegmentHeader> {
    match SegmentHeader::decode(data) {
        Ok(h) => {
            assert_eq!(
                &h.encode()[..],
                &data[..SEGMENT_HEADER_LEN],
                "header does not round-trip"
            );
            Some(h)
        }
        Err(e) => {
            let foreign = data.len() >= 8 && data[..8] != SEGMENT_MAGIC;
            assert_eq!(foreign, matches!(e, FormatError::BadMagic { .. }), "{e}");
            assert!(!e.to_string().is_empty());
            None
        }
    }
}

/// The whole check of the `scan_segment` fuzz target: `data` as it is, then with its header
/// fields re-stamped under a valid header checksum, then also with every frame checksum
/// recomputed, so that mutations reach the checks that come after the checksums.
pub fn fuzz_scan_segment(data: &[u8]) {
    let _ = check_segment(data);
    if data.len() < SEGMENT_HEADER_LEN {
        return;
    }
    let mut fixed = data.to_vec();
    let header = restamp_header(&mut fixed);
    let _ = check_segment(&fixed);
    let mut pos = SEGMENT_HEADER_LEN;
    while let Some(h) = fixed.get(pos..pos + FRAME_HEADER_LEN) {
        let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
        let end = pos + FRAME_HEADER_LEN + len;
        if len > MAX_FRAME_PAYLOAD || end > fixed.len() {
            break;
        }
        let crc = crc32c::crc32c_append(header.seed().get(), &fixed[pos + 4..end]);
        fixed[pos..pos + 4].copy_from_slice(&crc.to_le_bytes());
        pos = end;
    }
    let _ = check_segment(&fixed);
}

/// The whole check of the `decode_header` fuzz target.
pub fn fuzz_decode_header(data: &[u8]) {
    let _ = check_header(data);
    if data.len() >= SEGMENT_HEADER_LEN {
        let mut fixed = data.to_vec();
        let h = restamp_header(&mut fixed);
        assert_eq!(check_header(&fixed), Some(h));
    }
}

/// Overwrites the first 64 bytes of `data` with a valid header carrying the identity and LSN
/// fields found there, and returns it.
fn restamp_header(data: &mut [u8]) -> SegmentHeader {
    let u64_at = |at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&data[at..at + 8]);
        u64::from_le_bytes(a)
    };
    let mut id = [0u8; 16];
    id.copy_from_slice(&data[16..32]);
    // Fold the fields into the ranges a header may hold (1..2^63, open < base).
    let pos = |v: u64| 1 + v % (wal_format::header::MAX_POSITION - 1);
    let base = pos(u64_at(40));
    let mut h = SegmentHeader::new(
        LogId::from_u128(u128::from_le_bytes(id)),
        SegmentSeq(pos(u64_at(32))),
        Lsn(base),
    );
    h.oldest_open_lsn = Lsn(u64_at(48) % base);
    // Keep the recycled flag the input chose, so mutations reach the recycled-segment rules.
    h.recycled = data[10] & 1 != 0;
    data[..SEGMENT_HEADER_LEN].copy_from_slice(&h.encode());
    h
}

fn check_scan(
    header: &SegmentHeader,
    mut s: SegmentScanner,
    data: &Bytes,
    expect_sealed: bool,
) -> Outcome {
    assert_eq!(s.header(), header);
    let mut frames: Vec<Frame> = Vec::new();
    let mut pos = SEGMENT_HEADER_LEN;
    let mut lsn = header.base_lsn;
    for f in s.by_ref() {
        assert!(
            frames.len() < data.len() / FRAME_HEADER_LEN,
            "more frames than bytes allow"
        );
        assert_eq!(
            (f.offset, f.lsn),
            (pos, f.kind.expected_lsn(lsn)),
            "frames must be contiguous and dense"
        );
        assert!(f.payload.len() <= MAX_FRAME_PAYLOAD);
        assert!(
            u64::from(f.durable_lag) <= f.lsn.0,
            "a durable lag past the frame's LSN verified"
        );
        pos += f.encoded_len();
        if f.kind.takes_lsn() {
            lsn = lsn.next();
        }
        assert_eq!(&data[f.offset + FRAME_HEADER_LEN..pos], &f.payload[..]);
        check_frame(&f);
        frames.push(f);
    }
    assert_eq!((s.position(), s.next_lsn()), (pos, lsn));
    let Some(end) = s.end().cloned() else {
        panic!("a finished scan must report how it ended");
    };
    assert!(s.next().is_none(), "a finished scanner must stay finished");
    assert_eq!(s.finish(), end);

    if let Some(i) = frames.iter().position(|f| f.kind == FrameKind::Seal) {
        assert_eq!(i + 1, frames.len(), "a seal must be the last frame yielded");
    }
    let sealed = frames.last().and_then(Frame::sealed_next);
    let rest_is_zero = data[pos..].iter().all(|&b| b == 0);
    match &end {
        ScanEnd::Clean { offset, sealed: s } => {
            assert_eq!(*offset, pos);
            assert_eq!(*s, sealed);
            if header.recycled && !rest_is_zero {
                // Stale bytes may follow an end marker or a seal, but nothing in them may
                // verify under this segment's seed.
                let marker = data.len() >= pos + FRAME_HEADER_LEN
                    && data[pos..pos + FRAME_HEADER_LEN].iter().all(|&b| b == 0);
                assert!(
                    marker || sealed.is_some(),
                    "a clean end of a recycled segment needs zeros, an end marker or a seal"
                );
                let seed = header.seed();
                assert!(
                    (pos..data.len())
                        .all(|q| wal_format::frame::decode_frame(data, q, seed).is_err()),
                    "a clean end with a verifying frame after it"
                );
            } else {
                assert!(
                    rest_is_zero,
                    "a clean end must be followed by nothing or zeros"
                );
            }
            assert!(
                !expect_sealed || sealed.is_some(),
                "an unsealed segment ended clean"
            );
        }
        ScanEnd::TornTail { offset, .. } => {
            assert_eq!(*offset, pos);
            assert!(
                !expect_sealed,
                "a torn tail in a segment that must be sealed"
            );
            assert!(!rest_is_zero && sealed.is_none());
            if header.recycled && s.valid_after_damage().is_none() {
                assert!(
                    data.len() < pos + FRAME_HEADER_LEN
                        || data[pos..pos + FRAME_HEADER_LEN].iter().any(|&b| b != 0),
                    "an end marker in a recycled segment is a clean end, not a torn tail"
                );
            }
            check_claims_after(header, data, pos, lsn);
        }
        ScanEnd::Corrupt { offset, .. } => {
            assert!(*offset <= data.len());
            // Only trailing bytes after a verified seal put the corruption past `pos`.
            assert!(
                *offset == pos || (sealed.is_some() && *offset > pos),
                "{end:?}"
            );
        }
    }
    assert!(
        reencode(header, &frames) == data[..pos],
        "verified frames must re-encode exactly"
    );
    if !matches!(end, ScanEnd::TornTail { .. }) {
        assert_eq!(
            s.valid_after_damage(),
            None,
            "valid frames noted outside a torn tail"
        );
    }
    let valid_after_damage = s.valid_after_damage();
    if matches!(end, ScanEnd::TornTail { .. }) {
        assert!(s.claimed_after_damage() < lsn, "a torn tail below a claim");
    }
    Outcome {
        frames,
        end,
        valid_after_damage,
        claimed_after_damage: s.claimed_after_damage(),
    }
}

/// A torn tail at `pos` (the frame there was to carry `next`): no frame after it that could
/// follow and verifies claims `next` durable (format.md 7.2), checked by brute force.
fn check_claims_after(header: &SegmentHeader, data: &Bytes, pos: usize, next: Lsn) {
    let seed = header.seed();
    for q in pos + 1..data.len() {
        let Ok(f) = wal_format::frame::decode_frame(data, q, seed) else {
            continue;
        };
        let bound = ((q - pos) / FRAME_HEADER_LEN) as u64;
        if f.lsn.0.wrapping_sub(f.kind.expected_lsn(next).0) <= bound {
            assert!(
                f.durable() < next,
                "a torn tail at {pos} although the frame at {q} claims {} durable",
                f.durable()
            );
        }
    }
}

/// Checks one verified frame's accessors against its kind's payload layout.
pub fn check_frame(f: &Frame) {
    assert_eq!(
        f.flags & !FLAG_MULTI,
        0,
        "undefined flag bits on a verified frame"
    );
    let le = |p: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&p[..8]);
        Lsn(u64::from_le_bytes(a))
    };
    let body = f.body();
    match f.kind {
        FrameKind::Tx | FrameKind::FragBegin => {
            assert_eq!(body, f.payload);
            assert_eq!(
                f.stream(),
                (f.kind == FrameKind::FragBegin).then_some(f.lsn)
            );
        }
        FrameKind::FragPart | FrameKind::FragEnd => {
            assert_eq!((f.flags, f.stream()), (0, Some(le(&f.payload))));
            assert_eq!(body, f.payload.slice(8..));
        }
        FrameKind::Watermark => {
            assert_eq!((f.flags, f.payload.len(), body.len()), (0, 0, 0));
            assert_eq!(f.stream(), None);
        }
        FrameKind::FragAbort | FrameKind::Checkpoint | FrameKind::Seal => {
            assert_eq!((f.flags, f.payload.len(), body.len()), (0, 8, 0));
            let v = Some(le(&f.payload));
            assert_eq!(f.stream(), v.filter(|_| f.kind == FrameKind::FragAbort));
            assert_eq!(
                f.checkpoint_lsn(),
                v.filter(|_| f.kind == FrameKind::Checkpoint)
            );
            assert_eq!(
                f.sealed_next().map(|s| Lsn(s.0)),
                v.filter(|_| f.kind == FrameKind::Seal)
            );
        }
    }
    if f.kind != FrameKind::Checkpoint {
        assert!(f.checkpoint_lsn().is_none());
    }
    if f.kind != FrameKind::Seal {
        assert!(f.sealed_next().is_none());
    }
    check_body(&body);
}

/// Runs the body decoders (multi-record iteration and the bincode codec) over `body`.
pub fn check_body(body: &Bytes) {
    check_records(body);
    if let Ok(events) = decode_all::<Event, _>(&Bincode, body) {
        assert!(
            events.len() <= body.len(),
            "every event takes at least one byte"
        );
    }
}

/// Iterates `body` as a multi-record batch: it ends, errs at most once, and when it succeeds
/// the records re-encode to exactly `body`.
pub fn check_records(body: &Bytes) -> Option<Vec<Bytes>> {
    let mut it = RecordIter::new(body.clone());
    let mut records = Vec::new();
    let mut used = 4;
    loop {
        match it.next() {
            Some(Ok(r)) => {
                used += 4 + r.len();
                assert!(
                    used <= body.len(),
                    "records claim more bytes than the body has"
                );
                records.push(r);
            }
            Some(Err(_)) => {
                assert!(it.next().is_none(), "RecordIter must end after its error");
                return None;
            }
            None => break,
        }
    }
    assert!(it.next().is_none(), "RecordIter must stay finished");
    let mut out = Vec::new();
    encode_records(&mut out, &records);
    assert!(out == body[..], "records must re-encode to their body");
    Some(records)
}
