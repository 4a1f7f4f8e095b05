//! [`RecoveryMode::SkipDamaged`](crate::RecoveryMode::SkipDamaged): keep every frame that
//! verifies, before and after damaged regions and across missing segments, and give up only
//! the LSNs whose frames are gone.
//!
//! The plan reads the log past damage ([`crate::inspect::scan_past_damage`]) and rewrites each
//! segment that needs it: its verified frames byte for byte (a frame's checksum is seeded by its
//! segment, not its offset, so it verifies wherever it sits), and for each lost LSN a *filler*
//! frame, so the LSNs stay contiguous and the log verifies afterwards. A filler is a
//! `FragAbort` naming its own LSN as its stream (no stream begins there), which every reader
//! skips; a lost seal is written again as a seal. A missing segment is written anew from its
//! neighbours' headers: fillers for the LSNs between them, and a seal. The fragments of a large
//! transaction whose other fragments were lost become fillers too (its commit LSN is reported
//! lost): its body cannot be assembled whole.
//!
//! Nothing verifiable is dropped and nothing is deleted: the damaged bytes are copied into
//! `<segment>.wal.damaged-<offset>` (synced, with the directory) before the segment is
//! replaced, by a rename of a synced temporary file (`<segment>.wal.rewrite`), followed by an
//! fsync of the directory. A crash in between leaves the damaged segment or its rewrite, and
//! the aside copies; running the repair again finishes it.

use crate::error::{Result, WalError, io_err};
use crate::layout::segment_file_name;
use crate::past_damage::{Found, read_all, scan_past_damage};
use crate::plan::MovedAside;
use crate::progress::{Tally, segment_bytes};
use crate::recovery_scan::list_dir;
use crate::vfs::{OpenMode, Vfs};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use wal_format::frame::encode_frame;
use wal_format::header::SEGMENT_HEADER_LEN;
use wal_format::{FrameKind, LogId, Lsn, SegmentHeader, SegmentSeq};

/// What a skip-damaged repair does: segments rewritten (or written anew) and what it loses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkipPlan {
    /// The damaged byte ranges, each copied into the file named before its segment changes.
    pub moved_aside: Vec<MovedAside>,
    /// Segment files rewritten (their verified frames kept) or written anew (missing ones).
    pub rewritten: Vec<PathBuf>,
    /// LSNs no kept frame carries any more: their frames were damaged or missing, or they
    /// commit a large transaction whose other fragments were.
    /// With `k` consecutive segments missing the ranges are an upper bound by exactly `k - 1`:
    /// only the last missing segment's seal is known (the LSN before the next segment's
    /// first) and is not counted; the other `k - 1` seals lie somewhere in the range.
    pub lost: Vec<(Lsn, Lsn)>,
    /// Transactions (whole frames and large-transaction commits) that verify and are kept.
    pub kept_transactions: u64,
    /// The new contents, by path, written by [`execute`].
    contents: BTreeMap<PathBuf, Vec<u8>>,
}

/// A verified frame, by where it is: what the rewrite copies.
#[derive(Clone, Copy)]
struct Kept {
    offset: u64,
    len: usize,
    lsn: Lsn,
    kind: FrameKind,
    stream: Option<Lsn>,
}

/// One segment as the scan past damage found it.
struct Seg {
    seq: SegmentSeq,
    header: Option<SegmentHeader>,
    frames: Vec<Kept>,
    damage: Vec<(u64, u64, String)>,
}

/// The plan for `dir`: read-only.
///
/// # Errors
/// An I/O error; [`WalError::Gap`] or [`WalError::NotAWal`] for what it cannot rebuild: a
/// damaged header whose LSNs no neighbour gives, or more missing segments than lost LSNs.
pub fn plan_skip(vfs: &dyn Vfs, dir: &Path) -> Result<SkipPlan> {
    plan_skip_tallied(vfs, dir, &mut Tally::new(None, 0))
}

/// [`plan_skip`], telling `progress` `(bytes read, bytes to read)` after each segment it
/// reads (a dry run of a repair on a large log).
///
/// # Errors
/// As [`plan_skip`].
pub fn plan_skip_with_progress(
    vfs: &dyn Vfs,
    dir: &Path,
    progress: &crate::Progress,
) -> Result<SkipPlan> {
    let total = segment_bytes(vfs, dir, &list_dir(vfs, dir)?.segs);
    let mut tally = Tally::new(Some(progress.clone()), total);
    let plan = plan_skip_tallied(vfs, dir, &mut tally)?;
    tally.finish();
    Ok(plan)
}

