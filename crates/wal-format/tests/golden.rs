//! Golden vectors: checked-in segments that pin the byte format.
//!
//! Each case is built from a frame list, compared byte-for-byte with its file under
//! `tests/golden/`, scanned, checked frame by frame, and re-encoded from the decoded frames.
//! A missing or different file fails the test. After an intended format change, regenerate
//! the files with
//!
//! ```text
//! WAL_GOLDEN_BLESS=1 cargo test -p wal-format --test golden
//! ```
//!
//! and review the diff: a change to these files is a change to the on-disk format.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/check.rs"]
mod check;
#[path = "support/segment.rs"]
mod segment;

use bytes::Bytes;
use check::{Outcome, check_records, check_segment, reencode};
use segment::{Spec, build, build_claiming, hexdump};
use std::path::PathBuf;
use wal_format::frame::FRAME_HEADER_LEN;
use wal_format::header::SEGMENT_HEADER_LEN;
use wal_format::records::{RecordIter, encode_records};
use wal_format::scan::ScanEnd;
use wal_format::{
    Bincode, Codec, FormatError, FrameKind, LogId, Lsn, SegmentHeader, SegmentSeq, decode_all,
};

/// Events for the codec golden vector. Its serde shape is part of what is pinned.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
enum Ev {
    Put { key: String, value: Vec<u8> },
    Del(String),
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
}

fn blessing() -> bool {
    std::env::var_os("WAL_GOLDEN_BLESS").is_some_and(|v| v == "1")
}

/// Compares `actual` with the golden file `name`, or writes it when blessing.
fn golden(name: &str, actual: &[u8]) -> Vec<u8> {
    let path = golden_dir().join(name);
    if blessing() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return actual.to_vec();
    }
    let Ok(stored) = std::fs::read(&path) else {
        panic!(
            "golden file {} is missing; generate it with WAL_GOLDEN_BLESS=1 cargo test -p wal-format --test golden",
            path.display()
        );
    };
    if stored != actual {
        let at = stored.iter().zip(actual).position(|(a, b)| a != b);
        panic!(
            "golden file {} differs from what this build encodes (stored {} bytes, encoded {} bytes, first difference at {:?}).\n\
             If the format change is intended, re-bless with WAL_GOLDEN_BLESS=1 and review the diff.",
            path.display(),
            stored.len(),
            actual.len(),
            at
        );
    }
    stored
}

fn scan(file: &[u8]) -> [Outcome; 2] {
    check_segment(file).expect("golden segment header must decode")
}

// ---------------------------------------------------------------------------------------------
// tiny.seg: the worked example of docs/format.md.

fn tiny() -> (SegmentHeader, Vec<Spec>) {
    let header = SegmentHeader::new(
        LogId::from_u128(0x000102030405060708090a0b0c0d0e0f),
        SegmentSeq(1),
        Lsn(1),
    );
    (
        header,
        vec![
            Spec::Tx {
                multi: false,
                body: b"hello".to_vec(),
            },
            Spec::Seal { next: 2 },
        ],
    )
}

