//! Reading transactions out of segment files: the parts that the in-process reader
//! ([`crate::TxReader`]) and the reader of another process's log ([`crate::TailReader`])
//! share. A [`SegmentCursor`] yields the verified frames of one segment up to a readable end
//! the caller proves durable; an [`Assembly`] turns frames into committed transactions.

use crate::error::{Damage, Result, WalError, io_err};
use crate::vfs::VfsFile;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use wal_format::frame::{FRAME_HEADER_LEN, MAX_FRAME_PAYLOAD, decode_frame};
use wal_format::header::SEGMENT_HEADER_LEN;
use wal_format::records::RecordIter;
use wal_format::scan::ReadWindow;
use wal_format::{Frame, FrameKind, Lsn, SegmentHeader, SegmentSeq};

/// One committed transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// The LSN that committed it.
    pub lsn: Lsn,
    /// Its body: one payload, or a multi-record batch when `multi`.
    pub body: Bytes,
    /// Whether the body holds several records ([`Wal::append_batch`](crate::Wal::append_batch)).
    pub multi: bool,
    /// No transaction of the log commits between this LSN and [`Transaction::lsn`]: the
    /// commit LSN of the transaction before this one, or, for the first transaction a reader
    /// returns when it read no commit before it, the LSN before the reader's start. LSNs are
    /// also taken by seals, checkpoint markers and fragments, so a follower that applied
    /// everything up to LSN `a` has missed a transaction exactly when `prev > a`.
    pub prev: Lsn,
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

/// How much of a segment a reader holds in memory at once: the largest frame, so that every
/// frame fits in one load and the buffer never grows (4 MiB and 20 bytes).
const CHUNK: usize = FRAME_HEADER_LEN + MAX_FRAME_PAYLOAD;

/// One verified frame and the checksum stored in its header.
pub(crate) struct ReadFrame {
    pub(crate) frame: Frame,
    pub(crate) crc: u32,
    /// File offset of the frame.
    pub(crate) at: u64,
}

/// A reader's place in one segment file.
pub(crate) struct SegmentCursor {
    pub(crate) seq: SegmentSeq,
    pub(crate) path: PathBuf,
    pub(crate) header: SegmentHeader,
    pub(crate) file: Arc<dyn VfsFile>,
    /// Loaded bytes, in a buffer reused from chunk to chunk while no transaction handed out
    /// still refers to it (the common case of a replay that drops each transaction before
    /// asking for the next): no zeroing or page faults of megabytes per chunk, and a frame cut
    /// by the end of a chunk is not read twice.
    chunk: ReadWindow,
    /// File offset of the next frame.
    pub(crate) pos: u64,
    /// The segment's seal was read: the next frame is in the next segment.
    pub(crate) sealed: bool,
}

impl SegmentCursor {
    /// A cursor at the first frame of segment `seq` (file `file` at `path`, header `header`).
    pub(crate) fn new(
        seq: SegmentSeq,
        path: PathBuf,
        header: SegmentHeader,
        file: Arc<dyn VfsFile>,
    ) -> SegmentCursor {
        SegmentCursor {
            seq,
            path,
            header,
            file,
            chunk: ReadWindow::at(SEGMENT_HEADER_LEN as u64),
            pos: SEGMENT_HEADER_LEN as u64,
            sealed: false,
        }
    }

