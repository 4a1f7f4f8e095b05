//! How long a flush leader waits for commits before it takes the pending buffer (issue 20,
//! ADR 0012).
//!
//! Under [`SyncPolicy::Always`](crate::SyncPolicy::Always) the writers a flush made durable
//! are woken one by one after its fsync, and each comes back with its next commit tens of
//! microseconds later. A leader that takes the buffer as soon as a yield brings nobody new
//! (what it did before) often starts the fsync with part of them, and the rest wait a whole
//! fsync more. So the leader aims for a *goal*: about as many commits as recent flushes
//! carried. It waits, yielding, until that many are queued or for at most half an fsync; a
//! shorter batch lowers the goal slowly, so one late writer does not shrink every batch after
//! it, and writers that went away cost a few bounded waits. A lone writer's goal is 1: it
//! never waits. This changes when a flush starts, never what it covers: every waiter is still
//! acknowledged only by an fsync that began after its write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Fixed-point scale of the goal (sixteenths of a commit), so it can decay by 1/16.
const SCALE: u64 = 16;
/// The longest wait, whatever the fsyncs take: beyond it the wait costs more than a bigger
/// batch saves even on a slow disk.
const MAX_WAIT: Duration = Duration::from_micros(500);
/// The wait before any fsync was timed, and the least one.
const MIN_WAIT: Duration = Duration::from_micros(10);

/// The batch goal and the wait limit, updated by the thread holding the flush roles and read
/// by the next leader.
pub(super) struct BatchGoal {
    /// Commits a flush aims for, times [`SCALE`].
    goal: AtomicU64,
    /// The last fsync's duration, in nanoseconds (0: none timed yet).
    fsync_ns: AtomicU64,
}

impl BatchGoal {
    pub(super) fn new() -> Self {
        BatchGoal {
            goal: AtomicU64::new(SCALE),
            fsync_ns: AtomicU64::new(0),
        }
    }

    /// The commits the next flush waits for (at least 1).
    pub(super) fn goal(&self) -> u64 {
        self.goal.load(Ordering::Relaxed).div_ceil(SCALE).max(1)
    }

    /// How long the next leader may wait for the goal: half the last fsync, within bounds.
    pub(super) fn limit(&self) -> Duration {
        let half = Duration::from_nanos(self.fsync_ns.load(Ordering::Relaxed) / 2);
        half.clamp(MIN_WAIT, MAX_WAIT)
    }

    /// A flush took `commits`: the goal rises to it at once and falls towards it by 1/16.
    pub(super) fn took(&self, commits: u64) {
        let g = self.goal.load(Ordering::Relaxed);
        let next = (commits.saturating_mul(SCALE)).max(g - g / SCALE);
        self.goal.store(next, Ordering::Relaxed);
    }

    /// An fsync took `d`.
    pub(super) fn synced(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.fsync_ns.store(ns, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_goal_follows_the_batches_up_at_once_and_down_slowly() {
        let g = BatchGoal::new();
        assert_eq!(g.goal(), 1, "a new log never waits");
        g.took(1);
        assert_eq!(g.goal(), 1, "a lone writer never waits");
        g.took(8);
        assert_eq!(g.goal(), 8);
        // One short batch keeps the goal: a late writer does not shrink the next batches.
        g.took(3);
        assert_eq!(g.goal(), 8);
        // Writers that went away: the goal comes down within a bounded number of flushes.
        let mut flushes = 0;
        while g.goal() > 1 {
            g.took(1);
            flushes += 1;
            assert!(flushes < 64, "the goal never came down");
        }
        g.took(16);
        assert_eq!(g.goal(), 16);
    }

    #[test]
    fn the_wait_is_half_an_fsync_within_bounds() {
        let g = BatchGoal::new();
        assert_eq!(g.limit(), MIN_WAIT);
        g.synced(Duration::from_micros(100));
        assert_eq!(g.limit(), Duration::from_micros(50));
        g.synced(Duration::from_millis(30));
        assert_eq!(g.limit(), MAX_WAIT);
        g.synced(Duration::from_micros(1));
        assert_eq!(g.limit(), MIN_WAIT);
    }
}
