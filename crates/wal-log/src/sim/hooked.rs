//! [`HookedVfs`]: any [`Vfs`] with a hook that sees every call first.

use std::fmt;
use std::io::{self, IoSlice};
use std::path::Path;
use std::sync::Arc;

use super::OpKind;
use crate::vfs::{OpenMode, Vfs, VfsFile, VfsLock};

/// One call about to reach the file system a [`HookedVfs`] wraps.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Call<'a> {
    /// What the call is. [`Vfs::create_dir_all`], [`VfsFile::len`] and
    /// [`VfsFile::start_writeback`] are not hooked; both kinds of write are
    /// [`OpKind::Write`].
    pub op: OpKind,
    /// The file the call is on, the directory for [`OpKind::List`] and [`OpKind::SyncDir`],
    /// the source of a rename. For calls on an open file: the path it was opened by, even
    /// after a rename (the log creates segments under a temporary name).
    pub path: &'a Path,
    /// The target of a rename.
    pub to: Option<&'a Path>,
    /// The byte offset of a read or write, the length of a `set_len` or `allocate`; else 0.
    pub offset: u64,
    /// The bytes a read asks for or a write writes; else 0.
    pub len: u64,
}

type Hook = dyn Fn(&Call<'_>) -> io::Result<()> + Send + Sync;

/// A [`Vfs`] that runs a hook before every call it forwards to another one (a [`SimVfs`] or
/// [`StdVfs`]), and fails the call without forwarding it when the hook returns an error.
///
/// For tests that need more than [`SimVfs::fail_nth`]: fail calls on one path only (a full
/// disk for one file, on the real file system too), count or record them, or run code at an
/// exact point of the log's work (another thread reading the log while a segment is renamed
/// into place). The hook runs on the calling thread, with none of the log's locks known to it:
/// it may block or call into the log, which is how races are staged.
///
/// [`SimVfs`]: super::SimVfs
/// [`SimVfs::fail_nth`]: super::SimVfs::fail_nth
/// [`StdVfs`]: crate::StdVfs
///
/// ```
/// use std::path::Path;
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use wal_log::sim::{HookedVfs, OpKind, SimVfs};
/// use wal_log::{Options, Vfs, Wal, WalError};
///
/// let sim = SimVfs::new();
/// sim.create_dir_all(Path::new("/db")).unwrap();
/// // Once `failing` is set, every fsync of file data fails as a dying device's would.
/// let failing = Arc::new(AtomicBool::new(false));
/// let switch = failing.clone();
/// let vfs = HookedVfs::new(Arc::new(sim), move |call| {
///     if call.op == OpKind::SyncData && switch.load(Ordering::Relaxed) {
///         return Err(std::io::Error::from_raw_os_error(5)); // EIO
///     }
///     Ok(())
/// });
/// let (wal, _) = Wal::open("/db", Options::default().vfs(Arc::new(vfs))).unwrap();
/// wal.append(b"durable").unwrap();
/// failing.store(true, Ordering::Relaxed);
/// assert!(matches!(wal.append(b"lost"), Err(WalError::Io { .. })));
/// // Never retried: the log is poisoned for good.
/// assert!(matches!(wal.append(b"later"), Err(WalError::Poisoned { .. })));
/// ```
#[derive(Clone)]
pub struct HookedVfs {
    inner: Arc<dyn Vfs>,
    hook: Arc<Hook>,
}

impl fmt::Debug for HookedVfs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookedVfs")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl HookedVfs {
    /// Wraps `inner`; `hook` sees every call before it is forwarded.
    pub fn new(
        inner: Arc<dyn Vfs>,
        hook: impl Fn(&Call<'_>) -> io::Result<()> + Send + Sync + 'static,
    ) -> HookedVfs {
        HookedVfs {
            inner,
            hook: Arc::new(hook),
        }
    }

    fn call(&self, op: OpKind, path: &Path) -> io::Result<()> {
        (self.hook)(&Call {
            op,
            path,
            to: None,
            offset: 0,
            len: 0,
        })
    }
}

impl Vfs for HookedVfs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.call(OpKind::List, dir)?;
        self.inner.list(dir)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>> {
        let op = match mode {
            OpenMode::CreateNew => OpKind::Create,
            OpenMode::Read | OpenMode::ReadWrite => OpKind::Open,
        };
        self.call(op, path)?;
        let inner = self.inner.open(path, mode)?;
        Ok(Arc::new(HookedFile {
            inner,
            path: path.into(),
            hook: self.hook.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        (self.hook)(&Call {
            op: OpKind::Rename,
            path: from,
            to: Some(to),
            offset: 0,
            len: 0,
        })?;
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.call(OpKind::Remove, path)?;
        self.inner.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.call(OpKind::SyncDir, dir)?;
        self.inner.sync_dir(dir)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn VfsLock>> {
        self.call(OpKind::Lock, path)?;
        self.inner.lock(path)
    }
    fn lock_held(&self, path: &Path) -> io::Result<bool> {
        self.call(OpKind::Lock, path)?;
        self.inner.lock_held(path)
    }
}

/// A file opened through a [`HookedVfs`].
struct HookedFile {
    inner: Arc<dyn VfsFile>,
    path: Box<Path>,
    hook: Arc<Hook>,
}

impl fmt::Debug for HookedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookedFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl HookedFile {
    fn call(&self, op: OpKind, offset: u64, len: u64) -> io::Result<()> {
        (self.hook)(&Call {
            op,
            path: &self.path,
            to: None,
            offset,
            len,
        })
    }
}

impl VfsFile for HookedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.call(OpKind::Read, offset, buf.len() as u64)?;
        self.inner.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.call(OpKind::Write, offset, buf.len() as u64)?;
        self.inner.write_all_at(buf, offset)
    }
    fn write_vectored_all_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> io::Result<()> {
        let len = bufs.iter().map(|b| b.len() as u64).sum();
        self.call(OpKind::Write, offset, len)?;
        self.inner.write_vectored_all_at(bufs, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.call(OpKind::SyncData, 0, 0)?;
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.call(OpKind::SyncAll, 0, 0)?;
        self.inner.sync_all()
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.call(OpKind::SetLen, len, 0)?;
        self.inner.set_len(len)
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.call(OpKind::Allocate, len, 0)?;
        self.inner.allocate(len)
    }
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        self.inner.start_writeback(offset, len)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::sim::SimVfs;
    use std::sync::Mutex;

    /// The hook sees every hooked call with its path and range, in order, and an error from it
    /// stops the call before it reaches the wrapped file system.
    #[test]
    fn hook_sees_each_call_and_can_fail_it() {
        let sim = SimVfs::new();
        sim.create_dir_all(Path::new("/d")).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let vfs = HookedVfs::new(Arc::new(sim.clone()), move |c| {
            log.lock().unwrap().push((
                c.op,
                c.path.display().to_string(),
                c.to.map(|t| t.display().to_string()),
                c.offset,
                c.len,
            ));
            if c.op == OpKind::Write && c.offset >= 100 {
                return Err(io::Error::from(io::ErrorKind::StorageFull));
            }
            Ok(())
        });
        let f = vfs.open(Path::new("/d/a"), OpenMode::CreateNew).unwrap();
        f.write_all_at(b"hello", 0).unwrap();
        f.write_vectored_all_at(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")], 5)
            .unwrap();
        let full = f.write_all_at(b"late", 100).unwrap_err();
        assert_eq!(full.kind(), io::ErrorKind::StorageFull);
        f.sync_data().unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(f.read_at(&mut buf, 0).unwrap(), 9);
        assert_eq!(&buf[..9], b"helloabcd");
        vfs.rename(Path::new("/d/a"), Path::new("/d/b")).unwrap();
        vfs.sync_dir(Path::new("/d")).unwrap();
        // The failed write never reached the simulator.
        assert_eq!(sim.read_file(Path::new("/d/b")).unwrap(), b"helloabcd");
        let s = |x: &str| x.to_string();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                (OpKind::Create, s("/d/a"), None, 0, 0),
                (OpKind::Write, s("/d/a"), None, 0, 5),
                (OpKind::Write, s("/d/a"), None, 5, 4),
                (OpKind::Write, s("/d/a"), None, 100, 4),
                (OpKind::SyncData, s("/d/a"), None, 0, 0),
                (OpKind::Read, s("/d/a"), None, 0, 16),
                (OpKind::Rename, s("/d/a"), Some(s("/d/b")), 0, 0),
                (OpKind::SyncDir, s("/d"), None, 0, 0),
            ]
        );
    }
}
