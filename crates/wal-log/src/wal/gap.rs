//! Where the time between two fsyncs goes under group commit (issue 20): timestamps of each
//! flush cycle and of each woken waiter, kept only with the `gap-trace` feature. Without it
//! [`GapTrace`] is an empty type whose calls compile to nothing, and the closures passed to
//! it (which take the append lock to count queued commits) are never called.

/// A point of a flush cycle, stamped by the thread holding the flush roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "gap-trace"), allow(dead_code))]
pub(crate) enum Mark {
    /// The leader took the roles (`Barrier::claim`).
    Claimed = 0,
    /// The leader's gather (yields while commits keep arriving) ended.
    Gathered = 1,
    /// The pending buffer was taken; the write starts.
    Taken = 2,
    /// The write returned.
    Written = 3,
    /// The fsync starts.
    SyncStart = 4,
    /// The fsync returned.
    SyncEnd = 5,
    /// The finished flush has unparked the waiters it woke.
    Woken = 6,
}

#[cfg(feature = "gap-trace")]
pub(crate) use imp::GapTrace;
#[cfg(feature = "gap-trace")]
pub use imp::{GapCycle, GapReport};
#[cfg(not(feature = "gap-trace"))]
pub(crate) use off::GapTrace;

#[cfg(not(feature = "gap-trace"))]
mod off {
    use super::Mark;

    /// Tracing off: nothing stored, nothing timed.
    pub(crate) struct GapTrace;

    impl GapTrace {
        pub(crate) fn new() -> Self {
            GapTrace
        }
        #[inline(always)]
        pub(crate) fn mark(&self, _at: Mark, _queued: impl FnOnce() -> u64) {}
        #[inline(always)]
        pub(crate) fn commits(&self, _n: u64) {}
        #[inline(always)]
        pub(crate) fn woke(&self, _n: usize) {}
        #[inline(always)]
        pub(crate) fn waking(&self) {}
        #[inline(always)]
        pub(crate) fn running(&self) {}
    }
}

#[cfg(feature = "gap-trace")]
mod imp {
    use super::Mark;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    const MARKS: usize = 7;

    /// One flush cycle under [`SyncPolicy::Always`](crate::SyncPolicy::Always): from the end
    /// of the previous fsync to the end of this one. Times are from the previous fsync's end.
    #[derive(Clone, Debug, Default, PartialEq)]
    #[non_exhaustive]
    pub struct GapCycle {
        /// The previous flush had unparked the waiters it covered and the next leader.
        pub woken: Duration,
        /// This flush's leader took the roles.
        pub claimed: Duration,
        /// Its gather ended.
        pub gathered: Duration,
        /// It took the pending buffer.
        pub taken: Duration,
        /// Its write returned.
        pub written: Duration,
        /// Its fsync started.
        pub sync_start: Duration,
        /// Its fsync returned.
        pub sync_end: Duration,
        /// Transactions this flush made durable.
        pub commits: u64,
        /// Of those, queued before the previous fsync ended (during its write or fsync).
        pub queued_during_fsync: u64,
        /// Queued when this flush's leader took the roles.
        pub queued_at_claim: u64,
        /// Queued after this flush took the buffer, before its fsync started: they missed it.
        pub missed: u64,
        /// Waiters the previous flush woke (the covered ones and the next leader).
        pub woke: usize,
    }

    /// What a traced log recorded since it was opened. See [`Wal::gap_trace`](crate::Wal::gap_trace).
    #[derive(Clone, Debug, Default, PartialEq)]
    #[non_exhaustive]
    pub struct GapReport {
        /// The flush cycles whose every point was stamped, in order.
        pub cycles: Vec<GapCycle>,
        /// For each waiter woken by a finished flush: from the start of the flush's wake-ups
        /// to the waiter running again.
        pub wake_latency: Vec<Duration>,
    }

