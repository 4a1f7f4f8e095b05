//! The harness's side of `raft-kv`'s client commands: `status --json` parsed, `local-scan` of one
//! node parsed, `init`, and waiting on a condition of the cluster by polling its state.

use crate::util::Failure;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How often a wait polls the cluster's state.
const POLL: Duration = Duration::from_millis(50);

/// What `raft-kv status --json` reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    /// The leader the answering node knows, if any.
    pub leader: Option<u64>,
    /// The current term.
    pub term: u64,
    /// The cluster's commit index.
    pub commit_index: u64,
    /// One entry per member.
    pub nodes: Vec<NodeStatus>,
}

/// One member in `status --json`.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeStatus {
    /// Node id.
    pub id: u64,
    /// Whether the answering node reached it.
    pub reachable: bool,
    /// The leader's matched index for it.
    pub matched_index: Option<u64>,
    /// Its last applied index.
    pub last_applied: Option<u64>,
    /// Its log's group-commit counters (absent with `--store memory` or from an older binary).
    pub wal: Option<WalCounters>,
}

/// A node's `wal-log` counters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WalCounters {
    /// `Stats::fsyncs`: fsyncs of the node's Raft log.
    pub fsyncs: u64,
}

impl Status {
    /// The entry of node `id`.
    pub fn node(&self, id: u64) -> Option<&NodeStatus> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

fn u64_field(v: &Value, key: &str) -> Result<u64, String> {
    v.get(key)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("no whole number `{key}` in {v}"))
}

fn opt_u64_field(v: &Value, key: &str) -> Result<Option<u64>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("`{key}` is {x}, not a whole number or null")),
    }
}

