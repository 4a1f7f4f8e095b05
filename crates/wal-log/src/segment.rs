//! File naming and directory classification.

use wal_format::{Lsn, SegmentSeq};

/// Name of the lock file.
pub const LOCK_FILE: &str = "LOCK";
/// Name of the preallocated next segment, before it gets its header and its final name.
pub const PREALLOC_FILE: &str = "prealloc.tmp";
/// Prefix of a segment file kept for reuse after [`crate::Wal::truncate_prefix`]:
/// `recycled-<old sequence number>.tmp`. It holds only truncated data.
pub const RECYCLED_PREFIX: &str = "recycled-";
/// Suffix of recycled segment files.
pub const RECYCLED_SUFFIX: &str = ".tmp";
/// Suffix of segment files.
pub const SEGMENT_SUFFIX: &str = ".wal";

/// File name under which truncated segment `seq` waits to be reused.
#[must_use]
pub fn recycled_file_name(seq: SegmentSeq) -> String {
    format!("{RECYCLED_PREFIX}{:020}{RECYCLED_SUFFIX}", seq.0)
}

/// File name of segment `seq`: 20 decimal digits and `.wal`, so names sort in sequence order.
#[must_use]
pub fn segment_file_name(seq: SegmentSeq) -> String {
    format!("{:020}{SEGMENT_SUFFIX}", seq.0)
}

/// What a directory entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A segment file.
    Segment(SegmentSeq),
    /// The lock file.
    Lock,
    /// The preallocated next segment.
    Prealloc,
    /// A truncated segment waiting to be reused as a new one.
    Recycled,
    /// Bytes moved aside by recovery or repair (`<segment>.wal.<what>`); kept, never read.
    Aside,
    /// Anything else: not ours.
    Foreign,
}

/// Classifies one directory entry name.
#[must_use]
pub fn classify(name: &str) -> Entry {
    if name == LOCK_FILE {
        return Entry::Lock;
    }
    if name == PREALLOC_FILE {
        return Entry::Prealloc;
    }
    if let Some(d) = name
        .strip_prefix(RECYCLED_PREFIX)
        .and_then(|r| r.strip_suffix(RECYCLED_SUFFIX))
        && d.len() == 20
        && d.bytes().all(|b| b.is_ascii_digit())
    {
        return Entry::Recycled;
    }
    let digits = name
        .get(..20)
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
    match (digits, name.get(20..)) {
        (Some(d), Some(SEGMENT_SUFFIX)) => d
            .parse()
            .map_or(Entry::Foreign, |n| Entry::Segment(SegmentSeq(n))),
        (Some(_), Some(rest)) if rest.starts_with(".wal.") && rest.len() > 5 => Entry::Aside,
        _ => Entry::Foreign,
    }
}

/// What the log knows about one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Sequence number.
    pub seq: SegmentSeq,
    /// LSN of its first frame.
    pub base_lsn: Lsn,
    /// LSN of its last frame, or `base_lsn - 1` when it holds none yet.
    pub last_lsn: Lsn,
    /// Bytes of frames and header in it (not counting preallocated space).
    pub bytes: u64,
    /// Whether it ends with a seal frame.
    pub sealed: bool,
    /// Begin LSN of the oldest fragmented transaction open when it started (header field).
    pub oldest_open_lsn: Lsn,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_classify() {
        let n = segment_file_name(SegmentSeq(42));
        assert_eq!(n, "00000000000000000042.wal");
        assert_eq!(classify(&n), Entry::Segment(SegmentSeq(42)));
        assert_eq!(classify("00000000000000000042.wal.torn-100"), Entry::Aside);
        assert_eq!(classify("LOCK"), Entry::Lock);
        assert_eq!(classify("prealloc.tmp"), Entry::Prealloc);
        let r = recycled_file_name(SegmentSeq(7));
        assert_eq!(r, "recycled-00000000000000000007.tmp");
        assert_eq!(classify(&r), Entry::Recycled);
        for foreign in [
            "notes.txt",
            "0042.wal",
            "00000000000000000042.wal.",
            "x0000000000000000042.wal",
            "recycled-7.tmp",
            "recycled-0000000000000000000x.tmp",
        ] {
            assert_eq!(classify(foreign), Entry::Foreign, "{foreign}");
        }
    }
}
