//! Recovery: newest valid snapshot, then the committed transactions after its fence.

use crate::error::{ReplayError, Result};
use crate::logscan::{LogFrames, TransactionAssembler, list_segments};
use crate::snapshot::{SnapshotStore, VerifiedSnapshot};
use crate::state::StateMachine;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wal_format::{Bincode, Codec, LogId, Lsn, ScanEnd};
use wal_log::{Options, RecoveryMode, Verdict, Vfs, Wal};

/// Name of the log directory under the data directory.
pub const LOG_DIR: &str = "log";
/// Name of the snapshot directory under the data directory.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// The layout of a data directory: `<root>/log/` holds the log, `<root>/snapshots/` the
/// snapshots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }
    /// The data directory itself.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The log directory.
    #[must_use]
    pub fn log_dir(&self) -> PathBuf {
        self.root.join(LOG_DIR)
    }
    /// The snapshot directory.
    #[must_use]
    pub fn snapshot_dir(&self) -> PathBuf {
        self.root.join(SNAPSHOT_DIR)
    }
    /// The snapshot store of this directory, through `vfs`.
    #[must_use]
    pub fn snapshots(&self, vfs: Arc<dyn Vfs>) -> SnapshotStore {
        SnapshotStore::new(vfs, self.snapshot_dir())
    }
}

/// Options of [`recover`].
#[derive(Clone, Debug, Default)]
pub struct RecoverOptions {
    /// How the log is opened: its file system ([`Options::vfs`], also used for snapshots),
    /// [`Options::recovery`] mode for a damaged tail, whether a missing directory is created,
    /// and the sync policy of the returned log.
    pub wal: Options,
    /// Point-in-time recovery: apply transactions up to and including this LSN only, from the
    /// newest valid snapshot at or before it. `None` replays everything.
    pub target: Option<Lsn>,
    /// The most bytes held for fragments of unfinished large transactions during replay.
    /// `None` uses [`Options::max_transaction_size`] (the largest transaction the log
    /// accepts), so that every transaction the log took can be replayed.
    pub fragment_budget: Option<u64>,
}

impl RecoverOptions {
    /// Sets [`RecoverOptions::wal`].
    #[must_use]
    pub fn wal(mut self, wal: Options) -> Self {
        self.wal = wal;
        self
    }
    /// Sets [`RecoverOptions::target`].
    #[must_use]
    pub fn target(mut self, lsn: Lsn) -> Self {
        self.target = Some(lsn);
        self
    }
    /// Sets [`RecoverOptions::fragment_budget`].
    #[must_use]
    pub fn fragment_budget(mut self, bytes: u64) -> Self {
        self.fragment_budget = Some(bytes);
        self
    }
    fn budget(&self) -> u64 {
        self.fragment_budget
            .unwrap_or(self.wal.max_transaction_size)
    }
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
    /// Why it was passed over.
    pub reason: String,
}

/// Bytes taken out of the log by recovery (or that a read-only replay says would be).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aside {
    /// The segment they came from.
    pub from: PathBuf,
    /// Offset in that segment.
    pub offset: u64,
    /// How many bytes.
    pub bytes: u64,
    /// The file that holds them now (`None` in a read-only report).
    pub to: Option<PathBuf>,
    /// Why.
    pub reason: String,
}

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecoveryReport {
    /// True for [`replay_read_only`]: nothing was changed, the report says what recovery
    /// would do.
    pub read_only: bool,
    /// The log's identity (`None` when there is no log yet).
    pub log_id: Option<LogId>,
    /// A new, empty log was created.
    pub created: bool,
    /// The snapshot the state was restored from; `None` when replay started from an empty
    /// state at the beginning of the log.
    pub snapshot: Option<SnapshotUsed>,
    /// Newer snapshots that were unusable (damaged, half-written, of another log, ahead of
    /// the log), newest first.
    pub rejected_snapshots: Vec<RejectedSnapshot>,
    /// Snapshots newer than [`RecoveryReport::target`], not considered.
    pub snapshots_after_target: Vec<PathBuf>,
    /// The point-in-time target, if any.
    pub target: Option<Lsn>,
    /// The first LSN replay considered (the snapshot's fence + 1).
    pub replay_from: Lsn,
    /// LSN of the first and last transaction applied.
    pub applied_range: Option<(Lsn, Lsn)>,
    /// Committed transactions applied.
    pub applied: u64,
    /// Fragmented transactions skipped because they were aborted (after the fence).
    pub skipped_aborted: u64,
    /// Fragmented transactions skipped because a crash left them unfinished (the log closes
    /// them with an abort frame on open).
    pub skipped_unfinished: u64,
    /// The oldest LSN the log holds.
    pub log_start: Lsn,
    /// The last valid LSN of the log after recovery (before anything recovery appends).
    pub log_end: Lsn,
    /// Bytes of segment files read by the replay.
    pub bytes_replayed: u64,
    /// Bytes moved out of the log, and where.
    pub moved_aside: Vec<Aside>,
    /// Total of [`RecoveryReport::moved_aside`].
    pub bytes_moved_aside: u64,
    /// Time to open (scan and repair) the log.
    pub open_elapsed: Duration,
    /// Time to choose, verify and restore the snapshot.
    pub snapshot_elapsed: Duration,
    /// Time to replay the log.
    pub replay_elapsed: Duration,
    /// Total time.
    pub elapsed: Duration,
}

