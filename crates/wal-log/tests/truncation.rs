//! Truncation with large (fragmented) transactions that cross segment boundaries: the log
//! shrinks to what the transactions committed after the fence need, no more and no less,
//! before and after a reopen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use wal_log::{Lsn, Options, Wal};

/// Larger than one frame (4 MiB), so every transaction is a fragment stream; with 1 MiB
/// segments each one spans several segment boundaries.
const BIG: usize = (4 << 20) + (512 << 10);

fn opts() -> Options {
    Options::default().segment_size(1 << 20).recycle_segments(0)
}

fn payload(i: u8) -> Vec<u8> {
    vec![i; BIG]
}

fn commit_big(wal: &Wal, i: u8) -> Lsn {
    let mut s = wal.stream().unwrap();
    s.write(&payload(i)).unwrap();
    s.commit().unwrap()
}

/// The payloads of every transaction committed at or after `from`.
fn payloads_from(wal: &Wal, from: Lsn) -> Vec<(Lsn, Vec<u8>)> {
    wal.read_from(from)
        .unwrap()
        .map(|t| {
            let t = t.unwrap();
            let bytes = t.records().flat_map(|r| r.unwrap().to_vec()).collect();
            (t.lsn, bytes)
        })
        .collect()
}

#[test]
fn back_to_back_large_transactions_do_not_keep_the_log_from_shrinking() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts()).unwrap();
    for i in 0..11 {
        commit_big(&wal, i);
    }
    let before = wal.segments().len();
    assert!(before > 11, "{before} segments");
    let fence = wal.last_lsn();
    wal.checkpoint_marker(fence).unwrap();
    let removed = wal.truncate_prefix(fence).unwrap();
    // Before the fix: 0 removed, oldest retained LSN 1 (each segment's header names the
    // transaction open at its start, and that chain led back to the first segment).
    assert_eq!(removed, before - 1, "only the active segment stays");
    assert!(wal.oldest_retained_lsn() > fence);
    assert!(payloads_from(&wal, wal.oldest_retained_lsn()).is_empty());
    drop(wal);

    // The same after a reopen, where what crossed a boundary is known from the scan.
    let (wal, _) = Wal::open(dir.path(), opts()).unwrap();
    for i in 11..22 {
        commit_big(&wal, i);
    }
    let before = wal.segments().len();
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), opts()).unwrap();
    let fence = wal.last_lsn();
    wal.checkpoint_marker(fence).unwrap();
    assert_eq!(wal.truncate_prefix(fence).unwrap(), before - 1);
    assert_eq!(wal.segments().len(), 1);
}

#[test]
fn a_transaction_that_ends_after_the_fence_keeps_its_first_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts()).unwrap();
    commit_big(&wal, 1);
    // A snapshot taken while a large transaction streams: its fence is inside it.
    let mut s = wal.stream().unwrap();
    s.write(&payload(2)).unwrap();
    let fence = wal.last_lsn();
    let begin = s.begin_lsn().unwrap();
    assert!(begin <= fence);
    // While it is open...
    wal.truncate_prefix(fence).unwrap();
    assert!(wal.oldest_retained_lsn() <= begin);
    let lsn = s.commit().unwrap();
    // ...once it ended after the fence...
    let check = |wal: &Wal| {
        wal.truncate_prefix(fence).unwrap();
        assert!(wal.oldest_retained_lsn() <= begin);
        let got = payloads_from(wal, fence.next());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, lsn);
        assert!(got[0].1 == payload(2), "the transaction reads back whole");
    };
    check(&wal);
    drop(wal);
    // ...and after a reopen.
    let (wal, _) = Wal::open(dir.path(), opts()).unwrap();
    check(&wal);
}
