//! The recorder's latch is the log's (`wal_log::PoisonLatch`) and keeps the first failure
//! itself: after an injected `ENOSPC`, `RecorderError::Poisoned` chains (`source()`) to the
//! original `WalError::Io` and its `io::Error`, says `StorageFull`, and a commit ticket and
//! a later failure see that same first failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::error::Error;
use std::io;

use support::*;
use wal_log::sim::{Fault, OpKind, SimVfs};
use wal_log::{SyncPolicy, WalError};
use wal_recorder::{RecorderError, WalRecorder};

type Rec = WalRecorder<Ev>;

/// Every error in `err`'s chain, `err` first.
fn chain<'a>(err: &'a (dyn Error + 'static)) -> Vec<&'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |e: &&'a (dyn Error + 'static)| (*e).source()).collect()
}

/// Asserts that `e` is `Poisoned` and that its chain is: the poisoning, the original
/// `WalError::Io`, the injected `ENOSPC`.
fn assert_chains_to_enospc(e: &RecorderError) {
    assert!(matches!(e, RecorderError::Poisoned { .. }), "{e:?}");
    assert_eq!(e.io_kind(), Some(io::ErrorKind::StorageFull), "{e}");
    let links = chain(e);
    assert_eq!(links.len(), 3, "{links:?}");
    let original = links[1]
        .downcast_ref::<WalError>()
        .expect("the log's error");
    assert!(matches!(original, WalError::Io { .. }), "{original:?}");
    let os = links[2].downcast_ref::<io::Error>().expect("the io::Error");
    assert_eq!(os.raw_os_error(), Some(28));
    assert_eq!(os.kind(), io::ErrorKind::StorageFull);
}

#[test]
fn poisoned_chains_to_the_injected_enospc() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always));
    rec.commit_events([set(1, 1)]).unwrap();
    // A ticket handed out before the failure, waited after it.
    rec.arm().unwrap();
    rec.record(set(2, 2));
    let ticket = rec.commit_deferred().unwrap();

    vfs.fail_nth(
        OpKind::SyncData,
        vfs.op_count(OpKind::SyncData) + 1,
        Fault::Enospc,
    );
    let first = rec.commit_events([set(3, 3)]).unwrap_err();
    assert!(
        matches!(first, RecorderError::Wal(WalError::Io { .. })),
        "{first:?}"
    );
    assert_eq!(first.io_kind(), Some(io::ErrorKind::StorageFull));

    let later = rec.commit_events([set(4, 4)]).unwrap_err();
    assert_chains_to_enospc(&later);
    let RecorderError::Poisoned { reason, cause } = &later else {
        unreachable!()
    };
    assert_eq!(reason, &first.to_string());
    assert_eq!(
        later.to_string(),
        format!("WAL recorder is poisoned: {first}")
    );
    assert_eq!(cause.io_kind(), Some(io::ErrorKind::StorageFull));
    assert_eq!(
        rec.poison_cause().unwrap().io_kind(),
        Some(io::ErrorKind::StorageFull)
    );
    assert_eq!(rec.poisoned_reason().unwrap(), first.to_string());

    assert_chains_to_enospc(&ticket.wait().unwrap_err());
    assert_chains_to_enospc(&rec.ensure_not_poisoned().unwrap_err());
    assert_chains_to_enospc(&rec.arm().unwrap_err());
}

/// A failure the log latched on its own (another user of the log) reaches the recorder with
/// its cause.
#[test]
fn a_failure_latched_by_the_log_reaches_the_recorder_with_its_cause() {
    let vfs = SimVfs::new();
    let wal = open_sim(&vfs, SyncPolicy::Always);
    let rec = Rec::new(wal.clone());
    vfs.fail_nth(
        OpKind::SyncData,
        vfs.op_count(OpKind::SyncData) + 1,
        Fault::Enospc,
    );
    assert!(wal.append(b"not through the recorder").is_err());
    assert_chains_to_enospc(&rec.arm().unwrap_err());
}

#[test]
fn the_first_failure_wins() {
    let vfs = SimVfs::new();
    let rec = Rec::new(open_sim(&vfs, SyncPolicy::Always));
    vfs.fail_nth(
        OpKind::SyncData,
        vfs.op_count(OpKind::SyncData) + 1,
        Fault::Enospc,
    );
    let first = rec.commit_events([set(1, 1)]).unwrap_err();
    // Later reasons, of the host and of misuse, are ignored.
    rec.poison("a later reason");
    assert!(matches!(rec.commit(), Err(RecorderError::Poisoned { .. })));
    for _ in 0..3 {
        let e = rec.commit_events([set(2, 2)]).unwrap_err();
        assert_chains_to_enospc(&e);
    }
    assert_eq!(rec.poisoned_reason().unwrap(), first.to_string());

    // A host's reason, first, is kept as it was given: a message, no I/O kind.
    let rec = Rec::new(open_sim(&SimVfs::new(), SyncPolicy::Always));
    rec.poison("live store diverged");
    rec.poison("a later reason");
    let e = rec.arm().unwrap_err();
    assert_eq!(e.io_kind(), None);
    assert_eq!(e.source().unwrap().to_string(), "live store diverged");
    assert_eq!(rec.poisoned_reason().unwrap(), "live store diverged");
}
