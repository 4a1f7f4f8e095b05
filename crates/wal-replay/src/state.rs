use crate::error::ApplyError;
use std::io;
use wal_format::{Codec, Lsn, decode_into, record_slices};
use wal_log::Transaction;

/// The application state that recovery rebuilds: it applies committed transactions, writes
/// itself to a snapshot and restores itself from one.
///
/// A transaction's payload is the concatenation of its events, each encoded with a
/// [`Codec`] (by default [`wal_format::Bincode`]); a multi-record transaction
/// ([`wal_log::Wal::append_batch`]) holds several such payloads, whose events are applied
/// together, in order, as one transaction.
///
/// # Contract
///
/// * [`StateMachine::apply`] is called once per committed transaction, in LSN order, never for
///   an aborted or unfinished one. It must be deterministic: recovering twice from the same
///   directory must give the same state.
/// * Recovery starts from the state it is given when no snapshot is used, so pass a fresh
///   (empty) state.
/// * [`StateMachine::restore`] replaces the whole state with the snapshot's, whatever the
///   state held before, including what an earlier restore that failed left in it. It is only
///   called with bytes whose checksum verified, but it may still fail (a state format this
///   build does not read, a snapshot its writer cut short). A restore fails when it returns an
///   error, and also when it returns `Ok` without reading the whole body: bytes left unread
///   mean it did not read the state that was written. Recovery then treats the snapshot as
///   unusable (reported in [`crate::RecoveryReport::rejected_snapshots`]) and restores the
///   next older snapshot the log still covers over the same state, or, when there is none and
///   the log still starts at its first LSN, calls [`StateMachine::reset`] and replays the
///   whole log; once recovered, it renames the snapshot aside (`<name>.corrupt`, kept, never
///   read). When no fallback is possible, recovery fails and no snapshot is renamed.
/// * An error from `apply` stops recovery ([`crate::ReplayError::Apply`]): the log holds a
///   transaction the state cannot take, and skipping it would silently diverge.
///
/// # Raw payloads
///
/// To see payloads without decoding (or with a decoder of your own), override
/// [`StateMachine::apply_transaction`], the hook recovery actually calls; its default decodes
/// the events and calls [`StateMachine::apply`]. Such a state machine can use `()` as its
/// `Event` type and make `apply` unreachable.
///
/// ```
/// use std::io::{self, Read, Write};
/// use wal_format::Lsn;
/// use wal_replay::{ApplyError, StateMachine};
///
/// #[derive(Default)]
/// struct Counter { total: u64 }
///
/// impl StateMachine for Counter {
///     type Event = u64;
///     fn apply(&mut self, _lsn: Lsn, events: Vec<u64>) -> Result<(), ApplyError> {
///         self.total += events.iter().sum::<u64>();
///         Ok(())
///     }
///     fn write_snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
///         out.write_all(&self.total.to_le_bytes())
///     }
///     fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
///         let mut b = [0u8; 8];
///         input.read_exact(&mut b)?;
///         self.total = u64::from_le_bytes(b);
///         Ok(())
///     }
/// }
/// ```
pub trait StateMachine {
    /// The event type transactions are made of.
    type Event;

    /// Applies the events of the transaction committed at `lsn`.
    ///
    /// # Errors
    /// When the state cannot take the transaction; recovery and the engine stop there.
    fn apply(&mut self, lsn: Lsn, events: Vec<Self::Event>) -> Result<(), ApplyError>;

    /// Applies one committed transaction as found in the log. The default decodes every
    /// record of the body with `codec` and calls [`StateMachine::apply`] once with all events.
    ///
    /// # Errors
    /// A malformed batch body, a decoding error, or the error of `apply`.
    fn apply_transaction(
        &mut self,
        tx: &Transaction,
        codec: &dyn Codec<Self::Event>,
    ) -> Result<(), ApplyError> {
        let mut events = Vec::new();
        if tx.multi {
            for record in record_slices(&tx.body) {
                decode_into(codec, record?, &mut events)?;
            }
        } else {
            decode_into(codec, &tx.body, &mut events)?;
        }
        self.apply(tx.lsn, events)
    }

    /// Writes the whole state to `out`. The bytes are the snapshot's body; framing and
    /// checksums are added around them.
    ///
    /// # Errors
    /// The writer's error, or the state's own.
    fn write_snapshot(&self, out: &mut dyn io::Write) -> io::Result<()>;

    /// Replaces the state with the one written by [`StateMachine::write_snapshot`]. The reader
    /// ends where the snapshot body ends.
    ///
    /// # Errors
    /// The reader's error (including a checksum failure found while reading), or bytes this
    /// state cannot parse.
    fn restore(&mut self, input: &mut dyn io::Read) -> io::Result<()>;

    /// Empties the state, making it as fresh as the one recovery was given. Recovery calls it
    /// only after a snapshot failed to restore (leaving part of it in the state) when no older
    /// snapshot is usable and it replays the log from its first LSN instead; restoring an
    /// older snapshot needs no reset, as [`StateMachine::restore`] replaces the whole state.
    ///
    /// # Errors
    /// The default refuses (`ErrorKind::Unsupported`): recovery then fails with
    /// [`crate::ReplayError::Restore`] for the snapshot that failed, saying that the state
    /// could not reset, and changes no snapshot. Implement it (for a `Default` state,
    /// `*self = Self::default()`), or move the snapshot aside by hand.
    fn reset(&mut self) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this state machine cannot reset itself (StateMachine::reset)",
        ))
    }
}
