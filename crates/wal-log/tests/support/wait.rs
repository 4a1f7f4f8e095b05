//! Waiting for a state other threads bring about, instead of sleeping and hoping.

use std::time::{Duration, Instant};
use wal_log::Wal;

/// Long enough that a state not reached by then is a hang, not a slow machine.
pub const WATCHDOG: Duration = Duration::from_secs(60);

/// Polls `reached` until it holds; panics naming `what` after [`WATCHDOG`].
pub fn wait_until(what: &str, mut reached: impl FnMut() -> bool) {
    let deadline = Instant::now() + WATCHDOG;
    while !reached() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until `n` follow readers of `wal` are parked in `next_timeout`.
pub fn until_readers_wait(wal: &Wal, n: usize) {
    wait_until(&format!("{n} follow reader(s) waiting"), || {
        wal.stats().readers_waiting >= n
    });
}
