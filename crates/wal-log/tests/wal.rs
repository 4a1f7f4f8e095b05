//! Crate-level behaviour of the log on real files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use wal_log::{Damage, Lsn, Options, RecoveryMode, SyncPolicy, Wal, WalError};

#[path = "support/wait.rs"]
mod wait;

fn opts() -> Options {
    Options::default().segment_size(1 << 20)
}

fn bodies(wal: &Wal) -> Vec<Vec<u8>> {
    wal.read_from(Lsn::ZERO)
        .unwrap()
        .flat_map(|t| {
            t.unwrap()
                .records()
                .map(|r| r.unwrap().to_vec())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn segment_path(dir: &Path, seq: u64) -> std::path::PathBuf {
    dir.join(wal_log::layout::segment_file_name(wal_format::SegmentSeq(
        seq,
    )))
}

#[test]
fn appends_survive_reopen_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, report) = Wal::open(dir.path(), opts()).unwrap();
    assert!(report.created);
    let a = wal.append(b"one").unwrap();
    let b = wal.append_batch(&[&b"two"[..], b"three"]).unwrap();
    assert!(a < b);
    assert_eq!(wal.durable_lsn(), b);
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), opts()).unwrap();
    assert!(!report.created);
    assert_eq!(report.last_lsn, b);
    assert!(report.moved_aside.is_empty());
    assert_eq!(bodies(&wal), [&b"one"[..], b"two", b"three"]);
    let c = wal.append(b"four").unwrap();
    assert_eq!(c, b.next());
}

#[test]
fn rotation_seals_segments_and_readers_cross_them() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), Options::default().segment_size(64 << 10)).unwrap();
    let payload = vec![7u8; 1000];
    for _ in 0..300 {
        wal.append(&payload).unwrap();
    }
    let segs = wal.segments();
    assert!(segs.len() >= 4, "{segs:?}");
    assert!(segs[..segs.len() - 1].iter().all(|s| s.sealed));
    assert_eq!(bodies(&wal).len(), 300);
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), Options::default().segment_size(64 << 10)).unwrap();
    assert_eq!(report.segments, segs.len());
    assert_eq!(bodies(&wal).len(), 300);
}

#[test]
fn truncate_prefix_removes_only_whole_segments_below_the_fence() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), Options::default().segment_size(32 << 10)).unwrap();
    let mut lsns = Vec::new();
    for i in 0..200u32 {
        lsns.push(wal.append(&[i as u8; 700]).unwrap());
    }
    let fence = lsns[100];
    let before = wal.segments().len();
    let removed = wal.truncate_prefix(fence).unwrap();
    assert!(removed > 0);
    assert_eq!(wal.segments().len(), before - removed);
    let oldest = wal.oldest_retained_lsn();
    assert!(oldest <= fence.next(), "oldest {oldest} fence {fence}");
    // Everything after the fence is still readable.
    let got: Vec<Lsn> = wal
        .read_from(fence.next())
        .unwrap()
        .map(|t| t.unwrap().lsn)
        .collect();
    assert_eq!(got, lsns[101..]);
    assert!(matches!(
        wal.read_from(Lsn(1)),
        Err(WalError::Truncated { .. })
    ));
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), Options::default().segment_size(32 << 10)).unwrap();
    assert_eq!(wal.oldest_retained_lsn(), oldest);
}

#[test]
fn large_transactions_are_fragmented_and_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts().segment_size(4 << 20)).unwrap();
    let big: Vec<u8> = (0..10_000_000u32).map(|i| (i % 251) as u8).collect();
    let lsn = wal.append(&big).unwrap();
    wal.append(b"small").unwrap();
    let mut s = wal.stream().unwrap();
    s.write(&big[..5_000_000]).unwrap();
    s.abort().unwrap();
    {
        let mut s = wal.stream().unwrap();
        s.write(&big[..6_000_000]).unwrap();
        // dropped uncommitted: aborted
    }
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), opts().segment_size(4 << 20)).unwrap();
    assert!(report.aborted_streams.is_empty());
    let txs: Vec<_> = wal
        .read_from(Lsn::ZERO)
        .unwrap()
        .map(|t| t.unwrap())
        .collect();
    assert_eq!(txs.len(), 2);
    assert_eq!(txs[0].lsn, lsn);
    assert_eq!(txs[0].body.len(), big.len());
    assert!(txs[0].body[..] == big[..]);
    assert_eq!(&txs[1].body[..], b"small");
}

