//! Three real `raft-kv serve` processes: writes and reads end to end, the leader SIGKILLed in
//! the middle of a load, a new leader elected, no acknowledged key lost on any node, the
//! killed node restarted and caught up, and writes refused with a clear error once no
//! majority is left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{BIN, Cluster, wait_for};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The value `load` writes for key `k<i>` (32 bytes, the default).
fn value(i: u64) -> String {
    kv::load_value(i, 32)
}

/// Starts `load` as a process; returns it and a channel of the keys it acknowledged.
fn start_load(
    c: &Cluster,
    count: u64,
    start: u64,
    clients: u64,
) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .args([
            "load",
            "--count",
            &count.to_string(),
            "--start",
            &start.to_string(),
        ])
        .args(["--clients", &clients.to_string(), "--timeout", "20"])
        .arg("--peers")
        .arg(c.peers())
        .arg("--secret-file")
        .arg(&c.secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let key = line
                .strip_prefix("ack ")
                .unwrap_or_else(|| panic!("unexpected line {line:?}"));
            if tx.send(key.to_owned()).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn index_of(key: &str) -> u64 {
    key.strip_prefix('k')
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("bad key {key}"))
}

#[test]
fn the_cluster_loses_no_acknowledged_key_when_its_leader_is_killed() {
    let started = Instant::now();
    // Snapshots every 150 entries, so the load below also snapshots and purges the logs.
    let mut c = Cluster::start(3, &["--snapshot-every", "150"]);
    c.ok(&["init"]);
    let first = c.wait_leader(None);

    // The single-key commands, end to end.
    c.ok(&["put", "alpha", "1"]);
    c.ok(&["put", "beta", "2"]);
    assert_eq!(c.ok(&["get", "alpha"]), "1\n");
    c.ok(&["del", "alpha"]);
    assert_eq!(
        c.run(&["get", "alpha"]).status.code(),
        Some(1),
        "a deleted key is absent"
    );
    assert_eq!(c.ok(&["scan"]), "beta\t2\n");

    // A load of 600 keys from 8 clients; the leader is killed once 150 are acknowledged.
    let (mut load, acks) = start_load(&c, 600, 0, 8);
    let mut acked: Vec<String> = Vec::new();
    while acked.len() < 150 {
        acked.push(
            acks.recv_timeout(Duration::from_secs(30))
                .expect("the load stalled"),
        );
    }
    let leader = c.status()["leader"].as_u64().unwrap_or(first);
    c.kill(leader);
    let killed_at = Instant::now();
    let new_leader = c.wait_leader(Some(leader));
    eprintln!(
        "node {leader} killed; node {new_leader} elected in {:?}",
        killed_at.elapsed()
    );
    let out = wait_for(Duration::from_secs(60), "the load to finish", || {
        load.try_wait().unwrap()
    });
    acked.extend(acks.iter());
    let mut stderr = String::new();
    std::io::Read::read_to_string(load.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(out.success(), "the load failed: {stderr}");
    assert!(stderr.contains("load: 600 keys in"), "{stderr}");
    assert_eq!(acked.len(), 600, "every key acknowledged once");

    // Every acknowledged key, with its exact value, on each live node's own state.
    let mut want: BTreeMap<String, String> = acked
        .iter()
        .map(|k| (k.clone(), value(index_of(k))))
        .collect();
    want.insert("beta".into(), "2".into());
    let commit = c.status()["commit_index"].as_u64().unwrap();
    for id in c.nodes.keys().copied().collect::<Vec<_>>() {
        let (applied, state) = wait_for(
            Duration::from_secs(20),
            "a node to apply the commits",
            || {
                let (applied, state) = c.local_scan(id);
                (applied >= commit).then_some((applied, state))
            },
        );
        assert_eq!(state, want, "node {id} at applied {applied}");
    }

    // The killed node restarts on its directory (log + snapshot) and catches up.
    c.start_node(leader).unwrap();
    let caught_up = wait_for(
        Duration::from_secs(30),
        "the restarted node to catch up",
        || {
            let (applied, state) = c.local_scan(leader);
            (applied >= commit && state == want).then_some(applied)
        },
    );
    eprintln!("node {leader} caught up to {caught_up}");
    // It was down for 450 keys and the others keep 15 entries past each snapshot (every
    // 150): it was caught up by a snapshot install.
    let log = c.nodes[&leader].log();
    assert!(
        log.contains(&format!(
            "raft-kv: node {leader} installed snapshot up to index"
        )),
        "{log}"
    );
    let status = c.status();
    for n in status["nodes"].as_array().unwrap() {
        assert!(n["wal"]["fsyncs"].as_u64().unwrap() > 0, "{status}");
    }
    c.ok(&["put", "after", "restart"]);
    assert_eq!(c.ok(&["get", "after"]), "restart\n");

    // With two of three nodes gone, a write fails with a clear error instead of hanging.
    let survivor = c.wait_leader(None);
    for id in c
        .nodes
        .keys()
        .copied()
        .filter(|i| *i != survivor)
        .collect::<Vec<_>>()
    {
        c.kill(id);
    }
    let t = Instant::now();
    let out = c.run(&["put", "lonely", "x", "--timeout", "5"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("gave up after")
            && (err.contains("no majority")
                || err.contains("unreachable")
                || err.contains("not the leader")),
        "{err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "the failed write took {:?}",
        t.elapsed()
    );
    eprintln!("the whole test took {:?}", started.elapsed());
}

#[test]
fn a_node_whose_log_fails_leaves_service_and_the_others_go_on() {
    let mut c = Cluster::start(3, &[]);
    c.ok(&["init"]);
    c.ok(&["put", "before", "1"]);
    let leader = c.wait_leader(None);
    // From now on every write of the leader's process past its files' first byte fails with
    // EFBIG, a real I/O error from the kernel: its log is poisoned.
    let pid = c.nodes[&leader].child.id().to_string();
    let limited = Command::new("prlimit")
        .args(["--pid", &pid, "--fsize=1"])
        .status()
        .unwrap();
    assert!(limited.success(), "prlimit (util-linux) failed");
    // The write reaches the failing leader (directly or by a redirect); it fails there, the
    // client moves on, and the other two elect a leader and commit it.
    let out = c.run(&["put", "after", "2", "--timeout", "20"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let node = c.nodes.get_mut(&leader).unwrap();
    let code = wait_for(Duration::from_secs(20), "the failed node to exit", || {
        node.child.try_wait().unwrap()
    });
    assert_eq!(code.code(), Some(1), "{}", node.log());
    let log = node.log();
    assert!(
        log.contains("leaves service") && log.contains("File too large"),
        "{log}"
    );
    c.nodes.remove(&leader);
    let status = c.status();
    assert_ne!(status["leader"].as_u64(), Some(leader));
    for id in c.nodes.keys() {
        let (_, state) = wait_for(Duration::from_secs(10), "the survivors to apply", || {
            let (a, s) = c.local_scan(*id);
            s.contains_key("after").then_some((a, s))
        });
        assert_eq!(state.get("before").map(String::as_str), Some("1"));
    }
}

#[test]
fn the_in_memory_store_serves_the_same_commands() {
    // --store memory is the benchmark's upper bound: it must run the same cluster.
    let c = Cluster::start(3, &["--store", "memory"]);
    c.ok(&["init"]);
    c.wait_leader(None);
    c.ok(&["put", "m", "1"]);
    assert_eq!(c.ok(&["get", "m"]), "1\n");
    let out = c.ok(&["load", "--count", "50", "--clients", "4"]);
    assert_eq!(out.lines().count(), 50);
    let status = c.status();
    for n in status["nodes"].as_array().unwrap() {
        assert!(
            n["wal"].is_null(),
            "no write-ahead log in memory mode: {status}"
        );
    }
}
