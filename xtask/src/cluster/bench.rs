//! `cargo xtask cluster-bench`: commits/s and put latency through a three-node `raft-kv` cluster
//! with 1, 16 and 64 concurrent clients, `--store wal` against `--store memory` (the same binary
//! without durability: the upper bound), in one run; both clusters run side by side and the
//! cells alternate between them, so both see the same machine. Writes its own section of
//! `docs/benchmarks.md`, between markers, leaving the rest of the file alone.

use super::client::{Client, WalCounters};
use super::load::{Load, LoadSpec, Summary};
use super::node::{Cluster, Config};
use crate::spread::{Spread, at_least, spread};
use crate::util::{Failure, format_duration};
use std::path::Path;
use std::time::{Duration, Instant};

/// The section's markers in `docs/benchmarks.md`.
pub const START: &str = "<!-- raft-kv-bench:start -->";
/// See [`START`].
pub const END: &str = "<!-- raft-kv-bench:end -->";

const CLIENTS: [u64; 3] = [1, 16, 64];
const STORES: [&str; 2] = ["wal", "memory"];
const VALUE_SIZE: usize = 100;

/// Keys one cell writes with `clients` clients (more clients, more keys: each cell runs about
/// three to five seconds on an idle machine, long enough that a passing hiccup moves it little).
fn keys_for(clients: u64, quick: bool) -> u64 {
    let keys = match clients {
        1 => 3_000,
        16 => 25_000,
        _ => 60_000,
    };
    if quick { keys / 10 } else { keys }
}

/// Keys each cluster writes, unmeasured, before the first round: the first cell would
/// otherwise also pay for new log segments, the first snapshots and cold caches.
fn warm_up_keys(quick: bool) -> u64 {
    if quick { 2_000 } else { 20_000 }
}

/// One measured cell.
#[derive(Clone, Debug)]
struct Cell {
    store: &'static str,
    clients: u64,
    load: Summary,
    /// Per node: writes (keys put) per fsync of its log during the cell (`None` without
    /// counters).
    per_fsync: Vec<Option<f64>>,
    /// The leader after the cell.
    leader: Option<u64>,
}

/// Parses `[--rounds R] [--quick]`.
fn parse(args: &[String]) -> Result<(u64, bool), Failure> {
    let quick = args.iter().any(|a| a == "--quick");
    let rest: Vec<String> = args.iter().filter(|a| *a != "--quick").cloned().collect();
    let rounds =
        crate::util::parse_flag_u64(&rest, "--rounds")?.unwrap_or(if quick { 1 } else { 5 });
    if rounds == 0 {
        return Err(Failure::usage("--rounds must be at least 1"));
    }
    Ok((rounds, quick))
}

