//! `walctl stat`: the log's segments, end, last checkpoint and state, and the snapshots.

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use wal_log::Vfs;
use wal_replay::DataDir;

use crate::exit::{EXIT_OK, Failure};
use crate::human;
use crate::output::Out;
use crate::scan::{SegmentEnd, SegmentRow, SnapshotRow};

/// What `stat` reports: everything the text shows, the JSON holds, and the other way round.
/// It reads every segment's header and scans the newest segment only (`verify` reads every
/// frame), so it answers in about the same time whatever the log's size.
#[derive(Serialize)]
pub(crate) struct StatReport {
    root: PathBuf,
    log_id: Option<String>,
    segments: Vec<SegmentRow>,
    segment_bytes: u64,
    /// The newest segment's last frame.
    log_end: u64,
    first_lsn: Option<u64>,
    /// How the newest segment ends.
    tail: Option<SegmentEnd>,
    /// Always false: stat checks no frame but the newest segment's.
    verified: bool,
    open_streams: Vec<u64>,
    /// The newest checkpoint marker in the newest segment.
    last_checkpoint: Option<CheckpointRow>,
    aside_files: Vec<String>,
    prealloc: bool,
    recycled_files: Vec<String>,
    foreign_files: Vec<String>,
    snapshots: Vec<SnapshotRow>,
    temp_snapshots: Vec<PathBuf>,
    corrupt_snapshots: Vec<PathBuf>,
    other_snapshot_files: Vec<PathBuf>,
    #[serde(skip)]
    per_segment: bool,
}

/// The newest checkpoint marker: where it is and the snapshot fence it names.
#[derive(Serialize)]
struct CheckpointRow {
    lsn: u64,
    fence: u64,
}

pub(crate) fn stat(
    data: &DataDir,
    vfs: &Arc<dyn Vfs>,
    out: &Out,
    per_segment: bool,
) -> Result<u8, Failure> {
    let ins = wal_log::inspect::inspect_tail(&**vfs, &data.log_dir())?;
    let store = data.snapshots(vfs.clone());
    let listing = store.list()?;
    let segments: Vec<SegmentRow> = ins.segments.iter().map(SegmentRow::from).collect();
    let newest = ins.segments.last();
    let report = StatReport {
        root: data.root().to_path_buf(),
        log_id: ins.log_id.map(|i| i.to_string()),
        segment_bytes: segments.iter().map(|s| s.file_len).sum(),
        log_end: ins.last_lsn().0,
        first_lsn: ins.segments.first().map(|s| s.first_lsn.0),
        tail: segments.last().map(|s| s.end.clone()),
        verified: false,
        segments,
        open_streams: ins.open_streams.iter().map(|l| l.0).collect(),
        last_checkpoint: newest
            .and_then(|s| s.last_checkpoint)
            .map(|(at, fence)| CheckpointRow {
                lsn: at.0,
                fence: fence.0,
            }),
        aside_files: ins.aside_files.clone(),
        prealloc: ins.prealloc,
        recycled_files: ins.recycled_files.clone(),
        foreign_files: ins.foreign_files.clone(),
        snapshots: listing
            .snapshots
            .iter()
            .map(|f| SnapshotRow::read(&store, f))
            .collect(),
        temp_snapshots: listing.temp_files,
        corrupt_snapshots: listing.corrupt_files,
        other_snapshot_files: listing.other_files,
        per_segment,
    };
    out.emit(&report);
    Ok(EXIT_OK)
}

