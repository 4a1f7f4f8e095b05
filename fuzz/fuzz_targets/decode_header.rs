//! Arbitrary bytes as a segment header: decoding never panics, a decoded header re-encodes
//! to the same bytes, and a foreign file is reported as bad magic.
#![no_main]

#[path = "../../crates/wal-format/tests/support/check.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::fuzz_decode_header(data));
