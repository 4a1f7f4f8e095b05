//! Every walctl command and exit code, running the built binary as a process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

/// A data directory with two checkpoints, transactions after them, and one JSON payload.
/// A data directory with two checkpoints and a log after them. Segments are not recycled, so
/// the newest segment ends in zeros and `tear_tail` can append garbage right after its data.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let opts = wal_replay::EngineOptions {
        recover: wal_replay::RecoverOptions::default().wal(small_log().recycle_segments(0)),
        ..wal_replay::EngineOptions::default()
    };
    let (mut e, _) = wal_replay::Engine::open(dir.path(), Kv::default(), opts).unwrap();
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
    let wal = open_wal(&dir.path().join("log"), small_log());
    wal.append(br#"{"op":"put","key":"a"}"#).unwrap();
    drop(wal);
    dir
}

fn last_segment(dir: &Path) -> std::path::PathBuf {
    segment_files(dir).pop().unwrap()
}

/// Garbage right after the last frame of the newest segment (the clean close's watermark
/// included; its LSN's high bytes are zeros, so the last non-zero byte is not its end).
fn tear_tail(dir: &Path) -> u64 {
    let seg = last_segment(dir);
    let mut b = std::fs::read(&seg).unwrap();
    let mut scan =
        wal_format::scan::SegmentScanner::new(bytes::Bytes::from(b.clone()), false).unwrap();
    let end = scan.finish().offset();
    b.truncate(end);
    b.extend_from_slice(&[0x33; 25]);
    std::fs::write(&seg, &b).unwrap();
    end as u64
}

fn corrupt_middle(dir: &Path) -> std::path::PathBuf {
    let seg = segment_files(dir)[0].clone();
    let mut b = std::fs::read(&seg).unwrap();
    b[64 + 30] ^= 0xff; // inside the first frame of a sealed segment
    std::fs::write(&seg, &b).unwrap();
    seg
}

#[test]
fn usage_missing_and_foreign_directories_exit_3() {
    let o = walctl(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("Exit codes"), "{help}");
    assert_eq!(walctl(&["bogus"]).status.code(), Some(3));
    assert_eq!(walctl(&["verify"]).status.code(), Some(3), "no --dir");

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let (code, _, err) = run(&missing, &["verify"]);
    assert_eq!(code, 3);
    assert!(err.contains("nope"), "{err}");
    let (code, v) = run_json(&missing, &["stat"]);
    assert_eq!((code, v["exit_code"].as_u64()), (3, Some(3)));

    let (code, _, err) = run(dir.path(), &["stat"]);
    assert_eq!(code, 3);
    assert!(err.contains("not a data directory"), "{err}");
}

