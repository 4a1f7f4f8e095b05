//! The log: appends, group commit, rotation, preallocation, truncation, statistics.

use crate::error::{Damage, Result, WalError, io_err};
use crate::layout::{PREALLOC_FILE, recycled_file_name, segment_file_name};
use crate::options::{Options, SyncPolicy};
use crate::poison::{PoisonCause, PoisonLatch};
use crate::published::Publisher;
use crate::segment::SegmentInfo;
use crate::streams::Streams;
use crate::vfs::{OpenMode, VfsFile, VfsLock};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wal_format::{
    FLAG_MULTI, FRAME_HEADER_LEN, FrameKind, FrameSum, LogId, Lsn, MAX_FRAME_PAYLOAD,
    SEGMENT_HEADER_LEN, SegmentHeader, SegmentSeed, SegmentSeq, check_records, encode_fragment,
    encode_frame, encode_records, encode_records_frame, encoded_frame_len, records_body_pieces,
    records_len,
};

/// At most this many yields while a flush gathers queued commits (see `Inner::gather`).
const GATHER_ROUNDS: usize = 8;

/// Locks a mutex, ignoring std's poisoning: every critical section here leaves its state
/// consistent before anything that can panic, and I/O failures are handled by the log's own
/// poisoning instead.
/// A transaction whose encoded body is at least this large is written straight from the
/// caller's buffers ([`Inner::append_direct`]) instead of being copied into the pending
/// buffer first: for large batches that copy costs as much as the kernel's own.
pub(crate) const DIRECT_MIN: usize = 256 << 10;
/// A direct write hands the kernel this much before asking it to start writing it back, so
/// the device works while the rest is still being copied into the page cache.
const WRITEBACK_CHUNK: u64 = 512 << 10;
/// Buffers per vectored write in a direct write (pwritev(2) takes at most 1024).
const DIRECT_IOV: usize = 1024;
/// Bytes per vectored write in a direct write: checksumming a group brings it into cache just
/// before the kernel copies it.
const DIRECT_GROUP: usize = 1 << 20;
/// Pieces of a direct write up to this size are copied into a staging buffer rather than
/// handed to the kernel one by one.
const STAGE_MAX: usize = 2 << 10;
/// A direct write's staging buffer is written out once it holds this much (small enough to
/// stay in cache from the copy to the kernel's).
const STAGE_GROUP: usize = 256 << 10;

/// A frame for [`Inner::append_direct`]: its kind and flags, and its payload as `len` bytes in
/// `pieces`, in order.
pub(crate) struct DirectFrame<I> {
    pub(crate) kind: FrameKind,
    pub(crate) flags: u8,
    pub(crate) len: usize,
    pub(crate) pieces: I,
}

/// Gives the flush roles back when [`Inner::append_direct`] ends, also by a panic (in the
/// caller's `AsRef`, say): then the log is poisoned first, as its frame may be half written,
/// and no thread is left waiting for roles nobody will release.
struct DirectRoles<'a> {
    inner: &'a Inner,
    strict: bool,
    /// Set once the write returned (successfully or not); still clear when a panic unwinds
    /// through it. (Not `std::thread::panicking()`: a caller may append while unwinding.)
    finished: bool,
}

impl Drop for DirectRoles<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.inner.poison(WalError::Io {
                op: "write",
                path: self.inner.dir.clone(),
                source: std::io::Error::other(
                    "a large transaction's write was interrupted by a panic; it may be partly written",
                ),
            });
        }
        self.inner.release_roles(true, self.strict, self.strict);
    }
}

/// Where one buffer of a direct write's vectored write is.
#[derive(Clone, Copy)]
enum Part<'a> {
    /// A byte range of the staging buffer.
    Staged(usize, usize),
    /// The caller's own bytes.
    Borrowed(&'a [u8]),
}

/// Zeros standing in for a direct frame's header until its payload is written, and the end
/// marker after a write in a recycled segment.
const ZERO_HEADER: [u8; FRAME_HEADER_LEN] = [0; FRAME_HEADER_LEN];

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

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

/// Where durability stands, for readers.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Point {
    pub(crate) lsn: Lsn,
    pub(crate) seq: SegmentSeq,
    /// Byte offset just past `lsn`'s frame in segment `seq`.
    pub(crate) end: u64,
}

#[derive(Default)]
pub(crate) struct FlushState {
    /// A thread holds the writer role.
    writing: bool,
    /// A thread holds the syncer role.
    syncing: bool,
    /// Written to the OS (not necessarily durable).
    written: Point,
    /// The file `written` is in.
    written_file: Option<Arc<dyn VfsFile>>,
    /// Threads parked in `flush_to`, each woken on its own (see `Inner::take_wakeable`).
    waiters: Vec<Arc<Waiter>>,
    /// Follow readers waiting on `Inner::flushed` (`TxReader::next_timeout`). A flush
    /// notifies the condition variable only when there are some: a notify is a system call
    /// even when nobody waits.
    pub(crate) tailing: usize,
}

/// A thread parked in [`Inner::flush_to`] until `lsn` is durable (`sync`) or written, or until
/// it is handed the chance to take a free role.
struct Waiter {
    lsn: Lsn,
    sync: bool,
    thread: std::thread::Thread,
    /// Set (before the unpark) once the waiter has been taken off the list; a stray unpark
    /// without it is ignored.
    woken: AtomicBool,
}

