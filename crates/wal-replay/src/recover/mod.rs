//! Recovery: newest valid snapshot, then the committed transactions after its fence.
//!
//! Scan -> plan -> execute at the data directory's level. The facts are what one look finds
//! ([`look`]): the snapshots and their verdicts ([`facts`]) and the log's own plan, executed by
//! `Wal::open` (or, in a dry run, made by `Inspection::recovery_plan`). One pure function
//! ([`plan`], `plan_data_dir`) turns them into a [`DataDirPlan`] once the log's end is known;
//! [`execute`] carries it out and records what was done in the [`RecoveryReport`]. The single
//! pass ([`pass`]) rides on the log's scan and applies from a first choice of snapshot made
//! before the end is known (by the same rules, every snapshot taken to be within the log); the
//! plan confirms that choice, or the state is still untouched and the plan's snapshot is
//! restored for a second read. A repair of the log alone plans and sets aside its snapshots
//! by the same rules ([`repair`]). The read-only replay ([`read_only`]) runs the same pass over
//! the same scan without changing anything. The data directory's layout is in [`data_dir`],
//! what recovery takes and reports in [`report`].

mod data_dir;
mod execute;
mod facts;
mod look;
mod pass;
mod plan;
mod read_only;
mod repair;
mod report;

pub use data_dir::{DataDir, LOG_DIR, SNAPSHOT_DIR};
use execute::{Settled, replay_again};
use look::{Attempts, Found};
use pass::Scanned;
pub use plan::{DataDirPlan, RejectedSnapshot, SnapshotUsed};
use plan::{LogFacts, Schemas};
pub use read_only::{replay_read_only, replay_read_only_with_codec};
pub use repair::plan_repair;
pub use report::{Progress, RecoverOptions, Recovered, RecoveryReport};

use crate::error::{ReplayError, Result};
use crate::logscan::list_segments;
use crate::state::StateMachine;
use std::path::Path;
use std::time::Instant;
use wal_format::{Bincode, Decoder, LogId};
use wal_log::{OpenReport, Vfs, Wal};

/// Recovers `state` from the data directory at `root` with the default codec
/// ([`Bincode`]): chooses the newest valid snapshot (falling back to older ones), then
/// opens the log (which repairs its tail according to [`Options::recovery`](wal_log::Options::recovery)) and, during
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
    let mut attempts = Attempts::new((&store, &log_dir), listing, "recovery");
    loop {
        let mut report = RecoveryReport {
            target,
            ..RecoveryReport::default()
        };
        let (mut pass, older_schemas) =
            attempts.pass(&*vfs, (&mut *state, codec), (target, budget), false)?;
        let mut log_opts = Schemas::of::<S>().wal_options(&wal_opts, &older_schemas);
        // The open reads the log once and tells how far it has come.
        log_opts.progress = opts.progress.clone();
        let (wal, open) = match Wal::open_visit(&log_dir, log_opts, &mut pass) {
            Ok(x) => x,
            // The log's first segment changed between the look and the open taking the lock
            // (a checkpoint truncated it, say): nothing was applied yet; look again.
            Err(e) => {
                attempts.again_or_fail(e)?;
                continue;
            }
        };
        let scanned = report.opened(&wal, &open);
        if pass.decided.is_none() {
            // The open found no segment and created the log: its plan is made now.
            pass.decide(LogFacts::opened(wal.log_id(), &open))?;
        }
        if let Settled::ReplayFrom(fence) = pass.settle(scanned, &mut report)? {
            replay_again(
                &vfs,
                &log_dir,
                state,
                codec,
                fence,
                (target, budget),
                &open,
                &mut report,
            )?;
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

/// [`recover_with_codec`] for a store that takes writes once recovered (`Engine`,
/// `Durable`; `who` names it in the error): a point-in-time target is refused, since the
/// writes would follow a state that leaves the log's later transactions out.
///
/// # Errors
/// [`ReplayError::Unsupported`] for a target; else as [`recover`].
pub(crate) fn recover_to_write<S>(
    root: &Path,
    state: &mut S,
    codec: &dyn Decoder<S::Event>,
    opts: RecoverOptions,
    who: &str,
) -> Result<Recovered>
where
    S: StateMachine + ?Sized,
{
    if let Some(target) = opts.target {
        return Err(ReplayError::Unsupported {
            what: format!(
                "point-in-time recovery (target LSN {target}) for {who}: use wal_replay::recover or replay_read_only"
            ),
        });
    }
    recover_with_codec(root, state, codec, opts)
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
            elapsed: open.scan_elapsed,
            bytes: open.bytes_scanned,
        }
    }
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
