//! `cargo xtask raft-model`: wal-raft's `LogStore` against openraft-memstore as the reference
//! model. Builds the two players (`crates/wal-raft/examples/memstore_model.rs` in this
//! workspace, `crates/wal-raft/memstore-model` in its own), generates seeded sequences of
//! storage calls, plays each on both and compares the outcomes line by line. Every seed runs
//! wal-raft on `SimVfs` (crashes are crash images); every [`KILL_EVERY`]th seed also runs it
//! on a real directory, where each crash is a `SIGKILL` of the player process and a new
//! process opens the directory again.

use crate::util::{self, Failure};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

/// The memstore player's workspace, relative to the repository root.
pub const MEMSTORE_MANIFEST: &str = "crates/wal-raft/memstore-model/Cargo.toml";

/// Seeds `s` with `s % KILL_EVERY == 0` also run with real crashes on a real directory.
const KILL_EVERY: u64 = 10;

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Args {
    /// How many seeds.
    pub seeds: u64,
    /// The first seed.
    pub first: u64,
    /// Operations per sequence.
    pub ops: u64,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            seeds: 100,
            first: 0,
            ops: 400,
        }
    }
}

/// Parses `--seeds N`, `--first S`, `--ops N`.
pub fn parse(args: &[String]) -> Result<Args, Failure> {
    let mut out = Args::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let slot = match flag.as_str() {
            "--seeds" => &mut out.seeds,
            "--first" => &mut out.first,
            "--ops" => &mut out.ops,
            _ => return Err(Failure::usage(format!("unexpected argument `{flag}`"))),
        };
        let text = it
            .next()
            .ok_or_else(|| Failure::usage(format!("`{flag}` needs a value")))?;
        *slot = text
            .parse()
            .map_err(|_| Failure::usage(format!("`{flag}` wants a whole number, got `{text}`")))?;
    }
    Ok(out)
}

/// The two players' executables.
struct Players {
    wal: PathBuf,
    mem: PathBuf,
}

/// Builds both players, then plays and compares every seed; stops at the first difference.
pub fn run(root: &Path, args: Args) -> Result<(), Failure> {
    let t = Instant::now();
    let players = Players {
        wal: build(
            root,
            &["build", "-p", "wal-raft", "--example", "memstore_model"],
            "memstore_model",
        )?,
        mem: build(
            root,
            &["build", "--locked", "--manifest-path", MEMSTORE_MANIFEST],
            "wal-raft-memstore-model",
        )?,
    };
    println!(
        "raft-model: players built in {}",
        util::format_duration(t.elapsed())
    );
    let work = util::target_dir(root)?.join("raft-model");
    std::fs::create_dir_all(&work)
        .map_err(|e| Failure::error(format!("create {}: {e}", work.display())))?;
    let t = Instant::now();
    let (mut ops, mut crashes, mut killed) = (0, 0, 0);
    for seed in args.first..args.first + args.seeds {
        let path = work.join(format!("seed-{seed}.jsonl"));
        let mut gen_cmd = Command::new(&players.wal);
        gen_cmd.args([
            "gen",
            "--seed",
            &seed.to_string(),
            "--ops",
            &args.ops.to_string(),
        ]);
        let text = util::capture(&mut gen_cmd)?;
        std::fs::write(&path, &text)
            .map_err(|e| Failure::error(format!("write {}: {e}", path.display())))?;
        let lines: Vec<&str> = text.lines().collect();
        let mem = play_file(&players.mem, &[], &path)?;
        let wal = play_file(&players.wal, &["play"], &path)?;
        compare(seed, "SimVfs", &path, &lines, &mem, &wal)?;
        let seed_crashes = lines.iter().filter(|l| is_crash(l)).count();
        if seed % KILL_EVERY == 0 {
            let dir = work.join(format!("seed-{seed}.d"));
            let wal = play_killed(&players.wal, &lines, &dir)?;
            compare(seed, "real directory, SIGKILL", &path, &lines, &mem, &wal)?;
            killed += seed_crashes;
        }
        ops += lines.len();
        crashes += seed_crashes;
    }
    println!(
        "raft-model: seeds {}..{}: {ops} operations with {crashes} crashes on SimVfs and \
         {killed} SIGKILLs on real directories, wal-raft's outcomes equal to memstore's \
         ({})",
        args.first,
        args.first + args.seeds,
        util::format_duration(t.elapsed())
    );
    Ok(())
}

/// Runs `cargo <args>` in `root` and returns the path of the executable target `name` built.
fn build(root: &Path, args: &[&str], name: &str) -> Result<PathBuf, Failure> {
    let mut cmd = util::cargo(root, args);
    cmd.arg("--message-format=json-render-diagnostics");
    let line = util::describe(&cmd);
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Failure::error(format!("could not start `{line}`: {e}")))?;
    if !out.status.success() {
        return Err(Failure::error(format!("`{line}` failed ({})", out.status)));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| Failure::error(format!("`{line}` named no executable `{name}`")))
}

fn is_crash(line: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v.get("crash").is_some())
}

