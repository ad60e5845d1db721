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
//!
//! Files: `schema` (opening, pragmas, numbered migrations), `holder` (which process
//! drives a run or holds a stage, and whether it still lives), `runs`, `stages`
//! (queue, claims, supersede), `steps` (attempts and final step records),
//! `gate_records` (gate evaluations, approvals, overrides), `health` (monitor checks,
//! data points, bakes), `deploy` (deployments, their lifecycle steps, target records), `check` (the record's
//! consistency, for the chaos test) and `checkpoint` (WAL checkpoints on a thread). Timestamps are stored as integer nanoseconds
//! since the Unix epoch (UTC).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;
use serde::Serialize;

mod check;
mod checkpoint;
mod deploy;
mod gate_records;
mod health;
mod holder;
mod runs;
mod schema;
mod stages;
mod steps;
#[cfg(test)]
mod tests;

pub use deploy::{
    DeploymentEventRow, DeploymentRow, HostState, NewDeployment, RevisionRow, TargetRecordRow,
};
pub use health::{BakeRow, CheckOutcome, CheckRow, DataPointRow, PointCounts};
pub use schema::SCHEMA_VERSION;
pub use stages::{StageHolder, StageOccupancy};
pub use steps::StepTransition;

/// Why the store could not do what was asked. Every message names the database file.
#[derive(Debug, Clone, thiserror::Error)]
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
    /// `claim_run` while the run's runner still lives.
    #[error(
        "run `{run_id}` is being driven by pid {pid} on host {hostname} (state database {path}); wait for it, or stop that process first"
    )]
    RunHeld {
        path: PathBuf,
        run_id: String,
        pid: u32,
        hostname: String,
    },
    /// The run has ended (passed, warned, failed or superseded): it cannot be driven again.
    #[error("run `{run_id}` already ended ({state}) in {path}; start a new run instead")]
    RunEnded {
        path: PathBuf,
        run_id: String,
        state: RunState,
    },
}

/// A run's overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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

impl RunState {
    /// The word stored in the database and shown to people (kebab-case, as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Waiting => "waiting",
            RunState::Passed => "passed",
            RunState::Warned => "warned",
            RunState::Failed => "failed",
            RunState::Superseded => "superseded",
            RunState::Interrupted => "interrupted",
        }
    }

    /// The state a stored word names.
    pub fn parse(word: &str) -> Option<RunState> {
        Some(match word {
            "running" => RunState::Running,
            "waiting" => RunState::Waiting,
            "passed" => RunState::Passed,
            "warned" => RunState::Warned,
            "failed" => RunState::Failed,
            "superseded" => RunState::Superseded,
            "interrupted" => RunState::Interrupted,
            _ => return None,
        })
    }

    /// Whether the run has ended for good: nothing drives it again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunState::Passed | RunState::Warned | RunState::Failed | RunState::Superseded
        )
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    /// The process driving the run (while `Running`); `None` once it stopped.
    pub holder: Option<Holder>,
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
    /// The plugin's report as JSON text (written as it came, shown as JSON).
    pub report: Option<Box<serde_json::value::RawValue>>,
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
    /// The executor's whole `StepRecord` as JSON text, so a resumed run reports it
    /// unchanged. Text, not a parsed value: serialised once, on the step's task.
    pub record: Box<serde_json::value::RawValue>,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    pub pid: u32,
    /// The process's start time in clock ticks since boot (`/proc/<pid>/stat` field 22),
    /// so a reused PID is not mistaken for the holder.
    pub start_ticks: u64,
    /// `/proc/sys/kernel/random/boot_id`: a holder from before a reboot is dead.
    pub boot_id: String,
    pub hostname: String,
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
    /// Only runs that reached this stage: queued for it (waiting at its gates),
    /// entered it, or were superseded while waiting for it.
    pub stage: Option<String>,
    /// At most this many runs; 0 means no limit.
    pub limit: usize,
}

/// The state database of one pipeline folder (or wherever `--state` points).
///
/// One connection, behind a mutex: a `Store` is shared by every task of a run
/// (`Arc<Store>`); a second one checkpoints on a thread of its own (`checkpoint`). Other processes (a second `sluice run`, `sluice approve`) open their
/// own; SQLite's locks and the busy timeout serialize their writes.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// Copies the WAL back into the database file off the recording path.
    _checkpointer: Option<checkpoint::Checkpointer>,
}

