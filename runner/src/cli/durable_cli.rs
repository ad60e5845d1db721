//! The durable commands' side of the command line: where the state database is, who
//! the actor is, what a new run is recorded with (trigger, pipeline digest), resuming a
//! recorded run, and the commands that record a person's decision (`approve`,
//! `reject`, `override`) or read the record (`status`, `history`, `explain`).
//!
//! No SQL here: every statement lives in [`crate::state`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{
    DecideArgs, ExpectedError, ExplainArgs, HistoryArgs, OutputFormat, OverrideArgs, RunnerFolders,
    StatusArgs, exit, json_text,
};
use crate::config::{self, Pipeline};
use crate::console;
use crate::executor::durable::{DurableOptions, GateFacts};
use crate::gates::Gate;
use crate::state::{
    ApprovalRow, HistoryFilter, Holder, NewRun, OverrideRow, RunRow, RunState, StateError, Store,
    Trigger,
};

/// A recorded run about to be resumed.
#[derive(Debug)]
pub(super) struct ResumeTarget {
    pub run: RunRow,
    /// The pipeline file to run (the recorded one unless `-f` says otherwise).
    pub file: PathBuf,
    /// The folder holding the run's folder, when it is not the default.
    pub runs_dir: Option<PathBuf>,
    /// The database the run is recorded in.
    pub store_path: PathBuf,
}

pub(super) fn state_error(e: StateError) -> ExpectedError {
    match e {
        StateError::Sql { .. } => ExpectedError::Internal(e.to_string()),
        _ => ExpectedError::Config(e.to_string()),
    }
}

/// The state database of a pipeline: `--state`, else `[pipeline] state`, else
/// `.sluice/state.db` next to the pipeline file.
pub(super) fn state_path(pipeline: &Pipeline, flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| pipeline.state.clone())
        .unwrap_or_else(|| default_state_path(&pipeline.dir))
}

fn default_state_path(pipeline_dir: &Path) -> PathBuf {
    pipeline_dir.join(".sluice").join("state.db")
}

/// The SHA-256 (hex) of a pipeline file's text: a resumed run refuses a changed file.
pub(super) fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// CI variables recorded with a run, when set.
const CI_VARIABLES: &[&str] = &[
    "GITHUB_SHA",
    "GITHUB_RUN_ID",
    "GITHUB_RUN_ATTEMPT",
    "GITHUB_REF",
    "GITHUB_REPOSITORY",
    "GITHUB_WORKFLOW",
    "CI_PIPELINE_ID",
    "CI_JOB_ID",
    "CI_COMMIT_SHA",
    "BUILDKITE_BUILD_ID",
    "BUILDKITE_COMMIT",
    "BUILD_ID",
];

/// Who or what started a run: the actor, CI variables, the git commit of the
/// pipeline's folder.
fn trigger(pipeline_dir: &Path) -> Trigger {
    let ci = CI_VARIABLES
        .iter()
        .filter_map(|name| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| (name.to_string(), v))
        })
        .collect();
    // Only a folder inside a git work tree has a commit; elsewhere no git is started.
    let in_git = pipeline_dir.ancestors().any(|d| d.join(".git").exists());
    let git_commit = in_git
        .then(|| {
            std::process::Command::new("git")
                .args(["rev-parse", "HEAD"])
                .current_dir(pipeline_dir)
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
        })
        .flatten()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty());
    Trigger {
        actor: crate::gates::approval::actor_from_env(),
        ci,
        git_commit,
    }
}

fn clock() -> Result<std::sync::Arc<dyn crate::clock::Clock>, ExpectedError> {
    crate::clock::from_env().map_err(ExpectedError::Config)
}

/// The gates of every stage, built from the pipeline file, reading evidence from
/// `store`; with the policy's gate on the protected stages when `policy` is given.
pub(super) fn stage_gates(
    pipeline: &Pipeline,
    store: &std::sync::Arc<Store>,
    policy: Option<&crate::gates::policy::PolicyGateInput>,
) -> HashMap<String, Vec<Box<dyn Gate>>> {
    let env = crate::gates::GateEnv {
        pipeline,
        store: Some(store),
        policy,
    };
    pipeline
        .stages
        .iter()
        .map(|stage| (stage.name.clone(), crate::gates::build_stage(stage, &env)))
        .collect()
}

