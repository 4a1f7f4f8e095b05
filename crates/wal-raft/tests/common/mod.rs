//! What the tests share: a type config, a small key-value state machine, and stores opened
//! on real directories or on a simulated file system.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, Cursor, Read, Write};
use std::path::Path;
use std::sync::{Arc, mpsc};
use wal_format::Lsn;
use wal_log::{Options, Vfs};
use wal_raft::{LogStore, LogStoreOptions, RaftStoreError, StateMachineStore};
use wal_replay::{ApplyError, StateMachine};

/// A write to the key-value state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Put(String, String),
    Del(String),
}

openraft::declare_raft_types!(
    pub Cfg:
        D = Op,
        R = (),
);

/// A tiny ordered key-value state.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Kv {
    pub map: BTreeMap<String, String>,
}

impl StateMachine for Kv {
    type Event = Op;

    fn apply(&mut self, _lsn: Lsn, events: Vec<Op>) -> Result<(), ApplyError> {
        for e in events {
            match e {
                Op::Put(k, v) => {
                    self.map.insert(k, v);
                }
                Op::Del(k) => {
                    self.map.remove(&k);
                }
            }
        }
        Ok(())
    }

    fn write_snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        let b = bincode::serde::encode_to_vec(&self.map, bincode::config::standard())
            .map_err(io::Error::other)?;
        out.write_all(&(b.len() as u64).to_le_bytes())?;
        out.write_all(&b)
    }

    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        let mut len = [0u8; 8];
        input.read_exact(&mut len)?;
        let mut b = vec![0u8; u64::from_le_bytes(len) as usize];
        input.read_exact(&mut b)?;
        self.map = bincode::serde::decode_from_slice(&b, bincode::config::standard())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
            .0;
        Ok(())
    }
}

/// Small segments, so that tests cross rotations and purges remove files.
pub fn wal_opts(vfs: Arc<dyn Vfs>) -> Options {
    Options::default()
        .segment_size(16 << 10)
        .preallocate(false)
        .vfs(vfs)
}

pub fn try_open_log(dir: &Path, vfs: Arc<dyn Vfs>) -> Result<LogStore<Cfg>, RaftStoreError> {
    let opts = LogStoreOptions {
        wal: wal_opts(vfs),
        ..LogStoreOptions::default()
    };
    Ok(LogStore::open(dir, opts)?.0)
}

pub fn open_log(dir: &Path, vfs: Arc<dyn Vfs>) -> LogStore<Cfg> {
    try_open_log(dir, vfs).unwrap()
}

pub fn open_sm(dir: &Path, vfs: Arc<dyn Vfs>) -> StateMachineStore<Cfg, Kv> {
    StateMachineStore::open(dir, Kv::default(), vfs).unwrap()
}

pub fn id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

/// The entry the durability tests write for `log_id`.
pub fn entry(log_id: LogId<u64>) -> Entry<Cfg> {
    Entry {
        log_id,
        payload: EntryPayload::Normal(Op::Put(format!("k{}", log_id.index), "v".repeat(120))),
    }
}

pub fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// Appends the [`entry`] of each of `ids` and waits for the durability callback; `Err` when
/// the append or the callback reports a failure.
pub fn try_append_durable(
    store: &LogStore<Cfg>,
    ids: impl IntoIterator<Item = LogId<u64>>,
) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    store
        .append_with(ids.into_iter().map(entry), move |r| {
            let _ = tx.send(r.map_err(|e| e.to_string()));
        })
        .map_err(|e| e.to_string())?;
    rx.recv().map_err(|e| e.to_string())?
}

/// [`try_append_durable`], which must succeed.
pub fn append_durable(store: &LogStore<Cfg>, ids: impl IntoIterator<Item = LogId<u64>>) {
    try_append_durable(store, ids).unwrap();
}

/// A copy of `vfs` holding only what was made durable: the base of a test that cuts the
/// power again and again from one state.
pub fn durable_copy(vfs: &wal_log::sim::SimVfs) -> wal_log::sim::SimVfs {
    vfs.crash(&wal_log::sim::CrashImage {
        data: wal_log::sim::DataLoss::DurableOnly,
        dirs: wal_log::sim::DirLoss::UnsyncedLost,
    })
}
