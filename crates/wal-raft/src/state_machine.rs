//! [`StateMachineStore`]: any [`wal_replay::StateMachine`] as openraft's
//! [`RaftStateMachine`], with its snapshots in wal-replay's snapshot files (checksummed,
//! written to a temporary file, fsynced, renamed, directory fsynced).
//!
//! A snapshot's body is the Raft metadata (last applied id, membership, snapshot id; a `u32`
//! length then bincode), followed by the state's own [`StateMachine::write_snapshot`] bytes.
//! Its fence is the last applied index + 1 (0 when nothing was applied). The bytes sent to
//! another node are the whole snapshot file, header and checksum included; the receiver
//! stages them, verifies the checksum, restores them, and only then copies them into its
//! own snapshot directory.

use crate::error::{RaftStoreError, Result};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId, RaftTypeConfig,
    StorageError, StoredMembership,
};
use std::io::{self, Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};
use wal_log::{LogId as WalLogId, Lsn, OpenMode, Vfs};
use wal_replay::snapshot::{SnapshotStore, VerifiedSnapshot};
use wal_replay::{ApplyError, StateMachine};

/// The log id written in this adapter's snapshot headers: its snapshots belong to no
/// wal-log log (the Raft log's positions are Raft indexes, in the fence).
pub const RAFT_SNAPSHOT_LOG_ID: WalLogId =
    WalLogId::from_u128(u128::from_be_bytes(*b"walrus-raft-snap"));

/// Snapshots kept in the snapshot directory (the newest ones).
const KEEP_SNAPSHOTS: usize = 2;

/// The directory, under the store's, of the snapshots it makes and installs.
const SNAPSHOT_DIR: &str = "snapshots";
/// The directory, under the store's, where a received snapshot waits to be verified.
const STAGING_DIR: &str = "incoming";

type Meta<C> = SnapshotMeta<<C as RaftTypeConfig>::NodeId, <C as RaftTypeConfig>::Node>;

/// What the store's lock guards.
struct Inner<C: RaftTypeConfig, S> {
    state: S,
    applied: Option<LogId<C::NodeId>>,
    membership: StoredMembership<C::NodeId, C::Node>,
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    snapshots: SnapshotStore,
    /// The newest snapshot: its metadata and file.
    current: Option<(Meta<C>, PathBuf)>,
}

/// A [`RaftStateMachine`] made of a [`StateMachine`] whose events are the Raft application
/// data (`S::Event = C::D`). Normal entries go to [`StateMachine::apply`] with the entry's
/// index as the LSN; the response is `C::R::default()` (a wal-replay state machine returns
/// none). Membership is kept beside the state and saved in every snapshot.
///
/// Applied state is made durable by snapshots only: after a restart the state is the newest
/// snapshot's, and openraft applies the committed entries after it again.
pub struct StateMachineStore<C: RaftTypeConfig, S> {
    inner: Arc<Mutex<Inner<C, S>>>,
}

impl<C: RaftTypeConfig, S> Clone for StateMachineStore<C, S> {
    /// Another handle on the same state (for reads beside the one openraft owns).
    fn clone(&self) -> Self {
        StateMachineStore {
            inner: self.inner.clone(),
        }
    }
}

/// Builds snapshots of a [`StateMachineStore`] (it takes the store's lock while it writes).
pub struct SnapshotBuilder<C: RaftTypeConfig, S> {
    inner: Arc<Mutex<Inner<C, S>>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The state plus the Raft metadata, as one wal-replay state machine: what a snapshot
/// file's body holds.
struct Framed<'a, C: RaftTypeConfig, S> {
    state: &'a mut S,
    meta: Option<Meta<C>>,
}

impl<C: RaftTypeConfig, S: StateMachine> StateMachine for Framed<'_, C, S> {
    type Event = S::Event;
    const EVENT_SCHEMA: u32 = S::EVENT_SCHEMA;

    fn apply(&mut self, lsn: Lsn, _: Vec<S::Event>) -> std::result::Result<(), ApplyError> {
        Err(format!("a snapshot's state applies no transaction (LSN {lsn})").into())
    }

    fn write_snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        let meta = bincode::serde::encode_to_vec(&self.meta, bincode::config::standard())
            .map_err(io::Error::other)?;
        let len = u32::try_from(meta.len()).map_err(io::Error::other)?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&meta)?;
        self.state.write_snapshot(out)
    }

    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        let mut len = [0u8; 4];
        input.read_exact(&mut len)?;
        let mut meta = vec![0u8; u32::from_le_bytes(len) as usize];
        input.read_exact(&mut meta)?;
        let (m, used): (Option<Meta<C>>, usize) =
            bincode::serde::decode_from_slice(&meta, bincode::config::standard())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if used != meta.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bytes left over after the snapshot's Raft metadata",
            ));
        }
        self.meta = m;
        self.state.restore(input)
    }
}

