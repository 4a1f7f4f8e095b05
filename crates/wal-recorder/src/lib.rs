//! The seam between a store's mutation events and durable transactions of the write-ahead log.
//!
//! A store fires one event per primitive mutation while a query runs
//! ([`MutationRecorder::record`]); a [`WalRecorder`] buffers the events of the query in memory,
//! encoded with a [`wal_format::Codec`] ([`wal_format::Bincode`] by default, so any `serde`
//! type is an event), and commits them as **one** transaction of a [`wal_log::Wal`]: one frame,
//! one checksum, one write. A read-only query touches the log zero times.
//!
//! * Lifecycle: [`WalRecorder::arm`] → `record`… → a commit or [`WalRecorder::abort`].
//!   [`WalRecorder::begin`] gives a guard, [`RecorderTx`], that commits explicitly and aborts
//!   on drop or panic. [`WalRecorder::commit_events`] commits events buffered elsewhere.
//! * Commits, the same three on the recorder and on the guard, in one meaning each:
//!   - `commit_deferred()` → [`CommitTicket`], then [`CommitTicket::wait`] after releasing the
//!     store lock: **group commit**, the way a host with concurrent queries commits.
//!     Concurrent waiters share one write and one fsync.
//!   - `commit()`: the same guarantee, waited inside the call (which, under a store lock,
//!     holds the lock across the fsync).
//!   - `commit_and_flush()`: `commit`, then [`WalRecorder::flush`]; the ticket's equivalent
//!     is [`CommitTicket::wait_and_flush`].
//!
//!   "Commit" acknowledges per the log's [`wal_log::SyncPolicy`]: on return (or when the
//!   ticket's wait returns) the transaction is durable under `Always`, and written to the OS
//!   under `Interval` and `Never`, where `flush` (and the `_and_flush` variants) is the
//!   durability point.
//! * Poisoning: any failure of the log, and any violation of the lifecycle (double `arm`,
//!   `commit` without `arm`, `record` outside a query), latches the recorder; from then on every
//!   entry point refuses ([`RecorderError::Poisoned`]) until the process restarts and recovers.
//!   [`WalRecorder::poisoned_reason`] also surfaces a failure the log latched on its own (a
//!   background fsync).
//! * Bounded memory: past [`RecorderOptions::max_buffered_bytes`] a query streams fragments to
//!   the log instead of growing its buffer.
//! * Mirrors ([`mirror`]): a [`WalMirror`](mirror::WalMirror) copies the log elsewhere after
//!   each flush; [`DirMirror`](mirror::DirMirror) keeps an archive directory that recovers the
//!   log alone. Truncation ([`WalRecorder::truncate_up_to`],
//!   [`Truncator`](mirror::Truncator)) waits for the mirror, like a replication slot, so the log stays bounded
//!   while the archive keeps the history; [`WalRecorder::stats`] shows how far behind it is.
//!
//! ```
//! use std::sync::Arc;
//! use serde::{Deserialize, Serialize};
//! use wal_log::{Options, Wal};
//! use std::sync::Mutex;
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
//! let store_lock = Mutex::new(()); // stands for the host's store
//!
//! // One query: the store records each mutation it applies, under its lock, and commits;
//! // the wait for the fsync happens after the lock is released.
//! let store = store_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
//! recorder.arm()?;
//! recorder.record(Mutation::SetProp { node: 1, key: 7, value: 42 });
//! recorder.record(Mutation::DeleteNode(2));
//! let ticket = recorder.commit_deferred()?;
//! drop(store);
//! let WroteCommit::Yes(lsn) = ticket.wait()? else { unreachable!() };
//!
//! // A read-only query writes nothing.
//! recorder.arm()?;
//! assert_eq!(recorder.commit()?, WroteCommit::No);
//!
//! // The guard API: commit explicitly, abort on drop or panic.
//! let tx = recorder.begin()?;
//! tx.record(Mutation::DeleteNode(3));
//! tx.commit_deferred()?.wait()?;
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

mod dir_mirror;
mod error;
mod guard;
mod hook;
mod latch;
mod recorder;
mod stats;
mod ticket;
mod truncator;

pub use error::{RecorderError, Result};
pub use guard::RecorderTx;
pub use recorder::{MutationRecorder, RecorderOptions, WalRecorder};
pub use stats::RecorderStats;
pub use ticket::{CommitTicket, WroteCommit};
pub use wal_format::{Bincode, Codec, CodecError};

pub mod mirror {
    //! Mirrors: hooks that copy the log somewhere else after a flush ([`WalMirror`]), where their
    //! copy ends ([`MirrorPosition`], [`MirrorLag`]), the archive directory mirror ([`DirMirror`])
    //! and the truncation rule that waits for a mirror, for an owner of the log other than the
    //! recorder ([`Truncator`]). An engine without a mirror needs none of this.

    pub use crate::dir_mirror::{DirMirror, DirMirrorStats, MirrorError};
    pub use crate::hook::{MirrorPosition, WalMirror};
    pub use crate::stats::MirrorLag;
    pub use crate::truncator::Truncator;
}
