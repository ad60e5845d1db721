//! Running a validated pipeline: stages in order, the steps of a stage as a DAG of
//! `needs` with bounded parallelism, retries with backoff, `allow-failure`, and a
//! record of every step (its log, its report, its artifacts' digests) in the run's
//! folder as soon as the step ends.
//!
//! A step failing never stops its independent siblings; the steps that need it are
//! skipped, and the stages after a failed stage do not run.
//!
//! A durable run ([`durable`]) also records every transition in the state store before
//! it is shown: the run, each stage's queue, gate evaluations, claim and exit, each step
//! attempt and each step's final record. A stage is entered only when every gate of it
//! allows, evaluated together at one instant, and when no other run holds it. A resumed
//! run takes the finished steps back from the record and runs only the others.

mod bake;
mod deploy_signals;
pub mod durable;
pub mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::capabilities::StepSandbox;
use crate::capabilities::logs::{Source, StepLog};
use crate::config::{Pipeline, PluginRef, Stage, Step};
use crate::events::{Event, EventSink, StagePlan, Status};
use crate::folders::OwnedDir;
use crate::host::bindings::types;
use crate::host::plugin::LoadedPlugin;
use crate::host::step::{AttemptLimits, StepFailure, run_attempt};
use crate::sandbox::Sandbox;
use crate::secrets::SecretValues;
use crate::secrets::redact::Redactor;

/// How to run.
pub struct RunOptions {
    /// Steps running at once, at most.
    pub jobs: usize,
    /// The run's id (see [`new_run_id`]) and its folder, already created.
    pub run_id: String,
    pub run_dir: OwnedDir,
    /// Cap of each step's log, in bytes.
    pub log_limit: u64,
    pub events: EventSink,
    /// Isolation of the steps' native programs.
    pub sandbox: Arc<Sandbox>,
    /// The values of the secrets steps are granted (read when the run started).
    pub secrets: Arc<SecretValues>,
    /// Record the run in the state store (and pass gates); `None` runs it as a plain
    /// process, recorded only in its folder.
    pub durable: Option<durable::DurableOptions>,
}

/// How a run ended.
#[derive(Debug)]
pub enum RunEnd {
    /// Every stage ran, or one failed or was denied; `run.json` is written.
    Finished(Box<RunResult>),
    /// It stopped before a stage and is recorded so (`waiting`, `superseded`).
    Stopped(durable::Stopped),
}

/// Largest file a step may report as an artifact.
pub const MAX_ARTIFACT_SIZE: u64 = 4 << 30;

/// A file a step produced, as the host recorded it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArtifactRecord {
    pub path: String,
    pub media_type: String,
    pub name: Option<String>,
    pub version: Option<String>,
    pub digest: String,
    pub size: u64,
}

/// Everything known about one step after the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    pub stage: String,
    pub step: String,
    pub uses: String,
    pub plugin_digest: Option<String>,
    /// Name and version the plugin gave in `describe()`.
    pub plugin_name: Option<String>,
    pub plugin_version: Option<String>,
    pub status: Status,
    pub summary: String,
    pub attempts: u32,
    pub duration_ms: u128,
    /// The report of the last attempt, when the plugin returned one.
    pub report: Option<types::Report>,
    pub artifacts: Vec<ArtifactRecord>,
    pub log: Option<String>,
    #[serde(skip)]
    pub log_tail: Vec<String>,
    /// Why the last attempt returned no report, as classified (a `run-error` of the
    /// plugin, a trap, a timeout...); `sluice plugin run|test|check` tell these apart.
    #[serde(skip)]
    pub failure: Option<StepFailure>,
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub run_id: String,
    pub pipeline: String,
    /// When the run started, RFC 3339 UTC.
    pub started_at: String,
    /// The pipeline's folder.
    pub workdir: PathBuf,
    /// The artifact under test, when a step reported a deliverable with a version.
    pub artifact: Option<types::Artifact>,
    pub status: Status,
    pub reason: Option<String>,
    pub run_dir: PathBuf,
    pub duration_ms: u128,
    pub steps: Vec<StepRecord>,
}