impl Waiter {
    /// Marks the waiter taken off the list and unparks its thread. Consumes this reference
    /// before the unpark, so the woken thread finds its entry unshared and can reuse it.
    fn wake(self: Arc<Self>) {
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

/// How fast segments fill against how long zero-filling one takes: see
/// [`zero_fill_pays`].
pub(crate) struct FillPace {
    /// When the active segment was started (by open or rotation).
    segment_started: Instant,
    /// How long the last sealed segment took from its start to its seal.
    last_fill: Option<Duration>,
    /// How long the last zero-fill (writing and syncing a preallocated file) took.
    last_zero_fill: Option<Duration>,
}

/// Whether the next segment file should be zero-filled ahead of time. Zero-filling lets an
/// append's fdatasync skip block allocation, which is what keeps small commits fast; but it
/// writes every byte twice, and a writer that fills segments faster than they can be
/// zero-filled only ends up waiting for the zeros at each rotation. So it is skipped while the
/// last segment filled in less than twice the last zero-fill (the file then grows as it is
/// written, as with [`Options::preallocate`] off), and resumes when the writer slows down.
pub(crate) fn zero_fill_pays(
    last_fill: Option<Duration>,
    last_zero_fill: Option<Duration>,
) -> bool {
    match (last_fill, last_zero_fill) {
        (Some(fill), Some(zero)) => fill >= zero.saturating_mul(2),
        _ => true,
    }
}

enum Prealloc {
    Empty,
    Preparing,
    Ready(Arc<dyn VfsFile>),
    /// The background attempt failed; rotation creates the file itself (and reports errors).
    Failed,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) appends: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    pub(crate) rotations: AtomicU64,
    pub(crate) recycled: AtomicU64,
    pub(crate) bytes_since_checkpoint: AtomicU64,
    pub(crate) direct_writes: AtomicU64,
    pub(crate) zero_fills_skipped: AtomicU64,
}

pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) log_id: LogId,
    pub(crate) _lock: Box<dyn VfsLock>,
    pub(crate) writer: Mutex<Writer>,
    pub(crate) flush: Mutex<FlushState>,
    /// Signalled whenever a flush leader finishes (durability advanced or failed), for
    /// readers; threads in `flush_to` park instead (`FlushState::waiters`).
    pub(crate) flushed: Condvar,
    pub(crate) durable_lsn: AtomicU64,
    pub(crate) written_lsn: AtomicU64,
    /// The last LSN assigned (`Writer::next_lsn - 1`), for readers that must not take the
    /// append lock (a reader made during a rotation, which holds it across I/O).
    pub(crate) assigned_lsn: AtomicU64,
    pub(crate) durable: Mutex<Point>,
    pub(crate) segments: Mutex<Vec<SegmentInfo>>,
    /// The first write or fsync failure, for good.
    latch: PoisonLatch,
    pub(crate) counters: Counters,
    prealloc: Mutex<Prealloc>,
    prealloc_cv: Condvar,
    pace: Mutex<FillPace>,
    /// Truncated segment files waiting to become new segments, oldest first.
    pub(crate) recycle_pool: Mutex<VecDeque<PathBuf>>,
    /// Segments a reader is reading (count per segment): truncation deletes these rather
    /// than recycling them, so a reader's open file is never overwritten under it.
    pub(crate) pins: Mutex<BTreeMap<SegmentSeq, usize>>,
    /// The first LSN after every fragmented transaction whose beginning is gone (see
    /// `SegmentScan::unmatched_ends`), as recovery found it; 0 when none. Transactions up to it
    /// cannot be read whole, so the log's retained range starts after it.
    pub(crate) retained_from: AtomicU64,
    /// Fragmented transactions: open ones, and those that cross a segment boundary. Changed
    /// under the append lock (which orders it before `segments`); readers and truncation
    /// take it alone, so they never wait for a rotation's I/O.
    pub(crate) streams: Mutex<Streams>,
    /// Reused for the length prefixes of a batch written by [`Inner::append_direct`] (a
    /// batch running at the same time as another makes its own).
    direct_prefixes: Mutex<Vec<[u8; 4]>>,
    /// Reused by [`Inner::append_direct`] to gather small pieces.
    direct_stage: Mutex<Vec<u8>>,
    pub(crate) shutdown: AtomicBool,
    /// Where durability is published for readers in other processes
    /// ([`Options::publish_durable`]); set once by the open.
    pub(crate) publisher: OnceLock<Publisher>,
    shutdown_lock: Mutex<()>,
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
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.inner.dir)
            .field("log_id", &self.inner.log_id)
            .finish()
    }
}

