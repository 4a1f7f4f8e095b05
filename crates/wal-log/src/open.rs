//! Opening a log: locking, recovery scan, repair of the tail, and setting up the writer.

use crate::error::{Result, WalError, io_err};
use crate::layout::{LOCK_FILE, PREALLOC_FILE, segment_file_name};
use crate::open_report::OpenReport;
use crate::options::{Options, RecoveryMode};
use crate::plan::{MovedAside, RecoveryPlan, plan_recovery};
use crate::progress::{Tally, segment_bytes};
use crate::published::{self, Publisher};
use crate::recovery_scan::{
    DirListing, OpenScan, SegmentScan, Visit, list_dir, scan_for_open, scan_segment, seq_gap,
    visit_stopped,
};
use crate::segment::SegmentInfo;
use crate::streams::Streams;
use crate::vfs::{OpenMode, Vfs, VfsLock, read_full};
use crate::visit::{ScanVisitor, VisitError, with_visitor};
use crate::wal::{Inner, Resume, Start, Wal, lock};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wal_format::header::SEGMENT_HEADER_LEN;
use wal_format::scan::ScanEnd;
use wal_format::{FrameKind, LogId, Lsn, SegmentHeader, SegmentSeq};

fn fresh_log_id() -> LogId {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: fall back to time and pid, still unique enough to seed checksums.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        b[..8].copy_from_slice(&(t.as_nanos() as u64).to_le_bytes());
        b[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    LogId::from_u128(u128::from_le_bytes(b))
}

impl Wal {
    /// Opens (or creates) the log in `dir`, recovering it first. See [`RecoveryMode`] for what
    /// happens to damage, and [`OpenReport`] for what is reported.
    ///
    /// # Errors
    /// [`WalError::AlreadyOpen`] when another handle or process holds the directory;
    /// [`WalError::NotAWal`], [`WalError::ForeignSegment`], [`WalError::Gap`],
    /// [`WalError::UnsupportedVersion`], [`WalError::Corrupt`], [`WalError::TornTail`]
    /// (strict) with nothing changed on disk; I/O errors.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<(Wal, OpenReport)> {
        open_impl(dir.as_ref(), opts, None)
    }

    /// [`Wal::open`], showing `visitor` every frame the recovery scan verifies, so that a
    /// caller rebuilding state from the log (see `wal-replay`) reads the log once rather than
    /// scanning it again after the open. A closure `FnMut(DirFrame) -> Result<(), E>` is a
    /// visitor; implement [`ScanVisitor`] to see each segment's header as well.
    ///
    /// The visitor sees the frames of the log's valid prefix in LSN order, each once, as the
    /// scan verifies them, under the directory lock and before anything is repaired: a
    /// segment's header is shown, and its frames read, only once the header has decoded and
    /// continues the log (log id, sequence number, first LSN), and frames a scan yields
    /// before a torn tail or corruption are in the prefix that recovery keeps however that
    /// segment ends. It does not see the frames `open` itself appends afterwards
    /// (the abort frames for fragmented transactions a crash left unfinished, listed in
    /// [`OpenReport::aborted_streams`]).
    ///
    /// If the open fails after frames were visited — corruption found later in the log, a
    /// torn tail under [`RecoveryMode::Strict`], an I/O error — the visited frames must not be
    /// used: discard whatever was built from them. An error returned by the visitor stops the
    /// scan at once; the open is abandoned before any repair, the lock is released, and the
    /// error is returned as [`VisitError::Visitor`].
    ///
    /// # Errors
    /// As [`Wal::open`], as [`VisitError::Wal`]; or the visitor's error.
    pub fn open_visit<V: ScanVisitor + ?Sized>(
        dir: impl AsRef<Path>,
        opts: Options,
        visitor: &mut V,
    ) -> std::result::Result<(Wal, OpenReport), VisitError<V::Error>> {
        with_visitor(visitor, |v| open_impl(dir.as_ref(), opts, Some(v)))
    }
}

