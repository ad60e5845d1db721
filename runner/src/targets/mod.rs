//! Deploy targets: the hosts a pipeline deploys to, declared under `[[target]]`, and
//! the operations performed on them for a deploy step (the `deploy-targets` import of
//! the contract, in `capabilities::deploy`).
//!
//! ```toml
//! [[target]]
//! name = "box-1"                    # unique in the pipeline
//! group = "one-box"                 # a wave unit; waves go group by group
//! local = "fleet/box-1"             # a folder standing for a host (created if missing)
//! url = "http://127.0.0.1:18081"    # the service on it, for health checks
//! vars = { PORT = "18081" }         # given to every hook it runs
//!
//! [[target]]
//! name = "web-1"
//! group = "zone-a"
//! ssh = "10.0.0.7:22"               # host[:port], reached with the OpenSSH client
//! root = "/"                        # where absolute paths land (default "/")
//!
//! [stage.step.grants]
//! targets = ["one-box", "zone-a"]   # groups or single hosts the step may deploy to
//! ssh = { identity = "deploy-key", known-hosts = "ops/known_hosts", user = "deploy" }
//! ```
//!
//! `identity` names a secret of `[secrets]` (the private key, never logged);
//! `known-hosts` is a file: host keys are always checked, and only
//! `host-key-checking = "accept-new"` (said in the step log) lets a first key in.
//!
//! Files: [`spec`] reads and checks the tables; [`transport`] runs the operations on
//! one target, the same shell steps for both kinds: a local target runs them with
//! `sh` in its folder, an SSH target through `ssh`.

pub mod spec;
pub mod transport;

use std::path::PathBuf;

use crate::config::SourcePos;

/// One host a pipeline may deploy to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub name: String,
    /// The wave unit it belongs to.
    pub group: String,
    pub kind: TargetKind,
    /// Base URL of the service on it.
    pub url: Option<String>,
    /// Variables given to every hook it runs, in file order.
    pub vars: Vec<(String, String)>,
    pub pos: SourcePos,
}

/// How a target is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// A folder on this machine standing for a host (absolute; absolute paths on the
    /// "host" land under it).
    Local { folder: PathBuf },
    /// A host reached with the OpenSSH client.
    Ssh {
        host: String,
        port: u16,
        /// Where absolute paths land on it (default `/`).
        root: String,
    },
}

impl TargetKind {
    /// `local` or `ssh`, as the contract says it.
    pub fn as_str(&self) -> &'static str {
        match self {
            TargetKind::Local { .. } => "local",
            TargetKind::Ssh { .. } => "ssh",
        }
    }

    /// The folder under which absolute paths land, as the target sees it.
    pub fn root(&self) -> String {
        match self {
            TargetKind::Local { folder } => folder.display().to_string(),
            TargetKind::Ssh { root, .. } => root.clone(),
        }
    }
}

/// A step's `ssh` grant: how it reaches SSH targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshGrant {
    /// The secret (from `[secrets]`) holding the private key.
    pub identity: Option<String>,
    /// The known_hosts file (absolute).
    pub known_hosts: Option<PathBuf>,
    /// The user to log in as; default: the runner's user.
    pub user: Option<String>,
    pub host_key_checking: HostKeyChecking,
}

/// How SSH host keys are checked. Never off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKeyChecking {
    /// Only keys in `known-hosts` (OpenSSH `StrictHostKeyChecking=yes`).
    #[default]
    Strict,
    /// A host not yet in `known-hosts` is added on first contact, said in the step log
    /// (`accept-new`); a changed key is still refused.
    AcceptNew,
}
