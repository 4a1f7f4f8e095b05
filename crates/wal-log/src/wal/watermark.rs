//! The final durable watermark of a clean close (docs/format.md 7.3).

use super::{Inner, lock};
use crate::error::{Result, io_err};
use crate::layout::segment_file_name;
use std::sync::atomic::Ordering;
use wal_format::Lsn;
use wal_format::frame::FRAME_HEADER_LEN;

impl Inner {
    /// After the close's last fsync: writes a `Watermark` frame claiming every frame durable
    /// and fsyncs it. Recovery then calls damage anywhere in the last flush corruption
    /// instead of a torn tail: nothing after a clean close was ever unsynced.
    ///
    /// Writes nothing when nothing was appended after LSN `since` (the end at the open: a
    /// log opened only to be read stays as it was), or when something appended is not
    /// durable yet (another handle, a stream, is still writing: its flushes make their own
    /// claims). A failure poisons the log, as any failed write or fsync does.
    pub(crate) fn write_close_watermark(&self, since: Lsn) -> Result<()> {
        let mut w = lock(&self.writer);
        self.check_poison()?;
        let last = w.next_lsn.prev();
        let durable = Lsn(self.durable_lsn.load(Ordering::Acquire));
        if !w.pending.is_empty() || durable != last || last <= since {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(2 * FRAME_HEADER_LEN);
        self.encoder(&w).watermark(&mut buf, last)?;
        let frame_len = buf.len() as u64;
        if w.recycled {
            // As every write to a recycled file: an end marker after the data.
            buf.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        }
        let pos = w.write_pos;
        let path = self.path(&segment_file_name(w.seq));
        if let Err(e) = w.file.write_all_at(&buf, pos) {
            return Err(self.poison(io_err("write", &path)(e)));
        }
        if let Err(e) = w.file.sync_data() {
            return Err(self.poison(io_err("fsync", &path)(e)));
        }
        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        w.write_pos = pos + frame_len;
        Ok(())
    }
}
