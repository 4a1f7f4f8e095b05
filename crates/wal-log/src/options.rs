use crate::progress::Progress;
use crate::vfs::{StdVfs, Vfs};
use std::sync::Arc;
use std::time::Duration;

/// When appended frames are made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every append returns only after an fsync that covers it. Concurrent appends share one
    /// write and one fsync (group commit). The default.
    Always,
    /// Appends return once written to the OS; a background thread fsyncs every `ms`
    /// milliseconds. `Wal::sync` and `Wal::wait_durable` give explicit durability points.
    /// A crash loses at most the last interval of acknowledged appends.
    ///
    /// After a power loss (not a process crash), writes of the last interval may have reached
    /// the disk out of order; the newest segment can then show a hole followed by valid frames.
    /// Those frames claim durable only what the last fsync covered (the durable watermark), so
    /// the default open cuts the hole as a torn tail and keeps everything a returned `sync()`
    /// or `wait_durable()` covered. See `docs/decisions/0009-durable-watermark.md`.
    Interval {
        /// The fsync period in milliseconds.
        ms: u64,
    },
    /// Never fsync on its own; only `Wal::sync` makes data durable. **Unsafe for
    /// durability**: an OS crash or power loss can lose any amount of acknowledged data. For
    /// tests and caches. After a power loss the same holes as under `Interval` can appear.
    Never,
}

/// What opening does with a damaged log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryMode {
    /// A torn tail in the newest segment (the trace of a crash mid-write) is cut off and its
    /// bytes moved aside into a file next to the segment. Corruption anywhere else is an error
    /// and nothing is changed. The default.
    TolerateTornTail,
    /// Any torn tail or corruption is an error; nothing is changed.
    Strict,
    /// Keep the longest valid prefix of the whole log; move every byte after it aside (the rest
    /// of the damaged segment into a file, later segments renamed whole) and report exactly what
    /// was moved. For an operator rescuing a damaged log.
    SalvagePrefix,
    /// Keep every transaction that verifies, before and after damaged regions and across
    /// missing segments: only the damaged bytes are moved aside (into
    /// `<segment>.wal.damaged-<offset>`), the segments around them are rewritten so the log
    /// verifies (each lost LSN keeps a place-holder frame that readers skip), and
    /// [`crate::OpenReport::lost_lsns`] names the LSNs given up. Never the default: an
    /// engine whose later transactions depend on a lost one (a transfer from an account
    /// whose opening was lost) can be left inconsistent, which only the engine can judge.
    SkipDamaged,
}

/// Options of [`crate::Wal::open`].
#[derive(Clone, Debug)]
pub struct Options {
    /// A segment is sealed and a new one started once it passes this size. Default 32 MiB.
    pub segment_size: u64,
    /// Keep the next segment preallocated (zeros written and synced) by a background thread,
    /// so appends never grow a file. Default true. While segments fill faster than they can be
    /// zero-filled (bulk writing into a new log), the zeros would only be written twice and
    /// waited for at each rotation: the next segment is then created without them
    /// ([`crate::Stats::zero_fills_skipped`]), until the writer slows down. A reopened log
    /// starts preparing the next segment at its first write, not at the open, so an open
    /// that only reads (a replay) writes no zeros.
    pub preallocate: bool,
    /// How many segments removed by [`crate::Wal::truncate_prefix`] are kept (renamed
    /// `recycled-<seq>.tmp`) to become future segments, instead of being deleted. A log that
    /// truncates behind its checkpoints then writes into blocks that are already allocated
    /// and written, as a preallocated ring would, rather than zero-filling a new file per
    /// segment. Stale bytes of a recycled file never verify (the frame checksum seed names
    /// the segment) and the writer marks where its data ends, so recovery tells them from
    /// the log. 0 turns recycling off. Default 4.
    pub recycle_segments: usize,
    /// Durability policy. Default [`SyncPolicy::Always`].
    pub sync: SyncPolicy,
    /// What to do with a damaged log on open. Default [`RecoveryMode::TolerateTornTail`].
    pub recovery: RecoveryMode,
    /// The largest transaction accepted, and the most a reader holds for one fragmented
    /// transaction. Default 256 MiB.
    pub max_transaction_size: u64,
    /// Create the directory and a new log when it does not exist. Default true.
    pub create_if_missing: bool,
    /// The file system. Default [`StdVfs`].
    pub vfs: Arc<dyn Vfs>,
    /// The version of what this log's payloads hold, as its user numbers it (an event schema;
    /// opaque to the log), stamped into every segment the log creates
    /// ([`wal_format::SegmentHeader::payload_schema`]). Default `None`.
    ///
    /// * `None`: the log does not look: [`crate::Wal::open`] accepts segments of any schema,
    ///   and new segments carry the schema of the newest existing one (0, "not recorded",
    ///   for a new log). For tools, and for logs whose users do not version their payloads.
    /// * `Some(v)`: open refuses a log holding a segment whose schema is neither `v` nor one
    ///   of [`Options::upgrade_payload_schemas`], with [`crate::WalError::PayloadSchema`]
    ///   naming the segment and both versions, before anything on disk is changed. When the
    ///   newest segment carries another schema than `v` (an upgrade), open seals it and starts
    ///   a new segment stamped `v` before it appends anything, so that every frame is written
    ///   under its segment's schema. Every new segment carries `v`.
    ///
    /// After [`crate::Wal::open`], [`crate::Wal::options`] shows `Some` of the schema the log
    /// stamps. Each segment's schema is reported ([`crate::OpenReport::payload_schemas`],
    /// [`crate::inspect::SegmentScan::header`]).
    pub payload_schema: Option<u32>,
    /// Older payload schemas the user can still read (its upgrade path), which open accepts in
    /// existing segments besides [`Options::payload_schema`]. Only with `Some` schema. Default
    /// empty: every segment must carry that schema.
    pub upgrade_payload_schemas: Vec<u32>,
    /// Publish the durable LSN for readers in other processes: after every fsync that makes
    /// more of the log durable (and when the log opens, before it appends anything), the
    /// writer overwrites the start of its `LOCK` file with the log id and the durable point.
    /// A [`crate::TailReader`] (and `walctl dump --follow`) then returns each transaction as
    /// soon as it is durable; without it, such a reader can prove durable only the segments
    /// that are sealed (a segment's successor is created only once its seal is synced), so it
    /// lags by up to a segment. Costs one small write (no fsync) per fsync. Advisory: the
    /// record is never synced and recovery never reads it (see `docs/format.md`, section 10).
    /// Default false.
    pub publish_durable: bool,
    /// Told `(bytes read, bytes to read)` while [`crate::Wal::open`] reads the log, for a
    /// progress bar on a long recovery or repair (see [`Progress`] for when it is called).
    /// Default `None`.
    pub progress: Option<Progress>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_size: 32 << 20,
            preallocate: true,
            recycle_segments: 4,
            sync: SyncPolicy::Always,
            recovery: RecoveryMode::TolerateTornTail,
            max_transaction_size: 256 << 20,
            create_if_missing: true,
            vfs: Arc::new(StdVfs),
            payload_schema: None,
            upgrade_payload_schemas: Vec::new(),
            publish_durable: false,
            progress: None,
        }
    }
}

