//! [`Durable`]: the recorder route in one type. Opening recovers the state (snapshot + log),
//! then wraps it with a [`WalRecorder`] and a [`Checkpointer`] on the same data directory.
//!
//! The state lives behind one lock. A write runs the caller's closure under it: the closure
//! mutates the state and records one event per mutation; the transaction is queued in the log
//! before the lock is released, so the log order is the order the state saw; the wait for
//! durability happens after the lock is released, so concurrent writers share one write and
//! one fsync (group commit). A checkpoint takes the same lock, so its fence is exactly the
//! state it snapshots.

use crate::checkpoint::{CheckpointReport, CheckpointStep, Checkpointer, DEFAULT_KEEP_SNAPSHOTS};
#[cfg(doc)]
use crate::error::ReplayError;
use crate::error::Result;
use crate::recover::{RecoverOptions, RecoveryReport, recover_to_write};
use crate::state::StateMachine;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use wal_format::{Bincode, Codec};
use wal_log::Wal;
use wal_recorder::mirror::WalMirror;
use wal_recorder::{RecorderTx, WalRecorder};

/// Options of [`Durable::open`].
#[derive(Clone, Debug)]
pub struct DurableOptions {
    /// How to recover, and the log's options (sync policy, segment size, ...). `target` must
    /// be `None` (refused with [`ReplayError::Unsupported`]): a store that takes new writes
    /// recovers everything.
    pub recover: RecoverOptions,
    /// Snapshots kept by checkpoints. Default [`DEFAULT_KEEP_SNAPSHOTS`].
    pub keep_snapshots: usize,
    /// Checkpoints stop after this step. Default [`CheckpointStep::Truncate`] (the whole
    /// checkpoint).
    pub checkpoint_until: CheckpointStep,
    /// A mirror of the log ([`wal_recorder::mirror::DirMirror`] keeps an archive directory), attached
    /// to the recorder: it persists at [`WalRecorder::flush`] (writes do not wait for it), and
    /// checkpoints truncate the log only up to what it has durably copied. Default none.
    pub mirror: Option<Arc<dyn WalMirror>>,
}

impl Default for DurableOptions {
    fn default() -> Self {
        DurableOptions {
            recover: RecoverOptions::default(),
            keep_snapshots: DEFAULT_KEEP_SNAPSHOTS,
            checkpoint_until: CheckpointStep::Truncate,
            mirror: None,
        }
    }
}

impl DurableOptions {
    /// Sets [`DurableOptions::recover`]'s log options.
    #[must_use]
    pub fn wal(mut self, wal: wal_log::Options) -> Self {
        self.recover = self.recover.wal(wal);
        self
    }

    /// Sets [`DurableOptions::mirror`].
    #[must_use]
    pub fn mirror(mut self, mirror: Arc<dyn WalMirror>) -> Self {
        self.mirror = Some(mirror);
        self
    }
}

/// A state machine made durable: recovered on open, every write recorded in the log as one
/// atomic transaction, checkpoints that snapshot the state and truncate the log.
///
/// Use it when the state is in memory behind one lock and queries mutate it first and log
/// what they did (apply, then log). For a state that is changed only by applying logged
/// events (log, then apply), [`crate::Engine`] is simpler. For a store with its own locking,
/// assemble the parts yourself: [`crate::recover`], [`WalRecorder`] and
/// [`Checkpointer::checkpoint_locked`].
///
/// ```
/// use wal_replay::{ApplyError, Durable, DurableOptions, StateMachine};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// enum Event { Add(u64) }
///
/// #[derive(Default)]
/// struct Counter(u64);
///
/// impl StateMachine for Counter {
///     type Event = Event;
///     fn apply(&mut self, _lsn: wal_format::Lsn, events: Vec<Event>) -> Result<(), ApplyError> {
///         for Event::Add(n) in events { self.0 += n; }
///         Ok(())
///     }
///     fn write_snapshot(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
///         out.write_all(&self.0.to_le_bytes())
///     }
///     fn restore(&mut self, input: &mut dyn std::io::Read) -> std::io::Result<()> {
///         let mut b = [0; 8];
///         input.read_exact(&mut b)?;
///         self.0 = u64::from_le_bytes(b);
///         Ok(())
///     }
/// }
///
/// # fn main() -> Result<(), wal_replay::ReplayError> {
/// let dir = tempfile::tempdir().unwrap();
/// let store = Durable::open(dir.path(), Counter::default(), DurableOptions::default())?;
/// store.write(|counter, tx| {
///     counter.0 += 5;          // the store mutates...
///     tx.record(Event::Add(5)); // ...and records what it did
/// })?; // durable here; the lock was released before the fsync
/// store.checkpoint()?;
/// drop(store); // or crash
///
/// let again = Durable::open(dir.path(), Counter::default(), DurableOptions::default())?;
/// assert_eq!(again.read(|c| c.0), 5);
/// # Ok(()) }
/// ```
pub struct Durable<S: StateMachine, C: Codec<S::Event> = Bincode> {
    state: Mutex<S>,
    recorder: WalRecorder<S::Event, C>,
    checkpointer: Checkpointer,
    checkpoint_until: CheckpointStep,
    report: RecoveryReport,
}

impl<S: StateMachine, C: Codec<S::Event>> std::fmt::Debug for Durable<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable")
            .field("wal", &self.recorder.wal().dir())
            .finish_non_exhaustive()
    }
}

