//! The `snapshot_decode` fuzz check: arbitrary bytes as a snapshot file.
//!
//! Shared by the cargo-fuzz target `fuzz/fuzz_targets/snapshot_decode.rs` (which includes this
//! file by path) and the corpus replay test `tests/fuzz_corpus.rs`, so both check exactly the
//! same things. Every check panics on a violation.
//!
//! The input is the whole file. It is checked as it is, then with its header re-stamped (magic,
//! version, reserved bytes, the true body length and a valid checksum, keeping the log id,
//! fence and time found in the input) so that mutations reach the body and the restore path,
//! then with a valid checksum over a length field that lies:
//!
//! * [`SnapshotHeader::decode`] never panics, and a decoded header re-encodes to the same 64
//!   bytes;
//! * [`SnapshotStore::list`] files it by name, with its true length;
//! * [`SnapshotStore::read_header`] and [`SnapshotStore::verify`] accept exactly what an
//!   independent reference decoder ([`reference`]) accepts, and fail with
//!   [`ReplayError::BadSnapshot`], never an I/O error or a panic, otherwise; a corrupt length
//!   is refused against the file size before anything is allocated for it;
//! * a verified snapshot restores exactly its body (fully, partly, or into a state that
//!   refuses it), and belongs to its own log only;
//! * writing the input as a body and reading it back round-trips;
//! * [`recover`] over a small log plus the snapshot (made to belong to the log) and the raw
//!   input as a newer snapshot never fails, skips the raw one, uses the re-stamped one exactly
//!   when its fence is within the log, and replays exactly the transactions after it.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use wal_format::frame::encode_frame;
use wal_format::{Bincode, Decoder, FrameKind, LogId, Lsn, SegmentHeader, SegmentSeq};
use wal_log::layout::segment_file_name;
use wal_log::sim::SimVfs;
use wal_log::{Options, Transaction};
use wal_replay::inspect::replay_read_only;
use wal_replay::snapshot::{
    SNAPSHOT_HEADER_LEN, SNAPSHOT_MAGIC, SNAPSHOT_VERSION, snapshot_file_name,
};
use wal_replay::snapshot::{SnapshotFile, SnapshotHeader, SnapshotStore};
use wal_replay::{
    ApplyError, DataDir, RecoverOptions, ReplayError, StateMachine, recover_with_codec,
};

/// Where snapshots are put for the decoder checks.
pub const SNAP_DIR: &str = "/snaps";
/// The data directory of the recovery check.
pub const ROOT: &str = "/data";
/// The log of the recovery check.
pub const LOG_ID: LogId = LogId::from_u128(0x5eed_5eed_0000_0000_0000_0000_0000_0001);
/// Transactions in the recovery check's log, at LSNs 1..=TXS.
pub const TXS: u64 = 6;
/// The most bytes of input the write round trip uses.
const MAX_WRITE: usize = 64 << 10;

/// What the reference decoder found in a valid snapshot file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Log id.
    pub log_id: LogId,
    /// Fence.
    pub fence: Lsn,
    /// Body length.
    pub body_len: u64,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn checksum(data: &[u8]) -> u32 {
    let body = crc32c::crc32c(&data[SNAPSHOT_HEADER_LEN..]);
    crc32c::crc32c_append(body, &data[..60])
}

/// An independent decoder of the format in `wal_replay::snapshot`: whether `data`, found under
/// the name of fence `name_fence`, is a valid snapshot.
///
/// # Errors
/// What is wrong, briefly.
pub fn reference(data: &[u8], name_fence: Lsn) -> Result<Reference, &'static str> {
    if data.len() < SNAPSHOT_HEADER_LEN {
        return Err("short");
    }
    if data[..8] != SNAPSHOT_MAGIC {
        return Err("magic");
    }
    if u16::from_le_bytes([data[8], data[9]]) != SNAPSHOT_VERSION {
        return Err("version");
    }
    // Bytes 56..60 are the event schema: any value.
    if data[10..16].iter().any(|&b| b != 0) {
        return Err("reserved");
    }
    let body_len = u64_at(data, 40);
    if body_len.checked_add(SNAPSHOT_HEADER_LEN as u64) != Some(data.len() as u64) {
        return Err("length");
    }
    let fence = Lsn(u64_at(data, 32));
    if fence != name_fence {
        return Err("fence");
    }
    if u32::from_le_bytes([data[60], data[61], data[62], data[63]]) != checksum(data) {
        return Err("checksum");
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&data[16..32]);
    Ok(Reference {
        log_id: LogId::from_u128(u128::from_le_bytes(id)),
        fence,
        body_len,
    })
}

