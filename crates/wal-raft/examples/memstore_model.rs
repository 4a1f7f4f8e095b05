//! The wal-raft half of the model test against openraft-memstore (`cargo xtask raft-model`
//! runs it with `crates/wal-raft/memstore-model`, the memstore half, and compares them).
//!
//! ```text
//! memstore_model gen --seed S [--ops N] [--no-crashes]   a sequence, as JSON lines, on stdout
//! memstore_model play [--dir DIR]                        play stdin's sequence, outcomes on stdout
//! ```
//!
//! `play` runs on a simulated file system (`SimVfs`) unless `--dir` names a real directory
//! (made if missing, reopened if it holds a store). On `SimVfs` a crash takes the crash image
//! the operation names (only synced bytes, every written byte, or the last unsynced write
//! torn; unsynced directory entries lost) and opens the store on it; on a real directory, or
//! for a `restart`, it drops the store and opens the directory again.

use std::error::Error;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use wal_log::sim::{CrashImage, DataLoss, DirLoss, SimVfs};
use wal_log::{Options, Vfs};
use wal_raft::{LogStore, LogStoreOptions, RaftStoreError};
use wal_raft_model::{CrashKind, GenOptions, ModelConfig, generate, play};

const USAGE: &str =
    "usage: memstore_model gen --seed S [--ops N] [--no-crashes] | play [--dir DIR]";

type BoxError = Box<dyn Error + Send + Sync>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("gen") => parse_gen(&args[1..]).and_then(print_sequence),
        Some("play") => parse_play(&args[1..]).and_then(|dir| run_play(dir.as_deref())),
        _ => Err(USAGE.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "memstore_model: {}",
                wal_raft_model::error_chain(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

fn parse_gen(args: &[String]) -> Result<(u64, GenOptions), BoxError> {
    let mut seed = None;
    let mut opts = GenOptions {
        ops: 400,
        crashes: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seed" => seed = Some(it.next().ok_or(USAGE)?.parse()?),
            "--ops" => opts.ops = it.next().ok_or(USAGE)?.parse()?,
            "--no-crashes" => opts.crashes = false,
            _ => return Err(format!("unknown argument `{a}`\n{USAGE}").into()),
        }
    }
    Ok((seed.ok_or(USAGE)?, opts))
}

fn print_sequence((seed, opts): (u64, GenOptions)) -> Result<(), BoxError> {
    let mut out = io::stdout().lock();
    for op in generate(seed, opts) {
        serde_json::to_writer(&mut out, &op)?;
        io::Write::write_all(&mut out, b"\n")?;
    }
    Ok(())
}

fn parse_play(args: &[String]) -> Result<Option<PathBuf>, BoxError> {
    match args {
        [] => Ok(None),
        [flag, dir] if flag == "--dir" => Ok(Some(PathBuf::from(dir))),
        _ => Err(USAGE.into()),
    }
}

/// Small segments, so sequences cross rotations and purges remove files.
fn open(dir: &Path, vfs: Option<Arc<dyn Vfs>>) -> Result<LogStore<ModelConfig>, RaftStoreError> {
    let mut wal = Options::default().segment_size(16 << 10).preallocate(false);
    if let Some(vfs) = vfs {
        wal = wal.vfs(vfs);
    }
    let opts = LogStoreOptions {
        wal,
        ..LogStoreOptions::default()
    };
    Ok(LogStore::open(dir, opts)?.0)
}

fn run_play(dir: Option<&Path>) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let input = io::stdin().lock();
    let out = BufWriter::new(io::stdout().lock());
    rt.block_on(async {
        match dir {
            Some(dir) => {
                let store = open(dir, None)?;
                play(input, out, store, |store, _kind| {
                    drop(store);
                    Ok(open(dir, None)?)
                })
                .await?;
            }
            None => {
                let dir = Path::new("/raft");
                let mut vfs = SimVfs::new();
                let store = open(dir, Some(Arc::new(vfs.clone())))?;
                play(input, out, store, |store, kind| {
                    if let Some(data) = data_loss(kind) {
                        // The image is what the disk holds at the cut, before the store closes.
                        let image = vfs.crash(&CrashImage {
                            data,
                            dirs: DirLoss::UnsyncedLost,
                        });
                        drop(store);
                        vfs = image;
                    } else {
                        drop(store);
                    }
                    Ok(open(dir, Some(Arc::new(vfs.clone())))?)
                })
                .await?;
            }
        }
        Ok(())
    })
}

fn data_loss(kind: CrashKind) -> Option<DataLoss> {
    match kind {
        CrashKind::DurableOnly => Some(DataLoss::DurableOnly),
        CrashKind::AllWritten => Some(DataLoss::AllWritten),
        CrashKind::TornLastWrite => Some(DataLoss::TornLastWrite { sectors: 1 }),
        CrashKind::Restart => None,
    }
}
