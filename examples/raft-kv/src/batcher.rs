//! Group commit on the leader: writes that arrive while earlier ones are being replicated go
//! to Raft together, as one entry. openraft 0.9 appends and fsyncs one client write at a
//! time on the leader, so without this every write costs the leader an fsync of its own;
//! with it, an fsync covers every write that queued meanwhile. Each write is still answered
//! only once the entry holding it is committed.

use crate::server::not_leader;
use crate::types::{ApiError, Raft};
use kv::store::KvEvent;
use openraft::error::{ClientWriteError, RaftError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Batches being replicated at once. While all are in flight new writes queue, and the next
/// batch takes every one of them. The leader fsyncs its log about once per entry, so fewer,
/// larger entries are what lifts a durable cluster: with 64 clients on the 2-core machine
/// (`cargo xtask cluster-bench --quick`, busy with other builds),
/// 2 in flight made about 20 writes per leader fsync and 4 in flight about 10 (16 in flight:
/// 3), and 2 gave the durable cluster the most commits/s (1 left the leader's fsync and the
/// replication round trip unoverlapped).
const IN_FLIGHT: usize = 2;
/// The most writes in one entry.
const MAX_WRITES: usize = 1024;
/// The most key and value bytes in one entry (a log frame holds 4 MiB; a single write is
/// at most [`MAX_WRITE_BYTES`]).
const MAX_BATCH_BYTES: usize = 2 << 20;
/// The largest key plus value one write may carry.
pub const MAX_WRITE_BYTES: usize = 1 << 20;

/// The outcome of one write: the index of the entry that committed it.
pub type Outcome = Result<u64, ApiError>;

type Request = (KvEvent, oneshot::Sender<Outcome>);

/// The handle writes are submitted through.
pub struct Batcher {
    tx: mpsc::Sender<Request>,
}

/// Key and value bytes of a write.
pub fn write_bytes(e: &KvEvent) -> usize {
    match e {
        KvEvent::Put { key, value } => key.len() + value.len(),
        KvEvent::Del { key } => key.len(),
    }
}

impl Batcher {
    /// Starts the batching task of `raft`; a batch waits at most `op_timeout` for a majority.
    pub fn start(raft: Raft, op_timeout: Duration) -> Batcher {
        let (tx, rx) = mpsc::channel(MAX_WRITES * IN_FLIGHT);
        tokio::spawn(run(raft, rx, op_timeout));
        Batcher { tx }
    }

    /// Submits one write and waits until it is committed (or failed).
    pub async fn write(&self, event: KvEvent) -> Outcome {
        debug_assert!(write_bytes(&event) <= MAX_WRITE_BYTES);
        let (reply, answer) = oneshot::channel();
        let stopped = || ApiError::Stopped {
            message: "the node is shutting down".to_owned(),
        };
        self.tx.send((event, reply)).await.map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Request>, op_timeout: Duration) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // A slot first, then the writes: while every slot is busy, writes queue up.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut bytes = write_bytes(&first.0);
        let mut batch = vec![first];
        while batch.len() < MAX_WRITES && bytes < MAX_BATCH_BYTES {
            let Ok(next) = rx.try_recv() else { break };
            bytes += write_bytes(&next.0);
            batch.push(next);
            if bytes > MAX_BATCH_BYTES {
                break;
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let (events, replies): (Vec<KvEvent>, Vec<_>) = batch.into_iter().unzip();
            let outcome = commit(&raft, events, op_timeout).await;
            drop(slot);
            for r in replies {
                // A client that went away does not need its answer.
                let _ = r.send(outcome.clone());
            }
        });
    }
}

/// Proposes one batch and waits for it to commit.
async fn commit(raft: &Raft, events: Vec<KvEvent>, op_timeout: Duration) -> Outcome {
    match tokio::time::timeout(op_timeout, raft.client_write(events)).await {
        Err(_) => Err(ApiError::Unavailable {
            message: format!(
                "no majority answered within {} ms; the write may still take effect",
                op_timeout.as_millis()
            ),
        }),
        Ok(Ok(r)) => Ok(r.log_id.index),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => Err(not_leader(f)),
        Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
            Err(ApiError::Conflict {
                message: e.to_string(),
            })
        }
        Ok(Err(RaftError::Fatal(f))) => Err(ApiError::Stopped {
            message: f.to_string(),
        }),
    }
}
