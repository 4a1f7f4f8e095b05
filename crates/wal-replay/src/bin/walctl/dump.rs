//! `walctl dump` (frames and transactions of a range) and `walctl dump --follow` (each
//! transaction once it is durable): a stream of small items, one line of JSON each.

use bytes::Bytes;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Duration;
use wal_format::scan::ScanEnd;
use wal_format::{Frame, FrameKind, Lsn};
use wal_log::inspect::{DirFrame, Found, scan_file_past_damage, scan_past_damage};
use wal_log::{TailOptions, TailReader, Transaction, Vfs, WalError};
use wal_replay::DataDir;
use wal_replay::inspect::TransactionAssembler;

use crate::exit::{EXIT_CORRUPT, EXIT_OK, EXIT_TORN, Failure};
use crate::human;
use crate::output::{Out, Progress};
use crate::read_ahead::{Read, read_ahead};
use crate::scan::SegmentEnd;
use crate::text::{self, Text};

/// The LSN range asked for and how much to show of each payload.
pub(crate) struct DumpArgs {
    pub(crate) from: Option<u64>,
    pub(crate) to: Option<u64>,
    pub(crate) payload_limit: usize,
    /// The most held for one large (fragmented) transaction.
    pub(crate) budget: u64,
    /// Read past damage: every frame that verifies, with the damaged regions between.
    pub(crate) past_damage: bool,
    /// Read this one file (a segment, or bytes moved aside) instead of the log.
    pub(crate) file: Option<PathBuf>,
}

impl DumpArgs {
    /// `--from` and `--to`, defaulting to the whole log.
    fn range(&self) -> (Lsn, Lsn) {
        (
            Lsn(self.from.unwrap_or(0)),
            Lsn(self.to.unwrap_or(u64::MAX)),
        )
    }
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
        /// The segment and its end.
        #[serde(serialize_with = "damage_json")]
        damage: Option<(PathBuf, ScanEnd)>,
    },
    /// Bytes `from..to` of `file` where no frame verifies (`--past-damage`, `--file`).
    Damaged {
        file: PathBuf,
        from: u64,
        to: u64,
        reason: String,
    },
    /// Segments missing from the names (`--past-damage`).
    MissingSegments { first: u64, last: u64 },
    /// LSNs of transactions no frame that verifies carries: between the frames around damage
    /// (`--past-damage`); the last missing segment's seal is not counted, but with `k`
    /// consecutive segments missing the other `k - 1` seals are (where they were is not known).
    LostLsns { first: u64, last: u64 },
    /// A fragmented transaction whose beginning is in damaged or missing bytes: its commit
    /// is named, not shown (`--past-damage`).
    BrokenTransaction { lsn: u64, began: u64 },
    /// The end of `--past-damage` or `--file`: what verified, and the LSNs lost.
    PastDamageEnd {
        frames: u64,
        transactions: u64,
        damaged_regions: u64,
        lost_lsns: Vec<(u64, u64)>,
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
    kind: &'static str,
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
    /// A place-holder for an LSN a skip-damaged repair lost (a `FragAbort` naming itself):
    /// no transaction was aborted there. Absent when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    placeholder: bool,
    /// The durable watermark the frame claims (docs/format.md 3.3); absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    durable: Option<u64>,
}

impl FrameRow {
    fn new(seq: u64, f: &Frame) -> FrameRow {
        FrameRow {
            lsn: f.lsn.0,
            kind: kind_name(f.kind),
            segment: seq,
            offset: f.offset,
            payload_len: f.payload.len(),
            multi: f.is_multi(),
            stream: f
                .stream()
                .filter(|_| f.kind != FrameKind::FragBegin && !f.is_placeholder())
                .map(|s| s.0),
            placeholder: f.is_placeholder(),
            snapshot_fence: f.checkpoint_lsn().map(|c| c.0),
            next_segment: f.sealed_next().map(|n| n.0),
            durable: Some(f.durable().0).filter(|&d| d > 0),
        }
    }
}

