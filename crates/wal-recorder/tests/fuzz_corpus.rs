//! Replays the checked-in corpus of the `recorder_ops` fuzz target on stable, with exactly the
//! checks the cargo-fuzz target runs (`tests/support/fuzz_check.rs` is shared with
//! `fuzz/fuzz_targets/recorder_ops.rs`).
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
fn recorder_ops_corpus() {
    replay("corpus", "recorder_ops", fuzz_check::fuzz_recorder_ops);
}
