//! `--store memory`: a Raft log kept in memory only. **No durability**: everything is lost
//! when the process stops. It exists as the benchmark's upper bound (the same binary with
//! no fsync), never for data anyone wants back.

use crate::types::TypeConfig;
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogId, StorageError, Vote};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

#[derive(Default)]
struct Inner {
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
    purged: Option<LogId<u64>>,
    log: BTreeMap<u64, Entry<TypeConfig>>,
}

/// An in-memory Raft log (no durability); its clones share one log.
#[derive(Clone, Default)]
pub struct MemLog {
    inner: Arc<Mutex<Inner>>,
}

impl MemLog {
    fn locked(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RaftLogReader<TypeConfig> for MemLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        Ok(self
            .locked()
            .log
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for MemLog {
    type LogReader = MemLog;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let inner = self.locked();
        let last = inner.log.values().next_back().map(|e| *e.get_log_id());
        Ok(LogState {
            last_purged_log_id: inner.purged,
            last_log_id: last.or(inner.purged),
        })
    }

    async fn get_log_reader(&mut self) -> MemLog {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        self.locked().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.locked().vote)
    }

    async fn save_committed(&mut self, c: Option<LogId<u64>>) -> Result<(), StorageError<u64>> {
        self.locked().committed = c;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.locked().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        {
            let mut inner = self.locked();
            for e in entries {
                debug_assert!(
                    inner
                        .log
                        .keys()
                        .next_back()
                        .is_none_or(|l| *l < e.log_id.index)
                );
                inner.log.insert(e.log_id.index, e);
            }
        }
        // "Flushed" at once: there is nothing to flush.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.locked().log.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let mut inner = self.locked();
        debug_assert!(inner.purged.is_none_or(|p| p.index <= log_id.index));
        let keep = inner.log.split_off(&(log_id.index + 1));
        inner.log = keep;
        inner.purged = Some(log_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::MemLog;
    use crate::state_machine::KvState;
    use crate::types::{StateMachine, TypeConfig};
    use openraft::StorageError;
    use openraft::testing::{StoreBuilder, Suite};
    use std::sync::Arc;

    struct Builder;

    impl StoreBuilder<TypeConfig, MemLog, StateMachine, tempfile::TempDir> for Builder {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, MemLog, StateMachine), StorageError<u64>> {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let sm = StateMachine::open(dir.path(), KvState::default(), Arc::new(wal_log::StdVfs))
                .unwrap_or_else(|e| panic!("{e}"));
            Ok((dir, MemLog::default(), sm))
        }
    }

    /// The benchmark's in-memory log keeps openraft's storage contract (all but durability).
    #[test]
    fn the_memory_log_passes_openrafts_storage_suite() {
        Suite::test_all(Builder).unwrap_or_else(|e| panic!("{e}"));
    }
}
