//! The memstore half of wal-raft's model test: reads a sequence of storage calls (JSON lines,
//! [`wal_raft_model::Op`]) on stdin, plays it on `openraft-memstore` 0.9.25 through openraft's
//! `Adaptor` (the v2 `RaftLogStorage` view of a v1 store, as `Raft::new` gets it, so the same
//! calls wal-raft's `LogStore` gets) and prints one outcome line per call on stdout.
//!
//! memstore never crashes: at a crash it keeps its state, which is the model of what a
//! durable store must hold there (see `Op::Crash`). `cargo xtask raft-model` runs this with
//! `crates/wal-raft/examples/memstore_model.rs` on the same sequences and compares.

use openraft::storage::Adaptor;
use openraft_memstore::{MemStore, TypeConfig};
use std::error::Error;
use std::io::{self, BufWriter};
use std::process::ExitCode;

fn main() -> ExitCode {
    if let Some(arg) = std::env::args().nth(1) {
        eprintln!(
            "wal-raft-memstore-model: unexpected argument `{arg}`; usage: wal-raft-memstore-model < ops.jsonl"
        );
        return ExitCode::from(2);
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "wal-raft-memstore-model: {}",
                wal_raft_model::error_chain(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    rt.block_on(async {
        let (store, _state_machine) = Adaptor::<TypeConfig, _>::new(MemStore::new_async().await);
        let input = io::stdin().lock();
        let out = BufWriter::new(io::stdout().lock());
        wal_raft_model::play(input, out, store, |store, _kind| Ok(store)).await?;
        Ok(())
    })
}
