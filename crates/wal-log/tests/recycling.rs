//! Segment recycling on real files: truncated segments are kept as `recycled-<seq>.tmp`,
//! rotation reuses them, and recovery tells a recycled file's stale bytes from the log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use wal_log::{Lsn, Options, Wal};

const SEGMENT: u64 = 64 << 10;

fn opts() -> Options {
    Options::default().segment_size(SEGMENT)
}

fn record(i: u32) -> Vec<u8> {
    let mut r = i.to_le_bytes().to_vec();
    r.resize(300 + (i as usize * 7) % 500, (i % 251) as u8);
    r
}

/// Every record from `from` on, with the id in its first four bytes.
fn ids_from(wal: &Wal, from: Lsn) -> Vec<u32> {
    wal.read_from(from)
        .unwrap()
        .flat_map(|t| {
            t.unwrap()
                .records()
                .map(|r| {
                    let r = r.unwrap();
                    assert_eq!(
                        r.to_vec(),
                        record(u32::from_le_bytes(r[..4].try_into().unwrap()))
                    );
                    u32::from_le_bytes(r[..4].try_into().unwrap())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn recycled_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("recycled-"))
        .collect();
    v.sort();
    v
}

/// Appends records `range` one transaction each; returns the LSN of each.
fn append(wal: &Wal, range: std::ops::Range<u32>) -> Vec<Lsn> {
    range.map(|i| wal.append(&record(i)).unwrap()).collect()
}

#[test]
fn truncated_segments_are_reused_and_reopen_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts()).unwrap();
    let lsns = append(&wal, 0..800);
    assert!(
        wal.segments().len() > 4,
        "{} segments",
        wal.segments().len()
    );
    let fence = lsns[600];
    let removed = wal.truncate_prefix(fence).unwrap();
    assert!(removed > 4);
    // The pool keeps four (the default); the rest are deleted.
    assert_eq!(recycled_files(dir.path()).len(), 4);
    // Append until two recycled files were reused; the active segment is then the second.
    let mut i = 800;
    while wal.stats().recycled < 2 {
        wal.append(&record(i)).unwrap();
        i += 1;
    }
    let more = append(&wal, i..i + 20);
    let end = i + 20;
    assert_eq!(recycled_files(dir.path()).len(), 2);
    assert_eq!(ids_from(&wal, fence.next()), (601..end).collect::<Vec<_>>());
    let last = *more.last().unwrap();
    drop(wal);

    // A clean reopen of a log whose active segment is a recycled file: the end marker ends it,
    // nothing is moved aside, and appends continue after it.
    let (wal, report) = Wal::open(dir.path(), opts()).unwrap();
    assert!(report.moved_aside.is_empty(), "{:?}", report.moved_aside);
    assert_eq!(report.last_lsn, last);
    let scan = wal_log::inspect::inspect(&wal_log::StdVfs, dir.path(), &mut |_, _| {}).unwrap();
    let active = scan.segments.last().unwrap();
    assert!(active.header.unwrap().recycled);
    assert_eq!(scan.recycled_files.len(), 2);
    append(&wal, end..end + 600);
    assert_eq!(wal.stats().recycled, 2);
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), opts()).unwrap();
    assert!(report.moved_aside.is_empty());
    assert_eq!(
        ids_from(&wal, fence.next()),
        (601..end + 600).collect::<Vec<_>>()
    );
}

#[test]
fn recycling_off_deletes_truncated_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts().recycle_segments(0)).unwrap();
    let lsns = append(&wal, 0..500);
    assert!(wal.truncate_prefix(lsns[400]).unwrap() > 0);
    assert!(recycled_files(dir.path()).is_empty());
    append(&wal, 500..900);
    assert_eq!(wal.stats().recycled, 0);
}

