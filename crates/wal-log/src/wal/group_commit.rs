//! Group commit: the writer and syncer roles of a flush, the threads parked until a flush
//! covers them, and the interval syncer thread.

use super::barrier::{Barrier, Lead, Wait};
use super::gap::Mark;
use super::rank::RankedGuard;
use super::{Inner, Point, lock};
use crate::error::{Result, io_err};
use crate::layout::segment_file_name;
use crate::options::SyncPolicy;
use crate::vfs::VfsFile;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wal_format::Lsn;
use wal_format::frame::FRAME_HEADER_LEN;

/// At most this many yields while a flush gathers queued commits when no fsync follows (see
/// `Inner::gather`).
pub(super) const GATHER_ROUNDS: usize = 8;

pub(crate) struct FlushState {
    /// Who holds the writer and syncer roles, and the threads parked in `flush_to`, each
    /// woken on its own.
    pub(super) barrier: Barrier<Arc<Waiter>>,
    /// Written to the OS (not necessarily durable); its LSN is also in `Inner::written_lsn`.
    /// Moved only in [`positions`](super::positions).
    pub(super) written: Point,
    /// The file `written` is in.
    pub(super) written_file: Option<Arc<dyn VfsFile>>,
    /// Follow readers waiting on `Inner::flushed` (`TxReader::next_timeout`). A flush
    /// notifies the condition variable only when there are some: a notify is a system call
    /// even when nobody waits.
    pub(crate) tailing: usize,
}

impl FlushState {
    /// Written (and durable) up to `written` in `file`, no role taken, nobody waiting. `joint`: one
    /// thread takes both roles at once ([`SyncPolicy::Always`](crate::SyncPolicy::Always)).
    pub(super) fn new(written: Point, file: Arc<dyn VfsFile>, joint: bool) -> Self {
        FlushState {
            barrier: Barrier::new(joint),
            written,
            written_file: Some(file),
            tailing: 0,
        }
    }
}

/// A thread parked in [`Inner::flush_to`] until `lsn` is durable (`sync`) or written, or until
/// it is handed the chance to take a free role.
pub(super) struct Waiter {
    pub(super) lsn: Lsn,
    pub(super) sync: bool,
    pub(super) thread: std::thread::Thread,
    /// Set (before the unpark) once the waiter has been taken off the list; a stray unpark
    /// without it is ignored.
    pub(super) woken: AtomicBool,
}

impl Wait for Arc<Waiter> {
    fn lsn(&self) -> Lsn {
        self.lsn
    }

    fn sync(&self) -> bool {
        self.sync
    }
}

impl Waiter {
    /// Marks the waiter taken off the list and unparks its thread. Consumes this reference
    /// before the unpark, so the woken thread finds its entry unshared and can reuse it.
    pub(super) fn wake(self: Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let thread = self.thread.clone();
        drop(self);
        thread.unpark();
    }
}

thread_local! {
    /// This thread's waiter entry, reused by each park while no waiter list or waker still
    /// holds it, so that waiting for a group commit allocates nothing.
    static MY_WAITER: RefCell<Option<Arc<Waiter>>> = const { RefCell::new(None) };
    /// The waiters a flush finishing on this thread wakes, reused from flush to flush.
    static TO_WAKE: RefCell<Vec<Arc<Waiter>>> = const { RefCell::new(Vec::new()) };
}

impl Inner {
    /// Makes everything up to `lsn` written (`sync == false`) or durable (`sync == true`).
    ///
    /// Two roles, each held by one thread at a time: the *writer* takes every pending frame and
    /// writes them with one call; the *syncer* fsyncs what has been written and advances the
    /// durable LSN. Everyone else waits and is released by the first flush that covers them (group
    /// commit). Neither role holds the append lock during I/O.
    ///
    /// A thread that cannot go on parks on its own: the flush that covers it wakes exactly the
    /// threads it made durable, which return without touching the flush lock again (a shared
    /// condition variable would wake all of them to queue on that lock one after the other).
    ///
    /// Under [`SyncPolicy::Always`](crate::SyncPolicy::Always) one thread takes both roles at once,
    /// so a write is never issued while an fsync is in flight: only one flush's writes are ever
    /// unsynced, and a crash can never persist a later flush without an earlier one (which recovery
    /// would have to call corruption). Under the other policies writes proceed while an fsync runs,
    /// so appends do not stall behind the background fsync.
    pub(crate) fn flush_to(&self, lsn: Lsn, sync: bool) -> Result<()> {
        let written = |s: &Self| s.written_lsn.load(Ordering::Acquire) >= lsn.0;
        let done = |s: &Self| {
            let at = if sync { &s.durable_lsn } else { &s.written_lsn };
            at.load(Ordering::Acquire) >= lsn.0
        };
        loop {
            if done(self) {
                return Ok(());
            }
            self.check_poison()?;
            let mut f = lock(&self.flush);
            if done(self) {
                return Ok(());
            }
            self.check_poison()?;
            let Some(lead) = f.barrier.claim(|| written(self), sync) else {
                self.park_until(f, lsn, sync, &done);
                continue;
            };
            drop(f);
            self.gap.mark(Mark::Claimed, || self.queued_commits());
            let mut result = if lead.write {
                self.lead_write()
            } else {
                Ok(())
            };
            if lead.sync && result.is_ok() {
                result = self.lead_sync();
            }
            self.release_roles(lead);
            result?;
        }
    }

