//! Read-only scanning of a log directory: what open recovers from, and what `walctl verify`
//! reports. Nothing here writes.

use crate::error::{Damage, Result, WalError, io_err};
use crate::layout::{Entry, classify, segment_file_name};
use crate::options::RecoveryMode;
use crate::plan::{RecoveryPlan, plan_recovery};
use crate::vfs::read_full;
use crate::vfs::{OpenMode, Vfs, VfsFile};
use bytes::BytesMut;
use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wal_format::{
    ChunkedScanner, FRAME_HEADER_LEN, FormatError, FrameKind, LogId, Lsn, MAX_FRAME_PAYLOAD,
    SEGMENT_HEADER_LEN, ScanEnd, SegmentHeader, SegmentSeq,
};

/// Bytes a scan reads at a time into its one reused buffer (which grows only to fit a frame
/// larger than this).
pub(crate) const SCAN_CHUNK: usize = wal_format::DEFAULT_CHUNK;

/// What one segment holds, as found by a scan.
#[derive(Clone, Debug)]
pub struct SegmentScan {
    /// The file.
    pub path: PathBuf,
    /// Its sequence number (from the file name).
    pub seq: SegmentSeq,
    /// Its header, when it decoded.
    pub header: Option<SegmentHeader>,
    /// Length of the file in bytes (including preallocated zeros).
    pub file_len: u64,
    /// Number of valid frames.
    pub frames: u64,
    /// Number of committed transactions (`Tx` and `FragEnd` frames).
    pub transactions: u64,
    /// LSN of the first valid frame (the header's base LSN).
    pub first_lsn: Lsn,
    /// LSN of the last valid frame, or `first_lsn - 1` when none.
    pub last_lsn: Lsn,
    /// How the scan ended; for a header that failed, `Corrupt` at offset 0.
    pub end: ScanEnd,
    /// Offset of the last non-zero byte + 1 (where data of any kind ends).
    pub data_end: u64,
    /// Where the bytes that recovery moves aside for a torn tail end: [`SegmentScan::data_end`],
    /// except in a recycled segment, whose bytes after the tail are mostly stale data of the
    /// file's earlier life: there only the failing frame, as far as its header declares it
    /// (at least one frame header), is the torn write. Equal to `data_end` when the scan did
    /// not end in a torn tail.
    pub torn_end: u64,
    /// LSN of the last checkpoint frame in it and the snapshot LSN it names.
    pub last_checkpoint: Option<(Lsn, Lsn)>,
    /// Frame bytes after the last checkpoint frame in this segment (all of them when none).
    pub bytes_after_checkpoint: u64,
    /// The header error, when the header failed.
    pub header_error: Option<FormatError>,
    /// The next segment named by a verified seal frame in this segment, even when damage
    /// follows the seal.
    pub seal: Option<SegmentSeq>,
    /// `(stream, lsn)` of every frame in this segment that commits or aborts a fragmented
    /// transaction not open at that point of the scan: usually one whose beginning is before
    /// the first segment scanned (truncated away, by a truncation a crash interrupted), which
    /// no reader can return whole; in damaged logs also a repeated abort or a bogus stream.
    pub unmatched_ends: Vec<(Lsn, Lsn)>,
    /// `(stream, lsn)` of every frame in this segment that commits or aborts a fragmented
    /// transaction begun in an earlier segment: what truncation needs to know to keep that
    /// earlier segment only while such a transaction ends after its fence.
    pub spanning_ends: Vec<(Lsn, Lsn)>,
}

impl SegmentScan {
    /// Where the bytes that recovery moves aside from a cut in this segment end: the torn
    /// write only ([`SegmentScan::torn_end`]) when a torn tail is cut, everything up to
    /// [`SegmentScan::data_end`] when the log is salvaged.
    #[must_use]
    pub fn aside_end(&self, salvage: bool) -> u64 {
        if salvage {
            self.data_end
        } else {
            self.torn_end
        }
    }
}

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

