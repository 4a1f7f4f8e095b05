//! The I/O-free core of group commit, in the spirit of raft-engine's `WriteBarrier`: who
//! leads a flush (the *writer* and *syncer* roles, each held by one thread at a time), who
//! waits, and whom a finishing flush wakes. It does no I/O, takes no lock and parks no
//! thread: [`Inner::flush_to`](super::Inner::flush_to) keeps it under the flush lock, does the
//! writes and fsyncs, and parks and wakes the threads it names. So its rules are tested here
//! without files or threads.
//!
//! The rules:
//! - **Joint roles** ([`SyncPolicy::Always`](crate::SyncPolicy::Always)): one thread takes
//!   both roles at once, so no write is ever in flight while an fsync runs.
//! - **Split roles** (the other policies): a caller whose LSN is not yet written takes the
//!   writer role; one whose LSN is written takes the syncer role; writes go on while an
//!   fsync runs.
//! - A caller that finds the role it needs taken waits ([`Barrier::wait`]).
//! - **Batching**: when a flush ends, under joint roles it wakes every waiter it covered plus
//!   the oldest one still uncovered, first, to lead the next flush (the others stay parked:
//!   the next flush covers them too). Under split roles, or once poisoned, it wakes everyone,
//!   as either role may be the one a waiter needs.

use wal_format::Lsn;

/// Something waiting for the log to reach an LSN: written (`sync() == false`) or durable.
pub(super) trait Wait: Clone {
    /// The LSN it waits for.
    fn lsn(&self) -> Lsn;
    /// Whether it waits for durability (else for the write).
    fn sync(&self) -> bool;
}

/// The roles a caller took: it writes the pending frames (`write`) and/or fsyncs (`sync`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Lead {
    /// The caller writes.
    pub(super) write: bool,
    /// The caller fsyncs after writing.
    pub(super) sync: bool,
}

/// The flush roles and the waiters of one log. See the module documentation.
pub(super) struct Barrier<W> {
    /// One thread takes both roles at once ([`SyncPolicy::Always`](crate::SyncPolicy::Always)).
    joint: bool,
    /// A thread holds the writer role.
    writing: bool,
    /// A thread holds the syncer role.
    syncing: bool,
    /// Waiting for a flush to cover them, or for a role; each woken on its own.
    waiters: Vec<W>,
}

impl<W: Wait> Barrier<W> {
    /// No role taken, nobody waiting. `joint`: one thread takes both roles at once.
    pub(super) fn new(joint: bool) -> Self {
        Barrier {
            joint,
            writing: false,
            syncing: false,
            waiters: Vec::new(),
        }
    }

    /// Whether one thread takes both roles at once.
    pub(super) fn joint(&self) -> bool {
        self.joint
    }

    /// The roles a caller that needs its LSN written, and durable when `sync`, takes now, or
    /// `None` when the one it needs is taken (it waits). `written` tells whether its LSN is
    /// already written (asked only under split roles).
    pub(super) fn claim(&mut self, written: impl FnOnce() -> bool, sync: bool) -> Option<Lead> {
        if self.joint {
            if self.writing || self.syncing {
                return None;
            }
            self.writing = true;
            self.syncing = true;
            Some(Lead { write: true, sync })
        } else if !written() {
            if self.writing {
                return None;
            }
            self.writing = true;
            Some(Lead {
                write: true,
                sync: false,
            })
        } else {
            if self.syncing {
                return None;
            }
            self.syncing = true;
            Some(Lead {
                write: false,
                sync: true,
            })
        }
    }

    /// The writer role (under joint roles both), for a caller that writes its own frame
    /// (a direct write), or `None` while another thread holds it. Under joint roles the
    /// caller also fsyncs (`Lead::sync`).
    pub(super) fn claim_writer(&mut self) -> Option<Lead> {
        if self.writing || (self.joint && self.syncing) {
            return None;
        }
        self.writing = true;
        if self.joint {
            self.syncing = true;
        }
        Some(Lead {
            write: true,
            sync: self.joint,
        })
    }

    /// Gives back the roles of `lead` (under joint roles: both).
    pub(super) fn release(&mut self, lead: Lead) {
        debug_assert!(
            !lead.write || self.writing,
            "releasing a writer role not held"
        );
        debug_assert!(
            !lead.sync || self.syncing,
            "releasing a syncer role not held"
        );
        if self.joint || lead.write {
            self.writing = false;
        }
        if self.joint || lead.sync {
            self.syncing = false;
        }
    }

    /// Whether a thread holds the syncer role.
    pub(super) fn syncing(&self) -> bool {
        self.syncing
    }

    /// Whether a thread holds the writer role.
    pub(super) fn writing(&self) -> bool {
        self.writing
    }

    /// Lists a waiter, to be woken by [`Barrier::take_wakeable`] or [`Barrier::take_all`].
    pub(super) fn wait(&mut self, w: W) {
        self.waiters.push(w);
    }

    /// The waiters listed now.
    #[cfg(test)]
    pub(super) fn waiters(&self) -> &[W] {
        &self.waiters
    }

    /// Takes every waiter off the list (the log is poisoned: everyone must see it).
    pub(super) fn take_all(&mut self) -> Vec<W> {
        std::mem::take(&mut self.waiters)
    }

