//! Recovery: newest valid snapshot, then the committed transactions after its fence.
//!
//! Scan -> plan -> execute at the data directory's level: the snapshot is planned here
//! ([`plan`], [`choose_snapshot`]) before the log is opened, the log's own plan is made and
//! executed by `Wal::open`, whose scan the single pass ([`pass`]) rides on, and the snapshot is
//! settled after it. The read-only replay ([`read_only`]) runs the same pass over the same
//! scan without changing anything. The data directory's layout is in [`data_dir`], what
//! recovery takes and reports in [`report`].

mod data_dir;
mod pass;
mod read_only;
mod report;

pub use data_dir::{DataDir, LOG_DIR, SNAPSHOT_DIR};
use pass::{OnePass, PassError, Scanned, Settled};
pub use read_only::{replay_read_only, replay_read_only_with_codec};
pub use report::{
    Progress, RecoverOptions, Recovered, RecoveryReport, RejectedSnapshot, SnapshotUsed,
};

use crate::error::{ReplayError, Result, apply_err, corrupt};
use crate::logscan::{LogFrames, TransactionAssembler, list_segments, read_header, start_index};
use crate::snapshot::{SnapshotFile, SnapshotListing, SnapshotStore, VerifiedSnapshot};
use crate::state::{StateMachine, apply_at_schema};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wal_format::scan::ScanEnd;
use wal_format::{Bincode, Decoder, LogId, Lsn, SegmentHeader, SegmentSeq};
use wal_log::layout::segment_file_name;
use wal_log::{OpenReport, Options, Vfs, VisitError, Wal};

/// Recovers `state` from the data directory at `root` with the default codec
/// ([`Bincode`]): chooses the newest valid snapshot (falling back to older ones), then
/// opens the log (which repairs its tail according to [`Options::recovery`]) and, during
/// the open's verifying scan, applies every committed transaction after the snapshot's
/// fence, in LSN order, up to [`RecoverOptions::target`]. Aborted and unfinished
/// transactions are skipped.
///
/// The log is read once: the snapshot is chosen from the log's id and first LSN (its first
/// segment's header) before the log is read, and is restored just before the first
/// transaction after its fence is applied (or after the scan, when there is none), so a
/// snapshot that turns out to be ahead of the log (the log lost its end) is never restored:
/// the next older one is chosen, and only then is the log read a second time, from that
/// snapshot's fence.
///
/// Memory: one read buffer (1 MiB, grown only to fit one frame of up to 4 MiB) and the
/// snapshot reader's buffer, plus at most [`RecoverOptions::fragment_budget`] for each large
/// transaction in progress (those written at the same time are held together), plus
/// whatever the state holds.
///
/// On error `state` may hold part of the log (transactions are applied as the scan verifies
/// them, before the open has checked the whole log): discard it.
///
/// `state` must be fresh: it is used as is when no snapshot applies.
///
/// # Errors
/// [`ReplayError::Wal`] when the log cannot be opened (locked, damaged beyond the recovery
/// mode, not a log); [`ReplayError::LogMissing`] for snapshots without a log;
/// [`ReplayError::LogTruncated`] when no snapshot covers the start of the retained log;
/// [`ReplayError::Restore`] or [`ReplayError::Apply`] from the state machine;
/// [`ReplayError::FragmentBudget`].
pub fn recover<S>(root: impl AsRef<Path>, state: &mut S, opts: RecoverOptions) -> Result<Recovered>
where
    S: StateMachine + ?Sized,
    Bincode: Decoder<S::Event>,
{
    recover_with_codec(root, state, &Bincode, opts)
}

