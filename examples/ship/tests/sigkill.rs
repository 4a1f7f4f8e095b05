//! Log shipping between processes under SIGKILL: a writer process (`ship write`) is killed
//! 40 times mid-run and restarted; a follower process (`ship follow`) tails its log from
//! another process and ships into a replica, and is killed and restarted every third cycle.
//! After every cycle the replica (read from the outside with a `TailReader`, while the
//! follower runs) is an exact prefix of the primary; at the end it holds every transaction
//! the writer acknowledged, and exactly the primary's transactions, without a gap. The
//! follower itself refuses a gap (`prev`), exiting 3.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use wal_log::{FollowPosition, Lsn, Options, TailOptions, TailReader, Wal};

const CYCLES: u64 = 40;
/// Long enough that a line still missing when it passes is a hang, not a slow machine.
const WATCHDOG: Duration = Duration::from_secs(60);

/// A child process and its stdout, line by line.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(args: &[&str], dirs: &[&Path]) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ship"));
        cmd.args(args);
        for (flag, d) in ["--primary", "--replica"].iter().zip(dirs) {
            cmd.arg(flag).arg(d);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Proc { child, lines }
    }

    /// The next line, waiting for it.
    fn line(&self) -> String {
        self.lines
            .recv_timeout(WATCHDOG)
            .expect("no line from the child")
    }

    /// SIGKILL, then every line it printed before dying.
    fn kill(mut self) -> Vec<String> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.lines.iter().collect()
    }
}

fn writer(primary: &Path, count: Option<u64>) -> Proc {
    let dir = primary.to_str().unwrap();
    let mut args = vec![
        "write",
        "--dir",
        dir,
        "--size",
        "80",
        "--segment-size",
        "8192",
    ];
    let n = count.map(|c| c.to_string());
    if let Some(n) = &n {
        args.extend(["--count", n]);
    }
    Proc::spawn(&args, &[])
}

fn follower(primary: &Path, replica: &Path) -> Proc {
    let f = Proc::spawn(&["follow", "--poll-us", "500"], &[primary, replica]);
    assert!(f.line().starts_with("following "));
    f
}

/// The `ack ID LSN` lines among `lines`: the ids.
fn acks(lines: &[String]) -> impl Iterator<Item = u64> + '_ {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("ack "))
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
}

/// The primary's transactions: (LSN, body).
fn primary_txs(primary: &Path) -> Vec<(Lsn, Vec<u8>)> {
    let (wal, _) = Wal::open(primary, Options::default().publish_durable(true)).unwrap();
    wal.read_from(Lsn::ZERO)
        .unwrap()
        .map(|t| {
            let t = t.unwrap();
            (t.lsn, t.body.to_vec())
        })
        .collect()
}

/// What the replica holds now, read from the outside without its lock: for each shipped
/// transaction, the primary LSN its position names and the primary's body.
fn replica_txs(replica: &Path) -> Vec<(Lsn, Vec<u8>)> {
    let mut r = TailReader::open(replica, Lsn::FIRST, TailOptions::default()).unwrap();
    let mut out = Vec::new();
    let mut last: Option<FollowPosition> = None;
    while let Some(t) = r.try_next().unwrap() {
        let b = &t.body[..];
        let pos = FollowPosition::decode(&b[..FollowPosition::ENCODED_LEN]).unwrap();
        if let Some(l) = last {
            assert_eq!(l.log_id, pos.log_id);
            assert!(pos.lsn > l.lsn, "positions go forward");
        }
        last = Some(pos);
        out.push((pos.lsn, b[FollowPosition::ENCODED_LEN + 1..].to_vec()));
    }
    out
}

fn shipped(line: &str) -> Option<Lsn> {
    line.strip_prefix("shipped ")
        .map(|n| Lsn(n.parse().unwrap()))
}

#[test]
fn forty_sigkills_of_writer_and_follower_lose_nothing_shipped() {
    let dir = tempfile::tempdir().unwrap();
    let (primary, replica): (PathBuf, PathBuf) = (dir.path().join("p"), dir.path().join("r"));
    let mut acked = BTreeSet::new();
    // The first writer creates the log the follower tails.
    let w = writer(&primary, Some(1));
    assert!(w.line().starts_with("ready"));
    acked.extend(acks(&[w.line()]));
    let mut f = follower(&primary, &replica);
    for cycle in 0..CYCLES {
        let w = writer(&primary, None);
        assert!(w.line().starts_with("ready"));
        // Wait for some acknowledgements, then kill it mid-run.
        let want = 5 + cycle % 11;
        let mut seen = Vec::new();
        while (seen.len() as u64) < want {
            seen.push(w.line());
        }
        seen.extend(w.kill());
        acked.extend(acks(&seen));
        if cycle % 3 == 2 {
            f.kill();
            f = follower(&primary, &replica);
        }
        // The replica is a prefix of the primary's durable log at every moment.
        let rep = replica_txs(&replica);
        let prim = primary_prefix(&primary, rep.len());
        assert_eq!(
            rep, prim,
            "cycle {cycle}: the replica is not a prefix of the primary"
        );
    }
    // A last writer opens the log (recovery makes its end durable and publishes it) and
    // stops cleanly; the follower ships everything.
    let w = writer(&primary, Some(0));
    assert!(w.line().starts_with("ready"));
    drop(w.kill());
    let prim = primary_txs(&primary);
    let end = prim.last().unwrap().0;
    let mut at = Lsn::ZERO;
    while at < end {
        if let Some(l) = shipped(&f.line()) {
            at = l;
        }
    }
    f.kill();
    let rep = replica_txs(&replica);
    assert_eq!(rep.len(), prim.len());
    assert_eq!(rep, prim, "the replica is exactly the primary");
    let ids: BTreeSet<u64> = rep
        .iter()
        .map(|(_, b)| u64::from_le_bytes(b[..8].try_into().unwrap()))
        .collect();
    let missing: Vec<&u64> = acked.difference(&ids).collect();
    assert!(missing.is_empty(), "acknowledged, not shipped: {missing:?}");
    assert!(acked.len() as u64 >= CYCLES * 5);
    // Ids are 0, 1, 2, ... in the log: nothing skipped, nothing twice.
    assert!(ids.iter().copied().eq(0..ids.len() as u64));
}

/// The first `n` transactions of the primary, read from the outside (durable ones only).
fn primary_prefix(primary: &Path, n: usize) -> Vec<(Lsn, Vec<u8>)> {
    let mut r = TailReader::open(primary, Lsn::FIRST, TailOptions::default()).unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        let t = r
            .next_timeout(WATCHDOG)
            .unwrap()
            .expect("the primary lost a transaction the replica holds");
        out.push((t.lsn, t.body.to_vec()));
    }
    out
}