#[test]
fn torn_tail_in_a_recycled_segment_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts()).unwrap();
    let lsns = append(&wal, 0..600);
    wal.truncate_prefix(lsns[500]).unwrap();
    // Fill until the active segment is a recycled file with some frames in it.
    let mut i = 600;
    while wal.stats().recycled == 0 {
        wal.append(&record(i)).unwrap();
        i += 1;
    }
    let tail_start = i;
    append(&wal, i..i + 20);
    let end = i + 20;
    let seg = wal.segments().last().unwrap().clone();
    drop(wal);

    // A crash mid-write: a frame of 100 bytes whose checksum does not match (its bytes are
    // only partly there) over the end marker; stale data of the file's earlier life follows.
    let path = dir.path().join(wal_log::layout::segment_file_name(seg.seq));
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    use std::os::unix::fs::FileExt;
    let mut torn = vec![0xEE; 120];
    torn[4..8].copy_from_slice(&100u32.to_le_bytes());
    torn[8] = 1; // Tx
    torn[9..12].fill(0);
    file.write_all_at(&torn, seg.bytes).unwrap();
    drop(file);
    let stale_after = std::fs::read(&path).unwrap()[seg.bytes as usize + 120..].to_vec();
    assert!(stale_after.iter().any(|&b| b != 0), "stale bytes follow");

    let (wal, report) = Wal::open(dir.path(), opts()).unwrap();
    assert_eq!(report.moved_aside.len(), 1, "{:?}", report.moved_aside);
    let moved = &report.moved_aside[0];
    assert_eq!(moved.offset, seg.bytes);
    // Only the torn frame moves aside, not the stale remainder of the file.
    assert_eq!(moved.bytes, 120);
    assert_eq!(std::fs::read(&moved.to).unwrap(), torn);
    let got = ids_from(&wal, lsns[500].next());
    assert_eq!(got, (501..end).collect::<Vec<_>>());
    assert!(got.contains(&tail_start));
    append(&wal, end..end + 10);
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), opts()).unwrap();
    assert!(report.moved_aside.is_empty());
    assert_eq!(
        ids_from(&wal, lsns[500].next()),
        (501..end + 10).collect::<Vec<_>>()
    );
}

#[test]
fn a_segment_being_read_is_deleted_not_recycled() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts()).unwrap();
    let lsns = append(&wal, 0..1000);
    let first = wal.segments()[0].clone();
    let mut reader = wal.read_from(Lsn::ZERO).unwrap();
    let t = reader.next().unwrap().unwrap();
    assert_eq!(t.lsn, lsns[0]);
    wal.truncate_prefix(lsns[900]).unwrap();
    let names = recycled_files(dir.path());
    let pinned = wal_log::layout::recycled_file_name(first.seq);
    assert!(!names.contains(&pinned), "{names:?}");
    assert_eq!(names.len(), 4);
    // The reader keeps its (deleted) file and reads on to the end of that segment.
    let rest: Vec<Lsn> = reader
        .by_ref()
        .take_while(Result::is_ok)
        .map(|t| t.unwrap().lsn)
        .take_while(|l| *l <= first.last_lsn)
        .collect();
    assert!(!rest.is_empty());
    assert!(rest.iter().all(|l| lsns.contains(l)));
}

#[test]
fn recycled_files_left_by_a_previous_run_are_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts()).unwrap();
    let lsns = append(&wal, 0..600);
    wal.truncate_prefix(lsns[550]).unwrap();
    let left = recycled_files(dir.path());
    assert!(!left.is_empty());
    drop(wal);
    // Fewer kept than left: the extra ones are removed on open.
    let (wal, report) = Wal::open(dir.path(), opts().recycle_segments(1)).unwrap();
    assert_eq!(recycled_files(dir.path()), left[..1]);
    assert_eq!(
        (report.recycled_kept, report.recycled_removed),
        (1, left.len() - 1)
    );
    append(&wal, 600..900);
    assert_eq!(wal.stats().recycled, 1);
    assert_eq!(
        ids_from(&wal, lsns[550].next()),
        (551..900).collect::<Vec<_>>()
    );
}

mod truncation_racing_rotation {
    //! A rotation on another thread while `truncate_prefix` has renamed segments into the
    //! reuse pool but not yet synced the directory: the rotation must not reuse those files
    //! (after a power loss the rename may be undone, and the file would carry a header that
    //! does not match its old name). Regression test for a reviewer-found bug.
    use std::path::Path;
    use std::sync::{Arc, Mutex, OnceLock};
    use std::thread::ThreadId;
    use wal_log::sim::{Call, CrashImage, DataLoss, DirLoss, HookedVfs, OpKind, SimVfs};
    use wal_log::vfs::Vfs;
    use wal_log::{Options, RecoveryMode, SyncPolicy, Wal};

    const DIR: &str = "/log";

    #[derive(Default)]
    struct State {
        truncating: Option<ThreadId>,
        renamed_for_reuse: bool,
        images: Vec<SimVfs>,
    }

    struct Hook {
        sim: SimVfs,
        state: Mutex<State>,
        wal: OnceLock<Arc<Wal>>,
    }

    fn image(sim: &SimVfs) -> SimVfs {
        sim.crash(&CrashImage {
            data: DataLoss::DurableOnly,
            dirs: DirLoss::UnsyncedLost,
        })
    }

