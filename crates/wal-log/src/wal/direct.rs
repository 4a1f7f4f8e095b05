//! Direct writes: a large transaction written straight from the caller's buffers, with the
//! frames queued in front of it, by a caller that leads the flush itself.

use super::barrier::Lead;
use super::{Inner, Point, lock};
use crate::error::{Result, WalError, io_err};
use crate::layout::segment_file_name;
use crate::vfs::VfsFile;
use std::sync::atomic::Ordering;
use wal_format::frame::{FRAME_HEADER_LEN, FrameSum, encoded_frame_len};
use wal_format::{FrameKind, Lsn, SegmentSeq};

/// A transaction whose encoded body is at least this large is written straight from the
/// caller's buffers ([`Inner::append_direct`]) instead of being copied into the pending
/// buffer first: for large batches that copy costs as much as the kernel's own.
pub(crate) const DIRECT_MIN: usize = 256 << 10;
/// A direct write hands the kernel this much before asking it to start writing it back, so
/// the device works while the rest is still being copied into the page cache.
pub(super) const WRITEBACK_CHUNK: u64 = 512 << 10;
/// Buffers per vectored write in a direct write (pwritev(2) takes at most 1024).
pub(super) const DIRECT_IOV: usize = 1024;
/// Bytes per vectored write in a direct write: checksumming a group brings it into cache just
/// before the kernel copies it.
pub(super) const DIRECT_GROUP: usize = 1 << 20;
/// Pieces of a direct write up to this size are copied into a staging buffer rather than
/// handed to the kernel one by one.
pub(super) const STAGE_MAX: usize = 2 << 10;
/// A direct write's staging buffer is written out once it holds this much (small enough to
/// stay in cache from the copy to the kernel's).
pub(super) const STAGE_GROUP: usize = 256 << 10;

/// A frame for [`Inner::append_direct`]: its kind and flags, and its payload as `len` bytes in
/// `pieces`, in order.
pub(crate) struct DirectFrame<I> {
    pub(crate) kind: FrameKind,
    pub(crate) flags: u8,
    pub(crate) len: usize,
    pub(crate) pieces: I,
}

/// Gives the flush roles back when [`Inner::append_direct`] ends, also by a panic (in the
/// caller's `AsRef`, say): then the log is poisoned first, as its frame may be half written,
/// and no thread is left waiting for roles nobody will release.
pub(super) struct DirectRoles<'a> {
    pub(super) inner: &'a Inner,
    pub(super) lead: Lead,
    /// Set once the write returned (successfully or not); still clear when a panic unwinds
    /// through it. (Not `std::thread::panicking()`: a caller may append while unwinding.)
    pub(super) finished: bool,
}

impl Drop for DirectRoles<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.inner.poison(WalError::Io {
                op: "write",
                path: self.inner.dir.clone(),
                source: std::io::Error::other(
                    "a large transaction's write was interrupted by a panic; it may be partly written",
                ),
            });
        }
        self.inner.release_roles(self.lead);
    }
}

/// Where one buffer of a direct write's vectored write is.
#[derive(Clone, Copy)]
pub(super) enum Part<'a> {
    /// A byte range of the staging buffer.
    Staged(usize, usize),
    /// The caller's own bytes.
    Borrowed(&'a [u8]),
}

/// Zeros standing in for a direct frame's header until its payload is written, and the end
/// marker after a write in a recycled segment.
pub(super) const ZERO_HEADER: [u8; FRAME_HEADER_LEN] = [0; FRAME_HEADER_LEN];

