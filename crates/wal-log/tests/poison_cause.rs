//! The poison latch keeps the first failure itself, not only its text: after an injected
//! `ENOSPC`, `WalError::Poisoned` chains (`source()`) to the original `WalError::Io` and its
//! `io::Error`, and says `StorageFull`; the first failure wins over later ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::error::Error;
use std::io;
use std::sync::Arc;

use wal_log::sim::{Fault, OpKind, SimVfs};
use wal_log::{Options, PoisonCause, PoisonLatch, SyncPolicy, Wal, WalError};

fn open(vfs: &SimVfs) -> Wal {
    let opts = Options::default()
        .vfs(Arc::new(vfs.clone()))
        .preallocate(false)
        .sync(SyncPolicy::Always);
    Wal::open("/db", opts).unwrap().0
}

/// Every error in `err`'s chain, `err` first.
fn chain<'a>(err: &'a (dyn Error + 'static)) -> Vec<&'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |e: &&'a (dyn Error + 'static)| (*e).source()).collect()
}

#[test]
fn poisoned_chains_to_the_injected_enospc() {
    let vfs = SimVfs::new();
    let wal = open(&vfs);
    wal.append(b"before").unwrap();
    vfs.fail_nth(
        OpKind::SyncData,
        vfs.op_count(OpKind::SyncData) + 1,
        Fault::Enospc,
    );
    let first = wal.append(b"fails").unwrap_err();
    assert!(
        matches!(first, WalError::Io { op: "fsync", .. }),
        "{first:?}"
    );
    assert_eq!(first.io_kind(), Some(io::ErrorKind::StorageFull));

    let later = wal.append(b"refused").unwrap_err();
    let WalError::Poisoned { reason, cause } = &later else {
        panic!("expected Poisoned, got {later:?}");
    };
    assert_eq!(*reason, first.to_string());
    assert_eq!(later.to_string(), format!("WAL is poisoned: {first}"));
    assert_eq!(cause.io_kind(), Some(io::ErrorKind::StorageFull));
    assert_eq!(later.io_kind(), Some(io::ErrorKind::StorageFull));
    assert_eq!(later.poison_cause().unwrap().to_string(), first.to_string());

    // source(): the original WalError::Io (not a wrapper), then the OS error.
    let links = chain(&later);
    assert_eq!(links.len(), 3, "{links:?}");
    let original = links[1]
        .downcast_ref::<WalError>()
        .expect("the original WalError");
    assert!(
        matches!(original, WalError::Io { op: "fsync", .. }),
        "{original:?}"
    );
    let os = links[2].downcast_ref::<io::Error>().expect("the io::Error");
    assert_eq!(os.raw_os_error(), Some(28));
    assert_eq!(os.kind(), io::ErrorKind::StorageFull);
    assert!(cause.downcast_ref::<WalError>().is_some());

    // The same cause, shared, from the log itself.
    let held = wal.poison_cause().unwrap();
    assert_eq!(held.io_kind(), Some(io::ErrorKind::StorageFull));
    assert_eq!(wal.poisoned_reason().unwrap(), first.to_string());
}

#[test]
fn the_first_failure_wins() {
    let vfs = SimVfs::new();
    let wal = open(&vfs);
    let n = vfs.op_count(OpKind::SyncData);
    vfs.fail_nth(OpKind::SyncData, n + 1, Fault::Enospc);
    vfs.fail_nth(OpKind::SyncData, n + 2, Fault::Eio);
    vfs.fail_nth(OpKind::Write, vfs.op_count(OpKind::Write) + 2, Fault::Eio);
    let first = wal.append(b"fails").unwrap_err();
    assert_eq!(first.io_kind(), Some(io::ErrorKind::StorageFull));
    for _ in 0..3 {
        let e = wal.append(b"refused").unwrap_err();
        assert!(matches!(e, WalError::Poisoned { .. }), "{e:?}");
        assert_eq!(e.io_kind(), Some(io::ErrorKind::StorageFull), "{e}");
        assert!(matches!(wal.sync(), Err(WalError::Poisoned { .. })));
    }
    assert_eq!(wal.poisoned_reason().unwrap(), first.to_string());

    // The latch alone: later causes are ignored, nothing clears it.
    let latch = PoisonLatch::new();
    assert!(latch.check(|_, _| ()).is_ok());
    assert!(latch.poison(PoisonCause::new(io::Error::from(
        io::ErrorKind::StorageFull
    ))));
    assert!(!latch.poison(PoisonCause::message("later")));
    assert!(!latch.poison(PoisonCause::new(io::Error::from_raw_os_error(5))));
    assert!(latch.is_poisoned());
    assert_eq!(
        latch.cause().unwrap().io_kind(),
        Some(io::ErrorKind::StorageFull)
    );
    let (reason, cause) = latch.check(|r, c| (r, c)).unwrap_err();
    assert_eq!(reason, latch.reason().unwrap());
    assert_eq!(cause.io_kind(), Some(io::ErrorKind::StorageFull));
    assert_eq!(PoisonCause::message("later").io_kind(), None);
}
