//! Opening the database and its numbered migrations.
//!
//! The schema version lives in SQLite's own `PRAGMA user_version` (an integer in the
//! file header, no table of our own). [`MIGRATIONS`]`[n - 1]` takes a database from
//! version `n - 1` to `n`; on open, each missing one is applied in its own `IMMEDIATE`
//! transaction that re-reads the version first, so two runners opening one new file at
//! once apply each migration once. A version above [`SCHEMA_VERSION`] is refused
//! ([`StateError::TooNew`]) before anything is written. Why not a migration crate: see
//! docs/design/0013-durable-runs.md.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::{StateError, sql_error};

/// How long a statement waits for another process's write lock before failing. Writes
/// are short transactions; a wait this long means a stuck process.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The size (bytes) the `-wal` file is cut back to when it starts over.
pub(super) const WAL_SIZE_LIMIT: i64 = 16 << 20;

/// Version 1: runs, their passage through stages, step attempts and final step
/// records: what resume needs.
const V1_RUNS_STAGES_STEPS: &str = "
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    pipeline TEXT NOT NULL,
    pipeline_file TEXT NOT NULL,
    pipeline_digest TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    actor TEXT NOT NULL,
    ci TEXT NOT NULL DEFAULT '[]',
    git_commit TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    current_stage TEXT,
    artifact_name TEXT,
    artifact_version TEXT,
    artifact_digest TEXT,
    holder_pid INTEGER,
    holder_start_ticks INTEGER,
    holder_boot_id TEXT,
    holder_hostname TEXT
);
CREATE INDEX runs_by_pipeline ON runs (pipeline, id);
CREATE INDEX runs_by_state ON runs (state);

CREATE TABLE run_stages (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    stage TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    entered_at INTEGER,
    exited_at INTEGER,
    status TEXT,
    PRIMARY KEY (run_id, stage)
);

CREATE TABLE step_attempts (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    stage TEXT NOT NULL,
    step TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    status TEXT,
    summary TEXT,
    report TEXT,
    log TEXT
);
CREATE INDEX step_attempts_by_step ON step_attempts (run_id, stage, step, attempt);

CREATE TABLE step_results (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    stage TEXT NOT NULL,
    step TEXT NOT NULL,
    status TEXT NOT NULL,
    summary TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    record TEXT NOT NULL,
    finished_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, stage, step)
);
";

/// Version 2: promotion. Who supersedes whom, one run per stage (claims), and the
/// gates' record: every evaluation, approvals and rejections, overrides. Adds the
/// indexes `explain --artifact` (runs by version) and the stage queues (runs waiting
/// at a stage) use.
const V2_PROMOTION_GATES: &str = "
ALTER TABLE runs ADD COLUMN superseded_by TEXT;
CREATE INDEX runs_by_version ON runs (pipeline, artifact_version, id);
CREATE INDEX run_stages_waiting ON run_stages (stage) WHERE entered_at IS NULL AND status IS NULL;

CREATE TABLE stage_claims (
    pipeline TEXT NOT NULL,
    stage TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    claimed_at INTEGER NOT NULL,
    holder_pid INTEGER NOT NULL,
    holder_start_ticks INTEGER NOT NULL,
    holder_boot_id TEXT NOT NULL,
    holder_hostname TEXT NOT NULL,
    PRIMARY KEY (pipeline, stage)
);

CREATE TABLE gate_evaluations (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    stage TEXT NOT NULL,
    gate TEXT NOT NULL,
    kind TEXT NOT NULL,
    evaluated_at INTEGER NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    until INTEGER,
    evidence TEXT NOT NULL,
    since INTEGER NOT NULL
);
CREATE INDEX gate_evaluations_by_gate ON gate_evaluations (run_id, stage, gate, id);

CREATE TABLE approvals (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    stage TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('approve', 'reject')),
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX approvals_by_stage ON approvals (run_id, stage, id);

CREATE TABLE overrides (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    gate TEXT NOT NULL,
    stage TEXT,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    used_at INTEGER
);
CREATE INDEX overrides_by_run ON overrides (run_id, id);
";

