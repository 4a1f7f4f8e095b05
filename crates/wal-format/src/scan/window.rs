//! Positional reads of a file ([`ReadAt`]) and a window of its bytes read a piece at a time
//! into one reused buffer ([`ReadWindow`]): what the chunked scanner, and a log's readers,
//! read segments through.

use bytes::{Bytes, BytesMut};
use std::io;
use std::ops::Range;

/// Positional reads of one segment's bytes, like `pread(2)`: what a [`ChunkedScanner`](super::ChunkedScanner) reads
/// from. This crate does no I/O itself; the log implements this for its files.
pub trait ReadAt {
    /// Reads up to `buf.len()` bytes at `offset` and returns how many were read; fewer only
    /// at the end of the data (0 at or past it), or when the source reads in pieces (the
    /// scanner then asks again).
    ///
    /// # Errors
    /// The source's I/O error; the scanner passes it on unchanged.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.as_slice().read_at(buf, offset)
    }
}

impl ReadAt for Bytes {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.as_ref().read_at(buf, offset)
    }
}

/// The bytes of a file from one offset on, read through a [`ReadAt`] into a buffer that is
/// reused from one load to the next.
///
/// Views handed out ([`ReadWindow::bytes`] and slices of it) stay valid: a load reuses the
/// buffer only when nothing else refers to it, and reads into a new one otherwise.
///
/// Why it is not a plain `BytesMut` resized to each read: a buffer keeps the length it was
/// once initialised to, and the window's length is kept apart, so a load reads into memory
/// that was written before rather than zero-filling it again (zeroing was 40% of a replay's
/// instructions at 4 KiB records, ADR 0012). And a load at an offset the window already holds
/// keeps those bytes (moved to the front) and reads only the rest, so a frame cut by the end
/// of a load is not read twice.
///
/// ```
/// use wal_format::scan::ReadWindow;
///
/// let file: Vec<u8> = (0..100u8).collect();
/// let mut w = ReadWindow::new();
/// let fresh = w.load(&file, 10, 20).unwrap();
/// assert_eq!((w.start(), &w.bytes()[..3], fresh), (10, &[10, 11, 12][..], 0..20));
/// // Bytes from offset 25 on are kept; only the new ones are read.
/// let fresh = w.load(&file, 25, 30).unwrap();
/// assert_eq!((w.start(), w.bytes().len(), fresh), (25, 30, 5..30));
/// // Past the end of the file the window is shorter than asked.
/// w.load(&file, 90, 30).unwrap();
/// assert_eq!(w.bytes().len(), 10);
/// ```
#[derive(Debug, Default)]
pub struct ReadWindow {
    /// The loaded bytes: a prefix of `backing`.
    bytes: Bytes,
    /// File offset of `bytes[0]`.
    at: u64,
    /// The whole buffer `bytes` views, at its full initialised length.
    backing: Bytes,
    /// A buffer to read into when `backing` is still referenced elsewhere.
    spare: Option<BytesMut>,
}

impl ReadWindow {
    /// An empty window at offset 0.
    #[must_use]
    pub fn new() -> ReadWindow {
        ReadWindow::default()
    }

    /// An empty window at `offset`.
    #[must_use]
    pub fn at(offset: u64) -> ReadWindow {
        ReadWindow {
            at: offset,
            ..ReadWindow::default()
        }
    }

    /// Gives the window a buffer to read into (for example one that
    /// [`ReadWindow::into_buffer`] returned), so reading many files allocates once.
    pub fn give_buffer(&mut self, buf: BytesMut) {
        self.spare = Some(buf);
    }

    /// The window's buffer, for another window, unless a view of it is still held elsewhere.
    #[must_use]
    pub fn into_buffer(self) -> Option<BytesMut> {
        drop(self.bytes);
        match self.backing.try_into_mut() {
            Ok(m) if m.capacity() > 0 => Some(m),
            _ => self.spare,
        }
    }

    /// The loaded bytes (from file offset [`ReadWindow::start`]).
    #[must_use]
    #[inline]
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// File offset of the first loaded byte.
    #[must_use]
    #[inline]
    pub fn start(&self) -> u64 {
        self.at
    }

    /// File offset just past the last loaded byte.
    #[must_use]
    #[inline]
    pub fn end(&self) -> u64 {
        self.at + self.bytes.len() as u64
    }

