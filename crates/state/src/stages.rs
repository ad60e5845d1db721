//! A run's passage through stages: queueing at a stage's gates, superseding, claiming
//! the stage (one run per pipeline and stage at a time, a dead holder taken over) and
//! leaving it.
//!
//! Superseding follows CodePipeline's default (SUPERSEDED) mode: of the runs of one
//! pipeline waiting to enter one stage, only the newest keeps waiting; the older ones
//! end `superseded`. "Newer" is the order in which runs were created. A run that
//! arrives at a stage for which a newer run already queued (possible only after a
//! takeover or a late resume) is itself superseded at once: the version in a stage
//! never goes backwards. Likewise a run whose dead runner lost a stage to a takeover
//! and that resumes after a newer run went into that stage.

use rusqlite::{Connection, OptionalExtension, params};

use super::runs::{load_run, mark_interrupted};
use super::{
    Failure, Holder, RunRow, RunState, StageClaim, StageRow, StateError, Store, from_ts,
    from_ts_opt, ts,
};

const RUN_SEQ: &str = "SELECT id FROM runs WHERE run_id = ?1";
const NEWER_QUEUED: &str = "SELECT r.run_id FROM runs r WHERE r.pipeline = ?2 \
     AND r.id > ?3 AND r.state <> 'superseded' AND EXISTS (SELECT 1 FROM run_stages s \
     WHERE s.run_id = r.run_id AND s.stage = ?1) ORDER BY r.id DESC LIMIT 1";
const ENTERED: &str = "SELECT entered_at IS NOT NULL FROM run_stages \
     WHERE run_id = ?1 AND stage = ?2";
const STAGE_CLAIM: &str = "SELECT run_id, claimed_at, holder_pid, holder_start_ticks, \
     holder_boot_id, holder_hostname FROM stage_claims WHERE pipeline = ?1 AND stage = ?2";
const QUEUE: &str = "INSERT INTO run_stages (run_id, stage, queued_at) VALUES (?1, ?2, ?3) \
     ON CONFLICT (run_id, stage) DO NOTHING";
const SET_CURRENT_STAGE: &str = "UPDATE runs SET current_stage = ?2 WHERE run_id = ?1";
const OLDER_WAITING: &str = "SELECT r.run_id FROM run_stages s \
     CROSS JOIN runs r ON r.run_id = s.run_id \
     WHERE s.stage = ?1 AND r.pipeline = ?2 AND r.id < ?3 \
     AND s.entered_at IS NULL AND s.status IS NULL \
     AND r.state IN ('running', 'waiting', 'interrupted') ORDER BY r.id";
const CLAIM: &str = "INSERT INTO stage_claims (pipeline, stage, run_id, claimed_at, holder_pid, \
     holder_start_ticks, holder_boot_id, holder_hostname) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
     ON CONFLICT (pipeline, stage) DO UPDATE SET holder_pid = excluded.holder_pid, \
     holder_start_ticks = excluded.holder_start_ticks, \
     holder_boot_id = excluded.holder_boot_id, holder_hostname = excluded.holder_hostname";
const ENTER: &str = "INSERT INTO run_stages (run_id, stage, queued_at, entered_at) \
     VALUES (?1, ?2, ?3, ?3) \
     ON CONFLICT (run_id, stage) \
     DO UPDATE SET entered_at = COALESCE(entered_at, excluded.entered_at)";
const EXIT: &str = "UPDATE run_stages SET exited_at = ?3, status = ?4 \
     WHERE run_id = ?1 AND stage = ?2";
const RELEASE_STAGE: &str = "DELETE FROM stage_claims WHERE run_id = ?1 AND stage = ?2";
const LEAVE_CURRENT_STAGE: &str = "UPDATE runs SET current_stage = NULL \
     WHERE run_id = ?1 AND current_stage = ?2";

