//! Read-only streaming over a log directory: verified frames from a starting LSN, and the
//! assembly of committed transactions (fragments included) under a per-transaction budget.
//!
//! Nothing here locks or writes. Segments are read a chunk at a time into a reused buffer,
//! plus the bytes of open fragmented transactions, each bounded by a budget.

use crate::error::{ReplayError, Result, io_err};
use crate::snapshot::read_full;
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wal_format::header::SEGMENT_HEADER_LEN;
use wal_format::scan::{ChunkedScanner, ScanEnd};
use wal_format::{Frame, FrameKind, LogId, Lsn, SegmentHeader, SegmentSeq};
use wal_log::layout::{Entry, classify, segment_file_name};
use wal_log::{OpenMode, Transaction, Vfs, VfsFile};

/// Lists the segments of a log directory, sorted.
///
/// # Errors
/// [`ReplayError::NotFound`] for a missing directory; an I/O error. Foreign entries are
/// skipped: this is a read-only scan (a writing open refuses them).
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
        // A read-only scan reads past a foreign file; a writing open refuses it.
        if let Entry::Segment(s) = classify(&name) {
            segs.push(s);
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

/// The segment being read.
struct Cursor {
    file: Arc<dyn VfsFile>,
    path: PathBuf,
    scanner: ChunkedScanner,
}

/// Verified frames of a log directory in LSN order, from a starting point on.
///
/// Segments are read by [`wal_format::scan::ChunkedScanner`], a chunk at a time into one reused
/// buffer, so memory stays at about one chunk (plus one frame) whatever the segment size, and
/// each segment's end is decided exactly as `Wal::open` decides it: a clean end, a torn
/// tail, or corruption. Segments must also continue each other (sequence, LSNs, log id).
pub(crate) struct LogFrames {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    segs: Vec<SegmentSeq>,
    idx: usize,
    cursor: Option<Cursor>,
    prev: Option<(SegmentSeq, Lsn, LogId)>,
    end: Option<LogEnd>,
    /// The read buffer, between segments.
    buf: Option<BytesMut>,
    /// Bytes of segment files read so far.
    pub bytes_read: u64,
}

/// The index in `segs` of the segment to start reading at for transactions committed at or
/// after `from`: the one holding `from`, or an earlier one when a fragmented transaction
/// that commits at or after `from` began before it (segment headers name the oldest open one).
pub(crate) fn start_index(vfs: &dyn Vfs, dir: &Path, segs: &[SegmentSeq], from: Lsn) -> usize {
    if from <= Lsn::FIRST || segs.len() <= 1 {
        return 0;
    }
    let headers: Vec<Option<SegmentHeader>> = segs
        .iter()
        .map(|s| read_header(vfs, &dir.join(segment_file_name(*s))))
        .collect();
    let base = |i: usize| headers[i].map(|h| h.base_lsn);
    let mut idx = (0..segs.len())
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
    idx
}

impl LogFrames {
    /// Starts at the segment [`start_index`] names for `from`.
    pub(crate) fn open(vfs: Arc<dyn Vfs>, dir: &Path, from: Lsn) -> Result<LogFrames> {
        let segs = list_segments(&*vfs, dir)?;
        let idx = start_index(&*vfs, dir, &segs, from);
        Ok(LogFrames {
            vfs,
            dir: dir.to_path_buf(),
            segs,
            idx,
            cursor: None,
            prev: None,
            end: None,
            buf: None,
            bytes_read: 0,
        })
    }

    /// The payload schema of the segment the last frame came from (0 before any): the event
    /// schema its transactions were written under.
    pub(crate) fn schema(&self) -> u32 {
        self.cursor
            .as_ref()
            .map_or(0, |c| c.scanner.header().payload_schema)
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
        self.bytes_read += n as u64;
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
        let mut scanner = ChunkedScanner::new(h, file_len, self.idx < self.segs.len());
        if let Some(b) = self.buf.take() {
            scanner = scanner.with_buffer(b);
        }
        self.cursor = Some(Cursor {
            file,
            path,
            scanner,
        });
        Ok(true)
    }

    /// The next verified frame, or `None` at the end of the log or at the first damage.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            let Some(c) = self.cursor.as_mut() else {
                if self.end.is_some() || !self.open_next()? {
                    return Ok(None);
                }
                continue;
            };
            if let Some(frame) = c
                .scanner
                .next_frame(&*c.file)
                .map_err(|e| io_err("read", &c.path)(e))?
            {
                return Ok(Some(frame));
            }
            let Some(c) = self.cursor.take() else {
                return Ok(None);
            };
            self.bytes_read += c.scanner.bytes_read();
            let end = c.scanner.end().cloned().unwrap_or(ScanEnd::Clean {
                offset: c.scanner.position() as usize,
                sealed: None,
            });
            let h = *c.scanner.header();
            let last = c.scanner.next_lsn().prev();
            self.buf = c.scanner.into_buffer();
            match end {
                // Sealed and only zeros after the seal: on to the next segment, or the end of
                // the log when a crash mid-rotation left none.
                ScanEnd::Clean {
                    sealed: Some(_), ..
                } => {
                    self.prev = Some((h.seq, last, h.log_id));
                    if self.idx >= self.segs.len() {
                        self.end = Some(LogEnd { path: c.path, end });
                    }
                }
                // Damage, unless a live log reused the file while it was being read.
                ScanEnd::TornTail { .. } | ScanEnd::Corrupt { .. }
                    if wal_log::inspect::reused_under_us(&*c.file, &h) =>
                {
                    self.idx = self.segs.len();
                    return Err(ReplayError::Wal(wal_log::WalError::Changed {
                        segment: c.path,
                    }));
                }
                // A clean unsealed end is the end of the log; anything else is damage.
                end => {
                    self.stop(c.path, end);
                    return Ok(None);
                }
            }
        }
    }
}

