//! The in-memory index of a Raft log store: where each present entry is in the log, and the
//! vote, committed and purged ids. A reopen rebuilds it by applying every record in log order
//! ([`LogIndex::apply`]); a running store applies the records it writes the same way, so the
//! two can never disagree.

use crate::record::Record;
use openraft::{LogId, NodeId, Vote};
use std::collections::BTreeMap;
use wal_log::{Location, Lsn};

/// Where one entry is: the transaction holding it, and which of its records it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Slot<NID: NodeId> {
    pub(crate) log_id: LogId<NID>,
    pub(crate) at: Location,
    pub(crate) record: u32,
}

/// The state a log store serves from memory.
///
/// openraft appends consecutive entries and truncates before it overwrites, but its storage
/// suite also appends with gaps and below the purged id, as its in-memory store allows. The
/// rule here takes both and stays simple: an entry replaces every entry at its index or
/// above (an implicit truncation), and gaps are kept. So the present entries' LSNs grow with
/// their indexes, and the first entry's LSN is the oldest one any of them needs.
#[derive(Debug)]
pub(crate) struct LogIndex<NID: NodeId> {
    slots: BTreeMap<u64, Slot<NID>>,
    pub(crate) purged: Option<LogId<NID>>,
    pub(crate) vote: Option<Vote<NID>>,
    pub(crate) committed: Option<LogId<NID>>,
}

impl<NID: NodeId> Default for LogIndex<NID> {
    fn default() -> Self {
        LogIndex {
            slots: BTreeMap::new(),
            purged: None,
            vote: None,
            committed: None,
        }
    }
}

impl<NID: NodeId> LogIndex<NID> {
    /// Applies one record found at `at` (record number `record` of that transaction).
    pub(crate) fn apply(&mut self, rec: &Record<'_, NID>, at: Location, record: u32) {
        match rec {
            Record::Vote(v) => self.vote = Some(v.clone()),
            Record::Committed(c) => self.committed = c.clone(),
            Record::Entry { log_id, .. } => self.push(Slot {
                log_id: log_id.clone(),
                at,
                record,
            }),
            Record::Truncate(index) => self.truncate(*index),
            Record::State(s) => {
                self.vote = s.vote.clone();
                self.committed = s.committed.clone();
                if let Some(p) = &s.purged {
                    self.purge(p.clone());
                }
            }
        }
    }

    fn push(&mut self, slot: Slot<NID>) {
        let index = slot.log_id.index;
        self.truncate(index);
        debug_assert!(
            self.slots
                .last_key_value()
                .is_none_or(|(_, b)| b.at.lsn <= slot.at.lsn),
            "LSNs grow with indexes"
        );
        self.slots.insert(index, slot);
    }

    /// Removes the entries from `index` on.
    pub(crate) fn truncate(&mut self, index: u64) {
        // Every entry pushed asks (and a reopen pushes them all); usually nothing is at or
        // above it, and `split_off` would still build (and free) a second tree.
        if self
            .slots
            .last_key_value()
            .is_none_or(|(&last, _)| last < index)
        {
            return;
        }
        drop(self.slots.split_off(&index));
    }

    /// Removes the entries up to `upto` and remembers it as purged (never moving back).
    pub(crate) fn purge(&mut self, upto: LogId<NID>) {
        if self.purged.as_ref().is_some_and(|p| p.index >= upto.index) {
            return;
        }
        self.slots = self.slots.split_off(&upto.index.saturating_add(1));
        self.purged = Some(upto);
    }

    #[cfg(test)]
    pub(crate) fn first_index(&self) -> Option<u64> {
        self.slots.first_key_value().map(|(i, _)| *i)
    }

    /// The last entry's id, or the purged id when no entry is left.
    pub(crate) fn last_log_id(&self) -> Option<LogId<NID>> {
        self.slots
            .last_key_value()
            .map(|(_, s)| s.log_id.clone())
            .or_else(|| self.purged.clone())
    }

    #[cfg(test)]
    pub(crate) fn get(&self, index: u64) -> Option<&Slot<NID>> {
        self.slots.get(&index)
    }

    /// The slots of the present entries in `[start, end)`.
    pub(crate) fn range(&self, start: u64, end: u64) -> impl Iterator<Item = &Slot<NID>> {
        self.slots.range(start..end.max(start)).map(|(_, s)| s)
    }

    /// The first LSN the present entries need: the log before it holds nothing they need.
    pub(crate) fn first_lsn(&self) -> Option<Lsn> {
        self.slots.first_key_value().map(|(_, s)| s.at.lsn)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::record::StateRecord;
    use openraft::CommittedLeaderId;

    fn id(term: u64, index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(term, 0), index)
    }

    fn at(lsn: u64) -> Location {
        Location {
            lsn: Lsn(lsn),
            seq: wal_format::SegmentSeq(1),
            offset: 0,
        }
    }

    fn entry(term: u64, index: u64) -> Record<'static, u64> {
        Record::Entry {
            log_id: id(term, index),
            body: &[],
        }
    }

    #[test]
    fn truncate_then_overwrite_then_purge() {
        let mut ix = LogIndex::<u64>::default();
        for i in 0..10 {
            ix.apply(&entry(1, i), at(i + 1), 0);
        }
        ix.apply(&Record::Truncate(6), at(11), 0);
        assert_eq!(ix.last_log_id(), Some(id(1, 5)));
        ix.apply(&entry(2, 6), at(12), 0);
        // A gap is kept; an entry below the last replaces everything from its index.
        ix.apply(&entry(2, 8), at(13), 0);
        ix.apply(&entry(3, 7), at(14), 0);
        assert_eq!(ix.last_log_id(), Some(id(3, 7)));
        let s = StateRecord {
            purged: Some(id(1, 3)),
            vote: Some(Vote::new(2, 0)),
            committed: Some(id(1, 2)),
        };
        ix.apply(&Record::State(s), at(15), 0);
        assert_eq!(ix.first_index(), Some(4));
        assert_eq!(ix.get(6).unwrap().log_id, id(2, 6));
        assert_eq!(ix.range(0, 100).count(), 4);
        assert_eq!(ix.range(5, 6).count(), 1);
        assert_eq!(ix.range(8, 9).count(), 0);
        assert_eq!(ix.range(9, 2).count(), 0);
        // Purging past the end leaves no entry, and the next one must follow the purged id.
        ix.purge(id(2, 20));
        assert_eq!(ix.last_log_id(), Some(id(2, 20)));
        // A purge never moves back.
        ix.purge(id(1, 5));
        assert_eq!(ix.purged, Some(id(2, 20)));
    }
}
