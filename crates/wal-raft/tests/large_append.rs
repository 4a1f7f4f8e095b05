//! One append larger than a transaction's share (1 MiB of records) is split into several
//! transactions: every entry is readable when `append` returns, durable when the callback
//! fires, and read back whole and in order after a reopen and after a power cut.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Cfg, append_durable, block, durable_copy, entry, id};
use openraft::storage::{RaftLogReader, RaftLogStorage};
use std::sync::Arc;
use wal_log::sim::SimVfs;
use wal_log::{Options, StdVfs, Vfs};
use wal_raft::{LogStore, LogStoreOptions};

/// About 2.8 MiB of records: three transactions or more.
const ENTRIES: u64 = 20_000;

fn open(dir: &std::path::Path, vfs: Arc<dyn Vfs>) -> LogStore<Cfg> {
    let opts = LogStoreOptions {
        wal: Options::default()
            .segment_size(1 << 20)
            .preallocate(false)
            .vfs(vfs),
        ..LogStoreOptions::default()
    };
    LogStore::open(dir, opts).unwrap().0
}

/// Every entry of one append, in order, with its exact payload.
fn assert_all(store: &mut LogStore<Cfg>, first: u64) {
    block(async {
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(id(1, first + ENTRIES - 1)));
        let got = store.try_get_log_entries(first..).await.unwrap();
        let want: Vec<_> = (first..first + ENTRIES).map(|i| id(1, i)).collect();
        assert_eq!(got.iter().map(|e| e.log_id).collect::<Vec<_>>(), want);
        assert!(got.iter().all(|e| *e == entry(e.log_id)));
    });
}

#[test]
fn an_append_of_several_mebibytes_is_read_back_whole_before_and_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let mut store = open(&path, Arc::new(StdVfs));
    append_durable(&store, (0..10).map(|i| id(1, i)));
    append_durable(&store, (10..10 + ENTRIES).map(|i| id(1, i)));
    let segments = store.wal().segments().len();
    let bytes: u64 = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        bytes > 2 << 20,
        "{segments} segments, {bytes} bytes: the append was not several MiB"
    );
    assert_all(&mut store, 10);
    drop(store);
    let mut store = open(&path, Arc::new(StdVfs));
    assert_all(&mut store, 10);
}

#[test]
fn a_power_cut_after_the_callback_keeps_every_entry_of_a_large_append() {
    let vfs = SimVfs::new();
    let store = open("/log".as_ref(), Arc::new(vfs.clone()));
    append_durable(&store, (0..ENTRIES).map(|i| id(1, i)));
    let image = durable_copy(&vfs);
    drop(store);
    let mut store = open("/log".as_ref(), Arc::new(image));
    assert_all(&mut store, 0);
}
