//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use wal_format::{Bincode, FrameKind, decode_all};
use wal_log::sim::{CrashImage, DataLoss, DirLoss, OpKind, SimVfs};
use wal_log::{Lsn, Options, SyncPolicy, Wal};

/// The log directory on a `SimVfs`.
pub const DIR: &str = "/db";

/// A small store mutation, as a graph store would fire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ev {
    SetProp { node: u64, key: u32, value: i64 },
    Delete(u64),
    Blob(Vec<u8>),
}

pub fn set(node: u64, value: i64) -> Ev {
    Ev::SetProp {
        node,
        key: 1,
        value,
    }
}

/// Options for a log on `vfs` without the preallocator thread (so I/O counts are exact).
pub fn sim_opts(vfs: &SimVfs, sync: SyncPolicy) -> Options {
    Options::default()
        .vfs(Arc::new(vfs.clone()))
        .sync(sync)
        .preallocate(false)
}

pub fn open_sim(vfs: &SimVfs, sync: SyncPolicy) -> Arc<Wal> {
    let (wal, _) = Wal::open(DIR, sim_opts(vfs, sync)).unwrap();
    Arc::new(wal)
}

/// Every operation counter of `vfs`.
pub fn io_counts(vfs: &SimVfs) -> Vec<(OpKind, u64)> {
    OpKind::ALL.iter().map(|k| (*k, vfs.op_count(*k))).collect()
}

/// Decodes every committed transaction of an open log.
pub fn transactions(wal: &Wal) -> Vec<(Lsn, Vec<Ev>)> {
    wal.read_from(Lsn::ZERO)
        .unwrap()
        .map(|t| {
            let t = t.unwrap();
            assert!(!t.multi, "the recorder writes single-payload transactions");
            (t.lsn, decode_all(&Bincode, &t.body).unwrap())
        })
        .collect()
}

/// Reopens the log in `dir` of `vfs` (which must not be open) and decodes every transaction.
pub fn replay_at(vfs: &SimVfs, dir: &str) -> Vec<Vec<Ev>> {
    let opts = Options::default()
        .vfs(Arc::new(vfs.clone()))
        .preallocate(false);
    let (wal, _) = Wal::open(dir, opts).unwrap();
    transactions(&wal).into_iter().map(|(_, evs)| evs).collect()
}

pub fn replay(vfs: &SimVfs) -> Vec<Vec<Ev>> {
    replay_at(vfs, DIR)
}

/// The log as found after a power loss that keeps only synced data.
pub fn durable_image(vfs: &SimVfs) -> SimVfs {
    vfs.crash(&CrashImage {
        data: DataLoss::DurableOnly,
        dirs: DirLoss::UnsyncedLost,
    })
}

/// Kinds of every valid frame in the log directory, in LSN order.
pub fn frame_kinds(vfs: &SimVfs, dir: &Path) -> Vec<FrameKind> {
    wal_log::inspect::frames(Arc::new(vfs.clone()), dir)
        .unwrap()
        .map(|f| f.unwrap().frame.kind)
        .collect()
}
