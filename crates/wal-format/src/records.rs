//! The multi-record transaction body (`FLAG_MULTI`): encoding, validation and iteration.

use crate::error::FormatError;
use crate::header::arr4;
use bytes::Bytes;
use std::ops::Range;

/// Appends a multi-record transaction body: a record count (u32 LE), then for each record its
/// length (u32 LE) and bytes. Used for atomic batches of several payloads, marked with
/// [`crate::frame::FLAG_MULTI`]. The batch must pass [`check_records`].
pub fn encode_records<R: AsRef<[u8]>>(out: &mut Vec<u8>, records: &[R]) {
    out.reserve(records_len(records));
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for r in records {
        let r = r.as_ref();
        out.extend_from_slice(&(r.len() as u32).to_le_bytes());
        out.extend_from_slice(r);
    }
}

/// The multi-record body of `records` as the pieces [`encode_records`] would copy, in order,
/// without copying any record: the framing (count and length prefixes) comes from `prefixes`,
/// which is cleared and refilled (so a caller can reuse it), and each record is borrowed.
/// Concatenated, the pieces are exactly the body; with [`crate::frame::FrameSum`] they let a log
/// write a large batch straight from the caller's buffers.
///
/// ```
/// let records = [&b"a"[..], &b"bc"[..]];
/// let mut prefixes = Vec::new();
/// let body: Vec<u8> = wal_format::records::records_body_pieces(&records, &mut prefixes).flatten().copied().collect();
/// let mut encoded = Vec::new();
/// wal_format::records::encode_records(&mut encoded, &records);
/// assert_eq!(body, encoded);
/// ```
pub fn records_body_pieces<'a, R: AsRef<[u8]>>(
    records: &'a [R],
    prefixes: &'a mut Vec<[u8; 4]>,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    prefixes.clear();
    prefixes.reserve(records.len() + 1);
    prefixes.push((records.len() as u32).to_le_bytes());
    prefixes.extend(
        records
            .iter()
            .map(|r| (r.as_ref().len() as u32).to_le_bytes()),
    );
    let prefixes: &'a [[u8; 4]] = prefixes;
    let (count, lens) = prefixes.split_at(1);
    count.iter().map(|c| &c[..]).chain(
        lens.iter()
            .zip(records)
            .flat_map(|(l, r)| [&l[..], r.as_ref()]),
    )
}

/// Checks that `records` can be encoded as one multi-record body: at most `u32::MAX` records,
/// each of at most `u32::MAX` bytes (the body stores both as 32-bit integers; the encoders
/// would otherwise truncate them and write a body whose framing verifies but does not decode).
///
/// # Errors
/// [`FormatError::BatchTooLarge`] naming the first limit exceeded.
pub fn check_records<R: AsRef<[u8]>>(records: &[R]) -> Result<(), FormatError> {
    if u32::try_from(records.len()).is_err() {
        return Err(FormatError::BatchTooLarge {
            reason: format!("{} records, more than {}", records.len(), u32::MAX),
        });
    }
    if let Some((i, r)) = records
        .iter()
        .enumerate()
        .find(|(_, r)| u32::try_from(r.as_ref().len()).is_err())
    {
        return Err(FormatError::BatchTooLarge {
            reason: format!(
                "record {i} is {} bytes, more than {}",
                r.as_ref().len(),
                u32::MAX
            ),
        });
    }
    Ok(())
}

/// Encoded length of a multi-record body holding `records`.
#[must_use]
pub fn records_len<R: AsRef<[u8]>>(records: &[R]) -> usize {
    4 + records.iter().map(|r| 4 + r.as_ref().len()).sum::<usize>()
}

/// Iterates the records of a multi-record body, as zero-copy slices of it.
///
/// Yields an error (once, then ends) when the body is malformed: a count or length that runs
/// past the end, or bytes left over after the last record.
#[derive(Debug, Clone)]
pub struct RecordIter {
    body: Bytes,
    cursor: Cursor,
}

impl RecordIter {
    /// Starts iterating `body`.
    #[must_use]
    pub fn new(body: Bytes) -> RecordIter {
        let cursor = Cursor::new(&body);
        RecordIter { body, cursor }
    }
}

impl Iterator for RecordIter {
    type Item = Result<Bytes, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        let r = self.cursor.next(&self.body)?;
        Some(r.map(|range| self.body.slice(range)))
    }
}