    /// Takes off the list, into `wake` (empty on entry), the waiters to wake now that a flush
    /// ended: see the batching rule in the module documentation. `positions` gives the durable
    /// and the written LSN, or `None` once the log is poisoned; it is asked only under joint
    /// roles with someone waiting. Both lists keep their capacity, so this allocates nothing.
    pub(super) fn take_wakeable(
        &mut self,
        positions: impl FnOnce() -> Option<(Lsn, Lsn)>,
        wake: &mut Vec<W>,
    ) {
        if self.waiters.is_empty() {
            return;
        }
        let at = if self.joint { positions() } else { None };
        let Some((durable, written)) = at else {
            wake.append(&mut self.waiters);
            return;
        };
        let mut next_leader = None;
        self.waiters.retain(|w| {
            let at = if w.sync() { durable } else { written };
            if w.lsn() <= at {
                wake.push(w.clone());
                false
            } else if next_leader.is_none() {
                next_leader = Some(w.clone());
                false
            } else {
                true
            }
        });
        if let Some(l) = next_leader {
            wake.insert(0, l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waiter: its LSN and whether it waits for durability.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct T(u64, bool);

    impl Wait for T {
        fn lsn(&self) -> Lsn {
            Lsn(self.0)
        }
        fn sync(&self) -> bool {
            self.1
        }
    }

    const BOTH: Lead = Lead {
        write: true,
        sync: true,
    };
    const WRITE: Lead = Lead {
        write: true,
        sync: false,
    };
    const SYNC: Lead = Lead {
        write: false,
        sync: true,
    };

    #[test]
    fn joint_roles_go_to_one_thread_at_a_time() {
        let mut b = Barrier::<T>::new(true);
        let lead = b.claim(|| unreachable!("asked only under split roles"), true);
        assert_eq!(lead, Some(BOTH));
        assert_eq!(b.claim(|| false, true), None);
        assert_eq!(b.claim(|| true, true), None);
        assert_eq!(b.claim_writer(), None);
        b.release(BOTH);
        // A caller that needs only the write still holds both roles: no fsync runs meanwhile.
        assert_eq!(b.claim(|| false, false), Some(WRITE));
        assert!(b.writing() && b.syncing());
        assert_eq!(b.claim(|| true, true), None);
        b.release(WRITE);
        assert!(!b.writing() && !b.syncing());
        assert_eq!(b.claim_writer(), Some(BOTH));
        assert_eq!(b.claim(|| true, true), None);
        b.release(BOTH);
        assert!(!b.writing() && !b.syncing());
    }

    #[test]
    fn split_roles_let_a_write_run_while_an_fsync_does() {
        let mut b = Barrier::<T>::new(false);
        assert_eq!(b.claim(|| false, true), Some(WRITE));
        assert_eq!(b.claim(|| false, true), None);
        assert_eq!(b.claim_writer(), None);
        // Written already: the syncer role, while the writer role is held.
        assert_eq!(b.claim(|| true, true), Some(SYNC));
        assert_eq!(b.claim(|| true, false), None);
        b.release(WRITE);
        assert!(!b.writing() && b.syncing());
        assert_eq!(b.claim_writer(), Some(WRITE));
        b.release(WRITE);
        b.release(SYNC);
        assert!(!b.writing() && !b.syncing());
    }

    /// The batching rule, step by step: the flush that ends wakes the waiters it covered and
    /// the oldest uncovered one, first, as the next leader; the rest stay for the next flush.
    #[test]
    fn a_joint_flush_wakes_the_covered_and_one_next_leader() {
        let mut b = Barrier::new(true);
        for w in [
            T(5, true),
            T(3, true),
            T(9, true),
            T(4, false),
            T(10, true),
            T(12, false),
        ] {
            b.wait(w);
        }
        let mut wake = Vec::new();
        // Durable up to 5, written up to 9.
        b.take_wakeable(|| Some((Lsn(5), Lsn(9))), &mut wake);
        assert_eq!(wake, [T(9, true), T(5, true), T(3, true), T(4, false)]);
        assert_eq!(b.waiters(), [T(10, true), T(12, false)]);
        // The next flush makes 10 durable and 12 written: both go, nobody is left to lead.
        wake.clear();
        b.take_wakeable(|| Some((Lsn(10), Lsn(12))), &mut wake);
        assert_eq!(wake, [T(10, true), T(12, false)]);
        assert!(b.waiters().is_empty());
        // Nobody waiting: the positions are not even read.
        wake.clear();
        b.take_wakeable(|| unreachable!("nobody waits"), &mut wake);
        assert!(wake.is_empty());
        // Nothing covered: only the oldest, to lead.
        b.wait(T(20, true));
        b.wait(T(21, true));
        b.take_wakeable(|| Some((Lsn(10), Lsn(12))), &mut wake);
        assert_eq!(wake, [T(20, true)]);
        assert_eq!(b.waiters(), [T(21, true)]);
    }

    #[test]
    fn split_roles_or_poisoning_wake_everyone() {
        let mut b = Barrier::new(false);
        b.wait(T(7, true));
        b.wait(T(8, false));
        let mut wake = Vec::new();
        b.take_wakeable(|| Some((Lsn(0), Lsn(0))), &mut wake);
        assert_eq!(wake, [T(7, true), T(8, false)]);
        assert!(b.waiters().is_empty());

        let mut b = Barrier::new(true);
        b.wait(T(7, true));
        b.wait(T(8, false));
        wake.clear();
        b.take_wakeable(|| None, &mut wake);
        assert_eq!(wake, [T(7, true), T(8, false)]);

        b.wait(T(9, true));
        assert_eq!(b.take_all(), [T(9, true)]);
        assert!(b.waiters().is_empty());
    }
}
