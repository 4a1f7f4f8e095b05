//! Reading the verified frames of a segment file a run at a time.

use super::error::MirrorError;
use bytes::Bytes;
use std::path::Path;
use wal_format::frame::{FRAME_HEADER_LEN, MAX_FRAME_PAYLOAD, decode_frame};
use wal_format::{FrameKind, Lsn, SegmentSeed};
use wal_log::VfsFile;
use wal_log::vfs::read_full;

/// How much of a segment is read at once.
pub(super) const CHUNK: usize = 256 << 10;

/// One whole frame of a [`Run`].
#[derive(Clone, Copy, Debug)]
pub(super) struct FrameAt {
    /// Offset in the run's buffer just past the frame.
    pub end: usize,
    /// Its LSN.
    pub lsn: Lsn,
    /// Its kind (a `Watermark` repeats the LSN before it).
    pub kind: FrameKind,
}

impl FrameAt {
    /// The next LSN to assign after this frame, which must carry the LSN that follows `next`
    /// ([`FrameKind::expected_lsn`]); `at` is its offset in the file at `path`.
    ///
    /// # Errors
    /// [`MirrorError::Diverged`] when it carries another: the log went back and took other
    /// commits.
    pub(super) fn follow(&self, next: Lsn, path: &Path, at: u64) -> Result<Lsn, MirrorError> {
        let expected = self.kind.expected_lsn(next);
        if self.lsn != expected {
            return Err(MirrorError::Diverged {
                path: path.to_path_buf(),
                offset: at,
                expected,
                found: self.lsn,
            });
        }
        Ok(if self.kind.takes_lsn() {
            self.lsn.next()
        } else {
            next
        })
    }
}

/// Consecutive whole frames that verify, read from a segment file.
pub(super) struct Run {
    /// File offset of the first frame.
    pub start: u64,
    /// The frames' bytes, exactly.
    pub buf: Bytes,
    /// Each frame, in order.
    pub frames: Vec<FrameAt>,
    /// The last frame is the segment's seal: nothing follows.
    pub sealed: bool,
}

/// Reads the frames of one segment file that verify under its seed, from a frame boundary
/// on: a frame being written (not all there, or not verifying yet), preallocated zeros and a
/// recycled file's stale bytes (another seed) all end the frames.
pub(super) struct FrameReader<'a> {
    file: &'a dyn VfsFile,
    path: &'a Path,
    seed: SegmentSeed,
    len: u64,
    pos: u64,
    done: bool,
}

/// Encoded length of the frame starting at `buf[off..]`, from its length field; `None` when
/// the header is not all there or the length cannot be a frame's.
fn frame_len_at(buf: &[u8], off: usize) -> Option<usize> {
    let field = buf.get(off + 4..off + 8)?;
    let len = u32::from_le_bytes([field[0], field[1], field[2], field[3]]) as usize;
    (len <= MAX_FRAME_PAYLOAD).then_some(FRAME_HEADER_LEN + len)
}

impl<'a> FrameReader<'a> {
    /// A reader of `file` (at `path`, for messages) from byte `pos`, a frame boundary.
    pub(super) fn new(
        file: &'a dyn VfsFile,
        path: &'a Path,
        seed: SegmentSeed,
        pos: u64,
    ) -> Result<Self, MirrorError> {
        let len = file.len().map_err(MirrorError::io("stat", path))?;
        Ok(FrameReader {
            file,
            path,
            seed,
            len,
            pos,
            done: false,
        })
    }

    /// Where the frames read so far end.
    pub(super) fn pos(&self) -> u64 {
        self.pos
    }

    /// The next run of frames (about [`CHUNK`] bytes, or one larger frame), or `None` when no
    /// whole verified frame follows.
    pub(super) fn next_run(&mut self) -> Result<Option<Run>, MirrorError> {
        let mut want = CHUNK;
        while !self.done && self.pos + FRAME_HEADER_LEN as u64 <= self.len {
            let mut buf = vec![0u8; (self.len - self.pos).min(want as u64) as usize];
            let n = read_full(self.file, &mut buf, self.pos)
                .map_err(MirrorError::io("read", self.path))?;
            buf.truncate(n);
            let buf = Bytes::from(buf);
            let chunk_is_tail = self.pos + buf.len() as u64 >= self.len;
            let mut off = 0;
            let mut frames = Vec::new();
            let mut more = None;
            let mut sealed = false;
            while let Some(flen) = frame_len_at(&buf, off) {
                if off + flen > buf.len() {
                    // The frame runs past this chunk: read on from it, if the file holds it.
                    if self.pos + (off + flen) as u64 <= self.len {
                        more = Some(flen.max(CHUNK));
                    }
                    break;
                }
                let Ok(frame) = decode_frame(&buf, off, self.seed) else {
                    break;
                };
                off += flen;
                frames.push(FrameAt {
                    end: off,
                    lsn: frame.lsn,
                    kind: frame.kind,
                });
                if frame.kind == FrameKind::Seal {
                    sealed = true;
                    break;
                }
            }
            if more.is_none() && !sealed && !chunk_is_tail && buf.len() - off < FRAME_HEADER_LEN {
                // Only a frame header was cut by the chunk's end.
                more = Some(CHUNK);
            }
            self.done = sealed || more.is_none();
            if off > 0 {
                let start = self.pos;
                self.pos += off as u64;
                return Ok(Some(Run {
                    start,
                    buf: buf.slice(..off),
                    frames,
                    sealed,
                }));
            }
            if let Some(w) = more {
                want = w;
            }
        }
        Ok(None)
    }
}
