//! Snapshot files: format, listing, verification, atomic writing, restoring.
//!
//! # Format (version 1)
//!
//! A snapshot file is a 64-byte header followed by the state machine's bytes (the body):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `\x89WALSNP\n` |
//! | 8 | 2 | format version (1), little-endian |
//! | 10 | 6 | reserved, zero |
//! | 16 | 16 | log id (u128 LE) of the log the snapshot belongs to |
//! | 32 | 8 | fence LSN (u64 LE): the state holds every transaction committed at or before it |
//! | 40 | 8 | body length in bytes (u64 LE); the file is exactly `64 + length` bytes |
//! | 48 | 8 | creation time, milliseconds since the Unix epoch (informational) |
//! | 56 | 4 | event schema (u32 LE): [`StateMachine::EVENT_SCHEMA`] of the state that wrote it; 0 = not recorded (zero, reserved, before the field existed) |
//! | 60 | 4 | CRC32C over everything else: the body, then header bytes 0..60 |
//!
//! The checksum covers the body first so it can be computed while the body streams out; the
//! header is written last, at offset 0, once the length and checksum are known. The length is
//! what the state machine wrote: a state that wrote less than it holds and returned `Ok` makes
//! a snapshot that verifies but does not restore ([`SnapshotStore::restore_into`] fails, also
//! when the state leaves body bytes unread), which recovery rejects like a damaged one.
//!
//! Files are named `<fence, 20 digits>.snap` in the snapshot directory; a snapshot being
//! written is `<fence>.snap.tmp` until it is complete and synced, and is then renamed. A
//! snapshot found unusable by a checkpoint, or by recovery (ahead of the log, or failing to
//! restore), is renamed `<name>.corrupt` and kept for the operator.

use crate::error::{ReplayError, Result, io_err};
use crate::state::StateMachine;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
pub(crate) use wal_log::vfs::read_full;
use wal_log::{LogId, Lsn, OpenMode, Vfs, VfsFile};

/// The eight bytes every snapshot file starts with.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"\x89WALSNP\n";
/// The snapshot format version this build writes and reads.
pub const SNAPSHOT_VERSION: u16 = 1;
/// Length of the snapshot header.
pub const SNAPSHOT_HEADER_LEN: usize = 64;
/// Suffix of snapshot files.
pub const SNAPSHOT_SUFFIX: &str = ".snap";
/// Suffix of snapshots being written.
pub const SNAPSHOT_TMP_SUFFIX: &str = ".snap.tmp";
/// Suffix given to snapshots a checkpoint found unusable (kept, never read).
pub const SNAPSHOT_CORRUPT_SUFFIX: &str = ".corrupt";

/// I/O buffer size for snapshot bodies.
const BUF: usize = 1 << 20;

/// File name of the snapshot with fence `fence`.
#[must_use]
pub fn snapshot_file_name(fence: Lsn) -> String {
    format!("{:020}{SNAPSHOT_SUFFIX}", fence.0)
}

/// Parses a snapshot file name back into its fence.
#[must_use]
pub fn parse_snapshot_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Lsn)
}

/// The decoded header of a snapshot file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The log the snapshot belongs to.
    pub log_id: LogId,
    /// Every transaction committed at or before this LSN is in the state.
    pub fence: Lsn,
    /// Length of the body.
    pub body_len: u64,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// The event schema of the state machine that wrote it ([`StateMachine::EVENT_SCHEMA`]);
    /// 0 = not recorded.
    pub event_schema: u32,
    /// The stored checksum.
    pub crc: u32,
}

impl SnapshotHeader {
    /// Encodes the header; `crc` must already be the checksum of body and header bytes 0..60.
    #[must_use]
    pub fn encode(&self) -> [u8; SNAPSHOT_HEADER_LEN] {
        let mut b = self.encode_unsummed();
        b[60..64].copy_from_slice(&self.crc.to_le_bytes());
        b
    }

