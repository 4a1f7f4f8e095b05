//! openraft-rocksstore 0.9.21: appends as the store makes them (RocksDB's default write
//! options: its `append_to_log` never syncs), the same appends each followed by
//! `flush_wal(true)` (RocksDB's own "write the WAL buffer and fsync the WAL", the call the
//! store makes itself only after applying entries), and the reopen of a large store.
//!
//! The store keeps its `db` private, but its public `state_machine` holds the same
//! `Arc<DB>`: that is how the synced run reaches `flush_wal` without patching the store.

use crate::cli::{Row, rate, reopen_and_read, reopen_rows as rows_of_reopen};
use crate::drive::appends;
use openraft::storage::{Adaptor, RaftLogStorageExt};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use openraft_rocksstore::{RocksRequest, RocksStore, TypeConfig};
use std::error::Error;
use std::path::Path;
use std::sync::Arc;

/// An entry of about 100 bytes of application data, like the other stores'.
fn entry(index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
        payload: EntryPayload::Normal(RocksRequest::Set {
            key: format!("k{index:015}"),
            value: "v".repeat(84),
        }),
    }
}

type Log = Adaptor<TypeConfig, Arc<RocksStore>>;

/// Opens (or creates) the store at `dir`: the adaptor's log half and the database handle.
async fn open(dir: &Path) -> (Log, Arc<rocksdb::DB>) {
    let store = RocksStore::new(dir).await;
    let db = store.state_machine.read().await.db.clone();
    (Adaptor::new(store).0, db)
}

/// Runs the appends of 1 and 64 per call, unsynced and synced, in fresh directories.
pub async fn append_rows(dir: &Path, calls: u64) -> Result<Vec<Row>, Box<dyn Error>> {
    let mut rows = Vec::new();
    for synced in [false, true] {
        for per_call in [1u64, 64] {
            let at = dir.join(format!("rocks-{synced}-{per_call}"));
            let _ = std::fs::remove_dir_all(&at);
            let (mut log, db) = open(&at).await;
            let took = appends(&mut log, calls, per_call, entry, || {
                if synced {
                    db.flush_wal(true)?;
                }
                Ok(())
            })
            .await?;
            let store = if synced {
                "rocksstore-synced"
            } else {
                "rocksstore"
            };
            rows.push(rate(store, per_call, calls, took));
            drop((log, db));
            std::fs::remove_dir_all(&at)?;
        }
    }
    Ok(rows)
}

/// Fills a store with `n` entries (1,024 per append, then one `flush_wal(true)`), closes it,
/// and times a reopen (`RocksStore::new` + `get_log_state`, what a restarting node does
/// first) and one read of the last entry.
pub async fn reopen_rows(dir: &Path, n: u64) -> Result<Vec<Row>, Box<dyn Error>> {
    let at = dir.join("rocks-reopen");
    let _ = std::fs::remove_dir_all(&at);
    {
        let (mut log, db) = open(&at).await;
        let mut next = 0;
        while next < n {
            let end = (next + 1024).min(n);
            log.blocking_append((next..end).map(entry)).await?;
            next = end;
        }
        db.flush_wal(true)?;
    }
    let (opened, read, last, got) = reopen_and_read(|| async { Ok(open(&at).await.0) }).await?;
    let intact = got.log_id == entry(last).log_id
        && matches!(&got.payload, EntryPayload::Normal(RocksRequest::Set { key, .. })
            if *key == format!("k{last:015}"));
    if last + 1 != n || !intact {
        return Err(format!("reopened rocksstore ends at {last}, expected {}", n - 1).into());
    }
    let bytes = dir_bytes(&at)?;
    std::fs::remove_dir_all(&at)?;
    Ok(rows_of_reopen("rocksstore", n, opened, read, bytes))
}

/// The bytes of the files directly in `dir` (RocksDB keeps no subdirectories).
fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut sum = 0;
    for e in std::fs::read_dir(dir)? {
        sum += e?.metadata()?.len();
    }
    Ok(sum)
}
