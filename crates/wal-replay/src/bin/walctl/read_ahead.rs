//! Reading the log on a thread of its own while `dump` writes what it read: the read, the
//! checksums and the decoding take about a third of a text dump's time, the text the rest, so
//! on two cores each overlaps the other.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::Scope;
use wal_format::scan::ScanEnd;
use wal_log::WalError;
use wal_log::inspect::{DirFrame, DirFrames};

/// Frames sent at once: one channel operation per batch, not per frame.
const BATCH: usize = 1024;
/// Batches read ahead of the writer (a few MiB of frames at most).
const AHEAD: usize = 4;

/// What the reading thread sends, in order.
pub(crate) enum Read {
    /// Frames in LSN order, and `(bytes read, bytes to read)` after the last of them.
    Frames(Vec<DirFrame>, (u64, u64)),
    /// Reading failed here; nothing follows.
    Failed(WalError),
    /// The log is read: how its last segment ended (see [`DirFrames::end`]).
    End(Option<(PathBuf, ScanEnd)>),
}

/// Starts reading `frames` on a thread of `scope`. Dropping the receiver stops the thread
/// at its next batch (the writer stopped early: `--to`, or a closed pipe).
pub(crate) fn read_ahead<'scope>(
    scope: &'scope Scope<'scope, '_>,
    frames: DirFrames,
) -> Receiver<Read> {
    let (tx, rx) = sync_channel(AHEAD);
    scope.spawn(move || read_all(frames, &tx));
    rx
}

fn read_all(mut frames: DirFrames, tx: &SyncSender<Read>) {
    loop {
        let mut batch = Vec::with_capacity(BATCH);
        let mut failed = None;
        while batch.len() < BATCH {
            match frames.next() {
                Some(Ok(f)) => batch.push(f),
                Some(Err(e)) => {
                    failed = Some(e);
                    break;
                }
                None => break,
            }
        }
        let done = batch.len() < BATCH;
        if !batch.is_empty() && tx.send(Read::Frames(batch, frames.progress())).is_err() {
            return;
        }
        if let Some(e) = failed {
            let _ = tx.send(Read::Failed(e));
            return;
        }
        if done {
            let _ = tx.send(Read::End(frames.end().cloned()));
            return;
        }
    }
}
