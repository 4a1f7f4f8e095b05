//! The data directory's plan, decided once by a pure function ([`plan_data_dir`]) from the
//! facts of one look at it: the snapshots with their verdicts ([`SnapshotFacts`]) and what the
//! log's own plan keeps ([`LogFacts`], from `wal_log::RecoveryPlan` in a dry run or from the
//! open that executed it). Nothing here reads or writes a file.

use super::facts::{SnapshotFacts, SnapshotVerdict};
use crate::error::{ReplayError, Result};
use crate::snapshot::{SnapshotFile, VerifiedSnapshot, aside_name_among};
use crate::state::StateMachine;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use wal_format::{LogId, Lsn};
use wal_log::{MovedAside, OpenReport, Options, RecoveryPlan};

/// What recovery does to a data directory, decided before it is done: the log's plan (what is
/// moved aside, the LSN range kept), the snapshot restored, the snapshots passed over and which
/// of those are set aside under which name, and where replay starts. [`crate::recover`]
/// executes it and its [`RecoveryReport`](crate::RecoveryReport) records what was done;
/// [`replay_read_only`](crate::inspect::replay_read_only) makes the same plan and changes
/// nothing. Both put the plan in [`RecoveryReport::plan`](crate::RecoveryReport::plan).
///
/// Only restoring a snapshot can show that it fails to restore; recovery then plans again with
/// that fact (the snapshot is rejected, `restore_failed`), and the plan reported is the one
/// executed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataDirPlan {
    /// The point-in-time target, if any.
    pub target: Option<Lsn>,
    /// The log's identity (`None` when there is no log yet).
    pub log_id: Option<LogId>,
    /// The first LSN the log keeps.
    pub log_start: Lsn,
    /// The last LSN the log keeps (before anything recovery appends).
    pub log_end: Lsn,
    /// The bytes the log's plan moves out of the log, each with the file it goes to.
    pub moved_aside: Vec<MovedAside>,
    /// The snapshot to restore; `None` to replay from an empty state at the log's start.
    pub snapshot: Option<SnapshotUsed>,
    /// Snapshots newer than the one restored that are passed over, newest first, and why;
    /// `set_aside` is the name each one set aside gets
    /// ([`RejectedSnapshot::is_set_aside`]).
    pub rejected_snapshots: Vec<RejectedSnapshot>,
    /// Snapshots newer than the target, not considered (those ahead of the log are rejected
    /// and set aside instead).
    pub snapshots_after_target: Vec<PathBuf>,
    /// The first LSN replay considers: the snapshot's fence + 1.
    pub replay_from: Lsn,
}

/// The snapshot recovery started from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotUsed {
    /// The file.
    pub path: PathBuf,
    /// Its fence: replay started after it.
    pub fence: Lsn,
    /// Its body length.
    pub bytes: u64,
}

/// A snapshot recovery could not use, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedSnapshot {
    /// The file.
    pub path: PathBuf,
    /// Its fence (from its name).
    pub fence: Lsn,
    /// Why it was passed over.
    pub reason: String,
    /// Its fence is past the end of the log (the log lost transactions the snapshot holds,
    /// for example to a salvage). Such a snapshot can never be used again: the log's next
    /// LSNs go to new commits that its state does not hold.
    pub ahead_of_log: bool,
    /// It verified, but the state machine failed to restore it: [`StateMachine::restore`](crate::StateMachine::restore)
    /// returned an error, or left body bytes unread (a snapshot its writer cut short, a state
    /// format this build does not read). Recovery sets it aside and falls back to an older
    /// snapshot, as for one ahead of the log.
    pub restore_failed: bool,
    /// Where recovery renamed it (`<name>.corrupt`, kept, never read): a snapshot ahead of
    /// the log is set aside before the log takes new commits, so that no later recovery
    /// restores it once the log has grown past its fence; one that failed to restore, so that
    /// no later recovery or checkpoint takes it for a usable one
    /// ([`RejectedSnapshot::is_set_aside`]). `None` for other rejections. In a
    /// [`DataDirPlan`] and a read-only replay's report, the name recovery gives it (nothing is
    /// renamed yet, so no such file exists), as [`DataDirPlan::moved_aside`] names the log's
    /// files.
    pub set_aside: Option<PathBuf>,
}

