//! Replays the checked-in fuzz corpora on stable, with exactly the checks the cargo-fuzz
//! targets run (`tests/support/check.rs` is shared with `fuzz/fuzz_targets/`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/check.rs"]
mod check;

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz corpus {} is missing: {e}", dir.display()));
    let mut files: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "fuzz corpus {} is empty", dir.display());
    files
}

fn replay(target: &str, check: fn(&[u8])) {
    for (path, data) in corpus(target) {
        let r = std::panic::catch_unwind(|| check(&data));
        assert!(
            r.is_ok(),
            "{target} fails on corpus file {}",
            path.display()
        );
    }
}

#[test]
fn scan_segment_corpus() {
    replay("scan_segment", check::fuzz_scan_segment);
}

#[test]
fn decode_header_corpus() {
    replay("decode_header", check::fuzz_decode_header);
}

#[test]
fn scan_segment_corpus_reaches_every_ending() {
    // The seeds are meant to cover each way a scan can end; keep it that way.
    let mut seen = [false; 3];
    for (_, data) in corpus("scan_segment") {
        for o in check::check_segment(&data).into_iter().flatten() {
            seen[match o.end {
                wal_format::ScanEnd::Clean { .. } => 0,
                wal_format::ScanEnd::TornTail { .. } => 1,
                wal_format::ScanEnd::Corrupt { .. } => 2,
            }] = true;
        }
    }
    assert_eq!(
        seen, [true; 3],
        "seed corpus lacks a clean, torn or corrupt ending"
    );
}
