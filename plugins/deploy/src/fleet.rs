//! [`Fleet`]: everything the deployment logic asks of the world (the `deploy-targets`
//! import, a health check over HTTP, a pause), behind a trait so that the logic runs
//! against a fake fleet in unit tests; [`HostFleet`] is the real one.

use std::time::Duration;

use sluice_sdk::deploy::{
    self, BakeRequest, BundleSource, DeployError, Deployment, DeploymentEnd, EventState, Hook,
    HookOutcome, InstallRequest, StagedBundle, Target, TargetRecord,
};

/// The targets and the operations on them. Mirrors `deploy-targets` in
/// `wit/plugin.wit`, whose doc comments say what each operation does.
pub trait Fleet {
    fn targets(&mut self) -> Vec<Target>;
    fn begin(&mut self, deployment: &Deployment) -> Result<String, DeployError>;
    fn finish(&mut self, id: &str, end: DeploymentEnd, reason: &str) -> Result<(), DeployError>;
    fn progress(
        &mut self,
        id: &str,
        target: &str,
        event: &str,
        state: EventState,
        detail: &str,
    ) -> Result<(), DeployError>;
    fn read_record(&mut self, application: &str, target: &str)
    -> Result<TargetRecord, DeployError>;
    fn write_record(
        &mut self,
        application: &str,
        target: &str,
        update: &TargetRecord,
    ) -> Result<(), DeployError>;
    fn bundle_digest(&mut self, source: &BundleSource) -> Result<String, DeployError>;
    fn read_archive_file(
        &mut self,
        target: &str,
        archive: &str,
        path: &str,
    ) -> Result<String, DeployError>;
    fn download_bundle(
        &mut self,
        target: &str,
        id: &str,
        source: &BundleSource,
    ) -> Result<StagedBundle, DeployError>;
    fn install(
        &mut self,
        target: &str,
        request: &InstallRequest,
    ) -> Result<Vec<String>, DeployError>;
    fn run_hook(&mut self, target: &str, id: &str, hook: &Hook)
    -> Result<HookOutcome, DeployError>;
    fn alarm(&mut self) -> Option<String>;
    fn bake(&mut self, id: &str, request: &BakeRequest) -> Result<String, String>;
    /// GET `url`: the status, or why there was none.
    fn http_status(&mut self, url: &str, timeout: Duration) -> Result<u16, String>;
    /// Wait `duration` (between health-check attempts).
    fn pause(&mut self, duration: Duration);
}

/// The runner's targets, through the SDK's wrapper of the import.
#[derive(Default)]
pub struct HostFleet;

impl Fleet for HostFleet {
    fn targets(&mut self) -> Vec<Target> {
        deploy::targets()
    }
    fn begin(&mut self, deployment: &Deployment) -> Result<String, DeployError> {
        deploy::begin(deployment)
    }
    fn finish(&mut self, id: &str, end: DeploymentEnd, reason: &str) -> Result<(), DeployError> {
        deploy::finish(id, end, reason)
    }
    fn progress(
        &mut self,
        id: &str,
        target: &str,
        event: &str,
        state: EventState,
        detail: &str,
    ) -> Result<(), DeployError> {
        deploy::progress(id, target, event, state, detail)
    }
    fn read_record(
        &mut self,
        application: &str,
        target: &str,
    ) -> Result<TargetRecord, DeployError> {
        deploy::read_record(application, target)
    }
    fn write_record(
        &mut self,
        application: &str,
        target: &str,
        update: &TargetRecord,
    ) -> Result<(), DeployError> {
        deploy::write_record(application, target, update)
    }
    fn bundle_digest(&mut self, source: &BundleSource) -> Result<String, DeployError> {
        deploy::bundle_digest(source)
    }
    fn read_archive_file(
        &mut self,
        target: &str,
        archive: &str,
        path: &str,
    ) -> Result<String, DeployError> {
        deploy::read_archive_file(target, archive, path)
    }
    fn download_bundle(
        &mut self,
        target: &str,
        id: &str,
        source: &BundleSource,
    ) -> Result<StagedBundle, DeployError> {
        deploy::download_bundle(target, id, source)
    }
    fn install(
        &mut self,
        target: &str,
        request: &InstallRequest,
    ) -> Result<Vec<String>, DeployError> {
        deploy::install(target, request)
    }
    fn run_hook(
        &mut self,
        target: &str,
        id: &str,
        hook: &Hook,
    ) -> Result<HookOutcome, DeployError> {
        deploy::run_hook(target, id, hook)
    }
    fn alarm(&mut self) -> Option<String> {
        deploy::alarm()
    }
    fn bake(&mut self, id: &str, request: &BakeRequest) -> Result<String, String> {
        deploy::bake(id, request)
    }
    fn http_status(&mut self, url: &str, timeout: Duration) -> Result<u16, String> {
        sluice_sdk::http::Request::get(url)
            .timeout(timeout)
            .send()
            .map(|response| response.status)
            .map_err(|e| e.to_string())
    }
    fn pause(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }
}
