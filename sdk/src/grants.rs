//! What the step was granted (the `grants` import of contract 0.1.5): its folders,
//! programs, addresses, variables, secrets and targets, as the runner resolved them on
//! this machine, and the check of a path against them before it is used, whose
//! failure is [`RunError::Denied`] naming the grant to add.
//!
//! ```no_run
//! use sluice_sdk::fs::Access;
//!
//! # fn run(ctx: &sluice_sdk::StepContext) -> Result<(), sluice_sdk::RunError> {
//! let grants = sluice_sdk::grants::current();
//! // `src/main.rs` under the pipeline's folder, or `Denied` naming the `read` grant.
//! let path = grants.check(ctx.resolve("src/main.rs"), Access::Read)?;
//! # let _ = path; Ok(()) }
//! ```
//!
//! Each granted folder is a preopen at its own absolute path, so a granted path means
//! the same inside the plugin as on the runner's machine. Outside a WebAssembly host (a
//! plugin's native unit tests) the grants come from the variables `SLUICE_GRANTS_READ`
//! and `SLUICE_GRANTS_WRITE` (folders separated by `:`), and every folder is granted
//! when they are unset.

use std::path::{Path, PathBuf};

use crate::RunError;
use crate::fs::{Access, denied_message, normalize};

/// What the step was granted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grants {
    /// Folders the step may read (canonical; read grants that did not exist when the
    /// step started are left out).
    pub read: Vec<PathBuf>,
    /// Folders the step may read and write (canonical).
    pub write: Vec<PathBuf>,
    /// Programs [`Command`](crate::Command) may start: bare names or absolute paths.
    pub exec: Vec<String>,
    /// `host:port` pairs and origins the step may connect to.
    pub net: Vec<String>,
    /// Environment variables passed through from the runner.
    pub env: Vec<String>,
    /// Names of the secrets [`secrets::get`](crate::secrets::get) may read.
    pub secrets: Vec<String>,
    /// Target groups and target names [`deploy`](crate::deploy) may use.
    pub targets: Vec<String>,
}

/// This step's grants (none while `describe` runs).
pub fn current() -> Grants {
    host::current()
}

impl Grants {
    /// Whether `path` (absolute; `.` and `..` are resolved first) lies in a folder the
    /// step may use for `access`: any read or write grant to read, a write grant to
    /// write.
    pub fn allows(&self, path: impl AsRef<Path>, access: Access) -> bool {
        let path = normalize(path.as_ref());
        let folders: Box<dyn Iterator<Item = &PathBuf>> = match access {
            Access::Read => Box::new(self.read.iter().chain(&self.write)),
            Access::Write => Box::new(self.write.iter()),
        };
        folders.into_iter().any(|folder| path.starts_with(folder))
    }

    /// `path` with `.` and `..` resolved, when the step may use it for `access`;
    /// otherwise [`RunError::Denied`] naming the grant to add, e.g. ``cannot read
    /// /etc/passwd: the step has no `read` grant covering it (add it under
    /// [stage.step.grants] read)``. Resolve a relative path against the pipeline's
    /// folder first ([`StepContext::resolve`](crate::StepContext::resolve)).
    pub fn check(&self, path: impl AsRef<Path>, access: Access) -> Result<PathBuf, RunError> {
        let path = path.as_ref();
        if self.allows(path, access) {
            Ok(normalize(path))
        } else {
            Err(RunError::Denied(denied_message(path, access, None)))
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod host {
    use super::Grants;
    use crate::bindings::sluice::plugin::grants;

    pub(super) fn current() -> Grants {
        let granted = grants::current();
        let folders = |list: Vec<String>| list.into_iter().map(Into::into).collect();
        Grants {
            read: folders(granted.read),
            write: folders(granted.write),
            exec: granted.exec,
            net: granted.net,
            env: granted.env,
            secrets: granted.secrets,
            targets: granted.targets,
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod host {
    //! Native stand-in for the `grants` import, for unit tests.
    use super::Grants;

    pub(super) fn current() -> Grants {
        let folders = |var: &str| match std::env::var_os(var) {
            Some(list) => std::env::split_paths(&list).collect(),
            None => vec!["/".into()],
        };
        Grants {
            read: folders("SLUICE_GRANTS_READ"),
            write: folders("SLUICE_GRANTS_WRITE"),
            ..Grants::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants() -> Grants {
        Grants {
            read: vec!["/work/src".into()],
            write: vec!["/work/out".into()],
            ..Grants::default()
        }
    }

    #[test]
    fn paths_inside_a_grant_are_allowed_after_dot_dot_is_resolved() {
        let grants = grants();
        assert!(grants.allows("/work/src/main.rs", Access::Read));
        assert!(grants.allows("/work/out/report.json", Access::Read));
        assert!(grants.allows("/work/out/../out/x", Access::Write));
        assert!(!grants.allows("/work/src/../secret", Access::Read));
        assert!(!grants.allows("/work/src/main.rs", Access::Write));
        assert!(!grants.allows("/work/srcx/a", Access::Read));
        assert_eq!(
            grants.check("/work/src/./a/../b.rs", Access::Read),
            Ok(PathBuf::from("/work/src/b.rs"))
        );
    }

    #[test]
    fn a_path_outside_every_grant_is_denied_naming_the_grant() {
        let grants = grants();
        assert_eq!(
            grants.check("/etc/passwd", Access::Read),
            Err(RunError::Denied(
                "cannot read /etc/passwd: the step has no `read` grant covering it \
                 (add it under [stage.step.grants] read)"
                    .into()
            ))
        );
        let Err(RunError::Denied(write)) = grants.check("/work/src/out.txt", Access::Write) else {
            panic!("expected Denied");
        };
        assert!(write.contains("no `write` grant"), "{write}");
    }
}
