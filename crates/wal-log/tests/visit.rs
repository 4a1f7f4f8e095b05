//! `Wal::open_visit` and `inspect_visit`: the single read of the log shows a visitor exactly
//! the frames of the valid prefix, and a visitor's error abandons the open with nothing
//! changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use wal_format::{FrameKind, SegmentHeader, SegmentSeq};
use wal_log::inspect::{DirFrame, Verdict};
use wal_log::{Lsn, OpenReport, Options, RecoveryMode, ScanVisitor, VisitError, Wal, WalError};

fn opts() -> Options {
    Options::default().segment_size(16 << 10).preallocate(false)
}

fn segment_path(dir: &Path, seq: u64) -> std::path::PathBuf {
    dir.join(wal_log::layout::segment_file_name(SegmentSeq(seq)))
}

/// Records headers and frames.
#[derive(Default)]
struct Record {
    headers: Vec<SegmentHeader>,
    frames: Vec<DirFrame>,
}

impl ScanVisitor for Record {
    type Error = std::convert::Infallible;
    fn segment(&mut self, header: &SegmentHeader) -> Result<(), Self::Error> {
        self.headers.push(*header);
        Ok(())
    }
    fn frame(&mut self, frame: DirFrame) -> Result<(), Self::Error> {
        self.frames.push(frame);
        Ok(())
    }
}

/// A short summary of a payload, so that a failed comparison prints little.
fn summary(lsn: Lsn, body: &[u8]) -> (Lsn, usize, u32) {
    (lsn, body.len(), crc32c::crc32c(body))
}

/// The committed single-frame transactions among `frames`.
fn txs(frames: &[DirFrame]) -> Vec<(Lsn, usize, u32)> {
    frames
        .iter()
        .filter(|f| f.frame.kind == FrameKind::Tx)
        .map(|f| summary(f.frame.lsn, &f.frame.payload))
        .collect()
}

/// The transactions a reader reads back, fragmented ones left out.
fn read_back(wal: &Wal, frames: &[DirFrame]) -> Vec<(Lsn, usize, u32)> {
    wal.read_from(Lsn::ZERO)
        .unwrap()
        .map(|t| t.unwrap())
        .filter(|t| {
            frames
                .iter()
                .any(|f| f.frame.lsn == t.lsn && f.frame.kind == FrameKind::Tx)
        })
        .map(|t| summary(t.lsn, &t.body))
        .collect()
}

/// A log of several segments, with a checkpoint marker and a fragmented transaction.
fn build(dir: &Path) -> Lsn {
    let (wal, _) = Wal::open(dir, opts()).unwrap();
    for i in 0..300u32 {
        wal.append(&i.to_le_bytes().repeat(25)).unwrap();
        if i == 100 {
            wal.checkpoint_marker(Lsn(50)).unwrap();
        }
    }
    // Larger than one frame: written as fragments.
    let mut s = wal.stream().unwrap();
    s.write(&vec![3u8; 5 << 20]).unwrap();
    s.commit().unwrap();
    wal.append(b"last").unwrap()
}

#[test]
fn the_visitor_sees_every_frame_of_the_log_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let last = build(dir.path());
    let mut seen = Record::default();
    let (wal, report) = Wal::open_visit(dir.path(), opts(), &mut seen).unwrap();
    assert_eq!(report.last_lsn, last);
    assert!(report.segments > 3, "{report:?}");
    // Dense LSNs from the first to the last, every kind included; the clean close left a
    // watermark after the last frame, repeating its LSN and claiming it durable.
    let lsns: Vec<Lsn> = seen.frames.iter().map(|f| f.frame.lsn).collect();
    let mut want: Vec<Lsn> = (1..=last.0).map(Lsn).collect();
    want.push(last);
    assert_eq!(lsns, want);
    let mark = &seen.frames.last().unwrap().frame;
    assert_eq!((mark.kind, mark.durable()), (FrameKind::Watermark, last));
    for kind in [
        FrameKind::Checkpoint,
        FrameKind::Seal,
        FrameKind::FragBegin,
        FrameKind::FragEnd,
    ] {
        assert!(seen.frames.iter().any(|f| f.frame.kind == kind), "{kind:?}");
    }
    // One header per segment, before its frames; frames name their segment.
    let seqs: Vec<u64> = seen.headers.iter().map(|h| h.seq.0).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    for f in &seen.frames {
        let h = seen.headers.iter().find(|h| h.seq == f.seq).unwrap();
        assert!(f.frame.lsn >= h.base_lsn);
    }
    // The single-frame transactions are those a reader reads back.
    let read = read_back(&wal, &seen.frames);
    assert_eq!(read.len(), 301);
    assert_eq!(txs(&seen.frames), read);
    assert!(report.bytes_scanned > 0 && report.scan_elapsed <= report.elapsed);
}