    fn encode_unsummed(&self) -> [u8; SNAPSHOT_HEADER_LEN] {
        let mut b = [0u8; SNAPSHOT_HEADER_LEN];
        b[0..8].copy_from_slice(&SNAPSHOT_MAGIC);
        b[8..10].copy_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        b[16..32].copy_from_slice(&self.log_id.as_u128().to_le_bytes());
        b[32..40].copy_from_slice(&self.fence.0.to_le_bytes());
        b[40..48].copy_from_slice(&self.body_len.to_le_bytes());
        b[48..56].copy_from_slice(&self.created_unix_ms.to_le_bytes());
        b[56..60].copy_from_slice(&self.event_schema.to_le_bytes());
        b
    }

    /// Decodes and checks the fixed fields of a header (not the checksum, which needs the
    /// body).
    ///
    /// # Errors
    /// A description of what is wrong.
    pub fn decode(b: &[u8]) -> Result<SnapshotHeader, String> {
        if b.len() < SNAPSHOT_HEADER_LEN {
            return Err(format!(
                "{} bytes, shorter than the {SNAPSHOT_HEADER_LEN}-byte header (half-written?)",
                b.len()
            ));
        }
        if b[0..8] != SNAPSHOT_MAGIC {
            if b[0..SNAPSHOT_HEADER_LEN].iter().all(|&x| x == 0) {
                return Err("header is all zeros (written but never completed?)".into());
            }
            return Err(format!("bad magic {:02x?}: not a snapshot file", &b[0..8]));
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        if version != SNAPSHOT_VERSION {
            return Err(format!(
                "snapshot format version {version}, this build reads version {SNAPSHOT_VERSION}"
            ));
        }
        if b[10..16].iter().any(|&x| x != 0) {
            return Err("reserved header bytes are not zero".into());
        }
        Ok(SnapshotHeader {
            log_id: LogId::from_u128(u128::from_le_bytes(arr(&b[16..32]))),
            fence: Lsn(u64::from_le_bytes(arr(&b[32..40]))),
            body_len: u64::from_le_bytes(arr(&b[40..48])),
            created_unix_ms: u64::from_le_bytes(arr(&b[48..56])),
            event_schema: u32::from_le_bytes(arr(&b[56..60])),
            crc: u32::from_le_bytes(arr(&b[60..64])),
        })
    }

    fn expected_crc(&self, body_crc: u32) -> u32 {
        crc32c::crc32c_append(body_crc, &self.encode_unsummed()[..60])
    }
}

fn arr<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&s[..N]);
    a
}

/// One snapshot file found in the snapshot directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Its path.
    pub path: PathBuf,
    /// The fence its name gives.
    pub fence: Lsn,
    /// File length in bytes.
    pub file_len: u64,
}

/// What the snapshot directory holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotListing {
    /// Snapshot files, newest (highest fence) first.
    pub snapshots: Vec<SnapshotFile>,
    /// Snapshots left half-written by an interrupted checkpoint (`*.snap.tmp`); never read.
    pub temp_files: Vec<PathBuf>,
    /// Snapshots a checkpoint set aside as unusable (`*.snap.corrupt`); never read.
    pub corrupt_files: Vec<PathBuf>,
    /// Anything else found there.
    pub other_files: Vec<PathBuf>,
}

/// A snapshot that verified, with its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSnapshot {
    /// The file.
    pub file: SnapshotFile,
    /// Its header.
    pub header: SnapshotHeader,
}

/// The snapshot directory, accessed through a [`Vfs`].
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
}

