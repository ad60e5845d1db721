//! Deploy targets: the step's `targets` (and `ssh`) grant, the `deploy-targets`
//! import. A step reaches only the targets its grant names; every operation that
//! changes a target is recorded in the state store before it returns (a rollback
//! always knows the last good revision, also after a crash and `sluice resume`), and
//! each lifecycle step is recorded, then shown. The operations themselves run in
//! [`crate::targets::transport`]; what happens to the stage around the step (its
//! alarms, bakes between waves) comes from the executor through [`StageSignals`].
//!
//! Two lifetimes: a [`DeployGrant`] is resolved once when the step starts (the granted
//! targets, the SSH key written to a 0600 file in a folder private to the step and
//! removed with it, where to record); a [`DeployAccess`] is one attempt's view of it,
//! with the attempt's deadline, which hooks never outlive.
//!
//! A run without a state store (`--no-state`) may not deploy: every call is denied,
//! since nothing would remember what each target runs.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use crate::capabilities::GrantError;
use crate::capabilities::files::FileAccess;
use crate::capabilities::logs::{Source, StepLog};
use crate::clock::Clock;
use crate::config::{Grants, NetGrant};
use crate::events::{Event, EventSink};
use crate::host::bindings::sluice::plugin::deploy_targets as wit;
use crate::secrets::SecretValues;
use crate::secrets::redact::Redactor;
use crate::state::{HostState, NewDeployment, RevisionRow, Store, TargetRecordRow};
use crate::targets::transport::{ResolvedSource, SshAccess, TargetError, Transport};
use crate::targets::{TargetKind, TargetSpec};

/// What a `--no-state` run's deploy calls answer.
pub const NO_STATE: &str =
    "deploying records every target's revision in the state store; run without --no-state";

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the executor tells a deploy step about its stage while it runs.
pub trait StageSignals: Send + Sync {
    /// Why an alarm of the stage fired, if one did.
    fn alarm(&self) -> Option<String>;

    /// Wait out a bake between waves of `deployment_id`, recording its start and end
    /// through `recorder`; `Ok` says how it passed, `Err` why it failed.
    fn bake<'a>(
        &'a self,
        recorder: &'a DeployRecorder,
        deployment_id: &'a str,
        request: &'a wit::BakeRequest,
    ) -> BoxFuture<'a, Result<String, String>>;
}

/// Signals of a stage that has no alarms and no monitors (unit tests, describe).
pub struct QuietStage;

impl StageSignals for QuietStage {
    fn alarm(&self) -> Option<String> {
        None
    }

    fn bake<'a>(
        &'a self,
        _recorder: &'a DeployRecorder,
        _deployment_id: &'a str,
        request: &'a wit::BakeRequest,
    ) -> BoxFuture<'a, Result<String, String>> {
        let label = request.label.clone();
        Box::pin(async move { Err(format!("bake {label}: the run watches no monitors")) })
    }
}

/// Where a deploy step records: the run's state store and clock, the step, and the
/// event sink the live lines come from.
#[derive(Clone)]
pub struct DeployRecorder {
    pub store: Arc<Store>,
    pub clock: Arc<dyn Clock>,
    pub run_id: String,
    pub stage: String,
    pub step: String,
    pub events: EventSink,
}

impl DeployRecorder {
    /// The instant to record.
    pub fn now(&self) -> jiff::Timestamp {
        self.clock.now()
    }

    /// Record one lifecycle step of `target` (empty for the whole deployment), then
    /// show it.
    pub fn record_event(
        &self,
        deployment_id: &str,
        target: &str,
        event: &str,
        state: &str,
        detail: &str,
    ) -> Result<(), String> {
        self.store
            .record_deployment_event(deployment_id, target, event, state, detail, self.now())
            .map_err(|e| format!("cannot record {event} of deployment {deployment_id}: {e}"))?;
        self.show(deployment_id, target, event, state, detail);
        Ok(())
    }

    /// Show a deployment line (already recorded).
    fn show(&self, deployment_id: &str, target: &str, event: &str, state: &str, detail: &str) {
        self.events.send(Event::Deploy {
            stage: self.stage.clone(),
            step: self.step.clone(),
            deployment_id: deployment_id.to_string(),
            target: target.to_string(),
            lifecycle_event: event.to_string(),
            state: state.to_string(),
            detail: detail.to_string(),
        });
    }
}

/// What the executor hands a step so that it can deploy: the pipeline's targets, where
/// to record (`None` for `--no-state`), its stage's signals.
#[derive(Clone)]
pub struct DeploySetting {
    pub targets: Arc<Vec<TargetSpec>>,
    pub recorder: Option<DeployRecorder>,
    pub signals: Arc<dyn StageSignals>,
    pub redactor: Arc<Redactor>,
}

