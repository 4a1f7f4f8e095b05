//! [`DirMirror`]: a [`WalMirror`] that keeps an archive directory which recovers the log
//! alone.

mod error;
mod frames;
mod resume;
mod segment;

pub use error::MirrorError;

use crate::hook::{MirrorPosition, WalMirror};
use resume::{reconcile, segments_in};
use segment::{SegmentCopy, create_copy, open_source};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use wal_format::header::SEGMENT_HEADER_LEN;
use wal_format::{Lsn, SegmentSeq};
use wal_log::layout::segment_file_name;
use wal_log::vfs::{OpenMode, StdVfs, Vfs};

#[derive(Default)]
struct MirrorState {
    last: Option<Instant>,
    /// This process has taken over the archive: created the directory, found where it ends,
    /// synced its entries.
    resumed: bool,
    /// Every segment up to this one that the mirror is responsible for is archived through
    /// its seal (0: none).
    done: u64,
    /// Where the copy of `done` ends, once known in this process.
    done_at: Option<MirrorPosition>,
    /// The segments being copied, with their files open: the newest, and around a rotation
    /// the one before it. Every other segment has no open file.
    active: BTreeMap<u64, SegmentCopy>,
}

/// A [`WalMirror`] that keeps an archive directory holding a copy of every segment of the log:
/// opening a [`wal_log::Wal`] on (a copy of) the archive recovers the log as of the last
/// persist, and `walctl` reads it as the log directory of a data directory (`<x>/log`).
///
/// # Layout and costs
///
/// The archive holds segment files named as in the log, each holding the log's header and
/// the complete, verified frames copied so far (never a segment's preallocated zeros, nor a
/// frame still being written); the next one being created may sit in `prealloc.tmp` (it holds
/// only a header). Each persist lists the log directory and copies, for every segment not yet
/// archived through its seal, the frames that are new since the last copy, then fsyncs the
/// copy. A new archive file is created under `prealloc.tmp` with the log's header, synced,
/// renamed, and the directory synced, before anything is copied into it. Files stay open
/// only for segments still being copied (one, two around a rotation), however long the log.
///
/// # Truncation waits for the mirror
///
/// [`WalMirror::position`] is the end of the durable copy. The recorder truncates the log
/// only up to it ([`crate::WalRecorder::truncate_up_to`], [`crate::mirror::Truncator`]), so a segment
/// leaves the log only once the archive holds it through its seal; segments removed from the
/// log stay in the archive (it keeps the history). If a segment leaves the log before the
/// mirror finished it anyway (a truncation that did not go through the recorder), the mirror
/// finishes it from the file it holds open when it can, and otherwise fails with
/// [`MirrorError::SegmentLost`]: never an archive that silently stops following the log.
///
/// # A new process
///
/// The first persist of a process resumes where the archive ends: it reads only the archive's
/// newest segment (checking it against the log's, byte for byte) and copies nothing the
/// archive already holds, so restarting costs at most one segment's reads, whatever the
/// archive's size. Frames that the archive holds but the log does not hold at the same place
/// (copied before a power loss took them from the log, or torn by a crash of the copy) are
/// cut from the archive; bytes that differ from the log's are kept beside the segment, in
/// `<segment>.wal.unmatched-<offset>`. An archive of another log, one ahead of the log or one
/// whose history the log no longer continues is refused ([`MirrorError`]).
///
/// The archive may be slightly ahead of the log's durable end: frames appended between the
/// recorder's fsync and the copy are copied too. They are complete, committed frames.
///
/// One mirror per archive directory.
pub struct DirMirror {
    vfs: Arc<dyn Vfs>,
    archive: PathBuf,
    min_interval: Duration,
    state: Mutex<MirrorState>,
    published: Mutex<Option<MirrorPosition>>,
    bytes_written: AtomicU64,
    segments_created: AtomicU64,
    open_segments: AtomicUsize,
}

