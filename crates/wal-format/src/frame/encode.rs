//! The free functions that append one frame to a buffer, and the checksum-as-you-copy sink
//! they share with [`super::FrameEncoder`].

use super::{FLAG_MULTI, FRAME_HEADER_LEN, FrameKind, MAX_FRAME_PAYLOAD, SegmentSeed};
use super::{check_fields, check_lag};
use crate::error::FormatError;
use crate::lsn::Lsn;

/// Appends one frame to `out`.
///
/// The checksum covers bytes 4.. of the header (length, kind, flags, reserved, LSN) and the
/// payload, and starts from `seed`. Only the checksum of the appended bytes is computed; nothing
/// already in `out` is touched, and `out` grows by exactly [`encoded_frame_len`](super::encoded_frame_len) bytes.
///
/// # Errors
/// [`FormatError::PayloadTooLarge`] above [`MAX_FRAME_PAYLOAD`], [`FormatError::BadFrame`] for
/// flags the kind does not allow or a payload the kind's layout forbids.
pub fn encode_frame(
    out: &mut Vec<u8>,
    seed: SegmentSeed,
    kind: FrameKind,
    flags: u8,
    lsn: Lsn,
    payload: &[u8],
) -> Result<(), FormatError> {
    encode_frame_parts(out, seed, kind, flags, 0, lsn, &[payload])
}

/// Like [`encode_frame`], with the payload given as consecutive parts (for example a stream
/// LSN followed by a body chunk) so the caller need not concatenate them first.
pub(crate) fn encode_frame_parts(
    out: &mut Vec<u8>,
    seed: SegmentSeed,
    kind: FrameKind,
    flags: u8,
    lag: u16,
    lsn: Lsn,
    parts: &[&[u8]],
) -> Result<(), FormatError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    encode_frame_with(out, seed, (kind, flags, lag), lsn, len, |sink| {
        for p in parts {
            sink.put(p);
        }
    })
}

/// Appends a `Tx` frame with [`FLAG_MULTI`] whose body is `records` in the layout of
/// [`crate::records::encode_records`], copying each record once, straight into `out`.
///
/// # Errors
/// [`FormatError::PayloadTooLarge`] when the body exceeds [`MAX_FRAME_PAYLOAD`].
///
/// # Examples
/// ```
/// use wal_format::{LogId, Lsn, SegmentSeed, SegmentSeq};
/// use wal_format::frame::{decode_frame, encode_records_frame};
/// let seed = SegmentSeed::new(LogId::from_u128(7), SegmentSeq(1));
/// let mut out = Vec::new();
/// encode_records_frame(&mut out, seed, Lsn(1), &[&b"a"[..], &b"bc"[..]])?;
/// let frame = decode_frame(&bytes::Bytes::from(out), 0, seed)?;
/// assert!(frame.is_multi());
/// let body = frame.body();
/// let records: Vec<&[u8]> = wal_format::records::record_slices(&body).collect::<Result<_, _>>()?;
/// assert_eq!(records, [&b"a"[..], &b"bc"[..]]);
/// # Ok::<(), wal_format::FormatError>(())
/// ```
pub fn encode_records_frame<R: AsRef<[u8]>>(
    out: &mut Vec<u8>,
    seed: SegmentSeed,
    lsn: Lsn,
    records: &[R],
) -> Result<(), FormatError> {
    encode_records_lagged(out, seed, 0, lsn, records)
}

pub(super) fn encode_records_lagged<R: AsRef<[u8]>>(
    out: &mut Vec<u8>,
    seed: SegmentSeed,
    lag: u16,
    lsn: Lsn,
    records: &[R],
) -> Result<(), FormatError> {
    crate::records::check_records(records)?;
    let len = crate::records::records_len(records);
    encode_frame_with(
        out,
        seed,
        (FrameKind::Tx, FLAG_MULTI, lag),
        lsn,
        len,
        |sink| {
            sink.put(&(records.len() as u32).to_le_bytes());
            for r in records {
                let r = r.as_ref();
                sink.put(&(r.len() as u32).to_le_bytes());
                sink.put(r);
            }
        },
    )
}

/// Appends payload bytes to a frame being encoded and folds them into its checksum a block at
/// a time while they are still in cache: one pass over a large payload instead of copy, then
/// checksum, and few checksum calls (each long enough for the fast path) for many small pieces.
struct PayloadSink<'a> {
    out: &'a mut Vec<u8>,
    crc: u32,
    /// Bytes of `out` before this offset are folded into `crc`.
    folded: usize,
}

/// How many appended bytes are gathered before they are folded into the checksum: large enough
/// for the checksum's fast path, small enough to still be in cache.
const FOLD_BLOCK: usize = 32 << 10;

