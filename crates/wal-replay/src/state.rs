use std::io;
use wal_format::records::record_slices;
use wal_format::{CodecError, Decoder, Lsn, decode_into};
use wal_log::Transaction;

/// The error a [`StateMachine`] returns from applying a transaction.
pub type ApplyError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The application state that recovery rebuilds: it applies committed transactions, writes
/// itself to a snapshot and restores itself from one.
///
/// A transaction's payload is the concatenation of its events, each encoded with a
/// [`wal_format::Codec`] (by default [`wal_format::Bincode`]); a multi-record transaction
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
///   transaction the state cannot take, and skipping it would silently diverge. A payload
///   that does not decode as [`StateMachine::Event`] stops it too, with
///   [`crate::ReplayError::Decode`] naming the LSN, the event type and the schema version.
///
/// # Event schema
///
/// [`StateMachine::EVENT_SCHEMA`] is the version of this state machine's events and snapshot
/// format: bump it whenever their encoding changes (a field's type, a new field, a reordered
/// enum), since the codec cannot tell: bincode reads an `i64` written as a `u64` without
/// complaint. It is stamped into every segment and snapshot written through
/// `wal-replay` (recovery opens the log with it, [`wal_log::Options::payload_schema`];
/// checkpoints write it into the snapshot header), and recovery refuses a log or snapshot of
/// another version, before changing anything, with [`crate::ReplayError::EventSchema`]. 0 (the
/// default) means "not recorded": unversioned state machines and logs behave as before.
///
/// To upgrade instead, accept the older version in [`StateMachine::reads_event_schema`] and
/// handle it in [`StateMachine::apply_upgrade`] and [`StateMachine::restore_upgrade`]:
/// recovery then hands every transaction and snapshot of that version to them, with its
/// version; the log goes on under the new version (a new segment is started at once) and the
/// next checkpoint writes a snapshot of the new version. A log written before versioning
/// holds version 0: accept 0 to adopt versioning on it. See
/// `docs/decisions/0007-event-schema.md`.
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

    /// The version of [`StateMachine::Event`]'s encoding and of the snapshot format (see
    /// [Event schema](#event-schema)). Default 0: not recorded.
    const EVENT_SCHEMA: u32 = 0;

    /// Whether this state machine reads transactions and snapshots of event schema `schema`.
    /// The default reads only [`StateMachine::EVENT_SCHEMA`]; to upgrade a log, also accept
    /// the older versions that [`StateMachine::apply_upgrade`] and
    /// [`StateMachine::restore_upgrade`] handle.
    #[must_use]
    fn reads_event_schema(schema: u32) -> bool {
        schema == Self::EVENT_SCHEMA
    }

    /// Applies one committed transaction written under event schema `schema`, an older
    /// version [`StateMachine::reads_event_schema`] accepts (never
    /// [`StateMachine::EVENT_SCHEMA`], whose transactions go to
    /// [`StateMachine::apply_transaction`]): decode its payloads (`tx.records()`) with the
    /// event types of that version and apply them as the current state expects.
    /// [`EventDecodeError::new`] words a decoding failure as recovery does.
    ///
    /// # Errors
    /// The default refuses every transaction: a state machine that accepts an older schema
    /// must implement it.
    fn apply_upgrade(&mut self, schema: u32, tx: &Transaction) -> Result<(), ApplyError> {
        Err(format!(
            "transaction at LSN {}: event schema {} is accepted by reads_event_schema, but StateMachine::apply_upgrade is not implemented",
            tx.lsn,
            schema_name(schema)
        )
        .into())
    }

    /// Replaces the state with a snapshot written under event schema `schema`, an older
    /// version [`StateMachine::reads_event_schema`] accepts (snapshots of
    /// [`StateMachine::EVENT_SCHEMA`] go to [`StateMachine::restore`], whose contract this
    /// shares).
    ///
    /// # Errors
    /// The default refuses (`ErrorKind::Unsupported`).
    fn restore_upgrade(&mut self, schema: u32, input: &mut dyn io::Read) -> io::Result<()> {
        let _ = input;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "snapshot of event schema {}: StateMachine::restore_upgrade is not implemented",
                schema_name(schema)
            ),
        ))
    }

    /// Applies the events of the transaction committed at `lsn`.
    ///
    /// # Errors
    /// When the state cannot take the transaction; recovery and the engine stop there.
    fn apply(&mut self, lsn: Lsn, events: Vec<Self::Event>) -> Result<(), ApplyError>;

    /// Applies one committed transaction of [`StateMachine::EVENT_SCHEMA`] as found in the
    /// log. The default decodes every record of the body with `codec` and calls
    /// [`StateMachine::apply`] once with all events.
    ///
    /// # Errors
    /// A malformed batch body, a decoding error ([`EventDecodeError`], naming the LSN, the
    /// event type and the schema), or the error of `apply`.
    fn apply_transaction(
        &mut self,
        tx: &Transaction,
        codec: &dyn Decoder<Self::Event>,
    ) -> Result<(), ApplyError> {
        let mut events = Vec::new();
        let undecodable =
            |source| EventDecodeError::new::<Self::Event>(tx.lsn, Self::EVENT_SCHEMA, source);
        if tx.multi {
            for record in record_slices(&tx.body) {
                decode_into(codec, record?, &mut events).map_err(undecodable)?;
            }
        } else {
            decode_into(codec, &tx.body, &mut events).map_err(undecodable)?;
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

/// Applies `tx`, written under event schema `schema`, to `state`: with
/// [`StateMachine::apply_transaction`] when it is the state's own schema, else (an older one it
/// reads) with [`StateMachine::apply_upgrade`].
pub(crate) fn apply_at_schema<S: StateMachine + ?Sized>(
    state: &mut S,
    schema: u32,
    tx: &Transaction,
    codec: &dyn Decoder<S::Event>,
) -> Result<(), ApplyError> {
    if schema == S::EVENT_SCHEMA {
        state.apply_transaction(tx, codec)
    } else {
        state.apply_upgrade(schema, tx)
    }
}

/// A transaction's payload did not decode as the state machine's event type: the log holds
/// events of another shape than this build's (a changed event type without a new
/// [`StateMachine::EVENT_SCHEMA`], or a damaged payload that still verified).
#[derive(Debug, thiserror::Error)]
#[error(
    "transaction at LSN {lsn}: cannot decode event type `{event_type}` (event schema {}): {source}",
    schema_name(*schema)
)]
#[non_exhaustive]
pub struct EventDecodeError {
    /// The transaction's LSN.
    pub lsn: Lsn,
    /// The Rust type it was decoded as ([`std::any::type_name`]).
    pub event_type: &'static str,
    /// The event schema it was decoded under.
    pub schema: u32,
    /// The codec's error.
    #[source]
    pub source: CodecError,
}

impl EventDecodeError {
    /// The transaction at `lsn` did not decode as events of type `E` under event schema
    /// `schema`.
    #[must_use]
    pub fn new<E: ?Sized>(lsn: Lsn, schema: u32, source: CodecError) -> Self {
        EventDecodeError {
            lsn,
            event_type: std::any::type_name::<E>(),
            schema,
            source,
        }
    }
}

/// An event schema version in words: 0 is "not recorded".
pub(crate) fn schema_name(schema: u32) -> String {
    if schema == 0 {
        "version 0 (not recorded)".into()
    } else {
        format!("version {schema}")
    }
}