/// Counters and the position of a [`DirMirror`] ([`DirMirror::stats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirMirrorStats {
    /// Where the durable copy ends ([`WalMirror::position`]); `None` before the first persist.
    pub position: Option<MirrorPosition>,
    /// Bytes this mirror wrote into the archive (headers, frames, bytes set aside).
    pub bytes_written: u64,
    /// Segment files this mirror created in the archive.
    pub segments_created: u64,
    /// Segments the mirror holds open (log file and archive copy each), after the last
    /// persist: those still being copied.
    pub open_segments: usize,
}

impl fmt::Debug for DirMirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirMirror")
            .field("archive", &self.archive)
            .field("min_interval", &self.min_interval)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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
            published: Mutex::new(None),
            bytes_written: AtomicU64::new(0),
            segments_created: AtomicU64::new(0),
            open_segments: AtomicUsize::new(0),
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

    /// Counters and the position.
    #[must_use]
    pub fn stats(&self) -> DirMirrorStats {
        DirMirrorStats {
            position: *lock(&self.published),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            segments_created: self.segments_created.load(Ordering::Relaxed),
            open_segments: self.open_segments.load(Ordering::Relaxed),
        }
    }

    fn copy_all(&self, st: &mut MirrorState, wal_dir: &Path) -> Result<(), MirrorError> {
        if wal_dir == self.archive {
            return Err(MirrorError::ArchiveIsLogDir {
                dir: self.archive.clone(),
            });
        }
        let log = segments_in(&*self.vfs, wal_dir)?;
        if !st.resumed {
            self.resume(st, wal_dir, &log)?;
        }
        let Some(&newest) = log.last() else {
            return Ok(());
        };
        let mut seq = st.done + 1;
        while seq <= newest {
            if log.binary_search(&seq).is_err() {
                self.finish_vanished(st, seq)?;
            } else if !self.advance(st, wal_dir, seq)? {
                if seq != newest
                    && let Some(copy) = st.active.get(&seq)
                {
                    return Err(MirrorError::SegmentIncomplete {
                        path: copy.src_path.clone(),
                        offset: copy.end,
                    });
                }
                break;
            }
            seq += 1;
        }
        self.open_segments.store(st.active.len(), Ordering::Relaxed);
        let position = st.active.get(&newest).map_or(st.done_at, |c| {
            Some(MirrorPosition::new(c.last_lsn(), SegmentSeq(newest), c.end))
        });
        if position.is_some() {
            *lock(&self.published) = position;
        }
        Ok(())
    }

    /// Takes over the archive on this process's first persist: creates the directory, finds
    /// where the archive ends ([`resume::resume`]) and syncs the directory (an earlier process
    /// may have died between naming a file and syncing its directory).
    fn resume(&self, st: &mut MirrorState, wal_dir: &Path, log: &[u64]) -> Result<(), MirrorError> {
        wal_log::vfs::create_dir_durable(&*self.vfs, &self.archive)
            .map_err(MirrorError::io("create dir", &self.archive))?;
        let done = resume::resume(&*self.vfs, &self.archive, wal_dir, log)?;
        self.vfs
            .sync_dir(&self.archive)
            .map_err(MirrorError::io("fsync dir", &self.archive))?;
        st.done = done;
        st.resumed = true;
        Ok(())
    }

    /// Copies what is new of segment `seq`, opening it first when needed. Returns whether it
    /// is now archived through its seal (its files are then closed).
    fn advance(&self, st: &mut MirrorState, wal_dir: &Path, seq: u64) -> Result<bool, MirrorError> {
        if !st.active.contains_key(&seq) {
            let copy = self.start(st, wal_dir, seq)?;
            st.active.insert(seq, copy);
        }
        let Some(copy) = st.active.get_mut(&seq) else {
            return Ok(false);
        };
        let wrote = copy.copy_frames()?;
        self.bytes_written.fetch_add(wrote, Ordering::Relaxed);
        if !copy.sealed {
            return Ok(false);
        }
        self.finished(st, seq);
        Ok(true)
    }

    /// Segment `seq` is archived through its seal: record it and close its files.
    fn finished(&self, st: &mut MirrorState, seq: u64) {
        if let Some(copy) = st.active.remove(&seq) {
            st.done = seq;
            st.done_at = Some(MirrorPosition::new(
                copy.last_lsn(),
                SegmentSeq(seq),
                copy.end,
            ));
        }
    }

    /// Segment `seq` is gone from the log before the archive held all of it: finish it from
    /// the file still open, if there is one and it still holds the segment through its seal.
    fn finish_vanished(&self, st: &mut MirrorState, seq: u64) -> Result<(), MirrorError> {
        if let Some(copy) = st.active.get_mut(&seq) {
            let wrote = copy.copy_frames()?;
            self.bytes_written.fetch_add(wrote, Ordering::Relaxed);
            if copy.sealed {
                tracing::warn!(
                    seq,
                    "a segment left the log before the mirror finished it; finished from its open file"
                );
                self.finished(st, seq);
                return Ok(());
            }
        }
        Err(self.lost(st, seq))
    }

    fn lost(&self, st: &MirrorState, seq: u64) -> MirrorError {
        let archived_through = st
            .active
            .get(&seq)
            .map(SegmentCopy::last_lsn)
            .or(st.done_at.map(|p| p.lsn))
            .unwrap_or(Lsn::ZERO);
        MirrorError::SegmentLost {
            seq: SegmentSeq(seq),
            archive: self.archive.clone(),
            archived_through,
        }
    }

    /// Opens segment `seq` of the log and its archive copy: a new one, or one an earlier
    /// process left ([`reconcile`]d with the log).
    fn start(
        &self,
        st: &MirrorState,
        wal_dir: &Path,
        seq: u64,
    ) -> Result<SegmentCopy, MirrorError> {
        let name = segment_file_name(SegmentSeq(seq));
        let src_path = wal_dir.join(&name);
        let src = match open_source(&*self.vfs, &src_path) {
            Err(MirrorError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Err(self.lost(st, seq));
            }
            r => r?,
        };
        let dst_path = self.archive.join(&name);
        match self.vfs.open(&dst_path, OpenMode::ReadWrite) {
            Ok(dst) => {
                let (copy, wrote) = reconcile(&*self.vfs, &self.archive, src, dst_path, dst)?;
                self.bytes_written.fetch_add(wrote, Ordering::Relaxed);
                Ok(copy)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let dst = create_copy(&*self.vfs, &self.archive, &dst_path, &src.header)?;
                self.bytes_written
                    .fetch_add(SEGMENT_HEADER_LEN as u64, Ordering::Relaxed);
                self.segments_created.fetch_add(1, Ordering::Relaxed);
                Ok(SegmentCopy {
                    src_path,
                    dst_path,
                    src: src.file,
                    dst,
                    seed: src.decoded.seed(),
                    header: src.header,
                    end: SEGMENT_HEADER_LEN as u64,
                    next_lsn: src.decoded.base_lsn,
                    sealed: false,
                })
            }
            Err(e) => Err(MirrorError::io("open", &dst_path)(e)),
        }
    }

    fn persist_now(&self, st: &mut MirrorState, wal_dir: &Path) -> io::Result<()> {
        self.copy_all(st, wal_dir)?;
        st.last = Some(Instant::now());
        Ok(())
    }
}

impl WalMirror for DirMirror {
    fn persist(&self, wal_dir: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        if let Some(last) = st.last
            && last.elapsed() < self.min_interval
        {
            return Ok(());
        }
        self.persist_now(&mut st, wal_dir)
    }

    fn persist_force(&self, wal_dir: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        self.persist_now(&mut st, wal_dir)
    }

    fn position(&self) -> Option<MirrorPosition> {
        *lock(&self.published)
    }
}
