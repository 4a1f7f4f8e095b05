//! The names of the files in a log directory. [`LogFile::name`] names every file the log
//! writes (segments, the pieces recovery moves aside, recycled files, the lock, the
//! preallocated file); [`classify`] reads a name back.

use wal_format::SegmentSeq;

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

/// A file of a log directory, by what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFile {
    /// Segment `seq`: 20 decimal digits and `.wal`, so names sort in sequence order.
    Segment(SegmentSeq),
    /// The torn write recovery cut from segment `seq` at `offset`:
    /// `<segment>.torn-<offset>`, or `<segment>.torn-<offset>.<n>` when `n` files of the
    /// names before exist.
    TornPiece {
        /// The segment cut.
        seq: SegmentSeq,
        /// Where the cut is.
        offset: u64,
        /// How many earlier files took the names before.
        n: u32,
    },
    /// The bytes a salvage cut from segment `seq` at `offset`:
    /// `<segment>.salvaged-<offset>[.<n>]`.
    SalvagedPiece {
        /// The segment cut.
        seq: SegmentSeq,
        /// Where the cut is.
        offset: u64,
        /// How many earlier files took the names before.
        n: u32,
    },
    /// A whole segment a salvage renamed aside: `<segment>.salvaged[.<n>]`.
    SalvagedSegment {
        /// The segment.
        seq: SegmentSeq,
        /// How many earlier files took the names before.
        n: u32,
    },
    /// Truncated segment `seq` waiting to be reused: `recycled-<seq>.tmp`.
    Recycled(SegmentSeq),
    /// The lock file.
    Lock,
    /// The preallocated next segment.
    Prealloc,
}

impl LogFile {
    /// The file that holds the bytes recovery cuts from segment `seq` at `offset`: the torn
    /// write ([`LogFile::TornPiece`]), or everything after the cut when the log is salvaged
    /// ([`LogFile::SalvagedPiece`]).
    #[must_use]
    pub fn cut_piece(seq: SegmentSeq, offset: u64, salvage: bool) -> LogFile {
        if salvage {
            LogFile::SalvagedPiece { seq, offset, n: 0 }
        } else {
            LogFile::TornPiece { seq, offset, n: 0 }
        }
    }

    /// The file's name in the log directory.
    #[must_use]
    pub fn name(&self) -> String {
        let numbered = |base: String, n: u32| {
            if n == 0 { base } else { format!("{base}.{n}") }
        };
        let segment = |seq: SegmentSeq| format!("{:020}{SEGMENT_SUFFIX}", seq.0);
        match *self {
            LogFile::Segment(seq) => segment(seq),
            LogFile::TornPiece { seq, offset, n } => {
                numbered(format!("{}.torn-{offset}", segment(seq)), n)
            }
            LogFile::SalvagedPiece { seq, offset, n } => {
                numbered(format!("{}.salvaged-{offset}", segment(seq)), n)
            }
            LogFile::SalvagedSegment { seq, n } => {
                numbered(format!("{}.salvaged", segment(seq)), n)
            }
            LogFile::Recycled(seq) => format!("{RECYCLED_PREFIX}{:020}{RECYCLED_SUFFIX}", seq.0),
            LogFile::Lock => LOCK_FILE.to_owned(),
            LogFile::Prealloc => PREALLOC_FILE.to_owned(),
        }
    }

    /// The same file with the `n`th name of its kind (pieces and salvaged segments only;
    /// other files have one name).
    #[must_use]
    pub(crate) fn numbered(self, n: u32) -> LogFile {
        match self {
            LogFile::TornPiece { seq, offset, .. } => LogFile::TornPiece { seq, offset, n },
            LogFile::SalvagedPiece { seq, offset, .. } => LogFile::SalvagedPiece { seq, offset, n },
            LogFile::SalvagedSegment { seq, .. } => LogFile::SalvagedSegment { seq, n },
            other => other,
        }
    }

    /// The first name of this kind, counting `n` up from 0, for which `taken` is false: a
    /// piece never replaces a file an earlier recovery made.
    ///
    /// # Errors
    /// The first error of `taken`.
    pub(crate) fn first_free<E>(
        self,
        mut taken: impl FnMut(&str) -> std::result::Result<bool, E>,
    ) -> std::result::Result<String, E> {
        let mut n = 0;
        loop {
            let name = self.numbered(n).name();
            if !taken(&name)? {
                return Ok(name);
            }
            n += 1;
        }
    }
}

/// File name under which truncated segment `seq` waits to be reused.
#[must_use]
pub fn recycled_file_name(seq: SegmentSeq) -> String {
    LogFile::Recycled(seq).name()
}

/// File name of segment `seq`: 20 decimal digits and `.wal`, so names sort in sequence order.
#[must_use]
pub fn segment_file_name(seq: SegmentSeq) -> String {
    LogFile::Segment(seq).name()
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
    /// `lost+found` (present whenever the log directory is the root of its own volume) or a
    /// hidden file (a name starting with `.`: an editor's swap file, a backup tool's marker):
    /// tolerated and never read.
    Ignored,
    /// Anything else: not ours. Read-only scans list it and go on; an open refuses it.
    Foreign,
}

/// Classifies one directory entry name.
#[must_use]
pub fn classify(name: &str) -> Entry {
    if name == "lost+found" || name.starts_with('.') {
        return Entry::Ignored;
    }
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
        for ignored in ["lost+found", ".00000000000000000042.wal.swp", ".nfs0001"] {
            assert_eq!(classify(ignored), Entry::Ignored, "{ignored}");
        }
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

    #[test]
    fn pieces_are_named_after_their_segment() {
        let seq = SegmentSeq(8);
        let torn = LogFile::TornPiece {
            seq,
            offset: 4096,
            n: 0,
        };
        assert_eq!(torn.name(), "00000000000000000008.wal.torn-4096");
        assert_eq!(
            torn.numbered(2).name(),
            "00000000000000000008.wal.torn-4096.2"
        );
        let piece = LogFile::SalvagedPiece {
            seq,
            offset: 64,
            n: 1,
        };
        assert_eq!(piece.name(), "00000000000000000008.wal.salvaged-64.1");
        let whole = LogFile::SalvagedSegment { seq, n: 0 };
        assert_eq!(whole.name(), "00000000000000000008.wal.salvaged");
        assert_eq!(
            whole.numbered(1).name(),
            "00000000000000000008.wal.salvaged.1"
        );
        for f in [torn, piece, whole] {
            assert_eq!(classify(&f.name()), Entry::Aside);
        }
        assert_eq!(LogFile::Lock.name(), LOCK_FILE);
        assert_eq!(LogFile::Prealloc.name(), PREALLOC_FILE);
        let taken = ["00000000000000000008.wal.salvaged".to_owned()];
        let free = whole.first_free(|n| Ok::<_, ()>(taken.iter().any(|t| t == n)));
        assert_eq!(free, Ok("00000000000000000008.wal.salvaged.1".to_owned()));
    }
}
