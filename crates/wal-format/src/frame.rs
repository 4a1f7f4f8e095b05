//! Frames: the kinds, the header length and payload limit, the per-segment checksum seed,
//! and the functions that encode and decode one frame. Tools and `wal-log` write through these;
//! an engine never needs them.

use crate::error::FormatError;
use crate::header::{LogId, SegmentHeader, arr4, arr8};
use crate::lsn::{Lsn, SegmentSeq};
use bytes::Bytes;

/// Length in bytes of a frame header: checksum, length, kind, flags, reserved, LSN.
pub const FRAME_HEADER_LEN: usize = 20;

/// The largest payload one frame may carry: 4 MiB. Larger transactions are written as a
/// fragment sequence. A length field above this is rejected before anything is read or
/// allocated, so a corrupt length cannot make a reader allocate gigabytes.
pub const MAX_FRAME_PAYLOAD: usize = 4 << 20;

/// Flag: the transaction body is a multi-record batch (see [`crate::records::encode_records`]).
/// Allowed on [`FrameKind::Tx`] and [`FrameKind::FragBegin`] only.
pub const FLAG_MULTI: u8 = 0x01;

/// What a frame is. The numeric values are part of the on-disk format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// A whole transaction in one frame: the common path.
    Tx = 1,
    /// First fragment of a transaction too large for one frame. Its LSN names the stream.
    FragBegin = 2,
    /// A middle fragment. Payload: the stream's begin LSN (u64 LE), then a chunk of the body.
    FragPart = 3,
    /// Last fragment; commits the transaction at this frame's LSN. Payload as [`FrameKind::FragPart`].
    FragEnd = 4,
    /// Abandons a fragment stream. Payload: the stream's begin LSN (u64 LE).
    FragAbort = 5,
    /// A snapshot covering every transaction up to the LSN in the payload (u64 LE) exists.
    Checkpoint = 6,
    /// Closes a segment. Payload: the next segment's sequence number (u64 LE).
    Seal = 7,
    /// Carries only a durable watermark (its durable lag): a clean close writes one after its
    /// last fsync, so that damage to the last flush reads as corruption rather than a torn
    /// tail. Takes no LSN: its LSN field repeats the LSN of the frame before it (the base LSN
    /// minus one at the start of a segment). Empty payload.
    Watermark = 8,
}

impl FrameKind {
    /// Parses the kind byte; `None` for values this version does not define (including 0,
    /// which is what preallocated space holds).
    #[must_use]
    pub const fn from_u8(v: u8) -> Option<FrameKind> {
        Some(match v {
            1 => FrameKind::Tx,
            2 => FrameKind::FragBegin,
            3 => FrameKind::FragPart,
            4 => FrameKind::FragEnd,
            5 => FrameKind::FragAbort,
            6 => FrameKind::Checkpoint,
            7 => FrameKind::Seal,
            8 => FrameKind::Watermark,
            _ => return None,
        })
    }

    #[inline]
    fn allowed_flags(self) -> u8 {
        match self {
            FrameKind::Tx | FrameKind::FragBegin => FLAG_MULTI,
            _ => 0,
        }
    }

    /// The exact payload length this kind requires, or the minimum for variable ones.
    #[inline]
    fn payload_rule(self) -> (usize, bool) {
        match self {
            FrameKind::Tx | FrameKind::FragBegin => (0, false),
            FrameKind::FragPart | FrameKind::FragEnd => (8, false),
            FrameKind::FragAbort | FrameKind::Checkpoint | FrameKind::Seal => (8, true),
            FrameKind::Watermark => (0, true),
        }
    }

    /// Whether a frame of this kind takes the next LSN. Every kind does but
    /// [`FrameKind::Watermark`], which repeats the LSN before it.
    #[must_use]
    #[inline]
    pub const fn takes_lsn(self) -> bool {
        !matches!(self, FrameKind::Watermark)
    }

    /// The LSN a frame of this kind must carry when the next LSN to assign is `next_lsn`.
    #[must_use]
    #[inline]
    pub const fn expected_lsn(self, next_lsn: Lsn) -> Lsn {
        if self.takes_lsn() {
            next_lsn
        } else {
            Lsn(next_lsn.0.wrapping_sub(1))
        }
    }
}

