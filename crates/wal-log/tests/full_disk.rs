//! A real full disk, not an injected error: the log runs on a small tmpfs in a private mount
//! namespace (`unshare -Urm`, which needs neither root nor any setup), writes until the
//! kernel answers ENOSPC, and must then
//! - fail with an I/O error that says so, and poison itself (no later call succeeds);
//! - never hang a thread waiting for a group commit;
//! - after space is freed (the tmpfs is remounted larger), reopen with every acknowledged
//!   commit, in order, and nothing that was never appended.
//!
//! The test binary runs itself again inside the namespace (`WAL_FULL_DISK_ROOT` set), where
//! it can mount and remount tmpfs. Where no mount namespace can be made (neither `unshare
//! -Urm` nor, as root, `unshare -m`) the test fails: it never passes without having run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use wal_format::Lsn;
use wal_log::{Options, SyncPolicy, Wal, WalError};

const ROOT_VAR: &str = "WAL_FULL_DISK_ROOT";

#[test]
fn a_full_disk_loses_nothing_acknowledged() {
    if let Ok(root) = std::env::var(ROOT_VAR) {
        in_namespace(Path::new(&root));
        return;
    }
    let flags = namespace_flags();
    let root = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .arg(flags)
        .arg(exe)
        .args([
            "--exact",
            "a_full_disk_loses_nothing_acknowledged",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROOT_VAR, root.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(out.status.success(), "the run in the namespace failed");
    // It really ran the scenarios, rather than skipping.
    assert!(text.contains("scenarios done: 4"), "{text}");
}

/// The `unshare` flags that give this process a private mount namespace: a user namespace
/// too (`-Urm`, no privilege needed) or, as root where user namespaces are off, `-m`. A
/// machine with neither fails the test rather than letting it pass without running.
fn namespace_flags() -> &'static str {
    let mut tried = Vec::new();
    for flags in ["-Urm", "-m"] {
        match Command::new("unshare").args([flags, "true"]).output() {
            Ok(out) if out.status.success() => return flags,
            other => tried.push(format!("`unshare {flags} true`: {other:?}")),
        }
    }
    panic!(
        "a_full_disk_loses_nothing_acknowledged needs a private mount namespace (util-linux \
         `unshare`, with user namespaces or as root); none here: {}",
        tried.join("; ")
    );
}

/// Mounts a tmpfs of `size` at `dir` (replacing what is mounted there).
fn mount_tmpfs(dir: &Path, size: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let status = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "wal-full-disk",
        ])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs at {}", dir.display());
}

/// Frees space: the same tmpfs, larger (its files stay).
fn grow(dir: &Path) {
    let status = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "remount {}", dir.display());
}

fn is_enospc(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}

/// The first error an append sees on a full disk: the I/O error itself, naming ENOSPC.
fn assert_disk_full(e: &WalError) {
    match e {
        WalError::Io { source, .. } if is_enospc(source) => {}
        other => panic!("expected ENOSPC as an I/O error, got {other:?}"),
    }
}

fn record(writer: usize, i: usize) -> Vec<u8> {
    let mut r = vec![(writer * 31 + i) as u8; 1000];
    r[..8].copy_from_slice(&(i as u64).to_le_bytes());
    r[8] = writer as u8;
    r
}

/// Every transaction in the log, as (writer, index) of its records.
fn contents(wal: &Wal) -> Vec<Vec<(u8, u64)>> {
    wal.read_from(Lsn::ZERO)
        .unwrap()
        .map(|t| {
            let t = t.unwrap();
            t.records()
                .map(|r| {
                    let r = r.unwrap();
                    (r[8], u64::from_le_bytes(r[..8].try_into().unwrap()))
                })
                .collect()
        })
        .collect()
}

fn in_namespace(root: &Path) {
    let mut done = 0;
    for preallocate in [false, true] {
        one_writer(&root.join(format!("one-{preallocate}")), preallocate);
        done += 1;
    }
    many_writers(&root.join("many"));
    done += 1;
    open_on_a_full_disk(&root.join("open"));
    done += 1;
    println!("scenarios done: {done}");
}

