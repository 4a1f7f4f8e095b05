//! The single pass: the visitor that rides on the log's verifying scan, applying what follows
//! the fence and restoring the snapshot just before, then settling the snapshot after the scan.

use super::{
    Plan, RecoveryReport, RejectedSnapshot, Schemas, SnapshotUsed, cannot_reset, check_covered,
    choose_snapshot, set_aside_to,
};
use crate::error::{ReplayError, Result, apply_err, corrupt};
use crate::logscan::TransactionAssembler;
use crate::snapshot::{SnapshotFile, SnapshotStore};
use crate::state::{StateMachine, apply_at_schema};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use wal_format::{Decoder, LogId, Lsn, SegmentHeader};
use wal_log::ScanVisitor;
use wal_log::inspect::DirFrame;

/// Why the single pass stopped the open.
pub(super) enum PassError {
    /// Replay failed: the state machine, the fragment budget, the snapshot restore.
    Replay(ReplayError),
    /// The first segment is not the one the plan was made from.
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
    pub(super) log_id: LogId,
    pub(super) elapsed: Duration,
    pub(super) bytes: u64,
}

/// The visitor of the single pass: assembles transactions from the frames the open's scan
/// verifies and applies those after the fence, up to the target, restoring the snapshot just
/// before the first one.
pub(super) struct OnePass<'a, S: StateMachine + ?Sized> {
    pub(super) state: &'a mut S,
    pub(super) codec: &'a dyn Decoder<S::Event>,
    pub(super) store: &'a SnapshotStore,
    /// The store's listing the plan was made from, newest first.
    pub(super) snapshots: &'a [SnapshotFile],
    pub(super) plan: Plan,
    pub(super) asm: TransactionAssembler,
    pub(super) target: Lsn,
    /// False when nothing may be applied: no plan, or the log does not cover the snapshot.
    pub(super) enabled: bool,
    /// Segments seen so far (the first is checked against the plan).
    pub(super) segments: u64,
    pub(super) restored: bool,
    pub(super) restore_elapsed: Duration,
    pub(super) applied: u64,
    pub(super) first: Option<Lsn>,
    pub(super) last: Lsn,
    /// Snapshots ahead of the recovered log, set aside before the open appended anything
    /// (`ScanVisitor::recovered`), and where each went.
    pub(super) set_aside_early: Vec<(SnapshotFile, PathBuf)>,
    /// The chosen snapshot failed to restore ([`ReplayError::Restore`](crate::ReplayError::Restore)): nothing more is
    /// applied, and `settle` sets it aside and falls back to an older one.
    pub(super) restore_failed: Option<ReplayError>,
    /// The event schema of the segment being scanned: its transactions were written under it.
    pub(super) schema: u32,
}

impl<'a, S: StateMachine + ?Sized> OnePass<'a, S> {
    pub(super) fn new(
        state: &'a mut S,
        codec: &'a dyn Decoder<S::Event>,
        (store, snapshots): (&'a SnapshotStore, &'a [SnapshotFile]),
        plan: Plan,
        (target, budget): (Option<Lsn>, u64),
    ) -> Self {
        let fence = plan.chosen.as_ref().map_or(Lsn::ZERO, |c| c.header.fence);
        OnePass {
            state,
            codec,
            store,
            snapshots,
            enabled: plan.first.is_some() && plan.covered.is_ok(),
            plan,
            asm: TransactionAssembler::new(fence, budget),
            target: target.unwrap_or(Lsn(u64::MAX)),
            segments: 0,
            restored: false,
            restore_elapsed: Duration::ZERO,
            applied: 0,
            first: None,
            last: Lsn::ZERO,
            set_aside_early: Vec::new(),
            restore_failed: None,
            schema: S::EVENT_SCHEMA,
        }
    }

