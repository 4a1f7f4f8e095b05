//! The mirror hook ([`WalMirror`]) and where a mirror's copy ends ([`MirrorPosition`]); public
//! through [`crate::mirror`].

use std::fmt;
use std::io;
use std::path::Path;
use wal_format::{Lsn, SegmentSeq};

/// A hook that copies the log somewhere else (an archive file, another disk, a backup
/// service) after the recorder made it durable.
///
/// The recorder calls [`WalMirror::persist`] after every [`crate::WalRecorder::flush`] (so
/// also after [`crate::WalRecorder::commit_and_flush`] and
/// [`crate::CommitTicket::wait_and_flush`]), and [`WalMirror::persist_force`] after every
/// [`crate::WalRecorder::force_fsync`] and before truncating the log
/// ([`crate::WalRecorder::truncate_up_to`], [`Truncator`](crate::mirror::Truncator)). A failure poisons the
/// recorder.
///
/// Truncation waits for the mirror, as a replication slot does: it removes only segments
/// the mirror reports copied ([`WalMirror::position`]); a mirror that reports no position
/// keeps the whole log.
pub trait WalMirror: Send + Sync + fmt::Debug {
    /// Copies what is new in the log directory `wal_dir`. May batch or throttle (skip a call
    /// that comes soon after the previous one).
    ///
    /// # Errors
    /// Any I/O error; the recorder is poisoned by it.
    fn persist(&self, wal_dir: &Path) -> io::Result<()>;

    /// As [`WalMirror::persist`], but never skipped: when it returns, the mirror holds (and
    /// has made durable) everything the log held when it was called. The default calls
    /// [`WalMirror::persist`].
    ///
    /// # Errors
    /// As [`WalMirror::persist`].
    fn persist_force(&self, wal_dir: &Path) -> io::Result<()> {
        self.persist(wal_dir)
    }

    /// Where the mirror's durable copy of the log ends: every frame of the log up to
    /// [`MirrorPosition::lsn`] (from the first segment the mirror saw) is in the mirror and
    /// durable there. The log is truncated only up to it. `None` (the default): the mirror
    /// does not say, and the recorder never truncates the log.
    fn position(&self) -> Option<MirrorPosition> {
        None
    }
}

/// Where a mirror's durable copy of the log ends ([`WalMirror::position`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MirrorPosition {
    /// The last LSN copied: every frame up to it is durable in the mirror.
    pub lsn: Lsn,
    /// The log segment the copy ends in.
    pub segment: SegmentSeq,
    /// The byte offset in that segment where the copy ends (a frame boundary).
    pub offset: u64,
}

impl MirrorPosition {
    /// A position: the copy holds every frame up to `lsn`, and ends at byte `offset` of
    /// segment `segment`.
    #[must_use]
    pub const fn new(lsn: Lsn, segment: SegmentSeq, offset: u64) -> MirrorPosition {
        MirrorPosition {
            lsn,
            segment,
            offset,
        }
    }
}
