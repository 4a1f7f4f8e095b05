//! [`LogStore`]: openraft's log storage (v2 API) on one write-ahead log.
//!
//! Every change is a record queued in the log under the store's lock, so the log's order is
//! the order of the calls: a vote, a truncation or a purge can never land before an append
//! made earlier, nor after one made later. The index in memory ([`LogIndex`]) changes under
//! the same lock, record by record, exactly as a reopen's scan rebuilds it.

use crate::cache::Cache;
use crate::error::{RaftStoreError, Result};
use crate::index::{LogIndex, Slot};
use crate::record::{self, Record, StateRecord};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{
    ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId, RaftTypeConfig, StorageError, Vote,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use wal_format::FrameKind;
use wal_format::frame::MAX_FRAME_PAYLOAD;
use wal_format::records::RecordIter;
use wal_log::inspect::DirFrame;
use wal_log::{
    DurableNotifier, Location, Lsn, OpenReport, Options, PositionedReader, SyncPolicy, VisitError,
    Wal,
};

/// The payload schema stamped in the segment headers of a Raft log: opening a log of another
/// kind fails with [`WalError::PayloadSchema`](wal_log::WalError::PayloadSchema) and changes nothing ("RAFT" in ASCII).
pub const RAFT_PAYLOAD_SCHEMA: u32 = 0x5241_4654;

/// Appended entries go to the log in transactions of at most this many bytes of records, so
/// one large append does not become one huge frame.
const TX_BYTES: usize = 1 << 20;

/// The largest encoded entry: one frame, less the batch's count and length prefixes.
const MAX_ENTRY: usize = MAX_FRAME_PAYLOAD - 16;

/// How a [`LogStore`] is opened.
#[derive(Clone, Debug)]
pub struct LogStoreOptions {
    /// The log's options. The store always uses [`SyncPolicy::Always`] and
    /// [`RAFT_PAYLOAD_SCHEMA`], whatever these say; the rest (segment size, recovery mode,
    /// the `Vfs`) is used as given.
    pub wal: Options,
    /// Memory for entries appended but not yet durable (default 64 MiB). An entry that does
    /// not fit is not kept: reading it waits until it is durable.
    pub cache_bytes: usize,
}

impl Default for LogStoreOptions {
    fn default() -> Self {
        LogStoreOptions {
            wal: Options::default(),
            cache_bytes: 64 << 20,
        }
    }
}

/// The index and the cache, under one lock.
#[derive(Debug)]
struct State<C: RaftTypeConfig> {
    index: LogIndex<C::NodeId>,
    cache: Cache<C::Entry>,
}

/// What a store and its readers share.
struct Shared<C: RaftTypeConfig> {
    wal: Arc<Wal>,
    reader: PositionedReader,
    notifier: DurableNotifier,
    state: Mutex<State<C>>,
}

/// A Raft log on a write-ahead log: openraft's [`RaftLogStorage`] (see the crate docs for the
/// records, the index and the durability contract). Dropping the store and every
/// [`LogReader`] made from it closes the log.
pub struct LogStore<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
}

/// A reader of a [`LogStore`]'s entries, for openraft's replication tasks.
pub struct LogReader<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
}

impl<C: RaftTypeConfig> Clone for LogReader<C> {
    fn clone(&self) -> Self {
        LogReader {
            shared: self.shared.clone(),
        }
    }
}

impl<C: RaftTypeConfig> Debug for LogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("wal", &self.shared.wal)
            .finish_non_exhaustive()
    }
}

impl<C: RaftTypeConfig> Debug for LogReader<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader").finish_non_exhaustive()
    }
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn storage<NID: openraft::NodeId>(
    subject: ErrorSubject<NID>,
    verb: ErrorVerb,
) -> impl FnOnce(RaftStoreError) -> StorageError<NID> {
    move |e| e.into_storage(subject, verb)
}

