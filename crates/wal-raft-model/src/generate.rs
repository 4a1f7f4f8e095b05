//! A seeded generator of operation sequences that openraft could issue.
//!
//! It keeps openraft's preconditions: appends continue the log; a truncation starts at a
//! present entry above the committed and purged ids (a follower's conflict) and bumps the
//! term; a purge moves forward and stays within the committed entries, or goes past the last
//! entry (a snapshot was installed); committed ids and votes never go back; every range read
//! has `start <= end`. A crash comes only right after a call that made everything before it
//! durable, so that memstore's state is exactly what must survive (see [`Op::Crash`]).

use crate::op::{CrashKind, ModelConfig, Op, Request};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, Vote};
use std::collections::{BTreeMap, BTreeSet};

/// What [`generate`] makes.
#[derive(Clone, Copy, Debug)]
pub struct GenOptions {
    /// How many operations, crashes and the reads after them included (the closing reads
    /// come on top).
    pub ops: usize,
    /// Whether to put crashes in.
    pub crashes: bool,
}

/// A sequence of operations for `seed`: the same seed always gives the same sequence.
#[must_use]
pub fn generate(seed: u64, opts: GenOptions) -> Vec<Op<Entry<ModelConfig>>> {
    let mut g = Gen {
        rng: Rng(seed),
        log: BTreeMap::new(),
        purged: None,
        committed: None,
        vote: None,
        term: 1,
        ops: Vec::new(),
        barrier: false,
    };
    while g.ops.len() < opts.ops {
        g.step(opts.crashes);
    }
    g.ops.push(Op::GetLogState);
    g.ops.push(Op::TryGetLogEntries {
        start: 0,
        end: None,
    });
    g.ops
}

/// splitmix64: small, seedable, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        self.next() % n
    }

    /// A number in `lo..=hi` (`lo <= hi`).
    fn within(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(lo <= hi);
        lo + self.below(hi - lo + 1)
    }
}

/// The generator's view of the store: what openraft would know.
struct Gen {
    rng: Rng,
    log: BTreeMap<u64, LogId<u64>>,
    purged: Option<LogId<u64>>,
    committed: Option<LogId<u64>>,
    vote: Option<Vote<u64>>,
    term: u64,
    ops: Vec<Op<Entry<ModelConfig>>>,
    /// Whether everything issued so far is durable once the last call returned.
    barrier: bool,
}

impl Gen {
    fn step(&mut self, crashes: bool) {
        match self.rng.below(100) {
            0..28 => self.append(),
            28..34 => {
                if self.truncate() {
                    self.append();
                }
            }
            34..38 => {
                self.truncate();
            }
            38..44 => self.purge(),
            44..50 => self.save_committed(),
            50..56 => self.save_vote(),
            56..64 if crashes && self.barrier => self.crash(),
            _ => self.read(),
        }
    }

    fn next_index(&self) -> u64 {
        let last = self.log.keys().next_back().copied();
        last.or(self.purged.map(|p| p.index)).map_or(0, |i| i + 1)
    }

