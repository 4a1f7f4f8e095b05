use thiserror::Error;

/// Errors from decoding or encoding the byte format.
///
/// Every variant describes bad input a caller can report or act on; none of them is a bug in
/// this crate, and no input makes this crate panic.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// Fewer bytes than a segment header needs.
    #[error("segment header truncated: {len} bytes, {needed} needed")]
    HeaderTruncated {
        /// Bytes available.
        len: usize,
        /// Bytes a header needs.
        needed: usize,
    },
    /// The file does not start with the segment magic: it is not a segment of this format.
    #[error("not a WAL segment: bad magic {found:02x?}")]
    BadMagic {
        /// The eight bytes found where the magic belongs.
        found: [u8; 8],
    },
    /// The segment was written by a newer (or unknown) format version.
    #[error("unsupported segment format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
        /// Version this build understands.
        supported: u16,
    },
    /// The segment header's checksum does not match its bytes.
    #[error("segment header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    HeaderChecksum {
        /// Checksum stored in the header.
        stored: u32,
        /// Checksum computed over the header bytes.
        computed: u32,
    },
    /// A reserved header field or flag holds a value this version does not define.
    #[error("segment header has unknown flags or reserved bytes set: {detail}")]
    HeaderReserved {
        /// Which field.
        detail: &'static str,
    },
    /// A header field holds a value no correct writer produces (a sequence number or LSN of
    /// zero or at least 2^63, an open transaction that begins after the segment).
    #[error("segment header {field} {value} is out of range")]
    HeaderOutOfRange {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// The header decodes but contradicts where it was found (for example a sequence number
    /// other than the one in the file's name).
    #[error("segment header does not match its file: {reason}")]
    HeaderMismatch {
        /// What differs.
        reason: String,
    },
    /// A payload is larger than [`crate::frame::MAX_FRAME_PAYLOAD`]; it must be fragmented.
    #[error("payload of {len} bytes exceeds the maximum frame payload of {max} bytes")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A frame could not be decoded at `offset`.
    #[error("bad frame at offset {offset}: {reason}")]
    BadFrame {
        /// Byte offset of the frame within the buffer given to the decoder.
        offset: usize,
        /// Human-readable reason.
        reason: String,
    },
    /// A batch cannot be encoded as one multi-record body: it stores each record's length and
    /// the number of records as 32-bit integers.
    #[error("batch cannot be encoded: {reason}")]
    BatchTooLarge {
        /// Which limit it exceeds.
        reason: String,
    },
    /// A multi-record transaction body is malformed.
    #[error("malformed record batch: {reason}")]
    BadRecords {
        /// Human-readable reason.
        reason: String,
    },
}
