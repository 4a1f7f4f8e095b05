//! The layout of a data directory: `<root>/log/` and `<root>/snapshots/`.

use crate::error::{ReplayError, Result};
use crate::snapshot::SnapshotStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wal_log::Vfs;

/// Name of the log directory under the data directory.
pub const LOG_DIR: &str = "log";
/// Name of the snapshot directory under the data directory.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// The layout of a data directory: `<root>/log/` holds the log, `<root>/snapshots/` the
/// snapshots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    pub(super) root: PathBuf,
}

impl DataDir {
    /// The data directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }
    /// The data directory itself.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The log directory.
    #[must_use]
    pub fn log_dir(&self) -> PathBuf {
        self.root.join(LOG_DIR)
    }
    /// The snapshot directory.
    #[must_use]
    pub fn snapshot_dir(&self) -> PathBuf {
        self.root.join(SNAPSHOT_DIR)
    }
    /// Refuses a root that is a log directory itself (it holds segment files, the log's lock
    /// or its other files): recovering there would create `<root>/log` beside the user's log
    /// and silently start empty. A root that does not exist or cannot be listed passes: the
    /// caller reports that in its own words.
    ///
    /// # Errors
    /// [`ReplayError::NotADataDir`](crate::ReplayError::NotADataDir).
    pub fn check_not_a_log_dir(&self, vfs: &dyn Vfs) -> Result<()> {
        let Ok(names) = vfs.list(&self.root) else {
            return Ok(());
        };
        // A log directory cannot hold a `log` entry (it would not open): with one, this is a
        // data directory, whatever else lies beside it.
        if names.iter().any(|n| n == LOG_DIR) {
            return Ok(());
        }
        // A snapshot directory passed as the data directory would get a new, empty log.
        if let Some(name) = names.iter().find(|n| {
            n.ends_with(".snap") || n.ends_with(".snap.tmp") || n.ends_with(".snap.corrupt")
        }) {
            return Err(ReplayError::NotADataDir {
                dir: self.root.clone(),
                reason: format!(
                    "it holds {name}, a snapshot file: it looks like the snapshot directory; pass its parent, the data directory that holds {LOG_DIR}/ and {SNAPSHOT_DIR}/"
                ),
            });
        }
        let log_file = names.iter().find(|n| {
            // A lone `LOCK` proves nothing (an engine may keep its own lock there).
            !matches!(
                wal_log::layout::classify(n),
                wal_log::layout::Entry::Foreign
                    | wal_log::layout::Entry::Lock
                    | wal_log::layout::Entry::Ignored
            )
        });
        match log_file {
            None => Ok(()),
            Some(name) => Err(ReplayError::NotADataDir {
                dir: self.root.clone(),
                reason: format!(
                    "it holds {name}, a file of a log directory: it looks like a log directory itself; pass its parent, the data directory that holds {LOG_DIR}/ and {SNAPSHOT_DIR}/"
                ),
            }),
        }
    }

    /// Refuses a log that is not this data directory's own `log/` (a checkpoint would
    /// otherwise write snapshots where recovery never looks, or into the log directory).
    ///
    /// # Errors
    /// [`ReplayError::NotADataDir`](crate::ReplayError::NotADataDir).
    pub fn check_owns_log(&self, wal_dir: &Path) -> Result<()> {
        let want = self.log_dir();
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        };
        if same(wal_dir, &want) {
            return Ok(());
        }
        Err(ReplayError::NotADataDir {
            dir: self.root.clone(),
            reason: format!(
                "the log is at {}, not at {}: open the log with wal_replay::recover (or Wal::open on <root>/{LOG_DIR})",
                wal_dir.display(),
                want.display()
            ),
        })
    }

    /// The snapshot store of this directory, through `vfs`.
    #[must_use]
    pub fn snapshots(&self, vfs: Arc<dyn Vfs>) -> SnapshotStore {
        SnapshotStore::new(vfs, self.snapshot_dir())
    }
}
