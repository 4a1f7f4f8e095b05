//! Readers of committed transactions: from an LSN to the durable end, or following the log.

use crate::error::{Result, WalError, io_err};
use crate::segment::segment_file_name;
use crate::vfs::read_full;
use crate::vfs::{OpenMode, VfsFile};
use crate::wal::{Inner, Wal, lock};
use bytes::{Bytes, BytesMut};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};
use wal_format::{
    FRAME_HEADER_LEN, FrameKind, Lsn, MAX_FRAME_PAYLOAD, RecordIter, SEGMENT_HEADER_LEN,
    SegmentHeader, SegmentSeq, decode_frame,
};

/// How much of a segment a reader holds in memory at once (plus up to one frame).
const CHUNK: usize = 4 << 20;

/// One committed transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// The LSN that committed it.
    pub lsn: Lsn,
    /// Its body: one payload, or a multi-record batch when `multi`.
    pub body: Bytes,
    /// Whether the body holds several records ([`Wal::append_batch`]).
    pub multi: bool,
}

impl Transaction {
    /// The payloads of this transaction: the body itself, or each record of a batch.
    ///
    /// # Errors
    /// Each item is an error when a batch body is malformed.
    pub fn records(
        &self,
    ) -> impl Iterator<Item = std::result::Result<Bytes, wal_format::FormatError>> + '_ {
        let single = (!self.multi).then(|| Ok(self.body.clone()));
        let multi = self.multi.then(|| RecordIter::new(self.body.clone()));
        single.into_iter().chain(multi.into_iter().flatten())
    }
}

struct Cursor {
    seq: SegmentSeq,
    path: std::path::PathBuf,
    header: SegmentHeader,
    file: Arc<dyn VfsFile>,
    /// Loaded bytes and the file offset they start at.
    chunk: Bytes,
    chunk_at: u64,
    /// File offset of the next frame.
    pos: u64,
    sealed: bool,
    /// Keeps truncation from recycling (overwriting) this file while it is read.
    _pin: SegmentPin,
}

/// A reader's claim on one segment, counted in `Inner::pins`; released on drop.
struct SegmentPin {
    inner: Arc<Inner>,
    seq: SegmentSeq,
}

impl SegmentPin {
    fn new(inner: &Arc<Inner>, seq: SegmentSeq) -> SegmentPin {
        *lock(&inner.pins).entry(seq).or_insert(0) += 1;
        SegmentPin {
            inner: inner.clone(),
            seq,
        }
    }
}

impl Drop for SegmentPin {
    fn drop(&mut self) {
        let mut pins = lock(&self.inner.pins);
        if let Some(n) = pins.get_mut(&self.seq) {
            *n -= 1;
            if *n == 0 {
                pins.remove(&self.seq);
            }
        }
    }
}

/// Iterates committed transactions in LSN order. Never yields a transaction that is not
/// durable, nor part of one. Made by [`Wal::read_from`] (bounded by the durable LSN when it was
/// made) or [`Wal::follow`] (use [`TxReader::next_timeout`] to wait for new ones).
pub struct TxReader {
    inner: Arc<Inner>,
    from: Lsn,
    /// Upper bound for a bounded reader.
    limit: Option<Lsn>,
    cursor: Option<Cursor>,
    next_lsn: Lsn,
    streams: BTreeMap<Lsn, (Vec<u8>, bool)>,
    held: u64,
    failed: bool,
}

impl std::fmt::Debug for TxReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxReader")
            .field("from", &self.from)
            .field("next_lsn", &self.next_lsn)
            .finish()
    }
}

impl Wal {
    /// Reads committed transactions with LSN ≥ `from`, up to the durable LSN at this moment.
    ///
    /// # Errors
    /// [`WalError::Truncated`] when `from` is older than the log keeps.
    pub fn read_from(&self, from: Lsn) -> Result<TxReader> {
        let limit = self.durable_lsn();
        TxReader::new(self.inner.clone(), from, Some(limit))
    }

