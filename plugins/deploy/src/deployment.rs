//! One deployment, and its rollback: waves in order, batches within a wave by the
//! deployment configuration, and the in-place lifecycle of every target of a batch run
//! in lockstep (each event on every target of the batch before the next event, so a
//! batch goes down together and comes back together). Alarms are checked before each
//! batch and between lifecycle events; a bake runs after every wave but the last.
//! Everything goes through a [`Fleet`], never the import itself.

use std::time::{Duration, Instant};

use sluice_sdk::RunError;
use sluice_sdk::deploy::{
    BakeRequest, BundleSource, Deployment, DeploymentEnd, DeploymentKind, EventState, Hook,
    HostState, InstallRequest, Revision, Target, TargetRecord,
};

use crate::appspec::{self, AppSpec, EVENT_BUDGET_SECS};
use crate::config::HealthCheck;
use crate::fleet::Fleet;
use crate::schedule::{self, Plan, Rule, Standing};

/// Who deploys, and how: everything but the revision.
#[derive(Debug, Clone)]
pub struct Settings {
    pub application: String,
    pub deployment_group: String,
    /// DEPLOYMENT_GROUP_ID: stable for an application and group.
    pub deployment_group_id: String,
    pub run_id: String,
    pub stage: String,
    /// The step input's artifact, when there is one.
    pub artifact_version: Option<String>,
    pub artifact_digest: Option<String>,
    pub rule: Rule,
    /// Group names in wave order; `None`: the granted groups in the pipeline's order.
    pub waves: Option<Vec<String>>,
    pub bake: Option<BakeSettings>,
    pub health_check: Option<HealthCheck>,
    pub ignore_application_stop_failures: bool,
    pub force: bool,
    pub rollback: bool,
}

/// `bake-between-waves`, in the import's units.
#[derive(Debug, Clone)]
pub struct BakeSettings {
    pub duration_ms: u64,
    pub positive: u64,
    pub monitors: Vec<String>,
    pub timeout_ms: Option<u64>,
}

/// A revision to put on targets.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// What people call it (the artifact version, or the bundle's name).
    pub label: String,
    pub digest: String,
    pub source: BundleSource,
    pub appspec: AppSpec,
}

/// Why a deployment did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// A lifecycle event failed on a target (or could not run: fail closed).
    Target {
        target: String,
        event: String,
        detail: String,
    },
    /// An alarm of the stage fired.
    Alarm(String),
    /// A bake between waves failed.
    Bake { wave: String, why: String },
}

impl Failure {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Failure::Target {
                target,
                event,
                detail,
            } => format!("{event} failed on {target}: {detail}"),
            Failure::Alarm(why) => format!("alarm: {why}"),
            Failure::Bake { wave, why } => format!("bake after wave {wave} failed: {why}"),
        }
    }

    fn end(&self) -> DeploymentEnd {
        match self {
            Failure::Alarm(_) => DeploymentEnd::Stopped,
            _ => DeploymentEnd::Failed,
        }
    }
}

/// What a deployment (and its rollback, if one ran) came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub deployment_id: String,
    pub plan: Plan,
    pub waves: Vec<String>,
    pub deployed: Vec<String>,
    pub skipped: Vec<String>,
    /// Milliseconds from a target's first lifecycle event to its last.
    pub durations: Vec<(String, u64)>,
    pub failure: Option<Failure>,
    pub rollback: Option<RollbackOutcome>,
}

/// What a rollback came to.
#[derive(Debug, Clone)]
pub struct RollbackOutcome {
    pub deployment_id: String,
    /// Targets put back, with the label of the revision they run again (`None`: the
    /// target had no earlier good revision; its failed one was stopped).
    pub restored: Vec<(String, Option<String>)>,
    pub failure: Option<Failure>,
}

/// One target in a deployment.
struct Job {
    target: Target,
    /// Its record before the deployment.
    record: TargetRecord,
    /// `None` in a rollback of a target that never had a good revision.
    incoming: Option<Incoming>,
    ignore_stop_failures: bool,
}

/// A job under way.
struct Running {
    job: Job,
    /// The record as last written.
    record: TargetRecord,
    archive: Option<String>,
    started: Option<Instant>,
    touched: bool,
}

