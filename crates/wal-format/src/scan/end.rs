//! How a scan of one segment ends ([`ScanEnd`]) and the rules that decide it, shared by the
//! whole-buffer scanner (`slice.rs`) and the chunked one (`chunked.rs`) so that both reach the
//! same verdict (same variant, offset and reason) on the same bytes. Neither scanner imports
//! the other; both import this.

use crate::frame::{FRAME_HEADER_LEN, Frame, FrameKind};
use crate::lsn::{Lsn, SegmentSeq};
use std::fmt;

/// How a scan of one segment ended. Exactly one of these ends every scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// The frames end cleanly at `offset`: the data ends there, or only zeros (preallocated
    /// space) follow. `sealed` names the next segment when the last frame was a `Seal`.
    Clean {
        /// Offset just past the last valid frame.
        offset: usize,
        /// The next segment, when the segment is sealed.
        sealed: Option<SegmentSeq>,
    },
    /// The frame at `offset` is incomplete or fails verification and nothing valid follows it:
    /// the signature of a write interrupted by a crash. Everything from `offset` on is the tail.
    TornTail {
        /// Offset of the first bad byte.
        offset: usize,
        /// Why the frame there failed.
        reason: String,
    },
    /// The frame at `offset` fails and valid data follows it, or a segment that must be sealed
    /// is not: damage that a crash cannot explain. Nothing from `offset` on can be trusted.
    Corrupt {
        /// Offset of the first bad frame.
        offset: usize,
        /// Why, for a human.
        reason: String,
    },
}

impl ScanEnd {
    /// The offset this outcome is about.
    #[must_use]
    pub fn offset(&self) -> usize {
        match self {
            ScanEnd::Clean { offset, .. }
            | ScanEnd::TornTail { offset, .. }
            | ScanEnd::Corrupt { offset, .. } => *offset,
        }
    }
}

impl fmt::Display for ScanEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanEnd::Clean {
                offset,
                sealed: Some(n),
            } => {
                write!(f, "clean end at offset {offset}, sealed (next segment {n})")
            }
            ScanEnd::Clean {
                offset,
                sealed: None,
            } => write!(f, "clean end at offset {offset}"),
            ScanEnd::TornTail { offset, reason } => {
                write!(f, "torn tail at offset {offset}: {reason}")
            }
            ScanEnd::Corrupt { offset, reason } => {
                write!(f, "corruption at offset {offset}: {reason}")
            }
        }
    }
}

/// What a scan has decided so far: how it ended, once it has, and what its search after a
/// failed frame found. Both scanners keep one, and answer the questions about their end from
/// it alike.
#[derive(Clone, Debug, Default)]
pub(crate) struct Verdict {
    /// How the scan ended; `None` while frames remain.
    pub(crate) end: Option<ScanEnd>,
    /// What the search after a failed frame found.
    pub(crate) after: AfterDamage,
}

impl Verdict {
    /// How the scan ended; `None` while frames remain.
    pub(crate) fn end(&self) -> Option<&ScanEnd> {
        self.end.as_ref()
    }

    /// The highest durable watermark the verifying frames after a failed frame claim.
    pub(crate) fn claimed_after_damage(&self) -> Lsn {
        self.after.highest_claim
    }

    /// After a torn tail, the offset just past the last verifying frame after the damage, as
    /// the scanner's offset type.
    pub(crate) fn valid_after_damage<T: TryFrom<u64>>(&self) -> Option<T> {
        self.after
            .torn_valid_end(self.end.as_ref())
            .and_then(|e| T::try_from(e).ok())
    }

    /// How a scan run to its end at `pos` ended (a clean end there if it never decided).
    pub(crate) fn finished(&self, pos: usize) -> ScanEnd {
        self.end.clone().unwrap_or(ScanEnd::Clean {
            offset: pos,
            sealed: None,
        })
    }
}

