//! What `bench/raft` and `bench/raft-peers` share (the latter includes this file by path: the
//! two are separate workspaces): the command line and the lines of figures they print.

use std::path::PathBuf;
use std::time::Duration;

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
