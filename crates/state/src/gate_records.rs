//! The gates' record: every evaluation (with since when its decision stands),
//! approvals and rejections, and overrides (one use each, optionally expiring).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::runs::run_exists;
use super::{
    ApprovalRow, GateEvaluationRow, OverrideRow, StateError, Store, from_ts, from_ts_opt,
    json_text, json_value, ts,
};

const EVALUATION_COLUMNS: &str = "run_id, stage, gate, kind, evaluated_at, decision, reason, \
     until, evidence, since";

fn evaluation_from_row(row: &Row<'_>) -> rusqlite::Result<GateEvaluationRow> {
    Ok(GateEvaluationRow {
        run_id: row.get(0)?,
        stage: row.get(1)?,
        gate: row.get(2)?,
        kind: row.get(3)?,
        evaluated_at: from_ts(row.get(4)?),
        decision: row.get(5)?,
        reason: row.get(6)?,
        until: from_ts_opt(row.get(7)?),
        evidence: json_value(row.get(8)?),
        since: from_ts(row.get(9)?),
    })
}

/// The columns [`override_from_row`] reads, in its order (a macro: `concat!` takes
/// literals only).
macro_rules! override_columns {
    () => {
        "id, run_id, gate, stage, actor, reason, created_at, expires_at, used_at"
    };
}
const OVERRIDE_COLUMNS: &str = override_columns!();
const RUN_OVERRIDES: &str = concat!(
    "SELECT ",
    override_columns!(),
    " FROM overrides WHERE run_id = ?1 ORDER BY id"
);

/// The statements of this module every run makes: prepared before the run starts
/// ([`super::Store::open_ahead`]).
pub(super) const RUN_STATEMENTS: &[&str] = &[RUN_OVERRIDES];

fn override_from_row(row: &Row<'_>) -> rusqlite::Result<OverrideRow> {
    Ok(OverrideRow {
        id: row.get(0)?,
        run_id: row.get(1)?,
        gate: row.get(2)?,
        stage: row.get(3)?,
        actor: row.get(4)?,
        reason: row.get(5)?,
        created_at: from_ts(row.get(6)?),
        expires_at: from_ts_opt(row.get(7)?),
        used_at: from_ts_opt(row.get(8)?),
    })
}

