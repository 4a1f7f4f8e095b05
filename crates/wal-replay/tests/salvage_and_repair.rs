//! Salvage and repair against the snapshots around them, and dry runs against the real thing:
//! regressions for four defects a review found (each of these tests failed before its fix).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// Several segments, two checkpoints, transactions after them; only engine commits.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut e = open_engine(dir.path());
    for i in 0..400u64 {
        e.commit(vec![put(
            &format!("key{:03}{}", i % 40, "v".repeat(100)),
            i,
        )])
        .unwrap();
        if i == 150 || i == 300 {
            e.checkpoint().unwrap();
        }
    }
    drop(e);
    dir
}

/// `walctl replay --mode salvage-prefix` ("report what recovery would do") on a log with a
/// missing middle segment, or a middle segment that is not a segment (no magic): recovery in
/// SalvagePrefix refuses both (Gap / NotAWal, refused in every mode), and so must the
/// read-only replay, rather than predict a recovery that moves bytes aside (it did).
#[test]
fn read_only_replay_refuses_what_recovery_refuses() {
    let gap = fixture();
    let segs = segment_files(gap.path());
    assert!(segs.len() >= 3, "{segs:?}");
    // Move (not delete) a middle segment out of the log directory.
    std::fs::rename(&segs[segs.len() - 2], gap.path().join("moved-away.wal.bak")).unwrap();

    let no_magic = fixture();
    let segs = segment_files(no_magic.path());
    let mut bytes = std::fs::read(&segs[segs.len() - 2]).unwrap();
    bytes[..8].fill(0);
    std::fs::write(&segs[segs.len() - 2], bytes).unwrap();

    let mut failures = Vec::new();
    for (name, dir) in [("gap", &gap), ("no magic", &no_magic)] {
        // What real recovery does in salvage mode.
        let mut state = Counter::default();
        let opts = recover_opts().wal(small_log().recovery(wal_log::RecoveryMode::SalvagePrefix));
        let before = snapshot_tree(dir.path());
        let real = wal_replay::recover(dir.path(), &mut state, opts);
        let real_err = real.as_ref().err().map(ToString::to_string);
        assert!(real.is_err(), "{name}: recovery is expected to refuse");
        drop(real);
        assert_eq!(
            snapshot_tree(dir.path()),
            before,
            "{name}: refused open changed files"
        );

        // What walctl says it would do.
        let (code, v) = run_json(dir.path(), &["replay", "--mode", "salvage-prefix"]);
        if code == 0 {
            failures.push(format!(
                "{name}: recovery fails with `{}`, but `walctl replay --mode salvage-prefix` exits 0 and predicts: would_move_aside={} log_end={} applied={}",
                real_err.unwrap_or_default(),
                v["would_move_aside"],
                v["log_end"],
                v["transactions_applied"],
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// `walctl repair` on a data directory whose `log/` exists but holds no segment (the
/// segments were moved away, or `log/` is an unmounted mount point): recovery refuses with
/// `LogMissing` because snapshots exist, and so must the repair and its dry run. (The repair
/// used to create a brand-new log with a fresh log id, after which recovery succeeded with an
/// empty state: every snapshot rejected as of another log.)
#[test]
fn repair_refuses_a_log_directory_without_segments() {
    let dir = fixture();
    let (expected, _) = wal_replay::Engine::open(dir.path(), Kv::default(), engine_opts()).unwrap();
    let expected_keys = expected.state().map.len();
    assert!(expected_keys > 0);
    drop(expected);

    // Move every segment out of log/ (nothing deleted).
    let away = dir.path().join("segments-elsewhere");
    std::fs::create_dir(&away).unwrap();
    for s in segment_files(dir.path()) {
        std::fs::rename(&s, away.join(s.file_name().unwrap())).unwrap();
    }

    // Before: recovery refuses.
    let before = wal_replay::Engine::open(dir.path(), Kv::default(), engine_opts());
    assert!(
        matches!(before, Err(wal_replay::ReplayError::LogMissing { .. })),
        "{:?}",
        before.err()
    );

    let (dry_code, dry) = run_json(dir.path(), &["repair", "--dry-run"]);
    let (code, real) = run_json(dir.path(), &["repair"]);
    let created = segment_files(dir.path());

    // After the "repair": recovery succeeds with nothing.
    let after = wal_replay::Engine::open(dir.path(), Kv::default(), engine_opts());
    let mut problems = Vec::new();
    if dry_code == 0 {
        problems.push(format!("dry run exit 0: {dry}"));
    }
    if code == 0 {
        problems.push(format!("repair exit 0, created {created:?}: {real}"));
    }
    match after {
        Ok((e, report)) => problems.push(format!(
            "recovery after repair succeeded with {} keys (had {expected_keys}); rejected snapshots: {:?}",
            e.state().map.len(),
            report.rejected_snapshots
        )),
        Err(e) => eprintln!("recovery after repair refused (good): {e}"),
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A snapshot that recovery rejects as "ahead of the log" after a salvage must never be chosen
/// later. It used to be left in place. The sequence:
///
/// 1. checkpoints at ~152 and ~304; corruption in the middle of the log;
/// 2. recovery in `SalvagePrefix` keeps the prefix up to ~257 and rejects snapshot 304
///    ("its fence 304 is ahead of the log") — correctly falls back to 152;
/// 3. the engine commits new, acknowledged transactions: they take LSNs 258, 259, ...
///    (the LSNs of the transactions that were salvaged away);
/// 4. the next (ordinary) recovery: the log now ends past 304, so snapshot 304 verifies and
///    was chosen. Its state holds the OLD transactions 258..=304 (moved aside by the salvage:
///    invented commits) and not the new acknowledged ones at 258..=304 (lost).
///
/// Now the salvage renames the snapshot aside (`*.snap.corrupt`) before the log takes commits.
#[test]
fn a_snapshot_ahead_of_the_log_is_set_aside_and_never_comes_back() {
    let dir = fixture();
    let snaps = snapshot_files(dir.path());
    let segs = segment_files(dir.path());
    eprintln!("snapshots {snaps:?}\nsegments {segs:?}");
    // Corrupt the first frame of the second retained segment (sealed, not the newest).
    let victim = segs[1].clone();
    let mut b = std::fs::read(&victim).unwrap();
    b[64 + 30] ^= 0xff;
    std::fs::write(&victim, &b).unwrap();

    let mut salvage = engine_opts();
    salvage.recover.wal = small_log().recovery(wal_log::RecoveryMode::SalvagePrefix);
    let (mut e, report) = wal_replay::Engine::open(dir.path(), Kv::default(), salvage).unwrap();
    eprintln!(
        "salvage: snapshot {:?}, rejected {:?}, log_end {}",
        report.snapshot, report.rejected_snapshots, report.log_end
    );
    assert!(
        !report.rejected_snapshots.is_empty(),
        "expected the newest snapshot to be ahead"
    );
    let rejected = &report.rejected_snapshots[0];
    assert!(rejected.ahead_of_log, "{rejected:?}");
    let aside = rejected.set_aside.as_ref().expect("set aside");
    assert!(
        aside.to_string_lossy().ends_with(".snap.corrupt"),
        "{aside:?}"
    );
    assert!(aside.exists() && !rejected.path.exists());
    // The plan named the rename the salvage did, and the record is that plan done.
    assert_eq!(report.plan.rejected_snapshots, report.rejected_snapshots);
    assert_eq!(report.plan.snapshot, report.snapshot);
    assert_eq!(report.plan.log_end, report.log_end);
    assert_eq!(report.plan.moved_aside, report.moved_aside);
    let first_new = e.wal().last_lsn().0 + 1;
    // New acknowledged commits (SyncPolicy::Always), one key each.
    let mut acked = Vec::new();
    for i in 0..150u64 {
        let lsn = e.commit(vec![put(&format!("new{i:03}"), i)]).unwrap();
        acked.push((format!("new{i:03}"), lsn.0));
    }
    let model = e.state().clone();
    drop(e);

    let (e, report) = wal_replay::Engine::open(dir.path(), Kv::default(), engine_opts()).unwrap();
    eprintln!(
        "second recovery: snapshot {:?}, replay_from {}",
        report.snapshot, report.replay_from
    );
    let missing: Vec<_> = acked
        .iter()
        .filter(|(k, _)| !e.state().map.contains_key(k))
        .collect();
    let invented: Vec<_> = e
        .state()
        .lsns
        .iter()
        .filter(|l| !model.lsns.contains(l))
        .count()
        .to_string()
        .into_bytes();
    assert!(
        missing.is_empty() && e.state() == &model,
        "new commits began at LSN {first_new}; {} acknowledged commits missing after recovery (first {:?}); state differs from the model: {}; invented lsn entries: {}",
        missing.len(),
        missing.first(),
        e.state() != &model,
        String::from_utf8_lossy(&invented)
    );
}

/// `walctl replay --mode salvage-prefix` / `replay_read_only`, for a torn tail in a recycled
/// segment, predicts what recovery in SalvagePrefix moves aside: everything up to the last
/// non-zero byte, not only the torn frame (which it used to predict).
#[test]
fn read_only_replay_predicts_the_bytes_salvage_moves_aside() {
    fn record(i: u32) -> Vec<u8> {
        let mut r = i.to_le_bytes().to_vec();
        r.resize(300 + (i as usize * 7) % 500, (i % 251) as u8);
        r
    }
    let root = tempfile::tempdir().unwrap();
    let log = root.path().join("log");
    let o = wal_log::Options::default().segment_size(64 << 10);
    let (wal, _) = wal_log::Wal::open(&log, o.clone()).unwrap();
    let lsns: Vec<_> = (0..600).map(|i| wal.append(&record(i)).unwrap()).collect();
    wal_replay::snapshot::SnapshotStore::new(
        std::sync::Arc::new(wal_log::StdVfs),
        root.path().join("snapshots"),
    )
    .write(&Counter::default(), wal.log_id(), lsns[500])
    .unwrap();
    wal.truncate_prefix(lsns[500]).unwrap();
    let mut i = 600;
    while wal.stats().recycled == 0 {
        wal.append(&record(i)).unwrap();
        i += 1;
    }
    for j in i..i + 20 {
        wal.append(&record(j)).unwrap();
    }
    let seg = wal.segments().last().unwrap().clone();
    drop(wal);
    let path = log.join(wal_log::layout::segment_file_name(seg.seq));
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    use std::os::unix::fs::FileExt;
    let mut torn = vec![0xEE; 120];
    torn[4..8].copy_from_slice(&100u32.to_le_bytes());
    torn[8] = 1;
    torn[9..12].fill(0);
    file.write_all_at(&torn, seg.bytes).unwrap();
    drop(file);

    let salvage = recover_opts().wal(o.clone().recovery(wal_log::RecoveryMode::SalvagePrefix));
    let predicted = wal_replay::inspect::replay_read_only(
        root.path(),
        &mut Counter::default(),
        salvage.clone(),
    )
    .unwrap();
    let (code, v) = run_json(root.path(), &["replay", "--mode", "salvage-prefix"]);
    let (dry_code, dry) = run_json(
        root.path(),
        &["repair", "--dry-run", "--mode", "salvage-prefix"],
    );
    let real = wal_replay::recover(root.path(), &mut Counter::default(), salvage).unwrap();
    let real_bytes: u64 = real.report.moved_aside.iter().map(|a| a.bytes).sum();
    assert_eq!(
        predicted.bytes_moved_aside,
        real_bytes,
        "replay_read_only predicted {:?}\nrecover moved {:?}\nwalctl replay (exit {code}) would_move_aside {}\nwalctl repair --dry-run (exit {dry_code}) would_move_aside {}",
        predicted.moved_aside,
        real.report.moved_aside,
        v["would_move_aside"],
        dry["would_move_aside"]
    );
}