/// A copy of `data` (at least 64 bytes) with a valid header: magic, version, zero reserved
/// bytes, event schema 0, `log_id` and `fence` when given (else those of the input), the body length
/// `body_len` (else the true one), and a checksum over header and body.
pub fn restamp(
    data: &[u8],
    log_id: Option<LogId>,
    fence: Option<Lsn>,
    body_len: Option<u64>,
) -> Vec<u8> {
    let mut out = data.to_vec();
    out[..8].copy_from_slice(&SNAPSHOT_MAGIC);
    out[8..10].copy_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    out[10..16].fill(0);
    out[56..60].fill(0);
    if let Some(id) = log_id {
        out[16..32].copy_from_slice(&id.as_u128().to_le_bytes());
    }
    if let Some(f) = fence {
        out[32..40].copy_from_slice(&f.0.to_le_bytes());
    }
    let len = body_len.unwrap_or((data.len() - SNAPSHOT_HEADER_LEN) as u64);
    out[40..48].copy_from_slice(&len.to_le_bytes());
    let crc = checksum(&out);
    out[60..64].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The whole check of the `snapshot_decode` fuzz target.
pub fn fuzz_snapshot_decode(data: &[u8]) {
    check_file(data);
    if data.len() < SNAPSHOT_HEADER_LEN {
        return;
    }
    let fixed = restamp(data, None, None, None);
    assert!(check_file(&fixed), "a re-stamped snapshot does not verify");
    // A length field that lies, under a valid checksum: refused by its size, not trusted.
    let lie = u64_at(data, 40);
    if lie.checked_add(SNAPSHOT_HEADER_LEN as u64) != Some(data.len() as u64) {
        assert!(!check_file(&restamp(data, None, None, Some(lie))));
    }
    check_write(data);
    check_recovery(data);
}

/// A state that keeps the restored body and the raw transactions it is given.
#[derive(Debug, Default)]
pub struct Raw {
    /// The body of the snapshot it was restored from.
    pub restored: Option<Vec<u8>>,
    /// Applied transactions: LSN and body.
    pub applied: Vec<(Lsn, Vec<u8>)>,
    /// Read at most this many bytes in `restore` (all when `None`).
    pub read_limit: Option<usize>,
    /// Refuse in `restore`.
    pub refuse: bool,
}

impl StateMachine for Raw {
    type Event = ();

    fn apply(&mut self, lsn: Lsn, _: Vec<()>) -> Result<(), ApplyError> {
        Err(format!("apply({lsn}) is not used: apply_transaction is overridden").into())
    }

    fn apply_transaction(
        &mut self,
        tx: &Transaction,
        _: &dyn Decoder<Self::Event>,
    ) -> Result<(), ApplyError> {
        self.applied.push((tx.lsn, tx.body.to_vec()));
        Ok(())
    }

    fn write_snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(self.restored.as_deref().unwrap_or_default())
    }

    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        if self.refuse {
            return Err(io::Error::other("this state refuses every snapshot"));
        }
        let mut v = Vec::new();
        match self.read_limit {
            Some(n) => {
                input.take(n as u64).read_to_end(&mut v)?;
            }
            None => {
                input.read_to_end(&mut v)?;
            }
        }
        self.restored = Some(v);
        Ok(())
    }
}

fn other_name_fence(data: &[u8]) -> Lsn {
    match data.get(32..40) {
        Some(_) => Lsn(u64_at(data, 32).wrapping_add(1)),
        None => Lsn(7),
    }
}

