//! Deploy targets: the step's `targets` (and `ssh`) grant, the `deploy-targets`
//! import. A step reaches only the targets its grant names; every operation that
//! changes a target is recorded in the state store before it returns (a rollback
//! always knows the last good revision, also after a crash and `sluice resume`), and
//! each lifecycle step is recorded, then shown. The operations themselves run in
//! [`crate::targets::transport`].

use std::sync::Arc;

use crate::capabilities::logs::{Source, StepLog};
use crate::host::bindings::sluice::plugin::deploy_targets as wit;
use crate::targets::transport::Transport;

/// The targets one step is granted, and what the import needs to record.
pub struct DeployAccess {
    /// Granted targets, in the pipeline's order.
    targets: Vec<Arc<Transport>>,
    log: StepLog,
}

impl DeployAccess {
    pub fn new(targets: Vec<Arc<Transport>>, log: StepLog) -> DeployAccess {
        DeployAccess { targets, log }
    }

    /// The granted targets as the contract shows them.
    pub fn describe_targets(&self) -> Vec<wit::Target> {
        self.targets
            .iter()
            .map(|t| wit::Target {
                name: t.spec.name.clone(),
                group: t.spec.group.clone(),
                kind: t.spec.kind.as_str().to_string(),
                url: t.spec.url.clone(),
                root: t.spec.kind.root(),
                vars: t.spec.vars.clone(),
            })
            .collect()
    }

    fn unavailable(&self, what: &str) -> wit::DeployError {
        let why = format!("{what}: deploying is not available in this build");
        self.log.line(Source::Runner, &why);
        wit::DeployError::Failed(why)
    }
}

fn no_grant() -> wit::DeployError {
    wit::DeployError::Denied(
        "the step has no `targets` grant; add the target groups it may deploy to under [stage.step.grants] targets".into(),
    )
}

/// The `deploy-targets` import.
impl wit::Host for crate::host::step::StepState {
    fn targets(&mut self) -> Vec<wit::Target> {
        self.deploy
            .as_ref()
            .map(|d| d.describe_targets())
            .unwrap_or_default()
    }

    async fn begin(&mut self, deployment: wit::Deployment) -> Result<String, wit::DeployError> {
        let _ = deployment;
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        Err(d.unavailable("begin"))
    }

    async fn finish(
        &mut self,
        deployment_id: String,
        end: wit::DeploymentEnd,
        reason: String,
    ) -> Result<(), wit::DeployError> {
        let _ = (deployment_id, end, reason);
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        Err(d.unavailable("finish"))
    }

    async fn progress(
        &mut self,
        deployment_id: String,
        target: String,
        event: String,
        state: wit::EventState,
        detail: String,
    ) -> Result<(), wit::DeployError> {
        let _ = (deployment_id, target, event, state, detail);
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        Err(d.unavailable("progress"))
    }

    async fn read_record(
        &mut self,
        application: String,
        target: String,
    ) -> Result<wit::TargetRecord, wit::DeployError> {
        let _ = (application, target);
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        Err(d.unavailable("read-record"))
    }

    async fn write_record(
        &mut self,
        application: String,
        target: String,
        update: wit::TargetRecord,
    ) -> Result<(), wit::DeployError> {
        let _ = (application, target, update);
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        Err(d.unavailable("write-record"))
    }

    async fn bundle_digest(&mut self, source: wit::BundleSource) -> Result<String, wit::DeployError> {
        let _ = source;
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        Err(d.unavailable("bundle-digest"))
    }

    async fn download_bundle(
        &mut self,
        target: String,
        deployment_id: String,
        source: wit::BundleSource,
    ) -> Result<wit::StagedBundle, wit::DeployError> {
        let _ = (target, deployment_id, source);
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        Err(d.unavailable("download-bundle"))
    }

    async fn install(
        &mut self,
        target: String,
        request: wit::InstallRequest,
    ) -> Result<Vec<String>, wit::DeployError> {
        let _ = (target, request);
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        Err(d.unavailable("install"))
    }

    async fn run_hook(
        &mut self,
        target: String,
        deployment_id: String,
        hook: wit::Hook,
    ) -> Result<wit::HookOutcome, wit::DeployError> {
        let _ = (target, deployment_id, hook);
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        Err(d.unavailable("run-hook"))
    }

    async fn read_archive_file(
        &mut self,
        target: String,
        archive: String,
        path: String,
    ) -> Result<String, wit::DeployError> {
        let _ = (target, archive, path);
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        Err(d.unavailable("read-archive-file"))
    }

    fn alarm(&mut self) -> Option<String> {
        None
    }

    async fn bake(
        &mut self,
        deployment_id: String,
        request: wit::BakeRequest,
    ) -> Result<String, String> {
        let _ = (deployment_id, request);
        Err("bakes between waves are not available in this build".into())
    }
}
