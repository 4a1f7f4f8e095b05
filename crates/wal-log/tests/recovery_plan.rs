//! The plan a dry run shows (`Inspection::recovery_plan`) is the plan `Wal::open` executes, for
//! every kind of damage and every recovery mode: the same refusal, or the same bytes moved
//! aside to the same files and the same last LSN kept. Both come from `plan_recovery`, so this
//! holds by construction; the cases check that the open's scan gives the planner the same facts
//! as the read-only one and that the open does what its plan says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use wal_log::{Options, RecoveryMode, StdVfs, Wal, WalError};

fn opts() -> Options {
    Options::default().segment_size(32 << 10).preallocate(false)
}

fn record(i: u32) -> Vec<u8> {
    let mut r = i.to_le_bytes().to_vec();
    r.resize(300 + (i as usize * 7) % 500, (i % 251) as u8);
    r
}

/// A log of about four segments in `dir`; returns its segment files, oldest first.
fn build(dir: &Path, n: u32) -> Vec<PathBuf> {
    let (wal, _) = Wal::open(dir, opts()).unwrap();
    for i in 0..n {
        wal.append(&record(i)).unwrap();
    }
    drop(wal);
    segments(dir)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

/// Where the frames of the newest segment end (a clean scan's end).
fn data_end(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1) as u64
}

/// A frame header claiming 100 bytes of payload, over bytes that do not verify.
fn torn_frame() -> Vec<u8> {
    let mut torn = vec![0xEE; 120];
    torn[4..8].copy_from_slice(&100u32.to_le_bytes());
    torn[8] = 1;
    torn[9..12].fill(0);
    torn
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Each damaged log: a name and a directory holding it.
fn damaged_logs(root: &Path) -> Vec<(&'static str, PathBuf)> {
    let mut out = Vec::new();
    let mut make = |name: &'static str, damage: &dyn Fn(&Path, &[PathBuf])| {
        let dir = root.join(name);
        let segs = build(&dir, 200);
        assert!(segs.len() >= 4, "{segs:?}");
        damage(&dir, &segs);
        out.push((name, dir));
    };
    make("sound", &|_, _| {});
    make("torn tail", &|_, segs| {
        let last = segs.last().unwrap();
        poke(last, data_end(last), &torn_frame());
    });
    make("torn tail, moved aside before", &|dir, segs| {
        let last = segs.last().unwrap();
        let end = data_end(last);
        // An earlier recovery's file with the name this one would take.
        let base = last.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::write(dir.join(format!("{base}.torn-{end}")), b"old").unwrap();
        poke(last, end, &torn_frame());
    });
    make("corrupt frame mid-log", &|_, segs| {
        poke(&segs[1], 64 + 30, &[0x5A]);
    });
    make("corrupt frame in the newest segment", &|_, segs| {
        poke(segs.last().unwrap(), 64 + 30, &[0x5A]);
    });
    make("damaged header of a later segment", &|_, segs| {
        poke(&segs[2], 20, &[0xFF, 0xFF]);
    });
    make("damaged first header", &|_, segs| {
        poke(&segs[0], 20, &[0xFF]);
    });
    make("no magic", &|_, segs| poke(&segs[2], 0, &[0; 8]));
    make("gap", &|dir, segs| {
        std::fs::rename(&segs[1], dir.join("elsewhere")).unwrap();
    });
    out
}

fn same_refusal(plan: &WalError, open: &WalError) -> bool {
    std::mem::discriminant(plan) == std::mem::discriminant(open)
}

#[test]
fn the_plan_is_what_open_does() {
    let root = tempfile::tempdir().unwrap();
    let (mut checked, mut moved) = (0, 0);
    for (name, dir) in damaged_logs(root.path()) {
        for mode in [
            RecoveryMode::Strict,
            RecoveryMode::TolerateTornTail,
            RecoveryMode::SalvagePrefix,
        ] {
            let copy = root.path().join(format!("{name} {mode:?}"));
            copy_dir(&dir, &copy);
            // "gap" keeps its moved segment outside the log directory.
            let _ = std::fs::remove_file(copy.join("elsewhere"));
            let inspection = wal_log::inspect::inspect(&StdVfs, &copy, &mut |_, _| {}).unwrap();
            let planned = inspection.recovery_plan(mode);
            // The valid prefix `walctl stat` reports ends where a salvage would cut.
            if mode == RecoveryMode::SalvagePrefix
                && let Ok(plan) = &planned
            {
                assert_eq!(inspection.valid_end(), plan.last_lsn, "{name}");
            }
            let opened = Wal::open(&copy, opts().recovery(mode));
            match (planned, opened) {
                (Ok(plan), Ok((wal, report))) => {
                    assert_eq!(plan.moved_aside, report.moved_aside, "{name}, {mode:?}");
                    assert_eq!(plan.last_lsn, wal.last_lsn(), "{name}, {mode:?}");
                    if name != "sound" && mode != RecoveryMode::Strict {
                        moved += usize::from(!plan.moved_aside.is_empty());
                    }
                }
                (Err(p), Err(o)) => {
                    assert!(same_refusal(&p, &o), "{name}, {mode:?}: {p} / {o}");
                    assert_eq!(p.to_string(), o.to_string(), "{name}, {mode:?}");
                }
                (p, o) => panic!(
                    "{name}, {mode:?}: planned {:?}, open {:?}",
                    p,
                    o.map(|(_, r)| r)
                ),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 27);
    // Not only refusals: most damage is cut in some mode.
    assert!(moved >= 6, "{moved}");
}

/// An empty directory plans nothing: an open starts a new log there.
#[test]
fn an_empty_directory_plans_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plan = wal_log::inspect::inspect(&StdVfs, dir.path(), &mut |_, _| {})
        .unwrap()
        .recovery_plan(RecoveryMode::SalvagePrefix)
        .unwrap();
    assert!(plan.moved_aside.is_empty());
}
