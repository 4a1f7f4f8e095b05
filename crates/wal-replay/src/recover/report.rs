//! What recovery takes ([`RecoverOptions`]) and what it reports ([`RecoveryReport`]: the plan
//! it executed, and the record of what it did).

use super::plan::{DataDirPlan, RejectedSnapshot, SnapshotUsed};
use std::path::PathBuf;
use std::time::Duration;
use wal_format::{LogId, Lsn};
use wal_log::{MovedAside, Options, Wal};

/// Options of [`recover`](crate::recover).
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

/// A progress callback: `(bytes scanned, total bytes)` of the log's segment files: the log's
/// own ([`wal_log::Progress`]), which the writing recovery hands to the log's open (see there
/// for when it is called); the read-only replay calls it as it reads.
pub use wal_log::Progress;

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
    pub(super) fn budget(&self) -> u64 {
        self.fragment_budget
            .unwrap_or(self.wal.max_transaction_size)
    }
}

/// What recovery found and did: the plan it executed ([`RecoveryReport::plan`]), and the
/// record of what was done (the other fields). For
/// [`replay_read_only`](crate::inspect::replay_read_only), the same plan and what executing it
/// would do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecoveryReport {
    /// The data directory's plan, decided once from the facts of the scan and executed.
    pub plan: DataDirPlan,
    /// True for [`replay_read_only`](crate::inspect::replay_read_only): nothing was changed, the report says what recovery
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
    /// Place-holders for LSNs a skip-damaged repair gave up
    /// ([`wal_format::Frame::is_placeholder`]), after the fence: lost LSNs, not aborts.
    pub skipped_placeholders: u64,
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
    /// point found the damage. For [`replay_read_only`](crate::inspect::replay_read_only), what recovery would move and the
    /// files it would move it to (nothing is moved: those files do not exist).
    pub moved_aside: Vec<MovedAside>,
    /// Total of [`RecoveryReport::moved_aside`].
    pub bytes_moved_aside: u64,
    /// Time to open the log besides reading it: locking, listing, repairing the tail and
    /// making what was found durable (for [`replay_read_only`](crate::inspect::replay_read_only): listing the log and reading its
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
