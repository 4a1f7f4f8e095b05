//! Read-only inspection of a log directory, for tools (walctl, mirrors, tests) rather than
//! engines: what `walctl verify` reports ([`inspect()`], [`Inspection`], [`Verdict`]), the plan a
//! dry run shows ([`plan_recovery`]), frame iteration ([`frames`]), the per-segment scan
//! ([`SegmentScan`], [`reused_under_us`]) and whether a `Wal` holds the directory
//! ([`check_not_open`]). The visitor seam ([`ScanVisitor`], [`VisitError`]) is also at the crate
//! root, for [`Wal::open_visit`](crate::Wal::open_visit). The scan itself, shared with the
//! writing open, is in `recovery_scan`. Nothing here writes. File names are in
//! [`crate::layout`].

use crate::error::{Result, WalError, io_err};
use crate::layout::segment_file_name;
pub use crate::open::check_not_open;
use crate::options::RecoveryMode;
pub use crate::past_damage::{Found, scan_file_past_damage, scan_past_damage};
use crate::plan::RecoveryPlan;
pub use crate::plan::plan_recovery;
use crate::recovery_scan::{
    DirListing, RawVisit, SCAN_CHUNK, Visit, does_not_join, header_error, header_only, list_dir,
    named_header, open_segment, seq_gap,
};
pub use crate::recovery_scan::{SegmentScan, reused_under_us};
pub use crate::skip::{SkipPlan, plan_skip};
use crate::vfs::{OpenMode, Vfs, VfsFile};
use bytes::BytesMut;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wal_format::scan::{ChunkedScanner, ScanEnd};
use wal_format::{LogId, Lsn, SegmentHeader, SegmentSeq};

/// The result of scanning a whole directory.
#[derive(Clone, Debug, Default)]
pub struct Inspection {
    /// The directory.
    pub dir: PathBuf,
    /// The log id (of the first segment whose header decoded).
    pub log_id: Option<LogId>,
    /// Every segment in sequence order.
    pub segments: Vec<SegmentScan>,
    /// Files moved aside by earlier recoveries or repairs.
    pub aside_files: Vec<String>,
    /// Whether a preallocated next segment exists.
    pub prealloc: bool,
    /// Truncated segment files kept for reuse (`recycled-<seq>.tmp`), sorted.
    pub recycled_files: Vec<String>,
    /// Files that are not the log's (neither `lost+found` nor hidden), sorted: the scan reads
    /// past them, a writing open refuses the directory until they are moved out.
    pub foreign_files: Vec<String>,
    /// Fragmented transactions begun and neither committed nor aborted at the end of the log.
    pub open_streams: BTreeSet<Lsn>,
}

/// The verdict on a whole log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every segment verifies; the log ends cleanly.
    Sound,
    /// The newest segment ends in a torn tail (a crash mid-write); recovery will cut it.
    TornTail {
        /// The segment.
        segment: PathBuf,
        /// Byte offset.
        offset: u64,
        /// Why.
        reason: String,
    },
    /// Damage a crash cannot explain.
    Corrupt {
        /// The segment.
        segment: PathBuf,
        /// Byte offset.
        offset: u64,
        /// Why.
        reason: String,
    },
}

impl Inspection {
    /// The error with which opening this log fails in **every** [`crate::RecoveryMode`], if
    /// it does: a missing segment or LSN range ([`WalError::Gap`]), a segment of another log
    /// ([`WalError::ForeignSegment`]), a header that is not a segment's or of a future version,
    /// or a damaged first header, that recovery meets before any damage it could cut (checked
    /// in the order recovery checks them, with the same functions). A repair cannot fix these; a dry run must
    /// say so rather than plan one.
    #[must_use]
    pub fn refusal(&self) -> Option<WalError> {
        let mut prev: Option<&SegmentScan> = None;
        for (i, s) in self.segments.iter().enumerate() {
            if let Some(e) = seq_gap(&s.path, prev.map(|p| p.seq), s.seq) {
                return Some(e);
            }
            let Some(h) = s.header.as_ref() else {
                // Salvage cuts at a corrupt header after the first segment (nothing after it is
                // checked); any other header failure is refused in every mode.
                let e = header_error(&s.path, &self.dir, s.header_error.as_ref()?);
                return (i == 0 || !matches!(e, WalError::Corrupt { .. })).then_some(e);
            };
            if let Some(e) = does_not_join(&s.path, self.log_id, prev.map(|p| p.last_lsn), h) {
                return Some(e);
            }
            if !matches!(s.end, ScanEnd::Clean { .. }) {
                return None;
            }
            prev = Some(s);
        }
        None
    }

