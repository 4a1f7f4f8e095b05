//! The lock order of [`Inner`](super::Inner), checked: each of its mutexes carries its rank in
//! the order the module doc writes down, and in debug builds taking one asserts that the
//! thread holds no lock of the same or a later rank. Release builds keep only the rank byte
//! (no thread-local bookkeeping).
//!
//! [`lock`] takes a plain `Mutex` or a ranked one the same way, so call sites do not say which.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The place of a lock of `Inner` in the lock order (`wal/mod.rs`, "Lock order"): a thread
/// holding one takes only locks of a later rank.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Rank {
    Writer = 1,
    Streams = 2,
    Segments = 3,
    Pins = 4,
    RecyclePool = 5,
    Prealloc = 6,
    Pace = 7,
    Flush = 8,
    Durable = 9,
    /// `direct_prefixes`, `direct_stage`, `shutdown_lock`: each taken alone (no other of this
    /// rank may be held), after any of the above.
    Leaf = 10,
}

/// A mutex of `Inner` with its rank in the lock order.
pub(crate) struct Ranked<T> {
    rank: Rank,
    m: Mutex<T>,
}

impl<T> Ranked<T> {
    pub(crate) fn new(rank: Rank, value: T) -> Self {
        Ranked {
            rank,
            m: Mutex::new(value),
        }
    }

    /// The value, without locking: only while nothing else can reach the mutex (the
    /// constructor of `Inner`).
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.m.get_mut().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The guard of a [`Ranked`] mutex: the rank counts as held until it is dropped.
pub(crate) struct RankedGuard<'a, T> {
    rank: Rank,
    g: Option<MutexGuard<'a, T>>,
}

impl<'a, T> RankedGuard<'a, T> {
    fn guard(&mut self) -> MutexGuard<'a, T> {
        // Always `Some` outside `wait`/`wait_timeout`, which put it back.
        self.g.take().unwrap_or_else(|| unreachable!("guard taken"))
    }

    /// [`Condvar::wait`] on this guard. The rank stays held while the thread is parked: it
    /// takes nothing meanwhile.
    pub(crate) fn wait(mut self, cv: &Condvar) -> Self {
        let g = cv
            .wait(self.guard())
            .unwrap_or_else(PoisonError::into_inner);
        self.g = Some(g);
        self
    }

    /// [`Condvar::wait_timeout`] on this guard.
    pub(crate) fn wait_timeout(mut self, cv: &Condvar, dur: Duration) -> Self {
        let (g, _) = cv
            .wait_timeout(self.guard(), dur)
            .unwrap_or_else(PoisonError::into_inner);
        self.g = Some(g);
        self
    }
}

impl<T> Deref for RankedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.g
            .as_deref()
            .unwrap_or_else(|| unreachable!("guard taken"))
    }
}

impl<T> DerefMut for RankedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.g
            .as_deref_mut()
            .unwrap_or_else(|| unreachable!("guard taken"))
    }
}

impl<T> Drop for RankedGuard<'_, T> {
    fn drop(&mut self) {
        held::release(self.rank);
    }
}

/// A mutex [`lock`] can take.
pub(crate) trait Lock {
    type Guard<'a>
    where
        Self: 'a;
    fn acquire(&self) -> Self::Guard<'_>;
}

impl<T> Lock for Mutex<T> {
    type Guard<'a>
        = MutexGuard<'a, T>
    where
        T: 'a;
    fn acquire(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Lock for Ranked<T> {
    type Guard<'a>
        = RankedGuard<'a, T>
    where
        T: 'a;
    fn acquire(&self) -> RankedGuard<'_, T> {
        held::check(self.rank);
        let g = self.m.lock().unwrap_or_else(PoisonError::into_inner);
        held::take(self.rank);
        RankedGuard {
            rank: self.rank,
            g: Some(g),
        }
    }
}

/// Locks a mutex, ignoring std's poisoning: every critical section here leaves its state
/// consistent before anything that can panic, and I/O failures are handled by the log's own
/// poisoning instead. A [`Ranked`] mutex is checked against the lock order in debug builds.
pub(crate) fn lock<L: Lock + ?Sized>(m: &L) -> L::Guard<'_> {
    m.acquire()
}

/// The ranks this thread holds (debug builds only).
#[cfg(debug_assertions)]
mod held {
    use super::Rank;
    use std::cell::RefCell;

    thread_local! {
        static HELD: RefCell<Vec<Rank>> = const { RefCell::new(Vec::new()) };
    }

    /// Asserts that taking a lock of `rank` keeps the order. (A thread whose locals are being
    /// destroyed is not checked.)
    pub(super) fn check(rank: Rank) {
        let _ = HELD.try_with(|h| {
            if let Some(worst) = h.borrow().iter().max() {
                debug_assert!(
                    *worst < rank,
                    "lock order violated: taking {rank:?} while holding {worst:?} (see wal/mod.rs, Lock order)"
                );
            }
        });
    }

    pub(super) fn take(rank: Rank) {
        let _ = HELD.try_with(|h| h.borrow_mut().push(rank));
    }

    pub(super) fn release(rank: Rank) {
        let _ = HELD.try_with(|h| {
            let mut h = h.borrow_mut();
            if let Some(i) = h.iter().rposition(|r| *r == rank) {
                h.remove(i);
            }
        });
    }
}

#[cfg(not(debug_assertions))]
mod held {
    use super::Rank;
    #[inline(always)]
    pub(super) fn check(_: Rank) {}
    #[inline(always)]
    pub(super) fn take(_: Rank) {}
    #[inline(always)]
    pub(super) fn release(_: Rank) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_taken_in_order_nest_and_release() {
        let (a, b, c) = (
            Ranked::new(Rank::Writer, 1),
            Ranked::new(Rank::Segments, 2),
            Ranked::new(Rank::Durable, 3),
        );
        let ga = lock(&a);
        let gb = lock(&b);
        drop(ga);
        let gc = lock(&c);
        assert_eq!(*gb + *gc, 5);
        drop((gb, gc));
        // Everything released: the first rank may be taken again.
        assert_eq!(*lock(&a), 1);
    }

    #[test]
    fn a_condvar_wait_keeps_the_guard_usable() {
        let m = Ranked::new(Rank::Leaf, 7);
        let cv = Condvar::new();
        let g = lock(&m).wait_timeout(&cv, Duration::from_millis(1));
        assert_eq!(*g, 7);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "lock order violated: taking Writer while holding Flush")]
    fn taking_an_earlier_rank_is_caught_in_debug_builds() {
        let (w, f) = (Ranked::new(Rank::Writer, ()), Ranked::new(Rank::Flush, ()));
        let _f = lock(&f);
        let _w = lock(&w);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "lock order violated")]
    fn two_leaf_locks_never_nest() {
        let (a, b) = (Ranked::new(Rank::Leaf, ()), Ranked::new(Rank::Leaf, ()));
        let _a = lock(&a);
        let _b = lock(&b);
    }
}
