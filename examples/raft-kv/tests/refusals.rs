//! What a node refuses, and how: requests from strangers (401, logged with the peer's
//! address), malformed requests from members (400, the node goes on), and data directories
//! of another node or cluster (exit 2, nothing changed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{BIN, Cluster, gen_secret, tree};
use raft_kv::auth;
use raft_kv::secret::Secret;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

/// Sends one HTTP/1.1 request by hand (so nothing but the bytes given reaches the node);
/// returns the status code and the body.
fn raw(addr: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A request signed with the cluster's own secret.
fn signed(c: &Cluster, path: &str, body: &[u8]) -> (u16, String) {
    let secret = Secret::load(&c.secret).unwrap();
    let headers: Vec<(&str, String)> = auth::sign(&secret, "POST", path, body)
        .into_iter()
        .collect();
    raw(&c.addrs[&1], path, &headers, body)
}

#[test]
fn a_stranger_is_refused_and_logged_with_its_address() {
    let c = Cluster::start(1, &[]);
    c.ok(&["init"]);
    c.ok(&["put", "k", "v"]);

    // No tag at all.
    let (status, body) = raw(
        &c.addrs[&1],
        "/kv/write",
        &[],
        br#"{"Put":{"key":"k","value":"evil"}}"#,
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("unauthorized"), "{body}");

    // Another cluster's secret, through the real client: refused, exit 2.
    let other = c.root.path().join("other-secret");
    gen_secret(&other);
    let out = Command::new(BIN)
        .args(["put", "k", "evil", "--peers", &c.peers(), "--secret-file"])
        .arg(&other)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("authentication tag does not verify"), "{err}");

    // A tag copied from a real request onto another body does not verify either.
    let secret = Secret::load(&c.secret).unwrap();
    let headers: Vec<(&str, String)> = auth::sign(&secret, "POST", "/kv/write", b"{}")
        .into_iter()
        .collect();
    let (status, _) = raw(
        &c.addrs[&1],
        "/kv/write",
        &headers,
        br#"{"Put":{"key":"k","value":"evil"}}"#,
    );
    assert_eq!(status, 401);
    // And the same signed request twice is a replay.
    let body = br#"{"Put":{"key":"k","value":"v"}}"#;
    let headers: Vec<(&str, String)> = auth::sign(&secret, "POST", "/kv/write", body)
        .into_iter()
        .collect();
    assert_eq!(raw(&c.addrs[&1], "/kv/write", &headers, body).0, 200);
    let (status, body) = raw(&c.addrs[&1], "/kv/write", &headers, body);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("replayed"), "{body}");

    assert_eq!(c.ok(&["get", "k"]), "v\n", "no refused write took effect");
    let log = c.nodes[&1].log();
    let warned = log.lines().filter(|l| {
        l.contains("refused an unauthenticated request") && l.contains("peer=127.0.0.1:")
    });
    assert_eq!(warned.count(), 4, "{log}");
}