/// `lost+found` and hidden files are tolerated by everything; another stray file lets the
/// read-only commands work with a warning, and a writing open refuses it with that hint.
#[test]
fn stray_files_are_tolerated_or_warned_about() {
    let dir = fixture();
    let log = dir.path().join("log");
    std::fs::create_dir(log.join("lost+found")).unwrap();
    std::fs::write(log.join(".notes.swp"), b"vim").unwrap();
    let (code, _, err) = run(dir.path(), &["verify"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
    let (code, _, err) = run(dir.path(), &["repair"]);
    assert_eq!(code, 0, "lost+found and hidden files open: {err}");

    std::fs::write(log.join("notes.txt"), b"hi").unwrap();
    for cmd in [&["verify"][..], &["stat"], &["dump"], &["replay"]] {
        let (code, _, err) = run(dir.path(), cmd);
        assert_eq!(code, 0, "{cmd:?}: {err}");
        assert!(
            err.contains("warning") && err.contains("notes.txt"),
            "{cmd:?}: {err}"
        );
    }
    let (code, _, err) = run(dir.path(), &["repair"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("notes.txt") && err.contains("walctl verify"),
        "{err}"
    );
}

#[test]
fn stat_reports_segments_snapshots_and_log_end() {
    let dir = fixture();
    let (code, out, _) = run(dir.path(), &["stat"]);
    assert_eq!(code, 0);
    assert!(out.contains("log id") && out.contains("log end"), "{out}");
    let (code, v) = run_json(dir.path(), &["stat"]);
    assert_eq!(code, 0);
    assert_eq!(v["log_id"].as_str().unwrap().len(), 32);
    assert!(!v["segments"].as_array().unwrap().is_empty());
    assert_eq!(v["snapshots"].as_array().unwrap().len(), 2);
    assert!(v["log_end"].as_u64().unwrap() > 400);
    assert!(
        v["first_lsn"].as_u64().unwrap() > 1,
        "the log was truncated: {v}"
    );
    // stat reads headers and the newest segment only: it says how the log ends, and leaves
    // the verdict on every frame to verify.
    assert_eq!(v["tail"]["kind"], "clean", "{v}");
    assert_eq!(v["verified"], false);
    let segments = v["segments"].as_array().unwrap();
    assert!(
        segments
            .iter()
            .rev()
            .skip(1)
            .all(|s| s["examined"] == false && s["end"]["kind"] == "not_examined")
    );
    assert_eq!(segments.last().unwrap()["examined"], true);
    // Each older segment's range ends where the next one begins.
    for pair in segments.windows(2) {
        assert_eq!(
            pair[0]["last_lsn"].as_u64().unwrap() + 1,
            pair[1]["first_lsn"].as_u64().unwrap()
        );
    }
    let (code, out, _) = run(dir.path(), &["stat", "--segments"]);
    assert_eq!(code, 0);
    assert!(out.contains("header only"), "{out}");
}

#[test]
fn dump_prints_frames_and_transactions_in_range() {
    let dir = fixture();
    let (_, v) = run_json(dir.path(), &["stat"]);
    let end = v["log_end"].as_u64().unwrap();
    let from = (end - 5).to_string();
    let (code, out, _) = run(dir.path(), &["dump", "--from", &from, "--json"]);
    assert_eq!(code, 0);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["type"] != "frame" || l["lsn"].as_u64().unwrap() >= end - 5)
    );
    let txs: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "transaction")
        .collect();
    assert!(!txs.is_empty());
    let last = txs.last().unwrap();
    assert_eq!(last["records"][0]["json"]["op"], "put", "{last}");
    assert!(txs[0]["records"][0]["hex"].is_string(), "{}", txs[0]);
    assert_eq!(lines.last().unwrap()["type"], "end");

    let to = (end - 3).to_string();
    let (code, out, _) = run(dir.path(), &["dump", "--from", &from, "--to", &to]);
    assert_eq!(code, 0);
    assert!(out.contains("Tx"), "{out}");
    assert!(out.contains(&format!("{:>10} ", end - 3)));
    assert!(!out.contains(&format!("{:>10} ", end - 2)), "{out}");
}