#[test]
fn transaction_size_limit_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts().max_transaction_size(1 << 20)).unwrap();
    let err = wal.append(&vec![0u8; 5 << 20]).unwrap_err();
    assert!(matches!(err, WalError::TransactionTooLarge { .. }), "{err}");
    // Also when the payload would fit one frame, and for batches and queued appends.
    let one_frame = vec![0u8; (1 << 20) + 1];
    assert!(matches!(
        wal.append(&one_frame),
        Err(WalError::TransactionTooLarge { .. })
    ));
    assert!(matches!(
        wal.append_queued(&one_frame),
        Err(WalError::TransactionTooLarge { .. })
    ));
    assert!(matches!(
        wal.append_batch(&[&one_frame[..]]),
        Err(WalError::TransactionTooLarge { .. })
    ));
    // The log is still usable.
    wal.append(b"ok").unwrap();
}

#[test]
fn second_open_in_same_process_is_already_open() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts()).unwrap();
    let err = Wal::open(dir.path(), opts()).unwrap_err();
    match &err {
        WalError::AlreadyOpen { dir: d } => assert_eq!(d, dir.path()),
        other => panic!("expected AlreadyOpen, got {other}"),
    }
    assert!(err.to_string().contains(&dir.path().display().to_string()));
    drop(wal);
    Wal::open(dir.path(), opts()).unwrap();
}

/// Runs only as the child of `second_open_from_another_process_is_already_open`.
#[test]
fn child_process_open_probe() {
    let Ok(dir) = std::env::var("WAL_LOG_TEST_CHILD_DIR") else {
        return;
    };
    match Wal::open(&dir, opts()) {
        Err(WalError::AlreadyOpen { .. }) => println!("CHILD:ALREADY_OPEN"),
        Ok(_) => println!("CHILD:OPENED"),
        Err(e) => println!("CHILD:ERROR {e}"),
    }
}

#[test]
fn second_open_from_another_process_is_already_open() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts()).unwrap();
    let run_child = || {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_process_open_probe",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("WAL_LOG_TEST_CHILD_DIR", dir.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run_child().contains("CHILD:ALREADY_OPEN"));
    drop(wal);
    assert!(run_child().contains("CHILD:OPENED"));
}

#[test]
fn torn_tail_is_moved_aside_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts().preallocate(false)).unwrap();
    for i in 0..10u8 {
        wal.append(&[i; 100]).unwrap();
    }
    let last = wal.last_lsn();
    drop(wal);
    // A torn write: half a frame of garbage after the last frame.
    let seg = segment_path(dir.path(), 1);
    let mut bytes = std::fs::read(&seg).unwrap();
    let good_len = bytes.len() as u64;
    bytes.extend_from_slice(&[0xAB; 57]);
    std::fs::write(&seg, &bytes).unwrap();

    // Strict refuses and changes nothing.
    let err = Wal::open(
        dir.path(),
        opts().preallocate(false).recovery(RecoveryMode::Strict),
    )
    .unwrap_err();
    assert!(
        matches!(err, WalError::TornTail(Damage { offset, .. }) if offset == good_len),
        "{err}"
    );
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);

    let (wal, report) = Wal::open(dir.path(), opts().preallocate(false)).unwrap();
    assert_eq!(report.last_lsn, last);
    assert_eq!(report.moved_aside.len(), 1);
    let m = &report.moved_aside[0];
    assert_eq!((m.offset, m.bytes), (good_len, 57));
    assert_eq!(std::fs::read(&m.to).unwrap(), vec![0xAB; 57]);
    assert_eq!(bodies(&wal).len(), 10);
    let next = wal.append(b"after repair").unwrap();
    assert_eq!(next, last.next());
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), opts().preallocate(false)).unwrap();
    assert!(report.moved_aside.is_empty());
    assert_eq!(bodies(&wal).len(), 11);
}

