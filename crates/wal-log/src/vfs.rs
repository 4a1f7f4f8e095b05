//! The I/O seam: every file operation of the log goes through [`Vfs`].
//!
//! [`StdVfs`] is the real file system. `SimVfs` (feature `sim`) is a deterministic in-memory
//! one that knows which bytes and directory entries are durable and can produce crash images
//! and inject faults.

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// How to open a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Create a new file for reading and writing; fails if it exists.
    CreateNew,
}

/// An open file. All methods take `&self` so one handle can be shared between the writer
/// (appending), the syncer (fsync outside the append lock) and readers.
// `len` is a file size query that can fail, not a collection length.
#[allow(clippy::len_without_is_empty)]
pub trait VfsFile: Send + Sync + Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns the number read (0 at end of file).
    ///
    /// # Errors
    /// The underlying I/O error.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`, growing the file if needed.
    ///
    /// # Errors
    /// The underlying I/O error; nothing may be assumed about how much was written.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data (and the metadata needed to read it) durable: `fdatasync`.
    ///
    /// # Errors
    /// The underlying I/O error. After an error the file's durable state is unknown.
    fn sync_data(&self) -> io::Result<()>;
    /// Makes the file's data and all metadata durable: `fsync`.
    ///
    /// # Errors
    /// As [`VfsFile::sync_data`].
    fn sync_all(&self) -> io::Result<()>;
    /// Current length in bytes.
    ///
    /// # Errors
    /// The underlying I/O error.
    fn len(&self) -> io::Result<u64>;
    /// Truncates or extends (with zeros) to `len` bytes.
    ///
    /// # Errors
    /// The underlying I/O error.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Reserves real disk space for `len` bytes, so later writes inside that range neither fail
    /// for space nor change the file size. Extends with zeros; never shrinks.
    ///
    /// # Errors
    /// The underlying I/O error (ENOSPC when the disk is full).
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// Writes all of `bufs`, one after another, at `offset`: one write of their concatenation
    /// (a crash may keep any part of it, as of [`VfsFile::write_all_at`]).
    ///
    /// The default writes the pieces one by one with [`VfsFile::write_all_at`]; a file system
    /// that models crashes must override it so that the pieces stay one write, and a wrapper
    /// around another file should forward it.
    ///
    /// # Errors
    /// As [`VfsFile::write_all_at`].
    fn write_vectored_all_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> io::Result<()> {
        let mut at = offset;
        for b in bufs {
            self.write_all_at(b, at)?;
            at += b.len() as u64;
        }
        Ok(())
    }
    /// Asks the OS to start writing `len` bytes at `offset` to the device now, without waiting
    /// and without any durability promise (only a later [`VfsFile::sync_data`] gives one).
    /// Lets the device work while the rest of a large write is still being copied.
    ///
    /// The default does nothing, which is always correct.
    ///
    /// # Errors
    /// The underlying I/O error; callers may ignore it (the fsync that follows reports any
    /// write-back failure).
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
}

/// A log file is what a [`wal_format::scan::ChunkedScanner`] reads segments from.
impl wal_format::scan::ReadAt for dyn VfsFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        VfsFile::read_at(self, buf, offset)
    }
}

/// A held directory lock; dropping it releases the lock.
pub trait VfsLock: Send + Sync + Debug {}

/// A file system.
pub trait Vfs: Send + Sync + Debug + 'static {
    /// Creates `dir` and its parents if missing.
    ///
    /// # Errors
    /// The underlying I/O error.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the entries in `dir` (not paths), in no particular order.
    ///
    /// # Errors
    /// `NotFound` when `dir` does not exist; other I/O errors.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Opens a file.
    ///
    /// # Errors
    /// `NotFound`, `AlreadyExists` (for [`OpenMode::CreateNew`]) or other I/O errors.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>>;
    /// Atomically renames `from` to `to`, replacing `to`.
    ///
    /// # Errors
    /// The underlying I/O error.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    ///
    /// # Errors
    /// The underlying I/O error.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    ///
    /// # Errors
    /// The underlying I/O error.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on the file at `path` (created if missing) without waiting.
    ///
    /// # Errors
    /// [`io::ErrorKind::WouldBlock`] when another holder, in this process or another, has it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn VfsLock>>;
    /// Whether another holder has the lock on the existing file at `path`, found without
    /// creating or writing anything (`false` when there is no such file). The default takes
    /// and drops [`Vfs::lock`], which may create the file; [`StdVfs`] opens it read-only, so
    /// it also works on a read-only copy.
    ///
    /// # Errors
    /// The underlying I/O error.
    fn lock_held(&self, path: &Path) -> io::Result<bool> {
        match self.lock(path) {
            Ok(_released) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(true),
            Err(e) => Err(e),
        }
    }
}

