//! One fault cycle of `cargo xtask cluster` under a running load, and the final check of every
//! node's state.

use super::client::{Client, Status, wait_for};
use super::load::{Load, LoadSpec, Summary};
use super::node::Cluster;
use crate::util::Failure;
use std::collections::BTreeSet;
use std::time::Duration;

/// A new leader must be elected within this.
const ELECTION_LIMIT: Duration = Duration::from_secs(30);
/// A restarted node must catch up within this.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(120);
/// A load that acknowledges nothing for this long has stalled.
const STALL: Duration = Duration::from_secs(45);
/// `load --timeout`: how long one key may be retried (an election takes a few seconds).
const LOAD_KEY_TIMEOUT: u64 = 30;

/// What a cycle does to the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the leader mid-load, wait for a new one, restart the old one.
    Leader,
    /// SIGKILL a follower mid-load, restart it.
    Follower,
    /// SIGKILL a follower and keep it down for more entries than the log keeps after a
    /// snapshot, so the leader must send it a snapshot.
    LongDown,
}

impl Fault {
    /// For the report.
    pub fn describe(self) -> &'static str {
        match self {
            Fault::Leader => "leader killed",
            Fault::Follower => "follower killed",
            Fault::LongDown => "follower kept down, caught up by snapshot",
        }
    }
}

/// The harness's fixed settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Keys each cycle's load writes (the long-down cycle writes more when it needs to).
    pub keys_per_cycle: u64,
    /// Concurrent load clients.
    pub clients: u64,
    /// Value size.
    pub value_size: usize,
    /// The nodes' `--snapshot-every`.
    pub snapshot_every: u64,
}

impl Settings {
    /// Raft entries a long-down node misses: three snapshot intervals, so at least one
    /// snapshot is taken and the log before it purged (raft-kv keeps a tenth of an interval
    /// after a snapshot) while the node is down.
    fn down_entries(&self) -> u64 {
        3 * self.snapshot_every
    }

    fn keys(&self, fault: Fault) -> u64 {
        match fault {
            Fault::LongDown => self.keys_per_cycle.max(5 * self.snapshot_every),
            Fault::Leader | Fault::Follower => self.keys_per_cycle,
        }
    }
}

/// What one cycle measured.
#[derive(Debug)]
pub struct CycleReport {
    /// What was done.
    pub fault: Fault,
    /// The node killed.
    pub victim: u64,
    /// The new leader and how long from the SIGKILL until a status named it.
    pub elected: Option<(u64, Duration)>,
    /// How long from the restart until the leader's matched index for the node reached the
    /// commit index of the moment it restarted, and that index.
    pub caught_up: (Duration, u64),
    /// Acknowledgements before the kill, and after it.
    pub acks: (usize, usize),
    /// The load's own summary.
    pub load: Summary,
}

/// The cluster under test and what has been written to it.
pub struct Harness {
    /// The nodes.
    pub cluster: Cluster,
    /// A client for every command.
    pub client: Client,
    /// Fixed settings.
    pub settings: Settings,
    /// `(start, count, value size)` of every load started.
    pub attempted: Vec<(u64, u64, usize)>,
    /// Every key acknowledged.
    pub acked: BTreeSet<u64>,
}

impl Harness {
    /// Waits for a status naming a running leader other than `not`; with `load`, keeps taking
    /// its acknowledgements meanwhile (its pipe must not fill up).
    pub fn wait_leader(
        &mut self,
        not: Option<u64>,
        mut load: Option<&mut Load>,
    ) -> Result<(Status, Duration), Failure> {
        let (client, cluster) = (&self.client, &mut self.cluster);
        wait_for("a leader", ELECTION_LIMIT, |last| {
            cluster.check_alive()?;
            if let Some(l) = load.as_deref_mut() {
                l.drain()?;
            }
            Ok(match client.status() {
                Ok(s) => match s.leader {
                    Some(id) if Some(id) != not && cluster.running().contains(&id) => Some(s),
                    _ => {
                        *last = format!("{s:?}");
                        None
                    }
                },
                Err(e) => {
                    *last = e;
                    None
                }
            })
        })
    }