/// The pipeline's policy and its checks' findings, for the `policy` gate and the
/// policy notices of `explain` and `override` (custom checks run in a plugin host
/// started only for them). `None` when the pipeline follows no policy; a policy that
/// cannot be read is a warning here (the run itself refuses it).
pub(super) async fn policy_gate_input(
    pipeline: &Pipeline,
) -> Option<crate::gates::policy::PolicyGateInput> {
    let policy = match crate::policy::for_pipeline(pipeline).await {
        Ok(policy) => policy?,
        Err(e) => {
            console::err_line(&format!("warning: cannot read the pipeline's policy: {e}"));
            return None;
        }
    };
    let custom = policy
        .checks
        .iter()
        .any(|c| matches!(c.kind, crate::policy::CheckKind::Custom { .. }));
    let host = if custom {
        super::start_host(1, None).ok()
    } else {
        None
    };
    let findings = crate::policy::checks::evaluate(&policy, pipeline, host.as_ref()).await;
    Some(crate::gates::policy::PolicyGateInput {
        policy,
        findings: std::sync::Arc::new(findings),
    })
}

/// A new run's state database, opened on a thread of its own while the pipeline loads
/// ([`Store::open_ahead`]: its checkpoint thread and the store's connection);
/// [`start_new`] takes it over.
#[derive(Default)]
pub(super) struct StoreAhead(Option<std::thread::JoinHandle<Option<crate::state::OpenedAhead>>>);

impl StoreAhead {
    /// Find the database the same way [`state_path`] will (flag, `[pipeline] state`,
    /// `.sluice/state.db` next to the file) and open it, off this thread.
    pub(super) fn start(file: &Path, flag: Option<&Path>) -> StoreAhead {
        let file = file.to_path_buf();
        let flag = flag.map(Path::to_path_buf);
        let thread = std::thread::Builder::new()
            .name("sluice-state-ahead".into())
            .spawn(move || {
                let path = flag
                    .or_else(|| config::declared_state_path(&file))
                    .unwrap_or_else(|| default_state_path(&config::pipeline_dir(&file)));
                Store::open_ahead(&path)
            })
            .ok();
        StoreAhead(thread)
    }

    fn take(self) -> Option<crate::state::OpenedAhead> {
        self.0.and_then(|t| t.join().ok()).flatten()
    }
}

/// Open the store a run writes: through the handle of `.sluice/` when it lies there
/// (the runner hides that folder from steps, and from its own later path lookups).
fn open_run_store(
    pipeline: &Pipeline,
    folders: &RunnerFolders,
    flag: Option<&Path>,
    ahead: StoreAhead,
) -> Result<Store, ExpectedError> {
    let path = state_path(pipeline, flag);
    let default = default_state_path(&pipeline.dir);
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let through_handle = path == default
        || path.parent().map(real) == Some(real(folders.state.path()))
            && path.file_name().is_some();
    if through_handle {
        let name = path
            .file_name()
            .map_or("state.db".into(), |n| n.to_string_lossy().into_owned());
        let fd = std::os::fd::AsRawFd::as_raw_fd(folders.state.handle());
        Store::open_after(
            Path::new(&format!("/proc/self/fd/{fd}/{name}")),
            ahead.take(),
        )
        .map_err(state_error)
    } else {
        Store::open_after(&path, ahead.take()).map_err(state_error)
    }
}

/// The durable options of a new run: its record (trigger, digest), the gates (with
/// the policy's, when the pipeline follows a policy).
pub(super) fn start_new(
    pipeline: &Pipeline,
    file: &Path,
    folders: &RunnerFolders,
    flag: Option<&Path>,
    no_wait: bool,
    policy: Option<&crate::gates::policy::PolicyGateInput>,
    ahead: StoreAhead,
) -> Result<DurableOptions, ExpectedError> {
    let store = std::sync::Arc::new(open_run_store(pipeline, folders, flag, ahead)?);
    let clock = clock()?;
    let now = clock.now();
    // Runs left `running` by a dead runner are interrupted, not running.
    store.reap_dead_runs(now).map_err(state_error)?;
    let pipeline_file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    Ok(DurableOptions {
        gates: stage_gates(pipeline, &store, policy),
        store,
        new_run: Some(NewRun {
            run_id: folders.run_id.clone(),
            pipeline: pipeline.name.clone(),
            pipeline_file,
            pipeline_digest: digest(&pipeline.source.text),
            run_dir: folders.run.path().to_path_buf(),
            trigger: trigger(&pipeline.dir),
            started_at: now,
        }),
        clock,
        holder: Holder::current(),
        no_wait,
        monitors: Vec::new(),
    })
}

