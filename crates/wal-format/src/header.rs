//! The segment header that opens every segment file: its length, magic, version and flags.

use crate::error::FormatError;
use crate::lsn::{Lsn, SegmentSeq};
use std::fmt;

/// Length in bytes of the header at the start of every segment file.
pub const SEGMENT_HEADER_LEN: usize = 64;
/// The eight bytes every segment file starts with. The leading non-ASCII byte and the line
/// ending catch files mangled by text-mode transfers, as PNG's signature does.
pub const SEGMENT_MAGIC: [u8; 8] = *b"\x89WALSEG\n";
/// Segment sequence numbers and base LSNs must be below this (2^63): far beyond any real log,
/// and it keeps every `next()` from wrapping.
pub const MAX_POSITION: u64 = 1 << 63;
/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u16 = 2;

/// Random identity of a log, chosen when the log is created and stamped into every segment.
///
/// It seeds every frame checksum, so a segment copied in from another log never verifies.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct LogId(u128);

impl LogId {
    /// A log id from its raw value.
    #[must_use]
    pub const fn from_u128(v: u128) -> LogId {
        LogId(v)
    }

    /// The raw value.
    #[must_use]
    pub const fn as_u128(self) -> u128 {
        self.0
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogId({self})")
    }
}

/// The fixed header at offset 0 of every segment file. See `docs/format.md` for the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The log this segment belongs to.
    pub log_id: LogId,
    /// This segment's sequence number.
    pub seq: SegmentSeq,
    /// LSN of the first frame in this segment (the previous segment's last LSN + 1).
    pub base_lsn: Lsn,
    /// Begin LSN of the oldest fragmented transaction that was still open when this segment
    /// started, or [`Lsn::ZERO`]. A reader that starts here and wants every transaction that
    /// commits in this segment must start from the segment holding that LSN.
    pub oldest_open_lsn: Lsn,
    /// The file was an older segment of this log before it got this header (segment
    /// recycling): bytes past the log's end may be stale frames of that earlier life rather
    /// than zeros. They are written under another checksum seed, so they never verify here;
    /// the writer ends its data with an all-zero frame header instead (see `docs/format.md`).
    pub recycled: bool,
    /// The version of what the payloads of this segment's frames hold, as the log's user
    /// numbers it (an event schema); opaque to the log. 0 means "not recorded", and is what
    /// every segment written before the field existed holds (the bytes were reserved, zero).
    pub payload_schema: u32,
}

/// Bit of the header's flags field: [`SegmentHeader::recycled`].
pub const HEADER_FLAG_RECYCLED: u16 = 0x0001;

impl SegmentHeader {
    /// A header with no open fragmented transaction, for a fresh (zero-filled) file.
    #[must_use]
    pub const fn new(log_id: LogId, seq: SegmentSeq, base_lsn: Lsn) -> SegmentHeader {
        SegmentHeader {
            log_id,
            seq,
            base_lsn,
            oldest_open_lsn: Lsn::ZERO,
            recycled: false,
            payload_schema: 0,
        }
    }

    /// This header with [`SegmentHeader::payload_schema`] set to `schema`.
    #[must_use]
    pub const fn with_payload_schema(mut self, schema: u32) -> SegmentHeader {
        self.payload_schema = schema;
        self
    }

