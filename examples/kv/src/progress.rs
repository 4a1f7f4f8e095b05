//! Progress on a terminal for the commands that can take seconds on a large directory:
//! recovery (a bar over the log's bytes) and a checkpoint (a spinner with the time spent:
//! how much of the snapshot is left is not known). Nothing is drawn when stderr is not a
//! terminal, or for work done within half a second.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long work runs before a bar appears.
const QUIET_FOR: Duration = Duration::from_millis(500);

/// A bar over `(bytes done, total)` whose rate counts from when the work began.
#[derive(Clone)]
pub struct Bar {
    inner: Arc<Mutex<Option<ProgressBar>>>,
    started: Instant,
    what: &'static str,
}

impl Bar {
    /// A bar for `what`, started now.
    pub fn new(what: &'static str) -> Bar {
        Bar {
            inner: Arc::new(Mutex::new(None)),
            started: Instant::now(),
            what,
        }
    }

    /// Shows that `done` of `total` bytes are through.
    pub fn update(&self, done: u64, total: u64) {
        let elapsed = self.started.elapsed();
        if !std::io::stderr().is_terminal() || elapsed < QUIET_FOR {
            return;
        }
        let Ok(mut slot) = self.inner.lock() else {
            return;
        };
        let bar = slot.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:40}] {msg}") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(self.what);
            bar
        });
        let mib = |b: u64| b as f64 / f64::from(1 << 20);
        let rate = mib(done) / elapsed.as_secs_f64();
        let left = if rate > 0.0 {
            format!("{:.0} s left", mib(total.saturating_sub(done)) / rate)
        } else {
            "time left unknown".to_owned()
        };
        bar.set_length(total);
        bar.set_position(done);
        bar.set_message(format!(
            "{:.0}/{:.0} MiB, {rate:.0} MiB/s, {left}",
            mib(done),
            mib(total)
        ));
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Ok(mut slot) = self.inner.lock()
            && let Some(bar) = slot.take()
        {
            bar.finish_and_clear();
        }
    }
}

/// Runs `work` with a spinner that shows `what` and the time spent, on a terminal.
pub fn spin<T>(what: &'static str, work: impl FnOnce() -> T) -> T {
    if !std::io::stderr().is_terminal() {
        return work();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(what);
    // Drawn from its own thread, so a long step with no callbacks still shows it is alive;
    // the first draw comes after the quiet period.
    bar.enable_steady_tick(QUIET_FOR);
    let out = work();
    bar.finish_and_clear();
    out
}
