//! Small helpers shared by the commands: the error type, running tools, argument parsing.

use std::ffi::OsStr;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Why a command failed, and the process exit code to report it with.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong, for a human.
    pub message: String,
    /// Exit code: 1 for a failed check or tool, 2 for bad usage or a placeholder command.
    pub code: u8,
}

impl Failure {
    /// A failed check or tool (exit code 1).
    pub fn error(message: impl Display) -> Failure {
        Failure {
            message: format!("error: {message}"),
            code: 1,
        }
    }

    /// Bad command-line usage (exit code 2).
    pub fn usage(message: impl Display) -> Failure {
        Failure {
            message: format!("error: {message}"),
            code: 2,
        }
    }
}

/// The repository root: the parent of this crate's manifest directory, so every command works
/// from any current directory.
pub fn workspace_root() -> PathBuf {
    let xtask_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask_dir.parent().unwrap_or(xtask_dir).to_path_buf()
}

/// `cargo`, as the rustup proxy on PATH, so `+nightly` and `rust-toolchain.toml` both work.
pub fn cargo<I, S>(root: &Path, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("cargo");
    cmd.args(args).current_dir(root);
    cmd
}

/// The command line of `cmd`, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut parts = Vec::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            parts.push(format!(
                "{}={}",
                key.to_string_lossy(),
                value.to_string_lossy()
            ));
        }
    }
    parts.push(cmd.get_program().to_string_lossy().into_owned());
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Runs `cmd` with inherited stdio and fails unless it exits with status 0.
pub fn run(cmd: &mut Command) -> Result<(), Failure> {
    let line = describe(cmd);
    let status = cmd
        .status()
        .map_err(|e| Failure::error(format!("could not start `{line}`: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::error(format!("`{line}` failed ({status})")))
    }
}

/// Runs `cmd` quietly and returns its stdout when it exits with status 0.
pub fn capture(cmd: &mut Command) -> Result<String, Failure> {
    let line = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Failure::error(format!("could not start `{line}`: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Failure::error(format!(
            "`{line}` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        )))
    }
}

/// `cargo metadata --format-version 1 --no-deps` of the workspace, parsed.
pub fn metadata(root: &Path) -> Result<serde_json::Value, Failure> {
    let json = capture(&mut cargo(
        root,
        ["metadata", "--format-version", "1", "--no-deps"],
    ))?;
    serde_json::from_str(&json)
        .map_err(|e| Failure::error(format!("cargo metadata printed invalid JSON: {e}")))
}

/// Where cargo puts build output for the workspace: `target/` unless `CARGO_TARGET_DIR` or
/// `build.target-dir` says otherwise. Binaries a command builds must be run from here, not
/// from a hard-coded `target/` that may hold a stale build.
pub fn target_dir(root: &Path) -> Result<PathBuf, Failure> {
    metadata(root)?
        .get("target_directory")
        .and_then(serde_json::Value::as_str)
        .map(PathBuf::from)
        .ok_or_else(|| Failure::error("cargo metadata has no target_directory"))
}

/// Whether `cmd` starts and exits with status 0, with all its output discarded.
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether an executable called `name` is on PATH.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| is_executable(&dir.join(name)))
    })
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file() || path.with_extension("exe").is_file()
}

/// The value of `--flag N` or `--flag=N` in `args`; any other argument is an error.
pub fn parse_flag_u64(args: &[String], flag: &str) -> Result<Option<u64>, Failure> {
    let mut value = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let text = if arg == flag {
            it.next()
                .ok_or_else(|| Failure::usage(format!("`{flag}` needs a value")))?
        } else if let Some(v) = arg.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            v
        } else {
            return Err(Failure::usage(format!("unexpected argument `{arg}`")));
        };
        let n = text
            .parse::<u64>()
            .map_err(|_| Failure::usage(format!("`{flag}` wants a whole number, got `{text}`")))?;
        value = Some(n);
    }
    Ok(value)
}

/// A duration as `1m 05.3s` or `4.2s`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 60.0 {
        let whole = d.as_secs();
        let frac = secs - (whole / 60 * 60) as f64;
        format!("{}m {:04.1}s", whole / 60, frac)
    } else {
        format!("{secs:.1}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn flags_parse_in_both_spellings() {
        assert!(matches!(parse_flag_u64(&strings(&[]), "--time"), Ok(None)));
        assert!(matches!(
            parse_flag_u64(&strings(&["--time", "5"]), "--time"),
            Ok(Some(5))
        ));
        assert!(matches!(
            parse_flag_u64(&strings(&["--time=7"]), "--time"),
            Ok(Some(7))
        ));
        assert!(parse_flag_u64(&strings(&["--time"]), "--time").is_err());
        assert!(parse_flag_u64(&strings(&["--time", "x"]), "--time").is_err());
        assert!(parse_flag_u64(&strings(&["--other", "1"]), "--time").is_err());
    }

    #[test]
    fn durations_format_readably() {
        assert_eq!(format_duration(Duration::from_millis(4210)), "4.2s");
        assert_eq!(format_duration(Duration::from_millis(65_300)), "1m 05.3s");
    }

    #[test]
    fn root_holds_the_workspace_manifest() {
        assert!(workspace_root().join("Cargo.toml").is_file());
        assert!(workspace_root().join("xtask").is_dir());
    }
}