/// A torn tail longer than the piece recovery copies at a time (1 MiB): garbage to the end of
/// a large file is moved aside whole and byte for byte, without reading it into memory at once.
#[test]
fn a_long_torn_tail_is_moved_aside_in_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts().preallocate(false).segment_size(8 << 20);
    let (wal, _) = Wal::open(dir.path(), o.clone()).unwrap();
    for i in 0..10u8 {
        wal.append(&[i; 100]).unwrap();
    }
    drop(wal);
    let seg = segment_path(dir.path(), 1);
    let mut bytes = std::fs::read(&seg).unwrap();
    let good_len = bytes.len() as u64;
    let garbage: Vec<u8> = (0..2_600_000u32).map(|i| (i % 251) as u8 | 1).collect();
    bytes.extend_from_slice(&garbage);
    std::fs::write(&seg, &bytes).unwrap();
    let (wal, report) = Wal::open(dir.path(), o).unwrap();
    assert_eq!(report.moved_aside.len(), 1, "{report:?}");
    let m = &report.moved_aside[0];
    assert_eq!((m.offset, m.bytes), (good_len, garbage.len() as u64));
    assert!(
        std::fs::read(&m.to).unwrap() == garbage,
        "the aside file differs"
    );
    let after = std::fs::read(&seg).unwrap();
    assert!(after[good_len as usize..].iter().all(|&b| b == 0));
    assert_eq!(bodies(&wal).len(), 10);
}

#[test]
fn corruption_mid_log_is_an_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts().preallocate(false)).unwrap();
    for i in 0..10u8 {
        wal.append(&[i; 100]).unwrap();
    }
    drop(wal);
    let seg = segment_path(dir.path(), 1);
    let mut bytes = std::fs::read(&seg).unwrap();
    // Flip a bit inside the third frame's payload.
    let third = 64 + 2 * 120 + 30;
    bytes[third] ^= 0x10;
    std::fs::write(&seg, &bytes).unwrap();
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::Strict] {
        let err = Wal::open(dir.path(), opts().preallocate(false).recovery(mode)).unwrap_err();
        assert!(
            matches!(err, WalError::Corrupt(Damage { offset, .. }) if offset == 64 + 2 * 120),
            "{err}"
        );
        assert_eq!(
            std::fs::read(&seg).unwrap(),
            bytes,
            "{mode:?} changed the segment"
        );
    }
    // Salvage keeps the two good transactions and moves the rest aside.
    let (wal, report) = Wal::open(
        dir.path(),
        opts()
            .preallocate(false)
            .recovery(RecoveryMode::SalvagePrefix),
    )
    .unwrap();
    assert_eq!(bodies(&wal).len(), 2);
    assert_eq!(report.moved_aside.len(), 1);
    // The eight frames, then the clean close's watermark up to its last non-zero byte (the
    // low byte of its LSN).
    assert_eq!(report.moved_aside[0].bytes, 8 * 120 + 13);
    let saved = std::fs::read(&report.moved_aside[0].to).unwrap();
    assert_eq!(saved, bytes[64 + 240..64 + 240 + 8 * 120 + 13]);
}

#[test]
fn zeroed_sector_mid_log_is_corruption_not_end_of_log() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts()).unwrap();
    for i in 0..100u8 {
        wal.append(&[i; 100]).unwrap();
    }
    drop(wal);
    let seg = segment_path(dir.path(), 1);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[4096..4608].fill(0);
    std::fs::write(&seg, &bytes).unwrap();
    let err = Wal::open(dir.path(), opts()).unwrap_err();
    assert!(matches!(err, WalError::Corrupt { .. }), "{err}");
}