fn fence(applied: Option<&LogId<impl openraft::NodeId>>) -> Lsn {
    Lsn(applied.map_or(0, |l| l.index + 1))
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RaftStoreError {
    let path = path.to_path_buf();
    move |source| RaftStoreError::Io { op, path, source }
}

impl<C, S> Inner<C, S>
where
    C: RaftTypeConfig,
    S: StateMachine,
{
    /// Restores the state and metadata from a verified snapshot.
    fn restore(&mut self, store: &SnapshotStore, snap: &VerifiedSnapshot) -> Result<Meta<C>> {
        let mut framed = Framed::<C, S> {
            state: &mut self.state,
            meta: None,
        };
        store.restore_into(snap, &mut framed)?;
        let meta = framed.meta.ok_or_else(|| RaftStoreError::Io {
            op: "restore",
            path: snap.file.path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, "no Raft metadata"),
        })?;
        self.applied = meta.last_log_id.clone();
        self.membership = meta.last_membership.clone();
        Ok(meta)
    }

    /// Writes a snapshot of the state as it is now and makes it the current one.
    fn build(&mut self) -> Result<Snapshot<C>>
    where
        C: RaftTypeConfig<SnapshotData = Cursor<Vec<u8>>>,
    {
        let at = fence(self.applied.as_ref());
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let meta = SnapshotMeta {
            last_log_id: self.applied.clone(),
            last_membership: self.membership.clone(),
            snapshot_id: format!("{}-{millis}", at.0),
        };
        let framed = Framed::<C, S> {
            state: &mut self.state,
            meta: Some(meta.clone()),
        };
        let written = self.snapshots.write(&framed, RAFT_SNAPSHOT_LOG_ID, at)?;
        self.current = Some((meta.clone(), written.file.path.clone()));
        self.prune()?;
        let bytes = self.read_file(&written.file.path)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }

    /// Removes all but the newest [`KEEP_SNAPSHOTS`] snapshots.
    fn prune(&self) -> Result<()> {
        let listing = self.snapshots.list()?;
        let old = listing.snapshots.iter().skip(KEEP_SNAPSHOTS);
        let mut removed = false;
        for f in old {
            self.vfs
                .remove(&f.path)
                .map_err(io_err("remove", &f.path))?;
            removed = true;
        }
        if removed {
            let dir = self.snapshots.dir();
            self.vfs.sync_dir(dir).map_err(io_err("fsync dir", dir))?;
        }
        Ok(())
    }

    fn read_file(&self, path: &Path) -> Result<Vec<u8>> {
        let f = self
            .vfs
            .open(path, OpenMode::Read)
            .map_err(io_err("open", path))?;
        let len = f.len().map_err(io_err("stat", path))?;
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        let n = wal_log::vfs::read_full(&*f, &mut buf, 0).map_err(io_err("read", path))?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Installs the snapshot file bytes `bytes` that another node built, described by
    /// `meta`: staged, verified, restored, then copied into the snapshot directory.
    fn install(&mut self, meta: &Meta<C>, bytes: &[u8]) -> Result<()> {
        let staging_dir = self.dir.join(STAGING_DIR);
        self.vfs
            .create_dir_all(&staging_dir)
            .map_err(io_err("create dir", &staging_dir))?;
        let at = fence(meta.last_log_id.as_ref());
        let path = staging_dir.join(wal_replay::snapshot::snapshot_file_name(at));
        match self.vfs.remove(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err("remove", &path)(e));
            }
            _ => {}
        }
        let f = self
            .vfs
            .open(&path, OpenMode::CreateNew)
            .map_err(io_err("create", &path))?;
        f.write_all_at(bytes, 0).map_err(io_err("write", &path))?;
        drop(f);
        let staging = SnapshotStore::new(self.vfs.clone(), &staging_dir);
        let listed = staging.list()?;
        let file = listed
            .snapshots
            .iter()
            .find(|s| s.path == path)
            .ok_or_else(|| io_err("list", &path)(io::ErrorKind::NotFound.into()))?;
        let verified = staging.verify(file, Some(RAFT_SNAPSHOT_LOG_ID))?;
        let found = self.restore(&staging, &verified)?;
        if found.last_log_id != meta.last_log_id || found.last_membership != meta.last_membership {
            return Err(RaftStoreError::Io {
                op: "install",
                path,
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the snapshot holds {found}, but was sent as {meta}"),
                ),
            });
        }
        let copied = self
            .snapshots
            .copy_from(&staging, &verified, RAFT_SNAPSHOT_LOG_ID, at)?;
        self.vfs.remove(&path).map_err(io_err("remove", &path))?;
        self.current = Some((meta.clone(), copied.file.path));
        self.prune()
    }
}