/// Find a recorded run to resume and check it may be: not finished, not superseded,
/// its pipeline file unchanged (unless `allow_changed`).
pub(super) fn find_run_for_resume(
    run_id: &str,
    file: Option<PathBuf>,
    flag: Option<PathBuf>,
    allow_changed: bool,
) -> Result<ResumeTarget, ExpectedError> {
    let store_path = match (&flag, &file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => pipeline_store_path(f, None)?,
        (None, None) => pipeline_store_path(Path::new("sluice.toml"), None)?,
    };
    let store = Store::open(&store_path).map_err(state_error)?;
    let clock = clock()?;
    store.reap_dead_runs(clock.now()).map_err(state_error)?;
    let run = store.run(run_id).map_err(state_error)?;
    match run.state {
        RunState::Passed | RunState::Warned | RunState::Failed => {
            return Err(ExpectedError::Config(format!(
                "run {run_id} has finished ({}); there is nothing to resume",
                state_name(run.state)
            )));
        }
        RunState::Superseded => {
            return Err(ExpectedError::Config(format!(
                "run {run_id} was superseded by run {} and cannot be resumed; start a new run",
                run.superseded_by.as_deref().unwrap_or("a newer run")
            )));
        }
        RunState::Running | RunState::Waiting | RunState::Interrupted => {}
    }
    let file = file.unwrap_or_else(|| run.pipeline_file.clone());
    let text = std::fs::read_to_string(&file).map_err(|e| {
        ExpectedError::Config(format!(
            "cannot read the pipeline file {} of run {run_id}: {e}",
            file.display()
        ))
    })?;
    if digest(&text) != run.pipeline_digest && !allow_changed {
        return Err(ExpectedError::Config(format!(
            "the pipeline file {} changed since run {run_id} started; resume it with --allow-changed to run the rest of it from the changed file, or start a new run",
            file.display()
        )));
    }
    let pipeline_dir = file
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let runs_dir = run
        .run_dir
        .parent()
        .filter(|d| *d != pipeline_dir.join(".sluice").join("runs"))
        .map(Path::to_path_buf);
    Ok(ResumeTarget {
        run,
        file,
        runs_dir,
        store_path,
    })
}

/// The durable options of a resumed run: the run claimed (refused while another live
/// process drives it).
pub(super) fn start_resume(
    pipeline: &Pipeline,
    target: ResumeTarget,
    folders: &RunnerFolders,
    no_wait: bool,
    policy: Option<&crate::gates::policy::PolicyGateInput>,
) -> Result<DurableOptions, ExpectedError> {
    let flag = Some(target.store_path.as_path());
    let store = std::sync::Arc::new(open_run_store(
        pipeline,
        folders,
        flag,
        StoreAhead::default(),
    )?);
    let holder = Holder::current();
    store
        .claim_run(&target.run.run_id, &holder)
        .map_err(state_error)?;
    Ok(DurableOptions {
        gates: stage_gates(pipeline, &store, policy),
        store,
        clock: clock()?,
        holder,
        no_wait,
        new_run: None,
        monitors: Vec::new(),
    })
}

/// Record that a run was stopped by a signal (resumable), through the runner's own
/// connection (the database's path is covered in the runner's namespace by then).
pub(super) fn mark_interrupted(store: &Store, run_id: &str) {
    let Ok(clock) = clock() else { return };
    let recorded = store
        .set_run_state(
            run_id,
            RunState::Interrupted,
            Some("stopped by a signal"),
            clock.now(),
        )
        .and_then(|()| store.checkpoint());
    if let Err(e) = recorded {
        console::err_line(&format!("warning: cannot record the interruption: {e}"));
    }
}

/// The state database of the pipeline file `file` (or `flag`).
fn pipeline_store_path(file: &Path, flag: Option<&Path>) -> Result<PathBuf, ExpectedError> {
    if let Some(flag) = flag {
        return Ok(flag.to_path_buf());
    }
    let pipeline = load_pipeline(file)?;
    Ok(state_path(&pipeline, None))
}

pub(super) fn load_pipeline(file: &Path) -> Result<Pipeline, ExpectedError> {
    match config::load_lenient(file) {
        Ok((pipeline, _)) => Ok(pipeline),
        Err(config::PipelineFileError::Unreadable { .. }) if !file.exists() => {
            Err(ExpectedError::Config(format!(
                "no pipeline file {}: name it with -f FILE, or the state database with --state FILE",
                file.display()
            )))
        }
        Err(e) => Err(ExpectedError::Config(e.to_string())),
    }
}

/// The store and the pipeline (when its file is there) a reading or deciding command
/// works on.
fn open_for_command(
    file: &Path,
    flag: Option<&Path>,
) -> Result<(Store, Option<Pipeline>), ExpectedError> {
    let pipeline = match (flag, file.exists()) {
        (Some(_), false) => None,
        _ => Some(load_pipeline(file)?),
    };
    let path = match (flag, &pipeline) {
        (Some(f), _) => f.to_path_buf(),
        (None, Some(p)) => state_path(p, None),
        (None, None) => unreachable!("a pipeline is loaded when there is no --state"),
    };
    if !path.exists() {
        return Err(ExpectedError::Config(format!(
            "no state database at {}: no run of this pipeline was recorded yet",
            path.display()
        )));
    }
    Ok((Store::open(&path).map_err(state_error)?, pipeline))
}