#[test]
fn foreign_files_gaps_and_other_logs_are_refused() {
    // A foreign file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    match Wal::open(dir.path(), opts()) {
        Err(e @ WalError::NotAWal { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("notes.txt") && text.contains("walctl verify"),
                "{text}"
            );
        }
        Err(e) => panic!("a foreign file was refused with another error: {e}"),
        Ok(_) => panic!("a foreign file was not refused"),
    }
    // lost+found (the root of a volume) and hidden files are tolerated.
    std::fs::remove_file(dir.path().join("notes.txt")).unwrap();
    std::fs::create_dir(dir.path().join("lost+found")).unwrap();
    std::fs::write(dir.path().join(".swap"), b"x").unwrap();
    let (wal, _) = Wal::open(dir.path(), opts()).unwrap();
    wal.append(b"kept").unwrap();
    drop(wal);
    assert!(Wal::open(dir.path(), opts()).is_ok());
    // A file named like a segment that is not one.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        segment_path(dir.path(), 1),
        b"definitely not a wal segment, just text",
    )
    .unwrap();
    assert!(matches!(
        Wal::open(dir.path(), opts()),
        Err(WalError::NotAWal { .. })
    ));
    // A missing segment in the middle.
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), Options::default().segment_size(16 << 10)).unwrap();
    for _ in 0..100 {
        wal.append(&[1u8; 500]).unwrap();
    }
    drop(wal);
    std::fs::remove_file(segment_path(dir.path(), 2)).unwrap();
    assert!(matches!(
        Wal::open(dir.path(), opts()),
        Err(WalError::Gap { .. })
    ));
    // No recovery mode opens it, and a read-only inspection predicts exactly that.
    assert!(matches!(
        Wal::open(dir.path(), opts().recovery(RecoveryMode::SalvagePrefix)),
        Err(WalError::Gap { .. })
    ));
    let ins = wal_log::inspect::inspect(&wal_log::StdVfs, dir.path(), &mut |_, _| {}).unwrap();
    assert!(matches!(ins.refusal(), Some(WalError::Gap { .. })));
    // A segment from another log.
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for d in [&a, &b] {
        let (wal, _) = Wal::open(
            d.path(),
            Options::default().segment_size(16 << 10).preallocate(false),
        )
        .unwrap();
        for _ in 0..100 {
            wal.append(&[1u8; 500]).unwrap();
        }
    }
    std::fs::copy(segment_path(b.path(), 2), segment_path(a.path(), 2)).unwrap();
    assert!(matches!(
        Wal::open(a.path(), opts()),
        Err(WalError::ForeignSegment { .. })
    ));
    assert!(matches!(
        Wal::open(a.path(), opts().recovery(RecoveryMode::SalvagePrefix)),
        Err(WalError::ForeignSegment { .. })
    ));
    let ins = wal_log::inspect::inspect(&wal_log::StdVfs, a.path(), &mut |_, _| {}).unwrap();
    assert!(matches!(
        ins.refusal(),
        Some(WalError::ForeignSegment { .. })
    ));
    // The other log is sound: nothing to refuse.
    let ins = wal_log::inspect::inspect(&wal_log::StdVfs, b.path(), &mut |_, _| {}).unwrap();
    assert!(ins.refusal().is_none());
    // Missing directory without create.
    let missing = a.path().join("nope");
    assert!(matches!(
        Wal::open(&missing, opts().create_if_missing(false)),
        Err(WalError::NotFound { .. })
    ));
}

#[test]
fn future_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Wal::open(dir.path(), opts()).unwrap());
    let seg = segment_path(dir.path(), 1);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[8..10].copy_from_slice(&9u16.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[0..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&seg, &bytes).unwrap();
    let err = Wal::open(dir.path(), opts()).unwrap_err();
    assert!(matches!(err, WalError::UnsupportedVersion { .. }), "{err}");
}

#[test]
fn group_commit_shares_fsyncs_between_writers() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), Options::default()).unwrap();
    let wal = Arc::new(wal);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                let mut lsns = Vec::new();
                for i in 0..100u32 {
                    let lsn = wal.append(format!("{t}-{i}").as_bytes()).unwrap();
                    // Acknowledged means durable.
                    assert!(wal.durable_lsn() >= lsn);
                    lsns.push(lsn);
                }
                lsns
            })
        })
        .collect();
    let mut all: Vec<Lsn> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 800);
    let stats = wal.stats();
    assert_eq!(stats.commits, 800);
    assert!(stats.fsyncs < 800, "no batching: {stats:?}");
    assert_eq!(bodies(&wal).len(), 800);
}

#[test]
fn follow_reader_sees_concurrent_commits_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), Options::default().segment_size(64 << 10)).unwrap();
    let wal = Arc::new(wal);
    let mut reader = wal.follow(Lsn::ZERO).unwrap();
    let writer = {
        let wal = wal.clone();
        std::thread::spawn(move || {
            for i in 0..500u32 {
                wal.append(&i.to_le_bytes().repeat(50)).unwrap();
            }
        })
    };
    let mut seen = 0u32;
    let mut last = Lsn::ZERO;
    while seen < 500 {
        let t = reader
            .next_timeout(Duration::from_secs(10))
            .unwrap()
            .expect("timed out");
        assert!(t.lsn > last);
        assert!(
            t.lsn <= wal.durable_lsn(),
            "reader saw a non-durable transaction"
        );
        assert_eq!(&t.body[..4], &seen.to_le_bytes());
        last = t.lsn;
        seen += 1;
    }
    writer.join().unwrap();
    assert!(
        reader
            .next_timeout(Duration::from_millis(20))
            .unwrap()
            .is_none()
    );
}

