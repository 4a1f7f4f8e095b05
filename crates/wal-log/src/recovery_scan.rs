//! The scan of a log directory that both the writing open ([`crate::Wal::open`], through
//! [`scan_for_open`]) and the read-only inspection ([`crate::inspect`]) run: listing and
//! classifying the directory, reading each segment's header, scanning its frames a chunk at a
//! time, and the checks that a segment continues the log. It produces facts (a
//! [`SegmentScan`] per segment, gathered in an [`Inspection`]); what recovery does about them
//! is decided by [`crate::inspect::plan_recovery`]. Nothing here writes.

use crate::error::{Damage, Result, WalError, io_err};
use crate::layout::{Entry, classify, segment_file_name};
use crate::open_report::OpenReport;
use crate::options::Options;
use crate::progress::Tally;
use crate::vfs::{OpenMode, Vfs, VfsFile, read_full};
use bytes::BytesMut;
use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wal_format::frame::{FRAME_HEADER_LEN, MAX_FRAME_PAYLOAD};
use wal_format::header::SEGMENT_HEADER_LEN;
use wal_format::scan::{ChunkedScanner, ScanEnd};
use wal_format::{FormatError, Frame, FrameKind, LogId, Lsn, SegmentHeader, SegmentSeq};

/// What the scan of the writing open found: the facts the plan is made from, and what only
/// the open needs.
pub(crate) struct OpenScan {
    /// What [`plan_recovery`](crate::inspect::plan_recovery) decides from: every segment,
    /// scanned up to the first damage or the first segment that does not continue the log, and
    /// only through its header after; with the fragmented transactions begun and not ended in
    /// the frames scanned ([`Inspection::open_streams`], as the read-only inspection fills it).
    pub(crate) found: Inspection,
    /// Bytes of segment files the scan read.
    pub(crate) bytes_scanned: u64,
    /// How long it took.
    pub(crate) elapsed: Duration,
}

/// Scans every segment in `listing` for the open, showing `visit` the frames of the valid
/// prefix. It stops reading frames at the first segment whose header fails or that does not
/// continue the log, and after the first segment whose frames end in damage; the segments
/// after are read through their headers only. Refuses (before showing its frames) a segment
/// of a payload schema `opts` does not accept.
pub(crate) fn scan_for_open(
    vfs: &dyn Vfs,
    dir: &Path,
    opts: &Options,
    listing: &DirListing,
    (mut visit, tally): (Option<Visit<'_, '_>>, &mut Tally),
) -> Result<OpenScan> {
    let started = Instant::now();
    let segs = &listing.segs;
    let mut found = Inspection {
        dir: dir.to_path_buf(),
        aside_files: listing.aside.clone(),
        prealloc: listing.prealloc,
        recycled_files: listing.recycled.clone(),
        ..Inspection::default()
    };
    let mut bytes_scanned = 0;
    // One read buffer for every segment.
    let mut buf = None;
    let mut stopped_at = segs.len();
    for (i, seq) in segs.iter().enumerate() {
        let path = dir.join(segment_file_name(*seq));
        let prev = found.segments.last();
        // The header and the segment's continuity are checked before its frames are read,
        // so that a visitor only ever sees frames of the valid prefix.
        let continues = seq_gap(&path, prev.map(|p| p.seq), *seq).is_none();
        let seg = open_segment(vfs, &path, *seq)?;
        let joins = match &seg.header {
            Ok(h) => {
                continues
                    && does_not_join(&path, found.log_id, prev.map(|p| p.last_lsn), h).is_none()
            }
            Err(_) => false,
        };
        if !joins {
            tally.add(seg.file_len);
            found.segments.push(seg.unscanned());
            stopped_at = i + 1;
            break;
        }
        if let Ok(h) = &seg.header {
            if !opts.accepts_payload_schema(h.payload_schema) {
                return Err(WalError::PayloadSchema {
                    segment: path,
                    found: h.payload_schema,
                    expected: opts.payload_schema.unwrap_or(0),
                    accepted: opts.upgrade_payload_schemas.clone(),
                });
            }
            found.log_id.get_or_insert(h.log_id);
        }
        let expect_sealed = i + 1 < segs.len();
        let streams = &mut found.open_streams;
        let scan = seg.scan(expect_sealed, streams, &mut buf, visit.as_deref_mut())?;
        bytes_scanned += scan.file_len;
        tally.add(scan.file_len);
        let clean = matches!(scan.end, ScanEnd::Clean { .. });
        found.segments.push(scan);
        if !clean {
            stopped_at = i + 1;
            break;
        }
    }
    for seq in &segs[stopped_at..] {
        let path = dir.join(segment_file_name(*seq));
        let unread = header_only(vfs, &path, *seq, "follows damage in an earlier segment")?;
        tally.add(unread.file_len);
        found.segments.push(unread);
    }
    Ok(OpenScan {
        found,
        bytes_scanned,
        elapsed: started.elapsed(),
    })
}

