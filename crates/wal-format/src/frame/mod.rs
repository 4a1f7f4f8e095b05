//! Frames: the kinds, the header length and payload limit, the per-segment checksum seed,
//! and the functions that encode and decode one frame. Tools and `wal-log` write through these;
//! an engine never needs them.
//!
//! This module holds the frame's types and the field rules both directions check; the
//! submodules hold one direction each: `encode` (the free `encode_*` functions), `encoder`
//! ([`FrameEncoder`]), `sum` ([`FrameSum`], a frame written from the caller's buffers) and
//! `decode` (verification and the reason a frame fails).

use crate::header::{LogId, SegmentHeader, arr8};
use crate::lsn::{Lsn, SegmentSeq};
use bytes::Bytes;

mod decode;
mod encode;
mod encoder;
mod sum;

pub use decode::decode_frame;
pub(crate) use decode::{FrameFault, decode_at, fault_at, try_decode_at};
pub use encode::{encode_fragment, encode_frame, encode_records_frame};
pub use encoder::FrameEncoder;
pub use sum::FrameSum;

/// Length in bytes of a frame header: checksum, length, kind, flags, reserved, LSN.
pub const FRAME_HEADER_LEN: usize = 20;

/// The largest payload one frame may carry: 4 MiB. Larger transactions are written as a
/// fragment sequence. A length field above this is rejected before anything is read or
/// allocated, so a corrupt length cannot make a reader allocate gigabytes.
pub const MAX_FRAME_PAYLOAD: usize = 4 << 20;

/// Flag: the transaction body is a multi-record batch (see [`crate::records::encode_records`]).
/// Allowed on [`FrameKind::Tx`] and [`FrameKind::FragBegin`] only.
pub const FLAG_MULTI: u8 = 0x01;

/// What a frame is. The numeric values are part of the on-disk format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// A whole transaction in one frame: the common path.
    Tx = 1,
    /// First fragment of a transaction too large for one frame. Its LSN names the stream.
    FragBegin = 2,
    /// A middle fragment. Payload: the stream's begin LSN (u64 LE), then a chunk of the body.
    FragPart = 3,
    /// Last fragment; commits the transaction at this frame's LSN. Payload as [`FrameKind::FragPart`].
    FragEnd = 4,
    /// Abandons a fragment stream. Payload: the stream's begin LSN (u64 LE).
    FragAbort = 5,
    /// A snapshot covering every transaction up to the LSN in the payload (u64 LE) exists.
    Checkpoint = 6,
    /// Closes a segment. Payload: the next segment's sequence number (u64 LE).
    Seal = 7,
    /// Carries only a durable watermark (its durable lag): a clean close writes one after its
    /// last fsync, so that damage to the last flush reads as corruption rather than a torn
    /// tail. Takes no LSN: its LSN field repeats the LSN of the frame before it (the base LSN
    /// minus one at the start of a segment). Empty payload.
    Watermark = 8,
}

impl FrameKind {
    /// Parses the kind byte; `None` for values this version does not define (including 0,
    /// which is what preallocated space holds).
    #[must_use]
    pub const fn from_u8(v: u8) -> Option<FrameKind> {
        Some(match v {
            1 => FrameKind::Tx,
            2 => FrameKind::FragBegin,
            3 => FrameKind::FragPart,
            4 => FrameKind::FragEnd,
            5 => FrameKind::FragAbort,
            6 => FrameKind::Checkpoint,
            7 => FrameKind::Seal,
            8 => FrameKind::Watermark,
            _ => return None,
        })
    }

    #[inline]
    fn allowed_flags(self) -> u8 {
        match self {
            FrameKind::Tx | FrameKind::FragBegin => FLAG_MULTI,
            _ => 0,
        }
    }

    /// The exact payload length this kind requires, or the minimum for variable ones.
    #[inline]
    fn payload_rule(self) -> (usize, bool) {
        match self {
            FrameKind::Tx | FrameKind::FragBegin => (0, false),
            FrameKind::FragPart | FrameKind::FragEnd => (8, false),
            FrameKind::FragAbort | FrameKind::Checkpoint | FrameKind::Seal => (8, true),
            FrameKind::Watermark => (0, true),
        }
    }

    /// Whether a frame of this kind takes the next LSN. Every kind does but
    /// [`FrameKind::Watermark`], which repeats the LSN before it.
    #[must_use]
    #[inline]
    pub const fn takes_lsn(self) -> bool {
        !matches!(self, FrameKind::Watermark)
    }

    /// The LSN a frame of this kind must carry when the next LSN to assign is `next_lsn`.
    #[must_use]
    #[inline]
    pub const fn expected_lsn(self, next_lsn: Lsn) -> Lsn {
        if self.takes_lsn() {
            next_lsn
        } else {
            Lsn(next_lsn.0.wrapping_sub(1))
        }
    }
}

