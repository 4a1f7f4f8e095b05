//! The visitor seam of a scan: what [`crate::Wal::open_visit`] and
//! [`crate::inspect::inspect_visit`] show a caller's [`ScanVisitor`] (the frames of the valid
//! prefix, each segment's header, the recovered end), and the error either returns.

use crate::error::{Result, WalError};
use crate::open_report::OpenReport;
use crate::recovery_scan::{DirFrame, RawVisit, Visit};
use std::fmt;
use wal_format::SegmentHeader;

/// An error of [`crate::Wal::open_visit`] or [`inspect_visit`](crate::inspect::inspect_visit): the log's own, or the one the
/// visitor returned. Not `#[non_exhaustive]`, unlike the error enums: an error comes from the
/// log or from the visitor, so there is never a third case (`docs/decisions/0008-errors.md`).
#[derive(Debug)]
pub enum VisitError<E> {
    /// Opening or scanning the log failed.
    Wal(WalError),
    /// The visitor returned this error for a frame; the scan stopped there.
    Visitor(E),
}

impl<E> From<WalError> for VisitError<E> {
    fn from(e: WalError) -> Self {
        VisitError::Wal(e)
    }
}

impl<E: fmt::Display> fmt::Display for VisitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VisitError::Wal(e) => e.fmt(f),
            VisitError::Visitor(e) => write!(f, "frame visitor: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for VisitError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            VisitError::Wal(e) => Some(e),
            VisitError::Visitor(e) => Some(e),
        }
    }
}

/// Sees what a scan of the log verifies: [`crate::Wal::open_visit`] and [`inspect_visit`](crate::inspect::inspect_visit)
/// call it as they read the log, so a caller can build from the log during that single read.
///
/// Any `FnMut(DirFrame) -> Result<(), E>` closure is a visitor of frames only.
pub trait ScanVisitor {
    /// The error that stops the scan.
    type Error;

    /// The header of the next segment, once it has decoded and continues the log (its log id,
    /// sequence number and first LSN follow the previous segment's); its frames follow. The
    /// default does nothing.
    ///
    /// # Errors
    /// Any error stops the scan, which then returns it.
    fn segment(&mut self, header: &SegmentHeader) -> std::result::Result<(), Self::Error> {
        let _ = header;
        Ok(())
    }

    /// One verified frame of the log's valid prefix, in LSN order.
    ///
    /// # Errors
    /// Any error stops the scan, which then returns it.
    fn frame(&mut self, frame: DirFrame) -> std::result::Result<(), Self::Error>;

    /// Called by [`Wal::open_visit`](crate::Wal::open_visit) once recovery has executed the
    /// log's plan and before the open appends anything: `open` says what it kept and moved
    /// aside (its `last_lsn` is the last frame kept). The abort frames for transactions a
    /// crash left unfinished take the LSNs after `open.last_lsn`. A caller that must act on
    /// the end before those LSNs are reused (set aside what was derived from frames now lost)
    /// does it here. An error stops the open, which then returns it. Not called by read-only
    /// scans. The default does nothing.
    ///
    /// # Errors
    /// Any error stops the open.
    fn recovered(&mut self, open: &OpenReport) -> std::result::Result<(), Self::Error> {
        let _ = open;
        Ok(())
    }
}

impl<E, F: FnMut(DirFrame) -> std::result::Result<(), E>> ScanVisitor for F {
    type Error = E;
    fn frame(&mut self, frame: DirFrame) -> std::result::Result<(), E> {
        self(frame)
    }
}

/// A [`ScanVisitor`] behind [`RawVisit`], keeping the first error.
struct Keep<'v, V: ScanVisitor + ?Sized> {
    visitor: &'v mut V,
    failed: Option<V::Error>,
}

impl<V: ScanVisitor + ?Sized> RawVisit for Keep<'_, V> {
    fn segment(&mut self, header: &SegmentHeader) -> bool {
        match self.visitor.segment(header) {
            Ok(()) => true,
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }
    fn frame(&mut self, frame: DirFrame) -> bool {
        match self.visitor.frame(frame) {
            Ok(()) => true,
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }
    fn recovered(&mut self, open: &OpenReport) -> bool {
        match self.visitor.recovered(open) {
            Ok(()) => true,
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }
}

/// Runs `scan` with `visitor` behind a [`Visit`]; a visitor error replaces whatever error
/// the scan then returned.
pub(crate) fn with_visitor<T, V: ScanVisitor + ?Sized>(
    visitor: &mut V,
    scan: impl FnOnce(Visit<'_, '_>) -> Result<T>,
) -> std::result::Result<T, VisitError<V::Error>> {
    let mut keep = Keep {
        visitor,
        failed: None,
    };
    let r = scan(&mut keep);
    match (r, keep.failed) {
        (_, Some(e)) => Err(VisitError::Visitor(e)),
        (Ok(t), None) => Ok(t),
        (Err(e), None) => Err(VisitError::Wal(e)),
    }
}
