//! Recovery's decisions, made once: a pure function ([`plan_recovery`]) turns what a scan of
//! the log found (an [`Inspection`]) and a [`RecoveryMode`] into a [`RecoveryPlan`] (what is
//! cut, what is moved aside and under which name, the LSN range kept), or the refusal.
//! [`crate::Wal::open`] executes exactly that plan; dry runs (`walctl repair --dry-run`, a
//! read-only replay) print it. Nothing here reads or writes a file.

use crate::error::{Damage, Result, WalError};
use crate::layout::LogFile;
use crate::options::RecoveryMode;
use crate::recovery_scan::{Inspection, Verdict};
use crate::recovery_scan::{SegmentScan, header_error};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use wal_format::Lsn;

/// What opening a log does to it, decided before anything changes: see [`plan_recovery`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryPlan {
    /// Where the log is cut, if it is.
    pub cut: Option<Cut>,
    /// The bytes moved aside, in the order recovery moves them, each with the file it goes to
    /// (as [`crate::OpenReport::moved_aside`] lists them).
    pub moved_aside: Vec<MovedAside>,
    /// The first LSN of the log kept (its first segment's base LSN; [`Lsn::FIRST`] without
    /// segments).
    pub first_lsn: Lsn,
    /// The last LSN the log keeps.
    pub last_lsn: Lsn,
}

/// Bytes that recovery moved out of the log (never deleted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MovedAside {
    /// The segment they came from.
    pub from: PathBuf,
    /// Offset in that segment where they started.
    pub offset: u64,
    /// How many bytes.
    pub bytes: u64,
    /// The file that now holds them.
    pub to: PathBuf,
    /// Why they were moved.
    pub reason: String,
}

/// Where recovery cuts the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// How many segments are kept, oldest first; every later one is moved aside whole.
    pub kept: usize,
    /// Where the frames of the last kept segment end, the bytes after it moved aside; 0 when
    /// that segment is kept whole (the damage is in the next segment's header).
    pub offset: u64,
    /// Why the log is cut.
    pub reason: String,
}

/// What [`crate::Wal::open`] in `mode` does to the log `found` describes: the same
/// decisions in the same order whether the open or a dry run asks. A directory without
/// segments plans nothing (an open starts a new log in it).
///
/// # Errors
/// As [`crate::Wal::open`] fails: [`Inspection::refusal`] in every mode, a torn tail under
/// [`RecoveryMode::Strict`] ([`WalError::TornTail`]), corruption under every mode but
/// [`RecoveryMode::SalvagePrefix`], and a damaged first header in every mode
/// ([`WalError::Corrupt`]), no segment with a valid header ([`WalError::NotAWal`]).
pub fn plan_recovery(found: &Inspection, mode: RecoveryMode) -> Result<RecoveryPlan> {
    if let Some(e) = found.refusal() {
        return Err(e);
    }
    let salvage = mode == RecoveryMode::SalvagePrefix;
    let cut = decide_cut(found, mode)?;
    let mut plan = RecoveryPlan {
        first_lsn: found
            .segments
            .first()
            .and_then(|s| s.header)
            .map_or(Lsn::FIRST, |h| h.base_lsn),
        last_lsn: found.last_lsn(),
        ..RecoveryPlan::default()
    };
    if let Some(cut) = cut {
        let Some(last) = found.segments[..cut.kept].last() else {
            return Err(WalError::NotAWal {
                dir: found.dir.clone(),
                reason: "no valid segment".into(),
            });
        };
        plan.last_lsn = last.last_lsn;
        plan.moved_aside = name_asides(found, &cut, salvage);
        plan.cut = Some(cut);
    }
    if found.log_id.is_none() && !found.segments.is_empty() {
        return Err(WalError::NotAWal {
            dir: found.dir.clone(),
            reason: "no segment with a valid header".into(),
        });
    }
    Ok(plan)
}

/// Where the log is cut for the verdict on it in `mode`, or the error refusing it.
fn decide_cut(found: &Inspection, mode: RecoveryMode) -> Result<Option<Cut>> {
    let salvage = mode == RecoveryMode::SalvagePrefix;
    let cut = |kept, offset, reason| {
        Some(Cut {
            kept,
            offset,
            reason,
        })
    };
    Ok(match found.verdict() {
        Verdict::Sound => None,
        Verdict::TornTail(damage) => {
            if mode == RecoveryMode::Strict {
                return Err(WalError::TornTail(damage));
            }
            let Damage {
                segment,
                offset,
                reason,
            } = damage;
            cut(position(found, &segment) + 1, offset, reason)
        }
        Verdict::Corrupt(Damage {
            segment,
            offset,
            reason,
        }) => {
            let i = position(found, &segment);
            let header_damage = offset == 0 && found.segments[i].header.is_none();
            // A damaged header worded as recovery words it: the header error itself when
            // refused, the whole error as the reason of a salvage cut.
            let header_err = found.segments[i]
                .header_error
                .as_ref()
                .filter(|_| header_damage)
                .map(|e| header_error(&segment, &found.dir, e));
            if !salvage || (header_damage && i == 0) {
                return Err(header_err.unwrap_or(WalError::Corrupt(Damage {
                    segment,
                    offset,
                    reason,
                })));
            }
            if header_damage {
                cut(i, 0, header_err.map_or(reason, |e| e.to_string()))
            } else {
                cut(i + 1, offset, reason)
            }
        }
    })
}

