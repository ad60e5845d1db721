//! The health record: every check a monitor ran (with or without data), the data
//! points it yielded, and each stage's bake. Alarms read the latest checks of a
//! monitor; a bake counts the data points of its monitors since it started.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::runs::run_exists;
use super::{StateError, Store, from_ts, from_ts_opt, ts};

/// What one check of a monitor came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckOutcome {
    /// The check yielded data points.
    Data,
    /// It ran and found nothing to judge (an empty query result).
    NoData,
    /// It could not run to the end (a plugin error, a timeout, a refused request).
    Error,
}

impl CheckOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckOutcome::Data => "data",
            CheckOutcome::NoData => "no-data",
            CheckOutcome::Error => "error",
        }
    }

    fn parse(word: &str) -> CheckOutcome {
        match word {
            "data" => CheckOutcome::Data,
            "no-data" => CheckOutcome::NoData,
            _ => CheckOutcome::Error,
        }
    }
}

/// One data point: a positive or negative observation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DataPointRow {
    /// The monitor (or canary) that observed it.
    pub monitor: String,
    /// Its name within the monitor (a canary check, a Prometheus series).
    pub name: String,
    pub positive: bool,
    /// The measured value, when there is one (a query result, a latency).
    pub value: Option<f64>,
    /// What was seen; for a negative point, what failed.
    pub detail: String,
    pub at: jiff::Timestamp,
}

/// One check of a monitor, as recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CheckRow {
    /// Set by the store.
    pub id: i64,
    pub monitor: String,
    /// Who ran it: `run <run-id>` or `canary <file>`.
    pub source: String,
    /// When the scheduler meant it to start, and when it did.
    pub scheduled_at: jiff::Timestamp,
    pub started_at: jiff::Timestamp,
    pub finished_at: jiff::Timestamp,
    pub outcome: CheckOutcome,
    pub positive: u32,
    pub negative: u32,
    /// One line: the plugin's summary, or why there was no data.
    pub summary: String,
}

/// Positive and negative data points of some monitors over a span of time.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PointCounts {
    pub positive: u64,
    pub negative: u64,
    /// The earliest negative point in the span, when there is one (what a failed bake
    /// names).
    pub first_negative: Option<DataPointRow>,
    /// The latest point of any kind, when there is one.
    pub latest_at: Option<jiff::Timestamp>,
}

/// A stage's bake, as recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BakeRow {
    pub run_id: String,
    pub stage: String,
    pub started_at: jiff::Timestamp,
    /// When the counts were last updated.
    pub updated_at: jiff::Timestamp,
    pub positive: u64,
    pub negative: u64,
    pub finished_at: Option<jiff::Timestamp>,
    /// `passed`, `failed` or `overridden` once finished.
    pub outcome: Option<String>,
    pub detail: Option<String>,
}

const CHECK_COLUMNS: &str = "id, monitor, source, scheduled_at, started_at, finished_at, \
     outcome, positive, negative, summary";

fn check_from_row(row: &Row<'_>) -> rusqlite::Result<CheckRow> {
    Ok(CheckRow {
        id: row.get(0)?,
        monitor: row.get(1)?,
        source: row.get(2)?,
        scheduled_at: from_ts(row.get(3)?),
        started_at: from_ts(row.get(4)?),
        finished_at: from_ts(row.get(5)?),
        outcome: CheckOutcome::parse(&row.get::<_, String>(6)?),
        positive: row.get(7)?,
        negative: row.get(8)?,
        summary: row.get(9)?,
    })
}

const POINT_COLUMNS: &str = "monitor, name, positive, value, detail, at";

fn point_from_row(row: &Row<'_>) -> rusqlite::Result<DataPointRow> {
    Ok(DataPointRow {
        monitor: row.get(0)?,
        name: row.get(1)?,
        positive: row.get(2)?,
        value: row.get(3)?,
        detail: row.get(4)?,
        at: from_ts(row.get(5)?),
    })
}

