//! Replacing a node of a real three-process cluster: node 4 is added (a learner caught up by
//! a snapshot install, then a voter), node 3 is removed and stopped, and every acknowledged
//! key is on nodes 1, 2 and 4, each checked on its own state. Then the leader itself is
//! removed and the other two go on. And `add-node` retried while the new node cannot catch
//! up within the op timeout adds it once, and finishes once it can.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Cluster, free_port, wait_for};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Puts `k<i>` for i in `range` with `load`; returns the acknowledged keys and their values.
fn load(c: &Cluster, start: u64, count: u64) -> BTreeMap<String, String> {
    let out = c.ok(&[
        "load",
        "--count",
        &count.to_string(),
        "--start",
        &start.to_string(),
        "--clients",
        "4",
    ]);
    let acked: BTreeMap<String, String> = out
        .lines()
        .map(|l| {
            let key = l.strip_prefix("ack ").unwrap();
            let i: u64 = key.strip_prefix('k').unwrap().parse().unwrap();
            (key.to_owned(), kv::load_value(i, 32))
        })
        .collect();
    assert_eq!(acked.len() as u64, count, "{out}");
    acked
}

#[test]
fn a_node_is_replaced_by_add_node_then_remove_node_and_no_acked_key_is_lost() {
    let started = Instant::now();
    // Snapshots every 20 entries, the log purged behind them: by the time node 4 joins, the
    // entries it lacks are gone and only a snapshot install can catch it up.
    let mut c = Cluster::start(3, &["--snapshot-every", "20"]);
    c.ok(&["init"]);
    c.wait_leader(None);
    let mut want = load(&c, 0, 300);

    // Node 4 on its own directory, named with the others in --peers (clients use all four).
    c.addrs.insert(4, format!("127.0.0.1:{}", free_port()));
    c.start_node(4).unwrap();
    let addr4 = c.addrs[&4].clone();
    // Answered once node 4 caught up as a learner and the change to voter committed.
    let out = c.run(&["add-node", "--id", "4", "--addr", &addr4, "--timeout", "20"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("voters {1,2,3,4}, learners {}"), "{said}");
    // It was caught up by a snapshot, and its own state is everyone's.
    let installed = wait_for(
        Duration::from_secs(20),
        "node 4 to install a snapshot",
        || {
            let log = c.nodes[&4].log();
            log.contains("raft-kv: node 4 installed snapshot up to index")
                .then_some(log)
        },
    );
    assert!(!installed.contains("panicked"), "{installed}");
    let commit = c.status()["commit_index"].as_u64().unwrap();
    for id in [1, 2, 3, 4] {
        let (_, state) = wait_for(Duration::from_secs(20), "a node to apply", || {
            let (applied, state) = c.local_scan(id);
            (applied >= commit).then_some((applied, state))
        });
        assert_eq!(state, want, "node {id}");
    }
    // Adding it again changes nothing.
    let again = c.run(&["add-node", "--id", "4", "--addr", &addr4]);
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{said}");
    assert!(
        said.contains("is a voter already") && said.contains("voters {1,2,3,4}"),
        "{said}"
    );

    // The same id at another address is refused, naming the address in place.
    let other = c.run(&["add-node", "--id", "4", "--addr", "127.0.0.1:1"]);
    let said = String::from_utf8_lossy(&other.stderr);
    assert_eq!(other.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!("is a member at {addr4} already")),
        "{said}"
    );

    let out = c.run(&["remove-node", "--id", "3", "--timeout", "20"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("voters {1,2,4}, learners {}"), "{said}");
    c.kill(3);
    want.extend(load(&c, 300, 200));

    let commit = c.status()["commit_index"].as_u64().unwrap();
    for id in [1, 2, 4] {
        let (applied, state) = wait_for(Duration::from_secs(20), "a node to apply", || {
            let (applied, state) = c.local_scan(id);
            (applied >= commit).then_some((applied, state))
        });
        assert_eq!(state, want, "node {id} at applied {applied}");
    }

    // Removing the leader itself: it steps down once the change commits, the other two
    // elect a leader and take writes.
    let leader = c.wait_leader(None);
    let out = c.run(&[
        "remove-node",
        "--id",
        &leader.to_string(),
        "--timeout",
        "20",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.kill(leader);
    let next = c.wait_leader(Some(leader));
    c.ok(&["put", "after", "leader-removed"]);
    assert_eq!(c.ok(&["get", "after"]), "leader-removed\n");
    eprintln!(
        "node {leader} removed, node {next} leads; the whole test took {:?}",
        started.elapsed()
    );
}

#[test]
fn add_node_retried_while_catch_up_outlasts_the_op_timeout_adds_the_learner_once() {
    let mut c = Cluster::start(3, &["--op-timeout-ms", "300"]);
    c.ok(&["init"]);
    c.wait_leader(None);
    let want = load(&c, 0, 200);

    // Node 4 is named but not started yet: its catch-up cannot finish within any op timeout.
    c.addrs.insert(4, format!("127.0.0.1:{}", free_port()));
    let addr4 = c.addrs[&4].clone();
    let add = |c: &Cluster, timeout: &str| {
        c.run(&[
            "add-node",
            "--id",
            "4",
            "--addr",
            &addr4,
            "--timeout",
            timeout,
        ])
    };
    let out = add(&c, "1");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("catching up the new learner did not finish within 300 ms"),
        "{said}"
    );
    let learner_at = c.status()["membership_index"].as_u64().unwrap();
    // Retried (the client itself retried within each command too): no membership entry more.
    let out = add(&c, "1");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(c.status()["membership_index"].as_u64(), Some(learner_at));

    // Once the node runs, the same command finishes: caught up, then a voter.
    c.start_node(4).unwrap();
    let out = add(&c, "30");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("voters {1,2,3,4}, learners {}"), "{said}");
    // The promotion committed the joint and the uniform membership after the learner's.
    let promoted_at = c.status()["membership_index"].as_u64().unwrap();
    assert!(promoted_at > learner_at, "{promoted_at} {learner_at}");
    let (_, state) = wait_for(Duration::from_secs(20), "node 4 to apply", || {
        let (applied, state) = c.local_scan(4);
        (applied >= learner_at).then_some((applied, state))
    });
    assert_eq!(state, want);
}
