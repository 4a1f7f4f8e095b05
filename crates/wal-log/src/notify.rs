//! Durability notifications: a callback run once an LSN is durable, for callers that must
//! not block on [`Wal::wait_durable`] (an async runtime's task).
//!
//! One [`DurableNotifier`] owns one thread, whatever the number of appends: it takes every
//! callback registered since its last flush, leads (or joins, through group commit) one flush
//! covering the highest of their LSNs, and runs them, in LSN order, on itself. No thread, task
//! or poll per append; the callbacks are plain `FnOnce`, so any runtime can wake a future
//! from one (send on a oneshot channel).
//!
//! A caller that waits for each callback before its next append (openraft does) would pay
//! two thread wake-ups per append: the notifier's, then its own. The first is avoided the way
//! RocksDB's write thread avoids it ("adaptive yield"): after running a batch the thread
//! yields the CPU in a loop for up to [`SPIN`], watching for the next callback, and only then
//! sleeps; a `notify` wakes it (a system call) only when it sleeps. A yield that takes long
//! means other threads want the CPU, and the thread then sleeps at once rather than compete.

use crate::error::{Result, WalError};
use crate::wal::{Wal, lock};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wal_format::Lsn;

/// How long the thread watches for the next callback after a batch before it sleeps: about
/// one fsync of a fast disk, so a caller that appends again as soon as its callback ran finds
/// the thread awake.
const SPIN: Duration = Duration::from_micros(100);

/// A yield that took longer than this ran other threads: the CPU is contended, stop spinning.
const SLOW_YIELD: Duration = Duration::from_micros(20);

/// What a notification callback is given: `Ok` once its LSN is durable, or the error that
/// stopped it (the log's poisoning, or [`WalError::Closed`] for a notifier shut down first).
pub type Durability = Result<()>;

type Callback = Box<dyn FnOnce(Durability) + Send>;

/// Callbacks waiting for the notifier's thread.
#[derive(Default)]
struct Queue {
    waiting: VecDeque<(Lsn, Callback)>,
    /// Set by the notifier's drop: the thread serves what is queued, then ends.
    stop: bool,
    /// The thread waits on `wake` (or is about to): only then must `notify` signal it.
    asleep: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// How many times `notify` queued a callback (or the drop asked to stop): the thread
    /// watches it while it spins, without taking the lock.
    posted: AtomicUsize,
}

/// Runs callbacks once the LSNs they name are durable (see the module docs). Dropping it
/// serves every callback already registered (flushing for them) and stops its thread.
pub struct DurableNotifier {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DurableNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableNotifier").finish_non_exhaustive()
    }
}

impl DurableNotifier {
    /// Starts the notifier's thread for `wal`. It holds the log (and its directory lock) until
    /// the notifier is dropped.
    ///
    /// # Errors
    /// [`WalError::Io`] when the thread cannot be started.
    pub fn start(wal: Arc<Wal>) -> Result<DurableNotifier> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            posted: AtomicUsize::new(0),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("wal-notify".into())
            .spawn(move || serve(&s, &wal))
            .map_err(|source| WalError::Io {
                op: "spawn notifier thread",
                path: std::path::PathBuf::new(),
                source,
            })?;
        Ok(DurableNotifier {
            shared,
            thread: Some(thread),
        })
    }

    /// Runs `callback` on the notifier's thread once `lsn` (one an append returned) is
    /// durable, or with the error that prevents it. Returns at once.
    pub fn notify(&self, lsn: Lsn, callback: impl FnOnce(Durability) + Send + 'static) {
        self.shared.post(|q| {
            debug_assert!(!q.stop, "a notifier is only stopped by its drop");
            q.waiting.push_back((lsn, Box::new(callback)));
        });
    }
}

impl Shared {
    /// Changes the queue, then signals the thread if it sleeps. The flag and the change are
    /// under the one lock the thread checks before it sleeps, so no signal is lost.
    fn post(&self, change: impl FnOnce(&mut Queue)) {
        let mut q = lock(&self.queue);
        change(&mut q);
        self.posted.fetch_add(1, Ordering::Release);
        let asleep = q.asleep;
        drop(q);
        if asleep {
            self.wake.notify_one();
        }
    }

    /// Yields the CPU until something is posted after `seen`, for at most [`SPIN`], and less
    /// when a yield shows other threads waiting for the CPU.
    fn spin(&self, seen: usize) {
        let started = Instant::now();
        while self.posted.load(Ordering::Acquire) == seen && started.elapsed() < SPIN {
            let before = Instant::now();
            std::thread::yield_now();
            if before.elapsed() > SLOW_YIELD {
                return;
            }
        }
    }
}

