//! The documented recovery policy for `SyncPolicy::Interval` after a power loss (until the
//! durable watermark is in the format): the kernel may have written the last interval's pages
//! back in any order, so the newest segment can hold a hole followed by valid frames. A
//! default open refuses that as corruption and changes nothing; the engine (or operator) that
//! knows the machine lost power reopens with `RecoveryMode::SalvagePrefix`, which keeps the
//! longest valid prefix, moves the rest aside (nothing is deleted), and so keeps every
//! transaction that was durable (flushed) before the loss.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Kv, Op};
use std::path::Path;
use std::sync::Arc;
use wal_log::sim::{CrashImage, DataLoss, DirLoss, SimVfs};
use wal_log::{RecoveryMode, SyncPolicy, WalError};
use wal_replay::{Durable, DurableOptions, RecoverOptions, ReplayError, recover};

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

#[test]
fn after_a_power_loss_under_interval_salvage_keeps_everything_durable() {
    let sim = SimVfs::new();
    run(&sim);
    let mut refused = 0;
    for seed in 0..64 {
        let disk = sim.crash(&CrashImage {
            data: DataLoss::RandomSubset { seed },
            dirs: DirLoss::UnsyncedLost,
        });
        let before = disk.files();
        // A default open: either the surviving writes form a prefix (it opens), or there
        // is a hole followed by valid frames, refused as corruption with nothing changed.
        let mut kv = Kv::default();
        let opened = recover(
            "/data",
            &mut kv,
            RecoverOptions::default().wal(wal_opts(&disk)),
        );
        let kv = match opened {
            Ok(_) => kv,
            Err(ReplayError::Wal(WalError::Corrupt { .. })) => {
                refused += 1;
                assert_eq!(
                    disk.files(),
                    before,
                    "seed {seed}: a refused open changed files"
                );
                // The documented policy after a power loss: salvage the prefix.
                let mut kv = Kv::default();
                let r = recover(
                    "/data",
                    &mut kv,
                    RecoverOptions::default()
                        .wal(wal_opts(&disk).recovery(RecoveryMode::SalvagePrefix)),
                )
                .unwrap_or_else(|e| panic!("seed {seed}: salvage failed: {e}"));
                assert!(
                    !r.report.moved_aside.is_empty(),
                    "seed {seed}: salvage moves the bytes after the hole aside"
                );
                kv
            }
            Err(e) => panic!("seed {seed}: {e}"),
        };
        // Every flushed transaction is there; the rest is a prefix of what was written.
        let n = kv.map.len() as u64;
        assert!(n >= FLUSHED, "seed {seed}: only {n} transactions");
        for i in 0..n {
            assert_eq!(kv.map.get(&format!("k{i}")), Some(&i), "seed {seed}: k{i}");
        }
    }
    // The scenario this policy is for did happen among the images.
    assert!(refused > 0, "no image had a hole followed by valid frames");
}
