//! The log: one [`Wal`] and the state it shares between threads ([`Inner`]). The write path is
//! split by concern:
//!
//! - [`append`]: frames encoded into the pending buffer under the append lock;
//! - [`barrier`]: the I/O-free core of group commit (who leads a flush, who waits, whom a
//!   finished flush wakes), tested without files or threads;
//! - [`group_commit`]: flushes (writes and fsyncs) led through it, and the threads waiting on one;
//! - [`gather`]: how many commits a flush leader waits for before it writes, and how long;
//! - [`gap`]: timestamps of each flush cycle, with the `gap-trace` feature only;
//! - [`direct`]: large transactions written from the caller's buffers;
//! - [`rotate`]: sealing a segment and installing the next;
//! - [`positions`]: the one place that moves the written and the durable position;
//! - [`prealloc`]: the preallocated next segment file and its thread;
//! - [`truncate`]: removing the log's prefix;
//! - [`stats`]: counters and positions;
//! - [`rank`]: the lock order below, checked in debug builds.
//!
//! # Lock order
//!
//! The locks of [`Inner`], in the one order they may nest: a thread holding one takes only
//! locks further down the list, never one above it. Each carries its place in this list
//! ([`rank::Rank`]); in debug builds taking one asserts that the thread holds none of the same
//! or a later place, so every test run checks the order.
//!
//! 1. `writer`, the append lock (`Writer`). Held across I/O only by a rotation (its few
//!    syscalls, and a wait for the preallocator thread on `prealloc_cv`).
//! 2. `streams` (under `writer` when a fragmented transaction begins or ends, and by a
//!    rotation; readers and truncation take it alone, or before `segments`).
//! 3. `segments`.
//! 4. `pins` (truncation holds it across its renames, then takes `recycle_pool`).
//! 5. `recycle_pool`.
//! 6. `prealloc`, with `prealloc_cv`. The preallocator thread takes only `prealloc` and
//!    `pace`, so a rotation may wait for it while holding `writer`.
//! 7. `pace`.
//! 8. `flush` (`FlushState`), with `flushed`. No lock is taken under it; nobody parks
//!    holding it (a thread waiting for a flush leaves the list's lock before parking).
//! 9. `durable`.
//! 10. `direct_prefixes`, `direct_stage`, `shutdown_lock` (with `shutdown_cv`): each taken
//!     alone.
//!
//! The poison latch and the atomics (`durable_lsn`, `written_lsn`, `assigned_lsn`,
//! `retained_from`, `shutdown`, the counters) take no lock. The written and durable positions
//! move only in [`positions`], which keeps `durable <= written <= assigned` and asserts it in
//! debug builds.

mod append;
mod barrier;
mod direct;
mod gap;
mod gather;
mod group_commit;
mod positions;
mod prealloc;
mod rank;
mod rotate;
mod stats;
mod truncate;
mod watermark;

pub(crate) use direct::{DIRECT_MIN, DirectFrame};
#[cfg(feature = "gap-trace")]
pub use gap::{GapCycle, GapReport};
pub(crate) use group_commit::FlushState;
use prealloc::{FillPace, Prealloc};
pub(crate) use rank::lock;
use rank::{Rank, Ranked};
pub(crate) use stats::Counters;
pub use stats::Stats;

use crate::error::{Result, WalError};
use crate::options::{Options, SyncPolicy};
use crate::poison::{PoisonCause, PoisonLatch};
use crate::published::Publisher;
pub(crate) use crate::segment::Point;
use crate::segment::SegmentInfo;
use crate::streams::Streams;
use crate::vfs::{VfsFile, VfsLock};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;
use wal_format::{LogId, Lsn, SegmentHeader, SegmentSeed, SegmentSeq};

