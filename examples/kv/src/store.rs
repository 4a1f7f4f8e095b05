//! The store: an ordered map whose every change is an event in the log.

use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wal_format::Lsn;
use wal_replay::{ApplyError, StateMachine};

/// One primitive mutation, as the store fires it into the recorder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvEvent {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Remove `key`.
    Del {
        /// The key.
        key: String,
    },
}

/// The in-memory state.
#[derive(Debug, Default)]
pub struct Store {
    /// Keys and values, sorted.
    pub map: BTreeMap<String, String>,
    /// Entries of `map` the snapshot being written has encoded so far (from 0 at the start
    /// of each [`StateMachine::write_snapshot`]): a progress bar reads it from another thread,
    /// against `map.len()`.
    pub snapshot_progress: Arc<AtomicU64>,
}

/// The map as serde sees a `BTreeMap` (the same bytes: a length, then each entry), counting
/// each entry into `done` as it is encoded.
struct Counted<'a> {
    map: &'a BTreeMap<String, String>,
    done: &'a AtomicU64,
}

impl Serialize for Counted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The iterator's exact size hint gives the map its length up front, as BTreeMap's own
        // `Serialize` does.
        s.collect_map(self.map.iter().inspect(|_| {
            self.done.fetch_add(1, Ordering::Relaxed);
        }))
    }
}

impl Store {
    /// Applies one event to the map.
    pub fn apply_event(&mut self, event: &KvEvent) {
        match event {
            KvEvent::Put { key, value } => {
                self.map.insert(key.clone(), value.clone());
            }
            KvEvent::Del { key } => {
                self.map.remove(key);
            }
        }
    }
}

impl StateMachine for Store {
    type Event = KvEvent;

    fn apply(&mut self, _lsn: Lsn, events: Vec<KvEvent>) -> Result<(), ApplyError> {
        for e in &events {
            self.apply_event(e);
        }
        Ok(())
    }

    fn write_snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut out = io::BufWriter::new(out);
        self.snapshot_progress.store(0, Ordering::Relaxed);
        let counted = Counted {
            map: &self.map,
            done: &self.snapshot_progress,
        };
        bincode::serde::encode_into_std_write(&counted, &mut out, bincode::config::standard())
            .map_err(io::Error::other)?;
        out.flush()
    }

    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        let mut input = io::BufReader::new(input);
        self.map = bincode::serde::decode_from_std_read(&mut input, bincode::config::standard())
            .map_err(io::Error::other)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counted encoding is the map's own (snapshots written before it still restore), and
    /// it counts every entry.
    #[test]
    fn a_snapshot_is_the_maps_bincode_and_counts_its_entries() {
        let mut store = Store::default();
        for i in 0..300 {
            store.map.insert(format!("k{i}"), "v".repeat(i));
        }
        let mut written = Vec::new();
        store.write_snapshot(&mut written).unwrap_or_default();
        let plain = bincode::serde::encode_to_vec(&store.map, bincode::config::standard());
        assert_eq!(Some(written.clone()), plain.ok());
        assert_eq!(store.snapshot_progress.load(Ordering::Relaxed), 300);
        let mut back = Store::default();
        assert!(back.restore(&mut written.as_slice()).is_ok());
        assert_eq!(back.map, store.map);
    }
}