const BAKE_COLUMNS: &str =
    "run_id, stage, started_at, updated_at, positive, negative, finished_at, outcome, detail";

fn bake_from_row(row: &Row<'_>) -> rusqlite::Result<BakeRow> {
    Ok(BakeRow {
        run_id: row.get(0)?,
        stage: row.get(1)?,
        started_at: from_ts(row.get(2)?),
        updated_at: from_ts(row.get(3)?),
        positive: row.get(4)?,
        negative: row.get(5)?,
        finished_at: from_ts_opt(row.get(6)?),
        outcome: row.get(7)?,
        detail: row.get(8)?,
    })
}

fn load_bake(conn: &Connection, run_id: &str, stage: &str) -> rusqlite::Result<Option<BakeRow>> {
    conn.prepare_cached(&format!(
        "SELECT {BAKE_COLUMNS} FROM bakes WHERE run_id = ?1 AND stage = ?2"
    ))?
    .query_row([run_id, stage], bake_from_row)
    .optional()
}

/// `?, ?, ...` for `n` parameters.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

impl Store {
    /// Record one check and its data points in one transaction; `check.id`,
    /// `positive` and `negative` are set by the store from `points`. Returns the id.
    pub fn record_check(
        &self,
        check: &CheckRow,
        points: &[DataPointRow],
    ) -> Result<i64, StateError> {
        let positive = points.iter().filter(|p| p.positive).count() as i64;
        let negative = points.len() as i64 - positive;
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO monitor_checks (monitor, source, scheduled_at, started_at, \
                 finished_at, outcome, positive, negative, summary) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                check.monitor,
                check.source,
                ts(check.scheduled_at),
                ts(check.started_at),
                ts(check.finished_at),
                check.outcome.as_str(),
                positive,
                negative,
                check.summary
            ])?;
            let id = tx.last_insert_rowid();
            let mut insert = tx.prepare_cached(
                "INSERT INTO data_points (check_id, monitor, name, positive, value, detail, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for p in points {
                insert.execute(params![
                    id,
                    p.monitor,
                    p.name,
                    p.positive,
                    p.value,
                    p.detail,
                    ts(p.at)
                ])?;
            }
            Ok(id)
        })
    }

    /// The latest `limit` checks of a monitor that finished at or before `until`,
    /// newest first.
    pub fn recent_checks(
        &self,
        monitor: &str,
        until: jiff::Timestamp,
        limit: u32,
    ) -> Result<Vec<CheckRow>, StateError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {CHECK_COLUMNS} FROM monitor_checks \
                     WHERE monitor = ?1 AND finished_at <= ?2 \
                     ORDER BY finished_at DESC, id DESC LIMIT ?3"
                ))?
                .query_map(params![monitor, ts(until), limit], check_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// The data points one check recorded, in the order it reported them (what an
    /// alarm names as the failing observation).
    pub fn check_points(&self, check_id: i64) -> Result<Vec<DataPointRow>, StateError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {POINT_COLUMNS} FROM data_points WHERE check_id = ?1 ORDER BY id"
                ))?
                .query_map([check_id], point_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// The data points of a monitor observed in `[since, until]`, oldest first, at most
    /// `limit`.
    pub fn data_points(
        &self,
        monitor: &str,
        since: jiff::Timestamp,
        until: jiff::Timestamp,
        limit: u32,
    ) -> Result<Vec<DataPointRow>, StateError> {
        self.read(|conn| {
            let rows = conn
                .prepare_cached(&format!(
                    "SELECT {POINT_COLUMNS} FROM data_points \
                     WHERE monitor = ?1 AND at >= ?2 AND at <= ?3 ORDER BY at, id LIMIT ?4"
                ))?
                .query_map(
                    params![monitor, ts(since), ts(until), limit],
                    point_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Positive and negative data points of `monitors` observed in `[since, until]`.
    pub fn point_counts(
        &self,
        monitors: &[String],
        since: jiff::Timestamp,
        until: jiff::Timestamp,
    ) -> Result<PointCounts, StateError> {
        if monitors.is_empty() {
            return Ok(PointCounts::default());
        }
        self.read(|conn| {
            let list = placeholders(monitors.len());
            let mut args: Vec<rusqlite::types::Value> = monitors
                .iter()
                .map(|m| rusqlite::types::Value::Text(m.clone()))
                .collect();
            args.push(ts(since).into());
            args.push(ts(until).into());
            let (since_i, until_i) = (monitors.len() + 1, monitors.len() + 2);
            let (positive, negative, latest): (i64, i64, Option<i64>) = conn
                .prepare_cached(&format!(
                    "SELECT COALESCE(SUM(positive), 0), COALESCE(SUM(1 - positive), 0), MAX(at) \
                     FROM data_points WHERE monitor IN ({list}) AND at >= ?{since_i} AND at <= ?{until_i}"
                ))?
                .query_row(rusqlite::params_from_iter(args.iter()), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
            let first_negative = if negative > 0 {
                conn.prepare_cached(&format!(
                    "SELECT {POINT_COLUMNS} FROM data_points WHERE monitor IN ({list}) \
                     AND at >= ?{since_i} AND at <= ?{until_i} AND positive = 0 \
                     ORDER BY at, id LIMIT 1"
                ))?
                .query_row(rusqlite::params_from_iter(args.iter()), point_from_row)
                .optional()?
            } else {
                None
            };
            Ok(PointCounts {
                positive: positive as u64,
                negative: negative as u64,
                first_negative,
                latest_at: latest.map(from_ts),
            })
        })
    }

    /// Start the bake of a stage for a run at `at`, or return the bake already
    /// recorded (a resumed run continues its bake; it does not start over).
    pub fn start_bake(
        &self,
        run_id: &str,
        stage: &str,
        at: jiff::Timestamp,
    ) -> Result<BakeRow, StateError> {
        self.write(|tx| {
            if !run_exists(tx, run_id)? {
                return Err(self.no_such_run(run_id));
            }
            if let Some(row) = load_bake(tx, run_id, stage)? {
                return Ok(row);
            }
            tx.prepare_cached(
                "INSERT INTO bakes (run_id, stage, started_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
            )?
            .execute(params![run_id, stage, ts(at)])?;
            Ok(load_bake(tx, run_id, stage)?.expect("the bake was just inserted"))
        })
    }

    /// The bake of a stage for a run, if one started.
    pub fn bake(&self, run_id: &str, stage: &str) -> Result<Option<BakeRow>, StateError> {
        self.read(|conn| Ok(load_bake(conn, run_id, stage)?))
    }

    /// Record a bake's progress: the counts seen at `at`.
    pub fn update_bake(
        &self,
        run_id: &str,
        stage: &str,
        positive: u64,
        negative: u64,
        at: jiff::Timestamp,
    ) -> Result<(), StateError> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE bakes SET positive = ?3, negative = ?4, updated_at = ?5 \
                 WHERE run_id = ?1 AND stage = ?2 AND finished_at IS NULL",
            )?
            .execute(params![
                run_id,
                stage,
                positive as i64,
                negative as i64,
                ts(at)
            ])?;
            Ok(())
        })
    }

    /// End a bake: `outcome` is `passed`, `failed` or `overridden`; `detail` says why.
    pub fn finish_bake(
        &self,
        run_id: &str,
        stage: &str,
        outcome: &str,
        detail: &str,
        at: jiff::Timestamp,
    ) -> Result<(), StateError> {
        self.write(|tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE bakes SET finished_at = ?3, outcome = ?4, detail = ?5, updated_at = ?3 \
                     WHERE run_id = ?1 AND stage = ?2 AND finished_at IS NULL",
                )?
                .execute(params![run_id, stage, ts(at), outcome, detail])?;
            if changed == 0 && load_bake(tx, run_id, stage)?.is_none() {
                return Err(self.refusal(format!(
                    "run {run_id} has no bake of stage `{stage}` to finish"
                )));
            }
            Ok(())
        })
    }
}
