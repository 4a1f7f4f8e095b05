//! `walctl repair [--dry-run]`: move damaged bytes aside under the log's lock (the dry run
//! says exactly what would be done, including the refusals).

use serde::{Serialize, Serializer};
use serde_json::to_value;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use wal_log::inspect::{Inspection, Verdict};
use wal_log::{MovedAside, Options, RecoveryMode, RecoveryPlan, SyncPolicy, Vfs, Wal, WalError};
use wal_replay::inspect::plan_repair;
use wal_replay::{DataDir, RejectedSnapshot, ReplayError};

use crate::RepairMode;
use crate::exit::{EXIT_CORRUPT, EXIT_LOCKED, EXIT_OK, EXIT_USAGE, Failure, exit_code};
use crate::human;
use crate::output::Out;
use crate::scan::{inspect, list_json, moved_json, moved_text, verdict_json};

/// What `repair --dry-run` reports: the plan, or (with its exit code) the refusal in `note`.
#[derive(Serialize)]
pub(crate) struct DryRunReport {
    dry_run: bool,
    mode: String,
    #[serde(serialize_with = "verdict_json")]
    verdict: Verdict,
    #[serde(serialize_with = "moved_json")]
    would_move_aside: Vec<MovedAside>,
    /// The snapshots the data directory's plan sets aside, with the names they would take.
    #[serde(serialize_with = "would_set_aside_json")]
    would_set_aside_snapshots: Vec<RejectedSnapshot>,
    /// Skip-damaged: segment files it would rewrite around the damage (or write anew).
    would_rewrite: Vec<PathBuf>,
    open_streams_to_abort: Vec<u64>,
    /// What each mode would keep and lose.
    modes: Vec<ModeOutcome>,
    note: String,
    exit_code: u8,
}

/// What a repair in one mode would keep and lose, from a read of the whole log past damage.
#[derive(Serialize)]
struct ModeOutcome {
    mode: &'static str,
    /// Why it would refuse, when it would.
    refused: Option<String>,
    /// Transactions that verify and would be kept.
    keeps_transactions: u64,
    /// Transactions that verify but would be moved aside with the bytes around them.
    loses_verified_transactions: u64,
    /// LSNs whose frames no longer verify (damaged or missing): lost in every mode. With `k`
    /// consecutive segments missing, `k - 1` of them were seals (where is not known).
    lost_lsns: Vec<(u64, u64)>,
}

/// What `repair` did.
#[derive(Serialize)]
pub(crate) struct RepairReport {
    dry_run: bool,
    mode: String,
    #[serde(serialize_with = "moved_json")]
    moved_aside: Vec<MovedAside>,
    bytes_moved_aside: u64,
    /// Skip-damaged: the LSNs given up. With `k` consecutive segments missing, `k - 1` of them
    /// were seals (where is not known).
    lost_lsns: Vec<(u64, u64)>,
    aborted_streams: Vec<u64>,
    #[serde(serialize_with = "set_aside_json")]
    snapshots_set_aside: Vec<RejectedSnapshot>,
    last_lsn: u64,
    segments: usize,
}

/// Snapshots the dry run would set aside, in walctl's JSON: a list of `file`, `fence`, `to`
/// (the name the rename would take). For `#[serde(serialize_with)]`.
fn would_set_aside_json<S: Serializer>(
    snaps: &[RejectedSnapshot],
    s: S,
) -> Result<S::Ok, S::Error> {
    list_json(snaps, s, |r| {
        Ok(vec![
            ("file", to_value(&r.path)?),
            ("fence", to_value(r.fence.0)?),
            ("to", to_value(&r.set_aside)?),
        ])
    })
}

/// Snapshots the repair set aside, in walctl's JSON: a list of `from`, `to` (the name the
/// rename took). For `#[serde(serialize_with)]`.
fn set_aside_json<S: Serializer>(snaps: &[RejectedSnapshot], s: S) -> Result<S::Ok, S::Error> {
    list_json(snaps, s, |r| {
        Ok(vec![
            ("from", to_value(&r.path)?),
            ("to", to_value(&r.set_aside)?),
        ])
    })
}

