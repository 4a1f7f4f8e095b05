//! The durable watermark on real files (docs/format.md 7.2, ADR 0009): after a power loss
//! under `Interval` or `Never` a default open keeps everything a returned `sync()` covered and
//! cuts the rest as a torn tail, even with valid frames after the hole; a hole at or before a
//! position a later frame claims durable, or anywhere in the last flush after a clean close,
//! is refused as corruption with nothing changed; a version-1 log is refused as an unsupported
//! version.
//!
//! A power loss is made the way the kernel can make one: the segment is copied while the log
//! is open (what the page cache held), then a 512-byte sector of the unsynced part is zeroed
//! (written back last, or never) while the sectors after it are kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use wal_log::layout::segment_file_name;
use wal_log::{Damage, Lsn, Options, SyncPolicy, Wal, WalError};

fn opts(sync: SyncPolicy) -> Options {
    Options::default()
        .preallocate(false)
        .segment_size(64 << 20)
        .sync(sync)
}

fn segment(dir: &Path) -> PathBuf {
    dir.join(segment_file_name(wal_format::SegmentSeq(1)))
}

fn body(i: u64) -> Vec<u8> {
    let mut b = i.to_le_bytes().to_vec();
    b.resize(300, (i % 251) as u8 | 1);
    b
}

/// Appends 60 transactions, syncs, appends 60 more (written, not synced) and copies the
/// segment while the log is still open: a power-loss image of the page cache. Returns the
/// image's directory and the offset where the unsynced part starts.
fn image_after_power_loss(sync: SyncPolicy) -> (tempfile::TempDir, u64) {
    let live = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(live.path(), opts(sync)).unwrap();
    for i in 0..60 {
        wal.append(&body(i)).unwrap();
    }
    wal.sync().unwrap();
    assert_eq!(wal.durable_lsn(), Lsn(60));
    let synced_end = std::fs::metadata(segment(live.path())).unwrap().len();
    for i in 60..120 {
        wal.append(&body(i)).unwrap();
    }
    // Written to the OS (the page cache), not synced.
    assert!(wal.durable_lsn() < Lsn(120));
    std::fs::copy(segment(live.path()), segment(image.path())).unwrap();
    drop(wal);
    (image, synced_end)
}

fn zero_sector(path: &Path, sector: u64) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    let from = (sector * 512) as usize;
    bytes[from..from + 512].fill(0);
    std::fs::write(path, &bytes).unwrap();
    bytes
}

fn read_all(wal: &Wal) -> Vec<(Lsn, Vec<u8>)> {
    wal.read_from(Lsn::ZERO)
        .unwrap()
        .map(|t| {
            let t = t.unwrap();
            (t.lsn, t.body.to_vec())
        })
        .collect()
}

#[test]
fn a_hole_after_the_watermark_is_cut_and_everything_synced_kept() {
    for sync in [SyncPolicy::Interval { ms: 3_600_000 }, SyncPolicy::Never] {
        let (image, synced_end) = image_after_power_loss(sync);
        let seg = segment(image.path());
        let len = std::fs::metadata(&seg).unwrap().len();
        // A sector in the middle of the unsynced part: valid frames follow it.
        let sector = (synced_end + len) / 2 / 512;
        zero_sector(&seg, sector);
        let (wal, report) = Wal::open(image.path(), opts(sync)).unwrap();
        let txs = read_all(&wal);
        assert!(txs.len() >= 60, "{sync:?}: only {} transactions", txs.len());
        assert!(txs.len() < 120, "{sync:?}: the hole was not cut");
        for (i, (lsn, b)) in txs.iter().enumerate() {
            assert_eq!((*lsn, b), (Lsn(i as u64 + 1), &body(i as u64)), "{sync:?}");
        }
        // The cut bytes, valid frames after the hole included, are moved aside.
        assert_eq!(report.moved_aside.len(), 1, "{sync:?}");
        assert!(report.moved_aside[0].bytes > 512, "{sync:?}");
    }
}

#[test]
fn a_hole_before_a_claimed_position_is_corruption_and_changes_nothing() {
    let (image, synced_end) = image_after_power_loss(SyncPolicy::Never);
    let seg = segment(image.path());
    // A sector the sync covered: the frames written after it claim LSN 60 durable.
    let sector = synced_end / 2 / 512;
    let bytes = zero_sector(&seg, sector);
    let err = Wal::open(image.path(), opts(SyncPolicy::Never)).unwrap_err();
    match &err {
        WalError::Corrupt(Damage { offset, reason, .. }) => {
            assert!(*offset <= sector * 512 + 512, "{err}");
            assert!(reason.contains("durable"), "{err}");
        }
        e => panic!("want corruption, got {e}"),
    }
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        bytes,
        "a refused open changed the segment"
    );
}

#[test]
fn a_hole_in_the_last_flush_after_a_clean_close_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts(SyncPolicy::Always)).unwrap();
    for i in 0..40 {
        wal.append(&body(i)).unwrap();
    }
    wal.close().unwrap();
    let seg = segment(dir.path());
    let len = std::fs::metadata(&seg).unwrap().len();
    // The last frame's sector; the close's watermark (20 bytes after it) survives.
    let last_frame = len - 20 - (20 + 300);
    if last_frame / 512 == (len - 1) / 512 {
        // Both in one sector would be the crash case; move the damage one sector back.
        zero_sector(&seg, last_frame / 512 - 1);
    } else {
        zero_sector(&seg, last_frame / 512);
    }
    let err = Wal::open(dir.path(), opts(SyncPolicy::Always)).unwrap_err();
    assert!(matches!(err, WalError::Corrupt(_)), "{err}");
}

#[test]
fn a_version_1_log_is_refused_as_an_unsupported_version() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts(SyncPolicy::Always)).unwrap();
    wal.append(b"written by version 1").unwrap();
    wal.close().unwrap();
    let seg = segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    // What version 1 wrote: the same header with version 1 (and its checksum).
    bytes[8..10].copy_from_slice(&1u16.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&seg, &bytes).unwrap();
    let err = Wal::open(dir.path(), opts(SyncPolicy::Always)).unwrap_err();
    assert!(matches!(err, WalError::UnsupportedVersion { .. }), "{err}");
    assert!(err.to_string().contains("version"), "{err}");
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);
}
