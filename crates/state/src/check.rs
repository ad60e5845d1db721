//! Consistency of the record: what the chaos test (and a curious user) asks after a
//! runner was killed at a random moment. SQLite's own checks (page structure, foreign
//! keys) plus the invariants the store's transactions keep: a run that ended has an
//! end and no holder and holds no stage, a superseded run names its successor, a
//! stage left has a status, a step's final record (unless skipped) follows a finished attempt of it.

use super::{StateError, Store};

/// Each invariant: a query listing the rows that break it, and how to say so.
const INVARIANTS: &[(&str, &str)] = &[
    (
        "SELECT run_id FROM runs WHERE state IN ('passed', 'warned', 'failed', 'superseded') \
         AND (finished_at IS NULL OR holder_pid IS NOT NULL)",
        "run `{}` ended but has no end time or still names a runner process",
    ),
    (
        "SELECT run_id FROM runs WHERE state = 'running' AND holder_pid IS NULL",
        "run `{}` is recorded running with no runner process",
    ),
    (
        "SELECT run_id FROM runs WHERE state = 'superseded' AND superseded_by IS NULL",
        "run `{}` is superseded by no recorded run",
    ),
    (
        "SELECT c.run_id || '` holds stage `' || c.stage FROM stage_claims c \
         JOIN runs r ON r.run_id = c.run_id \
         WHERE r.state IN ('passed', 'warned', 'failed', 'superseded')",
        "run `{}` although it ended",
    ),
    (
        "SELECT run_id || '` stage `' || stage FROM run_stages \
         WHERE (exited_at IS NULL) <> (status IS NULL)",
        "run `{}` has an exit time without a status, or a status without an exit time",
    ),
    (
        "SELECT s.run_id || '` step `' || s.stage || '.' || s.step FROM step_results s \
         WHERE s.status <> 'skipped' AND NOT EXISTS (SELECT 1 FROM step_attempts a \
         WHERE a.run_id = s.run_id AND a.stage = s.stage AND a.step = s.step \
         AND a.finished_at IS NOT NULL)",
        "run `{}` has a final record but no finished attempt (and was not skipped)",
    ),
];

impl Store {
    /// Everything wrong with the record, one sentence each; empty when consistent.
    pub fn consistency_problems(&self) -> Result<Vec<String>, StateError> {
        self.read(|conn| {
            let mut problems = Vec::new();
            let integrity: Vec<String> = conn
                .prepare("PRAGMA integrity_check")?
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            if integrity != ["ok"] {
                problems.extend(integrity.into_iter().map(|p| format!("SQLite: {p}")));
            }
            let foreign: Vec<(String, i64)> = conn
                .prepare("PRAGMA foreign_key_check")?
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            problems.extend(foreign.into_iter().map(|(table, row)| {
                format!("row {row} of `{table}` names a run that does not exist")
            }));
            for (query, message) in INVARIANTS {
                let found: Vec<String> = conn
                    .prepare(query)?
                    .query_map([], |row| row.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                problems.extend(found.into_iter().map(|what| message.replace("{}", &what)));
            }
            Ok(problems)
        })
    }
}
