//! Counters and positions of a log.

use super::{Wal, lock};
use crate::segment::SegmentInfo;
use std::sync::atomic::{AtomicU64, Ordering};
use wal_format::Lsn;

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) appends: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    pub(crate) rotations: AtomicU64,
    pub(crate) recycled: AtomicU64,
    pub(crate) bytes_since_checkpoint: AtomicU64,
    pub(crate) direct_writes: AtomicU64,
    pub(crate) zero_fills_skipped: AtomicU64,
    pub(crate) syncer_rounds: AtomicU64,
}

/// Counters and positions of a log. See [`Wal::stats`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Frames appended since open (transactions, fragments, markers).
    pub appends: u64,
    /// Frame bytes appended since open.
    pub bytes: u64,
    /// Transactions committed since open.
    pub commits: u64,
    /// Data fsyncs of segment files since open.
    pub fsyncs: u64,
    /// `commits / fsyncs`: how well group commit batches.
    pub commits_per_fsync: f64,
    /// Highest durable LSN.
    pub durable_lsn: Lsn,
    /// Highest assigned LSN.
    pub last_lsn: Lsn,
    /// Segment files in the log.
    pub segments: usize,
    /// Segment rotations since open.
    pub rotations: u64,
    /// Rotations since open that reused a recycled file (see
    /// [`Options::recycle_segments`](crate::Options::recycle_segments)).
    pub recycled: u64,
    /// Frame bytes appended since the last checkpoint marker (including before open).
    pub bytes_since_checkpoint: u64,
    /// Transactions since open written straight from the caller's buffers rather than copied
    /// into the log's buffer first: those of at least 256 KiB (see [`Wal::append_batch`]).
    pub direct_writes: u64,
    /// Segment files created since open without zero-filling them first, although
    /// [`Options::preallocate`](crate::Options::preallocate) is on, because segments were filling
    /// faster than they could be zero-filled.
    pub zero_fills_skipped: u64,
    /// Rounds of the background syncer since open
    /// ([`SyncPolicy::Interval`](crate::SyncPolicy::Interval); 0 otherwise): each wakes after
    /// the interval and fsyncs whatever was written since the last one, if anything.
    pub syncer_rounds: u64,
    /// Follow readers waiting in [`TxReader::next_timeout`](crate::TxReader::next_timeout)
    /// for the next durable transaction right now.
    pub readers_waiting: usize,
}

impl Wal {
    /// Counters and positions.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        let commits = c.commits.load(Ordering::Relaxed);
        let fsyncs = c.fsyncs.load(Ordering::Relaxed);
        // Each lock taken and released on its own statement: never two at once.
        let segments = lock(&self.inner.segments).len();
        let readers_waiting = lock(&self.inner.flush).tailing;
        Stats {
            appends: c.appends.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            commits,
            fsyncs,
            commits_per_fsync: if fsyncs == 0 {
                0.0
            } else {
                commits as f64 / fsyncs as f64
            },
            durable_lsn: self.durable_lsn(),
            last_lsn: self.last_lsn(),
            segments,
            rotations: c.rotations.load(Ordering::Relaxed),
            recycled: c.recycled.load(Ordering::Relaxed),
            bytes_since_checkpoint: c.bytes_since_checkpoint.load(Ordering::Relaxed),
            direct_writes: c.direct_writes.load(Ordering::Relaxed),
            zero_fills_skipped: c.zero_fills_skipped.load(Ordering::Relaxed),
            syncer_rounds: c.syncer_rounds.load(Ordering::Acquire),
            readers_waiting,
        }
    }

    /// Where the time between two fsyncs went, cycle by cycle, since the open (feature
    /// `gap-trace`, for profiling group commit: each flush then takes the append lock three
    /// more times and reads the clock eight times).
    #[cfg(feature = "gap-trace")]
    #[must_use]
    pub fn gap_trace(&self) -> super::GapReport {
        self.inner.gap.report()
    }

    /// The segments of the log, oldest first.
    #[must_use]
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let mut segs = lock(&self.inner.segments).clone();
        if let Some(last) = segs.last_mut() {
            let w = lock(&self.inner.writer);
            last.last_lsn = w.next_lsn.prev();
            last.bytes = w.write_pos + w.pending.len() as u64;
        }
        segs
    }
}
