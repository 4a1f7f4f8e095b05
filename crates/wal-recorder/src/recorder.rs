//! [`WalRecorder`]: buffers one query's mutation events and commits them as one transaction.

use crate::error::{RecorderError, Result};
use crate::guard::RecorderTx;
use crate::hook::WalMirror;
use crate::latch::{check, latch, latch_mirror, latch_wal};
use crate::stats::{MirrorLag, RecorderStats};
use crate::ticket::CommitTicket;
use crate::ticket::WroteCommit;
use crate::truncator::Truncator;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};
use wal_format::frame::MAX_FRAME_PAYLOAD;
use wal_format::{Bincode, Codec, CodecError};
use wal_log::{Lsn, PoisonCause, PoisonLatch, StreamWriter, SyncPolicy, Wal, WalError};

/// What a store calls while a query mutates it: one [`MutationRecorder::record`] per primitive
/// mutation, after the mutation has been applied to the live store.
///
/// The store does not learn about durability: `record` cannot fail. A recorder that cannot
/// keep an event latches a failure instead, which the host (and the store, if it wants) reads
/// with [`MutationRecorder::poisoned`].
pub trait MutationRecorder<E>: Send + Sync {
    /// Records one mutation event of the running query.
    fn record(&self, event: E);

    /// Why the recorder refuses work, if it does: the live store may then be ahead of the
    /// durable log and must not serve further queries until the process restarts and recovers.
    fn poisoned(&self) -> Option<String>;
}

impl<E, R: MutationRecorder<E> + ?Sized> MutationRecorder<E> for &R {
    fn record(&self, event: E) {
        (**self).record(event);
    }

    fn poisoned(&self) -> Option<String> {
        (**self).poisoned()
    }
}

impl<E, R: MutationRecorder<E> + ?Sized> MutationRecorder<E> for Arc<R> {
    fn record(&self, event: E) {
        (**self).record(event);
    }

    fn poisoned(&self) -> Option<String> {
        (**self).poisoned()
    }
}

impl<E, R: MutationRecorder<E> + ?Sized> MutationRecorder<E> for Box<R> {
    fn record(&self, event: E) {
        (**self).record(event);
    }

    fn poisoned(&self) -> Option<String> {
        (**self).poisoned()
    }
}

/// Options of a [`WalRecorder`]: start from [`RecorderOptions::default`] and use the setters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecorderOptions {
    /// The most encoded event bytes one query keeps in memory. Past it the recorder opens a
    /// fragment stream on the log and writes the buffer into it, so a huge query costs bounded
    /// memory: at most this many bytes here plus about one frame
    /// ([`wal_format::frame::MAX_FRAME_PAYLOAD`]) inside the log's stream writer. Fragments reach the
    /// log before the query commits; an abort then writes an abort frame, and replay skips
    /// them. Default [`wal_format::frame::MAX_FRAME_PAYLOAD`] (4 MiB): every transaction that fits
    /// one frame is buffered and written as one frame.
    pub max_buffered_bytes: usize,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        RecorderOptions {
            max_buffered_bytes: MAX_FRAME_PAYLOAD,
        }
    }
}

impl RecorderOptions {
    /// Sets [`RecorderOptions::max_buffered_bytes`].
    #[must_use]
    pub fn max_buffered_bytes(mut self, bytes: usize) -> Self {
        self.max_buffered_bytes = bytes;
        self
    }
}

/// A query buffer that grew past this is given back to the allocator after the query.
const RETAINED_CAPACITY: usize = 64 << 10;

/// Everything that belongs to the armed query.
#[derive(Default)]
struct State {
    /// Between `arm` and the matching `commit` / `abort`.
    armed: bool,
    /// Encoded events of the query not yet handed to the log.
    buf: Vec<u8>,
    /// Events recorded by the query (buffered or already streamed).
    events: u64,
    /// The fragment stream, once the query outgrew `max_buffered_bytes`.
    stream: Option<StreamWriter>,
}

