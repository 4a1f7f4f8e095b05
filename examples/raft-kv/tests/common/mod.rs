//! Real `raft-kv serve` processes on free localhost ports, and the client commands run
//! against them, for the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_raft-kv");

/// A port nobody listens on right now (bound, read, released: another process may take it
/// before the node does, which [`Cluster::start`] handles by starting again).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Writes a new cluster secret to `path` with `raft-kv gen-secret`.
pub fn gen_secret(path: &Path) {
    let out = Command::new(BIN)
        .arg("gen-secret")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `limit` naming `what`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running node: the process and every line it wrote to stderr.
pub struct Node {
    pub child: Child,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Node {
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

/// Starts `raft-kv serve` with `args`; returns once it printed its listening line, or
/// `Err(log)` when it exited first.
pub fn spawn_node(args: &[String]) -> Result<Node, String> {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        // A killed test run must not leave nodes behind.
        .arg("--exit-with-parent")
        .env("RUST_LOG", "info,openraft=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let pipe = child.stderr.take().unwrap();
    let lines = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if line.contains("listening on") {
                let _ = tx.send(());
            }
            lines.lock().unwrap().push(line);
        }
    });
    let listening = wait_listening(&rx, &mut child);
    let node = Node { child, stderr };
    if listening { Ok(node) } else { Err(node.log()) }
}

fn wait_listening(rx: &Receiver<()>, child: &mut Child) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if rx.recv_timeout(Duration::from_millis(50)).is_ok() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
    }
    let _ = child.kill();
    false
}

/// Three (or `n`) nodes of one cluster, each on its own directory.
pub struct Cluster {
    pub root: tempfile::TempDir,
    pub secret: PathBuf,
    pub addrs: BTreeMap<u64, String>,
    pub nodes: BTreeMap<u64, Node>,
    pub extra: Vec<String>,
}

impl Cluster {
    /// Starts `n` nodes with `extra` serve flags, on fresh ports (again on other ports when
    /// one was taken in between).
    pub fn start(n: u64, extra: &[&str]) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let secret = root.path().join("secret");
        gen_secret(&secret);
        let mut c = Cluster {
            root,
            secret,
            addrs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        let mut last = String::new();
        for _attempt in 0..5 {
            c.addrs = (1..=n)
                .map(|i| (i, format!("127.0.0.1:{}", free_port())))
                .collect();
            match (1..=n).try_for_each(|i| c.start_node(i)) {
                Ok(()) => return c,
                Err(log) => {
                    last = log;
                    for id in c.nodes.keys().copied().collect::<Vec<_>>() {
                        c.kill(id);
                    }
                }
            }
        }
        panic!("no cluster started in 5 attempts; the last node said:\n{last}");
    }

    pub fn peers(&self) -> String {
        self.addrs
            .iter()
            .map(|(i, a)| format!("{i}={a}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn dir(&self, id: u64) -> PathBuf {
        self.root.path().join(format!("n{id}"))
    }

    /// The `serve` flags of node `id`.
    pub fn serve_args(&self, id: u64) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--id".into(),
            id.to_string(),
            "--dir".into(),
            self.dir(id).display().to_string(),
            "--listen".into(),
            self.addrs[&id].clone(),
            "--peers".into(),
            self.peers(),
            "--secret-file".into(),
            self.secret.display().to_string(),
        ];
        a.extend(self.extra.iter().cloned());
        a
    }

    /// (Re)starts node `id` on its directory.
    pub fn start_node(&mut self, id: u64) -> Result<(), String> {
        let node = spawn_node(&self.serve_args(id))?;
        self.nodes.insert(id, node);
        Ok(())
    }

    /// SIGKILLs node `id`.
    pub fn kill(&mut self, id: u64) {
        let mut node = self.nodes.remove(&id).unwrap();
        node.child.kill().unwrap();
        node.child.wait().unwrap();
    }

    /// Runs a client command with this cluster's peers and secret.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--peers")
            .arg(self.peers())
            .arg("--secret-file")
            .arg(&self.secret)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs a client command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "raft-kv {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `status --json`, parsed.
    pub fn status(&self) -> Value {
        let out = self.run(&["status", "--json", "--timeout", "3"]);
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Waits until a leader other than `not` is elected; returns it.
    pub fn wait_leader(&self, not: Option<u64>) -> u64 {
        wait_for(Duration::from_secs(20), "a leader", || {
            let s = self.status();
            s["leader"].as_u64().filter(|l| Some(*l) != not)
        })
    }

    /// Node `id`'s own applied state (`local-scan`).
    pub fn local_scan(&self, id: u64) -> (u64, BTreeMap<String, String>) {
        let out = self.ok(&["local-scan", "--node", &id.to_string()]);
        let mut lines = out.lines();
        let applied = lines
            .next()
            .and_then(|l| l.strip_prefix("applied "))
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
        let map = lines
            .map(|l| {
                let (k, v) = l.split_once('\t').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect();
        (applied, map)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
    }
}

/// Every file under `dir` with its bytes (to show a refused start changed nothing).
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.insert(p.clone(), Vec::new());
                todo.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}