/// The kind's name, as its `Debug` prints it, without formatting one per frame.
fn kind_name(kind: FrameKind) -> &'static str {
    match kind {
        FrameKind::Tx => "Tx",
        FrameKind::FragBegin => "FragBegin",
        FrameKind::FragPart => "FragPart",
        FrameKind::FragEnd => "FragEnd",
        FrameKind::FragAbort => "FragAbort",
        FrameKind::Checkpoint => "Checkpoint",
        FrameKind::Seal => "Seal",
        FrameKind::Watermark => "Watermark",
    }
}

impl Text for FrameRow {
    /// `LSN KIND seg S @OFFSET N bytes[ multi][ ...]`, the LSN right-aligned and the kind
    /// left-aligned in 10 columns.
    fn text(&self, out: &mut Vec<u8>) {
        const PAD: &[u8] = b"          ";
        text::num(out, self.lsn, 10);
        out.push(b' ');
        out.extend_from_slice(self.kind.as_bytes());
        out.extend_from_slice(PAD.get(self.kind.len()..).unwrap_or_default());
        out.extend_from_slice(b" seg ");
        text::num(out, self.segment, 0);
        out.extend_from_slice(b" @");
        text::num(out, self.offset as u64, 0);
        out.push(b' ');
        text::num(out, self.payload_len as u64, 0);
        out.extend_from_slice(if self.multi {
            b" bytes multi"
        } else {
            b" bytes"
        });
        if let Some(fence) = self.snapshot_fence {
            out.extend_from_slice(b" snapshot fence ");
            text::num(out, fence, 0);
        }
        if let Some(next) = self.next_segment {
            out.extend_from_slice(b" next segment ");
            text::num(out, next, 0);
        }
        if let Some(stream) = self.stream {
            out.extend_from_slice(b" stream ");
            text::num(out, stream, 0);
        }
        if self.placeholder {
            out.extend_from_slice(b" place-holder for a lost LSN");
        }
        if let Some(durable) = self.durable {
            out.extend_from_slice(b" durable<=");
            text::num(out, durable, 0);
        }
        out.push(b'\n');
    }
}

impl fmt::Display for FrameRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        text::fmt(self, f)
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

    /// `N bytes, M records[, multi]`.
    fn summary(&self, out: &mut Vec<u8>) {
        let n = self.records.len();
        text::num(out, self.bytes as u64, 0);
        out.extend_from_slice(b" bytes, ");
        text::num(out, n as u64, 0);
        out.extend_from_slice(if n == 1 { b" record" } else { b" records" });
        if self.multi {
            out.extend_from_slice(b", multi");
        }
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
        hex: Hex,
        truncated: bool,
    },
    Error {
        error: String,
    },
}

impl RecordRow {
    fn new(bytes: &Bytes, limit: usize) -> RecordRow {
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
        let shown = bytes.slice(..bytes.len().min(limit));
        RecordRow::Hex {
            len: bytes.len(),
            truncated: shown.len() < bytes.len(),
            hex: Hex(shown),
        }
    }
}

/// Bytes shown as lower-case hex, two digits a byte: kept as bytes (a slice of the
/// transaction) until written, so the text dump copies each digit once, into the output.
struct Hex(Bytes);

impl Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut digits = Vec::with_capacity(self.0.len() * 2);
        text::hex(&mut digits, &self.0);
        s.serialize_str(std::str::from_utf8(&digits).unwrap_or_default())
    }
}

impl Text for RecordRow {
    fn text(&self, out: &mut Vec<u8>) {
        // Writing to a Vec cannot fail.
        match self {
            RecordRow::Json { json, .. } => {
                let _ = write!(out, "json {json}");
            }
            RecordRow::Hex { hex, truncated, .. } => {
                out.extend_from_slice(b"hex ");
                text::hex(out, &hex.0);
                if *truncated {
                    out.extend_from_slice("…".as_bytes());
                }
            }
            RecordRow::Error { error } => {
                let _ = write!(out, "error {error}");
            }
        }
    }
}

impl fmt::Display for RecordRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        text::fmt(self, f)
    }
}