/// [`recover`] with a codec of your choice.
///
/// # Errors
/// As [`recover`].
pub fn recover_with_codec<S>(
    root: impl AsRef<Path>,
    state: &mut S,
    codec: &dyn Decoder<S::Event>,
    opts: RecoverOptions,
) -> Result<Recovered>
where
    S: StateMachine + ?Sized,
{
    let started = Instant::now();
    let data = DataDir::new(root.as_ref());
    let vfs = opts.wal.vfs.clone();
    let _span = tracing::info_span!("replay.recover", root = %data.root().display()).entered();
    let Found {
        store,
        listing,
        log_dir,
        segments: _,
    } = Found::look(&data, &vfs, opts.wal.create_if_missing)?;

    let (target, budget) = (opts.target, opts.budget());
    let wal_opts = opts.wal;
    let mut attempts = 0;
    let mut listing = listing;
    loop {
        if attempts > 0 {
            // What changed the log may have changed the snapshots too.
            listing = store.list()?;
        }
        let mut report = RecoveryReport {
            target,
            ..RecoveryReport::default()
        };
        let schemas = Schemas::of::<S>();
        let snaps = (&store, &listing.snapshots[..]);
        let plan = plan(snaps, &*vfs, &log_dir, schemas, &mut report)?;
        let mut log_opts = schemas.wal_options(&wal_opts, &plan.older_schemas);
        // The open reads the log once and tells how far it has come.
        log_opts.progress = opts.progress.clone();
        let mut pass = OnePass::new(
            state,
            codec,
            (&store, &listing.snapshots),
            plan,
            (target, budget),
        );
        let opened = Wal::open_visit(&log_dir, log_opts, &mut pass);
        let (wal, open) = match opened {
            Ok(x) => x,
            // The log's first segment changed between planning and the open taking the lock
            // (a checkpoint truncated it, say): nothing was applied yet; plan again.
            Err(e) => {
                plan_again_or_fail(e, &mut attempts, &log_dir, "recovery")?;
                continue;
            }
        };
        let scanned = report.opened(&wal, &open);
        let set_aside_early = pass.set_aside_early.clone();
        if let Settled::ReplayFrom(second) =
            pass.settle(scanned, &listing.snapshots, &mut report)?
        {
            replay_again(
                &vfs,
                &log_dir,
                state,
                codec,
                second,
                (target, budget),
                &open,
                &mut report,
            )?;
        }
        report_ahead_of_log(
            &mut report,
            set_aside_early
                .into_iter()
                .map(|(file, to)| (file, Some(to))),
        );
        set_aside_ahead_of_log(&store, &mut report)?;
        report.elapsed = started.elapsed();
        tracing::info!(
            applied = report.applied,
            fence = report.replay_from.prev().0,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "recovered"
        );
        return Ok(Recovered { wal, report });
    }
}

impl RecoveryReport {
    /// What the log's open found and did, into the report; and what it read.
    fn opened(&mut self, wal: &Wal, open: &OpenReport) -> Scanned {
        self.log_id = Some(wal.log_id());
        self.created = open.created;
        self.log_start = open.first_lsn;
        self.log_end = open.last_lsn;
        self.skipped_unfinished = open.aborted_streams.len() as u64;
        self.moved_aside = open.moved_aside.clone();
        self.bytes_moved_aside = open.bytes_moved_aside();
        self.open_elapsed = open.elapsed.saturating_sub(open.scan_elapsed);
        Scanned {
            log_id: wal.log_id(),
            elapsed: open.scan_elapsed,
            bytes: open.bytes_scanned,
        }
    }
}

/// Renames every snapshot found ahead of the log aside, before the log is handed back to take
/// new commits: those get the LSNs the snapshot's state already covers with other
/// transactions, and once the log has grown past its fence nothing could tell it apart from a
/// usable snapshot. Also renames those that failed to restore (the state was recovered from
/// an older one): they verify, so a later recovery or checkpoint would take them for usable.
fn set_aside_ahead_of_log(store: &SnapshotStore, report: &mut RecoveryReport) -> Result<()> {
    let mut renamed = false;
    for r in report
        .rejected_snapshots
        .iter_mut()
        .filter(|r| r.is_set_aside() && r.set_aside.is_none())
    {
        tracing::warn!(snapshot = %r.path.display(), reason = %r.reason, "setting a rejected snapshot aside");
        r.set_aside = Some(store.set_aside(&r.path)?);
        renamed = true;
    }
    if renamed {
        store.sync()?;
    }
    Ok(())
}

