//! Read-only streaming over a log directory: verified frames from a starting LSN, and the
//! assembly of committed transactions (fragments included) under a memory budget.
//!
//! Nothing here locks or writes. Segments are read a chunk at a time (1 MiB, reused), plus
//! the bytes of open fragmented transactions, which are bounded by a budget.

use crate::error::{ReplayError, Result, io_err};
use crate::snapshot::read_full;
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wal_format::{
    FRAME_HEADER_LEN, Frame, FrameKind, LogId, Lsn, MAX_FRAME_PAYLOAD, SEGMENT_HEADER_LEN, ScanEnd,
    SegmentHeader, SegmentSeed, SegmentSeq, decode_frame, scan_frames,
};
use wal_log::{Entry, OpenMode, Transaction, Vfs, VfsFile, classify, segment_file_name};

/// Lists the segments of a log directory, sorted.
///
/// # Errors
/// [`ReplayError::NotFound`] for a missing directory; [`wal_log::WalError::NotAWal`] for a
/// foreign entry; an I/O error.
pub(crate) fn list_segments(vfs: &dyn Vfs, dir: &Path) -> Result<Vec<SegmentSeq>> {
    let names = vfs.list(dir).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            ReplayError::NotFound {
                dir: dir.to_path_buf(),
            }
        } else {
            io_err("list", dir)(e)
        }
    })?;
    let mut segs = Vec::new();
    for name in names {
        match classify(&name) {
            Entry::Segment(s) => segs.push(s),
            Entry::Foreign => {
                return Err(wal_log::WalError::NotAWal {
                    dir: dir.to_path_buf(),
                    reason: format!("unexpected entry {name:?}"),
                }
                .into());
            }
            _ => {}
        }
    }
    segs.sort();
    Ok(segs)
}

pub(crate) fn read_header(vfs: &dyn Vfs, path: &Path) -> Option<SegmentHeader> {
    let f = vfs.open(path, OpenMode::Read).ok()?;
    let mut b = [0u8; SEGMENT_HEADER_LEN];
    let n = read_full(&*f, &mut b, 0).ok()?;
    SegmentHeader::decode(&b[..n]).ok()
}

/// How a [`LogFrames`] scan ended.
#[derive(Clone, Debug)]
pub(crate) struct LogEnd {
    /// The segment the scan ended in.
    pub path: PathBuf,
    /// How.
    pub end: ScanEnd,
}

/// Bytes read from a segment file at a time. Small enough to stay in the CPU cache between
/// the read and the checksum, large enough to amortize the system call.
const CHUNK: usize = 1 << 20;

/// The segment being read.
struct Cursor {
    file: Arc<dyn VfsFile>,
    path: PathBuf,
    header: SegmentHeader,
    seed: SegmentSeed,
    file_len: u64,
    expect_sealed: bool,
    /// File offset of the next frame.
    pos: u64,
    next_lsn: Lsn,
    /// Loaded bytes, starting at file offset `chunk_at`.
    chunk: Bytes,
    chunk_at: u64,
}

/// Verified frames of a log directory in LSN order, from a starting point on.
///
/// Segments are read in [`CHUNK`]-sized pieces into a reused buffer, so memory stays at about
/// one chunk (plus one frame) whatever the segment size. Where a frame fails, the segment is
/// handed to [`wal_format::SegmentScanner`] from that offset to decide, exactly as
/// `Wal::open` does, whether the log ends cleanly there, in a torn tail, or is corrupt.
pub(crate) struct LogFrames {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    segs: Vec<SegmentSeq>,
    idx: usize,
    cursor: Option<Cursor>,
    prev: Option<(SegmentSeq, Lsn, LogId)>,
    end: Option<LogEnd>,
    /// A buffer to reuse for the next chunk, when no frame still points into it.
    spare: Option<BytesMut>,
    /// Bytes of segment files read so far.
    pub bytes_read: u64,
}

/// What reading at the cursor found.
enum Step {
    Frame(Frame),
    End(ScanEnd),
}

