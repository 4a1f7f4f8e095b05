//! Large transactions written straight from the caller's buffers (the direct path of
//! `append_batch` and `append`), on real files: exact round trips under every sync policy,
//! across rotations onto fresh and recycled segments, and alongside small appends and a
//! follow reader from other threads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use wal_log::{Lsn, Options, SyncPolicy, Wal};

/// A record whose bytes are a function of `(tag, len)`, so a reader can check it alone.
fn record(tag: u64, len: usize) -> Vec<u8> {
    let mut x = tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = tag.to_le_bytes().to_vec();
    v.resize(len.max(8), 0);
    for b in &mut v[8..] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    v
}

/// Every retained transaction, as its records.
fn read_all(wal: &Wal) -> Vec<(Lsn, Vec<Vec<u8>>)> {
    wal.read_from(wal.oldest_retained_lsn())
        .unwrap()
        .map(|t| {
            let t = t.unwrap();
            let recs = t.records().map(|r| r.unwrap().to_vec()).collect();
            (t.lsn, recs)
        })
        .collect()
}

/// The shapes the direct path splits differently: small records staged together (more than
/// one staged write's worth), records handed to the kernel as they are, more pieces than one
/// vectored write takes, and one large record.
fn shapes(tag: u64) -> Vec<Vec<Vec<u8>>> {
    let t = |i: u64| tag << 20 | i;
    vec![
        (0..300).map(|i| record(t(i), 900 + i as usize)).collect(),
        (0..80)
            .map(|i| record(t(1000 + i), 3000 + 7 * i as usize))
            .collect(),
        (0..1100)
            .map(|i| record(t(2000 + i), 2100 + (i % 5) as usize))
            .collect(),
        vec![record(t(4000), 8), record(t(4001), 300 << 10)],
    ]
}

#[test]
fn direct_transactions_read_back_exactly_under_every_policy() {
    for policy in [
        SyncPolicy::Always,
        SyncPolicy::Interval { ms: 5 },
        SyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options::default()
            .segment_size(1 << 20)
            .recycle_segments(2)
            .sync(policy);
        let mut expect = Vec::new();
        {
            let (wal, _) = Wal::open(dir.path(), opts.clone()).unwrap();
            for round in 0..4u64 {
                for (k, batch) in shapes(round).into_iter().enumerate() {
                    let lsn = wal.append_batch(&batch).unwrap();
                    expect.push((lsn, batch));
                    // A small frame between the large ones, and a single large payload.
                    let small = record(round << 40 | k as u64, 100);
                    expect.push((wal.append(&small).unwrap(), vec![small]));
                }
                let single = record(round << 44, 400 << 10);
                expect.push((wal.append(&single).unwrap(), vec![single]));
                wal.sync().unwrap();
                // Truncate all but the newest transactions, so later rounds write onto
                // recycled segment files (stale frames past the end of every write).
                let keep_from = expect[expect.len() - 3].0;
                wal.truncate_prefix(Lsn(keep_from.0 - 1)).unwrap();
                expect.retain(|(l, _)| *l >= wal.oldest_retained_lsn());
            }
            let st = wal.stats();
            assert!(
                st.recycled > 0,
                "{policy:?}: no segment was recycled: {st:?}"
            );
            // Every batch and the large single appends took the direct path.
            assert_eq!(st.direct_writes, 4 * 5, "{policy:?}: {st:?}");
            assert_eq!(read_all(&wal), expect, "{policy:?}: read back while open");
        }
        let (wal, report) = Wal::open(dir.path(), opts).unwrap();
        assert!(
            report.moved_aside.is_empty(),
            "{policy:?}: a clean shutdown left a tail to move aside: {report:?}"
        );
        assert_eq!(read_all(&wal), expect, "{policy:?}: read back after reopen");
    }
}

