//! A follower's place in a log, saved between runs: which log, and the last transaction it
//! has, so that a follower of a replaced, restored or salvaged primary is refused instead of
//! silently following another history.

use std::fmt;
use thiserror::Error;
use wal_format::{LogId, Lsn};

/// Magic of an encoded [`FollowPosition`].
const MAGIC: [u8; 8] = *b"\x89WALPOS\n";
/// Flag bit: the position carries the checksum of its frame.
const HAS_CRC: u8 = 1;

/// Where a follower stands in the log it follows: every transaction of log `log_id` that
/// commits at or before `lsn` is applied, and it resumes at `lsn + 1`.
///
/// Made by a reader ([`TxReader::position`](crate::TxReader::position),
/// [`TailReader::position`](crate::TailReader::position)) after each transaction it returns,
/// saved by the follower with what it applied (for example in the same transaction of its
/// replica, [`FollowPosition::encode`]), and given back to
/// [`Wal::follow_at`](crate::Wal::follow_at) or
/// [`TailReader::resume`](crate::TailReader::resume) on restart, which refuse:
///
/// * a log with another id ([`WalError::OtherLog`](crate::WalError::OtherLog)): the primary
///   was replaced by another log;
/// * a log whose end is before `lsn` ([`WalError::BeyondEnd`](crate::WalError::BeyondEnd)):
///   the primary was restored from an older copy, or lost its tail;
/// * a log whose frame at `lsn` is not the one the follower got
///   ([`WalError::Diverged`](crate::WalError::Diverged), when `crc` is known and the log still
///   holds that frame): the primary went back and took other commits at the same LSNs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FollowPosition {
    /// The log followed.
    pub log_id: LogId,
    /// The last LSN the follower has: the commit LSN of its last transaction, a snapshot's
    /// fence, or [`Lsn::ZERO`] before anything.
    pub lsn: Lsn,
    /// The stored CRC32C of the frame at `lsn`, when the follower got that frame's transaction
    /// from a reader; `None` for a position taken from a snapshot's fence or a start LSN.
    pub crc: Option<u32>,
}

/// Why bytes are not an encoded [`FollowPosition`].
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PositionError {
    /// Not [`FollowPosition::ENCODED_LEN`] bytes.
    #[error(
        "a follow position is {} bytes, not {len}",
        FollowPosition::ENCODED_LEN
    )]
    Length {
        /// The length given.
        len: usize,
    },
    /// The bytes do not start with the position's magic.
    #[error("not a follow position (bad magic)")]
    BadMagic,
    /// The checksum does not match: the bytes were damaged.
    #[error("follow position checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// The checksum stored.
        stored: u32,
        /// The checksum of the bytes.
        computed: u32,
    },
    /// Flags or reserved bytes this build does not know.
    #[error("follow position has unknown flags or reserved bytes set")]
    Reserved,
}

impl FollowPosition {
    /// Length of [`FollowPosition::encode`]'s output.
    pub const ENCODED_LEN: usize = 44;

    /// Before the first transaction of log `log_id`: a reader resumed here starts at LSN 1.
    #[must_use]
    pub fn start(log_id: LogId) -> FollowPosition {
        FollowPosition {
            log_id,
            lsn: Lsn::ZERO,
            crc: None,
        }
    }

    /// Just after `fence` in log `log_id`, with no checksum to check: the position of a state
    /// restored from a snapshot of that log with that fence.
    #[must_use]
    pub fn after_fence(log_id: LogId, fence: Lsn) -> FollowPosition {
        FollowPosition {
            log_id,
            lsn: fence,
            crc: None,
        }
    }

    /// The LSN a reader resumed at this position starts at.
    #[must_use]
    pub fn next(&self) -> Lsn {
        self.lsn.next()
    }

    /// The position as 44 bytes: magic `\x89WALPOS\n`, log id (u128 LE), LSN (u64 LE), CRC
    /// (u32 LE), flags (bit 0: the CRC is known), three zero bytes, and the CRC32C of the 40
    /// bytes before it (u32 LE).
    #[must_use]
    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut b = [0u8; Self::ENCODED_LEN];
        b[..8].copy_from_slice(&MAGIC);
        b[8..24].copy_from_slice(&self.log_id.as_u128().to_le_bytes());
        b[24..32].copy_from_slice(&self.lsn.0.to_le_bytes());
        b[32..36].copy_from_slice(&self.crc.unwrap_or(0).to_le_bytes());
        b[36] = if self.crc.is_some() { HAS_CRC } else { 0 };
        let sum = crc32c::crc32c(&b[..40]);
        b[40..].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// Decodes [`FollowPosition::encode`]'s bytes.
    ///
    /// # Errors
    /// [`PositionError`] saying why the bytes are not a position.
    pub fn decode(b: &[u8]) -> Result<FollowPosition, PositionError> {
        if b.len() != Self::ENCODED_LEN {
            return Err(PositionError::Length { len: b.len() });
        }
        if b[..8] != MAGIC {
            return Err(PositionError::BadMagic);
        }
        let stored = u32::from_le_bytes([b[40], b[41], b[42], b[43]]);
        let computed = crc32c::crc32c(&b[..40]);
        if stored != computed {
            return Err(PositionError::Checksum { stored, computed });
        }
        if b[36] & !HAS_CRC != 0 || b[37..40] != [0, 0, 0] {
            return Err(PositionError::Reserved);
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[8..24]);
        let mut lsn = [0u8; 8];
        lsn.copy_from_slice(&b[24..32]);
        let crc = u32::from_le_bytes([b[32], b[33], b[34], b[35]]);
        Ok(FollowPosition {
            log_id: LogId::from_u128(u128::from_le_bytes(id)),
            lsn: Lsn(u64::from_le_bytes(lsn)),
            crc: (b[36] & HAS_CRC != 0).then_some(crc),
        })
    }
}

impl fmt::Display for FollowPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "log {} after LSN {}", self.log_id, self.lsn)?;
        if let Some(c) = self.crc {
            write!(f, " (frame checksum {c:#010x})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_round_trips_and_damage_is_refused() {
        let p = FollowPosition {
            log_id: LogId::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10),
            lsn: Lsn(12_345),
            crc: Some(0xdead_beef),
        };
        assert_eq!(FollowPosition::decode(&p.encode()), Ok(p));
        let s = FollowPosition::after_fence(p.log_id, Lsn(9));
        assert_eq!(FollowPosition::decode(&s.encode()), Ok(s));
        assert_eq!(s.next(), Lsn(10));

        let mut b = p.encode();
        b[25] ^= 1;
        assert!(matches!(
            FollowPosition::decode(&b),
            Err(PositionError::Checksum { .. })
        ));
        assert_eq!(
            FollowPosition::decode(&b[..10]),
            Err(PositionError::Length { len: 10 })
        );
        let mut b = p.encode();
        b[0] = 0;
        assert_eq!(FollowPosition::decode(&b), Err(PositionError::BadMagic));
        let mut b = p.encode();
        b[37] = 1;
        let sum = crc32c::crc32c(&b[..40]);
        b[40..].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(FollowPosition::decode(&b), Err(PositionError::Reserved));
    }
}
