//! `cargo xtask ci`: every check CI runs, in order, stopping at the first failure.

use crate::util::{self, Failure};
use std::path::Path;
use std::time::{Duration, Instant};

/// What happened to one step.
enum Outcome {
    Passed(Duration),
    Failed(Duration),
    Skipped(&'static str),
    NotRun,
}

/// The body of a step, given the workspace root.
type Action = Box<dyn Fn(&Path) -> Result<(), Failure>>;

/// One step of the pipeline.
struct Step {
    name: &'static str,
    action: Action,
    /// `Some(reason)` when the step does not apply to this workspace.
    skip: Option<&'static str>,
}

fn cargo_step(args: &'static [&'static str]) -> Action {
    Box::new(move |root| util::run(&mut util::cargo(root, args)))
}

fn steps(root: &Path) -> Result<Vec<Step>, Failure> {
    let has_kv = workspace_has_package(root, "kv")?;
    let has_raft_kv = workspace_has_package(root, "raft-kv")?;
    Ok(vec![
        Step {
            name: "fmt",
            action: cargo_step(&["fmt", "--all", "--", "--check"]),
            skip: None,
        },
        Step {
            name: "clippy",
            action: cargo_step(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
            skip: None,
        },
        Step {
            name: "test",
            action: Box::new(test),
            skip: None,
        },
        Step {
            name: "doc",
            action: Box::new(|root| {
                let mut cmd = util::cargo(root, ["doc", "--workspace", "--no-deps"]);
                cmd.env("RUSTDOCFLAGS", "-D warnings");
                util::run(&mut cmd)
            }),
            skip: None,
        },
        Step {
            name: "tidy",
            action: Box::new(crate::tidy::run),
            skip: None,
        },
        Step {
            name: "deny",
            action: Box::new(deny),
            skip: None,
        },
        Step {
            name: "crash",
            action: Box::new(|_| crate::crash(&["--cycles".to_owned(), "100".to_owned()])),
            skip: (!has_kv).then_some("no `kv` package in the workspace yet"),
        },
        Step {
            name: "cluster",
            // The short run: two leader kills, a follower kill, a snapshot catch-up, on the
            // dev build the test step has just made (no release build of openraft's stack).
            action: Box::new(|root| {
                let args = crate::cluster::Args {
                    cycles: 2,
                    keys_per_cycle: 600,
                    clients: 8,
                    snapshot_every: 200,
                    dev: true,
                };
                crate::cluster::run(root, args)
            }),
            skip: (!has_raft_kv).then_some("no `raft-kv` package in the workspace yet"),
        },
        Step {
            name: "raft-model",
            // wal-raft against openraft-memstore: a cold build of the memstore player's own
            // workspace (no RocksDB) and a short run; `cargo xtask raft-model` runs longer.
            action: Box::new(|root| {
                // The fmt step's `--all` covers this workspace only.
                util::run(&mut util::cargo(
                    root,
                    [
                        "fmt",
                        "--manifest-path",
                        crate::raft_model::MEMSTORE_MANIFEST,
                        "--",
                        "--check",
                    ],
                ))?;
                let args = crate::raft_model::Args {
                    seeds: 20,
                    ..crate::raft_model::Args::default()
                };
                crate::raft_model::run(root, args)
            }),
            skip: None,
        },
    ])
}

/// The test suite: doctests then nextest (one process per test) when cargo-nextest is on PATH,
/// else plain `cargo test`. Both print a standard summary line at the end; the doctests run
/// first so the last summary printed is nextest's count of every unit and integration test
/// (crates without doctests print "0 passed", which should not be the closing line).
fn test(root: &Path) -> Result<(), Failure> {
    if util::on_path("cargo-nextest") {
        util::run(&mut util::cargo(root, ["test", "--workspace", "--doc"]))?;
        util::run(&mut util::cargo(root, ["nextest", "run", "--workspace"]))
    } else {
        println!("xtask ci: cargo-nextest not on PATH, using cargo test");
        util::run(&mut util::cargo(root, ["test", "--workspace"]))
    }
}

/// The workspaces CI builds: this one and the memstore model player's own.
const DENY_MANIFESTS: &[&str] = &["Cargo.toml", crate::raft_model::MEMSTORE_MANIFEST];

/// cargo-deny's bans, licenses and sources checks of every workspace CI builds
/// ([`DENY_MANIFESTS`]); installs cargo-deny first when missing.
/// Advisories are not checked: see the comment at the top of `deny.toml`. A passing check
/// prints one line per warning (a duplicate crate is allowed by `deny.toml` but still
/// reported, with its whole dependency tree); the trees are shown only when the check fails.
fn deny(root: &Path) -> Result<(), Failure> {
    ensure_cargo_deny(root)?;
    DENY_MANIFESTS
        .iter()
        .try_for_each(|manifest| deny_one(root, manifest))
}

fn deny_one(root: &Path, manifest: &str) -> Result<(), Failure> {
    let mut cmd = util::cargo(
        root,
        [
            "deny",
            "--manifest-path",
            manifest,
            "check",
            "bans",
            "licenses",
            "sources",
        ],
    );
    let line = util::describe(&cmd);
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Failure::error(format!("could not start `{line}`: {e}")))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        print!("{text}");
        return Err(Failure::error(format!("`{line}` failed ({})", out.status)));
    }
    println!("{manifest}:");
    for l in deny_summary(&text) {
        println!("  {l}");
    }
    Ok(())
}

