//! `raft-kv load`: keys `k<i>`, values as `kv load` makes them, from concurrent client
//! tasks; each key is printed (`ack k<i>`, flushed) only once the cluster acknowledged it as
//! committed. A put that failed over to a new leader is retried with the same key and value
//! (a put is idempotent).

use crate::client::{Client, ClientError};
use crate::server::paths;
use crate::types::WriteReply;
use kv::store::KvEvent;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// More client tasks than this is a typo, not a load test.
const MAX_CLIENTS: u64 = 4096;

/// What to load.
pub struct LoadOptions {
    /// How many keys.
    pub count: u64,
    /// The first index.
    pub start: u64,
    /// Value size in bytes.
    pub value_size: usize,
    /// Concurrent client tasks.
    pub clients: u64,
}

/// The summary of a finished load.
pub struct Summary {
    /// Keys acknowledged.
    pub keys: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Each put's time from first send to acknowledgement, sorted.
    pub latencies: Vec<Duration>,
    /// Requests sent again.
    pub retries: u64,
}

impl Summary {
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let k = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[k.min(self.latencies.len() - 1)].as_secs_f64() * 1000.0
    }

    /// The contract's summary line.
    pub fn line(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        format!(
            "load: {} keys in {secs:.2} s, {:.0} commits/s, p50 {:.2} ms, p99 {:.2} ms, retries {}",
            self.keys,
            self.keys as f64 / secs.max(1e-9),
            self.percentile(0.50),
            self.percentile(0.99),
            self.retries
        )
    }
}

/// Prints one acknowledged key and flushes, so a killed run leaves every ack it made.
fn ack(key: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ack {key}")?;
    out.flush()
}

/// Runs the load.
///
/// # Errors
/// The first put that failed for good (after its retries), or a closed stdout; the other
/// tasks stop taking new keys and finish the puts they have in flight.
pub async fn run(client: Arc<Client>, opts: &LoadOptions) -> Result<Summary, ClientError> {
    let end = opts.start.checked_add(opts.count).ok_or_else(|| {
        ClientError::Local("--start + --count is past the largest key".to_owned())
    })?;
    let clients = opts.clients.clamp(1, MAX_CLIENTS);
    let next = Arc::new(AtomicU64::new(opts.start));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, next, stop) = (client.clone(), next.clone(), stop.clone());
        let size = opts.value_size;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end {
                    break;
                }
                let key = format!("k{i}");
                let put = KvEvent::Put {
                    key: key.clone(),
                    value: kv::load_value(i, size),
                };
                let t = Instant::now();
                let done = client
                    .call::<_, WriteReply>(paths::WRITE, &put)
                    .await
                    .and_then(|_| {
                        ack(&key).map_err(|e| ClientError::Local(format!("stdout: {e}")))
                    });
                if let Err(e) = done {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                lat.push(t.elapsed());
            }
            Ok(lat)
        }));
    }
    let mut latencies = Vec::new();
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(Ok(l)) => latencies.extend(l),
            Ok(Err(e)) => first_error = first_error.or(Some(e)),
            Err(join) => {
                first_error = first_error.or(Some(ClientError::Local(format!(
                    "a client task failed: {join}"
                ))));
            }
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let summary = Summary {
        keys: latencies.len() as u64,
        elapsed,
        latencies,
        retries: client.retries(),
    };
    match first_error {
        Some(e) => {
            eprintln!("{} (stopped early)", summary.line());
            Err(e)
        }
        None => Ok(summary),
    }
}
