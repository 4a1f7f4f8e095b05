//! The read-only replay: the same pass over the same scan, changing nothing on disk.

use super::data_dir::DataDir;
use super::execute::{Settled, replay};
use super::look::{Attempts, Found};
use super::pass::Scanned;
use super::plan::LogFacts;
use super::report::{RecoverOptions, RecoveryReport};
use crate::error::Result;
use crate::logscan::LogFrames;
use crate::state::StateMachine;
use std::path::Path;
use std::time::{Duration, Instant};
use wal_format::scan::ScanEnd;
use wal_format::{Bincode, Decoder};
use wal_log::RecoveryMode;

/// Replays the data directory into `state` without changing anything on disk: no lock is
/// taken, no file is created, repaired or moved, so it is safe on a live directory or a
/// read-only copy. The report says what [`recover`](crate::recover) would do under
/// `opts.wal.recovery` (which bytes it would move aside, which snapshot it would use, what
/// it would apply). [`RecoverOptions::progress`] is told `(bytes scanned, total)` during the
/// scan that checks the log.
///
/// Events are decoded with [`Bincode`](wal_format::Bincode), which needs only `Deserialize` on the event type (a
/// tool that reads an engine's log does not need to encode its events).
///
/// On a live directory the newest segment may be being written; the scan then sees a torn
/// tail at the write position and stops there.
///
/// # Errors
/// As [`recover`](crate::recover): damage the recovery mode would refuse is the same
/// [`ReplayError::Wal`](crate::ReplayError::Wal) ([`wal_log::WalError::Corrupt`] or [`wal_log::WalError::TornTail`])
/// recovery returns; [`ReplayError::NotFound`](crate::ReplayError::NotFound) for a missing directory.
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

/// [`replay_read_only`](crate::inspect::replay_read_only) with a decoder of your choice.
///
/// # Errors
/// As [`replay_read_only`](crate::inspect::replay_read_only).
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
    let mut attempts = Attempts::new((&store, &log_dir), listing, "the replay");
    loop {
        let mut report = RecoveryReport {
            read_only: true,
            target,
            ..RecoveryReport::default()
        };
        let (mut pass, _) = attempts.pass(&*vfs, (&mut *state, codec), (target, budget), true)?;
        let t = Instant::now();
        let mut progress = |done, total| {
            if let Some(p) = &progress {
                p.report(done, total);
            }
        };
        let inspection =
            match wal_log::inspect::inspect_visit(&*vfs, &log_dir, &mut progress, &mut pass) {
                Ok(i) => i,
                // The first segment changed since it was looked at (a live directory):
                // nothing was applied yet; look again.
                Err(e) => {
                    attempts.again_or_fail(e)?;
                    continue;
                }
            };
        let (scanned, log) =
            read_only_verdict(&inspection, wal_opts.recovery, &log_dir, &mut report)?;
        pass.decide(log)?;
        let scanned = Scanned {
            elapsed: t.elapsed(),
            ..scanned
        };
        match pass.settle(scanned, &mut report)? {
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
        report.elapsed = started.elapsed();
        return Ok(report);
    }
}

/// What a read-only scan found, into the report (the log's range, and what recovery would
/// move aside: the log's plan, `Inspection::recovery_plan`), what it read, and the log's
/// side of the facts for the data directory's plan.
///
/// # Errors
/// Damage the recovery mode refuses, as recovery refuses it.
pub(super) fn read_only_verdict(
    inspection: &wal_log::inspect::Inspection,
    mode: RecoveryMode,
    log_dir: &Path,
    report: &mut RecoveryReport,
) -> Result<(Scanned, LogFacts)> {
    report.log_id = inspection.log_id;
    let plan = inspection.recovery_plan(mode)?;
    let Some(log_id) = inspection.log_id else {
        return Err(wal_log::WalError::NotAWal {
            dir: log_dir.to_path_buf(),
            reason: "no segment with a valid header".into(),
        }
        .into());
    };
    report.log_start = plan.first_lsn;
    report.log_end = plan.last_lsn;
    report.moved_aside.clone_from(&plan.moved_aside);
    report.bytes_moved_aside = plan.moved_aside.iter().map(|a| a.bytes).sum();
    // Every segment up to the first damage was read; later ones only for their headers.
    let mut bytes = 0;
    for s in &inspection.segments {
        bytes += s.file_len;
        if !matches!(s.end, ScanEnd::Clean { .. }) {
            break;
        }
    }
    let scanned = Scanned {
        elapsed: Duration::ZERO,
        bytes,
    };
    Ok((scanned, LogFacts::planned(log_id, plan)))
}