/// The durable lag a frame with LSN `lsn` stores to claim that every frame up to `durable`
/// was durable when it was written: `lsn + 1 - durable`, or 0 (no claim) when nothing is
/// durable yet or the distance does not fit the 16-bit field. Claiming less than the truth
/// is always sound, so a distance too large to store is dropped, never clamped.
#[must_use]
#[inline]
pub fn durable_lag(lsn: Lsn, durable: Lsn) -> u16 {
    debug_assert!(
        durable <= lsn,
        "a frame claims durable {durable} past its own LSN {lsn}"
    );
    if durable == Lsn::ZERO || durable > lsn {
        return 0;
    }
    u16::try_from(lsn.0 - durable.0 + 1).unwrap_or(0)
}

/// The checksum seed of one segment: CRC32C of the log id (16 bytes LE) and the segment
/// sequence (8 bytes LE). Seeding every frame's checksum with it makes a frame verify only in
/// the segment, and the log, it was written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentSeed(u32);

impl SegmentSeed {
    /// The seed for segment `seq` of log `log_id`.
    #[must_use]
    pub fn new(log_id: LogId, seq: SegmentSeq) -> SegmentSeed {
        let mut b = [0u8; 24];
        b[..16].copy_from_slice(&log_id.as_u128().to_le_bytes());
        b[16..].copy_from_slice(&seq.0.to_le_bytes());
        SegmentSeed(crc32c::crc32c(&b))
    }

    /// The raw seed value.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }
}

// Here rather than in `header`, so that the header (which knows no frames) does not depend on
// this module, which depends on it.
impl SegmentHeader {
    /// The checksum seed of every frame in this segment.
    #[must_use]
    pub fn seed(&self) -> SegmentSeed {
        SegmentSeed::new(self.log_id, self.seq)
    }
}

/// One decoded, verified frame. The payload is a zero-copy view into the segment's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// What the frame is.
    pub kind: FrameKind,
    /// Flag bits ([`FLAG_MULTI`]).
    pub flags: u8,
    /// This frame's LSN.
    pub lsn: Lsn,
    /// The durable lag (header bytes 10..12): 0 claims nothing; otherwise the frame claims
    /// that every frame with an LSN up to `lsn + 1 - durable_lag` was durable when it was
    /// written ([`Frame::durable`]). At most `lsn`.
    pub durable_lag: u16,
    /// The payload bytes (shares the segment buffer).
    pub payload: Bytes,
    /// Byte offset of the frame within the buffer it was decoded from.
    pub offset: usize,
}

impl Frame {
    /// Total encoded length of this frame.
    #[must_use]
    #[inline]
    pub fn encoded_len(&self) -> usize {
        FRAME_HEADER_LEN + self.payload.len()
    }

    /// For fragment frames after the first ([`FrameKind::FragPart`], [`FrameKind::FragEnd`],
    /// [`FrameKind::FragAbort`]): the begin LSN naming their stream. For [`FrameKind::FragBegin`],
    /// its own LSN.
    #[must_use]
    #[inline]
    pub fn stream(&self) -> Option<Lsn> {
        match self.kind {
            FrameKind::FragBegin => Some(self.lsn),
            FrameKind::FragPart | FrameKind::FragEnd | FrameKind::FragAbort => {
                Some(Lsn(u64::from_le_bytes(arr8(&self.payload[..8]))))
            }
            _ => None,
        }
    }

    /// A place-holder for an LSN whose frame was lost: a [`FrameKind::FragAbort`] naming its
    /// own LSN as its stream, which no stream can be (a stream is named by an earlier
    /// `FragBegin`). Written by a repair that skips damaged frames (`wal_log`'s
    /// `RecoveryMode::SkipDamaged`) so the LSNs stay contiguous; readers skip it like any
    /// abort, and reports count it as a lost LSN, not as an aborted transaction.
    #[must_use]
    #[inline]
    pub fn is_placeholder(&self) -> bool {
        self.kind == FrameKind::FragAbort && self.stream() == Some(self.lsn)
    }

    /// The transaction body bytes this frame carries: the whole payload of a `Tx` or
    /// `FragBegin`, the payload after the stream LSN of a `FragPart` or `FragEnd`, else empty.
    #[must_use]
    #[inline]
    pub fn body(&self) -> Bytes {
        match self.kind {
            FrameKind::Tx | FrameKind::FragBegin => self.payload.clone(),
            FrameKind::FragPart | FrameKind::FragEnd => self.payload.slice(8..),
            _ => Bytes::new(),
        }
    }