impl SnapshotStore {
    /// A store on `dir` (which need not exist yet).
    pub fn new(vfs: Arc<dyn Vfs>, dir: impl Into<PathBuf>) -> SnapshotStore {
        SnapshotStore {
            vfs,
            dir: dir.into(),
        }
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Lists the directory without changing anything. A missing directory lists as empty.
    ///
    /// # Errors
    /// An I/O error listing or sizing files.
    pub fn list(&self) -> Result<SnapshotListing> {
        let names = match self.vfs.list(&self.dir) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(SnapshotListing::default()),
            Err(e) => return Err(io_err("list", &self.dir)(e)),
        };
        let mut out = SnapshotListing::default();
        for name in names {
            let path = self.dir.join(&name);
            if let Some(fence) = parse_snapshot_name(&name) {
                let file = match self.vfs.open(&path, OpenMode::Read) {
                    Ok(f) => f,
                    // Pruned by a checkpoint of the running engine since the directory was
                    // listed: it is not there any more.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err("open", &path)(e)),
                };
                let file_len = file.len().map_err(io_err("stat", &path))?;
                out.snapshots.push(SnapshotFile {
                    path,
                    fence,
                    file_len,
                });
            } else if name.ends_with(SNAPSHOT_TMP_SUFFIX) {
                out.temp_files.push(path);
            } else if name.ends_with(SNAPSHOT_CORRUPT_SUFFIX) {
                out.corrupt_files.push(path);
            } else {
                out.other_files.push(path);
            }
        }
        out.snapshots.sort_by_key(|s| std::cmp::Reverse(s.fence));
        out.temp_files.sort();
        out.corrupt_files.sort();
        out.other_files.sort();
        Ok(out)
    }

    /// Reads and checks a snapshot's header only (cheap; no checksum).
    ///
    /// # Errors
    /// [`ReplayError::BadSnapshot`] for a bad header; an I/O error.
    pub fn read_header(&self, file: &SnapshotFile) -> Result<SnapshotHeader> {
        let f = self
            .vfs
            .open(&file.path, OpenMode::Read)
            .map_err(|e| open_err(file, e))?;
        let mut b = [0u8; SNAPSHOT_HEADER_LEN];
        let n = read_full(&*f, &mut b, 0).map_err(io_err("read", &file.path))?;
        let h = SnapshotHeader::decode(&b[..n]).map_err(|reason| bad(file, reason))?;
        check_shape(file, &h)?;
        Ok(h)
    }

    /// Reads a whole snapshot and verifies its checksum, and, when `log_id` is given, that it
    /// belongs to that log. Memory use is bounded (a 1 MiB buffer).
    ///
    /// # Errors
    /// [`ReplayError::BadSnapshot`] saying what is wrong; an I/O error.
    pub fn verify(&self, file: &SnapshotFile, log_id: Option<LogId>) -> Result<VerifiedSnapshot> {
        self.verify_with_progress(file, log_id, &mut |_, _| {})
    }

