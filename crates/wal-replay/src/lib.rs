//! Bring application state back after a crash: snapshots, checkpoints and streaming
//! recovery over the write-ahead log, plus the `walctl` operator tool (feature `cli`).
//!
//! A data directory holds the log in `<root>/log/` and snapshot files in
//! `<root>/snapshots/` ([`DataDir`]).
//!
//! * [`StateMachine`]: your state. It applies one committed transaction's events at an LSN,
//!   writes itself to a snapshot and restores itself from one. Events are decoded with a
//!   [`wal_format::Codec`] (by default [`wal_format::Bincode`]); override
//!   [`StateMachine::apply_transaction`] to see raw payloads.
//! * [`recover`]: chooses the newest valid snapshot (falling back to an older one when the
//!   newest is damaged), then opens the log (repairing a torn tail per
//!   [`wal_log::RecoveryMode`]) and, during the open's verifying scan, applies every committed
//!   transaction after the snapshot's fence, in LSN order, skipping aborted and unfinished
//!   ones, optionally only up to a target LSN (point-in-time): the log is read once. Memory
//!   is bounded: one read buffer, a fixed snapshot buffer and a budget for large
//!   transactions in progress, besides the state itself. The [`RecoveryReport`] says which
//!   snapshot, which LSNs, how many transactions, what was moved aside and how long it took.
//! * [`Durable`]: recover, record and checkpoint in one type, the usual way to run an engine.
//! * [`Engine`] and [`checkpoint::Checkpointer`]: snapshot at the durable LSN, checkpoint
//!   marker, prune to the newest N snapshots (default 2), truncate the log up to the oldest
//!   kept snapshot's fence. A crash at any step leaves a recoverable directory (see
//!   [`checkpoint`]).
//! * Tools, in named modules: [`inspect::replay_read_only`], the same replay without touching
//!   the directory (no lock, no repair), reporting what [`recover`] would do, also a single
//!   read of the log; [`snapshot::SnapshotStore`], the snapshot files themselves (format in
//!   [`snapshot`]); [`install::install_snapshot`], for a follower that truncation passed:
//!   it installs its primary's snapshot into its own data directory, then recovers from it and
//!   follows on from its fence.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::io::{self, Read, Write};
//! use wal_format::Lsn;
//! use wal_replay::{ApplyError, Engine, EngineOptions, RecoverOptions, StateMachine, recover};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! enum Op { Put(String, String), Del(String) }
//!
//! #[derive(Default)]
//! struct Kv(BTreeMap<String, String>);
//!
//! impl StateMachine for Kv {
//!     type Event = Op;
//!     fn apply(&mut self, _lsn: Lsn, events: Vec<Op>) -> Result<(), ApplyError> {
//!         for e in events {
//!             match e {
//!                 Op::Put(k, v) => { self.0.insert(k, v); }
//!                 Op::Del(k) => { self.0.remove(&k); }
//!             }
//!         }
//!         Ok(())
//!     }
//!     fn write_snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
//!         serde_json::to_writer(out, &self.0).map_err(io::Error::other)
//!     }
//!     fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
//!         self.0 = serde_json::from_reader(input).map_err(io::Error::other)?;
//!         Ok(())
//!     }
//! }
//!
//! # fn main() -> Result<(), wal_replay::ReplayError> {
//! let dir = tempfile::tempdir().unwrap();
//! let (mut engine, _) = Engine::open(dir.path(), Kv::default(), EngineOptions::default())?;
//! engine.commit(vec![Op::Put("a".into(), "1".into()), Op::Put("b".into(), "2".into())])?;
//! engine.checkpoint()?; // snapshot, marker, prune, truncate
//! engine.commit(vec![Op::Del("a".into())])?;
//! drop(engine); // or crash
//!
//! let mut kv = Kv::default();
//! let recovered = recover(dir.path(), &mut kv, RecoverOptions::default())?;
//! assert_eq!(kv.0.len(), 1);
//! assert!(recovered.report.snapshot.is_some());
//! assert_eq!(recovered.report.applied, 1);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

/// The repository README's quick start, compiled and run as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

pub mod checkpoint;
mod durable;
pub mod engine;
mod error;
pub mod inspect;
pub mod install;
mod logscan;
mod recover;
pub mod snapshot;
mod state;

pub use durable::{Durable, DurableOptions};
pub use engine::{Engine, EngineOptions};
pub use error::{ReplayError, Result};
pub use recover::{
    DataDir, Progress, RecoverOptions, Recovered, RecoveryReport, RejectedSnapshot, SnapshotUsed,
    recover, recover_with_codec,
};
pub use state::{ApplyError, EventDecodeError, StateMachine};