/// The error a segment header that failed to decode (`e`) is to recovery.
pub(crate) fn header_error(path: &Path, dir: &Path, e: &FormatError) -> WalError {
    match e {
        FormatError::BadMagic { .. } => WalError::NotAWal {
            dir: dir.to_path_buf(),
            reason: format!("{} is named like a segment but {e}", path.display()),
        },
        FormatError::UnsupportedVersion { .. } => WalError::UnsupportedVersion {
            segment: path.to_path_buf(),
            source: e.clone(),
        },
        _ => WalError::Corrupt(Damage {
            segment: path.to_path_buf(),
            offset: 0,
            reason: e.to_string(),
        }),
    }
}

/// [`WalError::Gap`] when segment `seq` (at `path`) does not follow segment `prev`. Recovery
/// checks it before reading the segment's header.
pub(crate) fn seq_gap(path: &Path, prev: Option<SegmentSeq>, seq: SegmentSeq) -> Option<WalError> {
    let prev = prev?;
    (prev.next() != seq).then(|| WalError::Gap {
        segment: path.to_path_buf(),
        reason: format!(
            "segments {} to {} are missing",
            prev.next(),
            SegmentSeq(seq.0 - 1)
        ),
    })
}

/// Why a segment with header `h` (at `path`) does not continue a log `log_id` whose previous
/// segment ends at `prev_last`: it belongs to another log, or LSNs are missing. Recovery refuses
/// both in every mode.
pub(crate) fn does_not_join(
    path: &Path,
    log_id: Option<LogId>,
    prev_last: Option<Lsn>,
    h: &SegmentHeader,
) -> Option<WalError> {
    if let Some(expected) = log_id
        && h.log_id != expected
    {
        return Some(WalError::ForeignSegment {
            segment: path.to_path_buf(),
            expected,
            found: h.log_id,
        });
    }
    let prev_last = prev_last?;
    (prev_last.next() != h.base_lsn).then(|| WalError::Gap {
        segment: path.to_path_buf(),
        reason: format!(
            "it starts at LSN {} but the previous segment ends at LSN {}",
            h.base_lsn, prev_last
        ),
    })
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
            if let (Some(p), Some(h)) = (prev, s.header.as_ref()) {
                let reason = if p.seq.next() != s.seq {
                    Some(format!("segment {} follows segment {}", s.seq, p.seq))
                } else if p.last_lsn.next() != h.base_lsn {
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
    /// ([`crate::plan_recovery`]), for dry runs (`walctl repair --dry-run`, a read-only replay).
    ///
    /// A live directory may change between this scan and a real open; the prediction is of
    /// the directory as scanned.
    ///
    /// # Errors
    /// As [`crate::plan_recovery`].
    pub fn recovery_plan(&self, mode: RecoveryMode) -> Result<RecoveryPlan> {
        plan_recovery(self, mode)
    }
}

/// What a log directory holds, by kind of entry.
#[derive(Debug, Default)]
pub(crate) struct DirListing {
    /// Segments, sorted.
    pub(crate) segs: Vec<SegmentSeq>,
    /// Files moved aside, sorted.
    pub(crate) aside: Vec<String>,
    /// Whether the preallocated next segment exists.
    pub(crate) prealloc: bool,
    /// Recycled segment files, sorted (oldest first).
    pub(crate) recycled: Vec<String>,
}

/// Lists and classifies a directory.
pub(crate) fn list_dir(vfs: &dyn Vfs, dir: &Path) -> Result<DirListing> {
    let names = vfs.list(dir).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            WalError::NotFound {
                dir: dir.to_path_buf(),
            }
        } else {
            WalError::Io {
                op: "list",
                path: dir.to_path_buf(),
                source: e,
            }
        }
    })?;
    let mut segs = Vec::new();
    let mut aside = Vec::new();
    let mut prealloc = false;
    let mut recycled = Vec::new();
    for name in names {
        match classify(&name) {
            Entry::Segment(s) => segs.push(s),
            Entry::Aside => aside.push(name),
            Entry::Prealloc => prealloc = true,
            Entry::Recycled => recycled.push(name),
            Entry::Lock => {}
            Entry::Foreign => {
                return Err(WalError::NotAWal {
                    dir: dir.to_path_buf(),
                    reason: format!(
                        "unexpected entry {name:?} (a WAL directory holds only segments, LOCK and files moved aside)"
                    ),
                });
            }
        }
    }
    segs.sort();
    aside.sort();
    recycled.sort();
    Ok(DirListing {
        segs,
        aside,
        prealloc,
        recycled,
    })
}