/// Bytes a scan reads at a time into its one reused buffer (which grows only to fit a frame
/// larger than this).
pub(crate) const SCAN_CHUNK: usize = wal_format::scan::DEFAULT_CHUNK;

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
    /// Whether its frames were read. False for a segment after the damage that stopped the
    /// scan (or one that does not continue the log): known through its header only, its
    /// `end` is then `Corrupt` at offset 0 with the reason it was not examined.
    pub examined: bool,
    /// The durable watermark: the highest LSN any verifying frame of this segment claims
    /// durable, those after a failed frame included (docs/format.md 3.3); [`Lsn::ZERO`] when
    /// none claims anything. In the newest segment a failed frame is corruption exactly when
    /// a frame after it claims its LSN.
    pub watermark: Lsn,
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
    /// A segment at `path` before its scan: no header, no frames.
    pub(crate) fn empty(path: PathBuf, seq: SegmentSeq, file_len: u64) -> SegmentScan {
        SegmentScan {
            path,
            seq,
            header: None,
            file_len,
            frames: 0,
            transactions: 0,
            first_lsn: Lsn::ZERO,
            last_lsn: Lsn::ZERO,
            end: ScanEnd::Clean {
                offset: 0,
                sealed: None,
            },
            examined: true,
            watermark: Lsn::ZERO,
            data_end: 0,
            torn_end: 0,
            last_checkpoint: None,
            bytes_after_checkpoint: 0,
            header_error: None,
            seal: None,
            unmatched_ends: Vec::new(),
            spanning_ends: Vec::new(),
        }
    }

    /// A segment whose frames were not read, known through its header (as decoded) only: it
    /// ends, as far as the facts go, in damage at offset 0, for `reason`.
    fn not_examined(
        (path, seq, file_len): (PathBuf, SegmentSeq, u64),
        header: std::result::Result<SegmentHeader, FormatError>,
        reason: String,
    ) -> SegmentScan {
        let h = header.as_ref().ok().copied();
        SegmentScan {
            header: h,
            first_lsn: h.map_or(Lsn::ZERO, |h| h.base_lsn),
            last_lsn: h.map_or(Lsn::ZERO, |h| h.base_lsn.prev()),
            end: ScanEnd::Corrupt { offset: 0, reason },
            examined: false,
            data_end: file_len,
            torn_end: file_len,
            header_error: header.err(),
            ..SegmentScan::empty(path, seq, file_len)
        }
    }

    /// Counts one verified frame of a segment starting at `base_lsn`, and follows the
    /// fragmented transactions it begins or ends in `open_streams`.
    #[inline]
    fn count(&mut self, frame: &Frame, open_streams: &mut BTreeSet<Lsn>, base_lsn: Lsn) {
        self.frames += 1;
        self.last_lsn = frame.lsn;
        self.watermark = self.watermark.max(frame.durable());
        if let Some(next) = frame.sealed_next() {
            self.seal = Some(next);
        }
        self.bytes_after_checkpoint += frame.encoded_len() as u64;
        match frame.kind {
            FrameKind::Tx => self.transactions += 1,
            FrameKind::FragBegin => {
                open_streams.insert(frame.lsn);
            }
            FrameKind::FragEnd | FrameKind::FragAbort => {
                if let Some(s) = frame.stream() {
                    if !open_streams.remove(&s) {
                        self.unmatched_ends.push((s, frame.lsn));
                    } else if s < base_lsn {
                        self.spanning_ends.push((s, frame.lsn));
                    }
                }
                if frame.kind == FrameKind::FragEnd {
                    self.transactions += 1;
                }
            }
            FrameKind::Checkpoint => {
                self.last_checkpoint = frame.checkpoint_lsn().map(|s| (frame.lsn, s));
                self.bytes_after_checkpoint = 0;
            }
            FrameKind::FragPart | FrameKind::Seal | FrameKind::Watermark => {}
        }
    }

    /// After the scan of segment `seq`: a seal (found at `seal_at`) that names another
    /// segment than the next is corruption, and not part of the valid prefix. Rotation always
    /// names the very next segment; anything else would make open create (or overwrite) the
    /// wrong file.
    fn reject_foreign_seal(&mut self, seal_at: Option<usize>, seq: SegmentSeq) {
        let (Some(next), Some(at)) = (self.seal, seal_at) else {
            return;
        };
        if next == seq.next() {
            return;
        }
        self.end = ScanEnd::Corrupt {
            offset: at,
            reason: format!(
                "the seal names segment {next}, but the next segment is {}",
                seq.next()
            ),
        };
        self.seal = None;
        // The seal is not part of the valid prefix.
        self.frames -= 1;
        self.last_lsn = self.last_lsn.prev();
        self.bytes_after_checkpoint = self
            .bytes_after_checkpoint
            .saturating_sub(wal_format::frame::encoded_frame_len(8) as u64);
    }

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
    let last = SegmentSeq(seq.0.saturating_sub(1));
    (prev.next() != seq).then(|| WalError::Gap {
        segment: path.to_path_buf(),
        reason: if prev.next() == last {
            format!("segment {last} is missing")
        } else {
            format!("segments {} to {last} are missing", prev.next())
        },
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
    /// Entries that are not the log's (and not tolerated as `lost+found` or hidden), sorted.
    pub(crate) foreign: Vec<String>,
}

impl DirListing {
    /// The refusal of a writing open when the directory holds a foreign file: it may be
    /// another program's, or a segment someone renamed, and the log must not grow around it.
    pub(crate) fn refuse_foreign(&self, dir: &Path) -> Result<()> {
        match self.foreign.first() {
            None => Ok(()),
            Some(name) => Err(WalError::NotAWal {
                dir: dir.to_path_buf(),
                reason: format!(
                    "unexpected entry {name:?} (a WAL directory holds only segments, LOCK and files moved aside; `walctl stat` and `walctl verify` still read the log and list such files): move it out of the directory"
                ),
            }),
        }
    }
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
    let mut foreign = Vec::new();
    for name in names {
        match classify(&name) {
            Entry::Segment(s) => segs.push(s),
            Entry::Aside => aside.push(name),
            Entry::Prealloc => prealloc = true,
            Entry::Recycled => recycled.push(name),
            Entry::Lock | Entry::Ignored => {}
            Entry::Foreign => foreign.push(name),
        }
    }
    segs.sort();
    aside.sort();
    recycled.sort();
    foreign.sort();
    Ok(DirListing {
        segs,
        aside,
        prealloc,
        recycled,
        foreign,
    })
}

/// What a scan shows a visitor, type-erased; each call returns false to stop the scan.
pub(crate) trait RawVisit {
    fn segment(&mut self, header: &SegmentHeader) -> bool;
    fn frame(&mut self, frame: DirFrame) -> bool;
    fn recovered(&mut self, open: &OpenReport) -> bool;
}

/// The visitor of a scan, if any.
pub(crate) type Visit<'r, 'v> = &'r mut (dyn RawVisit + 'v);