    /// The next verified frame that ends at or before file offset `readable`, or `None` when
    /// none does (yet). The cursor moves past the frame; [`SegmentCursor::rewind`] puts it back.
    ///
    /// # Errors
    /// [`WalError::Corrupt`] when the bytes at the cursor within `readable` are not a frame
    /// that verifies, or a frame runs past `readable`; an I/O error reading.
    pub(crate) fn next_frame(&mut self, readable: u64) -> Result<Option<ReadFrame>> {
        loop {
            // Make sure a whole frame header (and then the whole frame) is loaded.
            let rel = self.pos.wrapping_sub(self.chunk.start()) as usize;
            let have = if self.pos >= self.chunk.start() {
                self.chunk.bytes().len().saturating_sub(rel)
            } else {
                0
            };
            let need_header = have < FRAME_HEADER_LEN;
            let need = if need_header {
                FRAME_HEADER_LEN
            } else {
                let c = self.chunk.bytes();
                let len = u32::from_le_bytes([c[rel + 4], c[rel + 5], c[rel + 6], c[rel + 7]]);
                FRAME_HEADER_LEN + (len as usize).min(MAX_FRAME_PAYLOAD + 1)
            };
            if have < need {
                if self.pos + need as u64 > readable {
                    if self.pos >= readable || need_header {
                        return Ok(None);
                    }
                    return Err(WalError::Corrupt(Damage {
                        segment: self.path.clone(),
                        offset: self.pos,
                        reason: "a frame runs past the durable end of the segment".into(),
                    }));
                }
                let want = (readable - self.pos).min(CHUNK.max(need) as u64) as usize;
                self.chunk
                    .load(&*self.file, self.pos, want)
                    .map_err(io_err("read", &self.path))?;
                let n = self.chunk.bytes().len();
                if n < need {
                    return Ok(None);
                }
                continue;
            }
            let frame = decode_frame(self.chunk.bytes(), rel, self.header.seed()).map_err(|e| {
                WalError::Corrupt(Damage {
                    segment: self.path.clone(),
                    offset: self.pos,
                    reason: e.to_string(),
                })
            })?;
            let c = self.chunk.bytes();
            let crc = u32::from_le_bytes([c[rel], c[rel + 1], c[rel + 2], c[rel + 3]]);
            let at = self.pos;
            self.pos += frame.encoded_len() as u64;
            return Ok(Some(ReadFrame { frame, crc, at }));
        }
    }

    /// Puts the cursor back at the frame that started at `at` (read by the last
    /// [`SegmentCursor::next_frame`]).
    pub(crate) fn rewind(&mut self, at: u64) {
        self.pos = at;
        self.sealed = false;
    }
}

/// Turns a log's frames, in LSN order, into committed transactions: reassembles fragmented
/// ones, skips aborted ones, and keeps what a follower needs to resume and to tell a gap
/// from LSNs that other frames took.
pub(crate) struct Assembly {
    /// Transactions committed before it are not returned.
    from: Lsn,
    /// Fragmented transactions being reassembled: begin LSN → (body so far, multi).
    streams: BTreeMap<Lsn, (Vec<u8>, bool)>,
    /// The most bytes one transaction may hold.
    max: u64,
    /// The commit LSN of the last transaction passed (returned or not), or `from - 1` before
    /// any: no transaction commits between it and the next one returned.
    prev: Lsn,
    /// The last transaction returned: its commit LSN and its commit frame's stored checksum.
    last: Option<(Lsn, u32)>,
    /// The position started from: its LSN and checksum, if known.
    start: (Lsn, Option<u32>),
    /// A frame still to be checked against the position started from.
    expect: Option<(Lsn, u32)>,
}

impl Assembly {
    /// Returns transactions committed at or after `from`, each at most `max` bytes. With
    /// `expect = Some(c)`, the frame at `from - 1` must carry checksum `c` (a resumed
    /// [`crate::FollowPosition`]).
    pub(crate) fn new(from: Lsn, max: u64, expect: Option<u32>) -> Assembly {
        let from = from.max(Lsn::FIRST);
        let start = from.prev();
        Assembly {
            from,
            streams: BTreeMap::new(),
            max,
            prev: start,
            last: None,
            start: (start, expect),
            expect: expect.map(|c| (start, c)),
        }
    }

    /// The first LSN returned transactions may have.
    pub(crate) fn from(&self) -> Lsn {
        self.from
    }

    /// The LSN of a frame still to be checked against the position started from: reading
    /// must start at or before it.
    pub(crate) fn expecting(&self) -> Option<Lsn> {
        self.expect.map(|(l, _)| l)
    }

