//! File access for steps, as thin wrappers over `std::fs` whose errors say which grant a
//! step is missing.
//!
//! A step sees only the folders its pipeline granted (each preopened at its real
//! absolute path). Outside them WASI answers with a bare "permission denied" or "no
//! such file or directory", which does not tell a pipeline author what to change. These
//! wrappers turn that into, for example:
//!
//! ```text
//! cannot read /etc/passwd: the step has no `read` grant covering it (add it under [stage.step.grants] read)
//! ```
//!
//! Use `?` in [`Plugin::run`](crate::Plugin::run): [`Error`] converts into
//! [`RunError::Denied`] when a grant is missing and [`RunError::Failed`] otherwise.

use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};

use crate::RunError;

/// Read a whole file.
pub fn read(path: impl AsRef<Path>) -> Result<Vec<u8>, Error> {
    let path = path.as_ref();
    std::fs::read(resolve(path)).map_err(|source| Error::new(path, Access::Read, source))
}

/// Read a whole file as UTF-8 text.
pub fn read_to_string(path: impl AsRef<Path>) -> Result<String, Error> {
    let path = path.as_ref();
    std::fs::read_to_string(resolve(path)).map_err(|source| Error::new(path, Access::Read, source))
}

/// Create or replace a file with `contents`.
pub fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> Result<(), Error> {
    let path = path.as_ref();
    std::fs::write(resolve(path), contents)
        .map_err(|source| Error::new(path, Access::Write, source))
}

/// Create a folder and any missing parents.
pub fn create_dir_all(path: impl AsRef<Path>) -> Result<(), Error> {
    let path = path.as_ref();
    std::fs::create_dir_all(resolve(path)).map_err(|source| Error::new(path, Access::Write, source))
}

/// The path to hand to WASI. wasi-libc joins a relative path to its working directory
/// and matches the result against the preopened folders without resolving `..`, so
/// `../out/report.json` fails even when `../out` is granted. Resolve it here, lexically,
/// the way the host resolved the grants. Natively the path is used as it is.
pub(crate) fn resolve(path: &Path) -> PathBuf {
    if !cfg!(target_arch = "wasm32") {
        return path.to_path_buf();
    }
    let absolute = match std::env::current_dir() {
        Ok(cwd) if path.is_relative() => cwd.join(path),
        _ => path.to_path_buf(),
    };
    normalize(&absolute)
}

/// `path` with `.` removed and `..` resolved lexically (the path need not exist).
/// wasi-libc passes `..` through to the host, which refuses it at the edge of a
/// preopen even when the result lies inside another grant; resolve it first.
pub fn normalize(path: &Path) -> PathBuf {
    let mut resolved = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                resolved.pop();
            }
            other => resolved.push(other),
        }
    }
    resolved
}

/// What a step tried to do with a path; each needs its own kind of grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Needs a `read` grant.
    Read,
    /// Needs a `write` grant.
    Write,
}

impl Access {
    fn verb(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// A file operation that failed, with the path, and whether a missing grant is the likely
/// reason.
#[derive(Debug)]
pub struct Error {
    path: PathBuf,
    access: Access,
    missing_grant: bool,
    source: io::Error,
}

impl Error {
    /// Classify an I/O error that `access` to `path` produced. Use it to get the same
    /// helpful messages for `std::fs` calls this module does not wrap.
    pub fn new(path: impl Into<PathBuf>, access: Access, source: io::Error) -> Self {
        let path = path.into();
        let missing_grant = is_missing_grant(&resolve(&path), access, &source);
        Error {
            path,
            access,
            missing_grant,
            source,
        }
    }

    /// The path the step tried to use.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether it tried to read or write.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Whether the path is (most likely) outside every folder the step was granted for
    /// this kind of access.
    pub fn is_missing_grant(&self) -> bool {
        self.missing_grant
    }

    /// The underlying I/O error.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

/// Decide whether an I/O error means "not granted" rather than a plain missing file.
/// In a plugin the step's grants say it ([`crate::grants`]); natively (unit tests) the
/// error and what can be seen around the path do.
fn is_missing_grant(path: &Path, access: Access, error: &io::Error) -> bool {
    if cfg!(target_arch = "wasm32") && path.is_absolute() {
        return !crate::grants::current().allows(path, access);
    }
    match error.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => true,
        io::ErrorKind::NotFound => !any_ancestor_visible(path),
        // wasi-libc reports a path that no preopen covers as ENOTCAPABLE, and Rust's
        // WASI code has used its own "pre-opened" wording; neither has a stable kind.
        _ => {
            let text = error.to_string().to_ascii_lowercase();
            text.contains("capab") || text.contains("preopen") || text.contains("pre-opened")
        }
    }
}

/// A file that does not exist inside a granted folder still has a visible parent; a path
/// outside every grant has none (on WASI nothing outside the preopens can be seen).
fn any_ancestor_visible(path: &Path) -> bool {
    path.ancestors().skip(1).any(|ancestor| {
        let ancestor = if ancestor.as_os_str().is_empty() {
            Path::new(".")
        } else {
            ancestor
        };
        // The root is only visible when it is granted, which makes it no evidence.
        ancestor != Path::new("/") && std::fs::metadata(ancestor).is_ok()
    })
}

/// The one wording of a denied path, with what the system said when there was a try:
/// ``cannot read /etc/passwd: the step has no `read` grant covering it (add it under
/// [stage.step.grants] read)``.
pub(crate) fn denied_message(path: &Path, access: Access, system: Option<&io::Error>) -> String {
    let verb = access.verb();
    let path = path.display();
    match system {
        Some(system) => format!(
            "cannot {verb} {path}: the step has no `{verb}` grant covering it \
             (add it under [stage.step.grants] {verb}; the system said: {system})"
        ),
        None => format!(
            "cannot {verb} {path}: the step has no `{verb}` grant covering it \
             (add it under [stage.step.grants] {verb})"
        ),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.missing_grant {
            f.write_str(&denied_message(&self.path, self.access, Some(&self.source)))
        } else {
            let verb = self.access.verb();
            write!(f, "cannot {verb} {}: {}", self.path.display(), self.source)
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<Error> for RunError {
    fn from(error: Error) -> Self {
        if error.missing_grant {
            RunError::Denied(error.to_string())
        } else {
            RunError::Failed(error.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_in_a_visible_folder_is_not_a_grant_problem() {
        let dir = std::env::temp_dir();
        let err = read(dir.join("sluice-sdk-test-no-such-file")).unwrap_err();
        assert!(!err.is_missing_grant());
        assert!(matches!(RunError::from(err), RunError::Failed(_)));
    }

    #[test]
    fn invisible_path_names_the_grant() {
        let err = Error::new(
            "/nonexistent-root-folder/secret",
            Access::Read,
            io::Error::from(io::ErrorKind::NotFound),
        );
        assert!(err.is_missing_grant());
        let message = err.to_string();
        assert!(
            message.starts_with(
                "cannot read /nonexistent-root-folder/secret: the step has no `read` grant covering it \
                 (add it under [stage.step.grants] read"
            ),
            "{message}"
        );
        let write = Error::new(
            "/etc/x",
            Access::Write,
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert!(write.to_string().contains("no `write` grant"));
        assert!(matches!(RunError::from(write), RunError::Denied(_)));
    }
}
