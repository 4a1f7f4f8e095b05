//! The records a Raft log store writes, one per payload of a log transaction: a tag byte, then
//! the value in bincode (serde). An entry record puts its log id before the entry, so a reopen
//! rebuilds the index by decoding only the ids.
//!
//! | tag | kind | value |
//! | --- | --- | --- |
//! | 1 | vote | `Vote` |
//! | 2 | committed | `Option<LogId>` |
//! | 3 | entry | `LogId`, then the entry |
//! | 4 | truncate | `u64`: entries from this index on are gone |
//! | 5 | state | [`StateRecord`]: entries up to `purged` are gone; vote and committed restated |
//!
//! A state record is written by every purge, so that removing the log's oldest segments
//! never removes the last vote, committed id or purged id.

use crate::error::{RaftStoreError, Result};
use bincode::config::{Configuration, standard};
use openraft::{LogId, NodeId, Vote};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wal_log::Lsn;

const VOTE: u8 = 1;
const COMMITTED: u8 = 2;
const ENTRY: u8 = 3;
const TRUNCATE: u8 = 4;
const STATE: u8 = 5;

fn config() -> Configuration {
    standard()
}

/// What a purge leaves behind, restated so that no earlier segment is needed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct StateRecord<NID: NodeId> {
    /// Entries up to this id are gone.
    pub(crate) purged: Option<LogId<NID>>,
    /// The vote when the purge was written.
    pub(crate) vote: Option<Vote<NID>>,
    /// The committed id when the purge was written.
    pub(crate) committed: Option<LogId<NID>>,
}

/// One decoded record. An entry's bytes stay encoded: only its id is needed to index it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Record<'a, NID: NodeId> {
    Vote(Vote<NID>),
    Committed(Option<LogId<NID>>),
    Entry { log_id: LogId<NID>, body: &'a [u8] },
    Truncate(u64),
    State(StateRecord<NID>),
}

/// bincode's output straight into a `Vec`. serde hands a `Vec<u8>` payload over byte by
/// byte; a one-byte write is a `push` (a `memcpy` call per byte costs several times more).
struct Out<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for Out<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), bincode::error::EncodeError> {
        match bytes {
            [b] => self.0.push(*b),
            _ => self.0.extend_from_slice(bytes),
        }
        Ok(())
    }
}

fn encode<T: Serialize>(tag: u8, kind: &'static str, v: &T, out: &mut Vec<u8>) -> Result<()> {
    out.push(tag);
    bincode::serde::encode_into_writer(v, Out(out), config())
        .map_err(|source| RaftStoreError::Encode { kind, source })
}

pub(crate) fn vote<NID: NodeId>(v: &Vote<NID>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode(VOTE, "vote", v, &mut out)?;
    Ok(out)
}

pub(crate) fn committed<NID: NodeId>(c: &Option<LogId<NID>>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode(COMMITTED, "committed", c, &mut out)?;
    Ok(out)
}

pub(crate) fn truncate(index: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode(TRUNCATE, "truncate", &index, &mut out)?;
    Ok(out)
}

pub(crate) fn state<NID: NodeId>(s: &StateRecord<NID>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode(STATE, "state", s, &mut out)?;
    Ok(out)
}

/// Appends the record of entry `e` to `out` (one buffer for all the entries of an append, so
/// an append allocates once, not once per entry).
pub(crate) fn entry<NID: NodeId, E: Serialize>(
    log_id: &LogId<NID>,
    e: &E,
    out: &mut Vec<u8>,
) -> Result<()> {
    encode(ENTRY, "entry", log_id, out)?;
    bincode::serde::encode_into_writer(e, Out(out), config()).map_err(|source| {
        RaftStoreError::Encode {
            kind: "entry",
            source,
        }
    })
}

fn decode_value<T: DeserializeOwned>(lsn: Lsn, kind: &'static str, b: &[u8]) -> Result<(T, usize)> {
    bincode::serde::decode_from_slice(b, config()).map_err(|source| RaftStoreError::Decode {
        lsn,
        kind,
        source,
    })
}

