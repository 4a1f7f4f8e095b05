//! The durability the storage suite does not check (it never reopens a store): a power cut at
//! every I/O operation of a purge on `SimVfs`, a real reopen on disk, a real crash (SIGKILL
//! of a child process appending), and bad input (another kind of log, an unknown record, an
//! entry that does not decode): typed errors, nothing removed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    Cfg, append_durable, block, durable_copy, entry, id, open_log, try_open_log, wal_opts,
};
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::{LogId, Vote};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use wal_log::sim::{CrashImage, DataLoss, DirLoss, SimVfs};
use wal_log::{StdVfs, Wal, WalError};
use wal_raft::{LogStore, LogStoreOptions, RAFT_PAYLOAD_SCHEMA, RaftStoreError};

/// Every file of a simulated disk with its bytes.
fn disk(vfs: &SimVfs) -> Vec<(PathBuf, Vec<u8>)> {
    vfs.files()
        .into_iter()
        .map(|(p, _)| {
            let bytes = vfs.read_file(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// The store's entries must run without a hole from just after the purged id (or the first
/// entry) to `last`, each the one written.
async fn check_no_hole(store: &mut LogStore<Cfg>, last: u64) -> Option<LogId<u64>> {
    let state = store.get_log_state().await.unwrap();
    let entries = store.try_get_log_entries(..).await.unwrap();
    let first = state.last_purged_log_id.map_or(0, |p| p.index + 1);
    let got: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
    assert_eq!(
        got,
        (first..=last).collect::<Vec<_>>(),
        "no hole, nothing lost"
    );
    for e in &entries {
        assert_eq!(*e, entry(e.log_id));
    }
    state.last_purged_log_id
}

const DIR: &str = "/raft";

/// A log with a vote, 300 entries over several segments and a committed id, all durable.
fn base() -> SimVfs {
    let vfs = SimVfs::new();
    let store = open_log(Path::new(DIR), Arc::new(vfs.clone()));
    let mut s = store;
    block(async {
        s.save_vote(&Vote::new(3, 0)).await.unwrap();
        for chunk in 0..30 {
            append_durable(&s, (chunk * 10..chunk * 10 + 10).map(|i| id(3, i)));
        }
        s.save_committed(Some(id(3, 250))).await.unwrap();
        s.wal().sync().unwrap();
    });
    drop(s);
    vfs
}

/// The power is cut after every I/O operation of a purge (state record, its fsync, the
/// segment removals and their directory fsyncs), with unsynced directory changes lost or
/// kept: the reopened store always has the vote and committed id, a purged id that is either
/// none or the purge's, and every entry after it, without a hole.
#[test]
fn a_power_cut_anywhere_in_a_purge_keeps_vote_purged_id_and_no_hole() {
    let base = base();
    let copy = || durable_copy(&base);
    // Count the purge's operations once.
    let vfs = copy();
    let mut store = open_log(Path::new(DIR), Arc::new(vfs.clone()));
    let segments_before = store.wal().segments().len();
    let before = vfs.mutating_ops();
    block(store.purge(id(3, 200))).unwrap();
    let ops = vfs.mutating_ops() - before;
    assert!(
        store.wal().segments().len() < segments_before,
        "the purge removed segments"
    );
    drop(store);
    let mut cases = 0;
    for k in 0..=ops {
        for dirs in [DirLoss::UnsyncedLost, DirLoss::AllKept] {
            let vfs = copy();
            let mut store = open_log(Path::new(DIR), Arc::new(vfs.clone()));
            vfs.power_off_after(k);
            let purged = block(store.purge(id(3, 200))).is_ok();
            drop(store);
            let image = vfs.crash(&CrashImage {
                data: DataLoss::DurableOnly,
                dirs,
            });
            let mut store = open_log(Path::new(DIR), Arc::new(image));
            block(async {
                assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(3, 0)));
                assert_eq!(store.read_committed().await.unwrap(), Some(id(3, 250)));
                let p = check_no_hole(&mut store, 299).await;
                assert!(p.is_none() || p == Some(id(3, 200)), "purged {p:?}");
                if purged {
                    assert_eq!(p, Some(id(3, 200)), "a purge that returned is durable");
                }
            });
            cases += 1;
        }
    }
    eprintln!("{ops} I/O operations in the purge, {cases} crash images checked");
    assert!(ops > 3 && cases == 2 * (ops + 1));
}

/// On a real disk: a vote, entries over several segments, a truncation and entries written
/// over it, a committed id and a purge; after a reopen everything durable is there, the
/// truncated entries never come back, and the purge removed segments.
#[test]
fn a_real_reopen_serves_what_was_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let mut store = open_log(&path, Arc::new(StdVfs));
    block(async {
        store.save_vote(&Vote::new(1, 0)).await.unwrap();
        for chunk in 0..50 {
            append_durable(&store, (chunk * 20..chunk * 20 + 20).map(|i| id(1, i)));
        }
        store.truncate(id(1, 900)).await.unwrap();
        append_durable(&store, (900..950).map(|i| id(2, i)));
        store.save_vote(&Vote::new_committed(2, 0)).await.unwrap();
        store.save_committed(Some(id(2, 940))).await.unwrap();
        let segments_before = store.wal().segments().len();
        store.purge(id(1, 600)).await.unwrap();
        assert!(store.wal().segments().len() < segments_before);
    });
    drop(store);
    let mut store = open_log(&path, Arc::new(StdVfs));
    block(async {
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(id(1, 600)));
        assert_eq!(state.last_log_id, Some(id(2, 949)));
        assert_eq!(
            store.read_vote().await.unwrap(),
            Some(Vote::new_committed(2, 0))
        );
        assert_eq!(store.read_committed().await.unwrap(), Some(id(2, 940)));
        let entries = store.try_get_log_entries(601..).await.unwrap();
        let want: Vec<_> = (601..900)
            .map(|i| id(1, i))
            .chain((900..950).map(|i| id(2, i)))
            .collect();
        assert_eq!(entries.iter().map(|e| e.log_id).collect::<Vec<_>>(), want);
        assert!(entries.iter().all(|e| *e == entry(e.log_id)));
    });
}

