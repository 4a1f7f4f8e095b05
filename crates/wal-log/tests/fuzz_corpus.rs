//! Replays the checked-in corpus of the `open_dir` fuzz target on stable, with exactly the
//! checks the cargo-fuzz target runs (`tests/support/fuzz_check.rs` is shared with
//! `fuzz/fuzz_targets/open_dir.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/fuzz_check.rs"]
mod fuzz_check;

#[path = "../../../fuzz/replay.rs"]
mod replay;

use replay::{corpus, replay};

#[test]
fn open_dir_corpus() {
    replay("corpus", "open_dir", fuzz_check::fuzz_open_dir);
}

#[test]
fn open_dir_corpus_reaches_every_way_of_building_an_image() {
    // Raw files, a synthesized log and a real log's crash image must all be seeded.
    let mut seen = [false; 3];
    for (_, data) in corpus("corpus", "open_dir") {
        let how = data.first().copied().unwrap_or(0) % 4;
        seen[usize::from(how).saturating_sub(1)] = true;
    }
    assert_eq!(
        seen, [true; 3],
        "open_dir seeds lack a way of building an image"
    );
}

/// Reproducers of bugs the fuzzer found in `wal-log` (since fixed), replayed with the same
/// checks: regression tests for the fixes.
///
/// * `salvage_misnamed_first_segment_renames_aside`: segment 1's file holds a header naming
///   segment 3, segment 2 is empty; `SalvagePrefix` renames segment 2 to `….salvaged`, then
///   refuses the open with `NotAWal` ("no valid segment").
/// * `salvage_misnamed_second_segment_keeps_nothing`: segment 1 is sound and sealed, segment
///   2's file holds a header naming segment 5, segment 3 is empty; `SalvagePrefix` should keep
///   segment 1, but renames segment 3 aside and refuses the open with `NotAWal`.
/// * `repeated_abort_is_not_a_truncated_stream`: segment 2 aborts a stream twice (the image
///   holds one abort, salvage's recovery writes another); the first fix for fragmented
///   transactions whose beginning was truncated took the repeated abort for one, and the
///   log's retained range shrank on reopen (found by the fuzzer before that fix landed).
#[test]
fn open_dir_regressions() {
    replay("regressions", "open_dir", fuzz_check::fuzz_open_dir);
}