impl Inner {
    /// Appends one frame whose payload is `pieces` (in order, `len` bytes in all), written from the
    /// caller's buffers with no copy into the pending buffer. The caller becomes the flush leader:
    /// it writes whatever is pending in front of the frame in the same write, and under
    /// [`SyncPolicy::Always`](crate::SyncPolicy::Always) fsyncs before returning, which covers the
    /// frames of any writers waiting on it as well.
    ///
    /// The payload is written first, behind zeros where the header goes; the last write holds the
    /// pending frames and then the header. A crash in between leaves an end (an end marker in a
    /// recycled segment, else a torn tail), never a header over a payload not all written nor a
    /// header without the frames before it. Every [`WRITEBACK_CHUNK`] handed to the kernel is put
    /// to the device at once ([`VfsFile::start_writeback`]) while the rest is still being copied,
    /// so the fsync at the end waits for less.
    pub(crate) fn append_direct<'a>(
        &self,
        frame: DirectFrame<impl Iterator<Item = &'a [u8]>>,
    ) -> Result<Lsn> {
        let lead = self.take_roles()?;
        let mut roles = DirectRoles {
            inner: self,
            lead,
            finished: false,
        };
        let result = self.write_direct(frame).and_then(|lsn| {
            if lead.sync {
                self.lead_sync()?;
            }
            Ok(lsn)
        });
        roles.finished = true;
        result
    }

    /// The write of [`Inner::append_direct`]; the caller holds the writer role.
    pub(super) fn write_direct<'a>(
        &self,
        frame: DirectFrame<impl Iterator<Item = &'a [u8]>>,
    ) -> Result<Lsn> {
        let DirectFrame {
            kind,
            flags,
            len,
            pieces,
        } = frame;
        let mut w = lock(&self.writer);
        self.check_poison()?;
        if w.write_pos + w.pending.len() as u64 >= self.opts.segment_size {
            self.rotate(&mut w)?;
        }
        let lsn = w.next_lsn;
        let durable = Lsn(self.durable_lsn.load(Ordering::Acquire));
        let mut sum = FrameSum::new(w.seed, kind, flags, lsn, len, durable)?;
        let spare = std::mem::take(&mut w.spare);
        let head = std::mem::replace(&mut w.pending, spare);
        let pos = w.write_pos;
        let frame_at = pos + head.len() as u64;
        let frame_end = frame_at + encoded_frame_len(len) as u64;
        w.write_pos = frame_end;
        w.next_lsn = lsn.next();
        self.assigned_lsn.store(lsn.0, Ordering::Release);
        w.pending_last = lsn;
        let commits = std::mem::take(&mut w.pending_commits)
            + u64::from(matches!(kind, FrameKind::Tx | FrameKind::FragEnd));
        let (file, seq, recycled) = (w.file.clone(), w.seq, w.recycled);
        drop(w);
        let frame_len = encoded_frame_len(len) as u64;
        self.counters.appends.fetch_add(1, Ordering::Relaxed);
        self.counters.direct_writes.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes.fetch_add(frame_len, Ordering::Relaxed);
        self.counters
            .bytes_since_checkpoint
            .fetch_add(frame_len, Ordering::Relaxed);

        self.write_payload(&*file, seq, recycled, frame_at, pieces, &mut sum)?;
        let failed = |e| self.poison(io_err("write", self.path(&segment_file_name(seq)))(e));
        // A miscounted payload is a bug here, and the frame is half written: stop the log.
        let header = sum.header().map_err(|e| self.poison(e.into()))?;
        // The frames queued in front go out with the header, in the last write: a crash can
        // keep the header only with them, so the frame never verifies after a hole (even when
        // its payload matches bytes already on disk, like zeros or a recycled file's).
        let tail = [std::io::IoSlice::new(&head), std::io::IoSlice::new(&header)];
        file.write_vectored_all_at(&tail, pos).map_err(failed)?;
        let written = Point {
            lsn,
            seq,
            end: frame_end,
        };
        self.publish_write(written, file, head, commits);
        self.wake_preallocator();
        Ok(lsn)
    }

    /// Writes a direct frame's payload `pieces` from `frame_at` on, behind zeros where its
    /// header goes (and, in a `recycled` file, an end marker after it), folding it into
    /// `sum`: small pieces are gathered in the staging buffer, large ones handed to the
    /// kernel as they are, in vectored writes of at most [`DIRECT_IOV`] buffers.
    fn write_payload<'a>(
        &self,
        file: &dyn VfsFile,
        seq: SegmentSeq,
        recycled: bool,
        frame_at: u64,
        pieces: impl Iterator<Item = &'a [u8]>,
        sum: &mut FrameSum,
    ) -> Result<()> {
        let failed = |e| self.poison(io_err("write", self.path(&segment_file_name(seq)))(e));
        let mut stage = std::mem::take(&mut *lock(&self.direct_stage));
        stage.clear();
        stage.reserve(STAGE_GROUP + STAGE_MAX);
        let mut parts = [Part::Staged(0, 0); DIRECT_IOV];
        parts[0] = Part::Borrowed(&ZERO_HEADER);
        let (mut n, mut group, mut folded): (usize, usize, usize) = (1, FRAME_HEADER_LEN, 0);
        let (mut at, mut kicked) = (frame_at, frame_at);
        let mut pieces = pieces;
        loop {
            let next = pieces.next();
            match next {
                // Nothing to write (an empty record); an empty write is not one either.
                Some([]) => continue,
                Some(p) if p.len() <= STAGE_MAX => {
                    // Small pieces (length prefixes, small records) are copied together: one
                    // buffer each for the kernel and one checksum call for many of them.
                    let from = stage.len();
                    stage.extend_from_slice(p);
                    match n.checked_sub(1).map(|i| &mut parts[i]) {
                        Some(Part::Staged(_, end)) if *end == from => *end = stage.len(),
                        _ => {
                            parts[n] = Part::Staged(from, stage.len());
                            n += 1;
                        }
                    }
                }
                Some(p) => {
                    sum.fold(&stage[folded..]);
                    folded = stage.len();
                    sum.fold(p);
                    parts[n] = Part::Borrowed(p);
                    n += 1;
                }
                None => {
                    if recycled {
                        parts[n] = Part::Borrowed(&ZERO_HEADER);
                        n += 1;
                    }
                }
            }
            group += next.map_or(0, <[u8]>::len);
            let last = next.is_none();
            if n > 0
                && (last
                    || n + 2 >= DIRECT_IOV
                    || stage.len() >= STAGE_GROUP
                    || group >= DIRECT_GROUP)
            {
                sum.fold(&stage[folded..]);
                let mut iov = [std::io::IoSlice::new(&[]); DIRECT_IOV];
                for (slot, part) in iov.iter_mut().zip(&parts[..n]) {
                    *slot = std::io::IoSlice::new(match *part {
                        Part::Staged(a, b) => &stage[a..b],
                        Part::Borrowed(p) => p,
                    });
                }
                file.write_vectored_all_at(&iov[..n], at).map_err(failed)?;
                at += iov[..n].iter().map(|b| b.len() as u64).sum::<u64>();
                if !last && at - kicked >= WRITEBACK_CHUNK {
                    // Only advice: the fsync that follows reports any write-back failure.
                    let _ = file.start_writeback(kicked, at - kicked);
                    kicked = at;
                }
                stage.clear();
                (n, group, folded) = (0, 0, 0);
            }
            if last {
                break;
            }
        }
        *lock(&self.direct_stage) = stage;
        Ok(())
    }
}