/// Counters and positions of a log. See [`Wal::stats`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Frames appended since open (transactions, fragments, markers).
    pub appends: u64,
    /// Frame bytes appended since open.
    pub bytes: u64,
    /// Transactions committed since open.
    pub commits: u64,
    /// Data fsyncs of segment files since open.
    pub fsyncs: u64,
    /// `commits / fsyncs`: how well group commit batches.
    pub commits_per_fsync: f64,
    /// Highest durable LSN.
    pub durable_lsn: Lsn,
    /// Highest assigned LSN.
    pub last_lsn: Lsn,
    /// Segment files in the log.
    pub segments: usize,
    /// Segment rotations since open.
    pub rotations: u64,
    /// Rotations since open that reused a recycled file (see [`Options::recycle_segments`]).
    pub recycled: u64,
    /// Frame bytes appended since the last checkpoint marker (including before open).
    pub bytes_since_checkpoint: u64,
    /// Transactions since open written straight from the caller's buffers rather than copied
    /// into the log's buffer first: those of at least 256 KiB (see [`Wal::append_batch`]).
    pub direct_writes: u64,
    /// Segment files created since open without zero-filling them first, although
    /// [`Options::preallocate`] is on, because segments were filling faster than they could be
    /// zero-filled.
    pub zero_fills_skipped: u64,
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
        let all = std::mem::take(&mut f.waiters);
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

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Makes everything up to `lsn` written (`sync == false`) or durable (`sync == true`).
    ///
    /// Two roles, each held by one thread at a time: the *writer* takes every pending frame and
    /// writes them with one call; the *syncer* fsyncs what has been written and advances the
    /// durable LSN. Everyone else waits and is released by the first flush that covers them
    /// (group commit). Neither role holds the append lock during I/O.
    ///
    /// A thread that cannot go on parks on its own: the flush that covers it wakes exactly the
    /// threads it made durable, which return without touching the flush lock again (a shared
    /// condition variable would wake all of them to queue on that lock one after the other).
    ///
    /// Under [`SyncPolicy::Always`] one thread takes both roles at once, so a write is never
    /// issued while an fsync is in flight: only one flush's writes are ever unsynced, and a
    /// crash can never persist a later flush without an earlier one (which recovery would have
    /// to call corruption). Under the other policies writes proceed while an fsync runs, so appends do
    /// not stall behind the background fsync.
    pub(crate) fn flush_to(&self, lsn: Lsn, sync: bool) -> Result<()> {
        let strict = self.opts.sync == SyncPolicy::Always;
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
            let (do_write, do_sync) = if strict {
                if f.writing || f.syncing {
                    self.park_until(f, lsn, sync, &done);
                    continue;
                }
                f.writing = true;
                f.syncing = true;
                (true, sync)
            } else if !written(self) {
                if f.writing {
                    self.park_until(f, lsn, sync, &done);
                    continue;
                }
                f.writing = true;
                (true, false)
            } else {
                if f.syncing {
                    self.park_until(f, lsn, sync, &done);
                    continue;
                }
                f.syncing = true;
                (false, true)
            };
            drop(f);
            let mut result = if do_write { self.lead_write() } else { Ok(()) };
            if do_sync && result.is_ok() {
                result = self.lead_sync();
            }
            self.release_roles(do_write, do_sync, strict);
            result?;
        }
    }

    /// Gives up the roles taken in [`Inner::flush_to`] or [`Inner::take_roles`] and wakes the
    /// waiters that the flush covered (and one to lead the next).
    fn release_roles(&self, wrote: bool, synced: bool, strict: bool) {
        let mut f = lock(&self.flush);
        if strict || wrote {
            f.writing = false;
        }
        if strict || synced {
            f.syncing = false;
        }
        if f.tailing > 0 {
            self.flushed.notify_all();
        }
        // `try_with`: a log dropped while this thread's locals are being destroyed still
        // wakes its waiters, from a list of its own.
        let mut wake = TO_WAKE.try_with(RefCell::take).unwrap_or_default();
        self.take_wakeable(&mut f, strict, &mut wake);
        drop(f);
        for w in wake.drain(..) {
            w.wake();
        }
        let _ = TO_WAKE.try_with(|spare| spare.replace(wake));
    }

    /// Takes the writer role (and under `strict` the syncer role too, as [`Inner::flush_to`]
    /// does), waiting in line with the other waiters while another thread holds them.
    fn take_roles(&self, strict: bool) -> Result<()> {
        loop {
            self.check_poison()?;
            let mut f = lock(&self.flush);
            self.check_poison()?;
            if f.writing || (strict && f.syncing) {
                // No flush covers this waiter: it is woken as the next leader, or by poisoning.
                self.park_until(f, Lsn(u64::MAX), true, &|_| false);
                continue;
            }
            f.writing = true;
            if strict {
                f.syncing = true;
            }
            return Ok(());
        }
    }

    /// Appends one frame whose payload is `pieces` (in order, `len` bytes in all), written
    /// from the caller's buffers with no copy into the pending buffer. The caller becomes the
    /// flush leader: it writes whatever is pending in front of the frame in the same write,
    /// and under [`SyncPolicy::Always`] fsyncs before returning, which covers the frames of
    /// any writers waiting on it as well.
    ///
    /// The payload is written first, behind zeros where the header goes; the last write holds
    /// the pending frames and then the header. A crash in between leaves an end (an end marker
    /// in a recycled segment, else a torn tail), never a header over a payload not all written
    /// nor a header without the frames before it. Every [`WRITEBACK_CHUNK`] handed to the
    /// kernel is put to the device at once ([`VfsFile::start_writeback`]) while the rest is
    /// still being copied, so the fsync at the end waits for less.
    pub(crate) fn append_direct<'a>(
        &self,
        frame: DirectFrame<impl Iterator<Item = &'a [u8]>>,
    ) -> Result<Lsn> {
        let strict = self.opts.sync == SyncPolicy::Always;
        self.take_roles(strict)?;
        let mut roles = DirectRoles {
            inner: self,
            strict,
            finished: false,
        };
        let result = self.write_direct(frame).and_then(|lsn| {
            if strict {
                self.lead_sync()?;
            }
            Ok(lsn)
        });
        roles.finished = true;
        result
    }

    /// The write of [`Inner::append_direct`]; the caller holds the writer role.
    fn write_direct<'a>(&self, frame: DirectFrame<impl Iterator<Item = &'a [u8]>>) -> Result<Lsn> {
        let DirectFrame {
            kind,
            flags,
            len,
            pieces,
        } = frame;
        let mut w = lock(&self.writer);
        self.check_poison()?;
        if w.write_pos + w.pending.len() as u64 >= self.opts.segment_size {
            self.rotate(&mut w)?;
        }
        let lsn = w.next_lsn;
        let mut sum = FrameSum::new(w.seed, kind, flags, lsn, len)?;
        let spare = std::mem::take(&mut w.spare);
        let head = std::mem::replace(&mut w.pending, spare);
        let pos = w.write_pos;
        let frame_at = pos + head.len() as u64;
        let frame_end = frame_at + encoded_frame_len(len) as u64;
        w.write_pos = frame_end;
        w.next_lsn = lsn.next();
        self.assigned_lsn.store(lsn.0, Ordering::Release);
        w.pending_last = lsn;
        let commits = std::mem::take(&mut w.pending_commits)
            + u64::from(matches!(kind, FrameKind::Tx | FrameKind::FragEnd));
        let (file, seq, recycled) = (w.file.clone(), w.seq, w.recycled);
        drop(w);
        let frame_len = encoded_frame_len(len) as u64;
        self.counters.appends.fetch_add(1, Ordering::Relaxed);
        self.counters.direct_writes.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes.fetch_add(frame_len, Ordering::Relaxed);
        self.counters
            .bytes_since_checkpoint
            .fetch_add(frame_len, Ordering::Relaxed);

        let failed = |e| self.poison(io_err("write", self.path(&segment_file_name(seq)))(e));
        let mut stage = std::mem::take(&mut *lock(&self.direct_stage));
        stage.clear();
        stage.reserve(STAGE_GROUP + STAGE_MAX);
        let mut parts = [Part::Staged(0, 0); DIRECT_IOV];
        parts[0] = Part::Borrowed(&ZERO_HEADER);
        let (mut n, mut group, mut folded): (usize, usize, usize) = (1, FRAME_HEADER_LEN, 0);
        let (mut at, mut kicked) = (frame_at, frame_at);
        let mut pieces = pieces;
        loop {
            let next = pieces.next();
            match next {
                // Nothing to write (an empty record); an empty write is not one either.
                Some([]) => continue,
                Some(p) if p.len() <= STAGE_MAX => {
                    // Small pieces (length prefixes, small records) are copied together: one
                    // buffer each for the kernel and one checksum call for many of them.
                    let from = stage.len();
                    stage.extend_from_slice(p);
                    match n.checked_sub(1).map(|i| &mut parts[i]) {
                        Some(Part::Staged(_, end)) if *end == from => *end = stage.len(),
                        _ => {
                            parts[n] = Part::Staged(from, stage.len());
                            n += 1;
                        }
                    }
                }
                Some(p) => {
                    sum.fold(&stage[folded..]);
                    folded = stage.len();
                    sum.fold(p);
                    parts[n] = Part::Borrowed(p);
                    n += 1;
                }
                None => {
                    if recycled {
                        parts[n] = Part::Borrowed(&ZERO_HEADER);
                        n += 1;
                    }
                }
            }
            group += next.map_or(0, <[u8]>::len);
            let last = next.is_none();
            if n > 0
                && (last
                    || n + 2 >= DIRECT_IOV
                    || stage.len() >= STAGE_GROUP
                    || group >= DIRECT_GROUP)
            {
                sum.fold(&stage[folded..]);
                let mut iov = [std::io::IoSlice::new(&[]); DIRECT_IOV];
                for (slot, part) in iov.iter_mut().zip(&parts[..n]) {
                    *slot = std::io::IoSlice::new(match *part {
                        Part::Staged(a, b) => &stage[a..b],
                        Part::Borrowed(p) => p,
                    });
                }
                file.write_vectored_all_at(&iov[..n], at).map_err(failed)?;
                at += iov[..n].iter().map(|b| b.len() as u64).sum::<u64>();
                if !last && at - kicked >= WRITEBACK_CHUNK {
                    // Only advice: the fsync that follows reports any write-back failure.
                    let _ = file.start_writeback(kicked, at - kicked);
                    kicked = at;
                }
                stage.clear();
                (n, group, folded) = (0, 0, 0);
            }
            if last {
                break;
            }
        }
        *lock(&self.direct_stage) = stage;
        // A miscounted payload is a bug here, and the frame is half written: stop the log.
        let header = sum.header().map_err(|e| self.poison(e.into()))?;
        // The frames queued in front go out with the header, in the last write: a crash can
        // keep the header only with them, so the frame never verifies after a hole (even when
        // its payload matches bytes already on disk, like zeros or a recycled file's).
        let tail = [std::io::IoSlice::new(&head), std::io::IoSlice::new(&header)];
        file.write_vectored_all_at(&tail, pos).map_err(failed)?;
        let written = Point {
            lsn,
            seq,
            end: frame_end,
        };
        self.publish_write(written, file, head, commits);
        Ok(lsn)
    }

    /// After a flush's write: publishes how far the log is written (for the syncer and
    /// `flush_to`), hands the emptied pending buffer back as the spare (so appends never
    /// allocate), and counts the transactions the write carried.
    fn publish_write(
        &self,
        written: Point,
        file: Arc<dyn VfsFile>,
        mut buf: Vec<u8>,
        commits: u64,
    ) {
        self.set_written(written, file);
        self.written_lsn.store(written.lsn.0, Ordering::Release);
        buf.clear();
        lock(&self.writer).spare = buf;
        self.counters.commits.fetch_add(commits, Ordering::Relaxed);
    }

    /// Parks the calling thread, listed in `f.waiters`, until a finishing flush wakes it, `done`
    /// holds, or the log is poisoned. The caller then checks again from the start.
    fn park_until(
        &self,
        mut f: MutexGuard<'_, FlushState>,
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
        f.waiters.push(me.clone());
        drop(f);
        // Leaving early (done or poisoned) leaves the entry behind: it counts as covered and is
        // dropped by the next flush that finishes (or by the poisoning), its unpark ignored.
        while !me.woken.load(Ordering::Acquire) && !done(self) && !self.is_poisoned() {
            std::thread::park();
        }
    }

    /// Takes off the waiter list the threads to wake now that the roles are free. Under
    /// `strict` (both roles free at once): every waiter now covered, plus the oldest one still
    /// uncovered, first, to take the roles (it re-checks under the flush lock, and whoever holds
    /// the roles instead wakes another when done, so no waiter is forgotten). Otherwise, or
    /// once poisoned: everyone, as either role may be the one a waiter needs.
    /// They go into `wake` (empty on entry), and both lists keep their capacity, so a flush
    /// allocates nothing.
    fn take_wakeable(&self, f: &mut FlushState, strict: bool, wake: &mut Vec<Arc<Waiter>>) {
        if f.waiters.is_empty() {
            return;
        }
        if !strict || self.is_poisoned() {
            wake.append(&mut f.waiters);
            return;
        }
        let durable = self.durable_lsn.load(Ordering::Acquire);
        let written = self.written_lsn.load(Ordering::Acquire);
        let mut next_leader = None;
        f.waiters.retain(|w| {
            let at = if w.sync { durable } else { written };
            if w.lsn.0 <= at {
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

    /// The writer role: writes every pending frame with one call (or rotates).
    fn lead_write(&self) -> Result<()> {
        self.gather();
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
        let written = Point {
            lsn: last,
            seq,
            end: pos + frames_len as u64,
        };
        self.publish_write(written, file, buf, commits);
        Ok(())
    }

    /// Lets writers that were just released by the previous fsync append before this flush
    /// takes the buffer, so they share this fsync instead of waiting for the next one. It
    /// yields the CPU while the number of queued commits keeps growing (a few times at most);
    /// a lone writer pays one `sched_yield`.
    fn gather(&self) {
        let queued = |s: &Self| lock(&s.writer).pending_commits;
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
    fn lead_sync(&self) -> Result<()> {
        let (point, file) = {
            let f = lock(&self.flush);
            (f.written, f.written_file.clone())
        };
        if point.lsn.0 <= self.durable_lsn.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(file) = file else { return Ok(()) };
        if let Err(e) = file.sync_data() {
            // Never retry: after a failed fsync the kernel may have dropped the dirty pages,
            // so a later "successful" fsync would prove nothing.
            return Err(self.poison(io_err("fsync", self.path(&segment_file_name(point.seq)))(e)));
        }
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.advance_durable(point);
        self.publish_durable();
        Ok(())
    }

    /// Tells readers in other processes how far the log is durable, when it publishes that
    /// ([`Options::publish_durable`]). Called by the syncer role and the open, one at a time.
    pub(crate) fn publish_durable(&self) {
        if let Some(p) = self.publisher.get() {
            let point = *lock(&self.durable);
            p.publish(point);
        }
    }

    /// Raises the durable point (never lowers it: a rotation may have moved it further).
    fn advance_durable(&self, point: Point) {
        let mut d = lock(&self.durable);
        if point.lsn > d.lsn || (point.lsn == d.lsn && point.seq > d.seq) {
            *d = point;
            self.durable_lsn.store(point.lsn.0, Ordering::Release);
        }
    }

    /// Seals the active segment and switches to the next one now, whatever its size (open,
    /// before anything is appended, when the newest segment carries another payload schema).
    /// Returns the new segment's sequence number.
    pub(crate) fn rotate_now(&self) -> Result<SegmentSeq> {
        let mut w = lock(&self.writer);
        self.check_poison()?;
        self.rotate(&mut w)?;
        Ok(w.seq)
    }

    /// Seals the active segment and switches to the next one. Called with the append lock held
    /// by the flush leader. The seal and everything before it are durable before the next
    /// segment gets its name, so a segment exists on disk only when its predecessor is sealed.
    fn rotate(&self, w: &mut Writer) -> Result<()> {
        let started = Instant::now();
        let _span = tracing::info_span!("wal.rotate", seq = w.seq.0).entered();
        let seal_lsn = w.next_lsn;
        let next = w.seq.next();
        encode_frame(
            &mut w.pending,
            w.seed,
            FrameKind::Seal,
            0,
            seal_lsn,
            &next.0.to_le_bytes(),
        )?;
        w.next_lsn = seal_lsn.next();
        self.assigned_lsn.store(seal_lsn.0, Ordering::Release);
        let old_path = self.path(&segment_file_name(w.seq));
        let pos = w.write_pos;
        let commits = std::mem::take(&mut w.pending_commits);
        if let Err(e) = w.file.write_all_at(&w.pending, pos) {
            return Err(self.poison(io_err("write", &old_path)(e)));
        }
        let end = pos + w.pending.len() as u64;
        self.counters.appends.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes
            .fetch_add(w.pending.len() as u64, Ordering::Relaxed);
        self.counters.commits.fetch_add(commits, Ordering::Relaxed);
        w.pending.clear();
        w.pending_last = seal_lsn;
        if let Err(e) = w.file.sync_data() {
            return Err(self.poison(io_err("fsync", &old_path)(e)));
        }
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        let sealed_point = Point {
            lsn: seal_lsn,
            seq: w.seq,
            end,
        };
        // Readers may read up to the seal but not past it until the next segment exists: a
        // reader that saw the seal would open a file not yet installed (and report it
        // truncated). The commits before the seal are durable now; waiters go on at once.
        // The written point stops before the seal too: under `Interval` or `Never` a syncer
        // may run now, and the durable point it publishes must not show the seal either.
        let before_seal = Point {
            end: end - wal_format::encoded_frame_len(8) as u64,
            ..sealed_point
        };
        lock(&self.flush).written = before_seal;
        self.written_lsn.store(seal_lsn.0, Ordering::Release);
        *lock(&self.durable) = before_seal;
        self.durable_lsn.store(seal_lsn.0, Ordering::Release);
        {
            let mut segs = lock(&self.segments);
            if let Some(s) = segs.last_mut() {
                s.sealed = true;
                s.last_lsn = seal_lsn;
                s.bytes = end;
            }
        }
        let oldest_open = {
            let mut streams = lock(&self.streams);
            streams.boundary();
            streams.oldest_open().unwrap_or(Lsn::ZERO)
        };
        let header = SegmentHeader {
            log_id: self.log_id,
            seq: next,
            base_lsn: w.next_lsn,
            oldest_open_lsn: oldest_open,
            recycled: false,
            payload_schema: self.opts.payload_schema.unwrap_or(0),
        };
        let (file, header) = self
            .install_segment(header, true)
            .map_err(|e| self.poison(e))?;
        w.file = file;
        w.seq = next;
        w.seed = header.seed();
        w.recycled = header.recycled;
        w.write_pos = SEGMENT_HEADER_LEN as u64;
        lock(&self.segments).push(SegmentInfo {
            seq: next,
            base_lsn: header.base_lsn,
            last_lsn: header.base_lsn.prev(),
            bytes: SEGMENT_HEADER_LEN as u64,
            sealed: false,
            oldest_open_lsn: oldest_open,
        });
        {
            let p = Point {
                lsn: seal_lsn,
                seq: next,
                end: SEGMENT_HEADER_LEN as u64,
            };
            lock(&self.flush).written = p;
            *lock(&self.durable) = p;
        }
        self.counters.rotations.fetch_add(1, Ordering::Relaxed);
        {
            let mut p = lock(&self.pace);
            let now = Instant::now();
            p.last_fill = Some(now.saturating_duration_since(p.segment_started));
            p.segment_started = now;
        }
        tracing::info!(
            next = next.0,
            elapsed_us = started.elapsed().as_micros() as u64,
            "rotated"
        );
        Ok(())
    }

    /// Gives segment `header.seq` its header and name, and returns its file and the header as
    /// written. With `reuse` it takes a recycled file when the pool holds one (marking the
    /// header `recycled` and writing an end marker after it), else the preallocated file
    /// when ready (or creates it now); then it syncs the header, renames the file into place
    /// and syncs the directory. Then the preallocator is asked for the next one.
    pub(crate) fn install_segment(
        &self,
        mut header: SegmentHeader,
        reuse: bool,
    ) -> Result<(Arc<dyn VfsFile>, SegmentHeader)> {
        let target = self.path(&segment_file_name(header.seq));
        // Never rename over an existing segment, whatever the in-memory state says.
        if self.opts.vfs.open(&target, OpenMode::Read).is_ok() {
            return Err(WalError::Corrupt(Damage {
                segment: target,
                offset: 0,
                reason:
                    "a segment with this sequence number already exists; refusing to overwrite it"
                        .into(),
            }));
        }
        if reuse && let Some(file) = self.install_recycled(&mut header, &target)? {
            return Ok((file, header));
        }
        header.recycled = false;
        let tmp = self.path(PREALLOC_FILE);
        let ready = self.claim_prealloc(reuse);
        let file = match ready {
            Some(f) => f,
            None => match self.create_prealloc_file() {
                Ok(f) => f,
                Err(e) => {
                    self.release_prealloc();
                    return Err(e);
                }
            },
        };
        let named = self.name_segment(&*file, &header.encode(), &tmp, &target);
        self.release_prealloc();
        named?;
        Ok((file, header))
    }

    /// Turns the oldest recycled file into segment `header.seq` at `target`, or returns `None`
    /// when the pool is empty. The new header and an end marker after it are synced before
    /// the rename, so under its new name the file never shows stale frames as its tail.
    fn install_recycled(
        &self,
        header: &mut SegmentHeader,
        target: &Path,
    ) -> Result<Option<Arc<dyn VfsFile>>> {
        loop {
            let Some(from) = lock(&self.recycle_pool).pop_front() else {
                return Ok(None);
            };
            let file = match self.opts.vfs.open(&from, OpenMode::ReadWrite) {
                Ok(f) => f,
                // Removed behind our back: nothing to reuse, try the next one.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("open", &from)(e)),
            };
            header.recycled = true;
            if self.opts.preallocate {
                let len = file.len().map_err(io_err("stat", &from))?;
                if len < self.opts.segment_size {
                    file.allocate(self.opts.segment_size)
                        .map_err(io_err("allocate", &from))?;
                }
            }
            let mut head = Vec::with_capacity(SEGMENT_HEADER_LEN + FRAME_HEADER_LEN);
            head.extend_from_slice(&header.encode());
            head.extend_from_slice(&[0; FRAME_HEADER_LEN]);
            self.name_segment(&*file, &head, &from, target)?;
            self.counters.recycled.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(from = %from.display(), to = %target.display(), "recycled a segment file");
            return Ok(Some(file));
        }
    }

    /// The last steps of installing a segment, for a fresh or a recycled file: writes `head`
    /// (the header, and for a recycled file the end marker) at offset 0 and syncs it, then
    /// renames `from` to `target` and syncs the directory. The header is durable before the
    /// name is, so a segment name never shows a file's old header.
    fn name_segment(
        &self,
        file: &dyn VfsFile,
        head: &[u8],
        from: &Path,
        target: &Path,
    ) -> Result<()> {
        file.write_all_at(head, 0)
            .map_err(io_err("write header", from))?;
        file.sync_data().map_err(io_err("fsync", from))?;
        self.opts
            .vfs
            .rename(from, target)
            .map_err(io_err("rename", target))?;
        self.opts
            .vfs
            .sync_dir(&self.dir)
            .map_err(io_err("fsync dir", &self.dir))
    }

    /// Creates (replacing any leftover) the preallocated file and syncs it and the directory.
    fn create_prealloc_file(&self) -> Result<Arc<dyn VfsFile>> {
        let vfs = &self.opts.vfs;
        let tmp = self.path(PREALLOC_FILE);
        match vfs.remove(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &tmp)(e)),
        }
        let file = vfs
            .open(&tmp, OpenMode::CreateNew)
            .map_err(io_err("create", &tmp))?;
        let zero_fill = self.opts.preallocate && {
            let p = lock(&self.pace);
            zero_fill_pays(p.last_fill, p.last_zero_fill)
        };
        let started = Instant::now();
        if zero_fill {
            file.allocate(self.opts.segment_size)
                .map_err(io_err("allocate", &tmp))?;
        } else if self.opts.preallocate {
            self.counters
                .zero_fills_skipped
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!("segments fill faster than they can be zero-filled: skipping it");
        }
        file.sync_all().map_err(io_err("fsync", &tmp))?;
        if zero_fill {
            lock(&self.pace).last_zero_fill = Some(started.elapsed());
        }
        vfs.sync_dir(&self.dir)
            .map_err(io_err("fsync dir", &self.dir))?;
        Ok(file)
    }

    /// Takes ownership of the preallocated file's name: returns the ready file (when `take`),
    /// or `None` after marking it as being prepared by the caller, so the preallocator thread
    /// never works on the same file at the same time. Pair with [`Inner::release_prealloc`].
    fn claim_prealloc(&self, take: bool) -> Option<Arc<dyn VfsFile>> {
        let mut p = lock(&self.prealloc);
        loop {
            match std::mem::replace(&mut *p, Prealloc::Preparing) {
                Prealloc::Ready(f) if take => return Some(f),
                Prealloc::Ready(_) | Prealloc::Empty | Prealloc::Failed => return None,
                Prealloc::Preparing => {
                    p = self
                        .prealloc_cv
                        .wait(p)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// Gives the preallocated file's name back and asks the preallocator for a new one.
    fn release_prealloc(&self) {
        let mut p = lock(&self.prealloc);
        *p = Prealloc::Empty;
        self.prealloc_cv.notify_all();
    }

    pub(crate) fn set_written(&self, p: Point, file: Arc<dyn VfsFile>) {
        let mut f = lock(&self.flush);
        f.written = p;
        f.written_file = Some(file);
    }

    /// The preallocator thread: keeps one zero-filled, synced next segment ready.
    fn preallocator(self: &Arc<Self>) {
        loop {
            {
                let mut p = lock(&self.prealloc);
                while !self.shutdown.load(Ordering::Acquire) && !matches!(*p, Prealloc::Empty) {
                    p = self
                        .prealloc_cv
                        .wait(p)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if self.shutdown.load(Ordering::Acquire) || self.is_poisoned() {
                    return;
                }
                *p = Prealloc::Preparing;
            }
            let made = self.create_prealloc_file();
            let mut p = lock(&self.prealloc);
            *p = match made {
                Ok(f) => Prealloc::Ready(f),
                Err(e) => {
                    tracing::warn!(error = %e, "preallocating the next segment failed; rotation will retry");
                    Prealloc::Failed
                }
            };
            self.prealloc_cv.notify_all();
        }
    }

    /// The interval syncer thread of [`SyncPolicy::Interval`].
    fn syncer(self: &Arc<Self>, every: Duration) {
        let stop = |s: &Self| s.shutdown.load(Ordering::Acquire) || s.is_poisoned();
        let mut g = lock(&self.shutdown_lock);
        loop {
            // Checked under the lock before waiting, so a shutdown signalled before this
            // thread first waits is not missed.
            if stop(self) {
                return;
            }
            g = self
                .shutdown_cv
                .wait_timeout(g, every)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
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
            g = lock(&self.shutdown_lock);
        }
    }

    /// Encodes one frame into the pending buffer under the append lock.
    pub(crate) fn push_frame(
        &self,
        w: &mut Writer,
        kind: FrameKind,
        flags: u8,
        payload: &[u8],
    ) -> Result<Lsn> {
        let lsn = w.next_lsn;
        let before = w.pending.len();
        encode_frame(&mut w.pending, w.seed, kind, flags, lsn, payload)?;
        self.after_push(w, lsn, kind, before);
        Ok(lsn)
    }

    /// Encodes a multi-record `Tx` frame straight into the pending buffer (one copy).
    pub(crate) fn push_records<R: AsRef<[u8]>>(
        &self,
        w: &mut Writer,
        records: &[R],
    ) -> Result<Lsn> {
        let lsn = w.next_lsn;
        let before = w.pending.len();
        encode_records_frame(&mut w.pending, w.seed, lsn, records)?;
        self.after_push(w, lsn, FrameKind::Tx, before);
        Ok(lsn)
    }

    pub(crate) fn push_fragment(
        &self,
        w: &mut Writer,
        kind: FrameKind,
        stream: Lsn,
        chunk: &[u8],
    ) -> Result<Lsn> {
        let lsn = w.next_lsn;
        let before = w.pending.len();
        encode_fragment(&mut w.pending, w.seed, kind, lsn, stream, chunk)?;
        self.after_push(w, lsn, kind, before);
        Ok(lsn)
    }

    fn after_push(&self, w: &mut Writer, lsn: Lsn, kind: FrameKind, before: usize) {
        w.next_lsn = lsn.next();
        self.assigned_lsn.store(lsn.0, Ordering::Release);
        w.pending_last = lsn;
        let n = (w.pending.len() - before) as u64;
        if matches!(kind, FrameKind::Tx | FrameKind::FragEnd) {
            w.pending_commits += 1;
        }
        self.counters.appends.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes.fetch_add(n, Ordering::Relaxed);
        if kind == FrameKind::Checkpoint {
            self.counters
                .bytes_since_checkpoint
                .store(0, Ordering::Relaxed);
        } else {
            self.counters
                .bytes_since_checkpoint
                .fetch_add(n, Ordering::Relaxed);
        }
    }

    /// See [`Wal::oldest_retained_lsn`].
    pub(crate) fn oldest_retained(&self) -> Lsn {
        let first = lock(&self.segments)
            .first()
            .map_or(Lsn::FIRST, |s| s.base_lsn);
        first.max(Lsn(self.retained_from.load(Ordering::Acquire)))
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
        self.flush_to(lsn, self.opts.sync == SyncPolicy::Always)
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
        Wal { inner, threads }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_inner(
        dir: PathBuf,
        opts: Options,
        log_id: LogId,
        lock_guard: Box<dyn VfsLock>,
        writer: Writer,
        segments: Vec<SegmentInfo>,
        durable: Point,
        prealloc_ready: Option<Arc<dyn VfsFile>>,
        bytes_since_checkpoint: u64,
    ) -> Arc<Inner> {
        let inner = Inner {
            dir,
            opts,
            log_id,
            _lock: lock_guard,
            writer: Mutex::new(writer),
            flush: Mutex::new(FlushState {
                written: durable,
                ..FlushState::default()
            }),
            flushed: Condvar::new(),
            durable_lsn: AtomicU64::new(durable.lsn.0),
            written_lsn: AtomicU64::new(durable.lsn.0),
            assigned_lsn: AtomicU64::new(durable.lsn.0),
            durable: Mutex::new(durable),
            segments: Mutex::new(segments),
            latch: PoisonLatch::new(),
            counters: Counters::default(),
            prealloc: Mutex::new(match prealloc_ready {
                Some(f) => Prealloc::Ready(f),
                None => Prealloc::Empty,
            }),
            prealloc_cv: Condvar::new(),
            pace: Mutex::new(FillPace {
                segment_started: Instant::now(),
                last_fill: None,
                last_zero_fill: None,
            }),
            recycle_pool: Mutex::new(VecDeque::new()),
            pins: Mutex::new(BTreeMap::new()),
            retained_from: AtomicU64::new(0),
            streams: Mutex::new(Streams::default()),
            direct_prefixes: Mutex::new(Vec::new()),
            direct_stage: Mutex::new(Vec::new()),
            shutdown: AtomicBool::new(false),
            publisher: OnceLock::new(),
            shutdown_lock: Mutex::new(()),
            shutdown_cv: Condvar::new(),
        };
        inner
            .counters
            .bytes_since_checkpoint
            .store(bytes_since_checkpoint, Ordering::Relaxed);
        Arc::new(inner)
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

    /// Appends one transaction. Under [`SyncPolicy::Always`] it returns once the transaction
    /// is durable (sharing the fsync with concurrent appends); under the other policies once it
    /// is written to the OS. Payloads larger than one frame are written as fragments and are
    /// still atomic. A payload of 256 KiB or more is written from `payload` itself rather than
    /// copied into the log's buffer (see [`Wal::append_batch`]).
    ///
    /// # Errors
    /// [`WalError::Poisoned`] after an earlier failure; the write or fsync error that poisons
    /// the log; [`WalError::TransactionTooLarge`].
    pub fn append(&self, payload: &[u8]) -> Result<Lsn> {
        self.inner.check_poison()?;
        self.inner.check_size(payload.len())?;
        if payload.len() > MAX_FRAME_PAYLOAD {
            let mut s = self.stream()?;
            s.write(payload)?;
            return s.commit();
        }
        if payload.len() >= DIRECT_MIN {
            return self.inner.append_direct(DirectFrame {
                kind: FrameKind::Tx,
                flags: 0,
                len: payload.len(),
                pieces: std::iter::once(payload),
            });
        }
        let lsn = {
            let mut w = lock(&self.inner.writer);
            self.inner.check_poison()?;
            self.inner.push_frame(&mut w, FrameKind::Tx, 0, payload)?
        };
        self.inner.commit_point(lsn)?;
        Ok(lsn)
    }

    /// Queues one transaction and returns its LSN without waiting for any I/O: the frame is
    /// encoded into the log's buffer (a copy and a checksum), and is written and made durable
    /// by the next flush — [`Wal::wait_durable`], [`Wal::sync`], a concurrent
    /// [`Wal::append`]'s group commit, or the interval thread. Nothing is acknowledged: the
    /// transaction is durable only once `wait_durable(lsn)` returns.
    ///
    /// This is how an engine appends under its own lock (so the log order is the order in
    /// which it applied the changes) and waits outside it, letting concurrent committers share
    /// one write and one fsync. Payloads larger than one frame (4 MiB) are the exception: they
    /// are streamed as [`Wal::append`] streams them, which writes (and under
    /// [`SyncPolicy::Always`] fsyncs) the fragments before returning.
    ///
    /// ```
    /// # fn main() -> Result<(), wal_log::WalError> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let (wal, _) = wal_log::Wal::open(dir.path(), wal_log::Options::default())?;
    /// let lsn = wal.append_queued(b"applied under the engine's lock")?;
    /// // ... release the engine's lock, then:
    /// wal.wait_durable(lsn)?;
    /// assert!(wal.durable_lsn() >= lsn);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`WalError::Poisoned`]; [`WalError::TransactionTooLarge`].
    pub fn append_queued(&self, payload: &[u8]) -> Result<Lsn> {
        self.inner.check_poison()?;
        self.inner.check_size(payload.len())?;
        if payload.len() > MAX_FRAME_PAYLOAD {
            let mut s = self.stream()?;
            s.write(payload)?;
            return s.commit();
        }
        let mut w = lock(&self.inner.writer);
        self.inner.check_poison()?;
        self.inner.push_frame(&mut w, FrameKind::Tx, 0, payload)
    }

    /// Appends several payloads as one atomic transaction: after a crash either all of them are
    /// in the log or none. Returns the transaction's LSN. Readers see one [`crate::Transaction`]
    /// whose [`crate::Transaction::records`] yields the payloads in order.
    ///
    /// A transaction of 256 KiB or more (that still fits one frame) is written straight from
    /// `payloads`, with the frames other threads have queued in front of it, instead of being
    /// copied into the log's buffer first: the calling thread leads that flush itself. The
    /// bytes on disk are the same either way; [`Stats::direct_writes`] counts such writes.
    ///
    /// # Errors
    /// As [`Wal::append`]; [`WalError::Format`] with `BatchTooLarge` for a batch the format
    /// cannot hold (more than `u32::MAX` records, or a record over `u32::MAX` bytes), before
    /// anything is written.
    pub fn append_batch<R: AsRef<[u8]>>(&self, payloads: &[R]) -> Result<Lsn> {
        self.inner.check_poison()?;
        check_records(payloads)?;
        let size = records_len(payloads);
        self.inner.check_size(size)?;
        if size > MAX_FRAME_PAYLOAD {
            let mut body = Vec::with_capacity(size);
            encode_records(&mut body, payloads);
            let mut s = self.stream()?;
            s.multi = true;
            s.write(&body)?;
            return s.commit();
        }
        if size >= DIRECT_MIN {
            let mut prefixes = std::mem::take(&mut *lock(&self.inner.direct_prefixes));
            let pieces = records_body_pieces(payloads, &mut prefixes);
            let result = self.inner.append_direct(DirectFrame {
                kind: FrameKind::Tx,
                flags: FLAG_MULTI,
                len: size,
                pieces,
            });
            *lock(&self.inner.direct_prefixes) = prefixes;
            return result;
        }
        let lsn = {
            let mut guard = lock(&self.inner.writer);
            self.inner.check_poison()?;
            self.inner.push_records(&mut guard, payloads)?
        };
        self.inner.commit_point(lsn)?;
        Ok(lsn)
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

    /// Records that a snapshot covers every transaction up to `snapshot_lsn`. Durable under the
    /// sync policy like any append; returns the marker's LSN.
    ///
    /// # Errors
    /// As [`Wal::append`].
    pub fn checkpoint_marker(&self, snapshot_lsn: Lsn) -> Result<Lsn> {
        self.inner.check_poison()?;
        let lsn = {
            let mut w = lock(&self.inner.writer);
            self.inner.check_poison()?;
            self.inner.push_frame(
                &mut w,
                FrameKind::Checkpoint,
                0,
                &snapshot_lsn.0.to_le_bytes(),
            )?
        };
        self.inner.commit_point(lsn)?;
        Ok(lsn)
    }

    /// The oldest LSN [`Wal::read_from`] can start at: the first frame still in the log, or,
    /// after a truncation that a crash interrupted, the LSN just after the last fragmented
    /// transaction whose beginning was already removed (below the truncation's fence, so no
    /// snapshot-based recovery needs it).
    #[must_use]
    pub fn oldest_retained_lsn(&self) -> Lsn {
        self.inner.oldest_retained()
    }

    /// Removes whole segments whose every LSN is ≤ `fence`, oldest first, never the active
    /// segment and never one that a fragmented transaction still needs. Returns how many left
    /// the log: deleted, or renamed into the pool of files kept for reuse
    /// ([`Options::recycle_segments`]).
    ///
    /// # Errors
    /// [`WalError::Poisoned`]; a remove, rename or directory-sync error (which poisons the
    /// log).
    pub fn truncate_prefix(&self, fence: Lsn) -> Result<usize> {
        self.inner.check_poison()?;
        let _span = tracing::info_span!("wal.truncate", fence = fence.0).entered();
        // Chosen and dropped from the in-memory list in one critical section (the stream
        // table, then the segment list), so that two truncations running at once never pick
        // the same segment, no transaction can begin (and, with a fence past the log's end,
        // be cut off from its first segment by a rotation) meanwhile, and no new reader
        // starts there.
        let doomed: Vec<SegmentInfo> = {
            let mut streams = lock(&self.inner.streams);
            let mut segs = lock(&self.inner.segments);
            // Every transaction committed after the fence must stay readable whole: keep
            // from the first frame of any that ends after it (or is still open).
            let keep_from = streams.needed_from(Lsn(fence.0.saturating_add(1)));
            // Never the last one: it is the segment being written, or one just sealed by a
            // rotation that has yet to add its successor (with a fence past the log's end,
            // the list would be empty meanwhile, and readers would find no log at all).
            let n = segs
                .iter()
                .take_while(|s| s.sealed && s.last_lsn < keep_from)
                .count()
                .min(segs.len().saturating_sub(1));
            let doomed: Vec<SegmentInfo> = segs.drain(..n).collect();
            if let Some(first) = segs.first() {
                debug_assert!(doomed.iter().all(|d| d.last_lsn < first.base_lsn));
                streams.forget_ended_before(first.base_lsn);
                // The kept log may start with the tail of a transaction committed at or
                // before the fence: reading starts after it.
                if let Some(end) = streams.last_end_across(first.base_lsn) {
                    debug_assert!(end <= fence);
                    self.inner
                        .retained_from
                        .fetch_max(end.next().0, Ordering::AcqRel);
                }
            }
            doomed
        };
        if doomed.is_empty() {
            return Ok(0);
        }
        let mut renamed = Vec::new();
        {
            // Held across the renames: a reader pins a segment before it opens the file, so
            // a file renamed for reuse is one no reader has open.
            let pins = lock(&self.inner.pins);
            let room = self
                .inner
                .opts
                .recycle_segments
                .saturating_sub(lock(&self.inner.recycle_pool).len());
            for s in &doomed {
                let p = self.inner.path(&segment_file_name(s.seq));
                if renamed.len() < room && !pins.contains_key(&s.seq) {
                    let to = self.inner.path(&recycled_file_name(s.seq));
                    if let Err(e) = self.inner.opts.vfs.rename(&p, &to) {
                        return Err(self.inner.poison(io_err("rename", &p)(e)));
                    }
                    renamed.push(to);
                } else if let Err(e) = self.inner.opts.vfs.remove(&p) {
                    return Err(self.inner.poison(io_err("remove", &p)(e)));
                }
            }
        }
        if let Err(e) = self.inner.opts.vfs.sync_dir(&self.inner.dir) {
            return Err(self.inner.poison(io_err("fsync dir", &self.inner.dir)(e)));
        }
        // Only now may rotation reuse them: until the renames are durable, a power loss could
        // bring a file back under its old segment name, and it must not hold a new header then.
        let recycled = renamed.len();
        lock(&self.inner.recycle_pool).extend(renamed);
        tracing::info!(
            removed = doomed.len(),
            kept_for_reuse = recycled,
            "truncated log prefix"
        );
        Ok(doomed.len())
    }

    /// Counters and positions.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        let commits = c.commits.load(Ordering::Relaxed);
        let fsyncs = c.fsyncs.load(Ordering::Relaxed);
        Stats {
            appends: c.appends.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            commits,
            fsyncs,
            commits_per_fsync: if fsyncs == 0 {
                0.0
            } else {
                commits as f64 / fsyncs as f64
            },
            durable_lsn: self.durable_lsn(),
            last_lsn: self.last_lsn(),
            segments: lock(&self.inner.segments).len(),
            rotations: c.rotations.load(Ordering::Relaxed),
            recycled: c.recycled.load(Ordering::Relaxed),
            bytes_since_checkpoint: c.bytes_since_checkpoint.load(Ordering::Relaxed),
            direct_writes: c.direct_writes.load(Ordering::Relaxed),
            zero_fills_skipped: c.zero_fills_skipped.load(Ordering::Relaxed),
        }
    }

    /// The segments of the log, oldest first.
    #[must_use]
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let mut segs = lock(&self.inner.segments).clone();
        if let Some(last) = segs.last_mut() {
            let w = lock(&self.inner.writer);
            last.last_lsn = w.next_lsn.prev();
            last.bytes = w.write_pos + w.pending.len() as u64;
        }
        segs
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Best effort: under Interval/Never, make what was written durable on a clean close.
        if self.inner.poison_reason().is_none() {
            let _ = self.sync();
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
    use crate::sim::{Fault, OpKind, SimVfs};

    fn open(vfs: &SimVfs, sync: SyncPolicy) -> Wal {
        let opts = Options::default()
            .sync(sync)
            .preallocate(false)
            .segment_size(16 << 10)
            .vfs(Arc::new(vfs.clone()));
        Wal::open(Path::new("/db"), opts).unwrap().0
    }

    /// The moment a rotation has sealed the last listed segment and not yet added the next
    /// one, staged by hand: a fence past the end of the log must still leave that segment
    /// listed (and its file alone), or readers made then find no log at all.
    #[test]
    fn truncation_never_takes_the_last_listed_segment() {
        let vfs = SimVfs::new();
        let wal = open(&vfs, SyncPolicy::Always);
        for _ in 0..100 {
            wal.append(&[5u8; 400]).unwrap();
        }
        let before = lock(&wal.inner.segments).len();
        assert!(before > 2, "{before}");
        let last = lock(&wal.inner.segments).last().unwrap().seq;
        lock(&wal.inner.segments).last_mut().unwrap().sealed = true;
        assert_eq!(wal.truncate_prefix(Lsn(u64::MAX - 1)).unwrap(), before - 1);
        let after: Vec<SegmentSeq> = lock(&wal.inner.segments).iter().map(|s| s.seq).collect();
        assert_eq!(after, vec![last]);
        lock(&wal.inner.segments).last_mut().unwrap().sealed = false;
        let lsn = wal.append(b"still here").unwrap();
        let got: Vec<Lsn> = wal
            .read_from(wal.oldest_retained_lsn())
            .unwrap()
            .map(|t| t.unwrap().lsn)
            .collect();
        assert_eq!(got.last(), Some(&lsn));
    }

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
            assert!(lock(&wal.inner.flush).waiters.iter().all(|w| {
                let at = if w.sync {
                    &wal.inner.durable_lsn
                } else {
                    &wal.inner.written_lsn
                };
                w.lsn.0 <= at.load(Ordering::Acquire)
            }));
        }
    }

    /// Zero-filling stops while segments fill faster than it, and resumes when they do not.
    #[test]
    fn zero_fill_pays_only_when_the_writer_is_slower() {
        let ms = Duration::from_millis;
        assert!(zero_fill_pays(None, None));
        assert!(zero_fill_pays(Some(ms(10)), None));
        assert!(zero_fill_pays(None, Some(ms(80))));
        assert!(!zero_fill_pays(Some(ms(50)), Some(ms(80))));
        assert!(!zero_fill_pays(Some(ms(159)), Some(ms(80))));
        assert!(zero_fill_pays(Some(ms(160)), Some(ms(80))));
        assert!(zero_fill_pays(Some(Duration::from_secs(30)), Some(ms(80))));
    }

    /// The next segment file is created without zeros when the last segment filled faster
    /// than twice the last zero-fill, and with them otherwise; both kinds of segment recover.
    #[test]
    fn a_fast_writer_gets_segments_without_zero_fill() {
        let vfs = SimVfs::new();
        let opts = Options::default()
            .sync(SyncPolicy::Always)
            .segment_size(16 << 10)
            .vfs(Arc::new(vfs.clone()));
        let (wal, _) = Wal::open(Path::new("/db"), opts.clone()).unwrap();
        let inner = wal.inner.clone();
        let prealloc = Path::new("/db").join(PREALLOC_FILE);
        for (fill, zero, zeroed) in [(1, 50, false), (500, 50, true)] {
            {
                let mut p = lock(&inner.pace);
                p.last_fill = Some(Duration::from_millis(fill));
                p.last_zero_fill = Some(Duration::from_millis(zero));
            }
            // Take the name from the background preallocator, as a rotation does. The count
            // is read while this thread holds the name: the background thread, which may
            // have made a file of its own since the last release, is not making one now.
            let _ = inner.claim_prealloc(false);
            let skipped = wal.stats().zero_fills_skipped;
            let f = inner.create_prealloc_file().unwrap();
            let len = f.len().unwrap();
            assert_eq!(
                wal.stats().zero_fills_skipped - skipped,
                u64::from(!zeroed),
                "fill {fill} ms, zero-fill {zero} ms"
            );
            assert_eq!(
                len == 16 << 10,
                zeroed,
                "fill {fill} ms, zero-fill {zero} ms: {len}"
            );
            assert!(vfs.read_file(&prealloc).is_some());
            inner.release_prealloc();
        }
        // Segments of both kinds, through rotations, then a crash.
        for i in 0..200u32 {
            wal.append(&i.to_le_bytes().repeat(100)).unwrap();
        }
        let image = vfs.crash(&crate::sim::CrashImage {
            data: crate::sim::DataLoss::DurableOnly,
            dirs: crate::sim::DirLoss::UnsyncedLost,
        });
        drop(wal);
        let (wal, _) = Wal::open(Path::new("/db"), opts.vfs(Arc::new(image))).unwrap();
        assert_eq!(wal.read_from(Lsn::ZERO).unwrap().count(), 200);
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
            assert!(lock(&wal.inner.flush).waiters.is_empty());
        }
    }
}