/// The append side: everything guarded by the append lock.
pub(crate) struct Writer {
    pub(crate) seq: SegmentSeq,
    pub(crate) seed: SegmentSeed,
    pub(crate) file: Arc<dyn VfsFile>,
    /// File offset where `pending` will be written.
    pub(crate) write_pos: u64,
    /// Encoded frames not yet handed to a flush leader.
    pub(crate) pending: Vec<u8>,
    /// LSN of the last frame in `pending`.
    pub(crate) pending_last: Lsn,
    /// Transactions committed by frames in `pending`.
    pub(crate) pending_commits: u64,
    /// A cleared buffer to swap with `pending` (so steady-state appends never allocate).
    pub(crate) spare: Vec<u8>,
    pub(crate) next_lsn: Lsn,
    /// The active segment is a recycled file: every write ends with an end marker.
    pub(crate) recycled: bool,
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) log_id: LogId,
    pub(crate) _lock: Box<dyn VfsLock>,
    pub(crate) writer: Ranked<Writer>,
    pub(crate) flush: Ranked<FlushState>,
    /// Signalled whenever a flush leader finishes (durability advanced or failed), for
    /// readers; threads in `flush_to` park instead (`FlushState::barrier`).
    pub(crate) flushed: Condvar,
    /// The durable point's LSN (see [`Inner::durable`]). Moved only in [`positions`].
    pub(crate) durable_lsn: AtomicU64,
    /// The written point's LSN (see `FlushState::written`). Moved only in [`positions`].
    pub(crate) written_lsn: AtomicU64,
    /// The last LSN assigned (`Writer::next_lsn - 1`), for readers that must not take the
    /// append lock (a reader made during a rotation, which holds it across I/O).
    pub(crate) assigned_lsn: AtomicU64,
    /// Where durability stands, for readers; its LSN is also in `durable_lsn`. Moved only in
    /// [`positions`] (and by the open, before anything is appended).
    pub(crate) durable: Ranked<Point>,
    pub(crate) segments: Ranked<Vec<SegmentInfo>>,
    /// The first write or fsync failure, for good.
    latch: PoisonLatch,
    pub(crate) counters: Counters,
    /// Timestamps of each flush cycle (feature `gap-trace`; an empty type without it).
    gap: gap::GapTrace,
    /// How many commits a flush leader waits for, and how long (`SyncPolicy::Always`).
    batch_goal: gather::BatchGoal,
    prealloc: Ranked<Prealloc>,
    prealloc_cv: Condvar,
    /// Set while `prealloc` may still be [`Prealloc::Idle`]: the fast check of
    /// [`Inner::wake_preallocator`].
    prealloc_idle: AtomicBool,
    pace: Ranked<FillPace>,
    /// Truncated segment files waiting to become new segments, oldest first.
    pub(crate) recycle_pool: Ranked<VecDeque<PathBuf>>,
    /// Segments a reader is reading (count per segment): truncation deletes these rather
    /// than recycling them, so a reader's open file is never overwritten under it.
    pub(crate) pins: Ranked<BTreeMap<SegmentSeq, usize>>,
    /// The first LSN after every fragmented transaction whose beginning is gone (see
    /// `SegmentScan::unmatched_ends`), as recovery found it; 0 when none. Transactions up to it
    /// cannot be read whole, so the log's retained range starts after it.
    pub(crate) retained_from: AtomicU64,
    /// Fragmented transactions: open ones, and those that cross a segment boundary. Changed
    /// under the append lock (which orders it before `segments`); readers and truncation
    /// take it alone, so they never wait for a rotation's I/O.
    pub(crate) streams: Ranked<Streams>,
    /// Reused for the length prefixes of a batch written by [`Inner::append_direct`] (a
    /// batch running at the same time as another makes its own).
    direct_prefixes: Ranked<Vec<[u8; 4]>>,
    /// Reused by [`Inner::append_direct`] to gather small pieces.
    direct_stage: Ranked<Vec<u8>>,
    pub(crate) shutdown: AtomicBool,
    /// Where durability is published for readers in other processes
    /// ([`Options::publish_durable`]); set once by the open.
    pub(crate) publisher: OnceLock<Publisher>,
    shutdown_lock: Ranked<()>,
    shutdown_cv: Condvar,
}