/// [`plan_skip`], counting the bytes it reads in `tally` (the open's progress).
pub(crate) fn plan_skip_tallied(vfs: &dyn Vfs, dir: &Path, tally: &mut Tally) -> Result<SkipPlan> {
    let segs = collect(vfs, dir, tally)?;
    let log_id = segs
        .iter()
        .find_map(|s| s.header.map(|h| h.log_id))
        .ok_or_else(|| WalError::NotAWal {
            dir: dir.to_path_buf(),
            reason: "no segment with a valid header".into(),
        })?;
    let mut p = Planner {
        vfs,
        dir,
        log_id,
        first_base: segs.first().and_then(|s| s.header).map(|h| h.base_lsn),
        schema: segs
            .iter()
            .find_map(|s| s.header.map(|h| h.payload_schema))
            .unwrap_or(0),
        begun: BTreeSet::new(),
        plan: SkipPlan::default(),
    };
    let mut prev: Option<(SegmentSeq, Lsn, Option<SegmentHeader>)> = None;
    for (i, seg) in segs.iter().enumerate() {
        let next = segs.get(i + 1);
        let base = match (seg.header, prev) {
            (Some(h), _) => h.base_lsn,
            (None, Some((_, end, _))) => end.next(),
            (None, None) => oldest_base(dir, seg)?,
        };
        if let Some((pseq, pend, ph)) = prev
            && pseq.next() != seg.seq
        {
            p.write_missing(ph, (pseq, pend), (seg.seq, base))?;
        }
        let last_frame = seg.frames.last();
        let end = match next {
            // The newest segment ends at its last verified frame (damage after it is a tail).
            None => last_frame.map_or(base.prev(), |f| f.lsn),
            // A segment ends just before the next one begins, with its seal.
            Some(n) if n.seq == seg.seq.next() && n.header.is_some() => {
                n.header.map_or(base, |h| h.base_lsn.prev())
            }
            // Before missing segments (or a damaged header): at its seal, written if lost.
            Some(_) => match last_frame {
                Some(f) if f.kind == FrameKind::Seal => f.lsn,
                Some(f) => f.lsn.next(),
                None => base,
            },
        };
        p.rewrite_segment(seg, (base, end), next.is_some())?;
        prev = Some((seg.seq, end, seg.header.or(prev.and_then(|p| p.2))));
    }
    merge(&mut p.plan.lost);
    Ok(p.plan)
}

/// What the plan carries from one segment to the next.
struct Planner<'a> {
    vfs: &'a dyn Vfs,
    dir: &'a Path,
    log_id: LogId,
    /// The first LSN of the oldest segment: streams begun before it were truncated away.
    first_base: Option<Lsn>,
    /// The payload schema of the oldest header that decodes: a header written anew carries it.
    schema: u32,
    /// Large transactions begun in a kept frame since the last lost LSN.
    begun: BTreeSet<Lsn>,
    plan: SkipPlan,
}

