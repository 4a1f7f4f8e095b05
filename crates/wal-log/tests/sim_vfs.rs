//! Behaviour of the simulated file system: durability, crash images, faults, power-off, locks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wal_log::sim::{CrashImage, DataLoss, DirLoss, Fault, OpKind, SimVfs};
use wal_log::vfs::{OpenMode, Vfs, VfsFile, create_dir_durable, read_all};

const DIR: &str = "/db";

fn p(name: &str) -> PathBuf {
    Path::new(DIR).join(name)
}

fn dir() -> &'static Path {
    Path::new(DIR)
}

fn image(data: DataLoss, dirs: DirLoss) -> CrashImage {
    CrashImage { data, dirs }
}

/// A file system with `/db` created durably, its counters at zero (a crash image of one).
fn fresh() -> SimVfs {
    let v = SimVfs::new();
    create_dir_durable(&v, dir()).unwrap();
    v.crash(&image(DataLoss::DurableOnly, DirLoss::UnsyncedLost))
}

/// Creates `name`, writes `bytes`, syncs the file and the directory.
fn durable_file(v: &SimVfs, name: &str, bytes: &[u8]) -> Arc<dyn VfsFile> {
    let f = v.open(&p(name), OpenMode::CreateNew).unwrap();
    f.write_all_at(bytes, 0).unwrap();
    f.sync_data().unwrap();
    v.sync_dir(dir()).unwrap();
    f
}

/// Every visible file with its contents.
fn snapshot(v: &SimVfs) -> Vec<(PathBuf, Vec<u8>)> {
    v.files()
        .into_iter()
        .map(|(path, _)| (path.clone(), v.read_file(&path).unwrap()))
        .collect()
}

fn contents(v: &SimVfs, name: &str) -> Option<Vec<u8>> {
    v.read_file(&p(name))
}

// ---------------------------------------------------------------------------------------------
// Basic file semantics
// ---------------------------------------------------------------------------------------------

