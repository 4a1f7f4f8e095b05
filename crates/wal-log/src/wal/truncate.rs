//! Truncation of the log's prefix, and the oldest LSN the log still holds.

use super::{Inner, Wal, lock};
use crate::error::{Result, io_err};
use crate::layout::{recycled_file_name, segment_file_name};
use crate::segment::SegmentInfo;
use std::sync::atomic::Ordering;
use wal_format::Lsn;

impl Inner {
    /// See [`Wal::oldest_retained_lsn`].
    pub(crate) fn oldest_retained(&self) -> Lsn {
        let first = lock(&self.segments)
            .first()
            .map_or(Lsn::FIRST, |s| s.base_lsn);
        first.max(Lsn(self.retained_from.load(Ordering::Acquire)))
    }
}

impl Wal {
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
    /// ([`Options::recycle_segments`](crate::Options::recycle_segments)).
    ///
    /// # Errors
    /// [`WalError::Poisoned`](crate::WalError::Poisoned); a remove, rename or directory-sync error
    /// (which poisons the log).
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
            debug_assert!(
                n == 0 || !segs.is_empty(),
                "truncation took the last segment"
            );
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
                // One directory sync per segment, oldest first: unsynced entry changes may
                // persist in any order, and two unsynced removals could leave the older
                // segment without the newer one, a gap that open refuses.
                if let Err(e) = self.inner.opts.vfs.sync_dir(&self.inner.dir) {
                    return Err(self.inner.poison(io_err("fsync dir", &self.inner.dir)(e)));
                }
            }
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
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::tests::open;
    use super::*;
    use crate::options::SyncPolicy;
    use crate::sim::SimVfs;
    use wal_format::SegmentSeq;

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
}