    /// [`SnapshotStore::verify`], telling `progress` `(body bytes checked, body length)` after
    /// each read of the body (1 MiB at most each), for a progress bar over a large snapshot.
    ///
    /// # Errors
    /// As [`SnapshotStore::verify`].
    pub fn verify_with_progress(
        &self,
        file: &SnapshotFile,
        log_id: Option<LogId>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<VerifiedSnapshot> {
        let header = self.read_header(file)?;
        if let Some(id) = log_id
            && header.log_id != id
        {
            return Err(bad(
                file,
                format!("it belongs to log {}, but this log is {id}", header.log_id),
            ));
        }
        let f = self
            .vfs
            .open(&file.path, OpenMode::Read)
            .map_err(|e| open_err(file, e))?;
        let mut buf = vec![
            0u8;
            BUF.min(usize::try_from(header.body_len).unwrap_or(BUF))
                .max(1)
        ];
        let mut crc = 0u32;
        let mut at = SNAPSHOT_HEADER_LEN as u64;
        let end = at + header.body_len;
        while at < end {
            let want = (end - at).min(buf.len() as u64) as usize;
            let n = read_full(&*f, &mut buf[..want], at).map_err(io_err("read", &file.path))?;
            if n < want {
                return Err(bad(
                    file,
                    format!("file ends at {} bytes, before its body does", at + n as u64),
                ));
            }
            crc = crc32c::crc32c_append(crc, &buf[..n]);
            at += n as u64;
            progress(at - SNAPSHOT_HEADER_LEN as u64, header.body_len);
        }
        let expected = header.expected_crc(crc);
        if expected != header.crc {
            return Err(bad(
                file,
                format!(
                    "checksum mismatch: stored {:#010x}, computed {expected:#010x}",
                    header.crc
                ),
            ));
        }
        Ok(VerifiedSnapshot {
            file: file.clone(),
            header,
        })
    }

    /// Restores `state` from a snapshot (which should have been verified first). The body is
    /// streamed through a 1 MiB buffer and its checksum checked again as it goes; the reader
    /// fails with `InvalidData` rather than deliver the last bytes if it does not match.
    ///
    /// A snapshot of the state's own event schema goes to [`StateMachine::restore`], one of an
    /// older schema to [`StateMachine::restore_upgrade`] (recovery checks first that the state
    /// reads it). A restore must consume the whole body: one that returns `Ok` with body bytes left
    /// unread did not read the state that was written (a snapshot cut short by its writer, or
    /// a format this build reads differently), and fails like a restore that returned an
    /// error. The unread rest is still read, so a checksum failure in it is reported instead.
    ///
    /// # Errors
    /// [`ReplayError::Restore`] with the state machine's or the reader's error, or
    /// `InvalidData` when the state left body bytes unread. The state is then partly restored
    /// and must be discarded (or restored again: [`StateMachine::restore`] replaces the whole
    /// state).
    pub fn restore_into<S: StateMachine + ?Sized>(
        &self,
        snap: &VerifiedSnapshot,
        state: &mut S,
    ) -> Result<()> {
        let path = &snap.file.path;
        let mut reader = SnapReader::open(&*self.vfs, snap)?;
        let restore_err = |source| ReplayError::Restore {
            path: path.clone(),
            source,
        };
        let schema = snap.header.event_schema;
        if schema == S::EVENT_SCHEMA {
            state.restore(&mut reader)
        } else {
            state.restore_upgrade(schema, &mut reader)
        }
        .map_err(restore_err)?;
        let read = reader.consumed();
        // Whatever the state did not read is still covered by the checksum: a mismatch there
        // is the error to report.
        io::copy(&mut reader, &mut io::sink()).map_err(restore_err)?;
        if read < snap.header.body_len {
            return Err(restore_err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the state machine read {read} of the snapshot body's {} bytes and left the rest unread",
                    snap.header.body_len
                ),
            )));
        }
        Ok(())
    }

    /// Writes a snapshot of `state` with fence `fence` for log `log_id`: to a temporary file,
    /// synced, renamed into place, directory synced. Returns the verified snapshot.
    ///
    /// # Errors
    /// [`ReplayError::SnapshotWrite`] from the state machine; an I/O error. The temporary file
    /// is removed on failure when possible; a leftover one is harmless.
    pub fn write<S: StateMachine + ?Sized>(
        &self,
        state: &S,
        log_id: LogId,
        fence: Lsn,
    ) -> Result<VerifiedSnapshot> {
        let id = (log_id, fence, S::EVENT_SCHEMA);
        self.write_with(id, &mut |out| state.write_snapshot(out))
    }

    /// Writes a copy of `source`, a verified snapshot of any log in the store `from`, as a
    /// snapshot of log `log_id` with fence `fence`: the same state bytes and event schema
    /// under a new header, written as [`SnapshotStore::write`] writes. The body is streamed
    /// through a 1 MiB buffer and its checksum checked again as it is read; a mismatch fails
    /// the copy before it is named.
    ///
    /// # Errors
    /// As [`SnapshotStore::write`] ([`ReplayError::SnapshotWrite`] also when reading the
    /// source fails or its checksum no longer matches).
    pub fn copy_from(
        &self,
        from: &SnapshotStore,
        source: &VerifiedSnapshot,
        log_id: LogId,
        fence: Lsn,
    ) -> Result<VerifiedSnapshot> {
        let mut reader = SnapReader::open(&*from.vfs, source)?;
        let id = (log_id, fence, source.header.event_schema);
        self.write_with(id, &mut |out| io::copy(&mut reader, out).map(|_| ()))
    }

    /// [`SnapshotStore::write`] of the body `body` writes, for `(log id, fence, event schema)`.
    fn write_with(
        &self,
        (log_id, fence, schema): (LogId, Lsn, u32),
        body: &mut dyn FnMut(&mut dyn io::Write) -> io::Result<()>,
    ) -> Result<VerifiedSnapshot> {
        self.ensure_dir()?;
        let name = snapshot_file_name(fence);
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        match self.vfs.remove(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", &tmp)(e)),
        }
        let file = self
            .vfs
            .open(&tmp, OpenMode::CreateNew)
            .map_err(io_err("create", &tmp))?;
        let r = self.write_body(body, &file, &tmp, (log_id, fence, schema));
        let header = match r {
            Ok(h) => h,
            Err(e) => {
                drop(file);
                let _ = self.vfs.remove(&tmp);
                return Err(e);
            }
        };
        drop(file);
        self.vfs
            .rename(&tmp, &path)
            .map_err(io_err("rename", &tmp))?;
        self.vfs
            .sync_dir(&self.dir)
            .map_err(io_err("fsync dir", &self.dir))?;
        Ok(VerifiedSnapshot {
            file: SnapshotFile {
                path,
                fence,
                file_len: SNAPSHOT_HEADER_LEN as u64 + header.body_len,
            },
            header,
        })
    }

    fn write_body(
        &self,
        body: &mut dyn FnMut(&mut dyn io::Write) -> io::Result<()>,
        file: &Arc<dyn VfsFile>,
        tmp: &Path,
        (log_id, fence, schema): (LogId, Lsn, u32),
    ) -> Result<SnapshotHeader> {
        let mut w = SnapWriter {
            file: file.clone(),
            pos: SNAPSHOT_HEADER_LEN as u64,
            buf: Vec::with_capacity(BUF),
            crc: 0,
            len: 0,
        };
        let werr = |source| ReplayError::SnapshotWrite {
            path: tmp.to_path_buf(),
            source,
        };
        body(&mut w).map_err(werr)?;
        io::Write::flush(&mut w).map_err(werr)?;
        let created_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut header = SnapshotHeader {
            log_id,
            fence,
            body_len: w.len,
            created_unix_ms,
            event_schema: schema,
            crc: 0,
        };
        header.crc = header.expected_crc(w.crc);
        file.write_all_at(&header.encode(), 0)
            .map_err(io_err("write", tmp))?;
        file.sync_all().map_err(io_err("fsync", tmp))?;
        Ok(header)
    }

    /// Creates the directory if missing, making its entry durable.
    fn ensure_dir(&self) -> Result<()> {
        match self.vfs.list(&self.dir) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                wal_log::vfs::create_dir_durable(&*self.vfs, &self.dir)
                    .map_err(io_err("create dir", &self.dir))
            }
            Err(e) => Err(io_err("list", &self.dir)(e)),
        }
    }

    /// Removes a file of the store and syncs the directory.
    pub(crate) fn remove(&self, path: &Path) -> Result<()> {
        self.vfs.remove(path).map_err(io_err("remove", path))
    }

    /// Renames a file aside, to [`SnapshotStore::aside_name`].
    pub(crate) fn set_aside(&self, path: &Path) -> Result<PathBuf> {
        let to = self.aside_name(path)?;
        self.vfs.rename(path, &to).map_err(io_err("rename", path))?;
        Ok(to)
    }

    /// The one name a file set aside gets ([`aside_name_among`]), looking up which names are
    /// taken on disk. Reads only.
    pub(crate) fn aside_name(&self, path: &Path) -> Result<PathBuf> {
        aside_name_among(path, |to| match self.vfs.open(to, OpenMode::Read) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("stat", to)(e)),
        })
    }

    pub(crate) fn sync(&self) -> Result<()> {
        self.vfs
            .sync_dir(&self.dir)
            .map_err(io_err("fsync dir", &self.dir))
    }
}

