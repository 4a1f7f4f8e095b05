//! [`FrameSum`]: a frame whose payload the caller writes from its own buffers.

use super::encode::unsummed_header;
use super::{
    FRAME_HEADER_LEN, FrameKind, MAX_FRAME_PAYLOAD, SegmentSeed, check_fields, durable_lag,
};
use crate::error::FormatError;
use crate::lsn::Lsn;

/// Builds a frame whose payload is written from the caller's own buffers rather than copied
/// into one: the payload is folded into the checksum piece by piece, in order, and
/// [`FrameSum::header`] then gives the frame header to write in front of those pieces. The
/// bytes are the same as [`encode_frame`](super::encode_frame)'s for the same payload.
///
/// ```
/// use wal_format::{FrameKind, LogId, Lsn, SegmentSeed, SegmentSeq};
/// use wal_format::frame::{FrameSum, encode_frame};
/// let seed = SegmentSeed::new(LogId::from_u128(7), SegmentSeq(1));
/// let mut sum = FrameSum::new(seed, FrameKind::Tx, 0, Lsn(3), 5, Lsn::ZERO)?;
/// sum.fold(b"he");
/// sum.fold(b"llo");
/// let mut framed = sum.header()?.to_vec();
/// framed.extend_from_slice(b"hello");
/// let mut encoded = Vec::new();
/// encode_frame(&mut encoded, seed, FrameKind::Tx, 0, Lsn(3), b"hello")?;
/// assert_eq!(framed, encoded);
/// # Ok::<(), wal_format::FormatError>(())
/// ```
#[derive(Clone, Debug)]
pub struct FrameSum {
    header: [u8; FRAME_HEADER_LEN],
    crc: u32,
    len: usize,
    folded: usize,
}

impl FrameSum {
    /// Starts a frame of `kind` with a `len`-byte payload that claims every frame up to
    /// `durable` durable ([`Frame::durable`](super::Frame::durable); [`Lsn::ZERO`] claims nothing).
    ///
    /// # Errors
    /// As [`encode_frame`](super::encode_frame): [`FormatError::PayloadTooLarge`] or [`FormatError::BadFrame`].
    pub fn new(
        seed: SegmentSeed,
        kind: FrameKind,
        flags: u8,
        lsn: Lsn,
        len: usize,
        durable: Lsn,
    ) -> Result<FrameSum, FormatError> {
        if len > MAX_FRAME_PAYLOAD {
            return Err(FormatError::PayloadTooLarge {
                len,
                max: MAX_FRAME_PAYLOAD,
            });
        }
        if let Err(reason) = check_fields(kind, flags, len) {
            return Err(FormatError::BadFrame { offset: 0, reason });
        }
        let header = unsummed_header(kind, flags, durable_lag(lsn, durable), lsn, len);
        let crc = crc32c::crc32c_append(seed.0, &header[4..]);
        Ok(FrameSum {
            header,
            crc,
            len,
            folded: 0,
        })
    }

    /// Folds the next `bytes` of the payload into the checksum.
    pub fn fold(&mut self, bytes: &[u8]) {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.folded += bytes.len();
    }

    /// The frame header, checksum included.
    ///
    /// # Errors
    /// [`FormatError::BadFrame`] when the pieces folded do not add up to the length given to
    /// [`FrameSum::new`] (a caller bug: the frame would never verify).
    pub fn header(&self) -> Result<[u8; FRAME_HEADER_LEN], FormatError> {
        if self.folded != self.len {
            return Err(FormatError::BadFrame {
                offset: 0,
                reason: format!(
                    "{} payload bytes folded into a frame of {}",
                    self.folded, self.len
                ),
            });
        }
        let mut h = self.header;
        h[..4].copy_from_slice(&self.crc.to_le_bytes());
        Ok(h)
    }
}