impl RejectedSnapshot {
    /// Whether recovery sets this snapshot aside (renames it `*.corrupt`): the one rule, for
    /// recovery and for the dry runs that print its plan. A snapshot ahead of the log or one
    /// that failed to restore is set aside; one that does not verify is only passed over (a
    /// checkpoint sets it aside later, once a newer snapshot exists).
    #[must_use]
    pub fn is_set_aside(&self) -> bool {
        self.ahead_of_log || self.restore_failed
    }

    /// `file`, whose fence is past `log_end`, the end of the log; `set_aside` if it was
    /// renamed already.
    pub(super) fn past_the_end(
        file: &SnapshotFile,
        log_end: Lsn,
        set_aside: Option<PathBuf>,
    ) -> Self {
        RejectedSnapshot {
            path: file.path.clone(),
            fence: file.fence,
            reason: format!(
                "its fence {} is ahead of the log, which ends at LSN {log_end}",
                file.fence
            ),
            ahead_of_log: true,
            restore_failed: false,
            set_aside,
        }
    }

    /// `file`, which does not verify, for `reason`: passed over, not set aside.
    pub(super) fn bad(file: &SnapshotFile, reason: &str) -> Self {
        RejectedSnapshot {
            path: file.path.clone(),
            fence: file.fence,
            reason: reason.to_owned(),
            ahead_of_log: false,
            restore_failed: false,
            set_aside: None,
        }
    }

    /// `file`, which verified but failed to restore with `cause` ([`restore_cause`]).
    /// Recovery renames it once it has recovered from an older one.
    pub(super) fn restore_failed(file: &SnapshotFile, cause: &str) -> Self {
        RejectedSnapshot {
            path: file.path.clone(),
            fence: file.fence,
            reason: format!("restoring it failed: {cause}"),
            ahead_of_log: false,
            restore_failed: true,
            set_aside: None,
        }
    }
}