/// Where the scan stopped at damage, in walctl's JSON: `segment` and its `end`
/// ([`SegmentEnd`]), or `null`. For `#[serde(serialize_with)]`.
fn damage_json<S: Serializer>(
    damage: &Option<(PathBuf, ScanEnd)>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let Some((segment, end)) = damage else {
        return s.serialize_none();
    };
    let mut m = s.serialize_struct("Damage", 2)?;
    m.serialize_field("segment", segment)?;
    let end = SegmentEnd {
        end: end.clone(),
        examined: true,
    };
    m.serialize_field("end", &end)?;
    m.end()
}

impl fmt::Display for DumpItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DumpItem::Frame(_) | DumpItem::Transaction(_) => text::fmt(self, f),
            DumpItem::TruncatedTransaction {
                lsn,
                began,
                log_start,
            } => writeln!(
                f,
                "           commit LSN {lsn} of a transaction begun at LSN {began}, before the first frame read (LSN {log_start}): not shown (`--from {began}` shows it, unless a truncation removed its beginning)"
            ),
            DumpItem::End {
                frames,
                transactions,
                damage,
            } => {
                match damage.as_ref().map(|(seg, end)| (end, seg.display())) {
                    Some((ScanEnd::TornTail { offset, reason }, seg)) => {
                        writeln!(f, "end: torn tail in {seg} at byte {offset}: {reason}")?;
                    }
                    Some((ScanEnd::Corrupt { offset, reason }, seg)) => {
                        writeln!(f, "end: CORRUPT in {seg} at byte {offset}: {reason}")?;
                    }
                    _ => {}
                }
                writeln!(f, "{frames} frames, {transactions} transactions")
            }
            _ => self.fmt_past(f),
        }
    }
}

impl Text for DumpItem {
    /// A frame or a transaction as bytes (the lines a dump writes per frame); the rest
    /// through `Display`.
    fn text(&self, out: &mut Vec<u8>) {
        match self {
            DumpItem::Frame(r) => r.text(out),
            DumpItem::Transaction(tx) => {
                out.extend_from_slice(b"           commit LSN ");
                text::num(out, tx.lsn, 0);
                out.extend_from_slice(b" (");
                tx.summary(out);
                out.extend_from_slice(b")\n");
                for r in &tx.records {
                    out.extend_from_slice(b"             ");
                    r.text(out);
                    out.push(b'\n');
                }
            }
            // Writing to a Vec cannot fail.
            _ => {
                let _ = write!(out, "{self}");
            }
        }
    }
}

impl DumpItem {
    /// The text of the items only `--past-damage` and `--file` print.
    fn fmt_past(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DumpItem::Damaged {
                file,
                from,
                to,
                reason,
            } => writeln!(
                f,
                "DAMAGED    {} bytes {from}..{to} ({}): {reason}",
                file.display(),
                human::size(to - from)
            ),
            DumpItem::MissingSegments { first, last } if first == last => {
                writeln!(f, "MISSING    segment {first}")
            }
            DumpItem::MissingSegments { first, last } => {
                writeln!(f, "MISSING    segments {first} to {last}")
            }
            DumpItem::LostLsns { first, last } => {
                writeln!(f, "LOST       LSN {}", lsn_range(*first, *last))
            }
            DumpItem::BrokenTransaction { lsn, began } => writeln!(
                f,
                "           commit LSN {lsn} of a transaction begun at LSN {began}, in damaged or missing bytes: not shown"
            ),
            DumpItem::PastDamageEnd {
                frames,
                transactions,
                damaged_regions,
                lost_lsns,
            } => {
                let lost: Vec<String> = lost_lsns.iter().map(|(a, b)| lsn_range(*a, *b)).collect();
                writeln!(
                    f,
                    "{} and {} verify; {}; lost LSNs: {}",
                    human::count(*frames, "frame"),
                    human::count(*transactions, "transaction"),
                    human::count(*damaged_regions, "damaged region"),
                    if lost.is_empty() {
                        "none".to_owned()
                    } else {
                        lost.join(", ")
                    }
                )
            }
            _ => Ok(()),
        }
    }
}

/// `7` or `7..=9`.
fn lsn_range(first: u64, last: u64) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}..={last}")
    }
}