    /// A reader that follows the log: it yields every committed transaction with LSN ≥ `from`
    /// as soon as it is durable.
    ///
    /// # Errors
    /// As [`Wal::read_from`].
    pub fn follow(&self, from: Lsn) -> Result<TxReader> {
        TxReader::new(self.inner.clone(), from, None)
    }
}

impl TxReader {
    fn new(inner: Arc<Inner>, from: Lsn, limit: Option<Lsn>) -> Result<TxReader> {
        let mut r = TxReader {
            inner,
            from,
            limit,
            cursor: None,
            next_lsn: Lsn::ZERO,
            streams: BTreeMap::new(),
            held: 0,
            failed: false,
        };
        r.position()?;
        Ok(r)
    }

    /// Finds the segment to start from: the one holding `from`, or an older one when a
    /// fragmented transaction that commits later began before it.
    fn position(&mut self) -> Result<()> {
        let segs = lock(&self.inner.segments).clone();
        if segs.is_empty() {
            return Ok(());
        }
        let from = self.from.max(Lsn::FIRST);
        let oldest = self.inner.oldest_retained();
        if from < oldest {
            return Err(WalError::Truncated {
                requested: from,
                oldest,
            });
        }
        // Start at the first frame of any transaction committed at or after `from`: one
        // that began earlier and ends later (or is open) is read from its beginning.
        let needed = lock(&self.inner.streams).needed_from(from);
        let idx = segs.iter().rposition(|s| s.base_lsn <= needed).unwrap_or(0);
        self.open_segment(segs[idx].seq)
    }