impl State {
    /// Forgets the query. Dropping an open stream closes it with an abort frame (best effort).
    fn reset(&mut self) {
        self.armed = false;
        self.events = 0;
        self.clear_buf();
        self.stream = None;
    }

    fn clear_buf(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > RETAINED_CAPACITY {
            self.buf = Vec::new();
        }
    }
}

/// Records a store's mutation events into a [`Wal`]: the events of one query are buffered in
/// memory (encoded with `C`, [`Bincode`] by default) and committed as **one** transaction.
///
/// # Lifecycle
///
/// A host runs each query under its store lock:
///
/// 1. [`arm`](WalRecorder::arm): enter the query. No I/O.
/// 2. The store mutates and calls [`record`](MutationRecorder::record) once per mutation: one
///    mutex, one encode into the query buffer; no framing, no log lock.
/// 3. On success [`commit_deferred`](WalRecorder::commit_deferred), then, once the store
///    lock is released, [`CommitTicket::wait`] (group commit: concurrent queries share one
///    fsync); or [`commit`](WalRecorder::commit), which waits inside the call, or
///    [`commit_and_flush`](WalRecorder::commit_and_flush), which also flushes. A query that
///    recorded nothing returns [`WroteCommit::No`] without touching the log; otherwise the
///    buffer is written as one `Tx` frame (fragments only when larger than a frame).
/// 4. On failure or unwind [`abort`](WalRecorder::abort): the buffer is dropped; `true` means
///    the live store saw mutations that will never be in the log, so it must be quarantined
///    (or rolled back by the host).
///
/// [`begin`](WalRecorder::begin) wraps these steps in a guard that cannot be misused.
///
/// # Poisoning
///
/// Any error of the log (and a lifecycle violation: double `arm`, `commit` without `arm`,
/// `record` outside a query, an event the codec cannot encode) latches the recorder: from then
/// on every entry point returns [`RecorderError::Poisoned`] and `record` is a no-op, until the
/// process restarts and recovers from the last snapshot plus the log. A failure latched by the
/// log itself (a background fsync of [`SyncPolicy::Interval`]) is surfaced the same way.
///
/// The recorder has one armed-query state: the host serializes queries (as it does with its
/// store lock). It is `Send + Sync`; share it with `Arc`.
pub struct WalRecorder<E, C = Bincode> {
    wal: Arc<Wal>,
    codec: C,
    mirror: Option<Arc<dyn WalMirror>>,
    opts: RecorderOptions,
    state: Mutex<State>,
    latch: Arc<PoisonLatch>,
    _events: PhantomData<fn(E)>,
}

impl<E, C> fmt::Debug for WalRecorder<E, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalRecorder")
            .field("wal", &self.wal)
            .field("mirror", &self.mirror)
            .field("opts", &self.opts)
            .field("armed", &self.is_armed())
            .field("poisoned", &self.poisoned_reason())
            .finish_non_exhaustive()
    }
}

impl<E> WalRecorder<E, Bincode>
where
    Bincode: Codec<E>,
{
    /// A recorder over `wal` encoding events with [`Bincode`] (any `serde` type), with default
    /// options and no mirror.
    #[must_use]
    pub fn new(wal: Arc<Wal>) -> Self {
        WalRecorder::with_codec(wal, Bincode)
    }
}

impl<E, C> WalRecorder<E, C> {
    /// A recorder over `wal` encoding events with `codec`, with default options and no mirror.
    #[must_use]
    pub fn with_codec(wal: Arc<Wal>, codec: C) -> Self {
        WalRecorder {
            wal,
            codec,
            mirror: None,
            opts: RecorderOptions::default(),
            state: Mutex::new(State::default()),
            latch: Arc::default(),
            _events: PhantomData,
        }
    }