/// A field-by-field listing of `tiny.seg`, generated from the bytes so it is exact.
fn annotate_tiny(b: &[u8], header: &SegmentHeader) -> String {
    let mut out = String::new();
    let mut field = |range: std::ops::Range<usize>, what: String| {
        let hex: Vec<String> = b[range.clone()]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect();
        let hex = hex.join(" ");
        out.push_str(&format!(
            "{:>3}..{:<3}  {hex:<48}  {what}\n",
            range.start, range.end
        ));
    };
    let seed = header.seed().get();
    field(0..8, "segment magic \"\\x89WALSEG\\n\"".into());
    field(8..10, "format version = 2 (u16 LE)".into());
    field(10..12, "header flags = 0".into());
    field(12..16, "header length = 64 (u32 LE)".into());
    field(
        16..32,
        format!("log id = 0x{:032x} (u128 LE)", header.log_id.as_u128()),
    );
    field(32..40, "segment seq = 1 (u64 LE)".into());
    field(40..48, "base LSN = 1 (u64 LE)".into());
    field(48..56, "oldest open LSN = 0 (u64 LE)".into());
    field(56..60, "payload schema = 0 (not recorded)".into());
    field(
        60..64,
        format!(
            "header CRC32C of bytes 0..60 = 0x{:08x}",
            u32::from_le_bytes(b[60..64].try_into().unwrap())
        ),
    );
    let mut at = SEGMENT_HEADER_LEN;
    for (name, payload) in [("Tx", 5usize), ("Seal", 8)] {
        let crc = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        let lsn = u64::from_le_bytes(b[at + 12..at + 20].try_into().unwrap());
        field(
            at..at + 4,
            format!("{name} frame CRC32C, seeded with 0x{seed:08x} = 0x{crc:08x}"),
        );
        field(
            at + 4..at + 8,
            format!("payload length = {payload} (u32 LE)"),
        );
        field(at + 8..at + 9, format!("kind = {} ({name})", b[at + 8]));
        field(at + 9..at + 10, "flags = 0".into());
        let lag = u16::from_le_bytes([b[at + 10], b[at + 11]]);
        field(
            at + 10..at + 12,
            if lag == 0 {
                "durable lag = 0 (u16 LE): claims nothing".to_string()
            } else {
                format!(
                    "durable lag = {lag} (u16 LE): claims LSN {} durable",
                    lsn + 1 - u64::from(lag)
                )
            },
        );
        field(at + 12..at + 20, format!("LSN = {lsn} (u64 LE)"));
        let p = at + FRAME_HEADER_LEN;
        let what = if name == "Tx" {
            "payload: the transaction body \"hello\"".to_string()
        } else {
            "payload: next segment seq = 2 (u64 LE)".to_string()
        };
        field(p..p + payload, what);
        at = p + payload;
    }
    out
}

/// How the writer claims in the golden files: every frame claims all frames before it durable
/// (what `SyncPolicy::Always` knows once each flush is synced).
fn claim_all_before(_: usize, lsn: Lsn) -> Lsn {
    lsn.prev()
}

#[test]
fn tiny_segment() {
    let (header, specs) = tiny();
    let built = build_claiming(&header, &specs, claim_all_before);
    let file = golden("tiny.seg", &built.bytes);
    let listing = format!("{}\n{}", hexdump(&file), annotate_tiny(&file, &header));
    let stored_listing = golden("tiny.txt", listing.as_bytes());

    let [open, sealed] = scan(&file);
    assert_eq!(open.frames, built.frames);
    let clean = ScanEnd::Clean {
        offset: file.len(),
        sealed: Some(SegmentSeq(2)),
    };
    assert_eq!((open.end, sealed.end), (clean.clone(), clean));
    assert_eq!(reencode(&header, &open.frames), file);

    // The worked example in docs/format.md must show exactly these bytes.
    let doc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/format.md");
    let doc = std::fs::read_to_string(&doc).expect("docs/format.md must exist");
    let listing = String::from_utf8(stored_listing).unwrap();
    for part in listing.split("\n\n") {
        assert!(
            doc.contains(part.trim_end()),
            "docs/format.md's worked example is out of date; paste tests/golden/tiny.txt into it"
        );
    }
}

/// The payload schema lives in header bytes 56..60, which were reserved and zero: every golden
/// file (written before it existed) reads as schema 0 and re-encodes byte for byte, and a
/// segment stamped with a schema differs from it only in those bytes and the header checksum,
/// its frames verifying the same (their seed does not involve the schema).
#[test]
fn payload_schema_is_zero_in_old_files_and_changes_only_its_header_bytes() {
    for name in ["tiny.seg", "tx.seg", "fragments.seg", "torn.seg"] {
        let file = std::fs::read(golden_dir().join(name)).unwrap();
        let h = SegmentHeader::decode(&file).unwrap();
        assert_eq!(h.payload_schema, 0, "{name}");
        assert_eq!(h.encode()[..], file[..SEGMENT_HEADER_LEN], "{name}");
    }
    let (header, specs) = tiny();
    let old = build_claiming(&header, &specs, claim_all_before).bytes;
    let stamped = build_claiming(&header.with_payload_schema(7), &specs, claim_all_before).bytes;
    assert_eq!(stamped.len(), old.len());
    let differ: Vec<usize> = (0..old.len()).filter(|&i| old[i] != stamped[i]).collect();
    assert!(differ.iter().all(|i| (56..64).contains(i)), "{differ:?}");
    assert_eq!(stamped[56..60], 7u32.to_le_bytes());
    assert_eq!(SegmentHeader::decode(&stamped).unwrap().payload_schema, 7);
    let [a, _] = scan(&old);
    let [b, _] = scan(&stamped);
    assert_eq!((a.frames, a.end), (b.frames, b.end));
}

