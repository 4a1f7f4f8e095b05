//! The node's state machine: the kv map whose events are batches of kv events
//! ([`KvState`]), behind wal-raft's adapter, which also says on stderr when a snapshot from
//! the leader was installed (the cluster harness waits for that line to know a lagging node
//! was caught up by a snapshot rather than by the log).

use crate::types::{StateMachine, TypeConfig};
use kv::store::{KvEvent, Store};
use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{BasicNode, Entry, LogId, OptionalSend, StorageError, StoredMembership};
use std::io::{self, Cursor, Read, Write};
use wal_log::Lsn;
use wal_replay::ApplyError;

/// The kv example's map, applied a batch of events per Raft entry. Its snapshots are the
/// map's own.
#[derive(Debug, Default)]
pub struct KvState(pub Store);

impl wal_replay::StateMachine for KvState {
    type Event = Vec<KvEvent>;

    fn apply(&mut self, lsn: Lsn, batches: Vec<Vec<KvEvent>>) -> Result<(), ApplyError> {
        self.0.apply(lsn, batches.into_iter().flatten().collect())
    }

    fn write_snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        self.0.write_snapshot(out)
    }

    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        self.0.restore(input)
    }
}

/// [`StateMachine`] that reports each installed snapshot.
pub struct NodeStateMachine {
    /// The adapter everything is delegated to.
    pub inner: StateMachine,
    /// This node's id, for the report.
    pub id: u64,
}

impl RaftStateMachine<TypeConfig> for NodeStateMachine {
    type SnapshotBuilder = wal_raft::SnapshotBuilder<TypeConfig, KvState>;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        self.inner.applied_state().await
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.inner.apply(entries).await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.inner.get_snapshot_builder().await
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        self.inner.begin_receiving_snapshot().await
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        self.inner.install_snapshot(meta, snapshot).await?;
        let index = meta
            .last_log_id
            .map_or_else(|| "-".to_owned(), |l| l.index.to_string());
        eprintln!(
            "raft-kv: node {} installed snapshot up to index {index}",
            self.id
        );
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        self.inner.get_current_snapshot().await
    }
}