impl LogFrames {
    /// Starts at the segment holding `from`, or earlier when a fragmented transaction that
    /// commits at or after `from` began before it (segment headers name the oldest open one).
    pub(crate) fn open(vfs: Arc<dyn Vfs>, dir: &Path, from: Lsn) -> Result<LogFrames> {
        let segs = list_segments(&*vfs, dir)?;
        let mut idx = 0;
        if from > Lsn::FIRST && segs.len() > 1 {
            let headers: Vec<Option<SegmentHeader>> = segs
                .iter()
                .map(|s| read_header(&*vfs, &dir.join(segment_file_name(*s))))
                .collect();
            let base = |i: usize| headers[i].map(|h| h.base_lsn);
            idx = (0..segs.len())
                .rev()
                .find(|&i| base(i).is_some_and(|b| b <= from))
                .unwrap_or(0);
            while let Some(Some(h)) = headers.get(idx) {
                let o = h.oldest_open_lsn;
                if o == Lsn::ZERO || o >= h.base_lsn {
                    break;
                }
                match (0..idx).rev().find(|&j| base(j).is_some_and(|b| b <= o)) {
                    Some(j) => idx = j,
                    None => break,
                }
            }
        }
        Ok(LogFrames {
            vfs,
            dir: dir.to_path_buf(),
            segs,
            idx,
            cursor: None,
            prev: None,
            end: None,
            spare: None,
            bytes_read: 0,
        })
    }

    /// After the iterator is exhausted: where and how it ended (`None` for an empty log).
    pub(crate) fn end(&self) -> Option<&LogEnd> {
        self.end.as_ref()
    }

    fn stop(&mut self, path: PathBuf, end: ScanEnd) {
        self.end = Some(LogEnd { path, end });
        self.idx = self.segs.len();
        self.cursor = None;
    }

    fn open_next(&mut self) -> Result<bool> {
        let Some(&seq) = self.segs.get(self.idx) else {
            return Ok(false);
        };
        self.idx += 1;
        let path = self.dir.join(segment_file_name(seq));
        let file = self
            .vfs
            .open(&path, OpenMode::Read)
            .map_err(io_err("open", &path))?;
        let file_len = file.len().map_err(io_err("stat", &path))?;
        let mut hb = [0u8; SEGMENT_HEADER_LEN];
        let n = read_full(&*file, &mut hb, 0).map_err(io_err("read", &path))?;
        let h = match SegmentHeader::decode(&hb[..n]) {
            Ok(h) => h,
            Err(e) => {
                let end = ScanEnd::Corrupt {
                    offset: 0,
                    reason: format!("segment header: {e}"),
                };
                self.stop(path, end);
                return Ok(false);
            }
        };
        if let Some((pseq, plast, pid)) = self.prev {
            let reason = if pseq.next() != seq {
                Some(format!("segment {seq} follows segment {pseq}"))
            } else if plast.next() != h.base_lsn {
                Some(format!(
                    "starts at LSN {} but the previous segment ends at LSN {plast}",
                    h.base_lsn
                ))
            } else if pid != h.log_id {
                Some(format!("belongs to log {}, not {pid}", h.log_id))
            } else {
                None
            };
            if let Some(reason) = reason {
                self.stop(path, ScanEnd::Corrupt { offset: 0, reason });
                return Ok(false);
            }
        }
        self.cursor = Some(Cursor {
            file,
            path,
            seed: h.seed(),
            header: h,
            file_len,
            expect_sealed: self.idx < self.segs.len(),
            pos: SEGMENT_HEADER_LEN as u64,
            next_lsn: h.base_lsn,
            chunk: Bytes::new(),
            chunk_at: SEGMENT_HEADER_LEN as u64,
        });
        Ok(true)
    }

    /// Loads at least `need` bytes at the cursor's position into the chunk (fewer only at
    /// the end of the file), reusing the previous chunk's buffer when nothing points into it.
    fn refill(&mut self, need: usize) -> Result<()> {
        let Some(c) = self.cursor.as_mut() else {
            return Ok(());
        };
        let size = (c.file_len.saturating_sub(c.pos)).min(CHUNK.max(need) as u64) as usize;
        let old = std::mem::take(&mut c.chunk);
        let mut buf = match old.try_into_mut() {
            Ok(m) if m.capacity() >= size => m,
            _ => self
                .spare
                .take()
                .filter(|m| m.capacity() >= size)
                .unwrap_or_else(|| BytesMut::with_capacity(size.max(CHUNK))),
        };
        buf.clear();
        buf.resize(size, 0);
        let n = read_full(&*c.file, &mut buf, c.pos).map_err(io_err("read", &c.path))?;
        buf.truncate(n);
        self.bytes_read += n as u64;
        c.chunk = buf.freeze();
        c.chunk_at = c.pos;
        Ok(())
    }

