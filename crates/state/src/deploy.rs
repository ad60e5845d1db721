//! The deployment record: each deployment a step made (a rollback is a deployment of
//! its own, naming the one it undoes), each lifecycle step of each target, and every
//! target's record of its current and last good revision. Target records are keyed by
//! application and target name and outlive runs: they are what a rollback reads, also
//! after a crash and `sluice resume`.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::runs::run_exists;
use super::{StateError, Store, from_ts, from_ts_opt, ts};

/// A revision installed, or being installed, on a target (the contract's `revision`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionRow {
    pub deployment_id: String,
    pub label: String,
    /// `sha256:<hex>` of the bundle.
    pub digest: String,
    /// Folder on the target that holds the bundle.
    pub archive: String,
    /// Files its Install copied (absolute paths on the target).
    pub installed: Vec<String>,
    pub run_id: String,
}

/// What a target is known to be running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostState {
    Fresh,
    Installing,
    Healthy,
    Failed,
}

impl HostState {
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Fresh => "fresh",
            HostState::Installing => "installing",
            HostState::Healthy => "healthy",
            HostState::Failed => "failed",
        }
    }

    fn parse(word: &str) -> HostState {
        match word {
            "installing" => HostState::Installing,
            "healthy" => HostState::Healthy,
            "failed" => HostState::Failed,
            _ => HostState::Fresh,
        }
    }
}

/// A target's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRecordRow {
    pub application: String,
    pub target: String,
    pub state: HostState,
    pub current: Option<RevisionRow>,
    pub last_good: Option<RevisionRow>,
    pub updated_at: jiff::Timestamp,
}

/// A deployment about to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeployment {
    pub run_id: String,
    pub stage: String,
    pub step: String,
    pub application: String,
    pub deployment_group: String,
    pub label: String,
    pub digest: String,
    /// `deploy` or `rollback`.
    pub kind: String,
    pub rollback_of: Option<String>,
    pub config: String,
    pub targets: Vec<String>,
}

/// A deployment, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentRow {
    /// `d-<run>-<n>`.
    pub id: String,
    pub run_id: String,
    pub stage: String,
    pub step: String,
    pub application: String,
    pub deployment_group: String,
    pub label: String,
    pub digest: String,
    pub kind: String,
    pub rollback_of: Option<String>,
    pub config: String,
    pub targets: Vec<String>,
    /// `in-progress`, `succeeded`, `failed`, `stopped` or `interrupted`.
    pub state: String,
    pub reason: Option<String>,
    pub started_at: jiff::Timestamp,
    pub finished_at: Option<jiff::Timestamp>,
}

/// One lifecycle step of one target in a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentEventRow {
    pub id: i64,
    pub deployment_id: String,
    pub target: String,
    /// A lifecycle event (`BeforeInstall`), or `Bake`, `Health`, `Skip`.
    pub event: String,
    /// `started`, `succeeded`, `failed` or `skipped`.
    pub state: String,
    pub detail: String,
    pub at: jiff::Timestamp,
}

const DEPLOYMENT_STATES: [&str; 5] = [
    "in-progress",
    "succeeded",
    "failed",
    "stopped",
    "interrupted",
];
const EVENT_STATES: [&str; 4] = ["started", "succeeded", "failed", "skipped"];

/// The columns [`deployment_from_row`] reads, in its order (a macro: `concat!` takes
/// literals only).
macro_rules! deployment_columns {
    () => {
        "id, run_id, stage, step, application, deployment_group, label, digest, kind, \
         rollback_of, config, targets, state, reason, started_at, finished_at"
    };
}
const DEPLOYMENT_COLUMNS: &str = deployment_columns!();
const RUN_DEPLOYMENTS: &str = concat!(
    "SELECT ",
    deployment_columns!(),
    " FROM deployments WHERE run_id = ?1 ORDER BY started_at, rowid"
);

/// The statements of this module every run makes: prepared before the run starts
/// ([`super::Store::open_ahead`]).
pub(super) const RUN_STATEMENTS: &[&str] = &[RUN_DEPLOYMENTS];

