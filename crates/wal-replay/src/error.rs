use crate::state::ApplyError;
use std::io;
use std::path::PathBuf;
use thiserror::Error;
use wal_format::Lsn;
use wal_log::{Damage, PoisonCause, WalError};

/// Errors of snapshots, checkpoints and recovery. Each variant names what went wrong and
/// where, so an operator can act on it (see `docs/operations.md`).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The log failed: opening, recovering its tail, appending, syncing or truncating. Damage
    /// in the log reaches the caller here as [`WalError::Corrupt`] or [`WalError::TornTail`]
    /// (one [`Damage`] record) whichever entry point found it: the writing recovery, or the
    /// read-only replay, which refuses what recovery would refuse.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A file operation on a snapshot or the data directory failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The data directory does not exist (and creating it was not allowed).
    #[error("data directory {dir} does not exist")]
    NotFound {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory given as a data directory is not one: most often the log directory
    /// itself (the layout `Wal::open(dir)` creates) was passed where its parent, the data
    /// directory holding `log/` and `snapshots/`, belongs. Nothing was read or changed.
    #[error("{dir} is not a data directory: {reason}")]
    NotADataDir {
        /// The directory.
        dir: PathBuf,
        /// What gave it away, and what to pass instead.
        reason: String,
    },
    /// Snapshots exist but the log directory holds no segment: recovering would silently
    /// start a new, empty log under old snapshots. Nothing was changed.
    #[error(
        "{dir} holds snapshots but no log segments; refusing to start a new log (restore the log directory, or move the snapshots away to start empty)"
    )]
    LogMissing {
        /// The log directory.
        dir: PathBuf,
    },
    /// A snapshot file is damaged, incomplete, or belongs to another log.
    #[error("snapshot {path} is unusable: {reason}")]
    BadSnapshot {
        /// The snapshot file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A listed snapshot was gone when it was opened: a live engine's checkpoint pruned it
    /// meanwhile. Read-only tools skip it (the listing they act on is already stale).
    #[error("snapshot {path} was removed while it was being read (pruned by a checkpoint)")]
    SnapshotGone {
        /// The snapshot file.
        path: PathBuf,
    },
    /// The state machine failed to write its snapshot.
    #[error("writing snapshot {path}: {source}")]
    SnapshotWrite {
        /// The temporary snapshot file.
        path: PathBuf,
        /// The state machine's or the file's error.
        source: io::Error,
    },
    /// The state machine failed to restore from a snapshot that verified (returned an error,
    /// or left body bytes unread). The state may be partly restored and must be discarded.
    /// Recovery falls back to an older snapshot instead; it returns this only when it cannot
    /// (the state cannot reset to replay the log from its start, [`crate::StateMachine::reset`]).
    #[error("restoring from snapshot {path}: {source}")]
    Restore {
        /// The snapshot file.
        path: PathBuf,
        /// The state machine's error.
        source: io::Error,
    },
    /// No usable snapshot, and the log no longer starts at its first LSN, so the state
    /// cannot be rebuilt.
    #[error(
        "cannot recover: the log starts at LSN {oldest}, but replay must start at LSN {needed} ({reason})"
    )]
    LogTruncated {
        /// The first LSN replay needs.
        needed: Lsn,
        /// The oldest LSN the log still holds.
        oldest: Lsn,
        /// Which snapshot (or none) led here.
        reason: String,
    },
    /// A fragmented transaction grew beyond the fragment budget during replay.
    #[error(
        "fragmented transaction begun at LSN {stream} holds {held} bytes, over the replay budget of {budget} bytes (raise RecoverOptions::fragment_budget)"
    )]
    FragmentBudget {
        /// Begin LSN of the stream that crossed the budget.
        stream: Lsn,
        /// Bytes that stream would hold.
        held: u64,
        /// The budget.
        budget: u64,
    },
    /// The state machine refused a committed transaction.
    #[error("applying the transaction at LSN {lsn}: {source}")]
    Apply {
        /// The transaction's LSN.
        lsn: Lsn,
        /// The state machine's error.
        source: ApplyError,
    },
    /// A committed transaction's payload did not decode as the state machine's event type
    /// (the default [`crate::StateMachine::apply_transaction`]): names the LSN, the type and
    /// the event schema.
    #[error(transparent)]
    Decode(Box<crate::state::EventDecodeError>),
    /// A segment or snapshot holds events of an event schema the state machine does not read
    /// ([`crate::StateMachine::EVENT_SCHEMA`], [`crate::StateMachine::reads_event_schema`]).
    /// Recovery refuses it before changing anything on disk.
    #[error(
        "{file} holds events of event schema {}, but the state machine's is {} and it reads no other; nothing was changed (an engine that can migrate accepts the older version in StateMachine::reads_event_schema and upgrades it in apply_upgrade/restore_upgrade)",
        crate::state::schema_name(*found),
        crate::state::schema_name(*expected)
    )]
    EventSchema {
        /// The segment or snapshot file.
        file: PathBuf,
        /// The event schema it records.
        found: u32,
        /// The state machine's ([`crate::StateMachine::EVENT_SCHEMA`]).
        expected: u32,
    },
    /// A checkpoint was asked for at an LSN the log has not made durable.
    #[error("checkpoint fence {fence} is beyond the durable end of the log ({durable})")]
    FenceNotDurable {
        /// The fence asked for.
        fence: Lsn,
        /// The durable LSN.
        durable: Lsn,
    },
    /// An earlier failure left the engine's state behind its log; reopen to recover.
    /// [`std::error::Error::source`] is that first failure itself (the log's [`WalError`], or
    /// the state machine's refusal as text); [`ReplayError::io_kind`] tells its I/O error's
    /// kind.
    #[error("engine failed earlier and refuses further work: {reason}")]
    EngineFailed {
        /// The first failure, as text.
        reason: String,
        /// The first failure itself, shared.
        #[source]
        cause: PoisonCause,
    },
    /// The options ask for something this entry point does not do (for example a
    /// point-in-time target for a store that takes writes). Nothing was read or changed.
    #[error("not supported: {what}")]
    Unsupported {
        /// What was asked for, and what to use instead.
        what: String,
    },
    /// The recorder of a [`crate::Durable`] store failed: the log failed, or an earlier
    /// failure poisoned it. Nothing of the transaction is acknowledged; reopen to recover.
    #[error(transparent)]
    Recorder(#[from] wal_recorder::RecorderError),
    /// Encoding an event failed (nothing was written).
    #[error("encoding an event: {0}")]
    Encode(#[from] wal_format::CodecError),
}

impl ReplayError {
    /// The kind of the I/O error behind this one, if an I/O error caused it: this call's own,
    /// the log's ([`WalError::io_kind`]), the recorder's, or, for
    /// [`ReplayError::EngineFailed`], the first failure's (`StorageFull` when the disk was
    /// full).
    #[must_use]
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            ReplayError::Wal(e) => e.io_kind(),
            ReplayError::Recorder(e) => e.io_kind(),
            ReplayError::EngineFailed { cause, .. } => cause.io_kind(),
            ReplayError::Io { source, .. }
            | ReplayError::SnapshotWrite { source, .. }
            | ReplayError::Restore { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = ReplayError> = std::result::Result<T, E>;

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> ReplayError {
    let path = path.into();
    move |source| ReplayError::Io { op, path, source }
}

/// The error of applying the transaction at `lsn`: [`ReplayError::Decode`] when its payload
/// did not decode, else [`ReplayError::Apply`].
pub(crate) fn apply_err(lsn: Lsn, source: ApplyError) -> ReplayError {
    match source.downcast::<crate::state::EventDecodeError>() {
        Ok(d) => ReplayError::Decode(d),
        Err(source) => ReplayError::Apply { lsn, source },
    }
}

/// Damage found in the log (`segment` may be the log directory, for damage that is not in one
/// segment): [`WalError::Corrupt`], as recovery reports it.
pub(crate) fn corrupt(
    segment: impl Into<PathBuf>,
    offset: u64,
    reason: impl Into<String>,
) -> ReplayError {
    ReplayError::Wal(WalError::Corrupt(Damage {
        segment: segment.into(),
        offset,
        reason: reason.into(),
    }))
}