pub(crate) fn repair(
    data: &DataDir,
    vfs: &Arc<dyn Vfs>,
    out: &Out,
    dry_run: bool,
    mode: RepairMode,
) -> Result<u8, Failure> {
    let recovery: RecoveryMode = mode.into();
    refuse_an_empty_log(data, vfs)?;
    // Refused before anything is read or changed, by the dry run as by the real run.
    wal_log::inspect::check_not_open(&**vfs, &data.log_dir()).map_err(refuse_locked)?;
    let store = data.snapshots(vfs.clone());
    let ins = inspect(data, vfs)?;
    // Snapshots past the end the repair keeps hold transactions the log no longer has (a
    // salvage cut them off). Recovery would set them aside, but only while the log still ends
    // there: the abort frames the open writes for cut-off large transactions take those LSNs
    // again. So they are set aside first, before the log changes, as the data directory's plan
    // for the log the repair's open keeps (`Inspection::recovery_plan`) says.
    let plan = ins.recovery_plan(recovery);
    let snapshots = match (ins.log_id, &plan) {
        (Some(id), Ok(p)) => Some(plan_repair(&store, id, p.clone())?),
        _ => None,
    };
    if dry_run {
        let set_aside: Vec<RejectedSnapshot> = snapshots
            .iter()
            .flat_map(|p| p.rejected_snapshots.iter().filter(|r| r.is_set_aside()))
            .cloned()
            .collect();
        // Read past damage: what skip-damaged would do, and what every mode keeps and loses.
        let (bar, hook) = crate::output::shared("reading past damage");
        let skip = wal_log::inspect::plan_skip_with_progress(&**vfs, &data.log_dir(), &hook);
        crate::output::finish_shared(&bar);
        let skip_plan = skip.as_ref().ok().cloned();
        let mut report = match mode {
            RepairMode::SkipDamaged => {
                dry_run_report(&ins, skip.map(|p| p.moved_aside), set_aside, mode)
            }
            _ => dry_run_report(&ins, plan.map(|p| p.moved_aside), set_aside, mode),
        };
        if let (RepairMode::SkipDamaged, Some(p)) = (mode, &skip_plan) {
            report.would_rewrite = p.rewritten.clone();
        }
        report.modes = outcomes(&ins, skip_plan.as_ref());
        out.emit(&report);
        return Ok(report.exit_code);
    }
    let mut set_aside = match &snapshots {
        Some(p) => p.set_aside_snapshots(&store)?,
        None => Vec::new(),
    };
    let (bar, hook) = crate::output::shared("repairing");
    let mut opts = Options::default()
        .recovery(recovery)
        .create_if_missing(false)
        .preallocate(false)
        .sync(SyncPolicy::Always)
        .vfs(vfs.clone());
    opts.progress = Some(hook);
    let opened = Wal::open(data.log_dir(), opts);
    crate::output::finish_shared(&bar);
    let (wal, report) = opened.map_err(|e| match e {
        e @ WalError::AlreadyOpen { .. } => refuse_locked(e),
        WalError::Corrupt { .. } if matches!(mode, RepairMode::TornTail) => Failure::new(
            EXIT_CORRUPT,
            format!("{e}; torn-tail mode does not repair corruption: see docs/operations.md before using --mode salvage-prefix"),
        ),
        other => other.into(),
    })?;
    // Had the log changed since the inspection, the plan for what the open kept is the one
    // that counts (those set aside already are no longer listed).
    let kept = RecoveryPlan {
        moved_aside: report.moved_aside.clone(),
        first_lsn: report.first_lsn,
        last_lsn: report.last_lsn,
        ..RecoveryPlan::default()
    };
    let late = plan_repair(&store, wal.log_id(), kept)?;
    set_aside.extend(late.set_aside_snapshots(&store)?);
    let log_end = wal.last_lsn();
    drop(wal);
    out.emit(&RepairReport {
        dry_run: false,
        mode: format!("{mode:?}"),
        moved_aside: report.moved_aside.clone(),
        bytes_moved_aside: report.bytes_moved_aside(),
        aborted_streams: report.aborted_streams.iter().map(|l| l.0).collect(),
        snapshots_set_aside: set_aside,
        lost_lsns: report.lost_lsns.iter().map(|(a, b)| (a.0, b.0)).collect(),
        last_lsn: log_end.0,
        segments: report.segments,
    });
    Ok(EXIT_OK)
}