/// What a scan shows a visitor, type-erased; each call returns false to stop the scan.
pub(crate) trait RawVisit {
    fn segment(&mut self, header: &SegmentHeader) -> bool;
    fn frame(&mut self, frame: DirFrame) -> bool;
    fn recovered(&mut self, last_lsn: Lsn) -> bool;
}

/// The visitor of a scan, if any.
pub(crate) type Visit<'r, 'v> = &'r mut (dyn RawVisit + 'v);

/// The error a scan returns when its visitor stopped it. Never seen by users:
/// [`Wal::open_visit`](crate::Wal::open_visit) and [`inspect_visit`] return the visitor's own
/// error instead.
pub(crate) fn visit_stopped(path: &Path) -> WalError {
    WalError::Io {
        op: "visit",
        path: path.to_path_buf(),
        source: io::Error::other("stopped by the frame visitor"),
    }
}

/// A segment file opened for scanning, its header read.
pub(crate) struct SegmentFile {
    path: PathBuf,
    seq: SegmentSeq,
    file: Arc<dyn VfsFile>,
    file_len: u64,
    /// The header, or why the first bytes are not one.
    pub(crate) header: std::result::Result<SegmentHeader, FormatError>,
}

/// Opens segment `seq` at `path` and reads its header.
pub(crate) fn open_segment(vfs: &dyn Vfs, path: &Path, seq: SegmentSeq) -> Result<SegmentFile> {
    let file = vfs
        .open(path, OpenMode::Read)
        .map_err(io_err("open", path))?;
    let file_len = file.len().map_err(io_err("stat", path))?;
    let mut head = [0u8; SEGMENT_HEADER_LEN];
    let n = read_full(&*file, &mut head, 0).map_err(io_err("read", path))?;
    Ok(SegmentFile {
        path: path.to_path_buf(),
        seq,
        file,
        file_len,
        header: named_header(SegmentHeader::decode(&head[..n]), seq),
    })
}

/// Whether the file a scan read (through this handle) no longer starts with the header the
/// scan began with: a live log truncated the segment and gave its file to a new segment
/// (recycling) while it was being read, so where the scan stopped says nothing about damage.
///
/// For tools that scan segments themselves; [`inspect`] and [`frames`] already check it and
/// report [`WalError::Changed`].
#[must_use]
pub fn reused_under_us(file: &dyn VfsFile, header: &SegmentHeader) -> bool {
    let mut head = [0u8; SEGMENT_HEADER_LEN];
    match read_full(file, &mut head, 0) {
        Ok(n) => SegmentHeader::decode(&head[..n]).ok() != Some(*header),
        Err(_) => false,
    }
}

/// The header, unless it names another segment than its file: trusting it would let a copied
/// or renamed file stand in for the real one.
fn named_header(
    header: std::result::Result<SegmentHeader, FormatError>,
    seq: SegmentSeq,
) -> std::result::Result<SegmentHeader, FormatError> {
    let h = header?;
    if h.seq == seq {
        return Ok(h);
    }
    Err(FormatError::HeaderMismatch {
        reason: format!(
            "it names segment {} but the file is named for segment {seq}",
            h.seq
        ),
    })
}