impl<S: StateMachine> Durable<S, Bincode>
where
    Bincode: Codec<S::Event>,
{
    /// Recovers `state` (pass a fresh, empty one) from the data directory `root` (created
    /// when missing), and opens it for writes.
    ///
    /// # Errors
    /// As [`crate::recover`].
    pub fn open(root: impl AsRef<Path>, state: S, opts: DurableOptions) -> Result<Self> {
        Self::open_with_codec(root, state, Bincode, opts)
    }
}

impl<S: StateMachine, C: Codec<S::Event>> Durable<S, C> {
    /// [`Durable::open`] with an event codec of your choice.
    ///
    /// # Errors
    /// As [`crate::recover`].
    pub fn open_with_codec(
        root: impl AsRef<Path>,
        mut state: S,
        codec: C,
        opts: DurableOptions,
    ) -> Result<Self> {
        let recovered = recover_to_write(
            root.as_ref(),
            &mut state,
            &codec,
            opts.recover,
            "a store that takes writes",
        )?;
        let wal = Arc::new(recovered.wal);
        let mut recorder = WalRecorder::with_codec(wal.clone(), codec);
        if let Some(mirror) = opts.mirror {
            recorder = recorder.with_mirror(mirror);
        }
        // Checkpoints truncate through the recorder: with a mirror, only what it has copied.
        let checkpointer = Checkpointer::new(root, wal, opts.keep_snapshots)
            .truncate_through(recorder.truncator());
        Ok(Durable {
            state: Mutex::new(state),
            recorder,
            checkpointer,
            checkpoint_until: opts.checkpoint_until,
            report: recovered.report,
        })
    }
}

impl<S: StateMachine, C: Codec<S::Event>> Durable<S, C> {
    /// Runs one query as one transaction: `f` mutates the state and records an event for
    /// each mutation through the guard it is given. Returns `f`'s result once the
    /// transaction is acknowledged under the log's sync policy, as
    /// [`wal_recorder::CommitTicket::wait`] says: durable under
    /// [`wal_log::SyncPolicy::Always`], written to the OS under `Interval` (durable at the
    /// next background fsync, or [`WalRecorder::flush`]). A query that records nothing
    /// touches no file.
    ///
    /// The state lock is held while `f` runs and the transaction is queued, and released
    /// before the wait: concurrent writers share one write and one fsync.
    ///
    /// If `f` panics, the recorder is poisoned (the state may hold mutations the log will
    /// never have, recorded or not) and every later write and checkpoint fails: reopen to
    /// recover. `f` runs under the state lock: it must not call back into this store
    /// (`read`, `write`, `checkpoint` would wait for the lock it holds). To refuse an
    /// operation, check before mutating and record nothing: a query that records nothing
    /// writes nothing.
    ///
    /// # Errors
    /// [`crate::ReplayError::Recorder`] when the log or the recorder fails (which poisons it;
    /// nothing of the transaction is acknowledged).
    pub fn write<R>(&self, f: impl FnOnce(&mut S, &RecorderTx<'_, S::Event, C>) -> R) -> Result<R> {
        let (out, ticket) = {
            let mut state = self.lock();
            let tx = self.recorder.begin()?;
            let out = match catch_unwind(AssertUnwindSafe(|| f(&mut state, &tx))) {
                Ok(out) => out,
                Err(panic) => {
                    // The state may hold mutations the log will never have, whether or not
                    // the closure had recorded anything yet: refuse every later write, so
                    // that nothing is built on a state recovery cannot rebuild.
                    self.recorder
                        .poison("a Durable::write closure panicked; reopen to recover");
                    drop(tx);
                    resume_unwind(panic);
                }
            };
            // Under `Always` only queued: no I/O while the state lock is held.
            (out, tx.commit_deferred()?)
        };
        ticket.wait()?;
        Ok(out)
    }

    /// Runs `f` on the state, under its lock.
    pub fn read<R>(&self, f: impl FnOnce(&S) -> R) -> R {
        f(&self.lock())
    }

    /// Checkpoints the state: under its lock, syncs the log and writes a snapshot whose fence
    /// is the last LSN the state holds; then marks the log, prunes old snapshots and
    /// truncates the log ([`Checkpointer::checkpoint_locked`]), with a mirror only up to what
    /// the mirror has durably copied (brought up to date first). Writers wait while the
    /// snapshot is written.
    ///
    /// # Errors
    /// As [`Checkpointer::checkpoint`].
    pub fn checkpoint(&self) -> Result<CheckpointReport> {
        self.recorder.ensure_not_poisoned()?;
        self.checkpointer
            .checkpoint_locked_until(|| self.lock(), self.checkpoint_until)
    }

    /// The recorder (for statistics, [`WalRecorder::flush`] under the `Interval` policy, or
    /// poisoning).
    #[must_use]
    pub fn recorder(&self) -> &WalRecorder<S::Event, C> {
        &self.recorder
    }

    /// The log.
    #[must_use]
    pub fn wal(&self) -> &Arc<Wal> {
        self.recorder.wal()
    }

    /// What recovery did when this store was opened.
    #[must_use]
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// Closes the store and returns the state.
    #[must_use]
    pub fn into_state(self) -> S {
        self.state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock(&self) -> MutexGuard<'_, S> {
        // A panic in a writer's closure poisons the recorder (when it had recorded events),
        // which refuses further writes; reads still see the state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
