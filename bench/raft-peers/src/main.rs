//! `cargo run --release --manifest-path bench/raft-peers/Cargo.toml -- [--calls N]
//! [--reopen-entries N] [--dir DIR] [--out FILE]`
//!
//! The workload of `bench/raft` on openraft's two 0.9 example stores, which implement only
//! the v1 `RaftStorage` trait and so cannot be built next to wal-raft (it needs openraft's
//! `storage-v2` feature, which hides that trait): appends of 1 and 64 entries of about 100
//! bytes per call, and the reopen of a store of `--reopen-entries` entries.
//!
//! - openraft-memstore 0.9.25: memory only, the upper bound; nothing to reopen.
//! - openraft-rocksstore 0.9.21 (RocksDB): as it is (its appends are not synced) and synced
//!   (`flush_wal(true)` after every append), see `rocks.rs`.
//!
//! Every figure is printed and, with `--out`, written as `store<TAB>measure<TAB>value` lines
//! for `cargo xtask bench-raft`, which runs this and `bench/raft` and writes the table.

#[path = "../../raft/src/cli.rs"]
mod cli;
mod drive;
mod rocks;

use cli::{Row, rate};
use drive::appends;
use openraft::storage::Adaptor;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use openraft_memstore::{ClientRequest, MemStore, TypeConfig};
use std::error::Error;

/// A memstore entry of about 100 bytes.
fn mem_entry(index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
        payload: EntryPayload::Normal(ClientRequest {
            client: "b".repeat(60),
            serial: index,
            status: "s".repeat(24),
        }),
    }
}

async fn mem_rows(calls: u64) -> Result<Vec<Row>, Box<dyn Error>> {
    let mut rows = Vec::new();
    for per_call in [1u64, 64] {
        let (mut log, _) = Adaptor::new(MemStore::new_async().await);
        let took = appends(&mut log, calls, per_call, mem_entry, || Ok(())).await?;
        rows.push(rate("memstore", per_call, calls, took));
    }
    Ok(rows)
}

fn main() -> Result<(), Box<dyn Error>> {
    let a = cli::args("bench/raft-peers/target/tmp")?;
    std::fs::create_dir_all(&a.dir)?;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let mut rows = rt.block_on(mem_rows(a.calls))?;
    rows.extend(rt.block_on(rocks::append_rows(&a.dir, a.calls))?);
    rows.extend(rt.block_on(rocks::reopen_rows(&a.dir, a.reopen_entries))?);
    cli::emit(&rows, a.out.as_ref())?;
    Ok(())
}