// ---------------------------------------------------------------------------------------------
// tx.seg: whole transactions, a multi-record batch, an empty body and a codec payload.

fn tx_events() -> Vec<Ev> {
    vec![
        Ev::Put {
            key: "k1".into(),
            value: vec![1, 2, 3],
        },
        Ev::Del("k2".into()),
    ]
}

#[test]
fn tx_segment() {
    let header = SegmentHeader::new(
        LogId::from_u128(0x7a11_0000_0000_0000_0000_0000_0000_0001),
        SegmentSeq(1),
        Lsn(1),
    );
    let mut batch = Vec::new();
    encode_records(&mut batch, &[&b"put k1=v1"[..], b"", b"del k2"]);
    let mut events = Vec::new();
    for e in tx_events() {
        Bincode.encode(&e, &mut events).unwrap();
    }
    let mut empty_batch = Vec::new();
    encode_records::<&[u8]>(&mut empty_batch, &[]);
    let specs = vec![
        Spec::Tx {
            multi: false,
            body: b"hello, wal".to_vec(),
        },
        Spec::Tx {
            multi: true,
            body: batch,
        },
        Spec::Tx {
            multi: false,
            body: Vec::new(),
        },
        Spec::Tx {
            multi: false,
            body: events.clone(),
        },
        Spec::Tx {
            multi: true,
            body: empty_batch,
        },
        // A clean close: a watermark claiming all five frames durable.
        Spec::Watermark,
    ];
    // The watermark claims its own LSN: everything up to the frame before it.
    let built = build_claiming(&header, &specs, |i, lsn| {
        if i == 5 {
            lsn
        } else {
            claim_all_before(i, lsn)
        }
    });
    let file = golden("tx.seg", &built.bytes);
    // bincode standard(): variant index and lengths as one-byte varints, then the bytes.
    assert_eq!(events, [0, 2, b'k', b'1', 3, 1, 2, 3, 1, 2, b'k', b'2']);

    let [open, sealed] = scan(&file);
    assert_eq!(open.frames, built.frames);
    assert_eq!(
        open.end,
        ScanEnd::Clean {
            offset: file.len(),
            sealed: None
        }
    );
    assert!(matches!(sealed.end, ScanEnd::Corrupt { offset, .. } if offset == file.len()));
    assert_eq!(reencode(&header, &open.frames), file);

    let f = &open.frames;
    assert!(f[..5].iter().all(|f| f.kind == FrameKind::Tx));
    assert_eq!(
        f.iter()
            .map(|f| (f.lsn.0, f.durable().0))
            .collect::<Vec<_>>(),
        [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4), (5, 5)]
    );
    assert_eq!((f[5].kind, f[5].payload.len()), (FrameKind::Watermark, 0));
    assert_eq!(&f[0].body()[..], b"hello, wal");
    assert!(f[1].is_multi() && !f[0].is_multi());
    let records: Vec<Bytes> = RecordIter::new(f[1].body())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(records, [&b"put k1=v1"[..], b"", b"del k2"]);
    assert!(f[2].body().is_empty());
    assert_eq!(
        decode_all::<Ev, _>(&Bincode, &f[3].body()).unwrap(),
        tx_events()
    );
    assert_eq!(check_records(&f[4].body()), Some(Vec::new()));
}

// ---------------------------------------------------------------------------------------------
// fragments.seg: a stream finished from an earlier segment, an aborted stream, a checkpoint,
// a multi-record stream split across fragments, and the seal.

