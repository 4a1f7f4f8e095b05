//! Positioned reads and durability notifications on real files: the locations appends return
//! are the ones a reopen's scan finds, every one reads back after the reopen, and every
//! notification fired before a drop is for a batch the reopened log holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, mpsc};
use wal_format::FrameKind;
use wal_format::records::RecordIter;
use wal_log::inspect::DirFrame;
use wal_log::{DurableNotifier, Location, Lsn, Options, SyncPolicy, Wal};

fn opts() -> Options {
    Options::default()
        .sync(SyncPolicy::Always)
        .segment_size(32 << 10)
        .preallocate(false)
}

#[test]
fn locations_survive_a_reopen_and_notifications_mean_durable() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(dir.path(), opts()).unwrap().0);
    let notifier = DurableNotifier::start(wal.clone()).unwrap();
    let (tx, rx) = mpsc::channel();
    let mut written = BTreeMap::new();
    let mut fired: Vec<(Lsn, bool)> = Vec::new();
    for i in 0..300u32 {
        let payload = vec![(i % 251) as u8; 200 + (i as usize % 7) * 50];
        let loc = wal
            .append_batch_queued(&[&i.to_le_bytes()[..], &payload[..]])
            .unwrap();
        written.insert(loc.lsn, (loc, i, payload));
        let tx = tx.clone();
        notifier.notify(loc.lsn, move |r| tx.send((loc.lsn, r.is_ok())).unwrap());
        if i % 20 == 19 {
            // Waiting now and then spreads the batches over flushes, hence over segments.
            fired.extend(rx.iter().take(20));
        }
    }
    drop(tx);
    assert_eq!(fired.len(), 300, "every callback ran exactly once");
    assert!(fired.iter().all(|(_, ok)| *ok));
    drop(notifier);
    drop(wal);

    let mut found = BTreeMap::new();
    let mut visit = |f: DirFrame| -> Result<(), std::convert::Infallible> {
        if f.frame.kind == FrameKind::Tx {
            found.insert(f.frame.lsn, Location::of(&f));
        }
        Ok(())
    };
    let (wal, _) = Wal::open_visit(dir.path(), opts(), &mut visit).unwrap();
    assert!(
        wal.segments().len() > 2,
        "the batches span several segments"
    );
    let reader = wal.positioned_reader();
    for (lsn, (loc, i, payload)) in &written {
        assert_eq!(
            found.get(lsn),
            Some(loc),
            "the scan finds the append's location"
        );
        let frame = reader.read(loc).unwrap();
        let recs: Vec<_> = RecordIter::new(frame.payload)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(&recs[0][..], &i.to_le_bytes());
        assert_eq!(&recs[1][..], &payload[..]);
    }
}
