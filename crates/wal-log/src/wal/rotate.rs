//! Rotation: sealing the active segment and installing the next one (a recycled file, the
//! preallocated file, or a new one).

use super::{Inner, Point, Writer, lock};
use crate::error::{Damage, Result, WalError, io_err};
use crate::layout::{PREALLOC_FILE, segment_file_name};
use crate::segment::SegmentInfo;
use crate::vfs::{OpenMode, VfsFile};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use wal_format::frame::{FRAME_HEADER_LEN, FrameFlags};
use wal_format::header::SEGMENT_HEADER_LEN;
use wal_format::{FrameKind, Lsn, SegmentHeader, SegmentSeq};

impl Inner {
    /// Seals the active segment and switches to the next one now, whatever its size (open,
    /// before anything is appended, when the newest segment carries another payload schema).
    /// Returns the new segment's sequence number.
    pub(crate) fn rotate_now(&self) -> Result<SegmentSeq> {
        let mut w = lock(&self.writer);
        self.check_poison()?;
        self.rotate(&mut w)?;
        Ok(w.seq)
    }

    /// Seals the active segment and switches to the next one. Called with the append lock held
    /// by the flush leader. The seal and everything before it are durable before the next
    /// segment gets its name, so a segment exists on disk only when its predecessor is sealed.
    pub(super) fn rotate(&self, w: &mut Writer) -> Result<()> {
        let started = Instant::now();
        let _span = tracing::info_span!("wal.rotate", seq = w.seq.0).entered();
        let sealed_point = self.seal(w)?;
        let (seal_lsn, end, next) = (sealed_point.lsn, sealed_point.end, w.seq.next());
        // The seal is the last frame of its segment: nothing is left to write in it.
        debug_assert!(w.pending.is_empty() && w.next_lsn == seal_lsn.next());
        // Readers may read up to the seal but not past it until the next segment exists: a
        // reader that saw the seal would open a file not yet installed (and report it
        // truncated). The commits before the seal are durable now; waiters go on at once.
        // The written point stops before the seal too: under `Interval` or `Never` a syncer
        // may run now, and the durable point it publishes must not show the seal either.
        let before_seal = Point {
            end: end - wal_format::frame::encoded_frame_len(8) as u64,
            ..sealed_point
        };
        self.set_written_and_durable(before_seal);
        {
            let mut segs = lock(&self.segments);
            if let Some(s) = segs.last_mut() {
                s.sealed = true;
                s.last_lsn = seal_lsn;
                s.bytes = end;
            }
        }
        let oldest_open = {
            let mut streams = lock(&self.streams);
            streams.boundary();
            streams.oldest_open().unwrap_or(Lsn::ZERO)
        };
        let header = SegmentHeader {
            log_id: self.log_id,
            seq: next,
            base_lsn: w.next_lsn,
            oldest_open_lsn: oldest_open,
            recycled: false,
            payload_schema: self.opts.payload_schema.unwrap_or(0),
        };
        let (file, header) = self
            .install_segment(header, true)
            .map_err(|e| self.poison(e))?;
        debug_assert_eq!(
            header.base_lsn,
            seal_lsn.next(),
            "LSNs are dense across segments"
        );
        w.file = file;
        w.seq = next;
        w.seed = header.seed();
        w.recycled = header.recycled;
        w.write_pos = SEGMENT_HEADER_LEN as u64;
        lock(&self.segments).push(SegmentInfo {
            seq: next,
            base_lsn: header.base_lsn,
            last_lsn: header.base_lsn.prev(),
            bytes: SEGMENT_HEADER_LEN as u64,
            sealed: false,
            oldest_open_lsn: oldest_open,
        });
        {
            let p = Point {
                lsn: seal_lsn,
                seq: next,
                end: SEGMENT_HEADER_LEN as u64,
            };
            self.set_written_and_durable(p);
        }
        self.counters.rotations.fetch_add(1, Ordering::Relaxed);
        {
            let mut p = lock(&self.pace);
            let now = Instant::now();
            p.last_fill = Some(now.saturating_duration_since(p.segment_started));
            p.segment_started = now;
        }
        tracing::info!(
            next = next.0,
            elapsed_us = started.elapsed().as_micros() as u64,
            "rotated"
        );
        Ok(())
    }

