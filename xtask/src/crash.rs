//! `cargo xtask crash --cycles N`: real crashes. A `kv load` child process commits keys and
//! prints each one right after its commit is acknowledged; it is killed with SIGKILL at a random
//! moment; the directory is then recovered by a fresh `kv` and every printed key must be there
//! with its exact value, and no key the writers never attempted may appear.

use crate::util::{Failure, cargo, run};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Keys per cycle's range; cycle `c` writes `k<c * RANGE + i>`.
const RANGE: u64 = 10_000_000;

/// Parses `--cycles N` (default 100) and `--seed S`.
pub fn parse(args: &[String]) -> Result<(u64, u64), Failure> {
    let mut cycles = 100;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = |it: &mut std::slice::Iter<'_, String>| {
            it.next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| Failure::usage(format!("{a} needs a number")))
        };
        match a.as_str() {
            "--cycles" => cycles = value(&mut it)?,
            "--seed" => seed = value(&mut it)?,
            other => return Err(Failure::usage(format!("crash: unknown argument `{other}`"))),
        }
    }
    Ok((cycles, seed))
}

/// A tiny deterministic generator (splitmix64), so a failing run can be repeated with `--seed`.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Builds `kv` and `walctl` in release mode (cargo shows its progress: the first build takes
/// a minute) and returns kv's path.
pub fn build_kv(root: &Path) -> Result<PathBuf, Failure> {
    let started = Instant::now();
    println!("building kv and walctl (release)…");
    run(&mut cargo(
        root,
        [
            "build",
            "--release",
            "-p",
            "kv",
            "-p",
            "wal-replay",
            "--bins",
        ],
    ))?;
    println!(
        "built kv and walctl in {}",
        crate::util::format_duration(started.elapsed())
    );
    Ok(crate::util::target_dir(root)?.join("release").join("kv"))
}

/// The value `kv load` writes for key index `i` at `value_size` bytes.
pub fn expected_value(i: u64, value_size: usize) -> String {
    let mut v = format!("v{i}-");
    while v.len() < value_size {
        v.push('x');
    }
    v
}

/// What one killed `kv load` acknowledged.
pub struct Killed {
    /// Key indexes printed (acknowledged) before the kill.
    pub acked: Vec<u64>,
    /// How long the child ran.
    pub ran: Duration,
    /// Its stderr (progress lines).
    pub stderr: String,
}

/// Starts `kv load` and kills it with SIGKILL after `after`, or once it has printed
/// `kill_after_keys` keys, whichever comes first.
pub fn load_and_kill(
    kv: &Path,
    dir: &Path,
    start: u64,
    count: u64,
    threads: u64,
    value_size: usize,
    after: Duration,
) -> Result<Killed, Failure> {
    let mut child = Command::new(kv)
        .arg("--dir")
        .arg(dir)
        .args([
            "load",
            "--count",
            &count.to_string(),
            "--start",
            &start.to_string(),
        ])
        .args([
            "--threads",
            &threads.to_string(),
            "--value-size",
            &value_size.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::error(format!("could not start {}: {e}", kv.display())))?;
    let started = Instant::now();
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Failure::error("no stdout pipe"))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| Failure::error("no stderr pipe"))?;
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        // Only complete lines count: a line cut by the kill has no newline.
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        while let Ok(n) = r.read_line(&mut line) {
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            if tx.send(line.trim_end().to_owned()).is_err() {
                break;
            }
            line.clear();
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
        s
    });
    let mut acked = Vec::new();
    let deadline = started + after;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        match rx.recv_timeout(deadline - now) {
            Ok(line) => acked.push(parse_key(&line)?),
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // A writer that died by itself (a crash, an abort, a panic) before the kill is a failure
    // of kv, not one of our crashes.
    let died_before_kill = child
        .try_wait()
        .map_err(|e| Failure::error(format!("wait for kv: {e}")))?;
    // std's Child::kill sends SIGKILL on Unix: no destructor, no flush, no fsync runs.
    let _ = child.kill();
    let status = child
        .wait()
        .map_err(|e| Failure::error(format!("wait for kv: {e}")))?;
    let ran = started.elapsed();
    let _ = reader.join();
    for line in rx.try_iter() {
        acked.push(parse_key(&line)?);
    }
    let stderr = err_reader.join().unwrap_or_default();
    if status.success() && acked.len() as u64 != count {
        return Err(Failure::error(format!(
            "kv load exited cleanly but printed {} of {count} keys\n{stderr}",
            acked.len()
        )));
    }
    if !status.success() && (died_before_kill.is_some() || !killed_by_sigkill(status)) {
        return Err(Failure::error(format!(
            "kv load failed on its own ({status}) before it was killed:\n{stderr}"
        )));
    }
    Ok(Killed { acked, ran, stderr })
}