/// The headline of each diagnostic and the verdict line of a passing cargo-deny run.
fn deny_summary(text: &str) -> Vec<&str> {
    let headlines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("warning[") || l.starts_with("error["))
        .collect();
    let mut lines = headlines.clone();
    if !headlines.is_empty() {
        lines.push(
            "  (warnings only: deny.toml lets them pass; `cargo deny check bans` shows the trees)",
        );
    }
    lines.extend(
        text.lines()
            .filter(|l| l.ends_with(" ok") && l.contains("bans")),
    );
    lines
}

/// Installs cargo-deny with `cargo install --locked` unless `cargo deny` already works.
pub fn ensure_cargo_deny(root: &Path) -> Result<(), Failure> {
    if util::succeeds(&mut util::cargo(root, ["deny", "--version"])) {
        return Ok(());
    }
    println!(
        "xtask: the `deny` step checks the dependency tree's licenses, sources and banned or \
         duplicate crates with cargo-deny, which is not installed. Installing it into ~/.cargo/bin \
         with `cargo install --locked cargo-deny` (compiled from source: a few minutes, once)."
    );
    let started = std::time::Instant::now();
    util::run(&mut util::cargo(
        root,
        ["install", "--locked", "cargo-deny"],
    ))?;
    println!(
        "xtask: cargo-deny installed in {}",
        util::format_duration(started.elapsed())
    );
    Ok(())
}

fn workspace_has_package(root: &Path, name: &str) -> Result<bool, Failure> {
    let meta = util::metadata(root)?;
    let packages = crate::tidy::workspace_packages(&meta).map_err(Failure::error)?;
    Ok(packages.iter().any(|p| p.name == name))
}

/// Runs the pipeline and prints a summary table of steps and durations at the end.
pub fn run(root: &Path) -> Result<(), Failure> {
    let steps = steps(root)?;
    let total = steps.len();
    let mut outcomes: Vec<Outcome> = steps.iter().map(|_| Outcome::NotRun).collect();
    let mut failure = None;
    let started = Instant::now();
    for (i, step) in steps.iter().enumerate() {
        if let Some(reason) = step.skip {
            println!(
                "\n==> [{}/{total}] {}: skipped ({reason})",
                i + 1,
                step.name
            );
            outcomes[i] = Outcome::Skipped(reason);
            continue;
        }
        println!("\n==> [{}/{total}] {}", i + 1, step.name);
        let t = Instant::now();
        let result = (step.action)(root);
        let took = t.elapsed();
        match result {
            Ok(()) => outcomes[i] = Outcome::Passed(took),
            Err(e) => {
                outcomes[i] = Outcome::Failed(took);
                failure = Some((step.name, e, i + 1 < total));
                break;
            }
        }
    }
    print_summary(&steps, &outcomes, started.elapsed());
    match failure {
        None => {
            println!("xtask ci: every step passed");
            Ok(())
        }
        Some((name, e, later)) => {
            let skipped = if later { " (later steps not run)" } else { "" };
            Err(Failure::error(format!(
                "step `{name}` failed{skipped}: {}",
                e.message
            )))
        }
    }
}

fn print_summary(steps: &[Step], outcomes: &[Outcome], total: Duration) {
    println!("\nxtask ci summary");
    println!("  {:<8} {:<10} {:>10}", "step", "result", "time");
    for (step, outcome) in steps.iter().zip(outcomes) {
        let (result, time) = match outcome {
            Outcome::Passed(d) => ("ok".to_owned(), util::format_duration(*d)),
            Outcome::Failed(d) => ("FAILED".to_owned(), util::format_duration(*d)),
            Outcome::Skipped(reason) => (format!("skipped: {reason}"), String::new()),
            Outcome::NotRun => ("not run".to_owned(), String::new()),
        };
        if time.is_empty() {
            println!("  {:<8} {result}", step.name);
        } else {
            println!("  {:<8} {result:<10} {time:>10}", step.name);
        }
    }
    println!(
        "  {:<8} {:<10} {:>10}",
        "total",
        "",
        util::format_duration(total)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passing_deny_run_is_summarised_without_trees() {
        let text = "warning[duplicate]: found 2 duplicate entries for crate 'syn'\n  \u{250c}\u{2500} tree\n     \u{2514}\u{2500}\u{2500} syn v1\nbans ok, licenses ok, sources ok\n";
        assert_eq!(
            deny_summary(text),
            vec![
                "warning[duplicate]: found 2 duplicate entries for crate 'syn'",
                "  (warnings only: deny.toml lets them pass; `cargo deny check bans` shows the trees)",
                "bans ok, licenses ok, sources ok",
            ]
        );
        assert_eq!(
            deny_summary("bans ok, licenses ok, sources ok\n"),
            vec!["bans ok, licenses ok, sources ok"]
        );
    }
}