/// The decision and `since` of the latest evaluation of one gate.
fn latest_decision(
    conn: &Connection,
    row: &GateEvaluationRow,
) -> rusqlite::Result<Option<(String, i64)>> {
    conn.prepare_cached(
        "SELECT decision, since FROM gate_evaluations \
         WHERE run_id = ?1 AND stage = ?2 AND gate = ?3 ORDER BY id DESC LIMIT 1",
    )?
    .query_row([&row.run_id, &row.stage, &row.gate], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .optional()
}

impl Store {
    /// Record evaluations (normally every gate of a stage, evaluated at one instant), in
    /// one transaction. The store sets each row's `since`: the `since` of the gate's
    /// previous evaluation when its decision is the same (an unbroken series), else the
    /// row's own `evaluated_at`; the `since` given is ignored.
    pub fn record_gate_evaluations(&self, rows: &[GateEvaluationRow]) -> Result<(), StateError> {
        self.write(|tx| {
            let mut checked: Vec<&str> = Vec::new();
            for row in rows {
                if !checked.contains(&row.run_id.as_str()) {
                    if !run_exists(tx, &row.run_id)? {
                        return Err(self.no_such_run(&row.run_id));
                    }
                    checked.push(&row.run_id);
                }
                let since = match latest_decision(tx, row)? {
                    Some((decision, since)) if decision == row.decision => since,
                    _ => ts(row.evaluated_at),
                };
                tx.prepare_cached(
                    "INSERT INTO gate_evaluations (run_id, stage, gate, kind, evaluated_at, \
                     decision, reason, until, evidence, since) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?
                .execute(params![
                    row.run_id,
                    row.stage,
                    row.gate,
                    row.kind,
                    ts(row.evaluated_at),
                    row.decision,
                    row.reason,
                    row.until.map(ts),
                    json_text(&row.evidence),
                    since
                ])?;
            }
            Ok(())
        })
    }

    /// The latest evaluation of each gate of the stage for the run, in the order they
    /// were recorded.
    pub fn latest_gate_evaluations(
        &self,
        run_id: &str,
        stage: &str,
    ) -> Result<Vec<GateEvaluationRow>, StateError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {EVALUATION_COLUMNS} FROM gate_evaluations g \
                     WHERE run_id = ?1 AND stage = ?2 AND id = (SELECT MAX(id) \
                     FROM gate_evaluations WHERE run_id = g.run_id AND stage = g.stage \
                     AND gate = g.gate) ORDER BY id"
                ))?
                .query_map([run_id, stage], evaluation_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Every evaluation of the stage's gates for the run, oldest first (the ledger).
    pub fn gate_evaluations(
        &self,
        run_id: &str,
        stage: &str,
    ) -> Result<Vec<GateEvaluationRow>, StateError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {EVALUATION_COLUMNS} FROM gate_evaluations \
                     WHERE run_id = ?1 AND stage = ?2 ORDER BY id"
                ))?
                .query_map([run_id, stage], evaluation_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Record an approval or a rejection (`action` is `approve` or `reject`).
    pub fn record_approval(&self, row: &ApprovalRow) -> Result<(), StateError> {
        if row.action != "approve" && row.action != "reject" {
            return Err(StateError::Sql {
                path: self.path.clone(),
                message: format!(
                    "an approval's action is `approve` or `reject`, not `{}`",
                    row.action
                ),
            });
        }
        self.write(|tx| {
            if !run_exists(tx, &row.run_id)? {
                return Err(self.no_such_run(&row.run_id));
            }
            tx.prepare_cached(
                "INSERT INTO approvals (run_id, stage, action, actor, reason, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                row.run_id,
                row.stage,
                row.action,
                row.actor,
                row.reason,
                ts(row.at)
            ])?;
            Ok(())
        })
    }

    /// Approvals and rejections of the run's entry into the stage, oldest first.
    pub fn approvals(&self, run_id: &str, stage: &str) -> Result<Vec<ApprovalRow>, StateError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT run_id, stage, action, actor, reason, at FROM approvals \
                     WHERE run_id = ?1 AND stage = ?2 ORDER BY id",
                )?
                .query_map([run_id, stage], |row| {
                    Ok(ApprovalRow {
                        run_id: row.get(0)?,
                        stage: row.get(1)?,
                        action: row.get(2)?,
                        actor: row.get(3)?,
                        reason: row.get(4)?,
                        at: from_ts(row.get(5)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Record an override (its `id` and `used_at` are ignored). Returns the new
    /// override's id.
    pub fn record_override(&self, row: &OverrideRow) -> Result<i64, StateError> {
        self.write(|tx| {
            if !run_exists(tx, &row.run_id)? {
                return Err(self.no_such_run(&row.run_id));
            }
            tx.prepare_cached(
                "INSERT INTO overrides (run_id, gate, stage, actor, reason, created_at, \
                 expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                row.run_id,
                row.gate,
                row.stage,
                row.actor,
                row.reason,
                ts(row.created_at),
                row.expires_at.map(ts)
            ])?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Overrides of the run that apply to the stage (given for it, or for any stage),
    /// unused and unexpired at `now`, oldest first.
    pub fn active_overrides(
        &self,
        run_id: &str,
        stage: &str,
        now: jiff::Timestamp,
    ) -> Result<Vec<OverrideRow>, StateError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {OVERRIDE_COLUMNS} FROM overrides WHERE run_id = ?1 \
                     AND used_at IS NULL AND (stage IS NULL OR stage = ?2) \
                     AND (expires_at IS NULL OR expires_at > ?3) ORDER BY id"
                ))?
                .query_map(params![run_id, stage, ts(now)], override_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Mark an override used (an override is used once): refused when it already was.
    pub fn use_override(&self, id: i64, at: jiff::Timestamp) -> Result<(), StateError> {
        self.write(|tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE overrides SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL",
                )?
                .execute(params![id, ts(at)])?;
            if changed == 1 {
                return Ok(());
            }
            let used: Option<Option<i64>> = tx
                .prepare_cached("SELECT used_at FROM overrides WHERE id = ?1")?
                .query_row([id], |row| row.get(0))
                .optional()?;
            Err(self.refusal(match used {
                Some(Some(when)) => format!(
                    "override {id} was already used at {}; an override lets a run past a gate once",
                    from_ts(when)
                ),
                _ => format!("no override {id}"),
            }))
        })
    }

    /// Every override of a run, used or not, oldest first.
    pub fn overrides(&self, run_id: &str) -> Result<Vec<OverrideRow>, StateError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(RUN_OVERRIDES)?
                .query_map([run_id], override_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}