fn open_impl(
    dir: &Path,
    mut opts: Options,
    mut visit: Option<Visit<'_, '_>>,
) -> Result<(Wal, OpenReport)> {
    let dir = dir.to_path_buf();
    let started = Instant::now();
    let _span = tracing::info_span!("wal.open", dir = %dir.display()).entered();
    let vfs = opts.vfs.clone();
    match vfs.list(&dir) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && opts.create_if_missing => {
            crate::vfs::create_dir_durable(&*vfs, &dir).map_err(io_err("create dir", &dir))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(WalError::NotFound { dir });
        }
        Err(e) => return Err(io_err("list", &dir)(e)),
    }
    let lock_path = dir.join(LOCK_FILE);
    let lock_guard = lock_dir(&*vfs, &dir, &lock_path)?;
    let mut listing = list_dir(&*vfs, &dir)?;
    listing.refuse_foreign(&dir)?;
    let mut tally = tally_for(&*vfs, &dir, &opts, &listing);
    // Skip-damaged rewrites what needs it first; the rest is an ordinary tolerant open.
    let mut skipped = (Vec::new(), Vec::new());
    if opts.recovery == RecoveryMode::SkipDamaged && !listing.segs.is_empty() {
        let plan = crate::skip::plan_skip_tallied(&*vfs, &dir, &mut tally)?;
        skipped = (crate::skip::execute(&*vfs, &dir, &plan)?, plan.lost);
        opts.recovery = RecoveryMode::TolerateTornTail;
        listing = list_dir(&*vfs, &dir)?;
    }
    let (wal, mut report) = if listing.segs.is_empty() {
        remove_prealloc(&*vfs, &dir, listing.prealloc)?;
        create(dir, opts, lock_guard)?
    } else {
        recover(
            dir,
            opts,
            lock_guard,
            &listing,
            (visit.as_deref_mut(), &mut tally),
        )?
    };
    tally.finish();
    let (skip_moved, lost) = skipped;
    report.moved_aside.splice(0..0, skip_moved);
    report.lost_lsns = lost;
    if let Some(v) = visit
        && !v.recovered(&report)
    {
        return Err(visit_stopped(&wal.inner.dir));
    }
    // Everything recovery kept is durable now. Published (or an earlier run's record erased)
    // before anything is appended, so no record covers LSNs that this run assigns anew.
    if wal.inner.opts.publish_durable {
        let p = Publisher::open(&*vfs, &wal.inner.dir, wal.inner.log_id)?;
        p.publish_at_open(*lock(&wal.inner.durable))?;
        let _ = wal.inner.publisher.set(p);
    } else {
        published::erase_stale(&*vfs, &wal.inner.dir)?;
    }
    start_schema_segment(&wal, &mut report)?;
    (report.recycled_kept, report.recycled_removed) = adopt_recycled(&wal, &listing.recycled)?;
    // Close fragmented transactions that a crash left open, so readers need not hold them.
    for s in report.aborted_streams.clone() {
        let lsn = {
            let mut w = lock(&wal.inner.writer);
            let lsn = wal
                .inner
                .push_frame(&mut w, FrameKind::FragAbort, 0, &s.0.to_le_bytes())?;
            lock(&wal.inner.streams).end(s, lsn);
            lsn
        };
        wal.inner.flush_to(lsn, true)?;
    }
    report.elapsed = started.elapsed();
    tracing::info!(
        segments = report.segments,
        last_lsn = report.last_lsn.0,
        moved_aside = report.bytes_moved_aside(),
        recycled_kept = report.recycled_kept,
        elapsed_ms = report.elapsed.as_millis() as u64,
        "opened WAL"
    );
    let mut wal = wal;
    wal.finish_on_drop = true;
    wal.last_at_open = wal.last_lsn();
    Ok((wal, report))
}

/// When the newest segment carries another payload schema than the log stamps (it was opened
/// to upgrade), seals it and starts a new segment, before anything is appended: every frame
/// is written under its segment's schema. After the visitor's `recovered` (the seal takes the
/// LSN after the recovered end, as the abort frames do), before the abort frames.
fn start_schema_segment(wal: &Wal, report: &mut OpenReport) -> Result<()> {
    let schema = wal.inner.opts.payload_schema.unwrap_or(0);
    let Some(&(seq, newest)) = report.payload_schemas.last() else {
        return Ok(());
    };
    if newest == schema {
        return Ok(());
    }
    tracing::info!(
        segment = seq.0,
        from = newest,
        to = schema,
        "starting a new segment for the new payload schema"
    );
    let next = wal.inner.rotate_now()?;
    report.payload_schemas.push((next, schema));
    report.segments += 1;
    Ok(())
}

