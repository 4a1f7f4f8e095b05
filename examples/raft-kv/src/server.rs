//! The HTTP side of a node: Raft RPCs from peers and the client API, on one listener, all
//! behind the authentication check of [`crate::auth`].

use crate::auth::{self, Verifier};
use crate::batcher::{Batcher, MAX_WRITE_BYTES, write_bytes};
use crate::membership;
use crate::network::{self, decode, encode};
use crate::types::{
    ApiError, GetReply, GetRequest, InitReply, InitRequest, NodeStatus, Raft, ScanReply,
    StateMachine, TypeConfig, WalCounters, WriteReply,
};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kv::store::KvEvent;
use openraft::BasicNode;
use openraft::error::{CheckIsLeaderError, ForwardToLeader, InitializeError, RaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The largest Raft RPC body accepted (a batch of entries or a snapshot chunk).
const RAFT_BODY_LIMIT: usize = 64 << 20;
/// The largest client request body accepted.
const CLIENT_BODY_LIMIT: usize = 4 << 20;

/// Client API paths.
pub mod paths {
    /// `POST` a JSON `KvEvent`: a put or a delete, answered once committed.
    pub const WRITE: &str = "/kv/write";
    /// `POST` a JSON `GetRequest`: a linearizable read.
    pub const GET: &str = "/kv/get";
    /// `POST`: a linearizable scan of every key.
    pub const SCAN: &str = "/kv/scan";
    /// `POST`: this node's own applied state, no Raft round.
    pub const LOCAL_SCAN: &str = "/kv/local-scan";
    /// `POST`: this node's Raft metrics.
    pub const STATUS: &str = "/status";
    /// `POST` a JSON `InitRequest`: initialise the membership.
    pub const INIT: &str = "/cluster/init";
    /// `POST` a JSON `AddNodeRequest`: add a node (learner, caught up, then voter).
    pub const ADD_NODE: &str = "/cluster/add-node";
    /// `POST` a JSON `RemoveNodeRequest`: take a node out of the membership.
    pub const REMOVE_NODE: &str = "/cluster/remove-node";
}

/// What every handler shares.
pub struct App {
    /// This node's Raft.
    pub raft: Raft,
    /// Its state machine (read directly for reads once Raft said they may be served).
    pub sm: StateMachine,
    /// The node's write-ahead log (`None` for `--store memory`), for its counters.
    pub wal: Option<Arc<wal_log::Wal>>,
    /// The request checker.
    pub verifier: Verifier,
    /// How long a linearizable read may wait for a majority.
    pub op_timeout: Duration,
    /// Where writes go (batched into Raft entries).
    pub writes: Batcher,
}

/// The router of a node.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(network::APPEND, post(raft_append))
        .route(network::VOTE, post(raft_vote))
        .route(network::SNAPSHOT, post(raft_snapshot))
        .route(paths::WRITE, post(kv_write))
        .route(paths::GET, post(kv_get))
        .route(paths::SCAN, post(kv_scan))
        .route(paths::LOCAL_SCAN, post(kv_local_scan))
        .route(paths::STATUS, post(status).get(status))
        .route(paths::INIT, post(init))
        .route(paths::ADD_NODE, post(membership::add_node))
        .route(paths::REMOVE_NODE, post(membership::remove_node))
        .layer(middleware::from_fn_with_state(app.clone(), authenticate))
        .with_state(app)
}

/// Refuses, with 401 and a warning naming the peer, every request whose tag does not verify;
/// tags the replies to the others.
async fn authenticate(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let limit = if path.starts_with("/raft/") {
        RAFT_BODY_LIMIT
    } else {
        CLIENT_BODY_LIMIT
    };
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(%peer, path, "refused a request whose body is unreadable or over {limit} bytes: {e}");
            return api_error(&ApiError::BadRequest {
                message: format!("the body is unreadable or over {limit} bytes"),
            });
        }
    };
    let header = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok());
    if let Err(e) = app
        .verifier
        .verify(parts.method.as_str(), path, header, &bytes, auth::now_ms())
    {
        tracing::warn!(%peer, method = %parts.method, path, reason = %e, "refused an unauthenticated request");
        return api_error(&ApiError::Unauthorized {
            message: e.to_string(),
        });
    }
    let nonce = header(auth::NONCE).unwrap_or_default().to_owned();
    let reply = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    sign_reply(&app.verifier, &nonce, reply).await
}