/// A new run id: UTC time to the millisecond plus a random suffix, e.g.
/// `20261122T153700.042Z-3f9a1c`. Ids sort in the order the runs started, also when
/// two start within one second.
pub fn new_run_id() -> String {
    let now = SystemTime::now();
    let stamp = humantime::format_rfc3339_millis(now)
        .to_string()
        .replace(['-', ':'], "");
    let nanos = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut h = Sha256::new();
    h.update(nanos.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    format!("{stamp}-{}", &hex::encode(h.finalize())[..6])
}

/// Run `pipeline`, whose plugins are all in `plugins`.
pub async fn run(
    pipeline: &Pipeline,
    plugins: &HashMap<PluginRef, Arc<LoadedPlugin>>,
    opts: RunOptions,
) -> std::io::Result<RunEnd> {
    let started = Instant::now();
    let mut started_at = SystemTime::now();
    let run_id = opts.run_id.clone();
    let run_dir = opts.run_dir.path().to_path_buf();
    let mut gates = HashMap::new();
    let mut no_wait = false;
    let mut restored = None;
    let mut monitors = Vec::new();
    let journal = match opts.durable {
        None => None,
        Some(d) => {
            monitors = d.monitors;
            let journal = Arc::new(durable::Journal::new(
                d.store,
                &run_id,
                &pipeline.name,
                d.clock,
                d.holder.clone(),
            ));
            gates = d.gates;
            no_wait = d.no_wait;
            match d.new_run {
                Some(new_run) => {
                    journal.write(|s| s.create_run(&new_run, &d.holder));
                }
                None => {
                    let at = journal.now();
                    journal.write(|s| {
                        s.set_run_state(&run_id, crate::state::RunState::Running, None, at)
                    });
                    if let Some(row) = journal.write(|s| s.run(&run_id)) {
                        started_at = SystemTime::from(row.started_at);
                    }
                    restored = durable::Restored::load(&journal);
                }
            }
            if let Some(e) = journal.failure() {
                return Err(std::io::Error::other(e));
            }
            Some(journal)
        }
    };
    opts.events.send(Event::RunStarted {
        run_id: run_id.clone(),
        pipeline: pipeline.name.clone(),
        run_dir: run_dir.display().to_string(),
        stages: pipeline
            .stages
            .iter()
            .map(|s| StagePlan {
                name: s.name.clone(),
                steps: s.steps.iter().map(|s| s.id.clone()).collect(),
            })
            .collect(),
    });
    let ctx = Arc::new(RunContext {
        run_id: run_id.clone(),
        pipeline: pipeline.name.clone(),
        workdir: pipeline.dir.clone(),
        run_dir: opts.run_dir,
        sandbox: opts.sandbox,
        redactor: Arc::new(opts.secrets.redactor()),
        secrets: opts.secrets,
        allow_unconfined_exec: pipeline.allow_unconfined_exec,
        log_limit: opts.log_limit,
        events: opts.events.clone(),
        outputs: Mutex::new(Vec::new()),
        plugins_used: Mutex::new(Vec::new()),
        artifact: Mutex::new(None),
        journal: journal.clone(),
        targets: Arc::new(pipeline.targets.clone()),
        monitors: Arc::new(pipeline.monitors.clone()),
        attempt_base: restored
            .as_ref()
            .map(|r| r.attempts.clone())
            .unwrap_or_default(),
    });
    // The pipeline's monitors check for as long as the run is alive.
    let mut watchers = journal.as_ref().map(|j| {
        watch::start(
            &monitors,
            watch::WatchContext {
                store: j.store().clone(),
                clock: j.clock().clone(),
                run_id: run_id.clone(),
                workdir: pipeline.dir.clone(),
                secrets: ctx.secrets.clone(),
                events: ctx.events.clone(),
            },
        )
    });
    if let Some(w) = watchers.as_mut() {
        w.first_round().await;
    }
    // A resumed run's outputs, plugins and artifact come back from its finished steps,
    // in pipeline order.
    if let Some(restored) = &restored {
        for stage in &pipeline.stages {
            for step in &stage.steps {
                if let Some(rec) = restored.steps.get(&(stage.name.clone(), step.id.clone())) {
                    ctx.take_back(rec);
                }
            }
        }
    }
    // Steps that may start programs get prepared sandbox holders, made ahead.
    let native_steps = pipeline
        .stages
        .iter()
        .flat_map(|s| &s.steps)
        .filter(|s| !s.grants.exec.is_empty())
        .count();
    if native_steps > 0 {
        ctx.sandbox
            .keep_ready(native_steps.min(opts.jobs).clamp(1, 4));
    }
    let semaphore = Arc::new(Semaphore::new(opts.jobs.max(1)));
    let mut records = Vec::new();
    let mut failed_stage: Option<String> = None;
    let mut denied: Option<String> = None;
    // Why a stage's bake failed, when one did.
    let mut bake_failed: Option<String> = None;
    // Why an alarm stopped a stage, when one did.
    let mut alarm_stopped: Option<String> = None;
    let no_restored = HashMap::new();
    for stage in &pipeline.stages {
        if let Some(failed) = &failed_stage {
            let why = if denied.is_some() {
                format!("not run: the gates of stage `{failed}` denied the run")
            } else {
                format!("not run: stage `{failed}` failed")
            };
            for step in &stage.steps {
                records.push(skipped(&ctx, stage, step, why.clone()));
            }
            continue;
        }
        let stage_restored: HashMap<String, StepRecord> = restored
            .as_ref()
            .map(|r| {
                r.steps
                    .iter()
                    .filter(|((s, _), _)| s == &stage.name)
                    .map(|((_, step), rec)| (step.clone(), rec.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(journal) = &journal {
            let stage_gates = gates.get(&stage.name).map_or(&[][..], Vec::as_slice);
            let done_before = restored.as_ref().is_some_and(|r| {
                r.stage_done(&stage.name)
                    && stage
                        .steps
                        .iter()
                        .all(|s| stage_restored.contains_key(&s.id))
            });
            if !done_before {
                let entry = durable::enter_stage(
                    journal,
                    stage,
                    stage_gates,
                    restored.as_ref(),
                    no_wait,
                    &ctx.events,
                )
                .await;
                match entry {
                    None => {
                        return Err(std::io::Error::other(journal.failure().unwrap_or_default()));
                    }
                    Some(durable::Entry::Enter) => {}
                    Some(durable::Entry::Stop(stopped)) => {
                        let (state, reason) = match &stopped {
                            durable::Stopped::Waiting { reason, .. } => ("waiting", reason.clone()),
                            durable::Stopped::Superseded { stage, by } => (
                                "superseded",
                                format!("run {by} took its place in the queue of stage `{stage}`"),
                            ),
                        };
                        ctx.events.send(Event::RunStopped {
                            run_id: run_id.clone(),
                            state: state.to_string(),
                            reason,
                        });
                        return Ok(RunEnd::Stopped(stopped));
                    }
                    Some(durable::Entry::Denied(reason)) => {
                        let at = journal.now();
                        journal.write(|s| s.exit_stage(&run_id, &stage.name, "denied", at));
                        for step in &stage.steps {
                            records.push(skipped(
                                &ctx,
                                stage,
                                step,
                                "not run: the stage's gates denied the run".into(),
                            ));
                        }
                        failed_stage = Some(stage.name.clone());
                        denied = Some(reason);
                        continue;
                    }
                }
            }
        }
        let stage_started = Instant::now();
        ctx.events.send(Event::StageStarted {
            stage: stage.name.clone(),
        });
        // While the stage runs (and while it bakes), its alarms are watched: one that
        // fires stops it.
        let stage_gates = gates.get(&stage.name).map_or(&[][..], Vec::as_slice);
        let watch_alarms = || async {
            match &journal {
                Some(j) => {
                    let watching =
                        watch::watching_gates(j.store(), &run_id, &stage.name, stage_gates);
                    watch::until_alarm(
                        watching,
                        &pipeline.name,
                        &run_id,
                        &stage.name,
                        j.clock().as_ref(),
                    )
                    .await
                }
                None => std::future::pending().await,
            }
        };
        let alarm = watch_alarms();
        let (stage_records, alarm_stop) = run_stage(
            &ctx,
            stage,
            plugins,
            &semaphore,
            if stage_restored.is_empty() {
                &no_restored
            } else {
                &stage_restored
            },
            alarm,
        )
        .await;
        let mut status =
            if alarm_stop.is_some() || stage_records.iter().any(|r| r.status == Status::Failed) {
                Status::Failed
            } else if stage_records.iter().any(|r| r.status == Status::Warned) {
                Status::Warned
            } else {
                Status::Passed
            };
        // A stage that bakes keeps the run until its bake ends (executor::bake).
        if status != Status::Failed
            && let Some(spec) = &stage.bake
        {
            let alarm = watch_alarms();
            let baked = bake::run_bake(
                journal.as_deref(),
                stage,
                spec,
                shortest_interval(&pipeline.monitors, &spec.monitors),
                no_wait,
                &ctx.events,
                alarm,
            )
            .await;
            match baked {
                Err(e) => return Err(e),
                Ok(bake::BakeEnd::Passed) => {}
                Ok(bake::BakeEnd::Failed(reason)) => {
                    status = Status::Failed;
                    bake_failed = Some(reason);
                }
                Ok(bake::BakeEnd::Stop(stopped)) => {
                    ctx.events.send(Event::RunStopped {
                        run_id: run_id.clone(),
                        state: "waiting".to_string(),
                        reason: match &stopped {
                            durable::Stopped::Waiting { reason, .. } => reason.clone(),
                            durable::Stopped::Superseded { by, .. } => {
                                format!("superseded by run {by}")
                            }
                        },
                    });
                    return Ok(RunEnd::Stopped(stopped));
                }
            }
        }
        if let Some(journal) = &journal {
            let at = journal.now();
            journal.write(|s| s.exit_stage(&run_id, &stage.name, status.as_str(), at));
            if let Some(e) = journal.failure() {
                return Err(std::io::Error::other(e));
            }
        }
        ctx.events.send(Event::StageFinished {
            stage: stage.name.clone(),
            status,
            duration: stage_started.elapsed(),
        });
        if status == Status::Failed {
            failed_stage = Some(stage.name.clone());
            alarm_stopped = alarm_stop.map(|a| format!("stage `{}` stopped: {a}", stage.name));
        }
        records.extend(stage_records);
    }
    let status = if failed_stage.is_some() {
        Status::Failed
    } else if records.iter().any(|r| r.status == Status::Warned) {
        Status::Warned
    } else {
        Status::Passed
    };
    let reason = denied
        .clone()
        .or(bake_failed)
        .or(alarm_stopped)
        .or_else(|| {
            failed_stage.as_ref().map(|stage| {
                // A stage an alarm stopped says so, naming the alarm.
                if let Some(alarm) = records.iter().find_map(|r| {
                    (&r.stage == stage && r.status == Status::Failed)
                        .then(|| r.summary.strip_prefix("stopped: alarm gate "))
                        .flatten()
                }) {
                    return format!("stage `{stage}` stopped: alarm gate {alarm}");
                }
                let failed: Vec<&str> = records
                    .iter()
                    .filter(|r| &r.stage == stage && r.status == Status::Failed)
                    .map(|r| r.step.as_str())
                    .collect();
                format!("stage `{stage}` failed (step {})", failed.join(", "))
            })
        });
    let artifact = lock(&ctx.artifact).clone();
    let result = RunResult {
        run_id: run_id.clone(),
        pipeline: pipeline.name.clone(),
        started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
        workdir: pipeline.dir.clone(),
        artifact,
        status,
        reason: reason.clone(),
        run_dir: run_dir.clone(),
        duration_ms: started.elapsed().as_millis(),
        steps: records,
    };
    write_json(&ctx.run_dir, "run.json", &result)?;
    if let Some(journal) = &journal {
        let state = match status {
            Status::Failed => crate::state::RunState::Failed,
            Status::Warned => crate::state::RunState::Warned,
            _ => crate::state::RunState::Passed,
        };
        let at = journal.now();
        journal.write(|s| s.set_run_state(&run_id, state, reason.as_deref(), at));
        if let Some(e) = journal.failure() {
            return Err(std::io::Error::other(e));
        }
    }
    ctx.events.send(Event::RunFinished {
        run_id,
        status,
        duration: started.elapsed(),
        reason,
    });
    Ok(RunEnd::Finished(Box::new(result)))
}

/// What every step of a run shares.
struct RunContext {
    run_id: String,
    pipeline: String,
    workdir: PathBuf,
    run_dir: OwnedDir,
    sandbox: Arc<Sandbox>,
    secrets: Arc<SecretValues>,
    /// Masks every secret value wherever text leaves the runner.
    redactor: Arc<Redactor>,
    allow_unconfined_exec: bool,
    log_limit: u64,
    events: EventSink,
    /// Named outputs of the steps finished so far.
    outputs: Mutex<Vec<types::StepOutput>>,
    /// Plugins of the steps finished so far.
    plugins_used: Mutex<Vec<types::PluginUse>>,
    /// The artifact under test: the first deliverable with a version a step reported.
    artifact: Mutex<Option<types::Artifact>>,
    /// Where a durable run records itself.
    journal: Option<Arc<durable::Journal>>,
    /// A resumed run's highest recorded attempt per (stage, step): new attempts count on.
    attempt_base: HashMap<(String, String), u32>,
    /// The pipeline's `[[target]]`s, for steps with a `targets` grant.
    targets: Arc<Vec<crate::targets::TargetSpec>>,
    /// The pipeline's monitors, for bakes between waves.
    monitors: Arc<Vec<crate::monitors::MonitorSpec>>,
}

impl RunContext {
    /// Take back what a finished step gave the run: its outputs, its plugin, the
    /// artifact it reported.
    fn take_back(&self, rec: &StepRecord) {
        if let Some(report) = &rec.report {
            let mut outputs = lock(&self.outputs);
            for (name, value) in &report.outputs {
                outputs.push(types::StepOutput {
                    step: rec.step.clone(),
                    name: name.clone(),
                    value: value.clone(),
                });
            }
        }
        if rec.attempts > 0
            && let Some(digest) = &rec.plugin_digest
        {
            lock(&self.plugins_used).push(types::PluginUse {
                step: rec.step.clone(),
                uses: rec.uses.clone(),
                digest: digest.clone(),
            });
        }
        self.note_artifact(&rec.artifacts);
    }

    /// The first deliverable with a version becomes the run's artifact (recorded).
    fn note_artifact(&self, artifacts: &[ArtifactRecord]) {
        let mut artifact = lock(&self.artifact);
        if artifact.is_some() {
            return;
        }
        *artifact = artifacts
            .iter()
            .find(|a| a.version.is_some())
            .map(|a| types::Artifact {
                name: a.name.clone().unwrap_or_else(|| a.path.clone()),
                version: a.version.clone().unwrap_or_default(),
                digest: a.digest.clone(),
            });
        if let (Some(a), Some(journal)) = (artifact.as_ref(), &self.journal) {
            let row = crate::state::ArtifactRow {
                name: a.name.clone(),
                version: Some(a.version.clone()),
                digest: a.digest.clone(),
            };
            journal.write(|s| s.set_run_artifact(&self.run_id, &row));
        }
    }

    /// A step's final record (with its last attempt's end, when one is pending), in
    /// the store before its end is shown. `start_follows`: a waiting step took this
    /// one's place among `--jobs` (the record commits with its start).
    async fn record_finished(
        &self,
        rec: &StepRecord,
        last_attempt: Option<crate::state::AttemptRow>,
        start_follows: bool,
    ) {
        if let Some(journal) = &self.journal {
            journal.finish_step(rec, last_attempt, start_follows).await;
        }
    }

    /// [`RunContext::record_finished`] for a step that never ran its plugin, from code
    /// that cannot wait.
    fn record_finished_at_once(&self, rec: &StepRecord) {
        if let Some(journal) = &self.journal {
            journal.finish_step_at_once(rec, None);
        }
    }
}

/// The shortest check interval among the monitors named `ids`, if any is declared.
fn shortest_interval(
    monitors: &[crate::monitors::MonitorSpec],
    ids: &[String],
) -> Option<std::time::Duration> {
    monitors
        .iter()
        .filter(|m| ids.contains(&m.id))
        .map(|m| m.interval)
        .min()
}

/// Lock a mutex of the run's shared state; a step that panicked while holding it
/// left it consistent (every update is a single push or assignment).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The record of a step an alarm stopped (failed) or kept from starting (skipped).
fn stopped(
    ctx: &RunContext,
    stage: &Stage,
    step: &Step,
    why: String,
    was_running: bool,
) -> StepRecord {
    if !was_running {
        return skipped(ctx, stage, step, why);
    }
    finished_without_plugin(ctx, &stage.name, step, Status::Failed, why, 0)
}

fn skipped(ctx: &RunContext, stage: &Stage, step: &Step, why: String) -> StepRecord {
    finished_without_plugin(ctx, &stage.name, step, Status::Skipped, why, 0)
}

/// Record and show the end of a step that has no report of its plugin (skipped,
/// stopped, or ended by a bug in the runner).
fn finished_without_plugin(
    ctx: &RunContext,
    stage: &str,
    step: &Step,
    status: Status,
    summary: String,
    attempts: u32,
) -> StepRecord {
    let record = StepRecord {
        stage: stage.to_string(),
        step: step.id.clone(),
        uses: step.uses.to_string(),
        plugin_digest: None,
        plugin_name: None,
        plugin_version: None,
        status,
        summary: summary.clone(),
        attempts,
        duration_ms: 0,
        report: None,
        artifacts: vec![],
        log: None,
        log_tail: vec![],
        failure: None,
    };
    ctx.record_finished_at_once(&record);
    ctx.events
        .send(step_finished(stage, &record, Duration::ZERO));
    record
}

async fn run_stage(
    ctx: &Arc<RunContext>,
    stage: &Stage,
    plugins: &HashMap<PluginRef, Arc<LoadedPlugin>>,
    semaphore: &Arc<Semaphore>,
    restored: &HashMap<String, StepRecord>,
    stop: impl std::future::Future<Output = String>,
) -> (Vec<StepRecord>, Option<String>) {
    let mut stop = std::pin::pin!(stop);
    // What the stage tells its deploy steps (an alarm, bakes between waves).
    let signals = deploy_signals::StageDeploySignals::new(ctx.monitors.clone());
    // The abort handle of each running step that may be stopped by an alarm (deploy
    // steps are told instead, and finish).
    let mut abortable: Vec<Option<tokio::task::AbortHandle>> = vec![None; stage.steps.len()];
    let mut alarmed: Option<String> = None;
    let mut done: HashMap<String, Status> = HashMap::new();
    let mut started: Vec<bool> = vec![false; stage.steps.len()];
    let mut records: Vec<Option<StepRecord>> = vec![None; stage.steps.len()];
    let mut running: JoinSet<(usize, StepRecord)> = JoinSet::new();
    // A step's final record as handed to the journal, kept until its task returns: a
    // task stopped by an alarm while that record commits (or waits for the next start
    // to commit with it) leaves it here (the record is committed all the same), and
    // the step is not recorded a second time.
    let ending: Arc<Mutex<HashMap<usize, StepRecord>>> = Arc::default();
    // Steps that finished before a resume are never run again.
    for (i, step) in stage.steps.iter().enumerate() {
        if let Some(rec) = restored.get(&step.id) {
            ctx.events.send(Event::StepRestored {
                stage: stage.name.clone(),
                step: step.id.clone(),
                status: rec.status,
                summary: rec.summary.clone(),
            });
            started[i] = true;
            done.insert(step.id.clone(), rec.status);
            records[i] = Some(rec.clone());
        }
    }
    loop {
        for (i, step) in stage.steps.iter().enumerate() {
            if started[i] || !step.needs.iter().all(|n| done.contains_key(n)) {
                continue;
            }
            started[i] = true;
            let blocked: Vec<&str> = step
                .needs
                .iter()
                .filter(|n| matches!(done[n.as_str()], Status::Failed | Status::Skipped))
                .map(String::as_str)
                .collect();
            if !blocked.is_empty() {
                let rec = skipped(
                    ctx,
                    stage,
                    step,
                    format!(
                        "not run: it needs {} which did not pass",
                        blocked.join(", ")
                    ),
                );
                done.insert(step.id.clone(), Status::Skipped);
                records[i] = Some(rec);
                continue;
            }
            let plugin = plugins
                .get(&step.uses)
                .expect("every plugin was loaded before the run")
                .clone();
            let (ctx, step, stage_name, sem, signals, ending) = (
                ctx.clone(),
                step.clone(),
                stage.name.clone(),
                semaphore.clone(),
                signals.clone(),
                ending.clone(),
            );
            let deploys = !step.grants.targets.is_empty();
            let handle = running.spawn(async move {
                let permit = sem
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let keep_ending = |record: &StepRecord| {
                    lock(&ending).insert(i, record.clone());
                };
                let run = std::panic::AssertUnwindSafe(run_step(
                    &ctx,
                    &stage_name,
                    &step,
                    &plugin,
                    &signals,
                    permit,
                    &keep_ending,
                ));
                match futures::FutureExt::catch_unwind(run).await {
                    Ok(record) => (i, record),
                    // A bug in the runner fails this step only; the run goes on and says so.
                    Err(panic) => (i, internal_failure(&ctx, &stage_name, &step, panic)),
                }
            });
            if !deploys {
                abortable[i] = Some(handle);
            }
        }
        // Steps that were skipped may have unblocked others; loop again before waiting.
        if started.iter().all(|s| *s) && running.is_empty() {
            break;
        }
        if stage
            .steps
            .iter()
            .enumerate()
            .any(|(i, s)| !started[i] && s.needs.iter().all(|n| done.contains_key(n)))
        {
            continue;
        }
        let next = tokio::select! {
            next = running.join_next() => next,
            reason = &mut stop => {
                // An alarm fired: every step still running is stopped and fails, every
                // step not started is skipped; the stage fails. A deploy step is told
                // (its `alarm()`) and let finish: it rolls back.
                signals.raise(&reason);
                for handle in abortable.iter().flatten() {
                    handle.abort();
                }
                ctx.events.send(Event::StageStopped {
                    stage: stage.name.clone(),
                    reason: reason.clone(),
                });
                while let Some(next) = running.join_next().await {
                    // Aborted steps end without a record; they get one below.
                    if let Ok((i, rec)) = next {
                        records[i] = Some(rec);
                    }
                }
                // No step starts now: final records waiting for a start commit alone.
                if let Some(journal) = &ctx.journal {
                    journal.commit_waiting_records();
                }
                alarmed = Some(reason.clone());
                for (i, step) in stage.steps.iter().enumerate() {
                    if records[i].is_none()
                        && let Some(rec) = lock(&ending).remove(&i)
                    {
                        // Stopped while its final record committed: that record stands.
                        let took = Duration::from_millis(rec.duration_ms as u64);
                        ctx.events.send(step_finished(&stage.name, &rec, took));
                        records[i] = Some(rec);
                    }
                    if records[i].is_none() {
                        let why = if started[i] {
                            format!("stopped: {reason}")
                        } else {
                            format!("not run: {reason}")
                        };
                        records[i] = Some(stopped(ctx, stage, step, why, started[i]));
                    }
                }
                break;
            }
        };
        match next {
            Some(Ok((i, rec))) => {
                done.insert(stage.steps[i].id.clone(), rec.status);
                records[i] = Some(rec);
            }
            Some(Err(e)) => {
                unreachable!("step tasks catch their panics and are never aborted: {e}")
            }
            None => break,
        }
    }
    let records = records
        .into_iter()
        .map(|r| r.expect("every step of the stage ends with a record"))
        .collect();
    (records, alarmed)
}

/// The record of a step during which the runner itself panicked.
fn internal_failure(
    ctx: &RunContext,
    stage: &str,
    step: &Step,
    panic: Box<dyn std::any::Any + Send>,
) -> StepRecord {
    let what = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    let summary =
        format!("internal error in the runner (a bug in sluice, please report it): {what}");
    finished_without_plugin(ctx, stage, step, Status::Failed, summary, 1)
}

/// Run a step, holding `job` (its place among `--jobs`) until its plugin is done: the
/// next step starts while this one's final record commits.
async fn run_step(
    ctx: &RunContext,
    stage: &str,
    step: &Step,
    plugin: &LoadedPlugin,
    signals: &Arc<deploy_signals::StageDeploySignals>,
    job: tokio::sync::OwnedSemaphorePermit,
    ending: &(dyn Fn(&StepRecord) + Sync),
) -> StepRecord {
    let started = Instant::now();
    let events = Some((ctx.events.clone(), stage.to_string(), step.id.clone()));
    let log = match ctx
        .run_dir
        .dir("logs")
        .and_then(|logs| logs.dir(stage))
        .and_then(|dir| {
            // A step run again after a resume keeps the log of its interrupted run.
            let name = (1..)
                .map(|n| match n {
                    1 => format!("{}.log", step.id),
                    n => format!("{}.{n}.log", step.id),
                })
                .find(|name| !dir.contains(name))
                .expect("some name is free");
            Ok((dir.create_file(&name)?, dir.path().join(&name)))
        }) {
        Ok((file, path)) => {
            StepLog::create(file, path, ctx.log_limit, events, ctx.redactor.clone())
        }
        Err(e) => {
            let log = StepLog::in_memory(ctx.log_limit, ctx.redactor.clone());
            log.line(
                Source::Runner,
                &format!("the step log cannot be written: {e}"),
            );
            log
        }
    };
    let mut record = StepRecord {
        stage: stage.to_string(),
        step: step.id.clone(),
        uses: step.uses.to_string(),
        plugin_digest: Some(plugin.digest().to_string()),
        plugin_name: Some(plugin.descriptor().name.clone()),
        plugin_version: Some(plugin.descriptor().version.clone()),
        status: Status::Failed,
        summary: String::new(),
        attempts: 0,
        duration_ms: 0,
        report: None,
        artifacts: vec![],
        log: log.path().map(|p| p.display().to_string()),
        log_tail: vec![],
        failure: None,
    };
    // The end of the step's last attempt, recorded with the step's final record.
    let mut last_attempt = None;
    let outcome = match StepSandbox::resolve(
        step,
        ctx.workdir.clone(),
        ctx.sandbox.clone(),
        &ctx.secrets,
        ctx.allow_unconfined_exec,
        &log,
        deploy_signals::setting(ctx, stage, step, signals),
    ) {
        Err(e) => Err(StepFailure::Setup(e.to_string())),
        Ok(sandbox) => {
            let names = sandbox.secret_names();
            if !names.is_empty() {
                log.line(
                    Source::Runner,
                    &format!("secrets granted: {}", names.join(", ")),
                );
                ctx.events.send(Event::StepSecrets {
                    stage: stage.to_string(),
                    step: step.id.clone(),
                    secrets: names,
                });
            }
            let outcome = attempts(
                ctx,
                stage,
                step,
                plugin,
                &sandbox,
                &log,
                &mut record,
                &mut last_attempt,
            )
            .await;
            // A sandbox still being made (the step ended before its first program)
            // is abandoned: nothing of the step outlives it.
            sandbox.end_step();
            outcome
        }
    };
    match outcome {
        Ok((report, artifacts)) => {
            record.status = match report.status {
                types::Status::Passed => Status::Passed,
                types::Status::Warned => Status::Warned,
                types::Status::Skipped => Status::Skipped,
                types::Status::Failed => Status::Failed,
            };
            record.summary = report.summary.clone();
            ctx.note_artifact(&artifacts);
            record.artifacts = artifacts;
            let mut outputs = lock(&ctx.outputs);
            for (name, value) in &report.outputs {
                outputs.push(types::StepOutput {
                    step: step.id.clone(),
                    name: name.clone(),
                    value: value.clone(),
                });
            }
            record.report = Some(report);
        }
        Err(failure) => {
            record.status = Status::Failed;
            // A failure's text may quote the plugin (a panic message, a program's error).
            record.summary = ctx.redactor.redact(&failure.to_string()).into_owned();
            log.line(Source::Runner, &format!("step failed: {failure}"));
            record.failure = Some(failure);
        }
    }
    if record.attempts > 0 {
        lock(&ctx.plugins_used).push(types::PluginUse {
            step: step.id.clone(),
            uses: step.uses.to_string(),
            digest: plugin.digest().to_string(),
        });
    }
    if record.status == Status::Failed && step.allow_failure {
        record.status = Status::Warned;
        record.summary = format!("failed (allowed): {}", record.summary);
    }
    log.finish();
    record.duration_ms = started.elapsed().as_millis();
    // A report's findings explain its failure (its summary lists them); the log's tail
    // would only repeat the tool's raw machine output.
    let explained_by_findings = record
        .report
        .as_ref()
        .is_some_and(|report| !report.findings.is_empty());
    if record.status == Status::Failed && !explained_by_findings {
        record.log_tail = log.tail();
    }
    if let Err(e) = ctx
        .run_dir
        .dir("steps")
        .and_then(|steps| write_json(&steps, &format!("{}.json", step.id), &record))
    {
        tracing::error!("cannot record step {}: {e}", step.id);
    }
    // The semaphore hands a freed place straight to the first step waiting for one:
    // none is left free then, and that step is about to record its attempt's start.
    let jobs = job.semaphore().clone();
    drop(job);
    let start_follows = jobs.available_permits() == 0;
    ending(&record);
    ctx.record_finished(&record, last_attempt, start_follows)
        .await;
    ctx.events
        .send(step_finished(stage, &record, started.elapsed()));
    record
}

/// The event that shows a step's end.
fn step_finished(stage: &str, record: &StepRecord, duration: Duration) -> Event {
    Event::StepFinished {
        stage: stage.to_string(),
        step: record.step.clone(),
        status: record.status,
        summary: record.summary.clone(),
        attempts: record.attempts,
        duration,
        log_tail: record.log_tail.clone(),
        log: record.log.clone(),
    }
}

/// Run attempts until one passes or the retries are used up. The step's record and
/// its last attempt's end (recorded later, with the step's final record) are outputs.
#[allow(clippy::too_many_arguments)]
async fn attempts(
    ctx: &RunContext,
    stage: &str,
    step: &Step,
    plugin: &LoadedPlugin,
    sandbox: &StepSandbox,
    log: &StepLog,
    record: &mut StepRecord,
    last_attempt: &mut Option<crate::state::AttemptRow>,
) -> Result<(types::Report, Vec<ArtifactRecord>), StepFailure> {
    let limits = AttemptLimits {
        timeout: step.timeout,
        memory: step.memory,
    };
    let config = step.with.to_string();
    let key = (stage.to_string(), step.id.clone());
    // After a resume, attempts are numbered on from the last one recorded.
    let base = ctx.attempt_base.get(&key).copied().unwrap_or(0);
    let mut attempt = 0;
    loop {
        attempt += 1;
        record.attempts = attempt;
        // The attempt's start is committed while its plugin is instantiated; it is shown,
        // and the plugin runs, only once committed (`run_attempt` awaits `announced`).
        let (attempt_started, committed) = match &ctx.journal {
            Some(j) => {
                let (at, committed) = j.start_attempt(stage, &step.id, base + attempt);
                (Some(at), Some(committed))
            }
            None => (None, None),
        };
        let announced = async {
            if let Some(committed) = committed {
                committed.await;
            }
            ctx.events.send(Event::StepStarted {
                stage: stage.to_string(),
                step: step.id.clone(),
                attempt,
            });
        };
        let input = types::StepInput {
            run_id: ctx.run_id.clone(),
            pipeline: ctx.pipeline.clone(),
            stage: stage.to_string(),
            step: step.id.clone(),
            config: config.clone(),
            artifact: lock(&ctx.artifact).clone(),
            outputs: lock(&ctx.outputs).clone(),
            workdir: ctx.workdir.display().to_string(),
            attempt,
            plugins: lock(&ctx.plugins_used)
                .iter()
                .cloned()
                .chain(std::iter::once(types::PluginUse {
                    step: step.id.clone(),
                    uses: step.uses.to_string(),
                    digest: plugin.digest().to_string(),
                }))
                .collect(),
        };
        let wasi = match sandbox.wasi(log) {
            Ok(wasi) => wasi,
            Err(e) => {
                announced.await;
                return Err(StepFailure::Setup(e.to_string()));
            }
        };
        let deadline = Instant::now() + limits.timeout;
        let attempt_result = run_attempt(
            plugin,
            wasi,
            log.clone(),
            |deadline| sandbox.attempt(log, deadline),
            input,
            limits,
            announced,
        )
        .await
        .map(|mut report| {
            // What a plugin reports is bounded before anything holds or writes it.
            for note in crate::limits::cap_report(&mut report) {
                log.line(Source::Runner, &note);
            }
            // Everything derived from the report (records, run.json, reports, the
            // console, later steps' inputs) is free of secrets.
            ctx.redactor.redact_report(&mut report);
            report
        });
        // Nothing the attempt started outlives it (before its artifacts are hashed).
        sandbox.end_attempt().await;
        // A program that ran into a limit fails the step, whatever the plugin made of
        // it, and the limit is named first.
        let violations = sandbox.take_limit_violations();
        let result = match attempt_result {
            Ok(_) if !violations.is_empty() => Err(StepFailure::Limits(violations.join("; "))),
            Err(failure) if !violations.is_empty() => Err(StepFailure::Limits(format!(
                "{}; {failure}",
                violations.join("; ")
            ))),
            Ok(report) => {
                record_artifacts(&ctx.workdir, sandbox, &report, deadline, limits.timeout)
                    .await
                    .map(|artifacts| (report, artifacts))
            }
            Err(failure) => Err(failure),
        };
        // A failed program's denied file access names the grant to add.
        let result =
            crate::capabilities::denials::explain_failure(result, sandbox.take_access_hints());
        let mut attempt_end = None;
        if let (Some(journal), Some(started_at)) = (&ctx.journal, attempt_started) {
            let (status, summary, report) = match &result {
                Ok((report, _)) => (
                    match report.status {
                        types::Status::Passed => Status::Passed,
                        types::Status::Warned => Status::Warned,
                        types::Status::Skipped => Status::Skipped,
                        types::Status::Failed => Status::Failed,
                    },
                    report.summary.clone(),
                    Some(crate::state::stored_json(report)),
                ),
                Err(f) => (
                    Status::Failed,
                    ctx.redactor.redact(&f.to_string()).into_owned(),
                    None,
                ),
            };
            attempt_end = Some(crate::state::AttemptRow {
                run_id: ctx.run_id.clone(),
                stage: stage.to_string(),
                step: step.id.clone(),
                attempt: base + attempt,
                started_at,
                finished_at: Some(journal.now()),
                status: Some(status.as_str().to_string()),
                summary: Some(summary),
                report,
                log: log.path().map(|p| {
                    let rel = p.strip_prefix(ctx.run_dir.path()).unwrap_or(&p);
                    rel.display().to_string()
                }),
            });
        }
        let reason = match &result {
            Ok((report, _)) if report.status == types::Status::Failed => {
                Some(report.summary.clone())
            }
            Ok(_) => None,
            Err(f) if f.retryable() => Some(f.to_string()),
            Err(_) => None,
        };
        match reason {
            Some(reason) if attempt <= step.retries => {
                if let (Some(journal), Some(row)) = (&ctx.journal, attempt_end) {
                    journal.finish_attempt(row).await;
                }
                let delay = step.retry_delay.saturating_mul(1 << (attempt - 1).min(16));
                log.line(
                    Source::Runner,
                    &format!(
                        "attempt {attempt} failed: {reason}; retrying in {}",
                        humantime::format_duration(delay)
                    ),
                );
                ctx.events.send(Event::StepRetrying {
                    stage: stage.to_string(),
                    step: step.id.clone(),
                    attempt,
                    delay,
                    reason,
                });
                tokio::time::sleep(delay).await;
            }
            _ => {
                // The last attempt's end is recorded with the step's final record.
                *last_attempt = attempt_end;
                return result;
            }
        }
    }
}

/// Hash every artifact the report names; each must be a regular file inside the
/// step's grants, no larger than [`MAX_ARTIFACT_SIZE`], hashed before the step's
/// deadline.
async fn record_artifacts(
    workdir: &Path,
    sandbox: &StepSandbox,
    report: &types::Report,
    deadline: Instant,
    timeout: Duration,
) -> Result<Vec<ArtifactRecord>, StepFailure> {
    let mut out = Vec::new();
    for a in &report.artifacts {
        let file = open_artifact(&workdir.join(&a.path), sandbox)
            .map_err(|why| StepFailure::Plugin(format!("reported artifact {}: {why}", a.path)))?;
        let (digest, size) = tokio::task::spawn_blocking(move || hash_until(file, deadline))
            .await
            .map_err(|e| StepFailure::Plugin(format!("hashing artifact {}: {e}", a.path)))?
            .map_err(|e| match e {
                HashError::Deadline => StepFailure::Timeout(timeout),
                HashError::Io(e) => {
                    StepFailure::Plugin(format!("reported artifact {} cannot be read: {e}", a.path))
                }
            })?;
        out.push(ArtifactRecord {
            path: a.path.clone(),
            media_type: a.media_type.clone(),
            name: a.name.clone(),
            version: a.version.clone(),
            digest,
            size,
        });
    }
    Ok(out)
}

/// Open an artifact without blocking (a FIFO would) and check what was opened: a
/// regular file, inside a grant, within the size cap.
fn open_artifact(path: &Path, sandbox: &StepSandbox) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot be read: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file; artifacts must be files".into());
    }
    // Where the opened file really is, whatever links led to it.
    let real = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&file)
    ))
    .map_err(|e| format!("cannot be located: {e}"))?;
    if !sandbox.files().can_read(&real) {
        return Err(
            "is outside the step's grants; artifacts must be files the step may read".into(),
        );
    }
    if meta.len() > MAX_ARTIFACT_SIZE {
        return Err(format!(
            "is {}, more than the {} an artifact may be",
            bytesize::ByteSize::b(meta.len()),
            bytesize::ByteSize::b(MAX_ARTIFACT_SIZE)
        ));
    }
    Ok(file)
}

enum HashError {
    Deadline,
    Io(std::io::Error),
}

/// `sha256:<hex>` and size of a file, giving up at `deadline`.
fn hash_until(mut file: std::fs::File, deadline: Instant) -> Result<(String, u64), HashError> {
    use std::io::Read;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        if Instant::now() >= deadline {
            return Err(HashError::Deadline);
        }
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                size += n as u64;
                if size > MAX_ARTIFACT_SIZE {
                    return Err(HashError::Io(std::io::Error::other(
                        "it grew past the size cap while being hashed",
                    )));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(HashError::Io(e)),
        }
    }
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), size))
}

fn write_json(dir: &OwnedDir, name: &str, value: &impl Serialize) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    dir.replace_file(name, text.as_bytes())
}