/// The one name a snapshot file set aside gets: `<name>.corrupt`, or `<name>.<n>.corrupt` when
/// an earlier file took that name (a rename would replace it; fences repeat after a salvage).
/// `taken` says whether a name is taken: on disk for a rename, in a listing for a plan.
pub(crate) fn aside_name_among<E>(
    path: &Path,
    mut taken: impl FnMut(&Path) -> std::result::Result<bool, E>,
) -> std::result::Result<PathBuf, E> {
    let mut n = 0u32;
    loop {
        let mut to = path.as_os_str().to_owned();
        if n > 0 {
            to.push(format!(".{n}"));
        }
        to.push(SNAPSHOT_CORRUPT_SUFFIX);
        let to = PathBuf::from(to);
        if !taken(&to)? {
            return Ok(to);
        }
        n += 1;
    }
}

fn bad(file: &SnapshotFile, reason: String) -> ReplayError {
    ReplayError::BadSnapshot {
        path: file.path.clone(),
        reason,
    }
}

fn check_shape(file: &SnapshotFile, h: &SnapshotHeader) -> Result<()> {
    if h.fence != file.fence {
        return Err(bad(
            file,
            format!(
                "its header says fence {}, its name fence {}",
                h.fence, file.fence
            ),
        ));
    }
    let want = (SNAPSHOT_HEADER_LEN as u64).checked_add(h.body_len);
    if want != Some(file.file_len) {
        return Err(bad(
            file,
            format!(
                "file is {} bytes, its header says {} (half-written or truncated?)",
                file.file_len,
                h.body_len.saturating_add(SNAPSHOT_HEADER_LEN as u64)
            ),
        ));
    }
    Ok(())
}