/// A recovered log and what recovery did.
#[derive(Debug)]
pub struct Recovered {
    /// The open log, positioned after its last valid frame. An engine keeps appending to it.
    /// After a point-in-time recovery the state is behind the log: appending then would make
    /// a log whose replay does not give the state, so use the state read-only or reset the
    /// log yourself.
    pub wal: Wal,
    /// What happened.
    pub report: RecoveryReport,
}

/// Recovers `state` from the data directory at `root` with the default codec
/// ([`Bincode`]): opens the log (which repairs its tail according to
/// [`Options::recovery`]), restores the newest valid snapshot (falling back to older ones),
/// then applies every committed transaction after the snapshot's fence, in LSN order, up to
/// [`RecoverOptions::target`]. Aborted and unfinished transactions are skipped.
///
/// Memory: one segment file and the snapshot reader's buffer, plus at most
/// [`RecoverOptions::fragment_budget`] for large transactions in progress, plus whatever the
/// state holds.
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
    Bincode: Codec<S::Event>,
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
    codec: &dyn Codec<S::Event>,
    opts: RecoverOptions,
) -> Result<Recovered>
where
    S: StateMachine + ?Sized,
{
    let started = Instant::now();
    let data = DataDir::new(root.as_ref());
    let vfs = opts.wal.vfs.clone();
    let _span = tracing::info_span!("replay.recover", root = %data.root().display()).entered();
    match vfs.list(data.root()) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound && !opts.wal.create_if_missing => {
            return Err(ReplayError::NotFound {
                dir: data.root().to_path_buf(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(crate::error::io_err("list", data.root())(e)),
    }
    let store = data.snapshots(vfs.clone());
    let listing = store.list()?;
    let log_dir = data.log_dir();
    let has_segments = match list_segments(&*vfs, &log_dir) {
        Ok(s) => !s.is_empty(),
        Err(ReplayError::NotFound { .. }) => false,
        Err(e) => return Err(e),
    };
    if !has_segments && !listing.snapshots.is_empty() {
        return Err(ReplayError::LogMissing { dir: log_dir });
    }

    let (target, budget) = (opts.target, opts.budget());
    let (wal, open) = Wal::open(&log_dir, opts.wal)?;
    let open_elapsed = started.elapsed();
    let mut report = RecoveryReport {
        log_id: Some(wal.log_id()),
        created: open.created,
        target,
        log_start: open.first_lsn,
        log_end: open.last_lsn,
        skipped_unfinished: open.aborted_streams.len() as u64,
        moved_aside: open
            .moved_aside
            .iter()
            .map(|m| Aside {
                from: m.from.clone(),
                offset: m.offset,
                bytes: m.bytes,
                to: Some(m.to.clone()),
                reason: m.reason.clone(),
            })
            .collect(),
        bytes_moved_aside: open.bytes_moved_aside(),
        open_elapsed,
        ..RecoveryReport::default()
    };

    let t = Instant::now();
    let chosen = choose_snapshot(&store, &listing.snapshots, wal.log_id(), &mut report)?;
    let fence = restore_chosen(&store, chosen.as_ref(), state, &mut report)?;
    report.snapshot_elapsed = t.elapsed();

    let t = Instant::now();
    let mut frames = LogFrames::open(vfs, &log_dir, fence.next())?;
    replay(
        &mut frames,
        state,
        codec,
        fence,
        (target, budget),
        &open.aborted_streams,
        &mut report,
    )?;
    if let Some(end) = frames.end()
        && !matches!(end.end, ScanEnd::Clean { .. })
    {
        // The log was just recovered under our lock: damage now means the disk changed under
        // us or the log is wrong; never report a partial replay as success.
        return Err(ReplayError::Corrupt {
            segment: end.path.clone(),
            offset: end.end.offset() as u64,
            reason: end.end.to_string(),
        });
    }
    report.bytes_replayed = frames.bytes_read;
    report.replay_elapsed = t.elapsed();
    report.elapsed = started.elapsed();
    tracing::info!(
        applied = report.applied,
        fence = fence.0,
        elapsed_ms = report.elapsed.as_millis() as u64,
        "recovered"
    );
    Ok(Recovered { wal, report })
}

/// Replays the data directory into `state` without changing anything on disk: no lock is
/// taken, no file is created, repaired or moved, so it is safe on a live directory or a
/// read-only copy. The report says what [`recover`] would do under
/// `opts.wal.recovery` (which bytes it would move aside, which snapshot it would use, what
/// it would apply). `progress` is called with `(bytes scanned, total)` during the scan that
/// checks the log.
///
/// On a live directory the newest segment may be being written; the scan then sees a torn
/// tail at the write position and stops there.
///
/// # Errors
/// As [`recover`], with [`ReplayError::TornTail`] and [`ReplayError::Corrupt`] for damage the
/// recovery mode would refuse; [`ReplayError::NotFound`] for a missing directory.
pub fn replay_read_only<S>(
    root: impl AsRef<Path>,
    state: &mut S,
    codec: &dyn Codec<S::Event>,
    opts: &RecoverOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RecoveryReport>
where
    S: StateMachine + ?Sized,
{
    let started = Instant::now();
    let data = DataDir::new(root.as_ref());
    let vfs = opts.wal.vfs.clone();
    if let Err(e) = vfs.list(data.root()) {
        if e.kind() == io::ErrorKind::NotFound {
            return Err(ReplayError::NotFound {
                dir: data.root().to_path_buf(),
            });
        }
        return Err(crate::error::io_err("list", data.root())(e));
    }
    let store = data.snapshots(vfs.clone());
    let listing = store.list()?;
    let log_dir = data.log_dir();
    let mut report = RecoveryReport {
        read_only: true,
        target: opts.target,
        ..RecoveryReport::default()
    };
    let segs = match list_segments(&*vfs, &log_dir) {
        Ok(s) => s,
        Err(ReplayError::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    if segs.is_empty() {
        if !listing.snapshots.is_empty() {
            return Err(ReplayError::LogMissing { dir: log_dir });
        }
        report.created = true;
        report.elapsed = started.elapsed();
        return Ok(report);
    }
    let inspection = wal_log::inspect(&*vfs, &log_dir, progress)?;
    report.open_elapsed = started.elapsed();
    report.log_id = inspection.log_id;
    report.log_start = inspection
        .segments
        .first()
        .map_or(Lsn::FIRST, |s| s.first_lsn);
    report.log_end = inspection.last_lsn();
    match inspection.verdict() {
        Verdict::Sound => {}
        Verdict::TornTail {
            segment,
            offset,
            reason,
        } => {
            if opts.wal.recovery == RecoveryMode::Strict {
                return Err(ReplayError::TornTail {
                    segment,
                    offset,
                    reason,
                });
            }
            plan_cut(&inspection, &segment, offset, &reason, false, &mut report);
        }
        Verdict::Corrupt {
            segment,
            offset,
            reason,
        } => {
            let header_of_first = inspection
                .segments
                .first()
                .is_some_and(|s| s.path == segment && s.header.is_none());
            if opts.wal.recovery != RecoveryMode::SalvagePrefix || header_of_first {
                return Err(ReplayError::Corrupt {
                    segment,
                    offset,
                    reason,
                });
            }
            plan_cut(&inspection, &segment, offset, &reason, true, &mut report);
        }
    }
    let Some(log_id) = inspection.log_id else {
        return Err(wal_log::WalError::NotAWal {
            dir: log_dir,
            reason: "no segment with a valid header".into(),
        }
        .into());
    };

    let t = Instant::now();
    let chosen = choose_snapshot(&store, &listing.snapshots, log_id, &mut report)?;
    let fence = restore_chosen(&store, chosen.as_ref(), state, &mut report)?;
    report.snapshot_elapsed = t.elapsed();

    let t = Instant::now();
    let mut frames = LogFrames::open(vfs, &log_dir, fence.next())?;
    let limits = (opts.target, opts.budget());
    let open = replay(&mut frames, state, codec, fence, limits, &[], &mut report)?;
    report.skipped_unfinished = open as u64;
    report.bytes_replayed = frames.bytes_read;
    report.replay_elapsed = t.elapsed();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Records what recovery would move aside for damage at `offset` of `segment`.
fn plan_cut(
    inspection: &wal_log::Inspection,
    segment: &Path,
    offset: u64,
    reason: &str,
    salvage: bool,
    report: &mut RecoveryReport,
) {
    let Some(i) = inspection.segments.iter().position(|s| s.path == segment) else {
        return;
    };
    let s = &inspection.segments[i];
    // Header damage drops the whole segment; otherwise the kept prefix ends at `offset`.
    let whole = offset == 0 && s.header.is_none();
    if whole {
        report.log_end = inspection.segments[..i]
            .last()
            .map_or(Lsn::ZERO, |p| p.last_lsn);
    } else {
        report.log_end = s.last_lsn;
        if s.data_end > offset {
            report.moved_aside.push(Aside {
                from: s.path.clone(),
                offset,
                bytes: s.data_end - offset,
                to: None,
                reason: reason.to_owned(),
            });
        }
    }
    if salvage {
        let from = if whole { i } else { i + 1 };
        for later in &inspection.segments[from..] {
            report.moved_aside.push(Aside {
                from: later.path.clone(),
                offset: 0,
                bytes: later.file_len,
                to: None,
                reason: reason.to_owned(),
            });
        }
    }
    report.bytes_moved_aside = report.moved_aside.iter().map(|a| a.bytes).sum();
}

/// Picks the newest snapshot that verifies, belongs to the log, is not ahead of it, and is
/// at or before the target. Rejections are recorded in the report.
fn choose_snapshot(
    store: &SnapshotStore,
    snapshots: &[crate::snapshot::SnapshotFile],
    log_id: LogId,
    report: &mut RecoveryReport,
) -> Result<Option<VerifiedSnapshot>> {
    for file in snapshots {
        if report.target.is_some_and(|t| file.fence > t) {
            report.snapshots_after_target.push(file.path.clone());
            continue;
        }
        let verified = match store.verify(file, Some(log_id)) {
            Ok(v) => v,
            Err(ReplayError::BadSnapshot { path, reason }) => {
                tracing::warn!(snapshot = %path.display(), %reason, "snapshot rejected");
                report
                    .rejected_snapshots
                    .push(RejectedSnapshot { path, reason });
                continue;
            }
            Err(e) => return Err(e),
        };
        if verified.header.fence > report.log_end {
            report.rejected_snapshots.push(RejectedSnapshot {
                path: file.path.clone(),
                reason: format!(
                    "its fence {} is ahead of the log, which ends at LSN {}",
                    verified.header.fence, report.log_end
                ),
            });
            continue;
        }
        return Ok(Some(verified));
    }
    Ok(None)
}

/// Checks that the log covers replay from the chosen snapshot, then restores it. Returns
/// the fence (ZERO without a snapshot).
fn restore_chosen<S: StateMachine + ?Sized>(
    store: &SnapshotStore,
    chosen: Option<&VerifiedSnapshot>,
    state: &mut S,
    report: &mut RecoveryReport,
) -> Result<Lsn> {
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
    if let Some(c) = chosen {
        store.restore_into(c, state)?;
        report.snapshot = Some(SnapshotUsed {
            path: c.file.path.clone(),
            fence,
            bytes: c.header.body_len,
        });
    }
    Ok(fence)
}

/// Applies every committed transaction after `fence` (up to the target). Returns the number
/// of fragmented transactions still open where the scan ended.
fn replay<S: StateMachine + ?Sized>(
    frames: &mut LogFrames,
    state: &mut S,
    codec: &dyn Codec<S::Event>,
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
            state
                .apply_transaction(&tx, codec)
                .map_err(|source| ReplayError::Apply {
                    lsn: tx.lsn,
                    source,
                })?;
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
        crate::logscan::read_header(vfs, &log_dir.join(wal_log::segment_file_name(*s)))
            .map(|h| h.log_id)
    }))
}
