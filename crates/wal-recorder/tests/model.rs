//! A proptest state machine: random sequences of arm / record / commit / abort / flush / poison
//! (and the guard, `commit_events`, commit tickets, checkpoints) against a simple model, including what a
//! replay of the log yields afterwards, and what survives a power loss.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use proptest::prelude::*;
use support::*;
use wal_log::SyncPolicy;
use wal_log::sim::SimVfs;
use wal_recorder::{RecorderError, RecorderOptions, WalRecorder, WroteCommit};

type Rec = WalRecorder<Ev>;

#[derive(Clone, Debug)]
enum Op {
    Arm,
    Record(Ev),
    Commit,
    CommitAndFlush,
    /// `commit_deferred`, then the ticket's `wait`, its `wait_and_flush`, or a drop.
    CommitDeferred(Ticket),
    CommitEvents(Vec<Ev>),
    Abort,
    Flush,
    ForceFsync,
    Checkpoint,
    Poison,
    /// `begin`, record these, then commit through the guard (or drop it when `commit` is false).
    Guard {
        events: Vec<Ev>,
        commit: bool,
    },
}

/// What is done with a commit ticket.
#[derive(Clone, Copy, Debug)]
enum Ticket {
    Wait,
    WaitAndFlush,
    Drop,
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        4 => (0u64..100, any::<u32>(), any::<i64>()).prop_map(|(node, key, value)| Ev::SetProp { node, key, value }),
        1 => any::<u64>().prop_map(Ev::Delete),
        1 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Ev::Blob),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Arm),
        12 => ev().prop_map(Op::Record),
        4 => Just(Op::Commit),
        3 => Just(Op::CommitAndFlush),
        3 => prop_oneof![Just(Ticket::Wait), Just(Ticket::WaitAndFlush), Just(Ticket::Drop)]
            .prop_map(Op::CommitDeferred),
        2 => proptest::collection::vec(ev(), 0..4).prop_map(Op::CommitEvents),
        3 => Just(Op::Abort),
        2 => Just(Op::Flush),
        1 => Just(Op::ForceFsync),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Poison),
        2 => (proptest::collection::vec(ev(), 0..4), proptest::bool::weighted(0.8))
            .prop_map(|(events, commit)| Op::Guard { events, commit }),
    ]
}

/// What the recorder should do, in the simplest terms.
#[derive(Default, Debug)]
struct Model {
    armed: bool,
    buf: Vec<Ev>,
    poisoned: bool,
    committed: Vec<Vec<Ev>>,
    /// How many of `committed` a durability point covered.
    durable: usize,
}

/// The outcome of one call, reduced to what the model predicts.
#[derive(Debug, PartialEq, Eq)]
enum Out {
    Ok,
    Wrote(bool),
    Aborted(bool),
    Poisoned,
    NotArmed,
    AlreadyArmed,
}

