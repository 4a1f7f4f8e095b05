//! Request authentication: every request carries an HMAC-SHA256 tag, keyed by the cluster
//! secret, over its method, path, timestamp, nonce and body. The secret itself is never sent.
//! A node accepts a request only when the tag verifies (compared in constant time), the
//! timestamp is within [`WINDOW`] of its clock, and the nonce was not seen in that window
//! (so a captured request cannot be replayed). Replies are tagged too, over the request's
//! nonce, the status and the body, so a process that took a member's address cannot answer
//! for it (grant a vote, say) and an old reply cannot be passed off as a new one.

use crate::secret::Secret;
use hmac::Mac;
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// The header holding the hex tag.
pub const TAG: &str = "x-raft-kv-tag";
/// The header holding the sender's clock, milliseconds since the Unix epoch.
pub const TIME: &str = "x-raft-kv-time";
/// The header holding 16 random bytes, hex.
pub const NONCE: &str = "x-raft-kv-nonce";

/// The header holding the reply's hex tag.
pub const REPLY_TAG: &str = "x-raft-kv-reply-tag";

/// How far a request's timestamp may be from the receiver's clock.
pub const WINDOW: Duration = Duration::from_secs(30);

/// Why a request was refused. The message never says how close a forged tag came.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    /// A header is missing or not what it should be.
    #[error("missing or malformed {0} header")]
    Header(&'static str),
    /// The timestamp is outside the window.
    #[error("the request's time is {skew_ms} ms away from this node's clock (at most {} s allowed)", WINDOW.as_secs())]
    Stale {
        /// How far off, in milliseconds.
        skew_ms: u64,
    },
    /// The nonce was used already.
    #[error("the request was replayed (its nonce was seen already)")]
    Replayed,
    /// The tag does not verify: the sender does not have the cluster secret.
    #[error("the authentication tag does not verify")]
    BadTag,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn mac_of(
    secret: &Secret,
    method: &str,
    path: &str,
    time: u64,
    nonce: &str,
    body: &[u8],
) -> hmac::Hmac<sha2::Sha256> {
    let mut mac = secret.mac();
    // Each field is length-prefixed so no two requests share the MAC's input.
    for field in [method.as_bytes(), path.as_bytes(), nonce.as_bytes(), body] {
        mac.update(&(field.len() as u64).to_le_bytes());
        mac.update(field);
    }
    mac.update(&time.to_le_bytes());
    mac
}

fn reply_mac(secret: &Secret, nonce: &str, status: u16, body: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    let mut mac = secret.mac();
    mac.update(b"reply");
    mac.update(&(nonce.len() as u64).to_le_bytes());
    mac.update(nonce.as_bytes());
    mac.update(&status.to_le_bytes());
    mac.update(body);
    mac
}

/// The tag of a reply with `status` and `body` to the request that carried `nonce`.
pub fn sign_reply(secret: &Secret, nonce: &str, status: u16, body: &[u8]) -> String {
    hex::encode(
        reply_mac(secret, nonce, status, body)
            .finalize()
            .into_bytes(),
    )
}

/// Whether `tag` is the tag of that reply (compared in constant time).
pub fn verify_reply(
    secret: &Secret,
    nonce: &str,
    status: u16,
    body: &[u8],
    tag: Option<&str>,
) -> bool {
    let Some(tag) = tag.and_then(|t| hex::decode(t).ok()) else {
        return false;
    };
    reply_mac(secret, nonce, status, body)
        .verify_slice(&tag)
        .is_ok()
}

/// The three headers (name, value) that authenticate a request.
pub fn sign(secret: &Secret, method: &str, path: &str, body: &[u8]) -> [(&'static str, String); 3] {
    let mut nonce = [0u8; 16];
    // With no randomness the request goes out with a zero nonce and a replay-refusal is the
    // worst that happens; getrandom does not fail on Linux after boot.
    let _ = getrandom::fill(&mut nonce);
    let nonce = hex::encode(nonce);
    let time = now_ms();
    let tag = hex::encode(
        mac_of(secret, method, path, time, &nonce, body)
            .finalize()
            .into_bytes(),
    );
    [(TAG, tag), (TIME, time.to_string()), (NONCE, nonce)]
}

/// Checks requests on a node; remembers the nonces of the window.
pub struct Verifier {
    secret: Secret,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    set: HashSet<u128>,
    /// (expiry ms, nonce), oldest first.
    order: VecDeque<(u64, u128)>,
}

impl Verifier {
    /// A verifier for requests signed with `secret`.
    pub fn new(secret: Secret) -> Verifier {
        Verifier {
            secret,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// The tag of a reply (see [`sign_reply`]).
    pub fn sign_reply(&self, nonce: &str, status: u16, body: &[u8]) -> String {
        sign_reply(&self.secret, nonce, status, body)
    }

    /// Verifies a request's headers (looked up by `header`) against its method, path and
    /// body, at the receiver's time `now` (ms).
    pub fn verify<'h>(
        &self,
        method: &str,
        path: &str,
        header: impl Fn(&str) -> Option<&'h str>,
        body: &[u8],
        now: u64,
    ) -> Result<(), AuthError> {
        let tag = header(TAG)
            .and_then(|t| hex::decode(t).ok())
            .filter(|t| t.len() == 32)
            .ok_or(AuthError::Header(TAG))?;
        let time: u64 = header(TIME)
            .and_then(|t| t.parse().ok())
            .ok_or(AuthError::Header(TIME))?;
        let nonce_text = header(NONCE).ok_or(AuthError::Header(NONCE))?;
        let nonce = <[u8; 16]>::try_from(hex::decode(nonce_text).unwrap_or_default())
            .map(u128::from_le_bytes)
            .map_err(|_| AuthError::Header(NONCE))?;
        mac_of(&self.secret, method, path, time, nonce_text, body)
            .verify_slice(&tag)
            .map_err(|_| AuthError::BadTag)?;
        // Checked after the tag, so a stranger learns nothing about our clock or nonces.
        let skew_ms = now.abs_diff(time);
        let window = u64::try_from(WINDOW.as_millis()).unwrap_or(u64::MAX);
        if skew_ms > window {
            return Err(AuthError::Stale { skew_ms });
        }
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while seen.order.front().is_some_and(|(exp, _)| *exp < now) {
            if let Some((_, old)) = seen.order.pop_front() {
                seen.set.remove(&old);
            }
        }
        if !seen.set.insert(nonce) {
            return Err(AuthError::Replayed);
        }
        // Kept until the request's time leaves the window: after that it is Stale anyway.
        seen.order.push_back((time.saturating_add(window), nonce));
        debug_assert_eq!(seen.set.len(), seen.order.len());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(h: &'a [(&'static str, String); 3]) -> impl Fn(&str) -> Option<&'a str> + 'a {
        move |name| h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_signed_request_verifies_once() {
        let s = Secret::from_bytes(&[7; 32]);
        let v = Verifier::new(s.clone());
        let h = sign(&s, "POST", "/kv/write", b"body");
        assert_eq!(
            v.verify("POST", "/kv/write", headers(&h), b"body", now_ms()),
            Ok(())
        );
        assert_eq!(
            v.verify("POST", "/kv/write", headers(&h), b"body", now_ms()),
            Err(AuthError::Replayed)
        );
    }

    #[test]
    fn any_change_or_another_secret_fails_the_tag() {
        let s = Secret::from_bytes(&[7; 32]);
        let v = Verifier::new(s.clone());
        let h = sign(&s, "POST", "/kv/write", b"body");
        let now = now_ms();
        assert_eq!(
            v.verify("POST", "/kv/write", headers(&h), b"bodz", now),
            Err(AuthError::BadTag)
        );
        assert_eq!(
            v.verify("POST", "/kv/get", headers(&h), b"body", now),
            Err(AuthError::BadTag)
        );
        assert_eq!(
            v.verify("GET", "/kv/write", headers(&h), b"body", now),
            Err(AuthError::BadTag)
        );
        let stranger = sign(&Secret::from_bytes(&[8; 32]), "POST", "/kv/write", b"body");
        assert_eq!(
            v.verify("POST", "/kv/write", headers(&stranger), b"body", now),
            Err(AuthError::BadTag)
        );
        assert_eq!(
            v.verify("POST", "/kv/write", |_| None, b"body", now),
            Err(AuthError::Header(TAG))
        );
    }

    #[test]
    fn a_reply_verifies_only_for_its_request_status_and_body() {
        let s = Secret::from_bytes(&[7; 32]);
        let tag = sign_reply(&s, "n1", 200, b"ok");
        assert!(verify_reply(&s, "n1", 200, b"ok", Some(&tag)));
        assert!(!verify_reply(&s, "n2", 200, b"ok", Some(&tag)));
        assert!(!verify_reply(&s, "n1", 500, b"ok", Some(&tag)));
        assert!(!verify_reply(&s, "n1", 200, b"ko", Some(&tag)));
        assert!(!verify_reply(&s, "n1", 200, b"ok", None));
        assert!(!verify_reply(
            &Secret::from_bytes(&[8; 32]),
            "n1",
            200,
            b"ok",
            Some(&tag)
        ));
    }

    #[test]
    fn an_old_request_is_stale() {
        let s = Secret::from_bytes(&[7; 32]);
        let v = Verifier::new(s.clone());
        let h = sign(&s, "GET", "/status", b"");
        let later = now_ms() + 31_000;
        assert!(matches!(
            v.verify("GET", "/status", headers(&h), b"", later),
            Err(AuthError::Stale { .. })
        ));
    }
}
