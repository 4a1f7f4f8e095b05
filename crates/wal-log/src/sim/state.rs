//! The model behind [`SimVfs`](super::SimVfs): inodes holding their current and durable
//! bytes and the unsynced operations between them, directories holding their current and
//! durable entries, the operation counters and armed faults, and the path helpers they share.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{EFBIG, Fault, MAX_FILE_LEN, OpKind};

/// One unsynced data operation.
#[derive(Clone, Debug)]
pub(super) enum DataOp {
    Write { offset: usize, bytes: Vec<u8> },
    SetLen(usize),
    Allocate(usize),
}

impl DataOp {
    pub(super) fn apply(&self, buf: &mut Vec<u8>) {
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
pub(super) fn write_into(buf: &mut Vec<u8>, offset: usize, bytes: &[u8]) {
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
pub(super) struct Pending {
    pub(super) seq: u64,
    pub(super) op: DataOp,
}

pub(super) struct Inode {
    pub(super) current: Vec<u8>,
    pub(super) durable: Vec<u8>,
    pub(super) pending: Vec<Pending>,
    /// Open handles bound to this inode.
    pub(super) handles: usize,
}

impl Inode {
    pub(super) fn durable(bytes: Vec<u8>) -> Inode {
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
pub(super) struct Dir {
    pub(super) current: BTreeMap<String, u64>,
    pub(super) durable: BTreeMap<String, u64>,
    /// Whether this directory's own entry in its parent is durable (its parent was synced
    /// since it was created). `/` and the empty path always are.
    pub(super) entry_durable: bool,
}

impl Dir {
    pub(super) fn durable_entry() -> Dir {
        Dir {
            entry_durable: true,
            ..Dir::default()
        }
    }
}

#[derive(Debug)]
pub(super) struct State {
    pub(super) inodes: BTreeMap<u64, Inode>,
    pub(super) dirs: BTreeMap<PathBuf, Dir>,
    pub(super) next_inode: u64,
    pub(super) next_seq: u64,
    pub(super) counts: [u64; OpKind::ALL.len()],
    pub(super) mutating: u64,
    pub(super) faults: Vec<(OpKind, u64, Fault)>,
    /// Power is off once `mutating` reaches this.
    pub(super) power_limit: Option<u64>,
    pub(super) locks: BTreeSet<PathBuf>,
}

pub(super) fn lock_state(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Component-wise normal form: no trailing slash, no interior `.`.
pub(super) fn norm(path: &Path) -> PathBuf {
    path.components().collect()
}

/// Splits a file path into its (normalized) parent directory and its name.
pub(super) fn split(path: &Path) -> io::Result<(PathBuf, String)> {
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

pub(super) fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", path.display()),
    )
}

pub(super) fn is_a_directory(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::IsADirectory,
        format!("{}: is a directory", path.display()),
    )
}

pub(super) fn power_loss() -> io::Error {
    io::Error::other("simulated power loss: the process is considered dead")
}

/// Converts a file length or end offset, refusing anything beyond [`MAX_FILE_LEN`].
pub(super) fn file_len(len: u64) -> io::Result<usize> {
    if len > MAX_FILE_LEN {
        return Err(io::Error::from_raw_os_error(EFBIG));
    }
    usize::try_from(len).map_err(|_| io::Error::from_raw_os_error(EFBIG))
}

impl State {
    pub(super) fn new() -> State {
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

    pub(super) fn powered_off(&self) -> bool {
        self.power_limit.is_some_and(|limit| self.mutating >= limit)
    }

    pub(super) fn check_power(&self) -> io::Result<()> {
        if self.powered_off() {
            Err(power_loss())
        } else {
            Ok(())
        }
    }

    /// Counts a call of kind `op`, then fails it if the power is off or a fault is armed.
    pub(super) fn begin(&mut self, op: OpKind) -> io::Result<()> {
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

    pub(super) fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    pub(super) fn new_inode(&mut self, bytes: Vec<u8>) -> u64 {
        let id = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(id, Inode::durable(bytes));
        id
    }

    pub(super) fn inode_mut(&mut self, id: u64) -> io::Result<&mut Inode> {
        self.inodes
            .get_mut(&id)
            .ok_or_else(|| io::Error::other("stale SimVfs file handle"))
    }

    pub(super) fn is_dir(&self, path: &Path) -> bool {
        self.dirs.contains_key(&norm(path))
    }

    /// The parent directory of a file path, which must exist, and the file's name; fails
    /// with `IsADirectory` when the path names a directory.
    pub(super) fn parent_of(&self, path: &Path) -> io::Result<(PathBuf, String)> {
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
    pub(super) fn lookup(&self, path: &Path) -> io::Result<u64> {
        let (parent, name) = self.parent_of(path)?;
        self.dirs
            .get(&parent)
            .and_then(|d| d.current.get(&name))
            .copied()
            .filter(|id| self.inodes.contains_key(id))
            .ok_or_else(|| not_found(path))
    }

    pub(super) fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| not_found(dir))
    }

    /// Inodes named by some current or durable directory entry.
    pub(super) fn referenced(&self) -> BTreeSet<u64> {
        self.dirs
            .values()
            .flat_map(|d| d.current.values().chain(d.durable.values()))
            .copied()
            .collect()
    }

    /// Forgets inodes that no entry names and no handle holds: they can never be seen again.
    pub(super) fn collect_garbage(&mut self) {
        let referenced = self.referenced();
        self.inodes
            .retain(|id, inode| inode.handles > 0 || referenced.contains(id));
    }

    /// Unsynced operations of reachable inodes, in global issue order.
    pub(super) fn live_pending(&self) -> Vec<(u64, &Pending)> {
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
