//! Arbitrary bytes as a segment: the header decoder, the scanner in both modes, the
//! multi-record iterator and the bincode codec must never panic, and every scan must report
//! a clean end, a torn tail or corruption. The checks live in the test support file shared
//! with `crates/wal-format/tests/fuzz_corpus.rs`, which replays `corpus/scan_segment/`.
#![no_main]

#[path = "../../crates/wal-format/tests/support/check.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::fuzz_scan_segment(data));
