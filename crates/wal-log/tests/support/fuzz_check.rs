//! The `open_dir` fuzz check: a log directory built from arbitrary bytes, opened and read.
//!
//! Shared by the cargo-fuzz target `fuzz/fuzz_targets/open_dir.rs` (which includes this file by
//! path) and the corpus replay test `tests/fuzz_corpus.rs`, so both check exactly the same
//! things. Every check panics on a violation.
//!
//! # Input
//!
//! The first byte picks how the directory image is made; the rest drives that and then a list
//! of mutations ([`mutate`]):
//!
//! * `0`, `1` (mod 4): **raw files**: up to eight `(name, length, bytes)` records, the name
//!   picked from [`NAMES`] (segments, a preallocated file, files moved aside, the lock file, a
//!   foreign file). With bit 7 of the first byte set, segment headers and frame checksums are
//!   re-stamped so that arbitrary field values get past the checksums.
//! * `2`: **synthesized log**: segments written frame by frame with `wal-format` (every frame
//!   kind, fragment streams, seals, foreign log ids, odd sequence numbers and LSNs near the
//!   ends of the range), with a fixed log id so the image is reproducible.
//! * `3`: **real log**: a `Wal` on `SimVfs` driven by the input (appends, batches, streams,
//!   checkpoint markers, truncation, syncs, reopens, an optional power cut), then a crash image
//!   chosen by the input; its segments are re-sealed under a fixed log id (only frames that
//!   verify are re-stamped) so the image does not depend on the random id of the run.
//!
//! # Checks
//!
//! [`check_image`] puts the image on a `SimVfs` and runs `inspect`, `frames` and `Wal::open`
//! in each [`RecoveryMode`] on an independent copy. Nothing may panic, hang or allocate beyond
//! the input's size. Errors are fine, but the answers must agree:
//!
//! * `Strict` opens exactly when `inspect` finds the log sound, `TolerateTornTail` exactly when
//!   it finds it sound or torn at the tail;
//! * when `TolerateTornTail` and `SalvagePrefix` both open, they read the same transactions;
//! * `inspect` and `frames` change nothing, nor does a refused open (unless by an I/O error);
//! * an opened log reads transactions in increasing LSN order, never past the durable LSN, and
//!   accepts an append that a reader then sees;
//! * the directory a successful open leaves behind reopens under `Strict` with nothing moved
//!   aside, reads exactly as before plus the append, and inspects as sound.
#![allow(dead_code)]

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use wal_format::frame::{
    FLAG_MULTI, FRAME_HEADER_LEN, MAX_FRAME_PAYLOAD, decode_frame, encode_fragment, encode_frame,
};
use wal_format::header::SEGMENT_HEADER_LEN;
use wal_format::records::encode_records;
use wal_format::{FrameKind, LogId, Lsn, SegmentHeader, SegmentSeq};
use wal_log::inspect::Verdict;
use wal_log::layout::{Entry, classify, segment_file_name};
use wal_log::sim::{CrashImage, DataLoss, DirLoss, SimVfs};
use wal_log::{Options, RecoveryMode, SyncPolicy, Vfs, Wal, WalError};

/// The log directory on the `SimVfs`.
pub const DIR: &str = "/wal";
/// Small segments, so that a few kilobytes of appends rotate.
pub const SEGMENT_SIZE: u64 = 16 << 10;
/// The largest transaction the log accepts (and a reader holds for one stream).
pub const MAX_TX: u64 = 1 << 20;
/// The most bytes one raw file takes from the input.
const MAX_RAW_FILE: usize = 64 << 10;
/// The log id of synthesized and re-stamped segments.
pub const LOG_ID: LogId = LogId::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
/// Another log's id, for foreign segments.
pub const OTHER_LOG_ID: LogId = LogId::from_u128(42);

