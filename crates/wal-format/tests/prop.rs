//! Property tests of the scanner: round trips, truncation, bit flips, and arbitrary input.
//!
//! Case counts are kept modest so the whole file runs in a few seconds in debug builds.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/check.rs"]
mod check;
#[path = "support/segment.rs"]
mod segment;

use bytes::Bytes;
use check::{Outcome, check_segment, reencode};
use proptest::prelude::*;
use segment::{Built, Spec, build, build_claiming};
use wal_format::header::SEGMENT_HEADER_LEN;
use wal_format::records::{RecordIter, encode_records};
use wal_format::scan::{ScanEnd, SegmentScanner};
use wal_format::{LogId, Lsn, SegmentHeader, SegmentSeq, decode_all};

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        6 => prop::collection::vec(any::<u8>(), 0..max),
        // Runs of zeros look like preallocated space and stress the clean-end rule.
        1 => (0..max).prop_map(|n| vec![0; n]),
    ]
}

/// A transaction body: raw bytes, or a well-formed multi-record batch.
fn body() -> impl Strategy<Value = (bool, Vec<u8>)> {
    prop_oneof![
        (any::<bool>(), bytes(200)),
        prop::collection::vec(bytes(40), 0..5).prop_map(|rs| {
            let mut b = Vec::new();
            encode_records(&mut b, &rs);
            (true, b)
        }),
    ]
}

/// Any frame but a seal, with a payload of the shape its kind requires.
fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        4 => body().prop_map(|(multi, body)| Spec::Tx { multi, body }),
        1 => body().prop_map(|(multi, body)| Spec::FragBegin { multi, body }),
        1 => (any::<u64>(), bytes(200)).prop_map(|(stream, chunk)| Spec::FragPart { stream, chunk }),
        1 => (any::<u64>(), bytes(200)).prop_map(|(stream, chunk)| Spec::FragEnd { stream, chunk }),
        1 => any::<u64>().prop_map(|stream| Spec::FragAbort { stream }),
        1 => any::<u64>().prop_map(|lsn| Spec::Checkpoint { lsn }),
        1 => Just(Spec::Watermark),
    ]
}

fn header() -> impl Strategy<Value = SegmentHeader> {
    // Every value a header may hold: 1..2^63, including the top of the range.
    let max = wal_format::header::MAX_POSITION;
    let base = prop_oneof![3 => 1..1_000_000u64, 1 => 1..max, 1 => (max - 8)..max];
    (any::<u128>(), 1..max, base, any::<u64>()).prop_map(|(id, seq, base, open)| {
        let mut h = SegmentHeader::new(LogId::from_u128(id), SegmentSeq(seq), Lsn(base));
        h.oldest_open_lsn = Lsn(open % base);
        h
    })
}

/// A segment: header, frames, and an optional seal as the last frame.
fn segment() -> impl Strategy<Value = (SegmentHeader, Vec<Spec>)> {
    (
        header(),
        prop::collection::vec(spec(), 0..12),
        prop::option::of(any::<u64>()),
    )
        .prop_map(|(h, mut specs, seal)| {
            if let Some(next) = seal {
                specs.push(Spec::Seal { next });
            }
            (h, specs)
        })
}

fn sealed_next(specs: &[Spec]) -> Option<SegmentSeq> {
    match specs.last() {
        Some(Spec::Seal { next }) => Some(SegmentSeq(*next)),
        _ => None,
    }
}

fn outcomes(data: &[u8]) -> [Outcome; 2] {
    check_segment(data).expect("header must decode")
}

