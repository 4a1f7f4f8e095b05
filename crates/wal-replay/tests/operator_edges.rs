//! Operator paths a review found wrong (each test failed before its fix): a salvage repair
//! followed by recovery, concurrent large transactions, `dump` after an interrupted
//! truncation, `repair --dry-run` on a live log, `verify` of a log whose segments are gone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::path::Path;
use std::sync::Arc;
use wal_format::{FrameKind, Lsn};
use wal_log::{Options, RecoveryMode, StdVfs, Wal};
use wal_replay::{DataDir, RecoverOptions};

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let q = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&p, &q);
        } else {
            std::fs::copy(&p, &q).unwrap();
        }
    }
}

fn log_opts() -> Options {
    Options::default().preallocate(false)
}

/// A data directory whose log is: LSN 1 Tx, LSN 2 FragBegin, LSN 3 FragEnd (a 5 MiB
/// transaction, acknowledged), LSN 4 Tx; a snapshot with fence 3 (holding 2 transactions);
/// then the FragEnd frame is damaged (bit rot), with the valid frame 4 after it: corruption.
fn salvage_fixture() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let data = DataDir::new(root.path());
    let (wal, _) = Wal::open(data.log_dir(), log_opts()).unwrap();
    assert_eq!(wal.append(b"first").unwrap(), Lsn(1));
    let mut s = wal.stream().unwrap();
    s.write(&vec![7u8; 5 << 20]).unwrap();
    let big = s.commit().unwrap();
    assert_eq!(big, Lsn(3));
    assert_eq!(wal.append(b"after").unwrap(), Lsn(4));
    // The state at fence 3: two transactions.
    let state = Counter {
        txs: 2,
        bytes: 5 + (5 << 20),
    };
    data.snapshots(Arc::new(StdVfs))
        .write(&state, wal.log_id(), big)
        .unwrap();
    drop(wal);
    // Damage the FragEnd frame's payload.
    let mut frames = wal_log::inspect::frames(Arc::new(StdVfs), &data.log_dir()).unwrap();
    let mut target = None;
    for f in frames.by_ref() {
        let f = f.unwrap();
        if f.frame.kind == FrameKind::FragEnd {
            target = Some((f.seq, f.frame.offset));
        }
    }
    let (seq, off) = target.unwrap();
    let seg = data.log_dir().join(wal_log::layout::segment_file_name(seq));
    let mut b = std::fs::read(&seg).unwrap();
    b[off + 1000] ^= 0xff;
    std::fs::write(&seg, &b).unwrap();
    root
}

/// `walctl repair --mode salvage-prefix`, then an ordinary recovery, ends in the same state as
/// a recovery in SalvagePrefix mode. The repair closes the stream the cut left open with an
/// abort frame at LSN 3, the snapshot's fence: were the snapshot not set aside before that, it
/// would no longer look ahead of the log, and recovery would restore the 5 MiB transaction
/// the log lost.
#[test]
fn walctl_salvage_repair_then_recover_equals_salvage_recovery() {
    let a = salvage_fixture();
    let b = tempfile::tempdir().unwrap();
    copy_tree(a.path(), b.path());

    // Path A: the engine recovers in SalvagePrefix mode.
    let mut direct = Counter::default();
    let salvage = RecoverOptions::default().wal(log_opts().recovery(RecoveryMode::SalvagePrefix));
    let rec = wal_replay::recover(a.path(), &mut direct, salvage).unwrap();
    eprintln!(
        "direct: snapshot {:?} rejected {:?} log_end {}",
        rec.report.snapshot, rec.report.rejected_snapshots, rec.report.log_end
    );
    drop(rec);

    // Path B: the operator's salvage with walctl (dry-run first, as the runbook says).
    let (code, predicted) = run_json(b.path(), &["replay", "--mode", "salvage-prefix"]);
    assert_eq!(code, 0);
    eprintln!("walctl replay prediction: {predicted}");
    let (code, dry) = run_json(
        b.path(),
        &["repair", "--mode", "salvage-prefix", "--dry-run"],
    );
    assert_eq!(code, 0);
    assert_eq!(dry["would_set_aside_snapshots"][0]["fence"], 3, "{dry}");
    let (code, out, err) = run(b.path(), &["repair", "--mode", "salvage-prefix"]);
    eprintln!("walctl repair: {code}\n{out}{err}");
    assert_eq!(code, 0);
    assert!(out.contains("set snapshot"), "{out}");
    assert!(out.contains("log ends at LSN 3 "), "{out}");
    assert_eq!(
        std::fs::read_dir(DataDir::new(b.path()).snapshot_dir())
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".corrupt"))
            .count(),
        1
    );
    let mut after_repair = Counter::default();
    let rec = wal_replay::recover(
        b.path(),
        &mut after_repair,
        RecoverOptions::default().wal(log_opts()),
    )
    .unwrap();
    eprintln!(
        "after repair: snapshot {:?} rejected {:?} log_end {}",
        rec.report.snapshot, rec.report.rejected_snapshots, rec.report.log_end
    );
    assert_eq!(
        after_repair, direct,
        "walctl repair + recover restored the snapshot holding the lost transaction at LSN 3"
    );
}

