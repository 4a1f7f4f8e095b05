//! [`Progress`]: how far [`crate::Wal::open`]'s read of the log has come, for a progress bar
//! on a long recovery or repair.

use crate::layout::segment_file_name;
use crate::vfs::{OpenMode, Vfs};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use wal_format::SegmentSeq;

/// A callback told `(bytes read, bytes to read)` while [`crate::Wal::open`] reads the log
/// ([`crate::Options::progress`]). Called from the opening thread after each segment file is
/// read, and once with `bytes read == bytes to read` when the reading is done; `bytes read`
/// never decreases and `bytes to read` is fixed for one open: every segment file's length,
/// counted twice under [`crate::RecoveryMode::SkipDamaged`] (its plan reads the whole log past
/// damage before the open reads it again). A segment the scan stops before (it follows
/// damage) counts as read when it is skipped.
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(u64, u64) + Send + Sync>);

impl Progress {
    /// Wraps `f`.
    pub fn new(f: impl Fn(u64, u64) + Send + Sync + 'static) -> Progress {
        Progress(Arc::new(f))
    }

    /// Tells the callback `(done, total)`.
    pub fn report(&self, done: u64, total: u64) {
        (self.0)(done, total);
    }
}

impl fmt::Debug for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Progress(..)")
    }
}

/// The bytes of the segment files `segs` of `dir`, for a total to read: best effort, a file
/// that cannot be sized counts as empty (the read that follows reports the error).
pub(crate) fn segment_bytes(vfs: &dyn Vfs, dir: &Path, segs: &[SegmentSeq]) -> u64 {
    segs.iter()
        .map(|seq| {
            vfs.open(&dir.join(segment_file_name(*seq)), OpenMode::Read)
                .and_then(|f| f.len())
                .unwrap_or(0)
        })
        .sum()
}

/// What one open has read, against what it will read, told to a [`Progress`] if any.
#[derive(Debug)]
pub(crate) struct Tally {
    hook: Option<Progress>,
    done: u64,
    total: u64,
}

impl Tally {
    pub(crate) fn new(hook: Option<Progress>, total: u64) -> Tally {
        Tally {
            hook,
            done: 0,
            total,
        }
    }

    /// `bytes` more were read. Never past the total: a file that grew under a read-only
    /// scan does not make the bar run over.
    pub(crate) fn add(&mut self, bytes: u64) {
        self.done = self.done.saturating_add(bytes).min(self.total);
        if let Some(h) = &self.hook {
            h.report(self.done, self.total);
        }
    }

    /// The reading is done: the bar reaches its end (a scan that stopped early read less).
    pub(crate) fn finish(&mut self) {
        self.add(self.total);
        debug_assert_eq!(self.done, self.total, "a finished read reaches its total");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn the_tally_is_monotone_capped_and_reaches_its_total() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let hook =
            Progress::new(move |d, t| s.lock().unwrap_or_else(|e| e.into_inner()).push((d, t)));
        let mut t = Tally::new(Some(hook), 100);
        t.add(40);
        t.add(70);
        t.finish();
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(seen, vec![(40, 100), (100, 100), (100, 100)]);
    }
}
