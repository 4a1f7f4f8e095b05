//! `raft-kv load` in the background: its `ack k<i>` lines collected as they come (only complete
//! lines count), its summary parsed at the end, and the process killed if the harness leaves
//! early.

use super::client::Client;
use crate::util::Failure;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the load was asked to write.
#[derive(Clone, Copy, Debug)]
pub struct LoadSpec {
    /// First key index.
    pub start: u64,
    /// Number of keys.
    pub count: u64,
    /// Concurrent client tasks.
    pub clients: u64,
    /// Value size in bytes.
    pub value_size: usize,
}

/// `load`'s closing line: `load: N keys in S s, X commits/s, p50 Y ms, p99 Z ms, retries R`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Keys acknowledged.
    pub keys: u64,
    /// Seconds the load ran.
    pub secs: f64,
    /// Commits per second.
    pub commits_per_sec: f64,
    /// Median latency of one put, ms.
    pub p50_ms: f64,
    /// 99th percentile latency of one put, ms.
    pub p99_ms: f64,
    /// Puts retried (leader changes, unreachable nodes).
    pub retries: u64,
}

/// Finds and parses the summary line in `load`'s stderr.
pub fn parse_summary(stderr: &str) -> Result<Summary, String> {
    let line = stderr
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("load: "))
        .ok_or_else(|| format!("load printed no `load: ...` summary; its stderr:\n{stderr}"))?;
    let bad = || {
        format!(
            "load's summary {line:?} is not `N keys in S s, X commits/s, p50 Y ms, p99 Z ms, retries R`"
        )
    };
    let parts: Vec<&str> = line.split(", ").collect();
    let [head, rate, p50, p99, retries] = parts.as_slice() else {
        return Err(bad());
    };
    let (keys, secs) = head
        .strip_suffix(" s")
        .and_then(|h| h.split_once(" keys in "))
        .ok_or_else(bad)?;
    let num = |s: &str| s.trim().parse::<f64>().map_err(|_| bad());
    let int = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    Ok(Summary {
        keys: int(keys)?,
        secs: num(secs)?,
        commits_per_sec: num(rate.strip_suffix(" commits/s").ok_or_else(bad)?)?,
        p50_ms: num(p50
            .strip_prefix("p50 ")
            .and_then(|s| s.strip_suffix(" ms"))
            .ok_or_else(bad)?)?,
        p99_ms: num(p99
            .strip_prefix("p99 ")
            .and_then(|s| s.strip_suffix(" ms"))
            .ok_or_else(bad)?)?,
        retries: int(retries.strip_prefix("retries ").ok_or_else(bad)?)?,
    })
}

/// `ack k<i>` → `i`.
pub fn parse_ack(line: &str) -> Result<u64, Failure> {
    let key = line
        .strip_prefix("ack ")
        .ok_or_else(|| Failure::error(format!("load printed an unexpected line {line:?}")))?;
    crate::crash::parse_key(key)
}

/// A running `raft-kv load`.
pub struct Load {
    spec: LoadSpec,
    child: Option<Child>,
    lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
    /// Key indexes acknowledged so far, in the order printed.
    pub acked: Vec<u64>,
    /// Whether its stdout has closed (it exited, or is about to).
    ended: bool,
}

