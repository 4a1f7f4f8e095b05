//! The bank's state: balances, and per writer thread the sequence number of its last
//! transaction, so that recovery proves every transaction was applied exactly once, in order.

use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use wal_format::Lsn;
use wal_replay::{ApplyError, StateMachine};

/// What every account holds when the bank opens for the first time.
pub const OPENING_BALANCE: u64 = 1_000_000;

/// One mutation, as the bank records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BankEvent {
    /// Open accounts (at [`OPENING_BALANCE`] each) and writer slots up to these counts.
    Open {
        /// Accounts the bank has afterwards (at least).
        accounts: u32,
        /// Writer threads it has afterwards (at least).
        threads: u32,
    },
    /// Move `amount` from one account to another.
    Transfer {
        /// The writer thread, and its transaction's number (1, 2, ...).
        thread: u32,
        /// See `thread`.
        seq: u64,
        /// Debited account.
        from: u32,
        /// Credited account.
        to: u32,
        /// Amount moved.
        amount: u64,
    },
    /// A large audit record (several MiB): it makes the transaction a fragmented one that
    /// spans segment boundaries.
    Audit {
        /// See [`BankEvent::Transfer`].
        thread: u32,
        /// See [`BankEvent::Transfer`].
        seq: u64,
        /// The record.
        note: Vec<u8>,
    },
}

/// Balances and, per writer thread, its last applied transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bank {
    /// Balance of each account.
    pub balances: Vec<u64>,
    /// Per writer thread: the sequence number of its last applied transaction.
    pub last_seq: Vec<u64>,
    /// Audit records applied, and their bytes.
    pub audits: u64,
    /// See `audits`.
    pub audit_bytes: u64,
}

impl Bank {
    /// A bank with `accounts` accounts and `threads` writers, or the recovered one grown to
    /// that size.
    pub fn open_accounts(&mut self, accounts: u32, threads: u32) {
        let a = accounts as usize;
        if self.balances.len() < a {
            self.balances.resize(a, OPENING_BALANCE);
        }
        if self.last_seq.len() < threads as usize {
            self.last_seq.resize(threads as usize, 0);
        }
    }

    /// Money in the bank: constant once the accounts are open.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.balances.iter().sum()
    }

    /// Applies one event, refusing one that would apply a transaction twice, skip one, or
    /// overdraw an account.
    ///
    /// # Errors
    /// The reason, in words.
    pub fn apply_event(&mut self, e: &BankEvent) -> Result<(), String> {
        let (thread, seq) = match e {
            BankEvent::Open { accounts, threads } => {
                self.open_accounts(*accounts, *threads);
                return Ok(());
            }
            BankEvent::Transfer { thread, seq, .. } | BankEvent::Audit { thread, seq, .. } => {
                (*thread as usize, *seq)
            }
        };
        if self.last_seq.len() <= thread {
            self.last_seq.resize(thread + 1, 0);
        }
        let last = self.last_seq[thread];
        if seq != last + 1 {
            return Err(format!(
                "thread {thread}: transaction {seq} after {last} (applied twice, or one lost)"
            ));
        }
        match e {
            BankEvent::Transfer {
                from, to, amount, ..
            } => {
                let (from, to) = (*from as usize, *to as usize);
                let n = self.balances.len();
                if from >= n || to >= n {
                    return Err(format!("account {from} or {to} does not exist ({n})"));
                }
                if self.balances[from] < *amount {
                    return Err(format!("account {from} overdrawn by {amount}"));
                }
                self.balances[from] -= amount;
                self.balances[to] += amount;
            }
            BankEvent::Audit { note, .. } => {
                self.audits += 1;
                self.audit_bytes += note.len() as u64;
            }
            BankEvent::Open { .. } => {}
        }
        self.last_seq[thread] = seq;
        Ok(())
    }
}

impl StateMachine for Bank {
    type Event = BankEvent;

    fn apply(&mut self, lsn: Lsn, events: Vec<BankEvent>) -> Result<(), ApplyError> {
        for e in &events {
            self.apply_event(e)
                .map_err(|reason| format!("transaction at LSN {lsn}: {reason}"))?;
        }
        Ok(())
    }

    fn write_snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        // Flushed by hand: a BufWriter dropped with bytes in it loses its write error.
        let mut w = io::BufWriter::new(out);
        serde_json::to_writer(&mut w, self).map_err(io::Error::other)?;
        w.flush()
    }

    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        *self = serde_json::from_reader(io::BufReader::new(input)).map_err(io::Error::other)?;
        Ok(())
    }
}
