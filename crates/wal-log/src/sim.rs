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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use crate::vfs::{OpenMode, Vfs, VfsFile, VfsLock};

mod crash;
mod fault;
mod hooked;
mod image;
pub use fault::{Fault, OpKind};
pub use hooked::{Call, HookedVfs};
pub use image::{CrashImage, DataLoss, DirLoss};

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

/// One unsynced data operation.
#[derive(Clone, Debug)]
enum DataOp {
    Write { offset: usize, bytes: Vec<u8> },
    SetLen(usize),
    Allocate(usize),
}

impl DataOp {
    fn apply(&self, buf: &mut Vec<u8>) {
        match self {
            DataOp::Write { offset, bytes } => write_into(buf, *offset, bytes),
            DataOp::SetLen(len) => buf.resize(*len, 0),
            DataOp::Allocate(len) => {
                if buf.len() < *len {
                    buf.resize(*len, 0);
                }
            }
        }
    }
}

/// Writes `bytes` at `offset`, extending `buf` with zeros as needed.
fn write_into(buf: &mut Vec<u8>, offset: usize, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let end = offset + bytes.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[offset..end].copy_from_slice(bytes);
}

#[derive(Clone, Debug)]
struct Pending {
    seq: u64,
    op: DataOp,
}

struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
    /// Open handles bound to this inode.
    handles: usize,
}

impl Inode {
    fn durable(bytes: Vec<u8>) -> Inode {
        Inode {
            current: bytes.clone(),
            durable: bytes,
            pending: Vec::new(),
            handles: 0,
        }
    }
}

impl fmt::Debug for Inode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inode")
            .field("len", &self.current.len())
            .field("durable_len", &self.durable.len())
            .field("pending_ops", &self.pending.len())
            .field("handles", &self.handles)
            .finish()
    }
}

#[derive(Clone, Debug, Default)]
struct Dir {
    current: BTreeMap<String, u64>,
    durable: BTreeMap<String, u64>,
    /// Whether this directory's own entry in its parent is durable (its parent was synced
    /// since it was created). `/` and the empty path always are.
    entry_durable: bool,
}

impl Dir {
    fn durable_entry() -> Dir {
        Dir {
            entry_durable: true,
            ..Dir::default()
        }
    }
}

#[derive(Debug)]
struct State {
    inodes: BTreeMap<u64, Inode>,
    dirs: BTreeMap<PathBuf, Dir>,
    next_inode: u64,
    next_seq: u64,
    counts: [u64; OpKind::ALL.len()],
    mutating: u64,
    faults: Vec<(OpKind, u64, Fault)>,
    /// Power is off once `mutating` reaches this.
    power_limit: Option<u64>,
    locks: BTreeSet<PathBuf>,
}

fn lock_state(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Component-wise normal form: no trailing slash, no interior `.`.
fn norm(path: &Path) -> PathBuf {
    path.components().collect()
}

/// Splits a file path into its (normalized) parent directory and its name.
fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let path = norm(path);
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file path", path.display()),
        ));
    };
    let Some(name) = name.to_str() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: file name is not UTF-8", path.display()),
        ));
    };
    Ok((parent.to_path_buf(), name.to_owned()))
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", path.display()),
    )
}

fn is_a_directory(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::IsADirectory,
        format!("{}: is a directory", path.display()),
    )
}

fn power_loss() -> io::Error {
    io::Error::other("simulated power loss: the process is considered dead")
}

/// Converts a file length or end offset, refusing anything beyond [`MAX_FILE_LEN`].
fn file_len(len: u64) -> io::Result<usize> {
    if len > MAX_FILE_LEN {
        return Err(io::Error::from_raw_os_error(EFBIG));
    }
    usize::try_from(len).map_err(|_| io::Error::from_raw_os_error(EFBIG))
}

/// Splitmix64: a tiny, fast, well-mixed deterministic generator.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