/// The in-place lifecycle, in CodeDeploy's order, plus the health check and the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    ApplicationStop,
    DownloadBundle,
    BeforeInstall,
    Install,
    AfterInstall,
    ApplicationStart,
    ValidateService,
    Health,
    End,
}

const STEPS: [Step; 9] = [
    Step::ApplicationStop,
    Step::DownloadBundle,
    Step::BeforeInstall,
    Step::Install,
    Step::AfterInstall,
    Step::ApplicationStart,
    Step::ValidateService,
    Step::Health,
    Step::End,
];

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::ApplicationStop => "ApplicationStop",
            Step::DownloadBundle => "DownloadBundle",
            Step::BeforeInstall => "BeforeInstall",
            Step::Install => "Install",
            Step::AfterInstall => "AfterInstall",
            Step::ApplicationStart => "ApplicationStart",
            Step::ValidateService => "ValidateService",
            Step::Health => "Health",
            Step::End => "End",
        }
    }
}

/// Deploy `incoming` to the granted targets of `settings`' waves, and roll back when it
/// fails (unless told not to). `Err` only when nothing could start (no targets, waves
/// that name no granted group, a minimum the fleet cannot meet, `begin` refused).
pub fn deploy(
    fleet: &mut dyn Fleet,
    settings: &Settings,
    incoming: Incoming,
) -> Result<Outcome, RunError> {
    let granted = fleet.targets();
    if granted.is_empty() {
        return Err(RunError::denied(
            "the step is granted no deploy targets: name the target groups it may deploy to under [stage.step.grants] targets",
        ));
    }
    let waves = waves(&granted, settings.waves.as_deref())?;
    let fleet_size: usize = waves.iter().map(|(_, targets)| targets.len()).sum();
    let plan = schedule::plan(settings.rule, fleet_size).map_err(RunError::invalid_config)?;

    let mut records = Vec::new();
    for (_, targets) in &waves {
        for target in targets {
            let record = fleet
                .read_record(&settings.application, &target.name)
                .map_err(RunError::from)?;
            records.push((target.name.clone(), record));
        }
    }
    let record_of = |name: &str| {
        records
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.clone())
            .expect("every target's record was read")
    };

    let id = fleet
        .begin(&Deployment {
            application: settings.application.clone(),
            deployment_group: settings.deployment_group.clone(),
            label: incoming.label.clone(),
            digest: incoming.digest.clone(),
            kind: DeploymentKind::Deploy,
            rollback_of: None,
            config: plan.describe(),
            targets: waves
                .iter()
                .flat_map(|(_, targets)| targets.iter().map(|t| t.name.clone()))
                .collect(),
        })
        .map_err(RunError::from)?;

    let mut outcome = Outcome {
        deployment_id: id.clone(),
        plan,
        waves: waves.iter().map(|(g, _)| g.clone()).collect(),
        deployed: Vec::new(),
        skipped: Vec::new(),
        durations: Vec::new(),
        failure: None,
        rollback: None,
    };
    // Every target the deployment touched or covered, with its latest record, in wave
    // order: what last-good moves on, or what a rollback puts back.
    let mut covered: Vec<(Target, TargetRecord, bool, String)> = Vec::new();

    'waves: for (index, (group, targets)) in waves.iter().enumerate() {
        let mut scheduled = Vec::new();
        for target in targets {
            let record = record_of(&target.name);
            let standing = schedule::standing(&record, &incoming.digest);
            scheduled.push(((target.clone(), record), standing));
        }
        let mut jobs = Vec::new();
        for ((target, record), standing) in schedule::order(scheduled) {
            if standing == Standing::CurrentRevision && !settings.force {
                note(
                    fleet,
                    &id,
                    &target.name,
                    "Skip",
                    EventState::Skipped,
                    &format!(
                        "already runs {} ({}), healthy; set `force = true` to deploy it again",
                        incoming.label,
                        short(&incoming.digest)
                    ),
                );
                outcome.skipped.push(target.name.clone());
                covered.push((target, record, false, group.clone()));
                continue;
            }
            jobs.push(Job {
                target,
                record,
                incoming: Some(incoming.clone()),
                ignore_stop_failures: settings.ignore_application_stop_failures,
            });
        }
        let mut pending = jobs.into_iter();
        loop {
            let batch: Vec<Job> = pending.by_ref().take(plan.batch_size).collect();
            if batch.is_empty() {
                break;
            }
            if let Some(why) = fleet.alarm() {
                outcome.failure = Some(Failure::Alarm(why));
                break 'waves;
            }
            let (finished, failure) = run_batch(fleet, settings, &id, batch, true);
            for run in finished {
                if run.touched {
                    if let Some(started) = run.started {
                        outcome.durations.push((
                            run.job.target.name.clone(),
                            started.elapsed().as_millis() as u64,
                        ));
                    }
                    if failure.is_none() {
                        outcome.deployed.push(run.job.target.name.clone());
                    }
                    covered.push((run.job.target, run.record, true, group.clone()));
                }
            }
            if let Some(failure) = failure {
                outcome.failure = Some(failure);
                break 'waves;
            }
        }
        let last = index + 1 == waves.len();
        if let (false, Some(bake)) = (last, &settings.bake) {
            if let Some(why) = fleet.alarm() {
                outcome.failure = Some(Failure::Alarm(why));
                break;
            }
            let request = BakeRequest {
                label: format!("after wave {group}"),
                duration_ms: bake.duration_ms,
                positive: bake.positive,
                monitors: bake.monitors.clone(),
                timeout_ms: bake.timeout_ms,
            };
            if let Err(why) = fleet.bake(&id, &request) {
                outcome.failure = Some(Failure::Bake {
                    wave: group.clone(),
                    why,
                });
                break;
            }
        }
    }

    let Some(failure) = outcome.failure.clone() else {
        // The whole deployment succeeded: last-good moves forward on every target it
        // covered, deployed or skipped.
        for (target, record, _, _) in &covered {
            if record.current.is_some() && record.last_good != record.current {
                let update = TargetRecord {
                    last_good: record.current.clone(),
                    ..record.clone()
                };
                if let Err(e) = fleet.write_record(&settings.application, &target.name, &update) {
                    sluice_sdk::log::warn(format!(
                        "target {}: recording {} as its last good revision failed: {}",
                        target.name,
                        incoming.label,
                        e.message()
                    ));
                }
            }
        }
        finish(
            fleet,
            &id,
            DeploymentEnd::Succeeded,
            &format!(
                "deployed {} to {} targets ({} skipped)",
                incoming.label,
                outcome.deployed.len(),
                outcome.skipped.len()
            ),
        );
        return Ok(outcome);
    };
    finish(fleet, &id, failure.end(), &failure.describe());
    // What a rollback puts back: the targets this deployment touched, and those it
    // skipped because an earlier deployment that never finished (the runner died) had
    // already put this revision there without it becoming their last good one.
    let touched: Vec<(Target, String)> = covered
        .into_iter()
        .filter(|(_, record, touched, _)| *touched || unconfirmed(record))
        .map(|(target, _, _, group)| (target, group))
        .collect();
    if settings.rollback && !touched.is_empty() {
        outcome.rollback = Some(roll_back(fleet, settings, &id, plan, &touched));
    }
    Ok(outcome)
}

