//! One segment being copied into the archive: both files open, and how far the copy is.

use super::error::MirrorError;
use super::frames::FrameReader;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wal_format::header::SEGMENT_HEADER_LEN;
use wal_format::{Lsn, SegmentHeader, SegmentSeed};
use wal_log::layout::PREALLOC_FILE;
use wal_log::vfs::read_full;
use wal_log::{OpenMode, Vfs, VfsFile};

/// A segment of the log and its archive copy, held open only while the copy is unfinished
/// (until the segment's seal is archived).
pub(super) struct SegmentCopy {
    pub src_path: PathBuf,
    pub dst_path: PathBuf,
    pub src: Arc<dyn VfsFile>,
    pub dst: Arc<dyn VfsFile>,
    pub seed: SegmentSeed,
    /// The log's segment header, as bytes.
    pub header: [u8; SEGMENT_HEADER_LEN],
    /// Offset up to which the archive copy is complete and synced (a frame boundary).
    pub end: u64,
    /// LSN of the next frame to copy.
    pub next_lsn: Lsn,
    /// The seal was copied: nothing more will come.
    pub sealed: bool,
}

/// A segment file of the log (or of the archive), opened, with its header.
pub(super) struct Source {
    pub path: PathBuf,
    pub file: Arc<dyn VfsFile>,
    /// The header, as bytes.
    pub header: [u8; SEGMENT_HEADER_LEN],
    pub decoded: SegmentHeader,
}

/// Opens the segment file `path` and reads its header.
pub(super) fn open_source(vfs: &dyn Vfs, path: &Path) -> Result<Source, MirrorError> {
    let file = vfs
        .open(path, OpenMode::Read)
        .map_err(MirrorError::io("open", path))?;
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    let n = read_full(&*file, &mut header, 0).map_err(MirrorError::io("read", path))?;
    let decoded = SegmentHeader::decode(&header[..n]).map_err(|source| MirrorError::BadHeader {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Source {
        path: path.to_path_buf(),
        file,
        header,
        decoded,
    })
}

/// Creates the archive copy `dst_path` holding only `header`, the way the log names a
/// segment: written and synced under the temporary name `prealloc.tmp`, renamed, and the
/// directory synced. So a segment file in the archive always has its whole header, and it is
/// durable under its name before anything is copied into it.
pub(super) fn create_copy(
    vfs: &dyn Vfs,
    archive: &Path,
    dst_path: &Path,
    header: &[u8; SEGMENT_HEADER_LEN],
) -> Result<Arc<dyn VfsFile>, MirrorError> {
    let tmp = archive.join(PREALLOC_FILE);
    // Left by an interrupted creation: it never held anything but a header.
    match vfs.remove(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(MirrorError::io("remove", &tmp)(e)),
    }
    let dst = vfs
        .open(&tmp, OpenMode::CreateNew)
        .map_err(MirrorError::io("create", &tmp))?;
    dst.write_all_at(header, 0)
        .map_err(MirrorError::io("write", &tmp))?;
    dst.sync_data().map_err(MirrorError::io("fsync", &tmp))?;
    vfs.rename(&tmp, dst_path)
        .map_err(MirrorError::io("rename", &tmp))?;
    vfs.sync_dir(archive)
        .map_err(MirrorError::io("fsync dir", archive))?;
    Ok(dst)
}

impl SegmentCopy {
    /// Copies the verified frames of the log's segment past what the archive holds, and syncs
    /// the copy. Progress is recorded only once all of it is done, so after a failure the
    /// next call starts over from the same point. Returns the bytes written.
    ///
    /// # Errors
    /// I/O errors; [`MirrorError::Diverged`] for a frame that verifies but does not carry the
    /// next LSN.
    pub(super) fn copy_frames(&mut self) -> Result<u64, MirrorError> {
        if self.sealed {
            return Ok(0);
        }
        let mut reader = FrameReader::new(&*self.src, &self.src_path, self.seed, self.end)?;
        let mut next = self.next_lsn;
        let mut sealed = false;
        let mut wrote = 0u64;
        while let Some(run) = reader.next_run()? {
            let mut start = 0;
            for f in &run.frames {
                next = f.follow(next, &self.src_path, run.start + start as u64)?;
                start = f.end;
            }
            self.dst
                .write_all_at(&run.buf, run.start)
                .map_err(MirrorError::io("write", &self.dst_path))?;
            wrote += run.buf.len() as u64;
            sealed = run.sealed;
        }
        if wrote > 0 {
            self.dst
                .sync_data()
                .map_err(MirrorError::io("fsync", &self.dst_path))?;
        }
        self.end = reader.pos();
        self.next_lsn = next;
        self.sealed = sealed;
        Ok(wrote)
    }

    /// The LSN of the last frame the archive holds of this segment (the one before the
    /// segment's first when it holds none).
    pub(super) fn last_lsn(&self) -> Lsn {
        self.next_lsn.prev()
    }
}
