//! Following a log that another process writes: [`TailReader`].

use crate::assembly::Transaction;
use crate::assembly::{Assembly, ReadFrame, SegmentCursor};
use crate::error::{Damage, Result, WalError, io_err};
use crate::layout::segment_file_name;
use crate::position::FollowPosition;
use crate::published::read_published;
use crate::recovery_scan::{list_dir, reused_under_us};
use crate::vfs::{OpenMode, StdVfs, Vfs, VfsFile, read_full};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wal_format::header::SEGMENT_HEADER_LEN;
use wal_format::scan::ChunkedScanner;
use wal_format::{FrameKind, LogId, Lsn, SegmentHeader, SegmentSeq};

/// Options of a [`TailReader`].
#[derive(Clone, Debug)]
pub struct TailOptions {
    /// The file system. Default [`StdVfs`].
    pub vfs: Arc<dyn Vfs>,
    /// The most bytes held for one fragmented transaction: the writer's
    /// [`crate::Options::max_transaction_size`]. Default 256 MiB.
    pub max_transaction_size: u64,
    /// How long [`TailReader::next_timeout`] sleeps between looks at the log when it has
    /// caught up. Each look reads the `LOCK` record and tries to open the next segment.
    /// Default 2 ms.
    pub poll: Duration,
}

impl Default for TailOptions {
    fn default() -> Self {
        TailOptions {
            vfs: Arc::new(StdVfs),
            max_transaction_size: 256 << 20,
            poll: Duration::from_millis(2),
        }
    }
}

impl TailOptions {
    /// Sets [`TailOptions::vfs`].
    #[must_use]
    pub fn vfs(mut self, vfs: Arc<dyn Vfs>) -> Self {
        self.vfs = vfs;
        self
    }
    /// Sets [`TailOptions::max_transaction_size`].
    #[must_use]
    pub fn max_transaction_size(mut self, bytes: u64) -> Self {
        self.max_transaction_size = bytes;
        self
    }
    /// Sets [`TailOptions::poll`].
    #[must_use]
    pub fn poll(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }
}

/// Reads the committed, durable transactions of a log that another process writes (or
/// wrote), from an LSN on, as they become durable; read-only, without the log's lock.
///
/// # What a reader in another process can know
///
/// It sees what the writer has *written* (the page cache is shared), not what it has made
/// *durable*: no fsync is visible from outside. A frame written and not yet synced is lost by
/// a power loss (though not by a crash of the writer's process), so a replica fed with it
/// could get ahead of its primary. Until the log's format carries a durable watermark, a
/// reader in another process can prove a frame durable in exactly two ways, and this reader
/// returns a transaction only when one of them covers its commit frame (and so every frame
/// before it):
///
/// 1. **Its segment has a successor.** Rotation writes and fsyncs the seal before it creates
///    the next segment, and recovery fsyncs the newest segment before it creates one after a
///    seal, so a segment whose successor exists is durable through its seal.
/// 2. **The writer published a durable point covering it.** A writer opened with
///    [`crate::Options::publish_durable`] writes the log id and its durable point into its
///    `LOCK` file after every fsync (and when it opens, before it appends). The record is
///    written only after the fsync it reports returned, so every value it ever holds was
///    true when written. A record that is missing, torn or of another log is ignored.
///
/// Without (2) the reader lags by up to a segment (everything in the segment being written
/// waits for its seal); with it, by about one poll interval ([`TailOptions::poll`]) after the
/// fsync. Checkpoint markers prove the log synced up to their snapshot's LSN too, but they
/// are too sparse to be worth a rule.
///
/// # What it never does
///
/// It takes no lock and writes nothing, so it works beside a running writer, on a copy, and
/// while the writer restarts. It starts at an LSN by reading segment headers only (a binary
/// search over the listing), not by scanning the log from its start.
///
/// # Rotation, truncation, replacement
///
/// It goes from a segment to the next through the seal. A segment truncated while it is read
/// is read to its seal through the open handle when the file was deleted; when the file was
/// recycled (renamed, then overwritten as a new segment), bytes that no longer verify under
/// the segment's seed are told from damage by its header, and the reader reports
/// [`WalError::Truncated`] naming the first transaction it has not returned, as it does when
/// the next segment is gone. A directory that now holds another log gives
/// [`WalError::ForeignSegment`]. An error leaves the reader where it was.
///
/// ```
/// # fn main() -> Result<(), wal_log::WalError> {
/// use std::time::Duration;
/// use wal_log::{Lsn, Options, TailOptions, TailReader, Wal};
/// let dir = tempfile::tempdir().unwrap();
/// // The writer (in another process, usually) publishes its durable point.
/// let (wal, _) = Wal::open(dir.path(), Options::default().publish_durable(true))?;
/// let lsn = wal.append(b"hello")?;
/// let mut tail = TailReader::open(dir.path(), Lsn::FIRST, TailOptions::default())?;
/// let tx = tail.next_timeout(Duration::from_secs(10))?.expect("durable, so readable");
/// assert_eq!((tx.lsn, &tx.body[..]), (lsn, &b"hello"[..]));
/// // Saved with what the follower did with it, the position resumes a later reader.
/// let position = tail.position();
/// assert_eq!(position.next(), lsn.next());
/// # Ok(()) }
/// ```
pub struct TailReader {
    opts: TailOptions,
    dir: PathBuf,
    log_id: LogId,
    cursor: SegmentCursor,
    next_lsn: Lsn,
    asm: Assembly,
    /// The current segment is proven durable up to this file offset.
    readable: u64,
    /// A valid durable point of this log was published at the last look.
    published: bool,
}