/// Redeploy each touched target's last good revision from its archive on the target,
/// with the full lifecycle (ApplicationStop of the failed revision, its failures
/// ignored, as CodeDeploy's rollback does), in the same waves and batch sizes. A target
/// without a last good revision has its failed revision stopped and is recorded as
/// running nothing.
fn roll_back(
    fleet: &mut dyn Fleet,
    settings: &Settings,
    failed_id: &str,
    plan: Plan,
    touched: &[(Target, String)],
) -> RollbackOutcome {
    let mut jobs = Vec::new();
    let mut early_failure = None;
    for (target, group) in touched {
        let record = match fleet.read_record(&settings.application, &target.name) {
            Ok(record) => record,
            Err(e) => {
                early_failure.get_or_insert(Failure::Target {
                    target: target.name.clone(),
                    event: "Rollback".into(),
                    detail: format!("its record could not be read: {}", e.message()),
                });
                continue;
            }
        };
        let incoming = match &record.last_good {
            None => None,
            Some(good) => match archived_appspec(fleet, &target.name, &good.archive) {
                Ok(appspec) => Some(Incoming {
                    label: good.label.clone(),
                    digest: good.digest.clone(),
                    source: BundleSource::Archive(good.archive.clone()),
                    appspec,
                }),
                Err(why) => {
                    early_failure.get_or_insert(Failure::Target {
                        target: target.name.clone(),
                        event: "Rollback".into(),
                        detail: format!("the last good revision {}: {why}", good.label),
                    });
                    continue;
                }
            },
        };
        jobs.push((
            group.clone(),
            Job {
                target: target.clone(),
                record,
                incoming,
                ignore_stop_failures: true,
            },
        ));
    }
    let labels: Vec<&str> = jobs
        .iter()
        .filter_map(|(_, j)| j.incoming.as_ref().map(|i| i.label.as_str()))
        .collect();
    let digests: Vec<&str> = jobs
        .iter()
        .filter_map(|(_, j)| j.incoming.as_ref().map(|i| i.digest.as_str()))
        .collect();
    let same = |items: &[&str]| {
        items
            .first()
            .filter(|first| items.iter().all(|i| i == *first))
            .map(|s| s.to_string())
    };
    let begun = fleet.begin(&Deployment {
        application: settings.application.clone(),
        deployment_group: settings.deployment_group.clone(),
        label: same(&labels).unwrap_or_else(|| "last good".into()),
        digest: same(&digests).unwrap_or_default(),
        kind: DeploymentKind::Rollback,
        rollback_of: Some(failed_id.to_string()),
        config: plan.describe(),
        targets: touched.iter().map(|(t, _)| t.name.clone()).collect(),
    });
    let id = match begun {
        Ok(id) => id,
        Err(e) => {
            return RollbackOutcome {
                deployment_id: String::new(),
                restored: Vec::new(),
                failure: Some(Failure::Target {
                    target: "-".into(),
                    event: "Rollback".into(),
                    detail: format!("the rollback could not start: {}", e.message()),
                }),
            };
        }
    };
    let mut outcome = RollbackOutcome {
        deployment_id: id.clone(),
        restored: Vec::new(),
        failure: early_failure,
    };
    // Same waves, unhealthy first within each, batches of the deployment's size.
    let mut groups: Vec<String> = Vec::new();
    for (group, _) in &jobs {
        if !groups.contains(group) {
            groups.push(group.clone());
        }
    }
    let mut finished_runs = Vec::new();
    'waves: for group in &groups {
        let wave: Vec<(Job, Standing)> = jobs
            .iter()
            .filter(|(g, _)| g == group)
            .map(|(_, job)| {
                let standing = schedule::standing(&job.record, "");
                (clone_job(job), standing)
            })
            .collect();
        let mut pending = schedule::order(wave).into_iter().map(|(job, _)| job);
        loop {
            let batch: Vec<Job> = pending.by_ref().take(plan.batch_size).collect();
            if batch.is_empty() {
                break;
            }
            let (finished, failure) = run_batch(fleet, settings, &id, batch, false);
            finished_runs.extend(finished);
            if let Some(failure) = failure {
                outcome.failure.get_or_insert(failure);
                break 'waves;
            }
        }
    }
    if outcome.failure.is_none() {
        for run in &finished_runs {
            if run.record.current.is_some() {
                let update = TargetRecord {
                    last_good: run.record.current.clone(),
                    ..run.record.clone()
                };
                if let Err(e) =
                    fleet.write_record(&settings.application, &run.job.target.name, &update)
                {
                    sluice_sdk::log::warn(format!(
                        "target {}: recording its last good revision failed: {}",
                        run.job.target.name,
                        e.message()
                    ));
                }
            }
            outcome.restored.push((
                run.job.target.name.clone(),
                run.job.incoming.as_ref().map(|i| i.label.clone()),
            ));
        }
        finish(
            fleet,
            &id,
            DeploymentEnd::Succeeded,
            &if outcome.restored.len() == 1 {
                "rolled back 1 target".to_string()
            } else {
                format!("rolled back {} targets", outcome.restored.len())
            },
        );
    } else {
        let why = outcome
            .failure
            .as_ref()
            .map(Failure::describe)
            .unwrap_or_default();
        finish(
            fleet,
            &id,
            DeploymentEnd::Failed,
            &format!("rollback failed: {why}"),
        );
    }
    outcome
}