/// Whether `status` is a death by SIGKILL, the harness's signal (a kill racing the child's own
/// exit leaves that exit's status instead).
fn killed_by_sigkill(status: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

/// `k<i>` → `i`.
pub fn parse_key(line: &str) -> Result<u64, Failure> {
    line.strip_prefix('k')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Failure::error(format!("load printed an unexpected line {line:?}")))
}

/// Checks a scan's `(key, value)` pairs: every key was attempted by some writer (`attempted`
/// holds `(start, count, value_size)` ranges) and holds exactly the value written for it, and
/// every acknowledged key is present. Returns the indexes present.
pub fn check_pairs<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    acked: &BTreeSet<u64>,
    attempted: &[(u64, u64, usize)],
) -> Result<BTreeSet<u64>, Failure> {
    let mut present = BTreeSet::new();
    for (k, v) in pairs {
        let i = parse_key(k)?;
        let Some(&(_, _, size)) = attempted.iter().find(|(s, n, _)| (*s..s + n).contains(&i))
        else {
            return Err(Failure::error(format!(
                "key {k} appeared but no writer ever attempted it"
            )));
        };
        let want = expected_value(i, size);
        if v != want {
            return Err(Failure::error(format!(
                "key {k} has value {v:?}, expected {want:?}"
            )));
        }
        present.insert(i);
    }
    if let Some(missing) = acked.iter().find(|i| !present.contains(i)) {
        return Err(Failure::error(format!(
            "key k{missing} was acknowledged but is missing ({} acknowledged, {} present)",
            acked.len(),
            present.len()
        )));
    }
    Ok(present)
}

