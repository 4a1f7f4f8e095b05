//! Arbitrary bytes as a log directory on `SimVfs` (raw files, a synthesized log, or a real
//! log's crash image, then mutated): `inspect`, `frames` and `Wal::open` in every recovery
//! mode must never panic, hang or over-allocate, must agree with each other, and whatever
//! opens must read, append and reopen. The checks live in the test support file shared with
//! `crates/wal-log/tests/fuzz_corpus.rs`, which replays `corpus/open_dir/`.
#![no_main]

#[path = "../../crates/wal-log/tests/support/fuzz_check.rs"]
mod fuzz_check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_check::fuzz_open_dir(data));