/// Applies every record of one verified frame to the index (the reopen's scan).
fn index_frame<NID: openraft::NodeId>(ix: &mut LogIndex<NID>, f: DirFrame) -> Result<()> {
    let at = Location::of(&f);
    match f.frame.kind {
        FrameKind::Tx if f.frame.is_multi() => {
            for (k, rec) in RecordIter::new(f.frame.payload).enumerate() {
                let rec = rec.map_err(|source| RaftStoreError::BadBatch {
                    lsn: at.lsn,
                    source,
                })?;
                let k = u32::try_from(k).unwrap_or(u32::MAX);
                ix.apply(&record::decode(at.lsn, &rec)?, at, k);
            }
            Ok(())
        }
        FrameKind::Tx => {
            ix.apply(&record::decode(at.lsn, &f.frame.payload)?, at, 0);
            Ok(())
        }
        FrameKind::FragBegin | FrameKind::FragPart | FrameKind::FragEnd => {
            Err(RaftStoreError::Fragmented { lsn: at.lsn })
        }
        // Seals, checkpoint markers, the aborts recovery writes and a clean close's
        // watermark carry no Raft record.
        FrameKind::FragAbort | FrameKind::Checkpoint | FrameKind::Seal | FrameKind::Watermark => {
            Ok(())
        }
    }
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    /// Opens (creating it when `opts.wal` allows) the Raft log in `dir`, rebuilding the index
    /// by the one scan of the log that opening it does anyway.
    ///
    /// # Errors
    /// [`RaftStoreError::Wal`] when the log does not open (another kind of log:
    /// [`WalError::PayloadSchema`](wal_log::WalError::PayloadSchema); not a log: [`WalError::NotAWal`](wal_log::WalError::NotAWal); damage the recovery mode
    /// refuses); [`RaftStoreError::UnknownRecord`], [`RaftStoreError::Decode`],
    /// [`RaftStoreError::BadBatch`] or [`RaftStoreError::Fragmented`] for records no Raft store
    /// writes. In every error case nothing on disk was changed.
    pub fn open(dir: impl AsRef<Path>, opts: LogStoreOptions) -> Result<(Self, OpenReport)> {
        let wal_opts = opts
            .wal
            .sync(SyncPolicy::Always)
            .payload_schema(RAFT_PAYLOAD_SCHEMA);
        let mut index = LogIndex::default();
        let mut visit = |f: DirFrame| index_frame(&mut index, f);
        let (wal, report) = Wal::open_visit(dir, wal_opts, &mut visit).map_err(|e| match e {
            VisitError::Wal(w) => RaftStoreError::Wal(w),
            VisitError::Visitor(v) => v,
        })?;
        let wal = Arc::new(wal);
        let shared = Shared {
            reader: wal.positioned_reader(),
            notifier: DurableNotifier::start(wal.clone())?,
            wal,
            state: Mutex::new(State {
                index,
                cache: Cache::new(opts.cache_bytes),
            }),
        };
        Ok((
            LogStore {
                shared: Arc::new(shared),
            },
            report,
        ))
    }

    /// The log under the store (for its statistics and segments).
    #[must_use]
    pub fn wal(&self) -> &Wal {
        &self.shared.wal
    }

    /// A shared handle on the log under the store, for reading its statistics after the
    /// store itself was handed to openraft. The log stays open while a handle lives.
    #[must_use]
    pub fn wal_handle(&self) -> Arc<Wal> {
        self.shared.wal.clone()
    }

    /// [`RaftLogStorage::append`] with a plain callback: `entries` are queued in the log and
    /// readable when this returns; `on_durable` runs on the log's notifier thread once they
    /// are all durable, or with the error that prevents it.
    ///
    /// # Errors
    /// [`RaftStoreError::EntryTooLarge`], [`RaftStoreError::Encode`]: then nothing was
    /// queued. [`RaftStoreError::Wal`] when the log is poisoned.
    pub fn append_with(
        &self,
        entries: impl IntoIterator<Item = C::Entry>,
        on_durable: impl FnOnce(wal_log::Durability) + Send + 'static,
    ) -> Result<()> {
        // All the records in one buffer; `ends[k]` is where entry k's record ends.
        let mut buf = Vec::new();
        let mut batch = Vec::new();
        for e in entries {
            let start = buf.len();
            let log_id = e.get_log_id().clone();
            record::entry(&log_id, &e, &mut buf)?;
            let size = buf.len() - start;
            if size > MAX_ENTRY {
                return Err(RaftStoreError::EntryTooLarge {
                    index: log_id.index,
                    size,
                    max: MAX_ENTRY,
                });
            }
            batch.push((e, buf.len()));
        }
        let last = self.shared.append_locked(batch, &buf)?;
        self.shared.notifier.notify(last, on_durable);
        Ok(())
    }
}