/// A database opened before its [`Store`] (see [`Store::open_ahead`]): its checkpoint
/// thread and, when opening it there worked, the store's own connection. Dropping it
/// unused stops the thread and closes the connection.
#[derive(Debug)]
pub struct OpenedAhead {
    file: PathBuf,
    checkpointer: checkpoint::Checkpointer,
    /// `None` when it could not be opened ahead ([`Store::open_after`] then opens it,
    /// and reports why it cannot).
    conn: Option<Connection>,
}

/// Why a closure given to [`Store::read`]/[`Store::write`] failed: SQL, or a refusal
/// that already is a [`StateError`].
enum Failure {
    Sql(rusqlite::Error),
    State(StateError),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Failure {
        Failure::Sql(e)
    }
}

impl From<StateError> for Failure {
    fn from(e: StateError) -> Failure {
        Failure::State(e)
    }
}

impl Store {
    /// Open (creating folders and file as needed), switch to WAL, apply migrations.
    ///
    /// The runner hides `.sluice/` from steps behind an empty tmpfs in its own mount
    /// namespace. SQLite resolves symbolic links in the path it is given (so that `-wal`
    /// and `-shm` sit next to the real file), and `/proc/self/fd/N/state.db` resolves to
    /// the covered path: open the store *before* the cover goes up and keep this one
    /// `Store` (and its connection, which keeps the `-wal` and `-shm` files open) for the
    /// whole run.
    pub fn open(path: &Path) -> Result<Store, StateError> {
        Store::open_after(path, None)
    }

    /// Open the existing database at `path` now, on the caller's thread, ahead of the
    /// [`Store::open_after`] that takes it over (a runner calls it on a thread of its
    /// own while the pipeline loads). First its checkpoint thread: that connection is
    /// the first to open the file, so it reads back the write-ahead log the previous
    /// process left, and its first checkpoint copies that log into the database. When
    /// that checkpoint is done before the store's first write, the write starts the log
    /// over from its beginning, and the log never holds more than one run's pages. Then,
    /// once the log is read back, the store's own connection: pragmas, migrations, the
    /// schema read and every statement a run makes compiled, none of it left for the
    /// run's own path. `None` when the database does not exist yet (nothing to read
    /// back or migrate) or the thread cannot start.
    pub fn open_ahead(path: &Path) -> Option<OpenedAhead> {
        let file = std::fs::canonicalize(path).ok()?;
        let checkpointer = checkpoint::Checkpointer::start(&file)?;
        // A connection that opens during the read-back finds the log locked.
        checkpointer.wait_until_read_back(std::time::Duration::from_secs(1));
        let conn = connect(&file).ok();
        if let Some(conn) = &conn {
            // One that fails to compile is compiled again at its use, which reports it.
            let _ = prepare_run_statements(conn);
        }
        Some(OpenedAhead {
            file,
            checkpointer,
            conn,
        })
    }

    /// [`Store::open`], taking over what [`Store::open_ahead`] opened for the same file
    /// (another file's is closed, and this one opened here).
    pub fn open_after(path: &Path, ahead: Option<OpenedAhead>) -> Result<Store, StateError> {
        let ahead = ahead.filter(|a| std::fs::canonicalize(path).is_ok_and(|p| p == a.file));
        match ahead {
            Some(OpenedAhead {
                checkpointer,
                conn: Some(conn),
                ..
            }) => Store::with_connection(path, conn, Some(checkpointer)),
            Some(OpenedAhead { checkpointer, .. }) => {
                Store::with_connection(path, connect(path)?, Some(checkpointer))
            }
            None => Store::open_with(path, true),
        }
    }

    /// Open, with a checkpoint thread of its own or none.
    fn open_with(path: &Path, checkpoints: bool) -> Result<Store, StateError> {
        let conn = connect(path)?;
        let checkpointer = checkpoints
            .then(|| checkpoint::Checkpointer::start(path))
            .flatten();
        Store::with_connection(path, conn, checkpointer)
    }

    /// The store of an open connection, and the checkpoint thread that keeps its log
    /// short (if any).
    fn with_connection(
        path: &Path,
        conn: Connection,
        checkpointer: Option<checkpoint::Checkpointer>,
    ) -> Result<Store, StateError> {
        if checkpointer.is_some() {
            conn.pragma_update(None, "wal_autocheckpoint", checkpoint::SAFETY_NET_PAGES)
                .map_err(|e| sql_error(path, e))?;
        }
        Ok(Store {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            _checkpointer: checkpointer,
        })
    }

