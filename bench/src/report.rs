//! `docs/benchmarks.md`: the machine, how a cell is run, the targets and the tables.

use crate::cells::Cell;
use crate::spread::{Spread, Verdict, judge_against, judge_fixed};
use crate::systems::{Replay, Sys};
use crate::{Outcome, Results, TX_RECORDS, Workload};
use std::fmt::Write as _;
use std::time::Duration;

/// 12345.6 -> "12,346".
pub fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "n/a".into(),
    }
}

/// "median (min–max)" with `f` for each figure.
fn spread_text(s: &Spread, f: impl Fn(f64) -> String) -> String {
    format!("{} ({}–{})", f(s.median), f(s.min), f(s.max))
}

fn one_decimal(v: f64) -> String {
    format!("{v:.1}")
}

fn na(e: &str) -> String {
    // Keep a table cell short and free of pipes.
    let e = e.replace('|', "/").replace('\n', " ");
    let e: String = e.chars().take(90).collect();
    format!("n/a: {e}")
}

fn lat(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{us:.0} µs")
    }
}

pub fn size_name(size: usize) -> String {
    if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// The systems of the commit tables.
pub fn commit_systems(r: &Results) -> Vec<Sys> {
    r.systems
        .iter()
        .copied()
        .filter(|s| s.in_commits())
        .collect()
}

fn replay_systems(r: &Results) -> Vec<Sys> {
    r.systems
        .iter()
        .copied()
        .filter(|s| s.in_replay())
        .collect()
}

fn commit(r: &Results, size: usize, threads: usize, sys: Sys) -> Option<&Outcome<Cell>> {
    r.commits
        .iter()
        .find(|(s, t, y, _)| *s == size && *t == threads && *y == sys)
        .map(|(.., o)| o)
}

fn ok<T>(o: Option<&Outcome<T>>) -> Option<&T> {
    o.and_then(|o| o.as_ref().ok())
}

fn commit_spread(r: &Results, size: usize, threads: usize, sys: Sys) -> Option<Spread> {
    ok(commit(r, size, threads, sys)).map(|c| c.rate)
}

pub fn commit_rate(r: &Results, size: usize, threads: usize, sys: Sys) -> Option<f64> {
    commit_spread(r, size, threads, sys).map(|s| s.median)
}

fn ceiling(r: &Results, size: usize, threads: usize) -> Option<&Outcome<Cell>> {
    r.ceiling
        .iter()
        .find(|(s, t, _)| *s == size && *t == threads)
        .map(|(.., o)| o)
}

/// Payload MB/s of a transaction cell of `size`-byte records.
fn mb(c: &Cell, size: usize) -> Spread {
    c.rate.scaled((TX_RECORDS * size) as f64 / 1e6)
}

fn tx(r: &Results, size: usize, sys: Sys) -> Option<&Outcome<Cell>> {
    r.tx.iter()
        .find(|(s, y, _)| *s == size && *y == sys)
        .map(|(.., o)| o)
}

fn tx_mb(r: &Results, size: usize, sys: Sys) -> Option<Spread> {
    ok(tx(r, size, sys)).map(|c| mb(c, size))
}

fn tx_steady_mb(r: &Results, size: usize) -> Option<Spread> {
    let o = r.tx_steady.iter().find(|(s, _)| *s == size).map(|(_, c)| c);
    ok(o).map(|c| mb(c, size))
}

fn replay(r: &Results, size: usize, sys: Sys) -> Option<&Outcome<Replay>> {
    r.replay
        .iter()
        .find(|(s, y, _)| *s == size && *y == sys)
        .map(|(.., o)| o)
}

fn replay_rate(r: &Results, size: usize, sys: Sys, cold: bool) -> Option<Spread> {
    ok(replay(r, size, sys)).and_then(|x| x.rate(cold))
}

/// The best peer's figures and name (peers only: not ours, not the raw loops), by median.
fn best_peer(r: &Results, f: impl Fn(Sys) -> Option<Spread>) -> Option<(Spread, Sys)> {
    r.systems
        .iter()
        .filter(|s| s.is_peer())
        .filter_map(|&s| f(s).map(|v| (v, s)))
        .max_by(|a, b| a.0.median.total_cmp(&b.0.median))
}

fn header(systems: &[Sys], first: &str, extra: &[&str]) -> String {
    let mut h = format!("| {first} |");
    let mut sep = String::from("| ---: |");
    for s in systems {
        let _ = write!(h, " {} |", s.short());
        sep.push_str(" ---: |");
    }
    for e in extra {
        let _ = write!(h, " {e} |");
        sep.push_str(" ---: |");
    }
    format!("{h}\n{sep}\n")
}

/// A table cell: `f` of the outcome, its error, or n/a.
fn cell_text<T>(o: Option<&Outcome<T>>, f: impl Fn(&T) -> String) -> String {
    match o {
        Some(Ok(v)) => f(v),
        Some(Err(e)) => na(e),
        None => "n/a".into(),
    }
}

pub fn markdown(r: &Results, svg: &str) -> String {
    let mut o = String::new();
    preamble(&mut o, r);
    targets(&mut o, r);
    if r.workloads.contains(&Workload::Commits) {
        commits(&mut o, r, svg);
        opening(&mut o, r);
    }
    if r.workloads.contains(&Workload::Tx) {
        transactions(&mut o, r);
    }
    if r.workloads.contains(&Workload::Replay) {
        replays(&mut o, r);
    }
    o.push_str(SETUP);
    o
}

fn preamble(o: &mut String, r: &Results) {
    let m = &r.machine;
    let _ = writeln!(o, "# Benchmarks\n");
    let _ = writeln!(
        o,
        "Generated by `cargo run --release --manifest-path bench/Cargo.toml --{}` on {}; \
         do not edit by hand, re-run it (`cargo xtask bench`). How and why: `bench/src/`, \
         [ADR 0002](decisions/0002-bench-peers.md).\n",
        if r.quick { " --quick" } else { "" },
        m.date
    );
    if m.noisy {
        let _ = writeln!(
            o,
            "> **Noisy/shared machine**: the 1-minute load average was {} on {} CPUs when the run \
             started (other work was running); wall-clock figures are disturbed, look at the spreads.\n",
            m.load_start.split_whitespace().next().unwrap_or("?"),
            m.nproc
        );
    }
    if m.tmpfs_warning {
        let _ = writeln!(
            o,
            "> **WARNING: the bench directory was on {}: fsync is free there, so these numbers say nothing about durability cost.**\n",
            m.fs_type
        );
    }
    if r.quick {
        let _ = writeln!(
            o,
            "> Quick run: {} rounds per cell (the full run takes 5) and a small replay: a smoke \
             run for checking the harness, not for quoting.\n",
            r.rounds
        );
    }
    let _ = writeln!(o, "## Machine\n");
    let _ = writeln!(o, "| | |\n| --- | --- |");
    let _ = writeln!(o, "| CPUs (`nproc`) | {} |", m.nproc);
    let _ = writeln!(o, "| CPU model (`/proc/cpuinfo`) | {} |", m.cpu);
    let _ = writeln!(o, "| bench directory | `{}` |", m.bench_dir);
    let _ = writeln!(
        o,
        "| its file system (`df -T`) | {} on `{}`, mounted at `{}` |",
        m.fs_type, m.device, m.mount
    );
    let _ = writeln!(o, "| kernel | {} |", m.kernel);
    let _ = writeln!(o, "| compiler | {} |", m.rustc);
    let _ = writeln!(
        o,
        "| wal-log built from | `{}` |",
        m.commit.replace('|', "/")
    );
    let _ = writeln!(
        o,
        "| load average (1, 5, 15 min) at start / end | {} / {} |",
        m.load_start, m.load_end
    );
    let _ = writeln!(
        o,
        "| cells | {} rounds of {} s each, systems in rotating order; figures are median (min–max) \
         of the rounds, latency percentiles over all operations; whole run {:.0} s |",
        r.rounds,
        r.secs,
        r.total.as_secs_f64()
    );
    let _ = writeln!(
        o,
        "\nThe machine is shared (other builds may run at the same time): compare columns of one run, \
         not runs of different days.\n"
    );
    let _ = writeln!(
        o,
        "## How every cell is run (the same steps for every system)\n\n\
         1. A fresh, empty directory on the bench file system.\n\
         2. Open the system there and make one operation durable (a commit, or a transaction); \
            both together are timed apart, in *Opening a new log*, and not counted in the cell.\n\
         3. An untimed warm-up of {} s running the cell's own workload.\n\
         4. Quiesce: every writer thread stops, then every file and directory under the cell's \
            directory is fsynced, and so is the raw loops' ring file.\n\
         5. The timed part: {} s, all writers going.\n\n\
         No system gets a step of its own. Background work a system starts by itself keeps \
         running through steps 3–5, as it would for a user: wal-log's `Wal::open` on an empty \
         directory zero-fills and syncs its first 32 MiB segment before it returns (in step 2), and \
         its preallocator then zero-fills the next segment in the background (during step 3, and \
         in step 5 if it is not done by then); later segments are prepared the same way as the \
         log grows, or created without zeros while they fill faster than zeros can be written.\n",
        r.warmup, r.secs
    );
}

fn verdict_row(o: &mut String, what: &str, size: usize, measured: String, v: Verdict) {
    let _ = writeln!(o, "| {what} | {} | {measured} | {v} |", size_name(size));
}

/// "a vs b (a/b)".
fn versus(a: Option<Spread>, b: Option<f64>, f: impl Fn(f64) -> String) -> String {
    let t = |v: Option<f64>| v.map(&f).unwrap_or("n/a".into());
    format!(
        "{} vs {} ({})",
        a.map(|s| spread_text(&s, &f)).unwrap_or("n/a".into()),
        t(b),
        ratio(a.map(|s| s.median), b)
    )
}

fn targets(o: &mut String, r: &Results) {
    let _ = writeln!(o, "## Targets\n");
    let _ = writeln!(
        o,
        "A target is **met** when the median clears it by more than the spread (max − min of the \
         rounds, of both sides when it compares two), **missed** when it misses by more than the \
         spread, otherwise *within noise*.\n"
    );
    let _ = writeln!(
        o,
        "| target | record size | measured | verdict |\n| --- | --- | --- | --- |"
    );
    let commits = r.workloads.contains(&Workload::Commits);
    for &size in r.sizes.iter().filter(|_| commits) {
        if r.threads.contains(&1) {
            let (ours, raw) = (
                commit_spread(r, size, 1, Sys::Ours),
                commit_spread(r, size, 1, Sys::Raw),
            );
            let m = versus(ours, raw.map(|s| s.median), thousands);
            verdict_row(
                o,
                "1 writer: commits/s ≥ raw pwrite+fdatasync",
                size,
                m,
                judge_against(ours, 1.0, raw),
            );
        }
        if r.threads.contains(&8) {
            let (ours, okay) = (
                commit_spread(r, size, 8, Sys::Ours),
                commit_spread(r, size, 8, Sys::Okaywal),
            );
            let m = versus(ours, okay.map(|s| 2.0 * s.median), thousands);
            verdict_row(
                o,
                "8 writers: commits/s ≥ 2× okaywal",
                size,
                m,
                judge_against(ours, 2.0, okay),
            );
        }
        for threads in r.threads.iter().copied().filter(|&t| t >= 8) {
            let ours = commit_spread(r, size, threads, Sys::Ours);
            let ceil = ok(ceiling(r, size, threads)).map(|c| c.rate);
            let m = versus(ours, ceil.map(|s| 0.85 * s.median), thousands);
            let what = format!("{threads} writers: commits/s ≥ 0.85 × strict group-commit ceiling");
            verdict_row(o, &what, size, m, judge_against(ours, 0.85, ceil));
            let pf = ok(commit(r, size, threads, Sys::Ours)).and_then(|c| c.per_fsync);
            let want = 0.9 * threads as f64;
            let m = versus(pf, Some(want), one_decimal);
            let what = format!("{threads} writers: commits per fsync ≥ 0.9 × {threads}");
            verdict_row(o, &what, size, m, judge_fixed(pf, want));
        }
    }
    let tx_run = r.workloads.contains(&Workload::Tx);
    for &size in r.sizes.iter().filter(|_| tx_run) {
        let raw = tx_mb(r, size, Sys::Raw);
        let rows = [
            ("fresh log", tx_mb(r, size, Sys::Ours)),
            ("steady state (truncate + recycle)", tx_steady_mb(r, size)),
        ];
        for (kind, ours) in rows {
            let m = versus(ours, raw.map(|s| 0.9 * s.median), one_decimal);
            let what = format!("{TX_RECORDS}-record tx, {kind}: MB/s ≥ 0.9 × raw");
            verdict_row(o, &what, size, m, judge_against(ours, 0.9, raw));
        }
        // Not the target: whether a fresh log reaches what a new file allows.
        if let Some(new_file) = tx_mb(r, size, Sys::RawNewFile) {
            let ours = tx_mb(r, size, Sys::Ours);
            let m = versus(ours, Some(0.9 * new_file.median), one_decimal);
            let what = format!("{TX_RECORDS}-record tx, fresh log: MB/s ≥ 0.9 × raw new file");
            verdict_row(o, &what, size, m, judge_against(ours, 0.9, Some(new_file)));
        }
    }
    if r.workloads.contains(&Workload::Replay) {
        replay_targets(o, r);
    }
    o.push_str(
        "\nThe 8- and 16-writer rows compare with the strict group-commit ceiling measured in the \
         same cells (*Durable commits per second*): [ADR 0005](decisions/0005-eight-writer-target.md) \
         says why 2× okaywal is out of reach. Where the bulk gap to raw goes: \
         [ADR 0006](decisions/0006-bulk-transaction-gap.md). The gaps issue 20 named (fresh-log \
         transactions, the group-commit ceiling, replay against every peer), as measured on \
         this harness: [ADR 0012](decisions/0012-bench-gaps.md).\n\n",
    );
}

fn replay_targets(o: &mut String, r: &Results) {
    if r.sizes.contains(&128) {
        for cold in [false, true] {
            let ours = replay_rate(r, 128, Sys::Ours, cold);
            let m = ours
                .map(|s| format!("{} records/s", spread_text(&s, thousands)))
                .unwrap_or("n/a".into());
            let what = format!(
                "replay ≥ 20M records/s ({} page cache)",
                if cold { "cold" } else { "warm" }
            );
            verdict_row(o, &what, 128, m, judge_fixed(ours, 20e6));
        }
    }
    for &size in &r.sizes {
        let ours = replay_rate(r, size, Sys::Ours, false);
        let best = best_peer(r, |s| replay_rate(r, size, s, false));
        let m = format!(
            "{} ({})",
            versus(ours, best.map(|b| b.0.median), thousands),
            best.map(|b| b.1.short()).unwrap_or("-")
        );
        let v = judge_against(ours, 1.0, best.map(|b| b.0));
        verdict_row(
            o,
            "replay (warm): records/s ahead of every peer",
            size,
            m,
            v,
        );
    }
}

fn commits(o: &mut String, r: &Results, svg: &str) {
    let systems = commit_systems(r);
    let _ = writeln!(o, "## Durable commits per second\n");
    let _ = writeln!(
        o,
        "Each of N writer threads loops: append one record, wait until it is durable. \
         Commits/s counts all threads together, median (min–max) of the rounds. *best peer* is the \
         fastest of the peers by median; *raw* is one `pwrite` + `fdatasync` per commit, records \
         back to back from the start of a preallocated file, each writer on its own (no group \
         commit). *ceiling* (8 writers and up) is the strict group-commit ceiling measured in the \
         same rotation: one thread writes N records at once and fdatasyncs, so ceiling = N ÷ that \
         one writer's fsync time (its p50 is in the latency table). *commits/fsync* is wal-log's \
         group-commit batching over the timed part (`Stats`: commits ÷ fsyncs). raft-engine with \
         LZ4 off is not run here: no single-record batch reaches its 8 KiB compression threshold.\n"
    );
    let _ = writeln!(o, "![durable commits/s against writer threads]({svg})\n");
    for &size in &r.sizes {
        let _ = writeln!(o, "### {} records\n", size_name(size));
        o.push_str(&header(
            &systems,
            "writers",
            &[
                "ceiling",
                "ours / best peer",
                "ours / raw",
                "ours / ceiling",
                "commits/fsync (ours)",
            ],
        ));
        for &t in &r.threads {
            let _ = write!(o, "| {t} |");
            for &s in &systems {
                let text = cell_text(commit(r, size, t, s), |c| spread_text(&c.rate, thousands));
                let _ = write!(o, " {text} |");
            }
            let ours = commit_rate(r, size, t, Sys::Ours);
            let best = best_peer(r, |s| commit_spread(r, size, t, s));
            let ceil = ceiling(r, size, t);
            let per_fsync = ok(commit(r, size, t, Sys::Ours))
                .and_then(|c| c.per_fsync)
                .map(|p| spread_text(&p, one_decimal))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                " {} | {} ({}) | {} | {} | {per_fsync} |",
                if ceil.is_some() {
                    cell_text(ceil, |c| spread_text(&c.rate, thousands))
                } else {
                    "-".into()
                },
                ratio(ours, best.map(|b| b.0.median)),
                best.map(|b| b.1.short()).unwrap_or("-"),
                ratio(ours, commit_rate(r, size, t, Sys::Raw)),
                if ceil.is_some() {
                    ratio(ours, ok(ceil).map(|c| c.rate.median))
                } else {
                    "-".into()
                },
            );
        }
        let _ = writeln!(
            o,
            "\nCommit latency, p50 / p99 (*ceiling*: one group write + fdatasync):\n"
        );
        o.push_str(&header(&systems, "writers", &["ceiling"]));
        for &t in &r.threads {
            let _ = write!(o, "| {t} |");
            let both = |c: &Cell| format!("{} / {}", lat(c.p50), lat(c.p99));
            for &s in &systems {
                let _ = write!(o, " {} |", cell_text(commit(r, size, t, s), both));
            }
            let ceil = ceiling(r, size, t);
            let _ = writeln!(
                o,
                " {} |",
                if ceil.is_some() {
                    cell_text(ceil, both)
                } else {
                    "-".into()
                }
            );
        }
        o.push('\n');
    }
}

