//! `wal-bench`: runs the same durable-commit, 1,000-record-transaction and replay workloads on
//! wal-log and its peers, and writes `docs/benchmarks.md` and `docs/benchmarks.svg`.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml -- [--quick] [--out docs/benchmarks.md]
//!     [--dir DIR] [--secs S] [--rounds R] [--only wal-log,raw,...] [--workloads commits,tx,replay]
//!     [--threads 1,8] [--sizes 128,4096] [--allow-tmpfs] [--profile]
//! ```
//!
//! Each commit and transaction cell runs `R` rounds (full: 5, quick: 2). A round opens the
//! system in a fresh directory (opening and its first durable operation timed apart), runs the
//! workload untimed for the warm-up, quiesces (`systems::quiesce`: every file and directory of
//! the cell fsynced, every writer stopped), then times `S` seconds (1 s). The systems take
//! turns in a rotating order so a slow spell of the (shared, virtual) disk does not land on one
//! system. Throughput is reported as min / median / max of the rounds; latency percentiles are
//! over every operation of all rounds. Targets are judged by [`spread::verdict`].
//! `--profile` times the parts of wal-log's own workloads instead (see `profile.rs`).

mod cells;
mod chart;
mod profile;
mod raw;
mod report;
mod spread;
mod systems;

use cells::{Cell, Timing};
use raw::RawFile;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use systems::{Replay, Res, Sys};

pub const PAYLOADS: [usize; 3] = [128, 1024, 4096];
pub const THREADS: [usize; 5] = [1, 2, 4, 8, 16];
/// Records in one transaction of the transaction workload (and of the replay load).
pub const TX_RECORDS: usize = 1000;

/// A measurement, or why there is none (`n/a: …` in the tables).
pub type Outcome<T> = Result<T, String>;

#[derive(Clone, Debug, Default)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub fs_type: String,
    pub device: String,
    pub mount: String,
    pub kernel: String,
    pub date: String,
    pub rustc: String,
    pub load_start: String,
    pub load_end: String,
    /// The 1-minute load average was at least [`NOISY_LOAD`] when the run started.
    pub noisy: bool,
    pub bench_dir: String,
    pub tmpfs_warning: bool,
    /// The commit of the checkout wal-log was built from, and whether crates/ had changes.
    pub commit: String,
}

/// Above this 1-minute load average at the start, a run says it was on a busy machine.
pub const NOISY_LOAD: f64 = 0.5;

/// The workloads a run may select (`--workloads`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Commits,
    Tx,
    Replay,
}

pub struct Results {
    pub quick: bool,
    pub secs: f64,
    pub rounds: usize,
    pub warmup: f64,
    pub machine: Machine,
    pub systems: Vec<Sys>,
    pub workloads: Vec<Workload>,
    pub sizes: Vec<usize>,
    pub threads: Vec<usize>,
    pub commits: Vec<(usize, usize, Sys, Outcome<Cell>)>,
    /// The strict group-commit ceiling for (size, writers), 8 writers and up.
    pub ceiling: Vec<(usize, usize, Outcome<Cell>)>,
    /// Transactions per second.
    pub tx: Vec<(usize, Sys, Outcome<Cell>)>,
    /// Ours in the steady state of a log that truncates behind its checkpoints (segments
    /// recycled), measured in the same rotation as `tx`.
    pub tx_steady: Vec<(usize, Outcome<Cell>)>,
    pub replay: Vec<(usize, Sys, Outcome<Replay>)>,
    /// Ours with one record per transaction (no batching at all).
    pub replay_single: Vec<(usize, Outcome<Replay>)>,
    pub replay_n: Vec<(usize, usize)>,
    pub total: Duration,
}

struct Args {
    quick: bool,
    out: PathBuf,
    dir: PathBuf,
    secs: Option<f64>,
    rounds: Option<usize>,
    only: Option<Vec<Sys>>,
    workloads: Vec<Workload>,
    sizes: Vec<usize>,
    threads: Vec<usize>,
    allow_tmpfs: bool,
    profile: bool,
}