    /// Attaches a mirror: [`WalMirror::persist`] runs after every [`WalRecorder::flush`] (and
    /// so after [`WalRecorder::commit_and_flush`] and [`CommitTicket::wait_and_flush`]),
    /// [`WalMirror::persist_force`] after every [`WalRecorder::force_fsync`], and
    /// [`WalRecorder::truncate_up_to`] removes only what the mirror has durably copied
    /// ([`WalMirror::position`]; everything is kept when it reports none). Truncate the log
    /// only through the recorder then ([`WalRecorder::truncator`] hands wal-replay's
    /// `Checkpointer` the same rule): a segment removed before the mirror copied it whole
    /// cannot reach the archive ([`crate::mirror::DirMirror`] then fails with
    /// [`crate::mirror::MirrorError::SegmentLost`]).
    #[must_use]
    pub fn with_mirror(mut self, mirror: Arc<dyn WalMirror>) -> Self {
        self.mirror = Some(mirror);
        self
    }

    /// Sets the options.
    #[must_use]
    pub fn with_options(mut self, opts: RecorderOptions) -> Self {
        self.opts = opts;
        self
    }

    /// The log. Admin paths may use it directly (reads, statistics); appending to it outside the
    /// recorder is allowed but bypasses the recorder's lifecycle.
    #[must_use]
    pub fn wal(&self) -> &Arc<Wal> {
        &self.wal
    }

    /// Whether a query is armed.
    #[must_use]
    pub fn is_armed(&self) -> bool {
        self.state().armed
    }

    /// Events recorded by the armed query so far (0 when none is armed).
    #[must_use]
    pub fn recorded_events(&self) -> u64 {
        self.state().events
    }