impl PayloadSink<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
        if self.out.len() - self.folded >= FOLD_BLOCK {
            self.fold();
        }
    }

    fn fold(&mut self) {
        self.crc = crc32c::crc32c_append(self.crc, &self.out[self.folded..]);
        self.folded = self.out.len();
    }
}

/// Writes a frame header for a `len`-byte payload, lets `fill` append exactly that payload,
/// and stores the checksum. `fill` must put exactly `len` bytes (checked in debug builds).
/// `head` is the kind, the flags and the durable lag.
fn encode_frame_with(
    out: &mut Vec<u8>,
    seed: SegmentSeed,
    head: (FrameKind, u8, u16),
    lsn: Lsn,
    len: usize,
    fill: impl FnOnce(&mut PayloadSink<'_>),
) -> Result<(), FormatError> {
    let (kind, flags, lag) = head;
    if len > MAX_FRAME_PAYLOAD {
        return Err(FormatError::PayloadTooLarge {
            len,
            max: MAX_FRAME_PAYLOAD,
        });
    }
    if let Err(reason) = check_fields(kind, flags, len).and(check_lag(lag, lsn)) {
        return Err(FormatError::BadFrame {
            offset: out.len(),
            reason,
        });
    }
    let start = out.len();
    out.reserve(FRAME_HEADER_LEN + len);
    out.extend_from_slice(&unsummed_header(kind, flags, lag, lsn, len));
    let mut sink = PayloadSink {
        out,
        crc: seed.0,
        folded: start + 4,
    };
    fill(&mut sink);
    sink.fold();
    let crc = sink.crc;
    debug_assert_eq!(out.len(), start + FRAME_HEADER_LEN + len);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// A frame header with every field but the checksum (left zero). Fields already checked.
#[inline]
pub(super) fn unsummed_header(
    kind: FrameKind,
    flags: u8,
    lag: u16,
    lsn: Lsn,
    len: usize,
) -> [u8; FRAME_HEADER_LEN] {
    let mut h = [0u8; FRAME_HEADER_LEN];
    h[4..8].copy_from_slice(&(len as u32).to_le_bytes());
    h[8] = kind as u8;
    h[9] = flags;
    h[10..12].copy_from_slice(&lag.to_le_bytes());
    h[12..20].copy_from_slice(&lsn.0.to_le_bytes());
    h
}

/// Appends a fragment frame (`FragPart` or `FragEnd`) of stream `stream` carrying `chunk`.
///
/// # Errors
/// As [`encode_frame`]; the payload is `chunk.len() + 8` bytes.
pub fn encode_fragment(
    out: &mut Vec<u8>,
    seed: SegmentSeed,
    kind: FrameKind,
    lsn: Lsn,
    stream: Lsn,
    chunk: &[u8],
) -> Result<(), FormatError> {
    encode_frame_parts(
        out,
        seed,
        kind,
        0,
        0,
        lsn,
        &[&stream.0.to_le_bytes(), chunk],
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::frame::tests::seed;

    #[test]
    fn records_frame_matches_encoding_the_body_first() {
        let records: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; usize::from(i) * 3]).collect();
        let mut body = Vec::new();
        crate::records::encode_records(&mut body, &records);
        let mut two_step = Vec::new();
        encode_frame(
            &mut two_step,
            seed(),
            FrameKind::Tx,
            FLAG_MULTI,
            Lsn(9),
            &body,
        )
        .unwrap();
        let mut direct = vec![0xAA; 3];
        encode_records_frame(&mut direct, seed(), Lsn(9), &records).unwrap();
        assert_eq!(&direct[..3], &[0xAA; 3]);
        assert_eq!(&direct[3..], &two_step[..]);
        let empty: [&[u8]; 0] = [];
        let mut a = Vec::new();
        encode_records_frame(&mut a, seed(), Lsn(1), &empty).unwrap();
        let mut b = Vec::new();
        crate::records::encode_records(&mut b, &empty);
        let mut c = Vec::new();
        encode_frame(&mut c, seed(), FrameKind::Tx, FLAG_MULTI, Lsn(1), &b).unwrap();
        assert_eq!(a, c);
    }

    #[test]
    fn bad_fields_are_refused_on_encode() {
        let mut out = Vec::new();
        assert!(
            encode_frame(
                &mut out,
                seed(),
                FrameKind::Seal,
                FLAG_MULTI,
                Lsn(1),
                &[0; 8]
            )
            .is_err()
        );
        assert!(encode_frame(&mut out, seed(), FrameKind::Checkpoint, 0, Lsn(1), &[0; 3]).is_err());
        let big = vec![0u8; MAX_FRAME_PAYLOAD + 1];
        assert!(matches!(
            encode_frame(&mut out, seed(), FrameKind::Tx, 0, Lsn(1), &big),
            Err(FormatError::PayloadTooLarge { .. })
        ));
        assert!(out.is_empty());
    }
}
