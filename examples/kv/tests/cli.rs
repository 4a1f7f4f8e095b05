//! The `kv` command line on a real directory: commands, and arguments that used to overflow
//! or panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn kv(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_kv"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn put_get_and_load_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(kv(dir.path(), &["put", "a", "1"]).0, 0);
    let (code, out, err) = kv(dir.path(), &["load", "--count", "20", "--threads", "3"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 20);
    let (code, out, _) = kv(dir.path(), &["get", "a"]);
    assert_eq!((code, out.trim()), (0, "1"));
    let (_, out, _) = kv(dir.path(), &["scan"]);
    assert_eq!(out.lines().count(), 21);
}

/// `--start` near the largest index: an error naming the arguments, not an overflow panic
/// (debug) or a silent run that writes nothing (release).
#[test]
fn load_past_the_largest_key_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = kv(
        dir.path(),
        &["load", "--count", "2", "--start", &u64::MAX.to_string()],
    );
    assert_ne!(code, 0);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("past the largest key"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The last keys below the limit still load, each once.
    let start = (u64::MAX - 4).to_string();
    let (code, out, err) = kv(
        dir.path(),
        &["load", "--count", "4", "--start", &start, "--threads", "3"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
}

#[test]
fn absurd_thread_counts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = kv(
        dir.path(),
        &["load", "--count", "1", "--threads", "1000000"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("at most 1024"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