/// Two large transactions written concurrently (two recorders streaming at once), each within
/// `max_transaction_size`, both acknowledged, together over it: recovery with the default
/// budget (per transaction) replays both, and so does `walctl replay`.
#[test]
fn default_budget_replays_every_transaction_the_log_took() {
    let root = tempfile::tempdir().unwrap();
    let data = DataDir::new(root.path());
    let opts = log_opts().max_transaction_size(10 << 20);
    let (wal, _) = Wal::open(data.log_dir(), opts.clone()).unwrap();
    let mut a = wal.stream().unwrap();
    let mut b = wal.stream().unwrap();
    a.write(&vec![1u8; 9 << 20]).unwrap();
    b.write(&vec![2u8; 9 << 20]).unwrap();
    a.commit().unwrap();
    b.commit().unwrap();
    drop(wal);
    let mut c = Counter::default();
    let r = wal_replay::recover(root.path(), &mut c, RecoverOptions::default().wal(opts));
    match r {
        Ok(_) => assert_eq!(c.txs, 2),
        Err(e) => panic!("recovery of a log of two acknowledged transactions failed: {e}"),
    }
    let (code, out, err) = run(
        root.path(),
        &["replay", "--max-transaction-size", "10485760"],
    );
    assert_eq!(code, 0, "{out}{err}");
    // A budget below one transaction is refused with the error that names the option.
    let (code, _, err) = run(
        root.path(),
        &["replay", "--max-transaction-size", "1048576"],
    );
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("over the replay budget"), "{err}");
}

