//! The recorder's use of the shared poison latch: latching a failure (the first one wins) and
//! refusing once one is latched. The recorder, its commit tickets and its truncator share one
//! latch, and this module, so none of them depends on another for it.

use crate::error::{RecorderError, Result};
use std::io;
use wal_log::{PoisonCause, PoisonLatch, Wal, WalError};

/// Latches `cause` on the recorder's latch (the first one wins; the latch is shared with the
/// [`CommitTicket`](crate::CommitTicket)s and the [`Truncator`](crate::mirror::Truncator) it hands out, so a ticket waited after the recorder
/// was poisoned fails with the same first failure).
pub(crate) fn latch(latch: &PoisonLatch, cause: PoisonCause) {
    if latch.poison(cause) {
        tracing::error!(reason = %latch.reason().unwrap_or_default(), "WAL recorder poisoned");
    }
}

/// Latches a failure of the log (the log's own first failure when `e` is
/// [`WalError::Poisoned`]).
pub(crate) fn latch_wal(l: &PoisonLatch, e: &WalError) {
    latch(l, PoisonCause::of_wal(e));
}

/// Latches a failure of the mirror.
pub(crate) fn latch_mirror(l: &PoisonLatch, e: &io::Error) {
    let copy = match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    };
    latch(l, PoisonCause::new(RecorderError::Mirror(copy)));
}

/// [`RecorderError::Poisoned`] with the latched first failure, if there is one.
pub(crate) fn check_latch(l: &PoisonLatch) -> Result<()> {
    l.check(|reason, cause| RecorderError::Poisoned { reason, cause })
}

/// Refuses when a failure is latched, or when `wal` is poisoned (latching its first failure).
pub(crate) fn check(l: &PoisonLatch, wal: &Wal) -> Result<()> {
    check_latch(l)?;
    if let Some(cause) = wal.poison_cause() {
        latch(l, cause);
        return check_latch(l);
    }
    Ok(())
}