    /// Encoded bytes of the armed query held in the recorder's buffer (not yet handed to the
    /// log).
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        self.state().buf.len()
    }

    /// Whether the armed query outgrew [`RecorderOptions::max_buffered_bytes`] and is being
    /// streamed to the log as fragments.
    #[must_use]
    pub fn is_streaming(&self) -> bool {
        self.state().stream.is_some()
    }

    /// Locks the query state. A panic while it was held (inside the codec, the only foreign
    /// code that runs under it) may have left a partial encoding in the buffer: that latches
    /// the recorder and drops the query.
    fn state(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(st) => st,
            Err(poisoned) => {
                let mut st = poisoned.into_inner();
                self.state.clear_poison();
                self.latch_locked(
                    &mut st,
                    PoisonCause::message(
                        "a panic occurred inside the recorder while recording an event",
                    ),
                );
                st
            }
        }
    }

    /// Latches a panic that happened while the query state was locked, if one did.
    fn settle(&self) {
        if self.state.is_poisoned() {
            drop(self.state());
        }
    }

    /// Latches `cause` (the first one wins) and forgets the armed query.
    fn latch_locked(&self, st: &mut State, cause: PoisonCause) {
        latch(&self.latch, cause);
        st.reset();
    }

    /// Latches a log failure while holding the state and hands the error back.
    fn fail_locked(&self, st: &mut State, e: WalError) -> RecorderError {
        latch_wal(&self.latch, &e);
        st.reset();
        RecorderError::Wal(e)
    }

    /// Latches a log failure (taking the state lock) and hands the error back.
    fn fail(&self, e: WalError) -> RecorderError {
        let mut st = self.state();
        self.fail_locked(&mut st, e)
    }

    /// Refuses when the recorder or its log is poisoned.
    fn check(&self) -> Result<()> {
        self.settle();
        check(&self.latch, &self.wal)
    }

    /// [`Self::check`] with the state held: a refusal also forgets the armed query.
    fn check_locked(&self, st: &mut State) -> Result<()> {
        self.check().inspect_err(|_| st.reset())
    }

    /// Enters a query. Does no I/O: a query that records nothing never touches the log.
    ///
    /// # Errors
    /// [`RecorderError::Poisoned`]; [`RecorderError::AlreadyArmed`] when a query is already
    /// armed, which poisons the recorder (two queries interleaved).
    pub fn arm(&self) -> Result<()> {
        let mut st = self.state();
        self.check_locked(&mut st)?;
        if st.armed {
            self.latch_locked(
                &mut st,
                PoisonCause::message("WalRecorder::arm called while a query was already armed"),
            );
            return Err(RecorderError::AlreadyArmed);
        }
        st.armed = true;
        st.events = 0;
        st.clear_buf();
        Ok(())
    }

    /// Arms a query and returns a guard over it: [`RecorderTx::commit`],
    /// [`RecorderTx::commit_deferred`] and [`RecorderTx::commit_and_flush`] commit as the
    /// recorder's methods of the same names do, [`RecorderTx::abort`] aborts, and dropping the
    /// guard (or unwinding through it) aborts, poisoning the recorder if the query had
    /// recorded anything, since no one is left to quarantine the live store.
    ///
    /// # Errors
    /// As [`WalRecorder::arm`].
    pub fn begin(&self) -> Result<RecorderTx<'_, E, C>> {
        self.arm()?;
        Ok(RecorderTx::new(self))
    }

    /// Ends the armed query and writes its events as one transaction: one `Tx` frame (one
    /// checksum, one write) when they fit one frame, a fragment stream otherwise. Under
    /// [`SyncPolicy::Always`] the transaction is durable on return; under the other policies it
    /// is written to the OS and [`WalRecorder::flush`] is the durability point.
    ///
    /// Under `Always` the fsync happens inside this call, so a host that calls it under its
    /// store lock holds the lock across the fsync and its queries cannot share one: use
    /// [`WalRecorder::commit_deferred`] and wait on the ticket after releasing the lock.
    ///
    /// Returns [`WroteCommit::No`] without touching the log when nothing was recorded.
    ///
    /// # Errors
    /// [`RecorderError::Poisoned`]; [`RecorderError::NotArmed`] without [`WalRecorder::arm`]
    /// (which poisons); [`RecorderError::Wal`] when the log fails (which poisons; nothing of the
    /// transaction is acknowledged).
    pub fn commit(&self) -> Result<WroteCommit> {
        self.commit_inner(false)
    }

    /// Ends the armed query as [`WalRecorder::commit`] does, but hands the wait for the fsync
    /// to the returned [`CommitTicket`]: the host calls this under its store lock, releases
    /// the lock, then calls [`CommitTicket::wait`]. This is group commit: concurrent queries
    /// commit in the order the store applied them and share one write and one fsync while
    /// they wait, instead of each holding the lock across its own.
    ///
    /// * Under [`SyncPolicy::Always`] the transaction is only queued in the log (a copy and a
    ///   checksum, no I/O); the ticket's wait writes and fsyncs it, or finds that a
    ///   concurrent waiter's fsync already covered it.
    /// * Under [`SyncPolicy::Interval`] and [`SyncPolicy::Never`] it is written to the OS here,
    ///   as `commit` writes it (one write, no fsync); the ticket has no I/O left to wait for.
    /// * A query that outgrew [`RecorderOptions::max_buffered_bytes`] has streamed fragments:
    ///   it is committed here as `commit` commits it (durable on return under `Always`).
    /// * A query that recorded nothing touches no log and gets a ticket for
    ///   [`WroteCommit::No`].
    ///
    /// Nothing is acknowledged until the ticket's wait returns `Ok`.
    ///
    /// # Errors
    /// As [`WalRecorder::commit`].
    pub fn commit_deferred(&self) -> Result<CommitTicket> {
        let queued = self.wal.options().sync == SyncPolicy::Always;
        let wrote = self.commit_inner(queued)?;
        Ok(CommitTicket::new(
            self.wal.clone(),
            self.latch.clone(),
            self.mirror.clone(),
            wrote,
            queued,
        ))
    }

    /// The commit of every variant: `queued` hands the payload to [`Wal::append_queued`] (no
    /// I/O; `commit_deferred` under `Always`), else to [`Wal::append`]. A transaction that
    /// streamed fragments is committed by its stream either way.
    fn commit_inner(&self, queued: bool) -> Result<WroteCommit> {
        let mut st = self.state();
        self.check_locked(&mut st)?;
        if !st.armed {
            self.latch_locked(
                &mut st,
                PoisonCause::message("WalRecorder::commit called without an armed query"),
            );
            return Err(RecorderError::NotArmed);
        }
        st.armed = false;
        let events = std::mem::take(&mut st.events);
        let written = if let Some(mut stream) = st.stream.take() {
            stream.write(&st.buf).and_then(|()| stream.commit())
        } else if events == 0 {
            return Ok(WroteCommit::No);
        } else if queued {
            self.wal.append_queued(&st.buf)
        } else {
            self.wal.append(&st.buf)
        };
        st.clear_buf();
        match written {
            Ok(lsn) => Ok(WroteCommit::Yes(lsn)),
            Err(e) => Err(self.fail_locked(&mut st, e)),
        }
    }

    /// [`WalRecorder::commit`], then [`WalRecorder::flush`] only when something was written:
    /// durable on return under every policy, and the mirror (if any) has persisted. A
    /// read-only query costs no I/O at all. The fsync happens inside this call;
    /// [`WalRecorder::commit_deferred`] followed by [`CommitTicket::wait_and_flush`] gives the
    /// same guarantee with the wait outside the host's lock.
    ///
    /// # Errors
    /// As [`WalRecorder::commit`] and [`WalRecorder::flush`].
    pub fn commit_and_flush(&self) -> Result<WroteCommit> {
        let wrote = self.commit()?;
        if wrote.wrote() {
            self.flush()?;
        }
        Ok(wrote)
    }

    /// Ends the armed query without writing it. When fragments of it were already streamed to
    /// the log an abort frame closes them (replay skips them). Without an armed query this is
    /// a no-op (unwind paths call it).
    ///
    /// Returns whether the query had recorded anything: `true` means the live store applied
    /// mutations that will never be in the log, and must be quarantined or rolled back.
    ///
    /// # Errors
    /// [`RecorderError::Poisoned`]; [`RecorderError::Wal`] when writing the abort frame fails
    /// (which poisons).
    pub fn abort(&self) -> Result<bool> {
        let mut st = self.state();
        self.check_locked(&mut st)?;
        st.armed = false;
        let had = std::mem::take(&mut st.events) > 0;
        st.clear_buf();
        if let Some(stream) = st.stream.take()
            && let Err(e) = stream.abort()
        {
            return Err(self.fail_locked(&mut st, e));
        }
        Ok(had)
    }

    /// Makes every committed transaction durable, then lets the mirror persist: under
    /// [`SyncPolicy::Interval`] and [`SyncPolicy::Never`] this fsyncs; under
    /// [`SyncPolicy::Always`], where [`WalRecorder::commit`] already waited for durability,
    /// it costs nothing unless transactions committed with `commit_deferred` are still queued
    /// (their tickets not waited yet), which it writes and fsyncs.
    ///
    /// # Errors
    /// [`RecorderError::Poisoned`]; [`RecorderError::Wal`] or [`RecorderError::Mirror`] (which
    /// poison).
    pub fn flush(&self) -> Result<()> {
        self.check()?;
        // With nothing queued, `sync` returns without any I/O.
        self.wal.sync().map_err(|e| self.fail(e))?;
        self.persist_mirror(false)
    }

    /// A durability point whatever the policy: fsyncs everything written so far, then lets the
    /// mirror persist unconditionally ([`WalMirror::persist_force`]).
    ///
    /// # Errors
    /// As [`WalRecorder::flush`].
    pub fn force_fsync(&self) -> Result<()> {
        self.check()?;
        self.wal.sync().map_err(|e| self.fail(e))?;
        self.persist_mirror(true)
    }

    fn persist_mirror(&self, force: bool) -> Result<()> {
        let Some(mirror) = &self.mirror else {
            return Ok(());
        };
        let dir = self.wal.dir();
        let r = if force {
            mirror.persist_force(dir)
        } else {
            mirror.persist(dir)
        };
        r.map_err(|e| {
            let mut st = self.state();
            latch_mirror(&self.latch, &e);
            st.reset();
            RecorderError::Mirror(e)
        })
    }

    /// Appends a checkpoint marker: a snapshot covers every transaction up to `snapshot_lsn`.
    /// Returns the marker's LSN (durable under the log's policy like any append).
    ///
    /// # Errors
    /// [`RecorderError::Poisoned`]; [`RecorderError::Wal`] (which poisons).
    pub fn checkpoint_marker(&self, snapshot_lsn: Lsn) -> Result<Lsn> {
        self.check()?;
        self.wal
            .checkpoint_marker(snapshot_lsn)
            .map_err(|e| self.fail(e))
    }

    /// Removes whole log segments at or below `fence` (see [`Wal::truncate_prefix`]) and returns
    /// how many were removed. With a mirror attached, truncation waits for it like a
    /// replication slot: the mirror is persisted (forced) first, and only segments it holds
    /// durably through their seal are removed (up to the smaller of `fence` and
    /// [`WalMirror::position`]); a mirror that reports no position keeps the whole log. So
    /// the log stays bounded while the mirror keeps the history.
    ///
    /// # Errors
    /// [`RecorderError::Poisoned`]; [`RecorderError::Wal`] or [`RecorderError::Mirror`] (which
    /// poison).
    pub fn truncate_up_to(&self, fence: Lsn) -> Result<usize> {
        self.check()?;
        self.truncator().truncate_up_to(fence)
    }

    /// A handle that truncates this recorder's log as [`WalRecorder::truncate_up_to`] does,
    /// waiting for the mirror, for whatever else truncates the log (wal-replay's
    /// `Checkpointer::truncate_through`).
    #[must_use]
    pub fn truncator(&self) -> Truncator {
        Truncator::new(self.wal.clone(), self.latch.clone(), self.mirror.clone())
    }

    /// The log's counters ([`Wal::stats`]) and, with a mirror that reports its position, where
    /// its durable copy ends and how far it is behind the log.
    #[must_use]
    pub fn stats(&self) -> RecorderStats {
        let wal = self.wal.stats();
        let mirror = self
            .mirror
            .as_ref()
            .and_then(|m| m.position())
            .map(|p| MirrorLag::of(p, wal.last_lsn, &self.wal.segments()));
        RecorderStats { wal, mirror }
    }

    /// Whether the recorder, or its log, is poisoned.
    #[must_use]
    pub fn is_poisoned(&self) -> bool {
        self.settle();
        self.latch.is_poisoned() || self.wal.poison_cause().is_some()
    }

    /// Why the recorder refuses work: its own latched failure, or else a failure latched by the
    /// log (such as a failed background fsync). `None` while healthy.
    #[must_use]
    pub fn poisoned_reason(&self) -> Option<String> {
        self.settle();
        self.latch.reason().or_else(|| self.wal.poisoned_reason())
    }

    /// The first failure of the recorder (or else of its log), shared: the original error, its
    /// [`PoisonCause::io_kind`] (`StorageFull` after `ENOSPC`). `None` while healthy.
    #[must_use]
    pub fn poison_cause(&self) -> Option<PoisonCause> {
        self.settle();
        self.latch.cause().or_else(|| self.wal.poison_cause())
    }

    /// `Ok` while healthy.
    ///
    /// # Errors
    /// [`RecorderError::Poisoned`] with [`WalRecorder::poisoned_reason`].
    pub fn ensure_not_poisoned(&self) -> Result<()> {
        self.check()
    }

    /// Poisons the recorder for a reason the host found (for example, the live store diverged
    /// from what was logged). The armed query, if any, is dropped. The first reason wins.
    pub fn poison(&self, reason: impl Into<String>) {
        let mut st = self.state();
        self.latch_locked(&mut st, PoisonCause::message(reason));
    }
}

