//! The hand-written SVG chart of `docs/benchmarks.svg`: durable commits/s against writers.

use crate::Results;
use crate::report::{commit_rate, commit_systems, size_name, thousands};
use crate::systems::Sys;
use std::fmt::Write as _;

fn color(s: Sys) -> &'static str {
    match s {
        Sys::Ours => "#d62728",
        Sys::Okaywal => "#1f77b4",
        Sys::RaftEngine | Sys::RaftEngineNoLz4 => "#2ca02c",
        Sys::Sqlite => "#9467bd",
        Sys::LoraWal => "#ff7f0e",
        Sys::Raw | Sys::RawNaive | Sys::RawNewFile => "#555555",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Three panels (one per record size): commits/s (log scale) against writer threads.
pub fn svg(r: &Results) -> String {
    let (pw, ph) = (300.0_f64, 240.0_f64);
    let (ml, mr, mt, mb) = (62.0, 30.0, 52.0, 44.0);
    let width = ml + r.sizes.len().max(1) as f64 * (pw + mr) + 10.0;
    let legend_h = 26.0;
    let height = mt + ph + mb + legend_h + 10.0;
    let values: Vec<f64> = r
        .commits
        .iter()
        .filter_map(|(.., o)| o.as_ref().ok().map(|c| c.rate.median))
        .filter(|v| *v > 0.0)
        .collect();
    let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = values.iter().cloned().fold(0.0, f64::max);
    let (lo, hi) = if values.is_empty() {
        (1.0, 10.0)
    } else {
        (lo, hi)
    };
    let d0 = lo.log10().floor();
    let d1 = hi.log10().ceil().max(d0 + 1.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{:.0}" y="20" text-anchor="middle" font-size="14" font-weight="bold">Durable commits/s against writer threads ({}, {} × {} s per point)</text>"#,
        width / 2.0,
        esc(&r.machine.date),
        r.rounds,
        r.secs
    );
    for (p, size) in r.sizes.iter().enumerate() {
        let x0 = ml + p as f64 * (pw + mr);
        let y0 = mt;
        let xs = |t: usize| x0 + (t as f64).log2() / 4.0 * pw;
        let ys = |v: f64| y0 + ph - (v.log10() - d0) / (d1 - d0) * ph;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12" font-weight="bold">{} records</text>"#,
            x0 + pw / 2.0,
            y0 - 10.0,
            size_name(*size)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{x0:.1}" y="{y0:.1}" width="{pw:.1}" height="{ph:.1}" fill="none" stroke="#999"/>"##
        );
        // Decade grid lines and labels, with 2x and 5x minor lines.
        let mut d = d0;
        while d <= d1 + 1e-9 {
            let y = ys(10f64.powf(d));
            let _ = writeln!(
                s,
                r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
                x0 + pw
            );
            if p == 0 {
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                    x0 - 4.0,
                    y + 4.0,
                    thousands(10f64.powf(d))
                );
            }
            for m in [2.0, 5.0] {
                let v = 10f64.powf(d) * m;
                if v.log10() < d1 {
                    let y = ys(v);
                    let _ = writeln!(
                        s,
                        r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#f0f0f0"/>"##,
                        x0 + pw
                    );
                }
            }
            d += 1.0;
        }
        for &t in &r.threads {
            let x = xs(t);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{t}</text>"##,
                y0 + ph,
                y0 + ph + 14.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">writer threads</text>"#,
            x0 + pw / 2.0,
            y0 + ph + 30.0
        );
        if p == 0 {
            let _ = writeln!(
                s,
                r#"<text transform="translate(14,{:.1}) rotate(-90)" text-anchor="middle">commits/s (log scale)</text>"#,
                y0 + ph / 2.0
            );
        }
        for sys in commit_systems(r) {
            let pts: Vec<(f64, f64)> = r
                .threads
                .iter()
                .filter_map(|&t| {
                    commit_rate(r, *size, t, sys)
                        .filter(|v| *v > 0.0)
                        .map(|v| (xs(t), ys(v)))
                })
                .collect();
            if pts.is_empty() {
                continue;
            }
            let dash = if sys == Sys::Raw {
                r#" stroke-dasharray="5,3""#
            } else {
                ""
            };
            let w = if sys == Sys::Ours { 2.5 } else { 1.5 };
            let list: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="{w}"{dash}/>"#,
                list.join(" "),
                color(sys)
            );
            for (x, y) in pts {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{}"/>"#,
                    color(sys)
                );
            }
        }
    }
    // Legend.
    let ly = mt + ph + mb + 12.0;
    let mut lx = ml;
    for sys in commit_systems(r) {
        let _ = writeln!(
            s,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{}" stroke-width="2.5"{}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 22.0,
            color(sys),
            if sys == Sys::Raw {
                r#" stroke-dasharray="5,3""#
            } else {
                ""
            },
            lx + 26.0,
            ly + 4.0,
            esc(sys.name())
        );
        lx += 30.0 + 6.2 * sys.name().len() as f64;
    }
    s.push_str("</svg>\n");
    s
}
