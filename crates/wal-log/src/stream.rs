//! Streaming transactions larger than one frame.

use crate::error::{Result, WalError};
use crate::wal::{Inner, Wal, lock};
use std::sync::Arc;
use wal_format::frame::{FLAG_MULTI, MAX_FRAME_PAYLOAD};
use wal_format::{FrameKind, Lsn};

/// Writes one transaction of any size (up to `Options::max_transaction_size`) as a fragment
/// sequence, without holding it all in memory: every full frame's worth is written out as it
/// comes. Nothing of it is visible to readers or recovery until [`StreamWriter::commit`];
/// dropping it uncommitted aborts it.
///
/// A transaction that turns out to fit one frame is written as a plain `Tx` frame.
/// It owns a handle on the log (no borrow), so it can live inside a recorder's state.
pub struct StreamWriter {
    inner: Arc<Inner>,
    begin: Option<Lsn>,
    buf: Vec<u8>,
    total: u64,
    pub(crate) multi: bool,
    finished: bool,
}

impl std::fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamWriter")
            .field("begin", &self.begin)
            .field("total", &self.total)
            .finish()
    }
}

impl StreamWriter {
    pub(crate) fn new(wal: &Wal) -> StreamWriter {
        StreamWriter {
            inner: wal.inner.clone(),
            begin: None,
            buf: Vec::new(),
            total: 0,
            multi: false,
            finished: false,
        }
    }

    /// The begin LSN naming this stream, once its first fragment is written.
    #[must_use]
    pub fn begin_lsn(&self) -> Option<Lsn> {
        self.begin
    }

    /// Marks the body as a multi-record batch (see `wal_format::records::encode_records`).
    pub fn set_multi(&mut self, multi: bool) {
        self.multi = multi;
    }

    /// Bytes written so far.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing was written yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Adds bytes to the transaction's body.
    ///
    /// # Errors
    /// [`WalError::TransactionTooLarge`], [`WalError::Poisoned`], or a write error.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let inner = &self.inner;
        inner.check_poison()?;
        self.total += bytes.len() as u64;
        if self.total > inner.opts.max_transaction_size {
            return Err(WalError::TransactionTooLarge {
                size: self.total,
                max: inner.opts.max_transaction_size,
            });
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let room = MAX_FRAME_PAYLOAD - 8 - self.buf.len().min(MAX_FRAME_PAYLOAD - 8);
            let take = room.min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            // Emit a full frame only when more is coming, so the last chunk can go into the
            // committing frame.
            if self.buf.len() >= MAX_FRAME_PAYLOAD - 8 && !rest.is_empty() {
                self.emit()?;
            }
        }
        Ok(())
    }

    fn emit(&mut self) -> Result<()> {
        let inner = &self.inner;
        let lsn = {
            let mut w = lock(&inner.writer);
            inner.check_poison()?;
            match self.begin {
                None => {
                    let flags = if self.multi { FLAG_MULTI } else { 0 };
                    let lsn = inner.push_frame(&mut w, FrameKind::FragBegin, flags, &self.buf)?;
                    lock(&inner.streams).begin(lsn);
                    self.begin = Some(lsn);
                    lsn
                }
                Some(b) => inner.push_fragment(&mut w, FrameKind::FragPart, b, &self.buf)?,
            }
        };
        self.buf.clear();
        // Write it out now so pending memory stays at about one frame. Under
        // `SyncPolicy::Always` fsync it too: no later write may reach the disk before it, or a
        // crash can leave a hole followed by valid frames, which recovery must call corruption.
        inner.commit_point(lsn)
    }

    /// Commits the transaction: durable on return under `SyncPolicy::Always`. Returns its LSN.
    ///
    /// # Errors
    /// [`WalError::Poisoned`] or the write/fsync error that poisons the log.
    pub fn commit(mut self) -> Result<Lsn> {
        self.finished = true;
        if self.buf.len() > MAX_FRAME_PAYLOAD - 8 {
            self.emit()?;
        }
        let inner = &self.inner;
        let lsn = {
            let mut w = lock(&inner.writer);
            inner.check_poison()?;
            match self.begin {
                None => {
                    let flags = if self.multi { FLAG_MULTI } else { 0 };
                    inner.push_frame(&mut w, FrameKind::Tx, flags, &self.buf)?
                }
                Some(b) => {
                    let lsn = inner.push_fragment(&mut w, FrameKind::FragEnd, b, &self.buf)?;
                    lock(&inner.streams).end(b, lsn);
                    lsn
                }
            }
        };
        inner.commit_point(lsn)?;
        Ok(lsn)
    }

    /// Abandons the transaction. Fragments already written stay in the log, closed by an
    /// abort frame; readers and recovery skip them.
    ///
    /// # Errors
    /// [`WalError::Poisoned`] or a write error.
    pub fn abort(mut self) -> Result<()> {
        self.finished = true;
        self.write_abort()
    }

    fn write_abort(&mut self) -> Result<()> {
        let Some(b) = self.begin else { return Ok(()) };
        let inner = &self.inner;
        let lsn = {
            let mut w = lock(&inner.writer);
            inner.check_poison()?;
            let lsn = inner.push_frame(&mut w, FrameKind::FragAbort, 0, &b.0.to_le_bytes())?;
            lock(&inner.streams).end(b, lsn);
            lsn
        };
        // Losing the abort frame alone would be harmless (recovery finds the stream unfinished
        // and skips it), but under `SyncPolicy::Always` it is made durable like a commit: if it
        // were only written, the next append's write could reach the disk before it, and the
        // hole followed by a valid frame would read as corruption after a crash.
        inner.commit_point(lsn)
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.write_abort();
        }
    }
}