/// The dry run's report: the plan of the repair's open, or the refusal it would meet.
fn dry_run_report(
    ins: &Inspection,
    plan: Result<Vec<MovedAside>, WalError>,
    set_aside: Vec<RejectedSnapshot>,
    mode: RepairMode,
) -> DryRunReport {
    let verdict = ins.verdict();
    let mut would_move_aside = Vec::new();
    let mut code = EXIT_OK;
    let mut note = String::new();
    match plan {
        Ok(p) => {
            would_move_aside = p;
            if verdict == Verdict::Sound && set_aside.is_empty() {
                note = "the log is sound: nothing to repair".into();
            }
        }
        Err(e) => {
            note = if ins.refusal().is_some() {
                format!(
                    "{e}; no repair mode opens this log: put the missing, foreign or damaged file right first (docs/operations.md)"
                )
            } else if matches!(e, WalError::Corrupt { .. }) && matches!(mode, RepairMode::TornTail)
            {
                format!(
                    "{e}: torn-tail mode does not repair corruption; --mode salvage-prefix would keep the valid prefix and move the rest aside"
                )
            } else {
                format!("{e}: no repair mode opens this log")
            };
            code = exit_code(&ReplayError::Wal(e));
        }
    }
    DryRunReport {
        dry_run: true,
        mode: format!("{mode:?}"),
        verdict,
        would_move_aside,
        would_set_aside_snapshots: set_aside,
        open_streams_to_abort: ins.open_streams.iter().map(|l| l.0).collect(),
        would_rewrite: Vec::new(),
        modes: Vec::new(),
        note,
        exit_code: code,
    }
}

/// What each repair mode would keep and lose: the prefix modes from the inspection, and
/// skip-damaged (and everything that verifies) from the read past damage.
fn outcomes(ins: &Inspection, skip: Option<&wal_log::inspect::SkipPlan>) -> Vec<ModeOutcome> {
    let verified = skip.map_or(0, |p| p.kept_transactions);
    let lost: Vec<(u64, u64)> = skip
        .map(|p| p.lost.iter().map(|(a, b)| (a.0, b.0)).collect())
        .unwrap_or_default();
    let prefix = |mode: RecoveryMode, name: &'static str| match ins.recovery_plan(mode) {
        Ok(p) => {
            let keeps: u64 = ins
                .segments
                .iter()
                .filter(|s| s.examined && s.first_lsn <= p.last_lsn)
                .map(|s| s.transactions)
                .sum();
            ModeOutcome {
                mode: name,
                refused: None,
                keeps_transactions: keeps,
                loses_verified_transactions: verified.saturating_sub(keeps),
                lost_lsns: lost.clone(),
            }
        }
        Err(e) => ModeOutcome {
            mode: name,
            refused: Some(e.to_string()),
            keeps_transactions: 0,
            loses_verified_transactions: 0,
            lost_lsns: Vec::new(),
        },
    };
    let mut v = vec![
        prefix(RecoveryMode::TolerateTornTail, "torn-tail"),
        prefix(RecoveryMode::SalvagePrefix, "salvage-prefix"),
    ];
    v.push(match skip {
        Some(p) => ModeOutcome {
            mode: "skip-damaged",
            refused: None,
            keeps_transactions: p.kept_transactions,
            loses_verified_transactions: 0,
            lost_lsns: lost.clone(),
        },
        None => ModeOutcome {
            mode: "skip-damaged",
            refused: Some(
                "it cannot rebuild this log (run it without --dry-run to see why)".into(),
            ),
            keeps_transactions: 0,
            loses_verified_transactions: 0,
            lost_lsns: Vec::new(),
        },
    });
    v
}