/// Runs the benchmark and writes its section of `docs/benchmarks.md`.
pub fn run_bench(root: &Path, args: &[String]) -> Result<(), Failure> {
    let (rounds, quick) = parse(args)?;
    let bin = super::build(root, false)?;
    // The build is not part of the run: a cold one takes minutes.
    let started = Instant::now();
    let load_before = load_average();
    let base = root.join("target").join("xtask-cluster-bench");
    let secret = super::prepare(&bin, &base)?;
    let mut clusters = Vec::new();
    for store in STORES {
        let config = Config {
            bin: bin.clone(),
            secret: secret.clone(),
            base: base.join(store),
            store,
            snapshot_every: 10_000,
        };
        std::fs::create_dir_all(&config.base)
            .map_err(|e| Failure::error(format!("create {}: {e}", config.base.display())))?;
        let (cluster, client) = super::start(&config)?;
        clusters.push((store, cluster, client));
    }
    let mut next_key = 0;
    for (store, cluster, client) in &mut clusters {
        let count = warm_up_keys(quick);
        measure(cluster, client, store, 64, next_key, count)?;
        next_key += count;
    }
    println!(
        "cluster-bench: warmed up both clusters ({} keys each, not measured)",
        warm_up_keys(quick)
    );
    let mut cells = Vec::new();
    for round in 1..=rounds {
        for clients in CLIENTS {
            for (store, cluster, client) in &mut clusters {
                let count = keys_for(clients, quick);
                let cell = measure(cluster, client, store, clients, next_key, count)?;
                next_key += count;
                println!(
                    "cluster-bench: round {round}/{rounds}, --store {store:<6} {clients:>2} clients: {:>7.0} commits/s, p50 {} ms, p99 {} ms, writes/fsync {}",
                    cell.load.commits_per_sec,
                    cell.load.p50_ms,
                    cell.load.p99_ms,
                    per_fsync_text(&cell.per_fsync)
                );
                cells.push(cell);
            }
        }
    }
    drop(clusters);
    let took = started.elapsed();
    let header = Header {
        rounds,
        quick,
        load: (load_before, load_average()),
        took,
        commit: git_head(root),
        date: utc_now(),
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
    };
    let section = render(&header, &cells);
    let path = root.join("docs").join("benchmarks.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, splice(&old, &section))
        .map_err(|e| Failure::error(format!("write {}: {e}", path.display())))?;
    println!("{section}");
    println!(
        "cluster-bench: wrote its section of {} in {}",
        path.display(),
        format_duration(took)
    );
    Ok(())
}

/// Runs one load without faults and reads each node's counters before and after it.
fn measure(
    cluster: &mut Cluster,
    client: &Client,
    store: &'static str,
    clients: u64,
    start: u64,
    count: u64,
) -> Result<Cell, Failure> {
    let before = counters(cluster, client)?;
    let spec = LoadSpec {
        start,
        count,
        clients,
        value_size: VALUE_SIZE,
    };
    let (load, _) = Load::spawn(client, spec, 30)?.finish(Duration::from_secs(60))?;
    let after = counters(cluster, client)?;
    // Every node's log holds every write (raft-kv puts concurrent writes into one Raft entry,
    // so the commit index counts batches): the keys written over each node's fsyncs.
    let writes = load.keys as f64;
    let per_fsync = before
        .wal
        .iter()
        .zip(&after.wal)
        .map(|(b, a)| match (b, a) {
            (Some(b), Some(a)) if a.fsyncs > b.fsyncs => {
                Some(writes / (a.fsyncs - b.fsyncs) as f64)
            }
            _ => None,
        })
        .collect();
    Ok(Cell {
        store,
        clients,
        load,
        per_fsync,
        leader: after.leader,
    })
}

/// What a cell reads from `status --json` before and after its load.
struct Reading {
    leader: Option<u64>,
    /// Per node, in id order.
    wal: Vec<Option<WalCounters>>,
}

/// The leader and each node's wal counters, from a status in which every
/// node is reachable.
fn counters(cluster: &mut Cluster, client: &Client) -> Result<Reading, Failure> {
    let ids = cluster.ids();
    let (status, _) = super::client::wait_for(
        "a status with every node reachable",
        Duration::from_secs(30),
        |last| {
            cluster.check_alive()?;
            Ok(match client.status() {
                Ok(s) if ids.iter().all(|i| s.node(*i).is_some_and(|n| n.reachable)) => Some(s),
                Ok(s) => {
                    *last = format!("{s:?}");
                    None
                }
                Err(e) => {
                    *last = e;
                    None
                }
            })
        },
    )?;
    let wal = ids
        .iter()
        .map(|i| status.node(*i).and_then(|n| n.wal))
        .collect();
    Ok(Reading {
        leader: status.leader,
        wal,
    })
}

fn per_fsync_text(v: &[Option<f64>]) -> String {
    if v.iter().all(Option::is_none) {
        return "n/a".to_owned();
    }
    v.iter()
        .map(|x| x.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.1}")))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// What the section's header says about the run.
struct Header {
    rounds: u64,
    quick: bool,
    load: (String, String),
    took: Duration,
    commit: String,
    date: String,
    /// The machine's CPUs, to judge the load average by.
    cpus: usize,
}

/// The cells of one store and client count; the one with the median commits/s first.
fn cells_of<'a>(cells: &'a [Cell], store: &str, clients: u64) -> Vec<&'a Cell> {
    let mut v: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.store == store && c.clients == clients)
        .collect();
    v.sort_by(|a, b| a.load.commits_per_sec.total_cmp(&b.load.commits_per_sec));
    let mid = v.len() / 2;
    if !v.is_empty() {
        v.swap(0, mid);
    }
    v
}