impl fmt::Display for FollowItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let FollowItem::Transaction(tx) = self;
        let mut summary = Vec::new();
        tx.summary(&mut summary);
        writeln!(
            f,
            "commit LSN {} (previous {}, {})",
            tx.lsn,
            tx.prev.unwrap_or_default(),
            String::from_utf8_lossy(&summary)
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
    let (from, to) = args.range();
    // Only the segments from `from` to `to` are read, and counted by the bar.
    let frames = wal_log::inspect::frames_from(vfs.clone(), &data.log_dir(), from)?.until(to)?;
    let mut d = Dump {
        out,
        args,
        progress: Progress::new("dumping"),
        // Transactions that commit before `from` are not shown, but their fragments are still
        // assembled (a stream may begin before `from` and commit inside the range).
        asm: TransactionAssembler::new(from.prev(), args.budget),
        frames: 0,
        transactions: 0,
        log_start: None,
    };
    let end = std::thread::scope(|scope| {
        let reads = read_ahead(scope, frames);
        d.write_all(&reads)
        // `reads` is dropped here: a reader still reading stops at its next batch.
    });
    d.progress.finish();
    let Some(end) = end? else {
        return Ok(EXIT_OK);
    };
    let (code, damage) = match end {
        Some((path, end @ ScanEnd::TornTail { .. })) => (EXIT_TORN, Some((path, end))),
        Some((path, end @ ScanEnd::Corrupt { .. })) => (EXIT_CORRUPT, Some((path, end))),
        _ => (EXIT_OK, None),
    };
    out.emit(&DumpItem::End {
        frames: d.frames,
        transactions: d.transactions,
        damage,
    });
    Ok(code)
}

/// The state of a plain `dump` between two frames.
struct Dump<'a> {
    out: &'a Out,
    args: &'a DumpArgs,
    progress: Progress,
    asm: TransactionAssembler,
    frames: u64,
    transactions: u64,
    /// The LSN of the first frame read.
    log_start: Option<Lsn>,
}

impl Dump<'_> {
    /// Writes what the reader sends. `None` when the output stopped before the end (past
    /// `--to` the log's end is not read; a closed pipe), else how the log ended.
    fn write_all(
        &mut self,
        reads: &Receiver<Read>,
    ) -> Result<Option<Option<(PathBuf, ScanEnd)>>, Failure> {
        let to = self.args.range().1;
        for read in reads {
            match read {
                Read::Frames(batch, (done, total)) => {
                    for df in batch {
                        // Nobody reads the rest (`walctl dump | head`): stop rather than scan
                        // a large log for nothing. The verdict on the log's end is then not
                        // known: `verify` gives it.
                        if self.out.pipe_closed() {
                            return Ok(None);
                        }
                        if df.frame.lsn > to {
                            return Ok(Some(None));
                        }
                        self.frame(df)?;
                    }
                    self.progress.update(done, total);
                }
                Read::Failed(e) => return Err(e.into()),
                Read::End(end) => return Ok(Some(end)),
            }
        }
        // The reader stopped without saying why: it panicked.
        Err(WalError::Io {
            op: "read",
            path: PathBuf::new(),
            source: std::io::Error::other("the reading thread stopped"),
        }
        .into())
    }

    fn frame(&mut self, df: DirFrame) -> Result<(), Failure> {
        let (from, _) = self.args.range();
        let f = df.frame;
        let log_start = *self.log_start.get_or_insert(f.lsn);
        let show = f.lsn >= from;
        if show {
            self.frames += 1;
            self.out
                .emit_text(&DumpItem::Frame(FrameRow::new(df.seq.0, &f)));
        }
        // The rest of a large transaction that began before the log's first frame: a
        // truncation interrupted between its segments removed the beginning (recovery skips
        // these too). Shown, never assembled.
        if let Some(began) = f.stream().filter(|s| *s < log_start) {
            if show && f.kind == FrameKind::FragEnd {
                self.out.emit(&DumpItem::TruncatedTransaction {
                    lsn: f.lsn.0,
                    began: began.0,
                    log_start: log_start.0,
                });
            }
            return Ok(());
        }
        if let Some(tx) = self.asm.push(f)? {
            self.transactions += 1;
            self.out.emit_text(&DumpItem::Transaction(TxRow::new(
                &tx,
                self.args.payload_limit,
            )));
        }
        Ok(())
    }
}