fn deployment_from_row(row: &Row<'_>) -> rusqlite::Result<DeploymentRow> {
    let targets: String = row.get(11)?;
    Ok(DeploymentRow {
        id: row.get(0)?,
        run_id: row.get(1)?,
        stage: row.get(2)?,
        step: row.get(3)?,
        application: row.get(4)?,
        deployment_group: row.get(5)?,
        label: row.get(6)?,
        digest: row.get(7)?,
        kind: row.get(8)?,
        rollback_of: row.get(9)?,
        config: row.get(10)?,
        targets: serde_json::from_str(&targets).unwrap_or_default(),
        state: row.get(12)?,
        reason: row.get(13)?,
        started_at: from_ts(row.get(14)?),
        finished_at: from_ts_opt(row.get(15)?),
    })
}

const EVENT_COLUMNS: &str = "id, deployment_id, target, event, state, detail, at";

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<DeploymentEventRow> {
    Ok(DeploymentEventRow {
        id: row.get(0)?,
        deployment_id: row.get(1)?,
        target: row.get(2)?,
        event: row.get(3)?,
        state: row.get(4)?,
        detail: row.get(5)?,
        at: from_ts(row.get(6)?),
    })
}

fn load_deployment(conn: &Connection, id: &str) -> rusqlite::Result<Option<DeploymentRow>> {
    conn.prepare_cached(&format!(
        "SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE id = ?1"
    ))?
    .query_row([id], deployment_from_row)
    .optional()
}

fn revision_json(rev: &Option<RevisionRow>) -> Option<String> {
    rev.as_ref()
        .map(|r| serde_json::to_string(r).expect("a revision always serializes"))
}

fn revision_from_json(text: Option<String>) -> Option<RevisionRow> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

