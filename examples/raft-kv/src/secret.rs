//! The cluster secret: read from `--secret-file`, written by `raft-kv gen-secret`. It keys
//! the HMAC of every request (see [`crate::auth`]) and names the cluster a data directory
//! belongs to; it never goes over the wire.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The fewest bytes a secret file may hold.
pub const MIN_SECRET_BYTES: usize = 32;

/// Why the secret could not be read or written.
#[derive(Debug, Error)]
pub enum SecretError {
    /// The file could not be read or written.
    #[error("secret file {}: {op}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file holds too few bytes to be a secret.
    #[error("secret file {}: {len} bytes, at least {MIN_SECRET_BYTES} are needed (make one with `raft-kv gen-secret PATH`)", path.display())]
    TooShort {
        /// The file.
        path: PathBuf,
        /// Its length after trimming white space.
        len: usize,
    },
}

/// The cluster secret (its bytes are never printed).
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Reads the secret from `path`: the file's bytes, surrounding white space removed.
    pub fn load(path: &Path) -> Result<Secret, SecretError> {
        let io = |op| {
            let path = path.to_path_buf();
            move |source| SecretError::Io { op, path, source }
        };
        let bytes = std::fs::read(path).map_err(io("read"))?;
        let meta = std::fs::metadata(path).map_err(io("stat"))?;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                "the secret file is readable by others than its owner (chmod 600 it)"
            );
        }
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort {
                path: path.to_path_buf(),
                len: trimmed.len(),
            });
        }
        Ok(Secret(trimmed.to_vec()))
    }

    /// A keyed MAC over nothing yet.
    pub fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length: this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"))
    }

    /// The cluster id: a MAC of a fixed label, so two clusters with different secrets have
    /// different ids and the id tells nothing about the secret.
    pub fn cluster_id(&self) -> String {
        let mut mac = self.mac();
        mac.update(b"raft-kv cluster id");
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// A secret of the given bytes (for tests).
    #[cfg(test)]
    pub fn from_bytes(b: &[u8]) -> Secret {
        Secret(b.to_vec())
    }
}

/// Writes 32 random bytes, hex-encoded, to a new file at `path` (mode 0600), fsyncs it and
/// its directory. An existing file is never overwritten.
pub fn generate(path: &Path) -> Result<(), SecretError> {
    let io = |op| {
        let path = path.to_path_buf();
        move |source| SecretError::Io { op, path, source }
    };
    let mut key = [0u8; MIN_SECRET_BYTES];
    getrandom::fill(&mut key).map_err(|e| io("random bytes")(io::Error::other(e.to_string())))?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("create"))?;
    writeln!(f, "{}", hex::encode(key)).map_err(io("write"))?;
    f.sync_all().map_err(io("fsync"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync its directory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_loads_and_is_private() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("s");
        generate(&path).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600));
        let s = Secret::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.0.len(), 64);
        assert!(matches!(
            generate(&path),
            Err(SecretError::Io { op: "create", .. })
        ));
    }

    #[test]
    fn a_short_secret_is_refused_and_ids_differ_by_secret() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("s");
        std::fs::write(&path, "short\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            Secret::load(&path),
            Err(SecretError::TooShort { len: 5, .. })
        ));
        let a = Secret::from_bytes(&[1; 32]).cluster_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, Secret::from_bytes(&[2; 32]).cluster_id());
    }
}
