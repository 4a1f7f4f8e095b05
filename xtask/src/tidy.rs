//! `cargo xtask tidy`: the structural rules of the workspace, checked from `cargo metadata`.
//!
//! 1. Layering. The library crates form a stack, and each may depend (as a normal, build or
//!    dev dependency) only on crates in lower layers. Every other workspace package (xtask,
//!    examples such as `kv`, benchmark and fuzz harnesses) is an application above the stack
//!    and may depend on anything; no library may depend on an application.
//! 2. Every crate under `crates/` opts into the workspace lints with `[lints] workspace = true`.
//! 3. `wal-format` stays free of I/O: its normal dependencies come from a short allow-list.

use crate::util::{self, Failure};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// The library layers, lowest first. A crate may depend only on crates with a smaller number.
pub const LAYERS: &[(&str, u32)] = &[
    ("wal-format", 0),
    ("wal-log", 1),
    ("wal-recorder", 2),
    ("wal-replay", 3),
    ("wal-raft", 4),
    // The model test's operations, generator and player: no walrus crate below it (the
    // memstore player links it without wal-raft), only wal-raft's example above it.
    ("wal-raft-model", 0),
];

/// The crate that must stay free of file and network I/O.
pub const FORMAT_CRATE: &str = "wal-format";

/// The only normal dependencies [`FORMAT_CRATE`] may have.
pub const FORMAT_ALLOWED_DEPS: &[&str] = &["bytes", "crc32c", "serde", "thiserror", "bincode"];

/// The layer of a library crate; `None` for an application.
pub fn layer(name: &str) -> Option<u32> {
    LAYERS.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
}

/// Which section of a manifest a dependency comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepKind {
    /// `[dependencies]`
    Normal,
    /// `[dev-dependencies]`
    Dev,
    /// `[build-dependencies]`
    Build,
}

impl fmt::Display for DepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DepKind::Normal => "dependency",
            DepKind::Dev => "dev-dependency",
            DepKind::Build => "build-dependency",
        })
    }
}

/// One dependency of a workspace package, by package name (not the name it is renamed to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dep {
    /// The depended-on package's name.
    pub name: String,
    /// Which manifest section it is in.
    pub kind: DepKind,
}

/// A workspace package as far as the checks need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// Package name.
    pub name: String,
    /// Absolute path of its `Cargo.toml`.
    pub manifest_path: PathBuf,
    /// Its dependencies.
    pub deps: Vec<Dep>,
}

/// The workspace members described by `cargo metadata --format-version 1` output.
///
/// # Errors
/// When the JSON lacks the fields this reads.
pub fn workspace_packages(meta: &Value) -> Result<Vec<Package>, String> {
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .ok_or("metadata has no `workspace_members` list")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let packages = meta["packages"]
        .as_array()
        .ok_or("metadata has no `packages` list")?;
    let mut out = Vec::new();
    for p in packages {
        let id = p["id"].as_str().ok_or("a package has no `id`")?;
        if !members.contains(id) {
            continue;
        }
        let name = p["name"]
            .as_str()
            .ok_or_else(|| format!("package {id} has no `name`"))?;
        let manifest = p["manifest_path"]
            .as_str()
            .ok_or_else(|| format!("package {name} has no `manifest_path`"))?;
        let mut deps = Vec::new();
        for d in p["dependencies"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let dep_name = d["name"]
                .as_str()
                .ok_or_else(|| format!("a dependency of {name} has no name"))?;
            let kind = match d["kind"].as_str() {
                None => DepKind::Normal,
                Some("dev") => DepKind::Dev,
                Some("build") => DepKind::Build,
                Some(other) => {
                    return Err(format!(
                        "{name}: unknown dependency kind `{other}` for {dep_name}"
                    ));
                }
            };
            deps.push(Dep {
                name: dep_name.to_owned(),
                kind,
            });
        }
        out.push(Package {
            name: name.to_owned(),
            manifest_path: PathBuf::from(manifest),
            deps,
        });
    }
    Ok(out)
}