/// The error a scan returns when its visitor stopped it. Never seen by users:
/// [`Wal::open_visit`](crate::Wal::open_visit) and [`inspect_visit`](crate::inspect::inspect_visit) return the visitor's own
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
    pub(crate) file: Arc<dyn VfsFile>,
    pub(crate) file_len: u64,
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
/// For tools that scan segments themselves; [`crate::inspect::inspect()`] and [`crate::inspect::frames`]
/// already check it and report [`WalError::Changed`].
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
pub(crate) fn named_header(
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
        let reason = match &header {
            Ok(_) => "not scanned: does not continue the log".to_owned(),
            Err(e) => format!("segment header: {e}"),
        };
        SegmentScan::not_examined((self.path, self.seq, self.file_len), header, reason)
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
        let mut scan = SegmentScan::empty(path.clone(), self.seq, self.file_len);
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
            if frame.sealed_next().is_some() {
                seal_at = Some(frame.offset);
            }
            scan.count(&frame, open_streams, header.base_lsn);
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
        scan.watermark = scan.watermark.max(scanner.claimed_after_damage());
        scan.reject_foreign_seal(seal_at, header.seq);
        scan.data_end = scanner.data_end(file).map_err(io_err("read", &path))?;
        scan.file_len = scanner.file_len();
        scan.torn_end = scan.data_end;
        if let (true, ScanEnd::TornTail { offset, .. }) = (header.recycled, &scan.end) {
            scan.torn_end = recycled_torn_end(file, *offset as u64, scan.file_len, scan.data_end)
                .map_err(io_err("read", &path))?;
            // Unsynced frames that reached the disk past the hole belong to the tail: left
            // behind, the next writes could line up with them and make them read as data.
            if let Some(end) = scanner.valid_after_damage() {
                scan.torn_end = scan.torn_end.max(end);
            }
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

/// A segment after the scan stopped, known through its header only: not scanned, it ends
/// (as far as the facts go) in damage at offset 0.
pub(crate) fn header_only(
    vfs: &dyn Vfs,
    path: &Path,
    seq: SegmentSeq,
    why: &str,
) -> Result<SegmentScan> {
    let f = vfs
        .open(path, OpenMode::Read)
        .map_err(io_err("open", path))?;
    let file_len = f.len().map_err(io_err("stat", path))?;
    let mut buf = [0u8; SEGMENT_HEADER_LEN];
    let n = f.read_at(&mut buf, 0).map_err(io_err("read", path))?;
    let header = SegmentHeader::decode(&buf[..n]);
    let reason = format!("not examined: {why}");
    Ok(SegmentScan::not_examined(
        (path.to_path_buf(), seq, file_len),
        header,
        reason,
    ))
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
    /// Files that are not the log's (neither `lost+found` nor hidden), sorted: the scan reads
    /// past them, a writing open refuses the directory until they are moved out.
    pub foreign_files: Vec<String>,
    /// Fragmented transactions begun and neither committed nor aborted at the end of the log.
    pub open_streams: BTreeSet<Lsn>,
}

/// The verdict on a whole log: sound, or the first damage in LSN order, as the same
/// [`Damage`] a writing open reports in [`WalError::TornTail`] or [`WalError::Corrupt`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every segment verifies; the log ends cleanly.
    Sound,
    /// The newest segment ends in a torn tail (a crash mid-write); recovery will cut it.
    TornTail(Damage),
    /// Damage a crash cannot explain.
    Corrupt(Damage),
}

impl Verdict {
    /// Where the log is damaged; `None` when it is sound.
    #[must_use]
    pub fn damage(&self) -> Option<&Damage> {
        match self {
            Verdict::Sound => None,
            Verdict::TornTail(d) | Verdict::Corrupt(d) => Some(d),
        }
    }
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
                    return Verdict::Corrupt(Damage::new(&s.path, 0, reason));
                }
            }
            match &s.end {
                ScanEnd::Clean { .. } => {}
                ScanEnd::TornTail { offset, reason } if i + 1 == n => {
                    return Verdict::TornTail(Damage::new(&s.path, *offset as u64, reason));
                }
                ScanEnd::TornTail { offset, reason } | ScanEnd::Corrupt { offset, reason } => {
                    return Verdict::Corrupt(Damage::new(&s.path, *offset as u64, reason));
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
    Verdict::Corrupt(Damage::new(
        dir.join(segment_file_name(first)),
        0,
        format!("{which}: the log has segment {before} and then segment {after}"),
    ))
}

/// One frame found by [`crate::inspect::frames`], with the segment it is in.
#[derive(Clone, Debug)]
pub struct DirFrame {
    /// The segment's sequence number.
    pub seq: SegmentSeq,
    /// The verified frame (its `offset` is the byte offset in the segment file).
    pub frame: wal_format::Frame,
}
