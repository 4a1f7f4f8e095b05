//! The whole-buffer scanner: a segment held in memory turned back into frames.

use super::end::{
    ScanEnd, Verdict, corrupt_reason, could_follow, failure_reason, is_end_marker, is_evidence,
    sealed_end, unsealed_end, verdict_accessors, wrong_lsn,
};
use crate::error::FormatError;
use crate::frame::{FRAME_HEADER_LEN, Frame, FrameFault, SegmentSeed, decode_at};
use crate::header::{SEGMENT_HEADER_LEN, SegmentHeader};
use crate::lsn::Lsn;
use bytes::Bytes;

/// Scans the frames of one segment, verifying each, and decides how the segment ends.
///
/// It is an iterator of verified [`Frame`]s (payloads are zero-copy views of the input);
/// once it returns `None`, [`SegmentScanner::end`] says why. A frame must carry exactly the
/// next LSN; a frame that verifies but carries another LSN is corruption.
#[derive(Debug, Clone)]
pub struct SegmentScanner {
    header: SegmentHeader,
    seed: SegmentSeed,
    data: Bytes,
    pos: usize,
    next_lsn: Lsn,
    expect_sealed: bool,
    /// How the scan ended, and what the search after a failed frame found.
    v: Verdict,
}

impl SegmentScanner {
    /// Parses the header at the start of `data` and positions the scanner after it.
    ///
    /// `expect_sealed` is true for every segment but the newest: such a segment must end with
    /// a `Seal` frame, and any failure inside it is corruption rather than a torn tail.
    ///
    /// # Errors
    /// The header's [`FormatError`].
    pub fn new(data: Bytes, expect_sealed: bool) -> Result<SegmentScanner, FormatError> {
        let header = SegmentHeader::decode(&data)?;
        Ok(scan_frames(
            data,
            header,
            SEGMENT_HEADER_LEN,
            header.base_lsn,
            expect_sealed,
        ))
    }

    /// The segment's header.
    #[must_use]
    pub fn header(&self) -> &SegmentHeader {
        &self.header
    }

    /// Offset of the next frame to decode.
    #[must_use]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The LSN the next frame must carry.
    #[must_use]
    pub fn next_lsn(&self) -> Lsn {
        self.next_lsn
    }

    verdict_accessors!(usize);

    /// Runs the scan to its end, dropping the frames, and returns how it ended.
    pub fn finish(&mut self) -> ScanEnd {
        for _ in self.by_ref() {}
        self.v.finished(self.pos)
    }

    fn stop(&mut self, end: ScanEnd) -> Option<Frame> {
        self.v.end = Some(end);
        None
    }

    fn fail_at(&mut self, fault: &FrameFault) -> Option<Frame> {
        let pos = self.pos;
        let data = self.data.clone();
        let rest = &data[pos.min(data.len())..];
        if rest.iter().all(|&b| b == 0) {
            return self.stop(unsealed_end(self.expect_sealed, pos));
        }
        let need_claim = !self.expect_sealed;
        if let Some((at, claim)) = self.find_valid_from(pos + 1, pos, need_claim) {
            let reason =
                corrupt_reason(fault.reason(), at as u64, claim, need_claim, self.next_lsn);
            return self.stop(ScanEnd::Corrupt {
                offset: pos,
                reason,
            });
        }
        let first = rest.iter().position(|&b| b != 0).map(|i| (pos + i) as u64);
        let reason = failure_reason(fault.reason(), pos as u64, first);
        if self.expect_sealed {
            return self.stop(ScanEnd::Corrupt {
                offset: pos,
                reason: format!("{reason} in a segment that must be sealed"),
            });
        }
        if self.header.recycled && is_end_marker(rest) && self.v.after.valid_end.is_none() {
            // A recycled file: the writer's end marker, then stale bytes of the file's
            // earlier life (they verify under no seed of this segment).
            return self.stop(ScanEnd::Clean {
                offset: pos,
                sealed: None,
            });
        }
        let reason = self.v.after.torn_reason(&reason, self.next_lsn);
        self.stop(ScanEnd::TornTail {
            offset: pos,
            reason,
        })
    }

