//! [`RecorderTx`]: a guard over one armed query that cannot be misused.

use crate::error::Result;
use crate::recorder::{MutationRecorder, WalRecorder};
use crate::ticket::CommitTicket;
use crate::ticket::WroteCommit;
use wal_format::{Bincode, Codec};

/// One armed query of a [`WalRecorder`], made by [`WalRecorder::begin`].
///
/// Finish it with one of the commits ([`RecorderTx::commit_deferred`] under a store lock,
/// then wait on the ticket outside it; [`RecorderTx::commit`];
/// [`RecorderTx::commit_and_flush`]) or with [`RecorderTx::abort`]. They mean what the
/// [`WalRecorder`] methods of the same names mean. Dropping it unfinished (forgetting it, an
/// early `?` return, or a panic unwinding through it) aborts the query; if
/// the query had recorded anything the recorder is also poisoned, because the live store then
/// holds mutations that are not in the log and nobody is left to quarantine it.
///
/// The store keeps calling [`crate::MutationRecorder::record`] on the recorder itself while the
/// guard is alive; [`RecorderTx::record`] is the same call for code that holds the guard.
///
/// ```
/// # use std::sync::Arc;
/// # use wal_recorder::{WalRecorder, WroteCommit};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let (wal, _) = wal_log::Wal::open(dir.path(), wal_log::Options::default())?;
/// let recorder: WalRecorder<String> = WalRecorder::new(Arc::new(wal));
/// let tx = recorder.begin()?;
/// tx.record("set x = 1".to_string());
/// assert!(matches!(tx.commit()?, WroteCommit::Yes(_)));
///
/// // A read-only query: nothing is written.
/// assert_eq!(recorder.begin()?.commit()?, WroteCommit::No);
/// # Ok(()) }
/// ```
#[must_use = "dropping the guard aborts the query (and poisons the recorder if it recorded anything)"]
pub struct RecorderTx<'r, E, C = Bincode> {
    rec: &'r WalRecorder<E, C>,
    open: bool,
}

impl<E, C> std::fmt::Debug for RecorderTx<'_, E, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecorderTx")
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}

impl<'r, E, C> RecorderTx<'r, E, C> {
    pub(crate) fn new(rec: &'r WalRecorder<E, C>) -> Self {
        RecorderTx { rec, open: true }
    }

    /// The recorder this query runs on.
    #[must_use]
    pub fn recorder(&self) -> &'r WalRecorder<E, C> {
        self.rec
    }

    /// Commits the query ([`WalRecorder::commit`]): durable on return under
    /// `SyncPolicy::Always`, written under `Interval` and `Never`, where
    /// [`WalRecorder::flush`] is the durability point.
    ///
    /// # Errors
    /// As [`WalRecorder::commit`].
    pub fn commit(mut self) -> Result<WroteCommit> {
        self.open = false;
        self.rec.commit()
    }

    /// Commits the query and returns the ticket to wait on once the store lock is released
    /// ([`WalRecorder::commit_deferred`]): group commit.
    ///
    /// # Errors
    /// As [`WalRecorder::commit_deferred`].
    pub fn commit_deferred(mut self) -> Result<CommitTicket> {
        self.open = false;
        self.rec.commit_deferred()
    }

    /// Commits the query, then flushes when something was written
    /// ([`WalRecorder::commit_and_flush`]): durable on return under every policy.
    ///
    /// # Errors
    /// As [`WalRecorder::commit_and_flush`].
    pub fn commit_and_flush(mut self) -> Result<WroteCommit> {
        self.open = false;
        self.rec.commit_and_flush()
    }

    /// Aborts the query ([`WalRecorder::abort`]). `true` means the live store saw mutations
    /// that will never be in the log: the host must quarantine or roll it back.
    ///
    /// # Errors
    /// As [`WalRecorder::abort`].
    pub fn abort(mut self) -> Result<bool> {
        self.open = false;
        self.rec.abort()
    }
}

impl<E, C: Codec<E>> RecorderTx<'_, E, C> {
    /// Records one event ([`crate::MutationRecorder::record`] on the recorder).
    pub fn record(&self, event: E) {
        MutationRecorder::record(self.rec, event);
    }

    /// Records one event, reporting failures ([`WalRecorder::try_record`]).
    ///
    /// # Errors
    /// As [`WalRecorder::try_record`].
    pub fn try_record(&self, event: &E) -> Result<()> {
        self.rec.try_record(event)
    }
}

impl<E, C> Drop for RecorderTx<'_, E, C> {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        let events = self.rec.recorded_events();
        if let Ok(true) = self.rec.abort() {
            let how = if std::thread::panicking() {
                "unwound by a panic"
            } else {
                "dropped"
            };
            self.rec.poison(format!(
                "a recorder transaction was {how} after recording {events} mutation(s) that are not in the log; \
                 the live store has diverged from the log"
            ));
        }
    }
}