    /// Appends the `Seal` frame (naming the next segment) to the pending frames, writes them
    /// at the end of the active segment and fsyncs it. Returns where the seal is: its LSN,
    /// the segment and the offset just past it.
    fn seal(&self, w: &mut Writer) -> Result<Point> {
        let seal_lsn = w.next_lsn;
        let next = w.seq.next();
        self.encoder(w).frame(
            &mut w.pending,
            FrameKind::Seal,
            FrameFlags::NONE,
            seal_lsn,
            &next.0.to_le_bytes(),
        )?;
        w.next_lsn = seal_lsn.next();
        self.assigned_lsn.store(seal_lsn.0, Ordering::Release);
        let old_path = self.path(&segment_file_name(w.seq));
        let pos = w.write_pos;
        let commits = std::mem::take(&mut w.pending_commits);
        if let Err(e) = w.file.write_all_at(&w.pending, pos) {
            return Err(self.poison(io_err("write", &old_path)(e)));
        }
        let end = pos + w.pending.len() as u64;
        self.counters.appends.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes
            .fetch_add(w.pending.len() as u64, Ordering::Relaxed);
        self.counters.commits.fetch_add(commits, Ordering::Relaxed);
        w.pending.clear();
        w.pending_last = seal_lsn;
        if let Err(e) = w.file.sync_data() {
            return Err(self.poison(io_err("fsync", &old_path)(e)));
        }
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        Ok(Point {
            lsn: seal_lsn,
            seq: w.seq,
            end,
        })
    }

    /// Gives segment `header.seq` its header and name, and returns its file and the header as
    /// written. With `reuse` it takes a recycled file when the pool holds one (marking the
    /// header `recycled` and writing an end marker after it), else the preallocated file
    /// when ready (or creates it now); then it syncs the header, renames the file into place
    /// and syncs the directory. Then the preallocator is asked for the next one.
    pub(crate) fn install_segment(
        &self,
        mut header: SegmentHeader,
        reuse: bool,
    ) -> Result<(Arc<dyn VfsFile>, SegmentHeader)> {
        let target = self.path(&segment_file_name(header.seq));
        // Never rename over an existing segment, whatever the in-memory state says.
        if self.opts.vfs.open(&target, OpenMode::Read).is_ok() {
            return Err(WalError::Corrupt(Damage {
                segment: target,
                offset: 0,
                reason:
                    "a segment with this sequence number already exists; refusing to overwrite it"
                        .into(),
            }));
        }
        if reuse && let Some(file) = self.install_recycled(&mut header, &target)? {
            return Ok((file, header));
        }
        header.recycled = false;
        let tmp = self.path(PREALLOC_FILE);
        let ready = self.claim_prealloc(reuse);
        let file = match ready {
            Some(f) => f,
            None => match self.create_prealloc_file() {
                Ok(f) => f,
                Err(e) => {
                    self.release_prealloc();
                    return Err(e);
                }
            },
        };
        let named = self.name_segment(&*file, &header.encode(), &tmp, &target);
        self.release_prealloc();
        named?;
        Ok((file, header))
    }

    /// Turns the oldest recycled file into segment `header.seq` at `target`, or returns `None`
    /// when the pool is empty. The new header and an end marker after it are synced before
    /// the rename, so under its new name the file never shows stale frames as its tail.
    pub(super) fn install_recycled(
        &self,
        header: &mut SegmentHeader,
        target: &Path,
    ) -> Result<Option<Arc<dyn VfsFile>>> {
        loop {
            let Some(from) = lock(&self.recycle_pool).pop_front() else {
                return Ok(None);
            };
            let file = match self.opts.vfs.open(&from, OpenMode::ReadWrite) {
                Ok(f) => f,
                // Removed behind our back: nothing to reuse, try the next one.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("open", &from)(e)),
            };
            header.recycled = true;
            if self.opts.preallocate {
                let len = file.len().map_err(io_err("stat", &from))?;
                if len < self.opts.segment_size {
                    file.allocate(self.opts.segment_size)
                        .map_err(io_err("allocate", &from))?;
                }
            }
            let mut head = Vec::with_capacity(SEGMENT_HEADER_LEN + FRAME_HEADER_LEN);
            head.extend_from_slice(&header.encode());
            head.extend_from_slice(&[0; FRAME_HEADER_LEN]);
            self.name_segment(&*file, &head, &from, target)?;
            self.counters.recycled.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(from = %from.display(), to = %target.display(), "recycled a segment file");
            return Ok(Some(file));
        }
    }

    /// The last steps of installing a segment, for a fresh or a recycled file: writes `head`
    /// (the header, and for a recycled file the end marker) at offset 0 and syncs it, then
    /// renames `from` to `target` and syncs the directory. The header is durable before the
    /// name is, so a segment name never shows a file's old header.
    pub(super) fn name_segment(
        &self,
        file: &dyn VfsFile,
        head: &[u8],
        from: &Path,
        target: &Path,
    ) -> Result<()> {
        file.write_all_at(head, 0)
            .map_err(io_err("write header", from))?;
        file.sync_data().map_err(io_err("fsync", from))?;
        self.opts
            .vfs
            .rename(from, target)
            .map_err(io_err("rename", target))?;
        self.opts
            .vfs
            .sync_dir(&self.dir)
            .map_err(io_err("fsync dir", &self.dir))
    }
}
