//! Positioned reads: a batch queued with the place its frame will take
//! ([`Wal::append_batch_queued`] returns a [`Location`]), and a [`PositionedReader`] that reads
//! the frame back from that place with one `pread` of its header and one of the rest, with no
//! scan from the segment's start. An index built by the caller (from the locations appends
//! return, and from [`crate::inspect::DirFrame`]s during [`Wal::open_visit`]) is what makes it
//! useful: `wal-raft` keeps one per Raft entry.

use crate::error::{Damage, Result, WalError, io_err};
use crate::layout::segment_file_name;
use crate::vfs::{OpenMode, VfsFile, read_full};
use crate::wal::{Inner, Wal, lock};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::Mutex;
use wal_format::frame::{FRAME_HEADER_LEN, MAX_FRAME_PAYLOAD, decode_frame};
use wal_format::records::check_records;
use wal_format::{Frame, FrameKind, Lsn, SegmentSeed, SegmentSeq};

/// Where one single-frame transaction is: its LSN, its segment and the byte offset of its
/// frame in that segment's file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// The transaction's LSN.
    pub lsn: Lsn,
    /// The segment holding its frame.
    pub seq: SegmentSeq,
    /// Byte offset of the frame in the segment file.
    pub offset: u64,
}

impl Location {
    /// The location of a frame that a scan verified (for an index rebuilt during
    /// [`Wal::open_visit`]).
    #[must_use]
    pub fn of(frame: &crate::inspect::DirFrame) -> Location {
        Location {
            lsn: frame.frame.lsn,
            seq: frame.seq,
            offset: frame.frame.offset as u64,
        }
    }
}

/// How many segment files a [`PositionedReader`] keeps open.
const OPEN_FILES: usize = 4;

impl Wal {
    /// Queues `payloads` as one atomic multi-record transaction, as [`Wal::append_queued`]
    /// queues one (no I/O: durable only once [`Wal::wait_durable`] or a notification says so),
    /// and returns where its frame will be. The batch always takes one frame.
    ///
    /// # Errors
    /// [`WalError::Poisoned`]; [`WalError::TransactionTooLarge`]; [`WalError::Format`] for a
    /// batch larger than one frame (4 MiB) or one the format cannot hold, before anything is
    /// queued.
    pub fn append_batch_queued<R: AsRef<[u8]>>(&self, payloads: &[R]) -> Result<Location> {
        self.inner.check_poison()?;
        check_records(payloads)?;
        self.inner
            .check_size(wal_format::records::records_len(payloads))?;
        let mut w = lock(&self.inner.writer);
        self.inner.check_poison()?;
        // Pending frames are written, in order, at `write_pos` of the active segment (a
        // rotation writes them there before sealing), so this is where the frame lands.
        let (seq, offset) = (w.seq, w.write_pos + w.pending.len() as u64);
        let lsn = self.inner.push_records(&mut w, payloads)?;
        Ok(Location { lsn, seq, offset })
    }

    /// A reader of transactions by [`Location`]. It keeps a few segment files open, and the
    /// log's directory lock with them (like a [`crate::TxReader`]): drop it before reopening.
    #[must_use]
    pub fn positioned_reader(&self) -> PositionedReader {
        PositionedReader {
            inner: self.inner.clone(),
            files: Mutex::new(Vec::with_capacity(OPEN_FILES)),
        }
    }
}

/// Reads single-frame transactions at the [`Location`]s their appends returned (see
/// [`Wal::positioned_reader`]). `Send + Sync`.
pub struct PositionedReader {
    inner: Arc<Inner>,
    /// Recently read segments' files, most recent last.
    files: Mutex<Vec<(SegmentSeq, Arc<dyn VfsFile>)>>,
}

impl std::fmt::Debug for PositionedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PositionedReader")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl PositionedReader {
    /// The verified `Tx` frame at `at` (its payload is the transaction's body; a batch's
    /// records are `wal_format::records::RecordIter::new(frame.payload)` when
    /// [`Frame::is_multi`]).
    ///
    /// # Errors
    /// [`WalError::NotDurable`] for a transaction not yet durable; [`WalError::Truncated`] when
    /// its segment left the log; [`WalError::Corrupt`] when the bytes there do not verify as
    /// the `Tx` frame of that LSN (a wrong location, or damage); an I/O error.
    pub fn read(&self, at: &Location) -> Result<Frame> {
        let durable = Lsn(self
            .inner
            .durable_lsn
            .load(std::sync::atomic::Ordering::Acquire));
        if at.lsn > durable {
            return Err(WalError::NotDurable {
                lsn: at.lsn,
                durable,
            });
        }
        let file = self.file(at)?;
        let path = self.inner.dir.join(segment_file_name(at.seq));
        let damage = |reason: String| {
            WalError::Corrupt(Damage {
                segment: path.clone(),
                offset: at.offset,
                reason,
            })
        };
        let mut header = [0u8; FRAME_HEADER_LEN];
        let n = read_full(&*file, &mut header, at.offset).map_err(io_err("read", &path))?;
        if n < FRAME_HEADER_LEN {
            return Err(damage(format!("the file ends {n} bytes into the frame")));
        }
        // Header layout: checksum (4), payload length (4, LE), kind, flags, reserved, LSN.
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if len > MAX_FRAME_PAYLOAD {
            return Err(damage(format!("frame length {len} is over the limit")));
        }
        let mut buf = vec![0u8; FRAME_HEADER_LEN + len];
        buf[..FRAME_HEADER_LEN].copy_from_slice(&header);
        let at_body = at.offset + FRAME_HEADER_LEN as u64;
        let n = read_full(&*file, &mut buf[FRAME_HEADER_LEN..], at_body)
            .map_err(io_err("read", &path))?;
        if n < len {
            return Err(damage(format!("the file ends {n} bytes into the payload")));
        }
        let seed = SegmentSeed::new(self.inner.log_id, at.seq);
        let frame = decode_frame(&Bytes::from(buf), 0, seed).map_err(|e| damage(e.to_string()))?;
        if frame.lsn != at.lsn || frame.kind != FrameKind::Tx {
            return Err(damage(format!(
                "the frame there is a {:?} frame of LSN {}, not the transaction of LSN {}",
                frame.kind, frame.lsn, at.lsn
            )));
        }
        Ok(frame)
    }

    /// The open file of `at`'s segment, opened now if it is not among the recent ones.
    fn file(&self, at: &Location) -> Result<Arc<dyn VfsFile>> {
        let retained = lock(&self.inner.segments).iter().any(|s| s.seq == at.seq);
        let mut files = lock(&self.files);
        if !retained {
            files.retain(|(seq, _)| *seq != at.seq);
            return Err(WalError::Truncated {
                requested: at.lsn,
                oldest: self.inner.oldest_retained(),
            });
        }
        if let Some(i) = files.iter().position(|(seq, _)| *seq == at.seq) {
            let entry = files.remove(i);
            let file = entry.1.clone();
            files.push(entry);
            return Ok(file);
        }
        let file = open_segment(&self.inner, at.seq, at.lsn)?;
        if files.len() == OPEN_FILES {
            files.remove(0);
        }
        files.push((at.seq, file.clone()));
        Ok(file)
    }
}