impl Store {
    /// Record the start of a deployment and return its id, `d-<run>-<n>` (n counts the
    /// run's deployments from 1). Deployments of the same run, stage and step still
    /// `in-progress` (their runner died) are recorded as `interrupted` first.
    pub fn begin_deployment(
        &self,
        new: &NewDeployment,
        at: jiff::Timestamp,
    ) -> Result<String, StateError> {
        if !matches!(new.kind.as_str(), "deploy" | "rollback") {
            return Err(StateError::Sql {
                path: self.path.clone(),
                message: format!(
                    "deployment kind `{}` is neither deploy nor rollback",
                    new.kind
                ),
            });
        }
        self.write(|tx| {
            if !run_exists(tx, &new.run_id)? {
                return Err(self.no_such_run(&new.run_id));
            }
            tx.prepare_cached(
                "UPDATE deployments SET state = 'interrupted', finished_at = ?4, \
                 reason = 'the runner stopped during this deployment' \
                 WHERE run_id = ?1 AND stage = ?2 AND step = ?3 AND state = 'in-progress'",
            )?
            .execute(params![new.run_id, new.stage, new.step, ts(at)])?;
            let count: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM deployments WHERE run_id = ?1")?
                .query_row([&new.run_id], |r| r.get(0))?;
            let id = format!("d-{}-{}", new.run_id, count + 1);
            tx.prepare_cached(
                "INSERT INTO deployments (id, run_id, stage, step, application, \
                 deployment_group, label, digest, kind, rollback_of, config, targets, state, \
                 started_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
                 'in-progress', ?13)",
            )?
            .execute(params![
                id,
                new.run_id,
                new.stage,
                new.step,
                new.application,
                new.deployment_group,
                new.label,
                new.digest,
                new.kind,
                new.rollback_of,
                new.config,
                serde_json::to_string(&new.targets).expect("strings serialize"),
                ts(at)
            ])?;
            Ok(id)
        })
    }

    /// Record the end of a deployment: `succeeded`, `failed` or `stopped`, with why.
    /// A deployment already ended keeps its first end.
    pub fn finish_deployment(
        &self,
        id: &str,
        state: &str,
        reason: &str,
        at: jiff::Timestamp,
    ) -> Result<(), StateError> {
        if !DEPLOYMENT_STATES[1..].contains(&state) {
            return Err(self.error(self.refusal(format!(
                "deployment state `{state}` is not one of {}",
                DEPLOYMENT_STATES[1..].join(", ")
            ))));
        }
        self.write(|tx| {
            if load_deployment(tx, id)?.is_none() {
                return Err(self.refusal(format!("no deployment `{id}`")));
            }
            tx.prepare_cached(
                "UPDATE deployments SET state = ?2, reason = ?3, finished_at = ?4 \
                 WHERE id = ?1 AND state = 'in-progress'",
            )?
            .execute(params![id, state, reason, ts(at)])?;
            Ok(())
        })
    }

    /// Record one lifecycle step of one target (`state`: started, succeeded, failed,
    /// skipped). Returns the event's id.
    pub fn record_deployment_event(
        &self,
        deployment_id: &str,
        target: &str,
        event: &str,
        state: &str,
        detail: &str,
        at: jiff::Timestamp,
    ) -> Result<i64, StateError> {
        if !EVENT_STATES.contains(&state) {
            return Err(self.error(self.refusal(format!(
                "event state `{state}` is not one of {}",
                EVENT_STATES.join(", ")
            ))));
        }
        self.write(|tx| {
            if load_deployment(tx, deployment_id)?.is_none() {
                return Err(self.refusal(format!("no deployment `{deployment_id}`")));
            }
            tx.prepare_cached(
                "INSERT INTO deployment_events (deployment_id, target, event, state, detail, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![deployment_id, target, event, state, detail, ts(at)])?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// A deployment by id.
    pub fn deployment(&self, id: &str) -> Result<Option<DeploymentRow>, StateError> {
        self.read(|conn| Ok(load_deployment(conn, id)?))
    }

    /// The deployments of a run, oldest first.
    pub fn deployments(&self, run_id: &str) -> Result<Vec<DeploymentRow>, StateError> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(RUN_DEPLOYMENTS)?
                .query_map([run_id], deployment_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// The lifecycle steps recorded for a deployment, in order.
    pub fn deployment_events(
        &self,
        deployment_id: &str,
    ) -> Result<Vec<DeploymentEventRow>, StateError> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM deployment_events WHERE deployment_id = ?1 \
                     ORDER BY id"
                ))?
                .query_map([deployment_id], event_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// The record of `target` for `application`; a target never deployed to is
    /// `fresh`, with no revisions.
    pub fn target_record(
        &self,
        application: &str,
        target: &str,
    ) -> Result<TargetRecordRow, StateError> {
        self.read(|conn| {
            let row = conn
                .prepare_cached(
                    "SELECT state, current, last_good, updated_at FROM target_records \
                     WHERE application = ?1 AND target = ?2",
                )?
                .query_row([application, target], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .optional()?;
            Ok(match row {
                Some((state, current, last_good, updated)) => TargetRecordRow {
                    application: application.to_string(),
                    target: target.to_string(),
                    state: HostState::parse(&state),
                    current: revision_from_json(current),
                    last_good: revision_from_json(last_good),
                    updated_at: from_ts(updated),
                },
                None => TargetRecordRow {
                    application: application.to_string(),
                    target: target.to_string(),
                    state: HostState::Fresh,
                    current: None,
                    last_good: None,
                    updated_at: jiff::Timestamp::UNIX_EPOCH,
                },
            })
        })
    }

    /// Record a target's new state (`updated_at` is set to `at`).
    pub fn write_target_record(
        &self,
        record: &TargetRecordRow,
        at: jiff::Timestamp,
    ) -> Result<(), StateError> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO target_records (application, target, state, current, last_good, \
                 updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (application, target) DO UPDATE SET state = ?3, current = ?4, \
                 last_good = ?5, updated_at = ?6",
            )?
            .execute(params![
                record.application,
                record.target,
                record.state.as_str(),
                revision_json(&record.current),
                revision_json(&record.last_good),
                ts(at)
            ])?;
            Ok(())
        })
    }

    /// Every target record of `application`, by target name.
    pub fn target_records(&self, application: &str) -> Result<Vec<TargetRecordRow>, StateError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT target, state, current, last_good, updated_at FROM target_records \
                     WHERE application = ?1 ORDER BY target",
                )?
                .query_map([application], |r| {
                    Ok(TargetRecordRow {
                        application: application.to_string(),
                        target: r.get(0)?,
                        state: HostState::parse(&r.get::<_, String>(1)?),
                        current: revision_from_json(r.get(2)?),
                        last_good: revision_from_json(r.get(3)?),
                        updated_at: from_ts(r.get(4)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}
