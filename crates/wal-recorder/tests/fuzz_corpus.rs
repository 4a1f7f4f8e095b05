//! Replays the checked-in corpus of the `recorder_ops` fuzz target on stable, with exactly the
//! checks the cargo-fuzz target runs (`tests/support/fuzz_check.rs` is shared with
//! `fuzz/fuzz_targets/recorder_ops.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/fuzz_check.rs"]
mod fuzz_check;

#[path = "../../../fuzz/replay.rs"]
mod replay;

use replay::replay;

#[test]
fn recorder_ops_corpus() {
    replay("corpus", "recorder_ops", fuzz_check::fuzz_recorder_ops);
}
