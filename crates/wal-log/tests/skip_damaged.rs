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
