//! Where reports go: [`Out`] prints each report once, as its `Display` text or, with
//! `--json`, as one line of JSON, and [`Progress`] draws a progress bar on stderr.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::fmt::Display;
use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::exit::EXIT_FAILED;
use crate::human;
use crate::text::Text;

/// Output sink: human text or JSON on stdout. A failed write (a closed pipe, as under
/// `walctl dump | head`, or a full disk) stops the output, not the command: the first error is
/// kept for `main`, which reports it unless it was a closed pipe.
///
/// Output is gathered in a buffer written out [`BUFFER`] bytes at a time (a `dump` of
/// millions of lines must not pay a system call per line, and a reader at the other end of a
/// pipe is woken once per large write); the first write comes after [`FIRST_WRITE`] bytes and
/// each next one after twice as many up to [`BUFFER`], so a closed pipe (`| head`) is seen
/// early: [`Out::flush`] pushes it out where a reader waits for
/// it (`dump --follow`), and [`Out::finish`] at the end.
pub(crate) struct Out {
    json: bool,
    buf: RefCell<Vec<u8>>,
    /// Bytes gathered before the next write.
    limit: Cell<usize>,
    failed: RefCell<Option<io::Error>>,
}

/// Bytes gathered before they are written to stdout, once output flows.
const BUFFER: usize = 1 << 20;
/// Bytes gathered before the first write.
const FIRST_WRITE: usize = 1 << 16;

impl Out {
    pub(crate) fn new(json: bool) -> Out {
        Out {
            json,
            buf: RefCell::new(Vec::with_capacity(BUFFER + (BUFFER >> 2))),
            limit: Cell::new(FIRST_WRITE),
            failed: RefCell::new(None),
        }
    }

    /// Prints one report: its JSON on one line with `--json`, else its text.
    pub(crate) fn emit<R: Serialize + Display>(&self, report: &R) {
        self.emit_with(report, |r, buf| {
            // Writing to a Vec fails only in `Display` itself.
            write!(buf, "{r}").map_err(io::Error::other)
        });
    }

    /// [`Out::emit`] for a report whose text is written as bytes ([`Text`]): `dump`'s lines.
    pub(crate) fn emit_text<R: Serialize + Text>(&self, report: &R) {
        self.emit_with(report, |r, buf| {
            r.text(buf);
            Ok(())
        });
    }

    fn emit_with<R: Serialize>(
        &self,
        report: &R,
        text: impl FnOnce(&R, &mut Vec<u8>) -> io::Result<()>,
    ) {
        if self.failed.borrow().is_some() {
            return;
        }
        let mut buf = self.buf.borrow_mut();
        let before = buf.len();
        let written = if self.json {
            // A path that is not UTF-8 has no JSON string: nothing of the line is kept.
            serde_json::to_writer(&mut *buf, report)
                .map_err(io::Error::other)
                .map(|()| buf.push(b'\n'))
        } else {
            text(report, &mut buf)
        };
        if let Err(e) = written {
            buf.truncate(before);
            drop(buf);
            self.fail(e);
            return;
        }
        let full = buf.len() >= self.limit.get();
        drop(buf);
        if full {
            self.write_out();
        }
    }

    /// Writes what is gathered to stdout (not flushing stdout's own line buffer: it passes
    /// writes that end a line straight through).
    fn write_out(&self) {
        let mut buf = self.buf.borrow_mut();
        let written = io::stdout().lock().write_all(&buf);
        buf.clear();
        self.limit.set((self.limit.get() * 2).min(BUFFER));
        drop(buf);
        if let Err(e) = written {
            self.fail(e);
        }
    }

    /// Writes out what is buffered (`dump --follow` after each transaction).
    pub(crate) fn flush(&self) {
        if self.failed.borrow().is_some() {
            return;
        }
        self.write_out();
        if self.failed.borrow().is_some() {
            return;
        }
        let flushed = io::stdout().lock().flush();
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
        self.buf.borrow_mut().extend_from_slice(s.as_bytes());
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
            // Hidden until its message is set: its first frame is drawn whole.
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
            if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:40}] {msg}") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(self.what);
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_message(rate_text(done, total, elapsed));
            bar.set_length(total);
            bar.set_position(done);
            if bar.is_hidden() {
                bar.set_draw_target(ProgressDrawTarget::stderr());
            }
        }
    }

    pub(crate) fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    /// A command that fails midway clears its bar too.
    fn drop(&mut self) {
        self.finish();
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