/// A stage of the pipeline, or an error naming the stages (did you mean).
fn check_stage<'a>(
    pipeline: &'a Pipeline,
    stage: &str,
) -> Result<&'a config::Stage, ExpectedError> {
    pipeline
        .stages
        .iter()
        .find(|s| s.name == stage)
        .ok_or_else(|| {
            let names: Vec<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
            let hint = crate::suggest::closest(stage, names.iter().copied())
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            ExpectedError::Config(format!(
                "{}: pipeline `{}` has no stage `{stage}`{hint}; its stages are: {}",
                pipeline.source.path.display(),
                pipeline.name,
                names.join(", ")
            ))
        })
}

/// Record runs left `running` by a dead runner as interrupted.
fn reap(store: &Store) -> Result<(), ExpectedError> {
    let now = clock()?.now();
    store.reap_dead_runs(now).map_err(state_error)?;
    Ok(())
}

fn state_name(s: RunState) -> &'static str {
    match s {
        RunState::Running => "running",
        RunState::Waiting => "waiting",
        RunState::Passed => "passed",
        RunState::Warned => "warned",
        RunState::Failed => "failed",
        RunState::Superseded => "superseded",
        RunState::Interrupted => "interrupted",
    }
}

/// The bake of each stage of the run's pipeline that bakes, read and decided now.
fn stage_bakes(
    store: &Store,
    pipeline: Option<&Pipeline>,
    run: &RunRow,
) -> Result<Vec<(String, crate::gates::bake::BakeStatus)>, ExpectedError> {
    let Some(pipeline) = pipeline else {
        return Ok(Vec::new());
    };
    let now = clock()?.now();
    let mut out = Vec::new();
    for stage in &pipeline.stages {
        if let Some(b) =
            crate::gates::bake::read_status(store, &run.run_id, stage, now).map_err(state_error)?
        {
            out.push((stage.name.clone(), b));
        }
    }
    Ok(out)
}

/// The run's state as `status` shows it: a running run in a bake is `baking`.
fn shown_state(run: &RunRow, bakes: &[(String, crate::gates::bake::BakeStatus)]) -> String {
    let baking = bakes.iter().find(|(stage, b)| {
        b.state == "baking" && run.current_stage.as_deref() == Some(stage.as_str())
    });
    match (run.state, baking) {
        (RunState::Running, Some((stage, _))) => format!("baking in stage {stage}"),
        (RunState::Waiting, Some((stage, _))) => {
            format!("waiting in the bake of stage {stage} (no process drives it)")
        }
        (state, _) => state_name(state).to_string(),
    }
}

/// `sluice approve` and `sluice reject`.
pub(super) fn decide(
    args: DecideArgs,
    flag: Option<PathBuf>,
    action: &str,
) -> Result<u8, ExpectedError> {
    let (store, pipeline) = open_for_command(&args.pipeline.file, flag.as_deref())?;
    let run = store.run(&args.run).map_err(state_error)?;
    if let Some(pipeline) = &pipeline {
        let stage = check_stage(pipeline, &args.stage)?;
        if !stage.gates.iter().any(|g| g.kind_name() == "approval") {
            return Err(ExpectedError::Config(format!(
                "{}: stage `{}` has no approval gate; nothing would read this {action}",
                pipeline.source.path.display(),
                args.stage
            )));
        }
    }
    if args.reason.trim().is_empty() {
        return Err(ExpectedError::Config(format!(
            "--reason must say why you {action} run {}",
            run.run_id
        )));
    }
    let clock = clock()?;
    let row = ApprovalRow {
        run_id: run.run_id.clone(),
        stage: args.stage.clone(),
        action: action.to_string(),
        actor: crate::gates::approval::actor_from_env(),
        reason: args.reason.clone(),
        at: clock.now(),
    };
    store.record_approval(&row).map_err(state_error)?;
    let done = if action == "approve" {
        "approved"
    } else {
        "rejected"
    };
    console::out_line(&format!(
        "{done} run {} for stage `{}` as {}",
        run.run_id, args.stage, row.actor
    ));
    Ok(exit::OK)
}

