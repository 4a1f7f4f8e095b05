//! The checkpoint `Engine`'s latch is the log's (`wal_log::PoisonLatch`): after an injected
//! `ENOSPC`, `ReplayError::EngineFailed` chains (`source()`) to the original `WalError::Io`
//! and its `io::Error`, says `StorageFull`, and the first failure wins.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::error::Error;
use std::io;
use std::path::Path;
use std::sync::Arc;
use wal_log::WalError;
use wal_log::sim::{Fault, OpKind, SimVfs};
use wal_replay::{Engine, EngineOptions, RecoverOptions, ReplayError};

fn engine(sim: &SimVfs) -> Engine<Kv> {
    let wal = wal_log::Options::default()
        .preallocate(false)
        .vfs(Arc::new(sim.clone()));
    let eopts = EngineOptions {
        recover: RecoverOptions::default().wal(wal),
        ..EngineOptions::default()
    };
    Engine::open(Path::new("/data"), Kv::default(), eopts)
        .unwrap()
        .0
}

/// Every error in `err`'s chain, `err` first.
fn chain<'a>(err: &'a (dyn Error + 'static)) -> Vec<&'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |e: &&'a (dyn Error + 'static)| (*e).source()).collect()
}

fn assert_chains_to_enospc(e: &ReplayError) {
    assert!(matches!(e, ReplayError::EngineFailed { .. }), "{e:?}");
    assert_eq!(e.io_kind(), Some(io::ErrorKind::StorageFull), "{e}");
    let links = chain(e);
    assert_eq!(links.len(), 3, "{links:?}");
    let original = links[1]
        .downcast_ref::<WalError>()
        .expect("the log's error");
    assert!(matches!(original, WalError::Io { .. }), "{original:?}");
    let os = links[2].downcast_ref::<io::Error>().expect("the io::Error");
    assert_eq!(os.raw_os_error(), Some(28));
}

#[test]
fn engine_failed_chains_to_the_injected_enospc_and_the_first_failure_wins() {
    let sim = SimVfs::new();
    let mut e = engine(&sim);
    e.commit(vec![put("a", 1)]).unwrap();
    sim.fail_nth(
        OpKind::SyncData,
        sim.op_count(OpKind::SyncData) + 1,
        Fault::Enospc,
    );
    sim.fail_nth(OpKind::Write, sim.op_count(OpKind::Write) + 2, Fault::Eio);
    let first = e.commit(vec![put("b", 2)]).unwrap_err();
    assert!(
        matches!(first, ReplayError::Wal(WalError::Io { .. })),
        "{first:?}"
    );
    assert_eq!(first.io_kind(), Some(io::ErrorKind::StorageFull));

    for _ in 0..3 {
        let later = e.commit(vec![put("c", 3)]).unwrap_err();
        assert_chains_to_enospc(&later);
        assert_eq!(
            later.to_string(),
            format!("engine failed earlier and refuses further work: {first}")
        );
    }
    assert_chains_to_enospc(&e.checkpoint().unwrap_err());
    let cause = e.failure().unwrap();
    assert_eq!(cause.io_kind(), Some(io::ErrorKind::StorageFull));
    assert_eq!(cause.to_string(), first.to_string());
}