    /// Leader ids are `(term, node)` and openraft compares log ids by them first, so one
    /// node per term keeps every two ids comparable.
    fn log_id(&self, index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(self.term, self.term % 3 + 1), index)
    }

    fn append(&mut self) {
        let n = if self.rng.below(10) == 0 {
            self.rng.within(20, 60)
        } else {
            self.rng.within(1, 8)
        };
        let from = self.next_index();
        let entries: Vec<_> = (from..from + n).map(|i| self.entry(i)).collect();
        for e in &entries {
            self.log.insert(e.log_id.index, e.log_id);
        }
        self.ops.push(Op::Append { entries });
        self.barrier = true;
    }

    fn entry(&mut self, index: u64) -> Entry<ModelConfig> {
        let payload = match self.rng.below(10) {
            0 => EntryPayload::Blank,
            1 => {
                let mut configs = vec![self.voters()];
                if self.rng.below(2) == 0 {
                    configs.push(self.voters());
                }
                EntryPayload::Membership(Membership::new(configs, ()))
            }
            _ => {
                let len = self.rng.below(300);
                let status = (0..len)
                    .map(|_| char::from(b'a' + (self.rng.below(26) as u8)))
                    .collect();
                EntryPayload::Normal(Request {
                    client: format!("client-{}", self.rng.below(4)),
                    serial: index,
                    status,
                })
            }
        };
        Entry {
            log_id: self.log_id(index),
            payload,
        }
    }

    fn voters(&mut self) -> BTreeSet<u64> {
        (1..=self.rng.within(1, 5)).collect()
    }

    /// A follower's conflict: truncate from a present entry above the committed and purged
    /// ids. Returns whether there was one to truncate.
    fn truncate(&mut self) -> bool {
        let floor = self.committed.max(self.purged).map_or(0, |l| l.index + 1);
        let (Some(&first), Some(&last)) = (self.log.keys().next(), self.log.keys().next_back())
        else {
            return false;
        };
        let lo = first.max(floor);
        if lo > last {
            return false;
        }
        let at = self.rng.within(lo, last);
        let log_id = self.log[&at];
        self.log.split_off(&at);
        self.ops.push(Op::Truncate { log_id });
        self.term += 1;
        self.barrier = false;
        true
    }

    fn purge(&mut self) {
        let lo = self.purged.map_or(0, |p| p.index + 1);
        let committed = self.committed.map(|c| c.index);
        let log_id = match committed {
            Some(c) if c >= lo && self.rng.below(5) != 0 => {
                let at = self.rng.within(lo, c);
                // Entries below the first present one were purged by a snapshot install.
                self.log.get(&at).copied().unwrap_or(self.log_id(at))
            }
            _ => {
                let at = self.next_index() + self.rng.below(3);
                self.log_id(at)
            }
        };
        debug_assert!(self.purged < Some(log_id), "purges move forward");
        self.log = self.log.split_off(&(log_id.index + 1));
        self.purged = Some(log_id);
        self.ops.push(Op::Purge { log_id });
        self.barrier = true;
    }

    fn save_committed(&mut self) {
        let lo = self.committed.map_or(0, |c| c.index);
        let candidates: Vec<_> = self.log.range(lo..).map(|(_, l)| *l).collect();
        if candidates.is_empty() {
            return;
        }
        let c = candidates[self.rng.below(candidates.len() as u64) as usize];
        self.committed = Some(c);
        self.ops.push(Op::SaveCommitted { committed: Some(c) });
        self.barrier = false;
    }

    fn save_vote(&mut self) {
        let vote = match self.vote {
            Some(v) if !v.committed && self.rng.below(2) == 0 => {
                Vote::new_committed(v.leader_id.term, v.leader_id.node_id)
            }
            _ => {
                self.term += 1;
                Vote::new(self.term, self.term % 3 + 1)
            }
        };
        self.vote = Some(vote);
        self.ops.push(Op::SaveVote { vote });
        self.barrier = true;
    }

    fn crash(&mut self) {
        let kind = CrashKind::ALL[self.rng.below(CrashKind::ALL.len() as u64) as usize];
        self.ops.push(Op::Crash { kind });
        self.ops.extend([
            Op::GetLogState,
            Op::ReadVote,
            Op::ReadCommitted,
            Op::TryGetLogEntries {
                start: 0,
                end: None,
            },
        ]);
    }

    fn read(&mut self) {
        let lo = self.purged.map_or(0, |p| p.index.saturating_sub(2));
        let hi = self.next_index() + 3;
        let start = self.rng.within(lo, hi);
        let end = start + self.rng.within(1, 12);
        let op = match self.rng.below(5) {
            0 => Op::GetLogState,
            1 => Op::ReadVote,
            2 => Op::ReadCommitted,
            3 => Op::TryGetLogEntries {
                start,
                end: (self.rng.below(3) != 0).then_some(end),
            },
            _ => Op::ReaderGetLogEntries { start, end },
        };
        self.ops.push(op);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> GenOptions {
        GenOptions {
            ops: 400,
            crashes: true,
        }
    }

    #[test]
    fn a_seed_gives_one_sequence() {
        assert_eq!(generate(7, opts()), generate(7, opts()));
        assert_ne!(generate(7, opts()), generate(8, opts()));
    }

    /// Every kind of operation shows up, so the comparison exercises all of them.
    #[test]
    fn sequences_use_every_operation() {
        let mut seen = BTreeSet::new();
        for seed in 0..20 {
            for op in generate(seed, opts()) {
                let name = match serde_json::to_value(&op) {
                    Ok(serde_json::Value::String(s)) => s,
                    Ok(serde_json::Value::Object(o)) => {
                        o.keys().next().cloned().unwrap_or_default()
                    }
                    other => panic!("{op:?} serialized as {other:?}"),
                };
                seen.insert(name);
            }
        }
        let all = [
            "save_vote",
            "append",
            "truncate",
            "purge",
            "save_committed",
            "get_log_state",
            "read_vote",
            "read_committed",
            "try_get_log_entries",
            "reader_get_log_entries",
            "crash",
        ];
        assert_eq!(seen, all.iter().map(|s| (*s).to_owned()).collect());
    }

    /// A crash follows only a call that waited for durability of everything before it.
    #[test]
    fn crashes_follow_a_durable_call() {
        for seed in 0..50 {
            let ops = generate(seed, opts());
            for w in ops.windows(2) {
                if matches!(w[1], Op::Crash { .. }) {
                    assert!(
                        matches!(
                            w[0],
                            Op::Append { .. }
                                | Op::SaveVote { .. }
                                | Op::Purge { .. }
                                | Op::TryGetLogEntries { .. }
                                | Op::GetLogState
                                | Op::ReadVote
                                | Op::ReadCommitted
                                | Op::ReaderGetLogEntries { .. }
                        ),
                        "seed {seed}: {:?} before a crash",
                        w[0]
                    );
                }
            }
        }
    }

    proptest::proptest! {
        /// Appends continue the log, truncations stay above the committed id, purges and
        /// votes move forward: the preconditions memstore asserts or openraft keeps.
        #[test]
        fn sequences_keep_openraft_preconditions(seed in proptest::prelude::any::<u64>()) {
            let mut next = 0u64;
            let mut purged: Option<LogId<u64>> = None;
            let mut committed: Option<LogId<u64>> = None;
            let mut vote: Option<Vote<u64>> = None;
            for op in generate(seed, GenOptions { ops: 200, crashes: true }) {
                match op {
                    Op::Append { entries } => {
                        for e in entries {
                            proptest::prop_assert_eq!(e.log_id.index, next);
                            next += 1;
                        }
                    }
                    Op::Truncate { log_id } => {
                        proptest::prop_assert!(log_id.index < next);
                        proptest::prop_assert!(committed.is_none_or(|c| c.index < log_id.index));
                        next = log_id.index;
                    }
                    Op::Purge { log_id } => {
                        proptest::prop_assert!(purged < Some(log_id));
                        purged = Some(log_id);
                        next = next.max(log_id.index + 1);
                    }
                    Op::SaveCommitted { committed: c } => {
                        proptest::prop_assert!(committed <= c);
                        committed = c;
                    }
                    Op::SaveVote { vote: v } => {
                        proptest::prop_assert!(vote <= Some(v));
                        vote = Some(v);
                    }
                    _ => {}
                }
            }
        }
    }
}
