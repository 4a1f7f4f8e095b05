//! Recovery: newest valid snapshot, then the committed transactions after its fence.

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
use wal_log::inspect::DirFrame;
use wal_log::layout::segment_file_name;
use wal_log::{MovedAside, OpenReport, Options, RecoveryMode, ScanVisitor, Vfs, VisitError, Wal};

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
    /// Refuses a root that is a log directory itself (it holds segment files, the log's lock
    /// or its other files): recovering there would create `<root>/log` beside the user's log
    /// and silently start empty. A root that does not exist or cannot be listed passes: the
    /// caller reports that in its own words.
    ///
    /// # Errors
    /// [`ReplayError::NotADataDir`].
    pub fn check_not_a_log_dir(&self, vfs: &dyn Vfs) -> Result<()> {
        let Ok(names) = vfs.list(&self.root) else {
            return Ok(());
        };
        // A log directory cannot hold a `log` entry (it would not open): with one, this is a
        // data directory, whatever else lies beside it.
        if names.iter().any(|n| n == LOG_DIR) {
            return Ok(());
        }
        // A snapshot directory passed as the data directory would get a new, empty log.
        if let Some(name) = names.iter().find(|n| {
            n.ends_with(".snap") || n.ends_with(".snap.tmp") || n.ends_with(".snap.corrupt")
        }) {
            return Err(ReplayError::NotADataDir {
                dir: self.root.clone(),
                reason: format!(
                    "it holds {name}, a snapshot file: it looks like the snapshot directory; pass its parent, the data directory that holds {LOG_DIR}/ and {SNAPSHOT_DIR}/"
                ),
            });
        }
        let log_file = names.iter().find(|n| {
            // A lone `LOCK` proves nothing (an engine may keep its own lock there).
            !matches!(
                wal_log::layout::classify(n),
                wal_log::layout::Entry::Foreign
                    | wal_log::layout::Entry::Lock
                    | wal_log::layout::Entry::Ignored
            )
        });
        match log_file {
            None => Ok(()),
            Some(name) => Err(ReplayError::NotADataDir {
                dir: self.root.clone(),
                reason: format!(
                    "it holds {name}, a file of a log directory: it looks like a log directory itself; pass its parent, the data directory that holds {LOG_DIR}/ and {SNAPSHOT_DIR}/"
                ),
            }),
        }
    }

    /// Refuses a log that is not this data directory's own `log/` (a checkpoint would
    /// otherwise write snapshots where recovery never looks, or into the log directory).
    ///
    /// # Errors
    /// [`ReplayError::NotADataDir`].
    pub fn check_owns_log(&self, wal_dir: &Path) -> Result<()> {
        let want = self.log_dir();
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        };
        if same(wal_dir, &want) {
            return Ok(());
        }
        Err(ReplayError::NotADataDir {
            dir: self.root.clone(),
            reason: format!(
                "the log is at {}, not at {}: open the log with wal_replay::recover (or Wal::open on <root>/{LOG_DIR})",
                wal_dir.display(),
                want.display()
            ),
        })
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
    /// The most bytes held for the fragments of one unfinished large transaction during
    /// replay. `None` uses [`Options::max_transaction_size`] (the largest transaction the log
    /// accepts), so that every transaction the log took can be replayed. Large transactions
    /// that were written at the same time are held at the same time, each within the budget.
    pub fragment_budget: Option<u64>,
    /// Told `(bytes scanned, total bytes)` while the log is read, for a progress bar on a
    /// long recovery. `None` (the default) reports nothing.
    pub progress: Option<Progress>,
}

/// A progress callback: `(bytes scanned, total bytes)` of the log's segment files. Called
/// from the recovering thread, after each segment (and more often by the read-only replay).
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(u64, u64) + Send + Sync>);

impl Progress {
    /// Wraps `f`.
    pub fn new(f: impl Fn(u64, u64) + Send + Sync + 'static) -> Progress {
        Progress(Arc::new(f))
    }