    /// The first problem in the log, in LSN order.
    #[must_use]
    pub fn verdict(&self) -> Verdict {
        let n = self.segments.len();
        let mut prev: Option<&SegmentScan> = None;
        for (i, s) in self.segments.iter().enumerate() {
            if let Some(p) = prev
                && p.seq.next() != s.seq
            {
                return missing_segments(&self.dir, p.seq, s.seq);
            }
            if let (Some(p), Some(h)) = (prev, s.header.as_ref()) {
                let reason = if p.last_lsn.next() != h.base_lsn {
                    Some(format!(
                        "starts at LSN {} but the previous segment ends at LSN {}",
                        h.base_lsn, p.last_lsn
                    ))
                } else if Some(h.log_id) != self.log_id {
                    Some(format!("belongs to log {}", h.log_id))
                } else {
                    None
                };
                if let Some(reason) = reason {
                    return Verdict::Corrupt {
                        segment: s.path.clone(),
                        offset: 0,
                        reason,
                    };
                }
            }
            match &s.end {
                ScanEnd::Clean { .. } => {}
                ScanEnd::TornTail { offset, reason } if i + 1 == n => {
                    return Verdict::TornTail {
                        segment: s.path.clone(),
                        offset: *offset as u64,
                        reason: reason.clone(),
                    };
                }
                ScanEnd::TornTail { offset, reason } | ScanEnd::Corrupt { offset, reason } => {
                    return Verdict::Corrupt {
                        segment: s.path.clone(),
                        offset: *offset as u64,
                        reason: reason.clone(),
                    };
                }
            }
            prev = Some(s);
        }
        Verdict::Sound
    }

    /// LSN of the last valid frame of the newest segment, whatever the segments before it
    /// hold (0 when its header failed). For the end of the log that recovery keeps, see
    /// [`Inspection::valid_end`]. On a live directory this counts frames written but not yet
    /// durable.
    #[must_use]
    pub fn last_lsn(&self) -> Lsn {
        self.segments.last().map_or(Lsn::ZERO, |s| s.last_lsn)
    }

    /// LSN of the last frame of the log's longest valid prefix, in sequence order: it stops at
    /// a missing segment or LSN range, a segment of another log, a header that failed, and
    /// after the first segment whose frames end in damage. For a sound log, the log's end;
    /// for a damaged one, where a salvage would cut it. As scanned: on a live directory it
    /// counts frames written but not yet durable.
    #[must_use]
    pub fn valid_end(&self) -> Lsn {
        let mut end = Lsn::ZERO;
        let mut prev: Option<&SegmentScan> = None;
        for s in &self.segments {
            let Some(h) = s.header.as_ref() else { break };
            if seq_gap(&s.path, prev.map(|p| p.seq), s.seq).is_some()
                || does_not_join(&s.path, self.log_id, prev.map(|p| p.last_lsn), h).is_some()
            {
                break;
            }
            end = s.last_lsn;
            if !matches!(s.end, ScanEnd::Clean { .. }) {
                break;
            }
            prev = Some(s);
        }
        end
    }

    /// What [`crate::Wal::open`] in `mode` would do to this log, without doing it: the bytes
    /// it would move aside (and the file names it would give them), and the LSNs it would
    /// keep; or the error with which it would refuse. The very plan the open executes
    /// ([`crate::inspect::plan_recovery`]), for dry runs (`walctl repair --dry-run`, a read-only replay).
    ///
    /// A live directory may change between this scan and a real open; the prediction is of
    /// the directory as scanned.
    ///
    /// # Errors
    /// As [`crate::inspect::plan_recovery`].
    pub fn recovery_plan(&self, mode: RecoveryMode) -> Result<RecoveryPlan> {
        plan_recovery(self, mode)
    }
}

