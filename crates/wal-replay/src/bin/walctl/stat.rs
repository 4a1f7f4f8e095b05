//! `walctl stat`: the log's segments, end, last checkpoint and state, and the snapshots.

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use wal_log::Vfs;
use wal_replay::DataDir;

use crate::exit::{EXIT_OK, Failure};
use crate::output::Out;
use crate::scan::{SegmentRow, SnapshotRow, VerdictRow, inspect};

/// What `stat` reports: everything the text shows, the JSON holds, and the other way round.
#[derive(Serialize)]
pub(crate) struct StatReport {
    root: PathBuf,
    log_id: Option<String>,
    segments: Vec<SegmentRow>,
    segment_bytes: u64,
    log_end: u64,
    first_lsn: Option<u64>,
    verdict: VerdictRow,
    open_streams: Vec<u64>,
    last_checkpoint: Option<CheckpointRow>,
    aside_files: Vec<String>,
    prealloc: bool,
    recycled_files: Vec<String>,
    snapshots: Vec<SnapshotRow>,
    temp_snapshots: Vec<PathBuf>,
    corrupt_snapshots: Vec<PathBuf>,
    other_snapshot_files: Vec<PathBuf>,
}

/// The newest checkpoint marker: where it is and the snapshot fence it names.
#[derive(Serialize)]
struct CheckpointRow {
    lsn: u64,
    fence: u64,
}

pub(crate) fn stat(data: &DataDir, vfs: &Arc<dyn Vfs>, out: &Out) -> Result<u8, Failure> {
    let ins = inspect(data, vfs)?;
    let store = data.snapshots(vfs.clone());
    let listing = store.list()?;
    let segments: Vec<SegmentRow> = ins.segments.iter().map(SegmentRow::from).collect();
    let report = StatReport {
        root: data.root().to_path_buf(),
        log_id: ins.log_id.map(|i| i.to_string()),
        segment_bytes: segments.iter().map(|s| s.file_len).sum(),
        segments,
        log_end: ins.valid_end().0,
        first_lsn: ins.segments.first().map(|s| s.first_lsn.0),
        verdict: VerdictRow::from(&ins.verdict()),
        open_streams: ins.open_streams.iter().map(|l| l.0).collect(),
        last_checkpoint: ins
            .segments
            .iter()
            .rev()
            .find_map(|s| s.last_checkpoint)
            .map(|(at, fence)| CheckpointRow {
                lsn: at.0,
                fence: fence.0,
            }),
        aside_files: ins.aside_files.clone(),
        prealloc: ins.prealloc,
        recycled_files: ins.recycled_files.clone(),
        snapshots: listing
            .snapshots
            .iter()
            .map(|f| SnapshotRow::read(&store, f))
            .collect(),
        temp_snapshots: listing.temp_files,
        corrupt_snapshots: listing.corrupt_files,
        other_snapshot_files: listing.other_files,
    };
    out.emit(&report);
    Ok(EXIT_OK)
}

impl StatReport {
    fn fmt_segments(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "segments         {} ({} bytes)",
            self.segments.len(),
            self.segment_bytes
        )?;
        for s in &self.segments {
            write!(
                f,
                "  {:>6}  {}  {:>12} bytes  LSN {:<24} {}",
                s.seq,
                s.file
                    .file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default(),
                s.file_len,
                s.lsn_range(),
                s.end
            )?;
            if let Some(v) = s.payload_schema.filter(|v| *v != 0) {
                write!(f, "  schema {v}")?;
            }
            write!(f, "  {} frames, {} transactions", s.frames, s.transactions)?;
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
        if self.prealloc {
            writeln!(f, "  preallocated next segment (no data)")?;
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
            "log end          LSN {} (last frame of the valid prefix)",
            self.log_end
        )?;
        if let Some(c) = &self.last_checkpoint {
            writeln!(
                f,
                "last checkpoint  marker at LSN {}, snapshot fence {}",
                c.lsn, c.fence
            )?;
        }
        match &self.verdict {
            VerdictRow::Sound => writeln!(f, "state            sound")?,
            VerdictRow::TornTail {
                segment,
                offset,
                reason,
            } => writeln!(
                f,
                "state            torn tail in {} at byte {offset}: {reason}",
                segment.display()
            )?,
            VerdictRow::Corrupt {
                segment,
                offset,
                reason,
            } => writeln!(
                f,
                "state            CORRUPT in {} at byte {offset}: {reason}",
                segment.display()
            )?,
        }
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
                "  fence {:<12} {}  {} bytes  {status}",
                s.fence,
                s.file.display(),
                s.file_len
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