impl Load {
    /// Starts `load` with a per-key `--timeout` of `timeout_secs`.
    pub fn spawn(client: &Client, spec: LoadSpec, timeout_secs: u64) -> Result<Load, Failure> {
        let args = [
            "load".to_owned(),
            "--count".to_owned(),
            spec.count.to_string(),
            "--start".to_owned(),
            spec.start.to_string(),
            "--clients".to_owned(),
            spec.clients.to_string(),
            "--value-size".to_owned(),
            spec.value_size.to_string(),
            "--timeout".to_owned(),
            timeout_secs.to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = client
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Failure::error(format!("could not start raft-kv load: {e}")))?;
        let (stdout, stderr) = match (child.stdout.take(), child.stderr.take()) {
            (Some(o), Some(e)) => (o, e),
            _ => return Err(Failure::error("raft-kv load: no stdout/stderr pipe")),
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            // A line cut short (no newline) is not an acknowledgement.
            while r.read_line(&mut line).is_ok_and(|n| n > 0) && line.ends_with('\n') {
                if tx.send(line.trim_end().to_owned()).is_err() {
                    break;
                }
                line.clear();
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut s);
            s
        });
        Ok(Load {
            spec,
            child: Some(child),
            lines: rx,
            stderr: Some(stderr),
            acked: Vec::new(),
            ended: false,
        })
    }

    /// Takes the acknowledgements printed so far, waiting at most `wait` for the next one.
    fn take(&mut self, wait: Duration) -> Result<(), Failure> {
        match self.lines.recv_timeout(wait) {
            Ok(line) => self.acked.push(parse_ack(&line)?),
            Err(RecvTimeoutError::Timeout) => return Ok(()),
            Err(RecvTimeoutError::Disconnected) => {
                self.ended = true;
                return Ok(());
            }
        }
        while let Ok(line) = self.lines.try_recv() {
            self.acked.push(parse_ack(&line)?);
        }
        Ok(())
    }

    /// Takes the acknowledgements printed so far without waiting (a poller calls this so the
    /// load's stdout pipe never fills up and blocks it).
    pub fn drain(&mut self) -> Result<(), Failure> {
        self.take(Duration::ZERO)
    }

    /// Takes acknowledgements until `done` holds or the load's stdout closes; fails if nothing
    /// new arrives for `stall` (the cluster stopped taking writes).
    fn pump(&mut self, done: impl Fn(&Load) -> bool, stall: Duration) -> Result<(), Failure> {
        let mut progress = Instant::now();
        while !done(self) && !self.ended {
            let before = self.acked.len();
            self.take(Duration::from_millis(200))?;
            if self.acked.len() > before {
                progress = Instant::now();
            } else if !self.ended && progress.elapsed() >= stall {
                return Err(Failure::error(format!(
                    "load of k{}.. acknowledged nothing for {} s (at {} keys): the cluster stopped taking writes",
                    self.spec.start,
                    stall.as_secs(),
                    self.acked.len()
                )));
            }
        }
        Ok(())
    }

    /// Waits until at least `n` keys are acknowledged. Fails if the load ends first (it was meant
    /// to be running then) or stalls for `stall`.
    pub fn wait_acks(&mut self, n: u64, stall: Duration) -> Result<(), Failure> {
        self.pump(|l| l.acked.len() as u64 >= n, stall)?;
        if (self.acked.len() as u64) < n {
            let (start, got) = (self.spec.start, self.acked.len());
            let stderr = self.stop_and_stderr();
            return Err(Failure::error(format!(
                "load of k{start}.. ended after {got} acknowledgements, before the {n} the harness waited for (if it succeeded, raise --keys-per-cycle); {stderr}"
            )));
        }
        Ok(())
    }

    /// Whether the load is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the load if it still runs and returns its stderr, for an error message.
    fn stop_and_stderr(&mut self) -> String {
        let _ = self.child.as_mut().map(Child::kill);
        let status = match self.child.take().map(|mut c| c.wait()) {
            Some(Ok(s)) => s.to_string(),
            other => format!("{other:?}"),
        };
        match self.stderr.take().map(JoinHandle::join) {
            Some(Ok(s)) => format!("it ended with {status}; its stderr:\n{s}"),
            _ => format!("it ended with {status}"),
        }
    }

    /// Waits for the load to end (nothing new for `stall` is a failure), and checks it exited 0
    /// after acknowledging every key once. Returns its summary.
    pub fn finish(mut self, stall: Duration) -> Result<(Summary, Vec<u64>), Failure> {
        let total = self.spec.count;
        self.pump(|_| false, stall)?;
        let status = match self.child.take().map(|mut c| c.wait()) {
            Some(Ok(s)) => s,
            other => return Err(Failure::error(format!("wait for load: {other:?}"))),
        };
        let stderr = match self.stderr.take().map(JoinHandle::join) {
            Some(Ok(s)) => s,
            _ => String::new(),
        };
        if !status.success() {
            return Err(Failure::error(format!(
                "raft-kv load of k{}..k{} failed ({status}) after {} acknowledgements; its stderr:\n{stderr}",
                self.spec.start,
                self.spec.start + total - 1,
                self.acked.len()
            )));
        }
        let mut seen = self.acked.clone();
        seen.sort_unstable();
        seen.dedup();
        let expected: Vec<u64> = (self.spec.start..self.spec.start + total).collect();
        if seen != expected {
            return Err(Failure::error(format!(
                "raft-kv load exited 0 but acknowledged {} distinct keys of the {total} in k{}..k{}",
                seen.len(),
                self.spec.start,
                self.spec.start + total - 1
            )));
        }
        let summary = parse_summary(&stderr).map_err(Failure::error)?;
        Ok((summary, std::mem::take(&mut self.acked)))
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_is_parsed() {
        let s = parse_summary(
            "some log\nload: 2000 keys in 1.25 s, 1600.0 commits/s, p50 3.1 ms, p99 12 ms, retries 4\n",
        )
        .unwrap();
        assert_eq!(
            s,
            Summary {
                keys: 2000,
                secs: 1.25,
                commits_per_sec: 1600.0,
                p50_ms: 3.1,
                p99_ms: 12.0,
                retries: 4
            }
        );
        assert!(parse_summary("nothing here").is_err());
        assert!(parse_summary("load: 2000 keys in 1.25 s, fast").is_err());
        assert!(
            parse_summary("load: x keys in 1 s, 1 commits/s, p50 1 ms, p99 1 ms, retries 0")
                .is_err()
        );
    }

    #[test]
    fn acks_are_parsed() {
        assert_eq!(parse_ack("ack k42").unwrap(), 42);
        assert!(parse_ack("k42").is_err());
        assert!(parse_ack("ack x42").is_err());
    }
}