/// Version 3: health signals. Every check a monitor ran (also the ones that yielded no
/// data: missing data is evidence too), the data points each yielded, and each stage's
/// bake. Monitor ids are shared by every pipeline that uses the store, so a
/// `sluice canary` process feeds the gates of any pipeline.
const V3_HEALTH_SIGNALS: &str = "
CREATE TABLE monitor_checks (
    id INTEGER PRIMARY KEY,
    monitor TEXT NOT NULL,
    source TEXT NOT NULL,
    scheduled_at INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('data', 'no-data', 'error')),
    positive INTEGER NOT NULL,
    negative INTEGER NOT NULL,
    summary TEXT NOT NULL
);
CREATE INDEX monitor_checks_by_monitor ON monitor_checks (monitor, finished_at);

CREATE TABLE data_points (
    id INTEGER PRIMARY KEY,
    check_id INTEGER NOT NULL REFERENCES monitor_checks (id),
    monitor TEXT NOT NULL,
    name TEXT NOT NULL,
    positive INTEGER NOT NULL,
    value REAL,
    detail TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX data_points_by_monitor ON data_points (monitor, at);

CREATE TABLE bakes (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    stage TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    positive INTEGER NOT NULL DEFAULT 0,
    negative INTEGER NOT NULL DEFAULT 0,
    finished_at INTEGER,
    outcome TEXT CHECK (outcome IN ('passed', 'failed', 'overridden')),
    detail TEXT,
    PRIMARY KEY (run_id, stage)
);
";

/// Version 4: deployments. Each deployment (and rollback, a deployment of its own) a
/// step made, each lifecycle step of each target, and every target's record: its
/// current and last good revision, so a rollback always knows where to go back to,
/// also after a crash. Target records are keyed by application and target name, not
/// by run: they outlive runs.
const V4_DEPLOYMENTS: &str = "
CREATE TABLE deployments (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    stage TEXT NOT NULL,
    step TEXT NOT NULL,
    application TEXT NOT NULL,
    deployment_group TEXT NOT NULL,
    label TEXT NOT NULL,
    digest TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('deploy', 'rollback')),
    rollback_of TEXT,
    config TEXT NOT NULL,
    targets TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('in-progress', 'succeeded', 'failed', 'stopped', 'interrupted')),
    reason TEXT,
    started_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX deployments_by_run ON deployments (run_id, started_at);

CREATE TABLE deployment_events (
    id INTEGER PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES deployments (id),
    target TEXT NOT NULL,
    event TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('started', 'succeeded', 'failed', 'skipped')),
    detail TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX deployment_events_by_deployment ON deployment_events (deployment_id, id);

CREATE TABLE target_records (
    application TEXT NOT NULL,
    target TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('fresh', 'installing', 'healthy', 'failed')),
    current TEXT,
    last_good TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (application, target)
);
";

/// Every migration, in order: entry `n - 1` takes version `n - 1` to `n`. Never edit a
/// released entry; add one.
pub(super) const MIGRATIONS: &[&str] = &[
    V1_RUNS_STAGES_STEPS,
    V2_PROMOTION_GATES,
    V3_HEALTH_SIGNALS,
    V4_DEPLOYMENTS,
];

/// The schema version this Sluice writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Open the database at `path` (creating its folder and the file), set the pragmas
/// and bring its schema to [`SCHEMA_VERSION`].
pub(super) fn open(path: &Path) -> Result<Connection, StateError> {
    open_at_version(path, SCHEMA_VERSION)
}

/// [`open`], migrating only up to `target` (tests build old databases with it).
pub(super) fn open_at_version(path: &Path, target: u32) -> Result<Connection, StateError> {
    let open_error = |message: String| StateError::Open {
        path: path.to_path_buf(),
        message,
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| open_error(format!("cannot create {}: {e}", parent.display())))?;
    }
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| open_error(e.to_string()))?;
    // The busy handler first: reading the header and switching a new file to WAL need
    // locks another opener may hold. A newer schema is refused before anything else.
    wait_when_busy(&conn).map_err(|e| open_error(e.to_string()))?;
    let found = retry_busy(|| user_version(&conn)).map_err(|e| open_error(e.to_string()))?;
    if found > SCHEMA_VERSION {
        return Err(StateError::TooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    configure(&conn).map_err(open_error)?;
    migrate(&mut conn, path, target)?;
    Ok(conn)
}

/// Pragmas of every connection (after the busy timeout).
fn configure(conn: &Connection) -> Result<(), String> {
    let sql = |e: rusqlite::Error| e.to_string();
    let mode: String =
        retry_busy(|| conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)))
            .map_err(sql)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!(
            "the file system refused write-ahead logging (journal mode stays `{mode}`)"
        ));
    }
    // NORMAL in WAL mode: a commit survives the process being killed at any moment (the
    // WAL is in the OS's page cache); only a power cut can lose the last commits, never
    // corrupt the file. See docs/design/0013-durable-runs.md.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sql)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(sql)?;
    // The WAL file keeps its largest size unless told otherwise: after a burst of
    // writes it is cut back to this when it starts over.
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
        .map_err(sql)?;
    // Closing the last connection neither checkpoints nor deletes the WAL: the
    // runner's connection closes after `.sluice/` is covered (no path to delete), and a
    // checkpoint at the end of every run was a third of what recording cost. The next
    // store to open checkpoints on its own thread, off the recording path.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .map_err(sql)?;
    Ok(())
}

