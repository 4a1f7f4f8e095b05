//! A follower's way back after truncation passed it: install the primary's snapshot into the
//! follower's own data directory ([`install_snapshot`]).
//!
//! A follower keeps a replica of its primary in a data directory of its own: its own log
//! (with its own log id and LSNs), holding the primary's transactions as it ships them, and
//! its own snapshots. When the primary truncates its log past the follower's position, the
//! transactions in between exist only inside the primary's snapshots. [`recover`] restores
//! only snapshots of the log it opens (a snapshot of another log id is rejected: its fence is
//! an LSN of that other log), so the primary's snapshot cannot simply be copied over.
//! [`install_snapshot`] writes its state as a snapshot of the follower's own log, with its
//! fence at that log's end, so that the next recovery of the follower starts from it and
//! applies only what the follower ships afterwards; and it returns the position in the
//! primary's log to follow from.
//!
//! [`recover`]: crate::recover

use crate::error::{ReplayError, Result, io_err};
use crate::recover::{DataDir, read_log_id};
use crate::snapshot::{
    SNAPSHOT_HEADER_LEN, SnapshotFile, SnapshotHeader, SnapshotStore, VerifiedSnapshot, read_full,
};
use std::path::Path;
use wal_log::{FollowPosition, OpenMode, Options, Wal};

/// What [`install_snapshot`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledSnapshot {
    /// The snapshot it wrote into the follower's `snapshots/`: the primary's state, as a
    /// snapshot of the follower's log whose fence is the end of that log when it was
    /// installed.
    pub snapshot: VerifiedSnapshot,
    /// Where the follower follows the primary from: just after the primary snapshot's fence,
    /// in the primary's log. Record it durably before shipping anything (for example with the
    /// first transaction shipped); a follower that dies before that finds its old position
    /// truncated again and installs again.
    pub resume: FollowPosition,
}

/// Installs `snapshot`, a snapshot file of another log (the primary's: copied from its
/// `snapshots/`, or read there), into the data directory `root` of a follower, which need
/// not exist yet. The follower must not be running: its log is opened (locked) here.
///
/// 1. `snapshot` is verified in full (checksum; its log id may be any other).
/// 2. The follower's log is opened (created when missing, then stamped with the snapshot's
///    event schema), and synced; its last LSN `E` becomes the new snapshot's fence.
/// 3. The snapshot's state bytes are written to `root/snapshots/<E>.snap` as a snapshot of
///    the follower's log, with the source's event schema, atomically (temporary file, fsync,
///    rename, directory fsync); then a checkpoint marker for `E` is appended.
///
/// The next [`recover`](crate::recover) of `root` restores it (it is the newest snapshot) and
/// applies what the follower's log holds after `E`: nothing until the follower ships again,
/// from [`InstalledSnapshot::resume`] (`TailReader::resume`, or `Wal::follow_at` in the
/// primary's process). Older snapshots and log segments of the follower stay until its own
/// checkpoints prune and truncate them. Running it again installs again (the state is the
/// snapshot's either way).
///
/// # Errors
/// [`ReplayError::NotADataDir`] when `root` is a log directory; [`ReplayError::BadSnapshot`]
/// for a snapshot that does not verify, or that belongs to the follower's own log (recovery
/// restores those itself; installing one would move its fence); [`ReplayError::Wal`] with
/// [`wal_log::WalError::AlreadyOpen`] while the follower runs; I/O errors.
pub fn install_snapshot(
    root: impl AsRef<Path>,
    snapshot: impl AsRef<Path>,
    opts: Options,
) -> Result<InstalledSnapshot> {
    let data = DataDir::new(root.as_ref());
    let vfs = opts.vfs.clone();
    data.check_not_a_log_dir(&*vfs)?;
    let (source_store, source) = verify_source(&opts, snapshot.as_ref())?;
    let bad = |reason: String| ReplayError::BadSnapshot {
        path: source.file.path.clone(),
        reason,
    };
    let log_dir = data.log_dir();
    let mut wal_opts = opts.create_if_missing(true);
    match read_log_id(&*vfs, &log_dir) {
        Ok(Some(own)) if own == source.header.log_id => {
            return Err(bad(format!(
                "it is a snapshot of this data directory's own log {own}: recovery restores it as it is"
            )));
        }
        Ok(Some(_)) => {}
        // A new follower: its log carries the events' schema from its first segment on.
        Ok(None) | Err(ReplayError::NotFound { .. }) => {
            if wal_opts.payload_schema.is_none() {
                wal_opts = wal_opts.payload_schema(source.header.event_schema);
            }
        }
        Err(e) => return Err(e),
    }
    let (wal, _) = Wal::open(&log_dir, wal_opts)?;
    wal.sync()?;
    let fence = wal.last_lsn();
    let store = data.snapshots(vfs);
    let installed = store.copy_from(&source_store, &source, wal.log_id(), fence)?;
    wal.checkpoint_marker(fence)?;
    tracing::info!(
        from = %source.file.path.display(),
        primary_fence = source.header.fence.0,
        fence = fence.0,
        "installed a snapshot of another log"
    );
    Ok(InstalledSnapshot {
        snapshot: installed,
        resume: FollowPosition::after_fence(source.header.log_id, source.header.fence),
    })
}

/// The snapshot file at `path`, verified in full, and a store for the directory it is in.
/// Its fence is taken from its header, whatever the file is named.
fn verify_source(opts: &Options, path: &Path) -> Result<(SnapshotStore, VerifiedSnapshot)> {
    let vfs = opts.vfs.clone();
    let f = vfs
        .open(path, OpenMode::Read)
        .map_err(io_err("open", path))?;
    let file_len = f.len().map_err(io_err("stat", path))?;
    let mut head = [0u8; SNAPSHOT_HEADER_LEN];
    let n = read_full(&*f, &mut head, 0).map_err(io_err("read", path))?;
    let header = SnapshotHeader::decode(&head[..n]).map_err(|reason| ReplayError::BadSnapshot {
        path: path.to_path_buf(),
        reason,
    })?;
    let file = SnapshotFile {
        path: path.to_path_buf(),
        fence: header.fence,
        file_len,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let store = SnapshotStore::new(vfs, dir);
    let verified = store.verify(&file, None)?;
    Ok((store, verified))
}
