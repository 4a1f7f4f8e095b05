//! `walctl`: inspect, verify, repair and dry-run the recovery of a data directory without the
//! engine. See `walctl --help` and `docs/operations.md`.
//!
//! Every command but `repair` (without `--dry-run`) is read-only: it takes no lock and
//! creates, changes or removes nothing, so it is safe on a live directory.
//!
//! Layout: this file holds the command line and the dispatch; each command is a module of its
//! own that builds one report value, `Serialize` for `--json` and `Display` for the text, so
//! both outputs come from the same value ([`output::Out::emit`]). Exit codes are mapped in
//! one place, [`exit::exit_code`].

mod dump;
mod exit;
mod human;
mod output;
mod read_ahead;
mod repair;
mod replay;
mod scan;
mod snapshot;
mod stat;
mod text;
mod verify;

use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use wal_format::Lsn;
use wal_log::{Options, RecoveryMode, StdVfs, Vfs};
use wal_replay::DataDir;

use crate::dump::DumpArgs;
use crate::exit::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, Failure, FailureReport};
use crate::output::Out;

const EXIT_CODES: &str = "\
Exit codes:
  0  success; for verify: the log is sound
  1  torn tail: the newest segment ends in an interrupted write (normal after a crash;
     recovery or `repair` cuts it)
  2  corruption that a crash cannot explain (see docs/operations.md)
  3  usage error, missing directory, not a data directory, or a log without segments
     under snapshots (the log was moved or its volume is not mounted)
  4  the log is locked by another process (repair, also with --dry-run)
  5  an unusable snapshot (snapshot verify), or no usable snapshot for a truncated log (replay)
  6  any other failure (an I/O error, or output that could not be written; a closed pipe,
     as under `| head`, only ends the output)

The data directory holds the log in <DIR>/log and snapshots in <DIR>/snapshots. Every command
except `repair` without --dry-run is read-only, even on a live directory.";