    /// Gives up the roles taken in [`Inner::flush_to`] or [`Inner::take_roles`] and wakes the
    /// waiters that the flush covered (and one to lead the next).
    pub(super) fn release_roles(&self, lead: Lead) {
        let mut f = lock(&self.flush);
        f.barrier.release(lead);
        if f.tailing > 0 {
            self.flushed.notify_all();
        }
        // `try_with`: a log dropped while this thread's locals are being destroyed still
        // wakes its waiters, from a list of its own.
        let mut wake = TO_WAKE.try_with(RefCell::take).unwrap_or_default();
        f.barrier
            .take_wakeable(|| self.positions_unless_poisoned(), &mut wake);
        drop(f);
        self.gap.waking();
        self.gap.woke(wake.len());
        for w in wake.drain(..) {
            w.wake();
        }
        self.gap.mark(Mark::Woken, || 0);
        let _ = TO_WAKE.try_with(|spare| spare.replace(wake));
    }

    /// Takes the writer role (under [`SyncPolicy::Always`](crate::SyncPolicy::Always) the syncer
    /// role too, as [`Inner::flush_to`] does), waiting in line with the other waiters while another
    /// thread holds them.
    pub(super) fn take_roles(&self) -> Result<Lead> {
        loop {
            self.check_poison()?;
            let mut f = lock(&self.flush);
            self.check_poison()?;
            if let Some(lead) = f.barrier.claim_writer() {
                return Ok(lead);
            }
            // No flush covers this waiter: it is woken as the next leader, or by poisoning.
            self.park_until(f, Lsn(u64::MAX), true, &|_| false);
        }
    }

    /// After a flush's write: publishes how far the log is written (for the syncer and
    /// `flush_to`), hands the emptied pending buffer back as the spare (so appends never
    /// allocate), and counts the transactions the write carried.
    pub(super) fn publish_write(
        &self,
        written: Point,
        file: Arc<dyn VfsFile>,
        mut buf: Vec<u8>,
        commits: u64,
    ) {
        self.set_written(written, file);
        buf.clear();
        lock(&self.writer).spare = buf;
        self.counters.commits.fetch_add(commits, Ordering::Relaxed);
    }

    /// Parks the calling thread, listed in `f.waiters`, until a finishing flush wakes it, `done`
    /// holds, or the log is poisoned. The caller then checks again from the start.
    pub(super) fn park_until(
        &self,
        mut f: RankedGuard<'_, FlushState>,
        lsn: Lsn,
        sync: bool,
        done: &dyn Fn(&Self) -> bool,
    ) {
        let fresh = || {
            Arc::new(Waiter {
                lsn,
                sync,
                thread: std::thread::current(),
                woken: AtomicBool::new(false),
            })
        };
        let reused = MY_WAITER.try_with(|mine| {
            let mut mine = mine.borrow_mut();
            if let Some(w) = mine.as_mut().and_then(Arc::get_mut) {
                // No list or waker holds it any more: reuse it.
                w.lsn = lsn;
                w.sync = sync;
                *w.woken.get_mut() = false;
            } else {
                // First park on this thread, or the last entry was left behind in a list (its
                // thread returned before being woken): a new one.
                *mine = None;
            }
            mine.get_or_insert_with(fresh).clone()
        });
        // While this thread's locals are being destroyed: a one-off entry.
        let me = reused.unwrap_or_else(|_| fresh());
        f.barrier.wait(me.clone());
        drop(f);
        // Leaving early (done or poisoned) leaves the entry behind: it counts as covered and is
        // dropped by the next flush that finishes (or by the poisoning), its unpark ignored.
        while !me.woken.load(Ordering::Acquire) && !done(self) && !self.is_poisoned() {
            std::thread::park();
        }
        if me.woken.load(Ordering::Acquire) {
            self.gap.running();
        }
    }

    /// Transactions queued for the next flush (takes the append lock).
    #[cfg_attr(not(feature = "gap-trace"), allow(dead_code))]
    fn queued_commits(&self) -> u64 {
        lock(&self.writer).pending_commits
    }