/// The child of [`a_sigkill_loses_no_acknowledged_entry`]: appends one entry per call to the
/// store in `WAL_RAFT_CHILD_DIR`, printing each index once its callback fired, until killed.
/// Without the variable it does nothing.
#[test]
fn sigkill_child() {
    let Some(dir) = std::env::var_os("WAL_RAFT_CHILD_DIR") else {
        return;
    };
    let store = open_log(Path::new(&dir), Arc::new(StdVfs));
    for i in 0..100_000 {
        store
            .append_with([entry(id(1, i))], move |r| {
                if r.is_ok() {
                    println!("durable {i}");
                }
            })
            .unwrap();
    }
    // Killed long before this.
    std::thread::park();
}

/// A real crash: a child process appends, printing every entry whose callback fired; it is
/// killed with SIGKILL mid-stream. Every printed entry is in the reopened store, in order,
/// without a hole.
#[test]
fn a_sigkill_loses_no_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("WAL_RAFT_CHILD_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut acked = 0;
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(i) = line.strip_prefix("durable ") {
            acked = acked.max(i.parse::<u64>().unwrap() + 1);
            if acked >= 2_000 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(acked >= 2_000, "the child stopped early");
    let mut store = open_log(dir.path(), Arc::new(StdVfs));
    block(async {
        let last = store.get_log_state().await.unwrap().last_log_id.unwrap();
        assert!(
            last.index + 1 >= acked,
            "entry {} acknowledged, log ends at {last}",
            acked - 1
        );
        check_no_hole(&mut store, last.index).await;
    });
}

/// A log of another kind (a plain wal-log log) is refused with a typed error; nothing on
/// disk changes.
#[test]
fn another_kind_of_log_is_refused_untouched() {
    let vfs = SimVfs::new();
    let (wal, _) = Wal::open(DIR, wal_opts(Arc::new(vfs.clone()))).unwrap();
    wal.append(b"not a raft record").unwrap();
    drop(wal);
    let before = disk(&vfs);
    let err = try_open_log(Path::new(DIR), Arc::new(vfs.clone())).unwrap_err();
    assert!(
        matches!(
            err,
            RaftStoreError::Wal(WalError::PayloadSchema { found: 0, .. })
        ),
        "{err}"
    );
    assert_eq!(disk(&vfs), before);
}

/// Writes `payload` as one record of the Raft log in `vfs`, bypassing the store.
fn write_raw_record(vfs: &SimVfs, payload: &[u8]) {
    let opts = wal_opts(Arc::new(vfs.clone())).payload_schema(RAFT_PAYLOAD_SCHEMA);
    let (wal, _) = Wal::open(DIR, opts).unwrap();
    wal.append_batch(&[payload]).unwrap();
}

/// A record whose tag no Raft record has: a typed error naming it; nothing removed.
#[test]
fn an_unknown_record_is_refused_untouched() {
    let vfs = SimVfs::new();
    let store = open_log(Path::new(DIR), Arc::new(vfs.clone()));
    append_durable(&store, (0..5).map(|i| id(1, i)));
    drop(store);
    write_raw_record(&vfs, &[42, 1, 2, 3]);
    let before = disk(&vfs);
    let err = try_open_log(Path::new(DIR), Arc::new(vfs.clone())).unwrap_err();
    assert!(
        matches!(err, RaftStoreError::UnknownRecord { tag: 42, .. }),
        "{err}"
    );
    assert_eq!(disk(&vfs), before);
}

/// An entry record whose id decodes but whose entry does not: the store opens (the scan reads
/// only ids), and reading that entry is a storage error saying it does not decode; the
/// entries before it still read, and nothing is removed.
#[test]
fn an_entry_that_does_not_decode_is_a_typed_read_error() {
    let vfs = SimVfs::new();
    let store = open_log(Path::new(DIR), Arc::new(vfs.clone()));
    append_durable(&store, (0..5).map(|i| id(1, i)));
    drop(store);
    let mut rec = vec![3u8];
    rec.extend(bincode::serde::encode_to_vec(id(1, 5), bincode::config::standard()).unwrap());
    rec.extend([0xff; 7]);
    write_raw_record(&vfs, &rec);
    let before = disk(&vfs);
    let mut store = open_log(Path::new(DIR), Arc::new(vfs.clone()));
    block(async {
        assert_eq!(store.try_get_log_entries(0..5).await.unwrap().len(), 5);
        let err = store.try_get_log_entries(5..6).await.unwrap_err();
        assert!(err.to_string().contains("does not decode"), "{err}");
    });
    drop(store);
    let after = disk(&vfs);
    for (path, bytes) in &before {
        let kept = after.iter().find(|(p, _)| p == path).map(|(_, b)| b);
        assert_eq!(
            kept.map(|b| &b[..bytes.len()]),
            Some(&bytes[..]),
            "{path:?} kept"
        );
    }
}

/// With no memory for entries not yet durable, an entry read right after its append (before
/// its callback) is read from the log once durable: the cache's bound never makes an entry
/// unreadable.
#[test]
fn entries_past_the_cache_bound_are_read_from_the_log() {
    let vfs = SimVfs::new();
    let opts = LogStoreOptions {
        wal: wal_opts(Arc::new(vfs.clone())),
        cache_bytes: 0,
    };
    let (mut store, _) = LogStore::<Cfg>::open(DIR, opts).unwrap();
    block(async {
        for chunk in 0..20 {
            let ids: Vec<_> = (chunk * 16..chunk * 16 + 16).map(|i| id(1, i)).collect();
            store
                .append_with(ids.iter().copied().map(entry), |_| {})
                .unwrap();
            let got = store.try_get_log_entries(chunk * 16..).await.unwrap();
            assert_eq!(got.iter().map(|e| e.log_id).collect::<Vec<_>>(), ids);
            assert!(got.iter().all(|e| *e == entry(e.log_id)));
        }
    });
}

/// An fsync that fails poisons the log: the vote that waited for it fails, and so does
/// every later call (an append is refused before anything is queued), as openraft's fatal
/// `StorageError`s naming the first failure: nothing is retried.
#[test]
fn a_failed_fsync_is_fatal_for_every_later_call() {
    use wal_log::sim::{Fault, OpKind};
    let vfs = SimVfs::new();
    let mut store = open_log(Path::new(DIR), Arc::new(vfs.clone()));
    append_durable(&store, (0..3).map(|i| id(1, i)));
    vfs.fail_nth(
        OpKind::SyncData,
        vfs.op_count(OpKind::SyncData) + 1,
        Fault::Eio,
    );
    block(async {
        let err = store.save_vote(&Vote::new(2, 0)).await.unwrap_err();
        assert!(err.to_string().contains("os error 5"), "{err}");
        let r = store.append_with([entry(id(2, 3))], |_| {});
        assert!(
            matches!(r, Err(RaftStoreError::Wal(WalError::Poisoned { .. }))),
            "{r:?}"
        );
        let err = store.purge(id(1, 1)).await.unwrap_err();
        assert!(err.to_string().contains("poisoned"), "{err}");
        assert!(store.truncate(id(1, 1)).await.is_err());
    });
}
