//! What survives a power loss in [`SimVfs::crash`](super::SimVfs::crash): which unsynced data
//! operations (whole, torn, or sector by sector) and which directory entries and directories.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::{DataLoss, DataOp, DirLoss, SECTOR, State};

/// The sectors of a write of `bytes` at `offset` whose indices (0 = the first sector the write
/// touches) satisfy `keep`, as writes; adjacent kept sectors make one write. Cuts fall on
/// 512-byte file offsets, so the first and last pieces may be shorter than a sector.
fn sectors(offset: usize, bytes: &[u8], mut keep: impl FnMut(usize) -> bool) -> Vec<DataOp> {
    let sector = SECTOR as usize;
    let piece = |from: usize, to: usize| DataOp::Write {
        offset: offset + from,
        bytes: bytes[from..to].to_vec(),
    };
    let mut out = Vec::new();
    let mut run: Option<(usize, usize)> = None;
    let (mut start, mut index) = (0, 0);
    while start < bytes.len() {
        let end = ((offset + start) / sector + 1) * sector - offset;
        let end = end.min(bytes.len());
        debug_assert!(end > start, "every sector piece holds at least one byte");
        if keep(index) {
            run = Some((run.map_or(start, |(from, _)| from), end));
        } else if let Some((from, to)) = run.take() {
            out.push(piece(from, to));
        }
        start = end;
        index += 1;
    }
    if let Some((from, to)) = run {
        out.push(piece(from, to));
    }
    out
}

/// Splitmix64: a tiny, fast, well-mixed deterministic generator.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// A coin flip of `rng`.
fn coin(rng: &mut Rng) -> bool {
    rng.next_u64() >> 63 == 1
}

impl State {
    /// The operations that survive under `data`, per inode, in order.
    pub(super) fn surviving(&self, data: &DataLoss) -> BTreeMap<u64, Vec<DataOp>> {
        let live = self.live_pending();
        let writes: Vec<usize> = live
            .iter()
            .enumerate()
            .filter(|(_, (_, p))| matches!(p.op, DataOp::Write { .. }))
            .map(|(i, _)| i)
            .collect();
        let torn_at = match data {
            DataLoss::TornLastWrite { .. } => writes.last().copied(),
            DataLoss::TornWrite { write, .. } => writes.get(*write).copied(),
            _ => None,
        };
        let mut rng = match data {
            DataLoss::RandomSubset { seed }
            | DataLoss::UnsyncedGarbage { seed }
            | DataLoss::ScatteredSectors { seed } => Rng(*seed),
            _ => Rng(0),
        };
        let mut out: BTreeMap<u64, Vec<DataOp>> = BTreeMap::new();
        for (i, (id, pending)) in live.iter().enumerate() {
            let op = &pending.op;
            let whole = || vec![op.clone()];
            let kept = match (data, op) {
                (DataLoss::DurableOnly, _) => Vec::new(),
                (DataLoss::AllWritten, _) => whole(),
                (DataLoss::Prefix(n), _) if i < *n => whole(),
                (DataLoss::Prefix(_), _) => Vec::new(),
                (DataLoss::RandomSubset { .. }, _) if coin(&mut rng) => whole(),
                (DataLoss::RandomSubset { .. }, _) => Vec::new(),
                (DataLoss::TornLastWrite { sectors: n }, DataOp::Write { offset, bytes })
                    if Some(i) == torn_at =>
                {
                    sectors(*offset, bytes, |s| s < *n)
                }
                (DataLoss::TornLastWrite { .. }, _) => whole(),
                (DataLoss::TornWrite { keep, later, .. }, _) => match torn_at {
                    Some(t) if i == t => match op {
                        DataOp::Write { offset, bytes } => {
                            sectors(*offset, bytes, |s| keep.contains(&s))
                        }
                        _ => Vec::new(),
                    },
                    Some(t) if i > t && !*later => Vec::new(),
                    _ => whole(),
                },
                (DataLoss::ScatteredSectors { .. }, DataOp::Write { offset, bytes }) => {
                    sectors(*offset, bytes, |_| coin(&mut rng))
                }
                (DataLoss::ScatteredSectors { .. }, _) if coin(&mut rng) => whole(),
                (DataLoss::ScatteredSectors { .. }, _) => Vec::new(),
                (DataLoss::UnsyncedZeroed, DataOp::Write { offset, bytes }) => {
                    vec![DataOp::Write {
                        offset: *offset,
                        bytes: vec![0; bytes.len()],
                    }]
                }
                (DataLoss::UnsyncedGarbage { .. }, DataOp::Write { offset, bytes }) => {
                    let mut garbage = vec![0; bytes.len()];
                    rng.fill(&mut garbage);
                    vec![DataOp::Write {
                        offset: *offset,
                        bytes: garbage,
                    }]
                }
                (DataLoss::UnsyncedZeroed | DataLoss::UnsyncedGarbage { .. }, _) => whole(),
            };
            out.entry(*id).or_default().extend(kept);
        }
        out
    }

