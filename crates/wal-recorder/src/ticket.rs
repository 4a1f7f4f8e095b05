//! [`CommitTicket`]: the second half of a commit, waited on after the store lock is released.

use crate::error::{RecorderError, Result};
use crate::hook::WalMirror;
use crate::latch;
use std::fmt;
use std::sync::Arc;
use wal_log::PoisonLatch;
use wal_log::{Lsn, Wal, WalError};
#[cfg(doc)]
use {
    crate::{RecorderTx, WalRecorder},
    wal_log::SyncPolicy,
};

/// Whether [`WalRecorder::commit`] wrote a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WroteCommit {
    /// Nothing was recorded (a read-only query): the log was not touched at all.
    No,
    /// The query's events were written as one transaction, committed at this LSN.
    Yes(Lsn),
}

impl WroteCommit {
    /// The committing LSN, when something was written.
    #[must_use]
    pub fn lsn(self) -> Option<Lsn> {
        match self {
            WroteCommit::No => None,
            WroteCommit::Yes(lsn) => Some(lsn),
        }
    }

    /// Whether a transaction was written.
    #[must_use]
    pub fn wrote(self) -> bool {
        matches!(self, WroteCommit::Yes(_))
    }
}

/// The second half of a commit made with [`WalRecorder::commit_deferred`] (or
/// [`RecorderTx::commit_deferred`]): the transaction has its place (its LSN) in the log, and
/// the ticket waits until it is acknowledged. Take it under the store lock, release the lock,
/// then wait: concurrent queries share one write and one fsync while they wait (group
/// commit), instead of each holding the lock across its own fsync.
///
/// ```
/// use std::sync::{Arc, Mutex, PoisonError};
/// use wal_recorder::{WalRecorder, WroteCommit};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let (wal, _) = wal_log::Wal::open(dir.path(), wal_log::Options::default())?;
/// let recorder: WalRecorder<(String, i64)> = WalRecorder::new(Arc::new(wal)); // Always
/// let store: Mutex<Vec<(String, i64)>> = Mutex::new(Vec::new());
///
/// let mut store_guard = store.lock().unwrap_or_else(PoisonError::into_inner);
/// let tx = recorder.begin()?;
/// store_guard.push(("x".into(), 1)); // the store mutates...
/// tx.record(("x".into(), 1)); // ...and records the mutation
/// // Queued in the log: no I/O while the lock is held.
/// let ticket = tx.commit_deferred()?;
/// // Other queries may run and commit now.
/// drop(store_guard);
/// // Written and fsynced, the fsync shared with concurrent waiters.
/// let wrote = ticket.wait()?;
///
/// let WroteCommit::Yes(lsn) = wrote else { unreachable!() };
/// assert!(recorder.wal().durable_lsn() >= lsn);
///
/// // A read-only query: nothing to wait for.
/// assert_eq!(recorder.begin()?.commit_deferred()?.wait()?, WroteCommit::No);
/// # Ok(()) }
/// ```
///
/// # What a wait guarantees
///
/// [`CommitTicket::wait`] returns `Ok` once the transaction is acknowledged under the log's
/// sync policy: what [`WalRecorder::commit`] guarantees when it returns.
/// [`CommitTicket::wait_and_flush`] is the deferred [`WalRecorder::commit_and_flush`].
///
/// | policy | after `wait` returns `Ok` | after `wait_and_flush` returns `Ok` |
/// | --- | --- | --- |
/// | [`SyncPolicy::Always`] | durable: an fsync covering it (and every earlier transaction) has completed, led by this waiter or shared with a concurrent one | the same, and the mirror (if any) has persisted |
/// | [`SyncPolicy::Interval`] | written to the OS (already by `commit_deferred`; the wait does no I/O); durable after the next background fsync or flush | durable (an fsync, shared with concurrent waiters), and the mirror has persisted |
/// | [`SyncPolicy::Never`] | written to the OS; durable only after a flush | as under `Interval` |
///
/// Both then check the recorder: if it or its log is poisoned (before or during the wait),
/// they return [`RecorderError::Poisoned`] with the first reason, even when this
/// transaction's fsync succeeded, because the live store may be ahead of the log. A failure
/// this waiter hits itself (its fsync, the mirror) is returned as [`RecorderError::Wal`] or
/// [`RecorderError::Mirror`] and poisons the recorder, as a failed commit does.
///
/// A ticket for a query that recorded nothing ([`WroteCommit::No`]) has nothing to wait
/// for: both waits return `Ok(WroteCommit::No)` at once, with no I/O and no check.
///
/// # Dropping a ticket without waiting
///
/// Undoes nothing and poisons nothing: the transaction keeps its place in the log, and
/// later transactions follow it. It is only never acknowledged, so the host must not report
/// it durable. Under `Always` it stays queued in memory until the log's next flush (a later
/// commit, another ticket's wait, [`WalRecorder::flush`], or the log closing) writes and
/// fsyncs it; a crash before that loses it. Under `Interval` and `Never` it was already
/// written.
///
/// The ticket owns what it needs (it borrows nothing from the recorder) and is
/// `Send + Sync + 'static`: it can be waited on after a lock guard that owns the recorder is
/// dropped, or on another thread. It holds the log open until it is waited on or dropped.
#[must_use = "the commit is acknowledged only once its ticket is waited on; dropping the ticket \
              leaves the transaction unacknowledged until the log's next flush"]