/// [`RecordIter`] over a borrowed body: the same records and the same error, as plain
/// slices (no reference counting), for a reader that does not keep them.
#[derive(Debug, Clone)]
pub struct RecordSlices<'a> {
    body: &'a [u8],
    cursor: Cursor,
}

/// Iterates the records of a multi-record body as slices of it; see [`RecordSlices`].
#[must_use]
pub fn record_slices(body: &[u8]) -> RecordSlices<'_> {
    RecordSlices {
        body,
        cursor: Cursor::new(body),
    }
}

impl<'a> Iterator for RecordSlices<'a> {
    type Item = Result<&'a [u8], FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        let body = self.body;
        let r = self.cursor.next(body)?;
        Some(r.map(|range| &body[range]))
    }
}

/// Where an iteration over a multi-record body is.
#[derive(Debug, Clone)]
struct Cursor {
    pos: usize,
    remaining: u32,
    failed: bool,
}

impl Cursor {
    fn new(body: &[u8]) -> Cursor {
        match body.get(0..4) {
            Some(c) => Cursor {
                pos: 4,
                remaining: u32::from_le_bytes(arr4(c)),
                failed: false,
            },
            None => Cursor {
                pos: 0,
                remaining: 0,
                failed: false,
            },
        }
    }

    fn fail(&mut self, reason: String) -> Option<Result<Range<usize>, FormatError>> {
        self.failed = true;
        Some(Err(FormatError::BadRecords { reason }))
    }

    /// The byte range of the next record of `body`.
    #[inline]
    fn next(&mut self, body: &[u8]) -> Option<Result<Range<usize>, FormatError>> {
        if self.failed {
            return None;
        }
        if self.pos == 0 {
            return self.fail(format!("body of {} bytes has no record count", body.len()));
        }
        if self.remaining == 0 {
            if self.pos != body.len() {
                let extra = body.len() - self.pos;
                return self.fail(format!("{extra} bytes after the last record"));
            }
            return None;
        }
        let Some(l) = body.get(self.pos..self.pos + 4) else {
            return self.fail(format!("record length at {} runs past the body", self.pos));
        };
        let len = u32::from_le_bytes(arr4(l)) as usize;
        let start = self.pos + 4;
        if len > body.len() - start {
            return self.fail(format!(
                "record of {len} bytes at {start} runs past the body"
            ));
        }
        self.pos = start + len;
        self.remaining -= 1;
        Some(Ok(start..start + len))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let mut out = Vec::new();
        encode_records(&mut out, &[&b"a"[..], b"", b"ccc"]);
        assert_eq!(out.len(), records_len(&[&b"a"[..], b"", b"ccc"]));
        let got: Vec<_> = RecordIter::new(Bytes::from(out))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got, [&b"a"[..], b"", b"ccc"]);
    }

    #[test]
    fn slices_agree_with_the_bytes_iterator() {
        let mut ok = Vec::new();
        encode_records(&mut ok, &[&b"a"[..], b"", b"ccc"]);
        for body in [
            &ok[..],
            &b""[..],
            &[1, 0, 0, 0][..],
            &[1, 0, 0, 0, 9, 0, 0, 0, 1][..],
            &[0, 0, 0, 0, 7][..],
        ] {
            let a: Vec<_> = RecordIter::new(Bytes::copy_from_slice(body))
                .map(|r| r.map(|b| b.to_vec()).map_err(|e| e.to_string()))
                .collect();
            let b: Vec<_> = record_slices(body)
                .map(|r| r.map(<[u8]>::to_vec).map_err(|e| e.to_string()))
                .collect();
            assert_eq!(a, b, "{body:?}");
        }
    }

    #[test]
    fn malformed_bodies_error_once() {
        for body in [
            &b""[..],
            &[1, 0, 0, 0][..],
            &[1, 0, 0, 0, 9, 0, 0, 0, 1][..],
            &[0, 0, 0, 0, 7][..],
        ] {
            let mut it = RecordIter::new(Bytes::copy_from_slice(body));
            assert!(
                matches!(it.next(), Some(Err(FormatError::BadRecords { .. }))),
                "{body:?}"
            );
            assert!(it.next().is_none());
        }
    }
}
