//! Injected I/O faults on `SimVfs`.
//!
//! For every mutating operation kind (`Write`, `SyncData`, `SyncAll`, `SyncDir`, `Create`,
//! `Rename`, `Remove`, `Allocate`, `SetLen`), every fault (`EIO`, `ENOSPC`) and every `N` up to
//! the number of such operations a clean run of the workload performs, the `N`-th operation of
//! that kind is made to fail on a fresh copy of a starting image, and the workload (open with
//! recovery, appends with rotations, a batch, a checkpoint marker, a stream, truncation, reopen
//! and more appends) runs until its first error. Then:
//!
//! * the error reaches the caller typed: `WalError::Io` carrying the injected OS error, with
//!   the operation and the path in its message; a fault that fires never goes unreported;
//! * after a failure on an open log, the log is poisoned: `poisoned_reason()` names the
//!   failure and every later append fails with `WalError::Poisoned`;
//! * nothing was acknowledged that a successful fsync did not cover: in crash images taken at
//!   the failure (durable data only, unsynced directory entries lost, and others) every
//!   acknowledged transaction is there, and what is read back is a contiguous run of what was
//!   appended;
//! * reopening on the same file system after dropping the failed log (the process restarts,
//!   the page cache survives) recovers every acknowledged transaction, and whatever it then
//!   reads back as durable really is durable: it survives a power loss taken right after the
//!   reopen, and so do appends acknowledged after it.
//!
//! Starting images: an empty directory (creation), a log whose newest segment ends in a torn
//! tail (recovery moves it aside), and a log whose newest segment is sealed without a
//! successor (recovery creates it). Runs with `preallocate(false)` are deterministic; with
//! `preallocate(true)` the background preallocator makes the operation order depend on
//! thread timing, so those runs check the invariants wherever the fault lands (a failure in
//! the preallocator itself is absorbed by design: rotation creates the file instead).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

use wal_log::sim::{CrashImage, DataLoss, DirLoss, Fault, OpKind, SimVfs};
use wal_log::vfs::Vfs;
use wal_log::{Lsn, Options, RecoveryMode, SyncPolicy, Wal, WalError};

const DIR: &str = "/db";
const KINDS: [OpKind; 9] = [
    OpKind::Write,
    OpKind::SyncData,
    OpKind::SyncAll,
    OpKind::SyncDir,
    OpKind::Create,
    OpKind::Rename,
    OpKind::Remove,
    OpKind::Allocate,
    OpKind::SetLen,
];
const FAULTS: [Fault; 2] = [Fault::Eio, Fault::Enospc];

fn errno(f: Fault) -> i32 {
    match f {
        Fault::Eio => 5,
        Fault::Enospc => 28,
    }
}

fn img(data: DataLoss, dirs: DirLoss) -> CrashImage {
    CrashImage { data, dirs }
}

fn opts(v: &SimVfs, preallocate: bool) -> Options {
    Options::default()
        .vfs(Arc::new(v.clone()))
        .segment_size(4 << 10)
        .preallocate(preallocate)
        .sync(SyncPolicy::Always)
        .recovery(RecoveryMode::TolerateTornTail)
}