#[test]
fn interval_policy_syncs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts().sync(SyncPolicy::Interval { ms: 5 })).unwrap();
    let lsn = wal.append(b"x").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while wal.durable_lsn() < lsn {
        assert!(
            std::time::Instant::now() < deadline,
            "background sync never happened"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let lsn2 = wal.append(b"y").unwrap();
    wal.wait_durable(lsn2).unwrap();
    assert!(wal.durable_lsn() >= lsn2);
}

/// `wait_durable` of an LSN no append has returned is an error, not an `Ok` that would claim a
/// durability nothing provided (nor a wait that could never end).
#[test]
fn waiting_for_an_unassigned_lsn_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts().sync(SyncPolicy::Never)).unwrap();
    let lsn = wal.append(b"x").unwrap();
    match wal.wait_durable(lsn.next()) {
        Err(WalError::NotAssigned { lsn: asked, last }) => {
            assert_eq!((asked, last), (lsn.next(), lsn));
        }
        other => panic!("expected NotAssigned, got {other:?}"),
    }
    assert!(wal.durable_lsn() < lsn, "nothing was synced");
    wal.wait_durable(lsn).unwrap();
    assert_eq!(wal.durable_lsn(), lsn);
    wal.wait_durable(Lsn::ZERO).unwrap();
}

#[test]
fn checkpoint_marker_resets_bytes_since_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts()).unwrap();
    wal.append(&[0u8; 1000]).unwrap();
    assert!(wal.stats().bytes_since_checkpoint >= 1000);
    let l = wal.last_lsn();
    wal.checkpoint_marker(l).unwrap();
    assert_eq!(wal.stats().bytes_since_checkpoint, 0);
    wal.append(&[0u8; 10]).unwrap();
    drop(wal);
    let (wal, _) = Wal::open(dir.path(), opts()).unwrap();
    let s = wal.stats().bytes_since_checkpoint;
    assert!((10..100).contains(&s), "{s}");
}

mod seal_published_before_next_segment {
    //! Rotation must not let readers see a seal before the segment it names exists: a reader
    //! that read the seal would open a file not yet installed and report it truncated.
    //! Regression test for a reviewer-found race. A `Vfs` wrapper runs a reader from another
    //! thread at the moment rotation is about to rename the next segment into place.
    use std::path::Path;
    use std::sync::{Arc, Mutex, OnceLock};
    use wal_log::sim::{HookedVfs, OpKind, SimVfs};
    use wal_log::vfs::Vfs;
    use wal_log::{Lsn, Options, Wal};

    #[test]
    fn readers_never_see_a_seal_before_the_next_segment_exists() {
        let sim = SimVfs::new();
        sim.create_dir_all(Path::new("/db")).unwrap();
        let log: Arc<OnceLock<Arc<Wal>>> = Arc::new(OnceLock::new());
        let results = Arc::new(Mutex::new(Vec::<Result<usize, String>>::new()));
        let (hook_log, hook_results) = (log.clone(), results.clone());
        let vfs = HookedVfs::new(Arc::new(sim), move |call| {
            let installs_segment = call
                .to
                .is_some_and(|to| to.extension() == Some("wal".as_ref()));
            if call.op == OpKind::Rename
                && installs_segment
                && let Some(wal) = hook_log.get().cloned()
            {
                // Rotation is about to install the next segment: read everything readable.
                let read = std::thread::spawn(move || {
                    let mut n = 0;
                    for t in wal.read_from(Lsn::ZERO).map_err(|e| e.to_string())? {
                        t.map_err(|e| e.to_string())?;
                        n += 1;
                    }
                    Ok(n)
                })
                .join()
                .unwrap();
                hook_results.lock().unwrap().push(read);
            }
            Ok(())
        });
        let opts = Options::default()
            .vfs(Arc::new(vfs))
            .segment_size(4 << 10)
            .preallocate(false);
        let (wal, _) = Wal::open("/db", opts).unwrap();
        let wal = Arc::new(wal);
        log.set(wal.clone()).unwrap();
        for i in 0..200u32 {
            let mut body = i.to_le_bytes().to_vec();
            body.resize(300, 1);
            wal.append(&body).unwrap();
        }
        let results = std::mem::take(&mut *results.lock().unwrap());
        assert!(results.len() > 10, "{} rotations observed", results.len());
        for (i, r) in results.iter().enumerate() {
            assert!(r.is_ok(), "reader during rotation {i}: {r:?}");
        }
    }
}

