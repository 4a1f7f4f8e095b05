//! What the kv tests share: running a binary on a data directory, and finding walctl.
#![allow(dead_code, clippy::unwrap_used)] // each test file uses part of it

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `bin --dir DIR ARGS...`: exit code, stdout, stderr.
pub fn run(bin: &Path, dir: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(bin)
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

/// The kv binary under test.
pub fn kv_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kv"))
}

/// walctl, next to kv in the target directory, brought up to date once per test process
/// (a run of this package alone does not build it, and one left from an earlier build would
/// test old code; cargo does nothing when it is fresh).
pub fn walctl_path() -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let path = kv_path().with_file_name("walctl");
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "wal-replay", "--bin", "walctl"])
            .status()
            .unwrap();
        assert!(status.success(), "building walctl failed");
    });
    assert!(path.exists(), "no walctl at {}", path.display());
    path
}
