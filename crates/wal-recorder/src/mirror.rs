//! Mirrors: hooks that copy the log somewhere else after a flush, and [`DirMirror`], which
//! keeps an archive directory that can recover the log alone.

use bytes::Bytes;
use std::collections::{BTreeMap, btree_map};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use wal_format::{
    FRAME_HEADER_LEN, FrameKind, MAX_FRAME_PAYLOAD, SEGMENT_HEADER_LEN, SegmentHeader, SegmentSeed,
    decode_frame,
};
use wal_log::vfs::read_full;
use wal_log::vfs::{OpenMode, StdVfs, Vfs, VfsFile};
use wal_log::{Entry, classify};

/// A hook that copies the log somewhere else (an archive file, another disk, a backup
/// service) after the recorder made it durable.
///
/// The recorder calls [`WalMirror::persist`] after every [`crate::WalRecorder::flush`] (so
/// also after [`crate::WalRecorder::commit_and_flush`] and
/// [`crate::CommitTicket::wait_and_flush`]), and [`WalMirror::persist_force`] after every
/// [`crate::WalRecorder::force_fsync`] and instead of truncating the log. A failure poisons
/// the recorder.
pub trait WalMirror: Send + Sync + fmt::Debug {
    /// Copies what is new in the log directory `wal_dir`. May batch or throttle (skip a call
    /// that comes soon after the previous one).
    ///
    /// # Errors
    /// Any I/O error; the recorder is poisoned by it.
    fn persist(&self, wal_dir: &Path) -> io::Result<()>;

    /// As [`WalMirror::persist`], but never skipped: when it returns, the mirror holds (and
    /// has made durable) everything the log held when it was called. The default calls
    /// [`WalMirror::persist`].
    ///
    /// # Errors
    /// As [`WalMirror::persist`].
    fn persist_force(&self, wal_dir: &Path) -> io::Result<()> {
        self.persist(wal_dir)
    }
}

/// How much of a segment is read at once while looking for new frames.
const CHUNK: usize = 256 << 10;

/// What the mirror knows about one segment of the log.
struct Copied {
    src_path: PathBuf,
    dst_path: PathBuf,
    src: Arc<dyn VfsFile>,
    dst: Arc<dyn VfsFile>,
    seed: SegmentSeed,
    /// The segment header, copied first.
    header: [u8; SEGMENT_HEADER_LEN],
    /// Offset in the segment up to which the archive copy is complete (a frame boundary); 0
    /// before the first copy in this process.
    end: u64,
    /// The segment ends with a seal frame that was copied: nothing more will come.
    sealed: bool,
}

#[derive(Default)]
struct MirrorState {
    last: Option<Instant>,
    dir_ready: bool,
    /// The archive directory may hold entries not yet made durable: a file this mirror
    /// created (by a persist that may have failed before the directory fsync), or, before this
    /// mirror's first persist, files an earlier process created. Cleared only by a successful
    /// directory fsync.
    dir_unsynced: bool,
    segments: BTreeMap<String, Copied>,
}

/// A [`WalMirror`] that keeps an archive directory holding a copy of every segment of the log:
/// opening a [`wal_log::Wal`] on (a copy of) the archive recovers the log as of the last
/// persist.
///
/// Each persist lists the log directory, and for every segment copies the complete, verified
/// frames that are new since the last copy (frames are checked with their checksums, so a frame
/// being written concurrently is left for the next persist, and a segment's preallocated tail
/// of zeros is never copied). The copied files, and the archive directory when a file was
/// created in it (by this persist or a failed earlier one) and on a mirror's first persist,
/// are fsynced before `persist` returns. Sealed segments are copied once.
/// Segments removed from the log stay in the archive: it keeps the history.
///
/// The first persist of a process copies each segment whole (and cuts an archived copy to the
/// same length), so an archive left behind by an earlier process (whose log may since have cut
/// a torn tail) is brought back in line.
///
/// The archive may be slightly ahead of the log's durable end: frames appended between the
/// recorder's fsync and the copy are copied too. They are complete, committed frames.
pub struct DirMirror {
    vfs: Arc<dyn Vfs>,
    archive: PathBuf,
    min_interval: Duration,
    state: Mutex<MirrorState>,
}

