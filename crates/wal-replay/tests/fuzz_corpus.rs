//! Replays the checked-in corpus of the `snapshot_decode` fuzz target on stable, with exactly the
//! checks the cargo-fuzz target runs (`tests/support/fuzz_check.rs` is shared with
//! `fuzz/fuzz_targets/snapshot_decode.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/fuzz_check.rs"]
mod fuzz_check;

#[path = "../../../fuzz/replay.rs"]
mod replay;

use replay::{corpus, replay};

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
