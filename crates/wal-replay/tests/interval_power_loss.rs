//! Recovery after a power loss under `SyncPolicy::Interval`: the kernel may have written the
//! last interval's pages back in any order, so the newest segment can hold a hole followed by
//! valid frames. Those frames claim durable only what the last flush covered (their durable
//! watermark, docs/format.md 7.2), so the hole lies beyond every claim: a default open cuts it
//! as a torn tail, moves the rest aside (nothing is deleted) and keeps every transaction the
//! flush made durable. (Before the watermark, format version 1, such an open was refused as
//! corruption until an operator salvaged the prefix.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{Kv, Op};
use std::path::Path;
use std::sync::Arc;
use wal_format::scan::SegmentScanner;
use wal_log::SyncPolicy;
use wal_log::sim::{CrashImage, DataLoss, DirLoss, SimVfs};
use wal_replay::{Durable, DurableOptions, RecoverOptions, recover};

const FLUSHED: u64 = 40;
const WRITTEN: u64 = 40;

fn wal_opts(sim: &SimVfs) -> wal_log::Options {
    wal_log::Options::default()
        .preallocate(false)
        // No background fsync in this test: the only durability point is the flush.
        .sync(SyncPolicy::Interval { ms: 3_600_000 })
        .vfs(Arc::new(sim.clone()))
}

/// Commits `FLUSHED` transactions and flushes them, then `WRITTEN` more that are only
/// written (acknowledged under `Interval`, not yet durable).
fn run(sim: &SimVfs) {
    let root = Path::new("/data");
    let store = Durable::open(
        root,
        Kv::default(),
        DurableOptions::default().wal(wal_opts(sim)),
    )
    .unwrap();
    let put = |i: u64| {
        store
            .write(|kv, tx| {
                kv.map.insert(format!("k{i}"), i);
                tx.record(Op::Put(format!("k{i}"), i));
            })
            .unwrap();
    };
    (0..FLUSHED).for_each(put);
    store.recorder().flush().unwrap();
    (FLUSHED..FLUSHED + WRITTEN).for_each(put);
    // The power goes: nothing written after this reaches the disk, and what was written
    // since the flush reaches it in any order (each write kept or lost on its own).
    sim.power_off_after(0);
}

/// Whether the newest segment of `disk` holds a hole followed by valid frames.
fn hole_before_valid_frames(disk: &SimVfs) -> bool {
    let newest = disk
        .files()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .max();
    let Some(path) = newest else { return false };
    let bytes = Bytes::from(disk.read_file(&path).unwrap());
    let mut s = SegmentScanner::new(bytes, false).unwrap();
    for _ in s.by_ref() {}
    s.valid_after_damage().is_some()
}

#[test]
fn after_a_power_loss_under_interval_a_default_open_keeps_everything_durable() {
    let sim = SimVfs::new();
    run(&sim);
    let mut holes = 0;
    for seed in 0..64 {
        let disk = sim.crash(&CrashImage {
            data: DataLoss::RandomSubset { seed },
            dirs: DirLoss::UnsyncedLost,
        });
        let hole = hole_before_valid_frames(&disk);
        holes += u32::from(hole);
        let mut kv = Kv::default();
        let r = recover(
            "/data",
            &mut kv,
            RecoverOptions::default().wal(wal_opts(&disk)),
        )
        .unwrap_or_else(|e| panic!("seed {seed}: a default open failed: {e}"));
        if hole {
            assert!(
                !r.report.moved_aside.is_empty(),
                "seed {seed}: the bytes after the hole are moved aside, not deleted"
            );
        }
        // Every flushed transaction is there; the rest is a prefix of what was written.
        let n = kv.map.len() as u64;
        assert!(n >= FLUSHED, "seed {seed}: only {n} transactions");
        for i in 0..n {
            assert_eq!(kv.map.get(&format!("k{i}")), Some(&i), "seed {seed}: k{i}");
        }
    }
    // The scenario the watermark is for did happen among the images.
    assert!(holes > 0, "no image had a hole followed by valid frames");
    println!("{holes} of 64 images had a hole followed by valid frames; all opened");
}