    /// The first LSN this reader has not returned: where a follower that lost its reader
    /// resumes ([`WalError::Truncated`]'s `requested`).
    pub(crate) fn next_needed(&self) -> Lsn {
        self.last
            .map_or(self.from, |(l, _)| l.next().max(self.from))
    }

    /// The last transaction returned (commit LSN and checksum), else the start position.
    pub(crate) fn position(&self) -> (Lsn, Option<u32>) {
        self.last.map_or(self.start, |(l, c)| (l, Some(c)))
    }

    /// Handles a frame just read: the transaction it completes, if any (at or after `from`).
    /// `oldest` names the oldest LSN still readable, for the error about a transaction whose
    /// beginning is gone. Fails only before changing anything, so a retry fails the same way.
    pub(crate) fn consume(
        &mut self,
        f: &ReadFrame,
        oldest: &dyn Fn() -> Lsn,
    ) -> Result<Option<Transaction>> {
        // A watermark carries no transaction, and repeats the LSN of the frame before it: it
        // must not stand in for that frame in the divergence check.
        if f.frame.kind == FrameKind::Watermark {
            return Ok(None);
        }
        if let Some((lsn, expected)) = self.expect
            && f.frame.lsn == lsn
        {
            if f.crc != expected {
                return Err(WalError::Diverged {
                    lsn,
                    expected,
                    found: f.crc,
                });
            }
            self.expect = None;
        }
        let frame = &f.frame;
        let done = match frame.kind {
            FrameKind::Tx => {
                (frame.lsn >= self.from).then(|| (frame.payload.clone(), frame.is_multi()))
            }
            FrameKind::FragBegin => {
                self.check_size(0, frame.body().len())?;
                self.streams
                    .insert(frame.lsn, (frame.body().to_vec(), frame.is_multi()));
                return Ok(None);
            }
            FrameKind::FragPart | FrameKind::FragEnd => {
                let Some(s) = frame.stream() else {
                    return Ok(None);
                };
                let body = frame.body();
                // Only a stream being assembled holds bytes: the fragments of one whose
                // beginning is gone are skipped, never held.
                let Some((buf, multi)) = self.streams.get_mut(&s) else {
                    if frame.lsn >= self.from && frame.kind == FrameKind::FragEnd {
                        return Err(WalError::Truncated {
                            requested: s,
                            oldest: oldest().max(frame.lsn.next()),
                        });
                    }
                    if frame.kind == FrameKind::FragEnd {
                        self.prev = frame.lsn;
                    }
                    return Ok(None);
                };
                let size = (buf.len() + body.len()) as u64;
                if size > self.max {
                    return Err(WalError::TransactionTooLarge {
                        size,
                        max: self.max,
                    });
                }
                buf.extend_from_slice(&body);
                let multi = *multi;
                if frame.kind == FrameKind::FragPart {
                    return Ok(None);
                }
                let (buf, _) = self.streams.remove(&s).unwrap_or_default();
                (frame.lsn >= self.from).then(|| (Bytes::from(buf), multi))
            }
            FrameKind::FragAbort => {
                if let Some(s) = frame.stream() {
                    self.streams.remove(&s);
                }
                return Ok(None);
            }
            FrameKind::Seal | FrameKind::Checkpoint | FrameKind::Watermark => return Ok(None),
        };
        let prev = std::mem::replace(&mut self.prev, frame.lsn);
        let Some((body, multi)) = done else {
            return Ok(None);
        };
        self.last = Some((frame.lsn, f.crc));
        Ok(Some(Transaction {
            lsn: frame.lsn,
            body,
            multi,
            prev,
        }))
    }

    /// Refuses a stream already holding `already` bytes that would grow by `n` past the
    /// limit. The limit is per stream, as the log's own (`StreamWriter`): streams written at
    /// the same time must all read back, so together they may hold more.
    fn check_size(&self, already: usize, n: usize) -> Result<()> {
        let size = (already + n) as u64;
        if size > self.max {
            return Err(WalError::TransactionTooLarge {
                size,
                max: self.max,
            });
        }
        Ok(())
    }
}