/// `dump --past-damage` and `dump --file`: every frame that verifies and every transaction
/// whose frames all do, with the damaged regions, missing segments and lost LSNs between.
pub(crate) fn dump_past(
    data: &DataDir,
    vfs: &Arc<dyn Vfs>,
    out: &Out,
    args: &DumpArgs,
) -> Result<u8, Failure> {
    let (from, to) = args.range();
    let mut d = PastDump {
        out,
        args,
        asm: TransactionAssembler::new(from.prev(), args.budget),
        run_start: Lsn::ZERO,
        last: Lsn::ZERO,
        broken: false,
        missing: false,
        frames: 0,
        transactions: 0,
        damaged: 0,
        lost: Vec::new(),
        failed: None,
        range: (from, to),
        progress: Progress::new("reading"),
        starts: if args.file.is_some() {
            BTreeMap::new()
        } else {
            segment_starts(&**vfs, &data.log_dir())
        },
    };
    let mut found = |f: Found| d.found(f);
    match &args.file {
        Some(path) => {
            let log_id = wal_replay::inspect::read_log_id(&**vfs, &data.log_dir())
                .ok()
                .flatten();
            scan_file_past_damage(&**vfs, path, log_id, &mut found)?;
        }
        None => scan_past_damage(&**vfs, &data.log_dir(), &mut found)?,
    }
    d.progress.finish();
    if let Some(e) = d.failed {
        return Err(e);
    }
    out.emit(&DumpItem::PastDamageEnd {
        frames: d.frames,
        transactions: d.transactions,
        damaged_regions: d.damaged,
        lost_lsns: d.lost.iter().map(|(a, b)| (a.0, b.0)).collect(),
    });
    Ok(if d.damaged > 0 || !d.lost.is_empty() {
        EXIT_CORRUPT
    } else {
        EXIT_OK
    })
}

/// The state of a `--past-damage` dump between two things found.
struct PastDump<'a> {
    out: &'a Out,
    args: &'a DumpArgs,
    asm: TransactionAssembler,
    /// The first LSN of the current run of frames (after the last damage).
    run_start: Lsn,
    last: Lsn,
    /// Damage or a missing segment since the last frame.
    broken: bool,
    /// A missing segment since the last frame.
    missing: bool,
    frames: u64,
    transactions: u64,
    damaged: u64,
    lost: Vec<(Lsn, Lsn)>,
    failed: Option<Failure>,
    range: (Lsn, Lsn),
    progress: Progress,
    /// Each segment's first byte counted over the whole log, and the total, for the bar.
    starts: BTreeMap<u64, (u64, u64)>,
}

/// For each segment (by sequence number): how many bytes the segments before it hold, and
/// the log's total. Empty when the directory cannot be listed (the scan then says why).
fn segment_starts(vfs: &dyn Vfs, dir: &std::path::Path) -> BTreeMap<u64, (u64, u64)> {
    let mut seqs: Vec<u64> = vfs
        .list(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| match wal_log::layout::classify(n) {
            wal_log::layout::Entry::Segment(s) => Some(s.0),
            _ => None,
        })
        .collect();
    seqs.sort_unstable();
    let mut at = 0u64;
    let mut starts = BTreeMap::new();
    for seq in seqs {
        let path = dir.join(wal_log::layout::segment_file_name(wal_format::SegmentSeq(
            seq,
        )));
        let len = vfs
            .open(&path, wal_log::OpenMode::Read)
            .and_then(|f| f.len())
            .unwrap_or(0);
        starts.insert(seq, (at, 0));
        at += len;
    }
    for v in starts.values_mut() {
        v.1 = at;
    }
    starts
}

