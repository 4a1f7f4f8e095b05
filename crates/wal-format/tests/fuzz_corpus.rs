//! Replays the checked-in fuzz corpora on stable, with exactly the checks the cargo-fuzz
//! targets run (`tests/support/check.rs` is shared with `fuzz/fuzz_targets/`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/check.rs"]
mod check;

#[path = "../../../fuzz/replay.rs"]
mod replay;

use replay::{corpus, replay};

#[test]
fn scan_segment_corpus() {
    replay("corpus", "scan_segment", check::fuzz_scan_segment);
}

#[test]
fn decode_header_corpus() {
    replay("corpus", "decode_header", check::fuzz_decode_header);
}

#[test]
fn scan_segment_corpus_reaches_every_ending() {
    // The seeds are meant to cover each way a scan can end; keep it that way.
    let mut seen = [false; 3];
    for (_, data) in corpus("corpus", "scan_segment") {
        for o in check::check_segment(&data).into_iter().flatten() {
            seen[match o.end {
                wal_format::scan::ScanEnd::Clean { .. } => 0,
                wal_format::scan::ScanEnd::TornTail { .. } => 1,
                wal_format::scan::ScanEnd::Corrupt { .. } => 2,
            }] = true;
        }
    }
    assert_eq!(
        seen, [true; 3],
        "seed corpus lacks a clean, torn or corrupt ending"
    );
}