/// One writer appending single records and, every tenth time, a 300 KB batch (written in
/// place from the caller's buffers) until the disk is full.
fn one_writer(dir: &Path, preallocate: bool) {
    mount_tmpfs(dir, "3m");
    let opts = Options::default()
        .segment_size(512 << 10)
        .preallocate(preallocate)
        .sync(SyncPolicy::Always);
    let (wal, _) = Wal::open(dir.join("log"), opts.clone()).unwrap();
    let mut acked: Vec<Vec<(u8, u64)>> = Vec::new();
    let mut failed: Option<Vec<(u8, u64)>> = None;
    for i in 0..100_000usize {
        let (result, tx) = if i % 10 == 9 {
            let batch: Vec<Vec<u8>> = (0..300).map(|k| record(0, i * 1000 + k)).collect();
            let tx = (0..300).map(|k| (0, (i * 1000 + k) as u64)).collect();
            (wal.append_batch(&batch), tx)
        } else {
            (
                wal.append(&record(0, i * 1000)),
                vec![(0, (i * 1000) as u64)],
            )
        };
        match result {
            Ok(_) => acked.push(tx),
            Err(e) => {
                assert_disk_full(&e);
                failed = Some(tx);
                break;
            }
        }
    }
    let failed = failed.expect("the disk never filled");
    assert!(
        acked.len() > 10,
        "{} commits before the disk filled",
        acked.len()
    );
    assert!(matches!(wal.append(b"x"), Err(WalError::Poisoned { .. })));
    assert!(matches!(wal.sync(), Err(WalError::Poisoned { .. })));
    let reason = wal.poisoned_reason().unwrap();
    assert!(reason.contains("No space left"), "{reason}");
    drop(wal);

    grow(dir);
    let (wal, report) = Wal::open(dir.join("log"), opts).unwrap();
    let got = contents(&wal);
    // Every acknowledged commit, in order; the one that failed may be there or not (it was
    // appended, never acknowledged), and nothing else.
    let mut with_failed = acked.clone();
    with_failed.push(failed);
    assert!(
        got == acked || got == with_failed,
        "preallocate {preallocate}: {} acknowledged, {} recovered, report {report:?}",
        acked.len(),
        got.len()
    );
    // The reopened log takes appends again.
    wal.append(&record(0, usize::MAX >> 8)).unwrap();
    println!(
        "one writer, preallocate {preallocate}: {} acknowledged before ENOSPC, {} recovered",
        acked.len(),
        got.len()
    );
}

/// Four writers in group commit when the disk fills: every one of them gets an error (none
/// hangs), and every acknowledged commit survives.
fn many_writers(dir: &Path) {
    mount_tmpfs(dir, "2m");
    let opts = Options::default()
        .segment_size(256 << 10)
        .preallocate(false)
        .sync(SyncPolicy::Always);
    let (wal, _) = Wal::open(dir.join("log"), opts.clone()).unwrap();
    let acked = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for w in 0..4usize {
            let (wal, acked) = (&wal, &acked);
            s.spawn(move || {
                for i in 0.. {
                    match wal.append(&record(w, i)) {
                        Ok(lsn) => acked.lock().unwrap().push((lsn, (w as u8, i as u64))),
                        Err(WalError::Poisoned { .. }) => return,
                        Err(e) => {
                            assert_disk_full(&e);
                            return;
                        }
                    }
                }
            });
        }
    });
    drop(wal);
    let mut acked = acked.into_inner().unwrap();
    acked.sort();
    grow(dir);
    let (wal, _) = Wal::open(dir.join("log"), opts).unwrap();
    let got: Vec<(u8, u64)> = contents(&wal).into_iter().flatten().collect();
    let acked: Vec<(u8, u64)> = acked.into_iter().map(|(_, r)| r).collect();
    assert!(acked.len() > 100, "{}", acked.len());
    // Acknowledged commits are a prefix of what is recovered (in LSN order); what follows
    // was appended by a writer whose call failed: at most one per writer.
    assert_eq!(got[..acked.len()], acked[..]);
    assert!(got.len() - acked.len() <= 4, "{:?}", &got[acked.len()..]);
    println!(
        "four writers: {} acknowledged before ENOSPC, {} recovered",
        acked.len(),
        got.len()
    );
}

/// Opening a log on a disk with no room left (the default options preallocate a 32 MiB
/// segment): a clear ENOSPC error and nothing left behind that stops the next open.
fn open_on_a_full_disk(dir: &Path) {
    mount_tmpfs(dir, "1m");
    match Wal::open(dir.join("log"), Options::default()) {
        Err(e) => assert_disk_full(&e),
        Ok(_) => panic!("a 32 MiB segment fitted on a 1 MiB disk"),
    }
    grow(dir);
    let (wal, report) = Wal::open(dir.join("log"), Options::default()).unwrap();
    assert!(report.moved_aside.is_empty(), "{report:?}");
    wal.append(b"after").unwrap();
    println!("open on a full disk: refused with ENOSPC, opened once space was freed");
}
