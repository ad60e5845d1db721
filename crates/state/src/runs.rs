//! Runs: creation, who drives them (claims by resume, reaping dead runners), their
//! state, their artifact, and the queries `status`, `history` and `explain --artifact`
//! make.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{
    ArtifactRow, Failure, HistoryFilter, Holder, NewRun, RunRow, RunState, StateError, Store,
    Trigger, from_ts, from_ts_opt, ts,
};

const RUN_EXISTS: &str = "SELECT 1 FROM runs WHERE run_id = ?1";
const CREATE_RUN: &str = "INSERT INTO runs (run_id, pipeline, pipeline_file, pipeline_digest, \
     run_dir, actor, ci, git_commit, state, started_at, holder_pid, holder_start_ticks, \
     holder_boot_id, holder_hostname) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'running', ?9, ?10, ?11, ?12, ?13)";
const SET_RUN_STATE: &str = "UPDATE runs SET state = ?2, reason = ?3, finished_at = ?4, \
     current_stage = CASE WHEN ?5 THEN NULL ELSE current_stage END WHERE run_id = ?1";
/// A run that ended is driven by no process.
const RELEASE_RUN_HOLDER: &str = "UPDATE runs SET holder_pid = NULL, \
     holder_start_ticks = NULL, holder_boot_id = NULL, holder_hostname = NULL \
     WHERE run_id = ?1";
/// A run that ended holds no stage.
const RELEASE_RUN_STAGES: &str = "DELETE FROM stage_claims WHERE run_id = ?1";

/// The columns [`run_from_row`] reads, in its order (a macro, for the statements that
/// are constants: `concat!` takes literals only).
macro_rules! run_columns {
    () => {
        "run_id, pipeline, pipeline_file, pipeline_digest, run_dir, actor, ci, git_commit, \
         state, reason, started_at, finished_at, current_stage, artifact_name, \
         artifact_version, artifact_digest, superseded_by, holder_pid, holder_start_ticks, \
         holder_boot_id, holder_hostname"
    };
}
const RUN_COLUMNS: &str = run_columns!();
const LOAD_RUN: &str = concat!("SELECT ", run_columns!(), " FROM runs WHERE run_id = ?1");
const RUNNING_RUNS: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM runs WHERE state = 'running' ORDER BY id"
);

/// The statements of this module every run makes: prepared before the run starts
/// ([`super::Store::open_ahead`]).
pub(super) const RUN_STATEMENTS: &[&str] = &[
    LOAD_RUN,
    RUNNING_RUNS,
    RUN_EXISTS,
    CREATE_RUN,
    SET_RUN_STATE,
    RELEASE_RUN_HOLDER,
    RELEASE_RUN_STAGES,
];

pub(super) fn run_from_row(row: &Row<'_>) -> rusqlite::Result<RunRow> {
    let state_word: String = row.get(8)?;
    let state = RunState::parse(&state_word).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            8,
            rusqlite::types::Type::Text,
            format!("unknown run state `{state_word}`").into(),
        )
    })?;
    let ci: String = row.get(6)?;
    let ci: Vec<(String, String)> = serde_json::from_str(&ci).unwrap_or_default();
    let artifact = match row.get::<_, Option<String>>(15)? {
        Some(digest) => Some(ArtifactRow {
            name: row.get::<_, Option<String>>(13)?.unwrap_or_default(),
            version: row.get(14)?,
            digest,
        }),
        None => None,
    };
    let holder = match row.get::<_, Option<i64>>(17)? {
        Some(pid) => Some(Holder {
            pid: pid as u32,
            start_ticks: row.get::<_, i64>(18)? as u64,
            boot_id: row.get(19)?,
            hostname: row.get(20)?,
        }),
        None => None,
    };
    Ok(RunRow {
        run_id: row.get(0)?,
        pipeline: row.get(1)?,
        pipeline_file: row.get::<_, String>(2)?.into(),
        pipeline_digest: row.get(3)?,
        run_dir: row.get::<_, String>(4)?.into(),
        trigger: Trigger {
            actor: row.get(5)?,
            ci,
            git_commit: row.get(7)?,
        },
        state,
        reason: row.get(9)?,
        started_at: from_ts(row.get(10)?),
        finished_at: from_ts_opt(row.get(11)?),
        current_stage: row.get(12)?,
        artifact,
        superseded_by: row.get(16)?,
        holder,
    })
}