/// Opening a new log: open on an empty directory + the first durable commit, 1 writer.
fn opening(o: &mut String, r: &Results) {
    if !r.threads.contains(&1) {
        return;
    }
    let systems = commit_systems(r);
    let _ = writeln!(o, "## Opening a new log\n");
    let _ = writeln!(
        o,
        "What a user pays before the first commit returns: opening the system on an empty \
         directory plus one durable single-record commit, in ms, median (min–max) over the rounds \
         of the 1-writer commit cells (step 2 above; not counted in any other table). For wal-log \
         this includes zero-filling and syncing its first 32 MiB segment.\n"
    );
    o.push_str(&header(&systems, "record size", &[]));
    for &size in &r.sizes {
        let _ = write!(o, "| {} |", size_name(size));
        for &s in &systems {
            let text = cell_text(commit(r, size, 1, s), |c| {
                c.first
                    .map(|f| spread_text(&f.scaled(1e3), one_decimal))
                    .unwrap_or("n/a".into())
            });
            let _ = write!(o, " {text} |");
        }
        o.push('\n');
    }
    o.push('\n');
}

fn transactions(o: &mut String, r: &Results) {
    let _ = writeln!(o, "## {TX_RECORDS}-record transactions, MB/s\n");
    let _ = writeln!(
        o,
        "One writer commits transactions of {TX_RECORDS} distinct records, each durable on return. \
         MB/s is payload bytes (10^6) per second, median (min–max); framing is not counted. *raw* \
         writes the {TX_RECORDS} records at a 4 KiB boundary of a preallocated 256 MiB ring, \
         padded to whole pages, in 512 KiB pieces with write-back started after each \
         (`posix_fadvise(DONTNEED)`, as wal-log's direct path does), then one `fdatasync`: the \
         disk's sequential limit. *raw naive* is one `pwrite` of the records where the last one \
         ended, then `fdatasync`. *raw new file* is the fair write appending to a new file that \
         grows as it is written (no preallocation): the limit for a log whose segments are new \
         files, as a fresh wal-log's are once it skips zero-filling. raft-engine runs twice, with its default LZ4 batch compression \
         and with it off; *best peer* takes the faster by median.\n"
    );
    o.push_str(&header(
        &r.systems,
        "record size",
        &["ours / best peer", "ours / raw"],
    ));
    for &size in &r.sizes {
        let _ = write!(o, "| {} |", size_name(size));
        for &s in &r.systems {
            let text = cell_text(tx(r, size, s), |c| spread_text(&mb(c, size), one_decimal));
            let _ = write!(o, " {text} |");
        }
        let ours = tx_mb(r, size, Sys::Ours).map(|s| s.median);
        let best = best_peer(r, |s| tx_mb(r, size, s));
        let _ = writeln!(
            o,
            " {} ({}) | {} |",
            ratio(ours, best.map(|b| b.0.median)),
            best.map(|b| b.1.short()).unwrap_or("-"),
            ratio(ours, tx_mb(r, size, Sys::Raw).map(|s| s.median))
        );
    }
    if !r.tx_steady.is_empty() {
        steady(o, r);
    }
    let _ = writeln!(o, "\nTransactions per second (median) and p50 latency:\n");
    o.push_str(&header(&r.systems, "record size", &[]));
    for &size in &r.sizes {
        let _ = write!(o, "| {} |", size_name(size));
        for &s in &r.systems {
            let text = cell_text(tx(r, size, s), |c| {
                format!("{:.1} tx/s, {}", c.rate.median, lat(c.p50))
            });
            let _ = write!(o, " {text} |");
        }
        o.push('\n');
    }
    o.push('\n');
}

