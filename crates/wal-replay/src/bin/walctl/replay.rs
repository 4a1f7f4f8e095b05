//! `walctl replay`: what recovery would do (read-only): which snapshot, which LSNs, how many
//! transactions, what it would move aside.

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use serde_json::to_value;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use wal_format::Lsn;
use wal_log::{MovedAside, Options, Transaction, Vfs};
use wal_replay::{
    ApplyError, DataDir, RecoverOptions, RecoveryReport, RejectedSnapshot, SnapshotUsed,
    StateMachine,
};

use crate::ReplayMode;
use crate::exit::{EXIT_OK, Failure};
use crate::output::Out;
use crate::scan::{list_json, moved_json, moved_text};

/// Counts what replay would apply, without holding any state.
#[derive(Default)]
struct DryRun {
    bytes: u64,
}

impl StateMachine for DryRun {
    type Event = ();
    fn apply(&mut self, _: Lsn, _: Vec<()>) -> Result<(), ApplyError> {
        Ok(())
    }
    fn apply_transaction(
        &mut self,
        tx: &Transaction,
        _: &dyn wal_format::Decoder<()>,
    ) -> Result<(), ApplyError> {
        self.bytes += tx.body.len() as u64;
        Ok(())
    }
    fn write_snapshot(&self, _: &mut dyn Write) -> std::io::Result<()> {
        Ok(())
    }
    fn restore(&mut self, input: &mut dyn std::io::Read) -> std::io::Result<()> {
        // Read it all (a restore that leaves bytes unread fails); the reader checks the
        // checksum as it goes.
        std::io::copy(input, &mut std::io::sink()).map(|_| ())
    }
    /// Payloads are not decoded: any event schema is read as it is.
    fn reads_event_schema(_: u32) -> bool {
        true
    }
    fn apply_upgrade(&mut self, _: u32, tx: &Transaction) -> Result<(), ApplyError> {
        self.bytes += tx.body.len() as u64;
        Ok(())
    }
    fn restore_upgrade(&mut self, _: u32, input: &mut dyn std::io::Read) -> std::io::Result<()> {
        self.restore(input)
    }
}

/// A decoder for `()` that is never used: the dry run sees raw transactions.
struct NoCodec;

impl wal_format::Decoder<()> for NoCodec {
    fn decode(&self, _: &[u8]) -> Result<((), usize), wal_format::CodecError> {
        Err(wal_format::CodecError("not decoding".into()))
    }
}

/// What `replay` reports: the read-only replay's [`RecoveryReport`].
#[derive(Serialize)]
pub(crate) struct ReplayReport {
    read_only: bool,
    log_id: Option<String>,
    new_log: bool,
    #[serde(serialize_with = "snapshot_json")]
    snapshot: Option<SnapshotUsed>,
    #[serde(serialize_with = "rejected_json")]
    rejected_snapshots: Vec<RejectedSnapshot>,
    snapshots_after_target: Vec<PathBuf>,
    target: Option<u64>,
    replay_from: u64,
    applied_range: Option<[u64; 2]>,
    transactions_applied: u64,
    transaction_bytes: u64,
    skipped_aborted: u64,
    skipped_unfinished: u64,
    /// Place-holders for LSNs a skip-damaged repair gave up: lost, not aborted.
    lost_lsn_placeholders: u64,
    log_start: u64,
    log_end: u64,
    bytes_scanned: u64,
    /// The files recovery would move bytes to (the plan `Wal::open` executes).
    #[serde(serialize_with = "moved_json")]
    would_move_aside: Vec<MovedAside>,
    bytes_moved_aside: u64,
    elapsed_s: f64,
}

/// The snapshot recovery would restore, in walctl's JSON: `file`, `fence`, `bytes` (its body
/// length), or `null`. For `#[serde(serialize_with)]`: the report carries the plan's own
/// [`SnapshotUsed`].
fn snapshot_json<S: Serializer>(used: &Option<SnapshotUsed>, s: S) -> Result<S::Ok, S::Error> {
    let Some(used) = used else {
        return s.serialize_none();
    };
    let mut m = s.serialize_struct("SnapshotUsed", 3)?;
    m.serialize_field("file", &used.path)?;
    m.serialize_field("fence", &used.fence.0)?;
    m.serialize_field("bytes", &used.bytes)?;
    m.end()
}

/// The snapshots recovery would skip, in walctl's JSON: a list of `file`, `reason`,
/// `would_set_aside` (it would rename it `*.snap.corrupt`: `RejectedSnapshot::is_set_aside`,
/// `ahead_of_log` or `restore_failed`), `set_aside_to` (the name it would get: the plan
/// recovery executes), `ahead_of_log`, `restore_failed`. For `#[serde(serialize_with)]`.
fn rejected_json<S: Serializer>(rejected: &[RejectedSnapshot], s: S) -> Result<S::Ok, S::Error> {
    list_json(rejected, s, |r| {
        Ok(vec![
            ("file", to_value(&r.path)?),
            ("reason", to_value(&r.reason)?),
            ("would_set_aside", to_value(r.is_set_aside())?),
            ("set_aside_to", to_value(&r.set_aside)?),
            ("ahead_of_log", to_value(r.ahead_of_log)?),
            ("restore_failed", to_value(r.restore_failed)?),
        ])
    })
}