pub(super) fn load_run(conn: &Connection, run_id: &str) -> rusqlite::Result<Option<RunRow>> {
    conn.prepare_cached(LOAD_RUN)?
        .query_row([run_id], run_from_row)
        .optional()
}

pub(super) fn run_exists(conn: &Connection, run_id: &str) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(RUN_EXISTS)?
        .query_row([run_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Record that `run_id` stopped being driven: interrupted, with why.
pub(super) fn mark_interrupted(
    conn: &Connection,
    run_id: &str,
    reason: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE runs SET state = 'interrupted', reason = ?2, holder_pid = NULL, \
         holder_start_ticks = NULL, holder_boot_id = NULL, holder_hostname = NULL \
         WHERE run_id = ?1",
    )?
    .execute(params![run_id, reason])?;
    Ok(())
}

impl Store {
    /// Record a new run, `Running`, driven by `holder`. A run id used before is refused.
    pub fn create_run(&self, run: &NewRun, holder: &Holder) -> Result<(), StateError> {
        let ci = serde_json::to_string(&run.trigger.ci).unwrap_or_else(|_| "[]".into());
        self.write(|tx| {
            if load_run(tx, &run.run_id)?.is_some() {
                return Err(self.refusal(format!(
                    "a run `{}` is already recorded; run ids must be unique",
                    run.run_id
                )));
            }
            tx.prepare_cached(CREATE_RUN)?.execute(params![
                run.run_id,
                run.pipeline,
                run.pipeline_file.to_string_lossy(),
                run.pipeline_digest,
                run.run_dir.to_string_lossy(),
                run.trigger.actor,
                ci,
                run.trigger.git_commit,
                ts(run.started_at),
                holder.pid,
                holder.start_ticks as i64,
                holder.boot_id,
                holder.hostname,
            ])?;
            Ok(())
        })
    }

    /// Take over driving a run (resume): refused while its holder is alive
    /// ([`StateError::RunHeld`]) and for a run that ended ([`StateError::RunEnded`]).
    /// A waiting, interrupted, or running-but-orphaned run becomes `Running`, held by
    /// `holder`; its `reason` is kept. Returns the run as it now stands.
    pub fn claim_run(&self, run_id: &str, holder: &Holder) -> Result<RunRow, StateError> {
        self.write(|tx| {
            let run = load_run(tx, run_id)?.ok_or_else(|| self.no_such_run(run_id))?;
            if run.state.is_final() {
                return Err(Failure::State(StateError::RunEnded {
                    path: self.path.clone(),
                    run_id: run_id.to_string(),
                    state: run.state,
                }));
            }
            if let Some(current) = &run.holder
                && !current.same_process(holder)
                && current.is_alive()
            {
                return Err(Failure::State(StateError::RunHeld {
                    path: self.path.clone(),
                    run_id: run_id.to_string(),
                    pid: current.pid,
                    hostname: current.hostname.clone(),
                }));
            }
            tx.prepare_cached(
                "UPDATE runs SET state = 'running', finished_at = NULL, holder_pid = ?2, \
                 holder_start_ticks = ?3, holder_boot_id = ?4, holder_hostname = ?5 \
                 WHERE run_id = ?1",
            )?
            .execute(params![
                run_id,
                holder.pid,
                holder.start_ticks as i64,
                holder.boot_id,
                holder.hostname
            ])?;
            load_run(tx, run_id)?.ok_or_else(|| self.no_such_run(run_id))
        })
    }

    /// Set the run's state and why. A final state (passed, warned, failed, superseded)
    /// sets `finished_at`, clears the holder and `current_stage`, and releases every
    /// stage the run still holds. Any other state keeps the holder: a process that
    /// records `waiting` or `interrupted` is about to exit, and until it has, a resume
    /// must not drive the run beside it.
    pub fn set_run_state(
        &self,
        run_id: &str,
        state: RunState,
        reason: Option<&str>,
        at: jiff::Timestamp,
    ) -> Result<(), StateError> {
        self.write(|tx| {
            if !run_exists(tx, run_id)? {
                return Err(self.no_such_run(run_id));
            }
            let finished_at = state.is_final().then(|| ts(at));
            tx.prepare_cached(SET_RUN_STATE)?.execute(params![
                run_id,
                state.as_str(),
                reason,
                finished_at,
                state.is_final()
            ])?;
            if state.is_final() {
                tx.prepare_cached(RELEASE_RUN_HOLDER)?.execute([run_id])?;
            }
            if state.is_final() {
                tx.prepare_cached(RELEASE_RUN_STAGES)?.execute([run_id])?;
            }
            Ok(())
        })
    }

    /// Record the artifact the run promotes (name, version, digest).
    pub fn set_run_artifact(&self, run_id: &str, artifact: &ArtifactRow) -> Result<(), StateError> {
        self.write(|tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE runs SET artifact_name = ?2, artifact_version = ?3, \
                     artifact_digest = ?4 WHERE run_id = ?1",
                )?
                .execute(params![
                    run_id,
                    artifact.name,
                    artifact.version,
                    artifact.digest
                ])?;
            if changed == 0 {
                return Err(self.no_such_run(run_id));
            }
            Ok(())
        })
    }

    pub fn run(&self, run_id: &str) -> Result<RunRow, StateError> {
        self.read(|conn| load_run(conn, run_id)?.ok_or_else(|| self.no_such_run(run_id)))
    }

    /// The latest run of a pipeline (for `status` without a run id).
    pub fn latest_run(&self, pipeline: &str) -> Result<Option<RunRow>, StateError> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE pipeline = ?1 ORDER BY id DESC LIMIT 1"
                ))?
                .query_row([pipeline], run_from_row)
                .optional()?)
        })
    }

    /// Newest first (in the order the runs were created).
    pub fn history(&self, filter: &HistoryFilter) -> Result<Vec<RunRow>, StateError> {
        let limit = if filter.limit == 0 {
            -1
        } else {
            filter.limit as i64
        };
        // One statement per combination of filters, so that each can use its index.
        let mut conditions = Vec::new();
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::new();
        if let Some(pipeline) = &filter.pipeline {
            values.push(pipeline);
            conditions.push(format!("pipeline = ?{}", values.len()));
        }
        if let Some(stage) = &filter.stage {
            values.push(stage);
            conditions.push(format!(
                "EXISTS (SELECT 1 FROM run_stages s WHERE s.run_id = runs.run_id AND s.stage = ?{})",
                values.len()
            ));
        }
        values.push(&limit);
        let filter_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs {filter_sql} ORDER BY id DESC LIMIT ?{}",
            values.len()
        );
        self.read(|conn| {
            let rows = conn
                .prepare_cached(&sql)?
                .query_map(values.as_slice(), run_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Runs whose state is `Running` but whose holder is dead: recorded `Interrupted`.
    /// Returns their ids, oldest first.
    pub fn reap_dead_runs(&self, at: jiff::Timestamp) -> Result<Vec<String>, StateError> {
        self.write(|tx| {
            let running = tx
                .prepare_cached(RUNNING_RUNS)?
                .query_map([], run_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut reaped = Vec::new();
            for run in running {
                let reason = match &run.holder {
                    Some(holder) if holder.is_alive() => continue,
                    Some(holder) => format!(
                        "its runner ({}) was found gone at {at} without having recorded an end",
                        holder.describe()
                    ),
                    None => format!("found at {at} with no runner process recorded for it"),
                };
                mark_interrupted(tx, &run.run_id, &reason)?;
                reaped.push(run.run_id);
            }
            Ok(reaped)
        })
    }

    /// Runs of the pipeline whose artifact has this version (newest first), for `explain --artifact`.
    pub fn runs_with_version(
        &self,
        pipeline: &str,
        version: &str,
    ) -> Result<Vec<RunRow>, StateError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE pipeline = ?1 AND artifact_version = ?2 \
                     ORDER BY id DESC"
                ))?
                .query_map([pipeline, version], run_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}