    /// The directories that survive under `loss`, each with its surviving entries.
    pub(super) fn surviving_dirs(&self, loss: DirLoss) -> BTreeMap<PathBuf, BTreeMap<String, u64>> {
        let mut rng = Rng(match loss {
            DirLoss::RandomEntries { seed } => seed,
            DirLoss::UnsyncedLost | DirLoss::AllKept => 0,
        });
        let decide = |rng: &mut Rng| match loss {
            DirLoss::UnsyncedLost => false,
            DirLoss::AllKept => true,
            DirLoss::RandomEntries { .. } => coin(rng),
        };
        // New directories first, each a change of its own.
        let new_dirs: BTreeSet<&Path> = self
            .dirs
            .iter()
            .filter(|(_, d)| !d.entry_durable)
            .map(|(path, _)| path.as_path())
            .filter(|_| !decide(&mut rng))
            .collect();
        let lost = |path: &Path| path.ancestors().any(|a| new_dirs.contains(a));
        let kept_changes = self.kept_entry_changes(|| decide(&mut rng));
        self.dirs
            .iter()
            .filter(|(path, _)| !lost(path))
            .map(|(path, d)| {
                let mut entries = d.durable.clone();
                for name in kept_changes.iter().filter(|(p, _)| p == path) {
                    match d.current.get(&name.1) {
                        Some(id) => entries.insert(name.1.clone(), *id),
                        None => entries.remove(&name.1),
                    };
                }
                (path.clone(), entries)
            })
            .collect()
    }

    /// The unsynced entry changes (directory, name) that `keep` says survive. Changes whose
    /// entries name the same inode, now or as of the last sync, are one decision (a rename
    /// reverts whole); decisions are drawn in path order.
    fn kept_entry_changes(&self, mut keep: impl FnMut() -> bool) -> BTreeSet<(PathBuf, String)> {
        let changed: Vec<(PathBuf, String, [Option<u64>; 2])> = self
            .dirs
            .iter()
            .flat_map(|(path, d)| {
                let names: BTreeSet<&String> = d.current.keys().chain(d.durable.keys()).collect();
                names.into_iter().filter_map(move |name| {
                    let ids = [d.durable.get(name).copied(), d.current.get(name).copied()];
                    (ids[0] != ids[1]).then(|| (path.clone(), name.clone(), ids))
                })
            })
            .collect();
        // Union-find over the changes, joined through the inodes they name.
        let mut parent: Vec<usize> = (0..changed.len()).collect();
        fn root(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                parent[i] = parent[parent[i]];
                i = parent[i];
            }
            i
        }
        let mut first_with: BTreeMap<u64, usize> = BTreeMap::new();
        for (i, (_, _, ids)) in changed.iter().enumerate() {
            for id in ids.iter().flatten() {
                let j = *first_with.entry(*id).or_insert(i);
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a.max(b)] = a.min(b);
            }
        }
        let mut decided: BTreeMap<usize, bool> = BTreeMap::new();
        let mut kept = BTreeSet::new();
        for (i, (path, name, _)) in changed.iter().enumerate() {
            let r = root(&mut parent, i);
            if *decided.entry(r).or_insert_with(&mut keep) {
                kept.insert((path.clone(), name.clone()));
            }
        }
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cuts(ops: &[DataOp]) -> Vec<(usize, usize)> {
        ops.iter()
            .map(|op| match op {
                DataOp::Write { offset, bytes } => (*offset, bytes.len()),
                _ => (0, 0),
            })
            .collect()
    }

    #[test]
    fn sectors_cut_on_512_byte_boundaries() {
        let bytes = vec![7u8; 1200];
        // A write at 100 touches sectors 0, 1, 2 (bytes 100..1300).
        assert!(sectors(100, &bytes, |_| false).is_empty());
        assert_eq!(cuts(&sectors(100, &bytes, |s| s < 1)), [(100, 412)]);
        assert_eq!(cuts(&sectors(100, &bytes, |s| s < 2)), [(100, 924)]);
        assert_eq!(cuts(&sectors(100, &bytes, |_| true)), [(100, 1200)]);
        // Out of order: the last sector without the first two, and a hole in the middle.
        assert_eq!(cuts(&sectors(100, &bytes, |s| s == 2)), [(1024, 276)]);
        assert_eq!(
            cuts(&sectors(100, &bytes, |s| s != 1)),
            [(100, 412), (1024, 276)]
        );
        // An aligned write.
        let aligned = vec![1u8; 1024];
        assert_eq!(cuts(&sectors(512, &aligned, |s| s == 1)), [(1024, 512)]);
    }

    #[test]
    fn splitmix_is_deterministic_and_mixes() {
        let a: Vec<u64> = {
            let mut r = Rng(42);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng(42);
            (0..4).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        let mut c = Rng(43);
        assert_ne!(a[0], c.next_u64());
        let mut buf = [0u8; 13];
        Rng(1).fill(&mut buf);
        assert!(buf.iter().any(|&x| x != 0));
    }
}
