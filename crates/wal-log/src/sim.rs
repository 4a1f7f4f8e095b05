//! [`SimVfs`]: a deterministic in-memory [`Vfs`] that knows what is durable.
//!
//! Every file is an *inode* holding two versions of its bytes: what reads see now, and what
//! was on disk as of its last `sync_data`/`sync_all`. Every `write_all_at`, `set_len` and
//! `allocate` since that sync is kept as a *pending operation*, tagged with a global sequence
//! number. Every directory likewise holds its current entries and the entries as of its last
//! [`Vfs::sync_dir`]. [`SimVfs::crash`] turns that into the disk as it could be found after a
//! power loss, chosen by a [`CrashImage`]; [`SimVfs::fail_nth`] and
//! [`SimVfs::power_off_after`] inject I/O errors and "the process died here".
//! [`HookedVfs`] wraps any [`Vfs`] (this one or the real one) with a hook that sees, and may
//! fail, every call: for faults on one path, or to stage a race at an exact point.
//!
//! # Model and simplifications
//!
//! * Syncing a file (`sync_data` or `sync_all`, which behave the same) makes its bytes and
//!   length durable, but not its directory entry: that takes a `sync_dir` of the directory
//!   holding it, as on POSIX file systems.
//! * A directory made by [`Vfs::create_dir_all`] is an entry of its parent: it survives a
//!   crash once its parent has been synced with `sync_dir`, and until then a crash image may
//!   lose it with everything below it (see [`DirLoss`]). `create_dir_all` takes effect at once,
//!   is not counted as an operation and cannot be made to fail with [`SimVfs::fail_nth`].
//!   Directories cannot be removed or renamed. The parent directory of a file must exist (created with `create_dir_all`),
//!   except for `/` and the empty path (the parent of a bare relative name), which always
//!   exist.
//! * [`Vfs::lock`] creates a missing lock file with a directory entry that is durable at once,
//!   and counts only as [`OpKind::Lock`] (not [`OpKind::Create`]).
//! * A call that fails because of an injected fault or a power-off changes nothing at all: a
//!   failed write writes no byte, a failed sync makes nothing durable, a failed rename renames
//!   nothing. (Real systems may do part of the work; use crash images for that.)
//! * Open handles are bound to the inode, as on POSIX: after a rename the handle writes the
//!   renamed file; after a remove the handle still reads and writes the orphaned inode, which
//!   is visible again only if a crash image brings the removed entry back.
//! * A crash image can make two names share one inode (a hard link): a file renamed across
//!   directories, where only the target directory was synced, keeps both entries.
//! * Writes, `set_len` and `allocate` through a handle opened with [`OpenMode::Read`] fail with
//!   `EBADF`. A file may not grow beyond 1 GiB (`EFBIG`).
//! * The test helpers ([`SimVfs::files`], [`SimVfs::read_file`], [`SimVfs::poke`],
//!   [`SimVfs::put_file`], [`SimVfs::unsynced_ops`], the counters) count nothing and work even
//!   after a power-off.
//!
//! Everything is deterministic: no clocks, no thread-local randomness, only ordered maps.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::vfs::{OpenMode, Vfs, VfsFile, VfsLock};

mod crash;
mod fault;
mod hooked;
mod image;
mod state;
pub use fault::{Fault, OpKind};
pub use hooked::{Call, HookedVfs};
pub use image::{CrashImage, DataLoss, DirLoss};
use state::{
    DataOp, Dir, Inode, Pending, State, file_len, lock_state, norm, not_found, split, write_into,
};

/// Sector size used by [`DataLoss::TornLastWrite`], [`DataLoss::TornWrite`] and
/// [`DataLoss::ScatteredSectors`].
const SECTOR: u64 = 512;
/// Largest file length the simulation accepts.
const MAX_FILE_LEN: u64 = 1 << 30;

const EBADF: i32 = 9;
const EIO: i32 = 5;
const EFBIG: i32 = 27;
const ENOSPC: i32 = 28;