/// File names a raw image or a rename picks from.
pub const NAMES: [&str; 14] = [
    "00000000000000000001.wal",
    "00000000000000000002.wal",
    "00000000000000000003.wal",
    "00000000000000000004.wal",
    "00000000000000000001.wal",
    "00000000000000000002.wal",
    "00000000000000000000.wal",
    "00000000000000000009.wal",
    "18446744073709551615.wal",
    "prealloc.tmp",
    "00000000000000000002.wal.torn-100",
    "00000000000000000001.wal.salvaged",
    "LOCK",
    "notes.txt",
];

/// A directory image: file name to contents.
pub type Image = BTreeMap<String, Vec<u8>>;

/// A committed transaction as read back: LSN, body, multi-record flag.
pub type Tx = (Lsn, Vec<u8>, bool);

/// Reads the fuzz input front to back; past its end every read gives zeros.
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data, pos: 0 }
    }
    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }
    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = (self.pos + 1).min(self.data.len());
        b
    }
    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    /// The next eight bytes, little-endian.
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }
    /// Up to `n` next bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos;
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = end;
        &self.data[start..end]
    }
}

/// The whole check of the `open_dir` fuzz target (and of the reproducers in
/// `fuzz/regressions/open_dir/`).
pub fn fuzz_open_dir(data: &[u8]) {
    check_image(&build_image(data));
}

/// Turns fuzz input into a directory image (see the module documentation).
pub fn build_image(data: &[u8]) -> Image {
    let mut inp = Input::new(data);
    let how = inp.u8();
    let mut image = match how % 4 {
        0 | 1 => raw(&mut inp, how & 0x80 != 0),
        2 => synthesized(&mut inp),
        _ => real(&mut inp),
    };
    mutate(&mut image, &mut inp);
    image
}

fn is_segment(name: &str) -> bool {
    matches!(classify(name), Entry::Segment(_))
}

fn raw(inp: &mut Input<'_>, restamp: bool) -> Image {
    let mut image = Image::new();
    for _ in 0..8 {
        if inp.is_empty() {
            break;
        }
        let name = NAMES[usize::from(inp.u8()) % NAMES.len()];
        let len = usize::from(inp.u16()) % MAX_RAW_FILE;
        let mut bytes = inp.bytes(len).to_vec();
        if restamp && is_segment(name) {
            restamp_all(&mut bytes);
        }
        image.insert(name.to_owned(), bytes);
    }
    image
}

/// Picks the stream a fragment frame names: mostly an open one, sometimes any LSN.
fn pick_stream(open: &BTreeSet<Lsn>, inp: &mut Input<'_>, lsn: Lsn) -> Lsn {
    let b = inp.u8();
    if !open.is_empty() && b < 224 {
        let i = usize::from(b) % open.len();
        if let Some(s) = open.iter().nth(i) {
            return *s;
        }
    }
    Lsn(lsn.0.wrapping_sub(u64::from(inp.u8())))
}

