//! The recorder's error type.

use std::io;
use thiserror::Error;
use wal_format::CodecError;
use wal_log::WalError;

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
    #[error("WAL recorder is poisoned: {reason}")]
    Poisoned {
        /// The first failure, as text.
        reason: String,
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
}

/// Result alias of this crate.
pub type Result<T, E = RecorderError> = std::result::Result<T, E>;