/// Reads the log past damage into one [`Seg`] per segment file (offsets and LSNs only).
fn collect(vfs: &dyn Vfs, dir: &Path, tally: &mut Tally) -> Result<Vec<Seg>> {
    let mut segs = Vec::new();
    let mut sizes = Vec::new();
    for seq in list_dir(vfs, dir)?.segs {
        let path = dir.join(segment_file_name(seq));
        let f = vfs
            .open(&path, OpenMode::Read)
            .map_err(io_err("open", &path))?;
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        let n = crate::vfs::read_full(&*f, &mut b, 0).map_err(io_err("read", &path))?;
        sizes.push(f.len().map_err(io_err("stat", &path))?);
        segs.push(Seg {
            seq,
            header: SegmentHeader::decode(&b[..n]).ok(),
            frames: Vec::new(),
            damage: Vec::new(),
        });
    }
    let index: BTreeMap<SegmentSeq, usize> =
        segs.iter().enumerate().map(|(i, s)| (s.seq, i)).collect();
    let seq_of = |file: &Path| {
        file.file_name()
            .and_then(|n| n.to_str()?.get(..20)?.parse().ok())
            .map(SegmentSeq)
    };
    // Segments before the one being read count as read.
    let mut read = 0;
    let mut tell = |upto: usize, tally: &mut Tally| {
        for &len in sizes.get(read..upto).unwrap_or_default() {
            tally.add(len);
        }
        read = read.max(upto);
    };
    scan_past_damage(vfs, dir, &mut |found| match found {
        Found::Frame { seq, offset, frame } => {
            if let Some(&i) = index.get(&seq) {
                tell(i, tally);
            }
            // A watermark repeats the LSN before it and carries nothing to keep: a rewritten
            // segment does without it (its frames' own claims remain).
            if let Some(&i) = index.get(&seq).filter(|_| frame.kind.takes_lsn()) {
                segs[i].frames.push(Kept {
                    offset,
                    len: frame.encoded_len(),
                    lsn: frame.lsn,
                    kind: frame.kind,
                    stream: frame.stream(),
                });
            }
        }
        Found::Damage {
            file,
            from,
            to,
            reason,
        } => {
            if let Some(&i) = seq_of(&file).and_then(|seq| index.get(&seq)) {
                segs[i].damage.push((from, to, reason));
            }
        }
        Found::Missing { .. } => {}
    })?;
    tell(sizes.len(), tally);
    Ok(segs)
}

/// The first LSN of the oldest segment, whose header is damaged: that of its first frame
/// that verifies, when that frame follows the header directly (only the header was damaged,
/// so no LSN before it is lost; nothing older exists in the log). Otherwise how many LSNs the
/// damaged bytes before that frame held is not known, and the plan refuses rather than
/// report a lost range it cannot give exactly.
fn oldest_base(dir: &Path, seg: &Seg) -> Result<Lsn> {
    let first = seg.frames.first();
    let damaged_past_header = seg.damage.iter().any(|(from, to, _)| {
        *to > SEGMENT_HEADER_LEN as u64 && first.is_none_or(|f| *from < f.offset)
    });
    match first {
        Some(f) if f.offset == SEGMENT_HEADER_LEN as u64 && !damaged_past_header => Ok(f.lsn),
        Some(f) => Err(WalError::Gap {
            segment: dir.join(segment_file_name(seg.seq)),
            reason: format!(
                "the oldest segment's header and the bytes after it up to offset {} are damaged: how many LSNs they held (before LSN {}) is not known, so skip-damaged cannot say exactly what it would lose. Move this segment out of the log directory by hand (`walctl dump --file` on it shows the frames that still verify), then repair again: the log then starts at the next segment",
                f.offset, f.lsn
            ),
        }),
        None => Err(WalError::Gap {
            segment: dir.join(segment_file_name(seg.seq)),
            reason: "the oldest segment's header is damaged and no frame in it verifies: its LSNs are not known. Move this segment out of the log directory by hand, then repair again: the log then starts at the next segment".into(),
        }),
    }
}

