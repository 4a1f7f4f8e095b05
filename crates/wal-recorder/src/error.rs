//! The recorder's error type.

use std::io;
use thiserror::Error;
use wal_format::CodecError;
use wal_log::{PoisonCause, WalError};

/// Why a recorder call failed.
///
/// Every variant except [`RecorderError::Poisoned`] is returned once, to the call that hit the
/// failure; that call has latched the recorder, and every later call returns
/// [`RecorderError::Poisoned`] with the same reason until the process restarts and recovers.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RecorderError {
    /// The recorder (or its log) failed earlier and refuses all work. Restart the process and
    /// recover from the last snapshot plus the log.
    ///
    /// [`std::error::Error::source`] is that first failure itself (the log's [`WalError`],
    /// the mirror's error, or the reason given as text); [`RecorderError::io_kind`] tells its
    /// I/O error's kind.
    #[error("WAL recorder is poisoned: {reason}")]
    Poisoned {
        /// The first failure, as text.
        reason: String,
        /// The first failure itself, shared.
        #[source]
        cause: PoisonCause,
    },
    /// `commit` (or another call that needs a query) was called without `arm`. The recorder is
    /// now poisoned: the host's lifecycle is broken.
    #[error(
        "no query is armed on the WAL recorder (commit without arm); the recorder is now poisoned"
    )]
    NotArmed,
    /// `arm` was called while a query was already armed. The recorder is now poisoned: two
    /// queries interleaved, so their mutations cannot be told apart.
    #[error(
        "a query is already armed on the WAL recorder (double arm); the recorder is now poisoned"
    )]
    AlreadyArmed,
    /// The log failed (a write, an fsync, a limit). The recorder is now poisoned.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// An event could not be encoded. The recorder is now poisoned: the live store applied a
    /// mutation the log cannot hold.
    #[error("encoding a mutation event: {0}")]
    Codec(#[source] CodecError),
    /// The mirror failed to persist the log. The recorder is now poisoned.
    #[error("WAL mirror: {0}")]
    Mirror(#[source] io::Error),
}

impl RecorderError {
    /// Whether this is [`RecorderError::Poisoned`]: an earlier failure, not this call's.
    #[must_use]
    pub fn is_poisoned(&self) -> bool {
        matches!(self, RecorderError::Poisoned { .. })
    }

    /// The kind of the I/O error behind this one, if an I/O error caused it: the log's
    /// ([`WalError::io_kind`]), the mirror's, or, for [`RecorderError::Poisoned`], the first
    /// failure's (`StorageFull` when the disk was full).
    #[must_use]
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            RecorderError::Poisoned { cause, .. } => cause.io_kind(),
            RecorderError::Wal(e) => e.io_kind(),
            RecorderError::Mirror(e) => Some(e.kind()),
            _ => None,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = RecorderError> = std::result::Result<T, E>;