/// The durable lag a frame with LSN `lsn` stores to claim that every frame up to `durable`
/// was durable when it was written: `lsn + 1 - durable`, or 0 (no claim) when nothing is
/// durable yet or the distance does not fit the 16-bit field. Claiming less than the truth
/// is always sound, so a distance too large to store is dropped, never clamped.
#[must_use]
#[inline]
pub fn durable_lag(lsn: Lsn, durable: Lsn) -> u16 {
    debug_assert!(
        durable <= lsn,
        "a frame claims durable {durable} past its own LSN {lsn}"
    );
    if durable == Lsn::ZERO || durable > lsn {
        return 0;
    }
    u16::try_from(lsn.0 - durable.0 + 1).unwrap_or(0)
}

/// The checksum seed of one segment: CRC32C of the log id (16 bytes LE) and the segment
/// sequence (8 bytes LE). Seeding every frame's checksum with it makes a frame verify only in
/// the segment, and the log, it was written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentSeed(u32);

impl SegmentSeed {
    /// The seed for segment `seq` of log `log_id`.
    #[must_use]
    pub fn new(log_id: LogId, seq: SegmentSeq) -> SegmentSeed {
        let mut b = [0u8; 24];
        b[..16].copy_from_slice(&log_id.as_u128().to_le_bytes());
        b[16..].copy_from_slice(&seq.0.to_le_bytes());
        SegmentSeed(crc32c::crc32c(&b))
    }

    /// The raw seed value.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }
}

// Here rather than in `header`, so that the header (which knows no frames) does not depend on
// this module, which depends on it.
impl SegmentHeader {
    /// The checksum seed of every frame in this segment.
    #[must_use]
    pub fn seed(&self) -> SegmentSeed {
        SegmentSeed::new(self.log_id, self.seq)
    }
}

/// One decoded, verified frame. The payload is a zero-copy view into the segment's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// What the frame is.
    pub kind: FrameKind,
    /// Flag bits ([`FLAG_MULTI`]).
    pub flags: u8,
    /// This frame's LSN.
    pub lsn: Lsn,
    /// The durable lag (header bytes 10..12): 0 claims nothing; otherwise the frame claims
    /// that every frame with an LSN up to `lsn + 1 - durable_lag` was durable when it was
    /// written ([`Frame::durable`]). At most `lsn`.
    pub durable_lag: u16,
    /// The payload bytes (shares the segment buffer).
    pub payload: Bytes,
    /// Byte offset of the frame within the buffer it was decoded from.
    pub offset: usize,
}

impl Frame {
    /// Total encoded length of this frame.
    #[must_use]
    #[inline]
    pub fn encoded_len(&self) -> usize {
        FRAME_HEADER_LEN + self.payload.len()
    }

    /// For fragment frames after the first ([`FrameKind::FragPart`], [`FrameKind::FragEnd`],
    /// [`FrameKind::FragAbort`]): the begin LSN naming their stream. For [`FrameKind::FragBegin`],
    /// its own LSN.
    #[must_use]
    #[inline]
    pub fn stream(&self) -> Option<Lsn> {
        match self.kind {
            FrameKind::FragBegin => Some(self.lsn),
            FrameKind::FragPart | FrameKind::FragEnd | FrameKind::FragAbort => {
                Some(Lsn(u64::from_le_bytes(arr8(&self.payload[..8]))))
            }
            _ => None,
        }
    }

    /// A place-holder for an LSN whose frame was lost: a [`FrameKind::FragAbort`] naming its
    /// own LSN as its stream, which no stream can be (a stream is named by an earlier
    /// `FragBegin`). Written by a repair that skips damaged frames (`wal_log`'s
    /// `RecoveryMode::SkipDamaged`) so the LSNs stay contiguous; readers skip it like any
    /// abort, and reports count it as a lost LSN, not as an aborted transaction.
    #[must_use]
    #[inline]
    pub fn is_placeholder(&self) -> bool {
        self.kind == FrameKind::FragAbort && self.stream() == Some(self.lsn)
    }

    /// The transaction body bytes this frame carries: the whole payload of a `Tx` or
    /// `FragBegin`, the payload after the stream LSN of a `FragPart` or `FragEnd`, else empty.
    #[must_use]
    #[inline]
    pub fn body(&self) -> Bytes {
        match self.kind {
            FrameKind::Tx | FrameKind::FragBegin => self.payload.clone(),
            FrameKind::FragPart | FrameKind::FragEnd => self.payload.slice(8..),
            _ => Bytes::new(),
        }
    }

    /// The snapshot LSN of a `Checkpoint` frame.
    #[must_use]
    #[inline]
    pub fn checkpoint_lsn(&self) -> Option<Lsn> {
        (self.kind == FrameKind::Checkpoint).then(|| Lsn(u64::from_le_bytes(arr8(&self.payload))))
    }

