//! The workload both peers share, driven through openraft's v2 `RaftLogStorage` API as openraft
//! drives a v1 store: `Adaptor::new(store)`, then `RaftLogStorageExt::blocking_append`, whose
//! `LogFlushed` callback the adaptor fires as soon as `append_to_log` returns.

use openraft::storage::{Adaptor, RaftLogStorageExt};
use openraft::{RaftStorage, RaftTypeConfig};
use std::error::Error;
use std::time::{Duration, Instant};

/// Appends `calls` times `per_call` entries made by `entry` (indexes from 0 up), running
/// `after` once after each append (the synced run's fsync); returns the time of all of it.
pub async fn appends<C, S>(
    log: &mut Adaptor<C, S>,
    calls: u64,
    per_call: u64,
    entry: fn(u64) -> C::Entry,
    mut after: impl FnMut() -> Result<(), Box<dyn Error>>,
) -> Result<Duration, Box<dyn Error>>
where
    C: RaftTypeConfig,
    S: RaftStorage<C>,
{
    let started = Instant::now();
    for c in 0..calls {
        let from = c * per_call;
        log.blocking_append((from..from + per_call).map(entry))
            .await?;
        after()?;
    }
    Ok(started.elapsed())
}
