//! Building segments from a list of frame descriptions, for the golden and property tests.
#![allow(dead_code)]

use bytes::Bytes;
use wal_format::frame::{FLAG_MULTI, FrameEncoder, FrameFlags, durable_lag};
use wal_format::{Frame, FrameKind, Lsn, SegmentHeader};

/// One frame to write, with its payload in structured form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    /// A whole transaction; `multi` sets [`FLAG_MULTI`].
    Tx { multi: bool, body: Vec<u8> },
    /// First fragment of a stream named by this frame's LSN.
    FragBegin { multi: bool, body: Vec<u8> },
    /// Middle fragment of stream `stream`.
    FragPart { stream: u64, chunk: Vec<u8> },
    /// Last fragment of stream `stream`.
    FragEnd { stream: u64, chunk: Vec<u8> },
    /// Abandons stream `stream`.
    FragAbort { stream: u64 },
    /// Snapshot up to `lsn` exists.
    Checkpoint { lsn: u64 },
    /// Closes the segment; the next one is `next`.
    Seal { next: u64 },
    /// Only a durable watermark; repeats the LSN before it.
    Watermark,
}

impl Spec {
    /// The frame kind.
    pub fn kind(&self) -> FrameKind {
        match self {
            Spec::Tx { .. } => FrameKind::Tx,
            Spec::FragBegin { .. } => FrameKind::FragBegin,
            Spec::FragPart { .. } => FrameKind::FragPart,
            Spec::FragEnd { .. } => FrameKind::FragEnd,
            Spec::FragAbort { .. } => FrameKind::FragAbort,
            Spec::Checkpoint { .. } => FrameKind::Checkpoint,
            Spec::Seal { .. } => FrameKind::Seal,
            Spec::Watermark => FrameKind::Watermark,
        }
    }

    /// The flag byte.
    pub fn flags(&self) -> u8 {
        match self {
            Spec::Tx { multi: true, .. } | Spec::FragBegin { multi: true, .. } => FLAG_MULTI,
            _ => 0,
        }
    }

    /// The payload bytes exactly as the format lays them out.
    pub fn payload(&self) -> Vec<u8> {
        match self {
            Spec::Tx { body, .. } | Spec::FragBegin { body, .. } => body.clone(),
            Spec::FragPart { stream, chunk } | Spec::FragEnd { stream, chunk } => {
                let mut p = stream.to_le_bytes().to_vec();
                p.extend_from_slice(chunk);
                p
            }
            Spec::FragAbort { stream: v }
            | Spec::Checkpoint { lsn: v }
            | Spec::Seal { next: v } => v.to_le_bytes().to_vec(),
            Spec::Watermark => Vec::new(),
        }
    }
}

/// An encoded segment and what a scanner must find in it.
#[derive(Clone, Debug)]
pub struct Built {
    /// Header followed by the frames.
    pub bytes: Vec<u8>,
    /// Start offset of every frame, followed by the end offset of the last one.
    pub offsets: Vec<usize>,
    /// The frames as the scanner yields them.
    pub frames: Vec<Frame>,
}

/// Encodes `specs` after `header`, giving frame `i` the next LSN from `header.base_lsn` on
/// (wrapping; a watermark repeats the LSN before it), claiming nothing durable.
pub fn build(header: &SegmentHeader, specs: &[Spec]) -> Built {
    build_claiming(header, specs, |_, _| Lsn::ZERO)
}

/// As [`build`], frame `i` with LSN `lsn` claiming `durable(i, lsn)` durable (capped at its
/// own LSN).
pub fn build_claiming(
    header: &SegmentHeader,
    specs: &[Spec],
    durable: impl Fn(usize, Lsn) -> Lsn,
) -> Built {
    let seed = header.seed();
    let mut bytes = header.encode().to_vec();
    let mut offsets = Vec::with_capacity(specs.len() + 1);
    let mut lags = Vec::with_capacity(specs.len());
    let mut lsns = Vec::with_capacity(specs.len());
    let mut next = header.base_lsn;
    for (i, spec) in specs.iter().enumerate() {
        offsets.push(bytes.len());
        let lsn = spec.kind().expected_lsn(next);
        let claim = durable(i, lsn).min(lsn);
        let enc = FrameEncoder::new(seed).claiming(claim);
        let flags = if spec.flags() == FLAG_MULTI {
            FrameFlags::MULTI
        } else {
            FrameFlags::NONE
        };
        match spec {
            Spec::FragPart { stream, chunk } | Spec::FragEnd { stream, chunk } => {
                enc.fragment(&mut bytes, spec.kind(), lsn, Lsn(*stream), chunk)
            }
            _ => enc.frame(&mut bytes, spec.kind(), flags, lsn, &spec.payload()),
        }
        .unwrap_or_else(|e| panic!("cannot encode {spec:?}: {e}"));
        lags.push(durable_lag(lsn, claim));
        lsns.push(lsn);
        if spec.kind().takes_lsn() {
            next = next.next();
        }
    }
    offsets.push(bytes.len());
    let shared = Bytes::from(bytes.clone());
    let frames = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| Frame {
            kind: spec.kind(),
            flags: spec.flags(),
            lsn: lsns[i],
            durable_lag: lags[i],
            payload: shared.slice(offsets[i] + 20..offsets[i + 1]),
            offset: offsets[i],
        })
        .collect();
    Built {
        bytes,
        offsets,
        frames,
    }
}

/// A canonical hex dump: offset, then up to 16 bytes in groups of two.
pub fn hexdump(bytes: &[u8]) -> String {
    let mut s = String::new();
    for (i, line) in bytes.chunks(16).enumerate() {
        s.push_str(&format!("{:04x}:", i * 16));
        for (j, b) in line.iter().enumerate() {
            if j % 2 == 0 {
                s.push(' ');
            }
            s.push_str(&format!("{b:02x}"));
        }
        s.push('\n');
    }
    s
}
