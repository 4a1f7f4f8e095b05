//! The byte-level format of the write-ahead log.
//!
//! This crate knows bytes, never files: it defines [`Lsn`]s, the [`SegmentHeader`] that opens
//! every segment file, the [`Frame`] that carries one unit of the log, the CRC32C checksum and
//! its per-segment seed, and the [`SegmentScanner`](scan::SegmentScanner) that turns a segment's bytes back into frames
//! and decides, at the first frame that fails, whether the log ended cleanly, ends in a torn
//! tail, or is corrupt. [`ChunkedScanner`](scan::ChunkedScanner) makes the same decisions for a segment read a chunk
//! at a time through [`ReadAt`](scan::ReadAt) (a file), so a reader never holds a whole segment. The
//! [`Codec`] trait turns a transaction's events into a payload.
//!
//! The full byte-exact specification is `docs/format.md` in the repository.
//!
//! ```
//! use bytes::Bytes;
//! use wal_format::frame::encode_frame;
//! use wal_format::scan::{ScanEnd, SegmentScanner};
//! use wal_format::{FrameKind, Lsn, LogId, SegmentHeader, SegmentSeq};
//!
//! let header = SegmentHeader::new(LogId::from_u128(7), SegmentSeq(1), Lsn(1));
//! let mut segment = header.encode().to_vec();
//! let seed = header.seed();
//! encode_frame(&mut segment, seed, FrameKind::Tx, 0, Lsn(1), b"hello").unwrap();
//! encode_frame(&mut segment, seed, FrameKind::Tx, 0, Lsn(2), b"world").unwrap();
//!
//! let mut scanner = SegmentScanner::new(Bytes::from(segment), false).unwrap();
//! let payloads: Vec<_> = scanner.by_ref().map(|f| f.payload).collect();
//! assert_eq!(payloads, [&b"hello"[..], &b"world"[..]]);
//! assert!(matches!(scanner.end(), Some(ScanEnd::Clean { .. })));
//! ```
#![forbid(unsafe_code)]

/// This crate's README example, compiled and run as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod codec;
mod error;
pub mod frame;
pub mod header;
mod lsn;
pub mod records;
pub mod scan;

#[cfg(feature = "bincode")]
pub use codec::Bincode;
pub use codec::{Codec, CodecError, Decoder, decode_all, decode_into};
pub use error::FormatError;
pub use frame::{Frame, FrameKind, SegmentSeed};
pub use header::{LogId, SegmentHeader};
pub use lsn::{Lsn, SegmentSeq};