fn synthesized(inp: &mut Input<'_>) -> Image {
    let mut image = Image::new();
    let cfg = inp.u8();
    let mut seq = SegmentSeq(match cfg % 8 {
        0..=4 => 1,
        5 => 2,
        6 => 0,
        _ => u64::MAX - 1,
    });
    let mut lsn = Lsn(match (cfg >> 3) % 8 {
        0..=4 => 1,
        5 => 1 + u64::from(inp.u8()) * 3,
        6 => 0,
        _ => u64::MAX - u64::from(inp.u8()),
    });
    let segments = 1 + usize::from(cfg >> 6);
    let mut log_id = LOG_ID;
    let mut open: BTreeSet<Lsn> = BTreeSet::new();
    for s in 0..segments {
        let header = SegmentHeader {
            log_id,
            seq,
            base_lsn: lsn,
            oldest_open_lsn: open.first().copied().unwrap_or(Lsn::ZERO),
            recycled: false,
            payload_schema: 0,
        };
        let seed = header.seed();
        let mut buf = header.encode().to_vec();
        for _ in 0..inp.u8() % 16 {
            let k = inp.u8();
            let r = match k % 8 {
                0 | 1 => {
                    let n = usize::from(inp.u8()) * (1 + usize::from(k >> 6));
                    encode_frame(&mut buf, seed, FrameKind::Tx, 0, lsn, inp.bytes(n))
                }
                2 => {
                    let records: Vec<&[u8]> = (0..inp.u8() % 4)
                        .map(|_| {
                            let n = usize::from(inp.u8() % 32);
                            inp.bytes(n)
                        })
                        .collect();
                    let mut body = Vec::new();
                    encode_records(&mut body, &records);
                    encode_frame(&mut buf, seed, FrameKind::Tx, FLAG_MULTI, lsn, &body)
                }
                3 => {
                    let flags = if k & 0x80 != 0 { FLAG_MULTI } else { 0 };
                    let n = usize::from(inp.u8() % 64);
                    open.insert(lsn);
                    encode_frame(
                        &mut buf,
                        seed,
                        FrameKind::FragBegin,
                        flags,
                        lsn,
                        inp.bytes(n),
                    )
                }
                4 | 5 => {
                    let stream = pick_stream(&open, inp, lsn);
                    let kind = if k % 8 == 4 {
                        FrameKind::FragPart
                    } else {
                        open.remove(&stream);
                        FrameKind::FragEnd
                    };
                    let n = usize::from(inp.u8() % 64);
                    encode_fragment(&mut buf, seed, kind, lsn, stream, inp.bytes(n))
                }
                6 => {
                    let stream = pick_stream(&open, inp, lsn);
                    open.remove(&stream);
                    let p = stream.0.to_le_bytes();
                    encode_frame(&mut buf, seed, FrameKind::FragAbort, 0, lsn, &p)
                }
                _ => {
                    let p = lsn.0.wrapping_sub(u64::from(inp.u8())).to_le_bytes();
                    encode_frame(&mut buf, seed, FrameKind::Checkpoint, 0, lsn, &p)
                }
            };
            if r.is_ok() {
                lsn = lsn.next();
            }
        }
        let flags = inp.u8();
        let last = s + 1 == segments;
        if (!last && flags & 1 == 0) || (last && flags & 2 != 0) {
            let next = if flags & 4 != 0 {
                seq.next().next()
            } else {
                seq.next()
            };
            let p = next.0.to_le_bytes();
            if encode_frame(&mut buf, seed, FrameKind::Seal, 0, lsn, &p).is_ok() {
                lsn = lsn.next();
            }
        }
        if flags & 8 != 0 {
            // Preallocated space (or a zeroed tail) after the frames.
            buf.resize(buf.len() + usize::from(flags >> 4) * 64, 0);
        }
        image.insert(segment_file_name(seq), buf);
        seq = seq.next();
        if flags & 0x70 == 0x70 {
            log_id = OTHER_LOG_ID;
        }
    }
    image
}

fn options(vfs: &SimVfs, mode: RecoveryMode) -> Options {
    Options::default()
        .vfs(Arc::new(vfs.clone()))
        .segment_size(SEGMENT_SIZE)
        .preallocate(false)
        .max_transaction_size(MAX_TX)
        .recovery(mode)
        .sync(SyncPolicy::Always)
}