impl Planner<'_> {
    /// Plans segment `seg` (LSNs `base..=end`, sealed when `sealed`): unchanged when every LSN
    /// has its verified frame and no fragment belongs to a broken stream, else rewritten with
    /// fillers.
    fn rewrite_segment(&mut self, seg: &Seg, (base, end): (Lsn, Lsn), sealed: bool) -> Result<()> {
        let (dir, log_id) = (self.dir, self.log_id);
        let path = dir.join(segment_file_name(seg.seq));
        let by_lsn: BTreeMap<Lsn, Kept> = seg
            .frames
            .iter()
            .filter(|f| f.lsn >= base && f.lsn <= end)
            .map(|f| (f.lsn, *f))
            .collect();
        let header = seg.header.unwrap_or_else(|| {
            SegmentHeader::new(log_id, seg.seq, base).with_payload_schema(self.schema)
        });
        let seed = header.seed();
        let mut changed = seg.header.is_none() || !seg.damage.is_empty();
        // Built whether or not it changes: cheap next to the scan, and the loop decides.
        let mut out = header.encode().to_vec();
        let mut lsn = base;
        let mut body: Vec<(Lsn, Option<Kept>)> = Vec::new();
        while lsn <= end {
            let mut kept = by_lsn.get(&lsn).copied();
            if let Some(k) = kept {
                match (k.kind, k.stream) {
                    (FrameKind::FragBegin, _) => {
                        self.begun.insert(k.lsn);
                    }
                    (FrameKind::FragPart | FrameKind::FragEnd | FrameKind::FragAbort, Some(s))
                        if !self.begun.contains(&s)
                            && self.first_base.is_some_and(|b| s >= b)
                            && s != k.lsn =>
                    {
                        // Its beginning (or a fragment before) was lost: it cannot be read whole.
                        kept = None;
                    }
                    _ => {}
                }
            }
            if kept.is_none() {
                changed = true;
                // A stream open across lost LSNs may have lost fragments: it is broken too.
                self.begun.clear();
            }
            body.push((lsn, kept));
            lsn = lsn.next();
        }
        let plan = &mut self.plan;
        for (lsn, kept) in &body {
            match kept {
                Some(k) if matches!(k.kind, FrameKind::Tx | FrameKind::FragEnd) => {
                    plan.kept_transactions += 1;
                }
                Some(_) => {}
                // The seal, written again.
                None if *lsn == end && sealed => {}
                None => plan.lost.push((*lsn, *lsn)),
            }
        }
        if !changed {
            return Ok(());
        }
        let original = read_all(self.vfs, &path)?;
        for (lsn, kept) in body {
            match kept {
                Some(k) => {
                    let at = k.offset as usize;
                    out.extend_from_slice(&original[at..at + k.len]);
                }
                None if lsn == end && sealed => {
                    let next = seg.seq.next().0.to_le_bytes();
                    encode_frame(&mut out, seed, FrameKind::Seal, 0, lsn, &next)
                        .map_err(|e| format_err(&path, &e))?;
                }
                None => filler(&mut out, seed, lsn, &path)?,
            }
        }
        for (n, (from, to, reason)) in seg.damage.iter().enumerate() {
            let to_name = format!("{}.damaged-{from}", segment_file_name(seg.seq));
            let to_name = if n == 0 {
                to_name
            } else {
                format!("{to_name}.{n}")
            };
            plan.moved_aside.push(MovedAside {
                from: path.clone(),
                offset: *from,
                bytes: to - from,
                to: dir.join(to_name),
                reason: reason.clone(),
            });
        }
        plan.rewritten.push(path.clone());
        plan.contents.insert(path, out);
        Ok(())
    }

    /// The segments `(prev.0, next.0)` exclusive, missing: written anew with the LSNs between
    /// `prev.1` and `next.1` as fillers, each ending in a seal.
    fn write_missing(
        &mut self,
        like: Option<SegmentHeader>,
        (prev_seq, prev_end): (SegmentSeq, Lsn),
        (next_seq, next_base): (SegmentSeq, Lsn),
    ) -> Result<()> {
        let (dir, log_id, plan) = (self.dir, self.log_id, &mut self.plan);
        let count = next_seq.0 - prev_seq.0 - 1;
        let first = prev_end.next();
        let lsns = next_base.0.saturating_sub(first.0);
        if lsns < count {
            return Err(WalError::Gap {
                segment: dir.join(segment_file_name(next_seq)),
                reason: format!(
                    "{count} segments are missing but only {lsns} LSNs lie between their neighbours: skip-damaged cannot rebuild them"
                ),
            });
        }
        // The last missing segment ended in its seal, just before the next base: written
        // again, not lost. Where the seals of missing segments before it were is not known,
        // so with several missing their LSNs count as lost.
        if lsns > 1 {
            plan.lost.push((first, next_base.prev().prev()));
        }
        let mut lsn = first;
        for k in 0..count {
            let seq = SegmentSeq(prev_seq.0 + 1 + k);
            let path = dir.join(segment_file_name(seq));
            let schema = like.map_or(0, |h| h.payload_schema);
            let header = SegmentHeader::new(log_id, seq, lsn).with_payload_schema(schema);
            let mut out = header.encode().to_vec();
            // Every LSN to the next base in the last one; one seal each before it.
            let last = if k + 1 == count {
                next_base.prev()
            } else {
                lsn
            };
            while lsn < last {
                filler(&mut out, header.seed(), lsn, &path)?;
                lsn = lsn.next();
            }
            encode_frame(
                &mut out,
                header.seed(),
                FrameKind::Seal,
                0,
                lsn,
                &seq.next().0.to_le_bytes(),
            )
            .map_err(|e| format_err(&path, &e))?;
            lsn = lsn.next();
            plan.rewritten.push(path.clone());
            plan.contents.insert(path, out);
        }
        Ok(())
    }
}