/// `sluice override`.
pub(super) async fn override_gate(
    args: OverrideArgs,
    flag: Option<PathBuf>,
) -> Result<u8, ExpectedError> {
    let (store, pipeline) = open_for_command(&args.pipeline.file, flag.as_deref())?;
    let run = store.run(&args.run).map_err(state_error)?;
    if let Some(pipeline) = &pipeline {
        let stages: Vec<&config::Stage> = match &args.stage {
            Some(s) => vec![check_stage(pipeline, s)?],
            None => pipeline.stages.iter().collect(),
        };
        // The policy's gate guards protected stages; it is read only when the gate
        // named is not one of the pipeline file's.
        let policy = if args.gate == crate::gates::policy::GATE_ID {
            crate::policy::for_pipeline(pipeline).await.ok().flatten()
        } else {
            None
        };
        // A stage's bake is overridden as gate `bake`.
        let ids: Vec<&str> = stages
            .iter()
            .flat_map(|s| crate::gates::gate_ids_under(pipeline, s, policy.as_deref()))
            .collect();
        if args.gate != "*" && !ids.contains(&args.gate.as_str()) {
            let hint = crate::suggest::closest(&args.gate, ids.iter().copied())
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            let where_ = args
                .stage
                .as_ref()
                .map_or("any stage".to_string(), |s| format!("stage `{s}`"));
            return Err(ExpectedError::Config(format!(
                "{}: {where_} has no gate `{}`{hint}; its gates are: {}",
                pipeline.source.path.display(),
                args.gate,
                if ids.is_empty() {
                    "none".to_string()
                } else {
                    ids.join(", ")
                }
            )));
        }
    }
    if args.reason.trim().is_empty() {
        return Err(ExpectedError::Config(
            "--reason must say why the gate is overridden".into(),
        ));
    }
    let clock = clock()?;
    let now = clock.now();
    let expires_at = match args.expires {
        Some(d) => Some(
            now.checked_add(
                jiff::SignedDuration::try_from(*d)
                    .map_err(|e| ExpectedError::Config(format!("--expires {d}: {e}")))?,
            )
            .map_err(|e| ExpectedError::Config(format!("--expires {d}: {e}")))?,
        ),
        None => None,
    };
    let row = OverrideRow {
        id: 0,
        run_id: run.run_id.clone(),
        gate: args.gate.clone(),
        stage: args.stage.clone(),
        actor: crate::gates::approval::actor_from_env(),
        reason: args.reason.clone(),
        created_at: now,
        expires_at,
        used_at: None,
    };
    let id = store.record_override(&row).map_err(state_error)?;
    let stage = args
        .stage
        .as_ref()
        .map_or("the next stage it enters".to_string(), |s| {
            format!("stage `{s}`")
        });
    let expiry = expires_at.map_or(String::new(), |e| format!(", until {e}"));
    console::out_line(&format!(
        "override {id}: run {} may pass gate `{}` of {stage} once{expiry} (by {})",
        run.run_id, args.gate, row.actor
    ));
    Ok(exit::OK)
}

/// The run a reading command is about: the one named, else the latest of the pipeline.
fn pick_run(
    store: &Store,
    pipeline: Option<&Pipeline>,
    run: Option<&str>,
) -> Result<RunRow, ExpectedError> {
    match run {
        Some(id) => store.run(id).map_err(state_error),
        None => {
            let latest = match pipeline {
                Some(p) => store.latest_run(&p.name).map_err(state_error)?,
                None => store
                    .history(&HistoryFilter {
                        limit: 1,
                        ..HistoryFilter::default()
                    })
                    .map_err(state_error)?
                    .into_iter()
                    .next(),
            };
            latest.ok_or_else(|| ExpectedError::Config("no run is recorded yet".into()))
        }
    }
}

