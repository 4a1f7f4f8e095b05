//! Entries appended but not yet durable, served from memory: openraft reads an entry as soon
//! as `append` returns, before the log's fsync. The memory they take is bounded
//! ([`crate::LogStoreOptions::cache_bytes`]); an entry that does not fit is not kept, and a
//! read of it waits until it is durable and reads it from the log.

use std::collections::BTreeMap;
use wal_log::Lsn;

#[derive(Debug)]
pub(crate) struct Cache<E> {
    /// Raft index -> (LSN of its transaction, entry, encoded size).
    entries: BTreeMap<u64, (Lsn, E, usize)>,
    bytes: usize,
    limit: usize,
}

impl<E> Cache<E> {
    pub(crate) fn new(limit: usize) -> Self {
        Cache {
            entries: BTreeMap::new(),
            bytes: 0,
            limit,
        }
    }

    /// Drops the entries whose transactions are durable: the log serves them now.
    pub(crate) fn evict_durable(&mut self, durable: Lsn) {
        // LSNs grow with the index among present entries, so the durable ones come first.
        while let Some(e) = self.entries.first_entry() {
            if e.get().0 > durable {
                break;
            }
            self.bytes -= e.remove().2;
        }
    }

    /// Keeps `entry` if the budget allows; returns whether it did.
    pub(crate) fn insert(&mut self, index: u64, lsn: Lsn, entry: E, size: usize) -> bool {
        if self.bytes + size > self.limit {
            return false;
        }
        self.bytes += size;
        if let Some(old) = self.entries.insert(index, (lsn, entry, size)) {
            self.bytes -= old.2;
        }
        debug_assert!(self.bytes <= self.limit);
        true
    }

    pub(crate) fn get(&self, index: u64) -> Option<&E> {
        self.entries.get(&index).map(|(_, e, _)| e)
    }

    /// Drops the entries from `index` on (a truncation).
    pub(crate) fn truncate(&mut self, index: u64) {
        // Every append asks; usually nothing is at or above it, and `split_off` would still
        // build (and free) a second tree.
        if self
            .entries
            .last_key_value()
            .is_none_or(|(&last, _)| last < index)
        {
            return;
        }
        for (_, (_, _, size)) in self.entries.split_off(&index) {
            self.bytes -= size;
        }
    }

    /// Drops the entries up to `index` (a purge).
    pub(crate) fn purge(&mut self, index: u64) {
        let kept = self.entries.split_off(&index.saturating_add(1));
        for (_, (_, _, size)) in std::mem::replace(&mut self.entries, kept) {
            self.bytes -= size;
        }
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_holds_and_every_way_out_gives_the_bytes_back() {
        let mut c = Cache::new(100);
        for i in 0..10u64 {
            assert!(c.insert(i, Lsn(i + 1), i, 10));
        }
        assert!(!c.insert(10, Lsn(11), 10, 1), "over the budget");
        assert_eq!(c.bytes(), 100);
        c.evict_durable(Lsn(3));
        assert_eq!((c.get(2), c.get(3)), (None, Some(&3)));
        c.truncate(8);
        c.purge(4);
        assert_eq!(c.bytes(), 30);
        assert_eq!(c.get(5), Some(&5));
        assert_eq!(c.get(8), None);
    }
}
