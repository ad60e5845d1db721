//! Deploy targets, through the host's `deploy-targets` import: the hosts a step is
//! granted (`[[target]]` groups named by its `targets` grant) and the operations the
//! runner performs on them for the plugin, which decides order, waves and health.
//!
//! ```no_run
//! use sluice_sdk::deploy::{self, BundleSource};
//!
//! for target in deploy::targets() {
//!     let record = deploy::read_record("hello", &target.name)?;
//!     sluice_sdk::log::info(&format!("{} runs {:?}", target.name, record.current));
//! }
//! let digest = deploy::bundle_digest(&BundleSource::LocalFolder("dist/bundle".into()))?;
//! # Ok::<(), sluice_sdk::RunError>(())
//! ```
//!
//! Every function returns `Result<_, DeployError>`; `?` turns a [`DeployError`] into a
//! [`RunError`] (a missing grant stays [`RunError::Denied`], naming the grant to add).
//! The contract's types are re-exported here as they are; the doc comments of
//! `deploy-targets` in `wit/plugin.wit` are their specification.
//!
//! Outside a WebAssembly host (a plugin's native unit tests) there are no targets:
//! [`targets`] is empty, [`alarm`] is quiet, and every operation fails saying that no
//! host is present. Test deployment logic against a fake fleet of your own instead.

use crate::RunError;
use crate::bindings::sluice::plugin::deploy_targets as wit;

pub use wit::{
    BakeRequest, BundleSource, DeployError, Deployment, DeploymentEnd, DeploymentKind, EventState,
    FileCopy, FileExistsBehavior, Hook, HookOutcome, HostState, InstallRequest, Permission,
    Revision, StagedBundle, Target, TargetRecord,
};

impl DeployError {
    /// The error's text, without the variant.
    pub fn message(&self) -> &str {
        match self {
            DeployError::Denied(m) | DeployError::Unreachable(m) | DeployError::Failed(m) => m,
        }
    }
}

impl From<DeployError> for RunError {
    fn from(error: DeployError) -> RunError {
        match error {
            DeployError::Denied(m) => RunError::Denied(m),
            DeployError::Unreachable(m) | DeployError::Failed(m) => RunError::Failed(m),
        }
    }
}

impl HookOutcome {
    /// Whether the hook exited 0 (no signal, no timeout).
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && self.signal.is_none() && !self.timed_out
    }

    /// How it ended, as people read it: `exit 0`, `exit 1`, `killed by signal 9`,
    /// `timed out after 30000 ms`.
    pub fn ending(&self) -> String {
        if self.timed_out {
            format!("timed out after {} ms", self.duration_ms)
        } else if let Some(signal) = self.signal {
            format!("killed by signal {signal}")
        } else if let Some(code) = self.exit_code {
            format!("exit {code}")
        } else {
            "ended without an exit code".to_string()
        }
    }
}

/// The targets the step is granted, in the pipeline's order.
pub fn targets() -> Vec<Target> {
    host::targets()
}

/// Record the start of a deployment; returns its id (`d-<run>-<n>`).
pub fn begin(deployment: &Deployment) -> Result<String, DeployError> {
    host::begin(deployment)
}

/// Record the end of a deployment, with the reason people read.
pub fn finish(deployment_id: &str, end: DeploymentEnd, reason: &str) -> Result<(), DeployError> {
    host::finish(deployment_id, end, reason)
}

/// Record, then show, a lifecycle step of one target (`BeforeInstall`, `Skip`, ...).
pub fn progress(
    deployment_id: &str,
    target: &str,
    event: &str,
    state: EventState,
    detail: &str,
) -> Result<(), DeployError> {
    host::progress(deployment_id, target, event, state, detail)
}

/// The recorded state of `target` for `application` (`fresh` when never written).
pub fn read_record(application: &str, target: &str) -> Result<TargetRecord, DeployError> {
    host::read_record(application, target)
}

