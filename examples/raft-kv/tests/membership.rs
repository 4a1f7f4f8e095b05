//! Replacing a node of a real three-process cluster: node 4 is added (a learner that
//! catches up, then a voter), node 3 is removed and stopped, and every acknowledged key is on
//! nodes 1, 2 and 4, each checked on its own state. Then the leader itself is removed and
//! the other two go on.
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
    let mut c = Cluster::start(3, &["--snapshot-every", "100"]);
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