#[test]
fn a_closure_is_a_visitor() {
    let dir = tempfile::tempdir().unwrap();
    let last = build(dir.path());
    let mut n = 0u64;
    let (_wal, report) = Wal::open_visit(dir.path(), opts(), &mut |_: DirFrame| {
        n += 1;
        Ok::<(), ()>(())
    })
    .unwrap();
    // Every frame, and the watermark of the clean close.
    assert_eq!((n, report.last_lsn), (last.0 + 1, last));
}

#[test]
fn frames_before_a_torn_tail_are_the_kept_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let last = build(dir.path());
    let (_, report) = Wal::open(dir.path(), opts()).unwrap();
    let seg = segment_path(dir.path(), report.segments as u64);
    drop(report);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&[0xAB; 57]);
    std::fs::write(&seg, &bytes).unwrap();

    // Strict: the frames were visited, then the open failed; nothing changed.
    let mut seen = Record::default();
    let err =
        Wal::open_visit(dir.path(), opts().recovery(RecoveryMode::Strict), &mut seen).unwrap_err();
    assert!(
        matches!(err, VisitError::Wal(WalError::TornTail { .. })),
        "{err}"
    );
    assert_eq!(seen.frames.last().unwrap().frame.lsn, last);
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);

    // Tolerant: the same frames, and they are what the repaired log holds.
    let mut seen = Record::default();
    let (wal, report) = Wal::open_visit(dir.path(), opts(), &mut seen).unwrap();
    assert_eq!(report.bytes_moved_aside(), 57);
    assert_eq!(seen.frames.last().unwrap().frame.lsn, last);
    assert_eq!(txs(&seen.frames), read_back(&wal, &seen.frames));
}

#[test]
fn salvage_visits_only_the_prefix_it_keeps() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    // Corrupt a frame in the middle of the second segment.
    let seg = segment_path(dir.path(), 2);
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    let mut seen = Record::default();
    let err = Wal::open_visit(dir.path(), opts(), &mut seen).unwrap_err();
    assert!(
        matches!(err, VisitError::Wal(WalError::Corrupt { .. })),
        "{err}"
    );
    let mut seen = Record::default();
    let (wal, report) = Wal::open_visit(
        dir.path(),
        opts().recovery(RecoveryMode::SalvagePrefix),
        &mut seen,
    )
    .unwrap();
    assert!(!report.moved_aside.is_empty());
    assert_eq!(seen.frames.last().unwrap().frame.lsn, report.last_lsn);
    assert!(seen.frames.iter().all(|f| f.seq.0 <= 2));
    assert_eq!(txs(&seen.frames), read_back(&wal, &seen.frames));
}

#[test]
fn a_visitor_error_abandons_the_open_with_nothing_changed() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let (_, report) = Wal::open(dir.path(), opts()).unwrap();
    let seg = segment_path(dir.path(), report.segments as u64);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&[0xAB; 57]);
    std::fs::write(&seg, &bytes).unwrap();
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();

    let mut n = 0;
    let err = Wal::open_visit(dir.path(), opts(), &mut |f: DirFrame| {
        n += 1;
        if f.frame.lsn == Lsn(10) {
            Err("stop here")
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert!(matches!(err, VisitError::Visitor("stop here")), "{err}");
    assert_eq!(n, 10, "the scan stops at the frame that failed");
    // The torn tail was not repaired, no file was added, and the lock is free again.
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);
    let after: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before.len(), after.len());
    let (_, report) = Wal::open(dir.path(), opts()).unwrap();
    assert_eq!(report.bytes_moved_aside(), 57);
}

#[test]
fn inspect_visit_stops_visiting_where_the_log_stops_continuing() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let (_, report) = Wal::open(dir.path(), opts()).unwrap();
    assert!(report.segments >= 4);
    // Take out segment 3: segment 4 no longer continues segment 2.
    std::fs::remove_file(segment_path(dir.path(), 3)).unwrap();
    let mut seen = Record::default();
    let ins =
        wal_log::inspect::inspect_visit(&wal_log::StdVfs, dir.path(), &mut |_, _| {}, &mut seen)
            .unwrap();
    assert!(matches!(ins.verdict(), Verdict::Corrupt { .. }));
    assert!(
        seen.frames.iter().all(|f| f.seq.0 <= 2),
        "frames past the gap"
    );
    assert_eq!(
        seen.frames.last().unwrap().frame.lsn,
        ins.segments[1].last_lsn
    );
    let seqs: Vec<u64> = seen.headers.iter().map(|h| h.seq.0).collect();
    assert_eq!(seqs, [1, 2]);
    // The inspection itself is what inspect() says.
    let plain = wal_log::inspect::inspect(&wal_log::StdVfs, dir.path(), &mut |_, _| {}).unwrap();
    assert_eq!(plain.verdict(), ins.verdict());
    assert_eq!(plain.segments.len(), ins.segments.len());
}

