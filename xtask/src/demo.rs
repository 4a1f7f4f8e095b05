//! `cargo xtask demo`: the whole story in about a minute. Build, load keys from 8 threads
//! sharing one log, SIGKILL the writer mid-run, recover, check every acknowledged key, inspect
//! the directory with `walctl`, checkpoint, and print a short report.

use crate::crash::{build_kv, load_and_kill, verify};
use crate::util::Failure;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

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

/// Runs the demo.
pub fn run(root: &Path) -> Result<(), Failure> {
    println!("demo: building kv and walctl (release)…");
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
    println!(
        "demo: kv load with 8 threads into {}; SIGKILL after {} s",
        dir.display(),
        run_for.as_secs()
    );
    let killed = load_and_kill(&kv, &dir, 0, 100_000_000, 8, 32, run_for)?;
    let acked: BTreeSet<u64> = killed.acked.iter().copied().collect();
    let secs = killed.ran.as_secs_f64();
    let commits = field(&killed.stderr, "commits").unwrap_or(acked.len() as f64);
    let fsyncs = field(&killed.stderr, "fsyncs").unwrap_or(0.0);
    println!(
        "demo: killed after {secs:.1} s with {} keys acknowledged",
        acked.len()
    );

    println!("demo: recovering and checking every acknowledged key…");
    let (present, scan_took) = verify(&kv, &dir, &acked, &[(0, 100_000_000, 32)])?;
    let (stat, _) = show(Command::new(&kv).arg("--dir").arg(&dir).arg("stat"))?;
    let recovery_ms = field(&stat, "recovery_ms");

    show(Command::new(&walctl).arg("--dir").arg(&dir).arg("stat"))?;
    let (_, code) = show(Command::new(&walctl).arg("--dir").arg(&dir).arg("verify"))?;
    if code != 0 {
        return Err(Failure::error(format!(
            "walctl verify exited {code} after recovery"
        )));
    }
    let (_, code) = show(Command::new(&kv).arg("--dir").arg(&dir).arg("checkpoint"))?;
    if code != 0 {
        return Err(Failure::error(format!("kv checkpoint exited {code}")));
    }
    show(
        Command::new(&walctl)
            .arg("--dir")
            .arg(&dir)
            .args(["snapshot", "ls"]),
    )?;
    let (_, code) = show(Command::new(&walctl).arg("--dir").arg(&dir).arg("verify"))?;
    if code != 0 {
        return Err(Failure::error(format!(
            "walctl verify exited {code} after checkpoint"
        )));
    }
    // After the checkpoint, recovery starts from the snapshot.
    let (_, after_ckpt) = verify(&kv, &dir, &acked, &[(0, 100_000_000, 32)])?;

    println!();
    println!("demo report");
    println!(
        "  durable commits        {:>12.0}  ({:.0} commits/s from 8 threads)",
        commits,
        commits / secs.max(1e-9)
    );
    if fsyncs > 0.0 {
        println!(
            "  fsyncs                 {fsyncs:>12.0}  ({:.1} commits per fsync)",
            commits / fsyncs
        );
    }
    println!("  keys acknowledged      {:>12}", acked.len());
    println!(
        "  keys recovered         {present:>12}  (every acknowledged key present with its value)"
    );
    match recovery_ms {
        Some(ms) => println!("  recovery (log replay)  {ms:>9.0} ms"),
        None => println!("  recovery + scan        {:>9} ms", scan_took.as_millis()),
    }
    println!(
        "  recovery after checkpoint + scan {:>5} ms",
        after_ckpt.as_millis()
    );
    println!("demo: OK");
    Ok(())
}