impl<C, S> StateMachineStore<C, S>
where
    C: RaftTypeConfig<Entry = Entry<C>, SnapshotData = Cursor<Vec<u8>>>,
    C::R: Default,
    S: StateMachine<Event = C::D> + Send + 'static,
{
    /// Opens the state machine store in `dir` (created when missing): `state` as given when
    /// there is no snapshot, else restored from the newest snapshot in `dir/snapshots`.
    ///
    /// # Errors
    /// [`RaftStoreError::Snapshot`] when the newest snapshot does not verify or restore: it
    /// is not skipped for an older one (the Raft log may be purged past that), and nothing is
    /// changed; I/O errors.
    pub fn open(dir: impl AsRef<Path>, state: S, vfs: Arc<dyn Vfs>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let snapshots = SnapshotStore::new(vfs.clone(), dir.join(SNAPSHOT_DIR));
        let mut inner = Inner {
            state,
            applied: None,
            membership: StoredMembership::default(),
            vfs,
            dir,
            snapshots: snapshots.clone(),
            current: None,
        };
        if let Some(newest) = snapshots.list()?.snapshots.first() {
            let verified = snapshots.verify(newest, Some(RAFT_SNAPSHOT_LOG_ID))?;
            let meta = inner.restore(&snapshots, &verified)?;
            inner.current = Some((meta, newest.path.clone()));
        }
        Ok(StateMachineStore {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    /// Runs `f` on the state (for reads that need not go through Raft).
    pub fn with_state<T>(&self, f: impl FnOnce(&S) -> T) -> T {
        f(&locked(&self.inner).state)
    }
}

fn storage<NID: openraft::NodeId>(
    subject: ErrorSubject<NID>,
    verb: ErrorVerb,
) -> impl FnOnce(RaftStoreError) -> StorageError<NID> {
    move |e| e.into_storage(subject, verb)
}

impl<C, S> RaftSnapshotBuilder<C> for SnapshotBuilder<C, S>
where
    C: RaftTypeConfig<Entry = Entry<C>, SnapshotData = Cursor<Vec<u8>>>,
    C::R: Default,
    S: StateMachine<Event = C::D> + Send + 'static,
{
    async fn build_snapshot(
        &mut self,
    ) -> std::result::Result<Snapshot<C>, StorageError<C::NodeId>> {
        locked(&self.inner)
            .build()
            .map_err(storage(ErrorSubject::Snapshot(None), ErrorVerb::Write))
    }
}

impl<C, S> RaftStateMachine<C> for StateMachineStore<C, S>
where
    C: RaftTypeConfig<Entry = Entry<C>, SnapshotData = Cursor<Vec<u8>>>,
    C::R: Default,
    S: StateMachine<Event = C::D> + Send + 'static,
{
    type SnapshotBuilder = SnapshotBuilder<C, S>;

    async fn applied_state(
        &mut self,
    ) -> std::result::Result<
        (
            Option<LogId<C::NodeId>>,
            StoredMembership<C::NodeId, C::Node>,
        ),
        StorageError<C::NodeId>,
    > {
        let inner = locked(&self.inner);
        Ok((inner.applied.clone(), inner.membership.clone()))
    }

    async fn apply<I>(
        &mut self,
        entries: I,
    ) -> std::result::Result<Vec<C::R>, StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = locked(&self.inner);
        let mut replies = Vec::new();
        for entry in entries {
            let log_id = entry.get_log_id().clone();
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(data) => {
                    let index = log_id.index;
                    inner.state.apply(Lsn(index), vec![data]).map_err(|e| {
                        let err = RaftStoreError::Apply {
                            index,
                            reason: e.to_string(),
                        };
                        err.into_storage(ErrorSubject::Apply(log_id.clone()), ErrorVerb::Write)
                    })?;
                }
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(log_id.clone()), m);
                }
            }
            inner.applied = Some(log_id);
            replies.push(C::R::default());
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            inner: self.inner.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> std::result::Result<Box<Cursor<Vec<u8>>>, StorageError<C::NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> std::result::Result<(), StorageError<C::NodeId>> {
        let bytes = snapshot.into_inner();
        locked(&self.inner).install(meta, &bytes).map_err(storage(
            ErrorSubject::Snapshot(Some(meta.signature())),
            ErrorVerb::Write,
        ))
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> std::result::Result<Option<Snapshot<C>>, StorageError<C::NodeId>> {
        let inner = locked(&self.inner);
        let Some((meta, path)) = inner.current.clone() else {
            return Ok(None);
        };
        let bytes = inner
            .read_file(&path)
            .map_err(storage(ErrorSubject::Snapshot(None), ErrorVerb::Read))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}