#[test]
fn malformed_requests_get_an_error_and_the_node_goes_on() {
    let c = Cluster::start(1, &[]);
    c.ok(&["init"]);
    let cases: [(&str, &[u8]); 11] = [
        ("/kv/write", br#"{"Put":{"key":"","value":"v"}}"#),
        ("/kv/write", br#"{"Put":{"key":"a\tb","value":"v"}}"#),
        ("/kv/write", br#"{"Put":{"key":"k","value":"two\nlines"}}"#),
        ("/kv/write", b"not json"),
        ("/kv/write", br#"{"Frobnicate":{}}"#),
        ("/kv/get", b"{"),
        ("/cluster/init", br#"{"nodes":{"x":"y"}}"#),
        ("/raft/append", b"\xff\xff\xff\xff\xff\xff\xff\xff"),
        ("/raft/vote", b""),
        ("/raft/snapshot", b"\x01\x02"),
        ("/raft/vote", &[0u8; 64]),
    ];
    for (path, body) in cases {
        let (status, reply) = signed(&c, path, body);
        assert_eq!(status, 400, "{path} {body:?}: {reply}");
        assert!(reply.contains("bad_request"), "{path}: {reply}");
    }
    // A body over the client API's limit (4 MiB).
    let (status, _) = signed(&c, "/kv/write", &vec![b'x'; (4 << 20) + 1]);
    assert_eq!(status, 400);
    // An unknown path is 404, not a crash.
    assert_eq!(signed(&c, "/nowhere", b"").0, 404);
    // Through the client: a refused write is bad usage (exit 2), with the reason.
    let out = c.run(&["put", "a\tb", "v"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("the key holds a tab or a line break"), "{err}");
    c.ok(&["put", "still", "here"]);
    assert_eq!(c.ok(&["get", "still"]), "here\n");
}

#[test]
fn a_directory_of_another_node_or_cluster_is_refused_untouched() {
    let mut c = Cluster::start(1, &[]);
    c.ok(&["init"]);
    c.ok(&["put", "k", "v"]);
    // SIGTERM: a graceful stop, exit 0.
    let mut node = c.nodes.remove(&1).unwrap();
    let pid = node.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(node.child.wait().unwrap().code(), Some(0), "{}", node.log());
    let dir = c.dir(1);
    let before = tree(&dir);
    let serve = |id: &str, secret: &std::path::Path, dir: &std::path::Path| {
        let out = Command::new(BIN)
            .args(["serve", "--id", id, "--listen", &c.addrs[&1]])
            .args(["--peers", &format!("{id}={}", c.addrs[&1])])
            .arg("--dir")
            .arg(dir)
            .arg("--secret-file")
            .arg(secret)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, err) = serve("2", &c.secret, &dir);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("belongs to node 1, not to node 2"), "{err}");

    let other = c.root.path().join("other-secret");
    gen_secret(&other);
    let (code, err) = serve("1", &other, &dir);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("belongs to cluster"), "{err}");
    assert_eq!(tree(&dir), before, "a refused start changed the directory");

    let foreign = c.root.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("precious"), "data").unwrap();
    let (code, err) = serve("1", &c.secret, &foreign);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("has no raft-kv.id"), "{err}");
    assert_eq!(std::fs::read_dir(&foreign).unwrap().count(), 1);

    // No secret: the node does not start open.
    let out = Command::new(BIN)
        .args([
            "serve",
            "--id",
            "1",
            "--listen",
            &c.addrs[&1],
            "--peers",
            &format!("1={}", c.addrs[&1]),
        ])
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--secret-file is required"));

    // The right node on its own directory still starts, with its data.
    c.start_node(1).unwrap();
    assert_eq!(c.ok(&["get", "k"]), "v\n");
}

/// A process on a member's address that answers every request with `body`, untagged.
fn impostor(body: &'static str) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { return };
            let mut buf = [0u8; 65536];
            // One read holds the small request's headers; the reply does not depend on it.
            let _ = s.read(&mut buf);
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes());
        }
    });
    addr
}

#[test]
fn a_reply_from_an_impostor_on_a_members_address_is_not_believed() {
    let c = Cluster::start(1, &[]);
    c.ok(&["init"]);
    c.ok(&["put", "k", "real"]);
    let fake = impostor(r#"{"value":"forged"}"#);
    // The client asks "node 1" (the impostor) first, refuses its untagged reply, and gets
    // the real value from the real node.
    let peers = format!("1={fake},2={}", c.addrs[&1]);
    let out = Command::new(BIN)
        .args(["get", "k", "--peers", &peers, "--secret-file"])
        .arg(&c.secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "real\n");
    // With only the impostor to ask, the client gives up and says why.
    let out = Command::new(BIN)
        .args([
            "get",
            "k",
            "--timeout",
            "1",
            "--peers",
            &format!("1={fake}"),
            "--secret-file",
        ])
        .arg(&c.secret)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not tagged with the cluster secret"), "{err}");
}