    /// Runs one cycle of `fault` on a fresh key range.
    pub fn cycle(&mut self, fault: Fault, n: u64) -> Result<CycleReport, Failure> {
        let (status, _) = self.wait_leader(None, None)?;
        let leader = status.leader.unwrap_or_default();
        let victim = match fault {
            Fault::Leader => leader,
            // A follower, not always the same one.
            Fault::Follower | Fault::LongDown => {
                let followers: Vec<u64> = self
                    .cluster
                    .ids()
                    .into_iter()
                    .filter(|&i| i != leader)
                    .collect();
                followers[(n as usize) % followers.len()]
            }
        };
        debug_assert!(fault == Fault::Leader || victim != leader);
        let s = self.settings;
        let count = s.keys(fault);
        let start = self
            .attempted
            .iter()
            .map(|(s, c, _)| s + c)
            .max()
            .unwrap_or(0);
        // raft-kv puts concurrent writes into one Raft entry; the long-down cycle must make
        // entries, not only keys, so its load has one client: one write per entry.
        let clients = if fault == Fault::LongDown {
            1
        } else {
            s.clients
        };
        let spec = LoadSpec {
            start,
            count,
            clients,
            value_size: s.value_size,
        };
        self.attempted.push((start, count, s.value_size));
        let mut load = Load::spawn(&self.client, spec, LOAD_KEY_TIMEOUT)?;
        load.wait_acks(count / 5, STALL)?;
        if !load.running() {
            return Err(Failure::error(
                "the load ended before the kill: raise --keys-per-cycle",
            ));
        }
        self.cluster.kill(victim)?;
        let at_kill = load.acked.len();
        let elected = match fault {
            Fault::Leader => {
                let (s, took) = self.wait_leader(Some(victim), Some(&mut load))?;
                Some((s.leader.unwrap_or_default(), took))
            }
            Fault::Follower | Fault::LongDown => None,
        };
        // The load goes on without the victim.
        if fault == Fault::LongDown {
            self.wait_entries(s.down_entries(), &mut load)?;
        } else {
            load.wait_acks(at_kill as u64 + count / 5, STALL)?;
        }
        let log = self.cluster.log(victim);
        let log_before = std::fs::metadata(&log).map_or(0, |m| m.len());
        self.cluster.restart(victim)?;
        let caught_up = self.wait_caught_up(victim, &mut load)?;
        if fault == Fault::LongDown {
            snapshot_installed(&log, log_before, victim)?;
        }
        let after = load.acked.len() - at_kill;
        let (summary, acked) = load.finish(STALL)?;
        self.acked.extend(acked);
        Ok(CycleReport {
            fault,
            victim,
            elected,
            caught_up,
            acks: (at_kill, after),
            load: summary,
        })
    }

    /// Waits until `n` more Raft entries than now are committed, while `load` runs.
    fn wait_entries(&mut self, n: u64, load: &mut Load) -> Result<(), Failure> {
        let (now, _) = self.wait_leader(None, Some(&mut *load))?;
        let target = now.commit_index + n;
        let (client, cluster) = (&self.client, &mut self.cluster);
        let what = format!("the commit index to reach {target} ({n} entries more)");
        wait_for(&what, CATCH_UP_LIMIT, |last| {
            cluster.check_alive()?;
            load.drain()?;
            let reached = match client.status() {
                Ok(s) => {
                    *last = format!("commit index {}", s.commit_index);
                    s.commit_index >= target
                }
                Err(e) => {
                    *last = e;
                    false
                }
            };
            if !reached && !load.running() {
                return Err(Failure::error(format!(
                    "the load ended before {what}; last seen: {last} (raise --keys-per-cycle)"
                )));
            }
            Ok(reached.then_some(()))
        })
        .map(drop)
    }

    /// Waits until the leader's matched index for `id` reaches the commit index of now.
    fn wait_caught_up(&mut self, id: u64, load: &mut Load) -> Result<(Duration, u64), Failure> {
        let (now, _) = self.wait_leader(None, Some(&mut *load))?;
        let target = now.commit_index;
        let (client, cluster) = (&self.client, &mut self.cluster);
        let what = format!("node {id} to catch up to index {target}");
        let ((), took) = wait_for(&what, CATCH_UP_LIMIT, |last| {
            cluster.check_alive()?;
            load.drain()?;
            match client.status() {
                Ok(s) => {
                    let matched = s.node(id).and_then(|n| n.matched_index);
                    *last = format!("matched index {matched:?}");
                    Ok(matched.is_some_and(|m| m >= target).then_some(()))
                }
                Err(e) => {
                    *last = e;
                    Ok(None)
                }
            }
        })?;
        Ok((took, target))
    }