impl PastDump<'_> {
    fn found(&mut self, f: Found) {
        if self.failed.is_some() {
            return;
        }
        let (from, to) = self.range;
        match f {
            Found::Damage {
                file,
                from: a,
                to: b,
                reason,
            } => {
                self.damaged += 1;
                self.broken = true;
                self.out.emit(&DumpItem::Damaged {
                    file,
                    from: a,
                    to: b,
                    reason,
                });
            }
            Found::Missing { first, last } => {
                self.broken = true;
                self.missing = true;
                self.out.emit(&DumpItem::MissingSegments { first, last });
            }
            Found::Frame { seq, offset, frame } => {
                if frame.lsn.0 % 4096 == 0
                    && let Some((start, total)) = self.starts.get(&seq.0)
                {
                    self.progress.update(start + offset, *total);
                }
                if self.broken || self.run_start == Lsn::ZERO {
                    // A new run: what began before it cannot be assembled.
                    // Missing segments ended in a seal, just before this frame's segment
                    // begins: not a lost transaction (as skip-damaged reports it).
                    let end = if self.missing {
                        frame.lsn.prev().prev()
                    } else {
                        frame.lsn.prev()
                    };
                    self.missing = false;
                    if self.last != Lsn::ZERO && end >= self.last.next() {
                        let lost = (self.last.next(), end);
                        self.lost.push(lost);
                        self.out.emit(&DumpItem::LostLsns {
                            first: lost.0.0,
                            last: lost.1.0,
                        });
                    }
                    self.run_start = frame.lsn;
                    self.asm = TransactionAssembler::new(from.prev(), self.args.budget);
                    self.broken = false;
                }
                self.last = self.last.max(frame.lsn);
                let show = frame.lsn >= from && frame.lsn <= to;
                if show {
                    self.frames += 1;
                    let mut row = FrameRow::new(seq.0, &frame);
                    row.offset = offset as usize;
                    self.out.emit_text(&DumpItem::Frame(row));
                }
                if let Some(began) = frame.stream().filter(|s| *s < self.run_start) {
                    if show && frame.kind == FrameKind::FragEnd {
                        self.out.emit(&DumpItem::BrokenTransaction {
                            lsn: frame.lsn.0,
                            began: began.0,
                        });
                    }
                    return;
                }
                match self.asm.push(frame) {
                    Ok(Some(tx)) if tx.lsn <= to => {
                        self.transactions += 1;
                        self.out.emit_text(&DumpItem::Transaction(TxRow::new(
                            &tx,
                            self.args.payload_limit,
                        )));
                    }
                    Ok(_) => {}
                    Err(e) => self.failed = Some(e.into()),
                }
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_shows_as_hex_in_text_and_json_cut_at_the_limit() {
        let bytes: Vec<u8> = (0..=255).collect();
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let long = Bytes::from([bytes.clone(), bytes].concat());
        let row = RecordRow::new(&long, 300);
        assert_eq!(
            row.to_string(),
            format!("hex {}…", &expected.repeat(2)[..600])
        );
        assert_eq!(
            serde_json::to_string(&Hex(long)).unwrap_or_default(),
            format!("\"{}\"", expected.repeat(2))
        );
        assert_eq!(RecordRow::new(&Bytes::new(), 10).to_string(), "hex ");
        let json = RecordRow::new(&Bytes::from_static(b"{\"a\": [1]}"), 10);
        assert_eq!(json.to_string(), "json {\"a\":[1]}");
    }

    #[test]
    fn a_frame_line_reads_as_formatted_text_would() {
        let row = FrameRow {
            lsn: 8180,
            kind: kind_name(FrameKind::Tx),
            segment: 2,
            offset: 33024,
            payload_len: 1010,
            multi: true,
            stream: Some(7),
            placeholder: false,
            snapshot_fence: None,
            next_segment: None,
            durable: Some(u64::MAX),
        };
        assert_eq!(
            row.to_string(),
            format!(
                "{:>10} {:<10} seg 2 @33024 1010 bytes multi stream 7 durable<={}\n",
                8180,
                "Tx",
                u64::MAX
            )
        );
        for kind in (1..=8).filter_map(FrameKind::from_u8) {
            assert_eq!(kind_name(kind), format!("{kind:?}"));
        }
    }
}
