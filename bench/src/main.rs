//! `wal-bench`: runs the same durable-commit, 1,000-record-transaction and replay workloads on
//! wal-log and its peers, and writes `docs/benchmarks.md` and `docs/benchmarks.svg`.
//!
//! ```text
//! cargo run --release --manifest-path bench/Cargo.toml -- [--quick] [--out docs/benchmarks.md]
//!     [--dir DIR] [--secs S] [--rounds R] [--only wal-log,raw,...] [--allow-tmpfs] [--profile]
//! ```
//!
//! Each commit and transaction cell runs `R` rounds (full: 3, quick: 1) of `S` seconds (1 s)
//! after a short warm-up, in a fresh directory each time, the systems taking turns in a
//! rotating order so a slow spell of the (shared, virtual) disk does not land on one system.
//! Throughput is the median round; latency percentiles are over every operation of all rounds.
//! `--profile` times the parts of wal-log's own workloads instead (see `profile.rs`).
//!
//! ```text
//! ```

mod profile;
mod report;
mod systems;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use systems::{RawFile, Replay, Res, Sys};

pub const PAYLOADS: [usize; 3] = [128, 1024, 4096];
pub const THREADS: [usize; 5] = [1, 2, 4, 8, 16];
/// Records in one transaction of the transaction workload (and of the replay load).
pub const TX_RECORDS: usize = 1000;

/// A measurement, or why there is none (`n/a: …` in the tables).
pub type Outcome<T> = Result<T, String>;

#[derive(Clone, Debug)]
pub struct CommitCell {
    pub per_s: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub note: Option<String>,
}

#[derive(Clone, Debug)]
pub struct TxCell {
    /// Payload megabytes (10^6 bytes) per second; framing not counted.
    pub mb_s: f64,
    pub tx_per_s: f64,
    pub p50: Duration,
}

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
    pub bench_dir: String,
    pub tmpfs_warning: bool,
    /// The commit of the checkout wal-log was built from, and whether crates/ had changes.
    pub commit: String,
}

