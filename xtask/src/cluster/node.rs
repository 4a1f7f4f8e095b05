//! The `raft-kv serve` child processes of a local three-node cluster: free ports, start, wait
//! until each listens, SIGKILL, restart on the same directory, and kill them all on drop, so no
//! exit path (an error, a panic) leaves an orphan node behind.

use crate::util::Failure;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long a node may take from spawn to its `listening on` line.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at starting the cluster on fresh ports when one was taken in between.
const PORT_ATTEMPTS: u32 = 5;

/// How the nodes are started.
#[derive(Clone, Debug)]
pub struct Config {
    /// The `raft-kv` binary.
    pub bin: PathBuf,
    /// The cluster secret file every node and client is given.
    pub secret: PathBuf,
    /// Where the node directories and their logs go (`node-<id>/`, `node-<id>.log`).
    pub base: PathBuf,
    /// `--store wal` or `--store memory`.
    pub store: &'static str,
    /// `--snapshot-every`.
    pub snapshot_every: u64,
}

/// One node: its fixed identity and address, and its process while it runs.
struct Node {
    id: u64,
    addr: SocketAddr,
    child: Option<Child>,
}

/// Three running (or deliberately stopped) nodes; dropping it kills every one still running.
pub struct Cluster {
    config: Config,
    nodes: Vec<Node>,
}

/// Why a node did not start.
enum StartError {
    /// Its port was taken by someone else (bind failed): worth another try.
    AddrInUse(Failure),
    /// Anything else: fatal.
    Other(Failure),
}

impl From<Failure> for StartError {
    fn from(f: Failure) -> StartError {
        StartError::Other(f)
    }
}

/// `n` distinct ports free on 127.0.0.1 right now: each bound with std at port 0, read, and
/// released only once all are picked (so the kernel cannot hand out one twice).
pub fn free_ports(n: usize) -> Result<Vec<u16>, Failure> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let l = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| Failure::error(format!("bind 127.0.0.1:0 to find a free port: {e}")))?;
        held.push(l);
    }
    held.iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.port())
                .map_err(|e| Failure::error(format!("local address of a bound socket: {e}")))
        })
        .collect()
}

/// `1=HOST:PORT,2=HOST:PORT,...` for `--peers`.
pub fn peers_arg(addrs: &[(u64, SocketAddr)]) -> String {
    addrs
        .iter()
        .map(|(id, a)| format!("{id}={a}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The last `n` lines of a node's log file, for error messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(n);
    let tail = lines[from..].join("\n    ");
    format!("last lines of {}:\n    {tail}", path.display())
}

impl Cluster {
    /// Starts three nodes on fresh directories and free ports, retrying with new ports when one
    /// was taken between the pick and the bind, and returns once all three listen.
    pub fn start(config: &Config) -> Result<Cluster, Failure> {
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let ports = free_ports(3)?;
            let mut cluster = Cluster {
                config: config.clone(),
                nodes: (1..=3)
                    .zip(ports)
                    .map(|(id, port)| Node {
                        id,
                        addr: SocketAddr::from(([127, 0, 0, 1], port)),
                        child: None,
                    })
                    .collect(),
            };
            for id in 1..=3 {
                let dir = cluster.dir(id);
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)
                        .map_err(|e| Failure::error(format!("remove {}: {e}", dir.display())))?;
                }
            }
            match cluster.spawn_all() {
                Ok(()) => return Ok(cluster),
                // Dropping `cluster` kills the nodes already started.
                Err(StartError::AddrInUse(f)) => last = Some(f),
                Err(StartError::Other(f)) => return Err(f),
            }
        }
        Err(last.unwrap_or_else(|| Failure::error("no attempt at starting the cluster")))
    }

    fn spawn_all(&mut self) -> Result<(), StartError> {
        for id in 1..=3 {
            self.spawn(id)?;
        }
        Ok(())
    }

    /// The node ids.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// `--peers` for clients and nodes.
    pub fn peers(&self) -> String {
        let addrs: Vec<(u64, SocketAddr)> = self.nodes.iter().map(|n| (n.id, n.addr)).collect();
        peers_arg(&addrs)
    }

    /// Node `id`'s data directory.
    pub fn dir(&self, id: u64) -> PathBuf {
        self.config.base.join(format!("node-{id}"))
    }

    /// Node `id`'s log: its stdout and stderr over all its runs.
    pub fn log(&self, id: u64) -> PathBuf {
        self.config.base.join(format!("node-{id}.log"))
    }

    fn node(&mut self, id: u64) -> Result<&mut Node, Failure> {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .ok_or_else(|| Failure::error(format!("there is no node {id}")))
    }

    /// Starts node `id` and waits for its `listening on` line.
    fn spawn(&mut self, id: u64) -> Result<(), StartError> {
        let peers = self.peers();
        let (dir, log) = (self.dir(id), self.log(id));
        let c = self.config.clone();
        let node = self.node(id)?;
        debug_assert!(node.child.is_none(), "node {id} started twice");
        let mut file = open_log(&log)?;
        let _ = writeln!(file, "=== xtask: starting node {id} on {}", node.addr);
        let out = file
            .try_clone()
            .map_err(|e| Failure::error(format!("{}: {e}", log.display())))?;
        let mut child = Command::new(&c.bin)
            .arg("serve")
            .args(["--id", &id.to_string(), "--listen", &node.addr.to_string()])
            .arg("--dir")
            .arg(&dir)
            .args(["--peers", &peers, "--store", c.store])
            .args(["--snapshot-every", &c.snapshot_every.to_string()])
            .arg("--secret-file")
            .arg(&c.secret)
            // A SIGKILLed xtask must not leave nodes behind.
            .arg("--exit-with-parent")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Failure::error(format!("could not start {}: {e}", c.bin.display())))?;
        let listening = match child.stderr.take() {
            Some(stderr) => forward(stderr, file),
            None => return Err(Failure::error("no stderr pipe").into()),
        };
        node.child = Some(child);
        wait_listening(node, &listening, &log)
    }

    /// Restarts the stopped node `id` on its directory and address. A port still held by the
    /// node's previous life (or taken by another process) is retried until `LISTEN_TIMEOUT`.
    pub fn restart(&mut self, id: u64) -> Result<(), Failure> {
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        loop {
            match self.spawn(id) {
                Ok(()) => return Ok(()),
                Err(StartError::AddrInUse(f)) if Instant::now() >= deadline => return Err(f),
                Err(StartError::AddrInUse(_)) => std::thread::sleep(Duration::from_millis(200)),
                Err(StartError::Other(f)) => return Err(f),
            }
        }
    }

    /// SIGKILLs node `id`. It must have been running: a node that died on its own is a failure
    /// of the node, not one of the harness's crashes.
    pub fn kill(&mut self, id: u64) -> Result<(), Failure> {
        self.check_alive()?;
        let node = self.node(id)?;
        let mut child = node
            .child
            .take()
            .ok_or_else(|| Failure::error(format!("node {id} is not running")))?;
        // std's Child::kill is SIGKILL on Unix: no destructor, no flush, no fsync runs.
        let _ = child.kill();
        let status = child
            .wait()
            .map_err(|e| Failure::error(format!("wait for node {id}: {e}")))?;
        if !killed_by_sigkill(status) {
            return Err(Failure::error(format!(
                "node {id} exited with {status} instead of dying by SIGKILL"
            )));
        }
        Ok(())
    }

    /// Fails if a node the harness did not stop has exited.
    pub fn check_alive(&mut self) -> Result<(), Failure> {
        let logs: Vec<(u64, PathBuf)> = self.ids().into_iter().map(|i| (i, self.log(i))).collect();
        for (node, (_, log)) in self.nodes.iter_mut().zip(logs) {
            let Some(child) = node.child.as_mut() else {
                continue;
            };
            if let Ok(Some(status)) = child.try_wait() {
                node.child = None;
                return Err(Failure::error(format!(
                    "node {} exited on its own ({status}); {}",
                    node.id,
                    log_tail(&log, 20)
                )));
            }
        }
        Ok(())
    }

    /// The ids of the nodes running now.
    pub fn running(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.id)
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn open_log(path: &Path) -> Result<File, Failure> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Failure::error(format!("open {}: {e}", path.display())))
}