/// The generated section, markers included.
fn render(h: &Header, cells: &[Cell]) -> String {
    let mut out = format!("{START}\n## Three-node replicated kv (raft-kv)\n\n");
    out += &format!(
        "Generated by `cargo xtask cluster-bench{}` on {}, raft-kv built from `{}`; do not edit by hand, re-run it (the rest of this file comes from `bench/`). Three `raft-kv serve` processes on 127.0.0.1, one `raft-kv load` process with 1, 16 or 64 concurrent clients putting {VALUE_SIZE}-byte values, each put acknowledged once committed by a majority (writes per fsync: the keys the cell put divided by the fsyncs of each node's log over the cell, from `status --json`); `--store wal` (wal-raft, every append fsynced: durable) against `--store memory` (the same binary with an in-memory log and state machine: no durability, the upper bound), both clusters running side by side, each warmed up with {} unmeasured keys, then the cells alternating between them; {} round(s){}, measured in {} (the build aside). Load average (1, 5, 15 min) at start / end: {} / {}, on {} CPUs. {}\n\n",
        if h.quick { " --quick" } else { "" },
        h.date,
        h.commit,
        warm_up_keys(h.quick),
        h.rounds,
        if h.quick {
            " with a tenth of the keys (--quick)"
        } else {
            ""
        },
        format_duration(h.took),
        h.load.0,
        h.load.1,
        h.cpus,
        busy_note(&h.load.0, h.cpus)
    );
    out += "| clients | store | commits/s (median; min–max) | p50 latency | p99 latency | writes per fsync (node 1 / 2 / 3) |\n| ---: | --- | ---: | ---: | ---: | --- |\n";
    let mut goal = None;
    for clients in CLIENTS {
        let mut spreads = Vec::new();
        for store in STORES {
            let v = cells_of(cells, store, clients);
            let rates: Vec<f64> = v.iter().map(|c| c.load.commits_per_sec).collect();
            let (Some(mid), Some(s)) = (v.first(), spread(&rates)) else {
                continue;
            };
            spreads.push(s);
            out += &format!(
                "| {clients} | {store} | {:.0} ({:.0}–{:.0}) | {} ms | {} ms | {}{} |\n",
                s.median,
                s.min,
                s.max,
                mid.load.p50_ms,
                mid.load.p99_ms,
                per_fsync_text(&mid.per_fsync),
                match (mid.leader, mid.per_fsync.iter().any(Option::is_some)) {
                    (Some(l), true) => format!(" (leader: node {l})"),
                    _ => String::new(),
                }
            );
        }
        if clients == 64
            && let [wal, mem] = spreads[..]
        {
            goal = Some((wal, mem));
        }
    }
    if let Some((wal, mem)) = goal {
        out += &goal_line(wal, mem);
    }
    out += &format!("{END}\n");
    out
}

/// The verdict on issue 22's goal, judged on every round (the rule of `crate::spread`).
fn goal_line(wal: Spread, mem: Spread) -> String {
    let ratio = wal.median / mem.median.max(1e-9);
    format!(
        "\nGoal (issue 22): at 64 clients the durable cluster reaches at least half of the in-memory cluster's commits/s: {:.0} ({:.0}–{:.0}) vs {:.0} ({:.0}–{:.0}), {ratio:.2}× by medians, {}: met only if the slowest durable round beats half the fastest in-memory round, missed only if the fastest durable round falls short of half the slowest in-memory round, else within noise.\n",
        wal.median,
        wal.min,
        wal.max,
        mem.median,
        mem.min,
        mem.max,
        at_least(wal, 0.5, mem).text()
    )
}

/// What the load average at the start says about the figures.
fn busy_note(load: &str, cpus: usize) -> &'static str {
    let one_minute = load
        .split_whitespace()
        .next()
        .and_then(|l| l.parse::<f64>().ok());
    if one_minute.is_some_and(|l| l > cpus as f64) {
        "**The machine was busy** (more runnable work than CPUs when the run began): these figures are noisy; compare rows of one run only, and re-run on an idle machine for figures to quote."
    } else {
        "Compare rows of one run: other work on the machine moves every figure."
    }
}

/// `old` with the section between the markers replaced by `section`, or `section` appended
/// when the markers are missing.
pub fn splice(old: &str, section: &str) -> String {
    match (old.find(START), old.find(END)) {
        (Some(a), Some(b)) if a <= b => {
            format!(
                "{}{section}{}",
                &old[..a],
                &old[b + END.len()..].trim_start_matches('\n')
            )
        }
        _ if old.is_empty() => section.to_owned(),
        _ => format!("{}\n\n{section}", old.trim_end_matches('\n')),
    }
}

/// `new` (a report regenerated by `bench/`, which knows nothing of this section) with the
/// section `old` had carried over, unless `new` has one of its own.
pub fn keep_section(old: &str, new: &str) -> String {
    match section_of(old) {
        Some(section) if section_of(new).is_none() => splice(new, &format!("{section}\n")),
        _ => new.to_owned(),
    }
}

/// The section of `text` between the markers, markers included.
fn section_of(text: &str) -> Option<&str> {
    let a = text.find(START)?;
    let b = text.find(END)? + END.len();
    (a < b).then(|| &text[a..b])
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn git_head(root: &Path) -> String {
    let mut cmd = std::process::Command::new("git");
    cmd.args(["describe", "--always", "--dirty"])
        .current_dir(root);
    crate::util::capture(&mut cmd)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "an unknown commit".to_owned())
}