/// For a read-only replay: names where recovery would rename each snapshot it sets aside
/// (the names [`set_aside_ahead_of_log`] gives; nothing is renamed).
fn name_set_aside(store: &SnapshotStore, report: &mut RecoveryReport) -> Result<()> {
    for r in report
        .rejected_snapshots
        .iter_mut()
        .filter(|r| r.is_set_aside() && r.set_aside.is_none())
    {
        r.set_aside = Some(store.aside_name(&r.path)?);
    }
    Ok(())
}

/// The fallback's second read: replays the log from `fence` on (after the open, so the log
/// also holds the abort frames the open wrote).
#[allow(clippy::too_many_arguments)]
fn replay_again<S: StateMachine + ?Sized>(
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

/// What is decided before the log is read: the snapshot to start from, chosen from the log's
/// id and first LSN, both in the header of its first segment.
struct Plan {
    /// The first segment's header as read before the open; `None` when there is no segment
    /// (the open creates the log) or its header does not decode (the open fails).
    first: Option<SegmentHeader>,
    /// Where in the listing the search for a snapshot goes on if the chosen one turns out to
    /// be ahead of the log.
    next: usize,
    chosen: Option<VerifiedSnapshot>,
    /// Whether the log covers replay from the chosen snapshot: its fence, or
    /// [`ReplayError::LogTruncated`], reported only once the log has opened (the log's own
    /// errors come first, as they always have).
    covered: Result<Lsn>,
    /// Frames of segments before this one are not needed to replay from the fence.
    start: SegmentSeq,
    /// The older event schemas the log's segments hold (all read by the state machine): the
    /// log is opened to accept them.
    older_schemas: Vec<u32>,
    /// Time spent choosing.
    elapsed: Duration,
}

/// The event schemas of a state machine: its own, and which it reads.
#[derive(Clone, Copy)]
struct Schemas {
    own: u32,
    reads: fn(u32) -> bool,
}

impl Schemas {
    fn of<S: StateMachine + ?Sized>() -> Schemas {
        Schemas {
            own: S::EVENT_SCHEMA,
            reads: S::reads_event_schema,
        }
    }

    /// Refuses `file`, holding events of schema `found`, unless the state machine reads it.
    fn check(self, file: &Path, found: u32) -> Result<()> {
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
    /// accepts the older ones the plan found (and refuses any other that appeared since).
    fn wal_options(self, opts: &Options, older: &[u32]) -> Options {
        opts.clone()
            .payload_schema(self.own)
            .upgrade_payload_schemas(older.iter().copied())
    }
}

/// What the entry points find before they plan: the directory is a data directory (or may
/// be created), its snapshots, and its log's segments.
struct Found {
    store: SnapshotStore,
    listing: SnapshotListing,
    log_dir: PathBuf,
    segments: Vec<SegmentSeq>,
}

impl Found {
    /// Lists the data directory `data`. A missing root is `NotFound` unless it may be
    /// created; a log directory (or snapshot directory) passed as the root is refused; so are
    /// snapshots without a log (`LogMissing`).
    fn look(data: &DataDir, vfs: &Arc<dyn Vfs>, may_create: bool) -> Result<Found> {
        match vfs.list(data.root()) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound && may_create => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ReplayError::NotFound {
                    dir: data.root().to_path_buf(),
                });
            }
            Err(e) => return Err(crate::error::io_err("list", data.root())(e)),
        }
        data.check_not_a_log_dir(&**vfs)?;
        let store = data.snapshots(vfs.clone());
        let listing = store.list()?;
        let log_dir = data.log_dir();
        let segments = match list_segments(&**vfs, &log_dir) {
            Ok(s) => s,
            Err(ReplayError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        if segments.is_empty() && !listing.snapshots.is_empty() {
            return Err(ReplayError::LogMissing { dir: log_dir });
        }
        Ok(Found {
            store,
            listing,
            log_dir,
            segments,
        })
    }
}

/// Reads the segments' headers (the first for the log's id and first LSN; all for their event
/// schemas, which the state machine must read), chooses the snapshot (whose schema it must
/// read too) and checks that the log covers it.
fn plan(
    (store, snapshots): (&SnapshotStore, &[SnapshotFile]),
    vfs: &dyn Vfs,
    log_dir: &Path,
    schemas: Schemas,
    report: &mut RecoveryReport,
) -> Result<Plan> {
    let t = Instant::now();
    let segs = match list_segments(vfs, log_dir) {
        Ok(s) => s,
        Err(ReplayError::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut first = None;
    let mut older_schemas = Vec::new();
    for (i, seq) in segs.iter().enumerate() {
        let path = log_dir.join(segment_file_name(*seq));
        let Some(h) = read_header(vfs, &path) else {
            continue;
        };
        if i == 0 {
            first = Some(h);
        }
        schemas.check(&path, h.payload_schema)?;
        if h.payload_schema != schemas.own && !older_schemas.contains(&h.payload_schema) {
            older_schemas.push(h.payload_schema);
        }
    }
    let Some(h) = first else {
        return Ok(Plan {
            first: None,
            next: 0,
            chosen: None,
            covered: Ok(Lsn::ZERO),
            start: SegmentSeq(0),
            older_schemas,
            elapsed: t.elapsed(),
        });
    };
    report.log_start = h.base_lsn;
    let (next, chosen) = choose_snapshot(store, snapshots, (0, &[]), h.log_id, None, report)?;
    if let Some(c) = &chosen {
        schemas.check(&c.file.path, c.header.event_schema)?;
    }
    let covered = check_covered(chosen.as_ref(), report);
    let fence = chosen.as_ref().map_or(Lsn::ZERO, |c| c.header.fence);
    let start = segs[start_index(vfs, log_dir, &segs, fence.next())];
    Ok(Plan {
        first,
        next,
        chosen,
        covered,
        start,
        older_schemas,
        elapsed: t.elapsed(),
    })
}

/// After the single pass stopped the open (or the read-only scan) with `e`: returns `Ok` to plan
/// again when the log's first segment is no longer the one planned from (nothing was applied
/// yet), up to three times; else the error (`during` says what kept being disturbed).
fn plan_again_or_fail(
    e: VisitError<PassError>,
    attempts: &mut u32,
    log_dir: &Path,
    during: &str,
) -> Result<()> {
    match e {
        VisitError::Wal(e) => Err(e.into()),
        VisitError::Visitor(PassError::Replay(e)) => Err(e),
        VisitError::Visitor(PassError::Changed) if *attempts < 3 => {
            *attempts += 1;
            Ok(())
        }
        VisitError::Visitor(PassError::Changed) => Err(corrupt(
            log_dir,
            0,
            format!("the log's first segment kept changing during {during}"),
        )),
    }
}

/// Picks the newest snapshot, from index `from` of the listing on, that verifies, belongs to
/// the log, is at or before the target, and, when the log's end is known, is not ahead of
/// it. Rejections are recorded in the report. Returns the index after the one chosen.
fn choose_snapshot(
    store: &SnapshotStore,
    snapshots: &[SnapshotFile],
    (from, set_aside_early): (usize, &[(SnapshotFile, PathBuf)]),
    log_id: LogId,
    log_end: Option<Lsn>,
    report: &mut RecoveryReport,
) -> Result<(usize, Option<VerifiedSnapshot>)> {
    for (i, file) in snapshots.iter().enumerate().skip(from) {
        if let (Some(to), Some(end)) = (set_aside_to(set_aside_early, &file.path), log_end) {
            report
                .rejected_snapshots
                .push(RejectedSnapshot::past_the_end(file, end, Some(to)));
            continue;
        }
        if report.target.is_some_and(|t| file.fence > t) {
            report.snapshots_after_target.push(file.path.clone());
            continue;
        }
        let verified = match store.verify(file, Some(log_id)) {
            Ok(v) => v,
            Err(ReplayError::BadSnapshot { path, reason }) => {
                tracing::warn!(snapshot = %path.display(), %reason, "snapshot rejected");
                report.rejected_snapshots.push(RejectedSnapshot {
                    path,
                    reason,
                    ahead_of_log: false,
                    restore_failed: false,
                    set_aside: None,
                });
                continue;
            }
            // Pruned by a live engine since the listing (read-only replay): not usable, and
            // not damaged either.
            Err(ReplayError::SnapshotGone { .. }) => continue,
            Err(e) => return Err(e),
        };
        if let Some(end) = log_end
            && verified.header.fence > end
        {
            report
                .rejected_snapshots
                .push(RejectedSnapshot::past_the_end(file, end, None));
            continue;
        }
        return Ok((i + 1, Some(verified)));
    }
    Ok((snapshots.len(), None))
}

/// Lists the snapshots ahead of the log (with where each went, if it was set aside) that the
/// report does not name yet: those past a point-in-time target, which recovery never
/// considers but sets aside all the same (the log will reuse their LSNs).
fn report_ahead_of_log(
    report: &mut RecoveryReport,
    ahead: impl IntoIterator<Item = (SnapshotFile, Option<PathBuf>)>,
) {
    for (file, set_aside) in ahead {
        if report
            .rejected_snapshots
            .iter()
            .any(|r| r.path == file.path)
        {
            continue;
        }
        report.snapshots_after_target.retain(|p| *p != file.path);
        let rejected = RejectedSnapshot::past_the_end(&file, report.log_end, set_aside);
        report.rejected_snapshots.push(rejected);
    }
}

/// Where `path` went, if it was set aside early.
fn set_aside_to(set_aside_early: &[(SnapshotFile, PathBuf)], path: &Path) -> Option<PathBuf> {
    set_aside_early
        .iter()
        .find(|(from, _)| from.path == path)
        .map(|(_, to)| to.clone())
}

/// Checks that the log (starting at `report.log_start`) covers replay from the chosen
/// snapshot. Returns its fence (ZERO without a snapshot).
fn check_covered(chosen: Option<&VerifiedSnapshot>, report: &mut RecoveryReport) -> Result<Lsn> {
    let fence = chosen.map_or(Lsn::ZERO, |c| c.header.fence);
    report.replay_from = fence.next();
    if fence.next() < report.log_start {
        let reason = match chosen {
            Some(c) => format!(
                "snapshot {} (fence {fence}) is the newest usable one",
                c.file.path.display()
            ),
            None if report.rejected_snapshots.is_empty()
                && !report.snapshots_after_target.is_empty() =>
            {
                "every snapshot is after the target".into()
            }
            None if report.rejected_snapshots.is_empty() => "there is no snapshot".into(),
            None => format!(
                "no usable snapshot: {}",
                report
                    .rejected_snapshots
                    .iter()
                    .map(|r| format!("{}: {}", r.path.display(), r.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        return Err(ReplayError::LogTruncated {
            needed: fence.next(),
            oldest: report.log_start,
            reason,
        });
    }
    Ok(fence)
}

/// Applies every committed transaction after `fence` (up to the target). Returns the number
/// of fragmented transactions still open where the scan ended.
fn replay<S: StateMachine + ?Sized>(
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
    Ok(asm.open_streams())
}

/// The log id of the log in `log_dir`, read from its first segment's header without
/// changing anything; `None` when there is no segment or its header does not decode.
///
/// # Errors
/// [`ReplayError::NotFound`], [`wal_log::WalError::NotAWal`], or an I/O error listing.
pub fn read_log_id(vfs: &dyn Vfs, log_dir: &Path) -> Result<Option<LogId>> {
    let segs = list_segments(vfs, log_dir)?;
    Ok(segs.first().and_then(|s| {
        crate::logscan::read_header(vfs, &log_dir.join(wal_log::layout::segment_file_name(*s)))
            .map(|h| h.log_id)
    }))
}
