//! Read-only streaming over a log directory: verified frames from a starting LSN, and the
//! assembly of committed transactions (fragments included) under a memory budget.
//!
//! Nothing here locks or writes. One segment is held in memory at a time (as `Wal::open`'s own
//! scan does), plus the bytes of open fragmented transactions, which are bounded by a budget.

use crate::error::{ReplayError, Result, io_err};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wal_format::{
    Frame, FrameKind, LogId, Lsn, SEGMENT_HEADER_LEN, ScanEnd, SegmentHeader, SegmentScanner,
    SegmentSeq,
};
use wal_log::{Entry, OpenMode, Transaction, Vfs, classify, segment_file_name};

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
    let n = crate::snapshot::read_full(&*f, &mut b, 0).ok()?;
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

/// Verified frames of a log directory in LSN order, from a starting point on.
pub(crate) struct LogFrames {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    segs: Vec<SegmentSeq>,
    idx: usize,
    scanner: Option<SegmentScanner>,
    prev: Option<(SegmentSeq, Lsn, LogId)>,
    end: Option<LogEnd>,
    /// Bytes of segment files read so far.
    pub bytes_read: u64,
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
            scanner: None,
            prev: None,
            end: None,
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
    }

    fn open_next(&mut self) -> Result<bool> {
        let Some(&seq) = self.segs.get(self.idx) else {
            return Ok(false);
        };
        self.idx += 1;
        let path = self.dir.join(segment_file_name(seq));
        let data = self
            .vfs
            .open(&path, OpenMode::Read)
            .and_then(|f| wal_log::vfs::read_all(&*f))
            .map_err(io_err("read", &path))?;
        self.bytes_read += data.len() as u64;
        let expect_sealed = self.idx < self.segs.len();
        let scanner = match SegmentScanner::new(Bytes::from(data), expect_sealed) {
            Ok(s) => s,
            Err(e) => {
                let end = ScanEnd::Corrupt {
                    offset: 0,
                    reason: format!("segment header: {e}"),
                };
                self.stop(path, end);
                return Ok(false);
            }
        };
        let h = *scanner.header();
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
        self.scanner = Some(scanner);
        Ok(true)
    }

    /// The next verified frame, or `None` at the end of the log or at the first damage.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>> {
        loop {
            if let Some(s) = self.scanner.as_mut() {
                if let Some(frame) = s.next() {
                    return Ok(Some(frame));
                }
                let end = s.end().cloned().unwrap_or(ScanEnd::Clean {
                    offset: SegmentScanner::position(s),
                    sealed: None,
                });
                let h = *s.header();
                let last = s.next_lsn().prev();
                let path = self.dir.join(segment_file_name(h.seq));
                self.scanner = None;
                let sealed = matches!(
                    end,
                    ScanEnd::Clean {
                        sealed: Some(_),
                        ..
                    }
                );
                if !sealed {
                    // A clean unsealed end is the end of the log; anything else is damage.
                    self.stop(path, end);
                    return Ok(None);
                }
                self.prev = Some((h.seq, last, h.log_id));
                if self.idx >= self.segs.len() {
                    // Sealed, but the next segment was never created (a crash mid-rotation).
                    self.end = Some(LogEnd { path, end });
                    return Ok(None);
                }
            }
            if !self.open_next()? {
                return Ok(None);
            }
        }
    }
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