/// Decodes a whole-value record, refusing bytes left over after the value.
fn decode_whole<T: DeserializeOwned>(lsn: Lsn, kind: &'static str, b: &[u8]) -> Result<T> {
    let (v, used) = decode_value(lsn, kind, b)?;
    if used != b.len() {
        return Err(RaftStoreError::Decode {
            lsn,
            kind,
            source: bincode::error::DecodeError::OtherString(format!(
                "{} bytes left over after the value",
                b.len() - used
            )),
        });
    }
    Ok(v)
}

/// Decodes one record of the transaction at `lsn`.
pub(crate) fn decode<NID: NodeId>(lsn: Lsn, b: &[u8]) -> Result<Record<'_, NID>> {
    let Some((&tag, rest)) = b.split_first() else {
        return Err(RaftStoreError::UnknownRecord { lsn, tag: 0 });
    };
    Ok(match tag {
        VOTE => Record::Vote(decode_whole(lsn, "vote", rest)?),
        COMMITTED => Record::Committed(decode_whole(lsn, "committed", rest)?),
        ENTRY => {
            let (log_id, used) = decode_value(lsn, "entry", rest)?;
            Record::Entry {
                log_id,
                body: &rest[used..],
            }
        }
        TRUNCATE => Record::Truncate(decode_whole(lsn, "truncate", rest)?),
        STATE => Record::State(decode_whole(lsn, "state", rest)?),
        tag => return Err(RaftStoreError::UnknownRecord { lsn, tag }),
    })
}

/// Decodes an entry's body (see [`Record::Entry`]).
pub(crate) fn decode_entry<E: DeserializeOwned>(lsn: Lsn, body: &[u8]) -> Result<E> {
    decode_whole(lsn, "entry", body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use openraft::CommittedLeaderId;
    use proptest::prelude::*;

    fn id(term: u64, node: u64, index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(term, node), index)
    }

    proptest! {
        /// Every record kind decodes to what was encoded; any prefix cut short is an error,
        /// never another record.
        #[test]
        fn records_round_trip_and_refuse_cut_bytes(
            term in 0u64..1 << 40, node in any::<u64>(), index in any::<u64>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            voted in any::<bool>(),
        ) {
            let lsn = Lsn(7);
            let v = if voted { Vote::new_committed(term, node) } else { Vote::new(term, node) };
            let s = StateRecord { purged: Some(id(term, node, index)), vote: Some(v), committed: None };
            let cases = [
                (vote(&v).unwrap(), Record::Vote(v)),
                (committed(&Some(id(term, node, index))).unwrap(), Record::Committed(Some(id(term, node, index)))),
                (truncate(index).unwrap(), Record::Truncate(index)),
                (state(&s).unwrap(), Record::State(s.clone())),
            ];
            for (bytes, want) in cases {
                prop_assert_eq!(decode::<u64>(lsn, &bytes).unwrap(), want);
                for cut in 1..bytes.len() {
                    prop_assert!(decode::<u64>(lsn, &bytes[..cut]).is_err());
                }
            }
            // Appended after what the shared buffer already holds, leaving it alone.
            let mut buf = vec![0xee; 3];
            entry(&id(term, node, index), &payload, &mut buf).unwrap();
            prop_assert_eq!(&buf[..3], &[0xee; 3]);
            let Record::Entry { log_id, body } = decode::<u64>(lsn, &buf[3..]).unwrap() else {
                panic!("not an entry");
            };
            prop_assert_eq!(log_id, id(term, node, index));
            prop_assert_eq!(decode_entry::<Vec<u8>>(lsn, body).unwrap(), payload);
        }
    }

    #[test]
    fn an_unknown_tag_is_typed() {
        assert!(matches!(
            decode::<u64>(Lsn(3), &[9, 1, 2]),
            Err(RaftStoreError::UnknownRecord {
                lsn: Lsn(3),
                tag: 9
            })
        ));
        assert!(matches!(
            decode::<u64>(Lsn(3), &[]),
            Err(RaftStoreError::UnknownRecord { tag: 0, .. })
        ));
    }
}
