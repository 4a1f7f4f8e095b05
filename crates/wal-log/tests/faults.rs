//! Injected I/O faults on `SimVfs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use wal_log::sim::{CrashImage, DataLoss, DirLoss, Fault, OpKind, SimVfs};
use wal_log::vfs::Vfs;
use wal_log::{Lsn, Options, RecoveryMode, SyncPolicy, Wal, WalError};

const DIR: &str = "/db";

fn img(data: DataLoss, dirs: DirLoss) -> CrashImage {
    CrashImage { data, dirs }
}

fn opts(v: &SimVfs, preallocate: bool) -> Options {
    Options::default()
        .vfs(Arc::new(v.clone()))
        .segment_size(4 << 10)
        .preallocate(preallocate)
        .sync(SyncPolicy::Always)
        .recovery(RecoveryMode::TolerateTornTail)
}

/// A transaction body: its id (8 bytes LE) and filler.
fn body(id: u64, len: usize) -> Vec<u8> {
    let mut v = id.to_le_bytes().to_vec();
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while v.len() < len.max(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(x as u8);
    }
    v
}

/// Regression (found by the fault sweep): recovery adopted whatever the segment files read
/// back as durable, but after a process dies (or a log fails) between a write and its fsync,
/// that tail is only in the page cache. The reopened log reported it durable and readers
/// yielded it, yet a power loss right after lost it; and when the unsynced frame was a seal,
/// recovery created the successor, so after the power loss a newer segment followed one that
/// ends without a seal and the log could not be opened at all.
#[test]
fn regression_reopen_after_a_failed_fsync_made_an_unsynced_tail_look_durable() {
    // 3 frames of 1020 bytes fit a 4 KiB segment; the 4th append rotates, so its failing
    // fsync is the seal's.
    for appends_before in [1, 3] {
        let v = SimVfs::new();
        v.create_dir_all(Path::new(DIR)).unwrap();
        let (wal, _) = Wal::open(DIR, opts(&v, false)).unwrap();
        for i in 0..appends_before {
            wal.append(&body(i, 1000)).unwrap();
        }
        v.fail_nth(
            OpKind::SyncData,
            v.op_count(OpKind::SyncData) + 1,
            Fault::Eio,
        );
        let e = wal.append(&body(99, 1000)).unwrap_err();
        assert!(
            matches!(&e, WalError::Io { source, .. } if source.raw_os_error() == Some(5)),
            "{e}"
        );
        drop(wal);
        // The process restarts; the page cache still holds the unsynced frame.
        let (wal, _) = Wal::open(DIR, opts(&v, false)).unwrap();
        let read: Vec<Vec<u8>> = wal
            .read_from(Lsn::ZERO)
            .unwrap()
            .map(|t| t.unwrap().body.to_vec())
            .collect();
        // Power loss now: everything the reopened log read back as durable must be there.
        let after = v.crash(&img(DataLoss::DurableOnly, DirLoss::UnsyncedLost));
        let (wal2, _) = Wal::open(DIR, opts(&after, false)).unwrap_or_else(|e| {
            panic!("{appends_before} appends before: power loss after the reopen: {e}")
        });
        let again: Vec<Vec<u8>> = wal2
            .read_from(Lsn::ZERO)
            .unwrap()
            .map(|t| t.unwrap().body.to_vec())
            .collect();
        assert_eq!(again.len(), read.len(), "{appends_before} appends before");
        assert_eq!(again, read);
    }
}
