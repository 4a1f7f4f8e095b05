//! The `recorder_ops` fuzz check: a sequence of recorder calls and injected faults, then a
//! crash, then recovery.
//!
//! Shared by the cargo-fuzz target `fuzz/fuzz_targets/recorder_ops.rs` (which includes this
//! file by path) and the corpus replay test `tests/fuzz_corpus.rs`, so both check exactly the
//! same things. Every check panics on a violation.
//!
//! # Input
//!
//! Three bytes of configuration (sync policy, `max_buffered_bytes`, `max_transaction_size`,
//! whether a final `sync` is attempted, whether megabyte events are allowed, crash image
//! parameters), then up to 64 operations of a few bytes each (see `op`): `arm`; `record` of
//! small events and of text events from bytes to megabytes (crossing `max_buffered_bytes`,
//! and past one frame streaming real fragments); `commit`; `commit_deferred`, then the
//! ticket dropped and `wait_durable` on the log, or the ticket's `wait` or `wait_and_flush` (or
//! a dropped ticket); `commit_and_flush`; `abort`; `flush`; `force_fsync`; `poison`;
//! a `begin` guard finished every way (commit_and_flush, commit, deferred, abort, drop);
//! `commit_events`; `checkpoint_marker`; `truncate_up_to`; and `SimVfs` faults (EIO or
//! ENOSPC on one of the next few operations of a kind, or a power cut).
//!
//! # Checks
//!
//! No call may panic or hang. A model tracks every query that may have reached the log (an
//! *attempt*: a commit of a query that recorded something, whatever it returned) and what was
//! acknowledged: a commit that returned an LSN is *written* once a non-queued commit returned
//! that LSN or a later one; it is *durable* once a commit under `SyncPolicy::Always`,
//! `commit_and_flush`, `wait_durable`, a ticket's `wait` under `Always`, its `wait_and_flush`,
//! `flush` (under `Interval`/`Never`),
//! `force_fsync` or a checkpoint marker under `Always` covered its LSN. After the recorder is dropped, the log is recovered from
//! several crash images (only synced data; everything written; a prefix of the unsynced
//! operations; a torn last write), and in each:
//!
//! * opening succeeds and every transaction reads and decodes;
//! * the transactions are a contiguous run of the attempts, in order, each with exactly the
//!   attempt's events and, when its commit returned one, its LSN: nothing invented,
//!   duplicated, reordered, or taken from an aborted query;
//! * every durable attempt (and, with everything written kept, every written one) above the
//!   highest truncation fence is there.
#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use wal_format::frame::MAX_FRAME_PAYLOAD;
use wal_format::{Bincode, decode_all};
use wal_log::sim::{CrashImage, DataLoss, DirLoss, Fault, OpKind, SimVfs};
use wal_log::{Lsn, Options, SyncPolicy, Wal};
use wal_recorder::{RecorderError, RecorderOptions, WalRecorder, WroteCommit};

/// The log directory on the `SimVfs`.
pub const DIR: &str = "/rec";
/// The most text bytes one input may record in total: enough for one query past one frame
/// (a real fragment stream), little enough to keep an execution fast under ASan.
const TEXT_BUDGET: usize = 5 << 20;
/// Segments are small so that rotation, sealing and truncation happen.
const SEGMENT_SIZE: u64 = 32 << 10;

/// A recorded mutation event. `tx` numbers the query, so every attempt's events are unique.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ev {
    /// A small event.
    Set {
        /// The query.
        tx: u32,
        /// The event's index in the query.
        idx: u32,
        /// A value.
        value: u64,
    },
    /// An event of `text.len()` bytes.
    Text {
        /// The query.
        tx: u32,
        /// The payload.
        text: String,
    },
}

/// Reads the fuzz input front to back; past its end every read gives zeros.
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data, pos: 0 }
    }
    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }
    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = (self.pos + 1).min(self.data.len());
        b
    }
    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
}

