//! `cargo run --release --manifest-path bench/raft-peers/Cargo.toml -- [--calls N]`
//!
//! The append workload of `bench/raft` on openraft-memstore, openraft's in-memory example
//! store (the upper bound: nothing is durable, nothing can be reopened), through the v1
//! `RaftStorage` API it implements (openraft's v1 adaptor turns an `append` into
//! `append_to_log`): 1 and 64 entries of about 100 bytes per call.

use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftStorage};
use openraft_memstore::{ClientRequest, MemStore, TypeConfig};
use std::time::Instant;

fn entry(index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
        payload: EntryPayload::Normal(ClientRequest {
            client: "b".repeat(60),
            serial: index,
            status: "s".repeat(24),
        }),
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls = arg("--calls", 3000);
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    println!("| store | measure | result |\n| --- | --- | --- |");
    for per_call in [1u64, 64] {
        let took = rt.block_on(async {
            let mut store = MemStore::new_async().await;
            let started = Instant::now();
            for c in 0..calls {
                let from = c * per_call;
                store
                    .append_to_log((from..from + per_call).map(entry))
                    .await?;
            }
            Ok::<_, openraft::StorageError<u64>>(started.elapsed())
        })?;
        println!(
            "| openraft-memstore 0.9.25 (memory only) | appends of {per_call} per call ({calls} calls) | {:.0} entries/s |",
            (calls * per_call) as f64 / took.as_secs_f64()
        );
    }
    Ok(())
}
