//! Resuming an archive a mirror of an earlier process left: where it ends, and whether it
//! still follows the log. Costs one segment's worth of reads, whatever the archive's size.

use super::error::MirrorError;
use super::frames::{CHUNK, FrameReader};
use super::segment::{SegmentCopy, Source, open_source};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wal_format::header::SEGMENT_HEADER_LEN;
use wal_format::{Lsn, SegmentHeader, SegmentSeq};
use wal_log::layout::{Entry, classify, segment_file_name};
use wal_log::vfs::read_full;
use wal_log::{OpenMode, Vfs, VfsFile};

/// Sequence numbers of the segment files in `dir`, sorted.
pub(super) fn segments_in(vfs: &dyn Vfs, dir: &Path) -> Result<Vec<u64>, MirrorError> {
    let mut seqs: Vec<u64> = vfs
        .list(dir)
        .map_err(MirrorError::io("list", dir))?
        .iter()
        .filter_map(|n| match classify(n) {
            Entry::Segment(s) => Some(s.0),
            _ => None,
        })
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// The newest segment `seq` the archive already holds whole, so that copying resumes with
/// `seq + 1` (segments the archive holds past it are reconciled when they are reached).
/// `log` lists the log's segments (sorted, not empty).
///
/// Segments older than the archive's newest are trusted: a mirror creates a segment's copy
/// only once the one before it is archived through its seal and synced, and files are created
/// in order, each under its name only after its header is synced. Only the newest is read
/// (by [`reconcile`], or here when the log no longer holds it).
///
/// # Errors
/// [`MirrorError::ArchiveAhead`], [`MirrorError::SegmentLost`] (the log lost segments the
/// archive never held whole), [`MirrorError::ForeignLog`], [`MirrorError::Diverged`], I/O.
pub(super) fn resume(
    vfs: &dyn Vfs,
    archive: &Path,
    wal_dir: &Path,
    log: &[u64],
) -> Result<u64, MirrorError> {
    let (Some(&first), Some(&last)) = (log.first(), log.last()) else {
        return Ok(0);
    };
    let archived = segments_in(vfs, archive)?;
    let Some(&newest) = archived.last() else {
        return Ok(first - 1);
    };
    if newest > last {
        return Err(MirrorError::ArchiveAhead {
            archive: archive.to_path_buf(),
            archive_seq: SegmentSeq(newest),
            log_seq: SegmentSeq(last),
        });
    }
    if newest >= first {
        let mut done = first - 1;
        while done + 1 < newest && archived.binary_search(&(done + 1)).is_ok() {
            done += 1;
        }
        return Ok(done);
    }
    // The log no longer holds the archive's newest segment: it must be archived whole, and
    // the log must go on right after it.
    let path = archive.join(segment_file_name(SegmentSeq(newest)));
    let (header, last_lsn, sealed) = archived_end(vfs, &path)?;
    let log_path = wal_dir.join(segment_file_name(SegmentSeq(first)));
    let log_header = open_source(vfs, &log_path)?.decoded;
    if header.log_id != log_header.log_id {
        return Err(MirrorError::ForeignLog {
            path,
            archive_log: header.log_id,
            log: log_header.log_id,
        });
    }
    if !sealed || newest + 1 < first {
        return Err(MirrorError::SegmentLost {
            seq: SegmentSeq(if sealed { newest + 1 } else { newest }),
            archive: archive.to_path_buf(),
            archived_through: last_lsn,
        });
    }
    if last_lsn.next() != log_header.base_lsn {
        return Err(MirrorError::Diverged {
            path: log_path,
            offset: 0,
            expected: last_lsn.next(),
            found: log_header.base_lsn,
        });
    }
    Ok(newest)
}

/// An archived segment's header, the LSN of its last verified frame, and whether that frame
/// is its seal.
fn archived_end(vfs: &dyn Vfs, path: &Path) -> Result<(SegmentHeader, Lsn, bool), MirrorError> {
    let Source {
        file,
        decoded: header,
        ..
    } = open_source(vfs, path)?;
    let mut reader = FrameReader::new(&*file, path, header.seed(), SEGMENT_HEADER_LEN as u64)?;
    let mut last = header.base_lsn.prev();
    let mut sealed = false;
    while let Some(run) = reader.next_run()? {
        if let Some(f) = run.frames.last() {
            last = f.lsn;
        }
        sealed = run.sealed;
    }
    Ok((header, last, sealed))
}

/// Takes over an archive copy that already exists (left by an earlier process): keeps the
/// frames it holds that are byte for byte the log's, from the start, and cuts the rest. The
/// bytes cut are kept in `<segment>.wal.unmatched-<offset>` unless they equal the log's own
/// bytes there (a copy torn by a crash). They differ when the log lost frames the mirror had
/// already copied (written but not yet synced when the machine lost power): the log will
/// give their LSNs to other transactions.
///
/// Returns the copy, ready to go on, and the bytes written.
///
/// # Errors
/// [`MirrorError::ForeignLog`], [`MirrorError::Diverged`] (a header naming another first
/// LSN), [`MirrorError::BadHeader`] (a header that is not a segment's), I/O.
pub(super) fn reconcile(
    vfs: &dyn Vfs,
    archive: &Path,
    src: Source,
    dst_path: PathBuf,
    dst: Arc<dyn VfsFile>,
) -> Result<(SegmentCopy, u64), MirrorError> {
    let rewrite_header = header_needs_rewrite(&src, &dst_path, &*dst)?;
    let seed = src.decoded.seed();
    let mut copy = SegmentCopy {
        src_path: src.path,
        dst_path,
        src: src.file,
        dst,
        seed,
        header: src.header,
        end: SEGMENT_HEADER_LEN as u64,
        next_lsn: src.decoded.base_lsn,
        sealed: false,
    };
    let alen = copy
        .dst
        .len()
        .map_err(MirrorError::io("stat", &copy.dst_path))?;
    matching_frames(&mut copy, alen)?;
    let mut wrote = 0;
    if alen > copy.end {
        if !same_bytes(&copy, copy.end, alen)? {
            wrote += set_aside(vfs, archive, &copy, alen)?;
        }
        copy.dst
            .set_len(copy.end)
            .map_err(MirrorError::io("truncate", &copy.dst_path))?;
        tracing::warn!(
            segment = %copy.dst_path.display(),
            from = copy.end,
            to = alen,
            "archive copy ran past the frames it shares with the log; cut it there"
        );
    }
    if rewrite_header {
        copy.dst
            .write_all_at(&copy.header, 0)
            .map_err(MirrorError::io("write", &copy.dst_path))?;
        wrote += SEGMENT_HEADER_LEN as u64;
    }
    if rewrite_header || alen > copy.end {
        copy.dst
            .sync_data()
            .map_err(MirrorError::io("fsync", &copy.dst_path))?;
    }
    Ok((copy, wrote))
}

/// Whether the archive copy's header must be replaced by the log's: it is blank (a creation
/// cut short by an older version) or the same segment's with other flags (the log created the
/// segment again after a crash cut its rotation short).
fn header_needs_rewrite(
    src: &Source,
    dst_path: &Path,
    dst: &dyn VfsFile,
) -> Result<bool, MirrorError> {
    let mut theirs = [0u8; SEGMENT_HEADER_LEN];
    let n = read_full(dst, &mut theirs, 0).map_err(MirrorError::io("read", dst_path))?;
    if theirs == src.header {
        return Ok(false);
    }
    match SegmentHeader::decode(&theirs[..n]) {
        Ok(h) if h.log_id != src.decoded.log_id => Err(MirrorError::ForeignLog {
            path: dst_path.to_path_buf(),
            archive_log: h.log_id,
            log: src.decoded.log_id,
        }),
        Ok(h) if h.seq != src.decoded.seq || h.base_lsn != src.decoded.base_lsn => {
            Err(MirrorError::Diverged {
                path: src.path.clone(),
                offset: 0,
                expected: h.base_lsn,
                found: src.decoded.base_lsn,
            })
        }
        Ok(_) => Ok(true),
        Err(_) if theirs[..n].iter().all(|&b| b == 0) => Ok(true),
        Err(source) => Err(MirrorError::BadHeader {
            path: dst_path.to_path_buf(),
            source,
        }),
    }
}

/// Advances `copy` over the log's verified frames that the archive holds byte for byte, from
/// the start, up to `alen`.
fn matching_frames(copy: &mut SegmentCopy, alen: u64) -> Result<(), MirrorError> {
    let mut reader = FrameReader::new(&*copy.src, &copy.src_path, copy.seed, copy.end)?;
    while copy.end < alen
        && let Some(run) = reader.next_run()?
    {
        let mut theirs = vec![0u8; run.buf.len()];
        let m = read_full(&*copy.dst, &mut theirs, run.start)
            .map_err(MirrorError::io("read", &copy.dst_path))?;
        let mut start = 0;
        for (i, f) in run.frames.iter().enumerate() {
            let next = f.follow(copy.next_lsn, &copy.src_path, run.start + start as u64)?;
            if f.end > m || theirs[start..f.end] != run.buf[start..f.end] {
                return Ok(());
            }
            copy.end = run.start + f.end as u64;
            copy.next_lsn = next;
            copy.sealed = run.sealed && i + 1 == run.frames.len();
            start = f.end;
        }
    }
    Ok(())
}

/// Whether the archive copy's bytes `from..to` equal the log's bytes there.
fn same_bytes(copy: &SegmentCopy, from: u64, to: u64) -> Result<bool, MirrorError> {
    let mut pos = from;
    let mut ours = vec![0u8; CHUNK];
    let mut theirs = vec![0u8; CHUNK];
    while pos < to {
        let want = (to - pos).min(CHUNK as u64) as usize;
        let a = read_full(&*copy.dst, &mut theirs[..want], pos)
            .map_err(MirrorError::io("read", &copy.dst_path))?;
        let b = read_full(&*copy.src, &mut ours[..want], pos)
            .map_err(MirrorError::io("read", &copy.src_path))?;
        if a != want || b != want || theirs[..want] != ours[..want] {
            return Ok(false);
        }
        pos += want as u64;
    }
    Ok(true)
}

/// Copies the archive copy's bytes from `copy.end` to `to` into a new file beside it,
/// `<segment>.wal.unmatched-<offset>` (`.1`, `.2`, ... when taken), synced with its
/// directory. Returns the bytes written.
fn set_aside(
    vfs: &dyn Vfs,
    archive: &Path,
    copy: &SegmentCopy,
    to: u64,
) -> Result<u64, MirrorError> {
    let base = format!(
        "{}.unmatched-{}",
        copy.dst_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        copy.end
    );
    let mut n = 0u32;
    let (path, file) = loop {
        let name = if n == 0 {
            base.clone()
        } else {
            format!("{base}.{n}")
        };
        let path = archive.join(name);
        match vfs.open(&path, OpenMode::CreateNew) {
            Ok(f) => break (path, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(MirrorError::io("create", &path)(e)),
        }
    };
    let mut buf = vec![0u8; CHUNK];
    let mut pos = copy.end;
    while pos < to {
        let want = (to - pos).min(CHUNK as u64) as usize;
        let got = read_full(&*copy.dst, &mut buf[..want], pos)
            .map_err(MirrorError::io("read", &copy.dst_path))?;
        if got == 0 {
            break;
        }
        file.write_all_at(&buf[..got], pos - copy.end)
            .map_err(MirrorError::io("write", &path))?;
        pos += got as u64;
    }
    file.sync_data().map_err(MirrorError::io("fsync", &path))?;
    vfs.sync_dir(archive)
        .map_err(MirrorError::io("fsync dir", archive))?;
    Ok(pos - copy.end)
}
