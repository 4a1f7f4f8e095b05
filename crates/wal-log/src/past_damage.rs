//! Reading past damage (`walctl dump --past-damage` and `--file`, and the plan of
//! [`crate::RecoveryMode::SkipDamaged`]): every frame that verifies, in file order, with the
//! damaged regions between them and the segments missing from the names. Read-only; a segment
//! is read whole (one segment at a time).
//!
//! After damage the scan looks, byte by byte, for the next frame that verifies under the
//! segment's checksum seed and whose LSN could follow the last good one (at most one LSN per
//! frame header's worth of damaged bytes), as the scanner's own corruption check does; the
//! frames from there on are as trustworthy as any (each carries its own checksum).

use crate::error::{Result, WalError, io_err};
use crate::layout::{Entry, classify, segment_file_name};
use crate::vfs::{OpenMode, Vfs};
use bytes::Bytes;
use std::path::{Path, PathBuf};
use wal_format::frame::{FRAME_HEADER_LEN, decode_frame};
use wal_format::header::SEGMENT_HEADER_LEN;
use wal_format::scan::{ScanEnd, scan_frames};
use wal_format::{Frame, FrameKind, LogId, Lsn, SegmentHeader, SegmentSeq};

/// What a scan past damage found next, in file order.
#[derive(Clone, Debug)]
pub enum Found {
    /// A frame that verifies.
    Frame {
        /// The segment it is in.
        seq: SegmentSeq,
        /// Its byte offset in the segment file.
        offset: u64,
        /// The frame.
        frame: Frame,
    },
    /// Bytes `from..to` of `file` hold no frame that verifies.
    Damage {
        /// The file.
        file: PathBuf,
        /// First damaged byte.
        from: u64,
        /// Just past the last damaged byte (the next frame that verifies, or the end of data).
        to: u64,
        /// Why the frame at `from` failed.
        reason: String,
    },
    /// Segments `first..=last` are missing from the names.
    Missing {
        /// The first missing sequence number.
        first: u64,
        /// The last.
        last: u64,
    },
}

/// Scans every segment of `dir` in order, read-only, telling `found` each frame that
/// verifies, each damaged region and each run of missing segments.
///
/// # Errors
/// An I/O error listing or reading.
pub fn scan_past_damage(vfs: &dyn Vfs, dir: &Path, found: &mut dyn FnMut(Found)) -> Result<()> {
    let mut segs: Vec<SegmentSeq> = vfs
        .list(dir)
        .map_err(io_err("list", dir))?
        .iter()
        .filter_map(|n| match classify(n) {
            Entry::Segment(s) => Some(s),
            _ => None,
        })
        .collect();
    segs.sort();
    // Known before the first segment is read: a damaged header (the oldest segment's too) still
    // has a seed, the log's id and the number in the name.
    let log_id = first_log_id(vfs, dir, &segs)?;
    let mut prev: Option<SegmentSeq> = None;
    let mut last_lsn = Lsn::ZERO;
    for seq in segs {
        if let Some(p) = prev
            && p.next() != seq
        {
            found(Found::Missing {
                first: p.next().0,
                last: seq.0 - 1,
            });
        }
        prev = Some(seq);
        let path = dir.join(segment_file_name(seq));
        let data = read_all(vfs, &path)?;
        let header = SegmentHeader::decode(&data[..data.len().min(SEGMENT_HEADER_LEN)]);
        let (header, start) = match header {
            Ok(h) => (Some(h), SEGMENT_HEADER_LEN),
            Err(e) => {
                found(Found::Damage {
                    file: path.clone(),
                    from: 0,
                    to: SEGMENT_HEADER_LEN as u64,
                    reason: format!("segment header: {e}"),
                });
                (None, SEGMENT_HEADER_LEN)
            }
        };
        let Some(h) = header.or_else(|| log_id.map(|id| SegmentHeader::new(id, seq, Lsn::ZERO)))
        else {
            continue;
        };
        let next = (header.is_some() && h.base_lsn > last_lsn).then_some(h.base_lsn);
        last_lsn = scan_bytes(&path, &data, h, start, next, last_lsn, found);
    }
    Ok(())
}

/// The log id of the first segment (in `segs`) whose header decodes.
fn first_log_id(vfs: &dyn Vfs, dir: &Path, segs: &[SegmentSeq]) -> Result<Option<LogId>> {
    for seq in segs {
        let path = dir.join(segment_file_name(*seq));
        let f = vfs
            .open(&path, OpenMode::Read)
            .map_err(io_err("open", &path))?;
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        let n = crate::vfs::read_full(&*f, &mut b, 0).map_err(io_err("read", &path))?;
        if let Ok(h) = SegmentHeader::decode(&b[..n]) {
            return Ok(Some(h.log_id));
        }
    }
    Ok(None)
}

