//! Crash simulation of the log on `SimVfs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use wal_format::MAX_FRAME_PAYLOAD;
use wal_log::sim::{CrashImage, DataLoss, DirLoss, SimVfs};
use wal_log::vfs::Vfs;
use wal_log::{Lsn, Options, RecoveryMode, SyncPolicy, Wal};

const DIR: &str = "/db";
const MAX_TX: u64 = 5 << 20;

#[derive(Clone, Debug)]
struct Cfg {
    segment_size: u64,
    preallocate: bool,
}

impl Cfg {
    fn opts(&self, v: &SimVfs) -> Options {
        Options::default()
            .vfs(Arc::new(v.clone()))
            .segment_size(self.segment_size)
            .preallocate(self.preallocate)
            .sync(SyncPolicy::Always)
            .recovery(RecoveryMode::TolerateTornTail)
            .max_transaction_size(MAX_TX)
    }
}

fn fresh_vfs() -> SimVfs {
    let v = SimVfs::new();
    v.create_dir_all(Path::new(DIR)).unwrap();
    v
}

fn img(data: DataLoss, dirs: DirLoss) -> CrashImage {
    CrashImage { data, dirs }
}

/// Regression (found by this simulation): under `SyncPolicy::Always` a stream's emitted
/// fragments and its abort frame were written without an fsync, so a later append's write could
/// reach the disk while they did not. The hole, followed by a valid frame, is what the scanner
/// must call corruption: a power loss left a log that `TolerateTornTail` refuses to open.
#[test]
fn regression_unsynced_fragment_or_abort_frame_made_a_crash_unopenable() {
    for segment_size in [16 << 10, 64 << 20] {
        for abort in [true, false] {
            let cfg = Cfg {
                segment_size,
                preallocate: false,
            };
            let v = fresh_vfs();
            let (wal, _) = Wal::open(DIR, cfg.opts(&v)).unwrap();
            let first = wal.append(b"first").unwrap();
            let mut s = wal.stream().unwrap();
            s.write(&vec![1u8; MAX_FRAME_PAYLOAD + 100]).unwrap();
            // The next write goes through; its fsync does not.
            if abort {
                s.abort().unwrap();
                v.power_off_after(1);
                assert!(wal.append(b"second").is_err());
            } else {
                v.power_off_after(1);
                assert!(s.commit().is_err());
            }
            drop(wal);
            for seed in 0..12 {
                for dirs in [DirLoss::UnsyncedLost, DirLoss::AllKept] {
                    let c = v.crash(&img(DataLoss::RandomSubset { seed }, dirs));
                    let (wal, _) = Wal::open(DIR, cfg.opts(&c)).unwrap_or_else(|e| {
                        panic!(
                            "segment_size {segment_size} abort {abort} seed {seed} {dirs:?}: {e}"
                        )
                    });
                    let t = wal.read_from(Lsn::ZERO).unwrap().next().unwrap().unwrap();
                    assert_eq!((t.lsn, &t.body[..]), (first, &b"first"[..]));
                }
            }
        }
    }
}
