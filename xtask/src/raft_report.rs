//! The text of `docs/benchmarks-raft.md`, generated from the figures of `cargo xtask
//! bench-raft`: the machine and its load, one table of min / median / max over the rounds,
//! the two goals with a verdict each, and how every store is driven.

use crate::bench_raft::{Figures, Params};
use crate::spread::{Spread, Verdict, at_least, below, spread};
use crate::util::Failure;
use std::fmt::Write as _;

/// Start and end of the summary that `docs/benchmarks.md` carries too.
pub const START: &str = "<!-- bench-raft-summary:start -->";
pub const END: &str = "<!-- bench-raft-summary:end -->";

/// What the report says about the run besides its figures.
pub struct Run {
    pub params: Params,
    pub date: String,
    pub commit: String,
    pub cpus: usize,
    pub load_before: String,
    pub load_after: String,
    pub took: String,
}

/// The stores in table order, with what each promises about durability.
const STORES: [(&str, &str, &str); 6] = [
    (
        "wal-raft",
        "wal-raft",
        "durable: fsync before the callback (`SyncPolicy::Always`)",
    ),
    (
        "rocksstore-synced",
        "openraft-rocksstore 0.9.21, synced",
        "durable: `flush_wal(true)` after every append",
    ),
    (
        "rocksstore",
        "openraft-rocksstore 0.9.21, as shipped",
        "**not durable**: its appends are never synced",
    ),
    (
        "memstore",
        "openraft-memstore 0.9.25",
        "none: memory only (the upper bound)",
    ),
    (
        "wal-log",
        "baseline: wal-log `Wal::append`, one 128-byte payload",
        "durable (`SyncPolicy::Always`)",
    ),
    (
        "disk",
        "disk limit: wal-raft's bytes of one append, `pwrite` + `fdatasync`",
        "durable: preallocated file, page-aligned writes",
    ),
];

/// How a measure is named in the table and how its values are written.
fn measure_label(measure: &str) -> String {
    match measure {
        "append-1" => "entries/s, 1 entry per append".to_owned(),
        "append-64" => "entries/s, 64 entries per append".to_owned(),
        "read-last-us" => "then read the last entry, µs".to_owned(),
        "store-mib" => "size on disk of that store, MiB".to_owned(),
        m => match m.strip_prefix("reopen-") {
            Some(n) => format!("reopen of {n} entries (open + `get_log_state`), s"),
            None => m.to_owned(),
        },
    }
}

/// Appends, then the reopen, then what follows it.
fn measure_rank(measure: &str) -> u8 {
    match measure {
        "append-1" => 0,
        "append-64" => 1,
        "read-last-us" => 3,
        "store-mib" => 4,
        m if m.starts_with("reopen-") => 2,
        _ => 5,
    }
}