/// A checkpoint truncates the log up to its fence, removing whole segments oldest first; a
/// crash after the first removal leaves the log starting with the fragments of a large
/// transaction whose beginning is gone (ARCHITECTURE.md: "after a truncation interrupted
/// between the segment that begins a fragmented transaction and the one that ends it, the
/// retained range starts after that transaction"). That log is sound and recovers, and
/// `walctl dump` prints all of it, naming the commit whose beginning was truncated.
#[test]
fn dump_of_a_log_whose_truncation_was_interrupted() {
    let root = tempfile::tempdir().unwrap();
    let data = DataDir::new(root.path());
    let opts = log_opts().segment_size(64 << 10);
    let (wal, _) = Wal::open(data.log_dir(), opts.clone()).unwrap();
    wal.append(b"first").unwrap();
    let mut s = wal.stream().unwrap();
    s.write(&vec![7u8; 9 << 20]).unwrap();
    let end = s.commit().unwrap();
    for i in 0..20u32 {
        wal.append(&i.to_le_bytes()).unwrap();
    }
    let fence = wal.last_lsn();
    // The checkpoint's snapshot at `fence` (21 transactions).
    let state = Counter {
        txs: 22,
        bytes: 5 + (9 << 20) + 80,
    };
    data.snapshots(Arc::new(StdVfs))
        .write(&state, wal.log_id(), fence)
        .unwrap();
    let segs = wal.segments();
    for seg in &segs {
        eprintln!("{seg:?}");
    }
    drop(wal);
    // `truncate_prefix(fence)` would remove segments 1..=3 oldest first; crash after the first.
    std::fs::remove_file(
        data.log_dir()
            .join(wal_log::layout::segment_file_name(segs[0].seq)),
    )
    .unwrap();
    eprintln!("stream committed at {end}; segment 1 removed by the interrupted truncation");

    // The directory recovers, and walctl verify and replay are happy with it.
    let mut c = Counter::default();
    let rec =
        wal_replay::recover(root.path(), &mut c, RecoverOptions::default().wal(opts)).unwrap();
    assert_eq!(c, state);
    drop(rec);
    let (code, out, err) = run(root.path(), &["verify"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(root.path(), &["replay"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(root.path(), &["dump"]);
    assert_eq!(
        code,
        0,
        "walctl dump of a sound log:\n{}\nstderr: {err}",
        out.lines().rev().take(3).collect::<Vec<_>>().join("\n")
    );
    assert!(
        out.contains("before the first frame read") && out.contains("not shown"),
        "{out}"
    );
    assert!(out.contains(&format!("commit LSN {fence} ")), "{out}");
}

/// `repair --dry-run` on a log held by a running engine predicts the real run: both refuse
/// with exit 4 ("locked by another process") and change nothing.
#[test]
fn repair_dry_run_predicts_the_lock_refusal() {
    let root = tempfile::tempdir().unwrap();
    let data = DataDir::new(root.path());
    let (wal, _) = Wal::open(data.log_dir(), log_opts()).unwrap();
    wal.append(b"one").unwrap();
    // The engine is running: the lock is held (by this process; walctl is another one).
    let (real, _, real_err) = run(root.path(), &["repair"]);
    let (dry, dry_out, dry_err) = run(root.path(), &["repair", "--dry-run"]);
    drop(wal);
    eprintln!("real: {real} {real_err}\ndry-run: {dry} {dry_out}{dry_err}");
    assert_eq!(real, 4, "{real_err}");
    assert_eq!(dry, real, "dry run: {dry_out}{dry_err}");
}

/// The log directory lost every segment (moved, volume not mounted) while snapshots remain:
/// recovery refuses (`LogMissing`), `repair` refuses (exit 3, "holds no log segment"),
/// `replay` refuses (exit 3), and so does `verify`: the runbook's checklist reads its exit 0
/// as "start the engine".
#[test]
fn verify_of_a_log_without_segments_under_snapshots_is_not_sound() {
    let root = tempfile::tempdir().unwrap();
    let mut e = open_engine(root.path());
    for i in 0..10 {
        e.commit(vec![put("k", i)]).unwrap();
    }
    e.checkpoint().unwrap();
    drop(e);
    for seg in segment_files(root.path()) {
        std::fs::rename(&seg, root.path().join(seg.file_name().unwrap())).unwrap();
    }
    let (rcode, rout, rerr) = run(root.path(), &["replay"]);
    let (pcode, _, perr) = run(root.path(), &["repair", "--dry-run"]);
    let (vcode, vout, verr) = run(root.path(), &["verify"]);
    eprintln!(
        "replay {rcode}: {rout}{rerr}\nrepair --dry-run {pcode}: {perr}\nverify {vcode}: {vout}{verr}"
    );
    assert_eq!(rcode, 3);
    assert_eq!(pcode, 3);
    assert_eq!(vcode, 3, "verify: {vout}");
    assert!(
        verr.contains("holds snapshots but no log segments"),
        "{verr}"
    );
}

/// A snapshot pruned by the running engine's checkpoint between the listing of the snapshot
/// directory and the open of the file is simply gone: read-only tools on a live directory do
/// not fail on it.
#[test]
fn a_snapshot_pruned_while_listing_is_left_out_not_an_error() {
    use wal_log::sim::{HookedVfs, OpKind};
    let root = tempfile::tempdir().unwrap();
    let data = DataDir::new(root.path());
    let (wal, _) = Wal::open(data.log_dir(), log_opts()).unwrap();
    let store = data.snapshots(Arc::new(StdVfs));
    for i in 1..=3u64 {
        wal.append(b"x").unwrap();
        store
            .write(&Counter { txs: i, bytes: i }, wal.log_id(), Lsn(i))
            .unwrap();
    }
    let pruned = data
        .snapshot_dir()
        .join(wal_replay::snapshot::snapshot_file_name(Lsn(2)));
    let target = pruned.clone();
    let vfs = HookedVfs::new(Arc::new(StdVfs), move |call| {
        if call.op == OpKind::Open && call.path == target && target.exists() {
            std::fs::remove_file(&target).unwrap();
        }
        Ok(())
    });
    let listing = data.snapshots(Arc::new(vfs)).list().unwrap();
    let fences: Vec<u64> = listing.snapshots.iter().map(|s| s.fence.0).collect();
    assert_eq!(fences, vec![3, 1]);
    assert!(!pruned.exists());
}

/// Recovery sets a snapshot ahead of the recovered log aside before the open appends
/// anything. The abort frame for a large transaction a torn tail cut off takes the LSN after
/// the log's end, here the snapshot's fence: a crash right after that write, with the
/// snapshot still in place, would have left it looking usable, holding the transaction the
/// log lost.
#[test]
fn a_snapshot_ahead_of_the_log_is_set_aside_before_the_log_is_written() {
    use std::sync::Mutex;
    use wal_log::sim::{HookedVfs, OpKind};
    let root = tempfile::tempdir().unwrap();
    let data = DataDir::new(root.path());
    let (wal, _) = Wal::open(data.log_dir(), log_opts()).unwrap();
    wal.append(b"first").unwrap();
    let mut s = wal.stream().unwrap();
    s.write(&vec![7u8; 5 << 20]).unwrap();
    assert_eq!(s.commit().unwrap(), Lsn(3));
    let state = Counter {
        txs: 2,
        bytes: 5 + (5 << 20),
    };
    let snap = data
        .snapshots(Arc::new(StdVfs))
        .write(&state, wal.log_id(), Lsn(3))
        .unwrap()
        .file
        .path;
    drop(wal);
    // A torn tail: the commit frame of the large transaction is cut short.
    let (seq, at) = wal_log::inspect::frames(Arc::new(StdVfs), &data.log_dir())
        .unwrap()
        .map(Result::unwrap)
        .find(|f| f.frame.kind == FrameKind::FragEnd)
        .map(|f| (f.seq, f.frame.offset))
        .unwrap();
    let seg = data.log_dir().join(wal_log::layout::segment_file_name(seq));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(at as u64 + 100)
        .unwrap();

    let snapshot_there_at_abort_write = Arc::new(Mutex::new(None::<bool>));
    let (seen, watched) = (snapshot_there_at_abort_write.clone(), snap.clone());
    let vfs = HookedVfs::new(Arc::new(StdVfs), move |call| {
        let mut seen = seen.lock().unwrap();
        // The first write into a segment other than the zeros over the 100 torn bytes moved
        // aside: the abort frame.
        if call.op == OpKind::Write
            && call.path.extension() == Some("wal".as_ref())
            && call.len != 100
            && seen.is_none()
        {
            *seen = Some(watched.exists());
        }
        Ok(())
    });
    let mut recovered = Counter::default();
    let opts = RecoverOptions::default().wal(log_opts().vfs(Arc::new(vfs)));
    let rec = wal_replay::recover(root.path(), &mut recovered, opts).unwrap();
    assert_eq!(recovered, Counter { txs: 1, bytes: 5 });
    assert_eq!(rec.report.skipped_unfinished, 1);
    let rejected = &rec.report.rejected_snapshots;
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0].ahead_of_log);
    assert!(rejected[0].set_aside.as_ref().is_some_and(|p| p.exists()));
    assert!(!snap.exists());
    assert_eq!(
        *snapshot_there_at_abort_write.lock().unwrap(),
        Some(false),
        "the log was written while the snapshot ahead of it was still in place"
    );
}

/// A sound log of 10 transactions; snapshots at fence 3 (usable) and 20 (ahead of the log).
fn ahead_fixture() -> (tempfile::TempDir, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let data = DataDir::new(root.path());
    let (wal, _) = Wal::open(data.log_dir(), log_opts()).unwrap();
    for _ in 0..10 {
        wal.append(b"tx").unwrap();
    }
    let store = data.snapshots(Arc::new(StdVfs));
    store
        .write(&Counter { txs: 3, bytes: 6 }, wal.log_id(), Lsn(3))
        .unwrap();
    let ahead = store
        .write(&Counter { txs: 20, bytes: 40 }, wal.log_id(), Lsn(20))
        .unwrap()
        .file
        .path;
    drop(wal);
    (root, ahead)
}

/// A point-in-time recovery sets aside a snapshot ahead of the log even though it is past
/// the target (the log will reuse its LSNs), and `walctl replay --to` says so first.
#[test]
fn replay_with_a_target_predicts_the_rename_recovery_does() {
    let (root, ahead) = ahead_fixture();
    let (code, dry) = run_json(root.path(), &["replay", "--to", "5"]);
    assert_eq!(code, 0, "{dry}");
    let mut c = Counter::default();
    let mut opts = RecoverOptions::default().wal(log_opts());
    opts.target = Some(Lsn(5));
    let rec = wal_replay::recover(root.path(), &mut c, opts).unwrap();
    assert_eq!(c, Counter { txs: 5, bytes: 10 });
    assert!(
        !ahead.exists(),
        "recovery renamed the snapshot ahead of the log"
    );
    assert!(
        rec.report
            .rejected_snapshots
            .iter()
            .any(|r| r.path == ahead && r.ahead_of_log && r.set_aside.is_some())
    );
    assert!(!rec.report.snapshots_after_target.contains(&ahead));
    let predicted = dry["rejected_snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["file"] == ahead.to_str().unwrap() && r["would_set_aside"] == true);
    assert!(
        predicted,
        "walctl replay --to 5 did not predict the rename: {dry}"
    );
}

/// When the log's segments vanish between recovery's plan and its open (moved, a volume
/// unmounted), the open creates a new log: the old log's snapshots are another log's then,
/// and stay where they are.
#[test]
fn a_log_created_by_the_open_does_not_set_aside_the_old_logs_snapshots() {
    use wal_log::sim::{HookedVfs, OpKind};
    let (root, ahead) = ahead_fixture();
    let data = DataDir::new(root.path());
    let usable = data
        .snapshot_dir()
        .join(wal_replay::snapshot::snapshot_file_name(Lsn(3)));
    let (log_dir, parked) = (data.log_dir(), root.path().join("parked"));
    std::fs::create_dir(&parked).unwrap();
    let vfs = HookedVfs::new(Arc::new(StdVfs), move |call| {
        if call.op == OpKind::Lock && call.path.starts_with(&log_dir) {
            for e in std::fs::read_dir(&log_dir).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "wal") {
                    std::fs::rename(&p, parked.join(p.file_name().unwrap())).unwrap();
                }
            }
        }
        Ok(())
    });
    let mut c = Counter::default();
    let opts = RecoverOptions::default().wal(log_opts().vfs(Arc::new(vfs)));
    drop(wal_replay::recover(root.path(), &mut c, opts));
    assert!(usable.exists() && ahead.exists());
}

/// A snapshot listed, then pruned by the running engine's checkpoint before it is verified, is
/// reported as gone (`SnapshotGone`, which `walctl snapshot verify` skips), not as an I/O
/// failure: `walctl snapshot verify` on a live directory exited 6 once in 30 runs.
#[test]
fn a_snapshot_pruned_between_listing_and_verifying_is_gone_not_an_io_error() {
    use wal_log::sim::{HookedVfs, OpKind};
    let root = tempfile::tempdir().unwrap();
    let data = DataDir::new(root.path());
    let (wal, _) = Wal::open(data.log_dir(), log_opts()).unwrap();
    let store = data.snapshots(Arc::new(StdVfs));
    wal.append(b"x").unwrap();
    store
        .write(&Counter { txs: 1, bytes: 1 }, wal.log_id(), Lsn(1))
        .unwrap();
    let listing = store.list().unwrap();
    let file = listing.snapshots[0].clone();
    let target = file.path.clone();
    let vfs = HookedVfs::new(Arc::new(StdVfs), move |call| {
        if call.op == OpKind::Open && call.path == target && target.exists() {
            std::fs::remove_file(&target).unwrap();
        }
        Ok(())
    });
    let err = data
        .snapshots(Arc::new(vfs))
        .verify(&file, Some(wal.log_id()))
        .unwrap_err();
    assert!(
        matches!(&err, wal_replay::ReplayError::SnapshotGone { path } if *path == file.path),
        "{err:?}"
    );
}

/// `walctl repair --dry-run` prints the data directory's plan, and the repair then does
/// exactly that: on a salvage that leaves the snapshot (fence 3) ahead of the log, the dry
/// run's snapshot to set aside, with the name it takes (`.1.corrupt`: an earlier set-aside
/// file holds the plain name), is the one the repair renamed, under that name; and the bytes
/// it would move aside are the ones moved.
#[test]
fn walctl_repair_does_what_its_dry_run_planned() {
    let d = salvage_fixture();
    let [snap] = &snapshot_files(d.path())[..] else {
        panic!("{:?}", snapshot_files(d.path()))
    };
    let taken = format!("{}.corrupt", snap.display());
    std::fs::write(&taken, b"an earlier set-aside file").unwrap();
    let mode = ["repair", "--mode", "salvage-prefix"];
    let (code, dry) = run_json(d.path(), &[&mode[..], &["--dry-run"]].concat());
    assert_eq!(code, 0, "{dry}");
    let (code, done) = run_json(d.path(), &mode);
    assert_eq!(code, 0, "{done}");

    let planned = dry["would_set_aside_snapshots"].as_array().unwrap();
    let did = done["snapshots_set_aside"].as_array().unwrap();
    let expected_to = format!("{}.1.corrupt", snap.display());
    assert_eq!(planned.len(), 1, "{dry}");
    assert_eq!(planned[0]["file"], snap.to_str().unwrap(), "{dry}");
    assert_eq!(planned[0]["fence"], 3, "{dry}");
    assert_eq!(planned[0]["to"], expected_to.as_str(), "{dry}");
    let pairs =
        |v: &[serde_json::Value], from: &str| -> Vec<(serde_json::Value, serde_json::Value)> {
            v.iter()
                .map(|s| (s[from].clone(), s["to"].clone()))
                .collect()
        };
    assert_eq!(pairs(planned, "file"), pairs(did, "from"), "{dry}\n{done}");
    assert!(
        !dry["would_move_aside"].as_array().unwrap().is_empty(),
        "{dry}"
    );
    assert_eq!(
        dry["would_move_aside"], done["moved_aside"],
        "{dry}\n{done}"
    );
    // On disk: renamed to that name, the earlier file untouched.
    assert!(!snap.exists());
    assert!(Path::new(&expected_to).exists());
    assert_eq!(std::fs::read(&taken).unwrap(), b"an earlier set-aside file");
}
