//! Commands that only report change nothing in the data directory: `kv stat`, and walctl's
//! read-only commands, on a directory an open would change (a snapshot, a log with its
//! preallocated next segment, as `kv load` leaves it). Without a terminal they draw no
//! progress bar: stderr stays empty.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod support;

use support::{kv_path as kv, run, walctl_path as walctl};

/// Every file under `root` (path relative to it) with its bytes; directories by name.
fn contents(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut all = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if path.is_dir() {
                all.insert(rel, None);
                todo.push(path);
            } else {
                all.insert(rel, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    all
}

/// Names what differs between two listings (files added, removed, or with other bytes).
fn differences(
    before: &BTreeMap<PathBuf, Option<Vec<u8>>>,
    after: &BTreeMap<PathBuf, Option<Vec<u8>>>,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for (path, bytes) in before {
        match after.get(path) {
            None => diffs.push(format!("{} removed", path.display())),
            Some(b) if b != bytes => diffs.push(format!(
                "{} changed ({} bytes before, {} after)",
                path.display(),
                bytes.as_ref().map_or(0, Vec::len),
                b.as_ref().map_or(0, Vec::len)
            )),
            Some(_) => {}
        }
    }
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        diffs.push(format!("{} created", path.display()));
    }
    diffs
}

#[test]
fn reporting_commands_change_no_byte_of_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, _, err) = run(&kv(), d, &["load", "--count", "1500"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&kv(), d, &["checkpoint"]);
    assert_eq!((code, err.as_str()), (0, ""));
    let (code, _, err) = run(&kv(), d, &["load", "--count", "500", "--start", "1500"]);
    assert_eq!(code, 0, "{err}");
    let before = contents(d);
    // The state an open would change: the preallocated next segment is there.
    assert!(
        before.keys().any(|p| p.ends_with("prealloc.tmp")),
        "{:?}",
        before.keys().collect::<Vec<_>>()
    );

    let (code, out, err) = run(&kv(), d, &["stat"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(out.lines().any(|l| l == "keys=2000"), "{out}");
    assert!(out.lines().any(|l| l == "applied=500"), "{out}");
    assert_eq!(
        differences(&before, &contents(d)),
        Vec::<String>::new(),
        "kv stat"
    );

    let walctl = walctl();
    for args in [
        &["stat"][..],
        &["stat", "--segments"],
        &["verify"],
        &["dump"],
        &["dump", "--past-damage"],
        &["replay"],
        &["snapshot", "ls"],
        &["snapshot", "verify"],
        &["repair", "--dry-run", "--mode", "skip-damaged"],
    ] {
        let (code, _, err) = run(&walctl, d, args);
        assert_eq!((code, err.as_str()), (0, ""), "walctl {args:?}");
        assert_eq!(
            differences(&before, &contents(d)),
            Vec::<String>::new(),
            "walctl {args:?}"
        );
    }

    // An open does change it (so the test above would have seen a change): `kv get`
    // recovers under the lock and removes the preallocated segment.
    let (code, out, _) = run(&kv(), d, &["get", "k1999"]);
    assert_eq!((code, out.len() > 1), (0, true));
    assert_ne!(differences(&before, &contents(d)), Vec::<String>::new());
}