    /// The next segment named by a `Seal` frame.
    #[must_use]
    #[inline]
    pub fn sealed_next(&self) -> Option<SegmentSeq> {
        (self.kind == FrameKind::Seal).then(|| SegmentSeq(u64::from_le_bytes(arr8(&self.payload))))
    }

    /// Whether the transaction body is a multi-record batch.
    #[must_use]
    #[inline]
    pub fn is_multi(&self) -> bool {
        self.flags & FLAG_MULTI != 0
    }

    /// The durable watermark this frame claims: every frame with an LSN up to it was durable
    /// (covered by a completed fsync) before this frame was written. [`Lsn::ZERO`] when it
    /// claims nothing.
    #[must_use]
    #[inline]
    pub fn durable(&self) -> Lsn {
        claimed(self.lsn, self.durable_lag)
    }
}

/// The watermark a frame with LSN `lsn` and durable lag `lag` claims.
#[inline]
pub(crate) fn claimed(lsn: Lsn, lag: u16) -> Lsn {
    if lag == 0 {
        Lsn::ZERO
    } else {
        Lsn(lsn.0.wrapping_add(1).wrapping_sub(u64::from(lag)))
    }
}

/// Encoded length of a frame carrying `payload_len` bytes.
#[must_use]
pub const fn encoded_frame_len(payload_len: usize) -> usize {
    FRAME_HEADER_LEN + payload_len
}

/// The flags byte of a frame, typed: [`FrameFlags::NONE`] or [`FrameFlags::MULTI`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FrameFlags(u8);

impl FrameFlags {
    /// No flag: a plain body.
    pub const NONE: FrameFlags = FrameFlags(0);
    /// [`FLAG_MULTI`]: the body is a multi-record batch ([`crate::records::encode_records`]).
    pub const MULTI: FrameFlags = FrameFlags(FLAG_MULTI);

    /// The byte written to the frame header.
    #[must_use]
    pub const fn bits(self) -> u8 {
        self.0
    }
}

#[inline]
fn check_fields(kind: FrameKind, flags: u8, len: usize) -> Result<(), String> {
    if flags & !kind.allowed_flags() != 0 {
        return Err(format!("flags {flags:#04x} not allowed on {kind:?}"));
    }
    let (min, exact) = kind.payload_rule();
    if (exact && len != min) || len < min {
        let want = if exact { "exactly" } else { "at least" };
        return Err(format!(
            "{kind:?} payload is {len} bytes, needs {want} {min}"
        ));
    }
    Ok(())
}

/// A durable lag may claim no frame before LSN 1: it is at most the frame's LSN.
#[inline]
fn check_lag(lag: u16, lsn: Lsn) -> Result<(), String> {
    if u64::from(lag) > lsn.0 {
        return Err(format!("durable lag {lag} exceeds the frame's LSN {lsn}"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// The seed every test in `frame` encodes under.
    pub(super) fn seed() -> SegmentSeed {
        SegmentSeed::new(LogId::from_u128(99), SegmentSeq(1))
    }

    #[test]
    fn only_an_abort_naming_itself_is_a_placeholder() {
        let frame = |kind, lsn: u64, stream: u64| {
            let mut out = Vec::new();
            encode_frame(&mut out, seed(), kind, 0, Lsn(lsn), &stream.to_le_bytes()).unwrap();
            decode_frame(&bytes::Bytes::from(out), 0, seed()).unwrap()
        };
        assert!(frame(FrameKind::FragAbort, 9, 9).is_placeholder());
        assert!(
            !frame(FrameKind::FragAbort, 9, 4).is_placeholder(),
            "a real abort"
        );
        assert!(!frame(FrameKind::FragBegin, 9, 9).is_placeholder());
        assert!(!frame(FrameKind::Tx, 9, 9).is_placeholder());
    }

    #[test]
    fn frame_round_trips_with_accessors() {
        let mut out = Vec::new();
        encode_frame(&mut out, seed(), FrameKind::Tx, FLAG_MULTI, Lsn(5), b"abc").unwrap();
        encode_fragment(&mut out, seed(), FrameKind::FragEnd, Lsn(6), Lsn(3), b"xy").unwrap();
        encode_frame(
            &mut out,
            seed(),
            FrameKind::Seal,
            0,
            Lsn(7),
            &9u64.to_le_bytes(),
        )
        .unwrap();
        let buf = Bytes::from(out);
        let f = decode_frame(&buf, 0, seed()).unwrap();
        assert_eq!(
            (f.kind, f.lsn, f.is_multi(), &f.body()[..]),
            (FrameKind::Tx, Lsn(5), true, &b"abc"[..])
        );
        let g = decode_frame(&buf, f.encoded_len(), seed()).unwrap();
        assert_eq!((g.stream(), &g.body()[..]), (Some(Lsn(3)), &b"xy"[..]));
        let s = decode_frame(&buf, f.encoded_len() + g.encoded_len(), seed()).unwrap();
        assert_eq!(s.sealed_next(), Some(SegmentSeq(9)));
    }
}
