//! walrus as openraft's storage: [`LogStore`], a [`RaftLogStorage`](openraft::storage::RaftLogStorage)
//! (v2 API) on one write-ahead log, and [`StateMachineStore`], which makes any
//! [`wal_replay::StateMachine`] a [`RaftStateMachine`](openraft::storage::RaftStateMachine)
//! with snapshots in wal-replay's snapshot files.
#![forbid(unsafe_code)]

/// This crate's README example, compiled and run as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod cache;
mod error;
mod index;
mod log_store;
mod record;
mod state_machine;

pub use error::{RaftStoreError, Result};
pub use log_store::{LogReader, LogStore, LogStoreOptions, RAFT_PAYLOAD_SCHEMA};
pub use state_machine::{RAFT_SNAPSHOT_LOG_ID, SnapshotBuilder, StateMachineStore};