    /// The durable and the written LSN, for [`Barrier::take_wakeable`], or `None` once the
    /// log is poisoned (then everyone is woken to see it).
    fn positions_unless_poisoned(&self) -> Option<(Lsn, Lsn)> {
        if self.is_poisoned() {
            return None;
        }
        let durable = self.durable_lsn.load(Ordering::Acquire);
        let written = self.written_lsn.load(Ordering::Acquire);
        // Asked under `Always` only, where the thread that fsyncs wrote first (both roles).
        debug_assert!(
            durable <= written,
            "durable {durable} past written {written}"
        );
        Some((Lsn(durable), Lsn(written)))
    }

    /// The writer role: writes every pending frame with one call (or rotates).
    pub(super) fn lead_write(&self) -> Result<()> {
        self.gather();
        self.gap.mark(Mark::Gathered, || 0);
        let mut w = lock(&self.writer);
        if w.write_pos + w.pending.len() as u64 >= self.opts.segment_size {
            // Rotation is rare (once per segment) and keeps the append lock for its few
            // syscalls, so no frame can be encoded for a segment that is being sealed.
            return self.rotate(&mut w);
        }
        if w.pending.is_empty() {
            return Ok(());
        }
        let spare = std::mem::take(&mut w.spare);
        let buf = std::mem::replace(&mut w.pending, spare);
        let pos = w.write_pos;
        w.write_pos += buf.len() as u64;
        let last = w.pending_last;
        let commits = std::mem::take(&mut w.pending_commits);
        let (file, seq) = (w.file.clone(), w.seq);
        let recycled = w.recycled;
        drop(w);
        self.batch_goal.took(commits);
        self.gap.commits(commits);
        self.gap.mark(Mark::Taken, || commits);

        let mut buf = buf;
        let frames_len = buf.len();
        if recycled {
            // Stale bytes follow in a recycled file: keep an all-zero frame header just past
            // the data so recovery finds the end (the next write overwrites it).
            buf.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        }
        if let Err(e) = file.write_all_at(&buf, pos) {
            return Err(self.poison(io_err("write", self.path(&segment_file_name(seq)))(e)));
        }
        self.gap.mark(Mark::Written, || 0);
        let written = Point {
            lsn: last,
            seq,
            end: pos + frames_len as u64,
        };
        self.publish_write(written, file, buf, commits);
        self.wake_preallocator();
        Ok(())
    }

    /// Lets writers that were just released by the previous fsync append before this flush
    /// takes the buffer, so they share this fsync instead of waiting for the next one.
    ///
    /// Under [`SyncPolicy::Always`](crate::SyncPolicy::Always) it yields until as many commits
    /// are queued as recent flushes carried, for at most half an fsync (see [`gather`](super::gather));
    /// a lone writer does not yield at all. Under the other policies, where no fsync follows,
    /// it yields while the number of queued commits keeps growing (a few times at most).
    pub(super) fn gather(&self) {
        let queued = |s: &Self| lock(&s.writer).pending_commits;
        if self.opts.sync == SyncPolicy::Always {
            let goal = self.batch_goal.goal();
            if queued(self) >= goal {
                return;
            }
            let (start, limit) = (Instant::now(), self.batch_goal.limit());
            while start.elapsed() < limit {
                std::thread::yield_now();
                if queued(self) >= goal {
                    break;
                }
            }
            return;
        }
        let mut before = queued(self);
        for _ in 0..GATHER_ROUNDS {
            std::thread::yield_now();
            let now = queued(self);
            if now == before {
                break;
            }
            before = now;
        }
    }

    /// The syncer role: fsyncs the file of the last write and makes everything written before
    /// the fsync started durable.
    pub(super) fn lead_sync(&self) -> Result<()> {
        let (point, file) = {
            let f = lock(&self.flush);
            // The caller holds the syncer role; under `Always` the writer role too, so no
            // write is in flight while this fsync runs.
            debug_assert!(f.barrier.syncing(), "an fsync without the syncer role");
            debug_assert!(
                !f.barrier.joint() || f.barrier.writing(),
                "an fsync under Always while a write may be in flight"
            );
            debug_assert!(
                self.durable_lsn.load(Ordering::Acquire) <= f.written.lsn.0,
                "durable past written"
            );
            (f.written, f.written_file.clone())
        };
        if point.lsn.0 <= self.durable_lsn.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(file) = file else { return Ok(()) };
        self.gap.mark(Mark::SyncStart, || self.queued_commits());
        let started = Instant::now();
        if let Err(e) = file.sync_data() {
            // Never retry: after a failed fsync the kernel may have dropped the dirty pages,
            // so a later "successful" fsync would prove nothing.
            return Err(self.poison(io_err("fsync", self.path(&segment_file_name(point.seq)))(e)));
        }
        self.batch_goal.synced(started.elapsed());
        self.gap.mark(Mark::SyncEnd, || self.queued_commits());
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.advance_durable(point);
        self.publish_durable();
        Ok(())
    }

