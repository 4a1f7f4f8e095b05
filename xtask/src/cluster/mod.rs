//! `cargo xtask cluster`: a three-node `raft-kv` cluster of real processes on localhost under a
//! running load, with its leader SIGKILLed mid-load in each cycle, a follower killed and
//! restarted, and one node kept down until only a snapshot can catch it up; then every node's
//! own state is checked against what the load acknowledged. `cargo xtask cluster-bench` measures
//! the same cluster's commits/s (`bench.rs`).

mod bench;
mod client;
mod cycle;
mod load;
mod node;

pub use bench::{keep_section, run_bench};

use crate::util::{Failure, format_duration};
use client::Client;
use cycle::{CycleReport, Fault, Harness, Settings};
use node::{Cluster, Config};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The command line of `cluster`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Args {
    /// Leader-kill cycles.
    pub cycles: u64,
    /// Keys each cycle's load writes.
    pub keys_per_cycle: u64,
    /// Concurrent load clients.
    pub clients: u64,
    /// The nodes' `--snapshot-every`.
    pub snapshot_every: u64,
    /// Use the debug binary of the workspace's test build (`ci` has just made it) instead of
    /// a release build.
    pub dev: bool,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            cycles: 3,
            keys_per_cycle: 3000,
            clients: 8,
            snapshot_every: 500,
            dev: false,
        }
    }
}

/// Parses `[--cycles N] [--keys-per-cycle K] [--clients C] [--snapshot-every E] [--dev]`.
pub fn parse(args: &[String]) -> Result<Args, Failure> {
    let mut out = Args::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--dev" {
            out.dev = true;
            continue;
        }
        let slot = match a.as_str() {
            "--cycles" => &mut out.cycles,
            "--keys-per-cycle" => &mut out.keys_per_cycle,
            "--clients" => &mut out.clients,
            "--snapshot-every" => &mut out.snapshot_every,
            other => {
                return Err(Failure::usage(format!(
                    "cluster: unknown argument `{other}`"
                )));
            }
        };
        *slot = it
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&v| v > 0)
            .ok_or_else(|| Failure::usage(format!("{a} needs a positive whole number")))?;
    }
    if out.keys_per_cycle < 50 {
        return Err(Failure::usage(
            "--keys-per-cycle must be at least 50 (a kill lands mid-load)",
        ));
    }
    Ok(out)
}

/// Builds `raft-kv` and returns its path: release, or with `dev` the debug binary as the
/// workspace's test build makes it (`cargo test --workspace --no-run` is the build `ci`'s test
/// step has just done, so cargo finds it fresh there; `cargo build -p raft-kv` would resolve
/// features for raft-kv alone and may compile crates again).
pub fn build(root: &Path, dev: bool) -> Result<PathBuf, Failure> {
    let started = Instant::now();
    let profile = if dev { "debug" } else { "release" };
    println!("building raft-kv ({profile})…");
    let args: &[&str] = if dev {
        &["test", "--workspace", "--no-run"]
    } else {
        &["build", "--release", "-p", "raft-kv", "--bin", "raft-kv"]
    };
    crate::util::run(&mut crate::util::cargo(root, args))?;
    println!("built raft-kv in {}", format_duration(started.elapsed()));
    Ok(crate::util::target_dir(root)?.join(profile).join("raft-kv"))
}

/// A fresh `base` directory with a new cluster secret in it; returns the secret's path.
pub fn prepare(bin: &Path, base: &Path) -> Result<PathBuf, Failure> {
    if base.exists() {
        std::fs::remove_dir_all(base)
            .map_err(|e| Failure::error(format!("remove {}: {e}", base.display())))?;
    }
    std::fs::create_dir_all(base)
        .map_err(|e| Failure::error(format!("create {}: {e}", base.display())))?;
    let secret = base.join("secret");
    crate::util::capture(
        std::process::Command::new(bin)
            .arg("gen-secret")
            .arg(&secret),
    )?;
    Ok(secret)
}

/// Starts three nodes, runs `init` and waits for a leader.
pub fn start(config: &Config) -> Result<(Cluster, Client), Failure> {
    let bin = config.bin.clone();
    let secret = config.secret.clone();
    let cluster = Cluster::start(config)?;
    let client = Client {
        bin,
        peers: cluster.peers(),
        secret,
    };
    client.init()?;
    Ok((cluster, client))
}