/// The `url` origins of `targets` as `net` grants: a deploy step's outgoing HTTP may
/// reach them (its health checks) without a `net` grant of its own.
pub fn url_origins(targets: &[TargetSpec]) -> Vec<NetGrant> {
    let mut out: Vec<NetGrant> = Vec::new();
    for t in targets {
        let Some(uri) = t.url.as_deref().and_then(|u| u.parse::<http::Uri>().ok()) else {
            continue;
        };
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            continue;
        };
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let grant = NetGrant {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            scheme: Some(scheme.to_string()),
        };
        if !out.contains(&grant) {
            out.push(grant);
        }
    }
    out
}

/// A step's `targets` grant, resolved when it starts.
pub struct DeployGrant {
    /// Granted targets, in the pipeline's order.
    targets: Vec<Arc<Transport>>,
    /// The grant as written (`targets = [...]`).
    granted: Vec<String>,
    /// Every target the pipeline declares, for denials.
    declared: Arc<Vec<TargetSpec>>,
    files: Arc<FileAccess>,
    workdir: PathBuf,
    recorder: Option<DeployRecorder>,
    signals: Arc<dyn StageSignals>,
    redactor: Arc<Redactor>,
    /// Holds the SSH key file; removed when the step's grant is dropped.
    _key_folder: Option<tempfile::TempDir>,
}

impl DeployGrant {
    /// Resolve the `targets` and `ssh` grants of a step; `None` when it has no
    /// `targets` grant. The SSH key (the secret the `ssh` grant's `identity` names) is
    /// written to a 0600 file in a 0700 folder private to the step.
    pub fn resolve(
        grants: &Grants,
        workdir: &Path,
        files: Arc<FileAccess>,
        secrets: &SecretValues,
        setting: DeploySetting,
        log: &StepLog,
    ) -> Result<Option<DeployGrant>, GrantError> {
        if grants.targets.is_empty() {
            return Ok(None);
        }
        let specs = crate::targets::spec::granted(&setting.targets, grants);
        let mut key_folder = None;
        let ssh = if specs
            .iter()
            .any(|t| matches!(t.kind, TargetKind::Ssh { .. }))
        {
            let Some(grant) = &grants.ssh else {
                let names: Vec<&str> = specs
                    .iter()
                    .filter(|t| matches!(t.kind, TargetKind::Ssh { .. }))
                    .map(|t| t.name.as_str())
                    .collect();
                return Err(GrantError::Deploy(format!(
                    "the step may deploy to ssh target(s) {} but has no `ssh` grant; add ssh = {{ identity = \"<secret>\", known-hosts = \"<file>\" }} to its grants",
                    names.join(", ")
                )));
            };
            let access = match &grant.identity {
                None => SshAccess {
                    user: grant.user.clone(),
                    identity_file: None,
                    known_hosts: grant.known_hosts.clone(),
                    checking: grant.host_key_checking,
                },
                Some(secret) => {
                    let key = secrets.get(secret).ok_or_else(|| {
                        GrantError::Deploy(format!(
                            "`ssh` grant: identity `{secret}` is not a secret of the pipeline; declare it under [secrets]"
                        ))
                    })?;
                    // A 0700 folder of its own, removed with the grant.
                    let folder = tempfile::Builder::new()
                        .prefix("sluice-ssh-")
                        .tempdir()
                        .map_err(|e| {
                            GrantError::Deploy(format!(
                                "`ssh` grant: cannot make a private folder for the key of secret `{secret}`: {e}"
                            ))
                        })?;
                    let access = SshAccess::from_grant(grant, key.as_bytes(), folder.path())
                        .map_err(|e| GrantError::Deploy(format!("`ssh` grant: {e}")))?;
                    key_folder = Some(folder);
                    log.line(
                        Source::Runner,
                        &format!("ssh identity: secret `{secret}` (in a file private to the step)"),
                    );
                    access
                }
            };
            if let Some(notice) = access.notice() {
                log.line(Source::Runner, &notice);
            }
            Some(access)
        } else {
            None
        };
        let described: Vec<String> = specs
            .iter()
            .map(|t| format!("{} ({}, {})", t.name, t.group, t.kind.as_str()))
            .collect();
        log.line(
            Source::Runner,
            &format!("deploy targets granted: {}", described.join(", ")),
        );
        let origins = url_origins(&specs);
        if !origins.is_empty() {
            let shown: Vec<String> = origins.iter().map(ToString::to_string).collect();
            log.line(
                Source::Runner,
                &format!(
                    "outgoing HTTP allowed to the granted targets' url: {}",
                    shown.join(", ")
                ),
            );
        }
        let targets = specs
            .into_iter()
            .map(|spec| {
                let ssh = match spec.kind {
                    TargetKind::Ssh { .. } => ssh.clone(),
                    TargetKind::Local { .. } => None,
                };
                Arc::new(Transport::new(spec, ssh))
            })
            .collect();
        Ok(Some(DeployGrant {
            targets,
            granted: grants.targets.clone(),
            declared: setting.targets,
            files,
            workdir: workdir.to_path_buf(),
            recorder: setting.recorder,
            signals: setting.signals,
            redactor: setting.redactor,
            _key_folder: key_folder,
        }))
    }
}