/// A transaction body: its id (8 bytes LE) and filler.
fn body(id: u64, len: usize) -> Vec<u8> {
    let mut v = id.to_le_bytes().to_vec();
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while v.len() < len.max(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(x as u8);
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Tx {
    /// Concatenated records, with the multi flag.
    records: Vec<Vec<u8>>,
    multi: bool,
    acked: Option<Lsn>,
}

/// Transactions in attempt order; only the last can be unacknowledged.
#[derive(Clone, Debug, Default)]
struct Model {
    txs: Vec<Tx>,
}

type Rec = Vec<(Lsn, bool, Vec<Vec<u8>>)>;

fn read_back(wal: &Wal) -> Result<(Lsn, Rec), String> {
    let oldest = wal.oldest_retained_lsn();
    let mut out = Vec::new();
    for t in wal
        .read_from(oldest)
        .map_err(|e| format!("read_from: {e}"))?
    {
        let t = t.map_err(|e| format!("reading: {e}"))?;
        let recs: Vec<Vec<u8>> = t
            .records()
            .map(|r| r.map(|b| b.to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        out.push((t.lsn, t.multi, recs));
    }
    Ok((oldest, out))
}

impl Model {
    fn ids(&self) -> BTreeMap<Vec<u8>, usize> {
        self.txs
            .iter()
            .enumerate()
            .map(|(i, t)| (t.records[0][..8].to_vec(), i))
            .collect()
    }

    /// What was read back is a contiguous run of the model that holds every acknowledged
    /// transaction at or above `oldest`, with the acknowledged LSNs.
    fn check(&self, oldest: Lsn, rec: &Rec) -> Result<(), String> {
        let ids = self.ids();
        let mut idx = Vec::new();
        let mut prev = Lsn::ZERO;
        for (lsn, multi, recs) in rec {
            if *lsn <= prev {
                return Err(format!("LSN {lsn} after {prev}"));
            }
            prev = *lsn;
            let key = recs
                .first()
                .and_then(|r| r.get(..8))
                .ok_or_else(|| format!("LSN {lsn}: no id"))?;
            let &i = ids
                .get(key)
                .ok_or_else(|| format!("LSN {lsn}: unknown transaction (invented)"))?;
            let t = &self.txs[i];
            if t.multi != *multi || t.records != *recs {
                return Err(format!("LSN {lsn}: body differs from transaction #{i}"));
            }
            if t.acked.is_some_and(|a| a != *lsn) {
                return Err(format!(
                    "transaction #{i} acknowledged at {:?} read back at {lsn}",
                    t.acked
                ));
            }
            idx.push(i);
        }
        if idx.windows(2).any(|w| w[1] != w[0] + 1) {
            return Err(format!("not a contiguous run: {idx:?}"));
        }
        let (start, end) = (
            idx.first().copied().unwrap_or(self.txs.len()),
            idx.last().map_or(self.txs.len(), |l| l + 1),
        );
        for (i, t) in self.txs.iter().enumerate() {
            if let Some(l) = t.acked
                && (i < start || i >= end)
                && l >= oldest
            {
                return Err(format!(
                    "acknowledged transaction #{i} at LSN {l} is missing (read back #{start}..#{end}, oldest {oldest})"
                ));
            }
        }
        Ok(())
    }

    /// The model of a log that recovered `rec`: all of it acknowledged.
    fn from_rec(rec: &Rec) -> Model {
        Model {
            txs: rec
                .iter()
                .map(|(l, m, r)| Tx {
                    records: r.clone(),
                    multi: *m,
                    acked: Some(*l),
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Starting images
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Base {
    /// No log yet.
    Fresh,
    /// The newest segment ends in a torn tail.
    TornTail,
    /// The newest segment is sealed and has no successor.
    SealedLast,
    /// A fragmented transaction was left unfinished (recovery appends its abort frame). The
    /// workload on it is short: open and two appends.
    OpenStream,
}

/// The starting image, durable, with zeroed counters, and the transactions it holds.
fn base_image(base: Base) -> (SimVfs, Model) {
    let v = SimVfs::new();
    v.create_dir_all(Path::new(DIR)).unwrap();
    if base == Base::Fresh {
        return (v, Model::default());
    }
    if base == Base::OpenStream {
        let (wal, _) = Wal::open(DIR, opts(&v, false).segment_size(64 << 20)).unwrap();
        wal.append(&body(1_000, 300)).unwrap();
        let mut s = wal.stream().unwrap();
        s.write(&body(1_001, wal_format::frame::MAX_FRAME_PAYLOAD + 10))
            .unwrap();
        // The process dies with the stream open: no abort frame.
        std::mem::forget(s);
        drop(wal);
        let v = v.crash(&img(DataLoss::AllWritten, DirLoss::AllKept));
        let probe = v.crash(&img(DataLoss::AllWritten, DirLoss::AllKept));
        let (wal, report) = Wal::open(DIR, opts(&probe, false)).unwrap();
        assert_eq!(report.aborted_streams.len(), 1);
        let (_, rec) = read_back(&wal).unwrap();
        return (v, Model::from_rec(&rec));
    }
    let (wal, _) = Wal::open(DIR, opts(&v, false)).unwrap();
    for i in 0..14u64 {
        wal.append(&body(1_000 + i, 400 + 37 * i as usize)).unwrap();
    }
    let segs = wal.segments();
    drop(wal);
    let last = segs.last().unwrap();
    let path = Path::new(DIR).join(wal_log::layout::segment_file_name(last.seq));
    match base {
        Base::TornTail => {
            // Half a frame of garbage after the last frame.
            v.poke(&path, last.bytes, &[0x5a; 37]);
        }
        Base::SealedLast => {
            // As if the crash came after the seal and before the successor got its name.
            assert!(segs.len() >= 3);
            v.remove(&path).unwrap();
            v.sync_dir(Path::new(DIR)).unwrap();
        }
        Base::Fresh | Base::OpenStream => unreachable!(),
    }
    let v = v.crash(&img(DataLoss::AllWritten, DirLoss::AllKept));
    // What it recovers (on a copy).
    let probe = v.crash(&img(DataLoss::AllWritten, DirLoss::AllKept));
    let (wal, _) = Wal::open(DIR, opts(&probe, false)).unwrap();
    let (_, rec) = read_back(&wal).unwrap();
    (v, Model::from_rec(&rec))
}

// ---------------------------------------------------------------------------------------------
// Workload
// ---------------------------------------------------------------------------------------------

struct Run {
    model: Model,
    /// The log, when it is open.
    wal: Option<Wal>,
    /// The first error and the step that hit it.
    error: Option<(&'static str, WalError)>,
}

fn workload(v: &SimVfs, preallocate: bool, short: bool, mut model: Model) -> Run {
    let mut next = 1u64;
    let mut wal = match Wal::open(DIR, opts(v, preallocate)) {
        Ok((w, _)) => w,
        Err(e) => {
            return Run {
                model,
                wal: None,
                error: Some(("open", e)),
            };
        }
    };
    macro_rules! step {
        ($name:expr, $e:expr) => {
            if let Err(e) = $e {
                return Run {
                    model,
                    wal: Some(wal),
                    error: Some(($name, e)),
                };
            }
        };
    }
    let append =
        |model: &mut Model, wal: &Wal, next: &mut u64, len: usize| -> Result<(), WalError> {
            let b = body(*next, len);
            *next += 1;
            model.txs.push(Tx {
                records: vec![b.clone()],
                multi: false,
                acked: None,
            });
            let lsn = wal.append(&b)?;
            model.txs.last_mut().unwrap().acked = Some(lsn);
            Ok(())
        };
    for i in 0..if short { 2 } else { 12 } {
        step!("append", append(&mut model, &wal, &mut next, 300 + 53 * i));
    }
    if short {
        return Run {
            model,
            wal: Some(wal),
            error: None,
        };
    }
    {
        let recs = vec![body(next, 200), vec![1, 2, 3], Vec::new()];
        next += 1;
        model.txs.push(Tx {
            records: recs.clone(),
            multi: true,
            acked: None,
        });
        step!(
            "append_batch",
            wal.append_batch(&recs)
                .map(|l| model.txs.last_mut().unwrap().acked = Some(l))
        );
    }
    {
        // Large enough to be written from the caller's buffers (the direct path): small
        // records staged together, more of them than one staged write holds (so the payload
        // goes out in two writes before its header), and records handed over as they are.
        let mut recs = vec![body(next, 100)];
        recs.extend((0..300u32).map(|i| body(u64::from(i) << 32 | next, 1000)));
        recs.extend([body(next + 1, 3000), body(next + 2, 40 << 10)]);
        next += 3;
        model.txs.push(Tx {
            records: recs.clone(),
            multi: true,
            acked: None,
        });
        step!(
            "append_batch (direct)",
            wal.append_batch(&recs)
                .map(|l| model.txs.last_mut().unwrap().acked = Some(l))
        );
    }
    step!(
        "append (direct)",
        append(&mut model, &wal, &mut next, 270 << 10)
    );
    let last = model
        .txs
        .iter()
        .rev()
        .find_map(|t| t.acked)
        .unwrap_or(Lsn::ZERO);
    step!("checkpoint_marker", wal.checkpoint_marker(last));
    {
        let b = body(next, 900);
        next += 1;
        model.txs.push(Tx {
            records: vec![b.clone()],
            multi: false,
            acked: None,
        });
        let r = wal.stream().and_then(|mut s| {
            s.write(&b[..400])?;
            s.write(&b[400..])?;
            s.commit()
        });
        step!(
            "stream",
            r.map(|l| model.txs.last_mut().unwrap().acked = Some(l))
        );
    }
    let acked: Vec<Lsn> = model.txs.iter().filter_map(|t| t.acked).collect();
    step!(
        "truncate_prefix",
        wal.truncate_prefix(acked[acked.len() / 2])
    );
    step!("sync", wal.sync());
    // The clean close writes and syncs the final watermark: faults may hit it too.
    if let Err(e) = wal.close() {
        return Run {
            model,
            wal: None,
            error: Some(("close", e)),
        };
    }
    wal = match Wal::open(DIR, opts(v, preallocate)) {
        Ok((w, _)) => w,
        Err(e) => {
            return Run {
                model,
                wal: None,
                error: Some(("reopen", e)),
            };
        }
    };
    for i in 0..8 {
        step!(
            "append after reopen",
            append(&mut model, &wal, &mut next, 500 + 71 * i)
        );
    }
    Run {
        model,
        wal: Some(wal),
        error: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Case {
    base: Base,
    preallocate: bool,
    kind: OpKind,
    fault: Fault,
    nth: u64,
}

#[derive(Default, Debug)]
struct Tally {
    cases: u64,
    errors: u64,
    absorbed: u64,
    not_reached: u64,
    poisoned: u64,
    open_errors: u64,
    images: u64,
    reopens: u64,
}

fn open_and_check(v: &SimVfs, preallocate: bool, model: &Model) -> Result<(Wal, Rec), String> {
    let (wal, _) = Wal::open(DIR, opts(v, preallocate)).map_err(|e| format!("open: {e}"))?;
    let (oldest, rec) = read_back(&wal)?;
    model.check(oldest, &rec)?;
    Ok((wal, rec))
}

fn run_case(c: Case, base_v: &SimVfs, base_model: &Model, t: &mut Tally) -> Result<(), String> {
    t.cases += 1;
    let v = base_v.crash(&img(DataLoss::AllWritten, DirLoss::AllKept));
    v.fail_nth(c.kind, c.nth, c.fault);
    let run = workload(
        &v,
        c.preallocate,
        c.base == Base::OpenStream,
        base_model.clone(),
    );
    let fired = v.op_count(c.kind) >= c.nth;
    let Run { model, wal, error } = run;
    match &error {
        None if !fired => {}
        None if c.preallocate => t.absorbed += 1,
        None => return Err("the fault fired but no call reported an error".into()),
        Some((step, e)) => {
            t.errors += 1;
            match e {
                WalError::Io { op, path, source } => {
                    if source.raw_os_error() != Some(errno(c.fault)) {
                        return Err(format!(
                            "{step}: error carries {source:?}, not the injected fault"
                        ));
                    }
                    let msg = e.to_string();
                    if !msg.contains(op) || !msg.contains(&*path.to_string_lossy()) {
                        return Err(format!(
                            "{step}: message {msg:?} does not name the operation and path"
                        ));
                    }
                }
                other => return Err(format!("{step}: not an I/O error: {other:?}")),
            }
            if let Some(w) = &wal {
                t.poisoned += 1;
                let Some(reason) = w.poisoned_reason() else {
                    return Err(format!(
                        "{step} failed with {e} but the log is not poisoned"
                    ));
                };
                if !reason.contains(&e.to_string()) {
                    return Err(format!(
                        "poison reason {reason:?} does not name the failure {e}"
                    ));
                }
                match w.append(b"after the failure") {
                    Err(WalError::Poisoned { reason: r, .. }) if r == reason => {}
                    other => return Err(format!("append after the failure: {other:?}")),
                }
                if !matches!(w.sync(), Err(WalError::Poisoned { .. })) {
                    return Err("sync after the failure is not Poisoned".into());
                }
            } else {
                t.open_errors += 1;
            }
        }
    }
    // Power loss at the failure: every acknowledged transaction is durable.
    for (label, image) in [
        (
            "DurableOnly+UnsyncedLost",
            img(DataLoss::DurableOnly, DirLoss::UnsyncedLost),
        ),
        (
            "DurableOnly+AllKept",
            img(DataLoss::DurableOnly, DirLoss::AllKept),
        ),
        (
            "AllWritten+AllKept",
            img(DataLoss::AllWritten, DirLoss::AllKept),
        ),
        (
            "RandomSubset+UnsyncedLost",
            img(
                DataLoss::RandomSubset { seed: c.nth },
                DirLoss::UnsyncedLost,
            ),
        ),
    ] {
        t.images += 1;
        open_and_check(&v.crash(&image), false, &model)
            .map_err(|e| format!("power loss at the failure, image {label}: {e}"))?;
    }
    // The process restarts on the same file system (the page cache survives).
    drop(wal);
    if v.op_count(c.kind) < c.nth {
        // Only with the preallocator, whose operations vary: the fault is still armed and
        // would fire in the checks below. (A fault cannot be disarmed.)
        t.not_reached += 1;
        return Ok(());
    }
    t.reopens += 1;
    let (wal, rec) = open_and_check(&v, c.preallocate, &model)
        .map_err(|e| format!("reopen after the failure: {e}"))?;
    // What the reopened log reads back as durable must survive a power loss now.
    let now = v.crash(&img(DataLoss::DurableOnly, DirLoss::UnsyncedLost));
    let (_, rec2) = open_and_check(&now, false, &Model::from_rec(&rec)).map_err(|e| {
        format!(
            "power loss right after the reopen (what the reopened log read back as durable): {e}"
        )
    })?;
    if rec2.len() != rec.len() {
        return Err(format!(
            "power loss right after the reopen: {} of {} transactions read back survive",
            rec2.len(),
            rec.len()
        ));
    }
    // And so does what it acknowledges next.
    let mut after = Model::from_rec(&rec);
    for i in 0..6u64 {
        let b = body(1 << 40 | i, 700);
        let lsn = wal
            .append(&b)
            .map_err(|e| format!("append after the reopen: {e}"))?;
        after.txs.push(Tx {
            records: vec![b],
            multi: false,
            acked: Some(lsn),
        });
    }
    let now = v.crash(&img(DataLoss::DurableOnly, DirLoss::UnsyncedLost));
    drop(wal);
    open_and_check(&now, false, &after)
        .map_err(|e| format!("power loss after appending to the reopened log: {e}"))?;
    Ok(())
}

fn sweep(preallocate: bool) -> (Tally, Vec<String>, BTreeMap<String, u64>) {
    let mut t = Tally::default();
    let mut failures = Vec::new();
    let mut per_kind = BTreeMap::new();
    let mut reused = 0;
    for base in [
        Base::Fresh,
        Base::TornTail,
        Base::SealedLast,
        Base::OpenStream,
    ] {
        if preallocate && base == Base::OpenStream {
            // Megabytes to scan per case in a debug build; the deterministic sweep covers it.
            continue;
        }
        let (base_v, base_model) = base_image(base);
        // A clean run counts the operations of each kind.
        let clean = base_v.crash(&img(DataLoss::AllWritten, DirLoss::AllKept));
        let run = workload(
            &clean,
            preallocate,
            base == Base::OpenStream,
            base_model.clone(),
        );
        if let Some((step, e)) = run.error {
            failures.push(format!("{base:?}: clean run failed at {step}: {e}"));
            continue;
        }
        reused += run.wal.as_ref().map_or(0, |w| w.stats().recycled);
        drop(run.wal);
        for kind in KINDS {
            // With the preallocator the count varies a little between runs: go a bit past it.
            let n = clean.op_count(kind) + if preallocate { 2 } else { 0 };
            *per_kind.entry(format!("{kind:?}")).or_insert(0) += 2 * n;
            for fault in FAULTS {
                for nth in 1..=n {
                    let c = Case {
                        base,
                        preallocate,
                        kind,
                        fault,
                        nth,
                    };
                    let r = catch_unwind(AssertUnwindSafe(|| {
                        run_case(c, &base_v, &base_model, &mut t)
                    }));
                    match r {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => failures.push(format!(
                            "{:?} {:?} {:?} #{} (preallocate {}): {e}",
                            c.base, c.kind, c.fault, c.nth, c.preallocate
                        )),
                        Err(p) => {
                            let msg = p
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
                            failures.push(format!(
                                "{:?} {:?} {:?} #{} (preallocate {}): PANIC {msg:?}",
                                c.base, c.kind, c.fault, c.nth, c.preallocate
                            ));
                        }
                    }
                }
            }
        }
    }
    // The sweep must reach segment recycling (truncation keeps files, and appends after the
    // reopen rotate onto one), so faults land in its renames, header writes and fsyncs too.
    if !preallocate && reused == 0 {
        failures.push("no clean run reused a recycled file".to_owned());
    }
    (t, failures, per_kind)
}

fn report(name: &str, preallocate: bool) {
    let started = std::time::Instant::now();
    let (t, failures, per_kind) = sweep(preallocate);
    println!(
        "[{name}] {t:?}; cases per kind {per_kind:?}; {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        for f in failures.iter().take(40) {
            eprintln!("FAILURE {f}");
        }
        panic!(
            "{} of {} fault cases failed; first: {}",
            failures.len(),
            t.cases,
            failures[0]
        );
    }
}

/// Every kind, both faults, every N, without the background preallocator: deterministic.
#[test]
fn every_fault_at_every_operation() {
    report("faults", false);
}

/// The same with the background preallocator: invariants wherever the fault lands.
#[test]
fn every_fault_with_preallocation() {
    report("faults-prealloc", true);
}

/// Regression (found by the fault sweep): recovery adopted whatever the segment files read
/// back as durable, but after a process dies (or a log fails) between a write and its fsync,
/// that tail is only in the page cache. The reopened log reported it durable and readers
/// yielded it, yet a power loss right after lost it; and when the unsynced frame was a seal,
/// recovery created the successor, so after the power loss a newer segment followed one that
/// ends without a seal and the log could not be opened at all.
#[test]
fn regression_reopen_after_a_failed_fsync_made_an_unsynced_tail_look_durable() {
    // 3 frames of 1020 bytes fit a 4 KiB segment; the 4th append rotates, so its failing
    // fsync is the seal's.
    for appends_before in [1, 3] {
        let v = SimVfs::new();
        // The open creates the directory, durably.
        let (wal, _) = Wal::open(DIR, opts(&v, false)).unwrap();
        for i in 0..appends_before {
            wal.append(&body(i, 1000)).unwrap();
        }
        v.fail_nth(
            OpKind::SyncData,
            v.op_count(OpKind::SyncData) + 1,
            Fault::Eio,
        );
        let e = wal.append(&body(99, 1000)).unwrap_err();
        assert!(
            matches!(&e, WalError::Io { source, .. } if source.raw_os_error() == Some(5)),
            "{e}"
        );
        drop(wal);
        // The process restarts; the page cache still holds the unsynced frame.
        let (wal, _) = Wal::open(DIR, opts(&v, false)).unwrap();
        let read: Vec<Vec<u8>> = wal
            .read_from(Lsn::ZERO)
            .unwrap()
            .map(|t| t.unwrap().body.to_vec())
            .collect();
        // Power loss now: everything the reopened log read back as durable must be there.
        let after = v.crash(&img(DataLoss::DurableOnly, DirLoss::UnsyncedLost));
        let (wal2, _) = Wal::open(DIR, opts(&after, false)).unwrap_or_else(|e| {
            panic!("{appends_before} appends before: power loss after the reopen: {e}")
        });
        let again: Vec<Vec<u8>> = wal2
            .read_from(Lsn::ZERO)
            .unwrap()
            .map(|t| t.unwrap().body.to_vec())
            .collect();
        assert_eq!(again.len(), read.len(), "{appends_before} appends before");
        assert_eq!(again, read);
    }
}
