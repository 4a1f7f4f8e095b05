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
pub use crate::recovery_scan::{DirFrame, Inspection, SegmentScan, Verdict, reused_under_us};
use crate::recovery_scan::{
    DirListing, SCAN_CHUNK, Visit, header_only, list_dir, named_header, open_segment,
};
pub use crate::skip::{SkipPlan, plan_skip, plan_skip_with_progress};
use crate::vfs::{OpenMode, Vfs, VfsFile};
use crate::visit::with_visitor;
pub use crate::visit::{ScanVisitor, VisitError};
use bytes::BytesMut;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wal_format::scan::{ChunkedScanner, ScanEnd};
use wal_format::{Lsn, SegmentSeq};

impl Inspection {
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
    /// Reads no segment after the one holding `to` (the first whose header's base LSN is past
    /// it ends the reading), so that [`DirFrames::progress`] counts only what a read up to
    /// `to` reads. The frames up to `to` are the same; frames after it, in the segment
    /// holding it, still follow (the caller stops at them).
    ///
    /// # Errors
    /// An I/O error opening a segment to read its header.
    pub fn until(mut self, to: Lsn) -> Result<DirFrames> {
        for (i, seq) in self.segs.iter().enumerate().skip(1) {
            let seg = open_segment(&*self.vfs, &self.dir.join(segment_file_name(*seq)), *seq)?;
            if seg.header.is_ok_and(|h| h.base_lsn > to) {
                self.segs.truncate(i);
                self.sizes.truncate(i);
                break;
            }
        }
        Ok(self)
    }

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