/// A query that may have reached the log.
#[derive(Debug)]
struct Attempt {
    events: Vec<Ev>,
    /// The LSN its commit returned, if it returned one.
    lsn: Option<Lsn>,
}

/// What the calls so far guarantee.
#[derive(Debug)]
struct Model {
    sync: SyncPolicy,
    attempts: Vec<Attempt>,
    /// Events of the armed query, as the recorder accepted them.
    query: Vec<Ev>,
    /// Number of the armed query (events carry it).
    tx: u32,
    /// Every attempt with a returned LSN at or below this is durable.
    durable: Lsn,
    /// Every attempt with a returned LSN at or below this was written to the OS.
    written: Lsn,
    /// The highest fence any `truncate_up_to` was called with: attempts at or below it may
    /// have been removed.
    fence: Lsn,
    /// Text bytes recorded so far.
    text_bytes: usize,
    /// Whether events of a megabyte and more are allowed (configuration bit 7).
    big_events: bool,
}

impl Model {
    /// The highest LSN a commit returned.
    fn last_returned(&self) -> Lsn {
        self.attempts
            .iter()
            .filter_map(|a| a.lsn)
            .max()
            .unwrap_or(Lsn::ZERO)
    }

    fn durable_to(&mut self, lsn: Lsn) {
        self.durable = self.durable.max(lsn);
        self.written = self.written.max(lsn);
    }

    fn event(&mut self, inp: &mut Input<'_>, big: bool) -> Ev {
        let tx = self.tx;
        let b = inp.u8();
        if !big && b < 192 {
            return Ev::Set {
                tx,
                idx: self.query.len() as u32,
                value: u64::from(b) * 0x0101_0101,
            };
        }
        let unit = match b % 4 {
            0 => 1,
            1 => 8,
            2 => 64,
            _ => 16,
        };
        let mut len = usize::from(inp.u16() % 4096) * unit;
        if big && self.big_events {
            len += (1 << 20) + usize::from(b) * 4096;
        }
        if self.text_bytes + len > TEXT_BUDGET {
            len = 8;
        }
        self.text_bytes += len;
        let c = char::from(b'a' + (tx % 26) as u8);
        Ev::Text {
            tx,
            text: c.to_string().repeat(len),
        }
    }

    /// Starts tracking a new query after a successful `arm` or `begin`.
    fn armed(&mut self) {
        self.tx += 1;
        self.query.clear();
    }

    /// Records what a commit of the current query returned; `queued` for a commit left queued
    /// in the log (`commit_deferred` under `Always`), `flushed` for `commit_and_flush`.
    fn committed(
        &mut self,
        r: &Result<WroteCommit, RecorderError>,
        queued: bool,
        flushed: bool,
    ) -> Option<Lsn> {
        let events = std::mem::take(&mut self.query);
        let had = !events.is_empty();
        if had {
            self.attempts.push(Attempt { events, lsn: None });
        }
        match r {
            Ok(WroteCommit::No) => {
                assert!(!had, "a query that recorded events committed nothing");
                None
            }
            Ok(WroteCommit::Yes(lsn)) => {
                assert!(had, "a query that recorded nothing wrote a transaction");
                let last = self.attempts.iter().rev().skip(1).find_map(|a| a.lsn);
                assert!(
                    last.is_none_or(|l| l < *lsn),
                    "commit LSNs must increase: {last:?} then {lsn:?}"
                );
                if let Some(a) = self.attempts.last_mut() {
                    a.lsn = Some(*lsn);
                }
                if !queued {
                    self.written = self.written.max(*lsn);
                    if self.sync == SyncPolicy::Always || flushed {
                        self.durable_to(*lsn);
                    }
                }
                Some(*lsn)
            }
            Err(_) => None,
        }
    }

    /// After a `flush` that returned `Ok`.
    fn flushed(&mut self) {
        if self.sync != SyncPolicy::Always {
            self.durable_to(self.last_returned());
        }
    }