#[test]
fn reads_writes_lengths_and_errors() {
    let v = fresh();
    let f = v.open(&p("a"), OpenMode::CreateNew).unwrap();
    assert_eq!(f.len().unwrap(), 0);
    f.write_all_at(b"abc", 5).unwrap();
    assert_eq!(read_all(&*f).unwrap(), b"\0\0\0\0\0abc");
    let mut buf = [9u8; 4];
    assert_eq!(f.read_at(&mut buf, 6).unwrap(), 2);
    assert_eq!(&buf[..2], b"bc");
    assert_eq!(f.read_at(&mut buf, 8).unwrap(), 0);
    assert_eq!(f.read_at(&mut buf, 1 << 40).unwrap(), 0);

    f.allocate(16).unwrap();
    assert_eq!(f.len().unwrap(), 16);
    f.allocate(4).unwrap();
    assert_eq!(f.len().unwrap(), 16, "allocate never shrinks");
    f.set_len(6).unwrap();
    assert_eq!(read_all(&*f).unwrap(), b"\0\0\0\0\0a");
    f.set_len(8).unwrap();
    assert_eq!(read_all(&*f).unwrap(), b"\0\0\0\0\0a\0\0");
    f.write_all_at(b"", 100).unwrap();
    assert_eq!(f.len().unwrap(), 8, "an empty write changes nothing");

    assert_eq!(
        v.open(&p("a"), OpenMode::CreateNew).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    assert_eq!(
        v.open(&p("zz"), OpenMode::Read).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        v.open(&p("zz"), OpenMode::ReadWrite).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        v.open(Path::new("/nodir/x"), OpenMode::CreateNew)
            .unwrap_err()
            .kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        v.list(Path::new("/nodir")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        v.remove(&p("zz")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        v.rename(&p("zz"), &p("yy")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        v.sync_dir(Path::new("/nodir")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );

    let ro = v.open(&p("a"), OpenMode::Read).unwrap();
    assert_eq!(
        ro.write_all_at(b"x", 0).unwrap_err().raw_os_error(),
        Some(9)
    );
    assert_eq!(ro.set_len(0).unwrap_err().raw_os_error(), Some(9));
    assert_eq!(ro.allocate(100).unwrap_err().raw_os_error(), Some(9));
    assert_eq!(ro.len().unwrap(), 8);
    ro.sync_data().unwrap();
}

#[test]
fn list_shows_files_and_subdirectories() {
    let v = fresh();
    v.create_dir_all(&p("sub/deeper")).unwrap();
    durable_file(&v, "b", b"1");
    durable_file(&v, "a", b"22");
    let mut names = v.list(dir()).unwrap();
    names.sort();
    assert_eq!(names, vec!["a", "b", "sub"]);
    assert_eq!(v.list(&p("sub")).unwrap(), vec!["deeper"]);
    assert!(v.list(&p("sub/deeper")).unwrap().is_empty());
    assert_eq!(v.files(), vec![(p("a"), 2), (p("b"), 1)]);
    assert_eq!(
        v.create_dir_all(&p("a/x")).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists,
        "a file is in the way"
    );
}

#[test]
fn handles_follow_the_inode_across_rename_and_remove() {
    let v = fresh();
    let f = durable_file(&v, "a", b"one");
    v.rename(&p("a"), &p("b")).unwrap();
    f.write_all_at(b"two", 3).unwrap();
    assert_eq!(contents(&v, "a"), None);
    assert_eq!(contents(&v, "b").unwrap(), b"onetwo");

    // Rename onto an existing name replaces it.
    durable_file(&v, "c", b"old");
    v.rename(&p("b"), &p("c")).unwrap();
    assert_eq!(v.files(), vec![(p("c"), 6)]);
    assert_eq!(contents(&v, "c").unwrap(), b"onetwo");

    // After remove, writes to the orphan are allowed but invisible.
    v.remove(&p("c")).unwrap();
    f.write_all_at(b"three", 6).unwrap();
    assert_eq!(read_all(&*f).unwrap(), b"onetwothree");
    assert!(v.files().is_empty());
    assert_eq!(
        v.open(&p("c"), OpenMode::Read).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );

    // Renaming a file onto itself is a no-op.
    durable_file(&v, "d", b"d");
    v.rename(&p("d"), &p("d")).unwrap();
    assert_eq!(contents(&v, "d").unwrap(), b"d");
}

// ---------------------------------------------------------------------------------------------
// Data loss modes
// ---------------------------------------------------------------------------------------------

/// `a` durable as "hello", then an unsynced write of " world" at 5.
fn half_synced() -> (SimVfs, Arc<dyn VfsFile>) {
    let v = fresh();
    let f = durable_file(&v, "a", b"hello");
    f.write_all_at(b" world", 5).unwrap();
    (v, f)
}

#[test]
fn durable_only_keeps_synced_bytes_and_all_written_keeps_everything() {
    let (v, f) = half_synced();
    let lost = v.crash(&image(DataLoss::DurableOnly, DirLoss::UnsyncedLost));
    assert_eq!(contents(&lost, "a").unwrap(), b"hello");
    let kept = v.crash(&image(DataLoss::AllWritten, DirLoss::UnsyncedLost));
    assert_eq!(contents(&kept, "a").unwrap(), b"hello world");

    // After a sync both agree.
    f.sync_all().unwrap();
    assert_eq!(v.unsynced_ops(), 0);
    let lost = v.crash(&image(DataLoss::DurableOnly, DirLoss::UnsyncedLost));
    assert_eq!(contents(&lost, "a").unwrap(), b"hello world");
}

#[test]
fn unsynced_set_len_and_allocate_are_lost_or_kept_like_writes() {
    let v = fresh();
    let f = durable_file(&v, "a", b"0123456789");
    f.set_len(4).unwrap();
    f.allocate(6).unwrap();
    assert_eq!(v.unsynced_ops(), 2);
    assert_eq!(contents(&v, "a").unwrap(), b"0123\0\0");
    let lost = v.crash(&image(DataLoss::DurableOnly, DirLoss::AllKept));
    assert_eq!(contents(&lost, "a").unwrap(), b"0123456789");
    let first = v.crash(&image(DataLoss::Prefix(1), DirLoss::AllKept));
    assert_eq!(contents(&first, "a").unwrap(), b"0123");
    let all = v.crash(&image(DataLoss::AllWritten, DirLoss::AllKept));
    assert_eq!(contents(&all, "a").unwrap(), b"0123\0\0");
    // An allocate that does not extend is no operation at all.
    f.allocate(3).unwrap();
    assert_eq!(v.unsynced_ops(), 2);
}

#[test]
fn prefix_enumerates_operations_in_global_order_across_files() {
    let v = fresh();
    let a = durable_file(&v, "a", b"");
    let b = durable_file(&v, "b", b"");
    a.write_all_at(b"A1", 0).unwrap();
    b.write_all_at(b"B1", 0).unwrap();
    a.write_all_at(b"A2", 2).unwrap();
    b.write_all_at(b"B2", 2).unwrap();
    assert_eq!(v.unsynced_ops(), 4);
    let expect: [(&[u8], &[u8]); 5] = [
        (b"", b""),
        (b"A1", b""),
        (b"A1", b"B1"),
        (b"A1A2", b"B1"),
        (b"A1A2", b"B1B2"),
    ];
    for (k, (ea, eb)) in expect.iter().enumerate() {
        let img = v.crash(&image(DataLoss::Prefix(k), DirLoss::UnsyncedLost));
        assert_eq!(contents(&img, "a").unwrap(), *ea, "prefix {k}");
        assert_eq!(contents(&img, "b").unwrap(), *eb, "prefix {k}");
    }
    let beyond = v.crash(&image(DataLoss::Prefix(99), DirLoss::UnsyncedLost));
    assert_eq!(
        snapshot(&beyond),
        snapshot(&v.crash(&image(DataLoss::AllWritten, DirLoss::UnsyncedLost)))
    );

    // Syncing one file removes its operations from the numbering.
    a.sync_data().unwrap();
    assert_eq!(v.unsynced_ops(), 2);
    let img = v.crash(&image(DataLoss::Prefix(1), DirLoss::UnsyncedLost));
    assert_eq!(contents(&img, "a").unwrap(), b"A1A2");
    assert_eq!(contents(&img, "b").unwrap(), b"B1");
}

#[test]
fn random_subset_is_seeded_and_picks_subsets() {
    let v = fresh();
    let f = durable_file(&v, "a", b"");
    for i in 0..16u8 {
        f.write_all_at(&[b'a' + i], u64::from(i)).unwrap();
    }
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..32 {
        let one = v.crash(&image(DataLoss::RandomSubset { seed }, DirLoss::AllKept));
        let two = v.crash(&image(DataLoss::RandomSubset { seed }, DirLoss::AllKept));
        let bytes = contents(&one, "a").unwrap();
        assert_eq!(bytes, contents(&two, "a").unwrap(), "same seed, same image");
        // Every surviving byte is the one written there; the rest are zero fill or absent.
        for (i, &b) in bytes.iter().enumerate() {
            assert!(b == 0 || b == b'a' + i as u8);
        }
        seen.insert(bytes);
    }
    assert!(seen.len() > 16, "different seeds pick different subsets");
}

#[test]
fn torn_last_write_cuts_at_512_byte_boundaries() {
    let v = fresh();
    let f = durable_file(&v, "a", &[1u8; 100]);
    f.write_all_at(&[2u8; 50], 100).unwrap(); // unsynced, not the last write
    f.write_all_at(&[3u8; 1200], 300).unwrap(); // last write: bytes 300..1500, sectors 0..=2
    let torn = |sectors| {
        let img = v.crash(&image(
            DataLoss::TornLastWrite { sectors },
            DirLoss::UnsyncedLost,
        ));
        contents(&img, "a").unwrap()
    };
    let zero = torn(0);
    assert_eq!(zero.len(), 150, "nothing of the last write survives");
    assert_eq!(
        &zero[100..],
        &[2u8; 50][..],
        "earlier unsynced writes survive"
    );
    assert_eq!(torn(1).len(), 512);
    assert!(torn(1)[300..].iter().all(|&b| b == 3));
    assert_eq!(torn(2).len(), 1024);
    assert_eq!(torn(3).len(), 1500);
    assert_eq!(torn(1000), contents(&v, "a").unwrap());

    // Operations after the last write still survive.
    f.set_len(200).unwrap();
    assert_eq!(torn(0).len(), 200);

    // Without an unsynced write it is AllWritten.
    f.sync_data().unwrap();
    f.set_len(10).unwrap();
    assert_eq!(torn(0), vec![1u8; 10]);
}

#[test]
fn torn_write_that_overwrites_keeps_old_bytes_past_the_cut() {
    let v = fresh();
    let f = durable_file(&v, "a", &[1u8; 2048]);
    f.write_all_at(&[9u8; 1024], 512).unwrap();
    let img = v.crash(&image(
        DataLoss::TornLastWrite { sectors: 1 },
        DirLoss::UnsyncedLost,
    ));
    let bytes = contents(&img, "a").unwrap();
    assert_eq!(bytes.len(), 2048);
    assert!(bytes[..512].iter().all(|&b| b == 1));
    assert!(bytes[512..1024].iter().all(|&b| b == 9));
    assert!(bytes[1024..].iter().all(|&b| b == 1));
}

/// Two files: `a` with three unsynced writes (the middle one spans three sectors), then an
/// unsynced `set_len` of `b`.
fn three_writes() -> SimVfs {
    let v = fresh();
    let a = durable_file(&v, "a", &[1u8; 100]);
    let b = durable_file(&v, "b", &[9u8; 10]);
    a.write_all_at(&[2u8; 50], 100).unwrap(); // write 0
    a.write_all_at(&[3u8; 1200], 300).unwrap(); // write 1: bytes 300..1500, sectors 0..=2
    a.write_all_at(&[4u8; 10], 1500).unwrap(); // write 2
    b.set_len(20).unwrap();
    v
}

#[test]
fn any_write_tears_at_any_sectors_in_or_out_of_order() {
    let v = three_writes();
    assert_eq!((v.unsynced_ops(), v.unsynced_writes()), (4, 3));
    let torn = |write, keep, later| {
        let img = v.crash(&image(
            DataLoss::TornWrite { write, keep, later },
            DirLoss::UnsyncedLost,
        ));
        (
            contents(&img, "a").unwrap(),
            contents(&img, "b").unwrap().len(),
        )
    };
    // A write that is not the last one, torn after its first sector, in issue order: what
    // follows it is lost.
    let (a, b) = torn(1, 0..1, false);
    assert_eq!(a.len(), 512);
    assert!(a[300..].iter().all(|&x| x == 3) && a[100..150].iter().all(|&x| x == 2));
    assert_eq!(b, 10, "the set_len issued after the torn write is lost");
    // The same cut with the later operations kept: a hole-free file here, but write 2
    // lands past a part of write 1 that did not.
    let (a, b) = torn(1, 0..1, true);
    assert_eq!(a.len(), 1510);
    assert!(a[512..1500].iter().all(|&x| x == 0));
    assert!(a[1500..].iter().all(|&x| x == 4));
    assert_eq!(b, 20);
    // Out of order within the write: its last sector without the first two.
    let (a, _) = torn(1, 2..3, false);
    assert_eq!(a.len(), 1500);
    assert!(
        a[150..1024].iter().all(|&x| x == 0),
        "the leading sectors are a hole"
    );
    assert!(a[1024..].iter().all(|&x| x == 3));
    // The first write torn to nothing; a write number past the last is everything.
    assert_eq!(torn(0, 0..0, false).0, vec![1u8; 100]);
    assert_eq!(torn(3, 0..0, false).0, contents(&v, "a").unwrap());
    // Keeping every sector and the rest is everything too.
    assert_eq!(torn(1, 0..usize::MAX, true).0, contents(&v, "a").unwrap());
}

#[test]
fn scattered_sectors_are_seeded_and_reach_the_disk_out_of_order() {
    let v = fresh();
    let a = durable_file(&v, "a", &[]);
    for i in 0..8u8 {
        // Eight writes of four sectors each.
        a.write_all_at(&[i + 1; 2048], u64::from(i) * 2048).unwrap();
    }
    let scattered = |seed| {
        contents(
            &v.crash(&image(
                DataLoss::ScatteredSectors { seed },
                DirLoss::UnsyncedLost,
            )),
            "a",
        )
        .unwrap()
    };
    assert_eq!(scattered(3), scattered(3), "same seed, same image");
    let mut out_of_order = 0;
    for seed in 0..20 {
        let img = scattered(seed);
        let kept: Vec<bool> = img.chunks(512).map(|s| s.iter().all(|&x| x != 0)).collect();
        assert!(
            img.chunks(512)
                .all(|s| s.iter().all(|&x| x == 0) || s.iter().all(|&x| x != 0)),
            "sectors survive whole or not at all"
        );
        // A lost sector followed by a surviving one, inside one write or across writes.
        if kept.windows(2).any(|w| !w[0] && w[1]) {
            out_of_order += 1;
        }
    }
    assert!(
        out_of_order >= 15,
        "{out_of_order} of 20 images out of order"
    );
}

#[test]
fn unsynced_ranges_can_be_zeroed_or_garbage() {
    let (v, _f) = half_synced();
    let zeroed = v.crash(&image(DataLoss::UnsyncedZeroed, DirLoss::UnsyncedLost));
    assert_eq!(contents(&zeroed, "a").unwrap(), b"hello\0\0\0\0\0\0");

    let g1 = v.crash(&image(
        DataLoss::UnsyncedGarbage { seed: 7 },
        DirLoss::UnsyncedLost,
    ));
    let g2 = v.crash(&image(
        DataLoss::UnsyncedGarbage { seed: 7 },
        DirLoss::UnsyncedLost,
    ));
    let g3 = v.crash(&image(
        DataLoss::UnsyncedGarbage { seed: 8 },
        DirLoss::UnsyncedLost,
    ));
    let b1 = contents(&g1, "a").unwrap();
    assert_eq!(b1.len(), 11);
    assert_eq!(&b1[..5], b"hello");
    assert_ne!(&b1[5..], b" world");
    assert_eq!(b1, contents(&g2, "a").unwrap());
    assert_ne!(b1, contents(&g3, "a").unwrap());
}

// ---------------------------------------------------------------------------------------------
// Directory entries
// ---------------------------------------------------------------------------------------------

#[test]
fn created_file_without_dir_sync_vanishes() {
    let v = fresh();
    let f = v.open(&p("new"), OpenMode::CreateNew).unwrap();
    f.write_all_at(b"data", 0).unwrap();
    f.sync_all().unwrap(); // the file's data, not its entry
    let lost = v.crash(&image(DataLoss::AllWritten, DirLoss::UnsyncedLost));
    assert!(lost.files().is_empty());
    let kept = v.crash(&image(DataLoss::DurableOnly, DirLoss::AllKept));
    assert_eq!(contents(&kept, "new").unwrap(), b"data");

    v.sync_dir(dir()).unwrap();
    let lost = v.crash(&image(DataLoss::DurableOnly, DirLoss::UnsyncedLost));
    assert_eq!(contents(&lost, "new").unwrap(), b"data");
}

#[test]
fn rename_without_dir_sync_reverts() {
    let v = fresh();
    let f = durable_file(&v, "tmp", b"v1");
    durable_file(&v, "cur", b"v0");
    v.rename(&p("tmp"), &p("cur")).unwrap();
    f.write_all_at(b"+", 2).unwrap();

    let lost = v.crash(&image(DataLoss::AllWritten, DirLoss::UnsyncedLost));
    assert_eq!(
        snapshot(&lost),
        vec![(p("cur"), b"v0".to_vec()), (p("tmp"), b"v1+".to_vec())]
    );
    let kept = v.crash(&image(DataLoss::DurableOnly, DirLoss::AllKept));
    assert_eq!(snapshot(&kept), vec![(p("cur"), b"v1".to_vec())]);

    v.sync_dir(dir()).unwrap();
    let lost = v.crash(&image(DataLoss::DurableOnly, DirLoss::UnsyncedLost));
    assert_eq!(snapshot(&lost), vec![(p("cur"), b"v1".to_vec())]);
}

#[test]
fn removed_file_comes_back_without_dir_sync() {
    let v = fresh();
    let f = durable_file(&v, "old", b"keep");
    v.remove(&p("old")).unwrap();
    f.write_all_at(b"!", 4).unwrap();
    drop(f);
    assert!(v.files().is_empty());
    let lost = v.crash(&image(DataLoss::DurableOnly, DirLoss::UnsyncedLost));
    assert_eq!(contents(&lost, "old").unwrap(), b"keep");
    let lost = v.crash(&image(DataLoss::AllWritten, DirLoss::UnsyncedLost));
    assert_eq!(contents(&lost, "old").unwrap(), b"keep!");
    assert!(
        v.crash(&image(DataLoss::AllWritten, DirLoss::AllKept))
            .files()
            .is_empty()
    );

    v.sync_dir(dir()).unwrap();
    assert_eq!(
        v.unsynced_ops(),
        0,
        "a file that can never come back has no pending operations"
    );
    assert!(
        v.crash(&image(DataLoss::AllWritten, DirLoss::UnsyncedLost))
            .files()
            .is_empty()
    );
}

#[test]
fn each_directory_is_synced_independently() {
    let v = fresh();
    v.create_dir_all(&p("x")).unwrap();
    v.create_dir_all(&p("y")).unwrap();
    v.sync_dir(dir()).unwrap(); // the entries of x and y
    let f = v.open(&p("x/f"), OpenMode::CreateNew).unwrap();
    f.write_all_at(b"f", 0).unwrap();
    f.sync_data().unwrap();
    v.open(&p("y/g"), OpenMode::CreateNew).unwrap();
    v.sync_dir(&p("x")).unwrap();
    let img = v.crash(&image(DataLoss::DurableOnly, DirLoss::UnsyncedLost));
    assert_eq!(img.files(), vec![(p("x/f"), 1)]);
    // Synced directories survive, empty or not.
    assert!(img.list(&p("y")).unwrap().is_empty());

    // A move across directories: only the target directory synced, so both names remain.
    v.rename(&p("x/f"), &p("y/f")).unwrap();
    v.sync_dir(&p("y")).unwrap();
    let img = v.crash(&image(DataLoss::DurableOnly, DirLoss::UnsyncedLost));
    assert_eq!(
        img.files(),
        vec![(p("x/f"), 1), (p("y/f"), 1), (p("y/g"), 0)]
    );
    // Only the source synced instead: the file is gone.
    let v2 = fresh();
    create_dir_durable(&v2, &p("x")).unwrap();
    create_dir_durable(&v2, &p("y")).unwrap();
    v2.put_file(&p("x/f"), b"f");
    v2.rename(&p("x/f"), &p("y/f")).unwrap();
    v2.sync_dir(&p("x")).unwrap();
    assert!(
        v2.crash(&image(DataLoss::AllWritten, DirLoss::UnsyncedLost))
            .files()
            .is_empty()
    );
    assert_eq!(
        v2.crash(&image(DataLoss::AllWritten, DirLoss::AllKept))
            .files(),
        vec![(p("y/f"), 1)]
    );
}

#[test]
fn a_new_directory_is_lost_with_its_files_until_its_parent_is_synced() {
    let v = fresh();
    v.create_dir_all(&p("sub/deeper")).unwrap();
    let f = v.open(&p("sub/deeper/f"), OpenMode::CreateNew).unwrap();
    f.write_all_at(b"f", 0).unwrap();
    f.sync_data().unwrap();
    v.sync_dir(&p("sub/deeper")).unwrap();
    v.sync_dir(&p("sub")).unwrap();
    // The entry of `sub` in /db is not durable: everything below it goes.
    let img = v.crash(&image(DataLoss::AllWritten, DirLoss::UnsyncedLost));
    assert!(img.files().is_empty());
    assert!(img.list(dir()).unwrap().is_empty());
    assert_eq!(
        img.list(&p("sub")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    let kept = v.crash(&image(DataLoss::DurableOnly, DirLoss::AllKept));
    assert_eq!(kept.files(), vec![(p("sub/deeper/f"), 1)]);
    v.sync_dir(dir()).unwrap();
    let img = v.crash(&image(DataLoss::DurableOnly, DirLoss::UnsyncedLost));
    assert_eq!(img.files(), vec![(p("sub/deeper/f"), 1)]);
    // create_dir_durable syncs every new directory's parent.
    let w = fresh();
    create_dir_durable(&w, &p("x/y")).unwrap();
    let img = w.crash(&image(DataLoss::DurableOnly, DirLoss::UnsyncedLost));
    assert!(img.list(&p("x/y")).unwrap().is_empty());
}

#[test]
fn random_entries_lose_each_change_on_its_own_and_renames_whole() {
    let v = fresh();
    create_dir_durable(&v, &p("x")).unwrap();
    durable_file(&v, "old", b"o");
    for name in ["n0", "n1", "n2", "n3", "n4", "n5"] {
        v.open(&p(name), OpenMode::CreateNew).unwrap();
    }
    v.open(&p("x/n"), OpenMode::CreateNew).unwrap();
    v.rename(&p("old"), &p("new")).unwrap();
    v.create_dir_all(&p("d")).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let img = v.crash(&image(
            DataLoss::DurableOnly,
            DirLoss::RandomEntries { seed },
        ));
        assert_eq!(
            img.files(),
            v.crash(&image(
                DataLoss::DurableOnly,
                DirLoss::RandomEntries { seed }
            ))
            .files(),
            "seeded"
        );
        let names: Vec<PathBuf> = img.files().into_iter().map(|(path, _)| path).collect();
        // The rename is one change: exactly one of the two names.
        assert!(
            names.contains(&p("old")) != names.contains(&p("new")),
            "{names:?}"
        );
        seen.insert((names, img.list(&p("d")).is_ok()));
    }
    // Neither all-or-nothing across directories nor across entries.
    assert!(seen.len() > 20, "{} distinct images", seen.len());
}

// ---------------------------------------------------------------------------------------------
// Crash images, clones, determinism
// ---------------------------------------------------------------------------------------------

#[test]
fn crash_images_are_fresh_durable_and_independent() {
    let v = fresh();
    let f = durable_file(&v, "a", b"abc");
    f.write_all_at(b"d", 3).unwrap();
    let _guard = v.lock(&p("LOCK")).unwrap();
    v.fail_nth(OpKind::Read, v.op_count(OpKind::Read) + 1, Fault::Eio);

    let img = v.crash(&image(DataLoss::AllWritten, DirLoss::UnsyncedLost));
    for kind in OpKind::ALL {
        assert_eq!(img.op_count(kind), 0);
    }
    assert_eq!(img.mutating_ops(), 0);
    assert_eq!(img.unsynced_ops(), 0);
    // The lock file's entry was durable at once; the lock itself is not held in the image.
    assert_eq!(img.files(), vec![(p("LOCK"), 0), (p("a"), 4)]);
    drop(img.lock(&p("LOCK")).unwrap());
    // No faults armed in the image.
    let g = img.open(&p("a"), OpenMode::ReadWrite).unwrap();
    assert_eq!(read_all(&*g).unwrap(), b"abcd");
    // Every byte of the image is durable already.
    let again = img.crash(&image(DataLoss::DurableOnly, DirLoss::UnsyncedLost));
    assert_eq!(snapshot(&again), snapshot(&img));

    // Changing the image does not change the original, nor the other way round.
    g.write_all_at(b"IMAGE", 0).unwrap();
    f.write_all_at(b"ORIG", 0).unwrap();
    assert_eq!(contents(&v, "a").unwrap(), b"ORIG");
    assert_eq!(contents(&img, "a").unwrap(), b"IMAGE");
    // The fault armed on the original still fires there.
    let mut buf = [0u8; 1];
    assert_eq!(f.read_at(&mut buf, 0).unwrap_err().raw_os_error(), Some(5));
}

#[test]
fn clones_share_everything() {
    let v = fresh();
    let c = v.clone();
    let f = c.open(&p("a"), OpenMode::CreateNew).unwrap();
    f.write_all_at(b"shared", 0).unwrap();
    assert_eq!(contents(&v, "a").unwrap(), b"shared");
    assert_eq!(v.op_count(OpKind::Create), 1);
    assert_eq!(v.op_count(OpKind::Write), 1);
    assert_eq!(v.mutating_ops(), 2);
    v.fail_nth(OpKind::SyncData, 1, Fault::Eio);
    assert!(f.sync_data().is_err());
    let _l = v.lock(&p("LOCK")).unwrap();
    assert_eq!(
        c.lock(&p("LOCK")).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
}

/// A fixed script touching every kind of operation.
fn script(v: &SimVfs) {
    v.create_dir_all(dir()).unwrap();
    let a = v.open(&p("a"), OpenMode::CreateNew).unwrap();
    let b = v.open(&p("b"), OpenMode::CreateNew).unwrap();
    for i in 0..20u64 {
        a.write_all_at(&[i as u8; 300], i * 300).unwrap();
        b.write_all_at(&[!(i as u8); 77], i * 50).unwrap();
        if i == 5 {
            a.sync_data().unwrap();
            v.sync_dir(dir()).unwrap();
        }
        if i == 9 {
            b.allocate(4096).unwrap();
            v.rename(&p("b"), &p("c")).unwrap();
        }
        if i == 14 {
            a.set_len(2000).unwrap();
        }
    }
}

#[test]
fn same_operations_and_seed_give_identical_images() {
    let one = SimVfs::new();
    let two = SimVfs::new();
    script(&one);
    script(&two);
    assert_eq!(one.unsynced_ops(), two.unsynced_ops());
    let n = one.unsynced_ops();
    let mut modes = vec![
        DataLoss::DurableOnly,
        DataLoss::AllWritten,
        DataLoss::RandomSubset { seed: 1 },
        DataLoss::RandomSubset { seed: 0xdead_beef },
        DataLoss::TornLastWrite { sectors: 0 },
        DataLoss::TornLastWrite { sectors: 1 },
        DataLoss::UnsyncedZeroed,
        DataLoss::UnsyncedGarbage { seed: 3 },
    ];
    modes.extend((0..=n).map(DataLoss::Prefix));
    for data in modes {
        for dirs in [DirLoss::UnsyncedLost, DirLoss::AllKept] {
            let img = image(data.clone(), dirs);
            assert_eq!(
                snapshot(&one.crash(&img)),
                snapshot(&two.crash(&img)),
                "{img:?}"
            );
        }
    }
}

#[test]
fn used_from_several_threads() {
    let v = fresh();
    let f = v.open(&p("a"), OpenMode::CreateNew).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let f = Arc::clone(&f);
            let v = v.clone();
            s.spawn(move || {
                for i in 0..50u64 {
                    f.write_all_at(&[t as u8 + 1; 8], (t * 50 + i) * 8).unwrap();
                }
                f.sync_data().unwrap();
                v.list(dir()).unwrap();
            });
        }
    });
    let bytes = contents(&v, "a").unwrap();
    assert_eq!(bytes.len(), 4 * 50 * 8);
    for (i, chunk) in bytes.chunks(400).enumerate() {
        assert!(chunk.iter().all(|&b| b == i as u8 + 1));
    }
    assert_eq!(v.op_count(OpKind::Write), 200);
}

// ---------------------------------------------------------------------------------------------
// Fault injection and power-off
// ---------------------------------------------------------------------------------------------

/// Everything observable: visible files, and what two extreme crashes would find.
fn observe(v: &SimVfs) -> Vec<Vec<(PathBuf, Vec<u8>)>> {
    vec![
        snapshot(v),
        snapshot(&v.crash(&image(DataLoss::DurableOnly, DirLoss::UnsyncedLost))),
        snapshot(&v.crash(&image(DataLoss::AllWritten, DirLoss::AllKept))),
        vec![(
            PathBuf::from("unsynced"),
            v.unsynced_ops().to_le_bytes().to_vec(),
        )],
    ]
}

/// A file system with durable `a`, unsynced data in `a`, an unsynced entry `b`; returns an
/// open handle to `a`.
fn fault_setup() -> (SimVfs, Arc<dyn VfsFile>) {
    let v = fresh();
    let a = durable_file(&v, "a", b"durable");
    a.write_all_at(b"+unsynced", 7).unwrap();
    let b = v.open(&p("b"), OpenMode::CreateNew).unwrap();
    b.write_all_at(b"bee", 0).unwrap();
    (v, a)
}

/// Performs one operation of `kind`.
fn do_op(v: &SimVfs, a: &Arc<dyn VfsFile>, kind: OpKind) -> io::Result<()> {
    let mut buf = [0u8; 4];
    match kind {
        OpKind::Read => a.read_at(&mut buf, 0).map(drop),
        OpKind::Write => a.write_all_at(b"XYZ", 2),
        OpKind::SyncData => a.sync_data(),
        OpKind::SyncAll => a.sync_all(),
        OpKind::SyncDir => v.sync_dir(dir()),
        OpKind::Open => v.open(&p("a"), OpenMode::ReadWrite).map(drop),
        OpKind::Create => v.open(&p("c"), OpenMode::CreateNew).map(drop),
        OpKind::Rename => v.rename(&p("b"), &p("a")),
        OpKind::Remove => v.remove(&p("a")),
        OpKind::List => v.list(dir()).map(drop),
        OpKind::Allocate => a.allocate(1 << 16),
        OpKind::SetLen => a.set_len(3),
        OpKind::Lock => v.lock(&p("LOCK")).map(drop),
    }
}

#[test]
fn every_kind_of_operation_can_fail_without_changing_anything() {
    for kind in OpKind::ALL {
        for fault in [Fault::Eio, Fault::Enospc] {
            let (v, a) = fault_setup();
            let before = observe(&v);
            let count = v.op_count(kind);
            let mutating = v.mutating_ops();
            v.fail_nth(kind, count + 1, fault);
            let err = do_op(&v, &a, kind).unwrap_err();
            match fault {
                Fault::Eio => assert_eq!(err.raw_os_error(), Some(5), "{kind:?}"),
                Fault::Enospc => {
                    assert_eq!(err.raw_os_error(), Some(28), "{kind:?}");
                    assert_eq!(err.kind(), io::ErrorKind::StorageFull, "{kind:?}");
                }
            }
            assert_eq!(observe(&v), before, "{kind:?} {fault:?} changed something");
            assert_eq!(v.op_count(kind), count + 1, "failed calls are counted");
            assert_eq!(v.mutating_ops(), mutating + u64::from(kind.is_mutating()));
            // The fault fires once; the next call succeeds and (for mutations) does change
            // something.
            do_op(&v, &a, kind).unwrap();
            if kind.is_mutating() {
                assert_ne!(observe(&v), before, "{kind:?} succeeded without effect");
            }
        }
    }
}

#[test]
fn the_nth_call_fails_and_several_faults_may_be_armed() {
    let v = fresh();
    let f = v.open(&p("a"), OpenMode::CreateNew).unwrap();
    v.fail_nth(OpKind::Write, 2, Fault::Enospc);
    v.fail_nth(OpKind::Write, 4, Fault::Eio);
    v.fail_nth(OpKind::SyncData, 1, Fault::Eio);
    f.write_all_at(b"1", 0).unwrap();
    assert_eq!(
        f.write_all_at(b"2", 1).unwrap_err().kind(),
        io::ErrorKind::StorageFull
    );
    f.write_all_at(b"3", 1).unwrap();
    assert_eq!(f.write_all_at(b"4", 2).unwrap_err().raw_os_error(), Some(5));
    f.write_all_at(b"5", 2).unwrap();
    assert_eq!(contents(&v, "a").unwrap(), b"135");
    assert!(f.sync_data().is_err());
    assert_eq!(v.unsynced_ops(), 3, "a failed sync makes nothing durable");
    f.sync_data().unwrap();
    assert_eq!(v.unsynced_ops(), 0);
    assert_eq!(v.op_count(OpKind::Write), 5);
    assert_eq!(v.op_count(OpKind::SyncData), 2);
}

#[test]
fn counting_follows_the_documented_kinds() {
    let v = SimVfs::new();
    v.create_dir_all(dir()).unwrap();
    let f = v.open(&p("a"), OpenMode::CreateNew).unwrap();
    f.len().unwrap();
    let _ = v.open(&p("a"), OpenMode::Read).unwrap();
    let _ = v.open(&p("missing"), OpenMode::Read);
    let _l = v.lock(&p("LOCK")).unwrap();
    assert_eq!(v.op_count(OpKind::Create), 1);
    assert_eq!(v.op_count(OpKind::Open), 2);
    assert_eq!(v.op_count(OpKind::Lock), 1);
    assert_eq!(v.mutating_ops(), 1);
}

#[test]
fn power_off_after_n_mutating_operations() {
    let v = fresh();
    let f = durable_file(&v, "a", b"0");
    let base = v.mutating_ops();
    v.power_off_after(2);
    f.read_at(&mut [0u8; 1], 0).unwrap(); // not mutating
    f.write_all_at(b"1", 1).unwrap(); // 1
    v.list(dir()).unwrap();
    f.write_all_at(b"2", 2).unwrap(); // 2
    assert_eq!(v.mutating_ops(), base + 2);

    let dead = |e: io::Error| assert!(e.to_string().contains("simulated power loss"), "{e}");
    dead(f.write_all_at(b"3", 3).unwrap_err());
    dead(f.sync_data().unwrap_err());
    dead(f.read_at(&mut [0u8; 1], 0).unwrap_err());
    dead(f.len().unwrap_err());
    dead(v.open(&p("a"), OpenMode::Read).unwrap_err());
    dead(v.open(&p("z"), OpenMode::CreateNew).unwrap_err());
    dead(v.list(dir()).unwrap_err());
    dead(v.sync_dir(dir()).unwrap_err());
    dead(v.rename(&p("a"), &p("b")).unwrap_err());
    dead(v.remove(&p("a")).unwrap_err());
    dead(v.lock(&p("LOCK")).unwrap_err());
    dead(v.create_dir_all(&p("sub")).unwrap_err());

    // Nothing changed after the cut; the test helpers still work.
    assert_eq!(contents(&v, "a").unwrap(), b"012");
    assert_eq!(v.files(), vec![(p("a"), 3)]);
    assert_eq!(v.unsynced_ops(), 2);
    let img = v.crash(&image(DataLoss::AllWritten, DirLoss::UnsyncedLost));
    assert_eq!(contents(&img, "a").unwrap(), b"012");
    // The image has power.
    img.open(&p("a"), OpenMode::Read).unwrap();
}

#[test]
fn power_off_now_and_crash_before_every_operation() {
    let v = fresh();
    v.power_off_after(0);
    assert!(v.open(&p("a"), OpenMode::CreateNew).is_err());
    assert!(v.files().is_empty());

    // Crash after each prefix of a script; every image must be a state the script passed
    // through (here: the file is either missing, or a prefix of "abc" once synced).
    let mut total = 0;
    loop {
        let v = fresh();
        v.power_off_after(total);
        let run = || -> io::Result<()> {
            let f = v.open(&p("a"), OpenMode::CreateNew)?;
            f.write_all_at(b"a", 0)?;
            f.write_all_at(b"bc", 1)?;
            f.sync_data()?;
            v.sync_dir(dir())?;
            Ok(())
        };
        let finished = run().is_ok();
        let img = v.crash(&image(DataLoss::DurableOnly, DirLoss::UnsyncedLost));
        let found = contents(&img, "a");
        if total < 5 {
            assert_eq!(found, None, "crash after {total} operations");
        } else {
            assert_eq!(found.unwrap(), b"abc");
        }
        if finished {
            break;
        }
        total += 1;
    }
    assert_eq!(total, 5);
}

// ---------------------------------------------------------------------------------------------
// Locks and test helpers
// ---------------------------------------------------------------------------------------------

#[test]
fn locks_are_exclusive_and_released_on_drop() {
    let v = fresh();
    let held = v.lock(&p("LOCK")).unwrap();
    assert_eq!(v.files(), vec![(p("LOCK"), 0)]);
    assert_eq!(
        v.lock(&p("LOCK")).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    let other = v.lock(&p("OTHER")).unwrap();
    drop(held);
    let again = v.lock(&p("LOCK")).unwrap();
    assert_eq!(
        v.lock(&p("OTHER")).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    drop(other);
    drop(again);
    assert_eq!(
        v.lock(Path::new("/nodir/LOCK")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    // A guard outliving its file system is harmless.
    let w = fresh();
    let g = w.lock(&p("LOCK")).unwrap();
    drop(w);
    drop(g);
}

#[test]
fn poke_and_put_file_are_durable_and_uncounted() {
    let v = SimVfs::new();
    v.put_file(Path::new("/x/y/seg"), b"0123456789");
    assert_eq!(v.list(Path::new("/x")).unwrap(), vec!["y"]);
    v.poke(Path::new("/x/y/seg"), 2, &[0xff, 0xfe]);
    v.poke(Path::new("/x/y/seg"), 12, b"Z");
    let expect = b"01\xff\xfe456789\0\0Z".to_vec();
    assert_eq!(v.read_file(Path::new("/x/y/seg")).unwrap(), expect);
    let img = v.crash(&image(DataLoss::DurableOnly, DirLoss::UnsyncedLost));
    assert_eq!(img.read_file(Path::new("/x/y/seg")).unwrap(), expect);
    assert_eq!(v.mutating_ops(), 0);
    assert_eq!(v.op_count(OpKind::Write), 0);
    assert_eq!(v.read_file(Path::new("/x/y/none")), None);

    // put_file replaces; an old handle keeps the old inode.
    let old = v.open(Path::new("/x/y/seg"), OpenMode::ReadWrite).unwrap();
    v.put_file(Path::new("/x/y/seg"), b"new");
    assert_eq!(read_all(&*old).unwrap(), expect);
    assert_eq!(v.read_file(Path::new("/x/y/seg")).unwrap(), b"new");
}
