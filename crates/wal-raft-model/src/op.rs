//! The operations a sequence is made of, as JSON lines both players read.

use openraft::{LogId, Vote};
use serde::{Deserialize, Serialize};
// `declare_raft_types!` names the snapshot type `Cursor<Vec<u8>>` unqualified.
use std::io::Cursor;

/// An application request, with the JSON form of openraft-memstore's `ClientRequest`, so an
/// entry written by one player reads as the same JSON in the other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The client's name.
    pub client: String,
    /// The request's serial number.
    pub serial: u64,
    /// The payload.
    pub status: String,
}

/// The response type memstore declares (`ClientResponse`); no state machine runs here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response(pub Option<String>);

openraft::declare_raft_types!(
    /// The type config of the wal-raft player: memstore's `TypeConfig` with this crate's
    /// copies of its request and response types (node ids `u64`, nodes `()`).
    pub ModelConfig:
        D = Request,
        R = Response,
        Node = (),
);

/// One line of a sequence: a call of openraft's v2 log storage API, with its arguments, or a
/// crash. `E` is the store's entry type.
///
/// Externally tagged (`"read_vote"`, `{"append":{"entries":[...]}}`): an internally tagged
/// enum would buffer its fields, and buffered map keys (a membership's node ids) no longer
/// parse as integers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op<E> {
    /// `save_vote(vote)`.
    SaveVote {
        /// The vote.
        vote: Vote<u64>,
    },
    /// `append(entries, callback)`, waiting for the callback (`blocking_append`).
    Append {
        /// The entries, continuing the log.
        entries: Vec<E>,
    },
    /// `truncate(log_id)`: delete `[log_id.index, ∞)`.
    Truncate {
        /// The first entry removed.
        log_id: LogId<u64>,
    },
    /// `purge(log_id)`: delete `(-∞, log_id.index]`.
    Purge {
        /// The last entry removed.
        log_id: LogId<u64>,
    },
    /// `save_committed(committed)`.
    SaveCommitted {
        /// The committed log id.
        committed: Option<LogId<u64>>,
    },
    /// `get_log_state()`.
    GetLogState,
    /// `read_vote()`.
    ReadVote,
    /// `read_committed()`.
    ReadCommitted,
    /// `try_get_log_entries(start..end)` on the store, `start..` when `end` is `None`.
    TryGetLogEntries {
        /// First index asked for.
        start: u64,
        /// One past the last index asked for, or no bound.
        end: Option<u64>,
    },
    /// `get_log_reader()`, then `limited_get_log_entries(start, end)` on that reader.
    ReaderGetLogEntries {
        /// First index asked for.
        start: u64,
        /// One past the last index asked for (`start < end`).
        end: u64,
    },
    /// The store's process dies and a new one opens the store again. memstore keeps its
    /// state: it is the model of what was durable. [`generate`](crate::generate) puts a
    /// crash only right after a call that waits until everything before it is durable (an
    /// append whose callback fired, a `save_vote`, a `purge` that moved forward), so a
    /// correct durable store holds exactly memstore's state, and every output after the crash
    /// must match memstore's. What survives an unacknowledged tail (a truncation or a
    /// committed id not followed by such a call) is left to `crash_model.rs`, whose own model
    /// accepts any prefix between the acknowledged and the last call.
    Crash {
        /// How the process dies.
        kind: CrashKind,
    },
}

/// How the wal-raft player's store goes down at an [`Op::Crash`] (memstore ignores it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashKind {
    /// Power cut on the simulated file system: only synced bytes and directory entries
    /// survive. On a real directory: the store is dropped and opened again.
    DurableOnly,
    /// Power cut keeping every written byte (the page cache reached the disk).
    AllWritten,
    /// Power cut tearing the last unsynced write after its first sector.
    TornLastWrite,
    /// The store is dropped and opened again with nothing lost (a restart, or a `SIGKILL`
    /// of the process: the kernel keeps what was written).
    Restart,
}

impl CrashKind {
    /// Every kind, for the generator.
    pub const ALL: [CrashKind; 4] = [
        CrashKind::DurableOnly,
        CrashKind::AllWritten,
        CrashKind::TornLastWrite,
        CrashKind::Restart,
    ];
}