/// Runs one operation of the real-log workload; `false` when the log is gone.
fn real_op(wal: &mut Option<Wal>, o: &Options, inp: &mut Input<'_>) -> bool {
    let Some(w) = wal.as_ref() else { return false };
    let op = inp.u8();
    match op % 10 {
        0..=3 => {
            let n = usize::from(inp.u8()) * (1 + usize::from(op >> 4));
            let _ = w.append(&vec![op; n]);
        }
        4 => {
            let records: Vec<Vec<u8>> = (0..inp.u8() % 4)
                .map(|i| vec![i; usize::from(inp.u8())])
                .collect();
            let _ = w.append_batch(&records);
        }
        5 => {
            if let Ok(mut s) = w.stream() {
                s.set_multi(op & 0x10 != 0);
                let _ = s.write(&vec![op; usize::from(inp.u8()) * 4]);
                match inp.u8() % 3 {
                    0 => drop(s.commit()),
                    1 => drop(s.abort()),
                    _ => drop(s),
                }
            }
        }
        6 => {
            let at = w.durable_lsn().0.saturating_sub(u64::from(inp.u8() % 8));
            let _ = w.checkpoint_marker(Lsn(at));
        }
        7 => {
            let fence = w.durable_lsn().0.saturating_sub(u64::from(inp.u8()));
            let _ = w.truncate_prefix(Lsn(fence));
        }
        8 => {
            let _ = w.sync();
        }
        _ => {
            *wal = None;
            match Wal::open(DIR, o.clone()) {
                Ok((w, _)) => *wal = Some(w),
                Err(_) => return false,
            }
        }
    }
    true
}

fn real(inp: &mut Input<'_>) -> Image {
    let vfs = SimVfs::new();
    let cfg = inp.u8();
    let sync = if cfg & 1 == 0 {
        SyncPolicy::Always
    } else {
        SyncPolicy::Never
    };
    let o = options(&vfs, RecoveryMode::TolerateTornTail).sync(sync);
    let mut wal = Wal::open(DIR, o.clone()).ok().map(|(w, _)| w);
    let power = inp.u8();
    if cfg & 2 != 0 {
        vfs.power_off_after(u64::from(power));
    }
    for _ in 0..inp.u8() % 32 {
        if !real_op(&mut wal, &o, inp) {
            break;
        }
    }
    drop(wal);
    let data = match inp.u8() % 6 {
        0 => DataLoss::AllWritten,
        1 => DataLoss::DurableOnly,
        2 => DataLoss::Prefix(usize::from(inp.u8())),
        3 => DataLoss::TornLastWrite {
            sectors: usize::from(inp.u8() % 8),
        },
        4 => DataLoss::UnsyncedGarbage {
            seed: u64::from(inp.u8()),
        },
        _ => DataLoss::UnsyncedZeroed,
    };
    let dirs = if inp.u8() & 1 == 0 {
        DirLoss::AllKept
    } else {
        DirLoss::UnsyncedLost
    };
    let crashed = vfs.crash(&CrashImage { data, dirs });
    let mut image = Image::new();
    for (path, _) in crashed.files() {
        if path.parent() != Some(Path::new(DIR)) {
            continue;
        }
        let (Some(name), Some(mut bytes)) = (
            path.file_name().and_then(|n| n.to_str()),
            crashed.read_file(&path),
        ) else {
            continue;
        };
        if is_segment(name) {
            reseal(&mut bytes, LOG_ID);
        }
        image.insert(name.to_owned(), bytes);
    }
    image
}

/// Moves a segment to log `log_id`: its header and every frame that verifies (up to the first
/// that does not) are re-stamped; everything else is left as it is, so the log means the same.
pub fn reseal(data: &mut [u8], log_id: LogId) {
    let Ok(old) = SegmentHeader::decode(data) else {
        return;
    };
    let new = SegmentHeader { log_id, ..old };
    let bytes = Bytes::copy_from_slice(data);
    data[..SEGMENT_HEADER_LEN].copy_from_slice(&new.encode());
    let mut pos = SEGMENT_HEADER_LEN;
    while let Ok(f) = decode_frame(&bytes, pos, old.seed()) {
        let end = pos + f.encoded_len();
        let crc = crc32c::crc32c_append(new.seed().get(), &data[pos + 4..end]);
        data[pos..pos + 4].copy_from_slice(&crc.to_le_bytes());
        pos = end;
    }
}