impl std::fmt::Debug for TailReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailReader")
            .field("dir", &self.dir)
            .field("log_id", &self.log_id)
            .field("next_lsn", &self.next_lsn)
            .finish()
    }
}

/// How many times positioning starts over when truncation removes a segment under it.
const POSITION_ATTEMPTS: usize = 8;

impl TailReader {
    /// A reader of the log in `dir` that returns every committed transaction with LSN ≥
    /// `from` once it is durable. It reads segment headers to find where to start; the
    /// segment holding `from` is read from its beginning (or from an older one, when a
    /// fragmented transaction still open at its start began there).
    ///
    /// # Errors
    /// [`WalError::NotFound`] or [`WalError::NotAWal`] for a directory without a log;
    /// [`WalError::Truncated`] when `from` is older than the log's first segment;
    /// [`WalError::BeyondEnd`] when `from` is past the frame after the last one written;
    /// [`WalError::ForeignSegment`], [`WalError::Corrupt`] for headers that do not continue
    /// the log; an I/O error.
    pub fn open(dir: impl AsRef<Path>, from: Lsn, opts: TailOptions) -> Result<TailReader> {
        Self::start(dir.as_ref(), from, None, opts)
    }

    /// [`TailReader::open`] at a follower's saved place: from `position.lsn + 1`, after
    /// checking that the log is the position's. When the position carries its frame's
    /// checksum and the log still holds that frame, the reader checks it before returning
    /// anything.
    ///
    /// # Errors
    /// As [`TailReader::open`], and [`WalError::OtherLog`] for a position in another log.
    /// The reader returns [`WalError::Diverged`] when the frame at the position's LSN is not
    /// the follower's (the log went back and took other commits there).
    pub fn resume(
        dir: impl AsRef<Path>,
        position: &FollowPosition,
        opts: TailOptions,
    ) -> Result<TailReader> {
        Self::start(dir.as_ref(), position.next(), Some(position), opts)
    }

    fn start(
        dir: &Path,
        from: Lsn,
        position: Option<&FollowPosition>,
        opts: TailOptions,
    ) -> Result<TailReader> {
        let from = from.max(Lsn::FIRST);
        let mut attempt = 0;
        let (log_id, start) = loop {
            attempt += 1;
            match locate(&*opts.vfs, dir, from, position) {
                Ok(found) => break found,
                Err(Locate::Vanished) if attempt < POSITION_ATTEMPTS => {}
                Err(Locate::Vanished) => {
                    return Err(WalError::Truncated {
                        requested: from,
                        oldest: Lsn::ZERO,
                    });
                }
                Err(Locate::Failed(e)) => return Err(e),
            }
        };
        let (seq, header, file) = start;
        let path = dir.join(segment_file_name(seq));
        Ok(TailReader {
            asm: Assembly::new(
                from,
                opts.max_transaction_size,
                position.and_then(|p| p.crc),
            ),
            next_lsn: header.base_lsn,
            cursor: SegmentCursor::new(seq, path, header, file),
            readable: SEGMENT_HEADER_LEN as u64,
            published: false,
            dir: dir.to_path_buf(),
            log_id,
            opts,
        })
    }