/// `sluice status [RUN]`.
pub(super) fn status(args: StatusArgs, flag: Option<PathBuf>) -> Result<u8, ExpectedError> {
    let (store, pipeline) = open_for_command(&args.pipeline.file, flag.as_deref())?;
    // A run whose runner died shows as interrupted, not running.
    reap(&store)?;
    let run = pick_run(&store, pipeline.as_ref(), args.run.as_deref())?;
    let id = run.run_id.clone();
    let stages = store.stages(&id).map_err(state_error)?;
    let steps = store.finished_steps(&id).map_err(state_error)?;
    let attempts = store.attempts(&id).map_err(state_error)?;
    let overrides = store.overrides(&id).map_err(state_error)?;
    let bakes = stage_bakes(&store, pipeline.as_ref(), &run)?;
    let deployed = crate::reports::deployments::read(&store, &id).map_err(state_error)?;
    let mut approvals = Vec::new();
    let mut gates = Vec::new();
    for s in &stages {
        approvals.extend(store.approvals(&id, &s.stage).map_err(state_error)?);
        gates.extend(
            store
                .latest_gate_evaluations(&id, &s.stage)
                .map_err(state_error)?,
        );
    }
    if args.format == OutputFormat::Json {
        let steps_json: Vec<serde_json::Value> = steps
            .iter()
            .map(|s| {
                serde_json::json!({
                    "stage": s.stage, "step": s.step, "status": s.status,
                    "summary": s.summary, "attempts": s.attempts, "finished_at": s.finished_at,
                })
            })
            .collect();
        console::out_line(&json_text(&serde_json::json!({
            "run": run,
            "stages": stages,
            "gates": gates,
            "approvals": approvals,
            "overrides": overrides,
            "bakes": bakes.iter().map(|(stage, b)| serde_json::json!({
                "stage": stage, "bake": b,
            })).collect::<Vec<_>>(),
            "steps": steps_json,
            "deployments": deployed,
            "attempts": attempts.iter().map(|a| serde_json::json!({
                "stage": a.stage, "step": a.step, "attempt": a.attempt,
                "started_at": a.started_at, "finished_at": a.finished_at, "status": a.status,
            })).collect::<Vec<_>>(),
        })));
        return Ok(exit::OK);
    }
    let mut t = String::new();
    let _ = writeln!(t, "run {id}: {}", shown_state(&run, &bakes));
    let _ = writeln!(t, "  pipeline:  {}", run.pipeline);
    let _ = writeln!(
        t,
        "  started:   {} by {}",
        at(run.started_at),
        run.trigger.actor
    );
    if let Some(commit) = &run.trigger.git_commit {
        let _ = writeln!(t, "  commit:    {commit}");
    }
    for (k, v) in &run.trigger.ci {
        let _ = writeln!(t, "  {k}: {v}");
    }
    if let Some(a) = &run.artifact {
        let _ = writeln!(
            t,
            "  artifact:  {} {} ({})",
            a.name,
            a.version.as_deref().unwrap_or("-"),
            a.digest
        );
    }
    if let Some(reason) = &run.reason {
        let _ = writeln!(t, "  reason:    {reason}");
    }
    if let Some(by) = &run.superseded_by {
        let _ = writeln!(t, "  superseded by run {by}");
    }
    if let Some(f) = run.finished_at {
        let _ = writeln!(t, "  finished:  {}", at(f));
    }
    let _ = writeln!(t, "stages:");
    let names: Vec<String> = match &pipeline {
        Some(p) => p.stages.iter().map(|s| s.name.clone()).collect(),
        None => stages.iter().map(|s| s.stage.clone()).collect(),
    };
    for name in &names {
        let row = stages.iter().rev().find(|s| &s.stage == name);
        let bake = bakes.iter().find(|(s, _)| s == name).map(|(_, b)| b);
        let (state, when) = match row {
            None => ("not reached".to_string(), String::new()),
            Some(r) => match (&r.status, r.entered_at, r.exited_at) {
                (Some(st), _, Some(x)) => (st.clone(), format!("left {}", at(x))),
                (_, Some(e), None) if bake.is_some_and(|b| b.state == "baking") => {
                    ("baking".to_string(), format!("entered {}", at(e)))
                }
                (_, Some(e), None) => ("in it".to_string(), format!("entered {}", at(e))),
                _ => ("queued".to_string(), format!("queued {}", at(r.queued_at))),
            },
        };
        // Steps recorded as skipped (their stage was never entered, or what they
        // needed failed) did not finish: they are counted apart.
        let skipped = steps
            .iter()
            .filter(|s| &s.stage == name && s.status == "skipped")
            .count();
        let done = steps.iter().filter(|s| &s.stage == name).count() - skipped;
        let total = pipeline
            .as_ref()
            .and_then(|p| p.stages.iter().find(|s| &s.name == name))
            .map(|s| s.steps.len());
        let mut steps_text = match total {
            Some(n) => format!("{done}/{n} steps finished"),
            None => format!("{done} steps finished"),
        };
        if skipped > 0 {
            steps_text.push_str(&format!(", {skipped} skipped"));
        }
        let _ = writeln!(t, "  {name:<14} {state:<12} {steps_text:<20} {when}");
        if let Some(b) = bake.filter(|b| b.state != "not started") {
            let _ = writeln!(t, "    bake ({}): {}", b.state, b.detail);
        }
        for g in gates.iter().filter(|g| &g.stage == name) {
            let _ = writeln!(
                t,
                "    gate {} ({}): {} since {}: {}",
                g.gate,
                g.kind,
                g.decision,
                at(g.since),
                g.reason
            );
        }
        for a in approvals.iter().filter(|a| &a.stage == name) {
            let _ = writeln!(
                t,
                "    {} by {} at {}: {}",
                a.action,
                a.actor,
                at(a.at),
                a.reason
            );
        }
    }
    if !overrides.is_empty() {
        let _ = writeln!(t, "overrides:");
        for o in &overrides {
            let _ = writeln!(t, "  {}", override_line(o));
        }
    }
    if !deployed.is_empty() {
        let _ = writeln!(t, "deployments:");
        t.push_str(&crate::reports::deployments::render_text(
            &deployed, "  ", at,
        ));
    }
    let failed: Vec<_> = steps.iter().filter(|s| s.status == "failed").collect();
    for s in failed {
        let _ = writeln!(t, "failed step {}/{}: {}", s.stage, s.step, s.summary);
    }
    console::out(&t);
    Ok(exit::OK)
}