    /// After a `force_fsync` (or `Wal::sync`) that returned `Ok`.
    fn synced(&mut self) {
        self.durable_to(self.last_returned());
    }
}

type Rec = WalRecorder<Ev>;

/// Which way a `begin` guard is finished.
fn finish_guard(rec: &Rec, m: &mut Model, inp: &mut Input<'_>) {
    let tx = match rec.begin() {
        Ok(tx) => tx,
        Err(_) => {
            m.query.clear();
            return;
        }
    };
    m.armed();
    for _ in 0..inp.u8() % 4 {
        let e = m.event(inp, false);
        let before = rec.recorded_events();
        tx.record(e.clone());
        if rec.recorded_events() == before + 1 {
            m.query.push(e);
        }
    }
    match inp.u8() % 5 {
        0 => {
            let r = tx.commit_and_flush();
            m.committed(&r, false, true);
        }
        1 => {
            let r = tx.commit();
            m.committed(&r, false, false);
        }
        2 => {
            // The ticket is dropped unwaited: under `Always` the transaction stays queued.
            let r = tx
                .commit_deferred()
                .map(|t| t.lsn().map_or(WroteCommit::No, WroteCommit::Yes));
            m.committed(&r, m.sync == SyncPolicy::Always, false);
        }
        3 => {
            let _ = tx.abort();
            m.query.clear();
        }
        _ => {
            drop(tx);
            m.query.clear();
        }
    }
}

const FAULT_KINDS: [OpKind; 7] = [
    OpKind::Write,
    OpKind::SyncData,
    OpKind::SyncAll,
    OpKind::SyncDir,
    OpKind::Create,
    OpKind::Rename,
    OpKind::Remove,
];

