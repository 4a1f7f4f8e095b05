//! [`FrameEncoder`]: the frames of one segment, with its seed and durable claim held once.

use super::encode::{encode_frame_parts, encode_records_lagged};
use super::{FrameFlags, FrameKind, SegmentSeed, durable_lag};
use crate::error::FormatError;
use crate::lsn::Lsn;

/// Writes the frames of one segment: holds the segment's [`SegmentSeed`] and the durable
/// watermark the frames claim ([`FrameEncoder::claiming`]), so each call names only what
/// differs between frames, with typed flags. Without a claim it produces exactly the bytes of
/// [`encode_frame`](super::encode_frame), [`encode_records_frame`](super::encode_records_frame) and [`encode_fragment`](super::encode_fragment).
///
/// ```
/// use wal_format::frame::{FrameEncoder, FrameFlags};
/// use wal_format::{FrameKind, LogId, Lsn, SegmentHeader, SegmentSeq};
///
/// let header = SegmentHeader::new(LogId::from_u128(7), SegmentSeq(1), Lsn(1));
/// let frames = FrameEncoder::new(header.seed());
/// let mut out = Vec::new();
/// frames.frame(&mut out, FrameKind::Tx, FrameFlags::NONE, Lsn(1), b"hello")?;
/// // LSN 1 is durable now: the next frames say so.
/// let frames = frames.claiming(Lsn(1));
/// frames.records(&mut out, Lsn(2), &[&b"a"[..], b"b"])?;
/// frames.watermark(&mut out, Lsn(2))?;
/// # Ok::<(), wal_format::FormatError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameEncoder {
    seed: SegmentSeed,
    durable: Lsn,
}

impl FrameEncoder {
    /// An encoder for the segment whose checksum seed is `seed` ([`crate::SegmentHeader::seed`]),
    /// whose frames claim nothing durable.
    #[must_use]
    pub const fn new(seed: SegmentSeed) -> FrameEncoder {
        FrameEncoder {
            seed,
            durable: Lsn::ZERO,
        }
    }

    /// The same encoder, its frames claiming that every frame up to `durable` is durable
    /// (covered by an fsync that completed before they are written). The caller must only
    /// claim what is durable: recovery calls damage at or before a claim corruption.
    #[must_use]
    pub const fn claiming(self, durable: Lsn) -> FrameEncoder {
        FrameEncoder {
            seed: self.seed,
            durable,
        }
    }

    /// The segment's seed.
    #[must_use]
    pub const fn seed(self) -> SegmentSeed {
        self.seed
    }

    fn lag(self, lsn: Lsn) -> u16 {
        durable_lag(lsn, self.durable)
    }

    /// Appends one frame to `out`, as [`encode_frame`](super::encode_frame).
    ///
    /// # Errors
    /// As [`encode_frame`](super::encode_frame).
    pub fn frame(
        self,
        out: &mut Vec<u8>,
        kind: FrameKind,
        flags: FrameFlags,
        lsn: Lsn,
        payload: &[u8],
    ) -> Result<(), FormatError> {
        let lag = self.lag(lsn);
        encode_frame_parts(out, self.seed, kind, flags.bits(), lag, lsn, &[payload])
    }

    /// Appends a multi-record `Tx` frame to `out`, as [`encode_records_frame`](super::encode_records_frame).
    ///
    /// # Errors
    /// As [`encode_records_frame`](super::encode_records_frame).
    pub fn records<R: AsRef<[u8]>>(
        self,
        out: &mut Vec<u8>,
        lsn: Lsn,
        records: &[R],
    ) -> Result<(), FormatError> {
        encode_records_lagged(out, self.seed, self.lag(lsn), lsn, records)
    }

    /// Appends one fragment frame of the stream begun at `stream`, as [`encode_fragment`](super::encode_fragment).
    ///
    /// # Errors
    /// As [`encode_fragment`](super::encode_fragment).
    pub fn fragment(
        self,
        out: &mut Vec<u8>,
        kind: FrameKind,
        lsn: Lsn,
        stream: Lsn,
        chunk: &[u8],
    ) -> Result<(), FormatError> {
        let parts: [&[u8]; 2] = [&stream.0.to_le_bytes(), chunk];
        encode_frame_parts(out, self.seed, kind, 0, self.lag(lsn), lsn, &parts)
    }

    /// Appends a [`FrameKind::Watermark`] frame after the frame with LSN `last` (the LSN it
    /// carries), claiming this encoder's watermark.
    ///
    /// # Errors
    /// As [`encode_frame`](super::encode_frame).
    pub fn watermark(self, out: &mut Vec<u8>, last: Lsn) -> Result<(), FormatError> {
        encode_frame_parts(
            out,
            self.seed,
            FrameKind::Watermark,
            0,
            self.lag(last),
            last,
            &[],
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::frame::{FLAG_MULTI, encode_fragment, encode_frame, encode_records_frame};
    use crate::header::LogId;
    use crate::lsn::SegmentSeq;

    #[test]
    fn the_encoder_writes_the_bytes_of_the_free_functions() {
        let seed = SegmentSeed::new(LogId::from_u128(3), SegmentSeq(2));
        let enc = FrameEncoder::new(seed);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        enc.frame(&mut a, FrameKind::Tx, FrameFlags::NONE, Lsn(5), b"x")
            .unwrap();
        encode_frame(&mut b, seed, FrameKind::Tx, 0, Lsn(5), b"x").unwrap();
        enc.records(&mut a, Lsn(6), &[&b"p"[..], b"q"]).unwrap();
        encode_records_frame(&mut b, seed, Lsn(6), &[&b"p"[..], b"q"]).unwrap();
        enc.fragment(&mut a, FrameKind::FragPart, Lsn(7), Lsn(6), b"c")
            .unwrap();
        encode_fragment(&mut b, seed, FrameKind::FragPart, Lsn(7), Lsn(6), b"c").unwrap();
        assert_eq!(a, b);
        assert_eq!(enc.seed(), seed);
        assert_eq!(FrameFlags::MULTI.bits(), FLAG_MULTI);
        assert!(
            enc.frame(&mut a, FrameKind::Seal, FrameFlags::MULTI, Lsn(8), &[0; 8])
                .is_err()
        );
    }
}
