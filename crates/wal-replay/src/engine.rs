//! [`Engine`]: a state machine with its log, for a state that changes only by applying
//! logged events (log, then apply). For an in-memory state that queries mutate first and then
//! log, see [`crate::Durable`].

use crate::checkpoint::{CheckpointReport, Checkpointer, DEFAULT_KEEP_SNAPSHOTS};
use crate::error::{ReplayError, Result};
use crate::recover::{RecoverOptions, RecoveryReport, recover_to_write};
use crate::state::StateMachine;
use std::path::Path;
use std::sync::Arc;
use wal_format::{Bincode, Codec, Lsn};
use wal_log::{PoisonCause, PoisonLatch, Wal};

/// Options of [`Engine::open`].
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How to recover (the log options and the fragment budget; `target` must be `None`,
    /// refused with [`ReplayError::Unsupported`] otherwise).
    pub recover: RecoverOptions,
    /// Snapshots kept by checkpoints. Default [`DEFAULT_KEEP_SNAPSHOTS`].
    pub keep_snapshots: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            recover: RecoverOptions::default(),
            keep_snapshots: DEFAULT_KEEP_SNAPSHOTS,
        }
    }
}

/// A state machine with its log: recovers on open, commits transactions by logging them and
/// then applying them, and checkpoints.
///
/// Every transaction of the log must go through [`Engine::commit`]; appending to
/// [`Engine::wal`] directly would make the state miss transactions.
///
/// ```
/// # use std::io::{self, Read, Write};
/// # use wal_format::Lsn;
/// # use wal_replay::{ApplyError, Engine, EngineOptions, StateMachine};
/// #[derive(Default)]
/// struct Sum(u64);
/// impl StateMachine for Sum {
///     type Event = u64;
///     fn apply(&mut self, _: Lsn, events: Vec<u64>) -> Result<(), ApplyError> {
///         self.0 += events.iter().sum::<u64>();
///         Ok(())
///     }
///     fn write_snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
///         out.write_all(&self.0.to_le_bytes())
///     }
///     fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
///         let mut b = [0; 8];
///         input.read_exact(&mut b)?;
///         self.0 = u64::from_le_bytes(b);
///         Ok(())
///     }
/// }
/// # fn main() -> Result<(), wal_replay::ReplayError> {
/// let dir = tempfile::tempdir().unwrap();
/// let (mut engine, _) = Engine::open(dir.path(), Sum::default(), EngineOptions::default())?;
/// engine.commit(vec![1, 2])?;
/// engine.checkpoint()?;
/// engine.commit(vec![3])?;
/// drop(engine);
/// let (engine, report) = Engine::open(dir.path(), Sum::default(), EngineOptions::default())?;
/// assert_eq!(engine.state().0, 6);
/// assert_eq!(report.applied, 1); // the rest came from the snapshot
/// # Ok(()) }
/// ```
pub struct Engine<S: StateMachine, C: Codec<S::Event> = Bincode> {
    state: S,
    codec: C,
    checkpointer: Checkpointer,
    applied: Lsn,
    failed: PoisonLatch,
    buf: Vec<u8>,
}

impl<S: StateMachine, C: Codec<S::Event>> std::fmt::Debug for Engine<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("wal", self.checkpointer.wal())
            .field("applied", &self.applied)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<S: StateMachine> Engine<S, Bincode>
where
    Bincode: Codec<S::Event>,
{
    /// Recovers `state` (fresh) from the data directory `root` and opens it for commits.
    ///
    /// # Errors
    /// As [`crate::recover`].
    pub fn open(
        root: impl AsRef<Path>,
        state: S,
        opts: EngineOptions,
    ) -> Result<(Self, RecoveryReport)> {
        Engine::open_with_codec(root, state, Bincode, opts)
    }
}