impl Options {
    /// Sets [`Options::progress`] to call `f`.
    #[must_use]
    pub fn on_progress(mut self, f: impl Fn(u64, u64) + Send + Sync + 'static) -> Self {
        self.progress = Some(Progress::new(f));
        self
    }
    /// Sets [`Options::publish_durable`].
    #[must_use]
    pub fn publish_durable(mut self, on: bool) -> Self {
        self.publish_durable = on;
        self
    }
    /// Sets [`Options::sync`].
    #[must_use]
    pub fn sync(mut self, sync: SyncPolicy) -> Self {
        self.sync = sync;
        self
    }
    /// Sets [`Options::segment_size`].
    #[must_use]
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }
    /// Sets [`Options::preallocate`].
    #[must_use]
    pub fn preallocate(mut self, on: bool) -> Self {
        self.preallocate = on;
        self
    }
    /// Sets [`Options::recycle_segments`].
    #[must_use]
    pub fn recycle_segments(mut self, files: usize) -> Self {
        self.recycle_segments = files;
        self
    }
    /// Sets [`Options::recovery`].
    #[must_use]
    pub fn recovery(mut self, mode: RecoveryMode) -> Self {
        self.recovery = mode;
        self
    }
    /// Sets [`Options::vfs`].
    #[must_use]
    pub fn vfs(mut self, vfs: Arc<dyn Vfs>) -> Self {
        self.vfs = vfs;
        self
    }
    /// Sets [`Options::max_transaction_size`].
    #[must_use]
    pub fn max_transaction_size(mut self, bytes: u64) -> Self {
        self.max_transaction_size = bytes;
        self
    }
    /// Sets [`Options::create_if_missing`].
    #[must_use]
    pub fn create_if_missing(mut self, on: bool) -> Self {
        self.create_if_missing = on;
        self
    }

    /// Sets [`Options::payload_schema`] to `Some(schema)`.
    #[must_use]
    pub fn payload_schema(mut self, schema: u32) -> Self {
        self.payload_schema = Some(schema);
        self
    }
    /// Sets [`Options::upgrade_payload_schemas`].
    #[must_use]
    pub fn upgrade_payload_schemas(mut self, older: impl IntoIterator<Item = u32>) -> Self {
        self.upgrade_payload_schemas = older.into_iter().collect();
        self
    }
    /// Whether open accepts a segment of payload schema `schema`.
    pub(crate) fn accepts_payload_schema(&self, schema: u32) -> bool {
        match self.payload_schema {
            None => true,
            Some(v) => v == schema || self.upgrade_payload_schemas.contains(&schema),
        }
    }

    pub(crate) fn interval(&self) -> Option<Duration> {
        match self.sync {
            SyncPolicy::Interval { ms } => Some(Duration::from_millis(ms.max(1))),
            _ => None,
        }
    }
}
