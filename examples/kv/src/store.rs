//! The store: an ordered map whose every change is an event in the log.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
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
        bincode::serde::encode_into_std_write(&self.map, &mut out, bincode::config::standard())
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