/// Runs the store over `data` filed as a snapshot; returns whether it verified under the name
/// of its own fence.
pub fn check_file(data: &[u8]) -> bool {
    let decoded = SnapshotHeader::decode(data);
    match &decoded {
        Ok(h) => assert_eq!(
            &h.encode()[..],
            &data[..SNAPSHOT_HEADER_LEN],
            "a decoded header does not re-encode to its bytes"
        ),
        Err(reason) => assert!(!reason.is_empty()),
    }
    let own = match data.get(32..40) {
        Some(_) => Lsn(u64_at(data, 32)),
        None => Lsn(1),
    };
    let other = other_name_fence(data);

    let vfs = SimVfs::new();
    let store = SnapshotStore::new(Arc::new(vfs.clone()), SNAP_DIR);
    let empty = store
        .list()
        .unwrap_or_else(|e| panic!("listing a missing dir: {e}"));
    assert!(empty.snapshots.is_empty());
    let dir = Path::new(SNAP_DIR);
    vfs.put_file(&dir.join(snapshot_file_name(own)), data);
    if other != own {
        vfs.put_file(&dir.join(snapshot_file_name(other)), data);
    }
    vfs.put_file(&dir.join("00000000000000000003.snap.tmp"), data);
    vfs.put_file(&dir.join("00000000000000000004.snap.corrupt"), data);
    vfs.put_file(&dir.join("notes.txt"), data);
    let listing = store.list().unwrap_or_else(|e| panic!("list: {e}"));
    assert_eq!(
        listing.snapshots.len(),
        if other == own { 1 } else { 2 },
        "{listing:?}"
    );
    assert_eq!(
        (
            listing.temp_files.len(),
            listing.corrupt_files.len(),
            listing.other_files.len()
        ),
        (1, 1, 1),
        "{listing:?}"
    );
    for pair in listing.snapshots.windows(2) {
        assert!(pair[0].fence > pair[1].fence, "newest first: {listing:?}");
    }

    let mut own_verified = false;
    for file in &listing.snapshots {
        assert_eq!(file.file_len, data.len() as u64);
        let want = reference(data, file.fence);
        let shape_ok = decoded.as_ref().is_ok_and(|h| {
            h.fence == file.fence
                && h.body_len.checked_add(SNAPSHOT_HEADER_LEN as u64) == Some(data.len() as u64)
        });
        match store.read_header(file) {
            Ok(h) => {
                assert!(shape_ok, "read_header accepted {h:?} for {file:?}");
                assert_eq!(Ok(h), decoded);
            }
            Err(e) => {
                assert!(!shape_ok, "read_header refused a well-formed header: {e}");
                assert!(matches!(e, ReplayError::BadSnapshot { .. }), "{e:?}");
            }
        }
        match store.verify(file, None) {
            Ok(v) => {
                let Ok(r) = want else {
                    panic!("verify accepted what the reference refuses ({want:?}): {v:?}");
                };
                assert_eq!(
                    (v.header.log_id, v.header.fence, v.header.body_len),
                    (r.log_id, r.fence, r.body_len)
                );
                assert_eq!(&v.file, file);
                check_verified(&store, file, &v, data);
                own_verified |= file.fence == own;
            }
            Err(e) => {
                assert!(
                    want.is_err(),
                    "verify refused a valid snapshot ({want:?}): {e}"
                );
                assert!(matches!(e, ReplayError::BadSnapshot { .. }), "{e:?}");
            }
        }
    }
    own_verified
}

fn check_verified(
    store: &SnapshotStore,
    file: &SnapshotFile,
    v: &wal_replay::snapshot::VerifiedSnapshot,
    data: &[u8],
) {
    let body = &data[SNAPSHOT_HEADER_LEN..];
    let id = v.header.log_id;
    assert!(store.verify(file, Some(id)).is_ok());
    let stranger = LogId::from_u128(id.as_u128() ^ 1);
    assert!(matches!(
        store.verify(file, Some(stranger)),
        Err(ReplayError::BadSnapshot { .. })
    ));
    if v.header.event_schema != 0 {
        // Another schema than the state's (0) goes to `restore_upgrade`, which it refuses.
        assert!(matches!(
            store.restore_into(v, &mut Raw::default()),
            Err(ReplayError::Restore { .. })
        ));
        return;
    }
    let mut full = Raw::default();
    store
        .restore_into(v, &mut full)
        .unwrap_or_else(|e| panic!("restoring a verified snapshot: {e}"));
    assert_eq!(
        full.restored.as_deref(),
        Some(body),
        "restored body differs"
    );
    let mut part = Raw {
        read_limit: Some(body.len() / 2),
        ..Raw::default()
    };
    // A restore that leaves body bytes unread did not read the state that was written: it
    // fails (an empty body has nothing to leave).
    let partly = store.restore_into(v, &mut part);
    assert_eq!(part.restored.as_deref(), Some(&body[..body.len() / 2]));
    if body.is_empty() {
        partly.unwrap_or_else(|e| panic!("restoring an empty snapshot: {e}"));
    } else {
        match partly {
            Err(ReplayError::Restore { source, .. }) => {
                assert!(
                    source.to_string().contains("left the rest unread"),
                    "{source}"
                );
            }
            other => panic!("a restore that read half the body: {other:?}"),
        }
    }
    let mut refusing = Raw {
        refuse: true,
        ..Raw::default()
    };
    assert!(matches!(
        store.restore_into(v, &mut refusing),
        Err(ReplayError::Restore { .. })
    ));
}

