//! The follower's replica: a log of its own in which every transaction is one transaction of
//! the primary, prefixed with the follower's position after it. The position and the
//! transaction are written by one append, so they are durable together: a follower killed at
//! any moment resumes exactly after the last transaction its replica holds, never skipping
//! one and never shipping one twice.
//!
//! A replica transaction is `position (44 bytes, FollowPosition::encode) | flags (1 byte,
//! bit 0: the primary's body is a multi-record batch) | the primary's body`.

use std::error::Error;
use std::path::Path;
use wal_log::{FollowPosition, Lsn, Options, Transaction, Wal};

/// Bit 0 of the flags byte: the shipped body is a batch.
const FLAG_MULTI: u8 = 1;

/// One shipped transaction as the replica holds it.
#[derive(Debug, PartialEq, Eq)]
pub struct Shipped<'a> {
    /// The follower's position after it: the primary's log id and the transaction's LSN there.
    pub position: FollowPosition,
    /// Whether the primary's body is a multi-record batch.
    pub multi: bool,
    /// The primary's body.
    pub body: &'a [u8],
}

/// Encodes one shipped transaction.
#[must_use]
pub fn encode(position: &FollowPosition, tx: &Transaction) -> Vec<u8> {
    let mut out = Vec::with_capacity(FollowPosition::ENCODED_LEN + 1 + tx.body.len());
    out.extend_from_slice(&position.encode());
    out.push(if tx.multi { FLAG_MULTI } else { 0 });
    out.extend_from_slice(&tx.body);
    out
}

/// Decodes a replica transaction's body.
///
/// # Errors
/// When the body is too short or its position does not decode.
pub fn decode(b: &[u8]) -> Result<Shipped<'_>, Box<dyn Error>> {
    let n = FollowPosition::ENCODED_LEN;
    if b.len() < n + 1 {
        return Err(format!("a replica transaction of {} bytes is too short", b.len()).into());
    }
    Ok(Shipped {
        position: FollowPosition::decode(&b[..n])?,
        multi: b[n] & FLAG_MULTI != 0,
        body: &b[n + 1..],
    })
}

/// The replica's log.
pub struct Replica {
    wal: Wal,
}

impl Replica {
    /// Opens (or creates) the replica's log in `dir`: every append durable
    /// (`SyncPolicy::Always`, group commit), its durable point published so that the replica
    /// itself can be tailed.
    ///
    /// # Errors
    /// As `Wal::open`.
    pub fn open(dir: &Path) -> Result<Replica, wal_log::WalError> {
        let opts = Options::default()
            .segment_size(4 << 20)
            .publish_durable(true);
        Ok(Replica {
            wal: Wal::open(dir, opts)?.0,
        })
    }

    /// Where the follower stands: the position stored with the last transaction the replica
    /// holds (`None` for an empty replica). Reads the newest segments only, going back one
    /// segment at a time while they hold no transaction.
    ///
    /// # Errors
    /// A read error, or a replica transaction that does not decode.
    pub fn position(&self) -> Result<Option<FollowPosition>, Box<dyn Error>> {
        let segments = self.wal.segments();
        for s in segments.iter().rev() {
            let from = s.base_lsn.max(self.wal.oldest_retained_lsn());
            let mut last = None;
            for t in self.wal.read_from(from)? {
                last = Some(t?);
            }
            if let Some(t) = last {
                return Ok(Some(decode(&t.body)?.position));
            }
        }
        Ok(None)
    }

    /// Appends `batch` (each with the position after it) and returns once all of it is
    /// durable: one group commit for the batch.
    ///
    /// # Errors
    /// As `Wal::append_queued` and `Wal::wait_durable`.
    pub fn ship(&self, batch: &[(FollowPosition, Transaction)]) -> Result<Lsn, wal_log::WalError> {
        let mut last = Lsn::ZERO;
        for (pos, tx) in batch {
            last = self.wal.append_queued(&encode(pos, tx))?;
        }
        if last > Lsn::ZERO {
            self.wal.wait_durable(last)?;
        }
        Ok(last)
    }
}
