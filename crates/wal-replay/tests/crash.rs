//! Crash at every I/O step of a checkpoint (on the simulated file system): the directory
//! always recovers to the committed state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::path::Path;
use std::sync::Arc;
use wal_log::sim::{CrashImage, DataLoss, DirLoss, SimVfs};
use wal_replay::{Engine, EngineOptions, RecoverOptions, recover};

fn opts(sim: &SimVfs) -> wal_log::Options {
    wal_log::Options::default()
        .preallocate(false)
        .segment_size(8 << 10)
        .vfs(Arc::new(sim.clone()))
}

/// Builds a directory with two checkpoints and more commits, then runs a third checkpoint
/// with the power cut after `cut` mutating operations. Returns the file system, the state
/// every recovery must reach, and whether the checkpoint completed.
fn scenario(cut: Option<u64>) -> (SimVfs, Kv, bool) {
    let sim = SimVfs::new();
    let root = Path::new("/data");
    let eopts = EngineOptions {
        recover: RecoverOptions::default().wal(opts(&sim)),
        keep_snapshots: 2,
    };
    let (mut e, _) = Engine::open(root, Kv::default(), eopts).unwrap();
    for i in 0..240u64 {
        e.commit(vec![put(&format!("k{:02}{}", i % 30, "x".repeat(60)), i)])
            .unwrap();
        if i == 80 || i == 160 {
            e.checkpoint().unwrap();
        }
    }
    let expected = e.state().clone();
    if let Some(n) = cut {
        sim.power_off_after(n);
    }
    let done = e.checkpoint().is_ok();
    drop(e);
    (sim, expected, done)
}

#[test]
fn checkpoint_survives_a_crash_at_every_step() {
    let images = [
        CrashImage {
            data: DataLoss::DurableOnly,
            dirs: DirLoss::UnsyncedLost,
        },
        CrashImage {
            data: DataLoss::AllWritten,
            dirs: DirLoss::AllKept,
        },
        CrashImage {
            data: DataLoss::TornLastWrite { sectors: 1 },
            dirs: DirLoss::UnsyncedLost,
        },
    ];
    let mut cut = 0;
    let mut completed_at = None;
    while completed_at.is_none() {
        let (sim, expected, done) = scenario(Some(cut));
        if done {
            completed_at = Some(cut);
        }
        for image in &images {
            let disk = sim.crash(image);
            let mut kv = Kv::default();
            let r = recover("/data", &mut kv, RecoverOptions::default().wal(opts(&disk)))
                .unwrap_or_else(|e| panic!("cut after {cut} ops, {image:?}: {e}"));
            assert_eq!(kv, expected, "cut after {cut} ops, {image:?}");
            // Recovering again (now from the recovered directory) gives the same state.
            drop(r);
            let mut again = Kv::default();
            recover(
                "/data",
                &mut again,
                RecoverOptions::default().wal(opts(&disk)),
            )
            .unwrap();
            assert_eq!(
                again, expected,
                "second recovery, cut after {cut} ops, {image:?}"
            );
        }
        cut += 1;
        assert!(cut < 500, "the checkpoint never completed");
    }
    eprintln!("checkpoint completed with the power cut after {completed_at:?} ops");
    // The sweep covered every mutating step of a checkpoint (at least: snapshot create,
    // write, fsync, rename, dir fsync, marker, prune, truncate).
    assert!(completed_at.unwrap() >= 8, "{completed_at:?}");
}
