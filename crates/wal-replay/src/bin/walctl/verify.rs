//! `walctl verify`: every frame's checksum and LSN; the exit code is the verdict.

use serde::Serialize;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;
use wal_log::Vfs;
use wal_log::inspect::Verdict;
use wal_replay::{DataDir, ReplayError};

use crate::exit::{EXIT_CORRUPT, EXIT_OK, EXIT_TORN, Failure};
use crate::human;
use crate::output::Out;
use crate::scan::{SegmentRow, inspect, verdict_json};
use wal_format::scan::ScanEnd;

/// What `verify` reports. The text's verdict line is the runbook's; `exit_code` is the
/// process's exit status in text mode.
#[derive(Serialize)]
pub(crate) struct VerifyReport {
    #[serde(serialize_with = "verdict_json")]
    verdict: Verdict,
    exit_code: u8,
    segments: Vec<SegmentRow>,
    last_lsn: u64,
    bytes: u64,
    elapsed_s: f64,
    /// Whether the text lists every segment (`--segments`); the JSON always does.
    #[serde(skip)]
    per_segment: bool,
}

pub(crate) fn verify(
    data: &DataDir,
    vfs: &Arc<dyn Vfs>,
    out: &Out,
    per_segment: bool,
) -> Result<u8, Failure> {
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
    let exit_code = match verdict {
        Verdict::Sound => EXIT_OK,
        Verdict::TornTail(_) => EXIT_TORN,
        Verdict::Corrupt(_) => EXIT_CORRUPT,
    };
    let report = VerifyReport {
        verdict,
        exit_code,
        segments: ins.segments.iter().map(SegmentRow::from).collect(),
        last_lsn: ins.last_lsn().0,
        bytes: ins.segments.iter().map(|s| s.file_len).sum(),
        elapsed_s: elapsed.as_secs_f64(),
        per_segment,
    };
    out.emit(&report);
    Ok(exit_code)
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unexamined = self.segments.iter().filter(|s| !s.examined).count() as u64;
        for s in &self.segments {
            // By default only the segment the verdict is about; every one with --segments.
            let damaged = s.examined && !matches!(s.end.end, ScanEnd::Clean { .. });
            if self.per_segment || damaged {
                writeln!(
                    f,
                    "{}: {}, LSN {}, {}",
                    s.file.display(),
                    human::count(s.frames, "frame"),
                    s.lsn_range(),
                    s.status()
                )?;
            }
        }
        let examined = self.segments.len() as u64 - unexamined;
        // The newest segment's durable watermark decides its damage: beyond it a torn tail
        // (exit 1), at or before it corruption (exit 2).
        let newest = self.segments.last().filter(|s| s.examined);
        if let Some(s) = newest {
            writeln!(
                f,
                "newest segment {}: durable watermark LSN {}",
                s.seq, s.watermark
            )?;
        }
        let in_newest = |segment: &std::path::Path| newest.filter(|s| s.file == segment);
        match &self.verdict {
            Verdict::Sound => writeln!(
                f,
                "sound: {}, {}, last LSN {}",
                human::count(self.segments.len() as u64, "segment"),
                human::size(self.bytes),
                self.last_lsn
            )?,
            Verdict::TornTail(d) => {
                writeln!(
                    f,
                    "torn tail: segment {} byte offset {}: {}",
                    d.segment.display(),
                    d.offset,
                    d.reason
                )?;
                if let Some(s) = in_newest(&d.segment) {
                    writeln!(
                        f,
                        "  the damage is beyond the durable watermark (LSN {}): recovery cuts it and moves it aside",
                        s.watermark
                    )?;
                }
            }
            Verdict::Corrupt(d) => {
                writeln!(
                    f,
                    "CORRUPT: segment {} byte offset {}: {}",
                    d.segment.display(),
                    d.offset,
                    d.reason
                )?;
                if let Some(s) = in_newest(&d.segment).filter(|s| s.watermark > 0) {
                    writeln!(
                        f,
                        "  the newest segment's frames claim LSN {} durable: damage at or before it is not a crash's",
                        s.watermark
                    )?;
                }
            }
        }
        if unexamined > 0 {
            writeln!(
                f,
                "{} examined; {} after the damage not examined (--segments lists them)",
                human::count(examined, "segment"),
                human::count(unexamined, "later segment"),
            )?;
        }
        let read: u64 = self
            .segments
            .iter()
            .filter(|s| s.examined)
            .map(|s| s.file_len)
            .sum();
        let took = if self.elapsed_s < 1.0 {
            format!("{:.0} ms", self.elapsed_s * 1000.0)
        } else {
            format!("{:.2} s", self.elapsed_s)
        };
        writeln!(f, "verified {} of segments in {took}", human::size(read))
    }
}
