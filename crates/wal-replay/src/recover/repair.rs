//! The snapshot side of a repair of the log alone (`walctl repair`): planned from the same
//! facts by the same rules as recovery's plan ([`plan_snapshots`]), and carried out by the
//! same renames ([`rename_aside`]), so a dry run prints what the repair then does.

use super::facts::SnapshotFacts;
use super::plan::{DataDirPlan, LogFacts, RejectedSnapshot, plan_snapshots};
use crate::error::Result;
use crate::snapshot::SnapshotStore;
use std::path::PathBuf;
use wal_format::LogId;
use wal_log::RecoveryPlan;

/// The data directory's plan once the log `log_id` is repaired under `log` (its
/// `Inspection::recovery_plan`, or what its open did): the snapshots recovery would pass over
/// and which of them it sets aside under which name
/// ([`RejectedSnapshot::is_set_aside`]), without the checks that need a state machine (the
/// snapshot's event schema, whether the log covers replay from it). Reads only the snapshots
/// the plan needs; renames nothing.
///
/// # Errors
/// An I/O error listing or reading the snapshots.
pub fn plan_repair(store: &SnapshotStore, log_id: LogId, log: RecoveryPlan) -> Result<DataDirPlan> {
    let mut snaps = SnapshotFacts::new(store.list()?);
    let log = LogFacts::planned(log_id, log);
    snaps.read_needed(store, log.log_id, None, Some(log.end))?;
    Ok(plan_snapshots(&snaps, log, None).0)
}

impl DataDirPlan {
    /// Renames aside every snapshot this plan sets aside ([`RejectedSnapshot::is_set_aside`])
    /// in `store`, then syncs the directory: what a repair does to the snapshots before it
    /// changes the log ([`plan_repair`]). Returns those snapshots, each with the name its
    /// rename took in `set_aside`.
    ///
    /// # Errors
    /// An I/O error renaming or syncing.
    pub fn set_aside_snapshots(&self, store: &SnapshotStore) -> Result<Vec<RejectedSnapshot>> {
        let set_aside = self.rejected_snapshots.iter().filter(|r| r.is_set_aside());
        let renamed = rename_aside(store, set_aside.clone())?;
        debug_assert_eq!(renamed.len(), set_aside.clone().count());
        Ok(set_aside
            .zip(renamed)
            .map(|(r, (_, to))| RejectedSnapshot {
                set_aside: Some(to),
                ..r.clone()
            })
            .collect())
    }
}

/// Renames each of `rejected` aside (`<name>.corrupt`, never replacing an earlier one), then
/// syncs the directory if any was. Returns each path with its new name, in order.
pub(super) fn rename_aside<'a>(
    store: &SnapshotStore,
    rejected: impl Iterator<Item = &'a RejectedSnapshot>,
) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut renamed = Vec::new();
    for r in rejected {
        debug_assert!(
            r.is_set_aside(),
            "{} is not one to set aside",
            r.path.display()
        );
        tracing::warn!(snapshot = %r.path.display(), reason = %r.reason, "setting a rejected snapshot aside");
        let to = store.set_aside(&r.path)?;
        renamed.push((r.path.clone(), to));
    }
    if !renamed.is_empty() {
        store.sync()?;
    }
    Ok(renamed)
}
