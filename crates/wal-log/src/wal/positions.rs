//! How far the log is written and how far it is durable: the one place that moves them.
//!
//! Each position is kept twice: as a [`Point`] (segment and offset, for the syncer and for
//! readers) under a lock — the written point in `FlushState::written` under `flush`, the
//! durable one in `Inner::durable` — and as an LSN in an atomic (`Inner::written_lsn`,
//! `Inner::durable_lsn`) for the checks that take no lock. The functions here change both
//! copies of a position together, while holding the lock of its point, and assert in debug
//! builds what must hold: neither goes back, and `durable <= written <= assigned`. (Opening
//! a log sets them before anything is appended.)

use super::group_commit::FlushState;
use super::{Inner, Point, lock};
use crate::vfs::VfsFile;
use std::sync::Arc;
use std::sync::atomic::Ordering;

impl Inner {
    /// Records that the log is written up to `p`, in `file` (the open, a flush's write).
    pub(crate) fn set_written(&self, p: Point, file: Arc<dyn VfsFile>) {
        let mut f = lock(&self.flush);
        self.record_written(&mut f, p);
        f.written_file = Some(file);
    }

    /// Moves the written point to `p` and its LSN with it; the caller holds the flush lock
    /// (`f`). The written point's file stays as it was (a rotation moves the point to the
    /// next segment before anything is written in it).
    pub(super) fn record_written(&self, f: &mut FlushState, p: Point) {
        debug_assert!(p.lsn >= f.written.lsn, "the written point went back");
        debug_assert!(
            p.lsn.0 <= self.assigned_lsn.load(Ordering::Acquire),
            "written past the last LSN assigned"
        );
        f.written = p;
        self.written_lsn.store(p.lsn.0, Ordering::Release);
    }

    /// Raises the durable point to `point`, a written point an fsync just covered (never
    /// lowers it: a rotation may have moved it further).
    pub(super) fn advance_durable(&self, point: Point) {
        let mut d = lock(&self.durable);
        debug_assert!(
            point.lsn.0 <= self.written_lsn.load(Ordering::Acquire),
            "durable past written"
        );
        if point.lsn > d.lsn || (point.lsn == d.lsn && point.seq > d.seq) {
            *d = point;
            self.durable_lsn.store(point.lsn.0, Ordering::Release);
        }
    }

    /// Moves the written and the durable point to `p` at once: a rotation, once its seal is
    /// synced. The written point moves first, so durable never passes written.
    pub(super) fn set_written_and_durable(&self, p: Point) {
        self.record_written(&mut lock(&self.flush), p);
        let mut d = lock(&self.durable);
        debug_assert!(p.lsn >= d.lsn, "the durable point went back");
        *d = p;
        self.durable_lsn.store(p.lsn.0, Ordering::Release);
    }
}