    /// [`Store::open`] for the commands that only look (`status`, `history`, `explain`)
    /// or write a line (`approve`, `override`): a missing database is an error saying
    /// so, not a new empty file, and no checkpoint thread is started for them.
    pub fn open_existing(path: &Path) -> Result<Store, StateError> {
        if !path.exists() {
            return Err(StateError::Open {
                path: path.to_path_buf(),
                message: "no such file: no run was recorded here yet (start one with `sluice run`, or point --state at the database)".into(),
            });
        }
        Store::open_with(path, false)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database (after migrations: [`SCHEMA_VERSION`]).
    pub fn schema_version(&self) -> Result<u32, StateError> {
        self.read(|conn| Ok(schema::user_version(conn)?))
    }

    /// Fold the write-ahead log into the database and truncate it, through the open
    /// file (no path is looked up: the runner's folders may be covered by then), so the
    /// next process that opens the database has no log to replay. A runner calls it
    /// when it is done with the store.
    pub fn checkpoint(&self) -> Result<(), StateError> {
        self.lock()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| sql_error(&self.path, e))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn error(&self, failure: Failure) -> StateError {
        match failure {
            Failure::State(e) => e,
            Failure::Sql(e) => sql_error(&self.path, e),
        }
    }

    /// Run queries outside any write transaction (each statement sees a consistent
    /// snapshot; a multi-statement read takes a deferred transaction).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Failure>) -> Result<T, StateError> {
        self.transaction(&self.lock(), BEGIN_READ, f)
    }

    /// One write transaction, committed before this returns. `IMMEDIATE`: the write
    /// lock is taken at the start, so two processes never both read and then both fail
    /// to upgrade; a busy database is waited on (busy timeout), not failed.
    fn write<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Failure>) -> Result<T, StateError> {
        self.write_on(&self.lock(), f)
    }

    /// The connection, if no other thread of this process is using it at this moment.
    fn lock_if_free(&self) -> Option<MutexGuard<'_, Connection>> {
        match self.conn.try_lock() {
            Ok(conn) => Some(conn),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    fn write_on<T>(
        &self,
        conn: &Connection,
        f: impl FnOnce(&Connection) -> Result<T, Failure>,
    ) -> Result<T, StateError> {
        self.transaction(conn, BEGIN_WRITE, f)
    }

    /// `f` in a transaction begun with `begin`, committed, or rolled back when it fails.
    /// `BEGIN`, `COMMIT` and `ROLLBACK` are prepared once per connection (cached), not
    /// parsed again for every transaction as `rusqlite::Transaction` does: a run makes
    /// one or two transactions per step.
    fn transaction<T>(
        &self,
        conn: &Connection,
        begin: &str,
        f: impl FnOnce(&Connection) -> Result<T, Failure>,
    ) -> Result<T, StateError> {
        let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
        let roll_back = || {
            if !conn.is_autocommit() {
                let _ = run(ROLLBACK);
            }
        };
        // A transaction left open (a panic in `f` under an earlier call) is undone.
        roll_back();
        run(begin).map_err(|e| sql_error(&self.path, e))?;
        let value = match f(conn) {
            Ok(value) => value,
            Err(e) => {
                roll_back();
                return Err(self.error(e));
            }
        };
        if let Err(e) = run(COMMIT) {
            roll_back();
            return Err(sql_error(&self.path, e));
        }
        Ok(value)
    }

    fn no_such_run(&self, run_id: &str) -> Failure {
        Failure::State(StateError::NoSuchRun {
            path: self.path.clone(),
            run_id: run_id.to_string(),
        })
    }

    fn refusal(&self, message: String) -> Failure {
        Failure::State(StateError::Sql {
            path: self.path.clone(),
            message,
        })
    }
}

/// The SQL of a schema-1 database, as the first Sluice with a state store wrote it,
/// holding two runs of the pipeline `release` (one passed; one killed in stage `test`,
/// its runner on host `build-7`). For tests that an old database is migrated.
pub const SCHEMA_1_FIXTURE_SQL: &str = include_str!("fixtures/schema-v1.sql");

