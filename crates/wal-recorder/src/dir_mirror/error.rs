//! [`MirrorError`]: why a [`super::DirMirror`] could not bring its archive up to date.

use std::io;
use std::path::PathBuf;
use thiserror::Error;
use wal_format::{FormatError, LogId, Lsn, SegmentSeq};

/// Why a [`super::DirMirror`] persist failed.
///
/// [`crate::mirror::WalMirror`] returns [`io::Error`]; a `DirMirror` failure is an `io::Error` wrapping
/// one of these (kind [`io::ErrorKind::InvalidData`] except for [`MirrorError::Io`], which
/// keeps the kind of its cause). Get it back with
/// `err.get_ref().and_then(|e| e.downcast_ref::<MirrorError>())`.
///
/// Every variant but [`MirrorError::Io`] means the archive cannot follow this log from where
/// it is without an operator: retrying fails the same way. The archive itself is left as it
/// was (a sound log up to where it ends).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MirrorError {
    /// An I/O error on the log or the archive.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The archive directory is the log directory itself.
    #[error("the archive {} is the log directory itself", dir.display())]
    ArchiveIsLogDir {
        /// The directory.
        dir: PathBuf,
    },
    /// A segment header (of the log, or of a file in the archive) does not decode.
    #[error("segment {}: {source}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: FormatError,
    },
    /// A segment left the log (truncated, removed) before the archive held all of it: the
    /// archive ends at `archived_through` and can never continue the log. Truncate through
    /// the recorder ([`crate::WalRecorder::truncate_up_to`], [`crate::mirror::Truncator`]), which
    /// waits for the mirror; then start a new archive (move this one aside: it is a sound log
    /// up to `archived_through`).
    #[error(
        "segment {seq} left the log before the archive {} held all of it: the archive ends at LSN {archived_through} and cannot follow the log any more (move it aside and start a new archive; truncate only through the recorder, which waits for the mirror)",
        archive.display()
    )]
    SegmentLost {
        /// The first segment missing from the archive.
        seq: SegmentSeq,
        /// The archive.
        archive: PathBuf,
        /// The last LSN the archive holds.
        archived_through: Lsn,
    },
    /// A segment of the log that has a successor (so it is sealed and durable) does not
    /// verify up to its seal: its frames stop verifying at `offset`. The log is damaged, or
    /// its file was reused under the mirror.
    #[error(
        "segment {} has a successor but its frames stop verifying at byte {offset}, before its seal",
        path.display()
    )]
    SegmentIncomplete {
        /// The log's segment.
        path: PathBuf,
        /// Where its verified frames end.
        offset: u64,
    },
    /// The archive holds segments of another log.
    #[error(
        "the archive segment {} belongs to log {archive_log}, but the log is {log}: use another archive directory",
        path.display()
    )]
    ForeignLog {
        /// The archive's file.
        path: PathBuf,
        /// Its log id.
        archive_log: LogId,
        /// The log's id.
        log: LogId,
    },
    /// The archive holds a newer segment than the log's newest: the log was replaced by an
    /// older copy, or lost segments. Move the archive aside.
    #[error(
        "the archive {} holds segment {archive_seq}, newer than the log's newest ({log_seq}): the log was replaced or lost its end; move the archive aside",
        archive.display()
    )]
    ArchiveAhead {
        /// The archive.
        archive: PathBuf,
        /// Its newest segment.
        archive_seq: SegmentSeq,
        /// The log's newest.
        log_seq: SegmentSeq,
    },
    /// The archive and the log disagree about which LSN comes at `offset` of a segment (the
    /// log's history was rewritten, by a salvage for example, or a frame of the log does not
    /// continue the one before it).
    #[error(
        "segment {} at byte {offset}: the archive expects LSN {expected}, the log has LSN {found}; the archive does not continue this log's history (move it aside)",
        path.display()
    )]
    Diverged {
        /// The log's segment.
        path: PathBuf,
        /// Byte offset (0: the segment header's first LSN).
        offset: u64,
        /// The LSN the archive expects.
        expected: Lsn,
        /// The LSN the log has there.
        found: Lsn,
    },
}

impl MirrorError {
    /// An [`MirrorError::Io`] maker for `map_err`.
    pub(crate) fn io(op: &'static str, path: &std::path::Path) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| MirrorError::Io { op, path, source }
    }
}

impl From<MirrorError> for io::Error {
    fn from(e: MirrorError) -> io::Error {
        let kind = match &e {
            MirrorError::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}