    /// The log followed.
    #[must_use]
    pub fn log_id(&self) -> LogId {
        self.log_id
    }

    /// Whether the writer published a durable point of this log at the reader's last look
    /// ([`crate::Options::publish_durable`]). When false, transactions are returned only once
    /// their segment is sealed.
    #[must_use]
    pub fn published(&self) -> bool {
        self.published
    }

    /// Where this reader stands: the last transaction it returned (with its commit frame's
    /// checksum), or the place it started after. Save it with what was applied, and resume
    /// with [`TailReader::resume`].
    #[must_use]
    pub fn position(&self) -> FollowPosition {
        let (lsn, crc) = self.asm.position();
        FollowPosition {
            log_id: self.log_id,
            lsn,
            crc,
        }
    }

    /// The next durable transaction, or `None` when there is none yet. Never waits.
    ///
    /// # Errors
    /// [`WalError::Truncated`] when truncation removed what the reader still needs (naming
    /// the first transaction it has not returned); [`WalError::Diverged`] (resumed readers);
    /// [`WalError::TransactionTooLarge`]; [`WalError::Corrupt`], [`WalError::Gap`] or
    /// [`WalError::ForeignSegment`] for a log that does not continue; an I/O error. The
    /// reader stays where it was: called again, it fails the same way.
    pub fn try_next(&mut self) -> Result<Option<Transaction>> {
        loop {
            if let Some(t) = self.step()? {
                return Ok(Some(t));
            }
            if !self.look()? {
                return Ok(None);
            }
        }
    }

    /// Waits up to `timeout` for the next durable transaction (`Duration::MAX`: no limit),
    /// looking at the log every [`TailOptions::poll`].
    ///
    /// # Errors
    /// As [`TailReader::try_next`].
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Transaction>> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(t) = self.try_next()? {
                return Ok(Some(t));
            }
            let now = Instant::now();
            let nap = match deadline {
                Some(d) if now >= d => return Ok(None),
                Some(d) => (d - now).min(self.opts.poll),
                None => self.opts.poll,
            };
            std::thread::sleep(nap);
        }
    }

    /// The next transaction in what is proven durable, or `None` when caught up with it.
    fn step(&mut self) -> Result<Option<Transaction>> {
        loop {
            if self.cursor.sealed {
                self.advance()?;
                continue;
            }
            let f = match self.cursor.next_frame(self.readable) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(None),
                Err(e @ WalError::Corrupt { .. }) => return Err(self.damage_or_truncated(e)),
                Err(e) => return Err(e),
            };
            let expected = f.frame.kind.expected_lsn(self.next_lsn);
            if f.frame.lsn != expected {
                self.cursor.rewind(f.at);
                let e = WalError::Corrupt(Damage {
                    segment: self.cursor.path.clone(),
                    offset: f.at,
                    reason: format!("frame carries LSN {}, expected {expected}", f.frame.lsn),
                });
                return Err(self.damage_or_truncated(e));
            }
            if let Some(t) = self.consume(&f)? {
                return Ok(Some(t));
            }
        }
    }

    /// Hands a frame to the assembly; on error puts the cursor back before it.
    fn consume(&mut self, f: &ReadFrame) -> Result<Option<Transaction>> {
        // A transaction whose beginning is gone ends at this frame: what follows it is the
        // oldest that can be read whole.
        match self.asm.consume(f, &|| Lsn::ZERO) {
            Ok(t) => {
                self.cursor.sealed = f.frame.kind == FrameKind::Seal;
                if f.frame.kind.takes_lsn() {
                    self.next_lsn = f.frame.lsn.next();
                }
                Ok(t)
            }
            Err(e) => {
                self.cursor.rewind(f.at);
                Err(e)
            }
        }
    }

    /// Moves on to the segment after a seal. The seal was read, so the successor existed:
    /// gone now, it was truncated.
    fn advance(&mut self) -> Result<()> {
        let seq = self.cursor.seq.next();
        let path = self.dir.join(segment_file_name(seq));
        let Some((file, header)) = open_header(&*self.opts.vfs, &path, seq, self.log_id)? else {
            return Err(self.truncated());
        };
        if header.base_lsn != self.next_lsn {
            return Err(WalError::Gap {
                segment: path,
                reason: format!(
                    "it starts at LSN {} but the previous segment ends at LSN {}",
                    header.base_lsn,
                    self.next_lsn.prev()
                ),
            });
        }
        self.cursor = SegmentCursor::new(seq, path, header, file);
        self.readable = SEGMENT_HEADER_LEN as u64;
        Ok(())
    }

    /// Looks again at how far the current segment is proven durable; true when further.
    fn look(&mut self) -> Result<bool> {
        let before = self.readable;
        let seq = self.cursor.seq;
        let next = self.dir.join(segment_file_name(seq.next()));
        let vfs = &*self.opts.vfs;
        let whole = if open_header(vfs, &next, seq.next(), self.log_id)?.is_some() {
            true
        } else {
            match read_published(vfs, &self.dir)? {
                Some(p) if p.log_id == self.log_id => {
                    self.published = true;
                    match p.seq.cmp(&seq) {
                        std::cmp::Ordering::Equal => {
                            self.readable = self.readable.max(p.end);
                            false
                        }
                        std::cmp::Ordering::Greater => true,
                        std::cmp::Ordering::Less => false,
                    }
                }
                _ => {
                    self.published = false;
                    false
                }
            }
        };
        if whole {
            let len = self
                .cursor
                .file
                .len()
                .map_err(io_err("stat", &self.cursor.path))?;
            self.readable = self.readable.max(len);
        }
        Ok(self.readable > before)
    }

    /// `e` (damage found reading the current segment), unless the segment's file was
    /// truncated and reused by the running log while it was read: then the reader was passed
    /// by truncation.
    fn damage_or_truncated(&self, e: WalError) -> WalError {
        if reused_under_us(&*self.cursor.file, &self.cursor.header) {
            return self.truncated();
        }
        e
    }

    /// [`WalError::Truncated`] for this reader: the first transaction it owes, and the first
    /// LSN the log holds now (0 when that cannot be read).
    fn truncated(&self) -> WalError {
        let oldest = first_lsn(&*self.opts.vfs, &self.dir).unwrap_or(Lsn::ZERO);
        WalError::Truncated {
            requested: self.asm.next_needed(),
            oldest,
        }
    }
}

