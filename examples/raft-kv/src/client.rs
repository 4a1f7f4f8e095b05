//! The client side of the client API: it finds the leader itself (following the
//! `NotLeader` replies), tries the other nodes when one is down, and gives up after
//! `--timeout` with the last error seen.

use crate::http;
use crate::peers::Peers;
use crate::secret::Secret;
use crate::types::ApiError;
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;

/// The longest one request may wait for its answer (the node's own majority wait is shorter,
/// so a node without a majority answers before this).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(6);
/// The first pause after every node failed once; it doubles up to [`MAX_PAUSE`]. An
/// election takes about a second here (400-800 ms of silence, then a vote): a longer pause
/// would mostly be spent after the new leader is already serving.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// Why a client request failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The cluster refused the request for good (bad request, refused authentication,
    /// conflicting membership).
    #[error("node {node}: {error}")]
    Refused {
        /// The node that said so.
        node: u64,
        /// What it said.
        error: ApiError,
    },
    /// No node could serve it within the timeout.
    #[error("gave up after {:.1} s ({tries} tries): {last}", elapsed.as_secs_f64())]
    Timeout {
        /// Time spent.
        elapsed: Duration,
        /// Requests sent.
        tries: u64,
        /// The last failure.
        last: String,
    },
    /// Something on this side failed (encoding the request, setting up HTTP, stdout).
    #[error("{0}")]
    Local(String),
    /// A node's answer did not parse.
    #[error("node {node}: unexpected answer ({status}): {body}")]
    BadAnswer {
        /// The node.
        node: u64,
        /// The HTTP status.
        status: StatusCode,
        /// The body, as text.
        body: String,
    },
}

impl ClientError {
    /// True when the cluster refused the request as malformed (bad usage: exit 2).
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            ClientError::Refused {
                error: ApiError::BadRequest { .. },
                ..
            }
        )
    }

    /// True when the cause is an authentication refusal (a configuration error: exit 2).
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            ClientError::Refused {
                error: ApiError::Unauthorized { .. },
                ..
            }
        )
    }
}

/// What one attempt on one node gave.
enum Attempt<T> {
    Done(T),
    /// Try this node next.
    Redirect(u64),
    /// Try another node.
    Next(String),
    /// The node could not be reached; try another.
    Unreachable(String),
    Fail(ClientError),
}

/// A client of the whole cluster. Cheap to share: concurrent tasks use one.
pub struct Client {
    http: reqwest::Client,
    secret: Arc<Secret>,
    peers: Peers,
    timeout: Duration,
    /// The node believed to lead (0: none known).
    leader: AtomicU64,
    /// Requests sent beyond the first of each call.
    retries: AtomicU64,
}

impl Client {
    /// A client of `peers` that gives up on a call after `timeout`.
    pub fn new(peers: Peers, secret: Secret, timeout: Duration) -> Result<Client, ClientError> {
        let http =
            http::client().map_err(|e| ClientError::Local(format!("cannot set up HTTP: {e}")))?;
        Ok(Client {
            http,
            secret: Arc::new(secret),
            peers,
            timeout,
            leader: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        })
    }