/// Cut points to try: every byte for short segments, else frame boundaries, the bytes around
/// them, and a spread in between.
fn cut_points(b: &Built) -> Vec<usize> {
    let len = b.bytes.len();
    if len <= 1200 {
        return (0..=len).collect();
    }
    let mut cuts: Vec<usize> = (0..=SEGMENT_HEADER_LEN + 1).collect();
    for &o in &b.offsets {
        cuts.extend([o.saturating_sub(1), o, o + 1, o + 4, o + 19, o + 20, o + 21]);
    }
    cuts.extend((0..len).step_by(len / 300 + 1));
    cuts.retain(|&c| c <= len);
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

proptest! {
    /// Any frame sequence scans back to exactly what was written, with or without zeros after.
    #[test]
    fn frames_round_trip((h, specs) in segment(), pad in prop_oneof![Just(0usize), 1..300usize]) {
        let built = build(&h, &specs);
        let sealed = sealed_next(&specs);
        let mut data = built.bytes.clone();
        data.resize(data.len() + pad, 0);
        let [open, strict] = outcomes(&data);
        let end = built.bytes.len();
        prop_assert_eq!(&open.frames, &built.frames);
        prop_assert_eq!(&open.end, &ScanEnd::Clean { offset: end, sealed });
        if sealed.is_some() {
            prop_assert_eq!(strict.end, ScanEnd::Clean { offset: end, sealed });
        } else {
            let corrupt_at_end = matches!(strict.end, ScanEnd::Corrupt { offset, .. } if offset == end);
            prop_assert!(corrupt_at_end, "{:?}", strict.end);
        }
        prop_assert_eq!(reencode(&h, &open.frames), built.bytes);
        // Batch bodies (and everything else) went through check_segment's record and codec
        // decoders above; a multi flag on a body that is not a batch is legal at this layer.
    }

    /// A recycled segment: the frames, an end marker (or a seal), then stale frames of the
    /// file's earlier life (another segment of the same log). Every frame written comes back,
    /// the log ends cleanly where the marker is, and nothing stale is yielded; without the
    /// marker the stale bytes are a torn tail, never corruption.
    #[test]
    fn recycled_segments_end_at_the_marker(
        (h, specs) in segment(),
        (old_h, old_specs) in segment(),
        marker in any::<bool>(),
    ) {
        let h = SegmentHeader { recycled: true, ..h };
        // The earlier life: same log, another sequence number.
        let old_h = SegmentHeader {
            log_id: h.log_id,
            seq: SegmentSeq(if old_h.seq == h.seq { h.seq.0 ^ 1 | 2 } else { old_h.seq.0 }),
            ..old_h
        };
        let built = build(&h, &specs);
        let stale = build(&old_h, &old_specs);
        let sealed = sealed_next(&specs);
        let end = built.bytes.len();
        let mut data = built.bytes.clone();
        if marker {
            data.extend_from_slice(&[0; wal_format::frame::FRAME_HEADER_LEN]);
        }
        data.extend_from_slice(&stale.bytes[SEGMENT_HEADER_LEN..]);
        let [open, _] = outcomes(&data);
        prop_assert_eq!(&open.frames, &built.frames);
        let rest_zero = data[end..].iter().all(|&b| b == 0);
        if marker || sealed.is_some() || rest_zero {
            prop_assert_eq!(&open.end, &ScanEnd::Clean { offset: end, sealed });
        } else {
            let torn = matches!(open.end, ScanEnd::TornTail { offset, .. } if offset == end);
            prop_assert!(torn, "{:?}", open.end);
        }
    }

    /// Cutting a segment anywhere keeps exactly the complete frames before the cut, and ends
    /// clean at a frame boundary, in a torn tail inside a frame.
    #[test]
    fn truncation_keeps_the_complete_prefix((h, specs) in segment()) {
        let built = build(&h, &specs);
        for cut in cut_points(&built) {
            let data = &built.bytes[..cut];
            if cut < SEGMENT_HEADER_LEN {
                prop_assert!(SegmentHeader::decode(data).is_err());
                prop_assert!(SegmentScanner::new(Bytes::copy_from_slice(data), false).is_err());
                continue;
            }
            let [open, strict] = outcomes(data);
            // Frames that end at or before the cut survive.
            let k = built.offsets[1..].iter().take_while(|&&e| e <= cut).count();
            prop_assert_eq!(&open.frames[..], &built.frames[..k], "cut at {}", cut);
            let start = built.offsets[k];
            let expected = if start == cut {
                ScanEnd::Clean { offset: cut, sealed: sealed_next(&specs[..k]) }
            } else if data[start..].iter().all(|&b| b == 0) {
                // A partial frame that is all zeros so far cannot be told from preallocation.
                ScanEnd::Clean { offset: start, sealed: None }
            } else {
                ScanEnd::TornTail { offset: start, reason: String::new() }
            };
            match (&open.end, &expected) {
                (ScanEnd::TornTail { offset: a, .. }, ScanEnd::TornTail { offset: b, .. }) => {
                    prop_assert_eq!(a, b, "cut at {}", cut);
                }
                (a, b) => prop_assert_eq!(a, b, "cut at {}", cut),
            }
            // A segment that must be sealed is corrupt unless the cut left the seal intact.
            let complete = matches!(expected, ScanEnd::Clean { sealed: Some(_), .. });
            prop_assert_eq!(matches!(strict.end, ScanEnd::Clean { .. }), complete, "cut at {}", cut);
            let corrupt = matches!(strict.end, ScanEnd::Corrupt { .. });
            prop_assert!(complete || corrupt, "cut at {}: {:?}", cut, strict.end);
        }
    }

    /// No single-bit flip is ever accepted: the scan yields the frames before the damaged one
    /// unchanged and then stops with a torn tail or corruption, or the header is refused.
    #[test]
    fn single_bit_flips_are_never_accepted(
        (h, specs) in segment(),
        pad in prop_oneof![Just(0usize), 1..64usize],
        picks in prop::collection::vec(any::<prop::sample::Index>(), 24),
    ) {
        let built = build(&h, &specs);
        let mut clean = built.bytes.clone();
        clean.resize(clean.len() + pad, 0);
        let bits = clean.len() * 8;
        for pick in picks {
            let bit = pick.index(bits);
            let mut data = clean.clone();
            data[bit / 8] ^= 1 << (bit % 8);
            let byte = bit / 8;
            if byte < SEGMENT_HEADER_LEN {
                prop_assert!(check_segment(&data).is_none(), "header bit {} flip accepted", bit);
                continue;
            }
            // The flipped byte is in frame k, or in the padding after the last frame (k = n).
            let k = built.offsets[1..].iter().take_while(|&&e| e <= byte).count();
            let [open, strict] = outcomes(&data);
            prop_assert_eq!(&open.frames[..], &built.frames[..k], "bit {}", bit);
            for o in [&open, &strict] {
                match &o.end {
                    ScanEnd::TornTail { offset, .. } => prop_assert_eq!(*offset, built.offsets[k]),
                    ScanEnd::Corrupt { offset, .. } => {
                        // At the damaged frame, or at the flipped byte after a seal.
                        prop_assert!(*offset == built.offsets[k] || *offset == byte, "bit {}", bit);
                    }
                    ScanEnd::Clean { .. } => prop_assert!(false, "bit {} flip ended clean", bit),
                }
            }
            let corrupt = matches!(strict.end, ScanEnd::Corrupt { .. });
            prop_assert!(corrupt, "bit {}: {:?}", bit, strict.end);
        }
    }

    /// A valid header followed by anything: no panic, and every invariant of `check_segment`.
    #[test]
    fn arbitrary_frames_never_panic(
        h in header(),
        tail in prop::collection::vec(any::<u8>(), 0..600),
        expect_sealed in any::<bool>(),
    ) {
        let mut data = h.encode().to_vec();
        data.extend_from_slice(&tail);
        let _ = outcomes(&data);
        let mut s = SegmentScanner::new(Bytes::from(data), expect_sealed).unwrap();
        let _ = s.finish();
    }

    /// A valid segment with a random stretch overwritten by random bytes.
    #[test]
    fn damaged_segments_never_panic(
        (h, specs) in segment(),
        at in any::<prop::sample::Index>(),
        junk in prop::collection::vec(any::<u8>(), 1..64),
    ) {
        let mut data = build(&h, &specs).bytes;
        let start = SEGMENT_HEADER_LEN + at.index(data.len() - SEGMENT_HEADER_LEN + 1);
        let end = (start + junk.len()).min(data.len());
        data.splice(start..end, junk);
        let _ = outcomes(&data);
    }

    /// Arbitrary bytes never panic the header decoder, the scanners (both, behind a valid
    /// header: arbitrary bytes alone stop at the header's magic or checksum), the record
    /// iterator or the codec.
    #[test]
    fn arbitrary_bytes_never_panic(
        h in header(),
        data in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let _ = check_segment(&data);
        let mut segment = h.encode().to_vec();
        segment.extend_from_slice(&data);
        let _ = outcomes(&segment);
        let _ = RecordIter::new(Bytes::from(data.clone())).count();
        let _ = decode_all::<check::Event, _>(&wal_format::Bincode, &data);
        let _ = decode_all::<String, _>(&wal_format::Bincode, &data);
        let _ = decode_all::<Vec<u64>, _>(&wal_format::Bincode, &data);
        let _ = decode_all::<(u8, Option<Vec<u8>>), _>(&wal_format::Bincode, &data);
    }

    /// Arbitrary bytes behind a real header magic get as far as the checksum.
    #[test]
    fn arbitrary_headers_never_panic(rest in prop::collection::vec(any::<u8>(), 0..100)) {
        let mut data = wal_format::header::SEGMENT_MAGIC.to_vec();
        data.extend_from_slice(&rest);
        prop_assert!(check_segment(&data).is_none());
    }
}

/// Every single-bit flip of a segment holding every frame kind, exhaustively.
#[test]
fn every_bit_flip_of_a_segment_with_every_kind_is_caught() {
    let mut h = SegmentHeader::new(LogId::from_u128(0xf11b), SegmentSeq(9), Lsn(40));
    h.oldest_open_lsn = Lsn(38);
    let mut batch = Vec::new();
    encode_records(&mut batch, &[&b"one"[..], b"two"]);
    let specs = [
        Spec::FragEnd {
            stream: 38,
            chunk: b"end".to_vec(),
        },
        Spec::Tx {
            multi: true,
            body: batch,
        },
        Spec::Tx {
            multi: false,
            body: Vec::new(),
        },
        Spec::FragBegin {
            multi: false,
            body: b"begin".to_vec(),
        },
        Spec::FragPart {
            stream: 43,
            chunk: b"part".to_vec(),
        },
        Spec::FragAbort { stream: 43 },
        Spec::Checkpoint { lsn: 41 },
        Spec::Seal { next: 10 },
    ];
    // Each frame claims every frame before it durable, as under `SyncPolicy::Always` once
    // each flush is synced: damage before the last frame is then before a claim.
    let built = build_claiming(&h, &specs, |_, lsn| lsn.prev());
    let mut padded = built.bytes.clone();
    padded.resize(padded.len() + 8, 0);
    for bit in 0..padded.len() * 8 {
        let mut data = padded.clone();
        data[bit / 8] ^= 1 << (bit % 8);
        let byte = bit / 8;
        let Some([open, strict]) = check_segment(&data) else {
            assert!(
                byte < SEGMENT_HEADER_LEN,
                "bit {bit}: header refused for a frame flip"
            );
            continue;
        };
        assert!(byte >= SEGMENT_HEADER_LEN, "header bit {bit} flip accepted");
        let k = built.offsets[1..]
            .iter()
            .take_while(|&&e| e <= byte)
            .count();
        assert_eq!(open.frames, built.frames[..k], "bit {bit}");
        for end in [&open.end, &strict.end] {
            let at = match end {
                ScanEnd::TornTail { offset, .. } => *offset,
                ScanEnd::Corrupt { offset, .. } if k == specs.len() => {
                    assert_eq!(*offset, byte, "bit {bit}");
                    continue;
                }
                ScanEnd::Corrupt { offset, .. } => *offset,
                ScanEnd::Clean { .. } => panic!("bit {bit} flip ended clean"),
            };
            assert_eq!(at, built.offsets[k], "bit {bit}");
        }
        // Only the last frame can be torn; damage before it is followed by a valid frame
        // that claims it durable.
        if k + 1 < specs.len() {
            assert!(
                matches!(open.end, ScanEnd::Corrupt { .. }),
                "bit {bit}: {:?}",
                open.end
            );
        }
    }
}

proptest! {
    /// A batch framed from borrowed pieces with `FrameSum` (how wal-log writes large batches
    /// without copying them) is byte for byte the frame `encode_records_frame` builds, and a
    /// miscounted payload is refused rather than given a checksum.
    #[test]
    fn frames_from_pieces_match_encoded_frames(
        records in prop::collection::vec(bytes(300), 0..20),
        log_id in any::<u128>(),
        seq in 1..u64::MAX,
        lsn in 1..u64::MAX,
    ) {
        let seed = wal_format::SegmentSeed::new(LogId::from_u128(log_id), SegmentSeq(seq));
        let lsn = Lsn(lsn);
        let mut encoded = Vec::new();
        wal_format::frame::encode_records_frame(&mut encoded, seed, lsn, &records).unwrap();

        let len = wal_format::records::records_len(&records);
        let mut sum = wal_format::frame::FrameSum::new(seed, wal_format::FrameKind::Tx, wal_format::frame::FLAG_MULTI, lsn, len, Lsn::ZERO).unwrap();
        let mut prefixes = vec![[9u8; 4]; 3];
        let mut framed = Vec::new();
        for piece in wal_format::records::records_body_pieces(&records, &mut prefixes) {
            sum.fold(piece);
            framed.extend_from_slice(piece);
        }
        let mut whole = sum.header().unwrap().to_vec();
        whole.extend_from_slice(&framed);
        prop_assert_eq!(&whole, &encoded);

        sum.fold(b"x");
        prop_assert!(sum.header().is_err());
    }
}

/// Claims as a writer makes them: a durable point (counted in frames that take an LSN) that
/// only grows, drawn per frame, never past the frames before it.
fn writer_claims(h: &SegmentHeader, specs: &[Spec], steps: &[u8]) -> Vec<Lsn> {
    let mut durable_frames = 0u64;
    let mut taken = 0u64;
    let mut claims = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        durable_frames = (durable_frames + u64::from(steps[i % steps.len()] % 3)).min(taken);
        claims.push(if durable_frames == 0 {
            Lsn::ZERO
        } else {
            Lsn(h.base_lsn.0 + durable_frames - 1)
        });
        if spec.kind().takes_lsn() {
            taken += 1;
        }
    }
    claims
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The recovery rule of format.md 7.2 in the newest segment: a damaged frame is corruption
    /// exactly when a valid frame after it claims its LSN durable, else a torn tail; the
    /// frames before it come back either way, and a segment that must be sealed is corrupt.
    #[test]
    fn damage_is_corruption_exactly_before_a_claim(
        (h, specs) in segment(),
        steps in prop::collection::vec(any::<u8>(), 1..16),
        at in any::<prop::sample::Index>(),
        byte in any::<prop::sample::Index>(),
        zero in any::<bool>(),
    ) {
        prop_assume!(!specs.is_empty());
        let claims = writer_claims(&h, &specs, &steps);
        let built = build_claiming(&h, &specs, |i, _| claims[i]);
        let k = at.index(specs.len());
        let (start, end) = (built.offsets[k], built.offsets[k + 1]);
        let mut data = built.bytes.clone();
        if zero {
            data[start..end].fill(0);
        } else {
            // The checksum's first byte: the frame fails its checksum, nothing else changes.
            data[start] ^= 1 + (byte.index(255) as u8);
        }
        let [open, strict] = outcomes(&data);
        prop_assert_eq!(&open.frames[..], &built.frames[..k]);
        let f = &built.frames[k];
        let next = if f.kind.takes_lsn() { f.lsn } else { f.lsn.next() };
        let claimed = claims[k + 1..].iter().any(|&c| c >= next);
        let rest_zero = data[start..].iter().all(|&b| b == 0);
        match &open.end {
            ScanEnd::Corrupt { offset, .. } => {
                prop_assert!(claimed, "corrupt without a claim: {:?}", &open.end);
                prop_assert_eq!(*offset, start);
            }
            ScanEnd::TornTail { offset, .. } => {
                prop_assert!(!claimed, "torn although a later frame claims LSN {}", next);
                prop_assert_eq!(*offset, start);
                // The valid frames after the damage belong to the tail, to be moved aside.
                let last = built.offsets[specs.len()];
                let expected = (k + 1 < specs.len()).then_some(last);
                prop_assert_eq!(open.valid_after_damage, expected);
            }
            ScanEnd::Clean { offset, .. } => {
                prop_assert!(rest_zero && *offset == start, "{:?}", &open.end);
            }
        }
        let strict_corrupt = matches!(strict.end, ScanEnd::Corrupt { .. });
        prop_assert!(strict_corrupt, "{:?}", &strict.end);
    }
}