    /// Decodes the frame at the cursor, loading bytes as needed.
    fn step(&mut self) -> Result<Step> {
        loop {
            let Some(c) = self.cursor.as_mut() else {
                return Ok(Step::End(ScanEnd::Clean {
                    offset: 0,
                    sealed: None,
                }));
            };
            let rel = (c.pos - c.chunk_at) as usize;
            let avail = c.chunk.len().saturating_sub(rel);
            let need = if avail < FRAME_HEADER_LEN {
                FRAME_HEADER_LEN
            } else {
                let l = &c.chunk[rel + 4..rel + 8];
                let len = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize;
                FRAME_HEADER_LEN + len.min(MAX_FRAME_PAYLOAD + 1)
            };
            if avail < need {
                if c.pos + need as u64 > c.file_len || need > FRAME_HEADER_LEN + MAX_FRAME_PAYLOAD {
                    return self.classify();
                }
                self.refill(need)?;
                continue;
            }
            let Ok(mut frame) = decode_frame(&c.chunk, rel, c.seed) else {
                return self.classify();
            };
            if frame.lsn != c.next_lsn {
                let reason = format!("frame carries LSN {}, expected {}", frame.lsn, c.next_lsn);
                return Ok(Step::End(ScanEnd::Corrupt {
                    offset: c.pos as usize,
                    reason,
                }));
            }
            frame.offset = c.pos as usize;
            c.pos += frame.encoded_len() as u64;
            c.next_lsn = frame.lsn.next();
            return Ok(Step::Frame(frame));
        }
    }

    /// The frame at the cursor does not decode (or the data ends): decide how the segment
    /// ends there. Only zeros after it is a clean end (preallocated space); anything else is
    /// judged by the format's own scanner over the whole segment.
    fn classify(&mut self) -> Result<Step> {
        let Some(c) = self.cursor.as_ref() else {
            return Ok(Step::End(ScanEnd::Clean {
                offset: 0,
                sealed: None,
            }));
        };
        let (pos, path) = (c.pos, c.path.clone());
        if all_zero(&*c.file, pos, c.file_len).map_err(io_err("read", &path))? {
            if c.expect_sealed {
                return Ok(Step::End(ScanEnd::Corrupt {
                    offset: pos as usize,
                    reason: "segment ends without a seal frame, but a newer segment exists".into(),
                }));
            }
            return Ok(Step::End(ScanEnd::Clean {
                offset: pos as usize,
                sealed: None,
            }));
        }
        let data = wal_log::vfs::read_all(&*c.file).map_err(io_err("read", &path))?;
        let mut scanner = scan_frames(
            Bytes::from(data),
            c.header,
            pos as usize,
            c.next_lsn,
            c.expect_sealed,
        );
        Ok(Step::End(scanner.finish()))
    }

    /// The next verified frame, or `None` at the end of the log or at the first damage.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            if self.cursor.is_none() {
                if self.end.is_some() || !self.open_next()? {
                    return Ok(None);
                }
                continue;
            }
            match self.step()? {
                Step::Frame(frame) => {
                    if let Some(next) = frame.sealed_next() {
                        self.sealed(next)?;
                    }
                    return Ok(Some(frame));
                }
                Step::End(end) => {
                    let path = self
                        .cursor
                        .as_ref()
                        .map(|c| c.path.clone())
                        .unwrap_or_default();
                    // A clean unsealed end is the end of the log; anything else is damage.
                    self.stop(path, end);
                    return Ok(None);
                }
            }
        }
    }

    /// After a verified seal frame: the segment must hold only zeros after it. Moves on to
    /// the next segment (or ends the log when a crash mid-rotation left none).
    fn sealed(&mut self, next: SegmentSeq) -> Result<()> {
        let Some(c) = self.cursor.take() else {
            return Ok(());
        };
        if let Ok(m) = c.chunk.try_into_mut() {
            self.spare = Some(m);
        }
        if !all_zero(&*c.file, c.pos, c.file_len).map_err(io_err("read", &c.path))? {
            let end = ScanEnd::Corrupt {
                offset: c.pos as usize,
                reason: format!("non-zero bytes after the seal frame at offset {}", c.pos),
            };
            self.stop(c.path, end);
            return Ok(());
        }
        self.prev = Some((c.header.seq, c.next_lsn.prev(), c.header.log_id));
        if self.idx >= self.segs.len() {
            let end = ScanEnd::Clean {
                offset: c.pos as usize,
                sealed: Some(next),
            };
            self.end = Some(LogEnd { path: c.path, end });
        }
        Ok(())
    }
}

/// Whether `[from, to)` of `file` holds only zeros.
fn all_zero(file: &dyn VfsFile, mut from: u64, to: u64) -> io::Result<bool> {
    let mut buf = vec![0u8; (to.saturating_sub(from)).min(CHUNK as u64) as usize];
    while from < to {
        let want = (to - from).min(buf.len() as u64) as usize;
        let n = read_full(file, &mut buf[..want], from)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        from += n as u64;
    }
    Ok(true)
}