/// Write [`SCHEMA_1_FIXTURE_SQL`] as a database at `path` (creating its folder); any
/// later [`Store::open`] (any `sluice` command) migrates it. Refuses an existing file.
pub fn write_schema_1_fixture(path: &Path) -> Result<(), StateError> {
    let open_error = |message: String| StateError::Open {
        path: path.to_path_buf(),
        message,
    };
    if path.exists() {
        return Err(open_error(
            "already exists; the fixture is written to a new file".into(),
        ));
    }
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| open_error(e.to_string()))?;
    }
    let conn = Connection::open(path).map_err(|e| open_error(e.to_string()))?;
    conn.execute_batch(SCHEMA_1_FIXTURE_SQL)
        .map_err(|e| sql_error(path, e))
}

fn sql_error(path: &Path, e: rusqlite::Error) -> StateError {
    let mut message = e.to_string();
    if let rusqlite::Error::SqliteFailure(code, _) = &e
        && code.code == rusqlite::ErrorCode::DatabaseBusy
    {
        message.push_str(&format!(
            " (another sluice kept it locked for more than {} s)",
            schema::BUSY_TIMEOUT.as_secs()
        ));
    }
    StateError::Sql {
        path: path.to_path_buf(),
        message,
    }
}

/// A timestamp as stored: nanoseconds since the Unix epoch (fits in i64 until 2262).
fn ts(t: jiff::Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(if t < jiff::Timestamp::UNIX_EPOCH {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// A stored timestamp (every i64 is within jiff's range).
fn from_ts(n: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_nanosecond(i128::from(n)).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

fn from_ts_opt(n: Option<i64>) -> Option<jiff::Timestamp> {
    n.map(from_ts)
}

fn json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

/// How many prepared statements a connection keeps.
const STATEMENTS_KEPT: usize = 64;

// A transaction's own statements, prepared once per connection ([`Store::transaction`]).
const BEGIN_READ: &str = "BEGIN DEFERRED";
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
const COMMIT: &str = "COMMIT";
const ROLLBACK: &str = "ROLLBACK";

/// Every statement a run makes (BEGIN, COMMIT and the modules' own).
fn run_statements() -> impl Iterator<Item = &'static str> {
    let modules = [
        runs::RUN_STATEMENTS,
        stages::RUN_STATEMENTS,
        steps::RUN_STATEMENTS,
        gate_records::RUN_STATEMENTS,
        deploy::RUN_STATEMENTS,
    ];
    [BEGIN_READ, BEGIN_WRITE, COMMIT]
        .into_iter()
        .chain(modules.into_iter().flatten().copied())
}

/// Compile [`run_statements`] into `conn`'s statement cache, so that none is compiled
/// on the run's path: about thirty, a millisecond of CPU together, most of it on the
/// runner's main thread before the first step starts and after the last ends.
fn prepare_run_statements(conn: &Connection) -> rusqlite::Result<()> {
    for sql in run_statements() {
        conn.prepare_cached(sql)?;
    }
    Ok(())
}

/// The store's connection to `path`: opened, configured, migrated, its schema read.
fn connect(path: &Path) -> Result<Connection, StateError> {
    let oversized_log = checkpoint::log_outgrew_its_limit(path);
    let conn = schema::open(path)?;
    if oversized_log {
        // The log kept growing across runs that never let it start over: fold it
        // back once, here, so reading it back stays bounded.
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
    // Every statement a run makes stays prepared (rusqlite keeps 16 by default; a run
    // uses about 30, and one evicted is parsed again at its next use).
    conn.set_prepared_statement_cache_capacity(STATEMENTS_KEPT);
    // SQLite reads the schema at a connection's first statement that needs it.
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
        .map_err(|e| sql_error(path, e))?;
    Ok(conn)
}

/// `value` as the JSON text a row stores ([`StepRow::record`], [`AttemptRow::report`]):
/// serialised once, straight to text. `null` should serialising fail, which only a map
/// with non-string keys would do.
pub fn stored_json(value: &impl Serialize) -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| json_null())
}

/// JSON text as stored; text that is not JSON (written by hand) reads as `null`.
fn json_raw(text: String) -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(text).unwrap_or_else(|_| json_null())
}

fn json_null() -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string("null".into()).expect("null is JSON")
}

fn json_value(text: Option<String>) -> serde_json::Value {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null)
}
