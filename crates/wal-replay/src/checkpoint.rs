//! Checkpoints: snapshot, marker, pruning, log truncation.
//!
//! # Why every crash point is safe
//!
//! [`Checkpointer::checkpoint`] runs these steps in order:
//!
//! 1. **Sync the log** so the fence is durable. A crash here changes nothing.
//! 2. **Write the snapshot** to `<fence>.snap.tmp`, fsync it, rename it to `<fence>.snap`,
//!    fsync the snapshot directory. A crash before the rename leaves a `.tmp` file that
//!    recovery never reads (the next checkpoint removes it); a crash after the rename but
//!    before the directory sync leaves either the old or the new directory entry, and both
//!    are complete files. The log is untouched, so every older snapshot still has its log.
//! 3. **Append a checkpoint marker** naming the fence. It is informational (statistics,
//!    `walctl`); recovery never needs it, so losing it is harmless.
//! 4. **Prune snapshots**: keep the newest `keep` valid ones (always including the one just
//!    written), delete older valid ones, rename unusable ones to `*.snap.corrupt`, fsync the
//!    directory. A crash in the middle leaves more snapshots than needed, never fewer than
//!    the kept set.
//! 5. **Truncate the log** up to the *oldest kept* snapshot's fence (whole sealed segments
//!    only; the log also keeps any segment an unfinished large transaction needs). This runs
//!    only after steps 2 and 4 are durable, so every kept snapshot, including the fallback
//!    used when the newest one turns out to be damaged, still has all of the log after its
//!    fence. Until two snapshots are kept (the first checkpoint) nothing is truncated: the
//!    whole log is then the fallback (with `keep` 1, which asks for no fallback, the one
//!    snapshot's fence is used). A crash in the middle leaves extra segments, which replay
//!    skips. A log copied
//!    elsewhere by a `wal_recorder` mirror is truncated through the recorder
//!    ([`Checkpointer::truncate_through`]), only up to what the mirror has durably copied.

use crate::error::{ReplayError, Result};
use crate::recover::DataDir;
use crate::snapshot::{SnapshotStore, VerifiedSnapshot};
use crate::state::StateMachine;
use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use wal_format::Lsn;
use wal_log::Wal;
use wal_recorder::mirror::Truncator;

/// How many snapshots a checkpoint keeps by default.
pub const DEFAULT_KEEP_SNAPSHOTS: usize = 2;

/// The steps of a checkpoint, in order. [`Checkpointer::checkpoint_until`] stops after one,
/// which is how tests reproduce a crash between two steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CheckpointStep {
    /// The snapshot is written, renamed into place and its directory synced.
    Snapshot,
    /// The checkpoint marker is in the log.
    Marker,
    /// Older snapshots are pruned.
    Prune,
    /// The log prefix is truncated: the whole checkpoint.
    Truncate,
}

/// What a checkpoint did.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointReport {
    /// The snapshot written.
    pub snapshot: PathBuf,
    /// Its fence.
    pub fence: Lsn,
    /// Its file's length (header and body): the size `walctl snapshot ls` and `ls -l` show.
    pub bytes: u64,
    /// LSN of the checkpoint marker, when written.
    pub marker_lsn: Option<Lsn>,
    /// Snapshots deleted because more than `keep` newer valid ones exist.
    pub pruned: Vec<PathBuf>,
    /// Unusable snapshots renamed to `*.snap.corrupt` (kept for inspection).
    pub set_aside: Vec<PathBuf>,
    /// Half-written snapshots of interrupted checkpoints that were removed.
    pub removed_temp: Vec<PathBuf>,
    /// The log was truncated up to this LSN (the oldest kept snapshot's fence), when it ran;
    /// with a mirror, segments it had not copied were kept ([`Checkpointer::truncate_through`]).
    pub truncated_to: Option<Lsn>,
    /// Segment files the truncation removed.
    pub segments_removed: usize,
    /// Time taken.
    pub elapsed: Duration,
}

/// Takes checkpoints of a state into a data directory whose log is open.
///
/// It is `Send + Sync`; checkpoints are serialized by an internal lock.
#[derive(Debug)]
pub struct Checkpointer {
    data: DataDir,
    wal: Arc<Wal>,
    store: SnapshotStore,
    keep: usize,
    /// Snapshots already verified by this process: name → file length.
    verified: Mutex<BTreeMap<PathBuf, u64>>,
    /// Truncates the log in the last step instead of [`Wal::truncate_prefix`].
    truncator: Option<Truncator>,
}

impl Checkpointer {
    /// A checkpointer for the data directory `root` whose log is `wal` (opened on
    /// `<root>/log`), keeping the newest `keep` snapshots (at least 1). Snapshot I/O goes
    /// through the log's [`wal_log::Vfs`].
    pub fn new(root: impl AsRef<Path>, wal: Arc<Wal>, keep: usize) -> Checkpointer {
        let data = DataDir::new(root.as_ref());
        let store = data.snapshots(wal.options().vfs.clone());
        Checkpointer {
            data,
            wal,
            store,
            keep: keep.max(1),
            verified: Mutex::new(BTreeMap::new()),
            truncator: None,
        }
    }

