//! Plays a sequence of operations on one store, printing one JSON line per operation.

use crate::op::{CrashKind, Op};
use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt};
use openraft::{RaftTypeConfig, StorageError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::error::Error;
use std::io::{BufRead, Write};

/// Why [`play`] stopped before the end of its input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlayError {
    /// A line is not an operation of this crate's JSON form.
    #[error("line {line}: not an operation")]
    Input {
        /// 1-based line number.
        line: usize,
        /// What the parser said.
        #[source]
        source: serde_json::Error,
    },
    /// The input could not be read.
    #[error("reading the operations")]
    Read(#[source] std::io::Error),
    /// The output could not be written.
    #[error("writing the results")]
    Write(#[source] std::io::Error),
    /// The store did not open again after a crash.
    #[error("line {line}: the store did not open after the crash")]
    Reopen {
        /// 1-based line number of the crash.
        line: usize,
        /// The store's error.
        #[source]
        source: Box<dyn Error + Send + Sync>,
    },
}

/// Reads operations (one JSON [`Op`] a line; blank lines are skipped), runs each on `store`
/// and writes one line of outcome each: `{"ok":...}` with the call's result, or
/// `{"err":"..."}` with the store's error. At an [`Op::Crash`], `crash` is given the store
/// and returns the one to go on with, and the outcome line is `{"ok":"crashed"}`. Returns
/// how many operations ran.
///
/// # Errors
/// [`PlayError`] for unreadable input or output, or a store that does not open again; a
/// failing call is an outcome line, not an error.
pub async fn play<C, S, F>(
    input: impl BufRead,
    mut out: impl Write,
    mut store: S,
    mut crash: F,
) -> Result<usize, PlayError>
where
    C: RaftTypeConfig<NodeId = u64>,
    C::Entry: Serialize + DeserializeOwned,
    S: RaftLogStorage<C>,
    F: FnMut(S, CrashKind) -> Result<S, Box<dyn Error + Send + Sync>>,
{
    let mut played = 0;
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(PlayError::Read)?;
        if line.trim().is_empty() {
            continue;
        }
        let op: Op<C::Entry> = serde_json::from_str(&line).map_err(|source| PlayError::Input {
            line: i + 1,
            source,
        })?;
        let outcome = if let Op::Crash { kind } = op {
            store = crash(store, kind).map_err(|source| PlayError::Reopen {
                line: i + 1,
                source,
            })?;
            json!({ "ok": "crashed" })
        } else {
            call(&mut store, op).await
        };
        // One line at a time, flushed, so a reader sees each outcome as soon as it exists.
        writeln!(out, "{outcome}")
            .and_then(|()| out.flush())
            .map_err(PlayError::Write)?;
        played += 1;
    }
    Ok(played)
}

/// Runs one call and gives its outcome line.
async fn call<C, S>(store: &mut S, op: Op<C::Entry>) -> Value
where
    C: RaftTypeConfig<NodeId = u64>,
    C::Entry: Serialize,
    S: RaftLogStorage<C>,
{
    match op {
        Op::SaveVote { vote } => outcome(store.save_vote(&vote).await),
        Op::Append { entries } => outcome(store.blocking_append(entries).await),
        Op::Truncate { log_id } => outcome(store.truncate(log_id).await),
        Op::Purge { log_id } => outcome(store.purge(log_id).await),
        Op::SaveCommitted { committed } => outcome(store.save_committed(committed).await),
        Op::GetLogState => outcome(store.get_log_state().await.map(
            |s| json!({ "last_purged_log_id": s.last_purged_log_id, "last_log_id": s.last_log_id }),
        )),
        Op::ReadVote => outcome(store.read_vote().await),
        Op::ReadCommitted => outcome(store.read_committed().await),
        Op::TryGetLogEntries { start, end } => outcome(match end {
            Some(end) => store.try_get_log_entries(start..end).await,
            None => store.try_get_log_entries(start..).await,
        }),
        Op::ReaderGetLogEntries { start, end } => {
            let mut reader = store.get_log_reader().await;
            outcome(reader.limited_get_log_entries(start, end).await)
        }
        Op::Crash { .. } => json!({ "err": "a crash is not a storage call" }),
    }
}

fn outcome<T: Serialize>(r: Result<T, StorageError<u64>>) -> Value {
    match r.map(|v| serde_json::to_value(v)) {
        Ok(Ok(v)) => json!({ "ok": v }),
        Ok(Err(e)) => json!({ "err": format!("result not serializable: {e}") }),
        Err(e) => json!({ "err": e.to_string() }),
    }
}