impl Drop for DurableNotifier {
    fn drop(&mut self) {
        self.shared.post(|q| q.stop = true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The notifier's thread: flush for everything queued, run the callbacks, repeat.
fn serve(shared: &Shared, wal: &Wal) {
    loop {
        let seen = shared.posted.load(Ordering::Acquire);
        let batch: Vec<(Lsn, Callback)> = {
            let mut q = lock(&shared.queue);
            if q.waiting.is_empty() && !q.stop {
                drop(q);
                shared.spin(seen);
                q = lock(&shared.queue);
            }
            while q.waiting.is_empty() && !q.stop {
                q.asleep = true;
                q = shared
                    .wake
                    .wait(q)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                q.asleep = false;
            }
            if q.waiting.is_empty() {
                return;
            }
            q.waiting.drain(..).collect()
        };
        let mut batch = batch;
        batch.sort_by_key(|(lsn, _)| *lsn);
        let target = batch.last().map_or(Lsn::ZERO, |(lsn, _)| *lsn);
        let result = wal.wait_durable(target);
        debug_assert!(result.is_err() || wal.durable_lsn() >= target);
        for (lsn, callback) in batch {
            let r = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(e.duplicate()),
            };
            // A callback that panics must not take the thread, and every later callback,
            // with it: the others would wait forever.
            let run = std::panic::AssertUnwindSafe(move || callback(r));
            if std::panic::catch_unwind(run).is_err() {
                tracing::error!(lsn = lsn.0, "a durability callback panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::sim::{CrashImage, DataLoss, DirLoss, Fault, OpKind, SimVfs};
    use crate::{Options, SyncPolicy};
    use std::path::Path;
    use std::sync::mpsc;

    fn open(vfs: &SimVfs) -> Arc<Wal> {
        let opts = Options::default()
            .sync(SyncPolicy::Always)
            .preallocate(false)
            .segment_size(16 << 10)
            .vfs(Arc::new(vfs.clone()));
        Arc::new(Wal::open(Path::new("/db"), opts).unwrap().0)
    }

    /// Every callback runs once, after its LSN is durable: a crash image taken when a callback
    /// runs holds that transaction.
    #[test]
    fn a_callback_runs_once_its_lsn_is_durable() {
        let vfs = SimVfs::new();
        let wal = open(&vfs);
        let notifier = DurableNotifier::start(wal.clone()).unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 0..50u8 {
            let loc = wal.append_batch_queued(&[[i; 100]]).unwrap();
            let (tx, w, v) = (tx.clone(), wal.clone(), vfs.clone());
            notifier.notify(loc.lsn, move |r| {
                r.unwrap();
                assert!(w.durable_lsn() >= loc.lsn);
                let image = v.crash(&CrashImage {
                    data: DataLoss::DurableOnly,
                    dirs: DirLoss::UnsyncedLost,
                });
                tx.send((i, image)).unwrap();
            });
        }
        drop(tx);
        let got: Vec<_> = rx.iter().take(50).collect();
        assert_eq!(got.len(), 50);
        drop(notifier);
        drop(wal);
        for (i, image) in got.into_iter().step_by(7) {
            let wal = open(&image);
            let n = wal.read_from(Lsn::ZERO).unwrap().count();
            assert!(
                n > usize::from(i),
                "callback {i} ran before its batch was durable"
            );
        }
    }

    /// A callback registered once the thread has stopped spinning and sleeps is still run:
    /// `notify` wakes a sleeping thread (and only a sleeping one).
    #[test]
    fn a_callback_after_the_thread_fell_asleep_wakes_it() {
        let vfs = SimVfs::new();
        let wal = open(&vfs);
        let notifier = DurableNotifier::start(wal.clone()).unwrap();
        for round in 0..3u8 {
            // Wait for the observable state: the thread asleep on its condition variable.
            while !lock(&notifier.shared.queue).asleep {
                std::thread::yield_now();
            }
            let loc = wal.append_batch_queued(&[[round; 10]]).unwrap();
            let (tx, rx) = mpsc::channel();
            notifier.notify(loc.lsn, move |r| tx.send(r.is_ok()).unwrap());
            assert!(rx.recv().unwrap(), "round {round}: the callback ran");
            assert!(wal.durable_lsn() >= loc.lsn);
        }
    }

    /// A callback that panics does not stop the ones after it.
    #[test]
    fn a_panicking_callback_does_not_stop_the_next() {
        let vfs = SimVfs::new();
        let wal = open(&vfs);
        let notifier = DurableNotifier::start(wal.clone()).unwrap();
        let a = wal.append_batch_queued(&[b"a"]).unwrap();
        notifier.notify(a.lsn, |_| panic!("a callback's bug"));
        let (tx, rx) = mpsc::channel();
        let b = wal.append_batch_queued(&[b"b"]).unwrap();
        notifier.notify(b.lsn, move |r| tx.send(r.is_ok()).unwrap());
        assert!(rx.recv().unwrap());
    }

    /// A poisoned log hands its error to every waiting callback instead of leaving it hanging.
    #[test]
    fn a_poisoned_log_fails_the_callbacks() {
        let vfs = SimVfs::new();
        let wal = open(&vfs);
        let notifier = DurableNotifier::start(wal.clone()).unwrap();
        vfs.fail_nth(
            OpKind::SyncData,
            vfs.op_count(OpKind::SyncData) + 1,
            Fault::Eio,
        );
        let loc = wal.append_batch_queued(&[b"x"]).unwrap();
        let (tx, rx) = mpsc::channel();
        notifier.notify(loc.lsn, move |r| tx.send(r.is_err()).unwrap());
        assert!(rx.recv().unwrap(), "the callback saw the failure");
        assert!(wal.poisoned_reason().is_some());
    }
}