/// The bytes `cut` moves aside and the files they go to: the cut piece of the last kept
/// segment (the torn write, or everything after the cut when salvaging), then every later
/// segment whole. Each takes the first name of its kind no file in the directory has.
fn name_asides(found: &Inspection, cut: &Cut, salvage: bool) -> Vec<MovedAside> {
    let mut taken: BTreeSet<String> = found.aside_files.iter().cloned().collect();
    let mut aside = |file: LogFile, from: &SegmentScan, offset: u64, bytes: u64| {
        let name = free_name(file, &taken);
        taken.insert(name.clone());
        MovedAside {
            from: from.path.clone(),
            offset,
            bytes,
            to: found.dir.join(name),
            reason: cut.reason.clone(),
        }
    };
    let mut out = Vec::new();
    let last = &found.segments[cut.kept - 1];
    let end = last.aside_end(salvage);
    if cut.offset > 0 && end > cut.offset {
        let piece = LogFile::cut_piece(last.seq, cut.offset, salvage);
        out.push(aside(piece, last, cut.offset, end - cut.offset));
    }
    for later in &found.segments[cut.kept..] {
        let whole = LogFile::SalvagedSegment {
            seq: later.seq,
            n: 0,
        };
        out.push(aside(whole, later, 0, later.file_len));
    }
    out
}

/// Index of the segment at `path` (the verdict names one of them).
fn position(found: &Inspection, path: &Path) -> usize {
    found
        .segments
        .iter()
        .position(|s| s.path == path)
        .unwrap_or(0)
}

/// The first name of `file`'s kind that no file in `taken` has.
fn free_name(file: LogFile, taken: &BTreeSet<String>) -> String {
    let free = file.first_free(|name| Ok::<_, std::convert::Infallible>(taken.contains(name)));
    match free {
        Ok(name) => name,
        Err(never) => match never {},
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use wal_format::scan::ScanEnd;
    use wal_format::{LogId, SegmentHeader, SegmentSeq};

    /// A log of `n` clean segments of 10 frames each in `/db`, the newest ending at `end`.
    fn log(n: u64, end: &ScanEnd) -> Inspection {
        let id = LogId::from_u128(7);
        let mut segments = Vec::new();
        for i in 1..=n {
            let seq = SegmentSeq(i);
            let path = Path::new("/db").join(LogFile::Segment(seq).name());
            let mut s = SegmentScan::empty(path, seq, 4096);
            let h = SegmentHeader::new(id, seq, Lsn(1 + (i - 1) * 10));
            s.header = Some(h);
            s.first_lsn = h.base_lsn;
            s.last_lsn = Lsn(i * 10);
            (s.data_end, s.torn_end) = (4000, 3000);
            s.end = if i == n {
                end.clone()
            } else {
                ScanEnd::Clean {
                    offset: 4000,
                    sealed: Some(seq.next()),
                }
            };
            segments.push(s);
        }
        Inspection {
            dir: "/db".into(),
            log_id: Some(id),
            segments,
            ..Inspection::default()
        }
    }

    #[test]
    fn a_torn_tail_is_cut_under_a_free_name_and_refused_by_strict() {
        let torn = ScanEnd::TornTail {
            offset: 2000,
            reason: "torn".into(),
        };
        let mut found = log(2, &torn);
        found.aside_files = vec!["00000000000000000002.wal.torn-2000".into()];
        let plan = plan_recovery(&found, RecoveryMode::TolerateTornTail).unwrap();
        assert_eq!(
            plan.cut,
            Some(Cut {
                kept: 2,
                offset: 2000,
                reason: "torn".into()
            })
        );
        assert_eq!((plan.first_lsn, plan.last_lsn), (Lsn(1), Lsn(20)));
        assert_eq!(plan.moved_aside.len(), 1);
        let m = &plan.moved_aside[0];
        assert_eq!((m.offset, m.bytes), (2000, 1000));
        assert_eq!(m.to, Path::new("/db/00000000000000000002.wal.torn-2000.1"));
        assert!(matches!(
            plan_recovery(&found, RecoveryMode::Strict),
            Err(WalError::TornTail(_))
        ));
    }

    #[test]
    fn a_salvage_moves_the_rest_of_the_segment_and_renames_later_ones() {
        let corrupt = ScanEnd::Corrupt {
            offset: 100,
            reason: "bad".into(),
        };
        let mut found = log(1, &corrupt);
        let mut later =
            SegmentScan::empty("/db/00000000000000000002.wal".into(), SegmentSeq(2), 4096);
        later.end = ScanEnd::Corrupt {
            offset: 0,
            reason: "not scanned".into(),
        };
        found.segments.push(later);
        assert!(matches!(
            plan_recovery(&found, RecoveryMode::TolerateTornTail),
            Err(WalError::Corrupt(_))
        ));
        let plan = plan_recovery(&found, RecoveryMode::SalvagePrefix).unwrap();
        let to: Vec<_> = plan.moved_aside.iter().map(|m| m.to.clone()).collect();
        assert_eq!(
            to,
            [
                Path::new("/db/00000000000000000001.wal.salvaged-100"),
                Path::new("/db/00000000000000000002.wal.salvaged"),
            ]
        );
        assert_eq!(plan.moved_aside[0].bytes, 3900);
        assert_eq!(plan.moved_aside[1].bytes, 4096);
        assert_eq!(plan.last_lsn, Lsn(10));
    }

    #[test]
    fn a_sound_log_plans_nothing() {
        let clean = ScanEnd::Clean {
            offset: 4000,
            sealed: None,
        };
        let plan = plan_recovery(&log(3, &clean), RecoveryMode::SalvagePrefix).unwrap();
        assert_eq!(plan.cut, None);
        assert!(plan.moved_aside.is_empty());
        assert_eq!((plan.first_lsn, plan.last_lsn), (Lsn(1), Lsn(30)));
    }
}