    /// Truncates the log in the last step through `truncator` (a recorder's,
    /// [`wal_recorder::WalRecorder::truncator`]) instead of directly: with a mirror attached
    /// to that recorder, the mirror is brought up to date and the log is truncated only up to
    /// what it has durably copied, so a mirrored log can be checkpointed whole. A failure
    /// poisons the recorder. [`crate::Durable`] does this.
    #[must_use]
    pub fn truncate_through(mut self, truncator: Truncator) -> Self {
        self.truncator = Some(truncator);
        self
    }

    /// The log.
    #[must_use]
    pub fn wal(&self) -> &Arc<Wal> {
        &self.wal
    }

    /// The snapshot store.
    #[must_use]
    pub fn store(&self) -> &SnapshotStore {
        &self.store
    }

    /// Checkpoints `state`, which must hold exactly the transactions committed at or before
    /// `fence` (and the caller must not let it change meanwhile). See the
    /// [module docs](self) for the steps and why a crash at any point is safe.
    ///
    /// A host whose writers commit concurrently should not read the fence itself: use
    /// [`Checkpointer::checkpoint_locked`], which reads it under the host's lock, together
    /// with the state it describes (or [`crate::Durable`], which does all of this).
    ///
    /// The last step truncates the log. A host that copies its log elsewhere (a
    /// `wal_recorder` mirror, which must see every segment whole) builds the checkpointer
    /// with [`Checkpointer::truncate_through`] its recorder's truncator, so that truncation
    /// waits for the mirror; truncating directly would remove segments the mirror has not
    /// copied (`DirMirror` then fails with `MirrorError::SegmentLost`).
    ///
    /// # Errors
    /// [`ReplayError::FenceNotDurable`] when `fence` is beyond what the log has made durable
    /// (after syncing it); snapshot, log or I/O errors. A failed checkpoint leaves a
    /// recoverable directory.
    pub fn checkpoint<S: StateMachine + ?Sized>(
        &self,
        state: &S,
        fence: Lsn,
    ) -> Result<CheckpointReport> {
        self.checkpoint_until(state, fence, CheckpointStep::Truncate)
    }

    /// [`Checkpointer::checkpoint`], stopping after step `last`: the directory is then as a
    /// crash right after that step would leave it. For crash tests and tools, and for hosts
    /// that must not truncate their log.
    ///
    /// # Errors
    /// As [`Checkpointer::checkpoint`].
    pub fn checkpoint_until<S: StateMachine + ?Sized>(
        &self,
        state: &S,
        fence: Lsn,
        last: CheckpointStep,
    ) -> Result<CheckpointReport> {
        self.run(|| (state, fence), last)
    }