/// Record a target's new state (in the state store, then a copy on the target).
pub fn write_record(
    application: &str,
    target: &str,
    update: &TargetRecord,
) -> Result<(), DeployError> {
    host::write_record(application, target, update)
}

/// The digest a bundle would have on a target.
pub fn bundle_digest(source: &BundleSource) -> Result<String, DeployError> {
    host::bundle_digest(source)
}

/// The text of a file inside an archive on the target, e.g. an earlier revision's
/// `appspec.yml`.
pub fn read_archive_file(target: &str, archive: &str, path: &str) -> Result<String, DeployError> {
    host::read_archive_file(target, archive, path)
}

/// DownloadBundle: copy a bundle into a new archive folder on the target.
pub fn download_bundle(
    target: &str,
    deployment_id: &str,
    source: &BundleSource,
) -> Result<StagedBundle, DeployError> {
    host::download_bundle(target, deployment_id, source)
}

/// Install: remove the previous revision's files, copy the archive's files and apply
/// permissions; returns the files copied.
pub fn install(target: &str, request: &InstallRequest) -> Result<Vec<String>, DeployError> {
    host::install(target, request)
}

/// Run one hook script on the target, under its timeout. A script that could not
/// start is an error; one that ran is an outcome, whatever its exit code.
pub fn run_hook(
    target: &str,
    deployment_id: &str,
    hook: &Hook,
) -> Result<HookOutcome, DeployError> {
    host::run_hook(target, deployment_id, hook)
}

/// Why an alarm of the step's stage fired, if one did.
pub fn alarm() -> Option<String> {
    host::alarm()
}

/// Wait out a bake between waves: `Ok` with how it passed, `Err` with why it failed.
pub fn bake(deployment_id: &str, request: &BakeRequest) -> Result<String, String> {
    host::bake(deployment_id, request)
}

#[cfg(target_arch = "wasm32")]
mod host {
    use super::wit;
    use super::*;