/// A reader reuses its read buffer only when no transaction it handed out still refers to it:
/// transactions kept by the caller stay intact while later chunks are read, and a streaming
/// reader that drops each one sees the same bytes.
#[test]
fn readers_keep_handed_out_transactions_intact_across_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), Options::default().segment_size(8 << 20)).unwrap();
    let body = |i: u32| -> Vec<u8> {
        (0..150_000u32)
            .map(|k| (k.wrapping_mul(31) ^ i.wrapping_mul(2_654_435_761)) as u8)
            .collect()
    };
    // About 15 MB: several 4 MiB read chunks and two segments.
    for i in 0..100 {
        wal.append(&body(i)).unwrap();
    }
    let kept: Vec<_> = wal
        .read_from(Lsn::ZERO)
        .unwrap()
        .map(|t| t.unwrap())
        .collect();
    assert_eq!(kept.len(), 100);
    for (i, t) in kept.iter().enumerate() {
        assert_eq!(&t.body[..], &body(i as u32)[..], "kept transaction {i}");
    }
    for (i, t) in wal.read_from(Lsn::ZERO).unwrap().enumerate() {
        assert_eq!(&t.unwrap().body[..], &body(i as u32)[..], "streamed {i}");
    }
}

/// A truncation that a crash interrupts can remove the segment where a fragmented transaction
/// begins but not yet the one where it ends (removal goes oldest first). The transaction can
/// no longer be read whole; the retained range then starts after it, so reading from
/// `oldest_retained_lsn()` works and a read from before it says where the log starts.
#[test]
fn a_fragmented_transaction_whose_beginning_was_truncated_is_not_retained() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || Options::default().segment_size(64 << 10).preallocate(false);
    let big = vec![3u8; wal_format::frame::MAX_FRAME_PAYLOAD + 1000];
    let (stream_end, after) = {
        let (wal, _) = Wal::open(dir.path(), opts()).unwrap();
        wal.append(b"before").unwrap();
        let end = wal.append(&big).unwrap();
        let after: Vec<Lsn> = (0..3u8).map(|i| wal.append(&[i; 10]).unwrap()).collect();
        assert!(wal.segments().len() >= 2, "{:?}", wal.segments());
        (end, after)
    };
    // What the interrupted truncation left: the first segment gone, the rest there.
    std::fs::remove_file(segment_path(dir.path(), 1)).unwrap();
    let (wal, _) = Wal::open(dir.path(), opts()).unwrap();
    assert_eq!(wal.oldest_retained_lsn(), stream_end.next());
    let got: Vec<Lsn> = wal
        .read_from(wal.oldest_retained_lsn())
        .unwrap()
        .map(|t| t.unwrap().lsn)
        .collect();
    assert_eq!(got, after);
    let base = wal.segments()[0].base_lsn;
    match wal.read_from(base) {
        Err(WalError::Truncated { oldest, .. }) => assert_eq!(oldest, stream_end.next()),
        other => panic!("{other:?}"),
    }
}

/// A record too long for the format's 32-bit record length (possible only with a raised
/// `max_transaction_size`) is refused before anything is written, instead of being stored with
/// a truncated length under a checksum that verifies. The 4 GiB record is zero-filled memory
/// that is never touched, so it costs no RAM.
#[test]
fn a_record_over_4_gib_is_refused_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), opts().max_transaction_size(u64::MAX)).unwrap();
    let huge = vec![0u8; (u32::MAX as usize) + 1];
    let small = [1u8; 10];
    match wal.append_batch(&[&small[..], &huge[..]]) {
        Err(WalError::Format(wal_format::FormatError::BatchTooLarge { reason })) => {
            assert!(reason.contains("record 1"), "{reason}");
        }
        other => panic!("expected BatchTooLarge, got {other:?}"),
    }
    assert_eq!(wal.last_lsn(), Lsn::ZERO);
    assert!(wal.poisoned_reason().is_none());
    wal.append_batch(&[&small[..]]).unwrap();
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0xFF;
    std::fs::write(path, b).unwrap();
}

