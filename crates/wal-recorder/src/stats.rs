//! [`RecorderStats`]: the log's counters and how far the mirror is behind it.

use crate::hook::MirrorPosition;
use wal_log::{SegmentInfo, Stats};

/// What [`crate::WalRecorder::stats`] returns.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RecorderStats {
    /// The log's counters and positions ([`wal_log::Wal::stats`]).
    pub wal: Stats,
    /// Where the mirror's durable copy ends and how far behind the log it is; `None` without
    /// a mirror, or with one that reports no position (or none yet: before its first persist).
    pub mirror: Option<MirrorLag>,
}

/// How far a mirror's durable copy is behind the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MirrorLag {
    /// Where the copy ends ([`crate::mirror::WalMirror::position`]).
    pub position: MirrorPosition,
    /// LSNs the log has assigned past the copy's end (transactions, and the seals, markers
    /// and fragments that take LSNs too); 0 when the copy is at the end or ahead of it.
    pub lsns_behind: u64,
    /// Bytes of the log's segments past the copy's end: frames, and the headers of segments
    /// the mirror has not started (including frames queued but not yet written).
    pub bytes_behind: u64,
}

impl MirrorLag {
    /// The lag of a copy ending at `position` behind a log whose last assigned LSN is `last`
    /// and whose segments are `segments`.
    pub(crate) fn of(
        position: MirrorPosition,
        last: wal_log::Lsn,
        segments: &[SegmentInfo],
    ) -> Self {
        let bytes_behind = segments
            .iter()
            .map(|s| {
                if s.seq > position.segment {
                    s.bytes
                } else if s.seq == position.segment {
                    s.bytes.saturating_sub(position.offset)
                } else {
                    0
                }
            })
            .sum();
        MirrorLag {
            position,
            lsns_behind: last.0.saturating_sub(position.lsn.0),
            bytes_behind,
        }
    }
}