/// Re-stamps the header checksum (with whatever fields are there) and the checksum of every
/// frame whose length fits, stopping at the first frame of kind 0 (zeros stay zeros).
pub fn restamp_all(data: &mut [u8]) {
    if data.len() < SEGMENT_HEADER_LEN {
        return;
    }
    let u64_at = |d: &[u8], at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&d[at..at + 8]);
        u64::from_le_bytes(a)
    };
    let mut id = [0u8; 16];
    id.copy_from_slice(&data[16..32]);
    let header = SegmentHeader {
        log_id: LogId::from_u128(u128::from_le_bytes(id)),
        seq: SegmentSeq(u64_at(data, 32)),
        base_lsn: Lsn(u64_at(data, 40)),
        oldest_open_lsn: Lsn(u64_at(data, 48)),
        recycled: data[10] & 1 != 0,
        payload_schema: u32::from_le_bytes([data[56], data[57], data[58], data[59]]),
    };
    data[..SEGMENT_HEADER_LEN].copy_from_slice(&header.encode());
    let seed = header.seed().get();
    let mut pos = SEGMENT_HEADER_LEN;
    while let Some(h) = data.get(pos..pos + FRAME_HEADER_LEN) {
        let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
        let end = pos + FRAME_HEADER_LEN + len;
        if h[8] == 0 || len > MAX_FRAME_PAYLOAD || end > data.len() {
            break;
        }
        let crc = crc32c::crc32c_append(seed, &data[pos + 4..end]);
        data[pos..pos + 4].copy_from_slice(&crc.to_le_bytes());
        pos = end;
    }
}

/// Applies up to 16 mutations read from `inp` to the image.
pub fn mutate(image: &mut Image, inp: &mut Input<'_>) {
    for _ in 0..16 {
        if inp.is_empty() {
            break;
        }
        let op = inp.u8();
        let pick = usize::from(inp.u8());
        let Some(name) = image.keys().nth(pick % image.len().max(1)).cloned() else {
            // Nothing to mutate: add a file instead.
            let len = usize::from(inp.u8()) * 4;
            let bytes = inp.bytes(len).to_vec();
            image.insert(NAMES[pick % NAMES.len()].to_owned(), bytes);
            continue;
        };
        let at = usize::from(inp.u16());
        match op % 10 {
            5 => {
                image.remove(&name);
                continue;
            }
            6 | 7 => {
                let to = NAMES[usize::from(inp.u8()) % NAMES.len()].to_owned();
                let bytes = if op % 10 == 6 {
                    image.remove(&name).unwrap_or_default()
                } else {
                    image.get(&name).cloned().unwrap_or_default()
                };
                image.insert(to, bytes);
                continue;
            }
            _ => {}
        }
        let Some(file) = image.get_mut(&name) else {
            continue;
        };
        let len = file.len();
        match op % 10 {
            0 => {
                if len > 0 {
                    file[at % len] ^= 1 << (op >> 5);
                }
            }
            1 => {
                let n = usize::from(inp.u8()) * 4;
                let start = at % (len + 1);
                let end = (start + n).min(len);
                file[start..end].fill(0);
            }
            2 => file.truncate(at % (len + 1)),
            3 => {
                let v = inp.u8();
                if len > 0 {
                    file[at % len] = v;
                }
            }
            4 => {
                let n = usize::from(inp.u8());
                if op & 0x80 != 0 {
                    file.resize(len + n * 16, 0);
                } else {
                    let more = inp.bytes(n).to_vec();
                    file.extend_from_slice(&more);
                }
            }
            8 => {
                // A field value that matters (an LSN, a sequence number, a length), then
                // checksums re-stamped so that it is believed.
                let v = match inp.u8() % 6 {
                    0 => 0,
                    1 => 1,
                    2 => u64::MAX,
                    3 => u64::from(inp.u8()),
                    4 => u64::from(u32::MAX),
                    _ => inp.u64(),
                };
                let n = if op & 0x80 != 0 { 8 } else { 4 };
                let start = at % (len + 1);
                let end = (start + n).min(len);
                file[start..end].copy_from_slice(&v.to_le_bytes()[..end - start]);
                restamp_all(file);
            }
            _ => restamp_all(file),
        }
    }
}