/// A deterministic in-memory file system that models durability, produces crash images and
/// injects faults. See the [module documentation](self) for the model.
///
/// Clones share the same file system (and counters, faults and locks), as do the handles it
/// opens; it can be used from several threads.
#[derive(Clone, Debug)]
pub struct SimVfs {
    state: Arc<Mutex<State>>,
}

impl Default for SimVfs {
    fn default() -> Self {
        SimVfs::new()
    }
}

impl SimVfs {
    /// An empty file system: only the directories `/` and the empty path (the parent of bare
    /// relative names) exist.
    pub fn new() -> SimVfs {
        SimVfs {
            state: Arc::new(Mutex::new(State::new())),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock_state(&self.state)
    }

    /// The disk as it would be found after a power loss now, under `image`.
    ///
    /// The returned `SimVfs` is a fresh, independent file system whose every file and entry is
    /// durable; no locks are held, the operation counters are zero, no faults are armed and
    /// the power is on. Each directory's entries, and whether a directory created since its
    /// parent's last sync survives (with everything below it), are chosen by `image.dirs`;
    /// each file's contents by `image.data`; a file that no surviving entry names is gone. `self` is not changed, so one state can yield many images.
    pub fn crash(&self, image: &CrashImage) -> SimVfs {
        let st = self.state();
        let surviving = st.surviving(&image.data);
        let mut new = State::new();
        for (path, entries) in st.surviving_dirs(image.dirs) {
            new.dirs.insert(
                path,
                Dir {
                    current: entries.clone(),
                    durable: entries,
                    entry_durable: true,
                },
            );
        }
        for id in new.referenced() {
            if let Some(inode) = st.inodes.get(&id) {
                let mut bytes = inode.durable.clone();
                for op in surviving.get(&id).into_iter().flatten() {
                    op.apply(&mut bytes);
                }
                new.inodes.insert(id, Inode::durable(bytes));
            }
        }
        new.next_inode = st.next_inode;
        drop(st);
        SimVfs {
            state: Arc::new(Mutex::new(new)),
        }
    }

    /// Arms a fault: the `nth` call (1-based) of kind `op` fails with `fault`, where calls are
    /// counted over the whole life of this `SimVfs`, as [`SimVfs::op_count`] counts them (so
    /// `fail_nth(op, op_count(op) + 1, ..)` fails the next one). Several faults may be armed;
    /// a `nth` already passed (or 0) never fires. The failing call changes nothing.
    pub fn fail_nth(&self, op: OpKind, nth: u64, fault: Fault) {
        self.state().faults.push((op, nth, fault));
    }

    /// After `n` more mutating operations (see [`OpKind::is_mutating`]), every further
    /// operation of any kind, including reads, opens, lists, `len` and `create_dir_all`,
    /// fails with an I/O error whose message contains "simulated power loss", and changes
    /// nothing: the "process died here" switch for crashing before or after each I/O
    /// operation. `n == 0` cuts the power now. A later call replaces the earlier limit.
    /// Take the image with [`SimVfs::crash`].
    pub fn power_off_after(&self, n: u64) {
        let mut st = self.state();
        st.power_limit = Some(st.mutating.saturating_add(n));
    }

    /// Calls of kind `op` attempted so far, including failed ones.
    pub fn op_count(&self, op: OpKind) -> u64 {
        self.state().counts[op.index()]
    }

    /// Mutating calls attempted so far, including failed ones.
    pub fn mutating_ops(&self) -> u64 {
        self.state().mutating
    }

    /// How many unsynced data operations exist now, so a harness can enumerate
    /// `DataLoss::Prefix(0..=n)`. Only files named by a current or durable directory entry
    /// count (a removed file whose removal was synced can never reappear).
    pub fn unsynced_ops(&self) -> usize {
        self.state().live_pending().len()
    }

    /// How many of the [`SimVfs::unsynced_ops`] are writes, so a harness can enumerate
    /// [`DataLoss::TornWrite`]`{ write: 0..n, .. }`.
    pub fn unsynced_writes(&self) -> usize {
        self.state()
            .live_pending()
            .iter()
            .filter(|(_, p)| matches!(p.op, DataOp::Write { .. }))
            .count()
    }

    /// Paths of all files currently visible, with their current lengths, sorted by path.
    /// Directories are not listed.
    pub fn files(&self) -> Vec<(PathBuf, u64)> {
        let st = self.state();
        let mut files: Vec<(PathBuf, u64)> = st
            .dirs
            .iter()
            .flat_map(|(dir, d)| d.current.iter().map(move |(name, id)| (dir, name, id)))
            .filter_map(|(dir, name, id)| {
                st.inodes
                    .get(id)
                    .map(|inode| (dir.join(name), inode.current.len() as u64))
            })
            .collect();
        files.sort();
        files
    }

    /// Current contents of the file at `path` (what a read would see); `None` when absent.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.state();
        let id = st.lookup(path).ok()?;
        st.inodes.get(&id).map(|inode| inode.current.clone())
    }