/// Copies a node's stderr into its log file from a thread, and sends one message when the
/// node says it listens. The channel closes when the node's stderr does (it exited).
fn forward(stderr: std::process::ChildStderr, mut log: File) -> Receiver<()> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut said = false;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(log, "{line}");
            if !said && is_listening_line(&line) {
                said = true;
                let _ = tx.send(());
            }
        }
    });
    rx
}

/// `raft-kv: node N listening on HOST:PORT`, the contract's readiness line.
fn is_listening_line(line: &str) -> bool {
    line.starts_with("raft-kv: node ") && line.contains(" listening on ")
}

fn wait_listening(node: &mut Node, listening: &Receiver<()>, log: &Path) -> Result<(), StartError> {
    match listening.recv_timeout(LISTEN_TIMEOUT) {
        Ok(()) => Ok(()),
        Err(RecvTimeoutError::Timeout) => Err(Failure::error(format!(
            "node {} did not say it listens on {} within {} s; {}",
            node.id,
            node.addr,
            LISTEN_TIMEOUT.as_secs(),
            log_tail(log, 20)
        ))
        .into()),
        Err(RecvTimeoutError::Disconnected) => {
            let status = node.child.take().map(|mut c| c.wait());
            let tail = log_tail(log, 20);
            let f = Failure::error(format!(
                "node {} exited before it listened on {} ({status:?}); {tail}",
                node.id, node.addr
            ));
            if tail.to_ascii_lowercase().contains("address already in use") {
                Err(StartError::AddrInUse(f))
            } else {
                Err(StartError::Other(f))
            }
        }
    }
}

/// Whether `status` is a death by SIGKILL.
pub fn killed_by_sigkill(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports = free_ports(3).unwrap();
        assert_eq!(ports.len(), 3);
        assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);
        for p in ports {
            assert_ne!(p, 0);
            // Released: binding it again works (nothing else on this test took it).
            drop(TcpListener::bind(("127.0.0.1", p)).unwrap());
        }
    }

    #[test]
    fn peers_are_written_as_the_contract_says() {
        let a = |p| SocketAddr::from(([127, 0, 0, 1], p));
        assert_eq!(
            peers_arg(&[(1, a(10)), (2, a(20)), (3, a(30))]),
            "1=127.0.0.1:10,2=127.0.0.1:20,3=127.0.0.1:30"
        );
    }

    #[test]
    fn the_listening_line_is_recognised() {
        assert!(is_listening_line(
            "raft-kv: node 2 listening on 127.0.0.1:4000"
        ));
        assert!(!is_listening_line("raft-kv: node 2 starting"));
        assert!(!is_listening_line("node 2 listening on 127.0.0.1:4000"));
    }
}