impl ReplayReport {
    /// The read-only replay's plan (what recovery would do) and what executing it read and
    /// applied.
    fn new(r: &RecoveryReport, transaction_bytes: u64) -> ReplayReport {
        let plan = &r.plan;
        ReplayReport {
            read_only: r.read_only,
            log_id: plan.log_id.map(|i| i.to_string()),
            new_log: r.created,
            snapshot: plan.snapshot.clone(),
            rejected_snapshots: plan.rejected_snapshots.clone(),
            snapshots_after_target: plan.snapshots_after_target.clone(),
            target: plan.target.map(|t| t.0),
            replay_from: plan.replay_from.0,
            applied_range: r.applied_range.map(|(a, b)| [a.0, b.0]),
            transactions_applied: r.applied,
            transaction_bytes,
            skipped_aborted: r.skipped_aborted,
            skipped_unfinished: r.skipped_unfinished,
            lost_lsn_placeholders: r.skipped_placeholders,
            log_start: plan.log_start.0,
            log_end: plan.log_end.0,
            bytes_scanned: r.bytes_replayed,
            would_move_aside: plan.moved_aside.clone(),
            bytes_moved_aside: plan.moved_aside.iter().map(|a| a.bytes).sum(),
            elapsed_s: r.elapsed.as_secs_f64(),
        }
    }
}

pub(crate) fn replay(
    data: &DataDir,
    vfs: &Arc<dyn Vfs>,
    out: &Out,
    (to, mode): (Option<Lsn>, ReplayMode),
    max_transaction_size: u64,
) -> Result<u8, Failure> {
    let mut opts = RecoverOptions::default().wal(
        Options::default()
            .recovery(mode.into())
            .max_transaction_size(max_transaction_size)
            .vfs(vfs.clone()),
    );
    opts.target = to;
    let mut state = DryRun::default();
    let (bar, hook) = crate::output::shared("replaying");
    opts.progress = Some(hook);
    let r =
        wal_replay::inspect::replay_read_only_with_codec(data.root(), &mut state, &NoCodec, opts);
    crate::output::finish_shared(&bar);
    out.emit(&ReplayReport::new(&r?, state.bytes));
    Ok(EXIT_OK)
}

impl ReplayReport {
    fn fmt_snapshots(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.rejected_snapshots {
            writeln!(
                f,
                "would skip snapshot {}: {}{}",
                s.path.display(),
                s.reason,
                if s.ahead_of_log {
                    " (recovery renames it to *.snap.corrupt before the log takes new commits)"
                } else if s.restore_failed {
                    " (recovery renames it to *.snap.corrupt and falls back to an older snapshot)"
                } else {
                    ""
                }
            )?;
            if let Some(to) = &s.set_aside {
                writeln!(f, "  it would be renamed to {}", to.display())?;
            }
        }
        for s in &self.snapshots_after_target {
            writeln!(
                f,
                "would ignore snapshot {} (after the target)",
                s.display()
            )?;
        }
        match &self.snapshot {
            Some(s) => writeln!(
                f,
                "would restore snapshot {} (fence {}, {} bytes)",
                s.path.display(),
                s.fence,
                s.bytes
            ),
            None => writeln!(f, "would start from an empty state (no usable snapshot)"),
        }
    }
}

impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.new_log {
            return writeln!(
                f,
                "the log is empty: recovery would start a new log with an empty state"
            );
        }
        self.fmt_snapshots(f)?;
        moved_text(f, "would move", &self.would_move_aside)?;
        let range = self
            .applied_range
            .map_or("none".to_string(), |[a, b]| format!("LSN {a}..={b}"));
        writeln!(
            f,
            "would apply {} transactions ({} bytes), {range}, replaying from LSN {}{}",
            self.transactions_applied,
            self.transaction_bytes,
            self.replay_from,
            self.target
                .map(|t| format!(" up to target LSN {t}"))
                .unwrap_or_default()
        )?;
        writeln!(
            f,
            "would skip {} aborted and {} unfinished fragmented transactions",
            self.skipped_aborted, self.skipped_unfinished
        )?;
        if self.lost_lsn_placeholders > 0 {
            writeln!(
                f,
                "would skip {} for LSNs a skip-damaged repair lost",
                crate::human::count(self.lost_lsn_placeholders, "place-holder")
            )?;
        }
        writeln!(
            f,
            "log holds LSN {}..={} (valid end after recovery)",
            self.log_start, self.log_end
        )?;
        writeln!(
            f,
            "log id {}; read {} bytes in {:.3} s (read-only: nothing was changed)",
            self.log_id.as_deref().unwrap_or("-"),
            self.bytes_scanned,
            self.elapsed_s
        )
    }
}