    /// The snapshot LSN of a `Checkpoint` frame.
    #[must_use]
    #[inline]
    pub fn checkpoint_lsn(&self) -> Option<Lsn> {
        (self.kind == FrameKind::Checkpoint).then(|| Lsn(u64::from_le_bytes(arr8(&self.payload))))
    }

    /// The next segment named by a `Seal` frame.
    #[must_use]
    #[inline]
    pub fn sealed_next(&self) -> Option<SegmentSeq> {
        (self.kind == FrameKind::Seal).then(|| SegmentSeq(u64::from_le_bytes(arr8(&self.payload))))
    }

    /// Whether the transaction body is a multi-record batch.
    #[must_use]
    #[inline]
    pub fn is_multi(&self) -> bool {
        self.flags & FLAG_MULTI != 0
    }

    /// The durable watermark this frame claims: every frame with an LSN up to it was durable
    /// (covered by a completed fsync) before this frame was written. [`Lsn::ZERO`] when it
    /// claims nothing.
    #[must_use]
    #[inline]
    pub fn durable(&self) -> Lsn {
        claimed(self.lsn, self.durable_lag)
    }
}

/// The watermark a frame with LSN `lsn` and durable lag `lag` claims.
#[inline]
pub(crate) fn claimed(lsn: Lsn, lag: u16) -> Lsn {
    if lag == 0 {
        Lsn::ZERO
    } else {
        Lsn(lsn.0.wrapping_add(1).wrapping_sub(u64::from(lag)))
    }
}

/// Encoded length of a frame carrying `payload_len` bytes.
#[must_use]
pub const fn encoded_frame_len(payload_len: usize) -> usize {
    FRAME_HEADER_LEN + payload_len
}

/// Appends one frame to `out`.
///
/// The checksum covers bytes 4.. of the header (length, kind, flags, reserved, LSN) and the
/// payload, and starts from `seed`. Only the checksum of the appended bytes is computed; nothing
/// already in `out` is touched, and `out` grows by exactly [`encoded_frame_len`] bytes.
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

