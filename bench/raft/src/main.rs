//! `cargo run --release --manifest-path bench/raft/Cargo.toml -- [--dir DIR] [--calls N]
//! [--reopen-entries N] [--out FILE]`
//!
//! wal-raft's `LogStore` driven through openraft's storage API as openraft drives it:
//! `append(entries, LogFlushed)` (through `RaftLogStorageExt::blocking_append`, which builds
//! the callback as openraft does and waits for it, so every append is durable before the
//! next), with 1 and with 64 entries per call; then the time to reopen a store of
//! `--reopen-entries` entries (open, whose one scan rebuilds the index, + `get_log_state`) and
//! to read its last entry; a baseline, plain `Wal::append` under the same policy; and the
//! disk's limit: the same bytes per append with one `pwrite` + `fdatasync` each (`disk.rs`).
//! Entries carry 100 bytes of application data. Every figure is printed, and with `--out`
//! written, as `store<TAB>measure<TAB>value` lines.
//!
//! The peers (openraft-rocksstore, openraft-memstore) are in `bench/raft-peers`: both 0.9
//! crates implement only the v1 `RaftStorage` trait, which openraft 0.9.25 does not export
//! with the `storage-v2` feature wal-raft needs, so they cannot be built in this binary.
//! `cargo xtask bench-raft` runs both programs with the same parameters and writes the table
//! of `docs/benchmarks-raft.md`.

use openraft::storage::RaftLogStorageExt;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use std::io::Cursor;
use std::path::Path;
use std::time::{Duration, Instant};
use wal_raft::{LogStore, LogStoreOptions};

mod cli;
mod disk;

openraft::declare_raft_types!(pub Cfg: D = Vec<u8>, R = ());

fn entry(index: u64) -> Entry<Cfg> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
        payload: EntryPayload::Normal(vec![(index % 251) as u8; 100]),
    }
}

fn open(dir: &Path) -> Result<LogStore<Cfg>, wal_raft::RaftStoreError> {
    Ok(LogStore::open(dir, LogStoreOptions::default())?.0)
}

/// Appends `calls` times `per_call` entries, each append durable before the next. Returns
/// the time and the log bytes one append wrote (frames included), for the disk's limit.
async fn appends(
    dir: &Path,
    calls: u64,
    per_call: u64,
) -> Result<(Duration, u64), Box<dyn std::error::Error>> {
    let mut store = open(dir)?;
    let bytes_before = store.wal().stats().bytes;
    let started = Instant::now();
    for c in 0..calls {
        let from = c * per_call;
        store
            .blocking_append((from..from + per_call).map(entry))
            .await?;
    }
    let took = started.elapsed();
    let bytes = (store.wal().stats().bytes - bytes_before).div_ceil(calls);
    Ok((took, bytes))
}

/// The baseline: `calls` sequential `Wal::append`s of one payload of an entry's size, under
/// the same policy (`SyncPolicy::Always`), without wal-raft.
fn raw_appends(dir: &Path, calls: u64) -> Result<Duration, Box<dyn std::error::Error>> {
    let (wal, _) = wal_log::Wal::open(dir, wal_log::Options::default())?;
    let payload = vec![7u8; 128];
    let started = Instant::now();
    for _ in 0..calls {
        wal.append(&payload)?;
    }
    Ok(started.elapsed())
}

/// Fills a store with `n` entries (1,024 per append), then times a reopen (open, which
/// rebuilds the index by one scan, + `get_log_state`, what a restarting node does first) and
/// one positioned read of the last entry. Returns them and the log's bytes.
async fn reopen(
    dir: &Path,
    n: u64,
) -> Result<(Duration, Duration, u64), Box<dyn std::error::Error>> {
    let mut store = open(dir)?;
    let mut next = 0;
    while next < n {
        let end = (next + 1024).min(n);
        store.blocking_append((next..end).map(entry)).await?;
        next = end;
    }
    let bytes = store.wal().segments().iter().map(|s| s.bytes).sum();
    drop(store);
    let (opened, read, last, got) = cli::reopen_and_read(|| async { Ok(open(dir)?) }).await?;
    if last + 1 != n || got != entry(last) {
        return Err(format!("reopened store ends at {last}, expected {}", n - 1).into());
    }
    Ok((opened, read, bytes))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = cli::args("bench/raft/target/tmp")?;
    std::fs::create_dir_all(&a.dir)?;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let mut rows = Vec::new();
    for per_call in [1u64, 64] {
        let dir = a.dir.join(format!("append-{per_call}"));
        let _ = std::fs::remove_dir_all(&dir);
        let (took, bytes) = rt.block_on(appends(&dir, a.calls, per_call))?;
        rows.push(cli::rate("wal-raft", per_call, a.calls, took));
        std::fs::remove_dir_all(&dir)?;
        let dir = a.dir.join(format!("disk-{per_call}"));
        let took = disk::appends(&dir, a.calls, bytes)?;
        rows.push(cli::rate("disk", per_call, a.calls, took));
        std::fs::remove_dir_all(&dir)?;
    }
    let dir = a.dir.join("raw");
    let _ = std::fs::remove_dir_all(&dir);
    let took = raw_appends(&dir, a.calls)?;
    rows.push(cli::rate("wal-log", 1, a.calls, took));
    std::fs::remove_dir_all(&dir)?;
    let dir = a.dir.join("reopen");
    let _ = std::fs::remove_dir_all(&dir);
    let (opened, read, bytes) = rt.block_on(reopen(&dir, a.reopen_entries))?;
    rows.extend(cli::reopen_rows(
        "wal-raft",
        a.reopen_entries,
        opened,
        read,
        bytes,
    ));
    std::fs::remove_dir_all(&dir)?;
    cli::emit(&rows, a.out.as_ref())?;
    Ok(())
}
