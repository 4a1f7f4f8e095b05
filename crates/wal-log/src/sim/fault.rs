//! The faults [`SimVfs`](super::SimVfs) can inject and the operations it counts.

use std::io;

use super::{EIO, ENOSPC};

/// The kinds of operation that [`SimVfs`] counts and can make fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// [`VfsFile::read_at`].
    Read,
    /// [`VfsFile::write_all_at`].
    Write,
    /// [`VfsFile::sync_data`].
    SyncData,
    /// [`VfsFile::sync_all`].
    SyncAll,
    /// [`Vfs::sync_dir`].
    SyncDir,
    /// [`Vfs::open`] with [`OpenMode::Read`] or [`OpenMode::ReadWrite`].
    Open,
    /// [`Vfs::open`] with [`OpenMode::CreateNew`].
    Create,
    /// [`Vfs::rename`].
    Rename,
    /// [`Vfs::remove`].
    Remove,
    /// [`Vfs::list`].
    List,
    /// [`VfsFile::allocate`].
    Allocate,
    /// [`VfsFile::set_len`].
    SetLen,
    /// [`Vfs::lock`].
    Lock,
}

impl OpKind {
    /// Every kind, in declaration order.
    pub const ALL: [OpKind; 13] = [
        OpKind::Read,
        OpKind::Write,
        OpKind::SyncData,
        OpKind::SyncAll,
        OpKind::SyncDir,
        OpKind::Open,
        OpKind::Create,
        OpKind::Rename,
        OpKind::Remove,
        OpKind::List,
        OpKind::Allocate,
        OpKind::SetLen,
        OpKind::Lock,
    ];

    /// Whether this kind counts towards [`SimVfs::mutating_ops`] and
    /// [`SimVfs::power_off_after`]: `Write`, `SyncData`, `SyncAll`, `SyncDir`, `Create`,
    /// `Rename`, `Remove`, `Allocate` and `SetLen`.
    pub const fn is_mutating(self) -> bool {
        matches!(
            self,
            OpKind::Write
                | OpKind::SyncData
                | OpKind::SyncAll
                | OpKind::SyncDir
                | OpKind::Create
                | OpKind::Rename
                | OpKind::Remove
                | OpKind::Allocate
                | OpKind::SetLen
        )
    }

    pub(super) const fn index(self) -> usize {
        self as usize
    }
}

/// An injectable I/O error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `EIO` (os error 5), as from a failing device. Its [`io::Error::kind`] is the same as
    /// for a real `EIO` (currently the unnamed "uncategorized" kind); match it with
    /// [`io::Error::raw_os_error`].
    Eio,
    /// `ENOSPC` (os error 28): [`io::ErrorKind::StorageFull`].
    Enospc,
}

impl Fault {
    pub(super) fn to_error(self) -> io::Error {
        match self {
            Fault::Eio => io::Error::from_raw_os_error(EIO),
            Fault::Enospc => io::Error::from_raw_os_error(ENOSPC),
        }
    }
}