/// The statements of this module every run makes: prepared before the run starts
/// ([`super::Store::open_ahead`]).
pub(super) const RUN_STATEMENTS: &[&str] = &[
    RUN_SEQ,
    NEWER_QUEUED,
    ENTERED,
    STAGE_CLAIM,
    QUEUE,
    SET_CURRENT_STAGE,
    OLDER_WAITING,
    CLAIM,
    ENTER,
    EXIT,
    RELEASE_STAGE,
    LEAVE_CURRENT_STAGE,
];

/// Who holds a stage, and who waits for it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageOccupancy {
    pub pipeline: String,
    pub stage: String,
    /// The run that holds the stage, if any.
    pub holder: Option<StageHolder>,
    /// Runs waiting at the stage's gates (queued, not entered, not ended), oldest
    /// first. At most one after superseding, but a run's own record says so.
    pub queue: Vec<String>,
}

/// The claim on a stage.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageHolder {
    pub run_id: String,
    pub process: Holder,
    pub claimed_at: jiff::Timestamp,
    /// Whether that process still lives (a dead one is taken over by the next claim).
    pub alive: bool,
}

// Queries over the runs waiting at a stage start from `run_stages` (CROSS JOIN fixes
// the loop order), through the partial index `run_stages_waiting`: a handful of rows,
// however many runs the database holds.

/// The row id of a run (its creation order).
fn run_seq(conn: &Connection, run_id: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(RUN_SEQ)?
        .query_row([run_id], |row| row.get(0))
        .optional()
}

/// The newest run of `pipeline`, newer than `seq`, that queued for `stage` and was
/// not superseded there.
fn newer_queued(
    conn: &Connection,
    pipeline: &str,
    stage: &str,
    seq: i64,
) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(NEWER_QUEUED)?
        .query_row(params![stage, pipeline, seq], |row| row.get(0))
        .optional()
}

/// End `run_id` as superseded by `by` while it waited for `stage`.
fn supersede(
    conn: &Connection,
    run_id: &str,
    by: &str,
    stage: &str,
    at: jiff::Timestamp,
) -> rusqlite::Result<()> {
    let reason = format!("superseded by run `{by}`, a newer run waiting for stage `{stage}`");
    conn.prepare_cached(
        "UPDATE runs SET state = 'superseded', superseded_by = ?2, reason = ?3, \
         finished_at = ?4, current_stage = NULL, holder_pid = NULL, holder_start_ticks = NULL, \
         holder_boot_id = NULL, holder_hostname = NULL WHERE run_id = ?1",
    )?
    .execute(params![run_id, by, reason, ts(at)])?;
    conn.prepare_cached(
        "UPDATE run_stages SET status = 'superseded', exited_at = ?3 \
         WHERE run_id = ?1 AND stage = ?2 AND exited_at IS NULL",
    )?
    .execute(params![run_id, stage, ts(at)])?;
    conn.prepare_cached("DELETE FROM stage_claims WHERE run_id = ?1")?
        .execute([run_id])?;
    Ok(())
}

fn entered(conn: &Connection, run_id: &str, stage: &str) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(ENTERED)?
        .query_row([run_id, stage], |row| row.get::<_, bool>(0))
        .optional()?
        .unwrap_or(false))
}

fn stage_holder(
    conn: &Connection,
    pipeline: &str,
    stage: &str,
) -> rusqlite::Result<Option<StageHolder>> {
    conn.prepare_cached(STAGE_CLAIM)?
        .query_row([pipeline, stage], |row| {
            let process = Holder {
                pid: row.get::<_, i64>(2)? as u32,
                start_ticks: row.get::<_, i64>(3)? as u64,
                boot_id: row.get(4)?,
                hostname: row.get(5)?,
            };
            Ok(StageHolder {
                run_id: row.get(0)?,
                claimed_at: from_ts(row.get(1)?),
                alive: false,
                process,
            })
        })
        .optional()
}