/// The verdict on a log whose segments jump from `before` to `after`: it names the first
/// missing segment's file (which does not exist) rather than blaming the one present after it.
fn missing_segments(dir: &Path, before: SegmentSeq, after: SegmentSeq) -> Verdict {
    let first = before.next();
    let last = SegmentSeq(after.0.saturating_sub(1));
    debug_assert!(first <= last, "{before} then {after} is no gap");
    let which = if first == last {
        format!("segment {first} is missing")
    } else {
        format!("segments {first} to {last} are missing")
    };
    Verdict::Corrupt {
        segment: dir.join(segment_file_name(first)),
        offset: 0,
        reason: format!("{which}: the log has segment {before} and then segment {after}"),
    }
}

/// An error of [`crate::Wal::open_visit`] or [`inspect_visit`]: the log's own, or the one the
/// visitor returned. Not `#[non_exhaustive]`, unlike the error enums: an error comes from the
/// log or from the visitor, so there is never a third case (`docs/decisions/0008-errors.md`).
#[derive(Debug)]
pub enum VisitError<E> {
    /// Opening or scanning the log failed.
    Wal(WalError),
    /// The visitor returned this error for a frame; the scan stopped there.
    Visitor(E),
}

impl<E> From<WalError> for VisitError<E> {
    fn from(e: WalError) -> Self {
        VisitError::Wal(e)
    }
}

impl<E: fmt::Display> fmt::Display for VisitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VisitError::Wal(e) => e.fmt(f),
            VisitError::Visitor(e) => write!(f, "frame visitor: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for VisitError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VisitError::Wal(e) => Some(e),
            VisitError::Visitor(e) => Some(e),
        }
    }
}

/// Sees what a scan of the log verifies: [`crate::Wal::open_visit`] and [`inspect_visit`]
/// call it as they read the log, so a caller can build from the log during that single read.
///
/// Any `FnMut(DirFrame) -> Result<(), E>` closure is a visitor of frames only.
pub trait ScanVisitor {
    /// The error that stops the scan.
    type Error;

    /// The header of the next segment, once it has decoded and continues the log (its log id,
    /// sequence number and first LSN follow the previous segment's); its frames follow. The
    /// default does nothing.
    ///
    /// # Errors
    /// Any error stops the scan, which then returns it.
    fn segment(&mut self, header: &SegmentHeader) -> std::result::Result<(), Self::Error> {
        let _ = header;
        Ok(())
    }

    /// One verified frame of the log's valid prefix, in LSN order.
    ///
    /// # Errors
    /// Any error stops the scan, which then returns it.
    fn frame(&mut self, frame: DirFrame) -> std::result::Result<(), Self::Error>;

    /// Called by [`Wal::open_visit`](crate::Wal::open_visit) once recovery has settled the
    /// log's end (`last_lsn`, the last frame kept) and before the open appends anything: the
    /// abort frames for transactions a crash left unfinished take the LSNs after
    /// `last_lsn`. A caller that must act on the end before those LSNs are reused (set aside
    /// what was derived from frames now lost) does it here. An error stops the open, which
    /// then returns it. Not called by read-only scans. The default does nothing.
    ///
    /// # Errors
    /// Any error stops the open.
    fn recovered(&mut self, last_lsn: Lsn) -> std::result::Result<(), Self::Error> {
        let _ = last_lsn;
        Ok(())
    }
}

impl<E, F: FnMut(DirFrame) -> std::result::Result<(), E>> ScanVisitor for F {
    type Error = E;
    fn frame(&mut self, frame: DirFrame) -> std::result::Result<(), E> {
        self(frame)
    }
}

/// A [`ScanVisitor`] behind [`RawVisit`], keeping the first error.
struct Keep<'v, V: ScanVisitor + ?Sized> {
    visitor: &'v mut V,
    failed: Option<V::Error>,
}