/// Parses `status --json`'s one object.
pub fn parse_status(text: &str) -> Result<Status, String> {
    let v: Value =
        serde_json::from_str(text.trim()).map_err(|e| format!("not JSON ({e}): {text:?}"))?;
    let nodes = v
        .get("nodes")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no `nodes` array in {v}"))?
        .iter()
        .map(|n| {
            let wal = match n.get("wal") {
                None | Some(Value::Null) => None,
                Some(w) => Some(WalCounters {
                    fsyncs: u64_field(w, "fsyncs")?,
                }),
            };
            Ok(NodeStatus {
                id: u64_field(n, "id")?,
                reachable: n.get("reachable").and_then(Value::as_bool).unwrap_or(false),
                matched_index: opt_u64_field(n, "matched_index")?,
                last_applied: opt_u64_field(n, "last_applied")?,
                wal,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Status {
        leader: opt_u64_field(&v, "leader")?,
        term: u64_field(&v, "term")?,
        commit_index: u64_field(&v, "commit_index")?,
        nodes,
    })
}

/// One node's own state as `local-scan` prints it.
#[derive(Debug, PartialEq)]
pub struct LocalScan {
    /// The node's last applied index.
    pub applied: u64,
    /// Its key-value map.
    pub map: BTreeMap<String, String>,
}

/// Parses `applied INDEX` (`applied -` before anything was applied) followed by
/// `KEY\tVALUE` lines.
pub fn parse_local_scan(text: &str) -> Result<LocalScan, String> {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    let applied = match first.strip_prefix("applied ").map(str::trim) {
        Some("-") => Some(0),
        Some(n) => n.parse().ok(),
        None => None,
    }
    .ok_or_else(|| format!("local-scan's first line is {first:?}, not `applied INDEX`"))?;
    let mut map = BTreeMap::new();
    for line in lines {
        let (k, v) = line
            .split_once('\t')
            .ok_or_else(|| format!("local-scan printed {line:?}, not KEY<TAB>VALUE"))?;
        if map.insert(k.to_owned(), v.to_owned()).is_some() {
            return Err(format!("local-scan printed key {k:?} twice"));
        }
    }
    Ok(LocalScan { applied, map })
}

/// Runs client commands against the cluster.
#[derive(Clone, Debug)]
pub struct Client {
    /// The `raft-kv` binary.
    pub bin: PathBuf,
    /// `--peers`.
    pub peers: String,
    /// `--secret-file`.
    pub secret: PathBuf,
}

impl Client {
    /// `raft-kv <args> --peers .. --secret-file ..`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .args(["--peers", &self.peers])
            .arg("--secret-file")
            .arg(&self.secret)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a client command; `Err` holds a message with its exit status and stderr.
    fn output(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = self.command(args);
        let out = cmd
            .output()
            .map_err(|e| format!("could not run {}: {e}", self.bin.display()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "`raft-kv {}` exited {}: {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            ))
        }
    }

    /// `init`: membership {1,2,3}.
    pub fn init(&self) -> Result<(), Failure> {
        self.output(&["init"]).map(drop).map_err(Failure::error)
    }

    /// `status --json`, asking for an answer within 2 s. `Err` is a message (no node answered,
    /// or an election is under way): pollers retry.
    pub fn status(&self) -> Result<Status, String> {
        parse_status(&self.output(&["status", "--json", "--timeout", "2"])?)
    }

    /// `local-scan --node id`.
    pub fn local_scan(&self, id: u64) -> Result<LocalScan, Failure> {
        let text = self
            .output(&["local-scan", "--node", &id.to_string(), "--timeout", "10"])
            .map_err(Failure::error)?;
        parse_local_scan(&text).map_err(|e| Failure::error(format!("node {id}: {e}")))
    }
}

/// Polls `probe` until it returns `Some`, an error, or `limit` has passed (then fails naming
/// `what` and the last thing `probe` said). Returns the value and how long it took.
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut probe: impl FnMut(&mut String) -> Result<Option<T>, Failure>,
) -> Result<(T, Duration), Failure> {
    let started = Instant::now();
    let mut last = String::from("nothing yet");
    loop {
        if let Some(v) = probe(&mut last)? {
            return Ok((v, started.elapsed()));
        }
        if started.elapsed() >= limit {
            return Err(Failure::error(format!(
                "timed out after {} s waiting for {what}; last seen: {last}",
                limit.as_secs()
            )));
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn status_json_is_parsed() {
        let s = parse_status(
            r#"{"leader": 2, "term": 7, "commit_index": 120, "nodes": [
                {"id": 1, "addr": "127.0.0.1:1", "reachable": true, "matched_index": 120, "last_applied": 119,
                 "wal": {"commits": 40, "fsyncs": 10}},
                {"id": 3, "addr": "127.0.0.1:3", "reachable": false, "matched_index": null, "last_applied": null, "wal": null}
            ]}"#,
        )
        .unwrap();
        assert_eq!(s.leader, Some(2));
        assert_eq!((s.term, s.commit_index), (7, 120));
        let one = s.node(1).unwrap();
        assert!(one.reachable);
        assert_eq!(
            (one.matched_index, one.last_applied),
            (Some(120), Some(119))
        );
        assert_eq!(one.wal, Some(WalCounters { fsyncs: 10 }));
        let three = s.node(3).unwrap();
        assert!(!three.reachable && three.matched_index.is_none() && three.wal.is_none());
        assert!(s.node(2).is_none());
    }

    #[test]
    fn a_status_without_a_leader_or_with_bad_fields_is_told_apart() {
        let s =
            parse_status(r#"{"leader": null, "term": 3, "commit_index": 0, "nodes": []}"#).unwrap();
        assert_eq!(s.leader, None);
        assert!(parse_status("no json").is_err());
        assert!(
            parse_status(r#"{"leader": "x", "term": 3, "commit_index": 0, "nodes": []}"#).is_err()
        );
        assert!(parse_status(r#"{"leader": 1, "term": 3, "nodes": []}"#).is_err());
    }

    #[test]
    fn local_scan_is_parsed_and_checked() {
        let s = parse_local_scan("applied 12\nk1\tv1-x\nk2\tv2-x\n").unwrap();
        assert_eq!(s.applied, 12);
        assert_eq!(s.map.len(), 2);
        assert_eq!(s.map["k2"], "v2-x");
        assert_eq!(parse_local_scan("applied 0\n").unwrap().map.len(), 0);
        assert_eq!(parse_local_scan("applied -\n").unwrap().applied, 0);
        assert!(parse_local_scan("applied x\n").is_err());
        assert!(parse_local_scan("k1\tv1\n").is_err());
        assert!(parse_local_scan("applied 3\nk1 v1\n").is_err());
        assert!(parse_local_scan("applied 3\nk1\ta\nk1\tb\n").is_err());
    }

    #[test]
    fn wait_for_returns_the_value_or_times_out_with_the_last_word() {
        let mut n = 0;
        let (v, _) = wait_for("three polls", Duration::from_secs(5), |_| {
            n += 1;
            Ok((n == 3).then_some(n))
        })
        .unwrap();
        assert_eq!(v, 3);
        let e = wait_for::<()>("never", Duration::ZERO, |last| {
            *last = "still no leader".into();
            Ok(None)
        })
        .err()
        .unwrap();
        assert!(e.message.contains("never") && e.message.contains("still no leader"));
    }
}