/// Adds the reply's tag (over the request's nonce, the status and the body).
async fn sign_reply(verifier: &Verifier, nonce: &str, reply: Response) -> Response {
    let (mut parts, body) = reply.into_parts();
    // Replies are made here, of bounded size; one that cannot be read is a server error.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let tag = verifier.sign_reply(nonce, parts.status.as_u16(), &bytes);
    if let Ok(v) = header::HeaderValue::from_str(&tag) {
        parts.headers.insert(auth::REPLY_TAG, v);
    }
    Response::from_parts(parts, Body::from(bytes))
}

pub(crate) fn json<T: Serialize>(status: StatusCode, v: &T) -> Response {
    match serde_json::to_vec(v) {
        Ok(b) => (status, [(header::CONTENT_TYPE, "application/json")], b).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

pub(crate) fn api_error(e: &ApiError) -> Response {
    let status = match e {
        ApiError::NotLeader { .. } => StatusCode::MISDIRECTED_REQUEST,
        ApiError::Unavailable { .. } | ApiError::Stopped { .. } => StatusCode::SERVICE_UNAVAILABLE,
        ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
        ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
        ApiError::Conflict { .. } => StatusCode::CONFLICT,
    };
    json(status, e)
}

pub(crate) fn bad_request(what: &str, e: impl std::fmt::Display) -> Response {
    api_error(&ApiError::BadRequest {
        message: format!("{what}: {e}"),
    })
}

/// A Raft RPC's reply, bincode-encoded.
fn raft_reply<T: Serialize>(v: &T) -> Response {
    match encode(v) {
        Ok(b) => (StatusCode::OK, b).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn raft_append(State(app): State<Arc<App>>, body: Bytes) -> Response {
    match decode::<AppendEntriesRequest<TypeConfig>>(&body) {
        Ok(req) => raft_reply(&app.raft.append_entries(req).await),
        Err(e) => bad_request("malformed append-entries request", e),
    }
}

async fn raft_vote(State(app): State<Arc<App>>, body: Bytes) -> Response {
    match decode::<VoteRequest<u64>>(&body) {
        Ok(req) => raft_reply(&app.raft.vote(req).await),
        Err(e) => bad_request("malformed vote request", e),
    }
}

async fn raft_snapshot(State(app): State<Arc<App>>, body: Bytes) -> Response {
    match decode::<InstallSnapshotRequest<TypeConfig>>(&body) {
        Ok(req) => raft_reply(&app.raft.install_snapshot(req).await),
        Err(e) => bad_request("malformed install-snapshot request", e),
    }
}

/// A `NotLeader` answer naming the leader openraft named.
pub(crate) fn not_leader(f: ForwardToLeader<u64, BasicNode>) -> ApiError {
    ApiError::NotLeader {
        leader_id: f.leader_id,
        leader_addr: f.leader_node.map(|n| n.addr),
    }
}

fn no_majority(app: &App, what: &str) -> ApiError {
    ApiError::Unavailable {
        message: format!(
            "no majority answered within {} ms; the {what} may still take effect",
            app.op_timeout.as_millis()
        ),
    }
}

async fn kv_write(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let event: KvEvent = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => return bad_request("malformed write", e),
    };
    if let Err(why) = check_write(&event) {
        return bad_request("refused write", why);
    }
    match app.writes.write(event).await {
        Ok(index) => json(StatusCode::OK, &WriteReply { index }),
        Err(e) => api_error(&e),
    }
}

/// Keys and values must print as one `KEY<TAB>VALUE` line each (`scan`, `local-scan`).
fn check_write(event: &KvEvent) -> Result<(), &'static str> {
    let (key, value) = match event {
        KvEvent::Put { key, value } => (key, Some(value)),
        KvEvent::Del { key } => (key, None),
    };
    if key.is_empty() {
        return Err("the key is empty");
    }
    if write_bytes(event) > MAX_WRITE_BYTES {
        return Err("the key and value are over 1 MiB");
    }
    if key.contains(['\t', '\n', '\r']) {
        return Err("the key holds a tab or a line break");
    }
    if value.is_some_and(|v| v.contains(['\n', '\r'])) {
        return Err("the value holds a line break");
    }
    Ok(())
}

/// Waits until this node may serve a linearizable read (it is the leader, a majority
/// confirmed it, and it applied everything committed before the read).
async fn linearizable(app: &App) -> Result<(), ApiError> {
    match tokio::time::timeout(app.op_timeout, app.raft.ensure_linearizable()).await {
        Err(_) => Err(no_majority(app, "read")),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => Err(not_leader(f)),
        Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)))) => {
            Err(ApiError::Unavailable {
                message: q.to_string(),
            })
        }
        Ok(Err(RaftError::Fatal(f))) => Err(ApiError::Stopped {
            message: f.to_string(),
        }),
    }
}