fn number(measure: &str, v: f64) -> String {
    if measure.starts_with("reopen-") {
        return format!("{v:.3}");
    }
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn get(figures: &Figures, store: &str, measure: &str) -> Option<Spread> {
    spread(figures.get(&(store.to_owned(), measure.to_owned()))?)
}

/// The figures table: known stores first, in `STORES` order, then anything else printed.
fn table(figures: &Figures) -> String {
    let mut t = String::from(
        "| store | durability | measure | min | median | max |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    let rank = |store: &str| {
        STORES
            .iter()
            .position(|s| s.0 == store)
            .unwrap_or(STORES.len())
    };
    let mut keys: Vec<_> = figures.keys().collect();
    keys.sort_by_key(|(store, measure)| (rank(store), measure_rank(measure)));
    for (store, measure) in keys {
        let Some(s) = get(figures, store, measure) else {
            continue;
        };
        let (name, durability) = STORES
            .iter()
            .find(|k| k.0 == store)
            .map_or((store.as_str(), ""), |k| (k.1, k.2));
        let _ = writeln!(
            t,
            "| {name} | {durability} | {} | {} | {} | {} |",
            measure_label(measure),
            number(measure, s.min),
            number(measure, s.median),
            number(measure, s.max)
        );
    }
    t
}

/// One append goal: wal-raft ≥ 2 × synced rocksstore, judged on every round
/// ([`at_least`]). When it is not met, the disk limit is judged against the same goal by the
/// same rule: if the limit misses it too (or is within noise of it) the verdict says so, with
/// the limit's median.
fn append_goal(figures: &Figures, m: &str) -> String {
    let (Some(o), Some(r)) = (
        get(figures, "wal-raft", m),
        get(figures, "rocksstore-synced", m),
    ) else {
        return "a store printed no figure | not judged |".to_owned();
    };
    let v = at_least(o, 2.0, r);
    let disk = get(figures, "disk", m);
    let limit = disk.map_or(String::new(), |d| {
        format!("; disk limit {} entries/s", number(m, d.median))
    });
    let beyond = match disk.map(|d| (d, at_least(d, 2.0, r))) {
        Some((d, Verdict::Missed)) if v != Verdict::Met => {
            format!(": beyond the disk limit ({}/s)", number(m, d.median))
        }
        Some((d, Verdict::WithinNoise)) if v != Verdict::Met => format!(
            ": the goal is within noise of the disk limit ({}/s)",
            number(m, d.median)
        ),
        _ => String::new(),
    };
    format!(
        "wal-raft {} ({}–{}) entries/s against 2 × {} ({}–{}); medians {:.2}×{limit} | {}{beyond} |",
        number(m, o.median),
        number(m, o.min),
        number(m, o.max),
        number(m, r.median),
        number(m, r.min),
        number(m, r.max),
        o.median / r.median,
        v.text(),
    )
}

/// The goals of issue 21, each with the figures it was judged on and its verdict.
fn goals(figures: &Figures, reopen_entries: u64) -> String {
    let mut t = String::from("| goal | judged on | verdict |\n| --- | --- | --- |\n");
    for per_call in [1, 64] {
        let line = append_goal(figures, &format!("append-{per_call}"));
        let _ = writeln!(
            t,
            "| durable appends ≥ 2× synced rocksstore's, {per_call} per append | {line}"
        );
    }
    let m = format!("reopen-{reopen_entries}");
    let line = match get(figures, "wal-raft", &m) {
        Some(o) => {
            let per_million = 1e6 / reopen_entries as f64;
            let scaled = Spread {
                min: o.min * per_million,
                median: o.median * per_million,
                max: o.max * per_million,
            };
            format!(
                "wal-raft {:.3} ({:.3}–{:.3}) s per million entries (reopens of {reopen_entries}) | {} |",
                scaled.median,
                scaled.min,
                scaled.max,
                below(scaled, 1.0).text()
            )
        }
        None => "wal-raft printed no reopen figure | not judged |".to_owned(),
    };
    let _ = writeln!(t, "| reopen < 1 s per million entries | {line}");
    t
}

/// Whether the load average stayed under one per CPU at both ends of the run.
fn quiet(run: &Run) -> bool {
    let first = |l: &str| {
        l.split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
    };
    match (first(&run.load_before), first(&run.load_after)) {
        (Some(a), Some(b)) => a.max(b) < run.cpus as f64,
        _ => false,
    }
}

/// The whole of `docs/benchmarks-raft.md`.
pub fn render(run: &Run, figures: &Figures) -> Result<String, Failure> {
    if figures.is_empty() {
        return Err(Failure::error("the benchmarks printed no figures"));
    }
    let p = run.params;
    let mut doc = String::from("# wal-raft benchmark\n\n");
    let _ = write!(
        doc,
        "Generated by `cargo xtask bench-raft --rounds {} --calls {} --reopen-entries {}` on {}; do not edit by hand, re-run it (it also copies the summary into [benchmarks.md](benchmarks.md)).\n\n",
        p.rounds, p.calls, p.reopen_entries, run.date
    );
    let _ = write!(
        doc,
        "## Machine\n\n| | |\n| --- | --- |\n| CPUs | {} |\n| built from | `{}` |\n| load average (1, 5, 15 min) at start / end | {} / {} |\n| rounds | {}, each `bench/raft` then `bench/raft-peers`; whole run {} |\n\n",
        run.cpus,
        run.commit.replace('|', "\\|"),
        run.load_before,
        run.load_after,
        p.rounds,
        run.took
    );
    doc.push_str(if quiet(run) {
        "The load average was under one per CPU at the start and the end of the run.\n\n"
    } else {
        "**The machine was busy** (load average at or above one per CPU at the start or the end: other work ran at the same time), so every figure here is noisy: it says what a shared machine did, not what it does idle. Compare rows of one run only.\n\n"
    });
    let _ = write!(
        doc,
        "## Results\n\n{START}\nFrom [benchmarks-raft.md](benchmarks-raft.md), generated by `cargo xtask bench-raft` on {}: {} round(s), appends of {} calls each, min / median / max over the rounds; load average {} at the start, {} at the end on {} CPUs.\n\n{}\n{}\n{END}\n\n",
        run.date,
        p.rounds,
        p.calls,
        run.load_before,
        run.load_after,
        run.cpus,
        table(figures),
        goals(figures, p.reopen_entries)
    );
    doc.push_str(PROSE);
    Ok(doc)
}

/// The summary between the markers of a report, markers included.
pub fn summary_of(report: &str) -> Option<&str> {
    let a = report.find(START)?;
    let b = report.find(END)? + END.len();
    (a < b).then(|| &report[a..b])
}

/// `text` with its summary replaced by `summary`, or with a section holding it appended.
pub fn splice(text: &str, summary: &str) -> String {
    match (text.find(START), text.find(END)) {
        (Some(a), Some(b)) if a < b => {
            format!("{}{summary}{}", &text[..a], &text[b + END.len()..])
        }
        _ => format!(
            "{}\n## Raft log storage (wal-raft)\n\n{summary}\n",
            text.trim_end_matches('\n').to_owned() + "\n"
        ),
    }
}

/// The fixed part of the report: how each store is driven, and why the peers run apart.
const PROSE: &str = include_str!("raft_report.md");

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(rows: &[(&str, &str, &[f64])]) -> Figures {
        rows.iter()
            .map(|(store, measure, v)| (((*store).to_owned(), (*measure).to_owned()), v.to_vec()))
            .collect()
    }

    /// A missed append goal that the disk limit cannot reach either says so, with the limit;
    /// one within noise of the limit says that; one the disk could reach is a plain miss; a
    /// met goal never mentions the limit.
    #[test]
    fn append_goals_name_the_disk_limit_when_it_is_below_the_goal() {
        type Case<'a> = (&'a str, [f64; 3], [f64; 3], [f64; 3], &'a str);
        let cases: [Case<'_>; 4] = [
            (
                "append-1",
                [8_400.0, 8_500.0, 8_600.0],
                [6_400.0, 6_500.0, 6_600.0],
                [9_900.0, 10_000.0, 10_100.0],
                "; disk limit 10,000 entries/s | **missed**: beyond the disk limit (10,000/s) |",
            ),
            (
                "append-1",
                [8_000.0, 8_500.0, 9_000.0],
                [6_000.0, 6_500.0, 7_000.0],
                [11_000.0, 12_500.0, 13_000.0],
                "| **missed**: the goal is within noise of the disk limit (12,500/s) |",
            ),
            (
                "append-1",
                [8_000.0, 8_500.0, 9_000.0],
                [6_000.0, 6_500.0, 7_000.0],
                [30_000.0, 31_000.0, 32_000.0],
                "| **missed** |",
            ),
            (
                "append-64",
                [300_000.0, 301_000.0, 302_000.0],
                [100_000.0, 101_000.0, 102_000.0],
                [150_000.0, 151_000.0, 152_000.0],
                "| **met** |",
            ),
        ];
        for (m, ours, rocks, disk, ends) in cases {
            let f = figures(&[
                ("wal-raft", m, &ours),
                ("rocksstore-synced", m, &rocks),
                ("disk", m, &disk),
            ]);
            let line = append_goal(&f, m);
            assert!(line.ends_with(ends), "{line}");
        }
        let line = append_goal(&figures(&[("wal-raft", "append-1", &[1.0])]), "append-1");
        assert!(line.ends_with("| not judged |"));
    }
    #[test]
    fn numbers_are_grouped_and_reopens_keep_decimals() {
        assert_eq!(number("append-1", 1234567.4), "1,234,567");
        assert_eq!(number("append-64", 999.6), "1,000");
        assert_eq!(number("reopen-1000000", 0.8664), "0.866");
    }

    #[test]
    fn report_has_a_summary_that_splices_and_resplices() {
        let mut f = Figures::new();
        for (store, measure, v) in [
            ("wal-raft", "append-1", 500.0),
            ("rocksstore-synced", "append-1", 200.0),
            ("wal-raft", "reopen-10", 0.000_005),
            ("odd", "thing", 1.0),
        ] {
            f.insert((store.to_owned(), measure.to_owned()), vec![v]);
        }
        let run = Run {
            params: Params {
                rounds: 1,
                calls: 5,
                reopen_entries: 10,
            },
            date: "d".to_owned(),
            commit: "abc x|y".to_owned(),
            cpus: 2,
            load_before: "0.10 0.2 0.3".to_owned(),
            load_after: "3.00 1 1".to_owned(),
            took: "1.0s".to_owned(),
        };
        let doc = render(&run, &f).unwrap_or_default();
        assert!(doc.contains("**The machine was busy**") && doc.contains("abc x\\|y"));
        assert!(doc.contains("| **met** |"), "500 >= 2 × 200");
        assert!(doc.contains("0.500 (0.500–0.500) s per million"));
        let summary = summary_of(&doc).unwrap_or_default();
        assert!(summary.starts_with(START) && summary.ends_with(END));
        let row = summary.find("| wal-raft |").unwrap_or(usize::MAX);
        assert!(
            row < summary.find("| odd |").unwrap_or(0),
            "known stores first"
        );
        let once = splice("# Benchmarks\n\ntext\n", summary);
        assert!(once.ends_with(&format!("## Raft log storage (wal-raft)\n\n{summary}\n")));
        let again = splice(
            &once,
            "<!-- bench-raft-summary:start -->new<!-- bench-raft-summary:end -->",
        );
        assert!(again.contains("text\n") && again.contains("new") && !again.contains("| odd |"));
        assert!(render(&run, &Figures::new()).is_err());
    }
}
