//! Progress on a terminal for the commands that can take seconds on a large directory:
//! recovery and `stat` (a bar over the log's bytes), a checkpoint (a bar over the keys the
//! snapshot has written) and `load` (over the keys committed). Nothing is drawn when stderr is not a terminal, or for work done
//! within half a second.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long work runs before a bar appears.
const QUIET_FOR: Duration = Duration::from_millis(500);

/// What a bar counts.
#[derive(Clone, Copy, Debug)]
pub enum Unit {
    /// Bytes, shown in MiB.
    Bytes,
    /// Keys of the store.
    Keys,
}

/// A bar over `(done, total)` whose rate counts from when the work began.
#[derive(Clone)]
pub struct Bar {
    inner: Arc<Mutex<Option<ProgressBar>>>,
    started: Instant,
    what: &'static str,
    unit: Unit,
}

impl Bar {
    /// A bar for `what`, counting `unit`, started now.
    pub fn new(what: &'static str, unit: Unit) -> Bar {
        Bar {
            inner: Arc::new(Mutex::new(None)),
            started: Instant::now(),
            what,
            unit,
        }
    }

    /// Shows that `done` of `total` are through.
    pub fn update(&self, done: u64, total: u64) {
        let elapsed = self.started.elapsed();
        if !std::io::stderr().is_terminal() || elapsed < QUIET_FOR {
            return;
        }
        let Ok(mut slot) = self.inner.lock() else {
            return;
        };
        let bar = slot.get_or_insert_with(|| {
            // Hidden until its message is set: its first frame is drawn whole.
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
            if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:40}] {msg}") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(self.what);
            bar
        });
        bar.set_message(rate_text(self.unit, done, total, elapsed));
        bar.set_length(total);
        bar.set_position(done);
        if bar.is_hidden() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
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

/// `1024/4096 MiB, 256 MiB/s, 12 s left` (or in keys): the rate over the whole run so far.
fn rate_text(unit: Unit, done: u64, total: u64, elapsed: Duration) -> String {
    let (scale, name) = match unit {
        Unit::Bytes => (f64::from(1 << 20), "MiB"),
        Unit::Keys => (1.0, "keys"),
    };
    let (done, total) = (done as f64 / scale, total as f64 / scale);
    let rate = done / elapsed.as_secs_f64().max(1e-3);
    let left = if rate > 0.0 {
        format!("{:.0} s left", (total - done).max(0.0) / rate)
    } else {
        "time left unknown".to_owned()
    };
    format!("{done:.0}/{total:.0} {name}, {rate:.0} {name}/s, {left}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_measured_from_the_start() {
        let text = rate_text(Unit::Bytes, 1 << 30, 4 << 30, Duration::from_secs(4));
        assert_eq!(text, "1024/4096 MiB, 256 MiB/s, 12 s left");
        let text = rate_text(Unit::Keys, 250_000, 1_000_000, Duration::from_secs(2));
        assert_eq!(text, "250000/1000000 keys, 125000 keys/s, 6 s left");
        let text = rate_text(Unit::Keys, 0, 10, Duration::ZERO);
        assert_eq!(text, "0/10 keys, 0 keys/s, time left unknown");
    }
}