pub struct CommitTicket {
    wal: Arc<Wal>,
    latch: Arc<PoisonLatch>,
    mirror: Option<Arc<dyn WalMirror>>,
    wrote: WroteCommit,
    /// The transaction was only queued: `wait` must write and fsync it.
    queued: bool,
}

impl fmt::Debug for CommitTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommitTicket")
            .field("wrote", &self.wrote)
            .field("queued", &self.queued)
            .finish_non_exhaustive()
    }
}

impl CommitTicket {
    pub(crate) fn new(
        wal: Arc<Wal>,
        latch: Arc<PoisonLatch>,
        mirror: Option<Arc<dyn WalMirror>>,
        wrote: WroteCommit,
        queued: bool,
    ) -> Self {
        CommitTicket {
            wal,
            latch,
            mirror,
            wrote,
            queued,
        }
    }

    /// The committing LSN, or `None` for a query that recorded nothing.
    #[must_use]
    pub fn lsn(&self) -> Option<Lsn> {
        self.wrote.lsn()
    }

    /// Whether the query wrote a transaction (`false`: there is nothing to wait for).
    #[must_use]
    pub fn wrote(&self) -> bool {
        self.wrote.wrote()
    }

    /// Waits until the transaction is acknowledged under the log's sync policy (durable under
    /// [`SyncPolicy::Always`], written under the others; see the table above), then checks
    /// that the recorder is not poisoned. Returns what the commit wrote.
    ///
    /// # Errors
    /// [`RecorderError::Poisoned`] when the recorder or its log is poisoned, with the first
    /// reason; [`RecorderError::Wal`] when this wait's own write or fsync fails (which
    /// poisons). On any error the transaction is not acknowledged.
    pub fn wait(self) -> Result<WroteCommit> {
        self.finish(false)
    }

    /// Waits until the transaction is durable whatever the policy (an fsync, shared with
    /// concurrent waiters), checks that the recorder is not poisoned, then lets the mirror
    /// persist ([`WalMirror::persist`], as [`WalRecorder::flush`] does): the deferred form of
    /// [`WalRecorder::commit_and_flush`]. Returns what the commit wrote.
    ///
    /// # Errors
    /// As [`CommitTicket::wait`]; [`RecorderError::Mirror`] when the mirror fails (which
    /// poisons; the transaction is durable in the log but the mirror may lack it).
    pub fn wait_and_flush(self) -> Result<WroteCommit> {
        self.finish(true)
    }

    fn finish(self, flush: bool) -> Result<WroteCommit> {
        let Some(lsn) = self.wrote.lsn() else {
            return Ok(WroteCommit::No);
        };
        // A poisoned log refuses the wait (`WalError::Poisoned`, latched by `fail`).
        if self.queued || flush {
            self.wal.wait_durable(lsn).map_err(|e| self.fail(e))?;
        }
        // A failure latched before or while this one waited (the host's `poison`, another
        // query's, the background fsync's).
        latch::check(&self.latch, &self.wal)?;
        if flush && let Some(mirror) = &self.mirror {
            mirror.persist(self.wal.dir()).map_err(|e| {
                latch::latch_mirror(&self.latch, &e);
                RecorderError::Mirror(e)
            })?;
        }
        Ok(self.wrote)
    }

    /// Latches a failure of the wait and hands the error back: the log's earlier failure
    /// (another thread's, or the background fsync's) as [`RecorderError::Poisoned`] with the
    /// recorder's first reason, this wait's own failure as [`RecorderError::Wal`].
    fn fail(&self, e: WalError) -> RecorderError {
        latch::latch_wal(&self.latch, &e);
        if matches!(e, WalError::Poisoned { .. })
            && let Err(poisoned) = latch::check_latch(&self.latch)
        {
            return poisoned;
        }
        RecorderError::Wal(e)
    }
}
