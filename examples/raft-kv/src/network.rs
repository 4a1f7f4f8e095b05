//! openraft's network over HTTP: each Raft RPC is a signed `POST /raft/...` whose body is
//! the bincode-encoded request; the reply is the bincode-encoded `Result` of the target's
//! Raft. A transport failure becomes [`RPCError::Unreachable`] (openraft then backs off,
//! with [`PeerClient::backoff`]) or [`RPCError::Timeout`].

use crate::http::{self, Answer};
use crate::secret::Secret;
use crate::types::TypeConfig;
use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// The Raft RPC paths.
pub const APPEND: &str = "/raft/append";
/// See [`APPEND`].
pub const VOTE: &str = "/raft/vote";
/// See [`APPEND`].
pub const SNAPSHOT: &str = "/raft/snapshot";

/// How often a request that could not be sent is tried again within its deadline.
const SEND_TRIES: u32 = 3;

/// The codec of Raft RPC bodies.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, bincode::error::EncodeError> {
    bincode::serde::encode_to_vec(v, bincode::config::standard())
}

/// Decodes a whole Raft RPC body.
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    let (v, used) = bincode::serde::decode_from_slice(b, bincode::config::standard())
        .map_err(|e| e.to_string())?;
    if used != b.len() {
        return Err(format!("{} bytes left over", b.len() - used));
    }
    Ok(v)
}

/// Why a peer could not be reached.
#[derive(Debug, Error)]
#[error("node {target} at {addr} is unreachable: {reason}")]
pub struct PeerUnreachable {
    target: u64,
    addr: String,
    reason: String,
}

/// Makes a [`PeerClient`] for each peer openraft replicates to.
pub struct NetworkFactory {
    me: u64,
    http: reqwest::Client,
    secret: Arc<Secret>,
}

impl NetworkFactory {
    /// The network of node `me`.
    pub fn new(me: u64, http: reqwest::Client, secret: Arc<Secret>) -> Self {
        NetworkFactory { me, http, secret }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        PeerClient {
            me: self.me,
            target,
            addr: node.addr.clone(),
            http: self.http.clone(),
            secret: self.secret.clone(),
        }
    }
}

/// The connection to one peer.
pub struct PeerClient {
    me: u64,
    target: u64,
    addr: String,
    http: reqwest::Client,
    secret: Arc<Secret>,
}

type RpcResult<T, E> = Result<T, RPCError<u64, BasicNode, RaftError<u64, E>>>;

impl PeerClient {
    fn unreachable(&self, reason: String) -> Unreachable {
        Unreachable::new(&PeerUnreachable {
            target: self.target,
            addr: self.addr.clone(),
            reason,
        })
    }

    /// Sends one request, trying again with a short backoff while it could not be sent
    /// (connection refused or reset: a peer restarting) and time remains.
    async fn post(
        &self,
        path: &str,
        body: Vec<u8>,
        ttl: Duration,
    ) -> Result<Answer, reqwest::Error> {
        let deadline = Instant::now() + ttl;
        let mut pause = Duration::from_millis(10);
        let mut tries = 0;
        loop {
            tries += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let res = http::send(
                &self.http,
                &self.secret,
                &self.addr,
                reqwest::Method::POST,
                path,
                body.clone(),
                left,
            )
            .await;
            match res {
                Err(e)
                    if (e.is_connect() || e.is_request())
                        && !e.is_timeout()
                        && tries < SEND_TRIES
                        && Instant::now() + pause < deadline =>
                {
                    tokio::time::sleep(pause).await;
                    pause *= 4;
                }
                other => return other,
            }
        }
    }

    async fn call<Req, Resp, E>(
        &self,
        action: RPCTypes,
        path: &str,
        req: &Req,
        ttl: Duration,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let body = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let answer = match self.post(path, body, ttl).await {
            Ok(a) => a,
            Err(e) if e.is_timeout() => {
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: self.me,
                    target: self.target,
                    timeout: ttl,
                }));
            }
            Err(e) => return Err(RPCError::Unreachable(self.unreachable(http::cause(&e)))),
        };
        if !answer.authentic {
            return Err(RPCError::Unreachable(
                self.unreachable(
                    "its reply is not tagged with the cluster secret: not a member of this cluster"
                        .to_owned(),
                ),
            ));
        }
        if answer.status == reqwest::StatusCode::UNAUTHORIZED {
            // A peer that refuses our tag is as good as unreachable: back off, and say why.
            let why = String::from_utf8_lossy(&answer.body).into_owned();
            return Err(RPCError::Unreachable(
                self.unreachable(format!("it refused our authentication: {why}")),
            ));
        }
        if !answer.status.is_success() {
            let why = String::from_utf8_lossy(&answer.body).into_owned();
            let e = std::io::Error::other(format!(
                "node {} answered {}: {why}",
                self.target, answer.status
            ));
            return Err(RPCError::Network(NetworkError::new(&e)));
        }
        let reply: Result<Resp, RaftError<u64, E>> = decode(&answer.body).map_err(|why| {
            let e = std::io::Error::other(format!(
                "node {}'s reply does not decode: {why}",
                self.target
            ));
            RPCError::Network(NetworkError::new(&e))
        })?;
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>, openraft::error::Infallible> {
        self.call(RPCTypes::AppendEntries, APPEND, &rpc, option.hard_ttl())
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        self.call(RPCTypes::InstallSnapshot, SNAPSHOT, &rpc, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>, openraft::error::Infallible> {
        self.call(RPCTypes::Vote, VOTE, &rpc, option.hard_ttl())
            .await
    }

    fn backoff(&self) -> Backoff {
        // 50 ms doubling to 1 s, then every second: a dead peer costs little, a restarted one
        // is found again within a second.
        let steps = (0..5).map(|k| Duration::from_millis(50 << k));
        Backoff::new(steps.chain(std::iter::repeat(Duration::from_secs(1))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, LogId, Vote};

    #[test]
    #[allow(clippy::result_large_err)]
    fn raft_messages_round_trip_through_the_codec() {
        let vote = VoteRequest::new(
            Vote::new(3, 1),
            Some(LogId::new(CommittedLeaderId::new(2, 1), 9)),
        );
        let back: VoteRequest<u64> =
            decode(&encode(&vote).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, vote);
        let reply: Result<VoteResponse<u64>, RaftError<u64>> =
            Ok(VoteResponse::new(Vote::new(3, 1), None, true));
        let back: Result<VoteResponse<u64>, RaftError<u64>> =
            decode(&encode(&reply).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, reply);
        assert!(decode::<VoteRequest<u64>>(b"\xff\xff").is_err());
    }
}