/// Buffered writer of a snapshot body that checksums as it goes.
struct SnapWriter {
    file: Arc<dyn VfsFile>,
    pos: u64,
    buf: Vec<u8>,
    crc: u32,
    len: u64,
}

impl io::Write for SnapWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > BUF {
            self.flush()?;
        }
        if data.len() >= BUF {
            self.crc = crc32c::crc32c_append(self.crc, data);
            self.file.write_all_at(data, self.pos)?;
            self.pos += data.len() as u64;
            self.len += data.len() as u64;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.crc = crc32c::crc32c_append(self.crc, &self.buf);
            self.file.write_all_at(&self.buf, self.pos)?;
            self.pos += self.buf.len() as u64;
            self.len += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }
}

/// Buffered reader of a snapshot body that verifies the checksum before the last byte.
struct SnapReader {
    file: Arc<dyn VfsFile>,
    header: SnapshotHeader,
    pos: u64,
    end: u64,
    crc: u32,
    buf: Vec<u8>,
    at: usize,
}

impl SnapReader {
    /// Opens `snap`'s file for a read of its body, checked against its header as it goes.
    fn open(vfs: &dyn Vfs, snap: &VerifiedSnapshot) -> Result<SnapReader> {
        let path = &snap.file.path;
        let file = vfs
            .open(path, OpenMode::Read)
            .map_err(io_err("open", path))?;
        Ok(SnapReader {
            file,
            header: snap.header,
            pos: SNAPSHOT_HEADER_LEN as u64,
            end: SNAPSHOT_HEADER_LEN as u64 + snap.header.body_len,
            crc: 0,
            buf: Vec::new(),
            at: 0,
        })
    }

    /// Body bytes handed out so far.
    fn consumed(&self) -> u64 {
        self.pos - SNAPSHOT_HEADER_LEN as u64 - (self.buf.len() - self.at) as u64
    }
}

