//! The `kv` command line on a real directory: commands, and arguments that used to overflow
//! or panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

fn kv(dir: &Path, args: &[&str]) -> (i32, String, String) {
    support::run(&support::kv_path(), dir, args)
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

/// `--sync interval:MS` and `never`: `load` prints every key once, only after an fsync covers
/// it (under `never` each writer's sync at its end: at most one fsync per writer), and the
/// keys are there after a restart; a bad policy is refused before anything is opened.
#[test]
fn load_under_interval_and_never_prints_keys_once_synced() {
    for sync in ["interval:60000", "never"] {
        let dir = tempfile::tempdir().unwrap();
        let (code, out, err) = kv(
            dir.path(),
            &["--sync", sync, "load", "--count", "50", "--threads", "2"],
        );
        assert_eq!(code, 0, "{sync}: {err}");
        let mut keys: Vec<&str> = out.lines().collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 50, "{sync}: {out}");
        // Nothing synced during the load but each writer's sync at its end: the keys waited
        // for those.
        let fsyncs: u64 = err
            .split("; ")
            .find_map(|p| p.split_once(" fsync").map(|(n, _)| n))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{sync}: no fsync count in {err}"));
        assert!((1..=2).contains(&fsyncs), "{sync}: {err}");
        let (_, out, _) = kv(dir.path(), &["scan"]);
        assert_eq!(out.lines().count(), 50, "{sync}");
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = kv(dir.path(), &["--sync", "sometimes", "stat"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("expected always, interval:MS or never"),
        "{err}"
    );
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}