/// `1009`, `1009..=1011, 1500`.
fn lsn_ranges(ranges: &[(u64, u64)]) -> String {
    if ranges.is_empty() {
        return "none".into();
    }
    ranges
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}..={b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for DryRunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.note.is_empty() {
            writeln!(f, "{}", self.note)?;
        }
        moved_text(f, "would move", &self.would_move_aside)?;
        for s in &self.would_set_aside_snapshots {
            writeln!(
                f,
                "would set snapshot {} aside (*.corrupt): its fence {} is past the log's end after the repair",
                s.path.display(),
                s.fence
            )?;
            if let Some(to) = &s.set_aside {
                writeln!(f, "  it would be renamed to {}", to.display())?;
            }
        }
        for l in &self.open_streams_to_abort {
            writeln!(
                f,
                "would close unfinished fragmented transaction begun at LSN {l} with an abort frame"
            )?;
        }
        for r in &self.would_rewrite {
            writeln!(
                f,
                "would write {} (its frames that verify kept byte for byte, a place-holder for each lost LSN; a missing segment anew)",
                r.display()
            )?;
        }
        if self.would_move_aside.is_empty()
            && self.open_streams_to_abort.is_empty()
            && self.would_set_aside_snapshots.is_empty()
            && self.would_rewrite.is_empty()
            && self.note.is_empty()
        {
            writeln!(f, "nothing to repair")?;
        }
        if !self.modes.is_empty() {
            writeln!(f, "each mode would:")?;
        }
        for m in &self.modes {
            match &m.refused {
                Some(why) => writeln!(f, "  {:<15} refuse: {why}", m.mode)?,
                None => writeln!(
                    f,
                    "  {:<15} keep {}, lose {} that verify; lost LSNs: {}",
                    m.mode,
                    human::count(m.keeps_transactions, "transaction"),
                    m.loses_verified_transactions,
                    lsn_ranges(&m.lost_lsns)
                )?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        moved_text(f, "moved", &self.moved_aside)?;
        for s in &self.snapshots_set_aside {
            writeln!(
                f,
                "set snapshot {} aside to {}: its fence is past the log's end after the repair",
                s.path.display(),
                s.set_aside.as_deref().unwrap_or(&s.path).display()
            )?;
        }
        for l in &self.aborted_streams {
            writeln!(
                f,
                "closed unfinished fragmented transaction begun at LSN {l} with an abort frame"
            )?;
        }
        if !self.lost_lsns.is_empty() {
            writeln!(f, "lost LSNs: {}", lsn_ranges(&self.lost_lsns))?;
        }
        if self.moved_aside.is_empty()
            && self.aborted_streams.is_empty()
            && self.snapshots_set_aside.is_empty()
            && self.lost_lsns.is_empty()
        {
            writeln!(f, "nothing to repair: the log is sound")?;
        }
        writeln!(
            f,
            "log ends at LSN {} in {}",
            self.last_lsn,
            human::count(self.segments as u64, "segment")
        )
    }
}

fn refuse_locked(e: WalError) -> Failure {
    match e {
        WalError::AlreadyOpen { dir } => Failure::new(
            EXIT_LOCKED,
            format!(
                "refusing to repair: the log {} is locked by another process (is the engine running? stop it, or work on a copy)",
                dir.display()
            ),
        ),
        other => other.into(),
    }
}

/// `repair` never creates a log: opening a log directory without segments would start a new,
/// empty log (a new log id), under which recovery would then reject every snapshot. A log
/// directory that exists but is empty is a log that was moved or a volume not mounted.
fn refuse_an_empty_log(data: &DataDir, vfs: &Arc<dyn Vfs>) -> Result<(), Failure> {
    let dir = data.log_dir();
    let names = match vfs.list(&dir) {
        Ok(names) => names,
        // Reported by the open, as for every other command.
        Err(_) => return Ok(()),
    };
    if names.iter().any(|n| {
        matches!(
            wal_log::layout::classify(n),
            wal_log::layout::Entry::Segment(_)
        )
    }) {
        return Ok(());
    }
    Err(Failure::new(
        EXIT_USAGE,
        format!(
            "refusing to repair {}: it holds no log segment, and repair never creates a log (was the log moved, or a volume not mounted? docs/operations.md)",
            dir.display()
        ),
    ))
}
