//! The single pass: the visitor that rides on the log's verifying scan, applying what follows
//! the first-choice snapshot's fence and restoring that snapshot just before, and deciding the
//! data directory's plan once the log's end is settled (`ScanVisitor::recovered`). What
//! follows the scan (confirming the first choice or falling back) is in `execute.rs`.

use super::facts::SnapshotFacts;
use super::plan::{DataDirPlan, LogFacts, RejectedSnapshot, Schemas, plan_data_dir};
use super::repair::rename_aside;
use crate::error::{ReplayError, Result, apply_err};
use crate::logscan::TransactionAssembler;
use crate::snapshot::{SnapshotStore, VerifiedSnapshot};
use crate::state::{StateMachine, apply_at_schema};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use wal_format::{Decoder, Lsn, SegmentHeader, SegmentSeq};
use wal_log::inspect::DirFrame;
use wal_log::{OpenReport, ScanVisitor};

/// Why the single pass stopped the open.
pub(super) enum PassError {
    /// Replay failed: the state machine, the fragment budget, the snapshot restore.
    Replay(ReplayError),
    /// The first segment is not the one the look before the scan read.
    Changed,
}

impl From<ReplayError> for PassError {
    fn from(e: ReplayError) -> Self {
        PassError::Replay(e)
    }
}

/// What the log's open reported about its scan.
#[derive(Clone, Copy)]
pub(super) struct Scanned {
    pub(super) elapsed: Duration,
    pub(super) bytes: u64,
}

/// The visitor of the single pass: assembles transactions from the frames the open's scan
/// verifies and applies those after the first choice's fence, up to the target, restoring that
/// snapshot just before the first one; then decides the plan.
pub(super) struct OnePass<'a, S: StateMachine + ?Sized> {
    pub(super) state: &'a mut S,
    pub(super) codec: &'a dyn Decoder<S::Event>,
    pub(super) store: &'a SnapshotStore,
    /// What is known about the snapshots; grows as the plan needs more.
    pub(super) snaps: SnapshotFacts,
    pub(super) schemas: Schemas,
    /// The first segment's header as read before the scan; `None` when there was no segment
    /// (the open creates the log).
    pub(super) first: Option<SegmentHeader>,
    /// The snapshot tried first, before the log's end is known ([`super::plan::first_choice`]).
    pub(super) first_choice: Option<VerifiedSnapshot>,
    /// Frames of segments before this one are not needed to replay from the first choice.
    pub(super) start: SegmentSeq,
    pub(super) asm: TransactionAssembler,
    pub(super) target: Option<Lsn>,
    /// False when nothing may be applied: no segment, or the log does not cover the first
    /// choice, or it failed to restore.
    pub(super) enabled: bool,
    /// Segments seen so far (the first is checked against `first`).
    pub(super) segments: u64,
    pub(super) restored: bool,
    /// Time spent choosing before the scan, and restoring.
    pub(super) chose_elapsed: Duration,
    pub(super) restore_elapsed: Duration,
    pub(super) applied: u64,
    pub(super) first_tx: Option<Lsn>,
    pub(super) last_tx: Lsn,
    /// The first choice failed to restore ([`ReplayError::Restore`](crate::ReplayError::Restore)):
    /// nothing more is applied, and the plan is made again without it.
    pub(super) restore_failed: Option<ReplayError>,
    /// The event schema of the segment being scanned: its transactions were written under it.
    pub(super) schema: u32,
    /// A dry run: the plan's renames are named, not done.
    pub(super) read_only: bool,
    /// The plan, once decided, and the snapshot it restores.
    pub(super) decided: Option<(DataDirPlan, Option<VerifiedSnapshot>)>,
    /// Snapshots renamed aside so far, and the name each got.
    pub(super) renamed: Vec<(PathBuf, PathBuf)>,
}

/// What the look before the scan found, for the pass: the first segment's header, the
/// snapshots, the first choice and the segment replay from it starts in.
pub(super) struct Before {
    pub(super) first: Option<SegmentHeader>,
    pub(super) snaps: SnapshotFacts,
    pub(super) first_choice: Option<VerifiedSnapshot>,
    pub(super) start: SegmentSeq,
    /// Time spent looking and choosing.
    pub(super) elapsed: Duration,
}

