//! A data directory's identity: the cluster and node it belongs to, in the file
//! [`IDENTITY_FILE`]. A node checks it before it opens anything else, so a node started on
//! another cluster's directory, or with another id, refuses having touched nothing.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The identity file's name in the data directory.
pub const IDENTITY_FILE: &str = "raft-kv.id";
const TEMP_FILE: &str = "raft-kv.id.tmp";

/// Who a data directory belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The cluster id (derived from the cluster secret).
    pub cluster: String,
    /// The node id.
    pub node: u64,
}

/// Why a data directory was refused.
#[derive(Debug, Error)]
pub enum IdentityError {
    /// The directory belongs to another cluster.
    #[error("data directory {} belongs to cluster {found}, not to this cluster ({expected}): refusing to start (nothing was changed)", dir.display())]
    OtherCluster {
        /// The directory.
        dir: PathBuf,
        /// The cluster id in it.
        found: String,
        /// This cluster's id.
        expected: String,
    },
    /// The directory belongs to another node.
    #[error("data directory {} belongs to node {found}, not to node {expected}: refusing to start (nothing was changed)", dir.display())]
    OtherNode {
        /// The directory.
        dir: PathBuf,
        /// The node id in it.
        found: u64,
        /// The id given.
        expected: u64,
    },
    /// The directory holds files but no identity: it is not a raft-kv data directory.
    #[error("data directory {} is not empty and has no {IDENTITY_FILE}: refusing to use it (nothing was changed)", dir.display())]
    Unknown {
        /// The directory.
        dir: PathBuf,
    },
    /// The identity file does not parse.
    #[error("{}: malformed identity file: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An I/O error.
    #[error("data directory {}: {op}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> IdentityError {
    let path = path.to_path_buf();
    move |source| IdentityError::Io { op, path, source }
}

fn parse(path: &Path, text: &str) -> Result<Identity, IdentityError> {
    let bad = |reason: &str| IdentityError::Malformed {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    let mut cluster = None;
    let mut node = None;
    for line in text.lines() {
        match line.split_once('=') {
            Some(("cluster", v)) => cluster = Some(v.to_owned()),
            Some(("node", v)) => node = Some(v.parse().map_err(|_| bad("node is not a number"))?),
            _ => return Err(bad(&format!("unexpected line `{line}`"))),
        }
    }
    Ok(Identity {
        cluster: cluster.ok_or_else(|| bad("no cluster line"))?,
        node: node.ok_or_else(|| bad("no node line"))?,
    })
}

/// Checks that `dir` belongs to `want`, or makes it so when it is new or empty (the file
/// written to a temporary name, fsynced, renamed, and the directory fsynced).
///
/// # Errors
/// [`IdentityError::OtherCluster`], [`IdentityError::OtherNode`] or
/// [`IdentityError::Unknown`] with nothing changed; I/O errors.
pub fn check_or_claim(dir: &Path, want: &Identity) -> Result<(), IdentityError> {
    let path = dir.join(IDENTITY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let found = parse(&path, &text)?;
            if found.cluster != want.cluster {
                return Err(IdentityError::OtherCluster {
                    dir: dir.to_path_buf(),
                    found: found.cluster,
                    expected: want.cluster.clone(),
                });
            }
            if found.node != want.node {
                return Err(IdentityError::OtherNode {
                    dir: dir.to_path_buf(),
                    found: found.node,
                    expected: want.node,
                });
            }
            return Ok(());
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("read identity", &path)(e)),
    }
    claim(dir, want)
}

/// Writes the identity into a new or empty directory.
fn claim(dir: &Path, want: &Identity) -> Result<(), IdentityError> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries {
                let e = e.map_err(io_err("list", dir))?;
                // A temporary file is what a crash during an earlier claim leaves.
                if e.file_name() != TEMP_FILE {
                    return Err(IdentityError::Unknown {
                        dir: dir.to_path_buf(),
                    });
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        Err(e) => return Err(io_err("list", dir)(e)),
    }
    let temp = dir.join(TEMP_FILE);
    let mut f = File::create(&temp).map_err(io_err("create", &temp))?;
    write!(f, "cluster={}\nnode={}\n", want.cluster, want.node).map_err(io_err("write", &temp))?;
    f.sync_all().map_err(io_err("fsync", &temp))?;
    drop(f);
    let path = dir.join(IDENTITY_FILE);
    std::fs::rename(&temp, &path).map_err(io_err("rename", &path))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), IdentityError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(cluster: &str, node: u64) -> Identity {
        Identity {
            cluster: cluster.to_owned(),
            node,
        }
    }

    #[test]
    fn a_new_directory_is_claimed_and_then_recognised() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = root.path().join("n1");
        check_or_claim(&dir, &id("c1", 1)).unwrap_or_else(|e| panic!("{e}"));
        check_or_claim(&dir, &id("c1", 1)).unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(dir.join(IDENTITY_FILE)).unwrap_or_default();
        assert_eq!(text, "cluster=c1\nnode=1\n");
        assert!(!dir.join(TEMP_FILE).exists());
    }

    #[test]
    fn another_cluster_another_node_or_a_foreign_directory_is_refused() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = root.path().join("n1");
        check_or_claim(&dir, &id("c1", 1)).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            check_or_claim(&dir, &id("c2", 1)),
            Err(IdentityError::OtherCluster { .. })
        ));
        assert!(matches!(
            check_or_claim(&dir, &id("c1", 2)),
            Err(IdentityError::OtherNode {
                found: 1,
                expected: 2,
                ..
            })
        ));
        let foreign = root.path().join("f");
        std::fs::create_dir(&foreign).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(foreign.join("data"), "x").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            check_or_claim(&foreign, &id("c1", 1)),
            Err(IdentityError::Unknown { .. })
        ));
        assert!(!foreign.join(IDENTITY_FILE).exists());
    }
}