/// An instant as status, history and override lines show it: UTC, to the second.
fn at(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn override_line(o: &OverrideRow) -> String {
    let stage = o.stage.as_deref().unwrap_or("next stage");
    let mut s = format!(
        "#{} gate `{}` of {stage} by {} at {}: {}",
        o.id,
        o.gate,
        o.actor,
        at(o.created_at),
        o.reason
    );
    if let Some(e) = o.expires_at {
        let _ = write!(s, " (expires {})", at(e));
    }
    match o.used_at {
        Some(u) => {
            let _ = write!(s, " [used {}]", at(u));
        }
        None => s.push_str(" [unused]"),
    }
    s
}

/// `sluice history`.
pub(super) fn history(args: HistoryArgs, flag: Option<PathBuf>) -> Result<u8, ExpectedError> {
    let (store, pipeline) = open_for_command(&args.pipeline.file, flag.as_deref())?;
    if let (Some(p), Some(s)) = (&pipeline, &args.stage) {
        check_stage(p, s)?;
    }
    reap(&store)?;
    let runs = store
        .history(&HistoryFilter {
            pipeline: pipeline.as_ref().map(|p| p.name.clone()),
            stage: args.stage.clone(),
            limit: args.limit,
        })
        .map_err(state_error)?;
    // Runs in a stage whose bake is under way show as baking.
    let mut baking = Vec::new();
    for r in &runs {
        if let (RunState::Running | RunState::Waiting, Some(stage)) = (r.state, &r.current_stage)
            && store
                .bake(&r.run_id, stage)
                .map_err(state_error)?
                .is_some_and(|b| b.finished_at.is_none())
        {
            baking.push(r.run_id.clone());
        }
    }
    // Runs that deployed, and those that rolled back, are marked.
    let mut markers = HashMap::new();
    for r in &runs {
        let deployed = store.deployments(&r.run_id).map_err(state_error)?;
        if let Some(marker) = deploy_marker(&deployed) {
            markers.insert(r.run_id.clone(), marker);
        }
    }
    if args.format == OutputFormat::Json {
        let runs: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                if let serde_json::Value::Object(m) = &mut v {
                    m.insert("baking".into(), baking.contains(&r.run_id).into());
                    let marker = markers.get(&r.run_id);
                    m.insert("deployed".into(), marker.is_some().into());
                    m.insert(
                        "rolled_back".into(),
                        marker.is_some_and(|m| m.rolled_back).into(),
                    );
                }
                v
            })
            .collect();
        console::out_line(&json_text(&runs));
        return Ok(exit::OK);
    }
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<28} {:<12} {:<22} {:<10} {:<20} REASON",
        "RUN", "STATE", "STARTED", "STAGE", "ARTIFACT"
    );
    for r in &runs {
        let artifact = r.artifact.as_ref().map_or("-".to_string(), |a| {
            format!("{} {}", a.name, a.version.as_deref().unwrap_or(""))
        });
        let started = at(r.started_at);
        let _ = writeln!(
            t,
            "{:<28} {:<12} {:<22} {:<10} {:<20} {}",
            r.run_id,
            if r.state == RunState::Running && baking.contains(&r.run_id) {
                "baking"
            } else {
                state_name(r.state)
            },
            started,
            r.current_stage.as_deref().unwrap_or("-"),
            artifact,
            match markers.get(&r.run_id) {
                Some(m) if r.reason.is_some() =>
                    format!("{} {}", m.text, r.reason.as_deref().unwrap_or("")),
                Some(m) => m.text.clone(),
                None => r.reason.clone().unwrap_or_default(),
            }
        );
    }
    if runs.is_empty() {
        t.push_str("no runs recorded\n");
    }
    console::out(&t);
    Ok(exit::OK)
}

/// What `history` says of a run's deployments.
struct DeployMarker {
    /// `[deployed web 1.2.0]`, `[rolled back web 1.2.0 → 1.1.0]`.
    text: String,
    rolled_back: bool,
}

/// The marker of a run that deployed (None: it deployed nothing).
fn deploy_marker(deployed: &[crate::state::DeploymentRow]) -> Option<DeployMarker> {
    let first = deployed.iter().find(|d| d.kind == "deploy")?;
    let rollback = deployed.iter().rfind(|d| d.kind == "rollback");
    let text = match rollback {
        Some(r) => format!(
            "[rolled back {} {} → {}]",
            first.application, first.label, r.label
        ),
        None => {
            let failed = if deployed
                .iter()
                .any(|d| d.kind == "deploy" && d.state != "succeeded")
            {
                " (not done)"
            } else {
                ""
            };
            format!("[deployed {} {}{failed}]", first.application, first.label)
        }
    };
    Some(DeployMarker {
        text,
        rolled_back: rollback.is_some(),
    })
}