pub struct Results {
    pub quick: bool,
    pub secs: f64,
    pub rounds: usize,
    pub warmup: f64,
    pub machine: Machine,
    pub systems: Vec<Sys>,
    pub commits: Vec<(usize, usize, Sys, Outcome<CommitCell>)>,
    pub tx: Vec<(usize, Sys, Outcome<TxCell>)>,
    /// Ours in the steady state of a log that truncates behind its checkpoints (segments
    /// recycled), measured in the same rotation as `tx`.
    pub tx_steady: Vec<(usize, Outcome<TxCell>)>,
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
    allow_tmpfs: bool,
    profile: bool,
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
                let list = it.next().ok_or("--only needs a list")?;
                let mut v = Vec::new();
                for name in list.split(',') {
                    let s = Sys::ALL
                        .into_iter()
                        .find(|s| s.short().eq_ignore_ascii_case(name))
                        .ok_or_else(|| format!("unknown system {name}"))?;
                    v.push(s);
                }
                a.only = Some(v);
            }
            "-h" | "--help" => {
                println!(
                    "wal-bench [--quick] [--out docs/benchmarks.md] [--dir DIR] [--secs S] [--rounds R] [--profile] [--only wal-log,okaywal,raft-engine,sqlite,lora-wal,raw] [--allow-tmpfs]"
                );
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
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let cell = Duration::from_secs_f64(secs);
    let warm = Duration::from_secs_f64(warmup);
    eprintln!(
        "wal-bench: {} mode, {rounds} x {secs} s per cell (+{warmup} s warm-up each), in {} ({} on {})",
        if args.quick { "quick" } else { "full" },
        root.display(),
        machine.fs_type,
        machine.device
    );

    let pools: Vec<(usize, Vec<Vec<u8>>)> = PAYLOADS.iter().map(|&s| (s, pool_of(s))).collect();
    let raw = Arc::new(RawFile::create(&root.join("raw-prealloc.bin"), 256 << 20)?);

    let mut commits = Vec::new();
    for (size, pool) in &pools {
        for &threads in &THREADS {
            let mut rounds_of: Vec<(Sys, Vec<Outcome<Round>>)> =
                systems.iter().map(|&s| (s, Vec::new())).collect();
            for round in 0..rounds {
                for k in 0..systems.len() {
                    let idx = (k + round) % systems.len();
                    let sys = systems[idx];
                    let dir = systems::fresh_dir(&root, "cell")?;
                    let r = guarded(|| commit_cell(sys, &dir, threads, pool, &raw, warm, cell));
                    rounds_of[idx].1.push(r);
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
            for (sys, rs) in rounds_of {
                let r = aggregate(rs).map(|(per_s, lat, note)| CommitCell {
                    per_s,
                    p50: pct(&lat, 0.50),
                    p99: pct(&lat, 0.99),
                    note,
                });
                log_cell(
                    &format!("commits {size:>4} B x{threads:>2}"),
                    sys,
                    &r,
                    |c| {
                        format!(
                            "{:>9.0}/s p50 {:>8.1} us p99 {:>8.1} us{}",
                            c.per_s,
                            us(c.p50),
                            us(c.p99),
                            c.note
                                .as_deref()
                                .map(|n| format!(" ({n} commits/fsync)"))
                                .unwrap_or_default()
                        )
                    },
                );
                commits.push((*size, threads, sys, r));
            }
        }
    }

    let mut tx = Vec::new();
    let mut tx_steady = Vec::new();
    // Ours also runs in its steady state: one more slot in the rotation.
    let steady_slot = systems.contains(&Sys::Ours).then_some(systems.len());
    let slots = systems.len() + usize::from(steady_slot.is_some());
    for (size, pool) in &pools {
        let records: Vec<Vec<u8>> = pool[..TX_RECORDS].to_vec();
        let flat: Vec<u8> = records.concat();
        let mut rounds_of: Vec<(Sys, Vec<Outcome<Round>>)> =
            systems.iter().map(|&s| (s, Vec::new())).collect();
        let mut steady_rounds = Vec::new();
        for round in 0..rounds {
            for k in 0..slots {
                let idx = (k + round) % slots;
                let dir = systems::fresh_dir(&root, "cell")?;
                if Some(idx) == steady_slot {
                    let r = guarded(|| tx_cell_steady(&dir, &records, warm, cell));
                    steady_rounds.push(r);
                } else {
                    let sys = systems[idx];
                    let r = guarded(|| tx_cell(sys, &dir, &records, &flat, &raw, warm, cell));
                    rounds_of[idx].1.push(r);
                }
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        if steady_slot.is_some() {
            let r = aggregate(steady_rounds).map(|(tx_per_s, lat, _)| TxCell {
                mb_s: tx_per_s * flat.len() as f64 / 1e6,
                tx_per_s,
                p50: pct(&lat, 0.5),
            });
            if let Ok(c) = &r {
                println!(
                    "tx1000  {size:>4} B     wal-log steady {:>9.1} MB/s {:>7.1} tx/s p50 {:>8.2} ms",
                    c.mb_s,
                    c.tx_per_s,
                    c.p50.as_secs_f64() * 1e3
                );
            }
            tx_steady.push((*size, r));
        }
        for (sys, rs) in rounds_of {
            let r = aggregate(rs).map(|(tx_per_s, lat, _)| TxCell {
                mb_s: tx_per_s * flat.len() as f64 / 1e6,
                tx_per_s,
                p50: pct(&lat, 0.5),
            });
            log_cell(&format!("tx1000  {size:>4} B    "), sys, &r, |c| {
                format!(
                    "{:>9.1} MB/s {:>7.1} tx/s p50 {:>8.2} ms",
                    c.mb_s,
                    c.tx_per_s,
                    c.p50.as_secs_f64() * 1e3
                )
            });
            tx.push((*size, sys, r));
        }
    }
    drop(raw);
    let _ = std::fs::remove_file(root.join("raw-prealloc.bin"));

    let mut replay = Vec::new();
    let mut replay_single = Vec::new();
    let mut replay_n = Vec::new();
    let budget: usize = if args.quick { 16 << 20 } else { 128 << 20 };
    for (size, pool) in &pools {
        let n = budget / size;
        replay_n.push((*size, n));
        for &sys in &systems {
            let dir = systems::fresh_dir(&root, "replay")?;
            let r = guarded(|| systems::replay(sys, &dir, pool, n, TX_RECORDS));
            log_cell(&format!("replay  {size:>4} B    "), sys, &r, replay_line);
            replay.push((*size, sys, r));
            let _ = std::fs::remove_dir_all(&dir);
        }
        if systems.contains(&Sys::Ours) {
            let dir = systems::fresh_dir(&root, "replay")?;
            let r = guarded(|| systems::replay(Sys::Ours, &dir, pool, n, 1));
            log_cell(
                &format!("replay1 {size:>4} B    "),
                Sys::Ours,
                &r,
                replay_line,
            );
            replay_single.push((*size, r));
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    machine.load_end = loadavg();
    let results = Results {
        quick: args.quick,
        secs,
        rounds,
        warmup,
        machine,
        systems,
        commits,
        tx,
        tx_steady,
        replay,
        replay_single,
        replay_n,
        total: started.elapsed(),
    };
    let md = report::markdown(&results, &svg_name(&args.out));
    std::fs::write(&args.out, md)?;
    let svg_path = args.out.with_extension("svg");
    std::fs::write(&svg_path, report::svg(&results))?;
    eprintln!(
        "wal-bench: wrote {} and {} in {:.0} s",
        args.out.display(),
        svg_path.display(),
        results.total.as_secs_f64()
    );
    Ok(())
}

fn svg_name(out: &Path) -> String {
    out.with_extension("svg")
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn replay_line(r: &Replay) -> String {
    format!(
        "{:>11.0} rec/s warm ({:.3} s), {:>11.0} rec/s cold ({:.3} s)",
        r.records as f64 / r.warm.as_secs_f64(),
        r.warm.as_secs_f64(),
        r.records as f64 / r.cold.as_secs_f64(),
        r.cold.as_secs_f64()
    )
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn log_cell<T>(what: &str, sys: Sys, r: &Outcome<T>, ok: impl Fn(&T) -> String) {
    match r {
        Ok(v) => eprintln!("{what} {:<12} {}", sys.short(), ok(v)),
        Err(e) => eprintln!("{what} {:<12} n/a: {e}", sys.short()),
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

fn commit_cell(
    sys: Sys,
    dir: &Path,
    threads: usize,
    pool: &[Vec<u8>],
    raw: &Arc<RawFile>,
    warm: Duration,
    cell: Duration,
) -> Res<Round> {
    let w = systems::open_writer(sys, dir, threads, raw)?;
    w.settle();
    drive_commits(&*w, threads, pool, warm, cell)
}

/// `threads` threads commit records from `pool` through `w` for `warm` then `cell`; the
/// commits of `cell` count.
fn drive_commits(
    w: &dyn systems::Writer,
    threads: usize,
    pool: &[Vec<u8>],
    warm: Duration,
    cell: Duration,
) -> Res<Round> {
    let barrier = Barrier::new(threads);
    let per_thread: Vec<Res<Vec<u32>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || -> Res<Vec<u32>> {
                    barrier.wait();
                    let start = Instant::now();
                    let (warm_end, end) = (start + warm, start + warm + cell);
                    let mut lat = Vec::with_capacity(1 << 16);
                    let mut i = t * 61;
                    loop {
                        let t0 = Instant::now();
                        if t0 >= end {
                            break;
                        }
                        w.commit(t, &pool[i % pool.len()])?;
                        if t0 >= warm_end {
                            lat.push(u32::try_from(t0.elapsed().as_nanos()).unwrap_or(u32::MAX));
                        }
                        i += 1;
                    }
                    Ok(lat)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("writer thread panicked".into()))
            })
            .collect()
    });
    let mut all = Vec::new();
    for r in per_thread {
        all.extend(r?);
    }
    if all.is_empty() {
        return Err("no commit finished within the cell".into());
    }
    let note = w.note();
    Ok(Round {
        per_s: all.len() as f64 / cell.as_secs_f64(),
        lat: all,
        note,
    })
}

/// One round of a cell: operations per second and every operation's latency in ns.
pub struct Round {
    per_s: f64,
    lat: Vec<u32>,
    note: Option<String>,
}

/// The median round's rate, all latencies sorted, the last round's note; or the first error.
fn aggregate(rounds: Vec<Outcome<Round>>) -> Outcome<(f64, Vec<u32>, Option<String>)> {
    let mut rates = Vec::new();
    let mut lat = Vec::new();
    let mut note = None;
    for r in rounds {
        let r = r?;
        rates.push(r.per_s);
        lat.extend(r.lat);
        note = r.note;
    }
    if rates.is_empty() {
        return Err("no rounds".into());
    }
    rates.sort_by(f64::total_cmp);
    let median = if rates.len() % 2 == 1 {
        rates[rates.len() / 2]
    } else {
        (rates[rates.len() / 2 - 1] + rates[rates.len() / 2]) / 2.0
    };
    lat.sort_unstable();
    Ok((median, lat, note))
}

fn pct(sorted: &[u32], q: f64) -> Duration {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Duration::from_nanos(u64::from(sorted[i]))
}

fn tx_cell(
    sys: Sys,
    dir: &Path,
    records: &[Vec<u8>],
    flat: &[u8],
    raw: &Arc<RawFile>,
    warm: Duration,
    cell: Duration,
) -> Res<Round> {
    let w = systems::open_writer(sys, dir, 1, raw)?;
    w.settle();
    let start = Instant::now();
    while start.elapsed() < warm {
        w.commit_tx(0, records, flat)?;
    }
    let mut lat = Vec::new();
    let start = Instant::now();
    // At least three transactions, however slow.
    while start.elapsed() < cell || lat.len() < 3 {
        let t0 = Instant::now();
        w.commit_tx(0, records, flat)?;
        lat.push(u32::try_from(t0.elapsed().as_nanos()).unwrap_or(u32::MAX));
    }
    let secs = start.elapsed().as_secs_f64();
    let per_s = lat.len() as f64 / secs;
    Ok(Round {
        per_s,
        lat,
        note: None,
    })
}

/// [`tx_cell`] for ours in the steady state of a log that checkpoints: after each
/// transaction, [`systems::ours::keep_bounded`] truncates once the sealed segments fill the
/// recycle pool, so later segments reuse those files. The warm-up reaches that state (it
/// writes several segments at these sizes).
fn tx_cell_steady(dir: &Path, records: &[Vec<u8>], warm: Duration, cell: Duration) -> Res<Round> {
    let o = systems::ours::Ours::open(dir)?;
    let start = Instant::now();
    while start.elapsed() < warm {
        o.commit_steady(records)?;
    }
    let mut lat = Vec::new();
    let start = Instant::now();
    while start.elapsed() < cell || lat.len() < 3 {
        let t0 = Instant::now();
        o.commit_steady(records)?;
        lat.push(u32::try_from(t0.elapsed().as_nanos()).unwrap_or(u32::MAX));
    }
    let per_s = lat.len() as f64 / start.elapsed().as_secs_f64();
    let st = o.stats();
    Ok(Round {
        per_s,
        lat,
        note: Some(format!(
            "{} rotations, {} reused",
            st.rotations, st.recycled
        )),
    })
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
