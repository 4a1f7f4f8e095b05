//! The reference-model test of wal-raft: the same operation sequences played on wal-raft's
//! `LogStore` and on `openraft-memstore` 0.9.x, and their outputs compared line by line.
//!
//! - [`Op`]: one storage call (or a crash) as a JSON line;
//! - [`generate`]: a seeded sequence of calls that respects openraft's preconditions;
//! - [`play`]: runs a sequence on any openraft v2 log store and prints one JSON line per call.
//!
//! The two players are separate programs (`crates/wal-raft/examples/memstore_model.rs` and
//! `crates/wal-raft/memstore-model`) because openraft-memstore 0.9 implements only the v1
//! storage API, which openraft hides under the `storage-v2` feature wal-raft needs; this crate
//! depends on openraft alone so both builds can use it. `cargo xtask raft-model` drives them.
//! What must agree after a crash is in the docs of [`Op::Crash`].

mod generate;
mod op;
mod play;

pub use generate::{GenOptions, generate};
pub use op::{CrashKind, ModelConfig, Op, Request, Response};
pub use play::{PlayError, play};

/// `error` and its chain of causes on one line (`a: b: c`), for the players' exit messages.
#[must_use]
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_chain_names_every_cause() {
        let e = crate::PlayError::Read(std::io::Error::other("disk gone"));
        assert_eq!(super::error_chain(&e), "reading the operations: disk gone");
    }
}