    /// Overwrites bytes of the file at `path` directly and durably (extending it with zeros if
    /// needed), without counting an operation: for corruption tests (bit flips, zeroed
    /// sectors). Unsynced operations of the file stay pending and may still land on top in a
    /// crash image.
    ///
    /// # Panics
    /// When no file is at `path`, or the file would grow beyond 1 GiB.
    pub fn poke(&self, path: &Path, offset: u64, bytes: &[u8]) {
        let mut st = self.state();
        let Ok(id) = st.lookup(path) else {
            panic!("SimVfs::poke: no file at {}", path.display());
        };
        let end = offset.saturating_add(bytes.len() as u64);
        let (Ok(offset), Ok(_)) = (file_len(offset), file_len(end)) else {
            panic!(
                "SimVfs::poke: {} would exceed the maximum file length",
                path.display()
            );
        };
        if let Some(inode) = st.inodes.get_mut(&id) {
            write_into(&mut inode.current, offset, bytes);
            write_into(&mut inode.durable, offset, bytes);
        }
    }

    /// Creates or replaces the whole file at `path` with `bytes`, durably (its directory entry
    /// too), without counting an operation; missing parent directories are created. For
    /// building arbitrary directory images (fuzzing). A replaced file's open handles keep the
    /// old inode.
    ///
    /// # Panics
    /// When `path` names a directory or is not a file path.
    pub fn put_file(&self, path: &Path, bytes: &[u8]) {
        let mut st = self.state();
        if st.is_dir(path) {
            panic!("SimVfs::put_file: {} is a directory", path.display());
        }
        let (parent, name) = match split(path) {
            Ok(split) => split,
            Err(e) => panic!("SimVfs::put_file: {e}"),
        };
        for dir in parent.ancestors() {
            st.dirs
                .entry(dir.to_path_buf())
                .or_insert_with(Dir::durable_entry);
        }
        let id = st.new_inode(bytes.to_vec());
        let dir = st.dirs.entry(parent).or_insert_with(Dir::durable_entry);
        dir.current.insert(name.clone(), id);
        dir.durable.insert(name, id);
        st.collect_garbage();
    }
}

/// A handle opened by [`SimVfs`], bound to an inode.
struct SimFile {
    state: Arc<Mutex<State>>,
    inode: u64,
    writable: bool,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("inode", &self.inode)
            .field("writable", &self.writable)
            .finish()
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut st = lock_state(&self.state);
        if let Some(inode) = st.inodes.get_mut(&self.inode) {
            inode.handles = inode.handles.saturating_sub(1);
            if inode.handles == 0 {
                st.collect_garbage();
            }
        }
    }
}

impl SimFile {
    /// Counts a call of kind `op`, checks power and faults, and (for mutations) that the
    /// handle is writable.
    fn begin(&self, op: OpKind) -> io::Result<MutexGuard<'_, State>> {
        let mut st = lock_state(&self.state);
        st.begin(op)?;
        if !self.writable && matches!(op, OpKind::Write | OpKind::SetLen | OpKind::Allocate) {
            return Err(io::Error::from_raw_os_error(EBADF));
        }
        Ok(st)
    }

    fn push(st: &mut State, id: u64, op: DataOp) -> io::Result<()> {
        let seq = st.next_seq();
        let inode = st.inode_mut(id)?;
        op.apply(&mut inode.current);
        inode.pending.push(Pending { seq, op });
        Ok(())
    }
}