    /// The offset and claim of the first verifying frame at or after `from` whose LSN could
    /// follow the frame expected at `anchor` ([`could_follow`]) and that is evidence against
    /// it ([`is_evidence`]); the valid frames passed over on the way are noted in
    /// `self.v.after`. Only runs when a frame has failed (or after the seal of a recycled
    /// segment), so it costs nothing on a sound log; cheap field checks filter candidates
    /// before the CRC.
    fn find_valid_from(
        &mut self,
        from: usize,
        anchor: usize,
        need_claim: bool,
    ) -> Option<(usize, Lsn)> {
        let len = self.data.len();
        for q in from..len.saturating_sub(FRAME_HEADER_LEN - 1) {
            let h = &self.data[q..q + FRAME_HEADER_LEN];
            if !could_follow(h, q as u64, anchor as u64, self.next_lsn) {
                continue;
            }
            if let Ok(f) = decode_at(&self.data, q, self.seed) {
                if is_evidence(&f, need_claim, self.next_lsn) {
                    self.v.after.highest_claim = self.v.after.highest_claim.max(f.durable());
                    return Some((q, f.durable()));
                }
                self.v.after.note((q + f.encoded_len()) as u64, f.durable());
            }
        }
        None
    }
}

/// A scanner over the frames of `data` starting at `offset`, for a segment whose header is
/// already known (a reader resuming mid-segment). The next frame must carry `next_lsn`.
#[must_use]
pub fn scan_frames(
    data: Bytes,
    header: SegmentHeader,
    offset: usize,
    next_lsn: Lsn,
    expect_sealed: bool,
) -> SegmentScanner {
    SegmentScanner {
        seed: header.seed(),
        header,
        data,
        pos: offset,
        next_lsn,
        expect_sealed,
        v: Verdict::default(),
    }
}

impl Iterator for SegmentScanner {
    type Item = Frame;