/// A write-ahead log open on one directory. `Send + Sync`: share it (`Arc<Wal>`) between
/// threads and call everything through `&self`.
///
/// Dropping it makes what was written durable (under `Interval` and `Never`) and stops its
/// background threads. Follow readers made from it then return [`WalError::Closed`] once
/// they have read everything durable. The directory's lock goes when the last handle that
/// shares the log goes: the `Wal`, and any [`TxReader`](crate::TxReader) or
/// [`StreamWriter`](crate::StreamWriter) made from it. Until then, opening the directory again
/// fails with [`WalError::AlreadyOpen`], so drop readers and streams before reopening.
///
/// ```
/// # fn main() -> Result<(), wal_log::WalError> {
/// let dir = tempfile::tempdir().unwrap();
/// let (wal, report) = wal_log::Wal::open(dir.path(), wal_log::Options::default())?;
/// assert!(report.created);
/// let lsn = wal.append(b"first transaction")?; // durable when it returns
/// assert_eq!(wal.durable_lsn(), lsn);
/// let txs: Vec<_> = wal.read_from(wal_format::Lsn::ZERO)?.collect::<Result<_, _>>()?;
/// assert_eq!(&txs[0].body[..], b"first transaction");
/// # Ok(()) }
/// ```
pub struct Wal {
    pub(crate) inner: Arc<Inner>,
    threads: Vec<JoinHandle<()>>,
    /// Whether dropping the log closes it cleanly (syncs, writes the final watermark): set
    /// once the open succeeded, cleared by [`Wal::close`] (which did it). An open that fails
    /// after building the log drops it without writing anything.
    pub(crate) finish_on_drop: bool,
    /// The last LSN when the open finished: a log closed with nothing appended since writes
    /// no watermark (a reader that opened it to look changes nothing).
    pub(crate) last_at_open: Lsn,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.inner.dir)
            .field("log_id", &self.inner.log_id)
            .finish()
    }
}

impl Inner {
    pub(crate) fn check_poison(&self) -> Result<()> {
        self.latch
            .check(|reason, cause| WalError::Poisoned { reason, cause })
    }

    /// Whether a failure is latched.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.latch.is_poisoned()
    }

    /// Latches the first failure for good and hands the error back to the caller that hit it.
    pub(crate) fn poison(&self, err: WalError) -> WalError {
        if self.latch.poison(PoisonCause::of_wal(&err)) {
            tracing::error!(error = %err, "WAL poisoned");
        }
        // Wake everyone waiting for durability: they must see the failure, not hang.
        let mut f = lock(&self.flush);
        if f.tailing > 0 {
            self.flushed.notify_all();
        }
        let all = f.barrier.take_all();
        drop(f);
        for w in all {
            w.wake();
        }
        err
    }

    pub(crate) fn poison_reason(&self) -> Option<String> {
        self.latch.reason()
    }

    pub(crate) fn poison_cause(&self) -> Option<PoisonCause> {
        self.latch.cause()
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Refuses a transaction larger than `Options::max_transaction_size` before anything is
    /// encoded (streams check as they grow).
    pub(crate) fn check_size(&self, len: usize) -> Result<()> {
        let max = self.opts.max_transaction_size;
        if len as u64 > max {
            return Err(WalError::TransactionTooLarge {
                size: len as u64,
                max,
            });
        }
        Ok(())
    }

    /// Waits until `lsn` is acknowledged under the sync policy.
    pub(crate) fn commit_point(&self, lsn: Lsn) -> Result<()> {
        let always = self.opts.sync == SyncPolicy::Always;
        self.flush_to(lsn, always)?;
        // Acknowledged only once an fsync covered it (`Always`), or once written.
        let at = if always {
            &self.durable_lsn
        } else {
            &self.written_lsn
        };
        debug_assert!(
            at.load(Ordering::Acquire) >= lsn.0,
            "commit {lsn} acknowledged before it was covered"
        );
        Ok(())
    }
}

/// What the open found (or made) that the running log starts from: see [`Inner::new`].
pub(crate) struct Start {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) log_id: LogId,
    /// The directory's lock, held as long as the log is.
    pub(crate) lock_guard: Box<dyn VfsLock>,
    /// A preallocated next segment file ready for the first rotation.
    pub(crate) prealloc_ready: Option<Arc<dyn VfsFile>>,
    /// Where writing goes on, and what recovery kept.
    pub(crate) resume: Resume,
}