/// Checks the layering rule and wal-format's allow-list; returns one line per violation.
pub fn check_packages(packages: &[Package]) -> Vec<String> {
    let members: BTreeSet<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    let mut problems = Vec::new();
    for p in packages {
        let Some(own) = layer(&p.name) else {
            continue; // applications may depend on anything
        };
        for d in &p.deps {
            let is_ours = members.contains(d.name.as_str()) || layer(&d.name).is_some();
            // A crate's dev-dependency on itself (`foo = { path = ".", features = [..] }`)
            // only turns on test features; cargo refuses any other self-dependency.
            if !is_ours || d.name == p.name {
                continue;
            }
            match layer(&d.name) {
                Some(theirs) if theirs < own => {}
                Some(theirs) => problems.push(format!(
                    "{} (layer {own}) has a {} on {} (layer {theirs}): a library crate may depend \
                     only on lower layers",
                    p.name, d.kind, d.name
                )),
                None => problems.push(format!(
                    "{} (layer {own}) has a {} on {}, an application: library crates must not \
                     depend on applications",
                    p.name, d.kind, d.name
                )),
            }
        }
    }
    match packages.iter().find(|p| p.name == FORMAT_CRATE) {
        None => problems.push(format!("{FORMAT_CRATE} is not a workspace member")),
        Some(p) => {
            for d in p.deps.iter().filter(|d| d.kind == DepKind::Normal) {
                if !FORMAT_ALLOWED_DEPS.contains(&d.name.as_str()) {
                    problems.push(format!(
                        "{FORMAT_CRATE} depends on {}, which is not in its allow-list ({}): the \
                         format crate knows bytes, never files",
                        d.name,
                        FORMAT_ALLOWED_DEPS.join(", ")
                    ));
                }
            }
        }
    }
    problems
}

/// [`workspace_packages`] then [`check_packages`]: every violation in `cargo metadata` output.
pub fn check_metadata(meta: &Value) -> Vec<String> {
    match workspace_packages(meta) {
        Ok(packages) => check_packages(&packages),
        Err(e) => vec![format!("unreadable cargo metadata: {e}")],
    }
}

/// Whether a `Cargo.toml` opts into the workspace lints, in any of TOML's spellings:
/// a `[lints]` table with `workspace = true`, `lints.workspace = true`, or
/// `lints = { workspace = true }`.
pub fn has_workspace_lints(manifest: &str) -> bool {
    let mut table = String::new();
    for raw in manifest.lines() {
        let line: String = raw
            .split('#')
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if line.starts_with('[') {
            table = line.trim_matches(|c| c == '[' || c == ']').to_owned();
            continue;
        }
        let found = match table.as_str() {
            "lints" => line == "workspace=true",
            "" => line == "lints.workspace=true" || line == "lints={workspace=true}",
            _ => false,
        };
        if found {
            return true;
        }
    }
    false
}

