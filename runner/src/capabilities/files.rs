//! File access: the step's `read` and `write` grants, resolved to real folders.
//!
//! The plugin sees each granted folder as a WASI preopen at the same absolute path as
//! on the host (read-only or read-write); nothing else of the file system exists for
//! it, and cap-std refuses `..` and symlinks that lead out of a preopen. Native
//! programs get the same folders through Landlock (see [`super::confine`]).

use std::path::{Path, PathBuf};

use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use super::GrantError;
use crate::capabilities::logs::{Source, StepLog};

/// The folders a step may read and write, canonical and existing.
#[derive(Debug, Clone, Default)]
pub struct FileAccess {
    read: Vec<PathBuf>,
    write: Vec<PathBuf>,
}

impl FileAccess {
    /// Resolve grants: write folders are created when missing; read folders that do
    /// not exist are skipped with a note in the step log.
    pub fn resolve(
        read: &[PathBuf],
        write: &[PathBuf],
        log: &StepLog,
    ) -> Result<FileAccess, GrantError> {
        let mut access = FileAccess::default();
        for dir in write {
            std::fs::create_dir_all(dir).map_err(|e| GrantError::Path {
                grant: "write",
                path: dir.clone(),
                reason: format!("cannot create it: {e}"),
            })?;
            access.write.push(canonical_dir("write", dir)?);
        }
        for dir in read {
            if !dir.exists() {
                log.line(
                    Source::Runner,
                    &format!("read grant {} does not exist; skipped", dir.display()),
                );
                continue;
            }
            access.read.push(canonical_dir("read", dir)?);
        }
        Ok(access)
    }

    /// Folders readable (read and write grants).
    pub fn readable(&self) -> impl Iterator<Item = &Path> {
        self.read
            .iter()
            .chain(self.write.iter())
            .map(PathBuf::as_path)
    }

    /// Folders granted for reading only (a folder may also be in a write grant).
    pub fn read_only(&self) -> impl Iterator<Item = &Path> {
        self.read.iter().map(PathBuf::as_path)
    }

    /// Folders writable.
    pub fn writable(&self) -> impl Iterator<Item = &Path> {
        self.write.iter().map(PathBuf::as_path)
    }

    /// Whether `path` (absolute, canonical) lies inside a readable folder.
    pub fn can_read(&self, path: &Path) -> bool {
        self.readable().any(|d| path.starts_with(d))
    }

    /// Whether `path` (absolute, canonical) lies inside a writable folder.
    pub fn can_write(&self, path: &Path) -> bool {
        self.writable().any(|d| path.starts_with(d))
    }

    /// Preopen every granted folder, at its own absolute path.
    pub fn preopen(&self, wasi: &mut WasiCtxBuilder) -> Result<(), GrantError> {
        for (dirs, perms, grant) in [
            (&self.read, FsPerms::ReadOnly, "read"),
            (&self.write, FsPerms::ReadWrite, "write"),
        ] {
            for dir in dirs {
                let guest = dir.to_str().ok_or_else(|| GrantError::Path {
                    grant,
                    path: dir.clone(),
                    reason: "the path is not valid UTF-8".into(),
                })?;
                wasi.preopened_dir(dir, guest, perms)
                    .map_err(|e| GrantError::Path {
                        grant,
                        path: dir.clone(),
                        reason: format!("cannot open it: {e}"),
                    })?;
            }
        }
        Ok(())
    }
}

fn canonical_dir(grant: &'static str, dir: &Path) -> Result<PathBuf, GrantError> {
    let canonical = std::fs::canonicalize(dir).map_err(|e| GrantError::Path {
        grant,
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    if canonical == Path::new("/") {
        return Err(GrantError::Path {
            grant,
            path: dir.to_path_buf(),
            reason: "it is the whole machine; grant the folders the step needs".into(),
        });
    }
    if ["/proc", "/sys", "/dev"]
        .iter()
        .any(|p| canonical.starts_with(p))
    {
        return Err(GrantError::Path {
            grant,
            path: dir.to_path_buf(),
            reason: "/proc, /sys and /dev cannot be granted; native programs get their own".into(),
        });
    }
    if !canonical.is_dir() {
        return Err(GrantError::Path {
            grant,
            path: dir.to_path_buf(),
            reason: "it is a file; grants name folders".into(),
        });
    }
    Ok(canonical)
}
