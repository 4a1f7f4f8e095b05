//! The disk's limit for the workload: the simplest durable program for "one blocking append at
//! a time", as bench/src's fair raw column writes (`bench/src/raw.rs`): a file preallocated
//! (zeros written and synced, its directory synced), then for every append the bytes wal-raft
//! wrote for it, from a page boundary and padded to whole pages, with one `pwrite` and one
//! `fdatasync`. No framing, no checksum, no index, no thread hand-off: what is left is the
//! disk's cost of making each append durable, which no store that syncs every blocking append
//! can beat by much.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Writes start at a multiple of this and are padded to one, so no write touches a page it
/// does not fill.
const PAGE: u64 = 4096;

/// Creates `path` holding `size` bytes of zeros (rounded up to whole pages), synced, with its
/// directory synced, so that timed writes allocate nothing.
fn preallocated(path: &Path, size: u64) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let size = size.next_multiple_of(PAGE);
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < size {
        let n = (size - at).min(zeros.len() as u64);
        file.write_all_at(&zeros[..n as usize], at)?;
        at += n;
    }
    file.sync_all()?;
    if let Some(parent) = path.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(file)
}

/// `calls` durable writes of `bytes` bytes each (the bytes one wal-raft append wrote), each
/// page-aligned and padded, each followed by `fdatasync`. Returns the time of the writes.
pub fn appends(dir: &Path, calls: u64, bytes: u64) -> std::io::Result<Duration> {
    std::fs::create_dir_all(dir)?;
    let slot = bytes.max(1).next_multiple_of(PAGE);
    let file = preallocated(&dir.join("disk-limit"), slot * calls)?;
    // The append's bytes, non-zero so each write changes the page, then the padding.
    let mut buf = vec![0u8; slot as usize];
    buf[..bytes as usize].fill(0x5a);
    let started = Instant::now();
    for c in 0..calls {
        file.write_all_at(&buf, c * slot)?;
        file.sync_data()?;
    }
    let took = started.elapsed();
    debug_assert_eq!(file.metadata()?.len(), slot * calls, "the file never grew");
    Ok(took)
}