    pub(crate) fn report(&self, done: u64, total: u64) {
        (self.0)(done, total);
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

impl RecoverOptions {
    /// Sets [`RecoverOptions::progress`].
    #[must_use]
    pub fn on_progress(mut self, f: impl Fn(u64, u64) + Send + Sync + 'static) -> Self {
        self.progress = Some(Progress::new(f));
        self
    }
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
    /// Its fence is past the end of the log (the log lost transactions the snapshot holds,
    /// for example to a salvage). Such a snapshot can never be used again: the log's next
    /// LSNs go to new commits that its state does not hold.
    pub ahead_of_log: bool,
    /// It verified, but the state machine failed to restore it: [`StateMachine::restore`]
    /// returned an error, or left body bytes unread (a snapshot its writer cut short, a state
    /// format this build does not read). Recovery sets it aside and falls back to an older
    /// snapshot, as for one ahead of the log.
    pub restore_failed: bool,
    /// Where recovery renamed it (`<name>.corrupt`, kept, never read): a snapshot ahead of
    /// the log is set aside before the log takes new commits, so that no later recovery
    /// restores it once the log has grown past its fence; one that failed to restore, so that
    /// no later recovery or checkpoint takes it for a usable one
    /// ([`RejectedSnapshot::is_set_aside`]). `None` for other rejections. In a read-only
    /// replay, where recovery would rename it (the same name; nothing is renamed, so no such
    /// file exists), as [`RecoveryReport::moved_aside`] names the log's files.
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
    fn past_the_end(file: &SnapshotFile, log_end: Lsn, set_aside: Option<PathBuf>) -> Self {
        RejectedSnapshot {
            path: file.path.clone(),
            reason: format!(
                "its fence {} is ahead of the log, which ends at LSN {log_end}",
                file.fence
            ),
            ahead_of_log: true,
            restore_failed: false,
            set_aside,
        }
    }

    /// `file`, which verified but failed to restore with `error` (a
    /// [`ReplayError::Restore`]). Recovery renames it once it has recovered from an older one.
    fn restore_failed(file: &SnapshotFile, error: &ReplayError) -> Self {
        let cause = match error {
            ReplayError::Restore { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        RejectedSnapshot {
            path: file.path.clone(),
            reason: format!("restoring it failed: {cause}"),
            ahead_of_log: false,
            restore_failed: true,
            set_aside: None,
        }
    }
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
    /// the log, failing to restore), newest first.
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
    /// Bytes of segment files read: by the single pass that verifies the log and replays it
    /// (every segment once, preallocated space included), plus those of a second replay in
    /// the rare case that needs one (see [`RecoveryReport::replay_elapsed`]).
    pub bytes_replayed: u64,
    /// Bytes moved out of the log, and where: the log's own record of it, whichever entry
    /// point found the damage. For [`replay_read_only`], what recovery would move and the
    /// files it would move it to (nothing is moved: those files do not exist).
    pub moved_aside: Vec<MovedAside>,
    /// Total of [`RecoveryReport::moved_aside`].
    pub bytes_moved_aside: u64,
    /// Time to open the log besides reading it: locking, listing, repairing the tail and
    /// making what was found durable (for [`replay_read_only`]: listing the log and reading its
    /// first header). The read of the log itself is in [`RecoveryReport::replay_elapsed`].
    pub open_elapsed: Duration,
    /// Time to choose, verify and restore the snapshot.
    pub snapshot_elapsed: Duration,
    /// Time of the single pass over the log: every frame read and verified (the scan
    /// `Wal::open` recovers from) and every committed transaction after the fence applied as
    /// it is verified; snapshot restoring, which may happen during the pass, is not counted
    /// here. When the chosen snapshot turns out to be ahead of the log (the log lost its end),
    /// the state is untouched at that point, an older snapshot is chosen and the log is replayed
    /// from its fence in a second read, also counted here.
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
        segments,
    } = Found::look(&data, &vfs, opts.wal.create_if_missing)?;
    let progress = opts
        .progress
        .clone()
        .map(|p| SegmentProgress::new(p, &*vfs, &log_dir, &segments));

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
        let log_opts = schemas.wal_options(&wal_opts, &plan.older_schemas);
        let mut pass = OnePass::new(
            state,
            codec,
            (&store, &listing.snapshots),
            plan,
            (target, budget),
        );
        pass.progress = progress.clone();
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
        if let Some(p) = &progress {
            p.report.report(p.total, p.total);
        }
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

/// Why the single pass stopped the open.
enum PassError {
    /// Replay failed: the state machine, the fragment budget, the snapshot restore.
    Replay(ReplayError),
    /// The first segment is not the one the plan was made from.
    Changed,
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

impl From<ReplayError> for PassError {
    fn from(e: ReplayError) -> Self {
        PassError::Replay(e)
    }
}

/// What the log's open reported about its scan.
#[derive(Clone, Copy)]
struct Scanned {
    log_id: LogId,
    elapsed: Duration,
    bytes: u64,
}

/// The visitor of the single pass: assembles transactions from the frames the open's scan
/// verifies and applies those after the fence, up to the target, restoring the snapshot just
/// before the first one.
struct OnePass<'a, S: StateMachine + ?Sized> {
    state: &'a mut S,
    codec: &'a dyn Decoder<S::Event>,
    store: &'a SnapshotStore,
    /// The store's listing the plan was made from, newest first.
    snapshots: &'a [SnapshotFile],
    plan: Plan,
    asm: TransactionAssembler,
    target: Lsn,
    /// False when nothing may be applied: no plan, or the log does not cover the snapshot.
    enabled: bool,
    /// Segments seen so far (the first is checked against the plan).
    segments: u64,
    restored: bool,
    restore_elapsed: Duration,
    applied: u64,
    first: Option<Lsn>,
    last: Lsn,
    /// Snapshots ahead of the recovered log, set aside before the open appended anything
    /// (`ScanVisitor::recovered`), and where each went.
    set_aside_early: Vec<(SnapshotFile, PathBuf)>,
    /// The chosen snapshot failed to restore ([`ReplayError::Restore`]): nothing more is
    /// applied, and `settle` sets it aside and falls back to an older one.
    restore_failed: Option<ReplayError>,
    /// The event schema of the segment being scanned: its transactions were written under it.
    schema: u32,
    /// Reported as each segment starts (the writing recovery; the read-only one reports
    /// through its scan).
    progress: Option<SegmentProgress>,
}

/// Progress of the writing recovery, by whole segment files.
#[derive(Clone, Debug)]
struct SegmentProgress {
    report: Progress,
    sizes: Vec<u64>,
    total: u64,
}

impl SegmentProgress {
    /// Sizes the segment files (best effort: one that cannot be sized counts as empty; the
    /// open reports the real error).
    fn new(report: Progress, vfs: &dyn Vfs, dir: &Path, segs: &[SegmentSeq]) -> Self {
        let sizes: Vec<u64> = segs
            .iter()
            .map(|s| {
                vfs.open(&dir.join(segment_file_name(*s)), wal_log::OpenMode::Read)
                    .and_then(|f| f.len())
                    .unwrap_or(0)
            })
            .collect();
        let total = sizes.iter().sum();
        SegmentProgress {
            report,
            sizes,
            total,
        }
    }

    /// The `n`th segment (from 1) starts.
    fn segment(&self, n: u64) {
        let done = self.sizes.iter().take(n.saturating_sub(1) as usize).sum();
        self.report.report(done, self.total);
    }
}

impl<'a, S: StateMachine + ?Sized> OnePass<'a, S> {
    fn new(
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
            progress: None,
        }
    }

    /// Restores the chosen snapshot, once. A restore that fails ([`ReplayError::Restore`]) is
    /// kept in `restore_failed` and stops the pass from applying anything (the state holds
    /// part of a snapshot): `settle` then falls back to an older snapshot.
    fn restore(&mut self) -> Result<()> {
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
    /// snapshot, so falling back to none resets it ([`StateMachine::reset`]; when the state
    /// cannot reset, the first restore error is returned, saying so). Returns the fence to
    /// replay the log from.
    fn restore_fallback(
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
    fn settle(
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
    fn done(self, fence: Lsn, report: &mut RecoveryReport) -> Settled {
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
    fn fall_back(
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
enum Settled {
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
        if let Some(p) = &self.progress {
            p.segment(self.segments);
        }
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

/// Replays the data directory into `state` without changing anything on disk: no lock is
/// taken, no file is created, repaired or moved, so it is safe on a live directory or a
/// read-only copy. The report says what [`recover`] would do under
/// `opts.wal.recovery` (which bytes it would move aside, which snapshot it would use, what
/// it would apply). [`RecoverOptions::progress`] is told `(bytes scanned, total)` during the
/// scan that checks the log.
///
/// Events are decoded with [`Bincode`], which needs only `Deserialize` on the event type (a
/// tool that reads an engine's log does not need to encode its events).
///
/// On a live directory the newest segment may be being written; the scan then sees a torn
/// tail at the write position and stops there.
///
/// # Errors
/// As [`recover`]: damage the recovery mode would refuse is the same
/// [`ReplayError::Wal`] ([`wal_log::WalError::Corrupt`] or [`wal_log::WalError::TornTail`])
/// recovery returns; [`ReplayError::NotFound`] for a missing directory.
pub fn replay_read_only<S>(
    root: impl AsRef<Path>,
    state: &mut S,
    opts: RecoverOptions,
) -> Result<RecoveryReport>
where
    S: StateMachine + ?Sized,
    Bincode: Decoder<S::Event>,
{
    replay_read_only_with_codec(root, state, &Bincode, opts)
}

/// [`replay_read_only`] with a decoder of your choice.
///
/// # Errors
/// As [`replay_read_only`].
pub fn replay_read_only_with_codec<S>(
    root: impl AsRef<Path>,
    state: &mut S,
    codec: &dyn Decoder<S::Event>,
    opts: RecoverOptions,
) -> Result<RecoveryReport>
where
    S: StateMachine + ?Sized,
{
    let started = Instant::now();
    let data = DataDir::new(root.as_ref());
    let budget = opts.budget();
    let RecoverOptions {
        wal: wal_opts,
        target,
        progress,
        ..
    } = opts;
    let vfs = wal_opts.vfs.clone();
    let Found {
        store,
        listing,
        log_dir,
        segments,
    } = Found::look(&data, &vfs, false)?;
    if segments.is_empty() {
        let report = RecoveryReport {
            read_only: true,
            target,
            created: true,
            elapsed: started.elapsed(),
            ..RecoveryReport::default()
        };
        return Ok(report);
    }
    let mut attempts = 0;
    let mut listing = listing;
    loop {
        if attempts > 0 {
            listing = store.list()?;
        }
        let mut report = RecoveryReport {
            read_only: true,
            target,
            ..RecoveryReport::default()
        };
        let snaps = (&store, &listing.snapshots[..]);
        let plan = plan(snaps, &*vfs, &log_dir, Schemas::of::<S>(), &mut report)?;
        let mut pass = OnePass::new(
            state,
            codec,
            (&store, &listing.snapshots),
            plan,
            (target, budget),
        );
        let t = Instant::now();
        let mut progress = |done, total| {
            if let Some(p) = &progress {
                p.report(done, total);
            }
        };
        let inspection =
            match wal_log::inspect::inspect_visit(&*vfs, &log_dir, &mut progress, &mut pass) {
                Ok(i) => i,
                // The first segment changed since it was planned from (a live directory):
                // nothing was applied yet; plan again.
                Err(e) => {
                    plan_again_or_fail(e, &mut attempts, &log_dir, "the replay")?;
                    continue;
                }
            };
        let scanned = read_only_verdict(&inspection, wal_opts.recovery, &log_dir, &mut report)?;
        let log_id = scanned.log_id;
        let scanned = Scanned {
            elapsed: t.elapsed(),
            ..scanned
        };
        // What recovery would set aside, also those it never considers (past a target).
        let ahead = store.ahead_of(&listing.snapshots, log_id, report.log_end)?;
        match pass.settle(scanned, &listing.snapshots, &mut report)? {
            Settled::Done { open_streams } => report.skipped_unfinished = open_streams as u64,
            Settled::ReplayFrom(fence) => {
                let t = Instant::now();
                let mut frames = LogFrames::open(vfs.clone(), &log_dir, fence.next())?;
                let limits = (target, budget);
                let open = replay(&mut frames, state, codec, fence, limits, &[], &mut report)?;
                report.skipped_unfinished = open as u64;
                report.bytes_replayed += frames.bytes_read;
                report.replay_elapsed += t.elapsed();
            }
        }
        report_ahead_of_log(&mut report, ahead.into_iter().map(|s| (s, None)));
        name_set_aside(&store, &mut report)?;
        report.elapsed = started.elapsed();
        return Ok(report);
    }
}

/// What a read-only scan found, into the report (the log's range, the verdict of
/// [`judge`]), and what it read.
fn read_only_verdict(
    inspection: &wal_log::inspect::Inspection,
    mode: RecoveryMode,
    log_dir: &Path,
    report: &mut RecoveryReport,
) -> Result<Scanned> {
    report.log_id = inspection.log_id;
    report.log_start = inspection
        .segments
        .first()
        .map_or(Lsn::FIRST, |s| s.first_lsn);
    report.log_end = inspection.last_lsn();
    judge(inspection, mode, report)?;
    let Some(log_id) = inspection.log_id else {
        return Err(wal_log::WalError::NotAWal {
            dir: log_dir.to_path_buf(),
            reason: "no segment with a valid header".into(),
        }
        .into());
    };
    // Every segment up to the first damage was read; later ones only for their headers.
    let mut bytes = 0;
    for s in &inspection.segments {
        bytes += s.file_len;
        if !matches!(s.end, ScanEnd::Clean { .. }) {
            break;
        }
    }
    Ok(Scanned {
        log_id,
        elapsed: Duration::ZERO,
        bytes,
    })
}

/// Applies the verdict of a read-only scan as recovery would (`Inspection::recovery_plan`): an
/// error for damage the recovery mode refuses, else the record of what it would move aside
/// and where the kept log would end.
fn judge(
    inspection: &wal_log::inspect::Inspection,
    mode: RecoveryMode,
    report: &mut RecoveryReport,
) -> Result<()> {
    let plan = inspection.recovery_plan(mode)?;
    report.log_end = plan.last_lsn;
    report.moved_aside = plan.moved_aside;
    report.bytes_moved_aside = report.moved_aside.iter().map(|a| a.bytes).sum();
    Ok(())
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
