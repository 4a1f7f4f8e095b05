//! raft-kv as a library: the node, its network and authentication, and the client, used by
//! the `raft-kv` binary and its tests. See `main.rs` for the commands.
#![forbid(unsafe_code)]

pub mod auth;
pub mod batcher;
pub mod client;
pub mod http;
pub mod identity;
pub mod load;
pub mod mem_log;
pub mod membership;
pub mod network;
pub mod node;
pub mod peers;
pub mod secret;
pub mod server;
pub mod state_machine;
pub mod status;
pub mod types;

use client::ClientError;

/// Where a node keeps its Raft log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// A walrus write-ahead log (wal-raft), fsynced: durable.
    Wal,
    /// Memory only, NO durability: the benchmark's upper bound.
    Memory,
}

/// Why a command failed; each kind has its exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad usage (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The secret file (exit 2).
    #[error(transparent)]
    Secret(#[from] secret::SecretError),
    /// A refused data directory (exit 2).
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// A client request failed (exit 1; 2 when authentication was refused or the request
    /// was malformed).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The Raft log or state machine did not open or failed (exit 1).
    #[error(transparent)]
    Store(#[from] wal_raft::RaftStoreError),
    /// openraft refused to start (exit 1).
    #[error("Raft: {0}")]
    Raft(#[source] Box<openraft::error::Fatal<u64>>),
    /// The node's Raft stopped on a fatal error and it left service (exit 1).
    #[error("the node left service: {0}")]
    Fatal(String),
    /// An I/O error of the node (exit 1).
    #[error("{op}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl From<openraft::error::Fatal<u64>> for Error {
    fn from(e: openraft::error::Fatal<u64>) -> Self {
        Error::Raft(Box::new(e))
    }
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Secret(_) | Error::Identity(_) => 2,
            Error::Client(c) if c.is_auth() || c.is_bad_request() => 2,
            _ => 1,
        }
    }
}
