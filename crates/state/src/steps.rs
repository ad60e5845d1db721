//! Steps: every attempt as it starts and ends (an append-only log: an attempt cut short
//! by a killed runner stays, started and never finished), and each step's final record,
//! at most one per run, stage and step: what resume reads to never run a finished step
//! again.

use rusqlite::{Connection, OptionalExtension, params};

use super::runs::run_exists;
use super::{AttemptRow, Failure, StateError, StepRow, Store, from_ts, from_ts_opt, json_raw, ts};

/// An attempt starts.
const START_ATTEMPT: &str = "INSERT INTO step_attempts (run_id, stage, step, attempt, started_at) \
     VALUES (?1, ?2, ?3, ?4, ?5)";
/// The latest unfinished start of an attempt.
const OPEN_ATTEMPT: &str = "SELECT id FROM step_attempts \
     WHERE run_id = ?1 AND stage = ?2 AND step = ?3 AND attempt = ?4 AND finished_at IS NULL \
     ORDER BY id DESC LIMIT 1";
/// How an attempt whose start is recorded ended.
const FINISH_ATTEMPT: &str = "UPDATE step_attempts SET finished_at = ?2, status = ?3, \
     summary = ?4, report = ?5, log = ?6 WHERE id = ?1";
/// A step's final record; a second for the same step changes nothing.
const FINISH_STEP: &str = "INSERT INTO step_results (run_id, stage, step, status, summary, \
     attempts, record, finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
     ON CONFLICT (run_id, stage, step) DO NOTHING";
/// Each transition of a group commit begins a savepoint of its own...
const SAVEPOINT: &str = "SAVEPOINT transition";
/// ...and releases it when it is done.
const RELEASE: &str = "RELEASE transition";
/// A refused transition of a group commit undone.
const ROLL_BACK_TO_SAVEPOINT: &str = "ROLLBACK TO transition";

/// The statements of this module every run makes: prepared before the run starts
/// ([`super::Store::open_ahead`]).
pub(super) const RUN_STATEMENTS: &[&str] = &[
    START_ATTEMPT,
    OPEN_ATTEMPT,
    FINISH_ATTEMPT,
    FINISH_STEP,
    SAVEPOINT,
    RELEASE,
];

impl Store {
    /// Record that an attempt of a step starts.
    pub fn start_attempt(
        &self,
        run_id: &str,
        stage: &str,
        step: &str,
        attempt: u32,
        at: jiff::Timestamp,
    ) -> Result<(), StateError> {
        self.write(|tx| self.record_attempt_start(tx, run_id, stage, step, attempt, at))
    }

    /// Record how an attempt ended: completes the latest unfinished start of that
    /// attempt (or records the whole attempt when its start was never recorded).
    pub fn finish_attempt(&self, row: &AttemptRow) -> Result<(), StateError> {
        self.write(|tx| self.record_attempt_end(tx, row))
    }

    /// A step's final record; at most one per (run, stage, step): a second is refused,
    /// since it would mean a finished step ran again.
    pub fn finish_step(&self, row: &StepRow) -> Result<(), StateError> {
        self.write(|tx| self.record_step_result(tx, row))
    }

    /// [`Store::finish_attempt`] of a step's last attempt and [`Store::finish_step`] in
    /// one transaction: a runner killed between the two cannot leave a finished last
    /// attempt without the step's record (which resume would run again), and a step
    /// costs one commit less.
    pub fn finish_attempt_and_step(
        &self,
        attempt: &AttemptRow,
        step: &StepRow,
    ) -> Result<(), StateError> {
        self.write(|tx| {
            self.record_step_transition(
                tx,
                &StepTransition::LastAttemptAndStepFinished(attempt.clone(), step.clone()),
            )
        })
    }

    /// Several step transitions, possibly of different steps, in ONE transaction (one
    /// commit: group commit). Each is recorded as [`Store::start_attempt`],
    /// [`Store::finish_attempt`], [`Store::finish_step`] or
    /// [`Store::finish_attempt_and_step`] would, inside a savepoint of its own, so one
    /// that is refused (a step finishing twice) is undone alone and the others are
    /// still recorded. The outcome of each, in order; when the commit itself fails,
    /// every one fails with its error.
    pub fn record_step_transitions(
        &self,
        transitions: &[StepTransition],
    ) -> Vec<Result<(), StateError>> {
        self.record_step_transitions_on(&self.lock(), transitions)
    }

    /// [`Store::record_step_transitions`], but only if no other thread of this process
    /// is using the store at this moment: `None` (nothing recorded) when one is, for
    /// the caller to queue them instead.
    pub fn record_step_transitions_if_free(
        &self,
        transitions: &[StepTransition],
    ) -> Option<Vec<Result<(), StateError>>> {
        let conn = self.lock_if_free()?;
        Some(self.record_step_transitions_on(&conn, transitions))
    }

