//! Issue 19's scenario through the real binaries: `kv load`, damage, `walctl repair --mode
//! skip-damaged`, `walctl verify`, `kv scan`. One flipped byte mid-segment, a deleted middle
//! segment, a zeroed 4 KiB block: every transaction that verifies is kept, the lost LSNs are
//! named, and the dry run predicted exactly what the repair kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::walctl_path;

fn kv(dir: &Path, args: &[&str]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_kv"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

fn walctl(dir: &Path, args: &[&str]) -> (i32, Value) {
    let o = Command::new(walctl_path())
        .arg("--dir")
        .arg(dir)
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    let v =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {out} / {err}"));
    (o.status.code().unwrap_or(-1), v)
}

fn segment(dir: &Path, seq: u64) -> PathBuf {
    dir.join("log").join(format!("{seq:020}.wal"))
}

/// The keys `kv scan` shows, by index, each checked against the value `kv load` wrote.
fn scan(dir: &Path, value_size: usize) -> Vec<u64> {
    let (code, out) = kv(dir, &["scan"]);
    assert_eq!(code, 0);
    out.lines()
        .map(|l| {
            let (k, v) = l.split_once('\t').unwrap();
            let i: u64 = k.strip_prefix('k').unwrap().parse().unwrap();
            assert!(
                v.starts_with(&format!("v{i}-")) && v.len() == value_size,
                "{l}"
            );
            i
        })
        .collect()
}

/// Dry run, repair, verify: returns the LSN ranges lost, after checking that the dry run
/// predicted the repair and the count `kv scan` shows.
fn repair_and_check(dir: &Path, value_size: usize) -> Vec<(u64, u64)> {
    let (code, _) = walctl(dir, &["verify"]);
    assert_eq!(code, 2, "the damage is seen");
    let (code, dry) = walctl(dir, &["repair", "--dry-run", "--mode", "skip-damaged"]);
    assert_eq!(code, 0, "{dry}");
    let predicted = dry["modes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mode"] == "skip-damaged")
        .unwrap()
        .clone();
    assert!(predicted["refused"].is_null(), "{dry}");
    let (code, done) = walctl(dir, &["repair", "--mode", "skip-damaged"]);
    assert_eq!(code, 0, "{done}");
    assert_eq!(done["lost_lsns"], predicted["lost_lsns"], "{done} / {dry}");
    // Damaged bytes were moved aside, or only missing segments were written anew.
    assert!(
        !done["moved_aside"].as_array().unwrap().is_empty()
            || !dry["would_rewrite"].as_array().unwrap().is_empty()
    );
    let (code, v) = walctl(dir, &["verify"]);
    assert_eq!(code, 0, "verify after the repair: {v}");
    let keys = scan(dir, value_size);
    assert_eq!(
        keys.len() as u64,
        predicted["keeps_transactions"].as_u64().unwrap(),
        "the dry run predicted what kv recovers"
    );
    serde_json::from_value(done["lost_lsns"].clone()).unwrap()
}

/// One flipped byte in the middle of the only segment: 1,999 of 2,000 keys kept; the lost
/// LSN is the damaged transaction's (key `k<LSN - 1>`: one writer, one key per LSN).
#[test]
fn a_flipped_byte_costs_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _) = kv(dir.path(), &["load", "--count", "2000"]);
    assert_eq!(code, 0);
    let seg = segment(dir.path(), 1);
    let mut b = std::fs::read(&seg).unwrap();
    let end = b.iter().rposition(|&x| x != 0).unwrap();
    b[end / 2] ^= 0x01;
    std::fs::write(&seg, &b).unwrap();
    let lost = repair_and_check(dir.path(), 32);
    assert_eq!(lost.len(), 1, "{lost:?}");
    let (lsn, last) = lost[0];
    assert_eq!(lsn, last, "one LSN");
    let keys = scan(dir.path(), 32);
    assert_eq!(keys.len(), 1999);
    let missing: Vec<u64> = (0..2000).filter(|i| !keys.contains(i)).collect();
    assert_eq!(missing, vec![lsn - 1]);
    // The lost LSN's place-holder is reported as what it is, not as an aborted transaction.
    let (code, replay) = walctl(dir.path(), &["replay"]);
    assert_eq!(code, 0, "{replay}");
    assert_eq!(replay["lost_lsn_placeholders"], 1, "{replay}");
    assert_eq!(replay["skipped_aborted"], 0, "{replay}");
    assert_eq!(replay["transactions_applied"], 1999, "{replay}");
    let o = Command::new(walctl_path())
        .arg("--dir")
        .arg(dir.path())
        .args([
            "dump",
            "--json",
            "--from",
            &lsn.to_string(),
            "--to",
            &lsn.to_string(),
        ])
        .output()
        .unwrap();
    let frame: Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(
        (frame["lsn"].as_u64(), &frame["placeholder"]),
        (Some(lsn), &Value::Bool(true))
    );
    // The damaged bytes were moved aside, not deleted.
    let aside: Vec<_> = std::fs::read_dir(dir.path().join("log"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
}

/// A log of four segments with 1 KiB values.
fn four_segments() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (code, _) = kv(
        dir.path(),
        &["load", "--count", "25000", "--value-size", "1000"],
    );
    assert_eq!(code, 0);
    assert!(segment(dir.path(), 4).exists(), "four segments");
    dir
}