impl StatReport {
    fn fmt_segments(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut schemas: Vec<u32> = self
            .segments
            .iter()
            .filter_map(|s| s.payload_schema)
            .filter(|v| *v != 0)
            .collect();
        schemas.dedup();
        let schemas: Vec<String> = schemas.iter().map(u32::to_string).collect();
        write!(
            f,
            "segments         {}, {}",
            self.segments.len(),
            human::size(self.segment_bytes)
        )?;
        if !schemas.is_empty() {
            write!(f, ", payload schema {}", schemas.join(", "))?;
        }
        writeln!(f)?;
        for s in self.segments.iter().filter(|_| self.per_segment) {
            write!(
                f,
                "  {:>6}  {}  {:>10}  LSN {:<24}",
                s.seq,
                s.name(),
                human::size(s.file_len),
                s.lsn_range(),
            )?;
            if s.examined {
                write!(
                    f,
                    " {}, {} frames, {} transactions",
                    s.end, s.frames, s.transactions
                )?;
            } else {
                write!(f, " header only")?;
            }
            if let Some(v) = s.payload_schema.filter(|v| *v != 0) {
                write!(f, "  schema {v}")?;
            }
            if let Some(e) = &s.header_error {
                write!(f, "  header: {e}")?;
            }
            writeln!(f)?;
        }
        for r in &self.recycled_files {
            writeln!(f, "  recycled (kept for reuse, truncated data only): {r}")?;
        }
        for a in &self.aside_files {
            writeln!(f, "  aside: {a}")?;
        }
        for a in &self.foreign_files {
            writeln!(f, "  NOT THE LOG'S (an open refuses the directory): {a}")?;
        }
        if self.prealloc {
            writeln!(f, "  preallocated next segment (no data)")?;
        }
        for s in self.segments.iter().filter(|s| s.header_error.is_some()) {
            if !self.per_segment {
                writeln!(
                    f,
                    "  {}: header: {}",
                    s.name(),
                    s.header_error.as_deref().unwrap_or_default()
                )?;
            }
        }
        Ok(())
    }

    fn fmt_state(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(first) = self.first_lsn {
            writeln!(f, "log start        LSN {first}")?;
        }
        // Not "durable": a read-only scan of a live log also sees frames not yet fsynced.
        writeln!(
            f,
            "log end          LSN {} (last frame of the newest segment)",
            self.log_end
        )?;
        if let (Some(tail), Some(s)) = (&self.tail, self.segments.last()) {
            writeln!(f, "newest segment   {}: {tail}", s.name())?;
        }
        match &self.last_checkpoint {
            Some(c) => writeln!(
                f,
                "last checkpoint  marker at LSN {}, snapshot fence {}",
                c.lsn, c.fence
            )?,
            None if !self.segments.is_empty() => {
                writeln!(f, "last checkpoint  none in the newest segment")?;
            }
            None => {}
        }
        writeln!(
            f,
            "state            not verified here (stat reads segment headers and the newest segment): `walctl verify` checks every frame"
        )?;
        if !self.open_streams.is_empty() {
            let lsns: Vec<String> = self.open_streams.iter().map(u64::to_string).collect();
            writeln!(
                f,
                "open streams     begun at LSN {} (unfinished fragmented transactions)",
                lsns.join(", ")
            )?;
        }
        Ok(())
    }

    fn fmt_snapshots(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "snapshots        {}", self.snapshots.len())?;
        for s in &self.snapshots {
            let status = match &s.header_error {
                None => format!("header ok, {}", s.header_text()),
                Some(e) => format!("BAD: {e}"),
            };
            writeln!(
                f,
                "  fence {:<12} {}  {}  {status}",
                s.fence,
                s.file.display(),
                human::size(s.file_len)
            )?;
        }
        for t in &self.temp_snapshots {
            writeln!(f, "  half-written (ignored): {}", t.display())?;
        }
        for t in &self.corrupt_snapshots {
            writeln!(f, "  set aside as corrupt: {}", t.display())?;
        }
        for t in &self.other_snapshot_files {
            writeln!(f, "  not a snapshot (ignored): {}", t.display())?;
        }
        Ok(())
    }
}

impl fmt::Display for StatReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "data directory   {}", self.root.display())?;
        writeln!(
            f,
            "log id           {}",
            self.log_id.as_deref().unwrap_or("-")
        )?;
        self.fmt_segments(f)?;
        self.fmt_state(f)?;
        self.fmt_snapshots(f)
    }
}