impl<C> Shared<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    /// Queues encoded entries under the lock, in transactions of about [`TX_BYTES`], indexes
    /// and caches them (moving each entry into the cache). `batch` holds each entry with the
    /// end of its record in `buf`. Returns the LSN to wait for.
    fn append_locked(&self, batch: Vec<(C::Entry, usize)>, buf: &[u8]) -> Result<Lsn> {
        let mut st = locked(&self.state);
        st.cache.evict_durable(self.wal.durable_lsn());
        let mut last = self.wal.last_lsn();
        let mut rest = batch.into_iter().peekable();
        let mut start = 0;
        while rest.peek().is_some() {
            let mut chunk = Vec::new();
            let mut payloads: Vec<&[u8]> = Vec::new();
            let mut taken = 0;
            while let Some(&(_, end)) = rest.peek() {
                if !payloads.is_empty() && taken + (end - start) > TX_BYTES {
                    break;
                }
                taken += end - start;
                payloads.push(&buf[start..end]);
                chunk.extend(rest.next());
                start = end;
            }
            let at = self.wal.append_batch_queued(&payloads)?;
            for (k, ((e, _), bytes)) in chunk.into_iter().zip(&payloads).enumerate() {
                let log_id = e.get_log_id().clone();
                let index = log_id.index;
                let rec = Record::Entry { log_id, body: &[] };
                st.index
                    .apply(&rec, at, u32::try_from(k).unwrap_or(u32::MAX));
                // Like the index, an entry replaces the cached ones at or above its index.
                st.cache.truncate(index);
                st.cache.insert(index, at.lsn, e, bytes.len());
            }
            last = at.lsn;
        }
        debug_assert_eq!(start, buf.len(), "every record was queued");
        Ok(last)
    }

    /// Queues one record (the caller holds the state lock and updates the index with it).
    fn queue(&self, bytes: &[u8]) -> Result<Location> {
        Ok(self.wal.append_batch_queued(&[bytes])?)
    }

    /// Waits, without blocking the runtime, until `lsn` is durable.
    async fn durable(&self, lsn: Lsn) -> Result<()> {
        if self.wal.durable_lsn() >= lsn {
            return Ok(());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.notifier.notify(lsn, move |r| {
            let _ = tx.send(r);
        });
        match rx.await {
            Ok(r) => Ok(r?),
            Err(_) => Err(RaftStoreError::Closed),
        }
    }

    /// The present entries in `[start, end)`: from memory when not yet durable (and kept),
    /// else read from the log at the locations the index holds, one read per transaction.
    async fn entries(&self, start: u64, end: u64) -> Result<Vec<C::Entry>> {
        enum Plan<C: RaftTypeConfig> {
            Cached(C::Entry),
            Log(Slot<C::NodeId>),
        }
        let plan: Vec<Plan<C>> = {
            let st = locked(&self.state);
            st.index
                .range(start, end)
                .map(|s| match st.cache.get(s.log_id.index) {
                    Some(e) => Plan::Cached(e.clone()),
                    None => Plan::Log(s.clone()),
                })
                .collect()
        };
        let newest = plan.iter().filter_map(|p| match p {
            Plan::Log(s) => Some(s.at.lsn),
            Plan::Cached(_) => None,
        });
        if let Some(lsn) = newest.max() {
            self.durable(lsn).await?;
        }
        let mut out = Vec::with_capacity(plan.len());
        let mut frame: Option<(Location, Vec<bytes::Bytes>)> = None;
        for p in plan {
            match p {
                Plan::Cached(e) => out.push(e),
                Plan::Log(slot) => {
                    if frame.as_ref().is_none_or(|(at, _)| *at != slot.at) {
                        frame = Some((slot.at, self.read_records(&slot.at)?));
                    }
                    let recs = frame.as_ref().map_or(&[][..], |(_, r)| &r[..]);
                    out.push(decode_slot::<C>(&slot, recs)?);
                }
            }
        }
        Ok(out)
    }

    fn read_records(&self, at: &Location) -> Result<Vec<bytes::Bytes>> {
        let frame = self.reader.read(at)?;
        if !frame.is_multi() {
            return Ok(vec![frame.payload]);
        }
        RecordIter::new(frame.payload)
            .collect::<std::result::Result<_, _>>()
            .map_err(|source| RaftStoreError::BadBatch {
                lsn: at.lsn,
                source,
            })
    }
}

/// The entry of `slot`, from the records of its transaction.
fn decode_slot<C>(slot: &Slot<C::NodeId>, recs: &[bytes::Bytes]) -> Result<C::Entry>
where
    C: RaftTypeConfig,
    C::Entry: DeserializeOwned,
{
    let (index, lsn) = (slot.log_id.index, slot.at.lsn);
    let misplaced = |reason: String| RaftStoreError::Misplaced { index, lsn, reason };
    let rec = usize::try_from(slot.record)
        .ok()
        .and_then(|k| recs.get(k))
        .ok_or_else(|| misplaced(format!("the transaction has no record {}", slot.record)))?;
    let Record::Entry { log_id, body } = record::decode::<C::NodeId>(lsn, rec)? else {
        return Err(misplaced("the record there is not an entry".into()));
    };
    if log_id != slot.log_id {
        return Err(misplaced(format!("the record there is entry {log_id}")));
    }
    let entry: C::Entry = record::decode_entry(lsn, body)?;
    if *entry.get_log_id() != log_id {
        return Err(misplaced(format!(
            "the entry's own id is {}",
            entry.get_log_id()
        )));
    }
    Ok(entry)
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

/// openraft's reader API, the same for the store and its readers: both read through
/// [`Shared::entries`].
macro_rules! log_reader {
    ($t:ident) => {
        impl<C> RaftLogReader<C> for $t<C>
        where
            C: RaftTypeConfig,
            C::Entry: Clone + Serialize + DeserializeOwned,
        {
            async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
                &mut self,
                range: RB,
            ) -> std::result::Result<Vec<C::Entry>, StorageError<C::NodeId>> {
                let (start, end) = bounds(&range);
                self.shared
                    .entries(start, end)
                    .await
                    .map_err(storage(ErrorSubject::Logs, ErrorVerb::Read))
            }
        }
    };
}

