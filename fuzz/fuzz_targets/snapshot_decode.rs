//! Arbitrary bytes as a snapshot file: the header decoder, listing, `read_header`, `verify`
//! and `restore_into` of `wal_replay::SnapshotStore` must never panic or allocate from a
//! corrupt length, must accept exactly the valid files, and recovery must skip a damaged
//! snapshot and use a valid one. The checks live in the test support file shared with
//! `crates/wal-replay/tests/fuzz_corpus.rs`, which replays `corpus/snapshot_decode/`.
#![no_main]

#[path = "../../crates/wal-replay/tests/support/fuzz_check.rs"]
mod fuzz_check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_check::fuzz_snapshot_decode(data));