/// Runs one operation.
fn op(rec: &Rec, vfs: &SimVfs, m: &mut Model, inp: &mut Input<'_>) {
    let code = inp.u8();
    match code % 20 {
        0 | 1 => match rec.arm() {
            Ok(()) => m.armed(),
            Err(_) => m.query.clear(),
        },
        2..=5 => {
            let e = m.event(inp, false);
            let ok = if code & 0x80 != 0 {
                let before = rec.recorded_events();
                rec.record(e.clone());
                rec.recorded_events() == before + 1
            } else {
                rec.try_record(&e).is_ok()
            };
            if ok {
                m.query.push(e);
            } else if !rec.is_armed() {
                m.query.clear();
            }
        }
        6 => {
            let e = m.event(inp, true);
            if rec.try_record(&e).is_ok() {
                m.query.push(e);
            } else if !rec.is_armed() {
                m.query.clear();
            }
        }
        7 => {
            let r = rec.commit();
            m.committed(&r, false, false);
        }
        8 => {
            let how = inp.u8();
            let wait = how & 1 == 0;
            if how & 2 == 0 {
                // The ticket dropped; the host waits on the log itself (an fsync under every
                // policy).
                let always = m.sync == SyncPolicy::Always;
                let r = rec
                    .commit_deferred()
                    .map(|t| t.lsn().map_or(WroteCommit::No, WroteCommit::Yes));
                if let Some(lsn) = m.committed(&r, always, false)
                    && wait
                    && rec.wal().wait_durable(lsn).is_ok()
                {
                    m.durable_to(lsn);
                }
            } else {
                // Under `Always` the ticket's transaction is queued; otherwise written.
                let always = m.sync == SyncPolicy::Always;
                let (r, ticket) = match rec.commit_deferred() {
                    Ok(t) => (
                        Ok(t.lsn().map_or(WroteCommit::No, WroteCommit::Yes)),
                        Some(t),
                    ),
                    Err(e) => (Err(e), None),
                };
                let lsn = m.committed(&r, always, false);
                if let (Some(lsn), Some(ticket)) = (lsn, ticket)
                    && wait
                {
                    let flush = how & 4 != 0;
                    let r = if flush {
                        ticket.wait_and_flush()
                    } else {
                        ticket.wait()
                    };
                    if r.is_ok() && (flush || always) {
                        m.durable_to(lsn);
                    }
                }
            }
        }
        9 => {
            let r = rec.commit_and_flush();
            m.committed(&r, false, true);
        }
        10 => {
            let _ = rec.abort();
            m.query.clear();
        }
        11 => {
            if rec.flush().is_ok() {
                m.flushed();
            }
        }
        12 => {
            if rec.force_fsync().is_ok() {
                m.synced();
            }
        }
        13 => {
            if inp.u8() == 0 {
                rec.poison("the fuzzer poisons the recorder");
                m.query.clear();
            }
        }
        14 => finish_guard(rec, m, inp),
        15 => {
            // `begin`, `try_record` each, `commit_and_flush`. When `begin` fails the
            // recorder was poisoned (or is now, by a double arm) and nothing later commits, so
            // counting the events as an attempt is harmless.
            let tx = m.tx + 1;
            let events: Vec<Ev> = (0..u32::from(inp.u8() % 4))
                .map(|idx| Ev::Set {
                    tx,
                    idx,
                    value: u64::from(idx),
                })
                .collect();
            let r = rec.commit_events(events.clone());
            m.tx = tx;
            m.query = events;
            m.committed(&r, false, true);
        }
        16 => {
            let at = Lsn(m.last_returned().0.saturating_sub(u64::from(inp.u8() % 4)));
            if let Ok(lsn) = rec.checkpoint_marker(at)
                && m.sync == SyncPolicy::Always
            {
                m.durable_to(lsn);
            }
        }
        17 => {
            let fence = Lsn(m.last_returned().0.saturating_sub(u64::from(inp.u8() % 8)));
            m.fence = m.fence.max(fence);
            let _ = rec.truncate_up_to(fence);
        }
        _ => {
            let b = inp.u8();
            if b >= 240 {
                vfs.power_off_after(u64::from(b % 8));
            } else {
                let kind = FAULT_KINDS[usize::from(b) % FAULT_KINDS.len()];
                let fault = if b & 0x80 != 0 {
                    Fault::Enospc
                } else {
                    Fault::Eio
                };
                vfs.fail_nth(
                    kind,
                    vfs.op_count(kind) + 1 + u64::from(inp.u8() % 3),
                    fault,
                );
            }
        }
    }
}

fn options(vfs: &SimVfs, sync: SyncPolicy, max_tx: u64) -> Options {
    Options::default()
        .vfs(Arc::new(vfs.clone()))
        .sync(sync)
        .preallocate(false)
        .segment_size(SEGMENT_SIZE)
        .max_transaction_size(max_tx)
}