/// The targets one attempt of a step may deploy to, and what the import needs to
/// record.
pub struct DeployAccess {
    grant: Arc<DeployGrant>,
    /// The attempt's deadline: no hook runs past it.
    deadline: Instant,
    log: StepLog,
}

impl DeployAccess {
    pub fn new(grant: Arc<DeployGrant>, deadline: Instant, log: StepLog) -> DeployAccess {
        DeployAccess {
            grant,
            deadline,
            log,
        }
    }

    /// The granted targets as the contract shows them.
    pub fn describe_targets(&self) -> Vec<wit::Target> {
        self.grant
            .targets
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

    /// Where to record, or the `--no-state` denial.
    fn recorder(&self) -> Result<&DeployRecorder, wit::DeployError> {
        self.grant
            .recorder
            .as_ref()
            .ok_or_else(|| wit::DeployError::Denied(NO_STATE.into()))
    }

    /// The granted target `name`, or a denial naming the grant to add.
    fn target(&self, name: &str) -> Result<&Arc<Transport>, wit::DeployError> {
        if let Some(t) = self.grant.targets.iter().find(|t| t.spec.name == name) {
            return Ok(t);
        }
        let granted = self.grant.granted.join(", ");
        let why = match self.grant.declared.iter().find(|t| t.name == name) {
            Some(t) => format!(
                "target `{name}` (group `{}`) is not granted to this step (targets = [{granted}]); add \"{}\" or \"{name}\" to the step's grants `targets`",
                t.group, t.group
            ),
            None => {
                let declared: Vec<&str> = self
                    .grant
                    .declared
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect();
                format!(
                    "no target `{name}` is declared; the pipeline declares {}",
                    if declared.is_empty() {
                        "none (add [[target]] tables)".to_string()
                    } else {
                        declared.join(", ")
                    }
                )
            }
        };
        self.log.line(Source::Runner, &format!("denied: {why}"));
        Err(wit::DeployError::Denied(why))
    }

    /// The deployment `id` of this step (its application), or a denial.
    fn deployment(&self, id: &str) -> Result<crate::state::DeploymentRow, wit::DeployError> {
        let rec = self.recorder()?;
        let row = rec.store.deployment(id).map_err(store_failed)?;
        match row {
            Some(row)
                if row.run_id == rec.run_id && row.stage == rec.stage && row.step == rec.step =>
            {
                Ok(row)
            }
            _ => Err(wit::DeployError::Denied(format!(
                "deployment `{id}` was not begun by step {}/{} of run {}; use the id `begin` returned",
                rec.stage, rec.step, rec.run_id
            ))),
        }
    }

    /// `source` as a path or archive; a local folder must be inside the read grant.
    fn source(&self, source: &wit::BundleSource) -> Result<ResolvedSource, wit::DeployError> {
        match source {
            wit::BundleSource::Archive(a) => Ok(ResolvedSource::Archive(a.clone())),
            wit::BundleSource::LocalFolder(folder) => {
                let path = crate::config::normalize(&self.grant.workdir.join(folder));
                // Grants are canonical folders; so is what is checked against them (a
                // link out of a grant leads out of it).
                let path = std::fs::canonicalize(&path).unwrap_or(path);
                if !self.grant.files.can_read(&path) {
                    let why = format!(
                        "bundle {} is outside the step's read grant; add \"{}\" to its grants `read`",
                        path.display(),
                        folder
                    );
                    self.log.line(Source::Runner, &format!("denied: {why}"));
                    return Err(wit::DeployError::Denied(why));
                }
                Ok(ResolvedSource::LocalFolder(path))
            }
        }
    }

    fn mask(&self, text: &str) -> String {
        self.grant.redactor.redact(text).into_owned()
    }

    /// A transport error as the contract's, secrets masked.
    fn target_failed(&self, e: TargetError) -> wit::DeployError {
        match e {
            TargetError::Unreachable(m) => wit::DeployError::Unreachable(self.mask(&m)),
            TargetError::Failed(m) => wit::DeployError::Failed(self.mask(&m)),
        }
    }

    async fn begin(&self, d: wit::Deployment) -> Result<String, wit::DeployError> {
        let rec = self.recorder()?;
        for t in &d.targets {
            self.target(t)?;
        }
        let kind = match d.kind {
            wit::DeploymentKind::Deploy => "deploy",
            wit::DeploymentKind::Rollback => "rollback",
        };
        let new = NewDeployment {
            run_id: rec.run_id.clone(),
            stage: rec.stage.clone(),
            step: rec.step.clone(),
            application: d.application.clone(),
            deployment_group: d.deployment_group.clone(),
            label: d.label.clone(),
            digest: d.digest.clone(),
            kind: kind.to_string(),
            rollback_of: d.rollback_of.clone(),
            config: d.config.clone(),
            targets: d.targets.clone(),
        };
        let id = rec
            .store
            .begin_deployment(&new, rec.now())
            .map_err(store_failed)?;
        let what = match &d.rollback_of {
            Some(of) => format!("rollback of {of} to {}", d.label),
            None => format!("{kind} of {}", d.label),
        };
        let detail = format!(
            "{what} to {} target(s) of {}/{}: {}",
            d.targets.len(),
            d.application,
            d.deployment_group,
            d.config
        );
        self.log.line(
            Source::Runner,
            &format!("deployment {id} started: {detail}"),
        );
        rec.show(&id, "", "Deployment", "started", &detail);
        Ok(id)
    }

    async fn finish(
        &self,
        id: &str,
        end: wit::DeploymentEnd,
        reason: &str,
    ) -> Result<(), wit::DeployError> {
        let rec = self.recorder()?;
        self.deployment(id)?;
        let state = match end {
            wit::DeploymentEnd::Succeeded => "succeeded",
            wit::DeploymentEnd::Failed => "failed",
            wit::DeploymentEnd::Stopped => "stopped",
        };
        let reason = self.mask(reason);
        rec.store
            .finish_deployment(id, state, &reason, rec.now())
            .map_err(store_failed)?;
        self.log.line(
            Source::Runner,
            &format!("deployment {id} {state}: {reason}"),
        );
        rec.show(id, "", "Deployment", state, &reason);
        Ok(())
    }

    async fn progress(
        &self,
        id: &str,
        target: &str,
        event: &str,
        state: wit::EventState,
        detail: &str,
    ) -> Result<(), wit::DeployError> {
        let rec = self.recorder()?;
        self.deployment(id)?;
        if !target.is_empty() {
            self.target(target)?;
        }
        let state = match state {
            wit::EventState::Started => "started",
            wit::EventState::Succeeded => "succeeded",
            wit::EventState::Failed => "failed",
            wit::EventState::Skipped => "skipped",
        };
        rec.record_event(id, target, event, state, &self.mask(detail))
            .map_err(wit::DeployError::Failed)
    }

    async fn read_record(
        &self,
        application: &str,
        target: &str,
    ) -> Result<wit::TargetRecord, wit::DeployError> {
        let rec = self.recorder()?;
        self.target(target)?;
        let row = rec
            .store
            .target_record(application, target)
            .map_err(store_failed)?;
        Ok(record_to_wit(row))
    }

    async fn write_record(
        &self,
        application: &str,
        target: &str,
        update: wit::TargetRecord,
    ) -> Result<(), wit::DeployError> {
        let rec = self.recorder()?;
        let transport = self.target(target)?;
        let row = record_from_wit(application, target, update, rec.now());
        rec.store
            .write_target_record(&row, row.updated_at)
            .map_err(store_failed)?;
        let json = serde_json::to_string_pretty(&row).expect("a target record serializes");
        transport
            .write_record_copy(application, &json)
            .await
            .map_err(|e| self.target_failed(e))
    }

    async fn bundle_digest(&self, source: wit::BundleSource) -> Result<String, wit::DeployError> {
        self.recorder()?;
        match self.source(&source)? {
            ResolvedSource::LocalFolder(folder) => tokio::task::spawn_blocking(move || {
                crate::targets::transport::bundle_digest(&folder)
            })
            .await
            .map_err(|e| wit::DeployError::Failed(format!("hashing the bundle: {e}")))?
            .map_err(|e| self.target_failed(e)),
            ResolvedSource::Archive(a) => Err(wit::DeployError::Failed(format!(
                "bundle-digest of archive {a}: an archive on a target has the digest its target's record gives; ask for the digest of a local-folder bundle"
            ))),
        }
    }

    async fn download_bundle(
        &self,
        target: &str,
        id: &str,
        source: wit::BundleSource,
    ) -> Result<wit::StagedBundle, wit::DeployError> {
        let transport = self.target(target)?;
        let deployment = self.deployment(id)?;
        let source = self.source(&source)?;
        transport
            .download_bundle(&deployment.application, id, &source)
            .await
            .map_err(|e| self.target_failed(e))
    }

    async fn install(
        &self,
        target: &str,
        request: wit::InstallRequest,
    ) -> Result<Vec<String>, wit::DeployError> {
        self.recorder()?;
        let transport = self.target(target)?;
        transport
            .install(&request)
            .await
            .map_err(|e| self.target_failed(e))
    }

    async fn run_hook(
        &self,
        target: &str,
        id: &str,
        hook: wit::Hook,
    ) -> Result<wit::HookOutcome, wit::DeployError> {
        let transport = self.target(target)?;
        self.deployment(id)?;
        let mut outcome = transport
            .run_hook(id, &hook, self.deadline)
            .await
            .map_err(|e| self.target_failed(e))?;
        outcome.output_tail = self.mask(&outcome.output_tail);
        Ok(outcome)
    }

    async fn read_archive_file(
        &self,
        target: &str,
        archive: &str,
        path: &str,
    ) -> Result<String, wit::DeployError> {
        self.recorder()?;
        let transport = self.target(target)?;
        transport
            .read_archive_file(archive, path)
            .await
            .map_err(|e| self.target_failed(e))
    }

    async fn bake(&self, id: &str, request: wit::BakeRequest) -> Result<String, String> {
        let rec = self.recorder().map_err(|_| NO_STATE.to_string())?;
        self.deployment(id).map_err(|e| match e {
            wit::DeployError::Denied(m)
            | wit::DeployError::Unreachable(m)
            | wit::DeployError::Failed(m) => m,
        })?;
        self.grant.signals.bake(rec, id, &request).await
    }
}

/// A store that refused a write (or a read): the call fails, naming the database (the
/// store's errors do).
fn store_failed(e: crate::state::StateError) -> wit::DeployError {
    wit::DeployError::Failed(format!("cannot record the deployment: {e}"))
}

fn revision_to_wit(r: RevisionRow) -> wit::Revision {
    wit::Revision {
        deployment_id: r.deployment_id,
        label: r.label,
        digest: r.digest,
        archive: r.archive,
        installed: r.installed,
        run_id: r.run_id,
    }
}

fn revision_from_wit(r: wit::Revision) -> RevisionRow {
    RevisionRow {
        deployment_id: r.deployment_id,
        label: r.label,
        digest: r.digest,
        archive: r.archive,
        installed: r.installed,
        run_id: r.run_id,
    }
}

fn record_to_wit(row: TargetRecordRow) -> wit::TargetRecord {
    wit::TargetRecord {
        current: row.current.map(revision_to_wit),
        last_good: row.last_good.map(revision_to_wit),
        state: match row.state {
            HostState::Fresh => wit::HostState::Fresh,
            HostState::Installing => wit::HostState::Installing,
            HostState::Healthy => wit::HostState::Healthy,
            HostState::Failed => wit::HostState::Failed,
        },
    }
}

fn record_from_wit(
    application: &str,
    target: &str,
    r: wit::TargetRecord,
    at: jiff::Timestamp,
) -> TargetRecordRow {
    TargetRecordRow {
        application: application.to_string(),
        target: target.to_string(),
        state: match r.state {
            wit::HostState::Fresh => HostState::Fresh,
            wit::HostState::Installing => HostState::Installing,
            wit::HostState::Healthy => HostState::Healthy,
            wit::HostState::Failed => HostState::Failed,
        },
        current: r.current.map(revision_from_wit),
        last_good: r.last_good.map(revision_from_wit),
        updated_at: at,
    }
}

fn no_grant() -> wit::DeployError {
    wit::DeployError::Denied(
        "the step has no `targets` grant; add the target groups it may deploy to under its grants `targets`".into(),
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
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        d.begin(deployment).await
    }

    async fn finish(
        &mut self,
        deployment_id: String,
        end: wit::DeploymentEnd,
        reason: String,
    ) -> Result<(), wit::DeployError> {
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        d.finish(&deployment_id, end, &reason).await
    }

    async fn progress(
        &mut self,
        deployment_id: String,
        target: String,
        event: String,
        state: wit::EventState,
        detail: String,
    ) -> Result<(), wit::DeployError> {
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        d.progress(&deployment_id, &target, &event, state, &detail)
            .await
    }

    async fn read_record(
        &mut self,
        application: String,
        target: String,
    ) -> Result<wit::TargetRecord, wit::DeployError> {
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        d.read_record(&application, &target).await
    }

    async fn write_record(
        &mut self,
        application: String,
        target: String,
        update: wit::TargetRecord,
    ) -> Result<(), wit::DeployError> {
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        d.write_record(&application, &target, update).await
    }

    async fn bundle_digest(
        &mut self,
        source: wit::BundleSource,
    ) -> Result<String, wit::DeployError> {
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        d.bundle_digest(source).await
    }

    async fn download_bundle(
        &mut self,
        target: String,
        deployment_id: String,
        source: wit::BundleSource,
    ) -> Result<wit::StagedBundle, wit::DeployError> {
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        d.download_bundle(&target, &deployment_id, source).await
    }

    async fn install(
        &mut self,
        target: String,
        request: wit::InstallRequest,
    ) -> Result<Vec<String>, wit::DeployError> {
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        d.install(&target, request).await
    }

    async fn run_hook(
        &mut self,
        target: String,
        deployment_id: String,
        hook: wit::Hook,
    ) -> Result<wit::HookOutcome, wit::DeployError> {
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        d.run_hook(&target, &deployment_id, hook).await
    }

    async fn read_archive_file(
        &mut self,
        target: String,
        archive: String,
        path: String,
    ) -> Result<String, wit::DeployError> {
        let d = self.deploy.clone().ok_or_else(no_grant)?;
        d.read_archive_file(&target, &archive, &path).await
    }

    fn alarm(&mut self) -> Option<String> {
        self.deploy.as_ref().and_then(|d| d.grant.signals.alarm())
    }

    async fn bake(
        &mut self,
        deployment_id: String,
        request: wit::BakeRequest,
    ) -> Result<String, String> {
        let d = self.deploy.clone().ok_or_else(|| {
            "the step has no `targets` grant; add the target groups it may deploy to under its grants `targets`".to_string()
        })?;
        d.bake(&deployment_id, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventSink;

    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
        store: Arc<Store>,
        events: tokio::sync::mpsc::UnboundedReceiver<Event>,
        access: DeployAccess,
    }

    fn local(name: &str, group: &str, root: &Path, url: Option<&str>) -> TargetSpec {
        TargetSpec {
            name: name.into(),
            group: group.into(),
            kind: TargetKind::Local {
                folder: root.join("fleet").join(name),
            },
            url: url.map(str::to_string),
            vars: vec![("PORT".into(), "1".into())],
            pos: crate::config::SourcePos {
                file: root.join("sluice.toml"),
                line: 1,
                column: 1,
            },
        }
    }

    /// A step of run `r1` granted group `one-box` (box-1) of a pipeline declaring
    /// box-1, box-2 (zone-a), reading `bundle/`; `with_store` false is `--no-state`.
    fn fixture(with_store: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("bundle")).unwrap();
        std::fs::create_dir_all(root.join("other")).unwrap();
        let store = Arc::new(Store::open(&root.join("state.db")).unwrap());
        let at = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        store
            .create_run(
                &crate::state::NewRun {
                    run_id: "r1".into(),
                    pipeline: "p".into(),
                    pipeline_file: root.join("sluice.toml"),
                    pipeline_digest: "d".into(),
                    run_dir: root.join("runs/r1"),
                    trigger: crate::state::Trigger {
                        actor: "tester".into(),
                        ci: vec![],
                        git_commit: None,
                    },
                    started_at: at,
                },
                &crate::state::Holder::current(),
            )
            .unwrap();
        let (events, rx) = EventSink::channel(false);
        let declared = Arc::new(vec![
            local("box-1", "one-box", &root, Some("http://127.0.0.1:18081")),
            local("box-2", "zone-a", &root, None),
        ]);
        let clock = crate::clock::from_vars(None, None).unwrap();
        let setting = DeploySetting {
            targets: declared,
            recorder: with_store.then(|| DeployRecorder {
                store: store.clone(),
                clock,
                run_id: "r1".into(),
                stage: "prod".into(),
                step: "deploy".into(),
                events,
            }),
            signals: Arc::new(QuietStage),
            redactor: Arc::new(Redactor::new(["s3cr3t-hunter2-token"])),
        };
        let log = StepLog::in_memory(64 << 10, Arc::new(Redactor::new(std::iter::empty())));
        let files = Arc::new(FileAccess::resolve(&[root.join("bundle")], &[], &log).unwrap());
        let grants = Grants {
            targets: vec!["one-box".into()],
            ..Grants::default()
        };
        let grant = DeployGrant::resolve(
            &grants,
            &root,
            files,
            &SecretValues::default(),
            setting,
            &log,
        )
        .unwrap()
        .expect("a targets grant");
        let access = DeployAccess::new(
            Arc::new(grant),
            Instant::now() + std::time::Duration::from_secs(60),
            log,
        );
        Fixture {
            _dir: dir,
            root,
            store,
            events: rx,
            access,
        }
    }

    fn deployment(targets: &[&str]) -> wit::Deployment {
        wit::Deployment {
            application: "web".into(),
            deployment_group: "prod".into(),
            label: "1.2.0".into(),
            digest: "sha256:00".into(),
            kind: wit::DeploymentKind::Deploy,
            rollback_of: None,
            config: "OneAtATime".into(),
            targets: targets.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn denied(e: wit::DeployError) -> String {
        match e {
            wit::DeployError::Denied(m) => m,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_target_outside_the_grant_is_denied_naming_the_group_to_grant() {
        let f = fixture(true);
        assert_eq!(
            f.access
                .describe_targets()
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>(),
            ["box-1"]
        );
        let why = denied(f.access.read_record("web", "box-2").await.unwrap_err());
        assert!(
            why.contains("target `box-2` (group `zone-a`) is not granted"),
            "{why}"
        );
        assert!(why.contains("targets = [one-box]"), "{why}");
        let why = denied(
            f.access
                .begin(deployment(&["box-1", "box-2"]))
                .await
                .unwrap_err(),
        );
        assert!(why.contains("box-2"), "{why}");
        assert!(
            f.store.deployments("r1").unwrap().is_empty(),
            "nothing recorded"
        );
    }

    #[tokio::test]
    async fn an_undeclared_target_is_denied_naming_the_declared_ones() {
        let f = fixture(true);
        let why = denied(f.access.read_record("web", "box-9").await.unwrap_err());
        assert_eq!(
            why,
            "no target `box-9` is declared; the pipeline declares box-1, box-2"
        );
    }

    #[tokio::test]
    async fn a_bundle_outside_the_read_grant_is_refused() {
        let f = fixture(true);
        let id = f.access.begin(deployment(&["box-1"])).await.unwrap();
        let why = denied(
            f.access
                .download_bundle("box-1", &id, wit::BundleSource::LocalFolder("other".into()))
                .await
                .unwrap_err(),
        );
        assert!(
            why.contains(&format!(
                "bundle {} is outside",
                f.root.join("other").display()
            )),
            "{why}"
        );
        assert!(why.contains("add \"other\" to its grants `read`"), "{why}");
        // A link out of the grant leads out of it.
        std::os::unix::fs::symlink(f.root.join("other"), f.root.join("bundle/out")).unwrap();
        let why = denied(
            f.access
                .bundle_digest(wit::BundleSource::LocalFolder("bundle/out".into()))
                .await
                .unwrap_err(),
        );
        assert!(why.contains("outside the step's read grant"), "{why}");
    }

    #[tokio::test]
    async fn without_a_state_store_every_call_is_denied() {
        let f = fixture(false);
        for result in [
            f.access.begin(deployment(&["box-1"])).await.map(|_| ()),
            f.access.read_record("web", "box-1").await.map(|_| ()),
            f.access
                .bundle_digest(wit::BundleSource::LocalFolder("bundle".into()))
                .await
                .map(|_| ()),
        ] {
            assert_eq!(denied(result.unwrap_err()), NO_STATE);
        }
        let request = wit::BakeRequest {
            label: "after wave one-box".into(),
            duration_ms: 1,
            positive: 1,
            monitors: vec![],
            timeout_ms: None,
        };
        assert_eq!(
            f.access.bake("d-r1-1", request).await.unwrap_err(),
            NO_STATE
        );
    }

    #[tokio::test]
    async fn a_deployment_is_recorded_before_it_is_shown() {
        let mut f = fixture(true);
        let id = f.access.begin(deployment(&["box-1"])).await.unwrap();
        assert_eq!(id, "d-r1-1");
        let row = f.store.deployment(&id).unwrap().unwrap();
        assert_eq!(
            (row.stage.as_str(), row.step.as_str(), row.state.as_str()),
            ("prod", "deploy", "in-progress")
        );
        f.access
            .progress(
                &id,
                "box-1",
                "ValidateService",
                wit::EventState::Failed,
                "token s3cr3t-hunter2-token refused",
            )
            .await
            .unwrap();
        let events = f.store.deployment_events(&id).unwrap();
        assert_eq!(events.len(), 1);
        assert!(
            events[0].detail.starts_with("token "),
            "{}",
            events[0].detail
        );
        assert!(
            !events[0].detail.contains("hunter2"),
            "secrets are masked: {}",
            events[0].detail
        );
        f.access
            .finish(
                &id,
                wit::DeploymentEnd::Failed,
                "ValidateService failed on box-1",
            )
            .await
            .unwrap();
        let row = f.store.deployment(&id).unwrap().unwrap();
        assert_eq!(row.state, "failed");
        let mut shown = Vec::new();
        while let Ok(e) = f.events.try_recv() {
            if let Event::Deploy {
                target,
                lifecycle_event,
                state,
                ..
            } = e
            {
                shown.push(format!("{target}/{lifecycle_event}/{state}"));
            }
        }
        assert_eq!(
            shown,
            [
                "/Deployment/started",
                "box-1/ValidateService/failed",
                "/Deployment/failed"
            ]
        );
    }

    #[tokio::test]
    async fn another_steps_deployment_is_denied() {
        let f = fixture(true);
        let other = f
            .store
            .begin_deployment(
                &NewDeployment {
                    run_id: "r1".into(),
                    stage: "prod".into(),
                    step: "other".into(),
                    application: "web".into(),
                    deployment_group: "prod".into(),
                    label: "1".into(),
                    digest: "sha256:00".into(),
                    kind: "deploy".into(),
                    rollback_of: None,
                    config: "AllAtOnce".into(),
                    targets: vec!["box-1".into()],
                },
                jiff::Timestamp::from_second(1_800_000_000).unwrap(),
            )
            .unwrap();
        let why = denied(
            f.access
                .progress(&other, "box-1", "Install", wit::EventState::Started, "")
                .await
                .unwrap_err(),
        );
        assert!(
            why.contains("was not begun by step prod/deploy of run r1"),
            "{why}"
        );
    }

    #[tokio::test]
    async fn a_target_record_is_in_the_store_before_the_copy_on_the_target() {
        let f = fixture(true);
        let fresh = f.access.read_record("web", "box-1").await.unwrap();
        assert!(matches!(fresh.state, wit::HostState::Fresh) && fresh.current.is_none());
        let revision = wit::Revision {
            deployment_id: "d-r1-1".into(),
            label: "1.2.0".into(),
            digest: "sha256:00".into(),
            archive: "/var/lib/sluice-deploy/web/d-r1-1/deployment-archive".into(),
            installed: vec!["/srv/web/app".into()],
            run_id: "r1".into(),
        };
        // The copy on the target may fail (the transport says why); the store has it.
        let _ = f
            .access
            .write_record(
                "web",
                "box-1",
                wit::TargetRecord {
                    current: Some(revision.clone()),
                    last_good: Some(revision),
                    state: wit::HostState::Healthy,
                },
            )
            .await;
        let row = f.store.target_record("web", "box-1").unwrap();
        assert_eq!(row.state, HostState::Healthy);
        assert_eq!(row.last_good.unwrap().label, "1.2.0");
        let back = f.access.read_record("web", "box-1").await.unwrap();
        assert!(matches!(back.state, wit::HostState::Healthy));
        assert_eq!(back.current.unwrap().installed, ["/srv/web/app"]);
    }

    #[tokio::test]
    async fn a_local_target_gets_the_bundle_runs_its_hook_masked_and_keeps_a_record_copy() {
        let f = fixture(true);
        std::fs::create_dir_all(f.root.join("bundle/scripts")).unwrap();
        std::fs::write(
            f.root.join("bundle/scripts/validate.sh"),
            "echo \"validating on $SLUICE_TARGET with s3cr3t-hunter2-token\"\nexit 3\n",
        )
        .unwrap();
        let id = f.access.begin(deployment(&["box-1"])).await.unwrap();
        let staged = f
            .access
            .download_bundle(
                "box-1",
                &id,
                wit::BundleSource::LocalFolder("bundle".into()),
            )
            .await
            .unwrap();
        let digest = f
            .access
            .bundle_digest(wit::BundleSource::LocalFolder("bundle".into()))
            .await
            .unwrap();
        assert_eq!(staged.digest, digest);
        let script = f
            .access
            .read_archive_file("box-1", &staged.archive, "scripts/validate.sh")
            .await
            .unwrap();
        assert!(script.starts_with("echo"), "{script}");
        let outside = f
            .access
            .read_archive_file("box-1", &staged.archive, "../../record.json")
            .await
            .unwrap_err();
        assert!(
            matches!(&outside, wit::DeployError::Failed(m) if m.contains("not a relative path inside the archive")),
            "{outside:?}"
        );
        let box_1 = f.root.join("fleet/box-1");
        assert!(
            staged.archive.starts_with(&box_1.display().to_string()),
            "{}",
            staged.archive
        );
        let outcome = f
            .access
            .run_hook(
                "box-1",
                &id,
                wit::Hook {
                    event: "ValidateService".into(),
                    archive: staged.archive.clone(),
                    script: "scripts/validate.sh".into(),
                    env: vec![],
                    timeout_ms: 10_000,
                    runas: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(outcome.exit_code, Some(3));
        assert!(
            outcome.output_tail.contains("validating on box-1 with "),
            "{}",
            outcome.output_tail
        );
        assert!(
            !outcome.output_tail.contains("hunter2"),
            "{}",
            outcome.output_tail
        );
        f.access
            .write_record(
                "web",
                "box-1",
                wit::TargetRecord {
                    current: None,
                    last_good: None,
                    state: wit::HostState::Failed,
                },
            )
            .await
            .unwrap();
        let copy =
            std::fs::read_to_string(box_1.join("var/lib/sluice-deploy/web/record.json")).unwrap();
        assert!(copy.contains("\"state\": \"failed\""), "{copy}");
        assert_eq!(
            f.store.target_record("web", "box-1").unwrap().state,
            HostState::Failed
        );
    }

    #[test]
    fn target_urls_become_origin_grants() {
        let root = Path::new("/srv/app");
        let targets = [
            local("a", "g", root, Some("http://127.0.0.1:18081/health")),
            local("b", "g", root, Some("http://127.0.0.1:18081")),
            local("c", "g", root, Some("https://example.com")),
            local("d", "g", root, None),
        ];
        let shown: Vec<String> = url_origins(&targets)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["http://127.0.0.1:18081", "https://example.com:443"]);
    }
}