const HELP: &str = "wal-bench [--quick] [--out docs/benchmarks.md] [--dir DIR] [--secs S] [--rounds R] [--profile] \
[--only wal-log,okaywal,raft-engine,raft-engine-nolz4,sqlite,lora-wal,raw,raw-naive,raw-new-file] \
[--workloads commits,tx,replay] [--threads 1,2,4,8,16] [--sizes 128,1024,4096] [--allow-tmpfs]

Full mode: 5 rounds of 1 s per cell; --quick: 2 rounds and a smaller replay (a smoke run).
A/B of two builds on wal-log alone, e.g.: --only wal-log,raw --workloads commits,tx --threads 1,8";

/// A comma-separated list, each item parsed by `one`.
fn list<T>(arg: Option<String>, what: &str, one: impl Fn(&str) -> Option<T>) -> Res<Vec<T>> {
    let arg = arg.ok_or_else(|| format!("{what} needs a list"))?;
    arg.split(',')
        .map(|x| one(x.trim()).ok_or_else(|| format!("{what}: unknown item {x}").into()))
        .collect()
}

fn parse_args() -> Res<Args> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut a = Args {
        quick: false,
        out: manifest.join("../docs/benchmarks.md"),
        dir: manifest.join("target/tmp"),
        secs: None,
        rounds: None,
        only: None,
        workloads: vec![Workload::Commits, Workload::Tx, Workload::Replay],
        sizes: PAYLOADS.to_vec(),
        threads: THREADS.to_vec(),
        allow_tmpfs: false,
        profile: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--allow-tmpfs" => a.allow_tmpfs = true,
            "--profile" => a.profile = true,
            "--rounds" => a.rounds = Some(it.next().ok_or("--rounds needs a number")?.parse()?),
            "--out" => a.out = it.next().ok_or("--out needs a path")?.into(),
            "--dir" => a.dir = it.next().ok_or("--dir needs a path")?.into(),
            "--secs" => a.secs = Some(it.next().ok_or("--secs needs a number")?.parse()?),
            "--only" => {
                a.only = Some(list(it.next(), "--only", |n| {
                    Sys::ALL
                        .into_iter()
                        .find(|s| s.key().eq_ignore_ascii_case(n))
                })?);
            }
            "--workloads" => {
                a.workloads = list(it.next(), "--workloads", |w| match w {
                    "commits" => Some(Workload::Commits),
                    "tx" => Some(Workload::Tx),
                    "replay" => Some(Workload::Replay),
                    _ => None,
                })?;
            }
            "--threads" => {
                a.threads = list(it.next(), "--threads", |t| {
                    t.parse().ok().filter(|t| THREADS.contains(t))
                })?;
            }
            "--sizes" => {
                a.sizes = list(it.next(), "--sizes", |t| {
                    t.parse().ok().filter(|t| PAYLOADS.contains(t))
                })?;
            }
            "-h" | "--help" => {
                println!("{HELP}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("wal-bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let args = parse_args()?;
    let started = Instant::now();
    std::fs::create_dir_all(&args.dir)?;
    let root = args.dir.canonicalize()?;
    let mut machine = machine(&root);
    if is_memory_fs(&machine.fs_type) {
        if !args.allow_tmpfs {
            return Err(format!(
                "{} is on {} — fsync is free there and every number would be meaningless; use --dir on a real disk (or --allow-tmpfs)",
                root.display(),
                machine.fs_type
            )
            .into());
        }
        eprintln!(
            "WARNING WARNING: {} is {}: fsync costs nothing, results are meaningless",
            root.display(),
            machine.fs_type
        );
        machine.tmpfs_warning = true;
    }
    if args.profile {
        return profile::run(&root);
    }
    let systems: Vec<Sys> = args.only.clone().unwrap_or_else(|| Sys::ALL.to_vec());
    let secs = args.secs.unwrap_or(1.0);
    let warmup = (secs / 4.0).min(0.25);
    let rounds = args.rounds.unwrap_or(if args.quick { 2 } else { 5 }).max(1);
    let t = Timing {
        warm: Duration::from_secs_f64(warmup),
        cell: Duration::from_secs_f64(secs),
    };
    eprintln!(
        "wal-bench: {} mode, {rounds} rounds x {secs} s per cell (+{warmup} s warm-up each), in {} ({} on {}){}",
        if args.quick {
            "quick (smoke run)"
        } else {
            "full"
        },
        root.display(),
        machine.fs_type,
        machine.device,
        if machine.noisy {
            format!("; NOISY: load average {} at start", machine.load_start)
        } else {
            String::new()
        }
    );
    let mut r = Results {
        quick: args.quick,
        secs,
        rounds,
        warmup,
        machine,
        systems,
        workloads: args.workloads.clone(),
        sizes: args.sizes.clone(),
        threads: args.threads.clone(),
        commits: vec![],
        ceiling: vec![],
        tx: vec![],
        tx_steady: vec![],
        replay: vec![],
        replay_single: vec![],
        replay_n: vec![],
        total: Duration::ZERO,
    };
    let pools: Vec<(usize, Vec<Vec<u8>>)> = args.sizes.iter().map(|&s| (s, pool_of(s))).collect();
    let ring_path = root.join("raw-prealloc.bin");
    let ring = Arc::new(RawFile::create(&ring_path, 256 << 20)?);
    let cx = Cells {
        root: &root,
        pools: &pools,
        ring: &ring,
        t,
    };
    if args.workloads.contains(&Workload::Commits) {
        run_commits(&mut r, &cx)?;
    }
    if args.workloads.contains(&Workload::Tx) {
        run_tx(&mut r, &cx)?;
    }
    drop(ring);
    let _ = std::fs::remove_file(&ring_path);
    if args.workloads.contains(&Workload::Replay) {
        let budget: usize = if args.quick { 16 << 20 } else { 128 << 20 };
        run_replay(&mut r, &root, &pools, budget)?;
    }
    r.machine.load_end = loadavg();
    r.total = started.elapsed();
    let md = report::markdown(&r, &svg_name(&args.out));
    std::fs::write(&args.out, md)?;
    let svg_path = args.out.with_extension("svg");
    std::fs::write(&svg_path, chart::svg(&r))?;
    eprintln!(
        "wal-bench: wrote {} and {} in {:.0} s",
        args.out.display(),
        svg_path.display(),
        r.total.as_secs_f64()
    );
    Ok(())
}

/// What every commit and transaction cell runs with.
struct Cells<'a> {
    root: &'a Path,
    /// Each record size with its pool of records.
    pools: &'a [(usize, Vec<Vec<u8>>)],
    ring: &'a Arc<RawFile>,
    t: Timing,
}

/// A slot in the commit cells' rotation: a system, or the group-commit ceiling.
#[derive(Clone, Copy, PartialEq)]
enum CommitSlot {
    Sys(Sys),
    Ceiling,
}

fn run_commits(r: &mut Results, cx: &Cells) -> Res<()> {
    let (root, ring, t) = (cx.root, cx.ring, cx.t);
    for (size, pool) in cx.pools {
        for &threads in &r.threads {
            let mut slots: Vec<CommitSlot> = r
                .systems
                .iter()
                .filter(|s| s.in_commits())
                .map(|&s| CommitSlot::Sys(s))
                .collect();
            if threads >= 8 {
                slots.push(CommitSlot::Ceiling);
            }
            let rounds = cells::rotate(root, &slots, r.rounds, |slot, dir| match slot {
                CommitSlot::Sys(sys) => {
                    guarded(|| cells::commit_round(sys, dir, threads, pool, ring, t))
                }
                CommitSlot::Ceiling => {
                    guarded(|| cells::ceiling_round(dir, threads, pool, ring, t))
                }
            })?;
            for (slot, rs) in slots.into_iter().zip(rounds) {
                let c = cells::aggregate(rs);
                let what = format!("commits {size:>4} B x{threads:>2}");
                match slot {
                    CommitSlot::Sys(sys) => {
                        log_cell(&what, sys.short(), &c, commit_line);
                        r.commits.push((*size, threads, sys, c));
                    }
                    CommitSlot::Ceiling => {
                        log_cell(&what, "ceiling", &c, commit_line);
                        r.ceiling.push((*size, threads, c));
                    }
                }
            }
        }
    }
    Ok(())
}

fn commit_line(c: &Cell) -> String {
    format!(
        "{:>9.0}/s ({:.0}-{:.0}) p50 {:>8.1} us p99 {:>8.1} us{}",
        c.rate.median,
        c.rate.min,
        c.rate.max,
        us(c.p50),
        us(c.p99),
        c.per_fsync
            .map(|p| format!(" ({:.1} commits/fsync)", p.median))
            .unwrap_or_default()
    )
}

/// A slot in the transaction cells' rotation: a system, or ours in the steady state.
#[derive(Clone, Copy, PartialEq)]
enum TxSlot {
    Sys(Sys),
    Steady,
}

fn run_tx(r: &mut Results, cx: &Cells) -> Res<()> {
    let (root, ring, t) = (cx.root, cx.ring, cx.t);
    let mut slots: Vec<TxSlot> = r.systems.iter().map(|&s| TxSlot::Sys(s)).collect();
    if r.systems.contains(&Sys::Ours) {
        slots.push(TxSlot::Steady);
    }
    for (size, pool) in cx.pools {
        let records: Vec<Vec<u8>> = pool[..TX_RECORDS].to_vec();
        let flat: Vec<u8> = records.concat();
        let rounds = cells::rotate(root, &slots, r.rounds, |slot, dir| {
            guarded(|| match slot {
                TxSlot::Sys(sys) => cells::tx_round(dir, ring, t, || {
                    let w = systems::open_writer(sys, dir, 1, ring)?;
                    let (records, flat) = (&records, &flat);
                    Ok(Box::new(move || w.commit_tx(0, records, flat)))
                }),
                // What an engine that checkpoints does: see `systems::ours::keep_bounded`.
                TxSlot::Steady => cells::tx_round(dir, ring, t, || {
                    let o = systems::ours::Ours::open(dir)?;
                    let records = &records;
                    Ok(Box::new(move || o.commit_steady(records)))
                }),
            })
        })?;
        let mb = flat.len() as f64 / 1e6;
        for (slot, rs) in slots.iter().zip(rounds) {
            let c = cells::aggregate(rs);
            let line = |c: &Cell| {
                let m = c.rate.scaled(mb);
                format!(
                    "{:>9.1} MB/s ({:.1}-{:.1}) {:>7.1} tx/s p50 {:>8.2} ms",
                    m.median,
                    m.min,
                    m.max,
                    c.rate.median,
                    c.p50.as_secs_f64() * 1e3
                )
            };
            let what = format!("tx1000  {size:>4} B    ");
            match *slot {
                TxSlot::Sys(sys) => {
                    log_cell(&what, sys.short(), &c, line);
                    r.tx.push((*size, sys, c));
                }
                TxSlot::Steady => {
                    log_cell(&what, "wal-log steady", &c, line);
                    r.tx_steady.push((*size, c));
                }
            }
        }
    }
    Ok(())
}

fn run_replay(
    r: &mut Results,
    root: &Path,
    pools: &[(usize, Vec<Vec<u8>>)],
    budget: usize,
) -> Res<()> {
    let systems: Vec<Sys> = r
        .systems
        .iter()
        .copied()
        .filter(|s| s.in_replay())
        .collect();
    for (size, pool) in pools {
        let n = budget / size;
        r.replay_n.push((*size, n));
        for &sys in &systems {
            let dir = systems::fresh_dir(root, "replay")?;
            let o = guarded(|| systems::replay(sys, &dir, pool, (n, TX_RECORDS), r.rounds));
            log_cell(
                &format!("replay  {size:>4} B    "),
                sys.short(),
                &o,
                replay_line,
            );
            r.replay.push((*size, sys, o));
            let _ = std::fs::remove_dir_all(&dir);
        }
        if systems.contains(&Sys::Ours) {
            let dir = systems::fresh_dir(root, "replay")?;
            let o = guarded(|| systems::replay(Sys::Ours, &dir, pool, (n, 1), r.rounds));
            log_cell(
                &format!("replay1 {size:>4} B    "),
                "wal-log",
                &o,
                replay_line,
            );
            r.replay_single.push((*size, o));
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    Ok(())
}

fn svg_name(out: &Path) -> String {
    out.with_extension("svg")
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn replay_line(r: &Replay) -> String {
    let f = |cold| {
        r.rate(cold)
            .map(|s| format!("{:>11.0} ({:.0}-{:.0})", s.median, s.min, s.max))
            .unwrap_or_default()
    };
    format!("{} rec/s warm, {} rec/s cold", f(false), f(true))
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn log_cell<T>(what: &str, who: &str, r: &Outcome<T>, ok: impl Fn(&T) -> String) {
    match r {
        Ok(v) => eprintln!("{what} {who:<20} {}", ok(v)),
        Err(e) => eprintln!("{what} {who:<20} n/a: {e}"),
    }
}

/// Runs a cell, turning an error or a panic inside a peer into the reason it has no number.
fn guarded<T>(f: impl FnOnce() -> Res<T>) -> Outcome<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(format!(
            "panicked: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    }
}

/// 1,024 distinct pseudo-random (incompressible) records of `size` bytes.
pub fn pool_of(size: usize) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ size as u64;
    (0..1024)
        .map(|_| {
            (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 32) as u8
                })
                .collect()
        })
        .collect()
}

fn is_memory_fs(t: &str) -> bool {
    matches!(t, "tmpfs" | "ramfs" | "devtmpfs")
}

fn cmd(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn machine(dir: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let df = cmd("df", &["-T", &dir.to_string_lossy()]);
    let cols: Vec<String> = df
        .lines()
        .last()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let col = |i: usize| cols.get(i).cloned().unwrap_or_else(|| "unknown".into());
    Machine {
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu,
        device: col(0),
        fs_type: col(1),
        mount: cols.last().cloned().unwrap_or_default(),
        kernel: cmd("uname", &["-r"]),
        date: cmd("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        rustc: cmd("rustc", &["-V"]),
        noisy: loadavg()
            .split_whitespace()
            .next()
            .and_then(|l| l.parse::<f64>().ok())
            .is_some_and(|l| l >= NOISY_LOAD),
        load_start: loadavg(),
        load_end: String::new(),
        bench_dir: dir.to_string_lossy().into_owned(),
        tmpfs_warning: false,
        commit: {
            let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let repo = repo.to_string_lossy();
            let head = cmd("git", &["-C", &repo, "log", "-1", "--format=%h %s"]);
            let dirty = !cmd(
                "git",
                &[
                    "-C",
                    &repo,
                    "status",
                    "--porcelain",
                    "--untracked-files=no",
                    "--",
                    "crates/wal-log/src",
                    "crates/wal-format/src",
                ],
            )
            .is_empty();
            format!(
                "{head}{}",
                if dirty {
                    " (with uncommitted changes in wal-log or wal-format sources)"
                } else {
                    ""
                }
            )
        },
    }
}
