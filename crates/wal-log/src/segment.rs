//! What the log knows about each of its segments (file names: [`crate::layout`]).

use wal_format::{Lsn, SegmentSeq};

/// What the log knows about one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Sequence number.
    pub seq: SegmentSeq,
    /// LSN of its first frame.
    pub base_lsn: Lsn,
    /// LSN of its last frame, or `base_lsn - 1` when it holds none yet.
    pub last_lsn: Lsn,
    /// Bytes of frames and header in it (not counting preallocated space).
    pub bytes: u64,
    /// Whether it ends with a seal frame.
    pub sealed: bool,
    /// Begin LSN of the oldest fragmented transaction open when it started (header field).
    pub oldest_open_lsn: Lsn,
}

/// A position in the log: an LSN and where its frame ends (segment and byte offset). The log's
/// written and durable points are `Point`s (`wal::positions`); the publisher writes one out.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Point {
    pub(crate) lsn: Lsn,
    pub(crate) seq: SegmentSeq,
    /// Byte offset just past `lsn`'s frame in segment `seq`.
    pub(crate) end: u64,
}
