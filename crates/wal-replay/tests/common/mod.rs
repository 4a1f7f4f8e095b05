//! Shared test helpers: a small key-value state machine and directory utilities.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::needless_pass_by_value
)]

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use wal_format::Lsn;
use wal_replay::{ApplyError, StateMachine};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Op {
    Put(String, u64),
    Del(String),
    Add(String, u64),
}

/// A key-value map that also remembers every LSN it applied, so tests can check order and
/// exactly-once application.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Kv {
    pub map: BTreeMap<String, u64>,
    pub lsns: Vec<u64>,
}

impl StateMachine for Kv {
    type Event = Op;

    fn apply(&mut self, lsn: Lsn, events: Vec<Op>) -> Result<(), ApplyError> {
        if let Some(&last) = self.lsns.last()
            && last >= lsn.0
        {
            return Err(format!("LSN {lsn} applied after {last}").into());
        }
        self.lsns.push(lsn.0);
        for e in events {
            match e {
                Op::Put(k, v) => {
                    self.map.insert(k, v);
                }
                Op::Del(k) => {
                    self.map.remove(&k);
                }
                Op::Add(k, n) => *self.map.entry(k).or_default() += n,
            }
        }
        Ok(())
    }

    fn write_snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        serde_json::to_writer(out, self).map_err(io::Error::other)
    }

    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        *self = serde_json::from_reader(input).map_err(io::Error::other)?;
        Ok(())
    }
}

/// A state machine that only counts transactions and bytes, seeing raw payloads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub txs: u64,
    pub bytes: u64,
}

impl StateMachine for Counter {
    type Event = ();
    fn apply(&mut self, _: Lsn, _: Vec<()>) -> Result<(), ApplyError> {
        Err("raw state machine".into())
    }
    fn apply_transaction(
        &mut self,
        tx: &wal_log::Transaction,
        _: &dyn wal_format::Decoder<()>,
    ) -> Result<(), ApplyError> {
        self.txs += 1;
        self.bytes += tx.body.len() as u64;
        Ok(())
    }
    fn write_snapshot(&self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(&self.txs.to_le_bytes())?;
        out.write_all(&self.bytes.to_le_bytes())
    }
    fn restore(&mut self, input: &mut dyn Read) -> io::Result<()> {
        let mut b = [0u8; 16];
        input.read_exact(&mut b)?;
        self.txs = u64::from_le_bytes(b[..8].try_into().unwrap());
        self.bytes = u64::from_le_bytes(b[8..].try_into().unwrap());
        Ok(())
    }
}

pub fn encode(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        wal_format::Codec::encode(&wal_format::Bincode, op, &mut out).unwrap();
    }
    out
}

pub fn put(k: &str, v: u64) -> Op {
    Op::Put(k.to_string(), v)
}

/// Every file under `dir` with its full contents, sorted by path.
pub fn snapshot_tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                out.push((p.clone(), b"<dir>".to_vec()));
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Small segments so tests rotate and truncate quickly; no preallocation thread.
pub fn small_log() -> wal_log::Options {
    wal_log::Options::default()
        .segment_size(16 << 10)
        .preallocate(false)
}

pub fn recover_opts() -> wal_replay::RecoverOptions {
    wal_replay::RecoverOptions::default().wal(small_log())
}

pub fn engine_opts() -> wal_replay::EngineOptions {
    wal_replay::EngineOptions {
        recover: recover_opts(),
        ..wal_replay::EngineOptions::default()
    }
}

pub fn snapshot_files(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join("snapshots"))
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

pub fn segment_files(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

/// `Wal::open`, retried briefly on `AlreadyOpen`: when tests run as threads of one process, a
/// child process being spawned by another test can hold a copy of the lock file's descriptor
/// for a moment after the previous handle closed it (flock locks belong to the open file
/// description, which fork shares until exec).
pub fn open_wal(dir: &Path, opts: wal_log::Options) -> wal_log::Wal {
    let mut tries = 0;
    loop {
        match wal_log::Wal::open(dir, opts.clone()) {
            Ok((w, _)) => return w,
            Err(wal_log::WalError::AlreadyOpen { .. }) if tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("open {}: {e}", dir.display()),
        }
    }
}

/// `Engine::open` with the same retry as [`open_wal`].
pub fn open_engine(root: &Path) -> wal_replay::Engine<Kv> {
    let mut tries = 0;
    loop {
        match wal_replay::Engine::open(root, Kv::default(), engine_opts()) {
            Ok((e, _)) => return e,
            Err(wal_replay::ReplayError::Wal(wal_log::WalError::AlreadyOpen { .. }))
                if tries < 50 =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("open engine {}: {e}", root.display()),
        }
    }
}

/// Runs the `walctl` binary of this crate.
pub fn walctl(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_walctl"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `walctl --dir <dir> <args>`: exit code, stdout, stderr.
pub fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["--dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let o = walctl(&all);
    (
        o.status.code().unwrap(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// [`run`] with `--json`: exit code and the parsed output.
pub fn run_json(dir: &Path, args: &[&str]) -> (i32, serde_json::Value) {
    let mut a = args.to_vec();
    a.push("--json");
    let (code, out, err) = run(dir, &a);
    let v = serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("{args:?}: bad JSON ({e}): {out} / {err}"));
    (code, v)
}