impl fmt::Debug for DirMirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirMirror")
            .field("archive", &self.archive)
            .field("min_interval", &self.min_interval)
            .finish_non_exhaustive()
    }
}

fn ctx(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> io::Error {
    let path = path.display().to_string();
    move |e| io::Error::new(e.kind(), format!("{op} {path}: {e}"))
}

/// Encoded length of the frame starting at `buf[off..]`, from its length field; `None` when
/// the header is not all there or the length cannot be a frame's.
fn frame_len_at(buf: &[u8], off: usize) -> Option<usize> {
    let field = buf.get(off + 4..off + 8)?;
    let len = u32::from_le_bytes([field[0], field[1], field[2], field[3]]) as usize;
    (len <= MAX_FRAME_PAYLOAD).then_some(FRAME_HEADER_LEN + len)
}

impl DirMirror {
    /// A mirror into the directory `archive` on the real file system (created on first use).
    #[must_use]
    pub fn new(archive: impl Into<PathBuf>) -> Self {
        DirMirror::with_vfs(Arc::new(StdVfs), archive)
    }

    /// A mirror into `archive` through `vfs`, which also reads the log directory (so it must be
    /// the log's own [`Vfs`]).
    #[must_use]
    pub fn with_vfs(vfs: Arc<dyn Vfs>, archive: impl Into<PathBuf>) -> Self {
        DirMirror {
            vfs,
            archive: archive.into(),
            min_interval: Duration::ZERO,
            state: Mutex::new(MirrorState::default()),
        }
    }

    /// Throttles [`WalMirror::persist`]: a call within `every` of the previous copy does
    /// nothing ([`WalMirror::persist_force`] always copies). Default zero: every call copies.
    #[must_use]
    pub fn min_interval(mut self, every: Duration) -> Self {
        self.min_interval = every;
        self
    }

    /// The archive directory.
    #[must_use]
    pub fn archive_dir(&self) -> &Path {
        &self.archive
    }

    fn copy_all(&self, st: &mut MirrorState, wal_dir: &Path) -> io::Result<()> {
        let vfs = &*self.vfs;
        if wal_dir == self.archive {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the archive {} is the log directory itself",
                    self.archive.display()
                ),
            ));
        }
        if !st.dir_ready {
            wal_log::vfs::create_dir_durable(vfs, &self.archive)
                .map_err(ctx("create dir", &self.archive))?;
            st.dir_ready = true;
            st.dir_unsynced = true;
        }
        let mut names: Vec<String> = vfs
            .list(wal_dir)
            .map_err(ctx("list", wal_dir))?
            .into_iter()
            .filter(|n| matches!(classify(n), Entry::Segment(_)))
            .collect();
        names.sort();
        // Segments truncated from the log stay in the archive; forget their handles.
        st.segments
            .retain(|name, _| names.binary_search(name).is_ok());
        for name in names {
            let seg = match st.segments.entry(name) {
                btree_map::Entry::Occupied(o) => o.into_mut(),
                btree_map::Entry::Vacant(v) => {
                    let (copied, new_file) =
                        self.start_segment(wal_dir.join(v.key()), self.archive.join(v.key()))?;
                    // Noted before anything else can fail: a later persist syncs it.
                    st.dir_unsynced |= new_file;
                    v.insert(copied)
                }
            };
            if !seg.sealed {
                copy_frames(seg)?;
            }
        }
        if st.dir_unsynced {
            vfs.sync_dir(&self.archive)
                .map_err(ctx("fsync dir", &self.archive))?;
            st.dir_unsynced = false;
        }
        Ok(())
    }

    /// Opens a segment of the log and its archive copy (creating it when missing); returns
    /// whether a file was created.
    fn start_segment(&self, src_path: PathBuf, dst_path: PathBuf) -> io::Result<(Copied, bool)> {
        let vfs = &*self.vfs;
        let src = vfs
            .open(&src_path, OpenMode::Read)
            .map_err(ctx("open", &src_path))?;
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        let n = read_full(&*src, &mut header, 0).map_err(ctx("read", &src_path))?;
        let seed = SegmentHeader::decode(&header[..n])
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("segment {}: {e}", src_path.display()),
                )
            })?
            .seed();
        let (dst, created) = match vfs.open(&dst_path, OpenMode::ReadWrite) {
            Ok(f) => (f, false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (
                vfs.open(&dst_path, OpenMode::CreateNew)
                    .map_err(ctx("create", &dst_path))?,
                true,
            ),
            Err(e) => return Err(ctx("open", &dst_path)(e)),
        };
        Ok((
            Copied {
                src_path,
                dst_path,
                src,
                dst,
                seed,
                header,
                end: 0,
                sealed: false,
            },
            created,
        ))
    }
}

