//! The state store: the durable record of every run, and the only place with SQL.
//!
//! An embedded SQLite database (rusqlite, `bundled`), in WAL mode, at
//! `.sluice/state.db` next to the pipeline file unless `[pipeline] state = "..."` or
//! `--state` says otherwise. Schema migrations are numbered and applied on open; a
//! database written by a newer Sluice is refused. Each `record_*`/`start_*`/`finish_*`
//! call is one transaction, committed before it returns: the executor records a
//! transition before it shows it, so a killed runner resumes from the record.
//!
//! What is the source of truth for what: see docs/design/0013-durable-runs.md.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// Why the store could not do what was asked. Every message names the database file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot open the state database {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error(
        "the state database {path} was written by a newer Sluice (schema {found}, this sluice knows up to {supported}); use that version, or point --state at another file"
    )]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("state database {path}: {message}")]
    Sql { path: PathBuf, message: String },
    #[error("no run `{run_id}` in {path}")]
    NoSuchRun { path: PathBuf, run_id: String },
}

/// A run's overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    /// A runner process is driving it.
    Running,
    /// Stopped at a gate (`--no-wait`, or the runner was stopped while waiting).
    Waiting,
    Passed,
    Warned,
    Failed,
    /// A newer run of the same pipeline took its place in the queue of a stage.
    Superseded,
    /// The runner stopped (signal, crash) in the middle; `sluice resume` continues it.
    Interrupted,
}

/// Who or what started a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Trigger {
    /// `$SLUICE_ACTOR`, else `$GITHUB_ACTOR`/`$GITLAB_USER_LOGIN`, else `$USER`.
    pub actor: String,
    /// CI variables of note (GITHUB_SHA, GITHUB_RUN_ID, CI_PIPELINE_ID, ...), name → value.
    pub ci: Vec<(String, String)>,
    /// `git rev-parse HEAD` of the pipeline's folder, when it is a git work tree.
    pub git_commit: Option<String>,
}

/// A run as first recorded.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub run_id: String,
    pub pipeline: String,
    /// The pipeline file's path and its SHA-256 (hex), to refuse a changed file on resume.
    pub pipeline_file: PathBuf,
    pub pipeline_digest: String,
    /// The run's folder (logs, records, reports).
    pub run_dir: PathBuf,
    pub trigger: Trigger,
    pub started_at: jiff::Timestamp,
}

/// A run as stored.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub run_id: String,
    pub pipeline: String,
    pub pipeline_file: PathBuf,
    pub pipeline_digest: String,
    pub run_dir: PathBuf,
    pub trigger: Trigger,
    pub state: RunState,
    pub reason: Option<String>,
    pub started_at: jiff::Timestamp,
    pub finished_at: Option<jiff::Timestamp>,
    /// The stage it is in or waits for, when running or waiting.
    pub current_stage: Option<String>,
    pub artifact: Option<ArtifactRow>,
    /// When superseded: the run that took its place.
    pub superseded_by: Option<String>,
}

/// The artifact a run promotes.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactRow {
    pub name: String,
    pub version: Option<String>,
    /// `sha256:<hex>`.
    pub digest: String,
}

/// One attempt of one step.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRow {
    pub run_id: String,
    pub stage: String,
    pub step: String,
    pub attempt: u32,
    pub started_at: jiff::Timestamp,
    /// `None` while it runs (or when the runner died during it).
    pub finished_at: Option<jiff::Timestamp>,
    /// `passed`, `warned`, `failed`, `skipped` (the executor's `Status`, kebab-case).
    pub status: Option<String>,
    pub summary: Option<String>,
    /// The plugin's report as JSON.
    pub report: Option<serde_json::Value>,
    /// The step's log, relative to the run folder.
    pub log: Option<String>,
}

/// A step's final record (after its last attempt): what resume must never redo.
#[derive(Debug, Clone, Serialize)]
pub struct StepRow {
    pub run_id: String,
    pub stage: String,
    pub step: String,
    pub status: String,
    pub summary: String,
    pub attempts: u32,
    /// The executor's whole `StepRecord` as JSON, so a resumed run reports it unchanged.
    pub record: serde_json::Value,
    pub finished_at: jiff::Timestamp,
}

/// A run's passage through a stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageRow {
    pub run_id: String,
    pub stage: String,
    /// When the run started waiting for the stage's gates.
    pub queued_at: jiff::Timestamp,
    /// When every gate allowed and the run took the stage.
    pub entered_at: Option<jiff::Timestamp>,
    pub exited_at: Option<jiff::Timestamp>,
    /// `passed`, `warned`, `failed`, `superseded`.
    pub status: Option<String>,
}

