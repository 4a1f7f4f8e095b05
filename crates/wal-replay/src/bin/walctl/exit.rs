//! Exit codes, and the one place that maps an error to its exit code ([`exit_code`]).
//!
//! The codes are the runbook's (`docs/operations.md`, "Commands and exit codes"): operators
//! and scripts rely on them, so a new error variant must be placed here on purpose.

use serde::Serialize;
use wal_log::WalError;
use wal_replay::ReplayError;

/// Exit code: success (`verify`: the log is sound).
pub(crate) const EXIT_OK: u8 = 0;
/// Exit code: the newest segment ends in a torn tail.
pub(crate) const EXIT_TORN: u8 = 1;
/// Exit code: corruption a crash cannot explain.
pub(crate) const EXIT_CORRUPT: u8 = 2;
/// Exit code: bad usage, missing directory, or not a data directory.
pub(crate) const EXIT_USAGE: u8 = 3;
/// Exit code: another process holds the log's lock.
pub(crate) const EXIT_LOCKED: u8 = 4;
/// Exit code: an unusable snapshot.
pub(crate) const EXIT_SNAPSHOT: u8 = 5;
/// Exit code: any other failure (I/O errors).
pub(crate) const EXIT_FAILED: u8 = 6;

/// The exit code of a failed command: every error variant is placed explicitly.
///
/// `ReplayError` is `#[non_exhaustive]` and walctl is another crate than the one defining it,
/// so a wildcard arm cannot be avoided; it comes last and maps a variant added later to 6
/// ("any other failure") until it is placed here. `tests::every_known_variant_maps_as_documented`
/// pins each variant listed here to its documented code.
pub(crate) fn exit_code(e: &ReplayError) -> u8 {
    match e {
        ReplayError::Wal(w) => match w {
            WalError::AlreadyOpen { .. } => EXIT_LOCKED,
            WalError::NotFound { .. } | WalError::NotAWal { .. } | WalError::BeyondEnd { .. } => {
                EXIT_USAGE
            }
            WalError::Corrupt { .. }
            | WalError::Gap { .. }
            | WalError::ForeignSegment { .. }
            | WalError::UnsupportedVersion { .. } => EXIT_CORRUPT,
            WalError::TornTail { .. } => EXIT_TORN,
            WalError::Io { .. }
            | WalError::PayloadSchema { .. }
            | WalError::Changed { .. }
            | WalError::Poisoned { .. }
            | WalError::Closed
            | WalError::TransactionTooLarge { .. }
            | WalError::Truncated { .. }
            | WalError::OtherLog { .. }
            | WalError::Diverged { .. }
            | WalError::NotAssigned { .. }
            | WalError::Format { .. } => EXIT_FAILED,
            // `WalError` is to become `#[non_exhaustive]` (issue 17, item 3); until then this
            // arm is unreachable. A variant added later is "any other failure" until placed.
            #[allow(unreachable_patterns)]
            _ => EXIT_FAILED,
        },
        ReplayError::NotFound { .. }
        | ReplayError::LogMissing { .. }
        | ReplayError::NotADataDir { .. } => EXIT_USAGE,
        ReplayError::BadSnapshot { .. }
        | ReplayError::Restore { .. }
        | ReplayError::LogTruncated { .. } => EXIT_SNAPSHOT,
        ReplayError::Io { .. }
        | ReplayError::SnapshotGone { .. }
        | ReplayError::SnapshotWrite { .. }
        | ReplayError::FragmentBudget { .. }
        | ReplayError::Apply { .. }
        | ReplayError::Decode { .. }
        | ReplayError::EventSchema { .. }
        | ReplayError::FenceNotDurable { .. }
        | ReplayError::EngineFailed { .. }
        | ReplayError::Unsupported { .. }
        | ReplayError::Recorder { .. }
        | ReplayError::Encode { .. } => EXIT_FAILED,
        // `ReplayError` is `#[non_exhaustive]` and this binary is another crate: a variant
        // added later is "any other failure" until it is placed above.
        _ => EXIT_FAILED,
    }
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<ReplayError> for Failure {
    fn from(e: ReplayError) -> Failure {
        Failure::new(exit_code(&e), e.to_string())
    }
}

impl From<WalError> for Failure {
    fn from(e: WalError) -> Failure {
        ReplayError::Wal(e).into()
    }
}

/// What `--json` prints for a failure: `{"ok": false, "error": ..., "exit_code": N}`.
#[derive(Serialize)]
pub(crate) struct FailureReport<'a> {
    ok: bool,
    error: &'a str,
    exit_code: u8,
}