#[test]
fn direct_transactions_and_small_appends_from_many_threads() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default().segment_size(2 << 20);
    let (wal, _) = Wal::open(dir.path(), opts.clone()).unwrap();
    let wal = Arc::new(wal);
    // A follow reader checks every transaction it sees is whole and durable.
    let reader = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            let mut r = wal.follow(Lsn::ZERO).unwrap();
            let mut seen = 0usize;
            while let Some(t) = r.next_timeout(Duration::from_secs(5)).unwrap() {
                assert!(t.lsn <= wal.durable_lsn(), "reader saw a non-durable frame");
                for rec in t.records() {
                    let rec = rec.unwrap();
                    let tag = u64::from_le_bytes(rec[..8].try_into().unwrap());
                    assert_eq!(&rec[..], &record(tag, rec.len())[..], "torn record {tag}");
                }
                seen += 1;
            }
            seen
        })
    };
    let mut writers = Vec::new();
    for w in 0..6u64 {
        let wal = wal.clone();
        writers.push(std::thread::spawn(move || {
            let mut acked = Vec::new();
            if w < 2 {
                for i in 0..6u64 {
                    for batch in shapes(w << 8 | i) {
                        acked.push((wal.append_batch(&batch).unwrap(), batch));
                    }
                }
            } else {
                for i in 0..300u64 {
                    let r = record(w << 32 | i, 64 + (i as usize % 200));
                    acked.push((wal.append(&r).unwrap(), vec![r]));
                }
            }
            acked
        }));
    }
    let mut expect = BTreeMap::new();
    for h in writers {
        for (lsn, recs) in h.join().unwrap() {
            assert!(lsn <= wal.durable_lsn(), "acknowledged before durable");
            assert!(
                expect.insert(lsn, recs).is_none(),
                "LSN {lsn} handed out twice"
            );
        }
    }
    assert_eq!(wal.stats().direct_writes, 2 * 6 * 4);
    let seen = reader.join().unwrap();
    assert_eq!(seen, expect.len());
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), opts).unwrap();
    let got: BTreeMap<Lsn, Vec<Vec<u8>>> = read_all(&wal).into_iter().collect();
    assert_eq!(got, expect);
}

// Regressions found in review of the direct path (each failed before its fix).

/// An empty last record whose length prefix ends a write group made the final write empty;
/// `pwritev` returned 0 and the log was poisoned for good.
#[test]
fn regression_a_batch_ending_in_an_empty_record_poisoned_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), Options::default()).unwrap();
    // Header placeholder 20 + count 4 + prefix 4 + x + prefix 4 fill a 1 MiB write group;
    // the empty record alone is left for the last write.
    let x = (1 << 20) - 30;
    let recs: Vec<Vec<u8>> = vec![vec![7u8; x], Vec::new()];
    let lsn = wal.append_batch(&recs).unwrap();
    assert!(wal.poisoned_reason().is_none());
    let got = read_all(&wal);
    assert_eq!(got, vec![(lsn, recs)]);
}

/// The frames queued in front of a direct write went out in its first write and the header
/// in a separate last one. When the payload equals what the file already holds (zeros in a
/// preallocated segment), a crash keeping only the header write left a frame that verifies
/// after a hole: corruption, and the log would not open without salvage.
#[test]
fn regression_a_crash_could_keep_a_direct_header_without_the_frames_before_it() {
    use std::path::Path;
    use wal_log::sim::{CrashImage, DataLoss, DirLoss, Fault, OpKind, SimVfs};
    let vfs = SimVfs::new();
    let opts = |v: &SimVfs| {
        Options::default()
            .sync(SyncPolicy::Always)
            .preallocate(true)
            .segment_size(4 << 20)
            .vfs(Arc::new(v.clone()))
    };
    let wal = Wal::open(Path::new("/db"), opts(&vfs)).unwrap().0;
    let acked = wal.append(b"acknowledged").unwrap();
    wal.append_queued(b"queued in front of the direct write")
        .unwrap();
    // The direct write's fsync fails: both of its writes stay unsynced.
    vfs.fail_nth(
        OpKind::SyncData,
        vfs.op_count(OpKind::SyncData) + 1,
        Fault::Eio,
    );
    assert!(wal.append(&vec![0u8; 300 << 10]).is_err());
    drop(wal);
    for seed in 0..64u64 {
        let img = vfs.crash(&CrashImage {
            data: DataLoss::RandomSubset { seed },
            dirs: DirLoss::AllKept,
        });
        let (wal, _) = Wal::open(Path::new("/db"), opts(&img))
            .unwrap_or_else(|e| panic!("image {seed} does not open: {e}"));
        let got = read_all(&wal);
        assert_eq!(
            got[0],
            (acked, vec![b"acknowledged".to_vec()]),
            "image {seed}"
        );
        assert!(got.len() <= 3, "image {seed}: {} transactions", got.len());
    }
}