    fn open_segment(&mut self, seq: SegmentSeq) -> Result<()> {
        // Pinned before the file is opened: truncation either sees the pin (and deletes the
        // file instead of reusing it) or renamed it first (and the open finds nothing).
        let pin = SegmentPin::new(&self.inner, seq);
        let path = self.inner.dir.join(segment_file_name(seq));
        let file = self
            .inner
            .opts
            .vfs
            .open(&path, OpenMode::Read)
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    let oldest = lock(&self.inner.segments)
                        .first()
                        .map_or(Lsn::ZERO, |s| s.base_lsn);
                    WalError::Truncated {
                        requested: self.next_lsn,
                        oldest,
                    }
                } else {
                    io_err("open", &path)(e)
                }
            })?;
        let mut hb = [0u8; SEGMENT_HEADER_LEN];
        let n = read_full(&*file, &mut hb, 0).map_err(io_err("read", &path))?;
        let header = SegmentHeader::decode(&hb[..n]).map_err(|e| WalError::Corrupt {
            segment: path.clone(),
            offset: 0,
            reason: e.to_string(),
        })?;
        self.next_lsn = header.base_lsn;
        self.cursor = Some(Cursor {
            seq,
            path,
            header,
            file,
            chunk: Bytes::new(),
            chunk_at: SEGMENT_HEADER_LEN as u64,
            pos: SEGMENT_HEADER_LEN as u64,
            sealed: false,
            _pin: pin,
        });
        Ok(())
    }

    /// A `want`-byte buffer to read the next chunk into: the previous chunk's memory when no
    /// transaction handed out still refers to it (the common case of a replay that drops each
    /// transaction before asking for the next), else a new one. Reuse skips zeroing and
    /// page-faulting megabytes per chunk; the bytes it holds are overwritten by the read.
    fn reuse_chunk(old: Bytes, want: usize) -> BytesMut {
        match old.try_into_mut() {
            Ok(mut m) if m.capacity() >= want => {
                if m.len() >= want {
                    m.truncate(want);
                } else {
                    m.resize(want, 0);
                }
                m
            }
            _ => BytesMut::zeroed(want),
        }
    }

    /// The next transaction within `bound`, or `None` when caught up.
    fn step(&mut self, bound: Lsn) -> Result<Option<Transaction>> {
        loop {
            let Some(c) = self.cursor.as_mut() else {
                return Ok(None);
            };
            if c.sealed {
                let next = c.seq.next();
                self.open_segment(next)?;
                continue;
            }
            // Make sure a whole frame header (and then the whole frame) is loaded.
            let rel = (c.pos - c.chunk_at) as usize;
            let have = c.chunk.len().saturating_sub(rel);
            let need_header = have < FRAME_HEADER_LEN;
            let need = if need_header {
                FRAME_HEADER_LEN
            } else {
                let len = u32::from_le_bytes([
                    c.chunk[rel + 4],
                    c.chunk[rel + 5],
                    c.chunk[rel + 6],
                    c.chunk[rel + 7],
                ]) as usize;
                FRAME_HEADER_LEN + len.min(MAX_FRAME_PAYLOAD + 1)
            };
            if have < need {
                let readable = readable_end(&self.inner, c)?;
                if c.pos + need as u64 > readable {
                    if c.pos >= readable || need_header {
                        return Ok(None);
                    }
                    return Err(WalError::Corrupt {
                        segment: c.path.clone(),
                        offset: c.pos,
                        reason: "a frame runs past the durable end of the segment".into(),
                    });
                }
                let want = (readable - c.pos).min(CHUNK.max(need) as u64) as usize;
                let mut buf = Self::reuse_chunk(std::mem::take(&mut c.chunk), want);
                let n = read_full(&*c.file, &mut buf, c.pos).map_err(io_err("read", &c.path))?;
                buf.truncate(n);
                c.chunk = buf.freeze();
                c.chunk_at = c.pos;
                if n < need {
                    return Ok(None);
                }
                continue;
            }
            let frame =
                decode_frame(&c.chunk, rel, c.header.seed()).map_err(|e| WalError::Corrupt {
                    segment: c.path.clone(),
                    offset: c.pos,
                    reason: e.to_string(),
                })?;
            if frame.lsn > bound {
                return Ok(None);
            }
            if frame.lsn != self.next_lsn {
                return Err(WalError::Corrupt {
                    segment: c.path.clone(),
                    offset: c.pos,
                    reason: format!(
                        "frame carries LSN {}, expected {}",
                        frame.lsn, self.next_lsn
                    ),
                });
            }
            // Consumed before it is handled; an error handling it puts the position back (the
            // handlers fail before they change anything), so a retry fails the same way
            // rather than skipping the frame and what depends on it.
            let at = (c.pos, self.next_lsn);
            c.pos += frame.encoded_len() as u64;
            self.next_lsn = frame.lsn.next();
            match self.consume(frame) {
                Ok(Some(t)) => return Ok(Some(t)),
                Ok(None) => {}
                Err(e) => {
                    if let Some(c) = self.cursor.as_mut() {
                        c.pos = at.0;
                    }
                    self.next_lsn = at.1;
                    return Err(e);
                }
            }
        }
    }

    /// Handles a frame just read: the transaction it completes, if any (at or after `from`).
    /// Fails only before changing anything.
    fn consume(&mut self, frame: wal_format::Frame) -> Result<Option<Transaction>> {
        match frame.kind {
            FrameKind::Tx => {
                if frame.lsn >= self.from {
                    let multi = frame.is_multi();
                    return Ok(Some(Transaction {
                        lsn: frame.lsn,
                        body: frame.payload,
                        multi,
                    }));
                }
            }
            FrameKind::FragBegin => {
                self.hold(0, frame.body().len())?;
                self.streams
                    .insert(frame.lsn, (frame.body().to_vec(), frame.is_multi()));
            }
            FrameKind::FragPart | FrameKind::FragEnd => {
                let Some(s) = frame.stream() else {
                    return Ok(None);
                };
                let body = frame.body();
                // Charged only for a stream being assembled: the bytes of a fragment whose
                // beginning is gone are skipped, never held.
                let Some(already) = self.streams.get(&s).map(|(buf, _)| buf.len()) else {
                    if frame.lsn >= self.from && frame.kind == FrameKind::FragEnd {
                        return Err(WalError::Truncated {
                            requested: s,
                            oldest: self.inner.oldest_retained(),
                        });
                    }
                    return Ok(None);
                };
                self.hold(already, body.len())?;
                let Some((buf, multi)) = self.streams.get_mut(&s) else {
                    return Ok(None);
                };
                buf.extend_from_slice(&body);
                if frame.kind == FrameKind::FragEnd {
                    let multi = *multi;
                    let (buf, _) = self.streams.remove(&s).unwrap_or_default();
                    self.held -= buf.len() as u64;
                    if frame.lsn >= self.from {
                        return Ok(Some(Transaction {
                            lsn: frame.lsn,
                            body: Bytes::from(buf),
                            multi,
                        }));
                    }
                }
            }
            FrameKind::FragAbort => {
                if let Some(s) = frame.stream()
                    && let Some((buf, _)) = self.streams.remove(&s)
                {
                    self.held -= buf.len() as u64;
                }
            }
            FrameKind::Seal => {
                if let Some(c) = self.cursor.as_mut() {
                    c.sealed = true;
                }
            }
            FrameKind::Checkpoint => {}
        }
        Ok(None)
    }

    /// Charges `n` more bytes to a stream already holding `already`. The limit is per
    /// stream, as the log's own (`StreamWriter`): streams written at the same time must all
    /// read back, so together they may hold more.
    fn hold(&mut self, already: usize, n: usize) -> Result<()> {
        let size = (already + n) as u64;
        let max = self.inner.opts.max_transaction_size;
        if size > max {
            return Err(WalError::TransactionTooLarge { size, max });
        }
        self.held += n as u64;
        Ok(())
    }

    /// Waits up to `timeout` for the next durable transaction (`Duration::MAX`: no limit).
    ///
    /// An error leaves the reader where it was: called again, it fails the same way rather
    /// than skipping what it could not read.
    ///
    /// # Errors
    /// As the iterator, plus [`WalError::Poisoned`] when the log fails while waiting, and
    /// [`WalError::Closed`] once everything durable was read and the [`Wal`] was dropped.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Transaction>> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let bound = Lsn(self.inner.durable_lsn.load(Ordering::Acquire));
            if let Some(t) = self.step(bound)? {
                return Ok(Some(t));
            }
            let mut g = lock(&self.inner.flush);
            // Checked under the lock that poisoning and closing notify under, so neither can
            // slip in between the check and the wait.
            self.inner.check_poison()?;
            if self.inner.durable_lsn.load(Ordering::Acquire) != bound.0 {
                continue;
            }
            if self.inner.shutdown.load(Ordering::Acquire) {
                return Err(WalError::Closed);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(None);
            }
            // Counted under the lock the notifier takes, so no flush can miss this reader.
            g.tailing += 1;
            let mut g = match deadline {
                Some(d) => {
                    self.inner
                        .flushed
                        .wait_timeout(g, d - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .inner
                    .flushed
                    .wait(g)
                    .unwrap_or_else(PoisonError::into_inner),
            };
            g.tailing -= 1;
        }
    }
}

impl Iterator for TxReader {
    type Item = Result<Transaction>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let bound = self
            .limit
            .unwrap_or_else(|| Lsn(self.inner.durable_lsn.load(Ordering::Acquire)));
        match self.step(bound) {
            Ok(t) => t.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// The file offset up to which segment `c` may be read: its durable end when it is the
/// segment being written, else the whole file (it is sealed and synced).
fn readable_end(inner: &Inner, c: &Cursor) -> Result<u64> {
    let d = *lock(&inner.durable);
    if d.seq == c.seq {
        return Ok(d.end);
    }
    if d.seq < c.seq {
        return Ok(SEGMENT_HEADER_LEN as u64);
    }
    c.file.len().map_err(io_err("stat", &c.path))
}