impl io::Read for SnapReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.at == self.buf.len() {
            if self.pos >= self.end {
                return Ok(0);
            }
            let want = (self.end - self.pos).min(BUF as u64) as usize;
            self.buf.resize(want, 0);
            let n = read_full(&*self.file, &mut self.buf, self.pos)?;
            if n < want {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "snapshot file shrank while being read",
                ));
            }
            self.crc = crc32c::crc32c_append(self.crc, &self.buf);
            self.pos += n as u64;
            self.at = 0;
            if self.pos >= self.end && self.header.expected_crc(self.crc) != self.header.crc {
                self.buf.clear();
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "snapshot checksum mismatch (file changed after it was verified)",
                ));
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A snapshot that vanished between the listing and the open was pruned by a live engine's
/// checkpoint: [`ReplayError::SnapshotGone`], which read-only tools skip; any other open
/// failure is an I/O error.
fn open_err(file: &SnapshotFile, e: std::io::Error) -> ReplayError {
    if e.kind() == std::io::ErrorKind::NotFound {
        return ReplayError::SnapshotGone {
            path: file.path.clone(),
        };
    }
    io_err("open", &file.path)(e)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Setting aside a snapshot whose name an earlier set-aside file already took (fences
    /// repeat after a salvage) keeps both files.
    #[test]
    fn set_aside_never_replaces_an_earlier_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(Arc::new(wal_log::StdVfs), dir.path());
        let snap = dir.path().join("00000000000000000042.snap");
        std::fs::write(&snap, b"first").unwrap();
        let first = store.set_aside(&snap).unwrap();
        std::fs::write(&snap, b"second").unwrap();
        let second = store.set_aside(&snap).unwrap();
        assert_ne!(first, second);
        assert_eq!(std::fs::read(&first).unwrap(), b"first");
        assert_eq!(std::fs::read(&second).unwrap(), b"second");
        assert!(!snap.exists());
        assert_eq!(store.list().unwrap().corrupt_files.len(), 2);
    }

    /// Verifying reports its progress over the body, a read at a time, ending at the whole.
    #[test]
    fn verify_reports_progress_up_to_the_body_length() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(Arc::new(wal_log::StdVfs), dir.path());
        let body = vec![7u8; 2 * BUF + 5];
        let id = (LogId::from_u128(3), Lsn(9), 0);
        let snap = store
            .write_with(id, &mut |out| out.write_all(&body))
            .unwrap();
        let mut seen = Vec::new();
        let verified = store.verify_with_progress(&snap.file, Some(id.0), &mut |done, total| {
            seen.push((done, total));
        });
        assert!(verified.is_ok());
        let len = body.len() as u64;
        assert_eq!(
            seen,
            vec![(BUF as u64, len), (2 * BUF as u64, len), (len, len)]
        );
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(snapshot_file_name(Lsn(42)), "00000000000000000042.snap");
        assert_eq!(
            parse_snapshot_name("00000000000000000042.snap"),
            Some(Lsn(42))
        );
        for bad in [
            "42.snap",
            "00000000000000000042.snap.tmp",
            "x0000000000000000042.snap",
        ] {
            assert_eq!(parse_snapshot_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = SnapshotHeader {
            log_id: LogId::from_u128(7),
            fence: Lsn(9),
            body_len: 3,
            created_unix_ms: 1,
            event_schema: 0,
            crc: 0xdead_beef,
        };
        assert_eq!(SnapshotHeader::decode(&h.encode()), Ok(h));
        let mut b = h.encode();
        b[0] ^= 1;
        assert!(SnapshotHeader::decode(&b).is_err());
        let mut b = h.encode();
        b[8] = 2;
        assert!(
            SnapshotHeader::decode(&b)
                .unwrap_err()
                .contains("version 2")
        );
        assert!(
            SnapshotHeader::decode(&[0; 64])
                .unwrap_err()
                .contains("zeros")
        );
        assert!(SnapshotHeader::decode(&[0; 10]).is_err());
    }
}
