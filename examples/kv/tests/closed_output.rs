//! `kv` with its output closed: an I/O error, never a panic (regression tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

/// Runs `kv` with its stdout connected to a pipe whose read end is already closed (as in
/// `kv --dir D checkpoint | head -0`, or a supervisor that went away).
fn kv_with_broken_stdout(dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = Command::new(env!("CARGO_BIN_EXE_kv"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A closed stdout is an I/O error: `kv` must report it (exit 2) rather than panic (exit 101).
/// `checkpoint` has already written its snapshot and truncated the log when it prints.
#[test]
fn a_closed_stdout_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new(env!("CARGO_BIN_EXE_kv"))
        .arg("--dir")
        .arg(dir.path())
        .args(["put", "a", "1"])
        .status()
        .unwrap();
    assert!(ok.success());
    let mut panics = Vec::new();
    for cmd in [&["stat"][..], &["get", "a"][..], &["checkpoint"][..]] {
        let (code, err) = kv_with_broken_stdout(dir.path(), cmd);
        if err.contains("panicked") || code == 101 {
            panics.push(format!("kv {cmd:?}: exit {code}"));
        } else {
            assert_eq!(code, 2, "kv {cmd:?}: {err}");
            assert!(err.contains("kv: error:"), "kv {cmd:?}: {err}");
        }
    }
    // The checkpoint did complete before the panic: a snapshot exists.
    let snaps = std::fs::read_dir(dir.path().join("snapshots")).map_or(0, |d| d.count());
    assert!(
        panics.is_empty(),
        "with a closed stdout these panicked instead of reporting an error: {panics:?} \
         (snapshots on disk: {snaps})"
    );
}