impl<E, C: Codec<E>> WalRecorder<E, C> {
    /// Records one event of the armed query: [`MutationRecorder::record`], callable without
    /// importing the trait. Failures are latched, never returned; see
    /// [`WalRecorder::try_record`].
    pub fn record(&self, event: E) {
        MutationRecorder::record(self, event);
    }

    /// Records one event of the armed query, reporting what [`MutationRecorder::record`]
    /// (which cannot fail) only latches.
    ///
    /// # Errors
    /// [`RecorderError::Poisoned`] (nothing is recorded); [`RecorderError::NotArmed`] outside a
    /// query and [`RecorderError::Codec`] for an event the codec cannot encode (or encodes as
    /// zero bytes, which could not be decoded back), which poison; [`RecorderError::Wal`] when
    /// streaming an oversized query fails (which poisons).
    pub fn try_record(&self, event: &E) -> Result<()> {
        // Also a failure the log latched (another user's failed fsync): the store must stop
        // mutating, not keep buffering events no commit can write.
        self.check()?;
        let mut st = self.state();
        if !st.armed {
            self.latch_locked(
                &mut st,
                PoisonCause::message("MutationRecorder::record fired outside an armed query"),
            );
            return Err(RecorderError::NotArmed);
        }
        let before = st.buf.len();
        if let Err(e) = self.codec.encode(event, &mut st.buf) {
            self.latch_locked(
                &mut st,
                PoisonCause::new(RecorderError::Codec(CodecError(e.0.clone()))),
            );
            return Err(RecorderError::Codec(e));
        }
        if st.buf.len() == before {
            let e = CodecError(
                "the codec encoded an event as zero bytes; it could not be decoded back".into(),
            );
            self.latch_locked(
                &mut st,
                PoisonCause::new(RecorderError::Codec(CodecError(e.0.clone()))),
            );
            return Err(RecorderError::Codec(e));
        }
        st.events += 1;
        if st.buf.len() > self.opts.max_buffered_bytes {
            self.spill(&mut st)?;
        }
        Ok(())
    }

