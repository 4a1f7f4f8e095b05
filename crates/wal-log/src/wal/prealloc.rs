//! The preallocated next segment file, the background thread that prepares it, and when
//! zero-filling it pays.

use super::{Inner, lock};
use crate::error::{Result, io_err};
use crate::layout::PREALLOC_FILE;
use crate::vfs::{OpenMode, VfsFile};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How fast segments fill against how long zero-filling one takes: see
/// [`zero_fill_pays`].
pub(crate) struct FillPace {
    /// When the active segment was started (by open or rotation).
    pub(super) segment_started: Instant,
    /// How long the last sealed segment took from its start to its seal.
    pub(super) last_fill: Option<Duration>,
    /// How long the last zero-fill (writing and syncing a preallocated file) took.
    pub(super) last_zero_fill: Option<Duration>,
}

/// Whether the next segment file should be zero-filled ahead of time. Zero-filling lets an append's
/// fdatasync skip block allocation, which is what keeps small commits fast; but it writes every
/// byte twice, and a writer that fills segments faster than they can be zero-filled only ends up
/// waiting for the zeros at each rotation. So it is skipped while the last segment filled in less
/// than twice the last zero-fill (the file then grows as it is written, as with
/// [`Options::preallocate`](crate::Options::preallocate) off), and resumes when the writer slows
/// down.
pub(crate) fn zero_fill_pays(
    last_fill: Option<Duration>,
    last_zero_fill: Option<Duration>,
) -> bool {
    match (last_fill, last_zero_fill) {
        (Some(fill), Some(zero)) => fill >= zero.saturating_mul(2),
        _ => true,
    }
}

pub(super) enum Prealloc {
    /// No file, and none wanted yet: the log was reopened and has written nothing since, so
    /// an open that only reads (a replay) never pays a segment's zero-fill and its fsync.
    /// The first write ([`Inner::wake_preallocator`]) or a rotation makes it `Empty`.
    Idle,
    /// No file: the preallocator thread makes one.
    Empty,
    Preparing,
    Ready(Arc<dyn VfsFile>),
    /// The background attempt failed; rotation creates the file itself (and reports errors).
    Failed,
}

impl Inner {
    /// Creates (replacing any leftover) the preallocated file and syncs it and the directory.
    pub(super) fn create_prealloc_file(&self) -> Result<Arc<dyn VfsFile>> {
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
    pub(super) fn claim_prealloc(&self, take: bool) -> Option<Arc<dyn VfsFile>> {
        let mut p = lock(&self.prealloc);
        loop {
            match std::mem::replace(&mut *p, Prealloc::Preparing) {
                Prealloc::Ready(f) if take => return Some(f),
                Prealloc::Ready(_) | Prealloc::Idle | Prealloc::Empty | Prealloc::Failed => {
                    return None;
                }
                Prealloc::Preparing => {
                    p = p.wait(&self.prealloc_cv);
                }
            }
        }
    }

    /// Asks the preallocator for the next segment file if it has not been asked since the
    /// open (see [`Prealloc::Idle`]). Called after each write, with no lock held; once asked,
    /// it costs one atomic load.
    pub(super) fn wake_preallocator(&self) {
        if !self.prealloc_idle.load(Ordering::Relaxed) {
            return;
        }
        self.prealloc_idle.store(false, Ordering::Relaxed);
        let mut p = lock(&self.prealloc);
        if matches!(*p, Prealloc::Idle) {
            *p = Prealloc::Empty;
            self.prealloc_cv.notify_all();
        }
    }

    /// Gives the preallocated file's name back and asks the preallocator for a new one.
    pub(super) fn release_prealloc(&self) {
        let mut p = lock(&self.prealloc);
        *p = Prealloc::Empty;
        self.prealloc_cv.notify_all();
    }

    /// The preallocator thread: keeps one zero-filled, synced next segment ready.
    pub(super) fn preallocator(self: &Arc<Self>) {
        loop {
            {
                let mut p = lock(&self.prealloc);
                while !self.shutdown.load(Ordering::Acquire) && !matches!(*p, Prealloc::Empty) {
                    p = p.wait(&self.prealloc_cv);
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
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::options::{Options, SyncPolicy};
    use crate::sim::SimVfs;
    use crate::wal::Wal;
    use std::path::Path;
    use wal_format::Lsn;

    /// A reopened log asks for no preallocated file until it writes: an open that only reads
    /// pays no zero-fill; its first append asks for one.
    #[test]
    fn a_reopened_log_preallocates_only_once_it_writes() {
        let vfs = SimVfs::new();
        let opts = Options::default()
            .segment_size(16 << 10)
            .vfs(Arc::new(vfs.clone()));
        let dir = Path::new("/db");
        let idle = |wal: &Wal| matches!(*lock(&wal.inner.prealloc), Prealloc::Idle);
        let (wal, _) = Wal::open(dir, opts.clone()).unwrap();
        assert!(!idle(&wal), "a new log is about to be written");
        wal.append(b"one").unwrap();
        drop(wal);
        let (wal, _) = Wal::open(dir, opts).unwrap();
        assert!(idle(&wal));
        assert_eq!(wal.read_from(Lsn::ZERO).unwrap().count(), 1);
        assert!(idle(&wal), "reading asks for nothing");
        assert!(vfs.read_file(&dir.join(PREALLOC_FILE)).is_none());
        wal.append(b"two").unwrap();
        assert!(!idle(&wal), "the first write asks for the next segment");
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
            // Take the name from the background preallocator, as a rotation does. The count
            // is read while this thread holds the name: the background thread, which may
            // have made a file of its own since the last release, is not making one now.
            let _ = inner.claim_prealloc(false);
            // Set the pace only now: a file the background thread was still making when this
            // thread asked for the name records its own timings when it finishes, which would
            // overwrite pace set before the claim (the test failed that way under load).
            {
                let mut p = lock(&inner.pace);
                p.last_fill = Some(Duration::from_millis(fill));
                p.last_zero_fill = Some(Duration::from_millis(zero));
            }
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
}
