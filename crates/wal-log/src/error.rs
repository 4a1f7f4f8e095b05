use std::io;
use std::path::PathBuf;
use thiserror::Error;
use wal_format::{FormatError, LogId, Lsn};

use crate::poison::PoisonCause;

/// Where a log is damaged and why: the segment file, the byte offset in it, the reason. The
/// same value wherever damage is reported ([`WalError::Corrupt`], [`WalError::TornTail`], the
/// read-only tools' [`crate::inspect::Verdict`], and through `wal-replay`'s `ReplayError::Wal`),
/// whichever entry point found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The segment file.
    pub segment: PathBuf,
    /// Byte offset in the file.
    pub offset: u64,
    /// Why.
    pub reason: String,
}

impl Damage {
    /// Damage in `segment` at byte `offset`, for `reason`.
    pub fn new(segment: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Damage {
            segment: segment.into(),
            offset,
            reason: reason.into(),
        }
    }
}

/// Errors of the log. Each variant names what went wrong and where, so an operator can act.
///
/// One type for opening and for writing (`docs/decisions/0008-errors.md` says why).
/// [`WalError::io_kind`] tells an I/O failure's kind, also behind [`WalError::Poisoned`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WalError {
    /// An I/O operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Another `Wal`, in this process or another, holds the directory.
    #[error("WAL directory {dir} is already open (locked by another process or handle)")]
    AlreadyOpen {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory does not exist and creating it was not allowed.
    #[error("WAL directory {dir} does not exist")]
    NotFound {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory holds something that is not part of a log.
    #[error("{dir} is not a WAL directory: {reason}")]
    NotAWal {
        /// The directory.
        dir: PathBuf,
        /// What was found.
        reason: String,
    },
    /// A segment was written by a format version this build does not read.
    #[error("segment {segment}: {source}")]
    UnsupportedVersion {
        /// The segment file.
        segment: PathBuf,
        /// The version error.
        source: FormatError,
    },
    /// A segment holds payloads of another schema than the log was opened for
    /// ([`crate::Options::payload_schema`]), and not one of
    /// [`crate::Options::upgrade_payload_schemas`]. Nothing was changed.
    #[error(
        "segment {segment} holds payload schema {}, but the log was opened for schema {}{}; nothing was changed",
        schema_name(*found),
        schema_name(*expected),
        upgrades(accepted)
    )]
    PayloadSchema {
        /// The segment file.
        segment: PathBuf,
        /// The schema its header records.
        found: u32,
        /// The schema the log was opened for.
        expected: u32,
        /// The older schemas the log was opened to accept as well.
        accepted: Vec<u32>,
    },
    /// A segment belongs to another log.
    #[error("segment {segment} belongs to log {found}, but this log is {expected}")]
    ForeignSegment {
        /// The segment file.
        segment: PathBuf,
        /// The log id of the other segments.
        expected: LogId,
        /// The log id found in this one.
        found: LogId,
    },
    /// Segments or LSNs are missing between two segments.
    #[error("gap in the log before {segment}: {reason}")]
    Gap {
        /// The first segment after the gap.
        segment: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// Damage that a crash cannot explain. Nothing on disk was changed.
    #[error(
        "corruption in {} at offset {}: {}",
        .0.segment.display(),
        .0.offset,
        .0.reason
    )]
    Corrupt(Damage),
    /// A torn tail was found under `RecoveryMode::Strict`. Nothing on disk was changed.
    #[error(
        "torn tail in {} at offset {} (strict recovery): {}",
        .0.segment.display(),
        .0.offset,
        .0.reason
    )]
    TornTail(Damage),
    /// A read-only scan of a live directory (`inspect`, `frames`) found that a segment it was
    /// reading had been truncated by the running log and its file reused for a new segment:
    /// what it read is not damage. Scan again.
    #[error(
        "{segment} was truncated and its file reused by the running log while it was read; scan again"
    )]
    Changed {
        /// The segment file that changed.
        segment: PathBuf,
    },
    /// An earlier write or fsync failed; the log refuses all further work. Reopen to recover.
    /// [`std::error::Error::source`] is that first failure (a [`WalError`], usually
    /// [`WalError::Io`]); [`WalError::io_kind`] its I/O error's kind.
    #[error("WAL is poisoned: {reason}")]
    Poisoned {
        /// The first failure, as text.
        reason: String,
        /// The first failure itself.
        #[source]
        cause: PoisonCause,
    },
    /// The [`crate::Wal`] was dropped: a follow reader that has read everything durable gets
    /// this instead of waiting for commits that cannot come.
    #[error("the WAL was closed")]
    Closed,
    /// A transaction is larger than `Options::max_transaction_size`.
    #[error("transaction of {size} bytes exceeds the maximum of {max} bytes")]
    TransactionTooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A reader asked for LSNs that were truncated away.
    #[error("LSN {requested} was truncated; the oldest retained LSN is {oldest}")]
    Truncated {
        /// The LSN asked for.
        requested: Lsn,
        /// The oldest LSN still in the log.
        oldest: Lsn,
    },
    /// A reader was asked to start past the end of the log, where the LSNs between the end and
    /// the start, once assigned, would never be read. Also what a saved
    /// [`crate::FollowPosition`] gets from a log that ends before it (a primary restored from an
    /// older copy, or one that lost its tail).
    #[error(
        "LSN {requested} is past the end of the log, whose next LSN is {next}: a reader starting there would skip LSNs {next} to {}",
        .requested.prev()
    )]
    BeyondEnd {
        /// The LSN asked for.
        requested: Lsn,
        /// The next LSN the log assigns (or, for a reader in another process, the LSN after the
        /// last frame written).
        next: Lsn,
    },
    /// A saved [`crate::FollowPosition`] names another log than the one it was given to: the
    /// primary was replaced by another log (a new data directory, a restore from another
    /// primary). Following it from that LSN would mix two histories.
    #[error(
        "the follow position is in log {position}, but this log is {log}: the primary was replaced; start the follower again from one of its snapshots"
    )]
    OtherLog {
        /// The log the position was saved from.
        position: LogId,
        /// The log it was given to.
        log: LogId,
    },
    /// The frame at a saved [`crate::FollowPosition`]'s LSN is not the one the follower got:
    /// the log went back (a restore or a salvage) and took other commits at the same LSNs,
    /// so the follower holds transactions this log never had.
    #[error(
        "the frame at LSN {lsn} is not the one the follower got (its checksum is {found:#010x}, the position holds {expected:#010x}): this log took other commits at the same LSNs after a restore or salvage, and the follower diverged from it"
    )]
    Diverged {
        /// The position's LSN.
        lsn: Lsn,
        /// The checksum the position holds.
        expected: u32,
        /// The checksum of the frame the log holds there.
        found: u32,
    },
    /// [`crate::Wal::wait_durable`] was asked for an LSN the log has not assigned yet: no
    /// append has returned it, so there is nothing that could become durable.
    #[error(
        "LSN {lsn} has not been assigned (the last assigned LSN is {last}): nothing to wait for"
    )]
    NotAssigned {
        /// The LSN asked for.
        lsn: Lsn,
        /// The last LSN assigned when it was asked.
        last: Lsn,
    },
    /// A positioned read ([`crate::PositionedReader`]) named a transaction that is not durable
    /// yet: readers never see one (serve it from memory, or wait with
    /// [`crate::Wal::wait_durable`] first).
    #[error("LSN {lsn} is not durable yet (the log is durable up to {durable})")]
    NotDurable {
        /// The LSN asked for.
        lsn: Lsn,
        /// The durable LSN when it was asked.
        durable: Lsn,
    },
    /// A format-level error while encoding (a bug in the caller's arguments).
    #[error(transparent)]
    Format(#[from] FormatError),
}

