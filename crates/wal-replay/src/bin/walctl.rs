//! `walctl`: inspect, verify, repair and dry-run the recovery of a data directory without the
//! engine. See `walctl --help` and `docs/operations.md`.
//!
//! Every command but `repair` (without `--dry-run`) is read-only: it takes no lock and
//! creates, changes or removes nothing, so it is safe on a live directory.

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use wal_format::{Frame, FrameKind, Lsn, ScanEnd};
use wal_log::{
    Options, RecoveryMode, SegmentScan, StdVfs, SyncPolicy, TailOptions, TailReader, Transaction,
    Verdict, Vfs, Wal, WalError,
};
use wal_replay::{
    ApplyError, DataDir, RecoverOptions, RecoveryReport, ReplayError, SnapshotStore, StateMachine,
    TransactionAssembler,
};

/// Exit code: success (`verify`: the log is sound).
const EXIT_OK: u8 = 0;
/// Exit code: the newest segment ends in a torn tail.
const EXIT_TORN: u8 = 1;
/// Exit code: corruption a crash cannot explain.
const EXIT_CORRUPT: u8 = 2;
/// Exit code: bad usage, missing directory, or not a data directory.
const EXIT_USAGE: u8 = 3;
/// Exit code: another process holds the log's lock.
const EXIT_LOCKED: u8 = 4;
/// Exit code: an unusable snapshot.
const EXIT_SNAPSHOT: u8 = 5;
/// Exit code: any other failure (I/O errors).
const EXIT_FAILED: u8 = 6;

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
    /// Log id, segments with sizes and LSN ranges, snapshots and fences, the log's end.
    Stat,
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
        #[arg(long)]
        follow: bool,
    },
    /// Check every frame: exit 0 when sound, 1 on a torn tail, 2 on corruption.
    Verify,
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
enum RepairMode {
    /// Cut a torn tail of the newest segment; refuse corruption.
    TornTail,
    /// Keep the longest valid prefix of the log; move everything after it aside.
    SalvagePrefix,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ReplayMode {
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

/// A failure with the exit code it maps to.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<ReplayError> for Failure {
    fn from(e: ReplayError) -> Failure {
        let code = match &e {
            ReplayError::Wal(w) => wal_code(w),
            ReplayError::NotFound { .. }
            | ReplayError::LogMissing { .. }
            | ReplayError::NotADataDir { .. } => EXIT_USAGE,
            ReplayError::Corrupt { .. } => EXIT_CORRUPT,
            ReplayError::TornTail { .. } => EXIT_TORN,
            ReplayError::BadSnapshot { .. }
            | ReplayError::Restore { .. }
            | ReplayError::LogTruncated { .. } => EXIT_SNAPSHOT,
            _ => EXIT_FAILED,
        };
        Failure::new(code, e.to_string())
    }
}

impl From<WalError> for Failure {
    fn from(e: WalError) -> Failure {
        Failure::new(wal_code(&e), e.to_string())
    }
}

fn wal_code(e: &WalError) -> u8 {
    match e {
        WalError::AlreadyOpen { .. } => EXIT_LOCKED,
        WalError::NotFound { .. } | WalError::NotAWal { .. } | WalError::BeyondEnd { .. } => {
            EXIT_USAGE
        }
        WalError::Corrupt { .. }
        | WalError::Gap { .. }
        | WalError::ForeignSegment { .. }
        | WalError::UnsupportedVersion { .. } => EXIT_CORRUPT,
        WalError::TornTail { .. } => EXIT_TORN,
        _ => EXIT_FAILED,
    }
}

/// Output sink: human text or JSON on stdout. A failed write (a closed pipe, as under
/// `walctl dump | head`, or a full disk) stops the output, not the command: the first error is
/// kept for `main`, which reports it unless it was a closed pipe.
struct Out {
    json: bool,
    failed: std::cell::RefCell<Option<std::io::Error>>,
}

impl Out {
    fn new(json: bool) -> Out {
        Out {
            json,
            failed: std::cell::RefCell::new(None),
        }
    }
    fn line(&self, s: impl AsRef<str>) {
        if !self.json {
            self.write(s.as_ref());
        }
    }
    fn value(&self, v: &Value) {
        if self.json {
            self.write(&v.to_string());
        }
    }
    fn write(&self, s: &str) {
        let mut failed = self.failed.borrow_mut();
        if failed.is_none() {
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = writeln!(stdout, "{s}").and_then(|()| stdout.flush()) {
                *failed = Some(e);
            }
        }
    }
    /// Whether the reader of the output went away (a closed pipe).
    fn pipe_closed(&self) -> bool {
        self.failed
            .borrow()
            .as_ref()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    }
    /// The exit code once the command is done: `code`, unless its output was lost.
    fn finish(&self, code: u8) -> u8 {
        match self.failed.borrow_mut().take() {
            None => code,
            Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
            Some(e) => {
                let _ = writeln!(std::io::stderr(), "walctl: writing the output: {e}");
                EXIT_FAILED
            }
        }
    }
}

/// A progress bar on stderr, shown only when stderr is a terminal and the scan has taken
/// longer than a moment.
struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    enabled: bool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            bar: None,
            started: Instant::now(),
            enabled: std::io::stderr().is_terminal(),
        }
    }

    fn update(&mut self, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        if self.bar.is_none() && self.started.elapsed() > Duration::from_millis(300) {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} scanning [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
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
            out.value(&json!({"ok": false, "error": f.message, "exit_code": f.code}));
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
    let vfs: Arc<dyn Vfs> = Arc::new(StdVfs);
    match &cli.command {
        Command::Stat => stat(&data, &vfs, out),
        Command::Dump {
            from,
            to,
            payload_limit,
            follow: true,
        } => dump_follow(
            &data,
            &vfs,
            out,
            (*from, *to),
            *payload_limit,
            cli.max_transaction_size,
        ),
        Command::Dump {
            from,
            to,
            payload_limit,
            follow: false,
        } => dump(
            &data,
            &vfs,
            out,
            (*from, *to),
            *payload_limit,
            cli.max_transaction_size,
        ),
        Command::Verify => verify(&data, &vfs, out),
        Command::Repair { dry_run, mode } => repair(&data, &vfs, out, *dry_run, *mode),
        Command::Snapshot { action } => match action {
            SnapshotAction::Ls => snapshot_ls(&data, &vfs, out),
            SnapshotAction::Verify => snapshot_verify(&data, &vfs, out),
        },
        Command::Replay { to, mode } => replay(
            &data,
            &vfs,
            out,
            to.map(Lsn),
            *mode,
            cli.max_transaction_size,
        ),
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

fn inspect(data: &DataDir, vfs: &Arc<dyn Vfs>) -> Result<wal_log::Inspection, Failure> {
    let mut progress = Progress::new();
    let r = wal_log::inspect(&**vfs, &data.log_dir(), &mut |d, t| progress.update(d, t));
    progress.finish();
    Ok(r?)
}

fn end_str(end: &ScanEnd) -> String {
    match end {
        ScanEnd::Clean {
            sealed: Some(n), ..
        } => format!("sealed (next {n})"),
        ScanEnd::Clean { .. } => "open".into(),
        ScanEnd::TornTail { offset, reason } => format!("torn tail at byte {offset}: {reason}"),
        ScanEnd::Corrupt { offset, reason } => format!("CORRUPT at byte {offset}: {reason}"),
    }
}

fn lsn_range(s: &SegmentScan) -> String {
    if s.last_lsn < s.first_lsn {
        format!("{}.. (empty)", s.first_lsn)
    } else {
        format!("{}..={}", s.first_lsn, s.last_lsn)
    }
}

fn segment_json(s: &SegmentScan) -> Value {
    json!({
        "seq": s.seq.0,
        "file": s.path,
        "file_len": s.file_len,
        "data_end": s.data_end,
        "torn_end": s.torn_end,
        "first_lsn": s.first_lsn.0,
        "last_lsn": s.last_lsn.0,
        "frames": s.frames,
        "transactions": s.transactions,
        "end": end_json(&s.end),
        "header_error": s.header_error.as_ref().map(ToString::to_string),
        "payload_schema": s.header.map(|h| h.payload_schema),
    })
}

fn end_json(end: &ScanEnd) -> Value {
    match end {
        ScanEnd::Clean { offset, sealed } => {
            json!({"kind": "clean", "offset": offset, "sealed_next": sealed.map(|s| s.0)})
        }
        ScanEnd::TornTail { offset, reason } => {
            json!({"kind": "torn_tail", "offset": offset, "reason": reason})
        }
        ScanEnd::Corrupt { offset, reason } => {
            json!({"kind": "corrupt", "offset": offset, "reason": reason})
        }
    }
}

fn verdict_json(v: &Verdict) -> Value {
    match v {
        Verdict::Sound => json!({"kind": "sound"}),
        Verdict::TornTail {
            segment,
            offset,
            reason,
        } => json!({"kind": "torn_tail", "segment": segment, "offset": offset, "reason": reason}),
        Verdict::Corrupt {
            segment,
            offset,
            reason,
        } => json!({"kind": "corrupt", "segment": segment, "offset": offset, "reason": reason}),
    }
}

fn stat(data: &DataDir, vfs: &Arc<dyn Vfs>, out: &Out) -> Result<u8, Failure> {
    let ins = inspect(data, vfs)?;
    let store = data.snapshots(vfs.clone());
    let listing = store.list()?;
    let verdict = ins.verdict();
    let last_checkpoint = ins.segments.iter().rev().find_map(|s| s.last_checkpoint);
    let total: u64 = ins.segments.iter().map(|s| s.file_len).sum();
    let mut snaps = Vec::new();
    for f in &listing.snapshots {
        let h = store.read_header(f);
        snaps.push((f, h));
    }
    out.value(&json!({
        "root": data.root(),
        "log_id": ins.log_id.map(|i| i.to_string()),
        "segments": ins.segments.iter().map(segment_json).collect::<Vec<_>>(),
        "segment_bytes": total,
        "log_end": ins.valid_end().0,
        "first_lsn": ins.segments.first().map(|s| s.first_lsn.0),
        "verdict": verdict_json(&verdict),
        "open_streams": ins.open_streams.iter().map(|l| l.0).collect::<Vec<_>>(),
        "last_checkpoint": last_checkpoint.map(|(at, fence)| json!({"lsn": at.0, "fence": fence.0})),
        "aside_files": ins.aside_files,
        "prealloc": ins.prealloc,
        "recycled_files": ins.recycled_files,
        "snapshots": snaps.iter().map(|(f, h)| json!({
            "file": f.path,
            "fence": f.fence.0,
            "file_len": f.file_len,
            "log_id": h.as_ref().ok().map(|h| h.log_id.to_string()),
            "created_unix_ms": h.as_ref().ok().map(|h| h.created_unix_ms),
            "event_schema": h.as_ref().ok().map(|h| h.event_schema),
            "header_error": h.as_ref().err().map(ToString::to_string),
        })).collect::<Vec<_>>(),
        "temp_snapshots": listing.temp_files,
        "corrupt_snapshots": listing.corrupt_files,
        "other_snapshot_files": listing.other_files,
    }));
    out.line(format!("data directory   {}", data.root().display()));
    out.line(format!(
        "log id           {}",
        ins.log_id.map_or("-".into(), |i| i.to_string())
    ));
    out.line(format!(
        "segments         {} ({} bytes)",
        ins.segments.len(),
        total
    ));
    for s in &ins.segments {
        out.line(format!(
            "  {:>6}  {}  {:>12} bytes  LSN {:<24} {}{}",
            s.seq.0,
            s.path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            s.file_len,
            lsn_range(s),
            end_str(&s.end),
            match s.header.map(|h| h.payload_schema) {
                Some(v) if v != 0 => format!("  schema {v}"),
                _ => String::new(),
            }
        ));
    }
    for r in &ins.recycled_files {
        out.line(format!(
            "  recycled (kept for reuse, truncated data only): {r}"
        ));
    }
    for a in &ins.aside_files {
        out.line(format!("  aside: {a}"));
    }
    // Not "durable": a read-only scan of a live log also sees frames not yet fsynced.
    out.line(format!(
        "log end          LSN {} (last frame of the valid prefix)",
        ins.valid_end()
    ));
    if let Some((at, fence)) = last_checkpoint {
        out.line(format!(
            "last checkpoint  marker at LSN {at}, snapshot fence {fence}"
        ));
    }
    match &verdict {
        Verdict::Sound => out.line("state            sound"),
        Verdict::TornTail {
            segment, offset, ..
        } => out.line(format!(
            "state            torn tail in {} at byte {offset}",
            segment.display()
        )),
        Verdict::Corrupt {
            segment, offset, ..
        } => out.line(format!(
            "state            CORRUPT in {} at byte {offset}",
            segment.display()
        )),
    }
    out.line(format!("snapshots        {}", listing.snapshots.len()));
    for (f, h) in &snaps {
        let status = match h {
            Ok(_) => "header ok".to_string(),
            Err(e) => format!("BAD: {e}"),
        };
        out.line(format!(
            "  fence {:<12} {}  {} bytes  {status}",
            f.fence,
            f.path.display(),
            f.file_len
        ));
    }
    for t in &listing.temp_files {
        out.line(format!("  half-written (ignored): {}", t.display()));
    }
    for t in &listing.corrupt_files {
        out.line(format!("  set aside as corrupt: {}", t.display()));
    }
    Ok(EXIT_OK)
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A payload as JSON when it is a JSON document, else as (possibly truncated) hex.
fn render_payload(bytes: &[u8], limit: usize) -> Value {
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        return json!({"len": bytes.len(), "json": v});
    }
    let shown = &bytes[..bytes.len().min(limit)];
    json!({"len": bytes.len(), "hex": hex(shown), "truncated": shown.len() < bytes.len()})
}

fn render_tx(tx: &Transaction, limit: usize) -> Value {
    let records: Vec<Value> = tx
        .records()
        .map(|r| match r {
            Ok(b) => render_payload(&b, limit),
            Err(e) => json!({"error": e.to_string()}),
        })
        .collect();
    json!({"lsn": tx.lsn.0, "multi": tx.multi, "bytes": tx.body.len(), "records": records})
}

fn payload_text(v: &Value) -> String {
    if let Some(j) = v.get("json") {
        return format!("json {j}");
    }
    let hex = v.get("hex").and_then(Value::as_str).unwrap_or_default();
    let more = if v.get("truncated").and_then(Value::as_bool) == Some(true) {
        "…"
    } else {
        ""
    };
    format!("hex {hex}{more}")
}

fn frame_json(seq: u64, f: &Frame) -> Value {
    let mut v = json!({
        "type": "frame",
        "lsn": f.lsn.0,
        "kind": format!("{:?}", f.kind),
        "segment": seq,
        "offset": f.offset,
        "payload_len": f.payload.len(),
        "multi": f.is_multi(),
    });
    if let Some(s) = f.stream().filter(|_| f.kind != FrameKind::FragBegin) {
        v["stream"] = json!(s.0);
    }
    if let Some(c) = f.checkpoint_lsn() {
        v["snapshot_fence"] = json!(c.0);
    }
    if let Some(n) = f.sealed_next() {
        v["next_segment"] = json!(n.0);
    }
    v
}

fn dump(
    data: &DataDir,
    vfs: &Arc<dyn Vfs>,
    out: &Out,
    (from, to): (Option<u64>, Option<u64>),
    limit: usize,
    budget: u64,
) -> Result<u8, Failure> {
    let from = Lsn(from.unwrap_or(0));
    let to = Lsn(to.unwrap_or(u64::MAX));
    let mut frames = wal_log::frames(vfs.clone(), &data.log_dir())?;
    // Transactions that commit before `from` are not shown, but their fragments are still
    // assembled (a stream may begin before `from` and commit inside the range).
    let mut asm = TransactionAssembler::new(from.prev(), budget);
    let (mut nframes, mut ntx) = (0u64, 0u64);
    let mut log_start = None;
    for item in frames.by_ref() {
        // Nobody reads the rest (`walctl dump | head`): stop rather than scan a large log
        // for nothing. The verdict on the log's end is then not known: `verify` gives it.
        if out.pipe_closed() {
            return Ok(EXIT_OK);
        }
        let df = item?;
        let f = df.frame;
        if f.lsn > to {
            break;
        }
        let log_start = *log_start.get_or_insert(f.lsn);
        let show = f.lsn >= from;
        if show {
            nframes += 1;
            let v = frame_json(df.seq.0, &f);
            out.value(&v);
            let extra = match f.kind {
                FrameKind::Checkpoint => {
                    format!(" snapshot fence {}", f.checkpoint_lsn().unwrap_or_default())
                }
                FrameKind::Seal => format!(
                    " next segment {}",
                    f.sealed_next().map(|s| s.0).unwrap_or_default()
                ),
                FrameKind::FragPart | FrameKind::FragEnd | FrameKind::FragAbort => {
                    format!(" stream {}", f.stream().unwrap_or_default())
                }
                _ => String::new(),
            };
            out.line(format!(
                "{:>10} {:<10} seg {} @{} {} bytes{}{extra}",
                f.lsn.0,
                format!("{:?}", f.kind),
                df.seq,
                f.offset,
                f.payload.len(),
                if f.is_multi() { " multi" } else { "" },
            ));
        }
        // The rest of a large transaction that began before the log's first frame: a
        // truncation interrupted between its segments removed the beginning (recovery skips
        // these too). Shown, never assembled.
        if let Some(began) = f.stream().filter(|s| *s < log_start) {
            if show && f.kind == FrameKind::FragEnd {
                out.value(
                    &json!({"type": "truncated_transaction", "lsn": f.lsn.0, "began": began.0}),
                );
                out.line(format!(
                    "           commit LSN {} of a transaction begun at LSN {began}, before the log's first LSN {log_start} (truncated: not shown)",
                    f.lsn
                ));
            }
            continue;
        }
        if let Some(tx) = asm.push(f)? {
            ntx += 1;
            let mut v = render_tx(&tx, limit);
            v["type"] = json!("transaction");
            out.value(&v);
            if let Some(records) = v.get("records").and_then(Value::as_array) {
                out.line(format!(
                    "           commit LSN {} ({} bytes, {} record{})",
                    tx.lsn,
                    tx.body.len(),
                    records.len(),
                    if records.len() == 1 { "" } else { "s" }
                ));
                for r in records {
                    out.line(format!("             {}", payload_text(r)));
                }
            }
        }
    }
    let (code, end) = match frames.end() {
        Some((path, end @ ScanEnd::TornTail { offset, .. })) => {
            out.line(format!(
                "end: torn tail in {} at byte {offset}",
                path.display()
            ));
            (EXIT_TORN, Some((path.clone(), end.clone())))
        }
        Some((path, end @ ScanEnd::Corrupt { offset, .. })) => {
            out.line(format!(
                "end: CORRUPT in {} at byte {offset}",
                path.display()
            ));
            (EXIT_CORRUPT, Some((path.clone(), end.clone())))
        }
        _ => (EXIT_OK, None),
    };
    out.value(&json!({
        "type": "end",
        "frames": nframes,
        "transactions": ntx,
        "damage": end.map(|(p, e)| json!({"segment": p, "end": end_json(&e)})),
    }));
    out.line(format!("{nframes} frames, {ntx} transactions"));
    Ok(code)
}

/// `dump --follow`: transactions as they become durable, from a reader in this process that
/// takes no lock (see `wal_log::TailReader` for what it can prove durable), until
/// interrupted, past `to`, or when the output pipe closes.
fn dump_follow(
    data: &DataDir,
    vfs: &Arc<dyn Vfs>,
    out: &Out,
    (from, to): (Option<u64>, Option<u64>),
    limit: usize,
    budget: u64,
) -> Result<u8, Failure> {
    let opts = TailOptions::default()
        .vfs(vfs.clone())
        .max_transaction_size(budget);
    let mut reader = TailReader::open(data.log_dir(), Lsn(from.unwrap_or(0)), opts)?;
    let to = Lsn(to.unwrap_or(u64::MAX));
    let mut told = false;
    loop {
        if out.pipe_closed() {
            return Ok(EXIT_OK);
        }
        let Some(tx) = reader.next_timeout(Duration::from_millis(200))? else {
            if !told && !reader.published() {
                told = true;
                let _ = writeln!(
                    std::io::stderr(),
                    "walctl: the writer does not publish its durable LSN (wal_log::Options::publish_durable): transactions appear once their segment is sealed"
                );
            }
            continue;
        };
        if tx.lsn > to {
            return Ok(EXIT_OK);
        }
        let mut v = render_tx(&tx, limit);
        v["type"] = json!("transaction");
        v["prev"] = json!(tx.prev.0);
        out.value(&v);
        if let Some(records) = v.get("records").and_then(Value::as_array) {
            out.line(format!(
                "commit LSN {} (previous {}, {} bytes, {} record{})",
                tx.lsn,
                tx.prev,
                tx.body.len(),
                records.len(),
                if records.len() == 1 { "" } else { "s" }
            ));
            for r in records {
                out.line(format!("  {}", payload_text(r)));
            }
        }
    }
}

fn verify(data: &DataDir, vfs: &Arc<dyn Vfs>, out: &Out) -> Result<u8, Failure> {
    let started = Instant::now();
    let ins = inspect(data, vfs)?;
    // A log without segments under snapshots was moved or is on a volume not mounted:
    // recovery refuses it, so it is not sound.
    if ins.segments.is_empty() && !data.snapshots(vfs.clone()).list()?.snapshots.is_empty() {
        return Err(ReplayError::LogMissing {
            dir: data.log_dir(),
        }
        .into());
    }
    let elapsed = started.elapsed();
    let verdict = ins.verdict();
    let bytes: u64 = ins.segments.iter().map(|s| s.file_len).sum();
    let code = match verdict {
        Verdict::Sound => EXIT_OK,
        Verdict::TornTail { .. } => EXIT_TORN,
        Verdict::Corrupt { .. } => EXIT_CORRUPT,
    };
    out.value(&json!({
        "verdict": verdict_json(&verdict),
        "exit_code": code,
        "segments": ins.segments.iter().map(segment_json).collect::<Vec<_>>(),
        "last_lsn": ins.last_lsn().0,
        "bytes": bytes,
        "elapsed_s": elapsed.as_secs_f64(),
    }));
    for s in &ins.segments {
        out.line(format!(
            "{}: {} frames, LSN {}, {}",
            s.path.display(),
            s.frames,
            lsn_range(s),
            end_str(&s.end)
        ));
    }
    match &verdict {
        Verdict::Sound => out.line(format!(
            "sound: {} segments, {bytes} bytes, last LSN {}",
            ins.segments.len(),
            ins.last_lsn()
        )),
        Verdict::TornTail {
            segment,
            offset,
            reason,
        } => out.line(format!(
            "torn tail: segment {} byte offset {offset}: {reason}",
            segment.display()
        )),
        Verdict::Corrupt {
            segment,
            offset,
            reason,
        } => out.line(format!(
            "CORRUPT: segment {} byte offset {offset}: {reason}",
            segment.display()
        )),
    }
    Ok(code)
}

fn repair(
    data: &DataDir,
    vfs: &Arc<dyn Vfs>,
    out: &Out,
    dry_run: bool,
    mode: RepairMode,
) -> Result<u8, Failure> {
    let recovery: RecoveryMode = mode.into();
    refuse_an_empty_log(data, vfs)?;
    // Refused before anything is read or changed, by the dry run as by the real run.
    wal_log::check_not_open(&**vfs, &data.log_dir()).map_err(refuse_locked)?;
    let store = data.snapshots(vfs.clone());
    let ins = inspect(data, vfs)?;
    // Snapshots past the end the repair keeps hold transactions the log no longer has (a
    // salvage cut them off). Recovery would set them aside, but only while the log still ends
    // there: the abort frames the open writes for cut-off large transactions take those LSNs
    // again. So they are set aside first, before the log changes.
    // The same decisions as the repair's open makes (`Inspection::recovery_plan`).
    let recovery_plan = ins.recovery_plan(recovery);
    let ahead = match (ins.log_id, &recovery_plan) {
        (Some(id), Ok(p)) => store.ahead_of(&store.list()?.snapshots, id, p.last_lsn)?,
        _ => Vec::new(),
    };
    if dry_run {
        let verdict = ins.verdict();
        let mut plan: Vec<Value> = Vec::new();
        let mut code = EXIT_OK;
        let mut note = String::new();
        match recovery_plan {
            Ok(p) => {
                plan = p
                    .moved_aside
                    .iter()
                    .map(|m| json!({"from": m.from, "offset": m.offset, "bytes": m.bytes, "to": m.to, "reason": m.reason}))
                    .collect();
                if verdict == Verdict::Sound && ahead.is_empty() {
                    note = "the log is sound: nothing to repair".into();
                }
            }
            Err(e) => {
                code = wal_code(&e);
                note = if ins.refusal().is_some() {
                    format!(
                        "{e}; no repair mode opens this log: put the missing, foreign or damaged file right first (docs/operations.md)"
                    )
                } else if matches!(e, WalError::Corrupt { .. })
                    && matches!(mode, RepairMode::TornTail)
                {
                    format!(
                        "{e}: torn-tail mode does not repair corruption; --mode salvage-prefix would keep the valid prefix and move the rest aside"
                    )
                } else {
                    format!("{e}: no repair mode opens this log")
                };
            }
        }
        out.value(&json!({
            "dry_run": true,
            "mode": format!("{mode:?}"),
            "verdict": verdict_json(&verdict),
            "would_move_aside": plan,
            "would_set_aside_snapshots": ahead.iter().map(|s| json!({"file": s.path, "fence": s.fence.0})).collect::<Vec<_>>(),
            "open_streams_to_abort": ins.open_streams.iter().map(|l| l.0).collect::<Vec<_>>(),
            "note": note,
            "exit_code": code,
        }));
        if !note.is_empty() {
            out.line(&note);
        }
        for p in &plan {
            out.line(format!(
                "would move {} bytes at offset {} of {} to {}",
                p["bytes"],
                p["offset"],
                p["from"].as_str().unwrap_or_default(),
                p["to"].as_str().unwrap_or_default()
            ));
        }
        for s in &ahead {
            out.line(format!(
                "would set snapshot {} aside (*.corrupt): its fence {} is past the log's end after the repair",
                s.path.display(),
                s.fence
            ));
        }
        for l in &ins.open_streams {
            out.line(format!(
                "would close unfinished fragmented transaction begun at LSN {l} with an abort frame"
            ));
        }
        if plan.is_empty() && ins.open_streams.is_empty() && ahead.is_empty() && note.is_empty() {
            out.line("nothing to repair");
        }
        return Ok(code);
    }
    let mut set_aside: Vec<(PathBuf, PathBuf)> = Vec::new();
    let aside_to = store.set_aside_all(&ahead)?;
    set_aside.extend(ahead.iter().map(|s| s.path.clone()).zip(aside_to));
    let opts = Options::default()
        .recovery(recovery)
        .create_if_missing(false)
        .preallocate(false)
        .sync(SyncPolicy::Always)
        .vfs(vfs.clone());
    let (wal, report) = Wal::open(data.log_dir(), opts).map_err(|e| match e {
        e @ WalError::AlreadyOpen { .. } => refuse_locked(e),
        WalError::Corrupt { .. } if matches!(mode, RepairMode::TornTail) => Failure::new(
            EXIT_CORRUPT,
            format!("{e}; torn-tail mode does not repair corruption: see docs/operations.md before using --mode salvage-prefix"),
        ),
        other => other.into(),
    })?;
    // Had the log changed since the inspection, the open's end is the one that counts.
    let late = store.ahead_of(&store.list()?.snapshots, wal.log_id(), report.last_lsn)?;
    let late_to = store.set_aside_all(&late)?;
    set_aside.extend(late.iter().map(|s| s.path.clone()).zip(late_to));
    let log_end = wal.last_lsn();
    drop(wal);
    let moved: Vec<Value> = report
        .moved_aside
        .iter()
        .map(|m| json!({"from": m.from, "offset": m.offset, "bytes": m.bytes, "to": m.to, "reason": m.reason}))
        .collect();
    out.value(&json!({
        "dry_run": false,
        "mode": format!("{mode:?}"),
        "moved_aside": moved,
        "bytes_moved_aside": report.bytes_moved_aside(),
        "aborted_streams": report.aborted_streams.iter().map(|l| l.0).collect::<Vec<_>>(),
        "snapshots_set_aside": set_aside.iter().map(|(from, to)| json!({"from": from, "to": to})).collect::<Vec<_>>(),
        "last_lsn": log_end.0,
        "segments": report.segments,
    }));
    for m in &report.moved_aside {
        out.line(format!(
            "moved {} bytes at offset {} of {} to {} ({})",
            m.bytes,
            m.offset,
            m.from.display(),
            m.to.display(),
            m.reason
        ));
    }
    for (from, to) in &set_aside {
        out.line(format!(
            "set snapshot {} aside to {}: its fence is past the log's end after the repair",
            from.display(),
            to.display()
        ));
    }
    for l in &report.aborted_streams {
        out.line(format!(
            "closed unfinished fragmented transaction begun at LSN {l} with an abort frame"
        ));
    }
    if report.moved_aside.is_empty() && report.aborted_streams.is_empty() && set_aside.is_empty() {
        out.line("nothing to repair: the log is sound");
    }
    out.line(format!(
        "log ends at LSN {log_end} in {} segments",
        report.segments
    ));
    Ok(EXIT_OK)
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
    if names
        .iter()
        .any(|n| matches!(wal_log::classify(n), wal_log::Entry::Segment(_)))
    {
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

fn snapshot_ls(data: &DataDir, vfs: &Arc<dyn Vfs>, out: &Out) -> Result<u8, Failure> {
    let store = data.snapshots(vfs.clone());
    let listing = store.list()?;
    let mut rows = Vec::new();
    for f in &listing.snapshots {
        let h = store.read_header(f);
        out.line(format!(
            "fence {:<12} {:>12} bytes  {}  {}",
            f.fence,
            f.file_len,
            f.path.display(),
            match &h {
                Ok(h) => format!(
                    "log {} created {} ms event schema {}",
                    h.log_id, h.created_unix_ms, h.event_schema
                ),
                Err(e) => format!("BAD HEADER: {e}"),
            }
        ));
        rows.push(json!({
            "file": f.path,
            "fence": f.fence.0,
            "file_len": f.file_len,
            "log_id": h.as_ref().ok().map(|h| h.log_id.to_string()),
            "created_unix_ms": h.as_ref().ok().map(|h| h.created_unix_ms),
            "event_schema": h.as_ref().ok().map(|h| h.event_schema),
            "header_error": h.as_ref().err().map(ToString::to_string),
        }));
    }
    for t in &listing.temp_files {
        out.line(format!("half-written (ignored): {}", t.display()));
    }
    for t in &listing.corrupt_files {
        out.line(format!("set aside as corrupt: {}", t.display()));
    }
    if listing.snapshots.is_empty() {
        out.line("no snapshots");
    }
    out.value(&json!({
        "snapshots": rows,
        "temp_files": listing.temp_files,
        "corrupt_files": listing.corrupt_files,
        "other_files": listing.other_files,
    }));
    Ok(EXIT_OK)
}

fn snapshot_verify(data: &DataDir, vfs: &Arc<dyn Vfs>, out: &Out) -> Result<u8, Failure> {
    let store: SnapshotStore = data.snapshots(vfs.clone());
    let listing = store.list()?;
    let log_id = wal_replay::read_log_id(&**vfs, &data.log_dir())?;
    let mut rows = Vec::new();
    let mut bad = 0;
    for f in &listing.snapshots {
        match store.verify(f, log_id) {
            Ok(v) => {
                out.line(format!(
                    "ok       fence {:<12} {} ({} bytes)",
                    f.fence,
                    f.path.display(),
                    v.header.body_len
                ));
                rows.push(json!({"file": f.path, "fence": f.fence.0, "ok": true, "bytes": v.header.body_len}));
            }
            Err(ReplayError::SnapshotGone { .. }) => {
                // A live engine's checkpoint pruned it after the listing: nothing to verify.
                out.line(format!(
                    "pruned   fence {:<12} {} (removed by a checkpoint while verifying)",
                    f.fence,
                    f.path.display()
                ));
                rows.push(json!({"file": f.path, "fence": f.fence.0, "ok": null, "pruned": true}));
            }
            Err(ReplayError::BadSnapshot { reason, .. }) => {
                bad += 1;
                out.line(format!(
                    "CORRUPT  fence {:<12} {}: {reason}",
                    f.fence,
                    f.path.display()
                ));
                rows.push(
                    json!({"file": f.path, "fence": f.fence.0, "ok": false, "reason": reason}),
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    if listing.snapshots.is_empty() {
        out.line("no snapshots");
    }
    let code = if bad > 0 { EXIT_SNAPSHOT } else { EXIT_OK };
    out.value(&json!({
        "snapshots": rows,
        "unusable": bad,
        "temp_files": listing.temp_files,
        "exit_code": code,
    }));
    Ok(code)
}

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

fn replay(
    data: &DataDir,
    vfs: &Arc<dyn Vfs>,
    out: &Out,
    to: Option<Lsn>,
    mode: ReplayMode,
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
    let progress = Arc::new(Mutex::new(Progress::new()));
    let bar = progress.clone();
    let opts = opts.on_progress(move |d, t| {
        bar.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .update(d, t);
    });
    let r = wal_replay::replay_read_only_with_codec(data.root(), &mut state, &NoCodec, opts);
    progress
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .finish();
    let report = r?;
    out.value(&report_json(&report, state.bytes));
    print_report(out, &report, state.bytes);
    Ok(EXIT_OK)
}

fn report_json(r: &RecoveryReport, tx_bytes: u64) -> Value {
    json!({
        "read_only": r.read_only,
        "log_id": r.log_id.map(|i| i.to_string()),
        "new_log": r.created,
        "snapshot": r.snapshot.as_ref().map(|s| json!({"file": s.path, "fence": s.fence.0, "bytes": s.bytes})),
        "rejected_snapshots": r.rejected_snapshots.iter().map(|s| json!({"file": s.path, "reason": s.reason, "would_set_aside": s.ahead_of_log || s.restore_failed, "restore_failed": s.restore_failed})).collect::<Vec<_>>(),
        "snapshots_after_target": r.snapshots_after_target,
        "target": r.target.map(|t| t.0),
        "replay_from": r.replay_from.0,
        "applied_range": r.applied_range.map(|(a, b)| json!([a.0, b.0])),
        "transactions_applied": r.applied,
        "transaction_bytes": tx_bytes,
        "skipped_aborted": r.skipped_aborted,
        "skipped_unfinished": r.skipped_unfinished,
        "log_start": r.log_start.0,
        "log_end": r.log_end.0,
        "bytes_scanned": r.bytes_replayed,
        "would_move_aside": r.moved_aside.iter().map(|a| json!({"from": a.from, "offset": a.offset, "bytes": a.bytes, "reason": a.reason})).collect::<Vec<_>>(),
        "bytes_moved_aside": r.bytes_moved_aside,
        "elapsed_s": r.elapsed.as_secs_f64(),
    })
}

fn print_report(out: &Out, r: &RecoveryReport, tx_bytes: u64) {
    if r.created {
        out.line("the log is empty: recovery would start a new log with an empty state");
        return;
    }
    for s in &r.rejected_snapshots {
        out.line(format!(
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
        ));
    }
    for s in &r.snapshots_after_target {
        out.line(format!(
            "would ignore snapshot {} (after the target)",
            s.display()
        ));
    }
    match &r.snapshot {
        Some(s) => out.line(format!(
            "would restore snapshot {} (fence {}, {} bytes)",
            s.path.display(),
            s.fence,
            s.bytes
        )),
        None => out.line("would start from an empty state (no usable snapshot)"),
    }
    for a in &r.moved_aside {
        out.line(format!(
            "would move {} bytes at offset {} of {} aside ({})",
            a.bytes,
            a.offset,
            a.from.display(),
            a.reason
        ));
    }
    let range = r
        .applied_range
        .map_or("none".to_string(), |(a, b)| format!("LSN {a}..={b}"));
    out.line(format!(
        "would apply {} transactions ({tx_bytes} bytes), {range}, replaying from LSN {}{}",
        r.applied,
        r.replay_from,
        r.target
            .map(|t| format!(" up to target LSN {t}"))
            .unwrap_or_default()
    ));
    out.line(format!(
        "would skip {} aborted and {} unfinished fragmented transactions",
        r.skipped_aborted, r.skipped_unfinished
    ));
    out.line(format!(
        "log holds LSN {}..={} (valid end after recovery)",
        r.log_start, r.log_end
    ));
}