fn steady(o: &mut String, r: &Results) {
    let _ = writeln!(
        o,
        "\n**Steady state.** Every wal-log cell above starts from an empty directory, so each \
         32 MiB segment is a new file: the file system allocates its blocks while the \
         transactions run (the preallocator stops zero-filling new segments once they fill \
         faster than it can, `Stats::zero_fills_skipped`; before that, the first segments' \
         bytes reach the disk twice). An engine that checkpoints truncates the log behind it \
         instead, and `truncate_prefix` keeps up to `Options::recycle_segments` (default 4) files \
         for reuse, so new segments overwrite blocks that are already allocated and written, as \
         *raw* overwrites its preallocated ring. *steady* runs wal-log with default options that \
         way (truncating everything durable whenever the sealed segments fill the pool; warm-up \
         included), in the same rotation as the other systems.\n"
    );
    let _ = writeln!(
        o,
        "| record size | wal-log, fresh log | wal-log, steady | raw | raw new file | fresh / raw | fresh / raw new file | steady / raw |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for &size in &r.sizes {
        let (fresh, steady, raw, new_file) = (
            tx_mb(r, size, Sys::Ours),
            tx_steady_mb(r, size),
            tx_mb(r, size, Sys::Raw),
            tx_mb(r, size, Sys::RawNewFile),
        );
        let f = |v: Option<Spread>| v.map_or("n/a".into(), |v| spread_text(&v, one_decimal));
        let med = |v: Option<Spread>| v.map(|s| s.median);
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            size_name(size),
            f(fresh),
            f(steady),
            f(raw),
            f(new_file),
            ratio(med(fresh), med(raw)),
            ratio(med(fresh), med(new_file)),
            ratio(med(steady), med(raw))
        );
    }
}