/// Runs the whole command.
pub fn run(root: &Path, args: Args) -> Result<(), Failure> {
    let started = Instant::now();
    let bin = build(root, args.dev)?;
    let base = root.join("target").join("xtask-cluster");
    let secret = prepare(&bin, &base)?;
    let settings = Settings {
        keys_per_cycle: args.keys_per_cycle,
        clients: args.clients,
        value_size: 32,
        snapshot_every: args.snapshot_every,
    };
    let config = Config {
        bin,
        secret,
        base: base.clone(),
        store: "wal",
        snapshot_every: args.snapshot_every,
    };
    println!(
        "cluster: three nodes in {} (logs: node-<id>.log there)",
        base.display()
    );
    let (cluster, client) = start(&config)?;
    let mut h = Harness {
        cluster,
        client,
        settings,
        attempted: Vec::new(),
        acked: Default::default(),
    };
    let (first, took) = h.wait_leader(None, None)?;
    println!(
        "cluster: initialised; node {} leads (elected {} after init)",
        first.leader.unwrap_or_default(),
        ms(took)
    );
    let mut faults: Vec<Fault> = (0..args.cycles).map(|_| Fault::Leader).collect();
    faults.extend([Fault::Follower, Fault::LongDown]);
    let mut reports = Vec::new();
    for (n, fault) in faults.into_iter().enumerate() {
        let r = h.cycle(fault, n as u64)?;
        println!("{}", describe_cycle(n + 1, &r));
        reports.push(r);
    }
    let keys = h.verify_all()?;
    print_report(&reports, keys, &h.acked);
    println!("cluster: OK in {}", format_duration(started.elapsed()));
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// One line per cycle.
fn describe_cycle(n: usize, r: &CycleReport) -> String {
    let elected = match r.elected {
        Some((id, took)) => format!("node {id} elected in {}; ", ms(took)),
        None => String::new(),
    };
    format!(
        "cycle {n} ({}): node {} SIGKILLed after {} acks; {elected}load went on for {} more acks; restarted, caught up to index {} in {}; load {} keys at {:.0} commits/s, p50 {} ms, p99 {} ms, {} retries",
        r.fault.describe(),
        r.victim,
        r.acks.0,
        r.acks.1,
        r.caught_up.1,
        ms(r.caught_up.0),
        r.load.keys,
        r.load.commits_per_sec,
        r.load.p50_ms,
        r.load.p99_ms,
        r.load.retries
    )
}

/// Minimum, median and maximum, in ms.
fn spread(mut v: Vec<Duration>) -> String {
    v.sort();
    match (v.first(), v.get(v.len() / 2), v.last()) {
        (Some(a), Some(m), Some(b)) => format!(
            "min {} / median {} / max {} ({} samples)",
            ms(*a),
            ms(*m),
            ms(*b),
            v.len()
        ),
        _ => "no samples".to_owned(),
    }
}

fn print_report(reports: &[CycleReport], keys: usize, acked: &std::collections::BTreeSet<u64>) {
    let secs: f64 = reports.iter().map(|r| r.load.secs).sum();
    let written: u64 = reports.iter().map(|r| r.load.keys).sum();
    println!();
    println!("cluster report");
    println!(
        "  keys verified            {keys} on each of 3 nodes, identical ({} acknowledged, nothing unwritten)",
        acked.len()
    );
    println!(
        "  commits/s                {:.0} (all loads: {written} keys in {secs:.1} s of load, faults included)",
        written as f64 / secs.max(1e-9)
    );
    let elections = reports
        .iter()
        .filter_map(|r| r.elected.map(|e| e.1))
        .collect();
    println!("  new leader elected in    {}", spread(elections));
    let catch = reports.iter().map(|r| r.caught_up.0).collect();
    println!("  restarted node caught up {}", spread(catch));
    let retries: Vec<String> = reports.iter().map(|r| r.load.retries.to_string()).collect();
    println!(
        "  client retries           {} in all (per cycle: {}; a retry is a request sent again after a redirect, an unreachable node or a timeout)",
        reports.iter().map(|r| r.load.retries).sum::<u64>(),
        retries.join(", ")
    );
    if let Some(r) = reports.iter().find(|r| r.fault == Fault::LongDown) {
        println!(
            "  snapshot catch-up        node {} installed a snapshot and caught up to index {} in {}",
            r.victim,
            r.caught_up.1,
            ms(r.caught_up.0)
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments_parse_with_defaults() {
        assert_eq!(parse(&[]).unwrap(), Args::default());
        let a = parse(&strings(&[
            "--cycles",
            "2",
            "--keys-per-cycle",
            "400",
            "--dev",
        ]))
        .unwrap();
        assert_eq!((a.cycles, a.keys_per_cycle, a.dev), (2, 400, true));
        assert_eq!(
            parse(&strings(&["--snapshot-every", "100"]))
                .unwrap()
                .snapshot_every,
            100
        );
        assert!(parse(&strings(&["--cycles"])).is_err());
        assert!(parse(&strings(&["--cycles", "0"])).is_err());
        assert!(parse(&strings(&["--keys-per-cycle", "10"])).is_err());
        assert!(parse(&strings(&["--frob"])).is_err());
    }

    #[test]
    fn spreads_are_reported_as_min_median_max() {
        let d = |ms| Duration::from_millis(ms);
        assert_eq!(
            spread(vec![d(30), d(10), d(20)]),
            "min 10 ms / median 20 ms / max 30 ms (3 samples)"
        );
        assert_eq!(spread(Vec::new()), "no samples");
    }
}