impl VfsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut st = self.begin(OpKind::Read)?;
        let inode = st.inode_mut(self.inode)?;
        let len = inode.current.len();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(len);
        let n = buf.len().min(len - start);
        buf[..n].copy_from_slice(&inode.current[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.begin(OpKind::Write)?;
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or_else(|| io::Error::from_raw_os_error(EFBIG))?;
        file_len(end)?;
        let offset = file_len(offset)?;
        if buf.is_empty() {
            // Like write(2) of zero bytes: nothing changes, not even the length.
            st.inode_mut(self.inode)?;
            return Ok(());
        }
        SimFile::push(
            &mut st,
            self.inode,
            DataOp::Write {
                offset,
                bytes: buf.to_vec(),
            },
        )
    }

    fn write_vectored_all_at(&self, bufs: &[std::io::IoSlice<'_>], offset: u64) -> io::Result<()> {
        // One write, as pwritev(2) is: a crash keeps some of it or none, never a later piece
        // as a write of its own.
        let whole: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
        self.write_all_at(&whole, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.begin(OpKind::SyncData)?;
        let inode = st.inode_mut(self.inode)?;
        inode.durable.clone_from(&inode.current);
        inode.pending.clear();
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        let mut st = self.begin(OpKind::SyncAll)?;
        let inode = st.inode_mut(self.inode)?;
        inode.durable.clone_from(&inode.current);
        inode.pending.clear();
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let mut st = lock_state(&self.state);
        st.check_power()?;
        Ok(st.inode_mut(self.inode)?.current.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.begin(OpKind::SetLen)?;
        let len = file_len(len)?;
        SimFile::push(&mut st, self.inode, DataOp::SetLen(len))
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        let mut st = self.begin(OpKind::Allocate)?;
        let len = file_len(len)?;
        if st.inode_mut(self.inode)?.current.len() >= len {
            return Ok(());
        }
        SimFile::push(&mut st, self.inode, DataOp::Allocate(len))
    }
}

/// A lock held through [`SimVfs`]; released on drop.
struct SimLock {
    state: Weak<Mutex<State>>,
    path: PathBuf,
}

impl fmt::Debug for SimLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimLock").field("path", &self.path).finish()
    }
}

impl VfsLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        if let Some(state) = self.state.upgrade() {
            lock_state(&state).locks.remove(&self.path);
        }
    }
}

