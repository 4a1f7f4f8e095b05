//! The durable point a writer publishes for readers in other processes
//! ([`crate::Options::publish_durable`]): after each fsync that makes more of the log
//! durable, the writer overwrites the first bytes of its `LOCK` file with where durability
//! stands. A reader in another process ([`crate::TailReader`]) cannot see an fsync; this
//! record is how it learns which written frames are durable.
//!
//! It is advisory and safe by construction: it is written only after the fsync it reports
//! returned, so whatever value a reader (or a disk after a power loss) finds was durable in
//! the log when it was written. It is never fsynced and recovery never reads it. A record
//! that is missing, torn (checksum), or of another log (log id) is ignored, and a reader then
//! trusts only sealed segments. A writer writes it when it opens, with the end recovery made
//! durable, before it appends anything, so the record of an earlier run never covers LSNs
//! that a salvage gave back; a writer that does not publish erases a record it finds when it
//! opens (synced), for the same reason.
//!
//! Layout (56 bytes at offset 0 of `LOCK`, all integers little-endian):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `\x89WALDUR\n` |
//! | 8 | 16 | log id |
//! | 24 | 8 | durable LSN: every frame up to it is durable |
//! | 32 | 8 | segment sequence number the durable LSN's frame is in |
//! | 40 | 8 | byte offset just past that frame in that segment |
//! | 48 | 4 | reserved, zero |
//! | 52 | 4 | CRC32C of bytes 0..52 |

use crate::error::{Result, io_err};
use crate::layout::LOCK_FILE;
use crate::segment::Point;
use crate::vfs::{OpenMode, Vfs, VfsFile, read_full};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wal_format::{LogId, Lsn, SegmentSeq};

const MAGIC: [u8; 8] = *b"\x89WALDUR\n";
/// Length of the record.
pub(crate) const RECORD_LEN: usize = 56;

/// A durable point as published: which log, and how far it is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Published {
    pub(crate) log_id: LogId,
    pub(crate) lsn: Lsn,
    pub(crate) seq: SegmentSeq,
    pub(crate) end: u64,
}

impl Published {
    fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        b[..8].copy_from_slice(&MAGIC);
        b[8..24].copy_from_slice(&self.log_id.as_u128().to_le_bytes());
        b[24..32].copy_from_slice(&self.lsn.0.to_le_bytes());
        b[32..40].copy_from_slice(&self.seq.0.to_le_bytes());
        b[40..48].copy_from_slice(&self.end.to_le_bytes());
        let sum = crc32c::crc32c(&b[..52]);
        b[52..].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// The record in `b`, if it is one (magic, checksum, reserved bytes).
    fn decode(b: &[u8]) -> Option<Published> {
        if b.len() < RECORD_LEN || b[..8] != MAGIC || b[48..52] != [0; 4] {
            return None;
        }
        let sum = u32::from_le_bytes([b[52], b[53], b[54], b[55]]);
        if crc32c::crc32c(&b[..52]) != sum {
            return None;
        }
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[8..24]);
        Some(Published {
            log_id: LogId::from_u128(u128::from_le_bytes(id)),
            lsn: Lsn(u64_at(24)),
            seq: SegmentSeq(u64_at(32)),
            end: u64_at(40),
        })
    }
}

/// The writer's side: the `LOCK` file opened for writing.
pub(crate) struct Publisher {
    file: Arc<dyn VfsFile>,
    path: PathBuf,
    log_id: LogId,
    /// A write failed once already (reported once; later attempts go on).
    warned: AtomicBool,
}

impl Publisher {
    /// Opens the `LOCK` file of the log in `dir` (the writer holds its lock) for writing.
    pub(crate) fn open(vfs: &dyn Vfs, dir: &Path, log_id: LogId) -> Result<Publisher> {
        let path = dir.join(LOCK_FILE);
        let file = vfs
            .open(&path, OpenMode::ReadWrite)
            .map_err(io_err("open", &path))?;
        Ok(Publisher {
            file,
            path,
            log_id,
            warned: AtomicBool::new(false),
        })
    }

    /// Publishes `point`, which is durable. Calls must not overlap (the syncer role, or the
    /// open, serializes them), so records never go backwards.
    ///
    /// # Errors
    /// The write's I/O error, for the open, which fails rather than leave an earlier run's
    /// record in place.
    pub(crate) fn publish_at_open(&self, point: Point) -> Result<()> {
        self.write(point).map_err(io_err("write", &self.path))
    }

    /// [`Publisher::publish_at_open`] after an fsync. A failure changes nothing for the log,
    /// whose durability it does not affect: readers in other processes go on with the last
    /// record written (lower, so still true). It is logged once; the next fsync tries again.
    pub(crate) fn publish(&self, point: Point) {
        if let Err(e) = self.write(point)
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                path = %self.path.display(),
                error = %e,
                "cannot publish the durable LSN; readers in other processes lag until it succeeds"
            );
        }
    }

    fn write(&self, point: Point) -> std::io::Result<()> {
        let rec = Published {
            log_id: self.log_id,
            lsn: point.lsn,
            seq: point.seq,
            end: point.end,
        }
        .encode();
        self.file.write_all_at(&rec, 0)
    }
}

/// For a writer that does not publish: erases (zeroes, then syncs) a valid record an earlier
/// run left in the `LOCK` file of the log in `dir`, which may name LSNs this run is about to
/// assign anew (after a salvage, or in a directory restored from a copy). Reads only when no
/// record is there.
///
/// # Errors
/// An I/O error reading, writing or syncing the file.
pub(crate) fn erase_stale(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    if read_published(vfs, dir)?.is_none() {
        return Ok(());
    }
    let path = dir.join(LOCK_FILE);
    let file = vfs
        .open(&path, OpenMode::ReadWrite)
        .map_err(io_err("open", &path))?;
    file.write_all_at(&[0; RECORD_LEN], 0)
        .map_err(io_err("write", &path))?;
    file.sync_data().map_err(io_err("fsync", &path))
}

/// The reader's side: the record in the `LOCK` file of the log in `dir`, if there is a valid
/// one (no lock is taken; the file is opened read-only).
///
/// # Errors
/// An I/O error other than a missing file.
pub(crate) fn read_published(vfs: &dyn Vfs, dir: &Path) -> Result<Option<Published>> {
    let path = dir.join(LOCK_FILE);
    let file = match vfs.open(&path, OpenMode::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", &path)(e)),
    };
    let mut b = [0u8; RECORD_LEN];
    let n = read_full(&*file, &mut b, 0).map_err(io_err("read", &path))?;
    Ok(Published::decode(&b[..n]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_damage_is_ignored() {
        let p = Published {
            log_id: LogId::from_u128(99),
            lsn: Lsn(1234),
            seq: SegmentSeq(7),
            end: 4096,
        };
        let b = p.encode();
        assert_eq!(Published::decode(&b), Some(p));
        assert_eq!(Published::decode(&b[..RECORD_LEN - 1]), None);
        for i in [0, 9, 30, 50, 55] {
            let mut d = b;
            d[i] ^= 0x10;
            assert_eq!(Published::decode(&d), None, "byte {i}");
        }
        // A torn write: the new record's first half over the old one's second half.
        let q = Published {
            lsn: Lsn(1300),
            ..p
        }
        .encode();
        let mut torn = b;
        torn[..28].copy_from_slice(&q[..28]);
        assert_eq!(Published::decode(&torn), None);
    }
}
