//! The look before the scan: the data directory listed ([`Found::look`]), every segment's
//! header and the first choice of snapshot ([`look_before`]), and looking again when the log
//! changed under the look ([`plan_again_or_fail`]).

use super::data_dir::DataDir;
use super::facts::SnapshotFacts;
use super::pass::{Before, PassError};
use super::plan::{Schemas, first_choice};
use crate::error::{ReplayError, Result, corrupt};
use crate::logscan::{list_segments, read_header, start_index};
use crate::snapshot::{SnapshotListing, SnapshotStore};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use wal_format::{Lsn, SegmentSeq};
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
pub(super) fn look_before(
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

/// After the single pass stopped the open (or the read-only scan) with `e`: returns `Ok` to plan
/// again when the log's first segment is no longer the one planned from (nothing was applied
/// yet), up to three times; else the error (`during` says what kept being disturbed).
pub(super) fn plan_again_or_fail(
    e: VisitError<PassError>,
    attempts: &mut u32,
    log_dir: &Path,
    during: &str,
) -> Result<()> {
    match e {
        VisitError::Wal(e) => Err(e.into()),
        VisitError::Visitor(PassError::Replay(e)) => Err(e),
        VisitError::Visitor(PassError::Changed) if *attempts < 3 => {
            *attempts += 1;
            Ok(())
        }
        VisitError::Visitor(PassError::Changed) => Err(corrupt(
            log_dir,
            0,
            format!("the log's first segment kept changing during {during}"),
        )),
    }
}