/// Where the running log goes on (the active segment) and what recovery found about the log
/// it kept (or what a new log starts with).
pub(crate) struct Resume {
    /// The active segment's header.
    pub(crate) header: SegmentHeader,
    /// The active segment's file when it exists (writing goes on in it at `write_pos`);
    /// `None` when the start creates it (a new log, or the successor a seal names).
    pub(crate) file: Option<Arc<dyn VfsFile>>,
    /// Where writing goes on in the active segment.
    pub(crate) write_pos: u64,
    /// The log's last LSN: written and durable up to it, with nothing pending.
    pub(crate) last_lsn: Lsn,
    /// The segments of the log, oldest first (the active one last).
    pub(crate) segments: Vec<SegmentInfo>,
    /// Frame bytes after the last checkpoint marker, as recovery counted them.
    pub(crate) bytes_since_checkpoint: u64,
    /// Fragmented transactions open at the end of the log, and those crossing a boundary.
    pub(crate) streams: Streams,
    /// The first LSN readers may start from (0: the log's first), see `Inner::retained_from`.
    pub(crate) retained_from: u64,
}

impl Resume {
    /// Asserts (debug builds) what the start relies on: the active segment is the newest and
    /// ends the log, and writing goes on after its header.
    fn debug_check(&self) {
        debug_assert!(
            self.last_lsn >= self.header.base_lsn.prev(),
            "the log ends before its active segment begins"
        );
        debug_assert!(
            self.write_pos >= wal_format::header::SEGMENT_HEADER_LEN as u64,
            "writing starts after the segment header"
        );
        debug_assert!(
            self.segments
                .last()
                .is_some_and(|s| s.seq == self.header.seq && s.last_lsn == self.last_lsn),
            "the active segment is the newest one and ends the log"
        );
    }
}

impl Writer {
    /// The append side of segment `header` in `file`, written up to `write_pos` (where the
    /// log's last LSN, `last_lsn`, ends) with nothing pending.
    fn at(header: &SegmentHeader, file: Arc<dyn VfsFile>, write_pos: u64, last_lsn: Lsn) -> Self {
        Writer {
            seq: header.seq,
            seed: header.seed(),
            recycled: header.recycled,
            file,
            write_pos,
            pending: Vec::with_capacity(64 << 10),
            pending_last: last_lsn,
            pending_commits: 0,
            spare: Vec::with_capacity(64 << 10),
            next_lsn: last_lsn.next(),
        }
    }
}

impl Inner {
    /// The shared state of a log starting from `start`, every field set from it: written and
    /// durable up to `start.last_lsn` at `write_pos` of the active segment, no role taken,
    /// nobody waiting, no background thread yet ([`Wal::from_inner`] starts them). When the
    /// active segment is to be created, it is created here (header, rename, directory sync,
    /// by the installer rotation uses) before the state is shared with anyone.
    ///
    /// # Errors
    /// Creating the active segment failed.
    pub(crate) fn new(start: Start) -> Result<Arc<Inner>> {
        start.resume.debug_check();
        let Start {
            dir,
            opts,
            log_id,
            lock_guard,
            prealloc_ready,
            resume:
                Resume {
                    header,
                    file,
                    write_pos,
                    last_lsn,
                    segments,
                    bytes_since_checkpoint,
                    streams,
                    retained_from,
                },
        } = start;
        let create = file.is_none();
        let file = file.unwrap_or_else(|| Arc::new(NoFile));
        let writer = Writer::at(&header, file.clone(), write_pos, last_lsn);
        let durable = Point {
            lsn: last_lsn,
            seq: header.seq,
            end: write_pos,
        };
        let joint_roles = opts.sync == SyncPolicy::Always;
        let mut inner = Inner {
            dir,
            opts,
            log_id,
            _lock: lock_guard,
            writer: Ranked::new(Rank::Writer, writer),
            flush: Ranked::new(Rank::Flush, FlushState::new(durable, file, joint_roles)),
            flushed: Condvar::new(),
            durable_lsn: AtomicU64::new(last_lsn.0),
            written_lsn: AtomicU64::new(last_lsn.0),
            assigned_lsn: AtomicU64::new(last_lsn.0),
            durable: Ranked::new(Rank::Durable, durable),
            segments: Ranked::new(Rank::Segments, segments),
            latch: PoisonLatch::new(),
            counters: Counters::default(),
            gap: gap::GapTrace::new(),
            batch_goal: gather::BatchGoal::new(),
            prealloc: Ranked::new(
                Rank::Prealloc,
                match prealloc_ready {
                    Some(f) => Prealloc::Ready(f),
                    // A new log is about to be written; a reopened one may only be read.
                    None if create => Prealloc::Empty,
                    None => Prealloc::Idle,
                },
            ),
            prealloc_cv: Condvar::new(),
            prealloc_idle: AtomicBool::new(!create),
            pace: Ranked::new(
                Rank::Pace,
                FillPace {
                    segment_started: Instant::now(),
                    last_fill: None,
                    last_zero_fill: None,
                },
            ),
            recycle_pool: Ranked::new(Rank::RecyclePool, VecDeque::new()),
            pins: Ranked::new(Rank::Pins, BTreeMap::new()),
            retained_from: AtomicU64::new(retained_from),
            streams: Ranked::new(Rank::Streams, streams),
            direct_prefixes: Ranked::new(Rank::Leaf, Vec::new()),
            direct_stage: Ranked::new(Rank::Leaf, Vec::new()),
            shutdown: AtomicBool::new(false),
            publisher: OnceLock::new(),
            shutdown_lock: Ranked::new(Rank::Leaf, ()),
            shutdown_cv: Condvar::new(),
        };
        inner
            .counters
            .bytes_since_checkpoint
            .store(bytes_since_checkpoint, Ordering::Relaxed);
        if create {
            let (file, _) = inner.install_segment(header, false)?;
            inner.writer.get_mut().file = file.clone();
            inner.flush.get_mut().written_file = Some(file);
        }
        Ok(Arc::new(inner))
    }
}