impl WalError {
    /// The kind of the I/O error behind this one, if an I/O error caused it: this call's own
    /// ([`WalError::Io`]) or, for [`WalError::Poisoned`], the first failure's
    /// (`StorageFull` when the disk was full).
    #[must_use]
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        crate::poison::io_kind_in_chain(self)
    }

    /// The first failure, when this is [`WalError::Poisoned`].
    #[must_use]
    pub fn poison_cause(&self) -> Option<&PoisonCause> {
        match self {
            WalError::Poisoned { cause, .. } => Some(cause),
            _ => None,
        }
    }

    /// A copy for a poison latch: every field cloned, an `io::Error` rebuilt from its OS error
    /// code (exact) or else from its kind and message.
    pub(crate) fn duplicate(&self) -> WalError {
        use WalError as E;
        match self {
            E::Io { op, path, source } => E::Io {
                op,
                path: path.clone(),
                source: copy_io(source),
            },
            E::AlreadyOpen { dir } => E::AlreadyOpen { dir: dir.clone() },
            E::NotFound { dir } => E::NotFound { dir: dir.clone() },
            E::NotAWal { dir, reason } => E::NotAWal {
                dir: dir.clone(),
                reason: reason.clone(),
            },
            E::UnsupportedVersion { segment, source } => E::UnsupportedVersion {
                segment: segment.clone(),
                source: source.clone(),
            },
            E::PayloadSchema {
                segment,
                found,
                expected,
                accepted,
            } => E::PayloadSchema {
                segment: segment.clone(),
                found: *found,
                expected: *expected,
                accepted: accepted.clone(),
            },
            E::ForeignSegment {
                segment,
                expected,
                found,
            } => E::ForeignSegment {
                segment: segment.clone(),
                expected: *expected,
                found: *found,
            },
            E::Gap { segment, reason } => E::Gap {
                segment: segment.clone(),
                reason: reason.clone(),
            },
            E::Corrupt(d) => E::Corrupt(d.clone()),
            E::TornTail(d) => E::TornTail(d.clone()),
            E::Changed { segment } => E::Changed {
                segment: segment.clone(),
            },
            E::Poisoned { reason, cause } => E::Poisoned {
                reason: reason.clone(),
                cause: cause.clone(),
            },
            E::Closed => E::Closed,
            E::TransactionTooLarge { size, max } => E::TransactionTooLarge {
                size: *size,
                max: *max,
            },
            E::Truncated { requested, oldest } => E::Truncated {
                requested: *requested,
                oldest: *oldest,
            },
            E::BeyondEnd { requested, next } => E::BeyondEnd {
                requested: *requested,
                next: *next,
            },
            E::OtherLog { position, log } => E::OtherLog {
                position: *position,
                log: *log,
            },
            E::Diverged {
                lsn,
                expected,
                found,
            } => E::Diverged {
                lsn: *lsn,
                expected: *expected,
                found: *found,
            },
            E::NotAssigned { lsn, last } => E::NotAssigned {
                lsn: *lsn,
                last: *last,
            },
            E::NotDurable { lsn, durable } => E::NotDurable {
                lsn: *lsn,
                durable: *durable,
            },
            E::Format(f) => E::Format(f.clone()),
        }
    }
}

/// A copy of an `io::Error`: exact for an OS error, else its kind and message.
fn copy_io(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// Result alias of this crate.
pub type Result<T, E = WalError> = std::result::Result<T, E>;

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> WalError {
    let path = path.into();
    move |source| WalError::Io { op, path, source }
}

/// A payload schema in words: 0 is "not recorded".
pub(crate) fn schema_name(schema: u32) -> String {
    if schema == 0 {
        "0 (not recorded)".into()
    } else {
        schema.to_string()
    }
}

fn upgrades(accepted: &[u32]) -> String {
    if accepted.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = accepted.iter().map(|s| schema_name(*s)).collect();
        format!(" (or, to upgrade, {})", list.join(", "))
    }
}

// Here rather than in `poison`, which then needs nothing of this module.
impl PoisonCause {
    /// The cause of `err` as a latch should keep it: the cause itself when `err` is already
    /// [`WalError::Poisoned`] (an earlier failure, which stays the first), else a copy of
    /// `err` (an `io::Error` copied with its OS error code, or else its kind and message).
    #[must_use]
    pub fn of_wal(err: &WalError) -> Self {
        match err {
            WalError::Poisoned { cause, .. } => cause.clone(),
            other => PoisonCause::new(other.duplicate()),
        }
    }
}
