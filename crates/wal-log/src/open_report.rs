//! What opening a log found and did ([`OpenReport`]): what [`crate::Wal::open`] returns, and
//! what a [`crate::ScanVisitor`] is told once the log's own recovery plan has been executed.

use crate::plan::MovedAside;
use std::time::Duration;
use wal_format::{LogId, Lsn, SegmentSeq};

/// What [`crate::Wal::open`] found and did.
#[derive(Clone, Debug, Default)]
pub struct OpenReport {
    /// A new, empty log was created.
    pub created: bool,
    /// The log's identity.
    pub log_id: Option<LogId>,
    /// Segment files after recovery.
    pub segments: usize,
    /// Oldest LSN in the log.
    pub first_lsn: Lsn,
    /// Newest valid LSN found (before any frames open itself appends).
    pub last_lsn: Lsn,
    /// Bytes moved aside, and where.
    pub moved_aside: Vec<MovedAside>,
    /// Fragmented transactions found unfinished at the end of the log; an abort frame was
    /// appended for each.
    pub aborted_streams: Vec<Lsn>,
    /// Under [`crate::RecoveryMode::SkipDamaged`]: the LSNs the repair gave up (their frames were
    /// damaged or missing), as ranges; every other verified frame was kept.
    /// With `k` consecutive segments missing the ranges are an upper bound by exactly `k - 1`:
    /// only the last missing segment's seal is known (the LSN before the next segment's
    /// first) and is not counted; the other `k - 1` seals lie somewhere in the range.
    pub lost_lsns: Vec<(Lsn, Lsn)>,
    /// Recycled segment files (`recycled-<seq>.tmp`, truncated data only) found in the
    /// directory and kept for reuse, up to [`crate::Options::recycle_segments`].
    pub recycled_kept: usize,
    /// Recycled segment files found beyond that limit, and removed.
    pub recycled_removed: usize,
    /// The payload schema of every segment of the log after recovery, oldest first, as its
    /// header records it ([`crate::Options::payload_schema`]), including a segment the open started
    /// because the newest one carried another schema than the log was opened for.
    pub payload_schemas: Vec<(SegmentSeq, u32)>,
    /// Bytes of segment files the recovery scan read (each file once, preallocated space
    /// included).
    pub bytes_scanned: u64,
    /// How long the recovery scan took: reading and verifying every segment, including the
    /// time spent in the visitor of [`crate::Wal::open_visit`]. Part of [`OpenReport::elapsed`].
    pub scan_elapsed: Duration,
    /// How long recovery took.
    pub elapsed: Duration,
}

impl OpenReport {
    /// Total bytes moved aside.
    #[must_use]
    pub fn bytes_moved_aside(&self) -> u64 {
        self.moved_aside.iter().map(|m| m.bytes).sum()
    }
}
