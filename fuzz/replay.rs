//! Reading the checked-in fuzz corpora back in stable tests: every crate's
//! `tests/fuzz_corpus.rs` includes this file (`#[path = "../../../fuzz/replay.rs"]`), so
//! each corpus is read and replayed by one piece of code.

use std::path::{Path, PathBuf};

/// The files of `fuzz/<dir>/<target>/` (`dir` is `corpus` or `regressions`), sorted by path.
/// Panics when the directory is missing or empty: a corpus that vanished must fail the test.
pub fn corpus(dir: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
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

/// Runs `check` (the fuzz target's own check) on every file of the corpus and fails naming
/// every file it panics on.
pub fn replay(dir: &str, target: &str, check: fn(&[u8])) {
    let failed: Vec<PathBuf> = corpus(dir, target)
        .into_iter()
        .filter(|(_, data)| std::panic::catch_unwind(|| check(data)).is_err())
        .map(|(path, _)| path)
        .collect();
    assert!(failed.is_empty(), "{target} fails on {failed:#?}");
}
