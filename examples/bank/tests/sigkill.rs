//! The bank, SIGKILLed 20 times per sync policy while four threads transfer money, large
//! audit records stream through the log and a checkpoint runs every 150 ms. After every kill
//! a fresh process recovers and checks: money is conserved, every acknowledged transaction
//! is there, none is invented (each thread has at most one in flight), each was applied
//! exactly once (the bank refuses a sequence number out of order), and the log stays bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const CYCLES: u64 = 20;
const THREADS: usize = 4;
/// With 8 MiB segments, checkpoints every 150 ms and two snapshots kept, the log holds the
/// writes of a few checkpoint intervals. Before the truncation fix it kept every segment
/// since the first large transaction (hundreds after 20 runs).
const MAX_SEGMENTS: u64 = 12;
/// No line from the child for this long is a hang, reported as a failure.
const STALL: Duration = Duration::from_secs(120);

fn bank() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bank"))
}

/// One run, killed once it acknowledged at least `acks` transactions and took a checkpoint.
/// Returns the highest acknowledged sequence number of each thread.
fn run_and_kill(dir: &Path, sync: &str, acks: u64) -> [u64; THREADS] {
    run_and_kill_with(dir, &["--sync", sync], acks)
}

/// [`run_and_kill`] with these arguments to `run`.
fn run_and_kill_with(dir: &Path, run_args: &[&str], acks: u64) -> [u64; THREADS] {
    let mut child = bank()
        .arg("--dir")
        .arg(dir)
        .arg("run")
        .args(run_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let mut p = Progress::default();
    while p.seen < acks || p.checkpoints == 0 {
        match rx.recv_timeout(STALL) {
            Ok(line) => p.note(&line),
            Err(e) => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "bank stopped before the kill ({e:?}): {:?}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");
    // Lines printed before the kill were acknowledged too.
    reader.join().unwrap();
    while let Ok(line) = rx.try_recv() {
        p.note(&line);
    }
    p.acked
}

/// What a run's output said so far.
#[derive(Default)]
struct Progress {
    /// Highest acknowledged sequence number per thread.
    acked: [u64; THREADS],
    seen: u64,
    checkpoints: u64,
}

impl Progress {
    fn note(&mut self, line: &str) {
        let mut w = line.split(' ');
        match w.next() {
            Some("ack") => {
                let t: usize = w.next().unwrap().parse().unwrap();
                let seq: u64 = w.next().unwrap().parse().unwrap();
                assert!(
                    seq > self.acked[t],
                    "thread {t} acknowledged {seq} twice or backwards"
                );
                self.acked[t] = seq;
                self.seen += 1;
            }
            Some("checkpoint") => self.checkpoints += 1,
            _ => {}
        }
    }
}

/// Recovers in a fresh process and returns its figures.
fn check(dir: &Path) -> serde_json::Value {
    let out = bank().arg("--dir").arg(dir).arg("check").output().unwrap();
    assert!(
        out.status.success(),
        "recovery failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sigkill_cycles(sync: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut acked_ever = [0u64; THREADS];
    let mut segments = Vec::new();
    for cycle in 0..CYCLES {
        // Kill points spread from early (just after a checkpoint) to later in a run.
        let acks = 50 + (cycle * 7919) % 600;
        let acked = run_and_kill(dir.path(), sync, acks);
        let c = check(dir.path());
        assert_eq!(
            c["total"], c["expected_total"],
            "cycle {cycle}: money not conserved"
        );
        for t in 0..THREADS {
            acked_ever[t] = acked_ever[t].max(acked[t]);
            let last = c["last_seq"][t].as_u64().unwrap();
            assert!(
                last >= acked_ever[t],
                "cycle {cycle}, thread {t}: acknowledged {} but recovered {last}",
                acked_ever[t]
            );
            // Each thread waits for its transaction before the next: one in flight at most.
            assert!(
                last <= acked_ever[t] + 1,
                "cycle {cycle}, thread {t}: recovered {last}, only {} acknowledged",
                acked_ever[t]
            );
            // The next run goes on from what was recovered.
            acked_ever[t] = last;
        }
        segments.push(c["segments"].as_u64().unwrap());
    }
    eprintln!("{sync}: segments after each of {CYCLES} cycles: {segments:?}");
    let max = *segments.iter().max().unwrap();
    assert!(
        max <= MAX_SEGMENTS,
        "{sync}: the log grew to {max} segments: {segments:?}"
    );
}

/// The archive a `--mirror` run keeps, after a kill: what `walctl verify` says of it (a torn
/// tail, exit 1, when the kill cut a copy short; never corruption, exit 2), and its figures
/// when recovered alone, on a copy (a data directory whose log is the archive: no snapshot,
/// every transaction from the first).
fn check_archive(archive: &Path) -> (wal_log::inspect::Verdict, serde_json::Value, usize) {
    let verdict = wal_log::inspect::inspect(&wal_log::StdVfs, archive, &mut |_, _| {})
        .unwrap()
        .verdict();
    let copy = tempfile::tempdir().unwrap();
    std::fs::create_dir(copy.path().join("log")).unwrap();
    let mut segments = 0;
    for e in std::fs::read_dir(archive).unwrap() {
        let e = e.unwrap();
        segments += usize::from(e.file_name().to_string_lossy().ends_with(".wal"));
        std::fs::copy(e.path(), copy.path().join("log").join(e.file_name())).unwrap();
    }
    (verdict, check(copy.path()), segments)
}

/// The bank with an archive (`--mirror`): 20 kills while it transfers, writes large audit
/// records and checkpoints every 150 ms. After each, the archive verifies (never corrupt), it
/// alone recovers every acknowledged transaction with the money conserved, and the primary
/// log stays bounded (checkpoints truncate it up to what the archive holds) while the archive
/// grows. Before truncation waited for the mirror, a mirrored log was never truncated; with
/// an ordinary checkpoint truncating it, the archive lost segments silently.
#[test]
fn sigkill_with_a_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let (data, archive) = (dir.path().join("data"), dir.path().join("archive"));
    let archive_arg = archive.to_str().unwrap();
    // Fewer large audits than the other tests: each check recovers a copy of the whole
    // archive, which only grows (a debug build replays it at tens of MB/s).
    let args = [
        "--sync",
        "always",
        "--mirror",
        archive_arg,
        "--audit-every",
        "500",
    ];
    let mut acked_ever = [0u64; THREADS];
    let (mut log_segments, mut archive_segments, mut torn) = (Vec::new(), Vec::new(), 0);
    for cycle in 0..CYCLES {
        let acks = 50 + (cycle * 7919) % 600;
        let acked = run_and_kill_with(&data, &args, acks);
        let (verdict, c, segments) = check_archive(&archive);
        match verdict {
            wal_log::inspect::Verdict::Sound => {}
            wal_log::inspect::Verdict::TornTail { .. } => torn += 1,
            corrupt => panic!("cycle {cycle}: the archive is corrupt: {corrupt:?}"),
        }
        assert_eq!(
            c["total"], c["expected_total"],
            "cycle {cycle}: money not conserved in the archive"
        );
        for t in 0..THREADS {
            acked_ever[t] = acked_ever[t].max(acked[t]);
            let last = c["last_seq"][t].as_u64().unwrap();
            assert!(
                last >= acked_ever[t],
                "cycle {cycle}, thread {t}: acknowledged {} but the archive holds {last}",
                acked_ever[t]
            );
            assert!(last <= acked_ever[t] + 1, "cycle {cycle}, thread {t}");
        }
        let primary = check(&data);
        assert_eq!(primary["total"], primary["expected_total"]);
        for t in 0..THREADS {
            // The next run goes on from what the primary recovered.
            acked_ever[t] = primary["last_seq"][t].as_u64().unwrap();
        }
        log_segments.push(primary["segments"].as_u64().unwrap());
        archive_segments.push(segments);
    }
    eprintln!(
        "mirror: log segments {log_segments:?}; archive segments {archive_segments:?}; \
         archive with a torn tail after {torn} of {CYCLES} kills"
    );
    let max = *log_segments.iter().max().unwrap();
    assert!(
        max <= MAX_SEGMENTS,
        "the log grew to {max} segments: {log_segments:?}"
    );
    assert!(archive_segments.windows(2).all(|w| w[0] <= w[1]));
    assert!(
        *archive_segments.last().unwrap() as u64 > 2 * max,
        "the archive keeps the history: {archive_segments:?}"
    );
}

#[test]
fn sigkill_under_always() {
    sigkill_cycles("always");
}

#[test]
fn sigkill_under_interval() {
    sigkill_cycles("interval");
}
