//! What a crash image keeps: the choices [`SimVfs::crash`](super::SimVfs::crash) takes.

/// How a crash image is derived from the current state: see [`SimVfs::crash`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashImage {
    /// What happens to file contents that were written but not synced.
    pub data: DataLoss,
    /// What happens to directory entries that were changed but not synced.
    pub dirs: DirLoss,
}

/// Which unsynced data operations (`write_all_at`, `set_len`, `allocate` since the file's last
/// sync) survive a crash.
///
/// Operations are numbered in global issue order across all files; only files still reachable
/// through a current or durable directory entry take part (see [`SimVfs::unsynced_ops`]).
/// Each file of the image is its durable contents with the surviving operations applied in
/// order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataLoss {
    /// Only synced bytes survive.
    DurableOnly,
    /// Every written byte survives (as if the page cache was flushed).
    AllWritten,
    /// The first `n` unsynced operations (in global issue order across all files) survive;
    /// `Prefix(0)` is `DurableOnly`, `Prefix(SimVfs::unsynced_ops())` is `AllWritten`.
    Prefix(usize),
    /// Each unsynced operation survives independently with probability 1/2, drawn from `seed`.
    RandomSubset {
        /// Seed of the pseudo-random draws.
        seed: u64,
    },
    /// All unsynced operations survive, except that of the last unsynced write (in global
    /// order) only its first `sectors` sectors survive.
    ///
    /// Sectors are the 512-byte aligned ranges of the file (`[512 * i, 512 * (i + 1))`). A
    /// write of `len` bytes at `offset` touches sectors `offset / 512` onwards; the surviving
    /// part is `[offset, min(offset + len, 512 * (offset / 512 + sectors)))`, so the cut is
    /// always on a 512-byte file offset (or the end of the write). `sectors == 0` loses the
    /// whole write; a `sectors` at least the number of sectors the write touches keeps all of
    /// it. The file grows only as far as the surviving part reaches. Operations issued after
    /// the last write (`set_len`, `allocate`) still survive. Without any unsynced write this
    /// is `AllWritten`.
    TornLastWrite {
        /// How many leading sectors of the last write reached the disk.
        sectors: usize,
    },
    /// Any unsynced write torn at any sectors: all unsynced operations issued before unsynced
    /// write number `write` (0-based, counting only the unsynced writes, in global issue
    /// order) survive; of that write only the sectors whose indices are in `keep` survive
    /// (index 0 is the first sector the write touches, cut as for
    /// [`DataLoss::TornLastWrite`]); the operations issued after it survive when `later` is
    /// true and are lost otherwise.
    ///
    /// `keep: 0..k` with `later: false` is a crash image in issue order (what
    /// [`DataLoss::Prefix`] gives, cut inside a write); a `keep` that does not start at 0, or
    /// `later: true`, lets later bytes reach the disk while earlier ones do not, as the page
    /// cache writes dirty pages back in any order. Without that many unsynced writes this is
    /// [`DataLoss::AllWritten`].
    TornWrite {
        /// Which unsynced write tears (0-based among the unsynced writes).
        write: usize,
        /// The indices of its sectors that reach the disk.
        keep: std::ops::Range<usize>,
        /// Whether the operations issued after it survive.
        later: bool,
    },
    /// Out-of-order write-back: each unsynced `set_len` and `allocate` survives independently
    /// with probability 1/2, and so does each sector of each unsynced write, drawn from
    /// `seed`. A write can lose its leading sectors and keep later ones, and a later write
    /// can survive where an earlier one did not.
    ScatteredSectors {
        /// Seed of the pseudo-random draws.
        seed: u64,
    },
    /// All unsynced operations survive, but the bytes of unsynced writes are zeros: the
    /// written ranges survive with the right length and the wrong contents.
    UnsyncedZeroed,
    /// As [`DataLoss::UnsyncedZeroed`], but with pseudo-random garbage drawn from `seed`.
    UnsyncedGarbage {
        /// Seed of the garbage bytes.
        seed: u64,
    },
}

/// Which directory-entry changes (creations, renames, removals, new directories) survive a
/// crash.
///
/// A directory made by [`Vfs::create_dir_all`] is an entry of its parent like a file: it
/// survives once its parent has been synced. A directory that does not survive takes
/// everything below it with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirLoss {
    /// Each directory's entries are as of its last `sync_dir`: files and directories created
    /// since then vanish, renames revert, removed files come back (with contents per the
    /// [`DataLoss`] rule).
    UnsyncedLost,
    /// Every entry change survives.
    AllKept,
    /// Each unsynced entry change survives or is lost independently, with probability 1/2
    /// drawn from `seed`, rather than all or nothing across every directory. Changes of
    /// entries naming the same file are decided together, so a rename whose two directories
    /// are both unsynced reverts whole or not at all (as a journaling file system does).
    RandomEntries {
        /// Seed of the pseudo-random draws.
        seed: u64,
    },
}