/// Stands in for the active file until the start creates it.
#[derive(Debug)]
struct NoFile;

impl VfsFile for NoFile {
    fn read_at(&self, _: &mut [u8], _: u64) -> std::io::Result<usize> {
        Err(std::io::Error::other("no active segment"))
    }
    fn write_all_at(&self, _: &[u8], _: u64) -> std::io::Result<()> {
        Err(std::io::Error::other("no active segment"))
    }
    fn sync_data(&self) -> std::io::Result<()> {
        Err(std::io::Error::other("no active segment"))
    }
    fn sync_all(&self) -> std::io::Result<()> {
        Err(std::io::Error::other("no active segment"))
    }
    fn len(&self) -> std::io::Result<u64> {
        Ok(0)
    }
    fn set_len(&self, _: u64) -> std::io::Result<()> {
        Err(std::io::Error::other("no active segment"))
    }
    fn allocate(&self, _: u64) -> std::io::Result<()> {
        Err(std::io::Error::other("no active segment"))
    }
}

impl Wal {
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Wal {
        let mut threads = Vec::new();
        if inner.opts.preallocate {
            let i = inner.clone();
            if let Ok(h) = std::thread::Builder::new()
                .name("wal-prealloc".into())
                .spawn(move || i.preallocator())
            {
                threads.push(h);
            }
        }
        if let Some(every) = inner.opts.interval() {
            let i = inner.clone();
            if let Ok(h) = std::thread::Builder::new()
                .name("wal-sync".into())
                .spawn(move || i.syncer(every))
            {
                threads.push(h);
            }
        }
        Wal {
            inner,
            threads,
            finish_on_drop: false,
            last_at_open: Lsn::ZERO,
        }
    }

    /// Closes the log cleanly and says whether that worked: makes everything appended durable
    /// (whatever the policy), then, when anything was appended since the open, writes and
    /// fsyncs the final watermark (docs/format.md 7.3), so that damage to the last flush is
    /// reported as corruption on the next open, not cut as a torn tail. Dropping the log does
    /// the same but can only log a failure.
    ///
    /// # Errors
    /// [`WalError::Poisoned`]; the write or fsync error that poisons the log.
    pub fn close(mut self) -> Result<()> {
        self.finish_on_drop = false;
        self.sync()?;
        self.inner.write_close_watermark(self.last_at_open)
    }

    /// The directory of this log.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The log's random identity.
    #[must_use]
    pub fn log_id(&self) -> LogId {
        self.inner.log_id
    }

    /// The options the log was opened with.
    #[must_use]
    pub fn options(&self) -> &Options {
        &self.inner.opts
    }

    /// Starts a streaming transaction for payloads larger than one frame.
    ///
    /// # Errors
    /// [`WalError::Poisoned`].
    pub fn stream(&self) -> Result<crate::StreamWriter> {
        self.inner.check_poison()?;
        Ok(crate::StreamWriter::new(self))
    }

