//! The write-ahead log: segment files, group commit, fsync policies, the directory lock,
//! recovery on open, truncation and readers.
//!
//! `wal-log` knows frames and files, never events: a transaction is an opaque payload.
//!
//! * [`Wal::open`] locks the directory, scans every segment (a chunk at a time into one
//!   reused buffer), cuts a torn tail (moving its bytes aside, never deleting them) and
//!   reports what it found in an [`OpenReport`]. [`Wal::open_visit`] also shows a
//!   [`ScanVisitor`] every frame that scan verifies, so state can be rebuilt during the one
//!   read of the log that recovery needs anyway.
//! * [`Wal::append`], [`Wal::append_batch`] and [`Wal::stream`] add transactions. Under
//!   [`SyncPolicy::Always`] they return only once durable; concurrent appends share one write
//!   and one fsync (group commit), and the fsync runs outside the append lock.
//! * Any write or fsync error poisons the log for good: every later call returns
//!   [`WalError::Poisoned`] with the first failure.
//! * [`Wal::read_from`] and [`Wal::follow`] yield committed, durable transactions.
//! * [`Wal::append_batch_queued`] returns the [`Location`] of the frame a batch takes, and a
//!   [`PositionedReader`] reads it back there; a [`DurableNotifier`] runs callbacks once LSNs
//!   are durable (one thread per log).
//! * Every file operation goes through [`Vfs`]; [`StdVfs`] is the real file system and
//!   `SimVfs` (feature `sim`) a deterministic simulator with crash images and fault injection;
//!   `HookedVfs` (same feature) wraps either with a hook that sees, and may fail, every call.
//!
//! ```
//! use wal_log::{Options, SyncPolicy, Wal};
//! # fn main() -> Result<(), wal_log::WalError> {
//! let dir = tempfile::tempdir().unwrap();
//! let (wal, _) = Wal::open(dir.path(), Options::default())?;
//! wal.append(b"a")?;
//! wal.append_batch(&[&b"b"[..], b"c"])?; // atomic: both or neither
//! drop(wal);
//! let (wal, report) = Wal::open(dir.path(), Options::default().sync(SyncPolicy::Always))?;
//! assert_eq!(report.moved_aside.len(), 0);
//! let n: usize = wal.read_from(wal_format::Lsn::ZERO)?.map(|t| t.unwrap().records().count()).sum();
//! assert_eq!(n, 3);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

/// This crate's README example, compiled and run as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod assembly;
mod error;
pub mod inspect;
pub mod layout;
mod notify;
mod open;
mod open_report;
mod options;
mod past_damage;
mod plan;
mod poison;
mod position;
mod progress;
mod published;
mod read_at;
mod reader;
mod recovery_scan;
mod segment;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
mod skip;
mod stream;
mod streams;
mod tail;
pub mod vfs;
mod visit;
mod wal;

pub use assembly::Transaction;
pub use error::{Damage, Result, WalError};
pub use notify::{Durability, DurableNotifier};
pub use open_report::OpenReport;
pub use options::{Options, RecoveryMode, SyncPolicy};
pub use plan::{Cut, MovedAside, RecoveryPlan};
pub use poison::{PoisonCause, PoisonLatch};
pub use position::{FollowPosition, PositionError};
pub use progress::Progress;
pub use read_at::{Location, PositionedReader};
pub use reader::TxReader;
pub use segment::SegmentInfo;
pub use stream::StreamWriter;
pub use tail::{TailOptions, TailReader};
pub use vfs::{OpenMode, StdVfs, Vfs, VfsFile, VfsLock};
pub use visit::{ScanVisitor, VisitError};
#[cfg(feature = "gap-trace")]
pub use wal::{GapCycle, GapReport};
pub use wal::{Stats, Wal};
pub use wal_format::{LogId, Lsn};