/// [`scan_past_damage`] of one file: a segment, or bytes moved aside from one
/// (`<segment>.wal.salvaged-<offset>`, `.torn-<offset>`, `.salvaged`), whose frames are checked
/// with the seed of log `log_id` and the segment its name gives; offsets are reported as in
/// the segment.
///
/// # Errors
/// An I/O error; [`WalError::NotAWal`] for a file without a segment header whose name gives
/// no segment (or when `log_id` is unknown).
pub fn scan_file_past_damage(
    vfs: &dyn Vfs,
    path: &Path,
    log_id: Option<LogId>,
    found: &mut dyn FnMut(Found),
) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let seq: Option<SegmentSeq> = name.get(..20).and_then(|d| d.parse().ok()).map(SegmentSeq);
    let data = read_all(vfs, path)?;
    let header = SegmentHeader::decode(&data[..data.len().min(SEGMENT_HEADER_LEN)]).ok();
    let (h, start) = match (header, seq, log_id) {
        (Some(h), _, _) => (h, SEGMENT_HEADER_LEN),
        (None, Some(seq), Some(id)) => (SegmentHeader::new(id, seq, Lsn::ZERO), 0),
        _ => {
            return Err(WalError::NotAWal {
                dir: path.to_path_buf(),
                reason: "no segment header, and its name does not start with a segment's 20-digit number (or the log has no segment to take its id from): its frames' checksums cannot be checked".into(),
            });
        }
    };
    let base = if header.is_some() {
        0
    } else {
        // `<20 digits>.wal.<kind>-<offset>[.n]`: the piece began at that offset.
        name.rsplit_once('-')
            .and_then(|(_, o)| o.split('.').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut shifted = |f: Found| {
        found(match f {
            Found::Frame { seq, offset, frame } => Found::Frame {
                seq,
                offset: offset + base,
                frame,
            },
            Found::Damage {
                file,
                from,
                to,
                reason,
            } => Found::Damage {
                file,
                from: from + base,
                to: to + base,
                reason,
            },
            other => other,
        });
    };
    let next = header.map(|h| h.base_lsn);
    scan_bytes(path, &data, h, start, next, Lsn::ZERO, &mut shifted);
    Ok(())
}

/// Scans `data` from `pos`: runs of frames, and between them the damaged bytes, until only
/// zeros are left. `next` is the LSN the first frame must carry when known. Returns the last
/// LSN seen.
fn scan_bytes(
    path: &Path,
    data: &Bytes,
    h: SegmentHeader,
    mut pos: usize,
    mut next: Option<Lsn>,
    mut last: Lsn,
    found: &mut dyn FnMut(Found),
) -> Lsn {
    let data_end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    while pos < data_end {
        let Some(want) = next else {
            // Where the next run starts is not known: find it.
            match resync(data, pos, data_end, h, last) {
                Some((at, lsn)) => {
                    if at > pos {
                        found(damage(path, pos, at, "no frame verifies here"));
                    }
                    (pos, next) = (at, Some(lsn));
                    continue;
                }
                None => {
                    found(damage(path, pos, data_end, "no frame verifies here"));
                    break;
                }
            }
        };
        let mut scanner = scan_frames(data.clone(), h, pos, want, false);
        for frame in scanner.by_ref() {
            last = frame.lsn;
            found(Found::Frame {
                seq: h.seq,
                offset: frame.offset as u64,
                frame,
            });
        }
        match scanner.end() {
            Some(ScanEnd::TornTail { offset, reason } | ScanEnd::Corrupt { offset, reason }) => {
                match resync(data, offset + 1, data_end, h, last) {
                    Some((at, lsn)) => {
                        found(damage(path, *offset, at, reason));
                        (pos, next) = (at, Some(lsn));
                    }
                    None => {
                        found(damage(path, *offset, data_end.max(offset + 1), reason));
                        break;
                    }
                }
            }
            _ => break,
        }
    }
    last
}

fn damage(path: &Path, from: usize, to: usize, reason: &str) -> Found {
    Found::Damage {
        file: path.to_path_buf(),
        from: from as u64,
        to: to as u64,
        reason: reason.to_owned(),
    }
}

/// The first offset at or after `from` where a frame verifies whose LSN could follow `last`
/// across the bytes skipped, with that LSN.
fn resync(
    data: &Bytes,
    from: usize,
    end: usize,
    h: SegmentHeader,
    last: Lsn,
) -> Option<(usize, Lsn)> {
    let seed = h.seed();
    (from..end.saturating_sub(FRAME_HEADER_LEN - 1)).find_map(|at| {
        // Cheap tests first: a known kind byte and a length that fits.
        FrameKind::from_u8(data[at + 8])?;
        let len = u32::from_le_bytes(data[at + 4..at + 8].try_into().ok()?) as usize;
        if at + FRAME_HEADER_LEN + len > data.len() {
            return None;
        }
        let frame = decode_frame(data, at, seed).ok()?;
        let most = last.0 + 1 + ((at - from.min(at)) / FRAME_HEADER_LEN) as u64;
        // A watermark repeats the LSN before it: not where a run can start.
        (frame.kind.takes_lsn() && frame.lsn > last && (last == Lsn::ZERO || frame.lsn.0 <= most))
            .then_some((at, frame.lsn))
    })
}

pub(crate) fn read_all(vfs: &dyn Vfs, path: &Path) -> Result<Bytes> {
    let f = vfs
        .open(path, OpenMode::Read)
        .map_err(io_err("open", path))?;
    let len = f.len().map_err(io_err("stat", path))?;
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    let mut at = 0;
    while at < buf.len() {
        let n = f
            .read_at(&mut buf[at..], at as u64)
            .map_err(io_err("read", path))?;
        if n == 0 {
            buf.truncate(at);
            break;
        }
        at += n;
    }
    Ok(Bytes::from(buf))
}
