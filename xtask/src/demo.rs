//! `cargo xtask demo`: the whole story in about a minute. Build, load keys from 8 threads
//! sharing one log, SIGKILL the writer mid-run, recover, check every acknowledged key, inspect
//! the directory with `walctl`, checkpoint, and print a short report.

use crate::crash::{build_kv, load_and_kill, verify};
use crate::util::{Failure, format_duration};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn field(text: &str, key: &str) -> Option<f64> {
    // The last "key=value" occurrence wins (progress lines repeat).
    text.split_whitespace()
        .filter_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .filter_map(|v| v.parse::<f64>().ok())
        .next_back()
}

fn show(cmd: &mut Command) -> Result<(String, i32), Failure> {
    let line = crate::util::describe(cmd);
    let out = cmd
        .output()
        .map_err(|e| Failure::error(format!("could not run `{line}`: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("$ {line}");
    for l in text.lines() {
        println!("    {l}");
    }
    let err = String::from_utf8_lossy(&out.stderr);
    for l in err.lines() {
        println!("    (stderr) {l}");
    }
    Ok((text, out.status.code().unwrap_or(-1)))
}

/// Prints the start of a demo phase and returns when it began.
fn phase(what: &str) -> Instant {
    println!("demo: {what}…");
    Instant::now()
}

/// Prints how long the phase begun at `began` took.
fn took(began: Instant) {
    println!("demo:   done in {}", format_duration(began.elapsed()));
}

/// Runs a `walctl` or `kv` command of the demo and fails unless it exits 0.
fn check(cmd: &mut Command, what: &str) -> Result<String, Failure> {
    let (text, code) = show(cmd)?;
    if code != 0 {
        return Err(Failure::error(format!("{what} exited {code}")));
    }
    Ok(text)
}

/// Runs the demo.
pub fn run(root: &Path) -> Result<(), Failure> {
    let started = Instant::now();
    let kv = build_kv(root)?;
    let walctl = crate::util::target_dir(root)?
        .join("release")
        .join("walctl");
    let base = root.join("target").join("xtask-demo");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)
        .map_err(|e| Failure::error(format!("create {}: {e}", base.display())))?;
    let dir = base.join("db");

    let run_for = Duration::from_secs(8);
    let began = phase(&format!(
        "kv load with 8 threads into {}; SIGKILL after {} s",
        dir.display(),
        run_for.as_secs()
    ));
    let killed = load_and_kill(&kv, &dir, 0, 100_000_000, 8, 32, run_for)?;
    let acked: BTreeSet<u64> = killed.acked.iter().copied().collect();
    let secs = killed.ran.as_secs_f64();
    // kv's last progress line before the kill: its counters at that moment, not at the end.
    let last = Progress {
        commits: field(&killed.stderr, "commits"),
        fsyncs: field(&killed.stderr, "fsyncs"),
        elapsed_ms: field(&killed.stderr, "elapsed_ms"),
    };
    println!(
        "demo:   killed after {secs:.1} s with {} keys acknowledged",
        acked.len()
    );
    took(began);

    let began = phase("recovering and checking every acknowledged key");
    let (present, _) = verify(&kv, &dir, &acked, &[(0, 100_000_000, 32)])?;
    let stat = check(
        Command::new(&kv).arg("--dir").arg(&dir).arg("stat"),
        "kv stat",
    )?;
    let recovery_ms = field(&stat, "recovery_ms");
    took(began);

    let began = phase("inspecting the directory with walctl");
    check(
        Command::new(&walctl).arg("--dir").arg(&dir).arg("stat"),
        "walctl stat",
    )?;
    check(
        Command::new(&walctl).arg("--dir").arg(&dir).arg("verify"),
        "walctl verify after recovery",
    )?;
    took(began);

    let began = phase("checkpoint, then recover from the snapshot");
    check(
        Command::new(&kv).arg("--dir").arg(&dir).arg("checkpoint"),
        "kv checkpoint",
    )?;
    check(
        Command::new(&walctl)
            .arg("--dir")
            .arg(&dir)
            .args(["snapshot", "ls"]),
        "walctl snapshot ls",
    )?;
    check(
        Command::new(&walctl).arg("--dir").arg(&dir).arg("verify"),
        "walctl verify after checkpoint",
    )?;
    let (after_ckpt_keys, after_ckpt) = verify(&kv, &dir, &acked, &[(0, 100_000_000, 32)])?;
    took(began);

    println!();
    println!("demo report (figures as they stand at the end)");
    println!(
        "  keys acknowledged      {:>10}  ({:.0}/s from 8 threads over {secs:.1} s; printed by kv after each commit was durable)",
        acked.len(),
        acked.len() as f64 / secs.max(1e-9)
    );
    println!(
        "  keys recovered         {present:>10}  (each key is one transaction: every acknowledged one, plus {} durable but killed before kv printed them)",
        present - acked.len()
    );
    if let Progress {
        commits: Some(c),
        fsyncs: Some(f),
        elapsed_ms: Some(ms),
    } = last
        && f > 0.0
    {
        println!(
            "  commits per fsync      {:>10.1}  (kv's last progress line before the kill, at {:.1} s: {c:.0} commits, {f:.0} fsyncs)",
            c / f,
            ms / 1000.0
        );
    }
    match recovery_ms {
        Some(ms) => println!("  recovery (log replay)  {ms:>7.0} ms"),
        None => println!("  recovery               (kv stat printed no recovery_ms)"),
    }
    println!(
        "  recovery from snapshot + scan {:>4} ms  ({after_ckpt_keys} keys)",
        after_ckpt.as_millis()
    );
    println!("demo: OK in {}", format_duration(started.elapsed()));
    println!(
        "demo: next, the same engine replicated: `cargo xtask cluster` runs three raft-kv nodes \
         under load, SIGKILLs the leader mid-load and checks every acknowledged key on every node \
         (README, \"Going distributed\")"
    );
    Ok(())
}

/// kv's counters as its last progress line gave them.
struct Progress {
    commits: Option<f64>,
    fsyncs: Option<f64>,
    elapsed_ms: Option<f64>,
}
