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
    /// Whether the reply's tag verified: it came from a member of the cluster. A refusal
    /// (400 or 401) counts as authentic unverified: a node refuses before it checked the
    /// request's tag, so cannot tag its reply, and a forged refusal can only make the
    /// sender give up.
    pub authentic: bool,
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
    let headers = auth::sign(secret, method.as_str(), path, &body);
    let nonce = headers
        .iter()
        .find(|(n, _)| *n == auth::NONCE)
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let resp = req.body(body).send().await?;
    let status = resp.status();
    let tag = resp
        .headers()
        .get(auth::REPLY_TAG)
        .and_then(|t| t.to_str().ok())
        .map(str::to_owned);
    let body = resp.bytes().await?;
    let refusal =
        status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::BAD_REQUEST;
    let authentic =
        refusal || auth::verify_reply(secret, &nonce, status.as_u16(), &body, tag.as_deref());
    Ok(Answer {
        status,
        body,
        authentic,
    })
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