    /// The cluster's nodes.
    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    /// Requests sent again so far (after a redirect, an unreachable node, a timeout).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Sends `body` as JSON to `path` on the leader, wherever it is.
    ///
    /// # Errors
    /// [`ClientError`]: refused, or no node served it in time.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ClientError::Local(format!("cannot encode the request: {e}")))?;
        let started = Instant::now();
        let deadline = started + self.timeout;
        let ids: Vec<u64> = self.peers.ids().collect();
        let mut pause = FIRST_PAUSE;
        let mut tries = 0u64;
        let mut next = ids
            .iter()
            .position(|i| *i == self.leader.load(Ordering::Relaxed))
            .unwrap_or(0);
        let mut failed_in_row = 0;
        // Each node's last failure: the error names them all, not only the last one tried.
        let mut failures: BTreeMap<u64, String> = BTreeMap::new();
        // Nodes found unreachable in this call: a follower that still names one of them as
        // leader (it has not noticed the leader died) is not followed there again.
        let mut down: BTreeSet<u64> = BTreeSet::new();
        loop {
            let node = ids[next % ids.len()];
            tries += 1;
            if tries > 1 {
                self.retries.fetch_add(1, Ordering::Relaxed);
            }
            let last = match self.attempt(node, path, &body, deadline).await {
                Attempt::Done(v) => {
                    self.leader.store(node, Ordering::Relaxed);
                    return Ok(v);
                }
                Attempt::Fail(e) => return Err(e),
                Attempt::Redirect(to) if down.contains(&to) => {
                    next += 1;
                    failed_in_row += 1;
                    format!("node {node} names node {to} as leader, which is unreachable")
                }
                Attempt::Redirect(to) => {
                    self.leader.store(to, Ordering::Relaxed);
                    next = ids.iter().position(|i| *i == to).unwrap_or(next + 1);
                    failed_in_row = 0;
                    format!("node {node} redirected to node {to}")
                }
                Attempt::Unreachable(why) => {
                    down.insert(node);
                    next += 1;
                    failed_in_row += 1;
                    why
                }
                Attempt::Next(why) => {
                    next += 1;
                    failed_in_row += 1;
                    why
                }
            };
            // An attempt cut short by this call's own deadline says less than the node's
            // earlier answer (a leader's "did not finish within ...", say): keep that one.
            if Instant::now() < deadline || !failures.contains_key(&node) {
                failures.insert(node, last);
            }
            let last = || failures.values().cloned().collect::<Vec<_>>().join("; ");
            // After every node failed once (or a redirect loop), pause before going round again.
            if failed_in_row >= ids.len() || tries.is_multiple_of(2 * ids.len() as u64) {
                failed_in_row = 0;
                if Instant::now() + pause >= deadline {
                    return Err(ClientError::Timeout {
                        elapsed: started.elapsed(),
                        tries,
                        last: last(),
                    });
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout {
                    elapsed: started.elapsed(),
                    tries,
                    last: last(),
                });
            }
        }
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        node: u64,
        path: &str,
        body: &[u8],
        deadline: Instant,
    ) -> Attempt<T> {
        let Some(addr) = self.peers.addr(node) else {
            return Attempt::Next(format!("node {node} is not in --peers"));
        };
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(REQUEST_TIMEOUT);
        let answer = match http::send(
            &self.http,
            &self.secret,
            addr,
            reqwest::Method::POST,
            path,
            body.to_vec(),
            left,
        )
        .await
        {
            Ok(a) => a,
            Err(e) => {
                return Attempt::Unreachable(format!(
                    "node {node} at {addr} is unreachable: {}",
                    http::cause(&e)
                ));
            }
        };
        if !answer.authentic {
            return Attempt::Next(format!(
                "node {node} at {addr}: its reply is not tagged with the cluster secret (not a member of this cluster)"
            ));
        }
        if answer.status.is_success() {
            return match serde_json::from_slice(&answer.body) {
                Ok(v) => Attempt::Done(v),
                Err(_) => Attempt::Fail(bad_answer(node, answer.status, &answer.body)),
            };
        }
        match serde_json::from_slice::<ApiError>(&answer.body) {
            Ok(ApiError::NotLeader {
                leader_id: Some(to),
                ..
            }) if to != node && self.peers.addr(to).is_some() => Attempt::Redirect(to),
            Ok(
                e @ (ApiError::NotLeader { .. }
                | ApiError::Unavailable { .. }
                | ApiError::Stopped { .. }),
            ) => Attempt::Next(format!("node {node}: {e}")),
            Ok(error) => Attempt::Fail(ClientError::Refused { node, error }),
            Err(_) => Attempt::Fail(bad_answer(node, answer.status, &answer.body)),
        }
    }

    /// Sends `path` to node `node` only (no redirect), trying again while it cannot be
    /// reached and time remains.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn call_node<T: DeserializeOwned>(
        &self,
        node: u64,
        path: &str,
    ) -> Result<T, ClientError> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let mut pause = FIRST_PAUSE;
        let mut tries = 0;
        loop {
            tries += 1;
            let last = match self.attempt(node, path, b"null", deadline).await {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Redirect(to) => format!("node {node} redirected to node {to}"),
                Attempt::Next(why) | Attempt::Unreachable(why) => why,
            };
            if Instant::now() + pause >= deadline {
                return Err(ClientError::Timeout {
                    elapsed: started.elapsed(),
                    tries,
                    last,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    /// One try at node `node`'s `path`, waiting at most `wait`: `None` when it could not be
    /// reached or did not answer in time.
    pub async fn probe<T: DeserializeOwned>(
        &self,
        node: u64,
        path: &str,
        wait: Duration,
    ) -> Option<T> {
        match self
            .attempt(node, path, b"null", Instant::now() + wait)
            .await
        {
            Attempt::Done(v) => Some(v),
            _ => None,
        }
    }
}

fn bad_answer(node: u64, status: StatusCode, body: &[u8]) -> ClientError {
    ClientError::BadAnswer {
        node,
        status,
        body: String::from_utf8_lossy(body).chars().take(500).collect(),
    }
}