    /// Restores the chosen snapshot, once. A restore that fails ([`ReplayError::Restore`](crate::ReplayError::Restore)) is
    /// kept in `restore_failed` and stops the pass from applying anything (the state holds
    /// part of a snapshot): `settle` then falls back to an older snapshot.
    pub(super) fn restore(&mut self) -> Result<()> {
        if let (false, Some(c)) = (self.restored, self.plan.chosen.as_ref()) {
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

    /// Restores the newest usable snapshot from index `from` of the listing on, trying older
    /// ones while one fails to restore (each is rejected; recovery renames them once it has
    /// succeeded). `failure` is an earlier restore's error: the state then holds part of a
    /// snapshot, so falling back to none resets it ([`StateMachine::reset`](crate::StateMachine::reset); when the state
    /// cannot reset, the first restore error is returned, saying so). Returns the fence to
    /// replay the log from.
    pub(super) fn restore_fallback(
        &mut self,
        mut from: usize,
        mut failure: Option<ReplayError>,
        (snapshots, log_id): (&[SnapshotFile], LogId),
        report: &mut RecoveryReport,
    ) -> Result<Lsn> {
        let store = self.store;
        loop {
            let (next, chosen) = choose_snapshot(
                store,
                snapshots,
                (from, &self.set_aside_early),
                log_id,
                Some(report.log_end),
                report,
            )?;
            let fence = check_covered(chosen.as_ref(), report)?;
            if let Some(c) = &chosen {
                Schemas::of::<S>().check(&c.file.path, c.header.event_schema)?;
            }
            let Some(c) = chosen else {
                if let Some(e) = failure
                    && let Err(reset) = self.state.reset()
                {
                    return Err(cannot_reset(e, reset));
                }
                return Ok(fence);
            };
            match store.restore_into(&c, self.state) {
                Ok(()) => {
                    report.snapshot = Some(SnapshotUsed {
                        path: c.file.path.clone(),
                        fence,
                        bytes: c.header.body_len,
                    });
                    return Ok(fence);
                }
                Err(e @ ReplayError::Restore { .. }) => {
                    tracing::warn!(snapshot = %c.file.path.display(), error = %e, "snapshot failed to restore");
                    let rejected = RejectedSnapshot::restore_failed(&c.file, &e);
                    report.rejected_snapshots.push(rejected);
                    failure.get_or_insert(e);
                    from = next;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// After the scan: settles the snapshot and fills the report. Says whether a second read
    /// is needed: when the chosen snapshot turned out to be ahead of the log (or there was no
    /// plan), the state is untouched at this point, and an older snapshot is restored here and
    /// replayed from.
    pub(super) fn settle(
        mut self,
        scanned: Scanned,
        snapshots: &[SnapshotFile],
        report: &mut RecoveryReport,
    ) -> Result<Settled> {
        report.snapshot_elapsed = self.plan.elapsed + self.restore_elapsed;
        report.replay_elapsed = scanned.elapsed.saturating_sub(self.restore_elapsed);
        report.bytes_replayed = scanned.bytes;
        let fence = self
            .plan
            .chosen
            .as_ref()
            .map_or(Lsn::ZERO, |c| c.header.fence);
        let planned = self
            .plan
            .first
            .is_some_and(|h| h.log_id == scanned.log_id && h.base_lsn == report.log_start);
        if planned && fence <= report.log_end {
            let fence = std::mem::replace(&mut self.plan.covered, Ok(Lsn::ZERO))?;
            let t = Instant::now();
            self.restore()?;
            report.snapshot_elapsed += t.elapsed();
            if self.restore_failed.is_none() {
                return Ok(self.done(fence, report));
            }
        }
        self.fall_back(scanned.log_id, planned, snapshots, report)
    }

    /// Settles a pass that replayed from the chosen snapshot (restored) to the end.
    pub(super) fn done(self, fence: Lsn, report: &mut RecoveryReport) -> Settled {
        if let Some(c) = &self.plan.chosen {
            report.snapshot = Some(SnapshotUsed {
                path: c.file.path.clone(),
                fence,
                bytes: c.header.body_len,
            });
        }
        report.replay_from = fence.next();
        report.applied = self.applied;
        report.applied_range = self.first.map(|f| (f, self.last));
        report.skipped_aborted = self.asm.aborted();
        Settled::Done {
            open_streams: self.asm.open_streams(),
        }
    }

    /// Settles a pass whose chosen snapshot cannot be used: it is ahead of the log, or it
    /// failed to restore (or there was no plan). An older one is restored here, and the log
    /// must be replayed from its fence in a second read.
    pub(super) fn fall_back(
        mut self,
        log_id: LogId,
        planned: bool,
        snapshots: &[SnapshotFile],
        report: &mut RecoveryReport,
    ) -> Result<Settled> {
        // Nothing was applied: either there was no plan (no log before the open), or no frame
        // after the chosen snapshot's fence exists, so it was never restored, or its restore
        // failed before anything was applied. (The first segment's check in `segment`
        // guarantees it; a state built on a plan that turned out wrong must never be handed
        // on.)
        if self.applied != 0 || (self.restored && self.restore_failed.is_none()) {
            return Err(corrupt(
                PathBuf::new(),
                0,
                "the log changed while it was being recovered",
            ));
        }
        let t = Instant::now();
        let failure = self.restore_failed.take();
        let from = if planned {
            if let Some(c) = &self.plan.chosen {
                let rejected = match &failure {
                    Some(e) => RejectedSnapshot::restore_failed(&c.file, e),
                    None => RejectedSnapshot::past_the_end(
                        &c.file,
                        report.log_end,
                        set_aside_to(&self.set_aside_early, &c.file.path),
                    ),
                };
                report.rejected_snapshots.push(rejected);
            }
            self.plan.next
        } else {
            report.rejected_snapshots.clear();
            report.snapshots_after_target.clear();
            0
        };
        let fence = self.restore_fallback(from, failure, (snapshots, log_id), report)?;
        report.snapshot_elapsed += t.elapsed();
        Ok(Settled::ReplayFrom(fence))
    }
}

/// How the single pass ended.
pub(super) enum Settled {
    /// Recovery is complete; this many fragmented transactions were still open at the end of
    /// the pass.
    Done { open_streams: usize },
    /// The state holds the snapshot with this fence (or nothing, for `Lsn::ZERO`); the log
    /// must be replayed from it in a second read.
    ReplayFrom(Lsn),
}

impl<S: StateMachine + ?Sized> ScanVisitor for OnePass<'_, S> {
    type Error = PassError;

    /// Sets aside the snapshots ahead of the recovered end now, before the open writes the
    /// abort frames of unfinished transactions: those take the LSNs after `last_lsn`, and a
    /// crash right after them would leave such a snapshot looking usable.
    fn recovered(&mut self, last_lsn: Lsn) -> std::result::Result<(), PassError> {
        // Only for the log planned from, once its first segment was seen: an open that found
        // no segments (moved away since the plan) creates a new log, under which the old log's
        // snapshots are not "ahead" but another log's, and must stay where they are.
        if self.segments == 0 {
            return Ok(());
        }
        if let Some(p) = &self.plan.first {
            let ahead = self.store.ahead_of(self.snapshots, p.log_id, last_lsn)?;
            let to = self.store.set_aside_all(&ahead)?;
            self.set_aside_early.extend(ahead.into_iter().zip(to));
        }
        Ok(())
    }

    fn segment(&mut self, header: &SegmentHeader) -> std::result::Result<(), PassError> {
        self.segments += 1;
        self.schema = header.payload_schema;
        if self.segments == 1
            && let Some(p) = &self.plan.first
            && (p.log_id, p.seq, p.base_lsn) != (header.log_id, header.seq, header.base_lsn)
        {
            return Err(PassError::Changed);
        }
        Ok(())
    }

    fn frame(&mut self, f: DirFrame) -> std::result::Result<(), PassError> {
        if !self.enabled || f.seq < self.plan.start || f.frame.lsn > self.target {
            return Ok(());
        }
        if let Some(tx) = self.asm.push(f.frame)? {
            if !self.restored {
                self.restore()?;
                if !self.enabled {
                    // The snapshot failed to restore: `settle` falls back to an older one.
                    return Ok(());
                }
            }
            apply_at_schema(self.state, self.schema, &tx, self.codec)
                .map_err(|source| apply_err(tx.lsn, source))?;
            self.applied += 1;
            self.first.get_or_insert(tx.lsn);
            self.last = tx.lsn;
        }
        Ok(())
    }
}