/// `player args < path`, its outcome lines.
fn play_file(player: &Path, args: &[&str], path: &Path) -> Result<Vec<String>, Failure> {
    let input =
        File::open(path).map_err(|e| Failure::error(format!("open {}: {e}", path.display())))?;
    let mut cmd = Command::new(player);
    cmd.args(args).stdin(input);
    let line = util::describe(&cmd);
    let out = cmd
        .output()
        .map_err(|e| Failure::error(format!("could not start `{line}`: {e}")))?;
    if !out.status.success() {
        return Err(Failure::error(format!(
            "`{line} < {}` failed ({}):\n{}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// A wal-raft player on a real directory, fed one operation at a time.
struct Live {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Live {
    fn start(player: &Path, dir: &Path) -> Result<Live, Failure> {
        let mut child = Command::new(player)
            .arg("play")
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| Failure::error(format!("could not start {}: {e}", player.display())))?;
        match (child.stdin.take(), child.stdout.take()) {
            (Some(stdin), Some(stdout)) => Ok(Live {
                child,
                stdin,
                stdout: BufReader::new(stdout),
            }),
            _ => Err(Failure::error("the player's pipes were not set up")),
        }
    }

    /// Sends one operation and waits for its outcome: when it arrives the call has returned.
    fn call(&mut self, op: &str) -> Result<String, Failure> {
        let mut outcome = String::new();
        writeln!(self.stdin, "{op}")
            .and_then(|()| self.stdin.flush())
            .and_then(|()| self.stdout.read_line(&mut outcome))
            .map_err(|e| Failure::error(format!("talking to the player: {e}")))?;
        if outcome.is_empty() {
            let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
            return Err(Failure::error(format!(
                "the player exited ({status}) without answering `{op}`"
            )));
        }
        Ok(outcome.trim_end().to_owned())
    }
}

/// Plays `lines` on a real directory; at each crash the player gets `SIGKILL` and a new one
/// opens the directory. The crash's own outcome line is the one the players print for it.
fn play_killed(player: &Path, lines: &[&str], dir: &Path) -> Result<Vec<String>, Failure> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .map_err(|e| Failure::error(format!("remove {}: {e}", dir.display())))?;
    }
    let mut live = Live::start(player, dir)?;
    let mut outcomes = Vec::with_capacity(lines.len());
    for op in lines {
        if is_crash(op) {
            live.child
                .kill()
                .and_then(|()| live.child.wait())
                .map_err(|e| Failure::error(format!("killing the player: {e}")))?;
            live = Live::start(player, dir)?;
            outcomes.push(r#"{"ok":"crashed"}"#.to_owned());
        } else {
            outcomes.push(live.call(op)?);
        }
    }
    drop(live.stdin);
    let status = live
        .child
        .wait()
        .map_err(|e| Failure::error(format!("waiting for the player: {e}")))?;
    if !status.success() {
        return Err(Failure::error(format!(
            "the player failed at the end ({status})"
        )));
    }
    Ok(outcomes)
}

/// Fails at the first operation whose outcomes differ, naming it.
fn compare(
    seed: u64,
    mode: &str,
    path: &Path,
    ops: &[&str],
    mem: &[String],
    wal: &[String],
) -> Result<(), Failure> {
    let n = ops.len().max(mem.len()).max(wal.len());
    let Some(i) = (0..n).find(|&i| mem.get(i) != wal.get(i)) else {
        return Ok(());
    };
    let show = |s: Option<&str>| match s {
        None => "(nothing)".to_owned(),
        Some(s) if s.len() > 400 => format!(
            "{}... ({} bytes)",
            &s[..s.floor_char_boundary(400)],
            s.len()
        ),
        Some(s) => s.to_owned(),
    };
    Err(Failure::error(format!(
        "seed {seed} ({mode}): the outcomes differ first at operation {} of {}\n  \
         operation: {}\n  memstore:  {}\n  wal-raft:  {}\n  sequence:  {}",
        i + 1,
        ops.len(),
        show(ops.get(i).copied()),
        show(mem.get(i).map(String::as_str)),
        show(wal.get(i).map(String::as_str)),
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_bad_ones_are_refused() {
        let s = |v: &[&str]| v.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
        assert_eq!(parse(&s(&[])).ok(), Some(Args::default()));
        assert_eq!(
            parse(&s(&["--seeds", "3", "--first", "9", "--ops", "50"])).ok(),
            Some(Args {
                seeds: 3,
                first: 9,
                ops: 50
            })
        );
        assert!(parse(&s(&["--seeds"])).is_err());
        assert!(parse(&s(&["--seeds", "x"])).is_err());
        assert!(parse(&s(&["--what", "1"])).is_err());
    }

    #[test]
    fn the_first_difference_is_named() {
        let ops = ["\"read_vote\"", "\"get_log_state\""];
        let same = vec!["{\"ok\":null}".to_owned(), "{\"ok\":1}".to_owned()];
        let path = Path::new("seed-1.jsonl");
        assert!(compare(1, "SimVfs", path, &ops, &same, &same).is_ok());
        let other = vec!["{\"ok\":null}".to_owned(), "{\"ok\":2}".to_owned()];
        let e = compare(1, "SimVfs", path, &ops, &same, &other)
            .err()
            .map(|f| f.message);
        let e = e.unwrap_or_default();
        assert!(e.contains("operation 2 of 2"), "{e}");
        assert!(e.contains("\"get_log_state\""), "{e}");
        let short = vec!["{\"ok\":null}".to_owned()];
        assert!(compare(1, "SimVfs", path, &ops, &same, &short).is_err());
        assert!(is_crash(r#"{"crash":{"kind":"restart"}}"#));
        assert!(!is_crash("\"read_vote\""));
    }
}