    impl Hook {
        /// Runs before every call: when the truncating thread syncs the directory after
        /// renaming files for reuse, another thread first appends through a rotation, and a
        /// crash image is taken before every rename that rotation does.
        fn before(&self, call: &Call<'_>) {
            let me = Some(std::thread::current().id());
            match call.op {
                OpKind::Rename => {
                    let mut st = self.state.lock().unwrap();
                    if st.truncating.is_some() && me != st.truncating {
                        // The rotation's rename: the new header is synced, the name not yet.
                        st.images.push(image(&self.sim));
                    }
                    let to_name = call.to.and_then(Path::file_name).unwrap().to_string_lossy();
                    if me == st.truncating && to_name.starts_with(wal_log::layout::RECYCLED_PREFIX)
                    {
                        st.renamed_for_reuse = true;
                    }
                }
                OpKind::SyncDir => {
                    let fire = {
                        let mut st = self.state.lock().unwrap();
                        let fire = st.renamed_for_reuse && me == st.truncating;
                        st.renamed_for_reuse = false;
                        fire
                    };
                    if fire {
                        let wal = self.wal.get().unwrap().clone();
                        std::thread::spawn(move || {
                            let before = wal.stats().rotations;
                            let mut i = 0usize;
                            while wal.stats().rotations == before {
                                wal.append(&vec![7u8; 500 + i % 50]).unwrap();
                                i += 1;
                            }
                        })
                        .join()
                        .unwrap();
                        let img = image(&self.sim);
                        self.state.lock().unwrap().images.push(img);
                    }
                }
                _ => {}
            }
        }
    }

    fn opts(vfs: Arc<dyn Vfs>) -> Options {
        Options::default()
            .vfs(vfs)
            .segment_size(8 << 10)
            .preallocate(false)
            .recycle_segments(2)
            .sync(SyncPolicy::Always)
    }

    #[test]
    fn a_rotation_during_truncation_never_reuses_an_unsynced_rename() {
        let sim = SimVfs::new();
        sim.create_dir_all(Path::new(DIR)).unwrap();
        let hook = Arc::new(Hook {
            sim: sim.clone(),
            state: Mutex::new(State::default()),
            wal: OnceLock::new(),
        });
        let racing = hook.clone();
        let vfs = HookedVfs::new(Arc::new(sim), move |call| {
            racing.before(call);
            Ok(())
        });
        let (wal, _) = Wal::open(DIR, opts(Arc::new(vfs))).unwrap();
        let wal = Arc::new(wal);
        hook.wal.set(wal.clone()).unwrap();
        let mut lsns = Vec::new();
        while wal.stats().segments < 6 {
            lsns.push(wal.append(&[1u8; 700]).unwrap());
        }
        hook.state.lock().unwrap().truncating = Some(std::thread::current().id());
        let fence = lsns[lsns.len() * 3 / 5];
        assert!(wal.truncate_prefix(fence).unwrap() > 0);
        // The racing rotation found the pool empty: the renames were not durable yet.
        assert_eq!(wal.stats().recycled, 0);
        let images = std::mem::take(&mut hook.state.lock().unwrap().images);
        assert!(images.len() >= 2, "{} crash images", images.len());
        for (i, img) in images.iter().enumerate() {
            for mode in [
                RecoveryMode::Strict,
                RecoveryMode::TolerateTornTail,
                RecoveryMode::SalvagePrefix,
            ] {
                let opened = Wal::open(DIR, opts(Arc::new(image(img))).recovery(mode));
                assert!(opened.is_ok(), "image {i}, {mode:?}: {:?}", opened.err());
            }
        }
        // Later rotations reuse the files once the truncation is durable.
        let before = wal.stats().recycled;
        hook.state.lock().unwrap().truncating = None;
        while wal.stats().recycled == before {
            wal.append(&[2u8; 700]).unwrap();
        }
    }
}

/// A read-only scan (`frames`, what `walctl dump` runs) of a live directory, part-way through
/// a segment when the running log truncates it and reuses its file: the scan reports
/// `Changed` (scan again), not corruption. Regression test for a reviewer-found false alarm.
#[test]
fn a_read_only_scan_reports_a_reused_segment_as_changed_not_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .segment_size(1 << 20)
        .preallocate(false)
        .recycle_segments(4);
    let (wal, _) = Wal::open(dir.path(), opts.clone()).unwrap();
    while wal.segments().len() < 3 {
        wal.append(&[5u8; 1000]).unwrap();
    }
    let mut it =
        wal_log::inspect::frames(std::sync::Arc::new(wal_log::StdVfs), dir.path()).unwrap();
    let first = it.next().unwrap().unwrap();
    assert_eq!(first.seq.0, 1);
    wal.truncate_prefix(Lsn(wal.last_lsn().0 - 10)).unwrap();
    let reused = wal.stats().recycled;
    while wal.stats().recycled == reused {
        wal.append(&[0xEE; 1000]).unwrap();
    }
    // Fill the reused file well past where the reader is.
    for _ in 0..1500 {
        wal.append_queued(&[0xEE; 1000]).unwrap();
    }
    wal.sync().unwrap();
    let mut outcome = None;
    for f in it.by_ref() {
        if let Err(e) = f {
            outcome = Some(e);
            break;
        }
    }
    match outcome {
        Some(wal_log::WalError::Changed { segment }) => {
            assert_eq!(
                segment,
                dir.path()
                    .join(wal_log::layout::segment_file_name(first.seq))
            );
        }
        other => panic!("expected Changed, got {other:?}, end {:?}", it.end()),
    }
    // Scanned again, the directory is sound.
    let again = wal_log::inspect::inspect(&wal_log::StdVfs, dir.path(), &mut |_, _| {}).unwrap();
    assert!(
        matches!(again.verdict(), wal_log::inspect::Verdict::Sound),
        "{:?}",
        again.verdict()
    );
}