impl SegmentFile {
    /// The segment as a scan that did not read its frames: where the scan of the writing
    /// open stops, at a header that fails or does not continue the log (the plan refuses or
    /// cuts there).
    pub(crate) fn unscanned(self) -> SegmentScan {
        let header = named_header(self.header, self.seq);
        let h = header.as_ref().ok().copied();
        let end = match &header {
            Ok(_) => "not scanned: does not continue the log".to_owned(),
            Err(e) => format!("segment header: {e}"),
        };
        SegmentScan {
            path: self.path,
            seq: self.seq,
            header: h,
            file_len: self.file_len,
            frames: 0,
            transactions: 0,
            first_lsn: h.map_or(Lsn::ZERO, |h| h.base_lsn),
            last_lsn: h.map_or(Lsn::ZERO, |h| h.base_lsn.prev()),
            end: ScanEnd::Corrupt {
                offset: 0,
                reason: end,
            },
            data_end: self.file_len,
            torn_end: self.file_len,
            last_checkpoint: None,
            bytes_after_checkpoint: 0,
            header_error: header.err(),
            seal: None,
            unmatched_ends: Vec::new(),
            spanning_ends: Vec::new(),
        }
    }

    /// Scans the segment's frames, a chunk at a time into `buf` (reused from segment to
    /// segment), and passes each verified frame to `visit`.
    pub(crate) fn scan(
        self,
        expect_sealed: bool,
        open_streams: &mut BTreeSet<Lsn>,
        buf: &mut Option<BytesMut>,
        mut visit: Option<Visit<'_, '_>>,
    ) -> Result<SegmentScan> {
        let path = self.path;
        let mut scan = SegmentScan {
            path: path.clone(),
            seq: self.seq,
            header: None,
            file_len: self.file_len,
            frames: 0,
            transactions: 0,
            first_lsn: Lsn::ZERO,
            last_lsn: Lsn::ZERO,
            end: ScanEnd::Clean {
                offset: 0,
                sealed: None,
            },
            data_end: 0,
            torn_end: 0,
            last_checkpoint: None,
            bytes_after_checkpoint: 0,
            header_error: None,
            seal: None,
            unmatched_ends: Vec::new(),
            spanning_ends: Vec::new(),
        };
        let header = match named_header(self.header, self.seq) {
            Ok(h) => h,
            Err(e) => {
                scan.end = ScanEnd::Corrupt {
                    offset: 0,
                    reason: format!("segment header: {e}"),
                };
                scan.header_error = Some(e);
                let (len, data_end) =
                    data_end_of(&*self.file, self.file_len, buf).map_err(io_err("read", &path))?;
                (scan.file_len, scan.data_end) = (len, data_end);
                return Ok(scan);
            }
        };
        scan.header = Some(header);
        scan.first_lsn = header.base_lsn;
        scan.last_lsn = header.base_lsn.prev();
        scan.bytes_after_checkpoint = SEGMENT_HEADER_LEN as u64;
        if let Some(v) = visit.as_mut()
            && !v.segment(&header)
        {
            return Err(visit_stopped(&path));
        }
        let mut scanner =
            ChunkedScanner::new(header, self.file_len, expect_sealed).chunk_size(SCAN_CHUNK);
        if let Some(b) = buf.take() {
            scanner = scanner.with_buffer(b);
        }
        let file: &dyn VfsFile = &*self.file;
        let mut seal_at: Option<usize> = None;
        // (The error is built only on failure: `io_err` allocates the path.)
        while let Some(frame) = scanner
            .next_frame(file)
            .map_err(|e| io_err("read", &path)(e))?
        {
            scan.frames += 1;
            scan.last_lsn = frame.lsn;
            if let Some(next) = frame.sealed_next() {
                seal_at = Some(frame.offset);
                scan.seal = Some(next);
            }
            scan.bytes_after_checkpoint += frame.encoded_len() as u64;
            match frame.kind {
                FrameKind::Tx => scan.transactions += 1,
                FrameKind::FragBegin => {
                    open_streams.insert(frame.lsn);
                }
                FrameKind::FragEnd | FrameKind::FragAbort => {
                    if let Some(s) = frame.stream() {
                        if !open_streams.remove(&s) {
                            scan.unmatched_ends.push((s, frame.lsn));
                        } else if s < header.base_lsn {
                            scan.spanning_ends.push((s, frame.lsn));
                        }
                    }
                    if frame.kind == FrameKind::FragEnd {
                        scan.transactions += 1;
                    }
                }
                FrameKind::Checkpoint => {
                    scan.last_checkpoint = frame.checkpoint_lsn().map(|s| (frame.lsn, s));
                    scan.bytes_after_checkpoint = 0;
                }
                FrameKind::FragPart | FrameKind::Seal => {}
            }
            // A seal naming another segment than the next is not in the valid prefix (see
            // below): not shown. It is the last frame, so nothing after it is either.
            let foreign_seal = frame.sealed_next().is_some_and(|n| n != header.seq.next());
            if let Some(v) = visit.as_mut()
                && !foreign_seal
                && !v.frame(DirFrame {
                    seq: self.seq,
                    frame,
                })
            {
                return Err(visit_stopped(&path));
            }
        }
        scan.end = scanner.finish(file).map_err(io_err("read", &path))?;
        if let (Some(next), Some(at)) = (scan.seal, seal_at)
            && next != header.seq.next()
        {
            // Rotation always names the very next segment; anything else would make open
            // create (or overwrite) the wrong file.
            scan.end = ScanEnd::Corrupt {
                offset: at,
                reason: format!(
                    "the seal names segment {next}, but the next segment is {}",
                    header.seq.next()
                ),
            };
            scan.seal = None;
            // The seal is not part of the valid prefix.
            scan.frames -= 1;
            scan.last_lsn = scan.last_lsn.prev();
            scan.bytes_after_checkpoint = scan
                .bytes_after_checkpoint
                .saturating_sub(wal_format::encoded_frame_len(8) as u64);
        }
        scan.data_end = scanner.data_end(file).map_err(io_err("read", &path))?;
        scan.file_len = scanner.file_len();
        scan.torn_end = scan.data_end;
        if let (true, ScanEnd::TornTail { offset, .. }) = (header.recycled, &scan.end) {
            scan.torn_end = recycled_torn_end(file, *offset as u64, scan.file_len, scan.data_end)
                .map_err(io_err("read", &path))?;
        }
        *buf = scanner.into_buffer();
        Ok(scan)
    }
}

