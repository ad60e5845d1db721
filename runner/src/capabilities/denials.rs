//! Naming the grant a failed native program lacked.
//!
//! A program in a step's sandbox that touches a file its grants do not cover fails in
//! one of two ways, neither of which the kernel reports anywhere but to the program:
//! the file is not in the sandbox at all (the mount table holds only system folders
//! and grants: `ENOENT`), or it is in a folder mounted read-only (`EROFS`, or `EACCES`
//! from Landlock). Landlock's audit records (Linux 6.15+) would only ever see the
//! last kind, so they cannot explain the common one.
//!
//! So when a program fails, its output is read for the paths it names next to an
//! access error ("Permission denied", "Read-only file system", "No such file or
//! directory", `os error 30`, `[Errno 13]`, `EACCES`, ...), and each path is checked
//! against the sandbox's own mount table and the machine: a path is reported only
//! when the sandbox explains the error, i.e. it exists on the machine but is in no
//! folder of the sandbox (a missing `read` grant), or it lies in a folder the sandbox
//! has read-only (a missing `write` grant). A path that does not exist on the machine
//! either, or lies where the step may write, is the program's own business and is
//! never blamed on the grants. See `docs/design/0010-toolchain-presets.md`.

use std::path::{Component, Path, PathBuf};

use crate::host::bindings::types;
use crate::host::step::StepFailure;
use crate::sandbox::plan::MountPlan;

/// Most hints kept per program run.
const MAX_HINTS: usize = 3;
/// How many earlier lines may hold the path of an error line that names none (cargo
/// prints `failed to open: PATH` and the error two lines later).
const LOOK_BACK: usize = 4;
/// Only this much of a program's output is read for denials (its end).
const MAX_SCANNED: usize = 256 << 10;

/// The kind of error a line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    /// `EROFS`: writing where the sandbox is read-only.
    ReadOnly,
    /// `EACCES`.
    Denied,
    /// `ENOENT`: possibly a file the sandbox does not hold.
    Missing,
}

fn error_kind(line: &str) -> Option<ErrorKind> {
    let l = line.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| l.contains(n));
    if any(&[
        "read-only file system",
        "erofs",
        "os error 30)",
        "errno 30]",
    ]) {
        Some(ErrorKind::ReadOnly)
    } else if any(&["permission denied", "eacces", "os error 13)", "errno 13]"]) {
        Some(ErrorKind::Denied)
    } else if any(&[
        "no such file or directory",
        "enoent",
        "os error 2)",
        "errno 2]",
    ]) {
        Some(ErrorKind::Missing)
    } else {
        None
    }
}

/// What a program was denied, and the grant that would allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The path the program named (absolute).
    pub path: PathBuf,
    /// Writing was denied (else reading).
    pub write: bool,
    /// The folder to grant (absolute).
    pub grant: PathBuf,
    /// A toolchain preset that grants it, when the path is a toolchain's.
    pub toolchain: Option<&'static str>,
}

impl Denial {
    /// The sentence for the step's summary and log, with paths as the pipeline file
    /// would write them.
    pub fn hint(&self, program: &str, pipeline_dir: &Path) -> String {
        let show = |p: &Path| crate::toolchains::shown_path(p, pipeline_dir);
        let (verb, why, key) = if self.write {
            ("write", "the step may only read there", "write")
        } else {
            ("read", "it is outside the step's grants", "read")
        };
        let preset = self
            .toolchain
            .map(|t| format!(" or `toolchain = \"{t}\"`"))
            .unwrap_or_default();
        format!(
            "`{program}` could not {verb} {} ({why}); to allow it, add `{key} = [\"{}\"]`{preset} to the step's grants",
            show(&self.path),
            show(&self.grant)
        )
    }
}

/// The denials that explain a failed program's `output`, given the sandbox's whole
/// mount table and the program's working folder.
pub fn find(output: &[u8], cwd: &Path, mounts: &[MountPlan]) -> Vec<Denial> {
    let start = output.len().saturating_sub(MAX_SCANNED);
    let text = String::from_utf8_lossy(&output[start..]);
    let lines: Vec<&str> = text.lines().collect();
    let mut found: Vec<Denial> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(kind) = error_kind(line) else {
            continue;
        };
        let mut candidates = paths_in(line);
        if candidates.is_empty() {
            candidates = lines[i.saturating_sub(LOOK_BACK)..i]
                .iter()
                .rev()
                .map(|l| paths_in(l))
                .find(|p| !p.is_empty())
                .unwrap_or_default();
        }
        let writing = lines[i.saturating_sub(LOOK_BACK)..=i]
            .iter()
            .any(|l| speaks_of_writing(l));
        for candidate in candidates {
            let path = crate::config::normalize(&cwd.join(&candidate));
            if let Some(denial) = explain(&path, kind, writing, mounts)
                && !found.iter().any(|d| d.path == denial.path)
            {
                found.push(denial);
                if found.len() == MAX_HINTS {
                    return found;
                }
            }
        }
    }
    found
}

