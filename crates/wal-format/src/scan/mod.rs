//! Turning a segment's bytes back into frames, whole ([`SegmentScanner`], [`scan_frames`]) or a
//! chunk at a time from a file ([`ChunkedScanner`] over [`ReadAt`], through a [`ReadWindow`]),
//! and how a scan ended ([`ScanEnd`]).
//!
//! Four private modules, depending one way: `end` (the verdict and the rules that decide it),
//! the two scanners built on it, `slice` and `chunked`, which do not know each other, and
//! `window`, the positional reads and the reused read buffer `chunked` reads through. This module only gives them their
//! public paths.

mod chunked;
mod end;
mod slice;
mod window;

pub use chunked::{ChunkedScanner, DEFAULT_CHUNK};
pub use end::ScanEnd;
pub use slice::{SegmentScanner, scan_frames};
pub use window::{ReadAt, ReadWindow};
