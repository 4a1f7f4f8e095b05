//! `raft-kv status [--json]`: every node's own view, gathered, and the cluster's from it.

use crate::client::Client;
use crate::server::paths;
use crate::types::{NodeStatus, WalCounters};
use serde::Serialize;
use std::time::Duration;

/// How long each node has to answer.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// One node in the cluster status.
#[derive(Debug, Serialize)]
pub struct NodeLine {
    /// Its id.
    pub id: u64,
    /// Its address.
    pub addr: String,
    /// Whether it answered.
    pub reachable: bool,
    /// The index the leader knows it has matched.
    pub matched_index: Option<u64>,
    /// The index it says it has applied.
    pub last_applied: Option<u64>,
    /// Its write-ahead log's counters (null for `--store memory` or when unreachable).
    pub wal: Option<WalCounters>,
}

/// The cluster status, the JSON of `status --json`.
#[derive(Debug, Serialize)]
pub struct ClusterStatus {
    /// The leader's id: a node that answered as leader, in the highest term seen.
    pub leader: Option<u64>,
    /// The highest term any node reported.
    pub term: u64,
    /// The highest index a majority of voters has matched, as the leader sees it (without a
    /// leader: the highest index any node applied, which was committed).
    pub commit_index: u64,
    /// The log index of the leader's membership entry (each membership change commits one).
    pub membership_index: Option<u64>,
    /// Each node.
    pub nodes: Vec<NodeLine>,
}

/// The index a majority of `voters` has matched, in the leader's replication view.
fn quorum_index(leader: &NodeStatus) -> Option<u64> {
    let repl = leader.replication.as_ref()?;
    let mut matched: Vec<u64> = leader
        .voters
        .iter()
        .map(|v| repl.get(v).copied().flatten().unwrap_or(0))
        .collect();
    if matched.is_empty() {
        return None;
    }
    matched.sort_unstable_by(|a, b| b.cmp(a));
    matched.get(matched.len() / 2).copied()
}

/// Asks every node at once for its status and puts the answers together.
pub async fn gather(client: &Client) -> ClusterStatus {
    let peers: Vec<(u64, String)> = client
        .peers()
        .map()
        .iter()
        .map(|(i, a)| (*i, a.clone()))
        .collect();
    let asks = peers
        .iter()
        .map(|(id, _)| client.probe::<NodeStatus>(*id, paths::STATUS, PROBE_WAIT));
    let answers = futures::future::join_all(asks).await;
    let term = answers.iter().flatten().map(|s| s.term).max().unwrap_or(0);
    let leader = answers
        .iter()
        .flatten()
        .filter(|s| s.state == "Leader" && s.running && s.term == term)
        .max_by_key(|s| s.term);
    let commit_index = leader
        .and_then(quorum_index)
        .or_else(|| {
            answers
                .iter()
                .flatten()
                .filter_map(|s| s.last_applied)
                .max()
        })
        .unwrap_or(0);
    let nodes = peers
        .iter()
        .zip(&answers)
        .map(|((id, addr), a)| NodeLine {
            id: *id,
            addr: addr.clone(),
            reachable: a.is_some(),
            matched_index: leader
                .and_then(|l| l.replication.as_ref())
                .and_then(|r| r.get(id).copied().flatten()),
            last_applied: a.as_ref().and_then(|s| s.last_applied),
            wal: a.as_ref().and_then(|s| s.wal),
        })
        .collect();
    ClusterStatus {
        leader: leader.map(|l| l.id),
        term,
        commit_index,
        membership_index: leader.and_then(|l| l.membership_index),
        nodes,
    }
}

/// The human-readable form.
pub fn render(s: &ClusterStatus) -> String {
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut out = format!(
        "leader {}  term {}  commit index {}\n",
        opt(s.leader),
        s.term,
        s.commit_index
    );
    for n in &s.nodes {
        out.push_str(&format!(
            "node {} {}  {}  matched {}  applied {}\n",
            n.id,
            n.addr,
            if n.reachable { "up" } else { "unreachable" },
            opt(n.matched_index),
            opt(n.last_applied)
        ));
    }
    out
}
