//! Arbitrary bytes as a sequence of `WalRecorder` calls on a `SimVfs` log, with injected I/O
//! faults and a power cut, then recovery from several crash images: no call may panic or
//! hang, the recovered transactions must be a contiguous run of the attempted commits in
//! order, and every acknowledged commit must survive. The checks live in the test support file
//! shared with `crates/wal-recorder/tests/fuzz_corpus.rs`, which replays
//! `corpus/recorder_ops/`.
#![no_main]

#[path = "../../crates/wal-recorder/tests/support/fuzz_check.rs"]
mod fuzz_check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_check::fuzz_recorder_ops(data));