#[test]
fn a_seal_naming_another_segment_is_not_visited() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    // Make segment 1's seal name segment 9 (a valid frame, but not a valid seal).
    let seg = segment_path(dir.path(), 1);
    let mut bytes = std::fs::read(&seg).unwrap();
    let header = SegmentHeader::decode(&bytes).unwrap();
    let mut scanner =
        wal_format::scan::SegmentScanner::new(bytes::Bytes::from(bytes.clone()), true).unwrap();
    let seal = scanner.by_ref().last().unwrap();
    assert_eq!(seal.kind, FrameKind::Seal);
    let at = seal.offset;
    bytes[at + 20..at + 28].copy_from_slice(&9u64.to_le_bytes());
    let crc = crc32c::crc32c_append(header.seed().get(), &bytes[at + 4..at + 28]);
    bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&seg, &bytes).unwrap();

    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::SalvagePrefix] {
        let mut seen = Record::default();
        let r = Wal::open_visit(dir.path(), opts().recovery(mode), &mut seen);
        assert!(
            !seen.frames.iter().any(|f| f.frame.kind == FrameKind::Seal),
            "{mode:?}: the bad seal was visited"
        );
        assert_eq!(seen.frames.last().unwrap().frame.lsn, seal.lsn.prev());
        match r {
            Ok((_, report)) => {
                assert_eq!(mode, RecoveryMode::SalvagePrefix);
                assert_eq!(report.last_lsn, seal.lsn.prev());
            }
            Err(e) => {
                assert_eq!(mode, RecoveryMode::TolerateTornTail, "{e}");
                assert!(
                    matches!(e, VisitError::Wal(WalError::Corrupt { .. })),
                    "{e}"
                );
            }
        }
    }
}

/// `ScanVisitor::recovered` is told the recovered end before the open appends anything (the
/// abort frame of a transaction a crash left unfinished comes after it), and its error stops
/// the open with nothing appended.
#[test]
fn recovered_is_told_the_end_before_the_open_appends() {
    struct End {
        segment: std::path::PathBuf,
        /// The end it was told, and the segment's length then.
        told: Option<(Lsn, u64)>,
        refuse: bool,
    }
    impl ScanVisitor for End {
        type Error = &'static str;
        fn frame(&mut self, _: DirFrame) -> Result<(), Self::Error> {
            Ok(())
        }
        fn recovered(&mut self, open: &OpenReport) -> Result<(), Self::Error> {
            let len = std::fs::metadata(&self.segment).unwrap().len();
            self.told = Some((open.last_lsn, len));
            if self.refuse { Err("no") } else { Ok(()) }
        }
    }
    let live = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let big = || opts().segment_size(64 << 20);
    {
        let (wal, _) = Wal::open(live.path(), big()).unwrap();
        wal.append(b"one").unwrap();
        let mut s = wal.stream().unwrap();
        s.write(&vec![1u8; 5 << 20]).unwrap();
        wal.sync().unwrap();
        // The crash: a copy taken with the stream open (its beginning is in the log, its end
        // never written).
        let name = wal_log::layout::segment_file_name(SegmentSeq(1));
        std::fs::copy(live.path().join(&name), dir.path().join(&name)).unwrap();
    }
    let segment = segment_path(dir.path(), 1);
    let len_before = std::fs::metadata(&segment).unwrap().len();
    let mut refusing = End {
        segment: segment.clone(),
        told: None,
        refuse: true,
    };
    let r = Wal::open_visit(dir.path(), big(), &mut refusing);
    assert!(matches!(r, Err(VisitError::Visitor("no"))), "{:?}", r.err());
    assert_eq!(refusing.told, Some((Lsn(2), len_before)));
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        len_before,
        "nothing appended"
    );
    let mut accepting = End {
        segment,
        told: None,
        refuse: false,
    };
    let (wal, report) = Wal::open_visit(dir.path(), big(), &mut accepting).unwrap();
    assert_eq!(accepting.told.map(|t| t.0), Some(Lsn(2)));
    assert_eq!(report.aborted_streams, vec![Lsn(2)]);
    assert_eq!(wal.last_lsn(), Lsn(3));
}