/// An independent copy of `vfs` with every file and entry in place.
fn copy(vfs: &SimVfs) -> SimVfs {
    vfs.crash(&CrashImage {
        data: DataLoss::AllWritten,
        dirs: DirLoss::AllKept,
    })
}

/// Every file of the log directory but the lock file, with its contents.
fn dir_contents(vfs: &SimVfs) -> Vec<(std::path::PathBuf, Option<Vec<u8>>)> {
    vfs.files()
        .into_iter()
        .filter(|(p, _)| p.file_name().is_some_and(|n| n != "LOCK"))
        .map(|(p, _)| {
            let bytes = vfs.read_file(&p);
            (p, bytes)
        })
        .collect()
}

/// Every committed transaction from the oldest retained LSN, failing past `bound` of them
/// (more transactions than the image has frames would mean a reader that does not advance).
fn read_all(wal: &Wal, bound: usize) -> Result<Vec<Tx>, WalError> {
    let mut out = Vec::new();
    for t in wal.read_from(wal.oldest_retained_lsn())? {
        let t = t?;
        out.push((t.lsn, t.body.to_vec(), t.multi));
        assert!(
            out.len() <= bound,
            "the reader yields more transactions than the log has frames"
        );
    }
    Ok(out)
}

/// What opening in one mode gave.
#[derive(Debug)]
enum Opened {
    Failed(String),
    Read(Result<Vec<Tx>, String>),
}

const APPENDED: &[u8] = b"appended after recovery";

/// Opens the log on `vfs` in `mode` and, when that works, reads, appends, reopens and reads.
fn open_and_use(vfs: &SimVfs, mode: RecoveryMode, bound: usize) -> Opened {
    let before = dir_contents(vfs);
    let (wal, report) = match Wal::open(DIR, options(vfs, mode)) {
        Ok(w) => w,
        Err(e) => {
            // A refused open changes nothing on disk (its lock file aside).
            if !matches!(e, WalError::Io { .. }) {
                assert!(
                    dir_contents(vfs) == before,
                    "{mode:?}: a refused open changed the directory: {e}"
                );
            }
            return Opened::Failed(e.to_string());
        }
    };
    let _ = report.bytes_moved_aside();
    // From LSN 0 (an error, `Truncated`, when the log no longer starts at LSN 1), then from
    // the oldest retained LSN, which must work.
    if let Ok(r) = wal.read_from(Lsn::ZERO) {
        assert!(
            r.take(bound + 1).count() <= bound,
            "a reader does not advance"
        );
    }
    let read = read_all(&wal, bound).map_err(|e| e.to_string());
    if let Ok(txs) = &read {
        for pair in txs.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "{mode:?}: LSNs out of order: {txs:?}"
            );
        }
        if let Some(last) = txs.last() {
            assert!(last.0 <= wal.durable_lsn(), "{mode:?}: read past durable");
        }
    }
    let lsn = wal
        .append(APPENDED)
        .unwrap_or_else(|e| panic!("{mode:?}: opened, but an append fails: {e}"));
    // A rotation after the append gives its seal the next LSN.
    assert!(
        lsn <= wal.last_lsn(),
        "{mode:?}: append at {lsn} past the last LSN"
    );
    assert!(
        lsn <= wal.durable_lsn(),
        "{mode:?}: an append under Always returned before it was durable"
    );
    let after = read_all(&wal, bound + 1).map_err(|e| e.to_string());
    if let (Ok(before), Ok(after)) = (&read, &after) {
        let mut want = before.clone();
        want.push((lsn, APPENDED.to_vec(), false));
        assert_eq!(after, &want, "{mode:?}: the append does not read back");
    }
    drop(wal);
    let (wal, report) = Wal::open(DIR, options(vfs, RecoveryMode::Strict)).unwrap_or_else(|e| {
        panic!("{mode:?}: the log does not reopen (strict) after a successful open: {e}")
    });
    assert!(
        report.moved_aside.is_empty(),
        "{mode:?}: reopening moved bytes aside: {report:?}"
    );
    let again = read_all(&wal, bound + 1).map_err(|e| e.to_string());
    match (&after, &again) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{mode:?}: reopening changed the transactions"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("{mode:?}: reading before reopening gave {a:?}, after {b:?}"),
    }
    drop(wal);
    let inspection = wal_log::inspect::inspect(vfs, Path::new(DIR), &mut |_, _| {})
        .unwrap_or_else(|e| panic!("{mode:?}: inspecting a reopened log fails: {e}"));
    assert_eq!(
        inspection.verdict(),
        Verdict::Sound,
        "{mode:?}: a reopened log does not inspect as sound"
    );
    Opened::Read(read)
}

