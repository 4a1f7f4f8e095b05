//! The crate's error, and how it reaches openraft: every failure is a [`StorageError`], which
//! openraft treats as fatal (the node stops): a poisoned log is never retried.

use openraft::{AnyError, ErrorSubject, ErrorVerb, NodeId, StorageError, StorageIOError};
use std::path::PathBuf;
use thiserror::Error;
use wal_log::{Lsn, WalError};

/// What went wrong in a [`crate::LogStore`] or a [`crate::StateMachineStore`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RaftStoreError {
    /// The write-ahead log failed; after a write or fsync error it is poisoned for good
    /// ([`WalError::Poisoned`]) and every later call fails too.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A record of the log starts with a tag this build does not know: the log was written by
    /// something else, or by a newer build. Nothing was changed.
    #[error("the record at LSN {lsn} has tag {tag}, which no Raft record kind has")]
    UnknownRecord {
        /// The transaction holding it.
        lsn: Lsn,
        /// The tag found.
        tag: u8,
    },
    /// A record's bytes do not decode as its kind says.
    #[error("the {kind} record at LSN {lsn} does not decode")]
    Decode {
        /// The transaction holding it.
        lsn: Lsn,
        /// The record kind its tag names.
        kind: &'static str,
        /// The decoder's error.
        #[source]
        source: bincode::error::DecodeError,
    },
    /// A value could not be encoded (a serializer error of the entry or vote type).
    #[error("cannot encode a {kind} record")]
    Encode {
        /// The record kind.
        kind: &'static str,
        /// The encoder's error.
        #[source]
        source: bincode::error::EncodeError,
    },
    /// A transaction's batch of records is malformed.
    #[error("the batch of records at LSN {lsn} is malformed")]
    BadBatch {
        /// The transaction.
        lsn: Lsn,
        /// The format error.
        #[source]
        source: wal_format::FormatError,
    },
    /// The log holds a fragmented transaction, which this store never writes.
    #[error("LSN {lsn} is a fragmented transaction, which no Raft store writes")]
    Fragmented {
        /// Its LSN.
        lsn: Lsn,
    },
    /// The index says an entry is where the log holds another one.
    #[error("entry {index} at LSN {lsn}: {reason}")]
    Misplaced {
        /// The Raft index asked for.
        index: u64,
        /// The transaction read.
        lsn: Lsn,
        /// What was found instead.
        reason: String,
    },
    /// One entry is too large for a frame of the log (4 MiB with its record header).
    #[error("entry {index} encodes to {size} bytes, over the {max} a log frame holds")]
    EntryTooLarge {
        /// Its Raft index.
        index: u64,
        /// Its encoded size.
        size: usize,
        /// The largest size accepted.
        max: usize,
    },
    /// A snapshot file could not be written, read or verified.
    #[error(transparent)]
    Snapshot(#[from] wal_replay::ReplayError),
    /// A snapshot's I/O outside wal-replay's files (staging a received snapshot).
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The state machine refused an entry.
    #[error("applying entry {index}: {reason}")]
    Apply {
        /// The entry's Raft index.
        index: u64,
        /// The state machine's error.
        reason: String,
    },
    /// The store's background notifier stopped before confirming a write (the store is being
    /// dropped).
    #[error("the store closed before the write was confirmed durable")]
    Closed,
}

impl RaftStoreError {
    /// This error as openraft's fatal storage error about `subject`, keeping the whole cause
    /// chain as text (openraft's [`AnyError`]).
    pub fn into_storage<NID: NodeId>(
        self,
        subject: ErrorSubject<NID>,
        verb: ErrorVerb,
    ) -> StorageError<NID> {
        StorageError::IO {
            source: StorageIOError::new(subject, verb, AnyError::new(&self)),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = RaftStoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The cause chain survives the conversion: a poisoned log's first failure is named in
    /// the storage error openraft sees.
    #[test]
    fn the_storage_error_keeps_the_cause() {
        let e = RaftStoreError::Wal(WalError::Io {
            op: "fsync",
            path: "/x/seg".into(),
            source: std::io::Error::other("device gone"),
        });
        let s: StorageError<u64> = e.into_storage(ErrorSubject::Logs, ErrorVerb::Write);
        let text = s.to_string();
        assert!(text.contains("device gone"), "{text}");
    }
}