    fn record_step_transitions_on(
        &self,
        conn: &Connection,
        transitions: &[StepTransition],
    ) -> Vec<Result<(), StateError>> {
        if let [transition] = transitions {
            // Alone, the transaction itself undoes a refused transition.
            return vec![self.write_on(conn, |tx| self.record_step_transition(tx, transition))];
        }
        let outcomes = self.write_on(conn, |tx| {
            let mut outcomes = Vec::with_capacity(transitions.len());
            for transition in transitions {
                tx.prepare_cached(SAVEPOINT)?.execute([])?;
                let outcome = self.record_step_transition(tx, transition);
                if outcome.is_err() {
                    tx.prepare_cached(ROLL_BACK_TO_SAVEPOINT)?.execute([])?;
                }
                tx.prepare_cached(RELEASE)?.execute([])?;
                outcomes.push(outcome.map_err(|e| self.error(e)));
            }
            Ok(outcomes)
        });
        match outcomes {
            Ok(outcomes) => outcomes,
            Err(e) => transitions.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// The run's finished steps, in the order they finished.
    pub fn finished_steps(&self, run_id: &str) -> Result<Vec<StepRow>, StateError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT run_id, stage, step, status, summary, attempts, record, finished_at \
                     FROM step_results WHERE run_id = ?1 ORDER BY rowid",
                )?
                .query_map([run_id], |row| {
                    Ok(StepRow {
                        run_id: row.get(0)?,
                        stage: row.get(1)?,
                        step: row.get(2)?,
                        status: row.get(3)?,
                        summary: row.get(4)?,
                        attempts: row.get(5)?,
                        record: json_raw(row.get(6)?),
                        finished_at: from_ts(row.get(7)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Every recorded attempt of the run, in the order they started; an attempt whose
    /// `finished_at` is `None` was running when its runner stopped (or still runs).
    pub fn attempts(&self, run_id: &str) -> Result<Vec<AttemptRow>, StateError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT run_id, stage, step, attempt, started_at, finished_at, status, \
                     summary, report, log FROM step_attempts WHERE run_id = ?1 ORDER BY id",
                )?
                .query_map([run_id], |row| {
                    Ok(AttemptRow {
                        run_id: row.get(0)?,
                        stage: row.get(1)?,
                        step: row.get(2)?,
                        attempt: row.get(3)?,
                        started_at: from_ts(row.get(4)?),
                        finished_at: from_ts_opt(row.get(5)?),
                        status: row.get(6)?,
                        summary: row.get(7)?,
                        report: row.get::<_, Option<String>>(8)?.map(json_raw),
                        log: row.get(9)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}

/// A transition of a step, for [`Store::record_step_transitions`].
#[derive(Debug, Clone)]
pub enum StepTransition {
    /// [`Store::start_attempt`].
    AttemptStarted {
        run_id: String,
        stage: String,
        step: String,
        attempt: u32,
        at: jiff::Timestamp,
    },
    /// [`Store::finish_attempt`].
    AttemptFinished(AttemptRow),
    /// [`Store::finish_step`].
    StepFinished(StepRow),
    /// [`Store::finish_attempt_and_step`].
    LastAttemptAndStepFinished(AttemptRow, StepRow),
}

impl Store {
    /// An insert refused by the foreign key to `runs` is a run not recorded here.
    fn unknown_run_or(&self, e: rusqlite::Error, run_id: &str) -> Failure {
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
            {
                self.no_such_run(run_id)
            }
            _ => Failure::Sql(e),
        }
    }

    fn record_step_transition(
        &self,
        tx: &Connection,
        transition: &StepTransition,
    ) -> Result<(), Failure> {
        match transition {
            StepTransition::AttemptStarted {
                run_id,
                stage,
                step,
                attempt,
                at,
            } => self.record_attempt_start(tx, run_id, stage, step, *attempt, *at),
            StepTransition::AttemptFinished(row) => self.record_attempt_end(tx, row),
            StepTransition::StepFinished(row) => self.record_step_result(tx, row),
            StepTransition::LastAttemptAndStepFinished(attempt, step) => {
                self.record_attempt_end(tx, attempt)?;
                self.record_step_result(tx, step)
            }
        }
    }

    fn record_attempt_start(
        &self,
        tx: &Connection,
        run_id: &str,
        stage: &str,
        step: &str,
        attempt: u32,
        at: jiff::Timestamp,
    ) -> Result<(), Failure> {
        // The foreign key refuses an unknown run (no lookup of our own: this is the
        // hot path of every step).
        tx.prepare_cached(START_ATTEMPT)?
            .execute(params![run_id, stage, step, attempt, ts(at)])
            .map_err(|e| self.unknown_run_or(e, run_id))?;
        Ok(())
    }

    fn record_attempt_end(&self, tx: &Connection, row: &AttemptRow) -> Result<(), Failure> {
        let report = row.report.as_ref().map(|r| r.get());
        let open: Option<i64> = tx
            .prepare_cached(OPEN_ATTEMPT)?
            .query_row(params![row.run_id, row.stage, row.step, row.attempt], |r| {
                r.get(0)
            })
            .optional()?;
        let finished_at = row.finished_at.map(ts);
        match open {
            Some(id) => {
                tx.prepare_cached(FINISH_ATTEMPT)?.execute(params![
                    id,
                    finished_at,
                    row.status,
                    row.summary,
                    report,
                    row.log
                ])?;
            }
            None => {
                if !run_exists(tx, &row.run_id)? {
                    return Err(self.no_such_run(&row.run_id));
                }
                tx.prepare_cached(
                    "INSERT INTO step_attempts (run_id, stage, step, attempt, started_at, \
                     finished_at, status, summary, report, log) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?
                .execute(params![
                    row.run_id,
                    row.stage,
                    row.step,
                    row.attempt,
                    ts(row.started_at),
                    finished_at,
                    row.status,
                    row.summary,
                    report,
                    row.log
                ])?;
            }
        }
        Ok(())
    }

    fn record_step_result(&self, tx: &Connection, row: &StepRow) -> Result<(), Failure> {
        let record = row.record.get();
        let inserted = tx
            .prepare_cached(FINISH_STEP)?
            .execute(params![
                row.run_id,
                row.stage,
                row.step,
                row.status,
                row.summary,
                row.attempts,
                record,
                ts(row.finished_at)
            ])
            .map_err(|e| self.unknown_run_or(e, &row.run_id))?;
        if inserted == 0 {
            return Err(self.refusal(format!(
                "step `{}` of stage `{}` of run `{}` already has a final record; a finished step is never run again",
                row.step, row.stage, row.run_id
            )));
        }
        Ok(())
    }
}
