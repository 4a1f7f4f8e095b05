//! Where reports go: [`Out`] prints each report once, as its `Display` text or, with
//! `--json`, as one line of JSON, and [`Progress`] draws a progress bar on stderr.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::cell::RefCell;
use std::fmt::Display;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::exit::EXIT_FAILED;

/// Output sink: human text or JSON on stdout. A failed write (a closed pipe, as under
/// `walctl dump | head`, or a full disk) stops the output, not the command: the first error is
/// kept for `main`, which reports it unless it was a closed pipe.
pub(crate) struct Out {
    json: bool,
    failed: RefCell<Option<io::Error>>,
}

impl Out {
    pub(crate) fn new(json: bool) -> Out {
        Out {
            json,
            failed: RefCell::new(None),
        }
    }

    /// Prints one report: its JSON on one line with `--json`, else its text.
    pub(crate) fn emit<R: Serialize + Display>(&self, report: &R) {
        if self.json {
            match serde_json::to_string(report) {
                Ok(line) => self.write(&format!("{line}\n")),
                // A path that is not UTF-8 has no JSON string.
                Err(e) => self.fail(io::Error::other(e)),
            }
        } else {
            self.write(&report.to_string());
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
        let mut stdout = io::stdout().lock();
        if let Err(e) = stdout.write_all(s.as_bytes()).and_then(|()| stdout.flush()) {
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

/// A progress bar on stderr, shown only when stderr is a terminal and the scan has taken
/// longer than a moment.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    enabled: bool,
}

impl Progress {
    pub(crate) fn new() -> Progress {
        Progress {
            bar: None,
            started: Instant::now(),
            enabled: io::stderr().is_terminal(),
        }
    }

    pub(crate) fn update(&mut self, done: u64, total: u64) {
        if !self.enabled {
            return;
        }
        if self.bar.is_none() && self.started.elapsed() > Duration::from_millis(300) {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} scanning [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
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
