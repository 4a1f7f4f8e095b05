//! The payload schema: stamped into every segment, reported per segment, checked on open when
//! the log is opened for one, and an upgrade that starts a new segment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use wal_format::header::SEGMENT_HEADER_LEN;
use wal_format::{SegmentHeader, SegmentSeq};
use wal_log::{Lsn, Options, Wal, WalError};

fn small() -> Options {
    Options::default().segment_size(4 << 10)
}

/// Each segment's sequence number and the schema its header records, read from the files.
fn schemas_on_disk(dir: &Path) -> Vec<(u64, u32)> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segs.sort();
    segs.iter()
        .map(|p| {
            let b = std::fs::read(p).unwrap();
            let h = SegmentHeader::decode(&b[..SEGMENT_HEADER_LEN]).unwrap();
            (h.seq.0, h.payload_schema)
        })
        .collect()
}

/// Every file under `dir` with its bytes.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    v
}

fn bodies(wal: &Wal) -> Vec<Vec<u8>> {
    wal.read_from(Lsn::ZERO)
        .unwrap()
        .map(|t| t.unwrap().body.to_vec())
        .collect()
}

fn fill(wal: &Wal, tag: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let body = format!("{tag}-{i:04}-{}", "x".repeat(200)).into_bytes();
            wal.append(&body).unwrap();
            body
        })
        .collect()
}

#[test]
fn every_segment_carries_the_schema_the_log_was_opened_for() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, report) = Wal::open(dir.path(), small().payload_schema(3)).unwrap();
    assert_eq!(report.payload_schemas, [(SegmentSeq(1), 3)]);
    fill(&wal, "a", 60);
    drop(wal);
    let on_disk = schemas_on_disk(dir.path());
    assert!(on_disk.len() > 2, "{on_disk:?}");
    assert!(on_disk.iter().all(|&(_, v)| v == 3), "{on_disk:?}");
    let (wal, report) = Wal::open(dir.path(), small().payload_schema(3)).unwrap();
    let reported: Vec<(u64, u32)> = report
        .payload_schemas
        .iter()
        .map(|&(s, v)| (s.0, v))
        .collect();
    assert_eq!(reported, on_disk);
    assert_eq!(wal.options().payload_schema, Some(3));
}

#[test]
fn a_log_of_another_schema_is_refused_naming_both_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small().payload_schema(1)).unwrap();
    fill(&wal, "a", 30);
    drop(wal);
    let before = tree(dir.path());
    for opts in [
        small().payload_schema(2),
        small().payload_schema(2).upgrade_payload_schemas([3]),
        small().payload_schema(0),
    ] {
        let expected = opts.payload_schema.unwrap();
        let err = Wal::open(dir.path(), opts).unwrap_err();
        let WalError::PayloadSchema {
            segment,
            found,
            expected: e,
            ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!((*found, *e), (1, expected));
        assert_eq!(
            segment.file_name().unwrap(),
            "00000000000000000001.wal",
            "the oldest segment is named"
        );
        let text = err.to_string();
        assert!(
            text.contains("payload schema 1") && text.contains(&format!("schema {expected}")),
            "{text}"
        );
        assert_eq!(tree(dir.path()), before, "nothing changed");
    }
}

#[test]
fn an_upgrade_seals_the_old_segment_and_new_segments_carry_the_new_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small().payload_schema(1)).unwrap();
    let mut all = fill(&wal, "v1", 30);
    drop(wal);
    let old = schemas_on_disk(dir.path());
    let upgrade = || small().payload_schema(2).upgrade_payload_schemas([1]);
    let (wal, report) = Wal::open(dir.path(), upgrade()).unwrap();
    let (newest, _) = *old.last().unwrap();
    assert_eq!(
        report.payload_schemas.last(),
        Some(&(SegmentSeq(newest + 1), 2)),
        "{report:?}"
    );
    assert_eq!(report.segments, old.len() + 1);
    // Nothing of the new schema lands in a segment of the old one.
    all.extend(fill(&wal, "v2", 30));
    assert_eq!(bodies(&wal), all);
    drop(wal);
    let now = schemas_on_disk(dir.path());
    assert_eq!(now[..old.len()], old[..]);
    assert!(now[old.len()..].iter().all(|&(_, v)| v == 2), "{now:?}");
    // Opened again for the new schema alone, the old segments are still refused; with the
    // upgrade path they read back whole, and no further segment is started.
    assert!(matches!(
        Wal::open(dir.path(), small().payload_schema(2)),
        Err(WalError::PayloadSchema { found: 1, .. })
    ));
    let (wal, report) = Wal::open(dir.path(), upgrade()).unwrap();
    assert_eq!(report.segments, now.len());
    assert_eq!(bodies(&wal), all);
}

#[test]
fn without_a_schema_open_accepts_any_and_goes_on_with_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(dir.path(), small().payload_schema(5)).unwrap();
    fill(&wal, "a", 10);
    drop(wal);
    let before = schemas_on_disk(dir.path());
    let (wal, report) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(report.segments, before.len(), "no segment started");
    assert_eq!(wal.options().payload_schema, Some(5));
    fill(&wal, "b", 60);
    drop(wal);
    let after = schemas_on_disk(dir.path());
    assert!(after.len() > before.len());
    assert!(after.iter().all(|&(_, v)| v == 5), "{after:?}");
}

#[test]
fn unversioned_logs_are_schema_zero_with_the_reserved_bytes_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, report) = Wal::open(dir.path(), small()).unwrap();
    assert_eq!(report.payload_schemas, [(SegmentSeq(1), 0)]);
    fill(&wal, "a", 40);
    drop(wal);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "wal") {
            assert_eq!(
                std::fs::read(&p).unwrap()[56..60],
                [0; 4],
                "{}",
                p.display()
            );
        }
    }
    // Opened for schema 0 explicitly, as an unversioned user of wal-replay does: the same.
    let (_wal, report) = Wal::open(dir.path(), small().payload_schema(0)).unwrap();
    assert!(report.payload_schemas.iter().all(|&(_, v)| v == 0));
}