/// Copies the verified frames of `seg` past what was copied already, and syncs the copy.
/// `seg` records progress only once all of it is done: after a failure the next call starts
/// over from the same point (for a first copy: header, frames, and the cut to the log's
/// length, which an archive ahead of the log needs).
fn copy_frames(seg: &mut Copied) -> io::Result<()> {
    let src_len = seg.src.len().map_err(ctx("stat", &seg.src_path))?;
    let first = seg.end == 0;
    let mut wrote = false;
    let mut sealed = false;
    if first {
        seg.dst
            .write_all_at(&seg.header, 0)
            .map_err(ctx("write", &seg.dst_path))?;
        wrote = true;
    }
    let mut pos = seg.end.max(SEGMENT_HEADER_LEN as u64);
    let mut want = CHUNK;
    while pos + FRAME_HEADER_LEN as u64 <= src_len {
        let mut buf = vec![0u8; (src_len - pos).min(want as u64) as usize];
        let n = read_full(&*seg.src, &mut buf, pos).map_err(ctx("read", &seg.src_path))?;
        buf.truncate(n);
        let buf = Bytes::from(buf);
        let chunk_is_tail = pos + buf.len() as u64 >= src_len;
        // Walk the verified frames of the chunk; decide whether to read on.
        let mut off = 0;
        let mut more = None;
        while let Some(flen) = frame_len_at(&buf, off) {
            if off + flen > buf.len() {
                // The frame runs past this chunk: read on from it, if the file holds it.
                if pos + (off + flen) as u64 <= src_len {
                    more = Some(flen.max(CHUNK));
                }
                break;
            }
            let Ok(frame) = decode_frame(&buf, off, seg.seed) else {
                break;
            };
            off += flen;
            if frame.kind == FrameKind::Seal {
                sealed = true;
                break;
            }
        }
        if more.is_none() && !sealed && !chunk_is_tail && buf.len() - off < FRAME_HEADER_LEN {
            // Only a frame header was cut by the chunk's end.
            more = Some(CHUNK);
        }
        if off > 0 {
            seg.dst
                .write_all_at(&buf[..off], pos)
                .map_err(ctx("write", &seg.dst_path))?;
            wrote = true;
            pos += off as u64;
        }
        match more {
            Some(w) => want = w,
            None => break,
        }
    }
    if first {
        // An archive copy left by an earlier process may run past what the log holds now.
        seg.dst
            .set_len(pos)
            .map_err(ctx("truncate", &seg.dst_path))?;
    }
    if wrote {
        seg.dst.sync_data().map_err(ctx("fsync", &seg.dst_path))?;
    }
    seg.end = pos;
    seg.sealed = sealed;
    Ok(())
}

impl WalMirror for DirMirror {
    fn persist(&self, wal_dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(last) = st.last
            && last.elapsed() < self.min_interval
        {
            return Ok(());
        }
        self.copy_all(&mut st, wal_dir)?;
        st.last = Some(Instant::now());
        Ok(())
    }

    fn persist_force(&self, wal_dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.copy_all(&mut st, wal_dir)?;
        st.last = Some(Instant::now());
        Ok(())
    }
}