    #[derive(Default)]
    struct Cycle {
        /// The previous fsync's end, and the commits queued then.
        prev_end: Option<Instant>,
        prev_queued: u64,
        at: [Option<Instant>; MARKS],
        queued: [u64; MARKS],
        commits: u64,
        woke: usize,
    }

    /// The stamps of the cycle in progress and the finished ones.
    pub(crate) struct GapTrace {
        epoch: Instant,
        /// When the last wake-ups started, in nanoseconds since `epoch`.
        waking_at: AtomicU64,
        state: Mutex<(Cycle, GapReport)>,
        wakes: Mutex<Vec<Duration>>,
    }

    impl GapTrace {
        pub(crate) fn new() -> Self {
            GapTrace {
                epoch: Instant::now(),
                waking_at: AtomicU64::new(0),
                state: Mutex::new((Cycle::default(), GapReport::default())),
                wakes: Mutex::new(Vec::new()),
            }
        }
    }

    fn since(a: Option<Instant>, b: Option<Instant>) -> Option<Duration> {
        Some(b?.saturating_duration_since(a?))
    }

    impl GapTrace {
        /// Stamps `at` in the cycle in progress, with the commits queued then (`queued`
        /// takes the append lock; the caller holds no lock).
        pub(crate) fn mark(&self, at: Mark, queued: impl FnOnce() -> u64) {
            let n = queued();
            let now = Instant::now();
            let Ok(mut s) = self.state.lock() else { return };
            let (cycle, report) = &mut *s;
            cycle.at[at as usize] = Some(now);
            cycle.queued[at as usize] = n;
            if at == Mark::SyncEnd {
                let next = Cycle {
                    prev_end: Some(now),
                    prev_queued: n,
                    ..Cycle::default()
                };
                let done = std::mem::replace(cycle, next);
                if let Some(c) = finish(&done) {
                    report.cycles.push(c);
                }
            }
        }

        /// The flush in progress took `n` transactions to write.
        pub(crate) fn commits(&self, n: u64) {
            if let Ok(mut s) = self.state.lock() {
                s.0.commits = n;
            }
        }

        /// The flush that just finished woke `n` waiters (stamped into the next cycle).
        pub(crate) fn woke(&self, n: usize) {
            if let Ok(mut s) = self.state.lock() {
                s.0.woke = n;
            }
        }

        /// A finished flush starts unparking waiters.
        pub(crate) fn waking(&self) {
            let ns = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.waking_at.store(ns, Ordering::Release);
        }

        /// A woken waiter runs again.
        pub(crate) fn running(&self) {
            let from = Duration::from_nanos(self.waking_at.load(Ordering::Acquire));
            let lat = self.epoch.elapsed().saturating_sub(from);
            if let Ok(mut w) = self.wakes.lock() {
                w.push(lat);
            }
        }

        pub(crate) fn report(&self) -> GapReport {
            let mut r = self.state.lock().map(|s| s.1.clone()).unwrap_or_default();
            r.wake_latency = self.wakes.lock().map(|w| w.clone()).unwrap_or_default();
            r
        }
    }

    /// The finished cycle `c`, if every point was stamped (the first cycle has no previous
    /// fsync, a rotation no buffer taken). `Woken` is the previous flush's release, stamped
    /// after this cycle began.
    fn finish(c: &Cycle) -> Option<GapCycle> {
        let d = |m: Mark| since(c.prev_end, c.at[m as usize]);
        Some(GapCycle {
            woken: d(Mark::Woken)?,
            claimed: d(Mark::Claimed)?,
            gathered: d(Mark::Gathered)?,
            taken: d(Mark::Taken)?,
            written: d(Mark::Written)?,
            sync_start: d(Mark::SyncStart)?,
            sync_end: d(Mark::SyncEnd)?,
            commits: c.commits,
            queued_during_fsync: c.prev_queued,
            queued_at_claim: c.queued[Mark::Claimed as usize],
            missed: c.queued[Mark::SyncStart as usize],
            woke: c.woke,
        })
    }
}
