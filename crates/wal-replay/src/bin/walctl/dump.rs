//! `walctl dump` (frames and transactions of a range) and `walctl dump --follow` (each
//! transaction once it is durable): a stream of small items, one line of JSON each.

use serde::Serialize;
use serde_json::Value;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wal_format::scan::ScanEnd;
use wal_format::{Frame, FrameKind, Lsn};
use wal_log::{TailOptions, TailReader, Transaction, Vfs};
use wal_replay::DataDir;
use wal_replay::inspect::TransactionAssembler;

use crate::exit::{EXIT_CORRUPT, EXIT_OK, EXIT_TORN, Failure};
use crate::human;
use crate::output::{Out, Progress};
use crate::scan::EndRow;

/// The LSN range asked for and how much to show of each payload.
pub(crate) struct DumpArgs {
    pub(crate) from: Option<u64>,
    pub(crate) to: Option<u64>,
    pub(crate) payload_limit: usize,
    /// The most held for one large (fragmented) transaction.
    pub(crate) budget: u64,
}

/// One item of `dump`'s output.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum DumpItem {
    /// A frame in the range.
    Frame(FrameRow),
    /// The commit of a large transaction whose beginning a truncation removed: named, not
    /// shown.
    TruncatedTransaction {
        lsn: u64,
        began: u64,
        log_start: u64,
    },
    /// A committed transaction.
    Transaction(TxRow),
    /// The end: counts, and the damage the scan stopped at, if any.
    End {
        frames: u64,
        transactions: u64,
        damage: Option<DamageRow>,
    },
}

/// One item of `dump --follow`'s output.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum FollowItem {
    /// A transaction, once durable.
    Transaction(TxRow),
}

#[derive(Serialize)]
struct FrameRow {
    lsn: u64,
    kind: String,
    segment: u64,
    offset: usize,
    payload_len: usize,
    multi: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot_fence: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_segment: Option<u64>,
}

impl FrameRow {
    fn new(seq: u64, f: &Frame) -> FrameRow {
        FrameRow {
            lsn: f.lsn.0,
            kind: format!("{:?}", f.kind),
            segment: seq,
            offset: f.offset,
            payload_len: f.payload.len(),
            multi: f.is_multi(),
            stream: f
                .stream()
                .filter(|_| f.kind != FrameKind::FragBegin)
                .map(|s| s.0),
            snapshot_fence: f.checkpoint_lsn().map(|c| c.0),
            next_segment: f.sealed_next().map(|n| n.0),
        }
    }
}

/// A transaction and its records. `prev` (the transaction before it) only with `--follow`.
#[derive(Serialize)]
struct TxRow {
    lsn: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    prev: Option<u64>,
    multi: bool,
    bytes: usize,
    records: Vec<RecordRow>,
}

impl TxRow {
    fn new(tx: &Transaction, limit: usize) -> TxRow {
        TxRow {
            lsn: tx.lsn.0,
            prev: None,
            multi: tx.multi,
            bytes: tx.body.len(),
            records: tx
                .records()
                .map(|r| match r {
                    Ok(b) => RecordRow::new(&b, limit),
                    Err(e) => RecordRow::Error {
                        error: e.to_string(),
                    },
                })
                .collect(),
        }
    }

    /// `(N bytes, M records[, multi])`.
    fn summary(&self) -> String {
        let n = self.records.len();
        let multi = if self.multi { ", multi" } else { "" };
        format!(
            "{} bytes, {}{multi}",
            self.bytes,
            human::count(n as u64, "record")
        )
    }
}

/// A payload: as JSON when it is a JSON document, else as (possibly truncated) hex.
#[derive(Serialize)]
#[serde(untagged)]
enum RecordRow {
    Json {
        len: usize,
        json: Value,
    },
    Hex {
        len: usize,
        hex: String,
        truncated: bool,
    },
    Error {
        error: String,
    },
}

impl RecordRow {
    fn new(bytes: &[u8], limit: usize) -> RecordRow {
        // Only a payload that starts like a JSON object or array is parsed: a parse attempt on
        // every binary payload costs more than the rest of the dump.
        if matches!(bytes.first(), Some(b'{' | b'['))
            && let Ok(json) = serde_json::from_slice::<Value>(bytes)
        {
            return RecordRow::Json {
                len: bytes.len(),
                json,
            };
        }
        let shown = &bytes[..bytes.len().min(limit)];
        RecordRow::Hex {
            len: bytes.len(),
            hex: hex(shown),
            truncated: shown.len() < bytes.len(),
        }
    }
}

/// Lower-case hex, two digits a byte, by table lookup.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0xf)]);
    }
    // Only ASCII digits were pushed.
    String::from_utf8(out).unwrap_or_default()
}

impl fmt::Display for RecordRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordRow::Json { json, .. } => write!(f, "json {json}"),
            RecordRow::Hex { hex, truncated, .. } => {
                write!(f, "hex {hex}{}", if *truncated { "…" } else { "" })
            }
            RecordRow::Error { error } => write!(f, "error {error}"),
        }
    }
}

/// Where the scan stopped at damage.
#[derive(Serialize)]
struct DamageRow {
    segment: PathBuf,
    end: EndRow,
}

