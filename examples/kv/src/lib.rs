//! The kv example's state machine, shared with `raft-kv` (the same ordered map, replicated):
//! [`store::Store`], its events [`store::KvEvent`], and the key and value scheme of `kv load`
//! ([`LoadKeys`], [`load_value`]).
#![forbid(unsafe_code)]

pub mod store;

/// The value `kv load` (and `raft-kv load`) writes for key `k<i>`: `v<i>-` padded with `x`
/// to `size` bytes (longer when `size` is smaller than the prefix).
#[must_use]
pub fn load_value(i: u64, size: usize) -> String {
    let mut v = format!("v{i}-");
    while v.len() < size {
        v.push('x');
    }
    v
}

/// The keys a load writes (`kv load`, `raft-kv load`): `k<i>` for i in START..START+COUNT,
/// each valued by [`load_value`]; the command-line flags both binaries share.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct LoadKeys {
    /// How many keys.
    #[arg(long)]
    pub count: u64,
    /// The first index.
    #[arg(long, default_value_t = 0)]
    pub start: u64,
    /// Value size in bytes: `v<i>-` padded with `x`.
    #[arg(long, default_value_t = 32)]
    pub value_size: usize,
}

#[cfg(test)]
mod tests {
    use super::load_value;

    #[test]
    fn load_values_are_padded_to_the_size_asked() {
        assert_eq!(load_value(7, 8), "v7-xxxxx");
        assert_eq!(load_value(12345, 2), "v12345-");
    }
}