/// `sluice explain`: every gate of each stage the run has not passed, evaluated now
/// (nothing is written), with what would clear it.
pub(super) async fn explain(args: ExplainArgs, flag: Option<PathBuf>) -> Result<u8, ExpectedError> {
    let (store, pipeline) = open_for_command(&args.pipeline.file, flag.as_deref())?;
    let store = std::sync::Arc::new(store);
    let Some(pipeline) = pipeline else {
        return Err(ExpectedError::Config(format!(
            "explain needs the pipeline file (its gates): no {}",
            args.pipeline.file.display()
        )));
    };
    let run = match (&args.run, &args.artifact) {
        (Some(id), _) => store.run(id).map_err(state_error)?,
        (None, Some(version)) => store
            .runs_with_version(&pipeline.name, version)
            .map_err(state_error)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                ExpectedError::Config(format!(
                    "no run of pipeline `{}` carries an artifact with version {version}",
                    pipeline.name
                ))
            })?,
        (None, None) => pick_run(&store, Some(&pipeline), None)?,
    };
    if let Some(s) = &args.stage {
        check_stage(&pipeline, s)?;
    }
    let id = run.run_id.clone();
    let clock = clock()?;
    let now = clock.now();
    let stage_rows = store.stages(&id).map_err(state_error)?;
    let policy = policy_gate_input(&pipeline).await;
    let gates = stage_gates(&pipeline, &store, policy.as_ref());
    let passed = |name: &str| {
        stage_rows.iter().any(|r| {
            r.stage == name
                && r.exited_at.is_some()
                && matches!(r.status.as_deref(), Some("passed" | "warned"))
        })
    };
    // Everything is read first (nothing is written), then every gate of each stage the
    // run has not passed is evaluated at one instant; `gates::explain` renders it.
    struct Gathered {
        stage: String,
        row: Option<crate::state::StageRow>,
        verdict: Option<crate::gates::Verdict>,
        recorded: Vec<crate::state::GateEvaluationRow>,
        facts: GateFacts,
        all_overrides: Vec<OverrideRow>,
        holder: Option<String>,
        queue: Vec<String>,
    }
    let run_overrides = store.overrides(&id).map_err(state_error)?;
    let ended = run.state.is_final();
    let mut gathered = Vec::new();
    for stage in &pipeline.stages {
        if args.stage.as_ref().is_some_and(|only| &stage.name != only) {
            continue;
        }
        let row = stage_rows
            .iter()
            .rev()
            .find(|r| r.stage == stage.name)
            .cloned();
        let facts = GateFacts::read(&store, &id, &stage.name, now).map_err(state_error)?;
        let evaluate = !ended && !passed(&stage.name);
        let verdict = if evaluate {
            let stage_gates = gates.get(&stage.name).map_or(&[][..], Vec::as_slice);
            Some(
                facts
                    .evaluate(&pipeline.name, &id, &stage.name, stage_gates, now)
                    .await,
            )
        } else {
            None
        };
        let occupancy = store
            .stage_occupancy(&pipeline.name, &stage.name)
            .map_err(state_error)?;
        gathered.push(Gathered {
            stage: stage.name.clone(),
            row,
            verdict,
            recorded: store
                .latest_gate_evaluations(&id, &stage.name)
                .map_err(state_error)?,
            all_overrides: run_overrides
                .iter()
                .filter(|o| o.stage.as_deref().is_none_or(|s| s == stage.name))
                .cloned()
                .collect(),
            facts,
            holder: occupancy
                .holder
                .filter(|h| h.run_id != id)
                .map(|h| h.run_id),
            queue: occupancy.queue,
        });
    }
    let input = crate::gates::explain::ExplainInput {
        run: &run,
        now,
        stages: gathered
            .iter()
            .map(|g| crate::gates::explain::StageFacts {
                stage: &g.stage,
                row: g.row.as_ref(),
                verdict: g.verdict.as_ref(),
                recorded: &g.recorded,
                approvals: &g.facts.approvals,
                overrides: &g.all_overrides,
                holder: g.holder.as_deref(),
                queue: &g.queue,
            })
            .collect(),
    };
    let mut explanation = crate::gates::explain::explain(&input);
    for stage in &pipeline.stages {
        if let Some(bake) =
            crate::gates::bake::read_status(&store, &id, stage, now).map_err(state_error)?
        {
            explanation.with_bake(&stage.name, bake);
        }
    }
    explanation
        .with_deployments(crate::reports::deployments::read(&store, &id).map_err(state_error)?);
    if let Some(input) = &policy {
        let statuses = crate::policy::lifecycle::status_at(&input.policy, &input.findings, now);
        explanation.with_policy(crate::gates::explain::PolicyExplanation {
            name: input.policy.name.clone(),
            version: input.policy.version.clone(),
            notices: statuses
                .iter()
                .filter_map(|s| {
                    let check = input.policy.checks.iter().find(|c| c.id == s.check)?;
                    crate::policy::lifecycle::Notice::for_status(check, s)
                })
                .map(|n| n.text)
                .collect(),
        });
    }
    if args.format == OutputFormat::Json {
        console::out_line(&json_text(&crate::gates::explain::to_json(&explanation)));
    } else {
        console::out(&crate::gates::explain::render_text(&explanation));
    }
    Ok(exit::OK)
}