    /// Checkpoints the state behind the host's own exclusion, with the fence taken under it:
    /// `lock` acquires the lock that every commit of the host runs under (the store lock its
    /// queries mutate the state and commit under), and the fence is the log's last LSN read
    /// while it is held. So the snapshot holds exactly the transactions up to its fence, and
    /// the host never reads an LSN by hand: a fence read before the lock, with a commit
    /// slipping in between, would put that commit both in the snapshot and after its fence,
    /// and recovery would apply it twice.
    ///
    /// The lock is held while the log is synced and the snapshot written, and released
    /// before the marker, pruning and truncation.
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use wal_replay::{checkpoint::Checkpointer, StateMachine, ApplyError};
    /// # #[derive(Default)] struct Counter(u64);
    /// # impl StateMachine for Counter {
    /// #     type Event = u64;
    /// #     fn apply(&mut self, _: wal_format::Lsn, e: Vec<u64>) -> Result<(), ApplyError> { self.0 += e.iter().sum::<u64>(); Ok(()) }
    /// #     fn write_snapshot(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> { out.write_all(&self.0.to_le_bytes()) }
    /// #     fn restore(&mut self, input: &mut dyn std::io::Read) -> std::io::Result<()> { let mut b = [0; 8]; input.read_exact(&mut b)?; self.0 = u64::from_le_bytes(b); Ok(()) }
    /// # }
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// let mut state = Counter::default();
    /// let recovered = wal_replay::recover(dir.path(), &mut state, Default::default())?;
    /// let wal = Arc::new(recovered.wal);
    /// let store = Mutex::new(state);
    /// let checkpointer = Checkpointer::new(dir.path(), wal, 2);
    /// let report = checkpointer.checkpoint_locked(|| store.lock().unwrap_or_else(|e| e.into_inner()))?;
    /// assert_eq!(report.fence, checkpointer.wal().last_lsn().prev()); // the marker came after
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Checkpointer::checkpoint`].
    pub fn checkpoint_locked<S, G>(&self, lock: impl FnOnce() -> G) -> Result<CheckpointReport>
    where
        S: StateMachine + ?Sized,
        G: Deref<Target = S>,
    {
        self.checkpoint_locked_until(lock, CheckpointStep::Truncate)
    }

    /// [`Checkpointer::checkpoint_locked`], stopping after step `last`.
    ///
    /// # Errors
    /// As [`Checkpointer::checkpoint`].
    pub fn checkpoint_locked_until<S, G>(
        &self,
        lock: impl FnOnce() -> G,
        last: CheckpointStep,
    ) -> Result<CheckpointReport>
    where
        S: StateMachine + ?Sized,
        G: Deref<Target = S>,
    {
        self.run(
            || {
                let guard = lock();
                let fence = self.wal.last_lsn();
                (guard, fence)
            },
            last,
        )
    }

    /// The steps, with the state and its fence taken by `state_at_fence` once the work that
    /// needs no consistent state is done, and released once the snapshot is written.
    fn run<S, G>(
        &self,
        state_at_fence: impl FnOnce() -> (G, Lsn),
        last: CheckpointStep,
    ) -> Result<CheckpointReport>
    where
        S: StateMachine + ?Sized,
        G: Deref<Target = S>,
    {
        let started = Instant::now();
        self.data.check_owns_log(self.wal.dir())?;
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        let mut removed_temp = Vec::new();
        // Half-written snapshots of interrupted checkpoints.
        for tmp in self.store.list()?.temp_files {
            self.store.remove(&tmp)?;
            removed_temp.push(tmp);
        }
        let (state, fence) = state_at_fence();
        let _span = tracing::info_span!("replay.checkpoint", fence = fence.0).entered();
        self.wal.sync()?;
        let durable = self.wal.durable_lsn();
        if fence > durable {
            return Err(ReplayError::FenceNotDurable { fence, durable });
        }
        let mut report = CheckpointReport {
            snapshot: PathBuf::new(),
            fence,
            bytes: 0,
            marker_lsn: None,
            pruned: Vec::new(),
            set_aside: Vec::new(),
            removed_temp,
            truncated_to: None,
            segments_removed: 0,
            elapsed: Duration::ZERO,
        };
        let snap = self.store.write(&*state, self.wal.log_id(), fence)?;
        drop(state);
        verified.insert(snap.file.path.clone(), snap.file.file_len);
        report.snapshot = snap.file.path.clone();
        report.bytes = snap.file.file_len;
        if last >= CheckpointStep::Marker {
            report.marker_lsn = Some(self.wal.checkpoint_marker(fence)?);
        }
        if last >= CheckpointStep::Prune {
            let kept = self.prune(&snap, &mut verified, &mut report)?;
            // Truncate only behind a fallback: while fewer snapshots than two are kept (the
            // first checkpoint), the whole log is the fallback for a newest snapshot found
            // damaged later, so it stays. `keep == 1` asks for no fallback.
            let has_fallback = kept.len() >= 2 || self.keep == 1;
            if last >= CheckpointStep::Truncate && has_fallback {
                let oldest = kept.iter().copied().min().unwrap_or(fence);
                report.segments_removed = match &self.truncator {
                    Some(t) => t.truncate_up_to(oldest)?,
                    None => self.wal.truncate_prefix(oldest)?,
                };
                report.truncated_to = Some(oldest);
            }
        }
        report.elapsed = started.elapsed();
        tracing::info!(
            fence = fence.0,
            bytes = report.bytes,
            pruned = report.pruned.len(),
            segments_removed = report.segments_removed,
            "checkpoint"
        );
        Ok(report)
    }

    /// Keeps the newest `keep` valid snapshots, deletes older valid ones and sets aside
    /// unusable ones. Returns the fences kept.
    fn prune(
        &self,
        newest: &VerifiedSnapshot,
        verified: &mut BTreeMap<PathBuf, u64>,
        report: &mut CheckpointReport,
    ) -> Result<Vec<Lsn>> {
        let listing = self.store.list()?;
        let mut kept = Vec::new();
        let mut changed = false;
        for file in &listing.snapshots {
            let ok = if verified.get(&file.path) == Some(&file.file_len) {
                true
            } else {
                match self.store.verify(file, Some(self.wal.log_id())) {
                    Ok(_) => {
                        verified.insert(file.path.clone(), file.file_len);
                        true
                    }
                    Err(ReplayError::BadSnapshot { reason, .. }) => {
                        tracing::warn!(snapshot = %file.path.display(), %reason, "setting unusable snapshot aside");
                        false
                    }
                    Err(e) => return Err(e),
                }
            };
            // Never touch the snapshot just written, whatever its position.
            if file.path == newest.file.path {
                kept.push(file.fence);
                continue;
            }
            if !ok {
                report.set_aside.push(self.store.set_aside(&file.path)?);
                verified.remove(&file.path);
                changed = true;
            } else if kept.len() < self.keep && file.fence <= newest.header.fence {
                kept.push(file.fence);
            } else if file.fence > newest.header.fence {
                // A valid snapshot newer than this checkpoint (its fence is ahead of ours):
                // leave it alone; it is not ours to judge.
                kept.push(file.fence);
            } else {
                self.store.remove(&file.path)?;
                verified.remove(&file.path);
                report.pruned.push(file.path.clone());
                changed = true;
            }
        }
        if changed {
            self.store.sync()?;
        }
        Ok(kept)
    }
}
