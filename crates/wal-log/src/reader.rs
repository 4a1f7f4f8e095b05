//! Readers of committed transactions: from an LSN to the durable end, or following the log.

use crate::assembly::Transaction;
use crate::assembly::{Assembly, SegmentCursor};
use crate::error::{Damage, Result, WalError, io_err};
use crate::layout::segment_file_name;
use crate::position::FollowPosition;
use crate::vfs::read_full;
use crate::wal::{Inner, Wal, lock};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wal_format::header::SEGMENT_HEADER_LEN;
use wal_format::{FrameKind, Lsn, SegmentHeader, SegmentSeq};

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
/// made), [`Wal::follow`] or [`Wal::follow_at`] (use [`TxReader::next_timeout`] to wait for
/// new ones).
pub struct TxReader {
    inner: Arc<Inner>,
    /// Upper bound for a bounded reader.
    limit: Option<Lsn>,
    /// The segment being read, pinned against recycling while it is.
    cursor: Option<(SegmentCursor, SegmentPin)>,
    next_lsn: Lsn,
    asm: Assembly,
    failed: bool,
}

impl std::fmt::Debug for TxReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxReader")
            .field("from", &self.asm.from())
            .field("next_lsn", &self.next_lsn)
            .finish()
    }
}

impl Wal {
    /// Reads committed transactions with LSN ≥ `from`, up to the durable LSN at this moment.
    ///
    /// # Errors
    /// [`WalError::Truncated`] when `from` is older than the log keeps;
    /// [`WalError::BeyondEnd`] when `from` is past the next LSN the log assigns.
    pub fn read_from(&self, from: Lsn) -> Result<TxReader> {
        let limit = self.durable_lsn();
        TxReader::new(self.inner.clone(), from, Some(limit), None)
    }

    /// A reader that follows the log: it yields every committed transaction with LSN ≥ `from`
    /// as soon as it is durable. `from` may be at most the next LSN the log assigns
    /// ([`Wal::last_lsn`] + 1): a reader starting later would never see the LSNs in between.
    ///
    /// A follower that saves its place between runs resumes with [`Wal::follow_at`], which
    /// also checks that it is this log's place.
    ///
    /// # Errors
    /// As [`Wal::read_from`].
    pub fn follow(&self, from: Lsn) -> Result<TxReader> {
        TxReader::new(self.inner.clone(), from, None, None)
    }

    /// [`Wal::follow`] from a follower's saved place: from `position.lsn + 1`, after checking
    /// that the position is in this log and, when it carries the checksum of its frame and
    /// the log still holds that frame, that the frame is the one the follower got.
    ///
    /// # Errors
    /// [`WalError::OtherLog`] for a position in another log; [`WalError::BeyondEnd`] when the
    /// log ends before the position (a primary restored from an older copy);
    /// [`WalError::Truncated`] when the log no longer holds the LSN after it. The reader
    /// returns [`WalError::Diverged`] (before any transaction) when the frame at the
    /// position's LSN is not the follower's.
    pub fn follow_at(&self, position: &FollowPosition) -> Result<TxReader> {
        if position.log_id != self.log_id() {
            return Err(WalError::OtherLog {
                position: position.log_id,
                log: self.log_id(),
            });
        }
        TxReader::new(self.inner.clone(), position.next(), None, position.crc)
    }
}

impl TxReader {
    fn new(
        inner: Arc<Inner>,
        from: Lsn,
        limit: Option<Lsn>,
        expect: Option<u32>,
    ) -> Result<TxReader> {
        let max = inner.opts.max_transaction_size;
        let mut r = TxReader {
            inner,
            limit,
            cursor: None,
            next_lsn: Lsn::ZERO,
            asm: Assembly::new(from, max, expect),
            failed: false,
        };
        r.seek()?;
        Ok(r)
    }

    /// Where this reader stands: the last transaction it returned (with its commit frame's
    /// checksum), or the place it started after. Save it with what was applied, and resume
    /// with [`Wal::follow_at`].
    #[must_use]
    pub fn position(&self) -> FollowPosition {
        let (lsn, crc) = self.asm.position();
        FollowPosition {
            log_id: self.inner.log_id,
            lsn,
            crc,
        }
    }

