//! The disk's limit: the simple programs a careful engineer would write for each workload, on
//! a preallocated ring file, and the naive loop beside them.

use crate::systems::{Res, Writer, touch};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bulk writes start at a multiple of this and are padded to one, so no write touches a
/// page it does not fill (a partial page not in the cache is read before it is written).
pub const PAGE: u64 = 4096;
/// The fair raw loop asks the kernel to start writing back every this many bytes of a bulk
/// write, as wal-log's direct path does (`WRITEBACK_CHUNK` in `crates/wal-log/src/wal/direct.rs`,
/// with the same call: `posix_fadvise(DONTNEED)`).
pub const WRITEBACK_CHUNK: usize = 512 << 10;

/// A preallocated file (zeros written and synced) shared by every raw cell; each cell's writes
/// start at offset 0 and wrap around.
pub struct RawFile {
    file: File,
    size: u64,
    /// The offset [`RawFile::write_only`] goes on from (`--profile` only).
    off: AtomicU64,
}

impl RawFile {
    pub fn create(path: &Path, size: u64) -> Res<RawFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let zeros = vec![0u8; 4 << 20];
        let mut at = 0;
        while at < size {
            file.write_all_at(&zeros, at)?;
            at += zeros.len() as u64;
        }
        file.sync_all()?;
        if let Some(parent) = path.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(RawFile {
            file,
            size: at,
            off: AtomicU64::new(0),
        })
    }

    /// Reserves `len` bytes at the next place of the ring after `cursor`; with `aligned`, at a
    /// multiple of [`PAGE`] and for a whole number of pages.
    fn reserve(&self, cursor: &AtomicU64, len: u64, aligned: bool) -> u64 {
        let take = if aligned {
            len.next_multiple_of(PAGE)
        } else {
            len
        };
        let mut pos = cursor.fetch_add(take, Ordering::Relaxed) % self.size;
        if pos + take > self.size {
            pos = 0;
        }
        debug_assert!(!aligned || pos.is_multiple_of(PAGE));
        pos
    }

    /// Writes `buf` at the next place of the ring shared by `--profile`'s loops (no fdatasync).
    pub fn write_only(&self, buf: &[u8]) -> Res<()> {
        let pos = self.reserve(&self.off, buf.len() as u64, false);
        self.file.write_all_at(buf, pos)?;
        Ok(())
    }

    /// [`RawFile::write_only`], then an fdatasync.
    pub fn write_durable(&self, buf: &[u8]) -> Res<()> {
        self.write_only(buf)?;
        self.file.sync_data()?;
        Ok(())
    }

    /// A new, empty file that grows as it is written (never wraps): the fresh-file limit,
    /// where every write allocates blocks and every fdatasync commits that allocation.
    pub fn growing(path: &Path) -> Res<RawFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        file.sync_all()?;
        if let Some(parent) = path.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(RawFile {
            file,
            size: u64::MAX,
            off: AtomicU64::new(0),
        })
    }

    /// Makes the ring's bytes durable (the quiesce step before a timed cell).
    pub fn sync(&self) -> Res<()> {
        self.file.sync_all()?;
        Ok(())
    }
}

/// How a raw writer writes a bulk transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bulk {
    /// Page-aligned, padded to whole pages, write-back started every [`WRITEBACK_CHUNK`].
    Fair,
    /// One `pwrite` where the last one ended, then `fdatasync`.
    Naive,
}

/// One cell's raw writer: its own cursor into the shared ring, from offset 0.
pub struct Raw {
    ring: Arc<RawFile>,
    cursor: AtomicU64,
    bulk: Bulk,
}

impl Raw {
    pub fn new(ring: &Arc<RawFile>, bulk: Bulk) -> Raw {
        Raw {
            ring: ring.clone(),
            cursor: AtomicU64::new(0),
            bulk,
        }
    }

    /// The fair bulk write: `flat` in [`WRITEBACK_CHUNK`]s from a page boundary, write-back
    /// started after each but the last, zeros up to the next page boundary, one fdatasync.
    fn write_bulk_fair(&self, flat: &[u8]) -> Res<()> {
        let f = &self.ring.file;
        let at = self.ring.reserve(&self.cursor, flat.len() as u64, true);
        let mut done = 0;
        for chunk in flat.chunks(WRITEBACK_CHUNK) {
            f.write_all_at(chunk, at + done as u64)?;
            let from = at + done as u64;
            done += chunk.len();
            if done < flat.len() {
                // Only advice, as in wal-log: the fdatasync reports any write-back failure.
                let _ = rustix::fs::fadvise(
                    f,
                    from,
                    std::num::NonZeroU64::new(chunk.len() as u64),
                    rustix::fs::Advice::DontNeed,
                );
            }
        }
        let pad = (flat.len() as u64).next_multiple_of(PAGE) - flat.len() as u64;
        if pad > 0 {
            f.write_all_at(&[0u8; PAGE as usize][..pad as usize], at + done as u64)?;
        }
        f.sync_data()?;
        Ok(())
    }
}

