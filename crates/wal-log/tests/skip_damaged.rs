//! `RecoveryMode::SkipDamaged` on real files: a sound log is left alone; a flipped byte in a
//! frame costs that frame's LSN only, and the log verifies and reads afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use wal_format::Lsn;
use wal_log::{Options, RecoveryMode, Wal};

fn opts() -> Options {
    Options::default().segment_size(1 << 20).preallocate(false)
}

fn bodies(wal: &Wal) -> Vec<Vec<u8>> {
    wal.read_from(Lsn::ZERO)
        .unwrap()
        .map(|t| t.unwrap().body.to_vec())
        .collect()
}

#[test]
fn skip_damaged_keeps_every_frame_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts()).unwrap();
    for i in 0..100u32 {
        wal.append(format!("payload {i:03}").as_bytes()).unwrap();
    }
    drop(wal);
    let plan = wal_log::inspect::plan_skip(&wal_log::StdVfs, dir.path()).unwrap();
    assert!(
        plan.rewritten.is_empty() && plan.lost.is_empty(),
        "{plan:?}"
    );
    assert_eq!(plan.kept_transactions, 100);

    // Flip a byte inside the 50th frame's payload.
    let seg = dir
        .path()
        .join(wal_log::layout::segment_file_name(wal_format::SegmentSeq(
            1,
        )));
    let mut b = std::fs::read(&seg).unwrap();
    let at = b.windows(11).position(|w| w == b"payload 049").unwrap();
    b[at + 3] ^= 0x20;
    std::fs::write(&seg, &b).unwrap();
    assert!(
        Wal::open(dir.path(), opts()).is_err(),
        "the default open refuses"
    );

    let (wal, report) = Wal::open(dir.path(), opts().recovery(RecoveryMode::SkipDamaged)).unwrap();
    assert_eq!(report.lost_lsns.len(), 1, "{report:?}");
    let (lost, last) = report.lost_lsns[0];
    assert_eq!(lost, last);
    assert_eq!(report.moved_aside.len(), 1);
    let kept = bodies(&wal);
    assert_eq!(kept.len(), 99);
    assert!(!kept.iter().any(|p| p == b"payload 049"));
    assert!(kept.iter().any(|p| p == b"payload 050"));
    drop(wal);
    // The default open now takes it as it is, and it still holds the 99.
    let (wal, report) = Wal::open(dir.path(), opts()).unwrap();
    assert!(report.moved_aside.is_empty());
    assert_eq!(bodies(&wal).len(), 99);
}

fn segment_path(dir: &std::path::Path, seq: u64) -> std::path::PathBuf {
    dir.join(wal_log::layout::segment_file_name(wal_format::SegmentSeq(
        seq,
    )))
}

/// 600 payloads over several 16 KiB segments.
fn several_segments(dir: &std::path::Path) -> wal_log::inspect::Inspection {
    let (wal, _) = Wal::open(dir, opts().segment_size(16 << 10)).unwrap();
    for i in 0..600u32 {
        wal.append(format!("payload {i:03} {}", "x".repeat(100)).as_bytes())
            .unwrap();
    }
    drop(wal);
    let ins = wal_log::inspect::inspect(&wal_log::StdVfs, dir, &mut |_, _| {}).unwrap();
    assert!(ins.segments.len() >= 4, "{}", ins.segments.len());
    ins
}

/// A deleted middle segment costs its transactions' LSNs, not its seal's: the seal is
/// written again in the segment written anew, and the lost range says exactly which LSNs no
/// transaction carries any more.
#[test]
fn a_deleted_segment_loses_exactly_its_transactions_lsns() {
    let dir = tempfile::tempdir().unwrap();
    let ins = several_segments(dir.path());
    let seg2 = &ins.segments[1];
    let (first, seal) = (seg2.first_lsn, seg2.last_lsn);
    assert_eq!(seg2.transactions, seal.0 - first.0, "one seal after them");
    std::fs::remove_file(segment_path(dir.path(), 2)).unwrap();
    let (wal, report) = Wal::open(dir.path(), opts().recovery(RecoveryMode::SkipDamaged)).unwrap();
    assert_eq!(report.lost_lsns, vec![(first, seal.prev())]);
    assert_eq!(bodies(&wal).len() as u64, 600 - seg2.transactions);
}

/// Only the oldest segment's header is damaged: its first frame follows the header, so the
/// LSNs are known and nothing is lost; the header is written anew and its bytes moved aside.
#[test]
fn a_damaged_oldest_header_alone_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ins = several_segments(dir.path());
    let seg1 = segment_path(dir.path(), 1);
    let mut b = std::fs::read(&seg1).unwrap();
    b[20] ^= 0xff;
    std::fs::write(&seg1, &b).unwrap();
    assert!(
        Wal::open(dir.path(), opts()).is_err(),
        "the default open refuses"
    );
    let plan = wal_log::inspect::plan_skip(&wal_log::StdVfs, dir.path()).unwrap();
    assert!(plan.lost.is_empty(), "{plan:?}");
    assert_eq!(plan.kept_transactions, 600);
    let (wal, report) = Wal::open(dir.path(), opts().recovery(RecoveryMode::SkipDamaged)).unwrap();
    assert!(report.lost_lsns.is_empty(), "{report:?}");
    assert_eq!(report.first_lsn, ins.segments[0].first_lsn);
    assert_eq!(report.moved_aside.len(), 1);
    assert_eq!(
        (report.moved_aside[0].offset, report.moved_aside[0].bytes),
        (0, 64)
    );
    assert_eq!(bodies(&wal).len(), 600);
    drop(wal);
    assert!(Wal::open(dir.path(), opts()).is_ok(), "sound again");
}

/// The oldest segment's header and the first frame after it are damaged: how many LSNs the
/// damaged bytes held is not known, so skip-damaged refuses, saying what to do, and changes
/// nothing.
#[test]
fn a_damaged_oldest_header_and_frame_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    several_segments(dir.path());
    let seg1 = segment_path(dir.path(), 1);
    let mut b = std::fs::read(&seg1).unwrap();
    b[20] ^= 0xff;
    b[64 + 30] ^= 0xff;
    std::fs::write(&seg1, &b).unwrap();
    let err = Wal::open(dir.path(), opts().recovery(RecoveryMode::SkipDamaged)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, wal_log::WalError::Gap { .. }), "{msg}");
    assert!(
        msg.contains("not known") && msg.contains("Move this segment out"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&seg1).unwrap(), b, "nothing changed");
}
