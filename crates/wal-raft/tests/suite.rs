//! openraft's own storage suite (`openraft::testing::Suite::test_all`), every check of it, on
//! the log store and the state-machine adapter, on real directories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Cfg, Kv, open_log, open_sm};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use std::sync::Arc;
use wal_log::StdVfs;
use wal_raft::{LogStore, StateMachineStore};

struct Builder;

impl StoreBuilder<Cfg, LogStore<Cfg>, StateMachineStore<Cfg, Kv>, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore<Cfg>, StateMachineStore<Cfg, Kv>), StorageError<u64>>
    {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(&dir.path().join("log"), Arc::new(StdVfs));
        let sm = open_sm(&dir.path().join("sm"), Arc::new(StdVfs));
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    let started = std::time::Instant::now();
    Suite::test_all(Builder).unwrap();
    eprintln!("Suite::test_all took {:?}", started.elapsed());
}
