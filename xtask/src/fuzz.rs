//! `cargo xtask fuzz [--time SECS]`: runs every cargo-fuzz target in `fuzz/` in turn.
//!
//! `fuzz/` is its own Cargo workspace built with nightly; the commands run from the repository
//! root with `--fuzz-dir fuzz`. Replaying the checked-in corpora is part of `cargo test`, so
//! this command is for finding new inputs, not for CI. New inputs go to the git-ignored
//! `fuzz/target/xtask-corpus/<target>/`, never into the checked-in `fuzz/corpus/<target>/`;
//! crash inputs go where cargo-fuzz puts them, `fuzz/artifacts/<target>/`.

use crate::util::{self, Failure};
use std::path::Path;
use std::time::Instant;

/// Seconds each target runs when `--time` is not given.
pub const DEFAULT_SECS: u64 = 60;

/// Parses `[--time SECS]`.
pub fn parse_time(args: &[String]) -> Result<u64, Failure> {
    Ok(util::parse_flag_u64(args, "--time")?.unwrap_or(DEFAULT_SECS))
}

/// Lists the targets and fuzzes each for `secs` seconds, stopping at the first crash.
pub fn run(root: &Path, secs: u64) -> Result<(), Failure> {
    if !root.join("fuzz").join("Cargo.toml").is_file() {
        return Err(Failure::error(format!(
            "no fuzz/Cargo.toml under {}: the fuzz workspace has not been added yet",
            root.display()
        )));
    }
    if !util::succeeds(&mut util::cargo(root, ["+nightly", "fuzz", "--version"])) {
        println!(
            "xtask fuzz: cargo-fuzz is not installed; installing it with `cargo install --locked cargo-fuzz`"
        );
        util::run(&mut util::cargo(
            root,
            ["install", "--locked", "cargo-fuzz"],
        ))?;
    }
    let listing = util::capture(&mut util::cargo(
        root,
        ["+nightly", "fuzz", "list", "--fuzz-dir", "fuzz"],
    ))?;
    let targets: Vec<&str> = listing
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if targets.is_empty() {
        return Err(Failure::error(
            "`cargo fuzz list` found no fuzz targets in fuzz/",
        ));
    }
    println!(
        "xtask fuzz: {} target(s), {secs}s each: {}",
        targets.len(),
        targets.join(", ")
    );
    let max_time = format!("-max_total_time={secs}");
    for (i, target) in targets.iter().enumerate() {
        println!(
            "\n==> [{}/{}] fuzz {target} for {secs}s",
            i + 1,
            targets.len()
        );
        // libFuzzer writes new inputs into the first corpus directory and only reads the
        // others, so the checked-in corpus (replayed by `cargo test`) stays as curated.
        let work = root.join("fuzz/target/xtask-corpus").join(target);
        std::fs::create_dir_all(&work)
            .map_err(|e| Failure::error(format!("cannot create {}: {e}", work.display())))?;
        let mut cmd = util::cargo(
            root,
            ["+nightly", "fuzz", "run", "--fuzz-dir", "fuzz", target],
        );
        cmd.arg(&work);
        let checked_in = root.join("fuzz/corpus").join(target);
        if checked_in.is_dir() {
            cmd.arg(&checked_in);
        }
        // One input running 30 s is a hang worth reporting now, not after libFuzzer's 20 min.
        cmd.args(["--", &max_time, "-timeout=30"]);
        let t = Instant::now();
        util::run(&mut cmd)
        .map_err(|e| {
            Failure::error(format!(
                "fuzz target {target} failed (a crashing input, if found, is in fuzz/artifacts/{target}/): {}",
                e.message
            ))
        })?;
        println!(
            "xtask fuzz: {target} ran {} without a failure",
            util::format_duration(t.elapsed())
        );
    }
    println!(
        "xtask fuzz: new inputs are in fuzz/target/xtask-corpus/<target>/; copy those worth \
         keeping into fuzz/corpus/<target>/, then `cargo +nightly fuzz cmin --fuzz-dir fuzz \
         <target>` minimises that corpus"
    );
    Ok(())
}
