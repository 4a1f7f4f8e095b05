//! Replays the checked-in corpus of the `snapshot_decode` fuzz target on stable, with exactly the
//! checks the cargo-fuzz target runs (`tests/support/fuzz_check.rs` is shared with
//! `fuzz/fuzz_targets/snapshot_decode.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/fuzz_check.rs"]
mod fuzz_check;

use std::path::{Path, PathBuf};

fn corpus(dir: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(dir)
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

fn replay(dir: &str, target: &str, check: fn(&[u8])) {
    let failed: Vec<PathBuf> = corpus(dir, target)
        .into_iter()
        .filter(|(_, data)| std::panic::catch_unwind(|| check(data)).is_err())
        .map(|(path, _)| path)
        .collect();
    assert!(failed.is_empty(), "{target} fails on {failed:#?}");
}

#[test]
fn snapshot_decode_corpus() {
    replay(
        "corpus",
        "snapshot_decode",
        fuzz_check::fuzz_snapshot_decode,
    );
}

#[test]
fn snapshot_decode_corpus_has_valid_and_damaged_snapshots() {
    // Seeds that verify as they are, and seeds that do not, so both paths start covered.
    let (mut valid, mut damaged) = (0, 0);
    for (_, data) in corpus("corpus", "snapshot_decode") {
        if fuzz_check::check_file(&data) {
            valid += 1;
        } else {
            damaged += 1;
        }
    }
    assert!(
        valid > 0 && damaged > 0,
        "{valid} valid, {damaged} damaged seeds"
    );
}
