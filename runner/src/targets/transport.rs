//! The operations on one target, for both kinds: a local target runs them with `sh`
//! in its folder, an SSH target through the OpenSSH client (`BatchMode=yes`, the
//! granted key and known_hosts, `StrictHostKeyChecking=yes` unless the grant says
//! `accept-new`). Deployment archives live on the target under
//! `<root>/var/lib/sluice-deploy/<application>/<deployment-id>/deployment-archive`,
//! and a copy of the target's record next to them (`record.json`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{HostKeyChecking, TargetSpec};
use crate::host::bindings::sluice::plugin::deploy_targets as wit;

/// Why an operation on a target did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TargetError {
    /// The target could not be reached (ssh failed, its folder is missing).
    #[error("{0}")]
    Unreachable(String),
    /// The operation ran and failed.
    #[error("{0}")]
    Failed(String),
}

/// How a step reaches an SSH target: resolved from its `ssh` grant when it starts.
#[derive(Debug, Clone)]
pub struct SshAccess {
    pub user: Option<String>,
    /// The private key, written to a 0600 file private to the step.
    pub identity_file: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub checking: HostKeyChecking,
}

/// One target, ready for operations.
#[derive(Debug, Clone)]
pub struct Transport {
    pub spec: TargetSpec,
    pub ssh: Option<SshAccess>,
}

/// Where a bundle comes from, resolved: a local folder (already checked against the
/// step's read grant) or an archive on the target.
#[derive(Debug, Clone)]
pub enum ResolvedSource {
    LocalFolder(PathBuf),
    Archive(String),
}

impl Transport {
    pub fn new(spec: TargetSpec, ssh: Option<SshAccess>) -> Transport {
        Transport { spec, ssh }
    }

    /// DownloadBundle: copy `source` into a new archive folder for `deployment_id`.
    pub async fn download_bundle(
        &self,
        application: &str,
        deployment_id: &str,
        source: &ResolvedSource,
    ) -> Result<wit::StagedBundle, TargetError> {
        let _ = (application, deployment_id, source);
        Err(self.not_yet("DownloadBundle"))
    }

    /// Install: remove `cleanup`, copy `files`, apply `permissions`.
    pub async fn install(&self, request: &wit::InstallRequest) -> Result<Vec<String>, TargetError> {
        let _ = request;
        Err(self.not_yet("Install"))
    }

    /// Run one hook script, killed at its timeout or at `deadline`, whichever comes
    /// first.
    pub async fn run_hook(
        &self,
        deployment_id: &str,
        hook: &wit::Hook,
        deadline: Instant,
    ) -> Result<wit::HookOutcome, TargetError> {
        let _ = (deployment_id, hook, deadline);
        Err(self.not_yet("hooks"))
    }

    /// Write the copy of the target's record (JSON) on the target.
    pub async fn write_record_copy(
        &self,
        application: &str,
        json: &str,
    ) -> Result<(), TargetError> {
        let _ = (application, json);
        Err(self.not_yet("records"))
    }

    fn not_yet(&self, what: &str) -> TargetError {
        TargetError::Failed(format!(
            "target `{}`: {what} on {} targets is not available in this build",
            self.spec.name,
            self.spec.kind.as_str()
        ))
    }
}

/// The digest of a bundle folder: sha256 over its files' relative paths, modes and
/// contents, in path order.
pub fn bundle_digest(folder: &Path) -> Result<String, TargetError> {
    Err(TargetError::Failed(format!(
        "{}: bundle digests are not available in this build",
        folder.display()
    )))
}