fn out<T>(r: Result<T, RecorderError>, ok: impl FnOnce(T) -> Out) -> Out {
    match r {
        Ok(v) => ok(v),
        Err(RecorderError::Poisoned { .. }) => Out::Poisoned,
        Err(RecorderError::NotArmed) => Out::NotArmed,
        Err(RecorderError::AlreadyArmed) => Out::AlreadyArmed,
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

impl Model {
    fn poison(&mut self) {
        self.poisoned = true;
        self.armed = false;
        self.buf.clear();
    }

    fn arm(&mut self) -> Out {
        if self.poisoned {
            return Out::Poisoned;
        }
        if self.armed {
            self.poison();
            return Out::AlreadyArmed;
        }
        self.armed = true;
        self.buf.clear();
        Out::Ok
    }

    fn record(&mut self, e: &Ev) {
        if self.poisoned {
        } else if !self.armed {
            self.poison();
        } else {
            self.buf.push(e.clone());
        }
    }

    fn commit(&mut self, flush: bool, always: bool) -> Out {
        if self.poisoned {
            return Out::Poisoned;
        }
        if !self.armed {
            self.poison();
            return Out::NotArmed;
        }
        self.armed = false;
        if self.buf.is_empty() {
            return Out::Wrote(false);
        }
        self.committed.push(std::mem::take(&mut self.buf));
        if flush || always {
            self.durable = self.committed.len();
        }
        Out::Wrote(true)
    }

    fn abort(&mut self) -> Out {
        if self.poisoned {
            return Out::Poisoned;
        }
        self.armed = false;
        let had = !self.buf.is_empty();
        self.buf.clear();
        Out::Aborted(had)
    }

    fn durability_point(&mut self) -> Out {
        if self.poisoned {
            return Out::Poisoned;
        }
        self.durable = self.committed.len();
        Out::Ok
    }
}

fn run(ops: &[Op], sync: SyncPolicy, cap: usize) -> Result<(), TestCaseError> {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, sync))
        .with_options(RecorderOptions::default().max_buffered_bytes(cap));
    let always = sync == SyncPolicy::Always;
    let mut m = Model::default();
    let mut last_lsn = wal_log::Lsn::ZERO;
    for (i, op) in ops.iter().enumerate() {
        let wrote = |w: WroteCommit| Out::Wrote(w.wrote());
        let (got, want) = match op {
            Op::Arm => (out(rec.arm(), |()| Out::Ok), m.arm()),
            Op::Record(e) => {
                rec.record(e.clone());
                m.record(e);
                (Out::Ok, Out::Ok)
            }
            Op::Commit => {
                let r = rec.commit();
                if let Ok(WroteCommit::Yes(lsn)) = r {
                    prop_assert!(lsn > last_lsn);
                    last_lsn = lsn;
                }
                (out(r, wrote), m.commit(false, always))
            }
            Op::CommitAndFlush => (out(rec.commit_and_flush(), wrote), m.commit(true, always)),
            Op::CommitDeferred(how) => {
                let r = rec.commit_deferred().and_then(|ticket| match how {
                    Ticket::Wait => ticket.wait(),
                    Ticket::WaitAndFlush => ticket.wait_and_flush(),
                    Ticket::Drop => Ok(if let Some(lsn) = ticket.lsn() {
                        WroteCommit::Yes(lsn)
                    } else {
                        WroteCommit::No
                    }),
                });
                if let Ok(WroteCommit::Yes(lsn)) = r {
                    prop_assert!(lsn > last_lsn);
                    last_lsn = lsn;
                }
                // A dropped ticket's transaction is committed but was never acknowledged.
                let (flush, acked) = match how {
                    Ticket::Wait => (false, always),
                    Ticket::WaitAndFlush => (true, always),
                    Ticket::Drop => (false, false),
                };
                (out(r, wrote), m.commit(flush, acked))
            }
            Op::CommitEvents(evs) => {
                let want = match m.arm() {
                    Out::Ok => {
                        evs.iter().for_each(|e| m.record(e));
                        m.commit(true, always)
                    }
                    other => other,
                };
                (out(rec.commit_events(evs.clone()), wrote), want)
            }
            Op::Abort => (out(rec.abort(), Out::Aborted), m.abort()),
            Op::Flush | Op::ForceFsync => {
                let r = if matches!(op, Op::Flush) {
                    rec.flush()
                } else {
                    rec.force_fsync()
                };
                (out(r, |()| Out::Ok), m.durability_point())
            }
            Op::Checkpoint => {
                let r = rec.checkpoint_marker(last_lsn);
                let want = if m.poisoned { Out::Poisoned } else { Out::Ok };
                (out(r, |_| Out::Ok), want)
            }
            Op::Poison => {
                rec.poison(format!("op {i}"));
                m.poison();
                (Out::Ok, Out::Ok)
            }
            Op::Guard { events, commit } => {
                let want_begin = m.arm();
                match rec.begin() {
                    Ok(tx) => {
                        prop_assert_eq!(&want_begin, &Out::Ok, "op {}: begin", i);
                        for e in events {
                            tx.record(e.clone());
                            m.record(e);
                        }
                        if *commit {
                            (out(tx.commit_and_flush(), wrote), m.commit(true, always))
                        } else {
                            drop(tx);
                            if let Out::Aborted(true) = m.abort() {
                                m.poison();
                            }
                            (Out::Ok, Out::Ok)
                        }
                    }
                    Err(e) => (out(Err::<(), _>(e), |()| Out::Ok), want_begin),
                }
            }
        };
        prop_assert_eq!(got, want, "op {}: {:?}", i, op);
        prop_assert_eq!(rec.is_poisoned(), m.poisoned, "op {}: poisoned", i);
        prop_assert_eq!(rec.is_armed(), m.armed, "op {}: armed", i);
        prop_assert_eq!(
            rec.recorded_events(),
            m.buf.len() as u64,
            "op {}: buffered events",
            i
        );
    }
    // A power loss now keeps at least every transaction a durability point covered, and
    // never anything that was not committed.
    let image = replay(&durable_image(&vfs));
    prop_assert!(image.len() >= m.durable, "lost flushed transactions");
    prop_assert_eq!(&image[..], &m.committed[..image.len()]);
    // A clean shutdown and reopen replays exactly what was committed, in order.
    drop(rec);
    prop_assert_eq!(replay(&vfs), m.committed);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_recorder_behaves_like_the_model(
        ops in proptest::collection::vec(op(), 0..80),
        sync in prop_oneof![Just(SyncPolicy::Always), Just(SyncPolicy::Never)],
        cap in prop_oneof![Just(usize::MAX), Just(64usize), Just(1024usize)],
    ) {
        run(&ops, sync, cap)?;
    }

    /// Mostly well-formed queries, so long runs stay healthy and commit a lot.
    #[test]
    fn long_healthy_runs_replay_exactly(
        queries in proptest::collection::vec((proptest::collection::vec(ev(), 0..8), 0u8..10), 0..40),
        sync in prop_oneof![Just(SyncPolicy::Always), Just(SyncPolicy::Never)],
    ) {
        let mut ops = Vec::new();
        for (events, how) in queries {
            ops.push(Op::Arm);
            ops.extend(events.into_iter().map(Op::Record));
            ops.push(match how {
                0 => Op::Abort,
                1 => Op::Flush,
                2..=4 => Op::Commit,
                5 => Op::CommitDeferred(Ticket::Wait),
                6 => Op::CommitDeferred(Ticket::WaitAndFlush),
                _ => Op::CommitAndFlush,
            });
            if how == 1 {
                ops.push(Op::Commit);
            }
        }
        run(&ops, sync, 256)?;
    }
}
