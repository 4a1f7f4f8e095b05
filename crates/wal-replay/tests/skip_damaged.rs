//! Reading (and repairing) past damage through the walctl binary: one flipped byte in the
//! middle of a segment of 2,000 single-key transactions, a deleted middle segment, a zeroed
//! block. Issue 19's scenario.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// 2,000 transactions of one key each, in segments of `segment_size` bytes.
fn load(segment_size: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let opts = wal_replay::EngineOptions {
        recover: wal_replay::RecoverOptions::default().wal(
            wal_log::Options::default()
                .segment_size(segment_size)
                .preallocate(false)
                .recycle_segments(0),
        ),
        ..wal_replay::EngineOptions::default()
    };
    let (mut e, _) = wal_replay::Engine::open(dir.path(), Kv::default(), opts).unwrap();
    for i in 0..2000u64 {
        e.commit(vec![put(&format!("k{i}"), i)]).unwrap();
    }
    drop(e);
    dir
}

/// Flips one byte in the middle of `seg`'s data; returns its offset.
fn flip_middle(seg: &Path) -> usize {
    let mut b = std::fs::read(seg).unwrap();
    let end = b.iter().rposition(|&x| x != 0).unwrap();
    let at = end / 2;
    b[at] ^= 0xff;
    std::fs::write(seg, &b).unwrap();
    at
}

/// The JSON lines of a `--json` dump.
fn dump_json(dir: &Path, extra: &[&str]) -> (i32, Vec<Value>) {
    let mut args = vec!["dump", "--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = run(dir, &args);
    let lines = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l} / {err}")))
        .collect();
    (code, lines)
}

fn end_of(lines: &[Value]) -> &Value {
    let end = lines.last().unwrap();
    assert_eq!(end["type"], "past_damage_end", "{end}");
    end
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    segment_files(dir)
}

#[test]
fn dump_past_damage_shows_every_transaction_that_verifies() {
    let dir = load(8 << 20);
    let seg = segments(dir.path()).remove(0);
    let at = flip_middle(&seg) as u64;
    let (code, _, _) = run(dir.path(), &["verify"]);
    assert_eq!(code, 2);
    // The plain dump stops at the damage; --past-damage goes on.
    let (code, lines) = dump_json(dir.path(), &["--past-damage"]);
    assert_eq!(code, 2);
    let end = end_of(&lines);
    assert_eq!(end["transactions"], 1999, "{end}");
    let lost = end["lost_lsns"].as_array().unwrap();
    assert_eq!(lost.len(), 1, "{end}");
    assert_eq!(lost[0][0], lost[0][1], "one LSN lost: {end}");
    let damaged: Vec<&Value> = lines.iter().filter(|l| l["type"] == "damaged").collect();
    assert_eq!(damaged.len(), 1);
    let (from, to) = (
        damaged[0]["from"].as_u64().unwrap(),
        damaged[0]["to"].as_u64().unwrap(),
    );
    assert!(from <= at && at < to, "{from}..{to} holds {at}");
    // The same from the file alone.
    let (code, file_lines) = dump_json(dir.path(), &["--file", seg.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_eq!(end_of(&file_lines), end);
    // Text: the damaged range and the lost LSN.
    let (_, out, _) = run(dir.path(), &["dump", "--past-damage"]);
    assert!(
        out.contains("DAMAGED") && out.contains("LOST       LSN"),
        "{out}"
    );
}