/// The public questions both scanners answer about how their scan ended, from their
/// [`Verdict`] field `v`, with `$offset` the type of their offsets: written once, so that the
/// two scanners' answers cannot drift apart.
macro_rules! verdict_accessors {
    ($offset:ty) => {
        /// How the scan ended; `None` while frames remain (until the scan has returned its
        /// last frame and then `None`).
        #[must_use]
        pub fn end(&self) -> Option<&ScanEnd> {
            self.v.end()
        }

        /// After a failed frame: the highest durable watermark claimed by the verifying
        /// frames that could follow it (the evidence of a [`ScanEnd::Corrupt`], the frames of
        /// a [`ScanEnd::TornTail`]); [`Lsn::ZERO`] when none was found. The failed frame is
        /// corruption exactly when this reaches its LSN (format.md 7.2).
        #[must_use]
        pub fn claimed_after_damage(&self) -> Lsn {
            self.v.claimed_after_damage()
        }

        /// After a [`ScanEnd::TornTail`]: the offset (in the segment's file) just past the
        /// last verifying frame found after the damage (frames that no later frame claims
        /// durable: unsynced writes that reached the disk before the hole did). They belong
        /// to the tail; a recovery that cuts the tail must move them aside too. `None` when
        /// no valid frame follows the damage.
        #[must_use]
        pub fn valid_after_damage(&self) -> Option<$offset> {
            self.v.valid_after_damage()
        }
    };
}
pub(crate) use verdict_accessors;

/// The verifying frames a scan found after a failed frame that claim too little to make it
/// corruption (format.md 7.2): they end a torn tail, and recovery moves them aside with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AfterDamage {
    /// Offset just past the last of them; `None` when there were none.
    pub(crate) valid_end: Option<u64>,
    /// The highest watermark they claim.
    pub(crate) highest_claim: Lsn,
}

impl AfterDamage {
    pub(crate) fn note(&mut self, end: u64, claim: Lsn) {
        self.valid_end = Some(self.valid_end.map_or(end, |e| e.max(end)));
        self.highest_claim = self.highest_claim.max(claim);
    }

    /// Offset just past the last of them when the scan ended (`end`) in a torn tail, which
    /// they belong to; `None` otherwise.
    pub(crate) fn torn_valid_end(&self, end: Option<&ScanEnd>) -> Option<u64> {
        self.valid_end
            .filter(|_| matches!(end, Some(ScanEnd::TornTail { .. })))
    }

    /// Why the scan ends in a torn tail at a frame that failed with `fault`, expected to carry
    /// `next_lsn`.
    pub(crate) fn torn_reason(&self, fault: &str, next_lsn: Lsn) -> String {
        match self.valid_end {
            None => fault.to_owned(),
            Some(end) => format!(
                "{fault}; valid frames follow up to offset {end}, but they claim durable only up \
                 to LSN {}, before this frame's LSN {next_lsn}",
                self.highest_claim
            ),
        }
    }
}

/// Why the frame that failed with `fault`, expected to carry `next_lsn`, is corruption: the
/// valid frame at `at` follows it in a segment that must be sealed (`claimed` false), or
/// claims `claim` durable, at or past `next_lsn`.
pub(crate) fn corrupt_reason(
    fault: &str,
    at: u64,
    claim: Lsn,
    claimed: bool,
    next_lsn: Lsn,
) -> String {
    if claimed {
        format!(
            "{fault}; a valid frame at offset {at} claims LSN {claim} durable, at or past this \
             frame's LSN {next_lsn}"
        )
    } else {
        format!("{fault}; a valid frame follows at offset {at}")
    }
}

/// Whether a verifying frame found after a failed one (expected to carry `next_lsn`) proves
/// the failure is corruption: in a segment that must be sealed any valid frame does; in the
/// newest segment only one claiming the failed frame durable (format.md 7.2).
#[inline]
pub(crate) fn is_evidence(frame: &Frame, need_claim: bool, next_lsn: Lsn) -> bool {
    !need_claim || frame.durable() >= next_lsn
}