    pub(super) fn targets() -> Vec<Target> {
        wit::targets()
    }
    pub(super) fn begin(deployment: &Deployment) -> Result<String, DeployError> {
        wit::begin(deployment)
    }
    pub(super) fn finish(id: &str, end: DeploymentEnd, reason: &str) -> Result<(), DeployError> {
        wit::finish(id, end, reason)
    }
    pub(super) fn progress(
        id: &str,
        target: &str,
        event: &str,
        state: EventState,
        detail: &str,
    ) -> Result<(), DeployError> {
        wit::progress(id, target, event, state, detail)
    }
    pub(super) fn read_record(
        application: &str,
        target: &str,
    ) -> Result<TargetRecord, DeployError> {
        wit::read_record(application, target)
    }
    pub(super) fn write_record(
        application: &str,
        target: &str,
        update: &TargetRecord,
    ) -> Result<(), DeployError> {
        wit::write_record(application, target, update)
    }
    pub(super) fn bundle_digest(source: &BundleSource) -> Result<String, DeployError> {
        wit::bundle_digest(source)
    }
    pub(super) fn read_archive_file(
        target: &str,
        archive: &str,
        path: &str,
    ) -> Result<String, DeployError> {
        wit::read_archive_file(target, archive, path)
    }
    pub(super) fn download_bundle(
        target: &str,
        id: &str,
        source: &BundleSource,
    ) -> Result<StagedBundle, DeployError> {
        wit::download_bundle(target, id, source)
    }
    pub(super) fn install(
        target: &str,
        request: &InstallRequest,
    ) -> Result<Vec<String>, DeployError> {
        wit::install(target, request)
    }
    pub(super) fn run_hook(
        target: &str,
        id: &str,
        hook: &Hook,
    ) -> Result<HookOutcome, DeployError> {
        wit::run_hook(target, id, hook)
    }
    pub(super) fn alarm() -> Option<String> {
        wit::alarm()
    }
    pub(super) fn bake(id: &str, request: &BakeRequest) -> Result<String, String> {
        wit::bake(id, request)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod host {
    //! Native stand-in for the `deploy-targets` import: no targets, and every
    //! operation says that no host is present.
    use super::*;

    fn absent(what: &str) -> DeployError {
        DeployError::Failed(format!(
            "{what}: deploy targets exist only inside the Sluice runner (this is a native build)"
        ))
    }

    pub(super) fn targets() -> Vec<Target> {
        Vec::new()
    }
    pub(super) fn begin(_: &Deployment) -> Result<String, DeployError> {
        Err(absent("begin"))
    }
    pub(super) fn finish(_: &str, _: DeploymentEnd, _: &str) -> Result<(), DeployError> {
        Err(absent("finish"))
    }
    pub(super) fn progress(
        _: &str,
        _: &str,
        _: &str,
        _: EventState,
        _: &str,
    ) -> Result<(), DeployError> {
        Err(absent("progress"))
    }
    pub(super) fn read_record(_: &str, _: &str) -> Result<TargetRecord, DeployError> {
        Err(absent("read-record"))
    }
    pub(super) fn write_record(_: &str, _: &str, _: &TargetRecord) -> Result<(), DeployError> {
        Err(absent("write-record"))
    }
    pub(super) fn bundle_digest(_: &BundleSource) -> Result<String, DeployError> {
        Err(absent("bundle-digest"))
    }
    pub(super) fn read_archive_file(_: &str, _: &str, _: &str) -> Result<String, DeployError> {
        Err(absent("read-archive-file"))
    }
    pub(super) fn download_bundle(
        _: &str,
        _: &str,
        _: &BundleSource,
    ) -> Result<StagedBundle, DeployError> {
        Err(absent("download-bundle"))
    }
    pub(super) fn install(_: &str, _: &InstallRequest) -> Result<Vec<String>, DeployError> {
        Err(absent("install"))
    }
    pub(super) fn run_hook(_: &str, _: &str, _: &Hook) -> Result<HookOutcome, DeployError> {
        Err(absent("run-hook"))
    }
    pub(super) fn alarm() -> Option<String> {
        None
    }
    pub(super) fn bake(_: &str, _: &BakeRequest) -> Result<String, String> {
        Err("bake: bakes exist only inside the Sluice runner (this is a native build)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(exit_code: Option<i32>, signal: Option<i32>, timed_out: bool) -> HookOutcome {
        HookOutcome {
            exit_code,
            signal,
            timed_out,
            output_tail: String::new(),
            duration_ms: 1500,
        }
    }

    #[test]
    fn hook_outcome_succeeds_only_on_exit_zero() {
        assert!(outcome(Some(0), None, false).succeeded());
        assert!(!outcome(Some(1), None, false).succeeded());
        assert!(!outcome(None, Some(9), false).succeeded());
        assert!(!outcome(Some(0), None, true).succeeded());
        assert_eq!(outcome(Some(3), None, false).ending(), "exit 3");
        assert_eq!(outcome(None, Some(9), false).ending(), "killed by signal 9");
        assert_eq!(
            outcome(None, Some(9), true).ending(),
            "timed out after 1500 ms"
        );
    }

    #[test]
    fn deploy_errors_become_run_errors_of_the_same_kind() {
        let denied: RunError = DeployError::Denied("add `targets`".into()).into();
        assert_eq!(denied, RunError::Denied("add `targets`".into()));
        let unreachable: RunError = DeployError::Unreachable("ssh: timeout".into()).into();
        assert_eq!(unreachable, RunError::Failed("ssh: timeout".into()));
        assert_eq!(DeployError::Failed("x".into()).message(), "x");
    }

    #[test]
    fn natively_there_are_no_targets_and_operations_say_why() {
        assert!(targets().is_empty());
        assert_eq!(alarm(), None);
        let err = read_record("app", "box-1").unwrap_err();
        assert!(
            err.message().contains("only inside the Sluice runner"),
            "{err:?}"
        );
    }
}