/// The segment a reader starts in: its number, header and open file.
type Start = (SegmentSeq, SegmentHeader, Arc<dyn VfsFile>);

/// Why [`locate`] did not find where to start.
enum Locate {
    /// A segment listed was gone when its header was read (truncation ran meanwhile).
    Vanished,
    Failed(WalError),
}

impl From<WalError> for Locate {
    fn from(e: WalError) -> Self {
        Locate::Failed(e)
    }
}

/// The segment a reader wanting every transaction committed at or after `from` starts in
/// (for a resumed `position`, at or before the frame it names when the log still holds it,
/// so that the frame is checked), opened, with the log's id: found by reading headers only.
fn locate(
    vfs: &dyn Vfs,
    dir: &Path,
    from: Lsn,
    position: Option<&FollowPosition>,
) -> std::result::Result<(LogId, Start), Locate> {
    let segs = list_dir(vfs, dir)?.segs;
    let Some(&first) = segs.first() else {
        return Err(Locate::Failed(WalError::NotAWal {
            dir: dir.to_path_buf(),
            reason: "it holds no segment yet".into(),
        }));
    };
    let path = dir.join(segment_file_name(first));
    let (_, h0) = read_header(vfs, &path, first, None)?.ok_or(Locate::Vanished)?;
    let log_id = h0.log_id;
    if let Some(p) = position
        && p.log_id != log_id
    {
        return Err(Locate::Failed(WalError::OtherLog {
            position: p.log_id,
            log: log_id,
        }));
    }
    let check = position.and_then(|p| p.crc.map(|_| p.lsn));
    if from < h0.base_lsn {
        return Err(Locate::Failed(WalError::Truncated {
            requested: from,
            oldest: h0.base_lsn,
        }));
    }
    let headers = Headers {
        vfs,
        dir,
        segs: &segs,
        log_id,
    };
    let holds = headers.last_at_or_before(from, 0)?;
    let (_, h) = headers.get(holds)?;
    // A transaction still open when that segment began began at or after its oldest open
    // LSN: read from the segment holding that (or the first one, if it was truncated).
    let start = match h.oldest_open_lsn {
        o if o != Lsn::ZERO && o < h.base_lsn && o >= h0.base_lsn => {
            headers.last_at_or_before(o, 0)?
        }
        o if o != Lsn::ZERO && o < h0.base_lsn => 0,
        _ => holds,
    };
    let start = match check.filter(|at| *at >= h0.base_lsn && *at < h.base_lsn) {
        Some(at) => start.min(headers.last_at_or_before(at, 0)?),
        None => start,
    };
    if holds + 1 == segs.len() && from > h.base_lsn {
        check_reaches(&headers, holds, from)?;
    }
    let (file, header) = headers.get(start)?;
    Ok((log_id, (segs[start], header, file)))
}