/// Inspect, verify, repair and dry-run recovery of a write-ahead log data directory.
#[derive(Parser, Debug)]
#[command(name = "walctl", version, after_help = EXIT_CODES)]
struct Cli {
    /// The data directory (holding log/ and snapshots/).
    #[arg(long, short = 'd', global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print machine-readable JSON on stdout (JSON Lines for `dump`).
    #[arg(long, global = true)]
    json: bool,
    /// The engine's `Options::max_transaction_size`, if it changed it: the most `dump` and
    /// `replay` hold for one large (fragmented) transaction.
    #[arg(long, global = true, value_name = "BYTES", default_value_t = Options::default().max_transaction_size)]
    max_transaction_size: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Log id, segments (a summary; each one with --segments), snapshots and fences, the
    /// log's end.
    Stat {
        /// List every segment, not only the totals.
        #[arg(long, short = 'v', visible_alias = "verbose")]
        segments: bool,
    },
    /// Frames and transactions; payloads as JSON when they are JSON, else hex.
    Dump {
        /// First LSN to print.
        #[arg(long)]
        from: Option<u64>,
        /// Last LSN to print.
        #[arg(long)]
        to: Option<u64>,
        /// Most payload bytes shown per record.
        #[arg(long, default_value_t = 256)]
        payload_limit: usize,
        /// Like `tail -f`: print each committed transaction (from --from, default the log's
        /// first) once it is durable, and keep waiting for more until interrupted (or past
        /// --to). Read-only, without the lock; each line (with --json) holds the LSN, the
        /// previous transaction's LSN and the records.
        #[arg(long, conflicts_with_all = ["past_damage", "file"])]
        follow: bool,
        /// Read past damage: every frame that verifies after (and between) damaged regions
        /// and missing segments, which are shown with where they begin and end, and the LSNs
        /// lost. Exit 2 when there is damage.
        #[arg(long)]
        past_damage: bool,
        /// Read one file instead of the log: a segment, or bytes a repair or recovery moved
        /// aside (`<segment>.wal.salvaged-<offset>`, `.torn-<offset>`, `.salvaged`), checked
        /// with the seed of the segment its name gives. Implies --past-damage.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// Check every frame: exit 0 when sound, 1 on a torn tail, 2 on corruption.
    Verify {
        /// List every segment, not only the verdict (and the damaged segment).
        #[arg(long, short = 'v', visible_alias = "verbose")]
        segments: bool,
    },
    /// Move damaged bytes aside under the log's lock (never deletes log data; like every open,
    /// it removes the preallocated next segment and recycled files beyond the pool's size).
    Repair {
        /// Only say what would be done.
        #[arg(long)]
        dry_run: bool,
        /// What to repair: a torn tail only, or everything after the longest valid prefix.
        #[arg(long, value_enum, default_value_t = RepairMode::TornTail)]
        mode: RepairMode,
    },
    /// List or verify snapshots.
    Snapshot {
        #[command(subcommand)]
        action: SnapshotAction,
    },
    /// Report what recovery would do (read-only): snapshot, LSN range, transactions.
    Replay {
        /// Point-in-time target LSN.
        #[arg(long)]
        to: Option<u64>,
        /// The recovery mode to assume.
        #[arg(long, value_enum, default_value_t = ReplayMode::TornTail)]
        mode: ReplayMode,
    },
}

#[derive(Subcommand, Debug)]
enum SnapshotAction {
    /// List snapshot files with their fences (headers only).
    Ls,
    /// Verify every snapshot's checksum and log id: exit 5 if any is unusable.
    Verify,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum RepairMode {
    /// Cut a torn tail of the newest segment; refuse corruption.
    TornTail,
    /// Keep the longest valid prefix of the log; move everything after it aside.
    SalvagePrefix,
    /// Keep every transaction that verifies, before and after damage and across missing
    /// segments; move only the damaged bytes aside and rewrite the segments around them;
    /// report the LSNs lost. Can leave an engine inconsistent when a kept transaction
    /// depended on a lost one (docs/operations.md).
    SkipDamaged,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum ReplayMode {
    /// Refuse any damage.
    Strict,
    /// Cut a torn tail (the engine's default).
    TornTail,
    /// Keep the longest valid prefix.
    SalvagePrefix,
}

impl From<RepairMode> for RecoveryMode {
    fn from(m: RepairMode) -> Self {
        match m {
            RepairMode::TornTail => RecoveryMode::TolerateTornTail,
            RepairMode::SalvagePrefix => RecoveryMode::SalvagePrefix,
            RepairMode::SkipDamaged => RecoveryMode::SkipDamaged,
        }
    }
}

impl From<ReplayMode> for RecoveryMode {
    fn from(m: ReplayMode) -> Self {
        match m {
            ReplayMode::Strict => RecoveryMode::Strict,
            ReplayMode::TornTail => RecoveryMode::TolerateTornTail,
            ReplayMode::SalvagePrefix => RecoveryMode::SalvagePrefix,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let out = Out::new(cli.json);
    match run(&cli, &out) {
        Ok(code) => ExitCode::from(out.finish(code)),
        Err(f) => {
            out.emit_json(&FailureReport::from(&f));
            let _ = writeln!(std::io::stderr(), "walctl: {}", f.message);
            ExitCode::from(out.finish(f.code))
        }
    }
}

fn run(cli: &Cli, out: &Out) -> Result<u8, Failure> {
    let Some(root) = cli.dir.clone() else {
        return Err(Failure::new(
            EXIT_USAGE,
            "--dir <DIR> is required (the data directory holding log/ and snapshots/)",
        ));
    };
    let data = check_data_dir(&root)?;
    warn_foreign(&data);
    let vfs: Arc<dyn Vfs> = Arc::new(StdVfs);
    match &cli.command {
        Command::Stat { segments } => stat::stat(&data, &vfs, out, *segments),
        Command::Dump {
            from,
            to,
            payload_limit,
            follow,
            past_damage,
            file,
        } => {
            let args = DumpArgs {
                from: *from,
                to: *to,
                payload_limit: *payload_limit,
                budget: cli.max_transaction_size,
                past_damage: *past_damage,
                file: file.clone(),
            };
            if *follow {
                dump::dump_follow(&data, &vfs, out, &args)
            } else if args.past_damage || args.file.is_some() {
                dump::dump_past(&data, &vfs, out, &args)
            } else {
                dump::dump(&data, &vfs, out, &args)
            }
        }
        Command::Verify { segments } => verify::verify(&data, &vfs, out, *segments),
        Command::Repair { dry_run, mode } => repair::repair(&data, &vfs, out, *dry_run, *mode),
        Command::Snapshot { action } => match action {
            SnapshotAction::Ls => snapshot::snapshot_ls(&data, &vfs, out),
            SnapshotAction::Verify => snapshot::snapshot_verify(&data, &vfs, out),
        },
        Command::Replay { to, mode } => replay::replay(
            &data,
            &vfs,
            out,
            (to.map(Lsn), *mode),
            cli.max_transaction_size,
        ),
    }
}

/// Warns on stderr about each file in `log/` that is not the log's: read-only commands read
/// past it, but an engine's open (and `repair`) refuses the directory until it is moved out.
fn warn_foreign(data: &DataDir) {
    let Ok(entries) = std::fs::read_dir(data.log_dir()) else {
        return;
    };
    let mut foreign: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| wal_log::layout::classify(n) == wal_log::layout::Entry::Foreign)
        .collect();
    foreign.sort();
    for name in foreign {
        let _ = writeln!(
            std::io::stderr(),
            "walctl: warning: {} is not a file of the log; this command reads past it, but opening the log (the engine, `repair`) refuses the directory until it is moved out",
            data.log_dir().join(name).display()
        );
    }
}

/// Clear errors for a missing directory or one that is not a data directory.
fn check_data_dir(root: &Path) -> Result<DataDir, Failure> {
    let data = DataDir::new(root);
    let meta = std::fs::metadata(root).map_err(|e| {
        Failure::new(
            if e.kind() == std::io::ErrorKind::NotFound {
                EXIT_USAGE
            } else {
                EXIT_FAILED
            },
            format!("data directory {}: {e}", root.display()),
        )
    })?;
    if !meta.is_dir() {
        return Err(Failure::new(
            EXIT_USAGE,
            format!("{} is not a directory", root.display()),
        ));
    }
    // `is_dir` would call a log/ that cannot be read (permissions, I/O) missing.
    let log_is_dir = match std::fs::metadata(data.log_dir()) {
        Ok(m) => m.is_dir(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(Failure::new(
                EXIT_FAILED,
                format!("log directory {}: {e}", data.log_dir().display()),
            ));
        }
    };
    if !log_is_dir {
        let looks_like_log = std::fs::read_dir(root).ok().is_some_and(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".wal"))
        });
        let hint = if looks_like_log {
            " (it looks like a log directory itself: pass its parent, the data directory)"
        } else {
            ""
        };
        return Err(Failure::new(
            EXIT_USAGE,
            format!(
                "{} is not a data directory: it has no log/ subdirectory{hint}",
                root.display()
            ),
        ));
    }
    Ok(data)
}
