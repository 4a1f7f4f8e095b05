//! The look before the scan: the data directory listed ([`Found::look`]), every segment's
//! header and the first choice of snapshot ([`look_before`]), and the attempts both entry
//! points make, looking again when the log changed under the look ([`Attempts`]).

use super::data_dir::DataDir;
use super::facts::SnapshotFacts;
use super::pass::{Before, OnePass, PassError};
use super::plan::{Schemas, first_choice};
use crate::error::{ReplayError, Result, corrupt};
use crate::logscan::{list_segments, read_header, start_index};
use crate::snapshot::{SnapshotListing, SnapshotStore};
use crate::state::StateMachine;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use wal_format::{Decoder, Lsn, SegmentSeq};
use wal_log::layout::segment_file_name;
use wal_log::{Vfs, VisitError};

/// What the entry points find before they plan: the directory is a data directory (or may
/// be created), its snapshots, and its log's segments.
pub(super) struct Found {
    pub(super) store: SnapshotStore,
    pub(super) listing: SnapshotListing,
    pub(super) log_dir: PathBuf,
    pub(super) segments: Vec<SegmentSeq>,
}

impl Found {
    /// Lists the data directory `data`. A missing root is `NotFound` unless it may be
    /// created; a log directory (or snapshot directory) passed as the root is refused; so are
    /// snapshots without a log (`LogMissing`).
    pub(super) fn look(data: &DataDir, vfs: &Arc<dyn Vfs>, may_create: bool) -> Result<Found> {
        match vfs.list(data.root()) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound && may_create => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ReplayError::NotFound {
                    dir: data.root().to_path_buf(),
                });
            }
            Err(e) => return Err(crate::error::io_err("list", data.root())(e)),
        }
        data.check_not_a_log_dir(&**vfs)?;
        let store = data.snapshots(vfs.clone());
        let listing = store.list()?;
        let log_dir = data.log_dir();
        let segments = match list_segments(&**vfs, &log_dir) {
            Ok(s) => s,
            Err(ReplayError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        if segments.is_empty() && !listing.snapshots.is_empty() {
            return Err(ReplayError::LogMissing { dir: log_dir });
        }
        Ok(Found {
            store,
            listing,
            log_dir,
            segments,
        })
    }
}

/// Looks at the data directory before the log is opened: every segment's header (the first
/// for the log's id and first LSN; all for their event schemas, which the state machine must
/// read) and the snapshots, for the first choice of snapshot (whose schema it must read too)
/// and the segment replay from it starts in. Returns that, and the older event schemas the
/// log holds (the open is told to accept them).
fn look_before(
    store: &SnapshotStore,
    listing: SnapshotListing,
    vfs: &dyn Vfs,
    log_dir: &Path,
    schemas: Schemas,
    target: Option<Lsn>,
) -> Result<(Before, Vec<u32>)> {
    let t = Instant::now();
    let segs = match list_segments(vfs, log_dir) {
        Ok(s) => s,
        Err(ReplayError::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut first = None;
    let mut older_schemas = Vec::new();
    for (i, seq) in segs.iter().enumerate() {
        let path = log_dir.join(segment_file_name(*seq));
        let Some(h) = read_header(vfs, &path) else {
            continue;
        };
        if i == 0 {
            first = Some(h);
        }
        schemas.check(&path, h.payload_schema)?;
        if h.payload_schema != schemas.own && !older_schemas.contains(&h.payload_schema) {
            older_schemas.push(h.payload_schema);
        }
    }
    let mut snaps = SnapshotFacts::new(listing);
    let mut before = Before {
        first,
        snaps: SnapshotFacts::new(SnapshotListing::default()),
        first_choice: None,
        start: SegmentSeq(0),
        elapsed: t.elapsed(),
    };
    if let Some(h) = first {
        snaps.read_needed(store, h.log_id, target, None)?;
        let choice = first_choice(&snaps, target);
        if let Some(c) = &choice {
            schemas.check(&c.file.path, c.header.event_schema)?;
        }
        let fence = choice.as_ref().map_or(Lsn::ZERO, |c| c.header.fence);
        before.start = segs[start_index(vfs, log_dir, &segs, fence.next())];
        before.first_choice = choice;
    }
    before.snaps = snaps;
    before.elapsed = t.elapsed();
    Ok((before, older_schemas))
}

/// The attempts of one entry point (recovery or the read-only replay) at its single pass.
/// Each attempt looks before the scan and builds the pass on that look; one the log's change
/// stopped before anything was applied is made again, up to three times.
pub(super) struct Attempts<'a> {
    store: &'a SnapshotStore,
    log_dir: &'a Path,
    /// The listing [`Found::look`] made, for the first attempt; later ones list again.
    listing: Option<SnapshotListing>,
    /// Attempts made again so far.
    again: u32,
    /// What the entry point is doing, for the error when the log keeps changing.
    during: &'static str,
}

impl<'a> Attempts<'a> {
    /// The attempts over `store` and the log in `log_dir`, the first from `listing`.
    pub(super) fn new(
        (store, log_dir): (&'a SnapshotStore, &'a Path),
        listing: SnapshotListing,
        during: &'static str,
    ) -> Self {
        Attempts {
            store,
            log_dir,
            listing: Some(listing),
            again: 0,
            during,
        }
    }

    /// Looks before the scan ([`look_before`]) and builds this attempt's single pass on it.
    /// Returns the pass and the older event schemas the log holds.
    ///
    /// # Errors
    /// As [`look_before`], or listing the snapshots again.
    pub(super) fn pass<'p, S: StateMachine + ?Sized>(
        &mut self,
        vfs: &dyn Vfs,
        (state, codec): (&'p mut S, &'p dyn Decoder<S::Event>),
        limits: (Option<Lsn>, u64),
        read_only: bool,
    ) -> Result<(OnePass<'p, S>, Vec<u32>)>
    where
        'a: 'p,
    {
        // What changed the log may have changed the snapshots too: list them again.
        let listing = match self.listing.take() {
            Some(listing) => listing,
            None => self.store.list()?,
        };
        let schemas = Schemas::of::<S>();
        let (before, older) =
            look_before(self.store, listing, vfs, self.log_dir, schemas, limits.0)?;
        let pass = OnePass::new((state, codec), self.store, before, limits, read_only);
        Ok((pass, older))
    }

    /// After the single pass stopped the open (or the read-only scan) with `e`: returns `Ok`
    /// to make another attempt when the log's first segment is no longer the one looked at
    /// (nothing was applied yet), up to three times; else the error.
    ///
    /// # Errors
    /// The open's or the pass's error; corruption when the first segment kept changing.
    pub(super) fn again_or_fail(&mut self, e: VisitError<PassError>) -> Result<()> {
        match e {
            VisitError::Wal(e) => Err(e.into()),
            VisitError::Visitor(PassError::Replay(e)) => Err(e),
            VisitError::Visitor(PassError::Changed) if self.again < 3 => {
                self.again += 1;
                Ok(())
            }
            VisitError::Visitor(PassError::Changed) => Err(corrupt(
                self.log_dir,
                0,
                format!(
                    "the log's first segment kept changing during {}",
                    self.during
                ),
            )),
        }
    }
}
