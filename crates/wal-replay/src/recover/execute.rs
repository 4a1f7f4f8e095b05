//! Executing the data directory's plan once the scan is over: confirming the first choice the
//! single pass applied from, or restoring the plan's snapshot for a second read; renaming
//! aside what the plan sets aside; and recording in the report what was done.

use super::pass::{OnePass, Scanned};
use super::plan::{DataDirPlan, LogFacts, restore_cause};
use super::report::RecoveryReport;
use crate::error::{ReplayError, Result, apply_err, corrupt};
use crate::logscan::{LogFrames, TransactionAssembler};
use crate::snapshot::VerifiedSnapshot;
use crate::state::{StateMachine, apply_at_schema};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use wal_format::scan::ScanEnd;
use wal_format::{Decoder, Lsn};
use wal_log::{OpenReport, Vfs};

/// How the single pass ended.
pub(super) enum Settled {
    /// Recovery is complete; this many fragmented transactions were still open at the end of
    /// the pass.
    Done { open_streams: usize },
    /// The state holds the snapshot with this fence (or nothing, for `Lsn::ZERO`); the log
    /// must be replayed from it in a second read.
    ReplayFrom(Lsn),
}

impl<S: StateMachine + ?Sized> OnePass<'_, S> {
    /// After the scan, with the plan decided: executes its snapshot side and records it in
    /// `report`. When the plan restores the snapshot the pass applied from, the pass's work
    /// stands (it is restored now if no transaction followed its fence). Otherwise (the first
    /// choice is ahead of the log, or failed to restore) nothing was applied: the plan's
    /// snapshot is restored here and the log must be read again from its fence.
    pub(super) fn settle(
        mut self,
        scanned: Scanned,
        report: &mut RecoveryReport,
    ) -> Result<Settled> {
        report.snapshot_elapsed = self.chose_elapsed + self.restore_elapsed;
        report.replay_elapsed = scanned.elapsed.saturating_sub(self.restore_elapsed);
        report.bytes_replayed = scanned.bytes;
        let Some((plan, chosen)) = self.decided.take() else {
            debug_assert!(false, "settle before the plan was decided");
            return Err(corrupt(
                PathBuf::new(),
                0,
                "recovery settled without a plan",
            ));
        };
        let path = |c: &Option<VerifiedSnapshot>| c.as_ref().map(|c| c.file.path.clone());
        if path(&chosen) == path(&self.first_choice) {
            let t = Instant::now();
            self.restore()?;
            report.snapshot_elapsed += t.elapsed();
            if self.restore_failed.is_none() {
                self.finish(&plan, report)?;
                report.applied = self.applied;
                report.applied_range = self.first_tx.map(|f| (f, self.last_tx));
                report.skipped_aborted = self.asm.aborted();
                report.skipped_placeholders = self.asm.placeholders();
                return Ok(Settled::Done {
                    open_streams: self.asm.open_streams(),
                });
            }
        }
        // Nothing was applied: no transaction follows the first choice's fence in the log
        // kept (so it was never restored), or its restore failed before anything was applied.
        // (The first segment's check in `segment` guarantees it; a state built on a choice that
        // turned out wrong must never be handed on.)
        if self.applied != 0 || (self.restored && self.restore_failed.is_none()) {
            return Err(corrupt(
                PathBuf::new(),
                0,
                "the log changed while it was being recovered",
            ));
        }
        let t = Instant::now();
        let plan = self.fall_back(plan, chosen)?;
        report.snapshot_elapsed += t.elapsed();
        self.finish(&plan, report)?;
        Ok(Settled::ReplayFrom(plan.replay_from.prev()))
    }

    /// Restores the plan's snapshot, planning again without each one that fails to restore
    /// (the first choice's failure included). `failure` is the first restore's error: the
    /// state then holds part of a snapshot, so a plan without a snapshot resets it
    /// ([`StateMachine::reset`]; when the state cannot reset, that error is returned, saying
    /// so). Returns the plan executed.
    fn fall_back(
        &mut self,
        mut plan: DataDirPlan,
        mut chosen: Option<VerifiedSnapshot>,
    ) -> Result<DataDirPlan> {
        let mut failure = self.restore_failed.take();
        if let (Some(e), Some(c)) = (&failure, &self.first_choice) {
            self.snaps.restore_failed(&c.file.path, restore_cause(e));
            (plan, chosen) = self.plan_again(&plan)?;
        }
        loop {
            let Some(c) = chosen else {
                if let Some(e) = failure
                    && let Err(reset) = self.state.reset()
                {
                    return Err(cannot_reset(e, reset));
                }
                return Ok(plan);
            };
            match self.store.restore_into(&c, self.state) {
                Ok(()) => return Ok(plan),
                Err(e @ ReplayError::Restore { .. }) => {
                    tracing::warn!(snapshot = %c.file.path.display(), error = %e, "snapshot failed to restore");
                    self.snaps.restore_failed(&c.file.path, restore_cause(&e));
                    failure.get_or_insert(e);
                    (plan, chosen) = self.plan_again(&plan)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The plan made again for the same log, with what restoring has since found.
    fn plan_again(
        &mut self,
        plan: &DataDirPlan,
    ) -> Result<(DataDirPlan, Option<VerifiedSnapshot>)> {
        let log = LogFacts::of(plan)
            .ok_or_else(|| corrupt(PathBuf::new(), 0, "a plan without a log was made again"))?;
        self.decide(log)?;
        self.decided
            .take()
            .ok_or_else(|| corrupt(PathBuf::new(), 0, "recovery planned again without a plan"))
    }

    /// Renames aside the rest of what the plan sets aside (those that failed to restore), and
    /// records the plan and what was done in `report`.
    fn finish(&mut self, plan: &DataDirPlan, report: &mut RecoveryReport) -> Result<()> {
        self.set_aside(plan, |_| true)?;
        report.snapshot.clone_from(&plan.snapshot);
        report.rejected_snapshots = plan.rejected_snapshots.clone();
        if !self.read_only {
            // What was done: the names the renames took.
            for r in &mut report.rejected_snapshots {
                r.set_aside = (self.renamed.iter())
                    .find(|(from, _)| *from == r.path)
                    .map(|(_, to)| to.clone());
            }
        }
        report
            .snapshots_after_target
            .clone_from(&plan.snapshots_after_target);
        report.replay_from = plan.replay_from;
        report.plan = plan.clone();
        Ok(())
    }
}

/// A restore failed and the state, holding part of that snapshot, cannot reset
/// ([`StateMachine::reset`]) to replay the log from its start instead.
#[derive(Debug, thiserror::Error)]
#[error(
    "{restore}; no older snapshot is usable and the log still starts at its first LSN, but the state cannot reset to replay it without a snapshot ({reset}): implement StateMachine::reset, or move the snapshot aside"
)]
struct CannotReset {
    #[source]
    restore: io::Error,
    reset: io::Error,
}

/// `failure` (a [`ReplayError::Restore`]), saying that the state could not reset after it.
fn cannot_reset(failure: ReplayError, reset: io::Error) -> ReplayError {
    match failure {
        ReplayError::Restore { path, source } => ReplayError::Restore {
            path,
            source: io::Error::new(
                source.kind(),
                CannotReset {
                    restore: source,
                    reset,
                },
            ),
        },
        other => other,
    }
}

/// The fallback's second read: replays the log from `fence` on (after the open, so the log
/// also holds the abort frames the open wrote).
#[allow(clippy::too_many_arguments)]
pub(super) fn replay_again<S: StateMachine + ?Sized>(
    vfs: &Arc<dyn Vfs>,
    log_dir: &Path,
    state: &mut S,
    codec: &dyn Decoder<S::Event>,
    fence: Lsn,
    limits: (Option<Lsn>, u64),
    open: &OpenReport,
    report: &mut RecoveryReport,
) -> Result<()> {
    let t = Instant::now();
    let mut frames = LogFrames::open(vfs.clone(), log_dir, fence.next())?;
    replay(
        &mut frames,
        state,
        codec,
        fence,
        limits,
        &open.aborted_streams,
        report,
    )?;
    if let Some(end) = frames.end()
        && !matches!(end.end, ScanEnd::Clean { .. })
    {
        // The log was just recovered under our lock: damage now means the disk changed under
        // us or the log is wrong; never report a partial replay as success.
        return Err(corrupt(
            end.path.clone(),
            end.end.offset() as u64,
            end.end.to_string(),
        ));
    }
    report.bytes_replayed += frames.bytes_read;
    report.replay_elapsed += t.elapsed();
    Ok(())
}

/// Applies every committed transaction after `fence` (up to the target). Returns the number
/// of fragmented transactions still open where the scan ended.
pub(super) fn replay<S: StateMachine + ?Sized>(
    frames: &mut LogFrames,
    state: &mut S,
    codec: &dyn Decoder<S::Event>,
    fence: Lsn,
    (target, budget): (Option<Lsn>, u64),
    closed_by_recovery: &[Lsn],
    report: &mut RecoveryReport,
) -> Result<usize> {
    let mut asm = TransactionAssembler::new(fence, budget);
    asm.closed_by_recovery(closed_by_recovery.iter().copied());
    let target = target.unwrap_or(Lsn(u64::MAX));
    let mut first = None;
    let mut last = Lsn::ZERO;
    let mut applied = 0u64;
    while let Some(frame) = frames.next_frame()? {
        if frame.lsn > target {
            break;
        }
        if let Some(tx) = asm.push(frame)? {
            apply_at_schema(state, frames.schema(), &tx, codec)
                .map_err(|source| apply_err(tx.lsn, source))?;
            applied += 1;
            first.get_or_insert(tx.lsn);
            last = tx.lsn;
        }
    }
    report.applied = applied;
    report.applied_range = first.map(|f| (f, last));
    report.skipped_aborted = asm.aborted();
    report.skipped_placeholders = asm.placeholders();
    Ok(asm.open_streams())
}