    /// Encodes the header into its 64 bytes.
    #[must_use]
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        let flags = if self.recycled {
            HEADER_FLAG_RECYCLED
        } else {
            0
        };
        b[10..12].copy_from_slice(&flags.to_le_bytes());
        b[12..16].copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
        b[16..32].copy_from_slice(&self.log_id.0.to_le_bytes());
        b[32..40].copy_from_slice(&self.seq.0.to_le_bytes());
        b[40..48].copy_from_slice(&self.base_lsn.0.to_le_bytes());
        b[48..56].copy_from_slice(&self.oldest_open_lsn.0.to_le_bytes());
        b[56..60].copy_from_slice(&self.payload_schema.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and verifies a header from the start of `bytes`.
    ///
    /// # Errors
    /// A typed [`FormatError`] for a short buffer, wrong magic, a checksum mismatch, a future
    /// version or reserved bits set (the payload schema, bytes 56..60, may hold any value). The checks run in that order, so a file that is not a
    /// segment at all reports [`FormatError::BadMagic`], and no field is trusted before the
    /// checksum has verified it.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, FormatError> {
        let Some(b) = bytes.get(..SEGMENT_HEADER_LEN) else {
            // Report a foreign file as such even when it is short.
            if bytes.len() >= 8 && bytes[..8] != SEGMENT_MAGIC {
                return Err(FormatError::BadMagic {
                    found: arr8(&bytes[..8]),
                });
            }
            return Err(FormatError::HeaderTruncated {
                len: bytes.len(),
                needed: SEGMENT_HEADER_LEN,
            });
        };
        if b[0..8] != SEGMENT_MAGIC {
            return Err(FormatError::BadMagic {
                found: arr8(&b[0..8]),
            });
        }
        let stored = u32::from_le_bytes(arr4(&b[60..64]));
        let computed = crc32c::crc32c(&b[0..60]);
        let version = u16::from_le_bytes([b[8], b[9]]);
        if stored != computed {
            return Err(FormatError::HeaderChecksum { stored, computed });
        }
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let flags = u16::from_le_bytes([b[10], b[11]]);
        if flags & !HEADER_FLAG_RECYCLED != 0 {
            return Err(FormatError::HeaderReserved { detail: "flags" });
        }
        if u32::from_le_bytes(arr4(&b[12..16])) != SEGMENT_HEADER_LEN as u32 {
            return Err(FormatError::HeaderReserved {
                detail: "header length",
            });
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[16..32]);
        let header = SegmentHeader {
            log_id: LogId(u128::from_le_bytes(id)),
            seq: SegmentSeq(u64::from_le_bytes(arr8(&b[32..40]))),
            base_lsn: Lsn(u64::from_le_bytes(arr8(&b[40..48]))),
            oldest_open_lsn: Lsn(u64::from_le_bytes(arr8(&b[48..56]))),
            recycled: flags & HEADER_FLAG_RECYCLED != 0,
            payload_schema: u32::from_le_bytes(arr4(&b[56..60])),
        };
        header.check_ranges()?;
        Ok(header)
    }

    /// Sequence numbers and LSNs start at 1 and stay below 2^63, so `next()` never wraps
    /// within a log's life; the oldest open transaction began before this segment. A header
    /// breaking these rules verified its checksum but was not written by a correct writer.
    fn check_ranges(&self) -> Result<(), FormatError> {
        let out = |field, value| Err(FormatError::HeaderOutOfRange { field, value });
        if self.seq.0 == 0 || self.seq.0 >= MAX_POSITION {
            return out("sequence number", self.seq.0);
        }
        if self.base_lsn.0 == 0 || self.base_lsn.0 >= MAX_POSITION {
            return out("base LSN", self.base_lsn.0);
        }
        if self.oldest_open_lsn.0 >= self.base_lsn.0 && self.oldest_open_lsn != Lsn::ZERO {
            return out("oldest open LSN", self.oldest_open_lsn.0);
        }
        Ok(())
    }
}

#[inline]
pub(crate) fn arr8(s: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&s[..8]);
    a
}