fn replays(o: &mut String, r: &Results) {
    let systems = replay_systems(r);
    let _ = writeln!(o, "## Replay, records per second\n");
    let sizes: Vec<String> = r
        .replay_n
        .iter()
        .map(|(s, n)| format!("{} × {}", thousands(*n as f64), size_name(*s)))
        .collect();
    let _ = writeln!(
        o,
        "Each system is loaded with N records in transactions of {TX_RECORDS} ({}), closed, then \
         timed {} times each way: open from scratch (each system's recovery) and read every record \
         back through its public API, checking the count; median (min–max). *warm*: the files are \
         still in the page cache, so this is the CPU cost of recovery and decoding. *cold*: the \
         same after `posix_fadvise(DONTNEED)` on every file (the virtual disk may still cache on \
         the host). *raw* reads the records back from a flat file with no framing or checksum. \
         *ours, 1 rec/tx*: wal-log loaded with one record per transaction (a frame and a CRC per \
         record).\n",
        sizes.join(", "),
        r.rounds
    );
    for cold in [false, true] {
        let _ = writeln!(o, "### {} page cache\n", if cold { "Cold" } else { "Warm" });
        o.push_str(&header(
            &systems,
            "record size",
            &["ours, 1 rec/tx", "ours / best peer", "ours / raw"],
        ));
        for &size in &r.sizes {
            let _ = write!(o, "| {} |", size_name(size));
            let text = |x: &Replay| {
                x.rate(cold)
                    .map_or("n/a".into(), |s| spread_text(&s, thousands))
            };
            for &s in &systems {
                let _ = write!(o, " {} |", cell_text(replay(r, size, s), text));
            }
            let single = r
                .replay_single
                .iter()
                .find(|(s, _)| *s == size)
                .map(|(_, o)| o);
            let med = |s: Sys| replay_rate(r, size, s, cold).map(|x| x.median);
            let best = best_peer(r, |s| replay_rate(r, size, s, cold));
            let _ = writeln!(
                o,
                " {} | {} ({}) | {} |",
                cell_text(single, text),
                ratio(med(Sys::Ours), best.map(|b| b.0.median)),
                best.map(|b| b.1.short()).unwrap_or("-"),
                ratio(med(Sys::Ours), med(Sys::Raw))
            );
        }
        o.push('\n');
    }
}