impl Vfs for SimVfs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state();
        st.check_power()?;
        let dir = norm(dir);
        for ancestor in dir.ancestors() {
            if st.is_dir(ancestor) {
                continue;
            }
            if let Ok((parent, name)) = split(ancestor)
                && st
                    .dirs
                    .get(&parent)
                    .is_some_and(|d| d.current.contains_key(&name))
            {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{}: a file is in the way", ancestor.display()),
                ));
            }
        }
        for ancestor in dir.ancestors() {
            st.dirs.entry(ancestor.to_path_buf()).or_default();
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut st = self.state();
        st.begin(OpKind::List)?;
        let dir = norm(dir);
        let Some(d) = st.dirs.get(&dir) else {
            return Err(not_found(&dir));
        };
        let mut names: Vec<String> = d.current.keys().cloned().collect();
        names.extend(
            st.dirs
                .keys()
                .filter(|sub| sub.parent() == Some(dir.as_path()))
                .filter_map(|sub| sub.file_name().and_then(|n| n.to_str()).map(str::to_owned)),
        );
        names.sort();
        Ok(names)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VfsFile>> {
        let mut st = self.state();
        let id = if mode == OpenMode::CreateNew {
            st.begin(OpKind::Create)?;
            let (parent, name) = match st.parent_of(path) {
                Err(e) if e.kind() == io::ErrorKind::IsADirectory => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{}: a directory is in the way", path.display()),
                    ));
                }
                other => other?,
            };
            if st
                .dirs
                .get(&parent)
                .is_some_and(|d| d.current.contains_key(&name))
            {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{}: file exists", path.display()),
                ));
            }
            let id = st.new_inode(Vec::new());
            st.dir_mut(&parent)?.current.insert(name, id);
            id
        } else {
            st.begin(OpKind::Open)?;
            st.lookup(path)?
        };
        st.inode_mut(id)?.handles += 1;
        drop(st);
        Ok(Arc::new(SimFile {
            state: Arc::clone(&self.state),
            inode: id,
            writable: mode != OpenMode::Read,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state();
        st.begin(OpKind::Rename)?;
        let id = st.lookup(from)?;
        let (to_parent, to_name) = st.parent_of(to)?;
        if norm(from) == norm(to) {
            return Ok(());
        }
        let (from_parent, from_name) = split(from)?;
        st.dir_mut(&from_parent)?.current.remove(&from_name);
        st.dir_mut(&to_parent)?.current.insert(to_name, id);
        st.collect_garbage();
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state();
        st.begin(OpKind::Remove)?;
        st.lookup(path)?;
        let (parent, name) = split(path)?;
        st.dir_mut(&parent)?.current.remove(&name);
        st.collect_garbage();
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state();
        st.begin(OpKind::SyncDir)?;
        let dir = norm(dir);
        let d = st.dir_mut(&dir)?;
        d.durable.clone_from(&d.current);
        for (_, sub) in st
            .dirs
            .iter_mut()
            .filter(|(sub, _)| sub.parent() == Some(dir.as_path()))
        {
            sub.entry_durable = true;
        }
        st.collect_garbage();
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn VfsLock>> {
        let mut st = self.state();
        st.begin(OpKind::Lock)?;
        let (parent, name) = st.parent_of(path)?;
        let key = norm(path);
        if st.locks.contains(&key) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{}: lock held by another holder", path.display()),
            ));
        }
        if !st
            .dirs
            .get(&parent)
            .is_some_and(|d| d.current.contains_key(&name))
        {
            let id = st.new_inode(Vec::new());
            let d = st.dir_mut(&parent)?;
            d.current.insert(name.clone(), id);
            d.durable.insert(name, id);
            st.collect_garbage();
        }
        st.locks.insert(key.clone());
        Ok(Box::new(SimLock {
            state: Arc::downgrade(&self.state),
            path: key,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn removed_and_synced_inodes_are_collected_once_handles_close() {
        let v = SimVfs::new();
        v.create_dir_all(Path::new("/d")).unwrap();
        let f = v.open(Path::new("/d/a"), OpenMode::CreateNew).unwrap();
        f.write_all_at(b"x", 0).unwrap();
        v.sync_dir(Path::new("/d")).unwrap();
        v.remove(Path::new("/d/a")).unwrap();
        v.sync_dir(Path::new("/d")).unwrap();
        // Still held by the handle, but no longer part of any crash image.
        assert_eq!(v.state().inodes.len(), 1);
        assert_eq!(v.unsynced_ops(), 0);
        f.write_all_at(b"y", 1).unwrap();
        drop(f);
        assert!(v.state().inodes.is_empty());
    }

    #[test]
    fn paths_are_normalized() {
        let v = SimVfs::new();
        v.create_dir_all(Path::new("/d/")).unwrap();
        v.put_file(Path::new("/d//f"), b"abc");
        assert_eq!(v.read_file(Path::new("/d/./f")).unwrap(), b"abc");
        assert_eq!(v.files(), vec![(PathBuf::from("/d/f"), 3)]);
        assert_eq!(v.list(Path::new("/")).unwrap(), vec!["d".to_owned()]);
    }

    #[test]
    fn debug_output_does_not_dump_contents() {
        let v = SimVfs::new();
        v.put_file(Path::new("/f"), &[0xAB; 4096]);
        let s = format!("{v:?}");
        assert!(s.contains("len: 4096"), "{s}");
        assert!(s.len() < 2000);
    }
}