#[test]
fn verify_exit_codes_and_offsets() {
    let dir = fixture();
    let (code, out, _) = run(dir.path(), &["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("sound"));

    let offset = tear_tail(dir.path());
    let (code, out, _) = run(dir.path(), &["verify"]);
    assert_eq!(code, 1, "{out}");
    let seg = last_segment(dir.path());
    assert!(
        out.contains(&seg.display().to_string()) && out.contains(&format!("byte offset {offset}")),
        "{out}"
    );
    let (code, v) = run_json(dir.path(), &["verify"]);
    assert_eq!(
        (code, v["verdict"]["kind"].as_str()),
        (1, Some("torn_tail"))
    );
    assert_eq!(v["verdict"]["offset"].as_u64(), Some(offset));

    let dir = fixture();
    let seg = corrupt_middle(dir.path());
    let (code, out, _) = run(dir.path(), &["verify"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("CORRUPT") && out.contains(&seg.display().to_string()),
        "{out}"
    );
}

#[test]
fn repair_moves_torn_bytes_aside_and_reports_it() {
    let dir = fixture();
    let offset = tear_tail(dir.path());
    let before = snapshot_tree(dir.path());
    let (code, v) = run_json(dir.path(), &["repair", "--dry-run"]);
    assert_eq!(code, 0);
    assert_eq!(v["would_move_aside"][0]["offset"].as_u64(), Some(offset));
    assert_eq!(v["would_move_aside"][0]["bytes"].as_u64(), Some(25));
    assert_eq!(snapshot_tree(dir.path()), before, "dry run changed nothing");

    let (code, out, _) = run(dir.path(), &["repair"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("moved 25 bytes at offset {offset}")),
        "{out}"
    );
    let aside = std::fs::read_dir(dir.path().join("log"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.contains(".torn-"))
        .unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("log").join(aside)).unwrap(),
        vec![0x33; 25]
    );
    assert_eq!(run(dir.path(), &["verify"]).0, 0);
    let (code, v) = run_json(dir.path(), &["repair"]);
    assert_eq!(code, 0);
    assert_eq!(v["moved_aside"].as_array().unwrap().len(), 0);
}

#[test]
fn repair_of_corruption_needs_salvage_mode() {
    let dir = fixture();
    corrupt_middle(dir.path());
    let (code, _, err) = run(dir.path(), &["repair"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("salvage"), "{err}");
    let (code, v) = run_json(
        dir.path(),
        &["repair", "--dry-run", "--mode", "salvage-prefix"],
    );
    assert_eq!(code, 0);
    let planned = v["would_move_aside"].as_array().unwrap().len();
    assert!(planned >= 2, "{v}");
    let (code, v) = run_json(dir.path(), &["repair", "--mode", "salvage-prefix"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["moved_aside"].as_array().unwrap().len(), planned, "{v}");
    assert_eq!(run(dir.path(), &["verify"]).0, 0);
}

#[test]
fn repair_refuses_while_the_log_is_locked() {
    let dir = fixture();
    tear_tail(dir.path());
    let (code, _, _) = run(dir.path(), &["verify"]);
    assert_eq!(code, 1);
    // Opening repairs the tail; then hold the lock while walctl tries.
    let wal = open_wal(&dir.path().join("log"), small_log());
    let (code, _, err) = run(dir.path(), &["repair"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("locked"), "{err}");
    drop(wal);
    assert_eq!(run(dir.path(), &["repair"]).0, 0);
}

#[test]
fn snapshot_ls_and_verify() {
    let dir = fixture();
    let (code, v) = run_json(dir.path(), &["snapshot", "ls"]);
    assert_eq!(code, 0);
    let snaps = v["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    assert!(snaps[0]["fence"].as_u64() > snaps[1]["fence"].as_u64());
    let (code, out, _) = run(dir.path(), &["snapshot", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("ok ").count(), 2, "{out}");

    let newest = snaps[0]["file"].as_str().unwrap();
    let mut b = std::fs::read(newest).unwrap();
    let n = b.len();
    b[n - 1] ^= 1;
    std::fs::write(newest, &b).unwrap();
    let (code, out, _) = run(dir.path(), &["snapshot", "verify"]);
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("CORRUPT") && out.contains("checksum"), "{out}");
    // Recovery would fall back to the older one: replay says so and succeeds.
    let (code, v) = run_json(dir.path(), &["replay"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["rejected_snapshots"].as_array().unwrap().len(), 1);
    assert_eq!(v["snapshot"]["fence"], snaps[1]["fence"]);
}

/// Restores [`Kv`]'s snapshots and counts the transactions after them raw, as `walctl replay`
/// does (the fixture's last payload is not an encoded event).
#[derive(Default)]
struct RawKv(Kv);

impl wal_replay::StateMachine for RawKv {
    type Event = ();
    fn apply(&mut self, _: wal_format::Lsn, _: Vec<()>) -> Result<(), wal_replay::ApplyError> {
        Err("raw state machine".into())
    }
    fn apply_transaction(
        &mut self,
        _: &wal_log::Transaction,
        _: &dyn wal_format::Decoder<()>,
    ) -> Result<(), wal_replay::ApplyError> {
        Ok(())
    }
    fn write_snapshot(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.0.write_snapshot(out)
    }
    fn restore(&mut self, input: &mut dyn std::io::Read) -> std::io::Result<()> {
        self.0.restore(input)
    }
}

#[test]
fn replay_reports_what_recovery_would_do() {
    let dir = fixture();
    let (code, v) = run_json(dir.path(), &["replay"]);
    assert_eq!(code, 0, "{v}");
    let fence = v["snapshot"]["fence"].as_u64().unwrap();
    assert_eq!(v["replay_from"].as_u64(), Some(fence + 1));
    // Real recovery agrees (on a copy, so the fixture stays untouched for the next check).
    let applied = loop {
        let mut c = RawKv::default();
        match wal_replay::recover(dir.path(), &mut c, recover_opts()) {
            Ok(r) => break r.report.applied,
            Err(wal_replay::ReplayError::Wal(wal_log::WalError::AlreadyOpen { .. })) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(v["transactions_applied"].as_u64(), Some(applied));
    let to = (fence + 10).to_string();
    let (code, v) = run_json(dir.path(), &["replay", "--to", &to]);
    assert_eq!(code, 0);
    assert_eq!(v["applied_range"][1].as_u64(), Some(fence + 10));
    let (code, out, _) = run(dir.path(), &["replay", "--to", &to]);
    assert_eq!(code, 0);
    assert!(
        out.contains("would restore snapshot") && out.contains("up to target"),
        "{out}"
    );

    tear_tail(dir.path());
    let (code, v) = run_json(dir.path(), &["replay"]);
    assert_eq!(code, 0);
    assert_eq!(v["bytes_moved_aside"].as_u64(), Some(25));
    let (code, _) = run_json(dir.path(), &["replay", "--mode", "strict"]);
    assert_eq!(code, 1);
    // A target before every snapshot on a truncated log cannot be recovered.
    let (code, v) = run_json(dir.path(), &["replay", "--to", "2"]);
    assert_eq!(code, 5, "{v}");
}

#[test]
fn read_only_commands_never_modify_the_directory() {
    let dir = fixture();
    tear_tail(dir.path());
    let std_dir = dir.path();
    let commands: &[&[&str]] = &[
        &["stat"],
        &["stat", "--json"],
        &["dump"],
        &["dump", "--json", "--from", "3", "--to", "100"],
        &["verify"],
        &["verify", "--json"],
        &["repair", "--dry-run"],
        &["repair", "--dry-run", "--mode", "salvage-prefix"],
        &["snapshot", "ls"],
        &["snapshot", "verify"],
        &["replay"],
        &["replay", "--to", "350", "--json"],
    ];
    std::fs::remove_file(std_dir.join("log/LOCK")).unwrap();
    let before = snapshot_tree(std_dir);
    // On the torn directory: the commands that reach the torn tail say so (exit 1); the rest,
    // and the dry runs, which plan to cut it, succeed.
    let torn_codes = [0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0];
    for (c, expected) in commands.iter().zip(torn_codes) {
        let (code, out, err) = run(std_dir, c);
        assert_eq!(code, expected, "{c:?} on a torn tail: {out} {err}");
        assert_eq!(
            snapshot_tree(std_dir),
            before,
            "{c:?} changed the directory"
        );
    }
    assert!(
        !std_dir.join("log/LOCK").exists(),
        "no lock file was created"
    );
    // And on a live directory: a log open (and locked) by this process.
    let dir = fixture();
    let wal = open_wal(&dir.path().join("log"), small_log());
    wal.append(b"live").unwrap();
    let before = snapshot_tree(dir.path());
    for c in commands {
        let (code, out, err) = run(dir.path(), c);
        // A dry run predicts the real repair, which refuses a log another process has open.
        let expected = if c[0] == "repair" { 4 } else { 0 };
        assert_eq!(code, expected, "{c:?} on a live directory: {out} {err}");
        assert_eq!(
            snapshot_tree(dir.path()),
            before,
            "{c:?} changed a live directory"
        );
    }
    drop(wal);
}

/// A gap, another log's segment, or a middle segment whose magic is gone (not a segment at
/// all) is refused by every recovery mode: the dry run says so with the same exit code as the
/// repair, plans nothing, and neither changes anything.
#[test]
fn repair_dry_run_predicts_the_refusal_of_a_gap_or_a_foreign_segment() {
    let gap = fixture();
    let segs = segment_files(gap.path());
    std::fs::remove_file(&segs[1]).unwrap();
    let foreign = fixture();
    let other = fixture();
    let segs = segment_files(foreign.path());
    std::fs::copy(&segment_files(other.path())[1], &segs[1]).unwrap();
    let no_magic = fixture();
    let segs = segment_files(no_magic.path());
    let mut bytes = std::fs::read(&segs[1]).unwrap();
    bytes[..8].fill(0);
    std::fs::write(&segs[1], bytes).unwrap();
    for (dir, what, want) in [
        (&gap, "missing", 2),
        (&foreign, "belongs to", 2),
        (&no_magic, "magic", 3),
    ] {
        let before = snapshot_tree(dir.path());
        for mode in ["torn-tail", "salvage-prefix"] {
            let (code, v) = run_json(dir.path(), &["repair", "--dry-run", "--mode", mode]);
            assert_eq!(code, want, "{mode}: {v}");
            assert_eq!(v["would_move_aside"].as_array().unwrap().len(), 0, "{v}");
            let note = v["note"].as_str().unwrap();
            assert!(note.contains("no repair mode"), "{note}");
            let (code, _, err) = run(dir.path(), &["repair", "--mode", mode]);
            assert_eq!(code, want, "{mode}: {err}");
            assert_eq!(
                snapshot_tree(dir.path()),
                before,
                "{mode}: something changed"
            );
        }
        let (_, v) = run_json(dir.path(), &["repair", "--dry-run"]);
        assert!(v["note"].as_str().unwrap().contains(what), "{v}");
    }
}

/// An operator's `walctl dump | head`: once the reader of its output goes away, walctl stops
/// writing, without a panic. `dump` stops scanning too (exit 0: nobody reads the rest);
/// the other commands keep their own code (here: a torn tail, 1), and so does a failure
/// reported into a closed pipe.
#[test]
fn a_closed_output_pipe_ends_the_output_not_the_verdict() {
    let dir = fixture();
    tear_tail(dir.path());
    let closed_stdout = |args: &[&str]| {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_walctl"))
            .arg("--dir")
            .arg(dir.path())
            .args(args)
            .stdout(std::process::Stdio::from(writer))
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    for (args, expected) in [
        (&["dump"][..], 0),
        (&["dump", "--json"][..], 0),
        (&["verify"][..], 1),
        (&["stat"][..], 0),
        (&["replay", "--to", "999999999"][..], 0),
    ] {
        let (code, err) = closed_stdout(args);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(code, expected, "{args:?}: {err}");
    }
    let missing = dir.path().join("nope");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_walctl"))
        .arg("--dir")
        .arg(&missing)
        .args(["verify", "--json"])
        .stdout({
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            std::process::Stdio::from(writer)
        })
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("walctl: data directory"));
}

/// A log/ that exists but cannot be examined (here a symlink loop, ELOOP; as root a
/// permission error cannot be staged) is an I/O failure naming it (exit 6), not "not a data
/// directory" (exit 3).
#[test]
fn an_unreadable_log_directory_is_an_io_failure_not_a_missing_one() {
    let root = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("log", root.path().join("log")).unwrap();
    let (code, out, err) = run(root.path(), &["verify"]);
    assert_eq!(code, 6, "{out}{err}");
    assert!(err.contains("log directory"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = run(empty.path(), &["verify"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no log/ subdirectory"), "{err}");
}

/// Output that cannot be written for any reason but a closed pipe (here `/dev/full`: ENOSPC)
/// is lost, so the command fails with exit 6 and says why on stderr.
#[test]
fn output_that_cannot_be_written_is_a_failure() {
    let dir = fixture();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_walctl"))
        .arg("--dir")
        .arg(dir.path())
        .arg("stat")
        .stdout(std::process::Stdio::from(full))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(6), "{err}");
    assert!(err.contains("walctl: writing the output"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