/// The whole check of the `recorder_ops` fuzz target.
pub fn fuzz_recorder_ops(data: &[u8]) {
    let mut inp = Input::new(data);
    let cfg = inp.u8();
    let sync = match cfg % 4 {
        0 | 1 => SyncPolicy::Always,
        2 => SyncPolicy::Never,
        // The background thread fsyncs at times the input does not choose; the checks hold
        // whatever it does.
        _ => SyncPolicy::Interval { ms: 1 },
    };
    let max_buffered = match (cfg >> 2) % 4 {
        0 => 64 << 10,
        1 => 1 << 20,
        2 => 300,
        _ => MAX_FRAME_PAYLOAD,
    };
    let max_tx: u64 = match (cfg >> 4) % 4 {
        0 | 1 => 256 << 20,
        2 => 6 << 20,
        _ => 1 << 20,
    };
    let final_sync = cfg & 0x40 != 0;
    let image_cfg = inp.u8();
    let image_n = inp.u8();

    let vfs = SimVfs::new();
    let Ok((wal, _)) = Wal::open(DIR, options(&vfs, sync, max_tx)) else {
        panic!("opening a new log on a fresh SimVfs fails");
    };
    let wal = Arc::new(wal);
    let rec = Rec::new(wal.clone())
        .with_options(RecorderOptions::default().max_buffered_bytes(max_buffered));
    let mut m = Model {
        sync,
        attempts: Vec::new(),
        query: Vec::new(),
        tx: 0,
        durable: Lsn::ZERO,
        written: Lsn::ZERO,
        fence: Lsn::ZERO,
        text_bytes: 0,
        big_events: cfg & 0x80 != 0,
    };
    for _ in 0..64 {
        if inp.is_empty() {
            break;
        }
        op(&rec, &vfs, &mut m, &mut inp);
        let _ = rec.poisoned_reason();
    }
    if final_sync && wal.sync().is_ok() {
        m.synced();
    }
    drop(rec);
    drop(wal);

    let dirs = if image_cfg & 1 == 0 {
        DirLoss::UnsyncedLost
    } else {
        DirLoss::AllKept
    };
    let images = [
        (DataLoss::DurableOnly, DirLoss::UnsyncedLost, m.durable),
        (DataLoss::AllWritten, DirLoss::AllKept, m.written),
        (DataLoss::Prefix(usize::from(image_n)), dirs, m.durable),
        (
            DataLoss::TornLastWrite {
                sectors: usize::from(image_cfg >> 1) % 9,
            },
            dirs,
            m.durable,
        ),
    ];
    for (data, dirs, required) in images {
        let what = format!("{data:?}/{dirs:?}");
        let crashed = vfs.crash(&CrashImage { data, dirs });
        check_recovered(&crashed, &m, required, max_tx, &what);
    }
}

/// Recovers the log on `vfs` and checks it against the model.
fn check_recovered(vfs: &SimVfs, m: &Model, required: Lsn, max_tx: u64, what: &str) {
    let (wal, _) = Wal::open(DIR, options(vfs, SyncPolicy::Always, max_tx))
        .unwrap_or_else(|e| panic!("{what}: the crashed log does not open: {e}"));
    let reader = wal
        .read_from(wal.oldest_retained_lsn())
        .unwrap_or_else(|e| panic!("{what}: reading the recovered log: {e}"));
    let mut got: Vec<(Lsn, Vec<Ev>)> = Vec::new();
    for t in reader {
        let t = t.unwrap_or_else(|e| panic!("{what}: reading the recovered log: {e}"));
        assert!(
            !t.multi,
            "{what}: the recorder writes single-payload transactions"
        );
        let events: Vec<Ev> = decode_all(&Bincode, &t.body)
            .unwrap_or_else(|e| panic!("{what}: a recovered transaction does not decode: {e}"));
        got.push((t.lsn, events));
        assert!(
            got.len() <= m.attempts.len(),
            "{what}: more transactions than attempted commits"
        );
    }
    drop(wal);

    let start = match got.first() {
        Some((_, first)) => m
            .attempts
            .iter()
            .position(|a| a.events == *first)
            .unwrap_or_else(|| panic!("{what}: a recovered transaction was never committed")),
        None => m.attempts.len(),
    };
    for (k, (lsn, events)) in got.iter().enumerate() {
        let Some(a) = m.attempts.get(start + k) else {
            panic!("{what}: more transactions than attempted commits after the first");
        };
        assert!(
            a.events == *events,
            "{what}: transaction {k} at LSN {lsn} is not the next attempted commit"
        );
        if let Some(l) = a.lsn {
            assert_eq!(
                l, *lsn,
                "{what}: recovered under another LSN than acknowledged"
            );
        }
    }
    for (i, a) in m.attempts.iter().enumerate() {
        let Some(l) = a.lsn else { continue };
        if l > m.fence && l <= required {
            assert!(
                (start..start + got.len()).contains(&i),
                "{what}: acknowledged commit at LSN {l} is lost (required up to {required}, \
                 fence {}, recovered {} transactions from attempt {start}, attempts {})",
                m.fence,
                got.len(),
                m.attempts.len()
            );
        }
    }
}
