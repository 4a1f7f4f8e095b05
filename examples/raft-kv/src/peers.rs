//! `--peers 1=HOST:PORT,2=HOST:PORT,3=HOST:PORT`: the cluster's node ids and addresses.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Node ids and their `HOST:PORT` addresses, sorted by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peers(BTreeMap<u64, String>);

impl Peers {
    /// The address of node `id`.
    pub fn addr(&self, id: u64) -> Option<&str> {
        self.0.get(&id).map(String::as_str)
    }

    /// Node ids in order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.keys().copied()
    }

    /// The ids and addresses.
    pub fn map(&self) -> &BTreeMap<u64, String> {
        &self.0
    }
}

impl FromStr for Peers {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (id, addr) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected ID=HOST:PORT"))?;
            let id: u64 = id
                .trim()
                .parse()
                .map_err(|e| format!("`{part}`: the node id is not a number: {e}"))?;
            if id == 0 {
                return Err(format!("`{part}`: node ids start at 1"));
            }
            let addr = addr.trim();
            let (host, port) = addr
                .rsplit_once(':')
                .ok_or_else(|| format!("`{part}`: the address needs a port (HOST:PORT)"))?;
            if host.is_empty() {
                return Err(format!("`{part}`: the address has no host"));
            }
            port.parse::<u16>()
                .map_err(|e| format!("`{part}`: bad port: {e}"))?;
            if map.insert(id, addr.to_owned()).is_some() {
                return Err(format!("node {id} is named twice"));
            }
        }
        if map.is_empty() {
            return Err("no peers given".to_owned());
        }
        Ok(Peers(map))
    }
}

impl fmt::Display for Peers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(i, a)| format!("{i}={a}")).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::Peers;

    #[test]
    fn a_peer_list_parses_in_id_order() {
        let p: Peers = "2=127.0.0.1:9002,1=localhost:9001"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.ids().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(p.addr(1), Some("localhost:9001"));
        assert_eq!(p.to_string(), "1=localhost:9001,2=127.0.0.1:9002");
    }

    #[test]
    fn bad_peer_lists_say_what_is_wrong() {
        for (bad, says) in [
            ("", "no peers"),
            ("1", "ID=HOST:PORT"),
            ("x=a:1", "not a number"),
            ("0=a:1", "start at 1"),
            ("1=a", "needs a port"),
            ("1=:5", "no host"),
            ("1=a:99999", "bad port"),
            ("1=a:1,1=b:2", "twice"),
        ] {
            let err = bad.parse::<Peers>().err().unwrap_or_default();
            assert!(err.contains(says), "{bad:?} gave {err:?}");
        }
    }
}