/// A deleted middle segment: both sides kept, the lost range is exactly the segment's LSNs.
#[test]
fn a_deleted_middle_segment_costs_its_lsns_only() {
    let dir = four_segments();
    let (_, stat) = walctl(dir.path(), &["stat"]);
    let seg2 = &stat["segments"][1];
    let (first, last) = (
        seg2["first_lsn"].as_u64().unwrap(),
        seg2["last_lsn"].as_u64().unwrap(),
    );
    std::fs::remove_file(segment(dir.path(), 2)).unwrap();
    let lost = repair_and_check(dir.path(), 1000);
    // Its last LSN was its seal, written again: not a lost transaction.
    assert_eq!(lost, vec![(first, last - 1)]);
    let keys = scan(dir.path(), 1000);
    // Every key outside the lost range is there (one key per LSN; segment 1's seal took one).
    assert_eq!(keys.len() as u64, 25000 - (last - first));
    assert!((0..first - 2).all(|i| keys.contains(&i)));
    assert!((first - 2..last - 2).all(|i| !keys.contains(&i)));
}

/// Two consecutive segments deleted: the lost range runs from the first one's first LSN to
/// the LSN before the second one's seal, and holds the first one's seal besides the lost
/// transactions: the over-count of `k - 1` (here 1) that docs/operations.md states, the same
/// in the dry run, the repair and `dump --past-damage`.
#[test]
fn two_deleted_segments_over_count_by_one_seal() {
    let dir = four_segments();
    let (_, stat) = walctl(dir.path(), &["stat"]);
    let lsn = |i: usize, end: &str| stat["segments"][i][end].as_u64().unwrap();
    let (first, seal2, last) = (lsn(1, "first_lsn"), lsn(1, "last_lsn"), lsn(2, "last_lsn"));
    std::fs::remove_file(segment(dir.path(), 2)).unwrap();
    std::fs::remove_file(segment(dir.path(), 3)).unwrap();
    let (code, past) = {
        let o = Command::new(walctl_path())
            .arg("--dir")
            .arg(dir.path())
            .args(["dump", "--past-damage", "--json", "--payload-limit", "0"])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let end: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        (o.status.code(), end)
    };
    assert_eq!(code, Some(2));
    assert_eq!(past["lost_lsns"], serde_json::json!([[first, last - 1]]));
    let lost = repair_and_check(dir.path(), 1000);
    assert_eq!(lost, vec![(first, last - 1)]);
    // One key per LSN but the seals: segment 2's seal is inside the reported range.
    assert!((first..last).contains(&seal2));
    let reported = last - first;
    let keys = scan(dir.path(), 1000);
    let lost_keys = 25000 - keys.len() as u64;
    assert_eq!(reported, lost_keys + 1, "an over-count of exactly one seal");
}

/// The frames of segment `seq` as `(lsn, offset, end)`, from `walctl dump --json`; a frame
/// ends where the next one begins (the last one: at the segment's end of data).
fn frames_of(dir: &Path, seq: u64) -> Vec<(u64, u64, u64)> {
    let o = Command::new(walctl_path())
        .arg("--dir")
        .arg(dir)
        .args(["dump", "--json", "--payload-limit", "0"])
        .output()
        .unwrap();
    let mut frames: Vec<(u64, u64, u64)> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "frame" && v["segment"] == seq)
        .map(|v| {
            let at = v["offset"].as_u64().unwrap();
            (v["lsn"].as_u64().unwrap(), at, u64::MAX)
        })
        .collect();
    for i in 1..frames.len() {
        frames[i - 1].2 = frames[i].1;
    }
    frames
}

/// A zeroed 4 KiB block in the middle of segment 2: a handful of transactions lost, every
/// later one (two more segments) kept.
#[test]
fn a_zeroed_block_costs_only_the_frames_in_it() {
    let dir = four_segments();
    let seg = segment(dir.path(), 2);
    let at = 4096 * 1000;
    // The frames the block touches, found before it is zeroed: exactly their LSNs are lost.
    let hit: Vec<u64> = frames_of(dir.path(), 2)
        .into_iter()
        .filter(|&(_, from, to)| from < (at + 4096) as u64 && to > at as u64)
        .map(|(lsn, _, _)| lsn)
        .collect();
    assert!(
        hit.len() >= 4,
        "a 4 KiB block touches 4 or 5 frames of 1 KiB: {hit:?}"
    );
    let mut b = std::fs::read(&seg).unwrap();
    b[at..at + 4096].fill(0);
    std::fs::write(&seg, &b).unwrap();
    let lost = repair_and_check(dir.path(), 1000);
    assert_eq!(lost, vec![(hit[0], *hit.last().unwrap())]);
    let keys = scan(dir.path(), 1000);
    assert_eq!(keys.len() as u64, 25000 - hit.len() as u64);
}