/// A frame that carries `lsn` and nothing else: a place-holder
/// ([`wal_format::Frame::is_placeholder`]).
fn filler(out: &mut Vec<u8>, seed: wal_format::SegmentSeed, lsn: Lsn, path: &Path) -> Result<()> {
    encode_frame(
        out,
        seed,
        FrameKind::FragAbort,
        0,
        lsn,
        &lsn.0.to_le_bytes(),
    )
    .map_err(|e| format_err(path, &e))
}

fn format_err(path: &Path, e: &wal_format::FormatError) -> WalError {
    WalError::NotAWal {
        dir: path.to_path_buf(),
        reason: format!("rewriting it: {e}"),
    }
}

/// Joins adjacent and overlapping ranges, sorted.
fn merge(ranges: &mut Vec<(Lsn, Lsn)>) {
    ranges.sort();
    let mut out: Vec<(Lsn, Lsn)> = Vec::with_capacity(ranges.len());
    for &(a, b) in ranges.iter() {
        match out.last_mut() {
            Some(last) if a.0 <= last.1.0 + 1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *ranges = out;
}

/// Carries out `plan` under the log's lock: the damaged bytes aside first (synced, with the
/// directory), then each segment replaced by its synced rewrite through a rename, then the
/// directory synced.
///
/// # Errors
/// An I/O error; what was done before it stays done, and running the repair again finishes.
pub fn execute(vfs: &dyn Vfs, dir: &Path, plan: &SkipPlan) -> Result<Vec<MovedAside>> {
    let mut moved = Vec::new();
    for m in &plan.moved_aside {
        let src = vfs
            .open(&m.from, OpenMode::Read)
            .map_err(io_err("open", &m.from))?;
        let mut buf = vec![0u8; usize::try_from(m.bytes).unwrap_or(0)];
        let n =
            crate::vfs::read_full(&*src, &mut buf, m.offset).map_err(io_err("read", &m.from))?;
        let mut to = m.to.clone();
        let mut k = 0;
        // An earlier attempt's copy is never replaced.
        while vfs.open(&to, OpenMode::Read).is_ok() {
            k += 1;
            to = PathBuf::from(format!("{}.{k}", m.to.display()));
        }
        let out = vfs
            .open(&to, OpenMode::CreateNew)
            .map_err(io_err("create", &to))?;
        out.write_all_at(&buf[..n], 0)
            .map_err(io_err("write", &to))?;
        out.sync_all().map_err(io_err("fsync", &to))?;
        moved.push(MovedAside {
            to,
            bytes: n as u64,
            ..m.clone()
        });
    }
    vfs.sync_dir(dir).map_err(io_err("fsync dir", dir))?;
    for (path, content) in &plan.contents {
        debug_assert!(
            content.len() >= SEGMENT_HEADER_LEN,
            "a rewrite holds its header"
        );
        // A name no earlier attempt took: its file is kept, never replaced.
        let mut tmp = PathBuf::from(format!("{}.rewrite", path.display()));
        let mut k = 0;
        while vfs.open(&tmp, OpenMode::Read).is_ok() {
            k += 1;
            tmp = PathBuf::from(format!("{}.rewrite.{k}", path.display()));
        }
        let f = vfs
            .open(&tmp, OpenMode::CreateNew)
            .map_err(io_err("create", &tmp))?;
        f.write_all_at(content, 0).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))?;
        vfs.rename(&tmp, path).map_err(io_err("rename", &tmp))?;
        vfs.sync_dir(dir).map_err(io_err("fsync dir", dir))?;
        tracing::warn!(segment = %path.display(), "segment rewritten around damaged frames");
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_lost_lsns_merge_into_ranges() {
        let mut r = vec![
            (Lsn(7), Lsn(7)),
            (Lsn(3), Lsn(4)),
            (Lsn(5), Lsn(5)),
            (Lsn(10), Lsn(12)),
            (Lsn(11), Lsn(11)),
        ];
        merge(&mut r);
        assert_eq!(
            r,
            vec![(Lsn(3), Lsn(5)), (Lsn(7), Lsn(7)), (Lsn(10), Lsn(12))]
        );
    }
}