log_reader!(LogReader);
log_reader!(LogStore);

impl<C> LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    /// Queues a vote and waits until it is durable.
    async fn save_vote_inner(&self, vote: &Vote<C::NodeId>) -> Result<()> {
        let at = {
            let mut st = locked(&self.shared.state);
            let at = self.shared.queue(&record::vote(vote)?)?;
            st.index.apply(&Record::Vote(vote.clone()), at, 0);
            at
        };
        self.shared.durable(at.lsn).await
    }

    /// Queues the committed id (not waited for: openraft does not need it durable).
    fn save_committed_inner(&self, committed: Option<LogId<C::NodeId>>) -> Result<()> {
        let mut st = locked(&self.shared.state);
        let at = self.shared.queue(&record::committed(&committed)?)?;
        st.index.apply(&Record::Committed(committed), at, 0);
        Ok(())
    }

    /// Queues a truncation of the entries from `log_id.index` on (not waited for: it is
    /// ordered before every later write, which is all openraft needs).
    fn truncate_inner(&self, log_id: &LogId<C::NodeId>) -> Result<()> {
        let mut st = locked(&self.shared.state);
        let at = self.shared.queue(&record::truncate(log_id.index)?)?;
        st.index.apply(&Record::Truncate(log_id.index), at, 0);
        st.cache.truncate(log_id.index);
        Ok(())
    }

    /// Queues a state record naming `log_id` purged, waits until it is durable, then removes
    /// the log's segments that nothing present needs any more.
    async fn purge_inner(&self, log_id: LogId<C::NodeId>) -> Result<()> {
        let (at, cut) = {
            let mut st = locked(&self.shared.state);
            if st
                .index
                .purged
                .as_ref()
                .is_some_and(|p| p.index >= log_id.index)
            {
                return Ok(());
            }
            let state = StateRecord {
                purged: Some(log_id.clone()),
                vote: st.index.vote.clone(),
                committed: st.index.committed.clone(),
            };
            let at = self.shared.queue(&record::state(&state)?)?;
            st.index.apply(&Record::State(state), at, 0);
            st.cache.purge(log_id.index);
            let cut = st.index.first_lsn().map_or(at.lsn, |l| l.min(at.lsn));
            (at, cut)
        };
        // The purged id (and the vote and committed id restated with it) is durable before
        // any segment goes.
        self.shared.durable(at.lsn).await?;
        self.shared.wal.truncate_prefix(cut.prev())?;
        Ok(())
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Clone + Serialize + DeserializeOwned,
{
    type LogReader = LogReader<C>;

    async fn get_log_state(&mut self) -> std::result::Result<LogState<C>, StorageError<C::NodeId>> {
        let st = locked(&self.shared.state);
        Ok(LogState {
            last_purged_log_id: st.index.purged.clone(),
            last_log_id: st.index.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    async fn save_vote(
        &mut self,
        vote: &Vote<C::NodeId>,
    ) -> std::result::Result<(), StorageError<C::NodeId>> {
        self.save_vote_inner(vote)
            .await
            .map_err(storage(ErrorSubject::Vote, ErrorVerb::Write))
    }

    async fn read_vote(
        &mut self,
    ) -> std::result::Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(locked(&self.shared.state).index.vote.clone())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> std::result::Result<(), StorageError<C::NodeId>> {
        self.save_committed_inner(committed)
            .map_err(storage(ErrorSubject::Store, ErrorVerb::Write))
    }

    async fn read_committed(
        &mut self,
    ) -> std::result::Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(locked(&self.shared.state).index.committed.clone())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> std::result::Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.append_with(entries, move |r| {
            callback.log_io_completed(r.map_err(std::io::Error::other));
        })
        .map_err(storage(ErrorSubject::Logs, ErrorVerb::Write))
    }

    async fn truncate(
        &mut self,
        log_id: LogId<C::NodeId>,
    ) -> std::result::Result<(), StorageError<C::NodeId>> {
        self.truncate_inner(&log_id)
            .map_err(storage(ErrorSubject::Logs, ErrorVerb::Delete))
    }

    async fn purge(
        &mut self,
        log_id: LogId<C::NodeId>,
    ) -> std::result::Result<(), StorageError<C::NodeId>> {
        self.purge_inner(log_id)
            .await
            .map_err(storage(ErrorSubject::Logs, ErrorVerb::Delete))
    }
}