fn encode_records_lagged<R: AsRef<[u8]>>(
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
fn unsummed_header(
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

/// Builds a frame whose payload is written from the caller's own buffers rather than copied
/// into one: the payload is folded into the checksum piece by piece, in order, and
/// [`FrameSum::header`] then gives the frame header to write in front of those pieces. The
/// bytes are the same as [`encode_frame`]'s for the same payload.
///
/// ```
/// use wal_format::{FrameKind, LogId, Lsn, SegmentSeed, SegmentSeq};
/// use wal_format::frame::{FrameSum, encode_frame};
/// let seed = SegmentSeed::new(LogId::from_u128(7), SegmentSeq(1));
/// let mut sum = FrameSum::new(seed, FrameKind::Tx, 0, Lsn(3), 5, Lsn::ZERO)?;
/// sum.fold(b"he");
/// sum.fold(b"llo");
/// let mut framed = sum.header()?.to_vec();
/// framed.extend_from_slice(b"hello");
/// let mut encoded = Vec::new();
/// encode_frame(&mut encoded, seed, FrameKind::Tx, 0, Lsn(3), b"hello")?;
/// assert_eq!(framed, encoded);
/// # Ok::<(), wal_format::FormatError>(())
/// ```
#[derive(Clone, Debug)]
pub struct FrameSum {
    header: [u8; FRAME_HEADER_LEN],
    crc: u32,
    len: usize,
    folded: usize,
}

impl FrameSum {
    /// Starts a frame of `kind` with a `len`-byte payload that claims every frame up to
    /// `durable` durable ([`Frame::durable`]; [`Lsn::ZERO`] claims nothing).
    ///
    /// # Errors
    /// As [`encode_frame`]: [`FormatError::PayloadTooLarge`] or [`FormatError::BadFrame`].
    pub fn new(
        seed: SegmentSeed,
        kind: FrameKind,
        flags: u8,
        lsn: Lsn,
        len: usize,
        durable: Lsn,
    ) -> Result<FrameSum, FormatError> {
        if len > MAX_FRAME_PAYLOAD {
            return Err(FormatError::PayloadTooLarge {
                len,
                max: MAX_FRAME_PAYLOAD,
            });
        }
        if let Err(reason) = check_fields(kind, flags, len) {
            return Err(FormatError::BadFrame { offset: 0, reason });
        }
        let header = unsummed_header(kind, flags, durable_lag(lsn, durable), lsn, len);
        let crc = crc32c::crc32c_append(seed.0, &header[4..]);
        Ok(FrameSum {
            header,
            crc,
            len,
            folded: 0,
        })
    }

    /// Folds the next `bytes` of the payload into the checksum.
    pub fn fold(&mut self, bytes: &[u8]) {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.folded += bytes.len();
    }

    /// The frame header, checksum included.
    ///
    /// # Errors
    /// [`FormatError::BadFrame`] when the pieces folded do not add up to the length given to
    /// [`FrameSum::new`] (a caller bug: the frame would never verify).
    pub fn header(&self) -> Result<[u8; FRAME_HEADER_LEN], FormatError> {
        if self.folded != self.len {
            return Err(FormatError::BadFrame {
                offset: 0,
                reason: format!(
                    "{} payload bytes folded into a frame of {}",
                    self.folded, self.len
                ),
            });
        }
        let mut h = self.header;
        h[..4].copy_from_slice(&self.crc.to_le_bytes());
        Ok(h)
    }
}

#[inline]
fn check_fields(kind: FrameKind, flags: u8, len: usize) -> Result<(), String> {
    if flags & !kind.allowed_flags() != 0 {
        return Err(format!("flags {flags:#04x} not allowed on {kind:?}"));
    }
    let (min, exact) = kind.payload_rule();
    if (exact && len != min) || len < min {
        let want = if exact { "exactly" } else { "at least" };
        return Err(format!(
            "{kind:?} payload is {len} bytes, needs {want} {min}"
        ));
    }
    Ok(())
}

/// A durable lag may claim no frame before LSN 1: it is at most the frame's LSN.
#[inline]
fn check_lag(lag: u16, lsn: Lsn) -> Result<(), String> {
    if u64::from(lag) > lsn.0 {
        return Err(format!("durable lag {lag} exceeds the frame's LSN {lsn}"));
    }
    Ok(())
}

/// Why a frame failed to decode; the scanner turns these into a [`crate::scan::ScanEnd`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameFault {
    /// The bytes end before the frame does.
    Incomplete(String),
    /// The frame's fields or checksum are wrong.
    Invalid(String),
}

impl FrameFault {
    pub(crate) fn reason(&self) -> &str {
        match self {
            FrameFault::Incomplete(r) | FrameFault::Invalid(r) => r,
        }
    }
}

/// Decodes and verifies one frame at `offset` of `buf`.
///
/// # Errors
/// [`FormatError::BadFrame`] when the bytes at `offset` are not a complete frame that verifies
/// under `seed`.
pub fn decode_frame(buf: &Bytes, offset: usize, seed: SegmentSeed) -> Result<Frame, FormatError> {
    decode_at(buf, offset, seed).map_err(|f| FormatError::BadFrame {
        offset,
        reason: f.reason().to_owned(),
    })
}

#[inline]
pub(crate) fn decode_at(
    buf: &Bytes,
    offset: usize,
    seed: SegmentSeed,
) -> Result<Frame, FrameFault> {
    match try_decode_at(buf, offset, seed) {
        Some(f) => Ok(f),
        None => Err(fault_at(buf, offset, seed)),
    }
}

/// The kind, flags, durable lag and payload length of the frame header `h` (20 bytes) when
/// its fields are valid (everything but the checksum).
#[inline(always)]
fn header_fields(h: &[u8]) -> Option<(FrameKind, u8, u16, usize)> {
    let len = u32::from_le_bytes(arr4(&h[4..8])) as usize;
    if len > MAX_FRAME_PAYLOAD {
        return None;
    }
    let kind = FrameKind::from_u8(h[8])?;
    let flags = h[9];
    let lag = u16::from_le_bytes([h[10], h[11]]);
    let (min, exact) = kind.payload_rule();
    if flags & !kind.allowed_flags() != 0
        || (exact && len != min)
        || len < min
        || u64::from(lag) > u64::from_le_bytes(arr8(&h[12..20]))
    {
        return None;
    }
    Some((kind, flags, lag, len))
}

/// The frame at `offset` when it is complete and verifies; `None` otherwise, and
/// [`fault_at`] then says why. The fast path of every scan: plain comparisons, one checksum,
/// no formatting. Always inlined: returning a `Frame` through memory costs more than
/// building it in place (its byte fields make the copy stall on store forwarding).
#[inline(always)]
pub(crate) fn try_decode_at(buf: &Bytes, offset: usize, seed: SegmentSeed) -> Option<Frame> {
    let h = buf.get(offset..offset.checked_add(FRAME_HEADER_LEN)?)?;
    let (kind, flags, durable_lag, len) = header_fields(h)?;
    let end = offset + FRAME_HEADER_LEN + len;
    if end > buf.len() {
        return None;
    }
    let stored = u32::from_le_bytes(arr4(&h[0..4]));
    if crc32c::crc32c_append(seed.0, &buf[offset + 4..end]) != stored {
        return None;
    }
    Some(Frame {
        kind,
        flags,
        lsn: Lsn(u64::from_le_bytes(arr8(&h[12..20]))),
        durable_lag,
        payload: buf.slice(offset + FRAME_HEADER_LEN..end),
        offset,
    })
}

/// Why the frame at `offset` does not decode: the first check it fails, in the order the
/// format defines. Only called once [`try_decode_at`] has refused the frame.
#[cold]
#[inline(never)]
pub(crate) fn fault_at(buf: &Bytes, offset: usize, seed: SegmentSeed) -> FrameFault {
    let rest = buf.len().saturating_sub(offset);
    let Some(h) = offset
        .checked_add(FRAME_HEADER_LEN)
        .and_then(|e| buf.get(offset..e))
    else {
        return FrameFault::Incomplete(format!(
            "{rest} bytes left, a frame header needs {FRAME_HEADER_LEN}"
        ));
    };
    let stored = u32::from_le_bytes(arr4(&h[0..4]));
    let len = u32::from_le_bytes(arr4(&h[4..8])) as usize;
    // Validate the length before looking at (or allocating for) the payload.
    if len > MAX_FRAME_PAYLOAD {
        return FrameFault::Invalid(format!(
            "length field {len} exceeds the maximum frame payload {MAX_FRAME_PAYLOAD}"
        ));
    }
    let Some(kind) = FrameKind::from_u8(h[8]) else {
        return FrameFault::Invalid(format!("unknown frame kind {}", h[8]));
    };
    let flags = h[9];
    let lag = u16::from_le_bytes([h[10], h[11]]);
    if let Err(reason) = check_lag(lag, Lsn(u64::from_le_bytes(arr8(&h[12..20])))) {
        return FrameFault::Invalid(reason);
    }
    if let Err(reason) = check_fields(kind, flags, len) {
        return FrameFault::Invalid(reason);
    }
    let end = offset + FRAME_HEADER_LEN + len;
    if end > buf.len() {
        return FrameFault::Incomplete(format!(
            "frame of {} bytes runs past the end of data ({rest} bytes left)",
            FRAME_HEADER_LEN + len
        ));
    }
    let computed = crc32c::crc32c_append(seed.0, &buf[offset + 4..end]);
    // A frame that passed every check here would have decoded; `try_decode_at` only refuses
    // frames that fail one of them.
    FrameFault::Invalid(format!(
        "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
    ))
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

/// The flags byte of a frame, typed: [`FrameFlags::NONE`] or [`FrameFlags::MULTI`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FrameFlags(u8);

impl FrameFlags {
    /// No flag: a plain body.
    pub const NONE: FrameFlags = FrameFlags(0);
    /// [`FLAG_MULTI`]: the body is a multi-record batch ([`crate::records::encode_records`]).
    pub const MULTI: FrameFlags = FrameFlags(FLAG_MULTI);

    /// The byte written to the frame header.
    #[must_use]
    pub const fn bits(self) -> u8 {
        self.0
    }
}

/// Writes the frames of one segment: holds the segment's [`SegmentSeed`] and the durable
/// watermark the frames claim ([`FrameEncoder::claiming`]), so each call names only what
/// differs between frames, with typed flags. Without a claim it produces exactly the bytes of
/// [`encode_frame`], [`encode_records_frame`] and [`encode_fragment`].
///
/// ```
/// use wal_format::frame::{FrameEncoder, FrameFlags};
/// use wal_format::{FrameKind, LogId, Lsn, SegmentHeader, SegmentSeq};
///
/// let header = SegmentHeader::new(LogId::from_u128(7), SegmentSeq(1), Lsn(1));
/// let frames = FrameEncoder::new(header.seed());
/// let mut out = Vec::new();
/// frames.frame(&mut out, FrameKind::Tx, FrameFlags::NONE, Lsn(1), b"hello")?;
/// // LSN 1 is durable now: the next frames say so.
/// let frames = frames.claiming(Lsn(1));
/// frames.records(&mut out, Lsn(2), &[&b"a"[..], b"b"])?;
/// frames.watermark(&mut out, Lsn(2))?;
/// # Ok::<(), wal_format::FormatError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameEncoder {
    seed: SegmentSeed,
    durable: Lsn,
}

impl FrameEncoder {
    /// An encoder for the segment whose checksum seed is `seed` ([`crate::SegmentHeader::seed`]),
    /// whose frames claim nothing durable.
    #[must_use]
    pub const fn new(seed: SegmentSeed) -> FrameEncoder {
        FrameEncoder {
            seed,
            durable: Lsn::ZERO,
        }
    }

    /// The same encoder, its frames claiming that every frame up to `durable` is durable
    /// (covered by an fsync that completed before they are written). The caller must only
    /// claim what is durable: recovery calls damage at or before a claim corruption.
    #[must_use]
    pub const fn claiming(self, durable: Lsn) -> FrameEncoder {
        FrameEncoder {
            seed: self.seed,
            durable,
        }
    }

    /// The segment's seed.
    #[must_use]
    pub const fn seed(self) -> SegmentSeed {
        self.seed
    }

    fn lag(self, lsn: Lsn) -> u16 {
        durable_lag(lsn, self.durable)
    }

    /// Appends one frame to `out`, as [`encode_frame`].
    ///
    /// # Errors
    /// As [`encode_frame`].
    pub fn frame(
        self,
        out: &mut Vec<u8>,
        kind: FrameKind,
        flags: FrameFlags,
        lsn: Lsn,
        payload: &[u8],
    ) -> Result<(), FormatError> {
        let lag = self.lag(lsn);
        encode_frame_parts(out, self.seed, kind, flags.bits(), lag, lsn, &[payload])
    }

    /// Appends a multi-record `Tx` frame to `out`, as [`encode_records_frame`].
    ///
    /// # Errors
    /// As [`encode_records_frame`].
    pub fn records<R: AsRef<[u8]>>(
        self,
        out: &mut Vec<u8>,
        lsn: Lsn,
        records: &[R],
    ) -> Result<(), FormatError> {
        encode_records_lagged(out, self.seed, self.lag(lsn), lsn, records)
    }

    /// Appends one fragment frame of the stream begun at `stream`, as [`encode_fragment`].
    ///
    /// # Errors
    /// As [`encode_fragment`].
    pub fn fragment(
        self,
        out: &mut Vec<u8>,
        kind: FrameKind,
        lsn: Lsn,
        stream: Lsn,
        chunk: &[u8],
    ) -> Result<(), FormatError> {
        let parts: [&[u8]; 2] = [&stream.0.to_le_bytes(), chunk];
        encode_frame_parts(out, self.seed, kind, 0, self.lag(lsn), lsn, &parts)
    }

    /// Appends a [`FrameKind::Watermark`] frame after the frame with LSN `last` (the LSN it
    /// carries), claiming this encoder's watermark.
    ///
    /// # Errors
    /// As [`encode_frame`].
    pub fn watermark(self, out: &mut Vec<u8>, last: Lsn) -> Result<(), FormatError> {
        encode_frame_parts(
            out,
            self.seed,
            FrameKind::Watermark,
            0,
            self.lag(last),
            last,
            &[],
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_encoder_writes_the_bytes_of_the_free_functions() {
        let seed = SegmentSeed::new(LogId::from_u128(3), SegmentSeq(2));
        let enc = FrameEncoder::new(seed);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        enc.frame(&mut a, FrameKind::Tx, FrameFlags::NONE, Lsn(5), b"x")
            .unwrap();
        encode_frame(&mut b, seed, FrameKind::Tx, 0, Lsn(5), b"x").unwrap();
        enc.records(&mut a, Lsn(6), &[&b"p"[..], b"q"]).unwrap();
        encode_records_frame(&mut b, seed, Lsn(6), &[&b"p"[..], b"q"]).unwrap();
        enc.fragment(&mut a, FrameKind::FragPart, Lsn(7), Lsn(6), b"c")
            .unwrap();
        encode_fragment(&mut b, seed, FrameKind::FragPart, Lsn(7), Lsn(6), b"c").unwrap();
        assert_eq!(a, b);
        assert_eq!(enc.seed(), seed);
        assert_eq!(FrameFlags::MULTI.bits(), FLAG_MULTI);
        assert!(
            enc.frame(&mut a, FrameKind::Seal, FrameFlags::MULTI, Lsn(8), &[0; 8])
                .is_err()
        );
    }

    fn seed() -> SegmentSeed {
        SegmentSeed::new(LogId::from_u128(99), SegmentSeq(1))
    }

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
    fn only_an_abort_naming_itself_is_a_placeholder() {
        let frame = |kind, lsn: u64, stream: u64| {
            let mut out = Vec::new();
            encode_frame(&mut out, seed(), kind, 0, Lsn(lsn), &stream.to_le_bytes()).unwrap();
            decode_frame(&bytes::Bytes::from(out), 0, seed()).unwrap()
        };
        assert!(frame(FrameKind::FragAbort, 9, 9).is_placeholder());
        assert!(
            !frame(FrameKind::FragAbort, 9, 4).is_placeholder(),
            "a real abort"
        );
        assert!(!frame(FrameKind::FragBegin, 9, 9).is_placeholder());
        assert!(!frame(FrameKind::Tx, 9, 9).is_placeholder());
    }

    #[test]
    fn frame_round_trips_with_accessors() {
        let mut out = Vec::new();
        encode_frame(&mut out, seed(), FrameKind::Tx, FLAG_MULTI, Lsn(5), b"abc").unwrap();
        encode_fragment(&mut out, seed(), FrameKind::FragEnd, Lsn(6), Lsn(3), b"xy").unwrap();
        encode_frame(
            &mut out,
            seed(),
            FrameKind::Seal,
            0,
            Lsn(7),
            &9u64.to_le_bytes(),
        )
        .unwrap();
        let buf = Bytes::from(out);
        let f = decode_frame(&buf, 0, seed()).unwrap();
        assert_eq!(
            (f.kind, f.lsn, f.is_multi(), &f.body()[..]),
            (FrameKind::Tx, Lsn(5), true, &b"abc"[..])
        );
        let g = decode_frame(&buf, f.encoded_len(), seed()).unwrap();
        assert_eq!((g.stream(), &g.body()[..]), (Some(Lsn(3)), &b"xy"[..]));
        let s = decode_frame(&buf, f.encoded_len() + g.encoded_len(), seed()).unwrap();
        assert_eq!(s.sealed_next(), Some(SegmentSeq(9)));
    }

    #[test]
    fn wrong_seed_fails_verification() {
        let mut out = Vec::new();
        encode_frame(&mut out, seed(), FrameKind::Tx, 0, Lsn(1), b"abc").unwrap();
        let other = SegmentSeed::new(LogId::from_u128(99), SegmentSeq(2));
        assert!(decode_frame(&Bytes::from(out), 0, other).is_err());
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

    #[test]
    fn huge_length_field_is_rejected_without_reading() {
        let mut h = vec![0u8; FRAME_HEADER_LEN];
        h[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        h[8] = FrameKind::Tx as u8;
        let err = decode_at(&Bytes::from(h), 0, seed()).unwrap_err();
        assert!(matches!(err, FrameFault::Invalid(_)), "{err:?}");
    }

    #[test]
    fn offsets_past_the_end_are_errors_not_panics() {
        let buf = Bytes::from_static(&[0; 40]);
        for offset in [40, 41, usize::MAX - 19, usize::MAX - 5, usize::MAX] {
            assert!(decode_frame(&buf, offset, seed()).is_err(), "{offset}");
        }
    }
}