/// One recorded gate evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct GateEvaluationRow {
    pub run_id: String,
    pub stage: String,
    pub gate: String,
    pub kind: String,
    pub evaluated_at: jiff::Timestamp,
    /// `allow`, `wait`, `deny`, `overridden`.
    pub decision: String,
    pub reason: String,
    pub until: Option<jiff::Timestamp>,
    pub evidence: serde_json::Value,
    /// The decision that stands since (the first of an unbroken series of equal decisions).
    pub since: jiff::Timestamp,
}

/// An approval or a rejection of a run's entry into a stage.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalRow {
    pub run_id: String,
    pub stage: String,
    /// `approve` or `reject`.
    pub action: String,
    pub actor: String,
    pub reason: String,
    pub at: jiff::Timestamp,
}

/// An override: lets one run past one gate (or every gate, `*`) of one stage (or any
/// stage, `None`), once, until it expires.
#[derive(Debug, Clone, Serialize)]
pub struct OverrideRow {
    pub id: i64,
    pub run_id: String,
    pub gate: String,
    pub stage: Option<String>,
    pub actor: String,
    pub reason: String,
    pub created_at: jiff::Timestamp,
    pub expires_at: Option<jiff::Timestamp>,
    /// When a gate evaluation used it (an override is used once).
    pub used_at: Option<jiff::Timestamp>,
}

/// The process holding a stage or driving a run: checked for liveness, so a lock left
/// by a dead process is taken over, never waited on forever.
#[derive(Debug, Clone, Serialize)]
pub struct Holder {
    pub pid: u32,
    /// The process's start time in clock ticks since boot (`/proc/<pid>/stat` field 22),
    /// so a reused PID is not mistaken for the holder.
    pub start_ticks: u64,
    /// `/proc/sys/kernel/random/boot_id`: a holder from before a reboot is dead.
    pub boot_id: String,
    pub hostname: String,
}

impl Holder {
    /// This process.
    pub fn current() -> Holder {
        todo!("issue 11")
    }
    /// Whether the process is still alive (same boot, same PID, same start time).
    /// A holder on another host is assumed alive.
    pub fn is_alive(&self) -> bool {
        todo!("issue 11")
    }
}

/// The answer to asking for a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageClaim {
    /// The run holds the stage now.
    Held,
    /// Another live run holds it.
    Busy { holder_run: String },
    /// A newer run waits for the same stage; this run is now recorded superseded.
    Superseded { by: String },
}

/// Which runs `history` lists.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub pipeline: Option<String>,
    /// Only runs that entered this stage.
    pub stage: Option<String>,
    pub limit: usize,
}

/// The state database of one pipeline folder (or wherever `--state` points).
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
}

/// The schema version this Sluice writes.
pub const SCHEMA_VERSION: u32 = 1;

impl Store {
    /// Open (creating folders and file as needed), switch to WAL, apply migrations.
    pub fn open(path: &Path) -> Result<Store, StateError> {
        let _ = path;
        todo!("issue 11")
    }
    pub fn path(&self) -> &Path {
        &self.path
    }

    // --- runs ---
    pub fn create_run(&self, run: &NewRun, holder: &Holder) -> Result<(), StateError> {
        let _ = (run, holder);
        todo!("issue 11")
    }
    /// Take over driving a run (resume): refused while its holder is alive.
    pub fn claim_run(&self, run_id: &str, holder: &Holder) -> Result<RunRow, StateError> {
        let _ = (run_id, holder);
        todo!("issue 11")
    }
    pub fn set_run_state(
        &self,
        run_id: &str,
        state: RunState,
        reason: Option<&str>,
        at: jiff::Timestamp,
    ) -> Result<(), StateError> {
        let _ = (run_id, state, reason, at);
        todo!("issue 11")
    }
    pub fn set_run_artifact(&self, run_id: &str, artifact: &ArtifactRow) -> Result<(), StateError> {
        let _ = (run_id, artifact);
        todo!("issue 11")
    }
    pub fn run(&self, run_id: &str) -> Result<RunRow, StateError> {
        let _ = run_id;
        todo!("issue 11")
    }
    /// The latest run of a pipeline (for `status` without a run id).
    pub fn latest_run(&self, pipeline: &str) -> Result<Option<RunRow>, StateError> {
        let _ = pipeline;
        todo!("issue 11")
    }
    /// Newest first.
    pub fn history(&self, filter: &HistoryFilter) -> Result<Vec<RunRow>, StateError> {
        let _ = filter;
        todo!("issue 11")
    }
    /// Runs whose state is `Running` but whose holder is dead: recorded `Interrupted`.
    pub fn reap_dead_runs(&self, at: jiff::Timestamp) -> Result<Vec<String>, StateError> {
        let _ = at;
        todo!("issue 11")
    }