    fn next(&mut self) -> Option<Frame> {
        if self.v.end.is_some() {
            return None;
        }
        if self.pos >= self.data.len() {
            return self.stop(unsealed_end(self.expect_sealed, self.pos));
        }
        let frame = match decode_at(&self.data, self.pos, self.seed) {
            Ok(f) => f,
            Err(fault) => return self.fail_at(&fault),
        };
        let expected = frame.kind.expected_lsn(self.next_lsn);
        if frame.lsn != expected {
            return self.stop(wrong_lsn(self.pos, frame.lsn, expected));
        }
        self.pos += frame.encoded_len();
        if frame.kind.takes_lsn() {
            self.next_lsn = frame.lsn.next();
        }
        if let Some(next) = frame.sealed_next() {
            // The seal itself verified, so it is yielded either way; only what follows it can
            // make the segment corrupt.
            let pos = self.pos;
            let after = if self.header.recycled {
                // Stale bytes may follow the seal of a recycled file; a frame that verifies
                // under this segment's seed may not.
                self.find_valid_from(pos, pos, false).map(|(at, _)| at)
            } else {
                self.data[pos..]
                    .iter()
                    .position(|&b| b != 0)
                    .map(|i| pos + i)
            };
            self.v.end = Some(sealed_end(pos, next, self.header.recycled, after));
        }
        Some(frame)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::frame::{FrameEncoder, FrameFlags, FrameKind, encode_frame};
    use crate::header::LogId;
    use crate::lsn::SegmentSeq;

    /// `n` frames from LSN 10, each claiming the ones before it durable (from LSN 10 on).
    fn segment(n: u64, sealed: bool) -> (Vec<u8>, Vec<usize>) {
        let h = SegmentHeader::new(LogId::from_u128(1), SegmentSeq(1), Lsn(10));
        let mut out = h.encode().to_vec();
        let mut offsets = Vec::new();
        for i in 0..n {
            offsets.push(out.len());
            let durable = if i == 0 { Lsn::ZERO } else { Lsn(9 + i) };
            FrameEncoder::new(h.seed())
                .claiming(durable)
                .frame(
                    &mut out,
                    FrameKind::Tx,
                    FrameFlags::NONE,
                    Lsn(10 + i),
                    &[i as u8; 40],
                )
                .unwrap();
        }
        if sealed {
            offsets.push(out.len());
            encode_frame(
                &mut out,
                h.seed(),
                FrameKind::Seal,
                0,
                Lsn(10 + n),
                &2u64.to_le_bytes(),
            )
            .unwrap();
        }
        (out, offsets)
    }

    fn run(data: Vec<u8>, expect_sealed: bool) -> (usize, ScanEnd) {
        let mut s = SegmentScanner::new(Bytes::from(data), expect_sealed).unwrap();
        let n = s.by_ref().count();
        (n, s.end().cloned().unwrap())
    }

    #[test]
    fn preallocated_zeros_are_a_clean_end() {
        let (mut d, _) = segment(3, false);
        let end = d.len();
        d.resize(end + 4096, 0);
        assert_eq!(
            run(d, false),
            (
                3,
                ScanEnd::Clean {
                    offset: end,
                    sealed: None
                }
            )
        );
    }

    #[test]
    fn torn_last_frame_is_torn_tail() {
        let (mut d, offs) = segment(3, false);
        d.truncate(d.len() - 5);
        d.resize(d.len() + 100, 0);
        let (n, end) = run(d, false);
        assert_eq!(n, 2);
        assert!(
            matches!(end, ScanEnd::TornTail { offset, .. } if offset == offs[2]),
            "{end:?}"
        );
    }

    #[test]
    fn zeroed_middle_frame_is_corruption() {
        let (mut d, offs) = segment(5, false);
        d[offs[1]..offs[2]].fill(0);
        let (n, end) = run(d, false);
        assert_eq!(n, 1);
        assert!(
            matches!(end, ScanEnd::Corrupt { offset, .. } if offset == offs[1]),
            "{end:?}"
        );
    }

    /// Frames that claim nothing after a hole are unsynced writes that reached the disk
    /// first: a torn tail, and the scan says how far they go.
    #[test]
    fn a_hole_before_unclaiming_frames_is_a_torn_tail() {
        let h = SegmentHeader::new(LogId::from_u128(1), SegmentSeq(1), Lsn(10));
        let mut d = h.encode().to_vec();
        let mut offs = Vec::new();
        for i in 0..4u64 {
            offs.push(d.len());
            // Only LSN 10 is durable: the hole at LSN 11 is beyond every claim.
            let durable = if i < 2 { Lsn::ZERO } else { Lsn(10) };
            FrameEncoder::new(h.seed())
                .claiming(durable)
                .frame(&mut d, FrameKind::Tx, FrameFlags::NONE, Lsn(10 + i), b"abc")
                .unwrap();
        }
        let end = d.len();
        d[offs[1]..offs[2]].fill(0);
        let mut s = SegmentScanner::new(Bytes::from(d.clone()), false).unwrap();
        assert_eq!(s.by_ref().count(), 1);
        assert!(
            matches!(s.end(), Some(ScanEnd::TornTail { offset, .. }) if *offset == offs[1]),
            "{:?}",
            s.end()
        );
        assert_eq!(s.valid_after_damage(), Some(end));
        // A frame that claims LSN 11 durable makes the same hole corruption.
        FrameEncoder::new(h.seed())
            .claiming(Lsn(11))
            .watermark(&mut d, Lsn(13))
            .unwrap();
        let (n, e) = run(d, false);
        assert_eq!(n, 1);
        assert!(
            matches!(e, ScanEnd::Corrupt { offset, .. } if offset == offs[1]),
            "{e:?}"
        );
    }

    #[test]
    fn sealed_segment_must_end_with_seal() {
        let (d, _) = segment(3, true);
        let (_, end) = run(d.clone(), true);
        assert!(matches!(
            end,
            ScanEnd::Clean {
                sealed: Some(SegmentSeq(2)),
                ..
            }
        ));
        let (d, _) = segment(3, false);
        assert!(matches!(run(d, true).1, ScanEnd::Corrupt { .. }));
        let (mut d, offs) = segment(3, true);
        d.truncate(offs[3] + 3);
        assert!(matches!(run(d, true).1, ScanEnd::Corrupt { .. }));
    }

    #[test]
    fn wrong_lsn_is_corruption() {
        let h = SegmentHeader::new(LogId::from_u128(1), SegmentSeq(1), Lsn(10));
        let mut d = h.encode().to_vec();
        encode_frame(&mut d, h.seed(), FrameKind::Tx, 0, Lsn(11), b"x").unwrap();
        assert!(matches!(run(d, false), (0, ScanEnd::Corrupt { .. })));
    }

    #[test]
    fn garbage_after_seal_is_corruption() {
        let (mut d, _) = segment(2, true);
        let sealed_end = d.len();
        d.extend_from_slice(&[0, 0, 7]);
        // The verified seal is still yielded; the corruption is the byte after it.
        let (n, end) = run(d, false);
        assert_eq!(n, 3);
        assert!(
            matches!(end, ScanEnd::Corrupt { offset, .. } if offset == sealed_end + 2),
            "{end:?}"
        );
    }
}
