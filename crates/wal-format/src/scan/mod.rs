//! Turning a segment's bytes back into frames, whole ([`SegmentScanner`], [`scan_frames`]) or a
//! chunk at a time from a file ([`ChunkedScanner`] over [`ReadAt`]), and how a scan ended
//! ([`ScanEnd`]).
//!
//! Three private modules, depending one way: `end` (the verdict and the rules that decide it),
//! and the two scanners built on it, `slice` and `chunked`, which do not know each other. This
//! module only gives them their public paths.

mod chunked;
mod end;
mod slice;

pub use chunked::{ChunkedScanner, DEFAULT_CHUNK, ReadAt};
pub use end::ScanEnd;
pub use slice::{SegmentScanner, scan_frames};
