//! Read-only scanning of a log directory: what open recovers from, and what `walctl verify`
//! reports. Nothing here writes.

use crate::error::{Result, WalError, io_err};
use crate::segment::{Entry, classify, segment_file_name};
use crate::vfs::{OpenMode, Vfs, read_all};
use bytes::Bytes;
use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wal_format::{
    FormatError, FrameKind, LogId, Lsn, SEGMENT_HEADER_LEN, ScanEnd, SegmentHeader, SegmentScanner,
    SegmentSeq,
};

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
    /// LSN of the last checkpoint frame in it and the snapshot LSN it names.
    pub last_checkpoint: Option<(Lsn, Lsn)>,
    /// Frame bytes after the last checkpoint frame in this segment (all of them when none).
    pub bytes_after_checkpoint: u64,
    /// The header error, when the header failed.
    pub header_error: Option<FormatError>,
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

    /// LSN of the last valid frame in the log.
    #[must_use]
    pub fn last_lsn(&self) -> Lsn {
        self.segments.last().map_or(Lsn::ZERO, |s| s.last_lsn)
    }
}

/// Lists and classifies a directory: `(segments sorted, aside files, prealloc present)`.
pub(crate) fn list_dir(vfs: &dyn Vfs, dir: &Path) -> Result<(Vec<SegmentSeq>, Vec<String>, bool)> {
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
    for name in names {
        match classify(&name) {
            Entry::Segment(s) => segs.push(s),
            Entry::Aside => aside.push(name),
            Entry::Prealloc => prealloc = true,
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
    Ok((segs, aside, prealloc))
}

/// Scans one segment file fully.
pub(crate) fn scan_segment(
    vfs: &dyn Vfs,
    path: &Path,
    seq: SegmentSeq,
    expect_sealed: bool,
    open_streams: &mut BTreeSet<Lsn>,
) -> Result<SegmentScan> {
    let file = vfs
        .open(path, OpenMode::Read)
        .map_err(io_err("open", path))?;
    let data = read_all(&*file).map_err(io_err("read", path))?;
    let file_len = data.len() as u64;
    let data_end = data
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i as u64 + 1);
    let data = Bytes::from(data);
    let mut scan = SegmentScan {
        path: path.to_path_buf(),
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
        data_end,
        last_checkpoint: None,
        bytes_after_checkpoint: 0,
        header_error: None,
    };
    let mut scanner = match SegmentScanner::new(data, expect_sealed) {
        Ok(s) => s,
        Err(e) => {
            scan.end = ScanEnd::Corrupt {
                offset: 0,
                reason: format!("segment header: {e}"),
            };
            scan.header_error = Some(e);
            return Ok(scan);
        }
    };
    let header = *scanner.header();
    scan.header = Some(header);
    scan.first_lsn = header.base_lsn;
    scan.last_lsn = header.base_lsn.prev();
    scan.bytes_after_checkpoint = SEGMENT_HEADER_LEN as u64;
    for frame in scanner.by_ref() {
        scan.frames += 1;
        scan.last_lsn = frame.lsn;
        scan.bytes_after_checkpoint += frame.encoded_len() as u64;
        match frame.kind {
            FrameKind::Tx => scan.transactions += 1,
            FrameKind::FragBegin => {
                open_streams.insert(frame.lsn);
            }
            FrameKind::FragEnd | FrameKind::FragAbort => {
                if let Some(s) = frame.stream() {
                    open_streams.remove(&s);
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
    }
    scan.end = scanner.finish();
    Ok(scan)
}

/// Scans a whole log directory without changing anything and without taking the lock (so it
/// works on a live directory and on a read-only copy). `progress` is called with
/// `(bytes scanned, bytes in all segments)` after each segment.
///
/// # Errors
/// [`WalError::NotFound`], [`WalError::NotAWal`] for foreign files, or an I/O error. Damage
/// inside segments is not an error here: it is in the returned [`Inspection`].
pub fn inspect(
    vfs: &dyn Vfs,
    dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Inspection> {
    let (segs, aside_files, prealloc) = list_dir(vfs, dir)?;
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
        ..Inspection::default()
    };
    let mut done = 0u64;
    let mut open_streams = BTreeSet::new();
    for (i, seq) in segs.iter().enumerate() {
        let path = dir.join(segment_file_name(*seq));
        let expect_sealed = i + 1 < segs.len();
        let scan = scan_segment(vfs, &path, *seq, expect_sealed, &mut open_streams)?;
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

fn header_only(vfs: &dyn Vfs, path: &Path, seq: SegmentSeq) -> Result<SegmentScan> {
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
        last_checkpoint: None,
        bytes_after_checkpoint: 0,
        header_error: header.err(),
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
/// anything (for tools working on a live or copied directory). It holds one segment in memory
/// at a time. It ends at the first damage; [`DirFrames::end`] then says what it was.
///
/// # Errors
/// [`WalError::NotFound`], [`WalError::NotAWal`] or an I/O error listing the directory.
pub fn frames(vfs: Arc<dyn Vfs>, dir: &Path) -> Result<DirFrames> {
    let (segs, _, _) = list_dir(&*vfs, dir)?;
    Ok(DirFrames {
        vfs,
        dir: dir.to_path_buf(),
        segs,
        idx: 0,
        scanner: None,
        end: None,
    })
}

/// Iterator made by [`frames`].
pub struct DirFrames {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    segs: Vec<SegmentSeq>,
    idx: usize,
    scanner: Option<SegmentScanner>,
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
}

impl Iterator for DirFrames {
    type Item = Result<DirFrame>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(s) = self.scanner.as_mut() {
                if let Some(frame) = s.next() {
                    return Some(Ok(DirFrame {
                        seq: s.header().seq,
                        frame,
                    }));
                }
                let end = s.end().cloned().unwrap_or(ScanEnd::Clean {
                    offset: SegmentScanner::position(s),
                    sealed: None,
                });
                let path = self.dir.join(segment_file_name(s.header().seq));
                self.scanner = None;
                let clean = matches!(end, ScanEnd::Clean { .. });
                self.end = Some((path, end));
                if !clean {
                    self.idx = self.segs.len();
                    return None;
                }
            }
            let seq = *self.segs.get(self.idx)?;
            self.idx += 1;
            let path = self.dir.join(segment_file_name(seq));
            let data = match self
                .vfs
                .open(&path, OpenMode::Read)
                .and_then(|f| read_all(&*f))
            {
                Ok(d) => d,
                Err(e) => return Some(Err(io_err("read", &path)(e))),
            };
            match SegmentScanner::new(Bytes::from(data), self.idx < self.segs.len()) {
                Ok(s) => self.scanner = Some(s),
                Err(e) => {
                    self.end = Some((
                        path,
                        ScanEnd::Corrupt {
                            offset: 0,
                            reason: format!("segment header: {e}"),
                        },
                    ));
                    self.idx = self.segs.len();
                    return None;
                }
            }
        }
    }
}