/// Whether the sandbox explains an error of `kind` on `path` (named on a line that
/// speaks of writing when `writing`), and how.
fn explain(path: &Path, kind: ErrorKind, writing: bool, mounts: &[MountPlan]) -> Option<Denial> {
    // The machine's view: the path, links followed as far as it exists.
    let (existing, rest) = nearest_existing(path)?;
    let existing = std::fs::canonicalize(&existing).ok()?;
    let real = existing.join(&rest);
    let exists = rest.as_os_str().is_empty();
    // The folder to grant: the path's own when it is one, else the one it is in.
    let grant = if exists && !real.is_dir() {
        real.parent().unwrap_or(&real).to_path_buf()
    } else {
        existing.clone()
    };
    let denial = |write: bool| {
        Some(Denial {
            path: path.to_path_buf(),
            write,
            grant: grant.clone(),
            toolchain: toolchain_of(&real),
        })
    };
    match covering(mounts, &real) {
        // The machine's secrets and files the sandbox makes: nothing to grant.
        Some(MountPlan::Mask { .. } | MountPlan::File { .. }) => None,
        Some(MountPlan::Bind { writable: true, .. }) => None,
        // Read-only here: writing was refused (a missing file is just missing).
        Some(MountPlan::Bind { .. }) if kind != ErrorKind::Missing => denial(true),
        Some(MountPlan::Bind { .. }) => None,
        // In no folder of the sandbox (or hidden by its private `/tmp`), but on the
        // machine: the grant is missing. The sandbox's empty root, or its `/tmp`, are
        // no folders to grant.
        _ if grant == Path::new("/") || grant == Path::new("/tmp") => None,
        _ if exists => denial(writing || kind == ErrorKind::ReadOnly),
        // Not on the machine either: only creating it explains the error.
        _ if writing => denial(true),
        _ => None,
    }
}

/// Whether an error line speaks of writing (creating, locking...) rather than reading.
fn speaks_of_writing(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    [
        "mkdir", "creat", "writ", "rename", "unlink", "remove", "lock", "save",
    ]
    .iter()
    .any(|w| l.contains(w))
}

/// The deepest mount of the table that holds `path` (links of the base table such
/// as `/bin -> usr/bin` are already resolved by the caller).
fn covering<'a>(mounts: &'a [MountPlan], path: &Path) -> Option<&'a MountPlan> {
    mounts
        .iter()
        .filter(|m| !matches!(m, MountPlan::Symlink { .. } | MountPlan::Resize { .. }))
        .filter(|m| path.starts_with(m.target()))
        .max_by_key(|m| m.target().components().count())
}

/// The longest prefix of `path` that exists on the machine, and the rest.
fn nearest_existing(path: &Path) -> Option<(PathBuf, PathBuf)> {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    while existing.symlink_metadata().is_err() {
        rest.push(existing.file_name()?.to_os_string());
        existing = existing.parent()?.to_path_buf();
    }
    let rest: PathBuf = rest.iter().rev().collect();
    Some((existing, rest))
}

/// The toolchain preset a path belongs to, by where toolchains keep their files.
fn toolchain_of(path: &Path) -> Option<&'static str> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let under_home = |rel: &str| home.as_ref().is_some_and(|h| path.starts_with(h.join(rel)));
    let named = |name: &str| {
        path.components()
            .any(|c| matches!(c, Component::Normal(n) if n == name))
    };
    if under_home(".cargo") || under_home(".rustup") {
        Some("rust")
    } else if under_home(".pyenv")
        || named(".venv")
        || named("site-packages")
        || named("__pycache__")
        || named(".pytest_cache")
        || named(".ruff_cache")
        || named(".mypy_cache")
    {
        Some("python")
    } else if under_home(".npm") || under_home(".nvm") || named("node_modules") {
        Some("node")
    } else if under_home("go") || under_home(".cache/go-build") {
        Some("go")
    } else {
        None
    }
}