    /// Makes everything appended so far durable, whatever the policy.
    ///
    /// # Errors
    /// [`WalError::Poisoned`] or the fsync error that poisons the log.
    pub fn sync(&self) -> Result<()> {
        self.inner.check_poison()?;
        let last = lock(&self.inner.writer).pending_last;
        let target = last.max(Lsn(self.inner.written_lsn.load(Ordering::Acquire)));
        self.inner.flush_to(target, true)
    }

    /// Waits until `lsn` (one an append returned) is durable, flushing if needed. Returns at
    /// once for an LSN already durable.
    ///
    /// # Errors
    /// [`WalError::NotAssigned`] for an LSN no append has returned yet (nothing could make it
    /// durable); otherwise as [`Wal::sync`].
    pub fn wait_durable(&self, lsn: Lsn) -> Result<()> {
        self.inner.check_poison()?;
        let last = self.last_lsn();
        if lsn > last {
            return Err(WalError::NotAssigned { lsn, last });
        }
        self.inner.flush_to(lsn, true)
    }

    /// The highest LSN known durable.
    #[must_use]
    pub fn durable_lsn(&self) -> Lsn {
        Lsn(self.inner.durable_lsn.load(Ordering::Acquire))
    }

    /// The highest LSN assigned so far (durable or not).
    #[must_use]
    pub fn last_lsn(&self) -> Lsn {
        lock(&self.inner.writer).next_lsn.prev()
    }

    /// The reason the log is poisoned, if it is (including a failed background fsync).
    #[must_use]
    pub fn poisoned_reason(&self) -> Option<String> {
        self.inner.poison_reason()
    }

    /// The failure that poisoned the log, if it is: the original error, shared
    /// ([`PoisonCause::io_kind`] tells `ENOSPC` from `EIO`).
    #[must_use]
    pub fn poison_cause(&self) -> Option<PoisonCause> {
        self.inner.poison_cause()
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Best effort: under Interval/Never, make what was written durable on a clean close,
        // then say so in the log itself (the final watermark).
        if self.finish_on_drop
            && self.inner.poison_reason().is_none()
            && self.sync().is_ok()
            && let Err(e) = self.inner.write_close_watermark(self.last_at_open)
        {
            tracing::error!(error = %e, "writing the final watermark failed");
        }
        self.inner.shutdown.store(true, Ordering::Release);
        // Follow readers waiting for commits stop waiting (`WalError::Closed`).
        {
            let _g = lock(&self.inner.flush);
            self.inner.flushed.notify_all();
        }
        {
            let _g = lock(&self.inner.prealloc);
            self.inner.prealloc_cv.notify_all();
        }
        {
            let _g = lock(&self.inner.shutdown_lock);
            self.inner.shutdown_cv.notify_all();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::sim::SimVfs;
    use std::cell::RefCell;

    pub(super) fn open(vfs: &SimVfs, sync: SyncPolicy) -> Wal {
        let opts = Options::default()
            .sync(sync)
            .preallocate(false)
            .segment_size(16 << 10)
            .vfs(Arc::new(vfs.clone()));
        Wal::open(Path::new("/db"), opts).unwrap().0
    }

    /// A log dropped while its thread's locals are being destroyed (it is held in a thread
    /// local registered before the log's own, so destroyed after them) still syncs on close
    /// instead of panicking in the flush that the close runs.
    #[test]
    fn a_log_dropped_during_thread_exit_closes_cleanly() {
        thread_local! {
            static HELD: RefCell<Option<Wal>> = const { RefCell::new(None) };
        }
        let vfs = SimVfs::new();
        let v = vfs.clone();
        std::thread::spawn(move || {
            HELD.with(|_| {});
            let wal = open(&v, SyncPolicy::Never);
            for i in 0..3u8 {
                wal.append(&[i; 100]).unwrap();
            }
            HELD.with(|h| *h.borrow_mut() = Some(wal));
        })
        .join()
        .unwrap();
        let image = vfs.crash(&crate::sim::CrashImage {
            data: crate::sim::DataLoss::DurableOnly,
            dirs: crate::sim::DirLoss::UnsyncedLost,
        });
        let wal = open(&image, SyncPolicy::Never);
        let read: Vec<_> = wal
            .read_from(Lsn::ZERO)
            .unwrap()
            .map(|t| t.unwrap().body[0])
            .collect();
        assert_eq!(read, [0, 1, 2]);
    }
}