fn append_until_segments(wal: &Wal, n: usize, tag: u8) {
    while wal.segments().len() < n {
        wal.append(&[tag; 1000]).unwrap();
    }
    for _ in 0..5 {
        wal.append(&[tag; 1000]).unwrap();
    }
}

/// A second salvage of the same log must not rename a segment over the file an earlier
/// salvage moved aside (a rename replaces its target): it takes the next free name, and the
/// dry run's plan says which. Regression for a reviewer-found loss of moved-aside bytes.
#[test]
fn a_second_salvage_keeps_the_first_salvaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = || Options::default().segment_size(64 << 10).preallocate(false);
    {
        let (wal, _) = Wal::open(d, o()).unwrap();
        append_until_segments(&wal, 3, 0xA1);
    }
    // The first frame of segment 2 damaged, valid frames after it: corruption.
    flip(&segment_path(d, 2), 64 + 30);
    let salvage = || o().recovery(RecoveryMode::SalvagePrefix);
    let (wal, report) = Wal::open(d, salvage()).unwrap();
    let first = d.join(format!("{:020}.wal.salvaged", 3));
    assert!(
        report.moved_aside.iter().any(|m| m.to == first),
        "{report:?}"
    );
    let kept = std::fs::read(&first).unwrap();
    // The log goes on and makes a new segment 3; then segment 2 is damaged again.
    append_until_segments(&wal, 3, 0xB2);
    drop(wal);
    flip(&segment_path(d, 2), 64 + 30);
    let plan = wal_log::inspect::inspect(&wal_log::StdVfs, d, &mut |_, _| {})
        .unwrap()
        .recovery_plan(RecoveryMode::SalvagePrefix)
        .unwrap();
    let (_wal, report) = Wal::open(d, salvage()).unwrap();
    assert_eq!(plan.moved_aside, report.moved_aside);
    let second = d.join(format!("{:020}.wal.salvaged.1", 3));
    assert!(
        report.moved_aside.iter().any(|m| m.to == second),
        "{report:?}"
    );
    assert_eq!(
        std::fs::read(&first).unwrap(),
        kept,
        "the first salvage's file changed"
    );
}

/// After a truncation interrupted between removing the segment where a fragmented
/// transaction begins and the one where it ends, a reader from `oldest_retained_lsn()` skips
/// the orphaned fragments without charging them to its memory budget: a later transaction
/// within `max_transaction_size` is read, not refused as too large. Reviewer-found.
#[test]
fn orphaned_fragments_do_not_count_against_a_readers_budget() {
    const MAX: u64 = 8 << 20;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = || {
        Options::default()
            .segment_size(64 << 10)
            .preallocate(false)
            .max_transaction_size(MAX)
    };
    let chunk = (4 << 20) - 8;
    let b_lsn;
    {
        let (wal, _) = Wal::open(d, o()).unwrap();
        // A: begins in segment 1, ends in segment 2.
        let mut a = wal.stream().unwrap();
        a.write(&vec![1u8; 2 * chunk]).unwrap();
        a.commit().unwrap();
        // B: 5 MiB, within the limit.
        let mut b = wal.stream().unwrap();
        b.write(&vec![2u8; 5 << 20]).unwrap();
        b_lsn = b.commit().unwrap();
        assert_eq!(wal.read_from(Lsn::FIRST).unwrap().count(), 2);
    }
    // truncate_prefix removes segments 1 and 2 oldest first; a crash after the first removal.
    std::fs::remove_file(segment_path(d, 1)).unwrap();
    let (wal, _) = Wal::open(d, o()).unwrap();
    let from = wal.oldest_retained_lsn();
    assert!(from <= b_lsn);
    let got: Vec<_> = wal
        .read_from(from)
        .unwrap()
        .collect::<Result<_, _>>()
        .expect("the retained range holds only B");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].lsn, b_lsn);
}