/// The paths a line of output names: quoted text that looks like a path, and words
/// that start with `/` or `./`.
fn paths_in(line: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |p: &str, quoted: bool| {
        let p = p.trim_end_matches([':', ',', ';', ')']);
        let p = if quoted { p } else { p.trim_end_matches('.') };
        let looks_like_path = !p.is_empty()
            && !p.contains(char::is_whitespace)
            && !p.contains("://")
            && !p.starts_with('-')
            && (quoted || p.starts_with('/') || p.starts_with("./"));
        if looks_like_path && !p.contains('\0') && !out.iter().any(|o| o == p) {
            out.push(p.to_string());
        }
    };
    // Quoted: a file name alone counts (`cannot touch 'out.txt'`); the check against
    // the machine weeds out quoted words that are no file.
    for quote in ['\'', '"', '`'] {
        let mut parts = line.split(quote);
        parts.next();
        while let Some(inside) = parts.next() {
            push(inside, true);
            if parts.next().is_none() {
                break;
            }
        }
    }
    for word in line.split_whitespace() {
        let word = word.trim_start_matches(['(', '[', '\'', '"', '`']);
        let word = word.trim_end_matches(['\'', '"', '`', ']']);
        if word.starts_with('/') || word.starts_with("./") {
            push(word, false);
        }
    }
    out
}

/// Put the hints first in a failed step's summary (or failure message), so that the
/// grant to add is the first thing read.
pub fn explain_failure<A>(
    result: Result<(types::Report, A), StepFailure>,
    hints: Vec<String>,
) -> Result<(types::Report, A), StepFailure> {
    if hints.is_empty() {
        return result;
    }
    let hints = hints.join("; ");
    match result {
        Ok((mut report, a)) if report.status == types::Status::Failed => {
            report.summary = format!("{hints}; {}", report.summary);
            Ok((report, a))
        }
        Err(StepFailure::Plugin(message)) => {
            Err(StepFailure::Plugin(format!("{hints}; {message}")))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(source: &Path, writable: bool) -> MountPlan {
        MountPlan::Bind {
            source: source.to_path_buf(),
            writable,
            follow_symlinks: false,
        }
    }

    #[test]
    fn paths_are_found_in_the_usual_error_shapes() {
        assert_eq!(
            paths_in("PermissionError: [Errno 13] Permission denied: '/x/y/.pytest_cache'"),
            ["/x/y/.pytest_cache"]
        );
        assert_eq!(
            paths_in("open /root/.cache/go-build/ab: read-only file system"),
            ["/root/.cache/go-build/ab"]
        );
        assert_eq!(
            paths_in("npm ERR! Error: EACCES: permission denied, mkdir '/root/.npm/_cacache'"),
            ["/root/.npm/_cacache"]
        );
        assert_eq!(
            paths_in("cat: /etc/x: No such file or directory"),
            ["/etc/x"]
        );
        assert_eq!(
            paths_in("OSError: [Errno 30] Read-only file system: '.ruff_cache'"),
            [".ruff_cache"]
        );
        assert!(paths_in("error: could not compile (lib test) due to 2 errors").is_empty());
        // A quoted word is a candidate; the machine says it is no file.
        let mounts = vec![bind(Path::new("/usr"), false)];
        let line = b"error[E0425]: cannot find value `tiny`: No such file or directory\n";
        assert!(find(line, Path::new("/nonexistent-sluice"), &mounts).is_empty());
    }

    #[test]
    fn a_read_only_folder_asks_for_a_write_grant() {
        let project = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(project.path()).unwrap();
        let mounts = vec![bind(&dir, false)];
        let out = b"error: failed to write Cargo.lock\n\nCaused by:\n  failed to open: ./Cargo.lock\n\nCaused by:\n  Read-only file system (os error 30)\n";
        let found = find(out, &dir, &mounts);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].write);
        assert_eq!(found[0].grant, dir);
        assert_eq!(
            found[0].hint("cargo", &dir),
            "`cargo` could not write Cargo.lock (the step may only read there); to allow it, add `write = [\".\"]` to the step's grants"
        );
    }

    #[test]
    fn a_file_outside_the_sandbox_asks_for_a_read_grant_and_a_missing_one_for_nothing() {
        let outside = tempfile::tempdir().unwrap();
        let outside = std::fs::canonicalize(outside.path()).unwrap();
        std::fs::write(outside.join("data.txt"), "x").unwrap();
        let mounts = vec![bind(Path::new("/usr"), false)];
        let shown = format!(
            "cat: {0}/data.txt: No such file or directory\ncat: {0}/gone.txt: No such file or directory\n",
            outside.display()
        );
        let found = find(shown.as_bytes(), Path::new("/tmp"), &mounts);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(!found[0].write);
        assert_eq!(found[0].path, outside.join("data.txt"));
        assert_eq!(found[0].grant, outside);
    }

    #[test]
    fn writable_folders_are_never_blamed() {
        let dir = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(dir.path()).unwrap();
        let mounts = vec![bind(&dir, true)];
        let out = format!("touch: {}/x: Permission denied\n", dir.display());
        assert!(find(out.as_bytes(), &dir, &mounts).is_empty());
    }
}