/// A record type whose `as_ref` panics on its fourth call: inside the direct write, with the
/// flush roles held (the first three measure the batch: its limits, its length, its length
/// prefixes).
struct PanicsInWrite(Vec<u8>, std::cell::Cell<u32>);

impl AsRef<[u8]> for PanicsInWrite {
    fn as_ref(&self) -> &[u8] {
        self.1.set(self.1.get() + 1);
        assert!(self.1.get() < 4, "the caller's AsRef panics");
        &self.0
    }
}

/// A panic in the caller's records during a direct write left the flush roles taken: every
/// later append, sync and drop of the log waited forever. Now the roles are released and the
/// log is poisoned (the frame may be half written).
#[test]
fn regression_a_panic_during_a_direct_write_left_the_log_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), Options::default()).unwrap();
    let wal = Arc::new(wal);
    let recs = vec![PanicsInWrite(vec![1u8; 300 << 10], std::cell::Cell::new(0))];
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wal.append_batch(&recs)));
    assert!(r.is_err());
    let (tx, rx) = std::sync::mpsc::channel();
    let w = wal.clone();
    std::thread::spawn(move || tx.send(w.append(b"after the panic").map(|_| ())).unwrap());
    let after = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("an append after the panic is still blocked");
    assert!(
        matches!(after, Err(wal_log::WalError::Poisoned { .. })),
        "{after:?}"
    );
    assert!(wal.poisoned_reason().unwrap().contains("panic"));
    drop(wal);
}

/// Only a panic inside the direct write poisons the log: a large append made while the
/// caller's thread unwinds from a panic of its own (a compensation record written by a drop
/// guard, say) succeeds and leaves the log usable. (The first fix of the hang above keyed
/// the poisoning on `std::thread::panicking()` and poisoned such a log.)
#[test]
fn a_direct_write_from_a_drop_during_unwinding_does_not_poison_the_log() {
    struct WritesOnDrop(Arc<Wal>);
    impl Drop for WritesOnDrop {
        fn drop(&mut self) {
            assert!(std::thread::panicking());
            self.0.append(&vec![5u8; 300 << 10]).unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), Options::default()).unwrap();
    let wal = Arc::new(wal);
    let w = wal.clone();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _guard = WritesOnDrop(w);
        panic!("the caller's own panic");
    }));
    assert!(r.is_err());
    assert_eq!(wal.poisoned_reason(), None);
    assert_eq!(wal.stats().direct_writes, 1);
    wal.append(b"still usable").unwrap();
}

/// A record type whose `as_ref` grows on its fourth call (in the write, after the batch was
/// measured): the bytes written no longer add up to the length the frame was given.
struct GrowsInWrite(Vec<u8>, Vec<u8>, std::cell::Cell<u32>);

impl AsRef<[u8]> for GrowsInWrite {
    fn as_ref(&self) -> &[u8] {
        self.2.set(self.2.get() + 1);
        if self.2.get() < 4 { &self.0 } else { &self.1 }
    }
}

/// Records whose bytes change while they are written (a caller's `AsRef` that is not stable)
/// cannot make a frame: the log refuses to write its header, is poisoned, and after reopening
/// holds exactly what was acknowledged before.
#[test]
fn records_that_change_during_a_direct_write_poison_the_log_and_leave_no_frame() {
    let dir = tempfile::tempdir().unwrap();
    let acked = {
        let (wal, _) = Wal::open(dir.path(), Options::default()).unwrap();
        let acked = wal.append(b"acknowledged").unwrap();
        let recs = vec![GrowsInWrite(
            vec![1; 300 << 10],
            vec![2; 301 << 10],
            std::cell::Cell::new(0),
        )];
        let e = wal.append_batch(&recs).unwrap_err();
        assert!(wal.poisoned_reason().is_some(), "{e}");
        assert!(matches!(
            wal.append(b"after"),
            Err(wal_log::WalError::Poisoned { .. })
        ));
        acked
    };
    let (wal, _) = Wal::open(dir.path(), Options::default()).unwrap();
    assert_eq!(
        read_all(&wal),
        vec![(acked, vec![b"acknowledged".to_vec()])]
    );
}
