//! The Raft type configuration of raft-kv and the wire types of its client API.

use crate::state_machine::KvState;
use kv::store::KvEvent;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Cursor;

openraft::declare_raft_types!(
    /// raft-kv's Raft types: an entry carries a batch of kv events (the writes that arrived
    /// together, see [`crate::batcher`]), node ids are `u64`, a node is its address
    /// ([`openraft::BasicNode`]), snapshots are whole files in memory.
    pub TypeConfig:
        D = Vec<KvEvent>,
        R = (),
);

/// The state machine of every node: the kv example's ordered map behind wal-raft's adapter.
pub type StateMachine = wal_raft::StateMachineStore<TypeConfig, KvState>;

/// The Raft handle of a node.
pub type Raft = openraft::Raft<TypeConfig>;

/// Why a client request failed: the JSON body of every non-200 reply of the client API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum ApiError {
    /// This node is not the leader; the leader's id and address when it knows them.
    #[error("not the leader (leader: {})", leader_text(*.leader_id, .leader_addr.as_deref()))]
    NotLeader {
        /// The leader's id, when known.
        leader_id: Option<u64>,
        /// The leader's address, when known.
        leader_addr: Option<String>,
    },
    /// The request could not be served now (no majority within the time limit, or a
    /// leader change); it may be retried, on this node or another.
    #[error("unavailable: {message}")]
    Unavailable {
        /// What happened.
        message: String,
    },
    /// The request is malformed: retrying it is pointless.
    #[error("bad request: {message}")]
    BadRequest {
        /// What is wrong with it.
        message: String,
    },
    /// The request carried no valid authentication tag.
    #[error("refused: {message}")]
    Unauthorized {
        /// Why (never which part of the secret).
        message: String,
    },
    /// The node's Raft stopped (for example its log was poisoned by an I/O error).
    #[error("the node is out of service: {message}")]
    Stopped {
        /// The fatal error.
        message: String,
    },
    /// The cluster was initialised already with another membership.
    #[error("conflict: {message}")]
    Conflict {
        /// What is in place.
        message: String,
    },
}

fn leader_text(id: Option<u64>, addr: Option<&str>) -> String {
    match (id, addr) {
        (Some(id), Some(addr)) => format!("node {id} at {addr}"),
        (Some(id), None) => format!("node {id}"),
        _ => "unknown".to_owned(),
    }
}

/// The reply to a committed write.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WriteReply {
    /// The Raft log index the write committed at.
    pub index: u64,
}

/// A linearizable read of one key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetRequest {
    /// The key.
    pub key: String,
}

/// The value of a key, when present.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetReply {
    /// The value, `None` when the key is absent.
    pub value: Option<String>,
}

/// Every key and value, sorted, and the applied index they reflect.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScanReply {
    /// The index the node had applied (at least) when it read the state.
    pub applied: Option<u64>,
    /// Keys and values in key order.
    pub entries: Vec<(String, String)>,
}

/// A request to initialise the membership.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InitRequest {
    /// Node ids and their addresses.
    pub nodes: BTreeMap<u64, String>,
}

/// The reply to an initialisation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InitReply {
    /// True when the cluster already had exactly this membership (nothing was done).
    pub already: bool,
}

/// One node's own view of itself, from its Raft metrics.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's id.
    pub id: u64,
    /// `Leader`, `Follower`, `Candidate`, `Learner` or `Shutdown`.
    pub state: String,
    /// The node's current term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<u64>,
    /// The index of its last log entry.
    pub last_log_index: Option<u64>,
    /// The index it has applied to its state machine.
    pub last_applied: Option<u64>,
    /// The index its newest snapshot covers.
    pub snapshot: Option<u64>,
    /// The index its log is purged up to.
    pub purged: Option<u64>,
    /// On a leader: each node's matched index.
    pub replication: Option<BTreeMap<u64, Option<u64>>>,
    /// The voters of the membership it knows of.
    pub voters: Vec<u64>,
    /// The log index of the entry that set that membership (each change commits one).
    #[serde(default)]
    pub membership_index: Option<u64>,
    /// False once Raft stopped on a fatal error (the node then leaves service).
    pub running: bool,
    /// Its write-ahead log's counters (`None` for `--store memory`).
    pub wal: Option<WalCounters>,
}

/// A node's write-ahead log counters, from `wal_log::Stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalCounters {
    /// Transactions committed (Raft appends, votes, truncations, purges).
    pub commits: u64,
    /// fsyncs done.
    pub fsyncs: u64,
}

/// A request to add node `id` at `addr`: first as a learner that catches up, then as a voter.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AddNodeRequest {
    /// The new node's id.
    pub id: u64,
    /// Its `HOST:PORT`, which every member learns from the membership.
    pub addr: String,
}

/// A request to take node `id` out of the membership.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RemoveNodeRequest {
    /// The node's id.
    pub id: u64,
}

/// The membership after a change.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MembershipReply {
    /// True when the membership was already as asked (nothing was done).
    pub already: bool,
    /// The voters.
    pub voters: Vec<u64>,
    /// The learners (members that replicate but do not vote).
    pub learners: Vec<u64>,
}