async fn kv_get(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let req: GetRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request("malformed get", e),
    };
    if let Err(e) = linearizable(&app).await {
        return api_error(&e);
    }
    let value = app.sm.with_state(|s| s.0.map.get(&req.key).cloned());
    json(StatusCode::OK, &GetReply { value })
}

/// Every key and value of this node's state, with the index applied (at least) when read.
fn local_state(app: &App) -> ScanReply {
    // Read before the state: the state is at least as far along as this says.
    let applied = app.raft.metrics().borrow().last_applied.map(|l| l.index);
    let entries = app.sm.with_state(|s| {
        s.0.map
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    });
    ScanReply { applied, entries }
}

async fn kv_scan(State(app): State<Arc<App>>) -> Response {
    match linearizable(&app).await {
        Ok(()) => json(StatusCode::OK, &local_state(&app)),
        Err(e) => api_error(&e),
    }
}

async fn kv_local_scan(State(app): State<Arc<App>>) -> Response {
    json(StatusCode::OK, &local_state(&app))
}

/// This node's view of itself.
pub fn node_status(raft: &Raft, wal: Option<&wal_log::Wal>) -> NodeStatus {
    let m = raft.metrics().borrow().clone();
    NodeStatus {
        id: m.id,
        state: format!("{:?}", m.state),
        term: m.current_term,
        leader: m.current_leader,
        last_log_index: m.last_log_index,
        last_applied: m.last_applied.map(|l| l.index),
        snapshot: m.snapshot.map(|l| l.index),
        purged: m.purged.map(|l| l.index),
        replication: m.replication.map(|r| {
            r.into_iter()
                .map(|(id, l)| (id, l.map(|l| l.index)))
                .collect()
        }),
        voters: m.membership_config.membership().voter_ids().collect(),
        membership_index: m.membership_config.log_id().map(|l| l.index),
        running: m.running_state.is_ok(),
        wal: wal.map(|w| {
            let s = w.stats();
            WalCounters {
                commits: s.commits,
                fsyncs: s.fsyncs,
            }
        }),
    }
}

async fn status(State(app): State<Arc<App>>) -> Response {
    json(StatusCode::OK, &node_status(&app.raft, app.wal.as_deref()))
}

async fn init(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let req: InitRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request("malformed init", e),
    };
    let nodes: BTreeMap<u64, BasicNode> = req
        .nodes
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr)))
        .collect();
    match app.raft.initialize(nodes).await {
        Ok(()) => json(StatusCode::OK, &InitReply { already: false }),
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
            let m = app.raft.metrics().borrow().membership_config.clone();
            let current: BTreeMap<u64, String> = m
                .membership()
                .nodes()
                .map(|(id, n)| (*id, n.addr.clone()))
                .collect();
            let voters: Vec<u64> = m.membership().voter_ids().collect();
            if current == req.nodes && voters.iter().eq(req.nodes.keys()) {
                json(StatusCode::OK, &InitReply { already: true })
            } else {
                api_error(&ApiError::Conflict {
                    message: format!(
                        "the cluster is initialised already, with voters {voters:?} and nodes {current:?}"
                    ),
                })
            }
        }
        Err(RaftError::APIError(InitializeError::NotInMembers(e))) => {
            bad_request("bad membership", e)
        }
        Err(RaftError::Fatal(f)) => api_error(&ApiError::Stopped {
            message: f.to_string(),
        }),
    }
}