/// Opens segment `seq` for reading; a file that is gone (truncated away) is
/// [`WalError::Truncated`] naming `requested`.
pub(crate) fn open_segment(
    inner: &Inner,
    seq: SegmentSeq,
    requested: Lsn,
) -> Result<Arc<dyn VfsFile>> {
    let path = inner.dir.join(segment_file_name(seq));
    inner.opts.vfs.open(&path, OpenMode::Read).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            WalError::Truncated {
                requested,
                oldest: inner.oldest_retained(),
            }
        } else {
            io_err("open", &path)(e)
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::sim::SimVfs;
    use crate::{Options, SyncPolicy};
    use std::path::Path;
    use wal_format::records::RecordIter;

    fn open(vfs: &SimVfs) -> Wal {
        let opts = Options::default()
            .sync(SyncPolicy::Always)
            .preallocate(false)
            .segment_size(16 << 10)
            .vfs(Arc::new(vfs.clone()));
        Wal::open(Path::new("/db"), opts).unwrap().0
    }

    fn records(frame: &Frame) -> Vec<Bytes> {
        assert!(frame.is_multi());
        RecordIter::new(frame.payload.clone())
            .collect::<std::result::Result<_, _>>()
            .unwrap()
    }

    /// Locations returned across several rotations each read back their own batch; one not
    /// yet durable is refused until it is.
    #[test]
    fn every_queued_batch_reads_back_at_its_location_across_rotations() {
        let vfs = SimVfs::new();
        let wal = open(&vfs);
        let mut locs = Vec::new();
        for i in 0..200u32 {
            let body = vec![i as u8; 300];
            let loc = wal
                .append_batch_queued(&[&i.to_le_bytes()[..], &body[..]])
                .unwrap();
            locs.push(loc);
            // Flushing now and then lets rotations happen between batches.
            if i % 10 == 9 && i < 190 {
                wal.wait_durable(loc.lsn).unwrap();
            }
        }
        let reader = wal.positioned_reader();
        let last = *locs.last().unwrap();
        assert!(matches!(
            reader.read(&last),
            Err(WalError::NotDurable { lsn, .. }) if lsn == last.lsn
        ));
        wal.wait_durable(last.lsn).unwrap();
        let segs: std::collections::BTreeSet<_> = locs.iter().map(|l| l.seq).collect();
        assert!(segs.len() > 2, "the batches span several segments");
        for (i, loc) in locs.iter().enumerate() {
            let frame = reader.read(loc).unwrap();
            let recs = records(&frame);
            assert_eq!(&recs[0][..], &(i as u32).to_le_bytes());
            assert_eq!(recs[1].len(), 300);
        }
    }

    /// A location that does not name its frame is a typed error, never another transaction.
    #[test]
    fn a_wrong_location_is_corrupt_not_another_transaction() {
        let vfs = SimVfs::new();
        let wal = open(&vfs);
        let a = wal.append_batch_queued(&[b"a"]).unwrap();
        let b = wal.append_batch_queued(&[b"b"]).unwrap();
        wal.wait_durable(b.lsn).unwrap();
        let reader = wal.positioned_reader();
        let swapped = Location { lsn: a.lsn, ..b };
        assert!(matches!(reader.read(&swapped), Err(WalError::Corrupt(_))));
        let off = Location {
            offset: a.offset + 1,
            ..a
        };
        assert!(matches!(reader.read(&off), Err(WalError::Corrupt(_))));
        let gone = Location {
            seq: SegmentSeq(a.seq.0 + 7),
            ..a
        };
        assert!(matches!(
            reader.read(&gone),
            Err(WalError::Truncated { .. })
        ));
        assert_eq!(records(&reader.read(&a).unwrap())[0], &b"a"[..]);
    }
}