/// Runs `kv --dir D scan` (which recovers first) and checks it against what was acknowledged
/// and what was attempted. Returns the number of keys present and the recovery time.
pub fn verify(
    kv: &Path,
    dir: &Path,
    acked: &BTreeSet<u64>,
    attempted: &[(u64, u64, usize)],
) -> Result<(usize, Duration), Failure> {
    let started = Instant::now();
    let out = Command::new(kv)
        .arg("--dir")
        .arg(dir)
        .arg("scan")
        .output()
        .map_err(|e| Failure::error(format!("could not run kv scan: {e}")))?;
    let took = started.elapsed();
    if !out.status.success() {
        return Err(Failure::error(format!(
            "kv scan failed after a crash ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let pairs = text
        .lines()
        .map(|line| {
            line.split_once('\t')
                .ok_or_else(|| Failure::error(format!("kv scan printed {line:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let present = check_pairs(pairs, acked, attempted).map_err(|e| {
        let why = e.message.trim_start_matches("error: ");
        Failure::error(format!("after recovery: {why}"))
    })?;
    Ok((present.len(), took))
}

/// The whole `crash` command.
pub fn run_cycles(root: &Path, cycles: u64, seed: u64) -> Result<(), Failure> {
    println!("crash: {cycles} cycles, seed {seed} (repeat with --seed {seed})");
    let kv = build_kv(root)?;
    let base = root.join("target").join("xtask-crash");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)
        .map_err(|e| Failure::error(format!("create {}: {e}", base.display())))?;
    let mut rng = Rng::new(seed);
    let mut acked = BTreeSet::new();
    let mut attempted = Vec::new();
    let started = Instant::now();
    let mut kills = 0;
    let mut total_acked = 0usize;
    for cycle in 0..cycles {
        // A fresh database every ten cycles keeps each scan small; within a group every cycle
        // recovers the previous crashes' state and keeps writing on top of it.
        let dir = base.join(format!("db{}", cycle / 10));
        if cycle % 10 == 0 {
            total_acked += acked.len();
            acked.clear();
            attempted.clear();
        }
        let threads = [1, 2, 4, 8][rng.below(4) as usize];
        let value_size = [8, 32, 100, 500][rng.below(4) as usize];
        let count = 1_000_000;
        let start = cycle * RANGE;
        let after = Duration::from_millis(30 + rng.below(400));
        attempted.push((start, count, value_size));
        let k = load_and_kill(&kv, &dir, start, count, threads, value_size, after)?;
        kills += 1;
        acked.extend(k.acked.iter().copied());
        if rng.below(10) == 0 {
            let out = Command::new(&kv)
                .arg("--dir")
                .arg(&dir)
                .arg("checkpoint")
                .output();
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) => {
                    return Err(Failure::error(format!(
                        "kv checkpoint failed: {}",
                        String::from_utf8_lossy(&o.stderr)
                    )));
                }
                Err(e) => return Err(Failure::error(format!("kv checkpoint: {e}"))),
            }
        }
        let (present, took) = verify(&kv, &dir, &acked, &attempted)?;
        println!(
            "cycle {:>4}: {threads} thread{}, {value_size:>4} B values, killed after {:>4} ms, {:>6} keys acknowledged this cycle; {present} keys in the database after recovery ({} ms)",
            cycle + 1,
            if threads == 1 { "" } else { "s" },
            k.ran.as_millis(),
            k.acked.len(),
            took.as_millis()
        );
    }
    println!(
        "crash: {kills} SIGKILL cycles passed in {:.1} s; {} acknowledged keys all recovered, nothing unwritten appeared",
        started.elapsed().as_secs_f64(),
        total_acked + acked.len()
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in for `kv load`: a shell script with `body`, in a fresh directory.
    fn fake_kv(body: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake-kv");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, path)
    }

    fn load(body: &str, count: u64, after: Duration) -> Result<Killed, Failure> {
        let (dir, kv) = fake_kv(body);
        load_and_kill(&kv, dir.path(), 0, count, 1, 8, after)
    }

    /// A writer that dies by itself (SIGSEGV, as a memory bug or a stack overflow would)
    /// before the harness kills it fails the cycle; it is not one of our crashes.
    #[test]
    fn a_writer_that_crashes_on_its_own_fails_the_cycle() {
        let r = load(
            "echo k0; echo k1; kill -SEGV $$; sleep 60",
            1_000_000,
            Duration::from_secs(10),
        );
        let e = r.err().expect("a SIGSEGV was taken for the harness's kill");
        assert!(e.message.contains("on its own"), "{}", e.message);
    }

    /// A writer still running when the time is up is killed with SIGKILL, and what it
    /// acknowledged is kept.
    #[test]
    fn a_running_writer_is_killed_and_its_acknowledgements_kept() {
        let k = load(
            "echo k0; echo k1; exec sleep 60",
            1_000_000,
            Duration::from_millis(300),
        )
        .unwrap();
        assert_eq!(k.acked, vec![0, 1]);
    }

    /// A writer that finishes before the kill must have printed every key.
    #[test]
    fn a_writer_that_finishes_must_acknowledge_everything() {
        assert_eq!(
            load("echo k0; echo k1", 2, Duration::from_secs(10))
                .unwrap()
                .acked,
            vec![0, 1]
        );
        let e = load("echo k0", 2, Duration::from_secs(10)).err().unwrap();
        assert!(e.message.contains("printed 1 of 2"), "{}", e.message);
    }
}