impl<'a> From<&'a Failure> for FailureReport<'a> {
    fn from(f: &'a Failure) -> Self {
        FailureReport {
            ok: false,
            error: &f.message,
            exit_code: f.code,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io;
    use std::path::PathBuf;
    use wal_format::{CodecError, FormatError, LogId, Lsn};

    fn p() -> PathBuf {
        PathBuf::from("x")
    }

    fn s() -> String {
        "why".into()
    }

    fn io() -> io::Error {
        io::Error::other("disk")
    }

    /// Damage found by any entry point (the read-only replay reports it as recovery does).
    fn damage() -> wal_log::Damage {
        wal_log::Damage {
            segment: p(),
            offset: 1,
            reason: s(),
        }
    }

    fn format_error() -> FormatError {
        FormatError::HeaderTruncated { len: 1, needed: 2 }
    }

    /// Each `WalError` variant and the code the runbook gives it.
    fn wal_cases() -> Vec<(WalError, u8)> {
        let (id, lsn) = (LogId::from_u128(1), Lsn(1));
        vec![
            (
                WalError::Io {
                    op: "read",
                    path: p(),
                    source: io(),
                },
                6,
            ),
            (WalError::AlreadyOpen { dir: p() }, 4),
            (WalError::NotFound { dir: p() }, 3),
            (
                WalError::NotAWal {
                    dir: p(),
                    reason: s(),
                },
                3,
            ),
            (
                WalError::UnsupportedVersion {
                    segment: p(),
                    source: format_error(),
                },
                2,
            ),
            (
                WalError::PayloadSchema {
                    segment: p(),
                    found: 1,
                    expected: 2,
                    accepted: vec![],
                },
                6,
            ),
            (
                WalError::ForeignSegment {
                    segment: p(),
                    expected: id,
                    found: id,
                },
                2,
            ),
            (
                WalError::Gap {
                    segment: p(),
                    reason: s(),
                },
                2,
            ),
            (WalError::Corrupt(damage()), 2),
            (WalError::TornTail(damage()), 1),
            (WalError::Changed { segment: p() }, 6),
            (
                WalError::Poisoned {
                    reason: s(),
                    cause: wal_log::PoisonCause::message(s()),
                },
                6,
            ),
            (WalError::Closed, 6),
            (WalError::TransactionTooLarge { size: 2, max: 1 }, 6),
            (
                WalError::Truncated {
                    requested: lsn,
                    oldest: lsn,
                },
                6,
            ),
            (
                WalError::BeyondEnd {
                    requested: lsn,
                    next: lsn,
                },
                3,
            ),
            (
                WalError::OtherLog {
                    position: id,
                    log: id,
                },
                6,
            ),
            (
                WalError::Diverged {
                    lsn,
                    expected: 1,
                    found: 2,
                },
                6,
            ),
            (WalError::NotAssigned { lsn, last: lsn }, 6),
            (WalError::Format(format_error()), 6),
        ]
    }

    /// Each `ReplayError` variant (but `Wal`, above, which also carries the damage a read-only
    /// replay finds) and the code the runbook gives it.
    fn replay_cases() -> Vec<(ReplayError, u8)> {
        let lsn = Lsn(1);
        vec![
            (
                ReplayError::Io {
                    op: "read",
                    path: p(),
                    source: io(),
                },
                6,
            ),
            (ReplayError::NotFound { dir: p() }, 3),
            (
                ReplayError::NotADataDir {
                    dir: p(),
                    reason: s(),
                },
                3,
            ),
            (ReplayError::LogMissing { dir: p() }, 3),
            (
                ReplayError::BadSnapshot {
                    path: p(),
                    reason: s(),
                },
                5,
            ),
            (ReplayError::SnapshotGone { path: p() }, 6),
            (
                ReplayError::SnapshotWrite {
                    path: p(),
                    source: io(),
                },
                6,
            ),
            (
                ReplayError::Restore {
                    path: p(),
                    source: io(),
                },
                5,
            ),
            (
                ReplayError::LogTruncated {
                    needed: lsn,
                    oldest: lsn,
                    reason: s(),
                },
                5,
            ),
            (
                ReplayError::FragmentBudget {
                    stream: lsn,
                    held: 2,
                    budget: 1,
                },
                6,
            ),
            (
                ReplayError::Apply {
                    lsn,
                    source: "no".into(),
                },
                6,
            ),
            // `Decode` (6) holds an `EventDecodeError`, which only wal-replay can build.
            (
                ReplayError::EventSchema {
                    file: p(),
                    found: 1,
                    expected: 2,
                },
                6,
            ),
            (
                ReplayError::FenceNotDurable {
                    fence: lsn,
                    durable: lsn,
                },
                6,
            ),
            (
                ReplayError::EngineFailed {
                    reason: s(),
                    cause: wal_log::PoisonCause::message(s()),
                },
                6,
            ),
            (ReplayError::Unsupported { what: s() }, 6),
            (
                ReplayError::Recorder(wal_recorder::RecorderError::NotArmed),
                6,
            ),
            (ReplayError::Encode(CodecError(s())), 6),
        ]
    }

    #[test]
    fn every_known_variant_maps_as_documented() {
        for (e, code) in wal_cases() {
            let name = format!("{e:?}");
            assert_eq!(exit_code(&ReplayError::Wal(e)), code, "{name}");
        }
        for (e, code) in replay_cases() {
            assert_eq!(exit_code(&e), code, "{e:?}");
        }
    }

    #[test]
    fn a_failure_keeps_the_message_of_the_error() {
        let e = WalError::AlreadyOpen { dir: p() };
        let message = e.to_string();
        let f = Failure::from(e);
        assert_eq!((f.code, f.message), (EXIT_LOCKED, message));
    }
}