/// Wait for a lock another connection holds for up to [`BUSY_TIMEOUT`], in short
/// sleeps: SQLite's own busy timeout sleeps 1, 2, 5, 10, 15, 20, 25 ms..., so a lock
/// held for a few hundred microseconds (a commit, reading the log back) cost a run
/// milliseconds. Here: 50 µs doubling up to 5 ms.
pub(super) fn wait_when_busy(conn: &Connection) -> rusqlite::Result<()> {
    fn handler(attempt: i32) -> bool {
        let attempt = attempt.max(0) as u32;
        if waited_before(attempt) >= BUSY_TIMEOUT {
            return false;
        }
        std::thread::sleep(busy_sleep(attempt));
        true
    }
    conn.busy_handler(Some(handler))
}

/// The sleep before retry `attempt` (from 0) of [`wait_when_busy`].
fn busy_sleep(attempt: u32) -> Duration {
    Duration::from_micros(50u64 << attempt.min(7)).min(Duration::from_millis(5))
}

/// The total slept before retry `attempt` of [`wait_when_busy`].
fn waited_before(attempt: u32) -> Duration {
    let doubling = attempt.min(7);
    let before_cap: Duration = (0..doubling).map(busy_sleep).sum();
    before_cap + busy_sleep(7) * attempt.saturating_sub(doubling)
}

/// Retry `f` while the database is busy, up to [`BUSY_TIMEOUT`]. For the statements
/// SQLite answers `SQLITE_BUSY` without calling the busy handler: switching the journal
/// mode (and reading the header meanwhile) while another connection opens the same new
/// file, where waiting inside SQLite could deadlock.
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_micros(250));
            }
            other => return other,
        }
    }
}

pub(super) fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

fn migrate(conn: &mut Connection, path: &Path, target: u32) -> Result<(), StateError> {
    let sql = |e: rusqlite::Error| sql_error(path, e);
    let found = user_version(conn).map_err(sql)?;
    if found > SCHEMA_VERSION {
        return Err(StateError::TooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for version in found + 1..=target {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql)?;
        // Another process may have migrated since we looked.
        let now = user_version(&tx).map_err(sql)?;
        if now > SCHEMA_VERSION {
            return Err(StateError::TooNew {
                path: path.to_path_buf(),
                found: now,
                supported: SCHEMA_VERSION,
            });
        }
        if now >= version {
            continue;
        }
        tx.execute_batch(MIGRATIONS[version as usize - 1])
            .map_err(|e| StateError::Sql {
                path: path.to_path_buf(),
                message: format!("migration to schema {version} failed: {e}"),
            })?;
        tx.pragma_update(None, "user_version", version)
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
    }
    Ok(())
}

#[cfg(test)]
mod busy_tests {
    use super::*;

    #[test]
    fn a_busy_database_is_retried_in_short_sleeps_for_the_whole_busy_timeout() {
        assert_eq!(busy_sleep(0), Duration::from_micros(50));
        assert_eq!(waited_before(3), Duration::from_micros(50 + 100 + 200));
        assert_eq!(busy_sleep(100), Duration::from_millis(5));
        let last = (0..).find(|a| waited_before(*a) >= BUSY_TIMEOUT).unwrap();
        assert!(waited_before(last - 1) < BUSY_TIMEOUT);
        assert!(waited_before(last) < BUSY_TIMEOUT + Duration::from_millis(6));
    }
}