/// A follow reader parked in `next_timeout` is woken by the flush that makes a transaction
/// durable and by the failure that poisons the log, not by its own timeout (an hour here: the
/// test would hang past its watchdog). Flushes notify only when a reader is parked.
#[test]
fn a_parked_follow_reader_is_woken_by_a_commit_and_by_poisoning() {
    use wal_log::sim::{Fault, OpKind, SimVfs};
    use wal_log::vfs::Vfs;
    let sim = SimVfs::new();
    sim.create_dir_all(Path::new("/db")).unwrap();
    let opts = Options::default()
        .vfs(Arc::new(sim.clone()))
        .preallocate(false);
    let (wal, _) = Wal::open("/db", opts).unwrap();
    let wal = Arc::new(wal);
    let mut reader = wal.follow(Lsn::ZERO).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let tailer = std::thread::spawn(move || {
        for _ in 0..2 {
            let got = reader.next_timeout(Duration::from_secs(3600));
            let done = got.is_err();
            tx.send(got.map(|t| t.map(|t| t.body.to_vec()))).unwrap();
            if done {
                break;
            }
        }
    });
    let watchdog = wait::WATCHDOG;
    // Parked first, so it is the commit that must wake it.
    wait::until_readers_wait(&wal, 1);
    wal.append(b"first").unwrap();
    let first = rx
        .recv_timeout(watchdog)
        .expect("a commit did not wake the reader");
    assert_eq!(first.unwrap(), Some(b"first".to_vec()));

    wait::until_readers_wait(&wal, 1);
    sim.fail_nth(
        OpKind::SyncData,
        sim.op_count(OpKind::SyncData) + 1,
        Fault::Eio,
    );
    assert!(wal.append(b"second").is_err());
    let second = rx
        .recv_timeout(watchdog)
        .expect("poisoning did not wake the reader");
    assert!(
        matches!(second, Err(WalError::Poisoned { .. })),
        "{second:?}"
    );
    tailer.join().unwrap();
}

/// The transaction size limit is per transaction, for readers as for the writer: two large
/// transactions streamed at the same time, each within the limit and together over it, both
/// read back.
#[test]
fn concurrent_large_transactions_within_the_limit_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let opts = opts().max_transaction_size(10 << 20);
    let (wal, _) = Wal::open(dir.path(), opts).unwrap();
    let mut a = wal.stream().unwrap();
    let mut b = wal.stream().unwrap();
    a.write(&vec![1u8; 9 << 20]).unwrap();
    b.write(&vec![2u8; 9 << 20]).unwrap();
    a.commit().unwrap();
    b.commit().unwrap();
    let got: Vec<(u8, usize)> = wal
        .read_from(Lsn::ZERO)
        .unwrap()
        .map(|t| {
            let t = t.unwrap();
            (t.body[0], t.body.len())
        })
        .collect();
    assert_eq!(got, vec![(1, 9 << 20), (2, 9 << 20)]);
}

/// `check_not_open` refuses a log a `Wal` holds, and otherwise changes nothing: no lock file
/// is created where there was none.
#[test]
fn check_not_open_sees_the_lock_and_creates_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("log");
    let vfs = wal_log::StdVfs;
    wal_log::inspect::check_not_open(&vfs, &dir).unwrap();
    // A path that cannot be listed is an I/O error, not "not open".
    let file = root.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        wal_log::inspect::check_not_open(&vfs, &file),
        Err(WalError::Io { op: "list", .. })
    ));
    std::fs::create_dir(&dir).unwrap();
    wal_log::inspect::check_not_open(&vfs, &dir).unwrap();
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let (wal, _) = Wal::open(&dir, opts()).unwrap();
    assert!(matches!(
        wal_log::inspect::check_not_open(&vfs, &dir),
        Err(WalError::AlreadyOpen { .. })
    ));
    drop(wal);
    wal_log::inspect::check_not_open(&vfs, &dir).unwrap();
    // The probe released the lock at once.
    let (wal, _) = Wal::open(&dir, opts()).unwrap();
    drop(wal);
    // A holder of the lock through a read-only descriptor is seen as well (the probe itself
    // opens the file read-only; as root, file permissions cannot show that here).
    let lock = dir.join(wal_log::layout::LOCK_FILE);
    let held = std::fs::File::open(&lock).unwrap();
    held.try_lock().unwrap();
    assert!(matches!(
        wal_log::inspect::check_not_open(&vfs, &dir),
        Err(WalError::AlreadyOpen { .. })
    ));
    drop(held);
    wal_log::inspect::check_not_open(&vfs, &dir).unwrap();
}