    /// Waits until every node has applied the commit index, then checks each node's own
    /// state: every acknowledged key with its exact value, nothing never written, all alike.
    pub fn verify_all(&mut self) -> Result<usize, Failure> {
        let (status, _) = self.wait_leader(None, None)?;
        let target = status.commit_index;
        let mut maps = Vec::new();
        for id in self.cluster.ids() {
            let client = &self.client;
            let what = format!("node {id} to apply index {target}");
            let (scan, _) = wait_for(&what, CATCH_UP_LIMIT, |last| {
                let scan = client.local_scan(id)?;
                *last = format!("applied {}", scan.applied);
                Ok((scan.applied >= target).then_some(scan))
            })?;
            let pairs = scan.map.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            crate::crash::check_pairs(pairs, &self.acked, &self.attempted).map_err(|e| {
                Failure::error(format!(
                    "node {id}: {}",
                    e.message.trim_start_matches("error: ")
                ))
            })?;
            maps.push((id, scan.map));
        }
        let (first, reference) = &maps[0];
        for (id, map) in &maps[1..] {
            if let Some(k) = first_difference(reference, map) {
                return Err(Failure::error(format!(
                    "nodes {first} and {id} disagree on key {k}: {:?} against {:?}",
                    reference.get(&k),
                    map.get(&k)
                )));
            }
        }
        Ok(reference.len())
    }
}

/// The first key on which two maps differ (present in one only, or with other values).
pub fn first_difference(
    a: &std::collections::BTreeMap<String, String>,
    b: &std::collections::BTreeMap<String, String>,
) -> Option<String> {
    a.iter()
        .find(|(k, v)| b.get(*k) != Some(v))
        .or_else(|| b.iter().find(|(k, _)| !a.contains_key(*k)))
        .map(|(k, _)| k.clone())
}

/// Fails unless node `id`'s log, past byte `from`, says it installed a snapshot.
fn snapshot_installed(log: &std::path::Path, from: u64, id: u64) -> Result<(), Failure> {
    let text =
        std::fs::read(log).map_err(|e| Failure::error(format!("read {}: {e}", log.display())))?;
    let tail = String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default());
    if tail.lines().any(is_snapshot_line) {
        Ok(())
    } else {
        Err(Failure::error(format!(
            "node {id} was down for more entries than its peers keep after a snapshot, yet caught up without installing one (no `installed snapshot` line in {} since its restart)",
            log.display()
        )))
    }
}

/// `raft-kv: node N installed snapshot up to index I`, which a node prints once it has
/// installed a snapshot sent by the leader.
fn is_snapshot_line(line: &str) -> bool {
    line.starts_with("raft-kv: node ") && line.contains(" installed snapshot")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn differences_between_nodes_are_found_both_ways() {
        let a = map(&[("k1", "a"), ("k2", "b")]);
        assert_eq!(first_difference(&a, &a.clone()), None);
        assert_eq!(
            first_difference(&a, &map(&[("k1", "a")])),
            Some("k2".into())
        );
        assert_eq!(
            first_difference(&map(&[("k1", "a")]), &a),
            Some("k2".into())
        );
        assert_eq!(
            first_difference(&a, &map(&[("k1", "a"), ("k2", "c")])),
            Some("k2".into())
        );
    }

    #[test]
    fn a_snapshot_install_is_found_only_after_the_restart() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("node-1.log");
        std::fs::write(&log, "raft-kv: node 1 installed snapshot up to index 9\n").unwrap();
        let from = std::fs::metadata(&log).unwrap().len();
        assert!(snapshot_installed(&log, 0, 1).is_ok());
        assert!(snapshot_installed(&log, from, 1).is_err());
        std::fs::write(
            &log,
            "x\nraft-kv: node 1 installed snapshot up to index 1500\n",
        )
        .unwrap();
        assert!(snapshot_installed(&log, 2, 1).is_ok());
        std::fs::write(&log, "x\nraft-kv: node 1 listening on 127.0.0.1:9\n").unwrap();
        assert!(snapshot_installed(&log, 2, 1).is_err());
    }

    #[test]
    fn a_long_down_cycle_writes_enough_to_outlast_three_snapshots() {
        let s = Settings {
            keys_per_cycle: 100,
            clients: 4,
            value_size: 32,
            snapshot_every: 500,
        };
        assert_eq!(s.keys(Fault::Leader), 100);
        assert!(s.keys(Fault::LongDown) > s.keys(Fault::LongDown) / 5 + s.down_entries());
    }
}
