//! The log store against a reference model, with crashes between operations, on `SimVfs`.
//!
//! Random sequences of appends (waited for or not), truncations, purges, votes and committed
//! ids run on a store and on a model (a map of log ids, the vote, the committed and purged
//! ids). Now and then the power is cut: a crash image is taken (only synced bytes, every
//! written byte, or the last write torn), the store is reopened from it, and what it serves
//! must be the model's state after some prefix of the operations since the last crash: at
//! least every operation that was acknowledged (a save_vote or purge that returned, an append
//! whose callback fired, and everything before them), and nothing that was not asked for.
//! That is the whole durability contract: a vote that returned survives, an entry whose
//! callback fired survives, a truncated entry overwritten later never comes back, a purge
//! never leaves a hole nor loses the vote or purged id, and `get_log_state` after a reopen is
//! what was durable.
//!
//! The model is this file's own, not `openraft-memstore`: memstore 0.9.25 imports
//! `openraft::RaftStorage`, which openraft 0.9.25 does not export with the `storage-v2`
//! feature this crate needs, so the two cannot be built together; and the check needs the
//! model's state after every operation, which a plain value gives for free.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Cfg, Op, open_log};
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, mpsc};
use wal_log::sim::{CrashImage, DataLoss, DirLoss, SimVfs};
use wal_raft::LogStore;

const DIR: &str = "/raft";

/// What a store should serve.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Model {
    entries: BTreeMap<u64, LogId<u64>>,
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
    purged: Option<LogId<u64>>,
}

#[derive(Clone, Debug)]
enum Step {
    /// Append `n` entries after the last one (or over the last `back` ones), in `term`.
    Append {
        n: u64,
        back: u64,
        wait: bool,
    },
    Truncate {
        back: u64,
    },
    Purge {
        upto: u64,
    },
    Vote,
    Committed,
    Crash(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1u64..12, 0u64..4, any::<bool>()).prop_map(|(n, back, wait)| Step::Append { n, back, wait }),
        1 => (0u64..6).prop_map(|back| Step::Truncate { back }),
        1 => (0u64..40).prop_map(|upto| Step::Purge { upto }),
        1 => Just(Step::Vote),
        1 => Just(Step::Committed),
        2 => (0u8..3).prop_map(Step::Crash),
    ]
}

fn id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

fn entry(log_id: LogId<u64>) -> Entry<Cfg> {
    let v = format!(
        "{}-{}-{}",
        log_id.leader_id.term,
        log_id.index,
        "x".repeat(150)
    );
    Entry {
        log_id,
        payload: EntryPayload::Normal(Op::Put(format!("k{}", log_id.index), v)),
    }
}

impl Model {
    fn last_index(&self) -> Option<u64> {
        self.entries
            .keys()
            .next_back()
            .copied()
            .or(self.purged.map(|p| p.index))
    }

    fn append(&mut self, ids: &[LogId<u64>]) {
        for l in ids {
            self.entries.split_off(&l.index);
            self.entries.insert(l.index, *l);
        }
    }

    fn purge(&mut self, upto: LogId<u64>) {
        if self.purged.is_some_and(|p| p.index >= upto.index) {
            return;
        }
        self.entries = self.entries.split_off(&(upto.index + 1));
        self.purged = Some(upto);
    }
}

/// What the store serves, read through the storage API.
async fn observe(store: &mut LogStore<Cfg>) -> Model {
    let state = store.get_log_state().await.unwrap();
    let entries = store.try_get_log_entries(..).await.unwrap();
    let entries: BTreeMap<_, _> = entries.iter().map(|e| (e.log_id.index, e.log_id)).collect();
    for e in store.try_get_log_entries(..).await.unwrap() {
        assert_eq!(e, entry(e.log_id), "an entry reads back as written");
    }
    let m = Model {
        entries,
        vote: store.read_vote().await.unwrap(),
        committed: store.read_committed().await.unwrap(),
        purged: state.last_purged_log_id,
    };
    let last = m.entries.values().next_back().copied().or(m.purged);
    assert_eq!(
        state.last_log_id, last,
        "get_log_state agrees with the entries"
    );
    m
}