impl<'a, S: StateMachine + ?Sized> OnePass<'a, S> {
    pub(super) fn new(
        (state, codec): (&'a mut S, &'a dyn Decoder<S::Event>),
        store: &'a SnapshotStore,
        before: Before,
        (target, budget): (Option<Lsn>, u64),
        read_only: bool,
    ) -> Self {
        let fence = before
            .first_choice
            .as_ref()
            .map_or(Lsn::ZERO, |c| c.header.fence);
        let covered = before.first.is_some_and(|h| fence.next() >= h.base_lsn);
        OnePass {
            state,
            codec,
            store,
            snaps: before.snaps,
            schemas: Schemas::of::<S>(),
            first: before.first,
            first_choice: before.first_choice,
            start: before.start,
            asm: TransactionAssembler::new(fence, budget),
            target,
            enabled: covered,
            segments: 0,
            restored: false,
            chose_elapsed: before.elapsed,
            restore_elapsed: Duration::ZERO,
            applied: 0,
            first_tx: None,
            last_tx: Lsn::ZERO,
            restore_failed: None,
            schema: S::EVENT_SCHEMA,
            read_only,
            decided: None,
            renamed: Vec::new(),
        }
    }

    /// Restores the first choice, once. A restore that fails ([`ReplayError::Restore`](crate::ReplayError::Restore)) is
    /// kept in `restore_failed` and stops the pass from applying anything (the state holds
    /// part of a snapshot): the plan is then made again without it.
    pub(super) fn restore(&mut self) -> Result<()> {
        if let (false, Some(c)) = (self.restored, self.first_choice.as_ref()) {
            let t = Instant::now();
            let restored = self.store.restore_into(c, self.state);
            self.restore_elapsed += t.elapsed();
            match restored {
                Ok(()) => {}
                Err(e @ ReplayError::Restore { .. }) => {
                    tracing::warn!(snapshot = %c.file.path.display(), error = %e, "snapshot failed to restore");
                    self.restore_failed = Some(e);
                    self.enabled = false;
                }
                Err(e) => return Err(e),
            }
        }
        self.restored = true;
        Ok(())
    }

    /// Decides the data directory's plan for what the log keeps (`log`), reading the
    /// snapshots it needs, and (unless a dry run) renames aside at once the snapshots it finds
    /// ahead of the log.
    pub(super) fn decide(&mut self, log: LogFacts) -> Result<()> {
        self.snaps
            .read_needed(self.store, log.log_id, self.target, Some(log.end))?;
        let (plan, chosen) = plan_data_dir(&self.snaps, log, self.target, self.schemas)?;
        self.set_aside(&plan, |r| r.ahead_of_log)?;
        self.decided = Some((plan, chosen));
        Ok(())
    }

    /// Renames aside (a dry run: does not) every snapshot `plan` sets aside for which `which`
    /// holds and that is not renamed yet, then syncs the directory.
    pub(super) fn set_aside(
        &mut self,
        plan: &DataDirPlan,
        which: impl Fn(&RejectedSnapshot) -> bool,
    ) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        let renamed = &self.renamed;
        let todo = (plan.rejected_snapshots.iter()).filter(|r| {
            r.is_set_aside() && which(r) && !renamed.iter().any(|(from, _)| *from == r.path)
        });
        let done = rename_aside(self.store, todo)?;
        self.renamed.extend(done);
        Ok(())
    }
}

impl<S: StateMachine + ?Sized> ScanVisitor for OnePass<'_, S> {
    type Error = PassError;

    /// Decides the plan now that the open has executed the log's, and sets aside the snapshots
    /// it sets aside before the open writes the abort frames of unfinished transactions: those
    /// take the LSNs after the log's end, and a crash right after them would leave a snapshot
    /// ahead of the log looking usable.
    fn recovered(&mut self, open: &OpenReport) -> std::result::Result<(), PassError> {
        // Only for the log looked at before, once its first segment was seen: an open that
        // found no segments (moved away since) creates a new log, whose plan is made after it.
        let Some(first) = self.first.filter(|_| self.segments > 0) else {
            return Ok(());
        };
        self.decide(LogFacts::opened(first.log_id, open))?;
        Ok(())
    }

    fn segment(&mut self, header: &SegmentHeader) -> std::result::Result<(), PassError> {
        self.segments += 1;
        self.schema = header.payload_schema;
        if self.segments == 1
            && let Some(p) = &self.first
            && (p.log_id, p.seq, p.base_lsn) != (header.log_id, header.seq, header.base_lsn)
        {
            return Err(PassError::Changed);
        }
        Ok(())
    }

    fn frame(&mut self, f: DirFrame) -> std::result::Result<(), PassError> {
        if !self.enabled || f.seq < self.start || self.target.is_some_and(|t| f.frame.lsn > t) {
            return Ok(());
        }
        if let Some(tx) = self.asm.push(f.frame)? {
            if !self.restored {
                self.restore()?;
                if !self.enabled {
                    // The snapshot failed to restore: the plan is made again without it.
                    return Ok(());
                }
            }
            apply_at_schema(self.state, self.schema, &tx, self.codec)
                .map_err(|source| apply_err(tx.lsn, source))?;
            self.applied += 1;
            self.first_tx.get_or_insert(tx.lsn);
            self.last_tx = tx.lsn;
        }
        Ok(())
    }
}