    /// Finds the segment to start from: the one holding `from`, or an older one when a
    /// fragmented transaction that commits later began before it.
    fn seek(&mut self) -> Result<()> {
        let from = self.asm.from();
        // Not the append lock: a reader may be made while a rotation holds it across I/O.
        let next = Lsn(self.inner.assigned_lsn.load(Ordering::Acquire)).next();
        if from > next {
            return Err(WalError::BeyondEnd {
                requested: from,
                next,
            });
        }
        let segs = lock(&self.inner.segments).clone();
        if segs.is_empty() {
            return Ok(());
        }
        let oldest = self.inner.oldest_retained();
        if from < oldest {
            return Err(WalError::Truncated {
                requested: from,
                oldest,
            });
        }
        // Start at the first frame of any transaction committed at or after `from`: one
        // that began earlier and ends later (or is open) is read from its beginning.
        let mut needed = lock(&self.inner.streams).needed_from(from);
        // The frame a resumed position names is checked before anything is returned.
        if let Some(at) = self.asm.expecting().filter(|at| *at >= oldest) {
            needed = needed.min(at);
        }
        let idx = segs.iter().rposition(|s| s.base_lsn <= needed).unwrap_or(0);
        self.open_segment(segs[idx].seq)
    }

    fn open_segment(&mut self, seq: SegmentSeq) -> Result<()> {
        // Pinned before the file is opened: truncation either sees the pin (and deletes the
        // file instead of reusing it) or renamed it first (and the open finds nothing).
        let pin = SegmentPin::new(&self.inner, seq);
        let path = self.inner.dir.join(segment_file_name(seq));
        // A missing file names the first transaction this reader still owes its user, not the
        // segment's first LSN: that is where a follower must resume.
        let file = crate::read_at::open_segment(&self.inner, seq, self.asm.next_needed())?;
        let mut hb = [0u8; SEGMENT_HEADER_LEN];
        let n = read_full(&*file, &mut hb, 0).map_err(io_err("read", &path))?;
        let header = SegmentHeader::decode(&hb[..n]).map_err(|e| {
            WalError::Corrupt(Damage {
                segment: path.clone(),
                offset: 0,
                reason: e.to_string(),
            })
        })?;
        self.next_lsn = header.base_lsn;
        self.cursor = Some((SegmentCursor::new(seq, path, header, file), pin));
        Ok(())
    }

    /// The next transaction within `bound`, or `None` when caught up.
    fn step(&mut self, bound: Lsn) -> Result<Option<Transaction>> {
        loop {
            let Some((c, _)) = self.cursor.as_mut() else {
                return Ok(None);
            };
            if c.sealed {
                let next = c.seq.next();
                self.open_segment(next)?;
                continue;
            }
            let readable = readable_end(&self.inner, c)?;
            let Some(f) = c.next_frame(readable)? else {
                return Ok(None);
            };
            if f.frame.lsn > bound {
                c.rewind(f.at);
                return Ok(None);
            }
            let expected = f.frame.kind.expected_lsn(self.next_lsn);
            if f.frame.lsn != expected {
                c.rewind(f.at);
                return Err(WalError::Corrupt(Damage {
                    segment: c.path.clone(),
                    offset: f.at,
                    reason: format!("frame carries LSN {}, expected {expected}", f.frame.lsn),
                }));
            }
            c.sealed = f.frame.kind == FrameKind::Seal;
            // Consumed before it is handled; an error handling it puts the position back (the
            // handlers fail before they change anything), so a retry fails the same way
            // rather than skipping the frame and what depends on it.
            let inner = &self.inner;
            match self.asm.consume(&f, &|| inner.oldest_retained()) {
                Ok(t) => {
                    if f.frame.kind.takes_lsn() {
                        self.next_lsn = f.frame.lsn.next();
                    }
                    if t.is_some() {
                        return Ok(t);
                    }
                }
                Err(e) => {
                    if let Some((c, _)) = self.cursor.as_mut() {
                        c.rewind(f.at);
                    }
                    return Err(e);
                }
            }
        }
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
                Some(d) => g.wait_timeout(&self.inner.flushed, d - now),
                None => g.wait(&self.inner.flushed),
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
fn readable_end(inner: &Inner, c: &SegmentCursor) -> Result<u64> {
    let d = *lock(&inner.durable);
    if d.seq == c.seq {
        return Ok(d.end);
    }
    if d.seq < c.seq {
        return Ok(SEGMENT_HEADER_LEN as u64);
    }
    c.file.len().map_err(io_err("stat", &c.path))
}