/// Manifests of every crate under `crates/`: workspace members there, and any
/// `crates/*/Cargo.toml` on disk (so a crate not yet added to the workspace is checked too).
fn crate_manifests(root: &Path, packages: &[Package]) -> Result<BTreeSet<PathBuf>, Failure> {
    let crates_dir = root.join("crates");
    let mut manifests: BTreeSet<PathBuf> = packages
        .iter()
        .filter(|p| p.manifest_path.starts_with(&crates_dir))
        .map(|p| p.manifest_path.clone())
        .collect();
    let entries = std::fs::read_dir(&crates_dir)
        .map_err(|e| Failure::error(format!("cannot list {}: {e}", crates_dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| Failure::error(format!("cannot list crates/: {e}")))?;
        let manifest = entry.path().join("Cargo.toml");
        if manifest.is_file() {
            manifests.insert(manifest);
        }
    }
    Ok(manifests)
}

/// Runs every check against the real workspace and reports all violations at once.
pub fn run(root: &Path) -> Result<(), Failure> {
    let meta = util::metadata(root)?;
    let packages = workspace_packages(&meta).map_err(Failure::error)?;
    let mut problems = check_metadata(&meta);
    let manifests = crate_manifests(root, &packages)?;
    for manifest in &manifests {
        let text = std::fs::read_to_string(manifest)
            .map_err(|e| Failure::error(format!("cannot read {}: {e}", manifest.display())))?;
        if !has_workspace_lints(&text) {
            let shown = manifest.strip_prefix(root).unwrap_or(manifest);
            problems.push(format!(
                "{} lacks `[lints] workspace = true`: every crate under crates/ uses the \
                 workspace lints",
                shown.display()
            ));
        }
    }
    if problems.is_empty() {
        let top = LAYERS.iter().map(|(_, l)| *l).max().unwrap_or(0);
        let stack: Vec<String> = (0..=top)
            .map(|l| {
                let names: Vec<&str> = LAYERS
                    .iter()
                    .filter(|(_, n)| *n == l)
                    .map(|(name, _)| *name)
                    .collect();
                names.join(", ")
            })
            .filter(|s| !s.is_empty())
            .collect();
        println!(
            "tidy: ok ({} workspace packages, {} crates under crates/; layering {} < applications)",
            packages.len(),
            manifests.len(),
            stack.join(" < ")
        );
        Ok(())
    } else {
        for p in &problems {
            eprintln!("tidy: {p}");
        }
        Err(Failure::error(format!(
            "tidy found {} problem(s)",
            problems.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A dependency `(name, kind)`, with `kind` as cargo metadata spells it.
    type DepSpec<'a> = (&'a str, Option<&'a str>);
    /// A workspace member `(name, dependencies)`.
    type PkgSpec<'a> = (&'a str, &'a [DepSpec<'a>]);

    /// Synthetic `cargo metadata` output with one member per spec.
    fn metadata(packages: &[PkgSpec<'_>]) -> Value {
        let pkgs: Vec<Value> = packages
            .iter()
            .map(|(name, deps)| {
                let deps: Vec<Value> = deps
                    .iter()
                    .map(|(d, kind)| json!({ "name": d, "kind": kind }))
                    .collect();
                json!({
                    "id": format!("path+file:///ws/crates/{name}#0.1.0"),
                    "name": name,
                    "manifest_path": format!("/ws/crates/{name}/Cargo.toml"),
                    "dependencies": deps,
                })
            })
            .collect();
        let members: Vec<Value> = pkgs.iter().map(|p| p["id"].clone()).collect();
        json!({ "packages": pkgs, "workspace_members": members })
    }

    const FORMAT_OK: PkgSpec<'static> = (
        "wal-format",
        &[("bytes", None), ("crc32c", None), ("proptest", Some("dev"))],
    );

    #[test]
    fn downward_dependencies_are_accepted() {
        let meta = metadata(&[
            FORMAT_OK,
            ("wal-log", &[("wal-format", None)]),
            (
                "wal-recorder",
                &[("wal-log", None), ("wal-format", Some("dev"))],
            ),
            (
                "wal-replay",
                &[("wal-recorder", None), ("wal-format", Some("build"))],
            ),
            ("xtask", &[("serde_json", None)]),
            ("kv", &[("wal-replay", None), ("wal-format", None)]),
        ]);
        assert_eq!(check_metadata(&meta), Vec::<String>::new());
    }

    #[test]
    fn upward_dependencies_are_rejected_in_every_section() {
        for kind in [None, Some("dev"), Some("build")] {
            let meta = metadata(&[
                FORMAT_OK,
                ("wal-log", &[("wal-recorder", kind)]),
                ("wal-recorder", &[("wal-log", None)]),
            ]);
            let problems = check_metadata(&meta);
            assert_eq!(problems.len(), 1, "{kind:?}: {problems:?}");
            assert!(problems[0].contains("wal-log (layer 1)"), "{problems:?}");
            assert!(
                problems[0].contains("on wal-recorder (layer 2)"),
                "{problems:?}"
            );
        }
    }

    #[test]
    fn application_dependencies_are_rejected_but_self_dev_dependency_is_not() {
        let meta = metadata(&[
            FORMAT_OK,
            (
                "wal-log",
                &[
                    ("wal-format", None),
                    ("wal-log", Some("dev")),
                    ("kv", Some("dev")),
                ],
            ),
            ("kv", &[("wal-log", None)]),
        ]);
        let problems = check_metadata(&meta);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("wal-log (layer 1) has a dev-dependency on kv"),
            "{problems:?}"
        );
    }

    #[test]
    fn format_crate_may_not_grow_io_dependencies() {
        let meta = metadata(&[("wal-format", &[("bytes", None), ("tokio", None)])]);
        let problems = check_metadata(&meta);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("wal-format depends on tokio"),
            "{problems:?}"
        );
        // Dev-dependencies (test and bench tools) are not part of the shipped crate.
        let meta = metadata(&[("wal-format", &[("tempfile", Some("dev"))])]);
        assert_eq!(check_metadata(&meta), Vec::<String>::new());
    }

    #[test]
    fn missing_format_crate_and_bad_json_are_reported() {
        assert_eq!(check_metadata(&metadata(&[("wal-log", &[])])).len(), 1);
        assert_eq!(check_metadata(&json!({ "packages": [] })).len(), 1);
    }

    #[test]
    fn non_members_in_metadata_are_ignored() {
        let mut meta = metadata(&[FORMAT_OK, ("wal-log", &[("wal-replay", None)])]);
        meta["workspace_members"] = json!(["path+file:///ws/crates/wal-format#0.1.0"]);
        assert_eq!(check_metadata(&meta), Vec::<String>::new());
    }

    #[test]
    fn workspace_lints_are_recognised_in_each_spelling() {
        assert!(has_workspace_lints(
            "[package]\nname = \"a\"\n\n[lints]\nworkspace = true\n"
        ));
        assert!(has_workspace_lints(
            "[package]\n[lints]\n  workspace=true # inherit\n"
        ));
        assert!(has_workspace_lints(
            "lints.workspace = true\n[package]\nname = \"a\"\n"
        ));
        assert!(has_workspace_lints(
            "lints = { workspace = true }\n[package]\n"
        ));
        assert!(!has_workspace_lints("[package]\nname = \"a\"\n"));
        assert!(!has_workspace_lints("[lints]\nworkspace = false\n"));
        assert!(!has_workspace_lints(
            "[lints]\n[package]\nworkspace = true\n"
        ));
        assert!(!has_workspace_lints("[lints]\n# workspace = true\n"));
    }
}
