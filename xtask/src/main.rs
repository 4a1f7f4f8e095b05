//! Project automation, run as `cargo xtask <command>` from anywhere in the repository.
//!
//! Every external tool is started with a plain [`std::process::Command`]; there are no shell
//! scripts behind these commands. See `cargo xtask help` for the list.

mod bench;
mod bench_raft;
mod ci;
mod cluster;
mod crash;
mod demo;
mod fuzz;
mod raft_model;
mod raft_report;
mod spread;
mod tidy;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  ci                 fmt, clippy, tests, docs, tidy, cargo-deny, 100 kv crash cycles, a
                     short `cluster` run (each once its package exists) and a short
                     `raft-model` run (20 seeds); stops at the first failure
  tidy               check the crate layering, workspace lints and wal-format's dependencies
  fuzz [--time SECS] run every cargo-fuzz target in fuzz/ for SECS seconds each (default 60)
  crash [--cycles N] [--seed S]
                     SIGKILL a `kv load` writer N times (default 100) at random moments,
                     recover, and check every acknowledged key
  sim [--seeds N]    the deterministic crash simulation (crates/wal-log/tests/crash_sim.rs)
                     in release mode with N seeds per scenario (default 200): far longer
                     than the default run inside `cargo test`
  cluster [--cycles N] [--keys-per-cycle K] [--clients C] [--snapshot-every E] [--dev]
                     a three-node raft-kv cluster of real processes under load: SIGKILL the
                     leader N times (default 3), a follower once, keep one node down until a
                     snapshot must catch it up; check every node's state (a few minutes);
                     --dev: the debug raft-kv of the workspace's test build (what ci runs)
  cluster-bench [--rounds R] [--quick]
                     commits/s and latency of the three-node cluster with 1, 16 and 64
                     clients, --store wal vs --store memory; writes its section of
                     docs/benchmarks.md
  demo               build, load from 8 threads, SIGKILL, recover, verify, inspect with
                     walctl, checkpoint, and print a report (about a minute)
  bench [--quick] [args]
                     side-by-side benchmark in bench/ (us, okaywal, raft-engine, SQLite,
                     lora-wal, raw disk); writes docs/benchmarks.md and the README summary
  bench-raft [--rounds N] [--calls N] [--reopen-entries N]
                     wal-raft against openraft-rocksstore and openraft-memstore in one run
                     (bench/raft, then bench/raft-peers, each round; default 3 rounds of
                     3000 calls, reopen of 1000000 entries); writes docs/benchmarks-raft.md
                     and its summary in docs/benchmarks.md
  raft-model [--seeds N] [--first S] [--ops N]
                     wal-raft's LogStore against openraft-memstore as the reference model:
                     N sequences (default 100; seeds from S, default 0) of about --ops
                     storage calls (default 400) with crashes, played on both, outcomes
                     compared line by line; every 10th seed also with SIGKILL on a real
                     directory (crates/wal-raft/memstore-model)
  help               show this message";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let root = util::workspace_root();
    let result = match command.as_str() {
        "ci" => no_args("ci", rest).and_then(|()| ci::run(&root)),
        "tidy" => no_args("tidy", rest).and_then(|()| tidy::run(&root)),
        "fuzz" => fuzz::parse_time(rest).and_then(|secs| fuzz::run(&root, secs)),
        "crash" => crash(rest),
        "sim" => util::parse_flag_u64(rest, "--seeds").and_then(|n| sim(&root, n.unwrap_or(200))),
        "cluster" => cluster::parse(rest).and_then(|args| cluster::run(&root, args)),
        "cluster-bench" => cluster::run_bench(&root, rest),
        "demo" => no_args("demo", rest).and_then(|()| demo::run(&root)),
        "bench" => bench::run_bench(&root, rest),
        "bench-raft" => bench_raft::run_bench_raft(&root, rest),
        "raft-model" => raft_model::parse(rest).and_then(|args| raft_model::run(&root, args)),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(util::Failure::usage(format!(
            "unknown command `{other}`\n\n{USAGE}"
        ))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("xtask {command}: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn no_args(command: &str, rest: &[String]) -> Result<(), util::Failure> {
    match rest.first() {
        None => Ok(()),
        Some(arg) => Err(util::Failure::usage(format!(
            "`{command}` takes no argument, got `{arg}`"
        ))),
    }
}

/// Runs the crash simulation with `seeds` seeds per scenario, in release mode.
fn sim(root: &std::path::Path, seeds: u64) -> Result<(), util::Failure> {
    let mut cmd = util::cargo(
        root,
        [
            "test",
            "--release",
            "-p",
            "wal-log",
            "--test",
            "crash_sim",
            "--",
            "--nocapture",
        ],
    );
    cmd.env("WAL_SIM_SEEDS", seeds.to_string());
    util::run(&mut cmd)
}

/// The crash-recovery step. `ci` calls this too once a `kv` package exists.
pub(crate) fn crash(args: &[String]) -> Result<(), util::Failure> {
    let (cycles, seed) = crash::parse(args)?;
    crash::run_cycles(&util::workspace_root(), cycles, seed)
}