    /// Tells readers in other processes how far the log is durable, when it publishes that
    /// ([`Options::publish_durable`](crate::Options::publish_durable)). Called by the syncer role
    /// and the open, one at a time.
    pub(crate) fn publish_durable(&self) {
        if let Some(p) = self.publisher.get() {
            let point = *lock(&self.durable);
            p.publish(point);
        }
    }

    /// The interval syncer thread of [`SyncPolicy::Interval`](crate::SyncPolicy::Interval).
    pub(super) fn syncer(self: &Arc<Self>, every: Duration) {
        let stop = |s: &Self| s.shutdown.load(Ordering::Acquire) || s.is_poisoned();
        let mut g = lock(&self.shutdown_lock);
        loop {
            // Checked under the lock before waiting, so a shutdown signalled before this
            // thread first waits is not missed.
            if stop(self) {
                return;
            }
            g = g.wait_timeout(&self.shutdown_cv, every);
            if stop(self) {
                return;
            }
            drop(g);
            // Everything appended so far, queued or written.
            let last = lock(&self.writer)
                .pending_last
                .max(Lsn(self.written_lsn.load(Ordering::Acquire)));
            if last.0 > self.durable_lsn.load(Ordering::Acquire) {
                // A failure poisons the log; the next call on it reports the latched error.
                if let Err(e) = self.flush_to(last, true) {
                    tracing::error!(error = %e, "background fsync failed");
                }
            }
            // After the round's fsync, so a caller that sees the count move knows it is done.
            self.counters.syncer_rounds.fetch_add(1, Ordering::Release);
            g = lock(&self.shutdown_lock);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::tests::open;
    use super::*;
    use crate::error::WalError;
    use crate::options::SyncPolicy;
    use crate::sim::{Fault, OpKind, SimVfs};

    /// Many threads waiting in `flush_to` at once, under every policy and through rotations:
    /// each acknowledgement is covered by the durable (or written) LSN, and nobody is left
    /// parked (the test would hang).
    #[test]
    fn parked_waiters_are_all_released() {
        for sync in [
            SyncPolicy::Always,
            SyncPolicy::Interval { ms: 1 },
            SyncPolicy::Never,
        ] {
            let vfs = SimVfs::new();
            let wal = open(&vfs, sync);
            std::thread::scope(|s| {
                for t in 0..8u32 {
                    let wal = &wal;
                    s.spawn(move || {
                        for i in 0..200u32 {
                            let body = [t.to_le_bytes(), i.to_le_bytes()].concat();
                            let lsn = if i % 3 == 0 {
                                let lsn = wal.append_queued(&body).unwrap();
                                wal.wait_durable(lsn).unwrap();
                                lsn
                            } else {
                                wal.append(&body).unwrap()
                            };
                            if sync == SyncPolicy::Always || i % 3 == 0 {
                                assert!(wal.durable_lsn() >= lsn);
                            }
                            if i % 50 == 0 {
                                wal.sync().unwrap();
                            }
                        }
                    });
                }
            });
            assert_eq!(wal.stats().commits, 1600, "{sync:?}");
            assert!(lock(&wal.inner.flush).barrier.waiters().iter().all(|w| {
                let at = if w.sync {
                    &wal.inner.durable_lsn
                } else {
                    &wal.inner.written_lsn
                };
                w.lsn.0 <= at.load(Ordering::Acquire)
            }));
        }
    }

    /// A failed fsync while threads are parked waiting for it: every thread gets an error
    /// (the fsync's own or `Poisoned`) instead of hanging, and none is acknowledged after it.
    #[test]
    fn parked_waiters_see_a_failed_fsync() {
        for nth in [1, 2, 5, 20] {
            let vfs = SimVfs::new();
            let wal = open(&vfs, SyncPolicy::Always);
            vfs.fail_nth(
                OpKind::SyncData,
                vfs.op_count(OpKind::SyncData) + nth,
                Fault::Eio,
            );
            let errors: Vec<WalError> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8u32)
                    .map(|t| {
                        let wal = &wal;
                        s.spawn(move || {
                            for i in 0..1000u32 {
                                let body = [t.to_le_bytes(), i.to_le_bytes()].concat();
                                if let Err(e) = wal.append(&body) {
                                    return Some(e);
                                }
                            }
                            None
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap().expect("an append after the failure"))
                    .collect()
            });
            assert!(
                errors
                    .iter()
                    .all(|e| matches!(e, WalError::Io { .. } | WalError::Poisoned { .. }))
            );
            assert!(wal.poisoned_reason().is_some());
            assert!(lock(&wal.inner.flush).barrier.waiters().is_empty());
        }
    }
}
