//! The poison latch: the first failure of a log (or of a layer above it), kept for good.
//!
//! One type for every layer that refuses work after a failure: the log itself
//! ([`WalError::Poisoned`](crate::WalError::Poisoned)), `wal-recorder`'s recorder and commit tickets, and `wal-replay`'s
//! `Engine`. Each keeps the first failure as the original error, shared ([`PoisonCause`]), so a
//! caller told "poisoned" can still ask what happened ([`PoisonCause::io_kind`]: was it
//! `ENOSPC`?) or walk [`std::error::Error::source`] down to the OS error.

use std::error::Error;
use std::fmt;
use std::io;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

/// The first failure a [`PoisonLatch`] holds: the original error, shared (cloning is a
/// reference count).
///
/// It dereferences to the original error (`&(dyn Error + Send + Sync)`), which is what the
/// `Poisoned` variants return from [`Error::source`]: a `WalError::Io` holding the
/// `io::Error`, a mirror's `io::Error`, or a plain message ([`PoisonCause::message`]) for a
/// failure that was no error value (a lifecycle violation, a host's own reason).
///
/// ```
/// use wal_log::PoisonCause;
/// let cause = PoisonCause::new(std::io::Error::from(std::io::ErrorKind::StorageFull));
/// assert_eq!(cause.io_kind(), Some(std::io::ErrorKind::StorageFull));
/// assert_eq!(PoisonCause::message("the store diverged").to_string(), "the store diverged");
/// ```
#[derive(Clone)]
pub struct PoisonCause(Arc<dyn Error + Send + Sync + 'static>);

impl PoisonCause {
    /// Wraps `err` as the cause.
    pub fn new(err: impl Error + Send + Sync + 'static) -> Self {
        PoisonCause(Arc::new(err))
    }

    /// A cause that is only a message (no error value caused it).
    pub fn message(text: impl Into<String>) -> Self {
        PoisonCause::new(Message(text.into()))
    }

    /// The original error.
    #[must_use]
    pub fn error(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }

    /// The kind of the first `io::Error` in the cause's chain (the cause itself, then its
    /// [`Error::source`]s): `StorageFull` for `ENOSPC`, for example. `None` when no I/O error
    /// caused it.
    #[must_use]
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        io_kind_in_chain(self.error())
    }

    /// The first error of type `T` in the cause's chain (the cause itself, then its sources).
    #[must_use]
    pub fn downcast_ref<T: Error + 'static>(&self) -> Option<&T> {
        let mut next: Option<&(dyn Error + 'static)> = Some(self.error());
        while let Some(e) = next {
            if let Some(t) = e.downcast_ref::<T>() {
                return Some(t);
            }
            next = e.source();
        }
        None
    }
}

/// The kind of the first `io::Error` in `err`'s chain (`err`, then its sources).
pub(crate) fn io_kind_in_chain(err: &(dyn Error + 'static)) -> Option<io::ErrorKind> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        next = e.source();
    }
    None
}

/// Not an [`Error`] itself, so that a `#[source]` field of this type hands out the original
/// error (through this `Deref`), not a wrapper around it: `source()` then downcasts to it.
impl Deref for PoisonCause {
    type Target = dyn Error + Send + Sync + 'static;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl fmt::Display for PoisonCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl fmt::Debug for PoisonCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// A cause given as text ([`PoisonCause::message`]).
#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Message {}

/// A failure latch: empty until the first [`PoisonLatch::poison`], then poisoned for good
/// with that first cause. Later causes are ignored; nothing clears it.
///
/// The log, `wal-recorder`'s recorder (shared with its commit tickets and truncator) and
/// `wal-replay`'s `Engine` each hold one. Checking it is one atomic load.
///
/// ```
/// use wal_log::{PoisonCause, PoisonLatch};
/// let latch = PoisonLatch::new();
/// assert!(latch.cause().is_none());
/// assert!(latch.poison(PoisonCause::message("first")));
/// assert!(!latch.poison(PoisonCause::message("second")));
/// assert_eq!(latch.reason().as_deref(), Some("first"));
/// ```
#[derive(Default)]
pub struct PoisonLatch {
    first: OnceLock<PoisonCause>,
}

impl PoisonLatch {
    /// An empty (healthy) latch.
    #[must_use]
    pub fn new() -> Self {
        PoisonLatch::default()
    }

    /// Latches `cause` if nothing is latched yet; returns whether it was the first (the one
    /// kept).
    pub fn poison(&self, cause: PoisonCause) -> bool {
        self.first.set(cause).is_ok()
    }

    /// Whether a failure is latched.
    #[must_use]
    pub fn is_poisoned(&self) -> bool {
        self.first.get().is_some()
    }

    /// The first failure, if any.
    #[must_use]
    pub fn cause(&self) -> Option<PoisonCause> {
        self.first.get().cloned()
    }

    /// The first failure as text, if any.
    #[must_use]
    pub fn reason(&self) -> Option<String> {
        self.first.get().map(ToString::to_string)
    }

    /// `Ok` while healthy; else the error `poisoned` makes from the first failure's text and
    /// cause (a layer's `Poisoned` variant).
    ///
    /// # Errors
    /// `poisoned(reason, cause)` once a failure is latched.
    pub fn check<E>(&self, poisoned: impl FnOnce(String, PoisonCause) -> E) -> Result<(), E> {
        match self.first.get() {
            None => Ok(()),
            Some(cause) => Err(poisoned(cause.to_string(), cause.clone())),
        }
    }
}

impl fmt::Debug for PoisonLatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PoisonLatch")
            .field(&self.first.get())
            .finish()
    }
}
