//! Fragmented transactions as the writer tracks them: which are still open, and which crossed
//! a segment boundary, so that truncation and readers know exactly which older segments a
//! transaction still needs.
//!
//! A segment's header names only the *oldest* transaction open when the segment started
//! (`oldest_open_lsn`). Following that name back from segment to segment keeps every segment
//! of a log whose large transactions come back to back, although each of them ended long ago.
//! What decides whether a segment is still needed is where each transaction *ends*: this
//! module remembers it.

use std::collections::{BTreeMap, BTreeSet};
use wal_format::Lsn;

/// The end recorded for a transaction that crossed a boundary and is still open.
const STILL_OPEN: Lsn = Lsn(u64::MAX);

/// Open fragmented transactions and those that span a segment boundary.
#[derive(Debug, Default, Clone)]
pub(crate) struct Streams {
    /// Begin LSNs of fragmented transactions still being written.
    open: BTreeSet<Lsn>,
    /// Begin → end (commit or abort) LSN of every transaction whose frames lie in more than
    /// one segment of the retained log; [`STILL_OPEN`] while it is open.
    spanning: BTreeMap<Lsn, Lsn>,
}

impl Streams {
    /// Rebuilds the state recovery found: the transactions still open, and the ended ones
    /// that crossed a boundary (`(begin, end)`).
    pub(crate) fn recovered(open: BTreeSet<Lsn>, spanning: &[(Lsn, Lsn)]) -> Streams {
        let mut s = Streams {
            open,
            spanning: spanning.iter().copied().collect(),
        };
        // Whatever is still open may have crossed a boundary too: assume it did (it only
        // keeps its own first segment, which it needs anyway).
        s.boundary();
        s
    }

    /// A fragmented transaction began at `lsn`.
    pub(crate) fn begin(&mut self, lsn: Lsn) {
        debug_assert!(!self.open.contains(&lsn), "stream {lsn} begun twice");
        self.open.insert(lsn);
    }

    /// The transaction that began at `begin` ended (committed or aborted) at `end`.
    pub(crate) fn end(&mut self, begin: Lsn, end: Lsn) {
        debug_assert!(begin < end, "stream {begin} ends at {end}");
        self.open.remove(&begin);
        if let Some(e) = self.spanning.get_mut(&begin) {
            *e = end;
        }
    }

    /// A new segment starts: every open transaction now spans a boundary.
    pub(crate) fn boundary(&mut self) {
        for b in &self.open {
            self.spanning.insert(*b, STILL_OPEN);
        }
    }

    /// Begin LSN of the oldest open transaction, if any.
    pub(crate) fn oldest_open(&self) -> Option<Lsn> {
        self.open.first().copied()
    }

    /// The oldest LSN whose frame a reader of every transaction committed at or after `from`
    /// needs: `from` itself, or the begin of a transaction that ends at or after `from` (or is
    /// still open) and began before it.
    pub(crate) fn needed_from(&self, from: Lsn) -> Lsn {
        let open = self.oldest_open().unwrap_or(from);
        // Ordered by begin: the first one that ends late enough is the oldest needed.
        let spanning = self
            .spanning
            .iter()
            .find(|(_, end)| **end >= from)
            .map_or(from, |(begin, _)| *begin);
        let needed = from.min(open).min(spanning);
        debug_assert!(needed <= from);
        needed
    }

    /// The commit (or abort) LSN of the last transaction that began before `lsn` and ended
    /// at or after it: the first segment kept by a truncation starts with its tail, which no
    /// reader can return whole.
    pub(crate) fn last_end_across(&self, lsn: Lsn) -> Option<Lsn> {
        self.spanning
            .range(..lsn)
            .map(|(_, end)| *end)
            .filter(|end| *end >= lsn && *end != STILL_OPEN)
            .max()
    }

    /// Forgets the transactions that ended before `lsn` (the first LSN the log still holds):
    /// no reader or truncation can need them again.
    pub(crate) fn forget_ended_before(&mut self, lsn: Lsn) {
        self.spanning.retain(|_, end| *end >= lsn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_that_ended_before_the_point_is_not_needed() {
        // Eleven large transactions back to back, each crossing into the next segment.
        let mut s = Streams::default();
        let mut lsn = 1;
        for _ in 0..11 {
            s.begin(Lsn(lsn));
            s.boundary();
            s.end(Lsn(lsn), Lsn(lsn + 3));
            lsn += 4;
        }
        assert_eq!(s.needed_from(Lsn(lsn)), Lsn(lsn));
        // A point inside the last one needs its beginning, and nothing older.
        assert_eq!(s.needed_from(Lsn(lsn - 2)), Lsn(lsn - 4));
    }

    #[test]
    fn open_transactions_are_needed_until_they_end() {
        let mut s = Streams::default();
        s.begin(Lsn(10));
        assert_eq!(s.needed_from(Lsn(50)), Lsn(10));
        s.boundary();
        s.end(Lsn(10), Lsn(60));
        assert_eq!(s.needed_from(Lsn(50)), Lsn(10));
        assert_eq!(s.needed_from(Lsn(61)), Lsn(61));
        s.forget_ended_before(Lsn(61));
        assert_eq!(s.needed_from(Lsn(20)), Lsn(20));
    }

    #[test]
    fn recovered_open_streams_count_as_spanning() {
        let s = Streams::recovered(BTreeSet::from([Lsn(7)]), &[(Lsn(2), Lsn(5))]);
        assert_eq!(s.needed_from(Lsn(4)), Lsn(2));
        assert_eq!(s.needed_from(Lsn(6)), Lsn(6).min(Lsn(7)));
        assert_eq!(s.needed_from(Lsn(9)), Lsn(7));
    }
}
