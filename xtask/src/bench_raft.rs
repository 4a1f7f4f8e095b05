//! `cargo xtask bench-raft [--rounds N] [--calls N] [--reopen-entries N]`: wal-raft and its
//! peers in one run. `bench/raft` (wal-raft, and plain wal-log as a baseline) and
//! `bench/raft-peers` (openraft-memstore, openraft-rocksstore as shipped and synced: openraft's
//! 0.9 example stores cannot be built next to wal-raft) run back to back with the same
//! parameters, alternating, for every round; each prints `store<TAB>measure<TAB>value` lines.
//! The figures of all rounds become `docs/benchmarks-raft.md` (see `raft_report`), whose
//! summary is spliced into `docs/benchmarks.md`.

use crate::raft_report::{self, Run};
use crate::util::{Failure, capture, cargo, format_duration, run};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// The parameters of a run; both programs get the same ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub rounds: u64,
    pub calls: u64,
    pub reopen_entries: u64,
}

/// Parses `--rounds`, `--calls` and `--reopen-entries` (each `--flag N` or `--flag=N`).
pub fn parse(args: &[String]) -> Result<Params, Failure> {
    let mut p = Params {
        rounds: 3,
        calls: 3000,
        reopen_entries: 1_000_000,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (arg.as_str(), None),
        };
        let slot = match flag {
            "--rounds" => &mut p.rounds,
            "--calls" => &mut p.calls,
            "--reopen-entries" => &mut p.reopen_entries,
            _ => return Err(Failure::usage(format!("unexpected argument `{arg}`"))),
        };
        let text = match inline {
            Some(v) => v,
            None => it
                .next()
                .ok_or_else(|| Failure::usage(format!("`{flag}` needs a value")))?,
        };
        *slot =
            text.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                Failure::usage(format!("`{flag}` wants a number >= 1, got `{text}`"))
            })?;
    }
    Ok(p)
}

/// Every value of each (store, measure), in round order.
pub type Figures = BTreeMap<(String, String), Vec<f64>>;

/// Adds the `store<TAB>measure<TAB>value` lines of `text` to `figures`.
pub fn add_rows(figures: &mut Figures, text: &str) -> Result<(), Failure> {
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut cols = line.split('\t');
        let (Some(store), Some(measure), Some(value), None) =
            (cols.next(), cols.next(), cols.next(), cols.next())
        else {
            return Err(Failure::error(format!("a benchmark printed `{line}`")));
        };
        let value: f64 = value
            .parse()
            .map_err(|_| Failure::error(format!("a benchmark printed `{line}`")))?;
        figures
            .entry((store.to_owned(), measure.to_owned()))
            .or_default()
            .push(value);
    }
    Ok(())
}

/// Runs both programs `rounds` times, then writes the report and the summary.
pub fn run_bench_raft(root: &Path, args: &[String]) -> Result<(), Failure> {
    let params = parse(args)?;
    // Build first, so compile time is no part of the run and a build error stops it early.
    for manifest in ["bench/raft/Cargo.toml", "bench/raft-peers/Cargo.toml"] {
        run(&mut cargo(
            root,
            ["build", "--release", "--manifest-path", manifest],
        ))?;
    }
    let load_before = load_average()?;
    let started = Instant::now();
    let mut figures = Figures::new();
    let rows = root.join("bench/raft/target/bench-raft-rows.tsv");
    for round in 1..=params.rounds {
        for manifest in ["bench/raft/Cargo.toml", "bench/raft-peers/Cargo.toml"] {
            println!("bench-raft: round {round} of {}: {manifest}", params.rounds);
            let mut cmd = cargo(
                root,
                [
                    "run",
                    "--release",
                    "--quiet",
                    "--manifest-path",
                    manifest,
                    "--",
                ],
            );
            cmd.arg("--calls")
                .arg(params.calls.to_string())
                .arg("--reopen-entries")
                .arg(params.reopen_entries.to_string())
                .arg("--out")
                .arg(&rows);
            run(&mut cmd)?;
            let text = std::fs::read_to_string(&rows)
                .map_err(|e| Failure::error(format!("read {}: {e}", rows.display())))?;
            add_rows(&mut figures, &text)?;
        }
    }
    let took = started.elapsed();
    let facts = Run {
        params,
        date: capture(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))?
            .trim()
            .to_owned(),
        commit: capture(&mut git(root, &["describe", "--always", "--dirty"]))?
            .trim()
            .to_owned(),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before,
        load_after: load_average()?,
        took: format_duration(took),
    };
    let report = raft_report::render(&facts, &figures)?;
    write(&root.join("docs/benchmarks-raft.md"), &report)?;
    refresh_summary(root)?;
    println!("bench-raft: wrote docs/benchmarks-raft.md and its summary in docs/benchmarks.md");
    Ok(())
}

/// Copies the summary of `docs/benchmarks-raft.md` into `docs/benchmarks.md` (at its end the
/// first time). `cargo xtask bench` calls this too, since it rewrites `docs/benchmarks.md`.
pub fn refresh_summary(root: &Path) -> Result<(), Failure> {
    let raft = root.join("docs/benchmarks-raft.md");
    let Ok(report) = std::fs::read_to_string(&raft) else {
        return Ok(());
    };
    let Some(summary) = raft_report::summary_of(&report) else {
        return Err(Failure::error(
            "docs/benchmarks-raft.md lacks its summary markers; re-run `cargo xtask bench-raft`",
        ));
    };
    let path = root.join("docs/benchmarks.md");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Failure::error(format!("read {}: {e}", path.display())))?;
    write(&path, &raft_report::splice(&text, summary))
}

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    std::fs::write(path, text).map_err(|e| Failure::error(format!("write {}: {e}", path.display())))
}

fn git(root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("git");
    cmd.args(args).current_dir(root);
    cmd
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them.
fn load_average() -> Result<String, Failure> {
    let text = std::fs::read_to_string("/proc/loadavg")
        .map_err(|e| Failure::error(format!("read /proc/loadavg: {e}")))?;
    Ok(text
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parameters_parse_with_defaults() {
        let p = parse(&[]).unwrap_or_else(|f| panic!("{}", f.message));
        assert_eq!((p.rounds, p.calls, p.reopen_entries), (3, 3000, 1_000_000));
        let p = parse(&strings(&[
            "--rounds",
            "5",
            "--calls=10",
            "--reopen-entries",
            "7",
        ]))
        .unwrap_or_else(|f| panic!("{}", f.message));
        assert_eq!((p.rounds, p.calls, p.reopen_entries), (5, 10, 7));
        for bad in [
            &["--rounds"][..],
            &["--rounds", "0"],
            &["--calls", "x"],
            &["-x"],
        ] {
            assert!(parse(&strings(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rows_are_grouped_by_store_and_measure() {
        let mut f = Figures::new();
        let ok = add_rows(&mut f, "a\tappend-1\t10\nb\treopen-5\t0.5\n\n")
            .and_then(|()| add_rows(&mut f, "a\tappend-1\t12\n"));
        assert!(ok.is_ok());
        assert_eq!(
            f[&("a".to_owned(), "append-1".to_owned())],
            vec![10.0, 12.0]
        );
        assert_eq!(f[&("b".to_owned(), "reopen-5".to_owned())], vec![0.5]);
        assert!(add_rows(&mut f, "a\tappend-1").is_err());
        assert!(add_rows(&mut f, "a\tappend-1\tx").is_err());
        assert!(add_rows(&mut f, "a\tb\t1\t2").is_err());
    }
}