impl Store {
    fn live_run(&self, conn: &Connection, run_id: &str) -> Result<(RunRow, i64), Failure> {
        let run = load_run(conn, run_id)?.ok_or_else(|| self.no_such_run(run_id))?;
        let seq = run_seq(conn, run_id)?.ok_or_else(|| self.no_such_run(run_id))?;
        Ok((run, seq))
    }

    fn ended(&self, run: &RunRow) -> Failure {
        Failure::State(StateError::RunEnded {
            path: self.path.clone(),
            run_id: run.run_id.clone(),
            state: run.state,
        })
    }

    /// Record that the run waits for a stage's gates (queued), superseding older runs of
    /// the same pipeline queued for the same stage. Returns the ids of the runs now
    /// superseded: older runs, or this run itself when a newer run already queued for
    /// the stage (or superseded it before). Queueing again (a resumed run) keeps the first `queued_at`; a run
    /// that already entered the stage supersedes no one.
    pub fn queue_for_stage(
        &self,
        run_id: &str,
        stage: &str,
        at: jiff::Timestamp,
    ) -> Result<Vec<String>, StateError> {
        self.write(|tx| {
            let (run, seq) = self.live_run(tx, run_id)?;
            if run.state == RunState::Superseded {
                return Ok(vec![run_id.to_string()]);
            }
            if run.state.is_final() {
                return Err(self.ended(&run));
            }
            tx.prepare_cached(QUEUE)?
                .execute(params![run_id, stage, ts(at)])?;
            tx.prepare_cached(SET_CURRENT_STAGE)?
                .execute([run_id, stage])?;
            if entered(tx, run_id, stage)? {
                return Ok(Vec::new());
            }
            if let Some(newer) = newer_queued(tx, &run.pipeline, stage, seq)? {
                supersede(tx, run_id, &newer, stage, at)?;
                return Ok(vec![run_id.to_string()]);
            }
            let older = tx
                .prepare_cached(OLDER_WAITING)?
                .query_map(params![stage, run.pipeline, seq], |row| {
                    row.get::<_, String>(0)
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for old in &older {
                supersede(tx, old, run_id, stage, at)?;
            }
            Ok(older)
        })
    }

    /// Take the stage (one run per stage and pipeline at a time); a holder that is dead
    /// is taken over: the run it drove is recorded interrupted, and a warning is logged.
    /// A run that does not hold the stage (not yet in it, or in it when its dead runner
    /// was taken over) is superseded instead when a newer run queued for the stage;
    /// a run already superseded gets [`StageClaim::Superseded`] (its waiting process
    /// learns it so). Holding sets the stage's `entered_at` (once) and the run's
    /// `current_stage`.
    pub fn claim_stage(
        &self,
        run_id: &str,
        stage: &str,
        holder: &Holder,
        at: jiff::Timestamp,
    ) -> Result<StageClaim, StateError> {
        self.write(|tx| {
            let (run, seq) = self.live_run(tx, run_id)?;
            if run.state == RunState::Superseded {
                return Ok(StageClaim::Superseded {
                    by: run.superseded_by.clone().unwrap_or_default(),
                });
            }
            if run.state.is_final() {
                return Err(self.ended(&run));
            }
            let current = stage_holder(tx, &run.pipeline, stage)?;
            let holds = current.as_ref().is_some_and(|c| c.run_id == run_id);
            // A run that does not hold the stage (not entered yet, or entered and then
            // taken over while its runner was dead) never follows a newer run into it.
            if !holds && let Some(newer) = newer_queued(tx, &run.pipeline, stage, seq)? {
                supersede(tx, run_id, &newer, stage, at)?;
                return Ok(StageClaim::Superseded { by: newer });
            }
            match current {
                Some(claim) if claim.run_id == run_id => {}
                Some(claim) => {
                    let other = load_run(tx, &claim.run_id)?;
                    let other_ended = other.as_ref().is_none_or(|r| r.state.is_final());
                    if !other_ended && claim.process.is_alive() {
                        return Ok(StageClaim::Busy {
                            holder_run: claim.run_id,
                        });
                    }
                    tracing::warn!(
                        "stage `{stage}` of pipeline `{}` was held by run {} ({}), which is gone: run {run_id} takes it over",
                        run.pipeline,
                        claim.run_id,
                        claim.process.describe(),
                    );
                    if other.is_some_and(|r| r.state == RunState::Running) {
                        mark_interrupted(
                            tx,
                            &claim.run_id,
                            &format!(
                                "its runner ({}) died while holding stage `{stage}`; run {run_id} took the stage over at {at}",
                                claim.process.describe()
                            ),
                        )?;
                    }
                    tx.prepare_cached(
                        "DELETE FROM stage_claims WHERE pipeline = ?1 AND stage = ?2",
                    )?
                    .execute([&run.pipeline, stage])?;
                }
                None => {}
            }
            tx.prepare_cached(
                CLAIM,
            )?
            .execute(params![
                run.pipeline,
                stage,
                run_id,
                ts(at),
                holder.pid,
                holder.start_ticks as i64,
                holder.boot_id,
                holder.hostname
            ])?;
            tx.prepare_cached(
                ENTER,
            )?
            .execute(params![run_id, stage, ts(at)])?;
            tx.prepare_cached(SET_CURRENT_STAGE)?
                .execute([run_id, stage])?;
            Ok(StageClaim::Held)
        })
    }

    /// Leave the stage with its outcome (`passed`, `warned`, `failed`), and release it.
    pub fn exit_stage(
        &self,
        run_id: &str,
        stage: &str,
        status: &str,
        at: jiff::Timestamp,
    ) -> Result<(), StateError> {
        self.write(|tx| {
            let changed = tx
                .prepare_cached(
                    EXIT,
                )?
                .execute(params![run_id, stage, ts(at), status])?;
            if changed == 0 {
                if load_run(tx, run_id)?.is_none() {
                    return Err(self.no_such_run(run_id));
                }
                return Err(self.refusal(format!(
                    "run `{run_id}` cannot leave stage `{stage}`: it never queued for it nor entered it"
                )));
            }
            tx.prepare_cached(RELEASE_STAGE)?
                .execute([run_id, stage])?;
            tx.prepare_cached(
                LEAVE_CURRENT_STAGE,
            )?
            .execute([run_id, stage])?;
            Ok(())
        })
    }

    /// The run's stages, in the order it reached them.
    pub fn stages(&self, run_id: &str) -> Result<Vec<StageRow>, StateError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT run_id, stage, queued_at, entered_at, exited_at, status \
                     FROM run_stages WHERE run_id = ?1 ORDER BY rowid",
                )?
                .query_map([run_id], |row| {
                    Ok(StageRow {
                        run_id: row.get(0)?,
                        stage: row.get(1)?,
                        queued_at: from_ts(row.get(2)?),
                        entered_at: from_ts_opt(row.get(3)?),
                        exited_at: from_ts_opt(row.get(4)?),
                        status: row.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Who holds the stage of the pipeline (and whether that process lives), and which
    /// runs wait at its gates: for `explain` and `status`.
    pub fn stage_occupancy(
        &self,
        pipeline: &str,
        stage: &str,
    ) -> Result<StageOccupancy, StateError> {
        self.read(|conn| {
            let holder = stage_holder(conn, pipeline, stage)?.map(|mut h| {
                h.alive = h.process.is_alive();
                h
            });
            let queue = conn
                .prepare_cached(
                    "SELECT r.run_id FROM run_stages s CROSS JOIN runs r ON r.run_id = s.run_id \
                     WHERE s.stage = ?1 AND r.pipeline = ?2 AND s.entered_at IS NULL \
                     AND s.status IS NULL AND r.state IN ('running', 'waiting', 'interrupted') \
                     ORDER BY r.id",
                )?
                .query_map([stage, pipeline], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(StageOccupancy {
                pipeline: pipeline.to_string(),
                stage: stage.to_string(),
                holder,
                queue,
            })
        })
    }
}
