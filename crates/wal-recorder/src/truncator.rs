//! [`Truncator`]: truncation of the log that waits for the recorder's mirror.

#[cfg(doc)]
use crate::WalRecorder;
use crate::error::{RecorderError, Result};
use crate::hook::WalMirror;
use crate::latch;
use std::fmt;
use std::sync::Arc;
use wal_log::PoisonLatch;
use wal_log::{Lsn, Wal};

/// Truncates a recorder's log the way [`WalRecorder::truncate_up_to`] does, from anywhere:
/// `Clone`, `Send + Sync + 'static`, it owns what it needs. Get one with
/// [`WalRecorder::truncator`] and hand it to whatever truncates the log (wal-replay's
/// `Checkpointer::truncate_through` does), so that nothing truncates a mirrored log behind the
/// mirror's back.
///
/// With a mirror, a truncation first brings the mirror up to date
/// ([`WalMirror::persist_force`]), then removes only segments that the mirror holds through
/// their seal: up to the smaller of the fence and [`WalMirror::position`], like a replication
/// slot. A mirror that reports no position keeps the whole log. Failures poison the recorder,
/// as the recorder's own calls do.
#[derive(Clone)]
pub struct Truncator {
    wal: Arc<Wal>,
    latch: Arc<PoisonLatch>,
    mirror: Option<Arc<dyn WalMirror>>,
}

impl fmt::Debug for Truncator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Truncator")
            .field("wal", &self.wal)
            .field("mirror", &self.mirror)
            .finish_non_exhaustive()
    }
}

impl Truncator {
    pub(crate) fn new(
        wal: Arc<Wal>,
        latch: Arc<PoisonLatch>,
        mirror: Option<Arc<dyn WalMirror>>,
    ) -> Truncator {
        Truncator { wal, latch, mirror }
    }

    /// Removes whole log segments at or below `fence` ([`Wal::truncate_prefix`]), and with a
    /// mirror only those the mirror has durably copied through their seal. Returns how many
    /// were removed.
    ///
    /// # Errors
    /// [`RecorderError::Poisoned`]; [`RecorderError::Mirror`] when bringing the mirror up to
    /// date fails, and [`RecorderError::Wal`] when the truncation fails (both poison).
    pub fn truncate_up_to(&self, fence: Lsn) -> Result<usize> {
        latch::check(&self.latch, &self.wal)?;
        let fence = match &self.mirror {
            None => fence,
            Some(mirror) => {
                mirror.persist_force(self.wal.dir()).map_err(|e| {
                    latch::latch_mirror(&self.latch, &e);
                    RecorderError::Mirror(e)
                })?;
                match mirror.position() {
                    None => return Ok(0),
                    Some(p) => fence.min(p.lsn),
                }
            }
        };
        self.wal.truncate_prefix(fence).map_err(|e| {
            latch::latch_wal(&self.latch, &e);
            RecorderError::Wal(e)
        })
    }
}