/// Segment headers of one listing, read on demand.
struct Headers<'a> {
    vfs: &'a dyn Vfs,
    dir: &'a Path,
    segs: &'a [SegmentSeq],
    log_id: LogId,
}

impl Headers<'_> {
    fn get(&self, i: usize) -> std::result::Result<(Arc<dyn VfsFile>, SegmentHeader), Locate> {
        let path = self.dir.join(segment_file_name(self.segs[i]));
        read_header(self.vfs, &path, self.segs[i], Some(self.log_id))?.ok_or(Locate::Vanished)
    }

    /// The index of the last segment whose base LSN is at or before `lsn` (the first
    /// `lo` is known to be): a binary search over headers.
    fn last_at_or_before(&self, lsn: Lsn, mut lo: usize) -> std::result::Result<usize, Locate> {
        let mut hi = self.segs.len();
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid)?.1.base_lsn <= lsn {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}

/// Refuses `from` past the frame after the last one written in the newest segment (index
/// `i`): the frames up to `from - 1` must be there. A seal met first means a newer segment
/// appeared since the listing: position again.
fn check_reaches(headers: &Headers<'_>, i: usize, from: Lsn) -> std::result::Result<(), Locate> {
    let (file, header) = headers.get(i)?;
    let path = headers.dir.join(segment_file_name(headers.segs[i]));
    let len = file.len().map_err(io_err("stat", &path))?;
    let mut scanner = ChunkedScanner::new(header, len, false);
    let want = from.prev();
    while let Some(f) = scanner
        .next_frame(&*file)
        .map_err(|e| io_err("read", &path)(e))?
    {
        if f.lsn >= want {
            return Ok(());
        }
        if f.kind == FrameKind::Seal {
            return Err(Locate::Vanished);
        }
    }
    Err(Locate::Failed(WalError::BeyondEnd {
        requested: from,
        next: scanner.next_lsn(),
    }))
}

/// Opens segment `seq` at `path` and reads its header, which must name that segment (and be
/// of log `log_id`, when given); `None` when the file does not exist.
fn read_header(
    vfs: &dyn Vfs,
    path: &Path,
    seq: SegmentSeq,
    log_id: Option<LogId>,
) -> Result<Option<(Arc<dyn VfsFile>, SegmentHeader)>> {
    let file = match vfs.open(path, OpenMode::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let mut b = [0u8; SEGMENT_HEADER_LEN];
    let n = read_full(&*file, &mut b, 0).map_err(io_err("read", path))?;
    let corrupt = |reason: String| {
        WalError::Corrupt(Damage {
            segment: path.to_path_buf(),
            offset: 0,
            reason,
        })
    };
    let h = SegmentHeader::decode(&b[..n]).map_err(|e| corrupt(e.to_string()))?;
    if h.seq != seq {
        return Err(corrupt(format!(
            "segment header names segment {}, but the file is named for segment {seq}",
            h.seq
        )));
    }
    if let Some(expected) = log_id
        && h.log_id != expected
    {
        return Err(WalError::ForeignSegment {
            segment: path.to_path_buf(),
            expected,
            found: h.log_id,
        });
    }
    Ok(Some((file, h)))
}

/// [`read_header`] of the segment after the current one, of this log.
fn open_header(
    vfs: &dyn Vfs,
    path: &Path,
    seq: SegmentSeq,
    log_id: LogId,
) -> Result<Option<(Arc<dyn VfsFile>, SegmentHeader)>> {
    read_header(vfs, path, seq, Some(log_id))
}

/// The first LSN of the log in `dir` now: its first segment's base.
fn first_lsn(vfs: &dyn Vfs, dir: &Path) -> Option<Lsn> {
    let segs = list_dir(vfs, dir).ok()?.segs;
    let first = *segs.first()?;
    let path = dir.join(segment_file_name(first));
    Some(read_header(vfs, &path, first, None).ok()??.1.base_lsn)
}
