//! Sending one signed HTTP request: what the Raft network and the client share.

use crate::auth;
use crate::secret::Secret;
use bytes::Bytes;
use std::time::Duration;

/// Idle connections are kept this long for reuse.
const IDLE: Duration = Duration::from_secs(30);
/// How long a TCP connect may take.
const CONNECT: Duration = Duration::from_secs(1);

/// An HTTP client with the settings every raft-kv connection uses.
///
/// # Errors
/// When the HTTP stack cannot be set up (no TLS is used, so this is not expected).
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT)
        .pool_idle_timeout(IDLE)
        .tcp_nodelay(true)
        .build()
}

/// The outcome of a request that reached the server.
pub struct Answer {
    /// The HTTP status.
    pub status: reqwest::StatusCode,
    /// The body.
    pub body: Bytes,
}

/// Sends `method path` with `body` to `addr`, signed with `secret`, waiting at most
/// `timeout` for the whole exchange.
///
/// # Errors
/// The transport's error (connect, timeout, a connection closed mid-way).
pub async fn send(
    http: &reqwest::Client,
    secret: &Secret,
    addr: &str,
    method: reqwest::Method,
    path: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> reqwest::Result<Answer> {
    let mut req = http
        .request(method.clone(), format!("http://{addr}{path}"))
        .timeout(timeout);
    for (name, value) in auth::sign(secret, method.as_str(), path, &body) {
        req = req.header(name, value);
    }
    let resp = req.body(body).send().await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    Ok(Answer { status, body })
}

/// The innermost cause of a transport error ("connection refused", "operation timed out"),
/// which the outer messages ("error sending request") hide.
pub fn cause(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time".to_owned();
    }
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}