/// Puts `image` on a fresh `SimVfs` and runs every reader of a log directory over it.
pub fn check_image(image: &Image) {
    let base = SimVfs::new();
    base.create_dir_all(Path::new(DIR))
        .unwrap_or_else(|e| panic!("create_dir_all: {e}"));
    for (name, bytes) in image {
        base.put_file(&Path::new(DIR).join(name), bytes);
    }
    let total: usize = image.values().map(Vec::len).sum();
    let bound = total / FRAME_HEADER_LEN + 2;

    let untouched = dir_contents(&base);
    let inspection = wal_log::inspect::inspect(&base, Path::new(DIR), &mut |done, all| {
        assert!(done <= all, "inspect progress {done} of {all}");
    });
    // A directory with a foreign file inspects (read-only scans read past it), but every open
    // refuses it: the verdict on its frames does not predict the opens.
    let foreign = inspection
        .as_ref()
        .is_ok_and(|i| !i.foreign_files.is_empty());
    let verdict = inspection
        .as_ref()
        .ok()
        .filter(|_| !foreign)
        .map(wal_log::inspect::Inspection::verdict);
    if let Ok(i) = &inspection {
        let segments = image.keys().filter(|n| is_segment(n)).count();
        assert_eq!(i.segments.len(), segments, "inspect lists every segment");
        let _ = i.last_lsn();
    }

    if let Ok(frames) = wal_log::inspect::frames(Arc::new(base.clone()), Path::new(DIR)) {
        let mut n = 0usize;
        for f in frames {
            n += 1;
            assert!(
                n <= bound + image.len(),
                "frames yields more items than the directory has frames"
            );
            let _ = f.map(|f| f.frame.lsn);
        }
    }

    assert!(
        dir_contents(&base) == untouched,
        "inspect or frames changed the directory"
    );

    let modes = [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::Strict,
        RecoveryMode::SalvagePrefix,
    ];
    let opened: Vec<Opened> = modes
        .iter()
        .map(|&mode| open_and_use(&copy(&base), mode, bound))
        .collect();

    if foreign {
        assert!(
            opened.iter().all(|o| !matches!(o, Opened::Read(_))),
            "an open accepted a directory with a foreign file"
        );
    }
    if let Some(v) = &verdict {
        let ok = |o: &Opened| matches!(o, Opened::Read(_));
        assert_eq!(
            ok(&opened[1]),
            *v == Verdict::Sound,
            "strict open {:?} disagrees with inspect's verdict {v:?}",
            opened[1]
        );
        assert_eq!(
            ok(&opened[0]),
            matches!(v, Verdict::Sound | Verdict::TornTail { .. }),
            "tolerant open {:?} disagrees with inspect's verdict {v:?}",
            opened[0]
        );
    }
    if let (Opened::Read(Ok(a)), Opened::Read(Ok(b))) = (&opened[0], &opened[2]) {
        assert_eq!(a, b, "tolerant and salvage recovery read different logs");
    }
}