    // --- stages ---
    /// Record that the run waits for a stage's gates (queued), superseding older runs of
    /// the same pipeline queued for the same stage.
    pub fn queue_for_stage(&self, run_id: &str, stage: &str, at: jiff::Timestamp) -> Result<Vec<String>, StateError> {
        let _ = (run_id, stage, at);
        todo!("issue 11")
    }
    /// Take the stage (one run per stage and pipeline at a time); a holder that is dead
    /// is taken over.
    pub fn claim_stage(&self, run_id: &str, stage: &str, holder: &Holder, at: jiff::Timestamp) -> Result<StageClaim, StateError> {
        let _ = (run_id, stage, holder, at);
        todo!("issue 11")
    }
    /// Leave the stage with its outcome, and release it.
    pub fn exit_stage(&self, run_id: &str, stage: &str, status: &str, at: jiff::Timestamp) -> Result<(), StateError> {
        let _ = (run_id, stage, status, at);
        todo!("issue 11")
    }
    pub fn stages(&self, run_id: &str) -> Result<Vec<StageRow>, StateError> {
        let _ = run_id;
        todo!("issue 11")
    }

    // --- steps ---
    pub fn start_attempt(&self, run_id: &str, stage: &str, step: &str, attempt: u32, at: jiff::Timestamp) -> Result<(), StateError> {
        let _ = (run_id, stage, step, attempt, at);
        todo!("issue 11")
    }
    pub fn finish_attempt(&self, row: &AttemptRow) -> Result<(), StateError> {
        let _ = row;
        todo!("issue 11")
    }
    /// A step's final record; at most one per (run, stage, step).
    pub fn finish_step(&self, row: &StepRow) -> Result<(), StateError> {
        let _ = row;
        todo!("issue 11")
    }
    pub fn finished_steps(&self, run_id: &str) -> Result<Vec<StepRow>, StateError> {
        let _ = run_id;
        todo!("issue 11")
    }
    pub fn attempts(&self, run_id: &str) -> Result<Vec<AttemptRow>, StateError> {
        let _ = run_id;
        todo!("issue 11")
    }

    // --- gates ---
    pub fn record_gate_evaluations(&self, rows: &[GateEvaluationRow]) -> Result<(), StateError> {
        let _ = rows;
        todo!("issue 11")
    }
    /// The latest evaluation of each gate of the stage for the run.
    pub fn latest_gate_evaluations(&self, run_id: &str, stage: &str) -> Result<Vec<GateEvaluationRow>, StateError> {
        let _ = (run_id, stage);
        todo!("issue 11")
    }
    pub fn record_approval(&self, row: &ApprovalRow) -> Result<(), StateError> {
        let _ = row;
        todo!("issue 11")
    }
    pub fn approvals(&self, run_id: &str, stage: &str) -> Result<Vec<ApprovalRow>, StateError> {
        let _ = (run_id, stage);
        todo!("issue 11")
    }
    /// Returns the new override's id.
    pub fn record_override(&self, row: &OverrideRow) -> Result<i64, StateError> {
        let _ = row;
        todo!("issue 11")
    }
    /// Overrides of the run that apply to the stage, unused and unexpired at `now`.
    pub fn active_overrides(&self, run_id: &str, stage: &str, now: jiff::Timestamp) -> Result<Vec<OverrideRow>, StateError> {
        let _ = (run_id, stage, now);
        todo!("issue 11")
    }
    pub fn use_override(&self, id: i64, at: jiff::Timestamp) -> Result<(), StateError> {
        let _ = (id, at);
        todo!("issue 11")
    }
    /// Every override of a run, used or not.
    pub fn overrides(&self, run_id: &str) -> Result<Vec<OverrideRow>, StateError> {
        let _ = run_id;
        todo!("issue 11")
    }
    /// Runs of the pipeline whose artifact has this version (newest first), for `explain --artifact`.
    pub fn runs_with_version(&self, pipeline: &str, version: &str) -> Result<Vec<RunRow>, StateError> {
        let _ = (pipeline, version);
        todo!("issue 11")
    }
}