/// [`SegmentScan::torn_end`] of a recycled segment whose tail tore at `offset`: the end of the
/// failing frame if its length field is plausible, else of its frame header and the sector it
/// starts in; never past the
/// data, never short of one frame header (so that zeroing the range leaves an end marker).
fn recycled_torn_end(
    file: &dyn VfsFile,
    offset: u64,
    file_len: u64,
    data_end: u64,
) -> io::Result<u64> {
    let mut h = [0u8; FRAME_HEADER_LEN];
    let n = read_full(file, &mut h, offset)?;
    let header_end = offset + FRAME_HEADER_LEN as u64;
    let len = u64::from(u32::from_le_bytes([h[4], h[5], h[6], h[7]]));
    let frame_end =
        if n == FRAME_HEADER_LEN && len <= MAX_FRAME_PAYLOAD as u64 && header_end + len <= file_len
        {
            header_end + len
        } else {
            // No usable length: take the rest of the 512-byte sector the tail starts in, the
            // unit a torn write loses or keeps.
            header_end.max(offset.div_ceil(512) * 512)
        };
    Ok(frame_end
        .max(header_end)
        .min(data_end.max(header_end))
        .min(file_len))
}

/// The length of a file as read, and the offset just past its last non-zero byte, read a
/// chunk at a time (for a segment whose header failed, which is not scanned for frames).
fn data_end_of(file: &dyn VfsFile, len: u64, buf: &mut Option<BytesMut>) -> io::Result<(u64, u64)> {
    let mut b = buf.take().unwrap_or_default();
    b.resize(b.capacity().max(SCAN_CHUNK), 0);
    let (mut at, mut end) = (0u64, 0u64);
    while at < len {
        let want = (len - at).min(b.len() as u64) as usize;
        let n = read_full(file, &mut b[..want], at)?;
        if let Some(i) = b[..n].iter().rposition(|&x| x != 0) {
            end = at + i as u64 + 1;
        }
        at += n as u64;
        if n < want {
            break;
        }
    }
    *buf = Some(b);
    Ok((at, end))
}