fn utc_now() -> String {
    let mut cmd = std::process::Command::new("date");
    cmd.args(["-u", "+%Y-%m-%d %H:%M UTC"]);
    crate::util::capture(&mut cmd)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cell(store: &'static str, clients: u64, rate: f64) -> Cell {
        Cell {
            store,
            clients,
            load: Summary {
                keys: 10,
                secs: 1.0,
                commits_per_sec: rate,
                p50_ms: 1.0,
                p99_ms: 2.0,
                retries: 0,
            },
            per_fsync: vec![Some(4.0), Some(3.5), None],
            leader: Some(1),
        }
    }

    #[test]
    fn the_section_replaces_only_its_own_markers() {
        let s = format!("{START}\nnew\n{END}\n");
        let old = format!("# B\n\n## Other\nkeep\n\n{START}\nold\n{END}\n\n## After\nkeep too\n");
        let out = splice(&old, &s);
        assert!(out.contains("new") && !out.contains("old"));
        assert!(out.starts_with("# B\n\n## Other\nkeep\n\n"));
        assert!(out.ends_with("## After\nkeep too\n"));
        let appended = splice("# B\ntext\n", &s);
        assert_eq!(appended, format!("# B\ntext\n\n{s}"));
        assert_eq!(section_of(&out), Some(s.trim_end()));
        assert_eq!(section_of("nothing"), None);
        // bench/ regenerating the file without the section: it is carried over once.
        let kept = keep_section(&out, "# B\nregenerated\n");
        assert_eq!(kept, format!("# B\nregenerated\n\n{s}"));
        assert_eq!(keep_section(&out, &kept), kept);
        assert_eq!(keep_section("# B\n", "# C\n"), "# C\n");
    }

    #[test]
    fn the_table_shows_medians_and_the_goal() {
        let h = Header {
            rounds: 3,
            quick: false,
            load: ("1.0 1.0 1.0".into(), "2.0 2.0 2.0".into()),
            took: Duration::from_secs(90),
            commit: "abc123 x".into(),
            date: "2026-12-07 20:00 UTC".into(),
            cpus: 2,
        };
        let mut cells = Vec::new();
        for (store, rates) in [
            ("wal", [900.0, 1000.0, 1100.0]),
            ("memory", [1500.0, 1800.0, 2500.0]),
        ] {
            for c in CLIENTS {
                for r in rates {
                    cells.push(cell(store, c, r));
                }
            }
        }
        let out = render(&h, &cells);
        assert!(out.starts_with(START) && out.trim_end().ends_with(END));
        assert!(
            out.contains(
                "| 64 | wal | 1000 (900–1100) | 1 ms | 2 ms | 4.0 / 3.5 / n/a (leader: node 1) |"
            ),
            "{out}"
        );
        assert!(out.contains("| 64 | memory | 1800 (1500–2500) |"), "{out}");
        assert!(
            out.contains("1000 (900–1100) vs 1800 (1500–2500), 0.56× by medians, within noise:"),
            "{out}"
        );
        assert!(out.contains("on 2 CPUs. Compare rows"), "{out}");
    }

    #[test]
    fn arguments_parse() {
        assert_eq!(parse(&[]).unwrap(), (5, false));
        assert_eq!(parse(&["--quick".to_owned()]).unwrap(), (1, true));
        assert_eq!(
            parse(&["--rounds".to_owned(), "5".to_owned()]).unwrap(),
            (5, false)
        );
        assert!(parse(&["--rounds".to_owned(), "0".to_owned()]).is_err());
    }

    #[test]
    fn a_busy_machine_is_named() {
        assert!(busy_note("15.62 15.84 15.53", 2).contains("busy"));
        assert!(!busy_note("0.50 0.40 0.30", 2).contains("busy"));
        assert!(!busy_note("unknown", 2).contains("busy"));
    }

    #[test]
    fn the_goal_is_judged_on_every_round() {
        let s = |min, median, max| Spread { min, median, max };
        let mem = s(19_000.0, 20_000.0, 21_000.0);
        assert!(goal_line(s(11_000.0, 12_000.0, 13_000.0), mem).contains("**met**"));
        assert!(goal_line(s(8_000.0, 9_000.0, 9_400.0), mem).contains("**missed**"));
        assert!(goal_line(s(10_000.0, 12_000.0, 13_000.0), mem).contains("within noise"));
    }
}