#[inline]
pub(crate) fn arr4(s: &[u8]) -> [u8; 4] {
    let mut a = [0u8; 4];
    a.copy_from_slice(&s[..4]);
    a
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn sample() -> SegmentHeader {
        SegmentHeader {
            log_id: LogId::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
            seq: SegmentSeq(5),
            base_lsn: Lsn(1000),
            oldest_open_lsn: Lsn(990),
            recycled: false,
            payload_schema: 0,
        }
    }

    #[test]
    fn header_round_trips() {
        let h = sample();
        assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
        let r = SegmentHeader {
            recycled: true,
            ..sample()
        };
        let bytes = r.encode();
        assert_eq!(&bytes[10..12], &HEADER_FLAG_RECYCLED.to_le_bytes());
        assert_eq!(SegmentHeader::decode(&bytes), Ok(r));
    }

    /// The payload schema sits in bytes 56..60 (reserved and zero before it existed), is
    /// covered by the checksum, and a header without one encodes exactly as before.
    #[test]
    fn payload_schema_round_trips_in_the_formerly_reserved_bytes() {
        let old = sample().encode();
        assert_eq!(old[56..60], [0; 4]);
        assert_eq!(SegmentHeader::decode(&old).unwrap().payload_schema, 0);
        let h = sample().with_payload_schema(0xdead_beef);
        let b = h.encode();
        assert_eq!(b[56..60], 0xdead_beef_u32.to_le_bytes());
        assert_eq!(b[..56], old[..56]);
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        let mut flipped = b;
        flipped[57] ^= 1;
        assert!(matches!(
            SegmentHeader::decode(&flipped),
            Err(FormatError::HeaderChecksum { .. })
        ));
    }

    #[test]
    fn unknown_header_flags_are_refused() {
        for bit in 1..16 {
            let mut b = sample().encode();
            b[10..12].copy_from_slice(&(1u16 << bit).to_le_bytes());
            let crc = crc32c::crc32c(&b[0..60]);
            b[60..64].copy_from_slice(&crc.to_le_bytes());
            assert_eq!(
                SegmentHeader::decode(&b),
                Err(FormatError::HeaderReserved { detail: "flags" }),
                "flag bit {bit}"
            );
        }
    }

    #[test]
    fn every_bit_flip_in_header_is_rejected() {
        let bytes = sample().encode();
        for bit in 0..SEGMENT_HEADER_LEN * 8 {
            let mut b = bytes;
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(
                SegmentHeader::decode(&b).is_err(),
                "bit {bit} flip accepted"
            );
        }
    }

    #[test]
    fn foreign_and_short_inputs_get_typed_errors() {
        assert!(matches!(
            SegmentHeader::decode(b"hello world, not a wal"),
            Err(FormatError::BadMagic { .. })
        ));
        assert!(matches!(
            SegmentHeader::decode(&SEGMENT_MAGIC[..5]),
            Err(FormatError::HeaderTruncated { .. })
        ));
        assert!(matches!(
            SegmentHeader::decode(&[]),
            Err(FormatError::HeaderTruncated { .. })
        ));
    }

    #[test]
    fn out_of_range_positions_are_refused() {
        let restamp = |h: SegmentHeader| {
            let mut b = sample().encode();
            b[32..40].copy_from_slice(&h.seq.0.to_le_bytes());
            b[40..48].copy_from_slice(&h.base_lsn.0.to_le_bytes());
            b[48..56].copy_from_slice(&h.oldest_open_lsn.0.to_le_bytes());
            let crc = crc32c::crc32c(&b[0..60]);
            b[60..64].copy_from_slice(&crc.to_le_bytes());
            SegmentHeader::decode(&b)
        };
        let ok = sample();
        for bad in [
            SegmentHeader {
                seq: SegmentSeq(0),
                ..ok
            },
            SegmentHeader {
                seq: SegmentSeq(MAX_POSITION),
                ..ok
            },
            SegmentHeader {
                base_lsn: Lsn::ZERO,
                oldest_open_lsn: Lsn::ZERO,
                ..ok
            },
            SegmentHeader {
                base_lsn: Lsn(u64::MAX),
                ..ok
            },
            SegmentHeader {
                oldest_open_lsn: ok.base_lsn,
                ..ok
            },
        ] {
            assert!(
                matches!(restamp(bad), Err(FormatError::HeaderOutOfRange { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(restamp(ok), Ok(ok));
    }

    /// A future version and version 1 (before the durable watermark) are both refused as
    /// unsupported versions, not as damage.
    #[test]
    fn other_versions_are_reported_as_such() {
        for found in [1u16, 3] {
            let mut b = sample().encode();
            b[8..10].copy_from_slice(&found.to_le_bytes());
            let crc = crc32c::crc32c(&b[0..60]);
            b[60..64].copy_from_slice(&crc.to_le_bytes());
            assert_eq!(
                SegmentHeader::decode(&b),
                Err(FormatError::UnsupportedVersion {
                    found,
                    supported: FORMAT_VERSION
                })
            );
        }
    }
}
