//! The facts the data directory's plan is made from, about its snapshots: the listing, newest
//! first, and what reading each one found. Only the snapshots a decision needs are read
//! ([`SnapshotFacts::read_needed`]), each at most once; everything else here is bookkeeping.

use crate::error::{ReplayError, Result};
use crate::snapshot::{SnapshotFile, SnapshotListing, SnapshotStore, VerifiedSnapshot};
use std::path::Path;
use wal_format::{LogId, Lsn};

/// What is known about one snapshot of the listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum SnapshotVerdict {
    /// Not read: no decision needed it (older than a usable one, or past the target).
    Unread,
    /// Its header, checksum and log id verify.
    Verified(VerifiedSnapshot),
    /// It does not verify, for this reason.
    Bad(String),
    /// It was removed since the listing (a live engine pruned it): neither usable nor damaged.
    Gone,
    /// It verified, but the state machine failed to restore it, for this reason: a fact only
    /// executing a plan that chose it can find.
    RestoreFailed(String),
}

/// The snapshots of a data directory and their verdicts, for the log `log_id`.
#[derive(Clone, Debug)]
pub(super) struct SnapshotFacts {
    pub(super) listing: SnapshotListing,
    pub(super) verdicts: Vec<SnapshotVerdict>,
    /// The log the verdicts were read against (a snapshot of another log does not verify).
    log_id: Option<LogId>,
}

impl SnapshotFacts {
    /// Nothing read yet about the snapshots of `listing`.
    pub(super) fn new(listing: SnapshotListing) -> SnapshotFacts {
        let verdicts = vec![SnapshotVerdict::Unread; listing.snapshots.len()];
        SnapshotFacts {
            listing,
            verdicts,
            log_id: None,
        }
    }

    /// The snapshot files, newest first, with their verdicts.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&SnapshotFile, &SnapshotVerdict)> {
        self.listing.snapshots.iter().zip(&self.verdicts)
    }

    /// Reads every snapshot a plan for the log `log_id` ending at `log_end` (`None`: not known
    /// yet) with point-in-time `target` needs, newest first: every one past the log's end (its
    /// verdict decides whether it is set aside), and the others not past the target until one
    /// verifies and has not failed to restore. Verdicts found before are kept, unless they were
    /// read against another log.
    ///
    /// # Errors
    /// An I/O error reading a snapshot (a snapshot that does not verify is a verdict, not an
    /// error).
    pub(super) fn read_needed(
        &mut self,
        store: &SnapshotStore,
        log_id: LogId,
        target: Option<Lsn>,
        log_end: Option<Lsn>,
    ) -> Result<()> {
        if self.log_id != Some(log_id) {
            self.verdicts.fill(SnapshotVerdict::Unread);
            self.log_id = Some(log_id);
        }
        let mut found_usable = false;
        for (file, verdict) in self.listing.snapshots.iter().zip(&mut self.verdicts) {
            let ahead = log_end.is_some_and(|end| file.fence > end);
            let considered = !ahead && target.is_none_or(|t| file.fence <= t);
            if (ahead || (considered && !found_usable)) && *verdict == SnapshotVerdict::Unread {
                *verdict = read_one(store, file, log_id)?;
            }
            found_usable |= considered && matches!(verdict, SnapshotVerdict::Verified(_));
        }
        Ok(())
    }

    /// Records that the snapshot at `path` failed to restore, for `reason`.
    pub(super) fn restore_failed(&mut self, path: &Path, reason: String) {
        let i = self.listing.snapshots.iter().position(|f| f.path == path);
        debug_assert!(i.is_some(), "{} is not in the listing", path.display());
        if let Some(i) = i {
            self.verdicts[i] = SnapshotVerdict::RestoreFailed(reason);
        }
    }
}

/// Verifies `file` against the log `log_id`.
fn read_one(store: &SnapshotStore, file: &SnapshotFile, log_id: LogId) -> Result<SnapshotVerdict> {
    match store.verify(file, Some(log_id)) {
        Ok(v) => Ok(SnapshotVerdict::Verified(v)),
        Err(ReplayError::BadSnapshot { path, reason }) => {
            tracing::warn!(snapshot = %path.display(), %reason, "snapshot rejected");
            Ok(SnapshotVerdict::Bad(reason))
        }
        Err(ReplayError::SnapshotGone { .. }) => Ok(SnapshotVerdict::Gone),
        Err(e) => Err(e),
    }
}
