//! What `bench/raft` and `bench/raft-peers` share (the latter includes this file by path: the
//! two are separate workspaces): the command line and the lines of figures they print.

use openraft::RaftTypeConfig;
use openraft::storage::{RaftLogReader, RaftLogStorage};
use std::error::Error;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `[--dir DIR] [--calls N] [--reopen-entries N] [--out FILE]`.
pub struct Args {
    pub dir: PathBuf,
    pub calls: u64,
    pub reopen_entries: u64,
    pub out: Option<PathBuf>,
}

/// Parses the command line; `dir` is the default log directory.
pub fn args(dir: &str) -> Result<Args, String> {
    let mut a = Args {
        dir: PathBuf::from(dir),
        calls: 3000,
        reopen_entries: 1_000_000,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => a.dir = value()?.into(),
            "--calls" => a.calls = value()?.parse().map_err(|e| format!("--calls: {e}"))?,
            "--reopen-entries" => {
                a.reopen_entries = value()?
                    .parse()
                    .map_err(|e| format!("--reopen-entries: {e}"))?;
            }
            "--out" => a.out = Some(value()?.into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.calls == 0 || a.reopen_entries == 0 {
        return Err("--calls and --reopen-entries must be at least 1".into());
    }
    Ok(a)
}

/// One measured figure: which store, which measure, its value (in the measure's unit).
pub struct Row {
    pub store: &'static str,
    pub measure: String,
    pub value: f64,
}

/// Prints `rows` as `store<TAB>measure<TAB>value` lines (what `cargo xtask bench-raft`
/// reads), and writes them to `out` too if given.
pub fn emit(rows: &[Row], out: Option<&PathBuf>) -> std::io::Result<()> {
    let text: String = rows
        .iter()
        .map(|r| format!("{}\t{}\t{}\n", r.store, r.measure, r.value))
        .collect();
    print!("{text}");
    match out {
        Some(path) => std::fs::write(path, text),
        None => Ok(()),
    }
}

/// The row of an append run: entries per second.
pub fn rate(store: &'static str, per_call: u64, calls: u64, took: Duration) -> Row {
    Row {
        store,
        measure: format!("append-{per_call}"),
        value: (calls * per_call) as f64 / took.as_secs_f64(),
    }
}

/// The rows of a reopen of `n` entries: its time, the read of the last entry after it, and
/// the store's bytes on disk.
pub fn reopen_rows(
    store: &'static str,
    n: u64,
    opened: Duration,
    read: Duration,
    bytes: u64,
) -> Vec<Row> {
    let row = |measure: String, value| Row {
        store,
        measure,
        value,
    };
    vec![
        row(format!("reopen-{n}"), opened.as_secs_f64()),
        row("read-last-us".to_owned(), read.as_secs_f64() * 1e6),
        row("store-mib".to_owned(), bytes as f64 / (1u64 << 20) as f64),
    ]
}

/// Opens a store with `open` and times it with `get_log_state` (what a restarting node asks
/// first), then reads the last entry. Returns both times, the last index and that entry.
pub async fn reopen_and_read<C, L, Fut>(
    open: impl FnOnce() -> Fut,
) -> Result<(Duration, Duration, u64, C::Entry), Box<dyn Error>>
where
    C: RaftTypeConfig,
    L: RaftLogStorage<C>,
    Fut: Future<Output = Result<L, Box<dyn Error>>>,
{
    let started = Instant::now();
    let mut log = open().await?;
    let state = log.get_log_state().await?;
    let opened = started.elapsed();
    let last = state
        .last_log_id
        .ok_or("the reopened store is empty")?
        .index;
    let read = Instant::now();
    let mut got = log
        .get_log_reader()
        .await
        .try_get_log_entries(last..=last)
        .await?;
    let read = read.elapsed();
    match (got.pop(), got.is_empty()) {
        (Some(entry), true) => Ok((opened, read, last, entry)),
        _ => Err(format!("reading entry {last} did not give one entry").into()),
    }
}
