//! Project automation, run as `cargo xtask <command>` from anywhere in the repository.
//!
//! Every external tool is started with a plain [`std::process::Command`]; there are no shell
//! scripts behind these commands. See `cargo xtask help` for the list.

mod ci;
mod fuzz;
mod tidy;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  ci                 fmt, clippy, tests, docs, tidy, cargo-deny (and the crash step once
                     the workspace has a `kv` package); stops at the first failure
  tidy               check the crate layering, workspace lints and wal-format's dependencies
  fuzz [--time SECS] run every cargo-fuzz target in fuzz/ for SECS seconds each (default 60)
  crash [--cycles N] crash-recovery test (not implemented yet)
  demo               end-to-end demo (not implemented yet)
  bench              benchmarks (not implemented yet)
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
        "demo" => not_implemented("the end-to-end demo needs wal-log and examples/kv"),
        "bench" => not_implemented("the benchmark harness has not been written"),
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

/// The crash-recovery step. `ci` calls this too once a `kv` package exists.
pub(crate) fn crash(args: &[String]) -> Result<(), util::Failure> {
    let cycles = util::parse_flag_u64(args, "--cycles")?.unwrap_or(100);
    not_implemented(&format!(
        "the crash-recovery harness ({cycles} cycles requested) has not been written; it \
         needs wal-log and the examples/kv application"
    ))
}

/// An honest placeholder: says what is missing and exits with code 2, never 0.
fn not_implemented(reason: &str) -> Result<(), util::Failure> {
    Err(util::Failure {
        message: format!("not implemented yet: {reason}"),
        code: 2,
    })
}
