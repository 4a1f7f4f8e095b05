//! The seam between a store's mutation events and durable transactions of the write-ahead log.
//!
//! A store fires one event per primitive mutation while a query runs
//! ([`MutationRecorder::record`]); a [`WalRecorder`] buffers the events of the query in memory,
//! encoded with a [`wal_format::Codec`] ([`wal_format::Bincode`] by default, so any `serde`
//! type is an event), and commits them as **one** transaction of a [`wal_log::Wal`]: one frame,
//! one checksum, one write. A read-only query touches the log zero times.
//!
//! * Lifecycle: [`WalRecorder::arm`] → `record`… → [`WalRecorder::commit`] (or
//!   [`WalRecorder::commit_and_flush_if_needed`], the normal durable boundary) or
//!   [`WalRecorder::abort`]. [`WalRecorder::begin`] gives a guard, [`RecorderTx`], that commits
//!   explicitly and aborts on drop or panic. [`WalRecorder::commit_events`] commits events
//!   buffered elsewhere.
//! * Poisoning: any failure of the log, and any violation of the lifecycle (double `arm`,
//!   `commit` without `arm`, `record` outside a query), latches the recorder; from then on every
//!   entry point refuses ([`RecorderError::Poisoned`]) until the process restarts and recovers.
//!   [`WalRecorder::poisoned_reason`] also surfaces a failure the log latched on its own (a
//!   background fsync).
//! * Bounded memory: past [`RecorderOptions::max_buffered_bytes`] a query streams fragments to
//!   the log instead of growing its buffer.
//! * Mirrors: a [`WalMirror`] copies the log elsewhere after each flush; [`DirMirror`] keeps an
//!   archive directory that recovers the log alone.
//!
//! ```
//! use std::sync::Arc;
//! use serde::{Deserialize, Serialize};
//! use wal_log::{Options, Wal};
//! use wal_recorder::{WalRecorder, WroteCommit};
//!
//! #[derive(Serialize, Deserialize, Debug, PartialEq)]
//! enum Mutation {
//!     SetProp { node: u64, key: u32, value: i64 },
//!     DeleteNode(u64),
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let (wal, _report) = Wal::open(dir.path(), Options::default())?;
//! let recorder: WalRecorder<Mutation> = WalRecorder::new(Arc::new(wal));
//!
//! // One query: the store records each mutation it applies.
//! recorder.arm()?;
//! recorder.record(Mutation::SetProp { node: 1, key: 7, value: 42 });
//! recorder.record(Mutation::DeleteNode(2));
//! let WroteCommit::Yes(lsn) = recorder.commit_and_flush_if_needed()? else { unreachable!() };
//!
//! // A read-only query writes nothing.
//! recorder.arm()?;
//! assert_eq!(recorder.commit_and_flush_if_needed()?, WroteCommit::No);
//!
//! // The guard API: commit explicitly, abort on drop or panic.
//! let tx = recorder.begin()?;
//! tx.record(Mutation::DeleteNode(3));
//! tx.commit()?;
//!
//! // Replay: each transaction's body is the concatenation of its encoded events.
//! let txs: Vec<_> = recorder.wal().read_from(wal_log::Lsn::ZERO)?.collect::<Result<_, _>>()?;
//! assert_eq!(txs.len(), 2);
//! assert_eq!(txs[0].lsn, lsn);
//! let events: Vec<Mutation> = wal_format::decode_all(&wal_format::Bincode, &txs[0].body)?;
//! assert_eq!(events, [Mutation::SetProp { node: 1, key: 7, value: 42 }, Mutation::DeleteNode(2)]);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod error;
mod guard;
mod mirror;
mod recorder;

pub use error::{RecorderError, Result};
pub use guard::RecorderTx;
pub use mirror::{DirMirror, WalMirror};
pub use recorder::{MutationRecorder, RecorderOptions, WalRecorder, WroteCommit};
pub use wal_format::{Bincode, Codec, CodecError};