/// Scans one segment file fully (no visitor).
pub(crate) fn scan_segment(
    vfs: &dyn Vfs,
    path: &Path,
    seq: SegmentSeq,
    expect_sealed: bool,
    open_streams: &mut BTreeSet<Lsn>,
) -> Result<SegmentScan> {
    open_segment(vfs, path, seq)?.scan(expect_sealed, open_streams, &mut None, None)
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
/// [`WalError::NotFound`], [`WalError::NotAWal`] for foreign files, or an I/O error. Damage
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
    } = list_dir(vfs, dir)?;
    let mut total = 0u64;
    let mut sizes = Vec::with_capacity(segs.len());
    for seq in &segs {
        let path = dir.join(segment_file_name(*seq));
        let f = vfs
            .open(&path, OpenMode::Read)
            .map_err(io_err("open", &path))?;
        let len = f.len().map_err(io_err("stat", &path))?;
        sizes.push(len);
        total += len;
    }
    let mut out = Inspection {
        dir: dir.to_path_buf(),
        aside_files,
        prealloc,
        recycled_files,
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
                out.segments.push(header_only(vfs, &path, *seq)?);
            }
            break;
        }
    }
    out.open_streams = open_streams;
    Ok(out)
}

/// A segment after the scan stopped, known through its header only: not scanned, it ends
/// (as far as the facts go) in damage at offset 0.
pub(crate) fn header_only(vfs: &dyn Vfs, path: &Path, seq: SegmentSeq) -> Result<SegmentScan> {
    let f = vfs
        .open(path, OpenMode::Read)
        .map_err(io_err("open", path))?;
    let file_len = f.len().map_err(io_err("stat", path))?;
    let mut buf = [0u8; SEGMENT_HEADER_LEN];
    let n = f.read_at(&mut buf, 0).map_err(io_err("read", path))?;
    let header = SegmentHeader::decode(&buf[..n]);
    Ok(SegmentScan {
        path: path.to_path_buf(),
        seq,
        header: header.as_ref().ok().copied(),
        file_len,
        frames: 0,
        transactions: 0,
        first_lsn: header.as_ref().map_or(Lsn::ZERO, |h| h.base_lsn),
        last_lsn: header.as_ref().map_or(Lsn::ZERO, |h| h.base_lsn.prev()),
        end: ScanEnd::Corrupt {
            offset: 0,
            reason: "not scanned: follows damage in an earlier segment".into(),
        },
        data_end: file_len,
        torn_end: file_len,
        last_checkpoint: None,
        bytes_after_checkpoint: 0,
        header_error: header.err(),
        seal: None,
        unmatched_ends: Vec::new(),
        spanning_ends: Vec::new(),
    })
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
/// [`WalError::NotFound`], [`WalError::NotAWal`] or an I/O error listing the directory.
pub fn frames(vfs: Arc<dyn Vfs>, dir: &Path) -> Result<DirFrames> {
    let segs = list_dir(&*vfs, dir)?.segs;
    Ok(DirFrames {
        vfs,
        dir: dir.to_path_buf(),
        segs,
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