    /// Hands the query buffer to the fragment stream (opening it on first use).
    fn spill(&self, st: &mut State) -> Result<()> {
        let written = match st.stream.as_mut() {
            Some(stream) => stream.write(&st.buf),
            None => match self.wal.stream() {
                Ok(mut stream) => {
                    tracing::debug!(
                        bytes = st.buf.len(),
                        "query outgrew its buffer; streaming fragments"
                    );
                    let r = stream.write(&st.buf);
                    st.stream = Some(stream);
                    r
                }
                Err(e) => Err(e),
            },
        };
        st.buf.clear();
        written.map_err(|e| self.fail_locked(st, e))
    }

    /// Commits an explicit transaction whose events were buffered elsewhere (for example by a
    /// host transaction with savepoints): arms, records every event, then
    /// [`WalRecorder::commit_and_flush`]. An empty `events` writes nothing and returns
    /// [`WroteCommit::No`].
    ///
    /// # Errors
    /// As [`WalRecorder::arm`], [`WalRecorder::try_record`] and
    /// [`WalRecorder::commit_and_flush`]; in particular
    /// [`RecorderError::AlreadyArmed`] (which poisons) when called inside an armed query.
    pub fn commit_events<I>(&self, events: I) -> Result<WroteCommit>
    where
        I: IntoIterator<Item = E>,
    {
        let tx = self.begin()?;
        for event in events {
            tx.try_record(&event)?;
        }
        tx.commit_and_flush()
    }
}

impl<E, C: Codec<E>> MutationRecorder<E> for WalRecorder<E, C> {
    /// Buffers `event` in the armed query: one mutex and one encode into the query buffer.
    /// Outside an armed query it poisons the recorder (the store is mutating without a query);
    /// once poisoned it is a no-op.
    fn record(&self, event: E) {
        // Failures are latched; the store reads them through `poisoned`.
        let _ = self.try_record(&event);
    }

    fn poisoned(&self) -> Option<String> {
        self.poisoned_reason()
    }
}