impl fmt::Display for DumpItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DumpItem::Frame(r) => {
                write!(
                    f,
                    "{:>10} {:<10} seg {} @{} {} bytes{}",
                    r.lsn,
                    r.kind,
                    r.segment,
                    r.offset,
                    r.payload_len,
                    if r.multi { " multi" } else { "" },
                )?;
                if let Some(fence) = r.snapshot_fence {
                    write!(f, " snapshot fence {fence}")?;
                }
                if let Some(next) = r.next_segment {
                    write!(f, " next segment {next}")?;
                }
                if let Some(stream) = r.stream {
                    write!(f, " stream {stream}")?;
                }
                writeln!(f)
            }
            DumpItem::TruncatedTransaction {
                lsn,
                began,
                log_start,
            } => writeln!(
                f,
                "           commit LSN {lsn} of a transaction begun at LSN {began}, before the first frame read (LSN {log_start}): not shown (`--from {began}` shows it, unless a truncation removed its beginning)"
            ),
            DumpItem::Transaction(tx) => {
                writeln!(f, "           commit LSN {} ({})", tx.lsn, tx.summary())?;
                for r in &tx.records {
                    writeln!(f, "             {r}")?;
                }
                Ok(())
            }
            DumpItem::End {
                frames,
                transactions,
                damage,
            } => {
                match damage.as_ref().map(|d| (&d.end, d.segment.display())) {
                    Some((EndRow::TornTail { offset, reason }, seg)) => {
                        writeln!(f, "end: torn tail in {seg} at byte {offset}: {reason}")?;
                    }
                    Some((EndRow::Corrupt { offset, reason }, seg)) => {
                        writeln!(f, "end: CORRUPT in {seg} at byte {offset}: {reason}")?;
                    }
                    _ => {}
                }
                writeln!(f, "{frames} frames, {transactions} transactions")
            }
        }
    }
}

impl fmt::Display for FollowItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let FollowItem::Transaction(tx) = self;
        writeln!(
            f,
            "commit LSN {} (previous {}, {})",
            tx.lsn,
            tx.prev.unwrap_or_default(),
            tx.summary()
        )?;
        for r in &tx.records {
            writeln!(f, "  {r}")?;
        }
        Ok(())
    }
}

pub(crate) fn dump(
    data: &DataDir,
    vfs: &Arc<dyn Vfs>,
    out: &Out,
    args: &DumpArgs,
) -> Result<u8, Failure> {
    let from = Lsn(args.from.unwrap_or(0));
    let to = Lsn(args.to.unwrap_or(u64::MAX));
    let mut frames = wal_log::inspect::frames_from(vfs.clone(), &data.log_dir(), from)?;
    let mut progress = Progress::new("dumping");
    // Transactions that commit before `from` are not shown, but their fragments are still
    // assembled (a stream may begin before `from` and commit inside the range).
    let mut asm = TransactionAssembler::new(from.prev(), args.budget);
    let (mut nframes, mut ntx) = (0u64, 0u64);
    let mut log_start = None;
    while let Some(item) = frames.next() {
        // Nobody reads the rest (`walctl dump | head`): stop rather than scan a large log
        // for nothing. The verdict on the log's end is then not known: `verify` gives it.
        if out.pipe_closed() {
            progress.finish();
            return Ok(EXIT_OK);
        }
        let df = item?;
        if df.frame.lsn.0 % 4096 == 0 {
            let (done, total) = frames.progress();
            progress.update(done, total);
        }
        let f = df.frame;
        if f.lsn > to {
            break;
        }
        let log_start = *log_start.get_or_insert(f.lsn);
        let show = f.lsn >= from;
        if show {
            nframes += 1;
            out.emit(&DumpItem::Frame(FrameRow::new(df.seq.0, &f)));
        }
        // The rest of a large transaction that began before the log's first frame: a
        // truncation interrupted between its segments removed the beginning (recovery skips
        // these too). Shown, never assembled.
        if let Some(began) = f.stream().filter(|s| *s < log_start) {
            if show && f.kind == FrameKind::FragEnd {
                out.emit(&DumpItem::TruncatedTransaction {
                    lsn: f.lsn.0,
                    began: began.0,
                    log_start: log_start.0,
                });
            }
            continue;
        }
        if let Some(tx) = asm.push(f)? {
            ntx += 1;
            out.emit(&DumpItem::Transaction(TxRow::new(&tx, args.payload_limit)));
        }
    }
    progress.finish();
    let (code, damage) = match frames.end() {
        Some((path, end @ ScanEnd::TornTail { .. })) => (EXIT_TORN, Some((path, end))),
        Some((path, end @ ScanEnd::Corrupt { .. })) => (EXIT_CORRUPT, Some((path, end))),
        _ => (EXIT_OK, None),
    };
    out.emit(&DumpItem::End {
        frames: nframes,
        transactions: ntx,
        damage: damage.map(|(path, end)| DamageRow {
            segment: path.clone(),
            end: EndRow::from(end),
        }),
    });
    Ok(code)
}

/// `dump --follow`: transactions as they become durable, from a reader in this process that
/// takes no lock (see `wal_log::TailReader` for what it can prove durable), until
/// interrupted, past `to`, or when the output pipe closes.
pub(crate) fn dump_follow(
    data: &DataDir,
    vfs: &Arc<dyn Vfs>,
    out: &Out,
    args: &DumpArgs,
) -> Result<u8, Failure> {
    let opts = TailOptions::default()
        .vfs(vfs.clone())
        .max_transaction_size(args.budget);
    let mut reader = TailReader::open(data.log_dir(), Lsn(args.from.unwrap_or(0)), opts)?;
    let to = Lsn(args.to.unwrap_or(u64::MAX));
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
        let row = TxRow {
            prev: Some(tx.prev.0),
            ..TxRow::new(&tx, args.payload_limit)
        };
        out.emit(&FollowItem::Transaction(row));
        out.flush();
    }
}