impl<V: ScanVisitor + ?Sized> RawVisit for Keep<'_, V> {
    fn segment(&mut self, header: &SegmentHeader) -> bool {
        match self.visitor.segment(header) {
            Ok(()) => true,
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }
    fn frame(&mut self, frame: DirFrame) -> bool {
        match self.visitor.frame(frame) {
            Ok(()) => true,
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }
    fn recovered(&mut self, last_lsn: Lsn) -> bool {
        match self.visitor.recovered(last_lsn) {
            Ok(()) => true,
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }
}

/// Runs `scan` with `visitor` behind a [`Visit`]; a visitor error replaces whatever error
/// the scan then returned.
pub(crate) fn with_visitor<T, V: ScanVisitor + ?Sized>(
    visitor: &mut V,
    scan: impl FnOnce(Visit<'_, '_>) -> Result<T>,
) -> std::result::Result<T, VisitError<V::Error>> {
    let mut keep = Keep {
        visitor,
        failed: None,
    };
    let r = scan(&mut keep);
    match (r, keep.failed) {
        (_, Some(e)) => Err(VisitError::Visitor(e)),
        (Ok(t), None) => Ok(t),
        (Err(e), None) => Err(VisitError::Wal(e)),
    }
}

/// Scans a whole log directory without changing anything and without taking the lock (so it
/// works on a live directory and on a read-only copy). `progress` is called with
/// `(bytes scanned, bytes in all segments)` after each segment.
///
/// Each segment is read a chunk at a time into one reused buffer, so memory stays at about
/// one chunk whatever the segment size.
///
/// # Errors
/// [`WalError::NotFound`], or an I/O error (foreign files are listed in
/// [`Inspection::foreign_files`], not refused). Damage
/// inside segments is not an error here: it is in the returned [`Inspection`].
pub fn inspect(
    vfs: &dyn Vfs,
    dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Inspection> {
    inspect_impl(vfs, dir, progress, None)
}

/// [`inspect`], showing `visitor` every frame of the log's valid prefix during the same
/// single read of the log: in LSN order, each frame once, as it is verified (and each
/// segment's header before its frames).
///
/// The frames visited are those of the longest prefix that verifies and continues the log
/// (the segments' sequence numbers, LSNs and log id): they stop at the first damage, at the
/// first segment that does not continue the one before, or at the first error the visitor
/// returns (which ends the scan: the result is then [`VisitError::Visitor`]). Whatever the
/// [`Inspection::verdict`], every frame visited is in that valid prefix; frames after it are
/// never visited.
///
/// # Errors
/// As [`inspect`], as [`VisitError::Wal`]; or the visitor's error.
pub fn inspect_visit<V: ScanVisitor + ?Sized>(
    vfs: &dyn Vfs,
    dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
    visitor: &mut V,
) -> std::result::Result<Inspection, VisitError<V::Error>> {
    with_visitor(visitor, |v| inspect_impl(vfs, dir, progress, Some(v)))
}

fn inspect_impl(
    vfs: &dyn Vfs,
    dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
    mut visit: Option<Visit<'_, '_>>,
) -> Result<Inspection> {
    let DirListing {
        segs,
        aside: aside_files,
        prealloc,
        recycled: recycled_files,
        foreign: foreign_files,
    } = list_dir(vfs, dir)?;
    let sizes = segment_sizes(vfs, dir, &segs)?;
    let total: u64 = sizes.iter().sum();
    let mut out = Inspection {
        dir: dir.to_path_buf(),
        aside_files,
        prealloc,
        recycled_files,
        foreign_files,
        ..Inspection::default()
    };
    let mut done = 0u64;
    let mut open_streams = BTreeSet::new();
    let mut buf = None;
    for (i, seq) in segs.iter().enumerate() {
        let path = dir.join(segment_file_name(*seq));
        let expect_sealed = i + 1 < segs.len();
        let seg = open_segment(vfs, &path, *seq)?;
        let (file, header) = (seg.file.clone(), seg.header.as_ref().ok().copied());
        if let (Some(prev), Ok(h)) = (out.segments.last(), &seg.header)
            && (prev.seq.next() != *seq
                || prev.last_lsn.next() != h.base_lsn
                || Some(h.log_id) != out.log_id)
        {
            // The verdict calls this segment corrupt: its frames are not in the valid prefix.
            visit = None;
        }
        let scan = seg.scan(
            expect_sealed,
            &mut open_streams,
            &mut buf,
            visit.as_deref_mut(),
        )?;
        if !matches!(scan.end, ScanEnd::Clean { .. })
            && header.is_some_and(|h| reused_under_us(&*file, &h))
        {
            return Err(WalError::Changed { segment: path });
        }
        if out.log_id.is_none() {
            out.log_id = scan.header.map(|h| h.log_id);
        }
        done += sizes[i];
        progress(done, total);
        let stop = !matches!(scan.end, ScanEnd::Clean { .. });
        out.segments.push(scan);
        // Past damage, frames cannot be trusted; later segments are still listed, unscanned
        // in detail only through their headers.
        if stop {
            for seq in &segs[i + 1..] {
                let path = dir.join(segment_file_name(*seq));
                out.segments.push(header_only(
                    vfs,
                    &path,
                    *seq,
                    "follows damage in an earlier segment",
                )?);
            }
            break;
        }
    }
    out.open_streams = open_streams;
    Ok(out)
}

/// A quick look at a log directory, for `walctl stat`: every segment's header and a scan of
/// the newest segment only, so it reads a few bytes per segment plus one segment whatever
/// the log's size. The older segments are not examined ([`SegmentScan::examined`] is false):
/// their LSN ranges come from the headers (each ends where the next begins), their frames are
/// not counted or verified, so [`Inspection::verdict`] does not apply (only [`inspect`] reads
/// every frame). The newest segment's scan gives the log's end and how it ends.
///
/// # Errors
/// As [`inspect`].
pub fn inspect_tail(vfs: &dyn Vfs, dir: &Path) -> Result<Inspection> {
    let listing = list_dir(vfs, dir)?;
    let mut out = Inspection {
        dir: dir.to_path_buf(),
        aside_files: listing.aside,
        prealloc: listing.prealloc,
        recycled_files: listing.recycled,
        foreign_files: listing.foreign,
        ..Inspection::default()
    };
    let Some((newest, older)) = listing.segs.split_last() else {
        return Ok(out);
    };
    for seq in older {
        let path = dir.join(segment_file_name(*seq));
        let s = header_only(vfs, &path, *seq, "stat reads the headers of older segments")?;
        out.segments.push(s);
    }
    let path = dir.join(segment_file_name(*newest));
    let mut open_streams = BTreeSet::new();
    let last =
        open_segment(vfs, &path, *newest)?.scan(false, &mut open_streams, &mut None, None)?;
    out.segments.push(last);
    // An older segment ends where the next one's header says the log continues.
    for i in 1..out.segments.len() {
        if let (Some(h), true) = (out.segments[i].header, out.segments[i - 1].header.is_some()) {
            out.segments[i - 1].last_lsn = h.base_lsn.prev();
        }
    }
    out.log_id = out.segments.iter().find_map(|s| s.header.map(|h| h.log_id));
    out.open_streams = open_streams;
    Ok(out)
}

/// The file length of each of `segs`, for progress reports.
fn segment_sizes(vfs: &dyn Vfs, dir: &Path, segs: &[SegmentSeq]) -> Result<Vec<u64>> {
    segs.iter()
        .map(|seq| {
            let path = dir.join(segment_file_name(*seq));
            let f = vfs
                .open(&path, OpenMode::Read)
                .map_err(io_err("open", &path))?;
            f.len().map_err(io_err("stat", &path))
        })
        .collect()
}

/// One frame found by [`frames`], with the segment it is in.
#[derive(Clone, Debug)]
pub struct DirFrame {
    /// The segment's sequence number.
    pub seq: SegmentSeq,
    /// The verified frame (its `offset` is the byte offset in the segment file).
    pub frame: wal_format::Frame,
}

/// Iterates every valid frame of a log directory in LSN order without locking or changing
/// anything (for tools working on a live or copied directory). Segments are read a chunk at
/// a time into one reused buffer, so memory stays at about one chunk (plus the frames the
/// caller keeps). It ends at the first damage; [`DirFrames::end`] then says what it was.
///
/// # Errors
/// [`WalError::NotFound`] or an I/O error listing the directory.
pub fn frames(vfs: Arc<dyn Vfs>, dir: &Path) -> Result<DirFrames> {
    frames_from(vfs, dir, Lsn::ZERO)
}

/// [`frames`] starting at the segment that holds `from` (the newest whose header's first LSN
/// is at most `from`), found by reading segment headers from the newest back, so a range near
/// the end of a large log is not read from its beginning. Frames before `from` in that segment
/// are still returned. A header that does not decode is started from (the scan then reports
/// it). A fragmented transaction begun in a segment before the start has its commit returned
/// without its beginning, as after a truncation.
///
/// # Errors
/// As [`frames`]; an I/O error reading a header.
pub fn frames_from(vfs: Arc<dyn Vfs>, dir: &Path, from: Lsn) -> Result<DirFrames> {
    let mut segs = list_dir(&*vfs, dir)?.segs;
    let mut start = 0;
    for (i, seq) in segs.iter().enumerate().rev() {
        let seg = open_segment(&*vfs, &dir.join(segment_file_name(*seq)), *seq)?;
        match seg.header {
            Ok(h) if h.base_lsn > from => {}
            _ => {
                start = i;
                break;
            }
        }
    }
    segs.drain(..start);
    let sizes = segment_sizes(&*vfs, dir, &segs)?;
    Ok(DirFrames {
        vfs,
        dir: dir.to_path_buf(),
        segs,
        sizes,
        idx: 0,
        current: None,
        buf: None,
        end: None,
    })
}

/// The segment a [`DirFrames`] is reading.
struct Current {
    path: PathBuf,
    file: Arc<dyn VfsFile>,
    scanner: ChunkedScanner,
}

/// Iterator made by [`frames`].
pub struct DirFrames {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    segs: Vec<SegmentSeq>,
    /// File length of each segment in `segs`, as listed.
    sizes: Vec<u64>,
    idx: usize,
    current: Option<Current>,
    buf: Option<BytesMut>,
    end: Option<(PathBuf, ScanEnd)>,
}

impl std::fmt::Debug for DirFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirFrames")
            .field("dir", &self.dir)
            .field("idx", &self.idx)
            .finish()
    }
}

impl DirFrames {
    /// After the iterator is exhausted: the segment and the way the last scanned segment
    /// ended (a clean end for a sound log).
    #[must_use]
    pub fn end(&self) -> Option<&(PathBuf, ScanEnd)> {
        self.end.as_ref()
    }

    /// `(bytes read, bytes in the segments to read)`, for a progress bar: the segments read
    /// so far count whole, the current one up to the scanner's position.
    #[must_use]
    pub fn progress(&self) -> (u64, u64) {
        let total = self.sizes.iter().sum();
        let whole = self.idx.saturating_sub(usize::from(self.current.is_some()));
        let mut done: u64 = self.sizes[..whole.min(self.sizes.len())].iter().sum();
        if let Some(c) = &self.current {
            done += c.scanner.position();
        }
        (done.min(total), total)
    }

    /// Opens the next segment; false at the end of the log or at a header that fails.
    fn open_next(&mut self) -> Result<bool> {
        let Some(&seq) = self.segs.get(self.idx) else {
            return Ok(false);
        };
        self.idx += 1;
        let path = self.dir.join(segment_file_name(seq));
        let seg = open_segment(&*self.vfs, &path, seq)?;
        match named_header(seg.header, seq) {
            Ok(h) => {
                let mut scanner = ChunkedScanner::new(h, seg.file_len, self.idx < self.segs.len())
                    .chunk_size(SCAN_CHUNK);
                if let Some(b) = self.buf.take() {
                    scanner = scanner.with_buffer(b);
                }
                self.current = Some(Current {
                    path,
                    file: seg.file,
                    scanner,
                });
                Ok(true)
            }
            Err(e) => {
                self.end = Some((
                    path,
                    ScanEnd::Corrupt {
                        offset: 0,
                        reason: format!("segment header: {e}"),
                    },
                ));
                self.idx = self.segs.len();
                Ok(false)
            }
        }
    }
}

impl Iterator for DirFrames {
    type Item = Result<DirFrame>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(c) = self.current.as_mut() {
                match c.scanner.next_frame(&*c.file) {
                    Ok(Some(frame)) => {
                        return Some(Ok(DirFrame {
                            seq: c.scanner.header().seq,
                            frame,
                        }));
                    }
                    // The scanner keeps its place: the next call retries the read.
                    Err(e) => return Some(Err(io_err("read", &c.path)(e))),
                    Ok(None) => {}
                }
                let c = self.current.take()?;
                let end = c.scanner.end().cloned().unwrap_or(ScanEnd::Clean {
                    offset: c.scanner.position() as usize,
                    sealed: None,
                });
                if !matches!(end, ScanEnd::Clean { .. })
                    && reused_under_us(&*c.file, c.scanner.header())
                {
                    self.idx = self.segs.len();
                    return Some(Err(WalError::Changed { segment: c.path }));
                }
                self.buf = c.scanner.into_buffer();
                let clean = matches!(end, ScanEnd::Clean { .. });
                self.end = Some((c.path, end));
                if !clean {
                    self.idx = self.segs.len();
                    return None;
                }
            }
            match self.open_next() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