/// Turns verified frames, in LSN order, into committed transactions: whole `Tx` frames, and
/// fragment streams joined when their `FragEnd` arrives; aborted streams are dropped. Each
/// open stream holds at most a budget of bytes, as the log accepts each transaction up to
/// [`wal_log::Options::max_transaction_size`]; streams written at the same time are held at
/// the same time, so memory is the sum of those open together.
///
/// Recovery uses it; so can tools reading [`wal_log::inspect::frames`].
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
    placeholders: u64,
    /// The first frame's LSN (`Lsn::ZERO` before any): where the frames fed begin.
    first_fed: Lsn,
    /// The commit LSN of the last transaction fed (returned or not), or `after` before any:
    /// [`Transaction::prev`] of the next one returned.
    prev: Lsn,
}

impl TransactionAssembler {
    /// An assembler that returns transactions committed after `after` (a snapshot's fence;
    /// [`Lsn::ZERO`] for all) and holds at most `budget` bytes for each open fragment stream.
    #[must_use]
    pub fn new(after: Lsn, budget: u64) -> TransactionAssembler {
        TransactionAssembler {
            streams: BTreeMap::new(),
            held: 0,
            budget,
            after,
            closed_by_recovery: BTreeSet::new(),
            aborted: 0,
            placeholders: 0,
            first_fed: Lsn::ZERO,
            prev: after,
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

    /// Place-holders for lost LSNs ([`wal_format::Frame::is_placeholder`]) after the `after`
    /// LSN so far: not aborted transactions.
    #[must_use]
    pub fn placeholders(&self) -> u64 {
        self.placeholders
    }

    /// Fragmented transactions aborted after the `after` LSN so far.
    #[must_use]
    pub fn aborted(&self) -> u64 {
        self.aborted
    }

    /// Charges `n` more bytes to `stream`, which holds `already`. The budget is per stream,
    /// like the log's limit on a transaction: streams the log took at the same time must all
    /// replay, so together they may hold more.
    fn hold(&mut self, stream: Lsn, already: usize, n: usize) -> Result<()> {
        let held = (already + n) as u64;
        if held > self.budget {
            return Err(ReplayError::FragmentBudget {
                stream,
                held,
                budget: self.budget,
            });
        }
        self.held += n as u64;
        Ok(())
    }

    /// Feeds the next frame; returns the transaction it commits, if any (and if after the
    /// `after` LSN).
    ///
    /// # Errors
    /// [`ReplayError::FragmentBudget`] when an open stream would hold more than the budget;
    /// [`ReplayError::LogTruncated`] for the end of a stream whose beginning was never fed.
    #[inline(always)]
    pub fn push(&mut self, frame: Frame) -> Result<Option<Transaction>> {
        if self.first_fed == Lsn::ZERO && frame.kind.takes_lsn() {
            self.first_fed = frame.lsn;
        }
        // The common case, inlined into the caller: a whole transaction in one frame.
        if frame.kind == FrameKind::Tx {
            let prev = std::mem::replace(&mut self.prev, frame.lsn);
            if frame.lsn > self.after {
                let multi = frame.is_multi();
                return Ok(Some(Transaction {
                    lsn: frame.lsn,
                    body: frame.payload,
                    multi,
                    prev,
                }));
            }
            return Ok(None);
        }
        self.push_other(frame)
    }

    /// [`TransactionAssembler::push`] for every kind but `Tx`. It takes the frame by value
    /// so that `push` hands it on rather than dropping it itself (measurably cheaper on the
    /// `Tx` path, whose code `push` shares).
    #[allow(clippy::needless_pass_by_value)]
    #[inline(never)]
    fn push_other(&mut self, frame: Frame) -> Result<Option<Transaction>> {
        match frame.kind {
            FrameKind::Tx => {}
            FrameKind::FragBegin => {
                self.hold(frame.lsn, 0, frame.payload.len())?;
                self.streams
                    .insert(frame.lsn, (frame.payload.to_vec(), frame.is_multi()));
            }
            FrameKind::FragPart | FrameKind::FragEnd => {
                let Some(s) = frame.stream() else {
                    return Ok(None);
                };
                let body = frame.body();
                let Some(already) = self.streams.get(&s).map(|(buf, _)| buf.len()) else {
                    if frame.kind == FrameKind::FragEnd && frame.lsn > self.after {
                        return Err(ReplayError::LogTruncated {
                            needed: s,
                            oldest: self.first_fed,
                            reason: format!(
                                "the transaction committed at LSN {} began at LSN {s}, which the scan did not see",
                                frame.lsn
                            ),
                        });
                    }
                    if frame.kind == FrameKind::FragEnd {
                        self.prev = frame.lsn;
                    }
                    return Ok(None);
                };
                self.hold(s, already, body.len())?;
                let Some((buf, multi)) = self.streams.get_mut(&s) else {
                    return Ok(None);
                };
                buf.extend_from_slice(&body);
                if frame.kind == FrameKind::FragEnd {
                    let multi = *multi;
                    let (buf, _) = self.streams.remove(&s).unwrap_or_default();
                    self.held -= buf.len() as u64;
                    let prev = std::mem::replace(&mut self.prev, frame.lsn);
                    if frame.lsn > self.after {
                        return Ok(Some(Transaction {
                            lsn: frame.lsn,
                            body: Bytes::from(buf),
                            multi,
                            prev,
                        }));
                    }
                }
            }
            FrameKind::FragAbort => {
                if let Some(s) = frame.stream() {
                    if let Some((buf, _)) = self.streams.remove(&s) {
                        self.held -= buf.len() as u64;
                    }
                    let counted = frame.lsn > self.after && !self.closed_by_recovery.contains(&s);
                    if counted && frame.is_placeholder() {
                        self.placeholders += 1;
                    } else if counted {
                        self.aborted += 1;
                    }
                }
            }
            FrameKind::Checkpoint | FrameKind::Seal | FrameKind::Watermark => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use wal_log::{Options, StdVfs, Wal, WalError};

    /// The log scan of recovery's second read, on a live directory whose running log
    /// truncates and reuses the segment being read: `Changed`, not a damage verdict.
    #[test]
    fn a_segment_reused_under_the_scan_is_reported_changed() {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options::default()
            .segment_size(1 << 20)
            .preallocate(false)
            .recycle_segments(4);
        let (wal, _) = Wal::open(dir.path(), opts).unwrap();
        while wal.segments().len() < 3 {
            wal.append(&[5u8; 1000]).unwrap();
        }
        let mut frames = LogFrames::open(Arc::new(StdVfs), dir.path(), Lsn::ZERO).unwrap();
        assert!(frames.next_frame().unwrap().is_some());
        wal.truncate_prefix(Lsn(wal.last_lsn().0 - 10)).unwrap();
        let reused = wal.stats().recycled;
        while wal.stats().recycled == reused {
            wal.append(&[0xEE; 1000]).unwrap();
        }
        for _ in 0..1500 {
            wal.append_queued(&[0xEE; 1000]).unwrap();
        }
        wal.sync().unwrap();
        let outcome = loop {
            match frames.next_frame() {
                Ok(Some(_)) => {}
                other => break other,
            }
        };
        match outcome {
            Err(ReplayError::Wal(WalError::Changed { segment })) => {
                assert_eq!(
                    segment,
                    dir.path()
                        .join(segment_file_name(wal_format::SegmentSeq(1)))
                );
            }
            other => panic!("expected Changed, got {other:?}, end {:?}", frames.end()),
        }
    }
}