    /// Makes the window hold the file's bytes from `at` on: `want` of them, fewer only where
    /// `src` ends. Bytes from `at` on that the window already holds are kept, not read again.
    /// Returns the range of the window that was read now (the rest was kept).
    ///
    /// # Errors
    /// An I/O error of `src`; the window is then empty at `at`, and a retry reads it all.
    pub fn load<R: ReadAt + ?Sized>(
        &mut self,
        src: &R,
        at: u64,
        want: usize,
    ) -> io::Result<Range<usize>> {
        let keep = if at >= self.at && at < self.end() {
            (at - self.at) as usize..self.bytes.len().min((at - self.at) as usize + want)
        } else {
            0..0
        };
        let kept = keep.len();
        let mut buf = self.take_buffer(want, keep);
        self.at = at;
        let mut done = kept;
        let filled = loop {
            if done == want {
                break Ok(());
            }
            match src.read_at(&mut buf[done..want], at + done as u64) {
                Ok(0) => break Ok(()),
                Ok(n) => done += n,
                Err(e) => break Err(e),
            }
        };
        let full = buf.freeze();
        if filled.is_err() {
            done = 0;
        }
        self.bytes = full.slice(..done);
        self.backing = full;
        debug_assert!(self.bytes.len() <= want);
        filled.map(|()| kept..done)
    }

    /// A buffer of at least `want` initialised bytes whose first `keep.len()` are the window's
    /// bytes `keep`: the window's own buffer when nothing else refers to it, else the spare or a
    /// new one. Zeroes only memory that was never initialised.
    fn take_buffer(&mut self, want: usize, keep: Range<usize>) -> BytesMut {
        // `bytes` is a prefix of `backing`: once it is dropped, `keep` indexes `backing` too.
        drop(std::mem::take(&mut self.bytes));
        let kept = keep.len();
        let mut buf = match std::mem::take(&mut self.backing).try_into_mut() {
            Ok(mut m) if m.capacity() >= want => {
                if keep.start > 0 {
                    m.copy_within(keep, 0);
                }
                m
            }
            Ok(m) => {
                let mut buf = self.fresh(want);
                buf[..kept].copy_from_slice(&m[keep]);
                buf
            }
            Err(shared) => {
                // Views of the old buffer are still held: read into another as large (so that
                // the buffer handed on keeps the size loads had).
                let mut buf = self.fresh(want.max(shared.len()));
                buf[..kept].copy_from_slice(&shared[keep]);
                buf
            }
        };
        if buf.len() < want {
            // Only memory never initialised is zeroed, once: the length stays.
            buf.resize(want, 0);
        }
        buf
    }

    /// At least `want` initialised bytes: the spare when it can hold them, else a new buffer
    /// (allocated zeroed: large ones come from the kernel already zero, with no memset).
    fn fresh(&mut self, want: usize) -> BytesMut {
        match self.spare.take() {
            Some(mut m) if m.capacity() >= want => {
                if m.len() < want {
                    m.resize(want, 0);
                }
                m
            }
            other => {
                self.spare = other;
                BytesMut::zeroed(want)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn file() -> Vec<u8> {
        (0..=255u8).cycle().take(10_000).collect()
    }

    #[test]
    fn every_load_holds_exactly_the_files_bytes() {
        let f = file();
        let mut w = ReadWindow::new();
        for (at, want) in [
            (0, 100),
            (50, 100),
            (149, 1),
            (149, 4000),
            (9_990, 100),
            (20, 5),
        ] {
            let fresh = w.load(&f, at, want).unwrap();
            let end = (at as usize + want).min(f.len());
            assert_eq!(
                &w.bytes()[..],
                &f[at as usize..end],
                "load at {at} of {want}"
            );
            assert_eq!(w.start(), at);
            assert!(fresh.end == w.bytes().len());
        }
    }

    #[test]
    fn a_held_view_keeps_its_bytes_and_the_buffer_comes_back_once_free() {
        let f = file();
        let mut w = ReadWindow::new();
        w.load(&f, 0, 1000).unwrap();
        let held = w.bytes().slice(10..20);
        // Keeps 500..1000 in a new buffer, since `held` refers to the old one.
        assert_eq!(w.load(&f, 500, 1000).unwrap(), 500..1000);
        assert_eq!(&held[..], &f[10..20]);
        assert_eq!(&w.bytes()[..], &f[500..1500]);
        drop(held);
        let buf = w.into_buffer().expect("no view is held");
        assert!(buf.len() >= 1000);
        let mut v = ReadWindow::at(7);
        v.give_buffer(buf);
        assert_eq!(v.start(), 7);
        v.load(&f, 7, 3).unwrap();
        assert_eq!(&v.bytes()[..], &f[7..10]);
    }

    /// A source that fails once, then reads.
    struct Flaky(std::cell::Cell<bool>, Vec<u8>);

    impl ReadAt for Flaky {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            if self.0.replace(false) {
                return Err(io::Error::other("flaky"));
            }
            self.1.read_at(buf, offset)
        }
    }

    #[test]
    fn an_error_leaves_an_empty_window_and_a_retry_reads_it_all() {
        let src = Flaky(std::cell::Cell::new(true), file());
        let mut w = ReadWindow::new();
        assert!(w.load(&src, 3, 10).is_err());
        assert!(w.bytes().is_empty());
        assert_eq!(w.load(&src, 3, 10).unwrap(), 0..10);
        assert_eq!(&w.bytes()[..], &src.1[3..13]);
    }
}