/// Turns verified frames, in LSN order, into committed transactions: whole `Tx` frames, and
/// fragment streams joined when their `FragEnd` arrives; aborted streams are dropped. The
/// bytes held for open streams are bounded by a budget.
///
/// Recovery uses it; so can tools reading [`wal_log::frames`].
#[derive(Debug)]
pub struct TransactionAssembler {
    streams: BTreeMap<Lsn, (Vec<u8>, bool)>,
    held: u64,
    budget: u64,
    /// Transactions committed at or before this LSN are not returned.
    after: Lsn,
    /// Streams whose abort frame recovery itself wrote (they were unfinished, not aborted).
    closed_by_recovery: BTreeSet<Lsn>,
    aborted: u64,
}

impl TransactionAssembler {
    /// An assembler that returns transactions committed after `after` (a snapshot's fence;
    /// [`Lsn::ZERO`] for all) and holds at most `budget` bytes of open fragment streams.
    #[must_use]
    pub fn new(after: Lsn, budget: u64) -> TransactionAssembler {
        TransactionAssembler {
            streams: BTreeMap::new(),
            held: 0,
            budget,
            after,
            closed_by_recovery: BTreeSet::new(),
            aborted: 0,
        }
    }

    /// Abort frames of these streams were written by opening the log, for transactions a
    /// crash left unfinished; they are not counted as aborted.
    pub(crate) fn closed_by_recovery(&mut self, streams: impl IntoIterator<Item = Lsn>) {
        self.closed_by_recovery.extend(streams);
    }

    /// Fragmented transactions begun and not yet committed or aborted.
    #[must_use]
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Bytes held for open fragment streams.
    #[must_use]
    pub fn held_bytes(&self) -> u64 {
        self.held
    }

    /// Fragmented transactions aborted after the `after` LSN so far.
    #[must_use]
    pub fn aborted(&self) -> u64 {
        self.aborted
    }

    fn hold(&mut self, stream: Lsn, n: usize) -> Result<()> {
        self.held += n as u64;
        if self.held > self.budget {
            return Err(ReplayError::FragmentBudget {
                stream,
                held: self.held,
                budget: self.budget,
            });
        }
        Ok(())
    }

    /// Feeds the next frame; returns the transaction it commits, if any (and if after the
    /// `after` LSN).
    ///
    /// # Errors
    /// [`ReplayError::FragmentBudget`] when open streams would hold more than the budget;
    /// [`ReplayError::LogTruncated`] for the end of a stream whose beginning was never fed.
    pub fn push(&mut self, frame: Frame) -> Result<Option<Transaction>> {
        match frame.kind {
            FrameKind::Tx => {
                if frame.lsn > self.after {
                    let multi = frame.is_multi();
                    return Ok(Some(Transaction {
                        lsn: frame.lsn,
                        body: frame.payload,
                        multi,
                    }));
                }
            }
            FrameKind::FragBegin => {
                self.hold(frame.lsn, frame.payload.len())?;
                self.streams
                    .insert(frame.lsn, (frame.payload.to_vec(), frame.is_multi()));
            }
            FrameKind::FragPart | FrameKind::FragEnd => {
                let Some(s) = frame.stream() else {
                    return Ok(None);
                };
                let body = frame.body();
                if !self.streams.contains_key(&s) {
                    if frame.kind == FrameKind::FragEnd && frame.lsn > self.after {
                        return Err(ReplayError::LogTruncated {
                            needed: s,
                            oldest: frame.lsn,
                            reason: format!(
                                "the transaction committed at LSN {} began at LSN {s}, which the scan did not see",
                                frame.lsn
                            ),
                        });
                    }
                    return Ok(None);
                }
                self.hold(s, body.len())?;
                let Some((buf, multi)) = self.streams.get_mut(&s) else {
                    return Ok(None);
                };
                buf.extend_from_slice(&body);
                if frame.kind == FrameKind::FragEnd {
                    let multi = *multi;
                    let (buf, _) = self.streams.remove(&s).unwrap_or_default();
                    self.held -= buf.len() as u64;
                    if frame.lsn > self.after {
                        return Ok(Some(Transaction {
                            lsn: frame.lsn,
                            body: Bytes::from(buf),
                            multi,
                        }));
                    }
                }
            }
            FrameKind::FragAbort => {
                if let Some(s) = frame.stream() {
                    if let Some((buf, _)) = self.streams.remove(&s) {
                        self.held -= buf.len() as u64;
                    }
                    if frame.lsn > self.after && !self.closed_by_recovery.contains(&s) {
                        self.aborted += 1;
                    }
                }
            }
            FrameKind::Checkpoint | FrameKind::Seal => {}
        }
        Ok(None)
    }
}
