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