/// Takes the directory lock. A lock that is busy is retried for up to 100 ms before
/// reporting `AlreadyOpen`: between `fork` and `exec` a child process spawned by any thread
/// briefly shares the parent's open files, flock included, so a log closed and reopened while
/// the process spawns children can find its own lock held for a moment.
fn lock_dir(vfs: &dyn Vfs, dir: &Path, lock_path: &Path) -> Result<Box<dyn VfsLock>> {
    let mut waited = Duration::ZERO;
    loop {
        match vfs.lock(lock_path) {
            Ok(g) => return Ok(g),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if waited >= Duration::from_millis(100) {
                    return Err(WalError::AlreadyOpen {
                        dir: dir.to_path_buf(),
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
                waited += Duration::from_millis(10);
            }
            Err(e) => return Err(io_err("lock", lock_path)(e)),
        }
    }
}

/// Fails with [`WalError::AlreadyOpen`] when a [`Wal`] (in this process or another) holds
/// the lock of the log in `dir`, and changes nothing ([`Vfs::lock_held`]: a directory without
/// a lock file is not open; an existing one is opened read-only, locked for an instant and
/// released, so this works on a read-only copy too). For tools that must
/// refuse a live log before they read it (`walctl repair --dry-run` predicting the real
/// repair). What it finds may change as soon as it returns; only [`Wal::open`] holds the lock.
///
/// # Errors
/// [`WalError::AlreadyOpen`]; an I/O error listing `dir` or taking the lock.
pub fn check_not_open(vfs: &dyn Vfs, dir: &Path) -> Result<()> {
    let names = match vfs.list(dir) {
        Ok(names) => names,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    if !names.iter().any(|n| n == LOCK_FILE) {
        return Ok(());
    }
    let lock_path = dir.join(LOCK_FILE);
    match vfs.lock_held(&lock_path) {
        Ok(false) => Ok(()),
        Ok(true) => Err(WalError::AlreadyOpen {
            dir: dir.to_path_buf(),
        }),
        Err(e) => Err(io_err("lock", &lock_path)(e)),
    }
}

fn create(
    dir: PathBuf,
    mut opts: Options,
    lock_guard: Box<dyn VfsLock>,
) -> Result<(Wal, OpenReport)> {
    let log_id = fresh_log_id();
    let schema = *opts.payload_schema.get_or_insert(0);
    let header =
        SegmentHeader::new(log_id, SegmentSeq::FIRST, Lsn::FIRST).with_payload_schema(schema);
    let info = SegmentInfo {
        seq: header.seq,
        base_lsn: header.base_lsn,
        last_lsn: Lsn::ZERO,
        bytes: SEGMENT_HEADER_LEN as u64,
        sealed: false,
        oldest_open_lsn: Lsn::ZERO,
    };
    let resume = Resume {
        header,
        file: None,
        write_pos: SEGMENT_HEADER_LEN as u64,
        last_lsn: Lsn::ZERO,
        segments: vec![info],
        bytes_since_checkpoint: 0,
        streams: Streams::default(),
        retained_from: 0,
    };
    let inner = start(dir, opts, log_id, lock_guard, resume)?;
    let report = OpenReport {
        created: true,
        log_id: Some(log_id),
        segments: 1,
        first_lsn: Lsn::FIRST,
        last_lsn: Lsn::ZERO,
        payload_schemas: vec![(SegmentSeq::FIRST, schema)],
        ..OpenReport::default()
    };
    Ok((inner, report))
}

/// Builds the running log from what the open found, in one constructor ([`Inner::new`]).
fn start(
    dir: PathBuf,
    opts: Options,
    log_id: LogId,
    lock_guard: Box<dyn VfsLock>,
    r: Resume,
) -> Result<Wal> {
    let inner = Inner::new(Start {
        dir,
        opts,
        log_id,
        lock_guard,
        prealloc_ready: None,
        resume: r,
    })?;
    Ok(Wal::from_inner(inner))
}

/// How much of a range [`move_aside`] copies at a time.
const ASIDE_CHUNK: u64 = 1 << 20;

/// Copies the `planned.bytes` bytes at `planned.offset` of segment `planned.from` into the
/// new file `planned.to` next to it, syncs it and the directory, then zeroes the range in the
/// segment and syncs it. Crash-safe to repeat: a second attempt plans from a listing that
/// holds the first one's file, so it writes a file with another name and the same bytes.
fn move_aside(vfs: &dyn Vfs, dir: &Path, planned: &MovedAside) -> Result<MovedAside> {
    let (seg, offset, to) = (&planned.from, planned.offset, &planned.to);
    let file = vfs
        .open(seg, OpenMode::ReadWrite)
        .map_err(io_err("open", seg))?;
    // Copied a bounded piece at a time: the range can be as long as the file (garbage up to
    // the end of a large segment), and recovery must not need memory for all of it. The first
    // piece is read before the aside file is made, so a failing read leaves nothing behind.
    let len = planned.bytes;
    let mut buf = vec![0u8; len.min(ASIDE_CHUNK) as usize];
    let mut got = read_full(&*file, &mut buf, offset).map_err(io_err("read", seg))?;
    let out = vfs
        .open(to, OpenMode::CreateNew)
        .map_err(io_err("create", to))?;
    let mut moved = 0u64;
    loop {
        out.write_all_at(&buf[..got], moved)
            .map_err(io_err("write", to))?;
        moved += got as u64;
        let want = (len - moved).min(buf.len() as u64) as usize;
        // Done, or the file ended before `end`.
        if want == 0 || got < buf.len() {
            break;
        }
        got = read_full(&*file, &mut buf[..want], offset + moved).map_err(io_err("read", seg))?;
    }
    out.sync_all().map_err(io_err("fsync", to))?;
    vfs.sync_dir(dir).map_err(io_err("fsync dir", dir))?;
    buf.fill(0);
    let mut zeroed = 0u64;
    while zeroed < moved {
        let n = (moved - zeroed).min(buf.len() as u64) as usize;
        file.write_all_at(&buf[..n], offset + zeroed)
            .map_err(io_err("write", seg))?;
        zeroed += n as u64;
    }
    file.sync_data().map_err(io_err("fsync", seg))?;
    tracing::warn!(segment = %seg.display(), offset, bytes = moved, to = %to.display(), "moved bytes aside");
    Ok(MovedAside {
        bytes: moved,
        ..planned.clone()
    })
}

/// Renames a whole segment aside (salvage mode) to the name the plan gave it
/// (`<name>.salvaged`, or the first `<name>.salvaged.<n>` that did not exist).
fn rename_aside(vfs: &dyn Vfs, dir: &Path, planned: &MovedAside) -> Result<MovedAside> {
    let seg = &planned.from;
    vfs.rename(seg, &planned.to)
        .map_err(io_err("rename", seg))?;
    vfs.sync_dir(dir).map_err(io_err("fsync dir", dir))?;
    Ok(planned.clone())
}

/// Takes the recycled files a previous run left (oldest first) into the reuse pool, up to
/// [`Options::recycle_segments`], and removes the rest. They hold only truncated data: a
/// segment is renamed to its recycled name only after truncation dropped it from the log.
/// Returns how many were kept and how many removed.
fn adopt_recycled(wal: &Wal, names: &[String]) -> Result<(usize, usize)> {
    let inner = &wal.inner;
    let keep = inner.opts.recycle_segments;
    let mut removed = 0;
    let mut pool = lock(&inner.recycle_pool);
    for (i, name) in names.iter().enumerate() {
        let p = inner.dir.join(name);
        if i < keep {
            pool.push_back(p);
        } else {
            inner.opts.vfs.remove(&p).map_err(io_err("remove", &p))?;
            removed += 1;
        }
    }
    drop(pool);
    if removed > 0 {
        inner
            .opts
            .vfs
            .sync_dir(&inner.dir)
            .map_err(io_err("fsync dir", &inner.dir))?;
    }
    Ok((names.len() - removed, removed))
}

/// Removes a leftover preallocated file. It never held log data: it gets its name only after
/// its header is synced.
fn remove_prealloc(vfs: &dyn Vfs, dir: &Path, present: bool) -> Result<()> {
    if present {
        let p = dir.join(PREALLOC_FILE);
        vfs.remove(&p).map_err(io_err("remove", &p))?;
        vfs.sync_dir(dir).map_err(io_err("fsync dir", dir))?;
    }
    Ok(())
}

/// What the open will read, for [`Options::progress`]: every segment file once, twice under
/// skip-damaged (its plan reads the log first). Sized only when someone is told; a file that
/// cannot be sized counts as empty (its read reports the error).
fn tally_for(vfs: &dyn Vfs, dir: &Path, opts: &Options, listing: &DirListing) -> Tally {
    let Some(hook) = opts.progress.clone() else {
        return Tally::new(None, 0);
    };
    let bytes = segment_bytes(vfs, dir, &listing.segs);
    let passes = if opts.recovery == RecoveryMode::SkipDamaged {
        2
    } else {
        1
    };
    Tally::new(Some(hook), passes * bytes)
}

/// Recovery of a log that has segments: scan, plan ([`plan_recovery`], the same function the
/// dry runs call), execute the plan, and resume writing after the kept log.
fn recover(
    dir: PathBuf,
    opts: Options,
    lock_guard: Box<dyn VfsLock>,
    listing: &DirListing,
    (visit, tally): (Option<Visit<'_, '_>>, &mut Tally),
) -> Result<(Wal, OpenReport)> {
    let _span = tracing::info_span!("wal.recover", segments = listing.segs.len()).entered();
    let vfs = opts.vfs.clone();
    // A segment missing from the names is refused in these modes wherever it is: say so before
    // reading (and, through the visitor, replaying) every segment in front of it.
    if opts.recovery != RecoveryMode::SalvagePrefix {
        for pair in listing.segs.windows(2) {
            let path = dir.join(segment_file_name(pair[1]));
            if let Some(e) = seq_gap(&path, Some(pair[0]), pair[1]) {
                return Err(e);
            }
        }
    }
    let mut scan = scan_for_open(&*vfs, &dir, &opts, listing, (visit, tally))?;
    let plan = plan_recovery(&scan.found, opts.recovery)?;
    let Some(log_id) = scan.found.log_id else {
        return Err(WalError::NotAWal {
            dir,
            reason: "no segment with a valid header".into(),
        });
    };
    // Only now that the log is known to open: a refused open changes nothing on disk.
    remove_prealloc(&*vfs, &dir, listing.prealloc)?;
    let mut report = OpenReport {
        log_id: Some(log_id),
        bytes_scanned: scan.bytes_scanned,
        scan_elapsed: scan.elapsed,
        ..OpenReport::default()
    };
    report.moved_aside = execute_plan(&*vfs, &dir, &plan, &mut scan)?;
    if plan.cut.is_some() && opts.recovery == RecoveryMode::SalvagePrefix {
        // Salvage cut inside an earlier segment: streams may reference cut frames; recompute.
        scan.found.open_streams.clear();
        for s in &scan.found.segments {
            let mut tmp = BTreeSet::new();
            let _ = scan_segment(&*vfs, &s.path, s.seq, false, &mut tmp);
            scan.found.open_streams.extend(tmp);
        }
    }
    let wal = resume(dir, opts, lock_guard, log_id, scan, &mut report)?;
    Ok((wal, report))
}

/// Moves aside what `plan` moves aside, to the files it names, in its order, and leaves in
/// `scan` the segments it keeps (the last one ending at the cut). Returns what was moved.
fn execute_plan(
    vfs: &dyn Vfs,
    dir: &Path,
    plan: &RecoveryPlan,
    scan: &mut OpenScan,
) -> Result<Vec<MovedAside>> {
    let Some(cut) = &plan.cut else {
        return Ok(Vec::new());
    };
    let mut moved = Vec::with_capacity(plan.moved_aside.len());
    for m in &plan.moved_aside {
        moved.push(if m.offset > 0 {
            move_aside(vfs, dir, m)?
        } else {
            rename_aside(vfs, dir, m)?
        });
    }
    let segments = &mut scan.found.segments;
    if cut.offset > 0 {
        let s = &mut segments[cut.kept - 1];
        // A seal before the cut stays: the segment is still sealed (damage after a seal).
        s.end = ScanEnd::Clean {
            offset: cut.offset as usize,
            sealed: s.seal,
        };
    }
    segments.truncate(cut.kept);
    Ok(moved)
}

/// What recovery keeps of the scanned segments, for the running log.
struct Kept {
    last_lsn: Lsn,
    /// The successor a seal at the end of the log names (rotation cut short after the seal).
    sealed_next: Option<SegmentSeq>,
    bytes_since_checkpoint: u64,
    /// The first LSN readers may start from (0: the log's first).
    retained_from: u64,
    /// Transactions that crossed a segment boundary and ended in the kept log.
    spanning: Vec<(Lsn, Lsn)>,
    infos: Vec<SegmentInfo>,
}

impl Kept {
    fn of(scans: &[SegmentScan]) -> Kept {
        let last_lsn = scans.last().map_or(Lsn::ZERO, |s| s.last_lsn);
        let sealed_next = match scans.last().map(|s| &s.end) {
            Some(ScanEnd::Clean {
                sealed: Some(n), ..
            }) => Some(*n),
            _ => None,
        };
        let mut bytes_since_checkpoint = 0u64;
        for s in scans.iter().rev() {
            bytes_since_checkpoint += s.bytes_after_checkpoint;
            if s.last_checkpoint.is_some() {
                break;
            }
        }
        // A fragmented transaction whose beginning is gone (a truncation interrupted between
        // removing its first segment and the next) cannot be read whole: the retained range
        // starts after it. Its LSNs are all below that truncation's fence.
        let first_base = scans
            .first()
            .and_then(|s| s.header)
            .map_or(Lsn::ZERO, |h| h.base_lsn);
        let retained_from = scans
            .iter()
            .flat_map(|s| &s.unmatched_ends)
            .filter(|(stream, _)| *stream < first_base)
            .map(|(_, end)| *end)
            .max()
            .map_or(0, |l| l.next().0);
        if retained_from > 0 {
            tracing::warn!(
                retained_from,
                "a fragmented transaction begins in a segment no longer present (an interrupted truncation): reading starts after it"
            );
        }
        // Transactions that crossed a boundary and ended in the kept log (a salvage cut may
        // have dropped an end: that transaction is open again, in `streams`).
        let spanning = scans
            .iter()
            .flat_map(|s| &s.spanning_ends)
            .filter(|(_, end)| *end <= last_lsn)
            .copied()
            .collect();
        let infos = scans
            .iter()
            .filter_map(|s| {
                let h = s.header?;
                Some(SegmentInfo {
                    seq: s.seq,
                    base_lsn: h.base_lsn,
                    last_lsn: s.last_lsn,
                    bytes: s.end.offset() as u64,
                    sealed: matches!(
                        s.end,
                        ScanEnd::Clean {
                            sealed: Some(_),
                            ..
                        }
                    ),
                    oldest_open_lsn: h.oldest_open_lsn,
                })
            })
            .collect();
        Kept {
            last_lsn,
            sealed_next,
            bytes_since_checkpoint,
            retained_from,
            spanning,
            infos,
        }
    }
}

/// Starts the running log after the segments recovery kept: in a new successor when the
/// newest one ends with a seal, else at the end of the newest one.
fn resume(
    dir: PathBuf,
    mut opts: Options,
    lock_guard: Box<dyn VfsLock>,
    log_id: LogId,
    scan: OpenScan,
    report: &mut OpenReport,
) -> Result<Wal> {
    let vfs = opts.vfs.clone();
    let OpenScan { found, .. } = scan;
    let Some(last_scan) = found.segments.last().cloned() else {
        return Err(WalError::NotAWal {
            dir,
            reason: "no valid segment".into(),
        });
    };
    let kept = Kept::of(&found.segments);
    report.first_lsn = kept.infos.first().map_or(Lsn::FIRST, |s| s.base_lsn);
    report.last_lsn = kept.last_lsn;
    report.payload_schemas = found
        .segments
        .iter()
        .filter_map(|s| Some((s.seq, s.header?.payload_schema)))
        .collect();
    // Without a schema of its own, the log goes on with the newest segment's.
    let newest_schema = report.payload_schemas.last().map_or(0, |&(_, v)| v);
    let schema = *opts.payload_schema.get_or_insert(newest_schema);
    // What the scan found may so far be only in the page cache: a process that died (or a log
    // that failed) between a write and its fsync leaves frames, a seal and directory entries
    // that read back but are not durable. Make them durable before they are reported durable
    // or built upon: a successor created after an unsynced seal would otherwise, after a power
    // loss, follow a segment that ends without a seal.
    let tail = vfs
        .open(&last_scan.path, OpenMode::ReadWrite)
        .map_err(io_err("open", &last_scan.path))?;
    tail.sync_data().map_err(io_err("fsync", &last_scan.path))?;
    drop(tail);
    vfs.sync_dir(&dir).map_err(io_err("fsync dir", &dir))?;
    let streams = &found.open_streams;
    let resume = if let Some(next) = kept.sealed_next {
        report.payload_schemas.push((next, schema));
        in_successor(log_id, schema, next, kept, streams)
    } else {
        in_tail(&opts, &last_scan, kept, streams)?
    };
    report.segments = resume.segments.len();
    report.aborted_streams = streams.iter().copied().collect();
    start(dir, opts, log_id, lock_guard, resume)
}

/// Rotation was cut short after the seal: the successor `next` is created by the start, and
/// writing goes on there.
fn in_successor(
    log_id: LogId,
    schema: u32,
    next: SegmentSeq,
    mut kept: Kept,
    streams: &BTreeSet<Lsn>,
) -> Resume {
    let header = SegmentHeader {
        log_id,
        seq: next,
        base_lsn: kept.last_lsn.next(),
        oldest_open_lsn: streams.first().copied().unwrap_or(Lsn::ZERO),
        recycled: false,
        payload_schema: schema,
    };
    kept.infos.push(SegmentInfo {
        seq: next,
        base_lsn: header.base_lsn,
        last_lsn: kept.last_lsn,
        bytes: SEGMENT_HEADER_LEN as u64,
        sealed: false,
        oldest_open_lsn: header.oldest_open_lsn,
    });
    Resume {
        header,
        file: None,
        write_pos: SEGMENT_HEADER_LEN as u64,
        last_lsn: kept.last_lsn,
        streams: Streams::recovered(streams.clone(), &kept.spanning),
        segments: kept.infos,
        bytes_since_checkpoint: kept.bytes_since_checkpoint,
        retained_from: kept.retained_from,
    }
}

/// Goes on writing at the end of the newest kept segment, `last` (opened, and allocated to the
/// segment size when preallocation is on).
fn in_tail(
    opts: &Options,
    last: &SegmentScan,
    kept: Kept,
    streams: &BTreeSet<Lsn>,
) -> Result<Resume> {
    let Some(header) = last.header else {
        return Err(WalError::NotAWal {
            dir: last
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            reason: "no valid segment".into(),
        });
    };
    let file = opts
        .vfs
        .open(&last.path, OpenMode::ReadWrite)
        .map_err(io_err("open", &last.path))?;
    if opts.preallocate && last.file_len < opts.segment_size {
        file.allocate(opts.segment_size)
            .map_err(io_err("allocate", &last.path))?;
        file.sync_all().map_err(io_err("fsync", &last.path))?;
    }
    Ok(Resume {
        header,
        file: Some(file),
        write_pos: last.end.offset() as u64,
        last_lsn: kept.last_lsn,
        streams: Streams::recovered(streams.clone(), &kept.spanning),
        segments: kept.infos,
        bytes_since_checkpoint: kept.bytes_since_checkpoint,
        retained_from: kept.retained_from,
    })
}