const SETUP: &str = "## How each system is driven

Every cell runs in a fresh directory under the bench directory (same file system as the repo
checkout; the harness refuses tmpfs), with the same 1,024 distinct pseudo-random, incompressible
records per size. Versions and licences: [ADR 0002](decisions/0002-bench-peers.md).

- **wal-log**: `Options::default()` (32 MiB segments, next segment preallocated in the
  background, `SyncPolicy::Always`). Commit = `Wal::append`; transaction = `Wal::append_batch`;
  replay = `Wal::open_visit`, which shows every frame as the open's recovery scan verifies it
  (a batch's records split with `RecordIter`), so the log is read and checked once, as the
  replaying opens of okaywal and lora-wal read theirs (`Wal::open` + `read_from` reads it a
  second time; ADR 0012). The replay load is written with `SyncPolicy::Never` and one `sync()`
  (same bytes on disk).
- **okaywal**: `WriteAheadLog::recover` with the default configuration (1 MiB preallocated
  segments, checkpoint after 768 KiB) and a `LogManager` whose checkpoint is a no-op. Commit =
  `begin_entry` + `write_chunk` + `commit` (durable on return, fsyncs batched across threads);
  transaction = one entry of 1,000 chunks; replay = reopen, `LogManager::recover` reads every
  entry with `read_all_chunks` (CRC-checked). The replay log is opened with checkpointing off so
  no segment is recycled before it is replayed.
- **raft-engine**: `Engine::open` with the default `Config` (128 MiB files, log recycling on,
  LZ4 for batches over 8 KiB: the records are incompressible), `default-features = false`
  (no `scripting`/`rhai`, no `internals`). *raft-engine, LZ4 off* is the same with
  `batch_compression_threshold = 0`, which its documentation gives as the way to disable
  compression. One Raft group per writer thread, entries are protobuf `BytesValue`s carrying the
  index in their first 8 bytes. Commit = a `LogBatch` of one entry, `Engine::write(.., sync =
  true)` (write group: one leader writes and fdatasyncs for all); transaction = one `LogBatch` of
  1,000 entries; replay = `Engine::open` (recovery rebuilds the index from every file) +
  `fetch_entries_to` of the whole group.
- **SQLite**: rusqlite with the bundled SQLite, `PRAGMA journal_mode=WAL`,
  `PRAGMA synchronous=FULL` (fsync of the WAL at every commit), default auto-checkpoint, table
  `log(id INTEGER PRIMARY KEY, body BLOB)`. One connection shared by all writer threads under a
  mutex (SQLite admits one writer at a time; a connection per thread would queue in SQLite's
  sleeping busy handler instead). Commit = one autocommit `INSERT`; transaction = `BEGIN`,
  1,000 `INSERT`s, `COMMIT`; replay = `SELECT body FROM log ORDER BY id` on a new connection.
- **lora-wal**: `Wal::open` with its only mode, `SyncMode::GroupSync { interval_ms: 50 }`
  (commits reach the OS on return, a background thread fsyncs), 8 MiB segments. A record is a
  `SetNodeProperty` event whose value is the payload as a binary property. Durable commit =
  `commit_tx_events` + `force_fsync` (no waiting for a shared fsync: each caller fsyncs unless
  an fsync already covered it); transaction = one `commit_tx_events` of 1,000 events +
  `force_fsync`; replay = `Wal::open_replaying`, decoding every event.
- **raw**: one 256 MiB file, zero-filled and synced first, shared by all raw cells; each cell
  writes from its offset 0 and wraps around. Commit = `pwrite` of the record just after the
  previous one + `fdatasync`, each thread on its own (4 KiB records land on page boundaries);
  transaction = the fair bulk write described under the transaction table. *ceiling* uses the
  same file.

Latency is measured per operation (`Instant` around the call), percentiles from all operations
of the cell's timed parts.
";
