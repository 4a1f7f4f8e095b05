//! `walctl snapshot ls` (headers) and `walctl snapshot verify` (whole files).

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use wal_log::Vfs;
use wal_replay::snapshot::{SnapshotFile, SnapshotStore};
use wal_replay::{DataDir, ReplayError};

use crate::exit::{EXIT_OK, EXIT_SNAPSHOT, Failure};
use crate::human;
use crate::output::{Out, Progress};
use crate::scan::SnapshotRow;

/// What `snapshot ls` reports.
#[derive(Serialize)]
pub(crate) struct LsReport {
    snapshots: Vec<SnapshotRow>,
    temp_files: Vec<PathBuf>,
    corrupt_files: Vec<PathBuf>,
    other_files: Vec<PathBuf>,
}

pub(crate) fn snapshot_ls(data: &DataDir, vfs: &Arc<dyn Vfs>, out: &Out) -> Result<u8, Failure> {
    let store = data.snapshots(vfs.clone());
    let listing = store.list()?;
    out.emit(&LsReport {
        snapshots: listing
            .snapshots
            .iter()
            .map(|f| SnapshotRow::read(&store, f))
            .collect(),
        temp_files: listing.temp_files,
        corrupt_files: listing.corrupt_files,
        other_files: listing.other_files,
    });
    Ok(EXIT_OK)
}

impl fmt::Display for LsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.snapshots {
            writeln!(
                f,
                "fence {:<12} {:>10}  {}  {}",
                s.fence,
                human::size(s.file_len),
                s.file.display(),
                s.header_text()
            )?;
        }
        for t in &self.temp_files {
            writeln!(f, "half-written (ignored): {}", t.display())?;
        }
        for t in &self.corrupt_files {
            writeln!(f, "set aside as corrupt: {}", t.display())?;
        }
        for t in &self.other_files {
            writeln!(f, "not a snapshot (ignored): {}", t.display())?;
        }
        if self.snapshots.is_empty() {
            writeln!(f, "no snapshots")?;
        }
        Ok(())
    }
}

/// What `snapshot verify` reports; `exit_code` is 5 when a snapshot is unusable.
#[derive(Serialize)]
pub(crate) struct VerifyReport {
    snapshots: Vec<VerifiedRow>,
    unusable: u64,
    temp_files: Vec<PathBuf>,
    exit_code: u8,
}

/// One snapshot's verification: `ok` is true (verified), false (unusable, `reason`) or null
/// (`pruned` by a live engine's checkpoint after the listing: nothing to verify).
#[derive(Serialize)]
struct VerifiedRow {
    file: PathBuf,
    fence: u64,
    ok: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pruned: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl VerifiedRow {
    fn new(f: &SnapshotFile, ok: Option<bool>) -> VerifiedRow {
        VerifiedRow {
            file: f.path.clone(),
            fence: f.fence.0,
            ok,
            bytes: None,
            pruned: None,
            reason: None,
        }
    }
}

pub(crate) fn snapshot_verify(
    data: &DataDir,
    vfs: &Arc<dyn Vfs>,
    out: &Out,
) -> Result<u8, Failure> {
    let store: SnapshotStore = data.snapshots(vfs.clone());
    let listing = store.list()?;
    let log_id = wal_replay::inspect::read_log_id(&**vfs, &data.log_dir())?;
    let mut rows = Vec::new();
    // One bar over every snapshot's bytes (headers are small: the body is the work).
    let total: u64 = listing.snapshots.iter().map(|f| f.file_len).sum();
    let mut bar = Progress::new("verifying snapshots");
    let mut before = 0;
    for f in &listing.snapshots {
        let verified = store.verify_with_progress(f, log_id, &mut |done, _| {
            bar.update(before + done, total);
        });
        before += f.file_len;
        rows.push(match verified {
            Ok(_) => VerifiedRow {
                bytes: Some(f.file_len),
                ..VerifiedRow::new(f, Some(true))
            },
            // A live engine's checkpoint pruned it after the listing: nothing to verify.
            Err(ReplayError::SnapshotGone { .. }) => VerifiedRow {
                pruned: Some(true),
                ..VerifiedRow::new(f, None)
            },
            Err(ReplayError::BadSnapshot { reason, .. }) => VerifiedRow {
                reason: Some(reason),
                ..VerifiedRow::new(f, Some(false))
            },
            Err(e) => return Err(e.into()),
        });
    }
    bar.finish();
    let unusable = rows.iter().filter(|r| r.ok == Some(false)).count() as u64;
    let exit_code = if unusable > 0 { EXIT_SNAPSHOT } else { EXIT_OK };
    out.emit(&VerifyReport {
        snapshots: rows,
        unusable,
        temp_files: listing.temp_files,
        exit_code,
    });
    Ok(exit_code)
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.snapshots {
            let file = r.file.display();
            match (r.ok, &r.reason) {
                (Some(true), _) => writeln!(
                    f,
                    "ok       fence {:<12} {file} ({})",
                    r.fence,
                    human::size(r.bytes.unwrap_or_default())
                )?,
                (Some(false), reason) => writeln!(
                    f,
                    "CORRUPT  fence {:<12} {file}: {}",
                    r.fence,
                    reason.as_deref().unwrap_or_default()
                )?,
                (None, _) => writeln!(
                    f,
                    "pruned   fence {:<12} {file} (removed by a checkpoint while verifying)",
                    r.fence
                )?,
            }
        }
        for t in &self.temp_files {
            writeln!(f, "half-written (ignored): {}", t.display())?;
        }
        if self.snapshots.is_empty() {
            writeln!(f, "no snapshots")?;
        } else if self.unusable > 0 {
            writeln!(f, "{} unusable", self.unusable)?;
        }
        Ok(())
    }
}
