//! `walctl dump --follow`: a running walctl process prints each transaction another process
//! commits once it is durable, as JSON lines or text, until it is killed; and its refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use wal_log::{Lsn, Options, Wal};

/// Long enough that a line still missing when it passes is a hang, not a slow machine.
const WATCHDOG: Duration = Duration::from_secs(60);

fn writer(root: &Path) -> Wal {
    let opts = Options::default()
        .segment_size(8 << 10)
        .preallocate(false)
        .publish_durable(true);
    Wal::open(root.join("log"), opts).unwrap().0
}

/// A `walctl` child and its stdout, line by line.
struct Follow {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follow {
    fn start(root: &Path, extra: &[&str]) -> Follow {
        let mut child = Command::new(env!("CARGO_BIN_EXE_walctl"))
            .arg("--dir")
            .arg(root)
            .args(["dump", "--follow"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                if tx.send(line.unwrap()).is_err() {
                    return;
                }
            }
        });
        Follow { child, lines }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(WATCHDOG)
            .expect("walctl printed nothing")
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.line()).unwrap()
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        // It runs until interrupted.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn follow_prints_each_durable_transaction_as_a_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let wal = writer(dir.path());
    let first = wal.append(br#"{"op":"put","key":"a"}"#).unwrap();
    let f = Follow::start(dir.path(), &["--json"]);
    let v = f.json();
    assert_eq!(v["type"], "transaction");
    assert_eq!(v["lsn"], first.0);
    assert_eq!(v["prev"], 0);
    assert_eq!(v["records"][0]["json"]["key"], "a");
    // Committed after walctl started, across rotations (the segment is 8 KiB).
    let mut lsns = vec![first];
    for i in 0u8..100 {
        // A leading 0xff is never JSON: shown as hex.
        let mut b = vec![0xff, i];
        b.resize(300, i);
        lsns.push(wal.append(&b).unwrap());
    }
    lsns.push(wal.append_batch(&[&b"\x00\x01"[..], b"{}"]).unwrap());
    assert!(wal.segments().len() > 2);
    for (i, lsn) in lsns.iter().enumerate().skip(1) {
        let v = f.json();
        assert_eq!(v["lsn"], lsn.0, "transaction {i}");
        assert_eq!(v["prev"], lsns[i - 1].0, "transaction {i}");
        if i <= 100 {
            let hex = v["records"][0]["hex"].as_str().unwrap();
            assert!(
                hex.starts_with(&format!("ff{:02x}{:02x}", i - 1, i - 1)),
                "{v}"
            );
        } else {
            assert_eq!(v["multi"], true);
            assert_eq!(v["records"][0]["hex"], "0001");
            assert_eq!(v["records"][1]["json"], serde_json::json!({}));
        }
    }
}

#[test]
fn follow_from_an_lsn_in_text() {
    let dir = tempfile::tempdir().unwrap();
    let wal = writer(dir.path());
    let lsns: Vec<Lsn> = (0..5)
        .map(|i| wal.append(format!("tx{i}").as_bytes()).unwrap())
        .collect();
    let from = lsns[3].0.to_string();
    let f = Follow::start(dir.path(), &["--from", &from]);
    assert_eq!(
        f.line(),
        format!(
            "commit LSN {} (previous {}, 3 bytes, 1 record)",
            lsns[3], lsns[2]
        )
    );
    assert_eq!(f.line(), format!("  hex {}", hex(b"tx3")));
    let more = wal.append(b"later").unwrap();
    assert!(f.line().starts_with(&format!("commit LSN {}", lsns[4])));
    f.line();
    assert_eq!(
        f.line(),
        format!(
            "commit LSN {more} (previous {}, 5 bytes, 1 record)",
            lsns[4]
        )
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A start the log cannot serve is refused at once with a reason: past the end (usage,
/// exit 3), or truncated away (exit 6).
#[test]
fn follow_refuses_a_start_past_the_end_or_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let wal = writer(dir.path());
    for i in 0u8..100 {
        wal.append(&[i; 300]).unwrap();
    }
    let past = (wal.last_lsn().0 + 5).to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_walctl"))
        .arg("--dir")
        .arg(dir.path())
        .args(["dump", "--follow", "--from", &past])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("past the end of the log"));

    assert!(wal.truncate_prefix(wal.durable_lsn()).unwrap() > 0);
    let o = Command::new(env!("CARGO_BIN_EXE_walctl"))
        .arg("--dir")
        .arg(dir.path())
        .args(["--json", "dump", "--follow", "--from", "1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(6));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let err = v["error"].as_str().unwrap();
    assert!(err.contains("LSN 1 was truncated"), "{err}");
}