/// Whether a target runs a revision that never became its last good one.
fn unconfirmed(record: &TargetRecord) -> bool {
    match (&record.current, &record.last_good) {
        (Some(current), Some(good)) => current.digest != good.digest,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn clone_job(job: &Job) -> Job {
    Job {
        target: job.target.clone(),
        record: job.record.clone(),
        incoming: job.incoming.clone(),
        ignore_stop_failures: job.ignore_stop_failures,
    }
}

/// Run the lifecycle on every target of a batch in lockstep. Stops at the first
/// failure (the other targets of the batch stop at the same event boundary, touched)
/// or, when `watch_alarms`, at an alarm.
fn run_batch(
    fleet: &mut dyn Fleet,
    settings: &Settings,
    id: &str,
    batch: Vec<Job>,
    watch_alarms: bool,
) -> (Vec<Running>, Option<Failure>) {
    let mut runs: Vec<Running> = batch
        .into_iter()
        .map(|job| Running {
            record: job.record.clone(),
            job,
            archive: None,
            started: None,
            touched: false,
        })
        .collect();
    for step in STEPS {
        if watch_alarms && let Some(why) = fleet.alarm() {
            return (runs, Some(Failure::Alarm(why)));
        }
        for run in &mut runs {
            if let Err(detail) = run_step(fleet, settings, id, run, step) {
                let failed = TargetRecord {
                    state: HostState::Failed,
                    ..run.record.clone()
                };
                if fleet
                    .write_record(&settings.application, &run.job.target.name, &failed)
                    .is_ok()
                {
                    run.record = failed;
                }
                let failure = Failure::Target {
                    target: run.job.target.name.clone(),
                    event: step.name().to_string(),
                    detail,
                };
                return (runs, Some(failure));
            }
        }
    }
    (runs, None)
}

/// One lifecycle step of one target; `Err` with what people read.
fn run_step(
    fleet: &mut dyn Fleet,
    settings: &Settings,
    id: &str,
    run: &mut Running,
    step: Step,
) -> Result<(), String> {
    let target = run.job.target.name.clone();
    match step {
        Step::ApplicationStop => {
            run.started = Some(Instant::now());
            run.touched = true;
            application_stop(fleet, settings, id, run)
        }
        Step::DownloadBundle => {
            let Some(incoming) = run.job.incoming.clone() else {
                return Ok(());
            };
            // Until Install runs, `installed` still lists the files on the target:
            // what the next Install must remove, also after a crash.
            let previous_files = run
                .record
                .current
                .as_ref()
                .map(|c| c.installed.clone())
                .unwrap_or_default();
            let installing = TargetRecord {
                current: Some(Revision {
                    deployment_id: id.to_string(),
                    label: incoming.label.clone(),
                    digest: incoming.digest.clone(),
                    archive: String::new(),
                    installed: previous_files,
                    run_id: settings.run_id.clone(),
                }),
                last_good: run.record.last_good.clone(),
                state: HostState::Installing,
            };
            fleet
                .write_record(&settings.application, &target, &installing)
                .map_err(|e| format!("its record could not be written: {}", e.message()))?;
            run.record = installing;
            note(
                fleet,
                id,
                &target,
                "DownloadBundle",
                EventState::Started,
                "",
            );
            match fleet.download_bundle(&target, id, &incoming.source) {
                Ok(staged) => {
                    note(
                        fleet,
                        id,
                        &target,
                        "DownloadBundle",
                        EventState::Succeeded,
                        &format!("staged {} at {}", short(&staged.digest), staged.archive),
                    );
                    run.archive = Some(staged.archive);
                    Ok(())
                }
                Err(e) => {
                    let why = format!("could not stage the bundle: {}", e.message());
                    note(
                        fleet,
                        id,
                        &target,
                        "DownloadBundle",
                        EventState::Failed,
                        &why,
                    );
                    Err(why)
                }
            }
        }
        Step::Install => {
            let (Some(incoming), Some(archive)) = (run.job.incoming.clone(), run.archive.clone())
            else {
                return Ok(());
            };
            let cleanup = run
                .record
                .current
                .as_ref()
                .map(|c| c.installed.clone())
                .unwrap_or_default();
            note(fleet, id, &target, "Install", EventState::Started, "");
            let request = InstallRequest {
                archive: archive.clone(),
                files: incoming.appspec.files.clone(),
                exists: incoming.appspec.exists,
                cleanup,
                permissions: incoming.appspec.permissions.clone(),
            };
            let installed = match fleet.install(&target, &request) {
                Ok(installed) => installed,
                Err(e) => {
                    let why = format!("could not install: {}", e.message());
                    note(fleet, id, &target, "Install", EventState::Failed, &why);
                    return Err(why);
                }
            };
            let mut record = run.record.clone();
            if let Some(current) = record.current.as_mut() {
                current.archive = archive;
                current.installed = installed.clone();
            }
            fleet
                .write_record(&settings.application, &target, &record)
                .map_err(|e| format!("its record could not be written: {}", e.message()))?;
            run.record = record;
            note(
                fleet,
                id,
                &target,
                "Install",
                EventState::Succeeded,
                &format!("{} files", installed.len()),
            );
            Ok(())
        }
        Step::BeforeInstall
        | Step::AfterInstall
        | Step::ApplicationStart
        | Step::ValidateService => {
            let (Some(incoming), Some(archive)) = (run.job.incoming.clone(), run.archive.clone())
            else {
                return Ok(());
            };
            let scripts = incoming.appspec.hooks(step.name()).to_vec();
            run_hooks(
                fleet,
                settings,
                id,
                &run.job.target,
                step.name(),
                &archive,
                &scripts,
                &incoming.label,
            )
        }
        Step::Health => {
            if run.job.incoming.is_none() {
                return Ok(());
            }
            let Some(check) = &settings.health_check else {
                return Ok(());
            };
            health_check(fleet, id, &run.job.target, check)
        }
        Step::End => {
            let record = match &run.job.incoming {
                Some(_) => TargetRecord {
                    state: HostState::Healthy,
                    ..run.record.clone()
                },
                // A rollback of a target that never had a good revision: it runs
                // nothing now.
                None => TargetRecord {
                    current: None,
                    last_good: None,
                    state: HostState::Fresh,
                },
            };
            fleet
                .write_record(&settings.application, &target, &record)
                .map_err(|e| format!("its record could not be written: {}", e.message()))?;
            if run.job.incoming.is_none() {
                note(
                    fleet,
                    id,
                    &target,
                    "End",
                    EventState::Succeeded,
                    "rolled back to nothing: no earlier revision succeeded on this target",
                );
            }
            run.record = record;
            Ok(())
        }
    }
}

/// ApplicationStop: the hooks of the revision the target runs now (its record's
/// current revision), from that revision's archive. Skipped on a fresh target.
fn application_stop(
    fleet: &mut dyn Fleet,
    settings: &Settings,
    id: &str,
    run: &mut Running,
) -> Result<(), String> {
    let target = run.job.target.clone();
    let previous = run
        .job
        .record
        .current
        .clone()
        .filter(|c| !c.archive.is_empty());
    let Some(previous) = previous else {
        note(
            fleet,
            id,
            &target.name,
            "ApplicationStop",
            EventState::Skipped,
            "no earlier revision on this target",
        );
        return Ok(());
    };
    let ignore = run.job.ignore_stop_failures;
    let result = archived_appspec(fleet, &target.name, &previous.archive)
        .map_err(|why| format!("the AppSpec of {}: {why}", previous.label))
        .and_then(|appspec| {
            run_hooks(
                fleet,
                settings,
                id,
                &target,
                "ApplicationStop",
                &previous.archive,
                appspec.hooks("ApplicationStop"),
                &previous.label,
            )
        });
    match result {
        Err(why) if ignore => {
            note(
                fleet,
                id,
                &target.name,
                "ApplicationStop",
                EventState::Failed,
                &format!("{why} (ignored: ignore-application-stop-failures)"),
            );
            Ok(())
        }
        other => other,
    }
}

/// The AppSpec of an archive on a target.
fn archived_appspec(fleet: &mut dyn Fleet, target: &str, archive: &str) -> Result<AppSpec, String> {
    let text = fleet
        .read_archive_file(target, archive, "appspec.yml")
        .map_err(|e| format!("cannot read appspec.yml in {archive}: {}", e.message()))?;
    appspec::parse(&format!("{target}:{archive}/appspec.yml"), &text, &|_| true)
        .map_err(|e| e.to_string())
}

/// Run an event's scripts in order, within the event's budget, and record the event.
/// A script that could not run, timed out or failed fails the event (fail closed).
#[allow(clippy::too_many_arguments)]
fn run_hooks(
    fleet: &mut dyn Fleet,
    settings: &Settings,
    id: &str,
    target: &Target,
    event: &str,
    archive: &str,
    scripts: &[appspec::HookScript],
    revision_label: &str,
) -> Result<(), String> {
    if scripts.is_empty() {
        note(
            fleet,
            id,
            &target.name,
            event,
            EventState::Skipped,
            "no hooks",
        );
        return Ok(());
    }
    let listing: Vec<&str> = scripts.iter().map(|s| s.location.as_str()).collect();
    note(
        fleet,
        id,
        &target.name,
        event,
        EventState::Started,
        &listing.join(", "),
    );
    let mut budget_ms = EVENT_BUDGET_SECS * 1000;
    let mut done = Vec::new();
    for script in scripts {
        let timeout_ms = script
            .timeout
            .map_or(budget_ms, |s| s * 1000)
            .min(budget_ms)
            .max(1);
        let hook = Hook {
            event: event.to_string(),
            archive: archive.to_string(),
            script: script.location.clone(),
            env: hook_env(settings, id, event, revision_label),
            timeout_ms,
            runas: script.runas.clone(),
        };
        let failed = |why: String| -> String { why };
        let outcome = match fleet.run_hook(&target.name, id, &hook) {
            Ok(outcome) => outcome,
            Err(e) => {
                let why = failed(format!(
                    "{} could not run: {}",
                    script.location,
                    e.message()
                ));
                note(fleet, id, &target.name, event, EventState::Failed, &why);
                return Err(why);
            }
        };
        budget_ms = budget_ms.saturating_sub(outcome.duration_ms);
        if !outcome.succeeded() {
            let tail = outcome.output_tail.trim();
            let why = if tail.is_empty() {
                format!("{} ({})", script.location, outcome.ending())
            } else {
                format!("{} ({}): {tail}", script.location, outcome.ending())
            };
            note(fleet, id, &target.name, event, EventState::Failed, &why);
            return Err(why);
        }
        done.push(format!(
            "{} exit 0 ({} ms)",
            script.location, outcome.duration_ms
        ));
    }
    note(
        fleet,
        id,
        &target.name,
        event,
        EventState::Succeeded,
        &done.join(", "),
    );
    Ok(())
}

/// CodeDeploy's hook variables, then Sluice's own.
pub fn hook_env(
    settings: &Settings,
    deployment_id: &str,
    event: &str,
    revision_label: &str,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("LIFECYCLE_EVENT".to_string(), event.to_string()),
        ("DEPLOYMENT_ID".to_string(), deployment_id.to_string()),
        ("APPLICATION_NAME".to_string(), settings.application.clone()),
        (
            "DEPLOYMENT_GROUP_NAME".to_string(),
            settings.deployment_group.clone(),
        ),
        (
            "DEPLOYMENT_GROUP_ID".to_string(),
            settings.deployment_group_id.clone(),
        ),
        ("SLUICE_RUN_ID".to_string(), settings.run_id.clone()),
        ("SLUICE_STAGE".to_string(), settings.stage.clone()),
        ("SLUICE_REVISION".to_string(), revision_label.to_string()),
    ];
    if let Some(version) = &settings.artifact_version {
        env.push(("SLUICE_ARTIFACT_VERSION".to_string(), version.clone()));
    }
    if let Some(digest) = &settings.artifact_digest {
        env.push(("SLUICE_ARTIFACT_DIGEST".to_string(), digest.clone()));
    }
    env
}

/// GET `<url><path>` until it answers with the expected status, `attempts` times at
/// most. A target without a `url` cannot be checked: that fails it (fail closed).
fn health_check(
    fleet: &mut dyn Fleet,
    id: &str,
    target: &Target,
    check: &HealthCheck,
) -> Result<(), String> {
    let Some(base) = &target.url else {
        let why = "a health check is configured but the target declares no `url`".to_string();
        note(fleet, id, &target.name, "Health", EventState::Failed, &why);
        return Err(why);
    };
    let url = format!("{}{}", base.trim_end_matches('/'), check.path);
    note(fleet, id, &target.name, "Health", EventState::Started, &url);
    let mut last = String::new();
    for attempt in 1..=check.attempts.max(1) {
        if attempt > 1 {
            fleet.pause(Duration::from(check.interval));
        }
        match fleet.http_status(&url, Duration::from(check.timeout)) {
            Ok(status) if status == check.expect_status => {
                note(
                    fleet,
                    id,
                    &target.name,
                    "Health",
                    EventState::Succeeded,
                    &format!("GET {url}: {status} (attempt {attempt})"),
                );
                return Ok(());
            }
            Ok(status) => last = format!("{status}, expected {}", check.expect_status),
            Err(why) => last = why,
        }
    }
    let why = format!("GET {url}: {last} after {} attempts", check.attempts.max(1));
    note(fleet, id, &target.name, "Health", EventState::Failed, &why);
    Err(why)
}

/// The waves: `(group, its granted targets in the pipeline's order)`.
fn waves(
    granted: &[Target],
    named: Option<&[String]>,
) -> Result<Vec<(String, Vec<Target>)>, RunError> {
    let mut groups: Vec<String> = Vec::new();
    for target in granted {
        if !groups.contains(&target.group) {
            groups.push(target.group.clone());
        }
    }
    let order: Vec<String> = match named {
        None => groups.clone(),
        Some(named) => {
            for (i, wave) in named.iter().enumerate() {
                if !groups.contains(wave) {
                    return Err(RunError::invalid_config(format!(
                        "waves[{i}] = `{wave}`: the step is granted no target in this group (granted groups: {}); add it to [stage.step.grants] targets",
                        groups.join(", ")
                    )));
                }
                if named[..i].contains(wave) {
                    return Err(RunError::invalid_config(format!(
                        "waves[{i}] = `{wave}`: the group is already a wave"
                    )));
                }
            }
            if named.is_empty() {
                return Err(RunError::invalid_config(
                    "waves is empty: name at least one target group",
                ));
            }
            named.to_vec()
        }
    };
    Ok(order
        .into_iter()
        .map(|group| {
            let targets = granted
                .iter()
                .filter(|t| t.group == group)
                .cloned()
                .collect();
            (group, targets)
        })
        .collect())
}

/// Record a lifecycle step; a recording that fails is logged, not fatal.
fn note(
    fleet: &mut dyn Fleet,
    id: &str,
    target: &str,
    event: &str,
    state: EventState,
    detail: &str,
) {
    if let Err(e) = fleet.progress(id, target, event, state, detail) {
        sluice_sdk::log::warn(format!(
            "deployment {id}: recording {event} of {target} failed: {}",
            e.message()
        ));
    }
}

fn finish(fleet: &mut dyn Fleet, id: &str, end: DeploymentEnd, reason: &str) {
    if let Err(e) = fleet.finish(id, end, reason) {
        sluice_sdk::log::warn(format!(
            "deployment {id}: recording its end failed: {}",
            e.message()
        ));
    }
}

/// `sha256:0123456789ab` of a long digest.
pub fn short(digest: &str) -> &str {
    let end = digest
        .char_indices()
        .nth("sha256:".len() + 12)
        .map_or(digest.len(), |(i, _)| i);
    &digest[..end]
}
