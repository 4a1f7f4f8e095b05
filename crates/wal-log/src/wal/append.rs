//! Appends: encoding frames into the pending buffer under the append lock, and the public
//! append calls.

use super::{DIRECT_MIN, DirectFrame, Inner, Wal, Writer, lock};
use crate::error::Result;
use std::sync::atomic::Ordering;
use wal_format::frame::{FLAG_MULTI, FrameEncoder, FrameFlags, MAX_FRAME_PAYLOAD};
use wal_format::records::{check_records, encode_records, records_body_pieces, records_len};
use wal_format::{FrameKind, Lsn};

impl Inner {
    /// The encoder of the active segment's frames: each claims the durable LSN as it stands
    /// now (format.md 3, the durable lag). The durable point moves only after an fsync has
    /// completed, so the claim is true when the frame is written, however late that is.
    pub(crate) fn encoder(&self, w: &Writer) -> FrameEncoder {
        FrameEncoder::new(w.seed).claiming(Lsn(self.durable_lsn.load(Ordering::Acquire)))
    }

    /// Encodes one frame into the pending buffer under the append lock.
    pub(crate) fn push_frame(
        &self,
        w: &mut Writer,
        kind: FrameKind,
        flags: u8,
        payload: &[u8],
    ) -> Result<Lsn> {
        let lsn = w.next_lsn;
        let before = w.pending.len();
        let flags = if flags & FLAG_MULTI != 0 {
            FrameFlags::MULTI
        } else {
            FrameFlags::NONE
        };
        self.encoder(w)
            .frame(&mut w.pending, kind, flags, lsn, payload)?;
        self.after_push(w, lsn, kind, before);
        Ok(lsn)
    }

    /// Encodes a multi-record `Tx` frame straight into the pending buffer (one copy).
    pub(crate) fn push_records<R: AsRef<[u8]>>(
        &self,
        w: &mut Writer,
        records: &[R],
    ) -> Result<Lsn> {
        let lsn = w.next_lsn;
        let before = w.pending.len();
        self.encoder(w).records(&mut w.pending, lsn, records)?;
        self.after_push(w, lsn, FrameKind::Tx, before);
        Ok(lsn)
    }

    pub(crate) fn push_fragment(
        &self,
        w: &mut Writer,
        kind: FrameKind,
        stream: Lsn,
        chunk: &[u8],
    ) -> Result<Lsn> {
        let lsn = w.next_lsn;
        let before = w.pending.len();
        self.encoder(w)
            .fragment(&mut w.pending, kind, lsn, stream, chunk)?;
        self.after_push(w, lsn, kind, before);
        Ok(lsn)
    }

    pub(super) fn after_push(&self, w: &mut Writer, lsn: Lsn, kind: FrameKind, before: usize) {
        w.next_lsn = lsn.next();
        self.assigned_lsn.store(lsn.0, Ordering::Release);
        w.pending_last = lsn;
        let n = (w.pending.len() - before) as u64;
        if matches!(kind, FrameKind::Tx | FrameKind::FragEnd) {
            w.pending_commits += 1;
        }
        self.counters.appends.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes.fetch_add(n, Ordering::Relaxed);
        if kind == FrameKind::Checkpoint {
            self.counters
                .bytes_since_checkpoint
                .store(0, Ordering::Relaxed);
        } else {
            self.counters
                .bytes_since_checkpoint
                .fetch_add(n, Ordering::Relaxed);
        }
    }
}

impl Wal {
    /// Appends one transaction. Under [`SyncPolicy::Always`](crate::SyncPolicy::Always) it returns
    /// once the transaction is durable (sharing the fsync with concurrent appends); under the other
    /// policies once it is written to the OS. Payloads larger than one frame are written as
    /// fragments and are still atomic. A payload of 256 KiB or more is written from `payload`
    /// itself rather than copied into the log's buffer (see [`Wal::append_batch`]).
    ///
    /// # Errors
    /// [`WalError::Poisoned`](crate::WalError::Poisoned) after an earlier failure; the write or
    /// fsync error that poisons the log;
    /// [`WalError::TransactionTooLarge`](crate::WalError::TransactionTooLarge).
    pub fn append(&self, payload: &[u8]) -> Result<Lsn> {
        self.inner.check_poison()?;
        self.inner.check_size(payload.len())?;
        if payload.len() > MAX_FRAME_PAYLOAD {
            let mut s = self.stream()?;
            s.write(payload)?;
            return s.commit();
        }
        if payload.len() >= DIRECT_MIN {
            return self.inner.append_direct(DirectFrame {
                kind: FrameKind::Tx,
                flags: 0,
                len: payload.len(),
                pieces: std::iter::once(payload),
            });
        }
        let lsn = {
            let mut w = lock(&self.inner.writer);
            self.inner.check_poison()?;
            self.inner.push_frame(&mut w, FrameKind::Tx, 0, payload)?
        };
        self.inner.commit_point(lsn)?;
        Ok(lsn)
    }

