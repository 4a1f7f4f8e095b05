//! Decoding and verifying one frame: a fast path that only says yes or no, and a cold path
//! that says why not.

use super::{FRAME_HEADER_LEN, Frame, FrameKind, MAX_FRAME_PAYLOAD, SegmentSeed};
use super::{check_fields, check_lag};
use crate::error::FormatError;
use crate::header::{arr4, arr8};
use crate::lsn::Lsn;
use bytes::Bytes;

/// Why a frame failed to decode; the scanner turns these into a [`crate::scan::ScanEnd`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameFault {
    /// The bytes end before the frame does.
    Incomplete(String),
    /// The frame's fields or checksum are wrong.
    Invalid(String),
}

impl FrameFault {
    pub(crate) fn reason(&self) -> &str {
        match self {
            FrameFault::Incomplete(r) | FrameFault::Invalid(r) => r,
        }
    }
}

/// Decodes and verifies one frame at `offset` of `buf`.
///
/// # Errors
/// [`FormatError::BadFrame`] when the bytes at `offset` are not a complete frame that verifies
/// under `seed`.
pub fn decode_frame(buf: &Bytes, offset: usize, seed: SegmentSeed) -> Result<Frame, FormatError> {
    decode_at(buf, offset, seed).map_err(|f| FormatError::BadFrame {
        offset,
        reason: f.reason().to_owned(),
    })
}

#[inline]
pub(crate) fn decode_at(
    buf: &Bytes,
    offset: usize,
    seed: SegmentSeed,
) -> Result<Frame, FrameFault> {
    match try_decode_at(buf, offset, seed) {
        Some(f) => Ok(f),
        None => Err(fault_at(buf, offset, seed)),
    }
}

/// The kind, flags, durable lag and payload length of the frame header `h` (20 bytes) when
/// its fields are valid (everything but the checksum).
#[inline(always)]
fn header_fields(h: &[u8]) -> Option<(FrameKind, u8, u16, usize)> {
    let len = u32::from_le_bytes(arr4(&h[4..8])) as usize;
    if len > MAX_FRAME_PAYLOAD {
        return None;
    }
    let kind = FrameKind::from_u8(h[8])?;
    let flags = h[9];
    let lag = u16::from_le_bytes([h[10], h[11]]);
    let (min, exact) = kind.payload_rule();
    if flags & !kind.allowed_flags() != 0
        || (exact && len != min)
        || len < min
        || u64::from(lag) > u64::from_le_bytes(arr8(&h[12..20]))
    {
        return None;
    }
    Some((kind, flags, lag, len))
}

/// The frame at `offset` when it is complete and verifies; `None` otherwise, and
/// [`fault_at`] then says why. The fast path of every scan: plain comparisons, one checksum,
/// no formatting. Always inlined: returning a `Frame` through memory costs more than
/// building it in place (its byte fields make the copy stall on store forwarding).
#[inline(always)]
pub(crate) fn try_decode_at(buf: &Bytes, offset: usize, seed: SegmentSeed) -> Option<Frame> {
    let h = buf.get(offset..offset.checked_add(FRAME_HEADER_LEN)?)?;
    let (kind, flags, durable_lag, len) = header_fields(h)?;
    let end = offset + FRAME_HEADER_LEN + len;
    if end > buf.len() {
        return None;
    }
    let stored = u32::from_le_bytes(arr4(&h[0..4]));
    if crc32c::crc32c_append(seed.0, &buf[offset + 4..end]) != stored {
        return None;
    }
    Some(Frame {
        kind,
        flags,
        lsn: Lsn(u64::from_le_bytes(arr8(&h[12..20]))),
        durable_lag,
        payload: buf.slice(offset + FRAME_HEADER_LEN..end),
        offset,
    })
}

/// Why the frame at `offset` does not decode: the first check it fails, in the order the
/// format defines. Only called once [`try_decode_at`] has refused the frame.
#[cold]
#[inline(never)]
pub(crate) fn fault_at(buf: &Bytes, offset: usize, seed: SegmentSeed) -> FrameFault {
    let rest = buf.len().saturating_sub(offset);
    let Some(h) = offset
        .checked_add(FRAME_HEADER_LEN)
        .and_then(|e| buf.get(offset..e))
    else {
        return FrameFault::Incomplete(format!(
            "{rest} bytes left, a frame header needs {FRAME_HEADER_LEN}"
        ));
    };
    let stored = u32::from_le_bytes(arr4(&h[0..4]));
    let len = u32::from_le_bytes(arr4(&h[4..8])) as usize;
    // Validate the length before looking at (or allocating for) the payload.
    if len > MAX_FRAME_PAYLOAD {
        return FrameFault::Invalid(format!(
            "length field {len} exceeds the maximum frame payload {MAX_FRAME_PAYLOAD}"
        ));
    }
    let Some(kind) = FrameKind::from_u8(h[8]) else {
        return FrameFault::Invalid(format!("unknown frame kind {}", h[8]));
    };
    let flags = h[9];
    let lag = u16::from_le_bytes([h[10], h[11]]);
    if let Err(reason) = check_lag(lag, Lsn(u64::from_le_bytes(arr8(&h[12..20])))) {
        return FrameFault::Invalid(reason);
    }
    if let Err(reason) = check_fields(kind, flags, len) {
        return FrameFault::Invalid(reason);
    }
    let end = offset + FRAME_HEADER_LEN + len;
    if end > buf.len() {
        return FrameFault::Incomplete(format!(
            "frame of {} bytes runs past the end of data ({rest} bytes left)",
            FRAME_HEADER_LEN + len
        ));
    }
    let computed = crc32c::crc32c_append(seed.0, &buf[offset + 4..end]);
    // A frame that passed every check here would have decoded; `try_decode_at` only refuses
    // frames that fail one of them.
    FrameFault::Invalid(format!(
        "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::frame::encode_frame;
    use crate::frame::tests::seed;
    use crate::header::LogId;
    use crate::lsn::SegmentSeq;

    #[test]
    fn wrong_seed_fails_verification() {
        let mut out = Vec::new();
        encode_frame(&mut out, seed(), FrameKind::Tx, 0, Lsn(1), b"abc").unwrap();
        let other = SegmentSeed::new(LogId::from_u128(99), SegmentSeq(2));
        assert!(decode_frame(&Bytes::from(out), 0, other).is_err());
    }

    #[test]
    fn huge_length_field_is_rejected_without_reading() {
        let mut h = vec![0u8; FRAME_HEADER_LEN];
        h[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        h[8] = FrameKind::Tx as u8;
        let err = decode_at(&Bytes::from(h), 0, seed()).unwrap_err();
        assert!(matches!(err, FrameFault::Invalid(_)), "{err:?}");
    }

    #[test]
    fn offsets_past_the_end_are_errors_not_panics() {
        let buf = Bytes::from_static(&[0; 40]);
        for offset in [40, 41, usize::MAX - 19, usize::MAX - 5, usize::MAX] {
            assert!(decode_frame(&buf, offset, seed()).is_err(), "{offset}");
        }
    }
}