impl State {
    fn new() -> State {
        let mut dirs = BTreeMap::new();
        dirs.insert(PathBuf::new(), Dir::durable_entry());
        dirs.insert(PathBuf::from("/"), Dir::durable_entry());
        State {
            inodes: BTreeMap::new(),
            dirs,
            next_inode: 1,
            next_seq: 1,
            counts: [0; OpKind::ALL.len()],
            mutating: 0,
            faults: Vec::new(),
            power_limit: None,
            locks: BTreeSet::new(),
        }
    }

    fn powered_off(&self) -> bool {
        self.power_limit.is_some_and(|limit| self.mutating >= limit)
    }

    fn check_power(&self) -> io::Result<()> {
        if self.powered_off() {
            Err(power_loss())
        } else {
            Ok(())
        }
    }

    /// Counts a call of kind `op`, then fails it if the power is off or a fault is armed.
    fn begin(&mut self, op: OpKind) -> io::Result<()> {
        self.counts[op.index()] += 1;
        let off = self.powered_off();
        if op.is_mutating() {
            self.mutating += 1;
        }
        if off {
            return Err(power_loss());
        }
        let nth = self.counts[op.index()];
        match self
            .faults
            .iter()
            .find(|(kind, n, _)| *kind == op && *n == nth)
        {
            Some((_, _, fault)) => Err(fault.to_error()),
            None => Ok(()),
        }
    }

    fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    fn new_inode(&mut self, bytes: Vec<u8>) -> u64 {
        let id = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(id, Inode::durable(bytes));
        id
    }

    fn inode_mut(&mut self, id: u64) -> io::Result<&mut Inode> {
        self.inodes
            .get_mut(&id)
            .ok_or_else(|| io::Error::other("stale SimVfs file handle"))
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.dirs.contains_key(&norm(path))
    }

    /// The parent directory of a file path, which must exist, and the file's name; fails
    /// with `IsADirectory` when the path names a directory.
    fn parent_of(&self, path: &Path) -> io::Result<(PathBuf, String)> {
        if self.is_dir(path) {
            return Err(is_a_directory(path));
        }
        let (parent, name) = split(path)?;
        if !self.dirs.contains_key(&parent) {
            return Err(not_found(path));
        }
        Ok((parent, name))
    }

    /// The inode a file path currently names.
    fn lookup(&self, path: &Path) -> io::Result<u64> {
        let (parent, name) = self.parent_of(path)?;
        self.dirs
            .get(&parent)
            .and_then(|d| d.current.get(&name))
            .copied()
            .filter(|id| self.inodes.contains_key(id))
            .ok_or_else(|| not_found(path))
    }

    fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| not_found(dir))
    }

    /// Inodes named by some current or durable directory entry.
    fn referenced(&self) -> BTreeSet<u64> {
        self.dirs
            .values()
            .flat_map(|d| d.current.values().chain(d.durable.values()))
            .copied()
            .collect()
    }

    /// Forgets inodes that no entry names and no handle holds: they can never be seen again.
    fn collect_garbage(&mut self) {
        let referenced = self.referenced();
        self.inodes
            .retain(|id, inode| inode.handles > 0 || referenced.contains(id));
    }

    /// Unsynced operations of reachable inodes, in global issue order.
    fn live_pending(&self) -> Vec<(u64, &Pending)> {
        let referenced = self.referenced();
        let mut ops: Vec<(u64, &Pending)> = referenced
            .iter()
            .filter_map(|id| self.inodes.get(id).map(|inode| (*id, inode)))
            .flat_map(|(id, inode)| inode.pending.iter().map(move |p| (id, p)))
            .collect();
        ops.sort_by_key(|(_, p)| p.seq);
        ops
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
    fn splitmix_is_deterministic_and_mixes() {
        let a: Vec<u64> = {
            let mut r = Rng(42);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng(42);
            (0..4).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        let mut c = Rng(43);
        assert_ne!(a[0], c.next_u64());
        let mut buf = [0u8; 13];
        Rng(1).fill(&mut buf);
        assert!(buf.iter().any(|&x| x != 0));
    }

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