/// The real file system, through `std::fs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdVfs;

#[derive(Debug)]
struct StdFile(File);

/// Zeros are written in chunks of this size when allocating.
const ZERO_CHUNK: usize = 1 << 20;

impl VfsFile for StdFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
    fn write_vectored_all_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> io::Result<()> {
        // pwritev(2) takes at most IOV_MAX (1024 on Linux) buffers and may write less than
        // asked; go on from where it stopped.
        const IOV_MAX: usize = 1024;
        let mut at = offset;
        let mut rest = bufs;
        let mut window = [IoSlice::new(&[]); IOV_MAX];
        while !rest.is_empty() {
            let take = rest.len().min(IOV_MAX);
            window[..take].copy_from_slice(&rest[..take]);
            rest = &rest[take..];
            let mut part = &mut window[..take];
            // Empty buffers left over (or given) are nothing to write: pwritev would return 0.
            while part.iter().any(|b| !b.is_empty()) {
                let n = match rustix::io::pwritev(&self.0, part, at) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => n,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                };
                at += n as u64;
                IoSlice::advance_slices(&mut part, n);
            }
        }
        Ok(())
    }
    #[cfg(target_os = "linux")]
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        // POSIX_FADV_DONTNEED starts write-back of the dirty pages in the range without
        // waiting for it (and drops only pages already clean): the safe stand-in for
        // sync_file_range(SYNC_FILE_RANGE_WRITE), and PostgreSQL's fallback for it too.
        // Measured on the bench machine, the two were within noise of each other.
        rustix::fs::fadvise(
            &self.0,
            offset,
            std::num::NonZeroU64::new(len),
            rustix::fs::Advice::DontNeed,
        )?;
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        // Writing zeros (rather than a sparse set_len) makes the filesystem allocate the
        // blocks now, so an fdatasync after an append inside the range has no size or block
        // allocation metadata to flush, and a full disk fails here, off the commit path.
        let mut at = self.len()?;
        let zeros = vec![0u8; ZERO_CHUNK];
        while at < len {
            let n = ((len - at) as usize).min(ZERO_CHUNK);
            self.0.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct StdLock {
    _file: File,
}

impl VfsLock for StdLock {}

impl Vfs for StdVfs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>> {
        let mut o = OpenOptions::new();
        match mode {
            OpenMode::Read => o.read(true),
            OpenMode::ReadWrite => o.read(true).write(true),
            OpenMode::CreateNew => o.read(true).write(true).create_new(true),
        };
        Ok(Arc::new(StdFile(o.open(path)?)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn VfsLock>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        // flock(2) semantics: a second open file description conflicts even in this process.
        match file.try_lock() {
            Ok(()) => Ok(Box::new(StdLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "lock held by another open",
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn lock_held(&self, path: &Path) -> io::Result<bool> {
        // flock(2) works on a descriptor opened for reading.
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        match file.try_lock() {
            Ok(()) => Ok(false),
            Err(std::fs::TryLockError::WouldBlock) => Ok(true),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// Creates `dir` and any missing parents so that every new entry is durable: each directory
/// that did not exist is created and then its parent is fsynced, outermost first. (Syncing
/// only the innermost parent would leave a new outer directory's own entry unsynced, and a
/// power loss could take the whole tree with it.)
///
/// # Errors
/// The first failing create or directory sync; the error message names the path.
pub fn create_dir_durable(vfs: &dyn Vfs, dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty()) {
        match vfs.list(d) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(d),
            Err(e) => return Err(e),
        }
        at = d.parent();
    }
    for d in missing.into_iter().rev() {
        vfs.create_dir_all(d)
            .map_err(|e| with_path(&e, "create dir", d))?;
        if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
            vfs.sync_dir(parent)
                .map_err(|e| with_path(&e, "fsync dir", parent))?;
        }
    }
    Ok(())
}

fn with_path(e: &io::Error, op: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{op} {}: {e}", path.display()))
}

/// Reads into `buf` at `offset` until it is full or the file ends; returns the bytes read.
///
/// # Errors
/// The underlying I/O error.
pub fn read_full(file: &dyn VfsFile, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let n = file.read_at(&mut buf[done..], offset + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(done)
}

/// Reads the whole of `file` (up to its current length).
///
/// # Errors
/// The underlying I/O error.
pub fn read_all(file: &dyn VfsFile) -> io::Result<Vec<u8>> {
    let len = file.len()?;
    let len = usize::try_from(len).map_err(|_| io::Error::other("file too large for memory"))?;
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let n = file.read_at(&mut buf[done..], done as u64)?;
        if n == 0 {
            buf.truncate(done);
            break;
        }
        done += n;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// More buffers than one `pwritev` takes, empty ones among them and at the end, and a
    /// write of empty buffers only: the bytes land in order and nothing fails.
    #[test]
    fn std_vectored_writes_span_windows_and_skip_empty_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let f = StdVfs
            .open(&dir.path().join("v"), OpenMode::CreateNew)
            .unwrap();
        let pieces: Vec<Vec<u8>> = (0..3000u32)
            .map(|i| vec![i as u8; (i % 7) as usize])
            .collect();
        let slices: Vec<IoSlice<'_>> = pieces.iter().map(|p| IoSlice::new(p)).collect();
        f.write_vectored_all_at(&slices, 5).unwrap();
        f.write_vectored_all_at(&[IoSlice::new(&[]), IoSlice::new(&[])], 2)
            .unwrap();
        let all = read_all(&*f).unwrap();
        assert_eq!(&all[..5], &[0; 5]);
        assert_eq!(all[5..], pieces.concat()[..]);
    }

    #[test]
    fn std_vfs_basic_operations() {
        let dir = tempfile::tempdir().unwrap();
        let v = StdVfs;
        let p = dir.path().join("a");
        let f = v.open(&p, OpenMode::CreateNew).unwrap();
        assert_eq!(
            v.open(&p, OpenMode::CreateNew).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        f.write_all_at(b"hello", 3).unwrap();
        f.allocate(100).unwrap();
        assert_eq!(f.len().unwrap(), 100);
        f.sync_data().unwrap();
        let all = read_all(&*f).unwrap();
        assert_eq!(&all[..8], b"\0\0\0hello");
        v.rename(&p, &dir.path().join("b")).unwrap();
        v.sync_dir(dir.path()).unwrap();
        assert_eq!(v.list(dir.path()).unwrap(), vec!["b".to_string()]);
        v.remove(&dir.path().join("b")).unwrap();
        assert!(v.list(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn create_dir_durable_syncs_the_parent_of_every_new_directory() {
        let sim = crate::sim::SimVfs::new();
        sim.create_dir_all(Path::new("/data")).unwrap();
        create_dir_durable(&sim, Path::new("/data/a/b/c")).unwrap();
        assert!(sim.list(Path::new("/data/a/b/c")).is_ok());
        // /data, /data/a and /data/a/b each got a new entry.
        assert_eq!(sim.op_count(crate::sim::OpKind::SyncDir), 3);
        create_dir_durable(&sim, Path::new("/data/a/b/c")).unwrap();
        assert_eq!(
            sim.op_count(crate::sim::OpKind::SyncDir),
            3,
            "nothing new, nothing synced"
        );
        sim.fail_nth(crate::sim::OpKind::SyncDir, 4, crate::sim::Fault::Eio);
        let err = create_dir_durable(&sim, Path::new("/data/x")).unwrap_err();
        assert!(err.to_string().contains("fsync dir /data"), "{err}");
    }

    #[test]
    fn std_vfs_lock_is_exclusive_within_a_process() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("LOCK");
        let held = StdVfs.lock(&p).unwrap();
        assert_eq!(
            StdVfs.lock(&p).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        drop(held);
        StdVfs.lock(&p).unwrap();
    }
}