/// The end of a segment whose frames stop at `offset` with nothing but zeros (or nothing)
/// after them: clean, unless the segment must be sealed.
pub(crate) fn unsealed_end(expect_sealed: bool, offset: usize) -> ScanEnd {
    if expect_sealed {
        ScanEnd::Corrupt {
            offset,
            reason: "segment ends without a seal frame, but a newer segment exists".into(),
        }
    } else {
        ScanEnd::Clean {
            offset,
            sealed: None,
        }
    }
}

/// The end of a segment whose seal frame (naming `next`) ends at `offset`, given the offset
/// of what follows it that must not: a non-zero byte, or in a recycled file (whose stale bytes
/// may follow the seal) a frame that verifies under this segment's seed.
pub(crate) fn sealed_end(
    offset: usize,
    next: SegmentSeq,
    recycled: bool,
    after: Option<usize>,
) -> ScanEnd {
    match after {
        Some(at) if recycled => ScanEnd::Corrupt {
            offset: at,
            reason: format!("a valid frame at offset {at} after the seal frame"),
        },
        Some(at) => ScanEnd::Corrupt {
            offset: at,
            reason: format!("non-zero bytes at offset {at} after the seal frame"),
        },
        None => ScanEnd::Clean {
            offset,
            sealed: Some(next),
        },
    }
}

/// The end at a frame that verifies but carries `lsn` where `expected` was due.
pub(crate) fn wrong_lsn(offset: usize, lsn: Lsn, expected: Lsn) -> ScanEnd {
    ScanEnd::Corrupt {
        offset,
        reason: format!("frame carries LSN {lsn}, expected {expected}"),
    }
}

/// Why the frame at `pos` failed, given the first non-zero byte at or after it: when the
/// frame's header is all zeros, no frame was written there (the last frame ends at `pos`) and
/// the damage is the non-zero byte further on (in a preallocated file's zeros), which the
/// reason names, rather than "unknown frame kind 0" at the end of the data.
pub(crate) fn failure_reason(reason: &str, pos: u64, first_nonzero: Option<u64>) -> String {
    match first_nonzero {
        Some(at) if at >= pos + FRAME_HEADER_LEN as u64 => format!(
            "damage past the last frame: the frames end at offset {pos}, zeros follow, then a non-zero byte at offset {at}"
        ),
        _ => reason.to_owned(),
    }
}

/// Whether the frame header `h` at offset `q` can be a frame of this log after the frame
/// expected at `anchor` with LSN `next_lsn`: a valid kind, and an LSN from `next_lsn` to
/// `next_lsn + (q - anchor) / 20` (LSNs are dense and every frame takes at least 20 bytes, so
/// no frame of the log can carry a larger one there; a watermark frame, which repeats the LSN
/// before it, one less). Checked before the CRC, which
/// can cover 4 MiB: without the LSN bound, damage full of header-like bytes (a payload of
/// integers, say) costs a CRC at nearly every offset, and recovery time grows with the square
/// of the damage.
pub(crate) fn could_follow(h: &[u8], q: u64, anchor: u64, next_lsn: Lsn) -> bool {
    let Some(kind) = FrameKind::from_u8(h[8]) else {
        return false;
    };
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&h[12..20]);
    let ahead = u64::from_le_bytes(lsn).wrapping_sub(kind.expected_lsn(next_lsn).0);
    ahead <= q.saturating_sub(anchor) / FRAME_HEADER_LEN as u64
}

/// Whether `rest` starts with an end marker: an all-zero frame header, which the writer of a
/// recycled segment keeps just past its last frame.
pub(crate) fn is_end_marker(rest: &[u8]) -> bool {
    rest.len() >= FRAME_HEADER_LEN && rest[..FRAME_HEADER_LEN].iter().all(|&b| b == 0)
}