/// Why a restore failed, for [`RejectedSnapshot::restore_failed`]: the state machine's own
/// error of a [`ReplayError::Restore`].
pub(super) fn restore_cause(error: &ReplayError) -> String {
    match error {
        ReplayError::Restore { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// The log's side of the facts: what its recovery plan keeps.
#[derive(Clone, Debug)]
pub(super) struct LogFacts {
    pub(super) log_id: LogId,
    pub(super) start: Lsn,
    pub(super) end: Lsn,
    pub(super) moved_aside: Vec<MovedAside>,
}

impl LogFacts {
    /// What the log `log_id` keeps under the plan a dry run made for it.
    pub(super) fn planned(log_id: LogId, plan: RecoveryPlan) -> LogFacts {
        LogFacts {
            log_id,
            start: plan.first_lsn,
            end: plan.last_lsn,
            moved_aside: plan.moved_aside,
        }
    }

    /// What the log keeps under `plan` (made for it before), to plan again.
    pub(super) fn of(plan: &DataDirPlan) -> Option<LogFacts> {
        Some(LogFacts {
            log_id: plan.log_id?,
            start: plan.log_start,
            end: plan.log_end,
            moved_aside: plan.moved_aside.clone(),
        })
    }

    /// What the log kept under the plan its open executed.
    pub(super) fn opened(log_id: LogId, open: &OpenReport) -> LogFacts {
        LogFacts {
            log_id,
            start: open.first_lsn,
            end: open.last_lsn,
            moved_aside: open.moved_aside.clone(),
        }
    }
}

/// The data directory's plan for `log`, from the snapshots' verdicts in `snaps` (read with
/// [`SnapshotFacts::read_needed`] for the same log, end and target), and the snapshot it
/// restores.
///
/// The rules, newest snapshot first: one that verifies but is past the log's end is rejected
/// and set aside (the log's next LSNs go to new commits its state does not hold); one past the
/// target is not considered; one that does not verify, or failed to restore, is rejected; the
/// first that verifies is restored.
///
/// # Errors
/// [`ReplayError::EventSchema`] when the state machine does not read the chosen snapshot's
/// event schema; [`ReplayError::LogTruncated`] when the log no longer holds what follows the
/// chosen snapshot's fence (or the log's start, without a snapshot).
pub(super) fn plan_data_dir(
    snaps: &SnapshotFacts,
    log: LogFacts,
    target: Option<Lsn>,
    schemas: Schemas,
) -> Result<(DataDirPlan, Option<VerifiedSnapshot>)> {
    let (plan, chosen) = plan_snapshots(snaps, log, target);
    if let Some(c) = &chosen {
        schemas.check(&c.file.path, c.header.event_schema)?;
    }
    if plan.replay_from < plan.log_start {
        return Err(ReplayError::LogTruncated {
            needed: plan.replay_from,
            oldest: plan.log_start,
            reason: why_truncated(chosen.as_ref(), &plan),
        });
    }
    Ok((plan, chosen))
}

/// [`plan_data_dir`] without the checks that need a state machine and a log that covers
/// replay: the rules applied to the snapshots, the set-aside ones named, the snapshot chosen
/// and where replay would start. What a repair of the log plans for the snapshots.
pub(super) fn plan_snapshots(
    snaps: &SnapshotFacts,
    log: LogFacts,
    target: Option<Lsn>,
) -> (DataDirPlan, Option<VerifiedSnapshot>) {
    let mut plan = DataDirPlan {
        target,
        log_id: Some(log.log_id),
        log_start: log.start,
        log_end: log.end,
        moved_aside: log.moved_aside,
        ..DataDirPlan::default()
    };
    let chosen = choose(snaps, log.end, target, &mut plan);
    name_set_asides(&snaps.listing.corrupt_files, &mut plan.rejected_snapshots);
    let fence = chosen.as_ref().map_or(Lsn::ZERO, |c| c.header.fence);
    plan.replay_from = fence.next();
    plan.snapshot = chosen.as_ref().map(|c| SnapshotUsed {
        path: c.file.path.clone(),
        fence,
        bytes: c.header.body_len,
    });
    (plan, chosen)
}

/// The snapshot a recovery would try first before the log's end is known (every snapshot is
/// taken to be within the log): the single pass restores it just before the first transaction
/// after its fence, and [`plan_data_dir`] confirms or replaces it once the end is known.
pub(super) fn first_choice(snaps: &SnapshotFacts, target: Option<Lsn>) -> Option<VerifiedSnapshot> {
    choose(snaps, Lsn(u64::MAX), target, &mut DataDirPlan::default())
}

/// Applies the rules of [`plan_data_dir`] to the snapshots: the rejected ones and those past
/// the target into `plan`; returns the one chosen.
fn choose(
    snaps: &SnapshotFacts,
    log_end: Lsn,
    target: Option<Lsn>,
    plan: &mut DataDirPlan,
) -> Option<VerifiedSnapshot> {
    let mut chosen: Option<VerifiedSnapshot> = None;
    for (file, verdict) in snaps.iter() {
        let rejected = match verdict {
            SnapshotVerdict::Verified(_) if file.fence > log_end => {
                Some(RejectedSnapshot::past_the_end(file, log_end, None))
            }
            _ if target.is_some_and(|t| file.fence > t) => {
                plan.snapshots_after_target.push(file.path.clone());
                None
            }
            _ if chosen.is_some() => None,
            SnapshotVerdict::Verified(v) => {
                chosen = Some(v.clone());
                None
            }
            SnapshotVerdict::Bad(reason) => Some(RejectedSnapshot::bad(file, reason)),
            SnapshotVerdict::RestoreFailed(reason) => {
                Some(RejectedSnapshot::restore_failed(file, reason))
            }
            SnapshotVerdict::Gone | SnapshotVerdict::Unread => None,
        };
        plan.rejected_snapshots.extend(rejected);
    }
    debug_assert!(
        chosen
            .as_ref()
            .is_none_or(|c| c.header.fence <= log_end && target.is_none_or(|t| c.header.fence <= t)),
        "a chosen snapshot is within the log and the target"
    );
    chosen
}

/// Names the file each rejected snapshot that is set aside is renamed to, given the names
/// set-aside files already have (`corrupt_files`) and those named before it.
fn name_set_asides(corrupt_files: &[PathBuf], rejected: &mut [RejectedSnapshot]) {
    let mut taken: Vec<PathBuf> = corrupt_files.to_vec();
    for r in rejected.iter_mut().filter(|r| r.is_set_aside()) {
        let to = aside_name_among(&r.path, |p| {
            Ok::<_, Infallible>(taken.iter().any(|t| t == p))
        });
        let Ok(to) = to;
        taken.push(to.clone());
        r.set_aside = Some(to);
    }
}

/// Why the log does not cover replay from the chosen snapshot, for [`ReplayError::LogTruncated`].
fn why_truncated(chosen: Option<&VerifiedSnapshot>, plan: &DataDirPlan) -> String {
    match chosen {
        Some(c) => format!(
            "snapshot {} (fence {}) is the newest usable one",
            c.file.path.display(),
            c.header.fence
        ),
        None if plan.rejected_snapshots.is_empty() && !plan.snapshots_after_target.is_empty() => {
            "every snapshot is after the target".into()
        }
        None if plan.rejected_snapshots.is_empty() => "there is no snapshot".into(),
        None => format!(
            "no usable snapshot: {}",
            plan.rejected_snapshots
                .iter()
                .map(|r| format!("{}: {}", r.path.display(), r.reason))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

/// The event schemas of a state machine: its own, and which it reads.
#[derive(Clone, Copy)]
pub(super) struct Schemas {
    pub(super) own: u32,
    reads: fn(u32) -> bool,
}

impl Schemas {
    pub(super) fn of<S: StateMachine + ?Sized>() -> Schemas {
        Schemas {
            own: S::EVENT_SCHEMA,
            reads: S::reads_event_schema,
        }
    }

    /// Refuses `file`, holding events of schema `found`, unless the state machine reads it.
    pub(super) fn check(self, file: &Path, found: u32) -> Result<()> {
        if found == self.own || (self.reads)(found) {
            return Ok(());
        }
        Err(ReplayError::EventSchema {
            file: file.to_path_buf(),
            found,
            expected: self.own,
        })
    }

    /// The log's options for this state machine: new segments carry its schema; the open
    /// accepts the older ones the look before it found (and refuses any other that appeared
    /// since).
    pub(super) fn wal_options(self, opts: &Options, older: &[u32]) -> Options {
        opts.clone()
            .payload_schema(self.own)
            .upgrade_payload_schemas(older.iter().copied())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::snapshot::{SnapshotHeader, SnapshotListing};

    const LOG: LogId = LogId::from_u128(7);
    /// A state machine's schemas: its own is 1, and it reads nothing else.
    const SCHEMAS: Schemas = Schemas {
        own: 1,
        reads: |_| false,
    };

    fn file(fence: u64) -> SnapshotFile {
        SnapshotFile {
            path: PathBuf::from(format!("/d/snapshots/{fence:020}.snap")),
            fence: Lsn(fence),
            file_len: 100,
        }
    }

    fn verified(fence: u64, schema: u32) -> SnapshotVerdict {
        SnapshotVerdict::Verified(VerifiedSnapshot {
            file: file(fence),
            header: SnapshotHeader {
                log_id: LOG,
                fence: Lsn(fence),
                body_len: 36,
                created_unix_ms: 0,
                event_schema: schema,
                crc: 0,
            },
        })
    }

    /// Facts about snapshots with these fences and verdicts, newest first, with these
    /// set-aside files already in the directory.
    fn facts(snaps: Vec<(u64, SnapshotVerdict)>, corrupt: &[&str]) -> SnapshotFacts {
        let listing = SnapshotListing {
            snapshots: snaps.iter().map(|(f, _)| file(*f)).collect(),
            corrupt_files: corrupt.iter().map(PathBuf::from).collect(),
            ..SnapshotListing::default()
        };
        let mut facts = SnapshotFacts::new(listing);
        facts.verdicts = snaps.into_iter().map(|(_, v)| v).collect();
        facts
    }

    fn log(start: u64, end: u64) -> LogFacts {
        LogFacts {
            log_id: LOG,
            start: Lsn(start),
            end: Lsn(end),
            moved_aside: Vec::new(),
        }
    }

    #[test]
    fn the_newest_snapshot_that_verifies_is_restored_and_older_ones_are_not_listed() {
        let snaps = facts(
            vec![
                (30, SnapshotVerdict::Bad("checksum".into())),
                (20, verified(20, 1)),
                (10, SnapshotVerdict::Unread),
            ],
            &[],
        );
        let (plan, chosen) = plan_data_dir(&snaps, log(1, 40), None, SCHEMAS).unwrap();
        assert_eq!(chosen.unwrap().file, file(20));
        assert_eq!(plan.snapshot.as_ref().unwrap().fence, Lsn(20));
        assert_eq!(plan.replay_from, Lsn(21));
        assert_eq!((plan.log_start, plan.log_end), (Lsn(1), Lsn(40)));
        let [bad] = &plan.rejected_snapshots[..] else {
            panic!("{plan:?}")
        };
        assert_eq!(bad.path, file(30).path);
        // One that does not verify is passed over, not set aside.
        assert!(!bad.is_set_aside() && bad.set_aside.is_none());
    }

    #[test]
    fn a_snapshot_ahead_of_the_log_is_set_aside_under_a_free_name() {
        let taken = "/d/snapshots/00000000000000000030.snap.corrupt";
        let snaps = facts(vec![(30, verified(30, 1)), (20, verified(20, 1))], &[taken]);
        let (plan, chosen) = plan_data_dir(&snaps, log(1, 25), None, SCHEMAS).unwrap();
        assert_eq!(chosen.unwrap().file, file(20));
        let [ahead] = &plan.rejected_snapshots[..] else {
            panic!("{plan:?}")
        };
        assert!(ahead.ahead_of_log && ahead.is_set_aside());
        assert_eq!(
            ahead.set_aside.as_deref(),
            Some(std::path::Path::new(
                "/d/snapshots/00000000000000000030.snap.1.corrupt"
            ))
        );
        // Before the end is known, the first choice takes it to be within the log.
        assert_eq!(first_choice(&snaps, None).unwrap().file, file(30));
    }

    #[test]
    fn one_past_the_target_is_not_considered_unless_it_is_ahead_of_the_log() {
        let snaps = facts(
            vec![
                (50, verified(50, 1)),
                (30, verified(30, 1)),
                (20, verified(20, 1)),
            ],
            &[],
        );
        let (plan, chosen) = plan_data_dir(&snaps, log(1, 40), Some(Lsn(25)), SCHEMAS).unwrap();
        assert_eq!(chosen.unwrap().file, file(20));
        assert_eq!(plan.snapshots_after_target, [file(30).path]);
        let [ahead] = &plan.rejected_snapshots[..] else {
            panic!("{plan:?}")
        };
        assert!(ahead.ahead_of_log && ahead.path == file(50).path);
    }

    #[test]
    fn one_that_failed_to_restore_is_set_aside_and_the_next_is_restored() {
        let snaps = facts(
            vec![
                (30, SnapshotVerdict::RestoreFailed("short body".into())),
                (20, verified(20, 1)),
            ],
            &[],
        );
        let (plan, _) = plan_data_dir(&snaps, log(1, 40), None, SCHEMAS).unwrap();
        let [failed] = &plan.rejected_snapshots[..] else {
            panic!("{plan:?}")
        };
        assert!(failed.restore_failed && failed.reason.contains("short body"));
        assert!(failed.set_aside.is_some());
        assert_eq!(plan.snapshot.unwrap().fence, Lsn(20));
    }

    #[test]
    fn a_log_that_no_longer_holds_what_follows_the_fence_is_refused() {
        let snaps = facts(vec![(30, SnapshotVerdict::Bad("checksum".into()))], &[]);
        let err = plan_data_dir(&snaps, log(11, 40), None, SCHEMAS).unwrap_err();
        let ReplayError::LogTruncated {
            needed,
            oldest,
            reason,
        } = err
        else {
            panic!("{err}")
        };
        assert_eq!((needed, oldest), (Lsn(1), Lsn(11)));
        assert!(reason.contains("no usable snapshot") && reason.contains("checksum"));
        // A log that starts at its first LSN needs no snapshot.
        let (plan, chosen) = plan_data_dir(&snaps, log(1, 40), None, SCHEMAS).unwrap();
        assert!(chosen.is_none() && plan.snapshot.is_none());
        assert_eq!(plan.replay_from, Lsn(1));
    }

    #[test]
    fn a_chosen_snapshot_of_an_event_schema_the_state_machine_does_not_read_is_refused() {
        let snaps = facts(vec![(20, verified(20, 2))], &[]);
        let err = plan_data_dir(&snaps, log(1, 40), None, SCHEMAS).unwrap_err();
        assert!(
            matches!(
                err,
                ReplayError::EventSchema {
                    found: 2,
                    expected: 1,
                    ..
                }
            ),
            "{err}"
        );
    }
}