impl<S: StateMachine, C: Codec<S::Event>> Engine<S, C> {
    /// [`Engine::open`] with a codec of your choice.
    ///
    /// # Errors
    /// As [`crate::recover`].
    pub fn open_with_codec(
        root: impl AsRef<Path>,
        mut state: S,
        codec: C,
        opts: EngineOptions,
    ) -> Result<(Self, RecoveryReport)> {
        let rec = recover_to_write(
            root.as_ref(),
            &mut state,
            &codec,
            opts.recover,
            "an engine that takes commits",
        )?;
        let applied = rec.report.applied_range.map_or(
            rec.report.snapshot.as_ref().map_or(Lsn::ZERO, |s| s.fence),
            |(_, last)| last,
        );
        let wal = Arc::new(rec.wal);
        let engine = Engine {
            state,
            codec,
            checkpointer: Checkpointer::new(root, wal, opts.keep_snapshots),
            applied,
            failed: PoisonLatch::new(),
            buf: Vec::new(),
        };
        Ok((engine, rec.report))
    }

    /// The state.
    #[must_use]
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The log (for statistics, `sync`, readers). Do not append to it directly.
    #[must_use]
    pub fn wal(&self) -> &Arc<Wal> {
        self.checkpointer.wal()
    }

    /// The checkpointer.
    #[must_use]
    pub fn checkpointer(&self) -> &Checkpointer {
        &self.checkpointer
    }

    /// LSN of the last transaction applied to the state.
    #[must_use]
    pub fn applied_lsn(&self) -> Lsn {
        self.applied
    }

    /// Logs `events` as one transaction, then applies them to the state. Returns its LSN.
    /// Durable on return under `SyncPolicy::Always`.
    ///
    /// # Errors
    /// [`ReplayError::Encode`] (nothing written); a log error; [`ReplayError::Apply`] when the
    /// state refuses the transaction after it was logged, after which the engine refuses
    /// everything ([`ReplayError::EngineFailed`]): reopen it, and recovery will meet the same
    /// transaction.
    pub fn commit(&mut self, events: Vec<S::Event>) -> Result<Lsn> {
        self.check_failed()?;
        self.buf.clear();
        for e in &events {
            self.codec.encode(e, &mut self.buf)?;
        }
        let lsn = match self.checkpointer.wal().append(&self.buf) {
            Ok(lsn) => lsn,
            Err(e) => {
                self.failed.poison(PoisonCause::of_wal(&e));
                return Err(e.into());
            }
        };
        if let Err(source) = self.state.apply(lsn, events) {
            let err = ReplayError::Apply { lsn, source };
            // The state machine's error goes to the caller; the latch keeps its text.
            self.failed.poison(PoisonCause::message(err.to_string()));
            return Err(err);
        }
        self.applied = lsn;
        Ok(lsn)
    }

    /// Checkpoints the state at the durable end of the log (after syncing it). See
    /// [`Checkpointer::checkpoint`].
    ///
    /// # Errors
    /// As [`Checkpointer::checkpoint`], and [`ReplayError::EngineFailed`].
    pub fn checkpoint(&mut self) -> Result<CheckpointReport> {
        self.check_failed()?;
        let wal = self.checkpointer.wal();
        wal.sync()?;
        // Every transaction up to the durable LSN went through `commit` and is applied; the
        // frames after the last one (markers, aborts) are not transactions.
        let fence = wal.durable_lsn();
        self.checkpointer.checkpoint(&self.state, fence)
    }

    /// The first failure of a commit, which the engine refuses all work after
    /// ([`ReplayError::EngineFailed`]): the original error, shared. `None` while healthy.
    #[must_use]
    pub fn failure(&self) -> Option<PoisonCause> {
        self.failed.cause()
    }

    fn check_failed(&self) -> Result<()> {
        self.failed
            .check(|reason, cause| ReplayError::EngineFailed { reason, cause })
    }

    /// Takes the state and the log apart.
    #[must_use]
    pub fn into_parts(self) -> (S, Arc<Wal>) {
        (self.state, self.checkpointer.wal().clone())
    }
}