    /// Queues one transaction and returns its LSN without waiting for any I/O: the frame is
    /// encoded into the log's buffer (a copy and a checksum), and is written and made durable
    /// by the next flush — [`Wal::wait_durable`], [`Wal::sync`], a concurrent
    /// [`Wal::append`]'s group commit, or the interval thread. Nothing is acknowledged: the
    /// transaction is durable only once `wait_durable(lsn)` returns.
    ///
    /// This is how an engine appends under its own lock (so the log order is the order in
    /// which it applied the changes) and waits outside it, letting concurrent committers share
    /// one write and one fsync. Payloads larger than one frame (4 MiB) are the exception: they
    /// are streamed as [`Wal::append`] streams them, which writes (and under
    /// [`SyncPolicy::Always`](crate::SyncPolicy::Always) fsyncs) the fragments before returning.
    ///
    /// ```
    /// # fn main() -> Result<(), wal_log::WalError> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let (wal, _) = wal_log::Wal::open(dir.path(), wal_log::Options::default())?;
    /// let lsn = wal.append_queued(b"applied under the engine's lock")?;
    /// // ... release the engine's lock, then:
    /// wal.wait_durable(lsn)?;
    /// assert!(wal.durable_lsn() >= lsn);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`WalError::Poisoned`](crate::WalError::Poisoned);
    /// [`WalError::TransactionTooLarge`](crate::WalError::TransactionTooLarge).
    pub fn append_queued(&self, payload: &[u8]) -> Result<Lsn> {
        self.inner.check_poison()?;
        self.inner.check_size(payload.len())?;
        if payload.len() > MAX_FRAME_PAYLOAD {
            let mut s = self.stream()?;
            s.write(payload)?;
            return s.commit();
        }
        let mut w = lock(&self.inner.writer);
        self.inner.check_poison()?;
        self.inner.push_frame(&mut w, FrameKind::Tx, 0, payload)
    }

    /// Appends several payloads as one atomic transaction: after a crash either all of them are
    /// in the log or none. Returns the transaction's LSN. Readers see one [`crate::Transaction`]
    /// whose [`crate::Transaction::records`] yields the payloads in order.
    ///
    /// A transaction of 256 KiB or more (that still fits one frame) is written straight from
    /// `payloads`, with the frames other threads have queued in front of it, instead of being
    /// copied into the log's buffer first: the calling thread leads that flush itself. The bytes on
    /// disk are the same either way; [`Stats::direct_writes`](crate::Stats::direct_writes) counts
    /// such writes.
    ///
    /// # Errors
    /// As [`Wal::append`]; [`WalError::Format`](crate::WalError::Format) with `BatchTooLarge` for a
    /// batch the format cannot hold (more than `u32::MAX` records, or a record over `u32::MAX`
    /// bytes), before anything is written.
    pub fn append_batch<R: AsRef<[u8]>>(&self, payloads: &[R]) -> Result<Lsn> {
        self.inner.check_poison()?;
        check_records(payloads)?;
        let size = records_len(payloads);
        self.inner.check_size(size)?;
        if size > MAX_FRAME_PAYLOAD {
            let mut body = Vec::with_capacity(size);
            encode_records(&mut body, payloads);
            let mut s = self.stream()?;
            s.multi = true;
            s.write(&body)?;
            return s.commit();
        }
        if size >= DIRECT_MIN {
            let mut prefixes = std::mem::take(&mut *lock(&self.inner.direct_prefixes));
            let pieces = records_body_pieces(payloads, &mut prefixes);
            let result = self.inner.append_direct(DirectFrame {
                kind: FrameKind::Tx,
                flags: FLAG_MULTI,
                len: size,
                pieces,
            });
            *lock(&self.inner.direct_prefixes) = prefixes;
            return result;
        }
        let lsn = {
            let mut guard = lock(&self.inner.writer);
            self.inner.check_poison()?;
            self.inner.push_records(&mut guard, payloads)?
        };
        self.inner.commit_point(lsn)?;
        Ok(lsn)
    }

    /// Records that a snapshot covers every transaction up to `snapshot_lsn`. Durable under the
    /// sync policy like any append; returns the marker's LSN.
    ///
    /// # Errors
    /// As [`Wal::append`].
    pub fn checkpoint_marker(&self, snapshot_lsn: Lsn) -> Result<Lsn> {
        self.inner.check_poison()?;
        let lsn = {
            let mut w = lock(&self.inner.writer);
            self.inner.check_poison()?;
            self.inner.push_frame(
                &mut w,
                FrameKind::Checkpoint,
                0,
                &snapshot_lsn.0.to_le_bytes(),
            )?
        };
        self.inner.commit_point(lsn)?;
        Ok(lsn)
    }
}