/// Several threads truncating at once (say, checkpoints racing) with appends rotating
/// segments: each segment is removed or recycled exactly once, and nothing poisons the log.
/// Regression test: two calls could pick the same segments and the second failed to rename
/// or remove a file the first had already taken, poisoning the log.
#[test]
fn concurrent_truncations_take_each_segment_once() {
    for recycle in [0, 2] {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(
            dir.path(),
            Options::default()
                .segment_size(8 << 10)
                .preallocate(false)
                .recycle_segments(recycle),
        )
        .unwrap();
        let barrier = std::sync::Barrier::new(3);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for round in 0..60u32 {
                        for i in 0..20u32 {
                            wal.append(&[(round + i) as u8; 600]).unwrap();
                        }
                        barrier.wait();
                        wal.truncate_prefix(wal.durable_lsn()).unwrap();
                    }
                });
            }
        });
        assert!(wal.poisoned_reason().is_none());
        drop(wal);
        let (wal, report) = Wal::open(dir.path(), opts()).unwrap();
        assert!(report.moved_aside.is_empty());
        assert!(wal.segments().len() <= 2, "{:?}", wal.segments());
    }
}

mod reuse_during_inspect {
    //! `inspect` (what `walctl verify` and `stat` run) of a live directory whose running log
    //! truncates and reuses the very segment file being read: `Changed`, not a damage verdict.
    use std::path::Path;
    use std::sync::{Arc, Mutex};
    use wal_log::sim::{HookedVfs, OpKind, SimVfs};
    use wal_log::{Options, Vfs, Wal, WalError};

    type Trigger = Box<dyn FnOnce() + Send>;

    /// `SimVfs`, except that the first read past the header of segment 1 first runs `trigger`
    /// (the running log truncating and reusing that file).
    fn read_hook(sim: SimVfs, trigger: Trigger) -> HookedVfs {
        let trigger = Mutex::new(Some(trigger));
        let segment_1 = wal_log::layout::segment_file_name(wal_format::SegmentSeq(1));
        HookedVfs::new(Arc::new(sim), move |call| {
            if call.op == OpKind::Read && call.offset > 0 && call.path.ends_with(&segment_1) {
                let t = trigger.lock().unwrap().take();
                if let Some(t) = t {
                    t();
                }
            }
            Ok(())
        })
    }

    #[test]
    fn inspect_reports_a_segment_reused_under_it_as_changed() {
        let sim = SimVfs::new();
        sim.create_dir_all(Path::new("/db")).unwrap();
        let opts = Options::default()
            .vfs(Arc::new(sim.clone()))
            .segment_size(16 << 10)
            .preallocate(false)
            .recycle_segments(4);
        let (wal, _) = Wal::open("/db", opts).unwrap();
        let wal = Arc::new(wal);
        while wal.segments().len() < 4 {
            wal.append(&[3u8; 700]).unwrap();
        }
        let running = wal.clone();
        let trigger: Trigger = Box::new(move || {
            // The engine truncates everything durable and writes until segment 1's file has
            // become a new segment, well past the reader's place.
            running.truncate_prefix(running.durable_lsn()).unwrap();
            let before = running.stats().recycled;
            while running.stats().recycled < before + 2 {
                running.append(&[9u8; 700]).unwrap();
            }
        });
        let hook = read_hook(sim.clone(), trigger);
        match wal_log::inspect::inspect(&hook, Path::new("/db"), &mut |_, _| {}) {
            Err(WalError::Changed { segment }) => {
                assert!(segment.ends_with(wal_log::layout::segment_file_name(
                    wal_format::SegmentSeq(1)
                )));
            }
            other => panic!("expected Changed, got {:?}", other.map(|i| i.verdict())),
        }
        // Read again, the live directory is sound.
        let again = wal_log::inspect::inspect(&sim, Path::new("/db"), &mut |_, _| {}).unwrap();
        assert!(matches!(again.verdict(), wal_log::inspect::Verdict::Sound));
    }
}