impl Writer for Raw {
    /// Records are appended back to back (so 4 KiB records land on page boundaries), each
    /// writer thread doing its own `pwrite` + `fdatasync`: no group commit.
    fn commit(&self, _thread: usize, payload: &[u8]) -> Res<()> {
        let at = self.ring.reserve(&self.cursor, payload.len() as u64, false);
        self.ring.file.write_all_at(payload, at)?;
        self.ring.file.sync_data()?;
        Ok(())
    }
    fn commit_tx(&self, _thread: usize, _records: &[Vec<u8>], flat: &[u8]) -> Res<()> {
        match self.bulk {
            Bulk::Fair => self.write_bulk_fair(flat),
            Bulk::Naive => {
                let at = self.ring.reserve(&self.cursor, flat.len() as u64, false);
                self.ring.file.write_all_at(flat, at)?;
                self.ring.file.sync_data()?;
                Ok(())
            }
        }
    }
}

/// The strict group-commit ceiling for `writers` writers: one thread writes `writers` records
/// at once and fdatasyncs, which is the most a group commit that never writes while an fsync
/// runs can do per fsync. Each `commit` call stands for `writers` commits.
pub struct Ceiling {
    raw: Raw,
    group: Vec<u8>,
}

impl Ceiling {
    pub fn new(ring: &Arc<RawFile>, record: &[u8], writers: usize) -> Ceiling {
        Ceiling {
            raw: Raw::new(ring, Bulk::Naive),
            group: record.repeat(writers),
        }
    }
}

impl Writer for Ceiling {
    fn commit(&self, thread: usize, _payload: &[u8]) -> Res<()> {
        self.raw.commit(thread, &self.group)
    }
    fn commit_tx(&self, thread: usize, records: &[Vec<u8>], flat: &[u8]) -> Res<()> {
        self.raw.commit_tx(thread, records, flat)
    }
}

/// Writes `n` records of the pool back to back into `raw.log`, and their size into
/// `raw.size`, for [`raw_replay`].
pub fn raw_load(dir: &Path, pool: &[Vec<u8>], n: usize, tx: usize) -> Res<()> {
    let f = File::create(dir.join("raw.log"))?;
    let mut buf = Vec::new();
    let mut at = 0u64;
    let mut i = 0;
    while i < n {
        buf.clear();
        for _ in 0..tx.min(n - i) {
            buf.extend_from_slice(&pool[i % pool.len()]);
            i += 1;
        }
        f.write_all_at(&buf, at)?;
        at += buf.len() as u64;
    }
    f.sync_data()?;
    std::fs::write(dir.join("raw.size"), pool[0].len().to_string())?;
    Ok(())
}

/// Reads the file in 1 MiB chunks and walks its fixed-size records: no framing, no checksum.
pub fn raw_replay(dir: &Path) -> Res<u64> {
    let mut f = File::open(dir.join("raw.log"))?;
    let size = std::fs::read_to_string(dir.join("raw.size"))
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok());
    let rec = size.ok_or("raw.size missing")?;
    let mut buf = vec![0u8; (1 << 20) / rec * rec];
    let (mut n, mut sum) = (0u64, 0u64);
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match f.read(&mut buf[filled..])? {
                0 => break,
                k => filled += k,
            }
        }
        for r in buf[..filled].chunks_exact(rec) {
            touch(&mut sum, r);
            n += 1;
        }
        if filled < buf.len() {
            break;
        }
    }
    std::hint::black_box(sum);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fair bulk writes start on page boundaries and land where the ring says; commits go
    /// back to back from offset 0 of each cell.
    #[test]
    fn fair_writes_are_aligned_and_land_in_the_ring() -> Res<()> {
        let dir = tempfile::tempdir()?;
        let ring = Arc::new(RawFile::create(&dir.path().join("ring"), 8 << 20)?);
        let raw = Raw::new(&ring, Bulk::Fair);
        let flat: Vec<u8> = (0..(WRITEBACK_CHUNK + 1000)).map(|i| i as u8 | 1).collect();
        raw.commit_tx(0, &[], &flat)?;
        raw.commit_tx(0, &[], &flat)?;
        let second = (flat.len() as u64).next_multiple_of(PAGE);
        let mut back = vec![0u8; flat.len() + 10];
        ring.file.read_exact_at(&mut back, second)?;
        assert_eq!(&back[..flat.len()], &flat[..]);
        assert!(back[flat.len()..].iter().all(|&b| b == 0));
        let cell = Raw::new(&ring, Bulk::Fair);
        cell.commit(0, b"abc")?;
        cell.commit(0, b"def")?;
        let mut head = [0u8; 6];
        ring.file.read_exact_at(&mut head, 0)?;
        assert_eq!(&head, b"abcdef");
        Ok(())
    }

    /// The ring wraps to 0 rather than writing past its end.
    #[test]
    fn reservations_wrap_inside_the_ring() -> Res<()> {
        let dir = tempfile::tempdir()?;
        let ring = RawFile::create(&dir.path().join("ring"), 4 << 20)?;
        let cursor = AtomicU64::new(0);
        let mut seen = Vec::new();
        for _ in 0..6 {
            let at = ring.reserve(&cursor, 1 << 20, true);
            assert!(at + (1 << 20) <= ring.size);
            seen.push(at);
        }
        assert_eq!(seen, [0, 1 << 20, 2 << 20, 3 << 20, 0, 1 << 20]);
        Ok(())
    }
}