/// Writes the input as a snapshot body and reads it back.
fn check_write(data: &[u8]) {
    let body = &data[..data.len().min(MAX_WRITE)];
    let vfs = SimVfs::new();
    let store = SnapshotStore::new(Arc::new(vfs.clone()), SNAP_DIR);
    let fence = Lsn(u64_at(data, 32));
    let id = LogId::from_u128(u128::from(u64_at(data, 16)));
    let state = Raw {
        restored: Some(body.to_vec()),
        ..Raw::default()
    };
    let written = store
        .write(&state, id, fence)
        .unwrap_or_else(|e| panic!("writing a snapshot: {e}"));
    let listing = store.list().unwrap_or_else(|e| panic!("list: {e}"));
    assert_eq!(listing.snapshots, vec![written.file.clone()]);
    let file = vfs
        .read_file(&written.file.path)
        .unwrap_or_else(|| panic!("the written snapshot is missing"));
    assert_eq!(&file[SNAPSHOT_HEADER_LEN..], body);
    assert!(
        reference(&file, fence).is_ok(),
        "a written snapshot is invalid"
    );
    let v = store
        .verify(&written.file, Some(id))
        .unwrap_or_else(|e| panic!("verifying a written snapshot: {e}"));
    assert_eq!(v, written);
    let mut back = Raw::default();
    store
        .restore_into(&v, &mut back)
        .unwrap_or_else(|e| panic!("restoring a written snapshot: {e}"));
    assert_eq!(back.restored.as_deref(), Some(body));
}

/// The recovery check's log: segment 1 with transactions `tx-1`..=`tx-6` at LSNs 1..=6.
fn log_segment() -> Vec<u8> {
    let h = SegmentHeader::new(LOG_ID, SegmentSeq(1), Lsn(1));
    let mut seg = h.encode().to_vec();
    for i in 1..=TXS {
        let body = format!("tx-{i}");
        encode_frame(
            &mut seg,
            h.seed(),
            FrameKind::Tx,
            0,
            Lsn(i),
            body.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    seg
}

fn check_recovery(data: &[u8]) {
    let root = Path::new(ROOT);
    let dd = DataDir::new(root);
    let vfs = SimVfs::new();
    vfs.put_file(
        &dd.log_dir().join(segment_file_name(SegmentSeq(1))),
        &log_segment(),
    );
    // The input made to belong to the log, with a fence in 0..=TXS+1 (TXS+1 is ahead of it).
    let fence = Lsn(u64_at(data, 32) % (TXS + 2));
    let ours = restamp(data, Some(LOG_ID), Some(fence), None);
    vfs.put_file(&dd.snapshot_dir().join(snapshot_file_name(fence)), &ours);
    // The raw input as a newer snapshot: never usable (its fence would be ahead of the log).
    let newer = Lsn(100);
    vfs.put_file(&dd.snapshot_dir().join(snapshot_file_name(newer)), data);

    let usable = fence.0 <= TXS;
    let first = if usable { fence.0 + 1 } else { 1 };
    let expect_applied: Vec<(Lsn, Vec<u8>)> = (first..=TXS)
        .map(|i| (Lsn(i), format!("tx-{i}").into_bytes()))
        .collect();
    let opts = RecoverOptions::default().wal(
        Options::default()
            .vfs(Arc::new(vfs.clone()))
            .preallocate(false),
    );

    let mut ro = Raw::default();
    let report = replay_read_only(root, &mut ro, opts.clone())
        .unwrap_or_else(|e| panic!("read-only replay: {e}"));
    assert_eq!(ro.applied, expect_applied, "read-only replay: {report:?}");

    let mut st = Raw::default();
    let rec = recover_with_codec(root, &mut st, &Bincode, opts)
        .unwrap_or_else(|e| panic!("recovery fails: {e}"));
    let r = &rec.report;
    assert_eq!(
        r.snapshot.as_ref().map(|s| s.fence),
        usable.then_some(fence),
        "{r:?}"
    );
    assert_eq!(
        st.restored.as_deref(),
        usable.then_some(&data[SNAPSHOT_HEADER_LEN..]),
        "restored body"
    );
    assert_eq!(st.applied, expect_applied, "{r:?}");
    assert_eq!(
        r.rejected_snapshots.first().map(|s| s.path.clone()),
        Some(dd.snapshot_dir().join(snapshot_file_name(newer))),
        "the raw input is skipped first: {r:?}"
    );
    assert_eq!(
        r.rejected_snapshots.len(),
        if usable { 1 } else { 2 },
        "{r:?}"
    );
    assert_eq!(
        report.snapshot, r.snapshot,
        "read-only and real recovery differ"
    );
}
