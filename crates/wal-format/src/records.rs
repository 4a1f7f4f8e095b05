use crate::error::FormatError;
use crate::header::arr4;
use bytes::Bytes;

/// Appends a multi-record transaction body: a record count (u32 LE), then for each record its
/// length (u32 LE) and bytes. Used for atomic batches of several payloads, marked with
/// [`crate::FLAG_MULTI`].
pub fn encode_records<R: AsRef<[u8]>>(out: &mut Vec<u8>, records: &[R]) {
    out.reserve(records_len(records));
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for r in records {
        let r = r.as_ref();
        out.extend_from_slice(&(r.len() as u32).to_le_bytes());
        out.extend_from_slice(r);
    }
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
    pos: usize,
    remaining: u32,
    failed: bool,
}

impl RecordIter {
    /// Starts iterating `body`.
    #[must_use]
    pub fn new(body: Bytes) -> RecordIter {
        let mut it = RecordIter {
            body,
            pos: 4,
            remaining: 0,
            failed: false,
        };
        match it.body.get(0..4) {
            Some(c) => it.remaining = u32::from_le_bytes(arr4(c)),
            None => it.pos = 0,
        }
        it
    }

    fn fail(&mut self, reason: String) -> Option<Result<Bytes, FormatError>> {
        self.failed = true;
        Some(Err(FormatError::BadRecords { reason }))
    }
}

impl Iterator for RecordIter {
    type Item = Result<Bytes, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.pos == 0 {
            return self.fail(format!(
                "body of {} bytes has no record count",
                self.body.len()
            ));
        }
        if self.remaining == 0 {
            if self.pos != self.body.len() {
                let extra = self.body.len() - self.pos;
                return self.fail(format!("{extra} bytes after the last record"));
            }
            return None;
        }
        let Some(l) = self.body.get(self.pos..self.pos + 4) else {
            return self.fail(format!("record length at {} runs past the body", self.pos));
        };
        let len = u32::from_le_bytes(arr4(l)) as usize;
        let start = self.pos + 4;
        if len > self.body.len() - start {
            return self.fail(format!(
                "record of {len} bytes at {start} runs past the body"
            ));
        }
        self.pos = start + len;
        self.remaining -= 1;
        Some(Ok(self.body.slice(start..start + len)))
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