#[test]
fn fragments_segment() {
    let mut header = SegmentHeader::new(
        LogId::from_u128(0x7a11_0000_0000_0000_0000_0000_0000_0002),
        SegmentSeq(7),
        Lsn(100),
    );
    header.oldest_open_lsn = Lsn(97);
    let mut records = Vec::new();
    encode_records(&mut records, &[&b"alpha"[..], b"beta", b"gamma"]);
    let (first, second) = records.split_at(9);
    let specs = vec![
        Spec::FragPart {
            stream: 97,
            chunk: b"middle of 97".to_vec(),
        },
        Spec::FragEnd {
            stream: 97,
            chunk: b"end of 97".to_vec(),
        },
        Spec::FragBegin {
            multi: false,
            body: b"doomed".to_vec(),
        },
        Spec::FragPart {
            stream: 102,
            chunk: Vec::new(),
        },
        Spec::FragAbort { stream: 102 },
        Spec::Tx {
            multi: false,
            body: b"small".to_vec(),
        },
        Spec::Checkpoint { lsn: 105 },
        Spec::FragBegin {
            multi: true,
            body: first.to_vec(),
        },
        Spec::FragEnd {
            stream: 107,
            chunk: second.to_vec(),
        },
        Spec::Seal { next: 8 },
    ];
    let built = build(&header, &specs);
    let file = golden("fragments.seg", &built.bytes);

    let [open, sealed] = scan(&file);
    assert_eq!(sealed.frames, built.frames);
    let clean = ScanEnd::Clean {
        offset: file.len(),
        sealed: Some(SegmentSeq(8)),
    };
    assert_eq!((open.end, sealed.end), (clean.clone(), clean));
    assert_eq!(reencode(&header, &sealed.frames), file);

    let f = &sealed.frames;
    assert_eq!(
        SegmentHeader::decode(&file).unwrap().oldest_open_lsn,
        Lsn(97)
    );
    let streams: Vec<Option<u64>> = f.iter().map(|f| f.stream().map(|l| l.0)).collect();
    assert_eq!(
        streams,
        [
            Some(97),
            Some(97),
            Some(102),
            Some(102),
            Some(102),
            None,
            None,
            Some(107),
            Some(107),
            None
        ]
    );
    assert_eq!(&f[1].body()[..], b"end of 97");
    assert!(f[3].body().is_empty() && f[4].body().is_empty());
    assert_eq!(f[6].checkpoint_lsn(), Some(Lsn(105)));
    assert_eq!(f[9].sealed_next(), Some(SegmentSeq(8)));
    // Reassembling stream 107 (committed at the FragEnd's LSN, 108) gives the batch back.
    assert!(f[7].is_multi());
    assert_eq!(f[8].lsn, Lsn(108));
    let body: Vec<u8> = [f[7].body(), f[8].body()].concat();
    let got: Vec<Bytes> = RecordIter::new(Bytes::from(body))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, [&b"alpha"[..], b"beta", b"gamma"]);
}

// ---------------------------------------------------------------------------------------------
// torn.seg: two frames, then a frame cut short by a crash, then preallocated zeros.

#[test]
fn torn_segment() {
    let header = SegmentHeader::new(
        LogId::from_u128(0x7a11_0000_0000_0000_0000_0000_0000_0003),
        SegmentSeq(3),
        Lsn(50),
    );
    let specs = vec![
        Spec::Tx {
            multi: false,
            body: b"first".to_vec(),
        },
        Spec::Tx {
            multi: false,
            body: b"second".to_vec(),
        },
        Spec::Tx {
            multi: false,
            body: b"third, torn by a crash".to_vec(),
        },
    ];
    let built = build(&header, &specs);
    let torn_at = built.offsets[2];
    let mut bytes = built.bytes.clone();
    bytes.truncate(torn_at + FRAME_HEADER_LEN + 7);
    bytes.resize(bytes.len() + 32, 0);
    let file = golden("torn.seg", &bytes);

    let [open, sealed] = scan(&file);
    assert_eq!(open.frames, built.frames[..2]);
    assert!(
        matches!(&open.end, ScanEnd::TornTail { offset, .. } if *offset == torn_at),
        "{:?}",
        open.end
    );
    assert!(matches!(&sealed.end, ScanEnd::Corrupt { offset, .. } if *offset == torn_at));
    let mut again = reencode(&header, &open.frames);
    assert_eq!(again.len(), torn_at);
    again.extend_from_slice(&file[torn_at..]);
    assert_eq!(again, file);
}

/// `tiny-v1.seg` is the worked example as format version 1 wrote it (before the durable
/// watermark): refused as an unsupported version, never read as damage.
#[test]
fn a_version_1_segment_is_an_unsupported_version() {
    let file = std::fs::read(golden_dir().join("tiny-v1.seg")).unwrap();
    assert_eq!(
        SegmentHeader::decode(&file),
        Err(FormatError::UnsupportedVersion {
            found: 1,
            supported: 2
        })
    );
    assert!(check_segment(&file).is_none());
}

#[test]
fn golden_directory_holds_only_known_files() {
    if blessing() {
        return; // the other tests are writing the files right now
    }
    let mut names: Vec<String> = std::fs::read_dir(golden_dir())
        .expect("tests/golden must exist")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "fragments.seg",
            "tiny-v1.seg",
            "tiny.seg",
            "tiny.txt",
            "torn.seg",
            "tx.seg"
        ]
    );
}