/// Runs `steps`; returns how many crashes it checked.
fn run(steps: &[Step]) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut vfs = SimVfs::new();
        let mut store = open_log(Path::new(DIR), Arc::new(vfs.clone()));
        // States after each operation since the last crash; `acked` of them are durable.
        let mut history = vec![Model::default()];
        let mut acked = 0;
        let mut term = 1;
        let mut crashes = 0;
        for s in steps {
            let mut m = history.last().cloned().unwrap();
            match *s {
                Step::Append { n, back, wait } => {
                    let from = m.last_index().map_or(0, |l| (l + 1).saturating_sub(back));
                    let ids: Vec<_> = (from..from + n).map(|i| id(term, i)).collect();
                    let (tx, rx) = mpsc::channel();
                    store
                        .append_with(ids.iter().map(|l| entry(*l)), move |r| {
                            // Nobody listens for an append the test does not wait for.
                            let _ = tx.send(r.is_ok());
                        })
                        .unwrap();
                    m.append(&ids);
                    history.push(m);
                    if wait {
                        assert!(rx.recv().unwrap(), "the append became durable");
                        acked = history.len() - 1;
                    }
                }
                Step::Truncate { back } => {
                    let Some(last) = m.entries.keys().next_back().copied() else {
                        continue;
                    };
                    let at = (last + 1).saturating_sub(back + 1).max(*m.entries.keys().next().unwrap());
                    store.truncate(id(term, at)).await.unwrap();
                    m.entries.split_off(&at);
                    term += 1;
                    history.push(m);
                }
                Step::Purge { upto } => {
                    let upto = id(term, upto);
                    store.purge(upto).await.unwrap();
                    let before = m.purged;
                    m.purge(upto);
                    let purged = m.purged != before;
                    history.push(m);
                    // A purge that purged waited for its record, so for everything before it;
                    // one below the purged id changes nothing and waits for nothing.
                    if purged {
                        acked = history.len() - 1;
                    }
                }
                Step::Vote => {
                    term += 1;
                    let v = Vote::new(term, 0);
                    store.save_vote(&v).await.unwrap();
                    m.vote = Some(v);
                    history.push(m);
                    acked = history.len() - 1;
                }
                Step::Committed => {
                    let c = m.entries.values().next_back().copied();
                    store.save_committed(c).await.unwrap();
                    m.committed = c;
                    history.push(m);
                }
                Step::Crash(kind) => {
                    let data = match kind {
                        0 => DataLoss::DurableOnly,
                        1 => DataLoss::AllWritten,
                        _ => DataLoss::TornLastWrite { sectors: 1 },
                    };
                    let image = vfs.crash(&CrashImage {
                        data,
                        dirs: DirLoss::UnsyncedLost,
                    });
                    drop(store);
                    vfs = image;
                    store = open_log(Path::new(DIR), Arc::new(vfs.clone()));
                    let seen = observe(&mut store).await;
                    let matched = history[acked..].iter().position(|h| *h == seen);
                    assert!(
                        matched.is_some(),
                        "after a crash ({kind}) the store serves {seen:?}, which is no state between the acknowledged {:?} and the last {:?}",
                        history[acked],
                        history.last()
                    );
                    history = vec![seen];
                    acked = 0;
                    crashes += 1;
                }
            }
        }
        crashes
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn reopened_store_serves_a_state_between_acknowledged_and_last(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        run(&steps);
    }
}

/// A fixed sequence through every promise once, so a failure names it: a vote, entries
/// truncated and overwritten, a purge across segments, then a crash keeping synced bytes only.
#[test]
fn fixed_sequence_keeps_every_acknowledged_write() {
    let mut steps = vec![Step::Vote];
    steps.extend((0..30).map(|_| Step::Append {
        n: 10,
        back: 0,
        wait: true,
    }));
    steps.push(Step::Truncate { back: 5 });
    steps.push(Step::Append {
        n: 8,
        back: 0,
        wait: true,
    });
    steps.push(Step::Committed);
    steps.push(Step::Purge { upto: 250 });
    steps.push(Step::Crash(0));
    steps.push(Step::Append {
        n: 3,
        back: 0,
        wait: false,
    });
    steps.push(Step::Crash(2));
    assert_eq!(run(&steps), 2);
}
