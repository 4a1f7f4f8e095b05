//! Where reports go: [`Out`] prints each report once, as its `Display` text or, with
//! `--json`, as one line of JSON, and [`Progress`] draws a progress bar on stderr.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::cell::RefCell;
use std::fmt::Display;
use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::exit::EXIT_FAILED;
use crate::human;

/// Output sink: human text or JSON on stdout. A failed write (a closed pipe, as under
/// `walctl dump | head`, or a full disk) stops the output, not the command: the first error is
/// kept for `main`, which reports it unless it was a closed pipe.
///
/// Output is buffered (a `dump` of millions of lines must not pay a system call per line):
/// [`Out::flush`] pushes it out where a reader waits for it (`dump --follow`), and
/// [`Out::finish`] at the end.
pub(crate) struct Out {
    json: bool,
    stdout: RefCell<io::BufWriter<io::Stdout>>,
    failed: RefCell<Option<io::Error>>,
}

impl Out {
    pub(crate) fn new(json: bool) -> Out {
        Out {
            json,
            stdout: RefCell::new(io::BufWriter::with_capacity(1 << 16, io::stdout())),
            failed: RefCell::new(None),
        }
    }

    /// Prints one report: its JSON on one line with `--json`, else its text.
    pub(crate) fn emit<R: Serialize + Display>(&self, report: &R) {
        if self.failed.borrow().is_some() {
            return;
        }
        let mut out = self.stdout.borrow_mut();
        let written = if self.json {
            // Serialized first, so a write error keeps its kind (a closed pipe); a path that is
            // not UTF-8 has no JSON string.
            serde_json::to_vec(report)
                .map_err(io::Error::other)
                .and_then(|mut line| {
                    line.push(b'\n');
                    out.write_all(&line)
                })
        } else {
            write!(out, "{report}")
        };
        drop(out);
        if let Err(e) = written {
            self.fail(e);
        }
    }

    /// Writes out what is buffered (`dump --follow` after each transaction).
    pub(crate) fn flush(&self) {
        if self.failed.borrow().is_some() {
            return;
        }
        let flushed = self.stdout.borrow_mut().flush();
        if let Err(e) = flushed {
            self.fail(e);
        }
    }

    /// Prints a value only with `--json` (a failure, whose text goes to stderr instead).
    pub(crate) fn emit_json<R: Serialize>(&self, value: &R) {
        if self.json {
            match serde_json::to_string(value) {
                Ok(line) => self.write(&format!("{line}\n")),
                Err(e) => self.fail(io::Error::other(e)),
            }
        }
    }

    fn write(&self, s: &str) {
        if s.is_empty() || self.failed.borrow().is_some() {
            return;
        }
        let written = self.stdout.borrow_mut().write_all(s.as_bytes());
        if let Err(e) = written {
            self.fail(e);
        }
    }

    fn fail(&self, e: io::Error) {
        self.failed.borrow_mut().get_or_insert(e);
    }

    /// Whether the reader of the output went away (a closed pipe).
    pub(crate) fn pipe_closed(&self) -> bool {
        self.failed
            .borrow()
            .as_ref()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    }

    /// The exit code once the command is done: `code`, unless its output was lost.
    pub(crate) fn finish(&self, code: u8) -> u8 {
        self.flush();
        match self.failed.borrow_mut().take() {
            None => code,
            Some(e) if e.kind() == io::ErrorKind::BrokenPipe => code,
            Some(e) => {
                let _ = writeln!(io::stderr(), "walctl: writing the output: {e}");
                EXIT_FAILED
            }
        }
    }
}

/// A progress bar on stderr, shown only when stderr is a terminal and the work has taken
/// longer than a moment. The rate and the time left are measured from when the work began
/// (not from when the bar appeared, which would make the first frame's rate absurd).
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    what: &'static str,
    started: Instant,
    enabled: bool,
}

impl Progress {
    /// A bar for `what` (`scanning`, `dumping`), started now.
    pub(crate) fn new(what: &'static str) -> Progress {
        Progress {
            bar: None,
            what,
            started: Instant::now(),
            enabled: io::stderr().is_terminal(),
        }
    }

    pub(crate) fn update(&mut self, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        let elapsed = self.started.elapsed();
        if self.bar.is_none() && elapsed > Duration::from_millis(500) {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:40}] {msg}") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(self.what);
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            // The message first: the bar's first frame is drawn with it.
            bar.set_message(rate_text(done, total, elapsed));
            bar.set_length(total);
            bar.set_position(done);
        }
    }

    pub(crate) fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// A bar for `what` fed by a [`wal_log::Progress`] callback (the log's open, a plan, a
/// replay: the work calls it, possibly from another thread). Call `finish` on the returned
/// bar once the work is done.
pub(crate) fn shared(what: &'static str) -> (Arc<Mutex<Progress>>, wal_log::Progress) {
    let bar = Arc::new(Mutex::new(Progress::new(what)));
    let told = bar.clone();
    let hook = wal_log::Progress::new(move |done, total| {
        told.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .update(done, total);
    });
    (bar, hook)
}

/// Removes a bar made by [`shared`].
pub(crate) fn finish_shared(bar: &Mutex<Progress>) {
    bar.lock().unwrap_or_else(PoisonError::into_inner).finish();
}

/// Runs `work` with a spinner on stderr naming `what` and the time spent, for work whose
/// total is not known in advance (a repair's open, reading snapshots): no rate or time left
/// is shown rather than a made-up one. Only on a terminal; drawn from its own thread after
/// half a second.
pub(crate) fn spin<T>(what: &'static str, work: impl FnOnce() -> T) -> T {
    if !io::stderr().is_terminal() {
        return work();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(what);
    bar.enable_steady_tick(Duration::from_millis(500));
    let out = work();
    bar.finish_and_clear();
    out
}

/// `1.20 GiB/4.02 GiB, 310 MiB/s, 9 s left`: the rate over the whole run so far.
fn rate_text(done: u64, total: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = done as f64 / secs;
    let left = if rate > 0.0 {
        format!("{:.0} s left", total.saturating_sub(done) as f64 / rate)
    } else {
        "time left unknown".to_owned()
    };
    format!(
        "{}/{}, {}/s, {left}",
        human::size(done),
        human::size(total),
        human::size(rate as u64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_measured_from_the_start() {
        // 1 GiB of 4 in 4 s: 256 MiB/s and 12 s left, whenever the bar appeared.
        assert_eq!(
            rate_text(1 << 30, 4 << 30, Duration::from_secs(4)),
            "1.00 GiB/4.00 GiB, 256 MiB/s, 12 s left"
        );
        assert_eq!(
            rate_text(0, 100, Duration::ZERO),
            "0 B/100 B, 0 B/s, time left unknown"
        );
    }
}
