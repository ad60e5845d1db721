//! `[stage.bake]`: after a stage's steps pass, the run stays in the stage for a
//! minimum time AND until its monitors gave a minimum count of positive data points,
//! with zero negative ones since the bake started. Missing data is "not yet", never
//! success; one negative point fails the bake, and a failed bake stops the run.
//!
//! ```toml
//! [stage.bake]
//! duration = "1h"                  # minimum time in the stage after its steps
//! positive = 3000                  # minimum positive data points (default 1)
//! monitors = ["canary", "api-errors"]   # `[[monitor]]` ids whose points count
//! timeout = "3h"                   # optional: fail when not done by then
//! ```
//!
//! This module checks the table ([`build_bake`]) and decides, from the counts the
//! state store gives for the bake's window ([`evaluate`]): a pure function of the
//! spec, when the bake started, now, and the counts. The executor's bake phase
//! (`executor::bake`) records the bake and re-evaluates it every poll; `explain`
//! shows the same [`BakeProgress`].

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_spanned::Spanned;

use super::Decision;
use crate::config::{ConfigError, SourceFile, SourcePos};
use crate::state::PointCounts;

/// The gate id an override of a bake names: `sluice override RUN --gate bake --stage S`.
pub const BAKE_GATE: &str = "bake";

/// The longest bake (and bake timeout) a file may ask for: 30 days.
const MAX_BAKE: Duration = Duration::from_secs(30 * 86_400);

/// A stage's bake, checked.
#[derive(Debug, Clone)]
pub struct BakeSpec {
    pub duration: Duration,
    /// Positive data points needed.
    pub positive: u64,
    /// The monitors whose data points count.
    pub monitors: Vec<String>,
    /// When set, a bake not done after this long fails.
    pub timeout: Option<Duration>,
    pub pos: SourcePos,
}

/// `[stage.bake]` as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawBake {
    pub(crate) duration: Option<Spanned<String>>,
    pub(crate) positive: Option<Spanned<i64>>,
    #[serde(default)]
    pub(crate) monitors: Vec<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<String>>,
}

/// Read one duration key of the bake: `None` (with the error recorded) when it is not
/// a positive duration of at most [`MAX_BAKE`].
fn bake_duration(
    source: &SourceFile,
    stage: &str,
    key: &str,
    value: &Spanned<String>,
    errors: &mut Vec<ConfigError>,
) -> Option<Duration> {
    let text = value.get_ref().trim();
    let at = value.span().start;
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => {
            errors.push(source.error(
                at,
                format!("stage `{stage}`: bake `{key}` must be longer than zero"),
            ));
            None
        }
        Ok(d) if d > MAX_BAKE => {
            errors.push(source.error(
                at,
                format!(
                    "stage `{stage}`: bake `{key}` = \"{text}\" is too long; the limit is {}",
                    humantime::format_duration(MAX_BAKE)
                ),
            ));
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            errors.push(source.error(
                at,
                format!(
                    "stage `{stage}`: bake `{key}` = \"{text}\" is not a duration ({e}); write it like \"30s\", \"15m\" or \"1h30m\""
                ),
            ));
            None
        }
    }
}

/// Check a stage's `[stage.bake]`; `monitors` are the ids the file declares.
pub(crate) fn build_bake(
    source: &SourceFile,
    stage: &str,
    raw: &Spanned<RawBake>,
    monitors: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Option<BakeSpec> {
    let r = raw.get_ref();
    let table_at = raw.span().start;
    let before = errors.len();
    let duration = match &r.duration {
        Some(d) => bake_duration(source, stage, "duration", d, errors),
        None => {
            errors.push(source.error(
                table_at,
                format!(
                    "stage `{stage}`: `[stage.bake]` needs `duration`, the minimum time the run stays in the stage after its steps (e.g. duration = \"1h\")"
                ),
            ));
            None
        }
    };
    let positive = match &r.positive {
        None => 1,
        Some(p) if *p.get_ref() >= 1 => *p.get_ref() as u64,
        Some(p) => {
            errors.push(source.error(
                p.span().start,
                format!(
                    "stage `{stage}`: bake `positive` = {} must be at least 1: a bake passes on evidence, never on none",
                    p.get_ref()
                ),
            ));
            1
        }
    };
    if r.monitors.is_empty() {
        let declared = if monitors.is_empty() {
            "the file declares no `[[monitor]]`; add one".to_string()
        } else {
            format!("declared monitors: {}", monitors.join(", "))
        };
        errors.push(source.error(
            table_at,
            format!(
                "stage `{stage}`: `[stage.bake]` needs `monitors`, the `[[monitor]]` ids whose data points it counts; {declared}"
            ),
        ));
    }
    let mut seen = Vec::new();
    for m in &r.monitors {
        let id = m.get_ref();
        if seen.contains(id) {
            errors.push(source.error(
                m.span().start,
                format!("stage `{stage}`: bake monitor `{id}` is listed twice"),
            ));
            continue;
        }
        seen.push(id.clone());
        if !monitors.contains(&id.as_str()) {
            let mut message =
                format!("stage `{stage}`: bake monitor `{id}` is not a `[[monitor]]` of this file");
            if let Some(meant) = crate::suggest::closest(id, monitors.iter().copied()) {
                message.push_str(&format!("; did you mean `{meant}`?"));
            } else if monitors.is_empty() {
                message.push_str("; the file declares no `[[monitor]]`");
            } else {
                message.push_str(&format!("; declared monitors: {}", monitors.join(", ")));
            }
            errors.push(source.error(m.span().start, message));
        }
    }
    let timeout = r
        .timeout
        .as_ref()
        .and_then(|t| bake_duration(source, stage, "timeout", t, errors).map(|d| (t, d)));
    if let (Some(duration), Some((t, timeout))) = (duration, timeout)
        && timeout <= duration
    {
        errors.push(source.error(
            t.span().start,
            format!(
                "stage `{stage}`: bake `timeout` = \"{}\" must be longer than `duration` = \"{}\": the bake could never pass",
                t.get_ref().trim(),
                humantime::format_duration(duration)
            ),
        ));
    }
    if errors.len() > before {
        return None;
    }
    Some(BakeSpec {
        duration: duration?,
        positive,
        monitors: seen,
        timeout: timeout.map(|(_, d)| d),
        pos: source.pos(table_at),
    })
}

/// Where a bake stands at one instant: what `evaluate` decided from, what the live line
/// and `explain` show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BakeProgress {
    pub started_at: jiff::Timestamp,
    pub evaluated_at: jiff::Timestamp,
    /// Time in the bake so far, and the minimum, in seconds.
    pub elapsed_secs: u64,
    pub duration_secs: u64,
    pub positive: u64,
    /// Positive data points needed.
    pub needed: u64,
    pub negative: u64,
    pub monitors: Vec<String>,
    /// The latest data point of any kind in the window, if any came.
    pub latest_point_at: Option<jiff::Timestamp>,
    pub timeout_secs: Option<u64>,
}

impl BakeProgress {
    /// The counts of a bake that started at `started_at`, seen at `now`.
    pub fn new(
        spec: &BakeSpec,
        started_at: jiff::Timestamp,
        now: jiff::Timestamp,
        counts: &PointCounts,
    ) -> BakeProgress {
        let elapsed = now.duration_since(started_at).as_secs().max(0) as u64;
        BakeProgress {
            started_at,
            evaluated_at: now,
            elapsed_secs: elapsed,
            duration_secs: spec.duration.as_secs(),
            positive: counts.positive,
            needed: spec.positive,
            negative: counts.negative,
            monitors: spec.monitors.clone(),
            latest_point_at: counts.latest_at,
            timeout_secs: spec.timeout.map(|t| t.as_secs()),
        }
    }

    /// "bake 23m of 1h, 1,204 of 3,000 positive, 0 negative".
    pub fn line(&self) -> String {
        format!(
            "bake {} of {}, {} of {} positive, {} negative",
            short_duration(self.elapsed_secs),
            short_duration(self.duration_secs),
            thousands(self.positive),
            thousands(self.needed),
            thousands(self.negative)
        )
    }

    fn time_done(&self) -> bool {
        self.elapsed_secs >= self.duration_secs
    }

    fn points_done(&self) -> bool {
        self.positive >= self.needed
    }
}

/// Decide a bake from its progress: allow when the minimum time has passed AND enough
/// positive points came AND none was negative; deny on any negative point (naming the
/// first) or when the timeout passed; else wait, saying what is missing, until the
/// instant the time is done when only time is missing.
pub fn evaluate(
    progress: &BakeProgress,
    first_negative: Option<&crate::state::DataPointRow>,
) -> Decision {
    let line = progress.line();
    if progress.negative > 0 {
        let count = match progress.negative {
            1 => "1 negative data point".to_string(),
            n => format!("{} negative data points; the first", thousands(n)),
        };
        let which = match first_negative {
            Some(p) => format!(
                ": {}/{} at {}: {}",
                p.monitor,
                p.name,
                p.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                p.detail
            ),
            None => String::new(),
        };
        return Decision::Deny {
            reason: format!("bake failed: {count}{which} ({line})"),
        };
    }
    if progress.time_done() && progress.points_done() {
        return Decision::Allow { reason: line };
    }
    if let Some(timeout) = progress.timeout_secs
        && progress.elapsed_secs >= timeout
    {
        return Decision::Deny {
            reason: format!(
                "bake failed: not done within its timeout of {} ({line})",
                short_duration(timeout)
            ),
        };
    }
    let mut missing = Vec::new();
    if !progress.time_done() {
        missing.push(format!(
            "{} more in the stage",
            short_duration(progress.duration_secs - progress.elapsed_secs)
        ));
    }
    if !progress.points_done() {
        let more = match progress.needed - progress.positive {
            1 => "1 more positive data point".to_string(),
            n => format!("{} more positive data points", thousands(n)),
        };
        let from = progress.monitors.join(", ");
        missing.push(if progress.latest_point_at.is_none() {
            format!("{more}; none came yet from {from} (missing data is not success)")
        } else {
            format!("{more} from {from}")
        });
    }
    let until = (progress.points_done() && !progress.time_done()).then(|| {
        progress.started_at + jiff::SignedDuration::from_secs(progress.duration_secs as i64)
    });
    Decision::Wait {
        reason: format!("{line}; needs {}", missing.join(" and ")),
        until,
    }
}

/// A stage's bake as `status` and `explain` show it: for a stage that bakes (not
/// started yet, or under way, decided now) or baked (its recorded end).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BakeStatus {
    /// `not started`, `baking`, `passed`, `failed` or `overridden`.
    pub state: String,
    pub started_at: Option<jiff::Timestamp>,
    pub finished_at: Option<jiff::Timestamp>,
    pub elapsed_secs: u64,
    pub duration_secs: u64,
    pub positive: u64,
    /// Positive data points needed.
    pub needed: u64,
    pub negative: u64,
    pub monitors: Vec<String>,
    pub timeout_secs: Option<u64>,
    /// "bake 23m of 1h, 1,204 of 3,000 positive, 0 negative".
    pub progress: String,
    /// What the bake waits for, or how it ended (the recorded detail).
    pub detail: String,
    /// When only time is missing: when the bake passes by itself.
    pub until: Option<jiff::Timestamp>,
}

impl BakeStatus {
    /// A bake not started: the steps of its stage have not all passed yet.
    pub fn not_started(spec: &BakeSpec) -> BakeStatus {
        let progress = BakeProgress {
            started_at: jiff::Timestamp::UNIX_EPOCH,
            evaluated_at: jiff::Timestamp::UNIX_EPOCH,
            elapsed_secs: 0,
            duration_secs: spec.duration.as_secs(),
            positive: 0,
            needed: spec.positive,
            negative: 0,
            monitors: spec.monitors.clone(),
            latest_point_at: None,
            timeout_secs: spec.timeout.map(|t| t.as_secs()),
        };
        BakeStatus {
            state: "not started".into(),
            started_at: None,
            finished_at: None,
            detail: format!(
                "starts when the stage's steps pass; counts data points of {}",
                spec.monitors.join(", ")
            ),
            until: None,
            ..BakeStatus::from_progress(&progress)
        }
    }

    /// A bake under way, decided at `progress.evaluated_at` (nothing is written).
    pub fn baking(progress: &BakeProgress, decision: &Decision) -> BakeStatus {
        BakeStatus {
            state: "baking".into(),
            started_at: Some(progress.started_at),
            finished_at: None,
            detail: decision.reason().to_string(),
            until: decision.until(),
            ..BakeStatus::from_progress(progress)
        }
    }

    /// A bake that ended, from its record.
    pub fn finished(spec: &BakeSpec, row: &crate::state::BakeRow) -> BakeStatus {
        let end = row.finished_at.unwrap_or(row.updated_at);
        let progress = BakeProgress {
            started_at: row.started_at,
            evaluated_at: end,
            elapsed_secs: end.duration_since(row.started_at).as_secs().max(0) as u64,
            duration_secs: spec.duration.as_secs(),
            positive: row.positive,
            needed: spec.positive,
            negative: row.negative,
            monitors: spec.monitors.clone(),
            latest_point_at: None,
            timeout_secs: spec.timeout.map(|t| t.as_secs()),
        };
        BakeStatus {
            state: row.outcome.clone().unwrap_or_else(|| "baking".into()),
            started_at: Some(row.started_at),
            finished_at: row.finished_at,
            detail: row.detail.clone().unwrap_or_default(),
            until: None,
            ..BakeStatus::from_progress(&progress)
        }
    }

    fn from_progress(p: &BakeProgress) -> BakeStatus {
        BakeStatus {
            state: String::new(),
            started_at: None,
            finished_at: None,
            elapsed_secs: p.elapsed_secs,
            duration_secs: p.duration_secs,
            positive: p.positive,
            needed: p.needed,
            negative: p.negative,
            monitors: p.monitors.clone(),
            timeout_secs: p.timeout_secs,
            progress: p.line(),
            detail: String::new(),
            until: None,
        }
    }
}

/// The bake of `stage` for a run, read from the store and decided at `now` (nothing is
/// written): what `status` and `explain` show. `None` for a stage without a bake.
pub fn read_status(
    store: &crate::state::Store,
    run_id: &str,
    stage: &crate::config::Stage,
    now: jiff::Timestamp,
) -> Result<Option<BakeStatus>, crate::state::StateError> {
    let Some(spec) = &stage.bake else {
        return Ok(None);
    };
    let status = match store.bake(run_id, &stage.name)? {
        None => BakeStatus::not_started(spec),
        Some(row) if row.finished_at.is_some() => BakeStatus::finished(spec, &row),
        Some(row) => {
            let counts = store.point_counts(&spec.monitors, row.started_at, now)?;
            let progress = BakeProgress::new(spec, row.started_at, now, &counts);
            BakeStatus::baking(
                &progress,
                &evaluate(&progress, counts.first_negative.as_ref()),
            )
        }
    };
    Ok(Some(status))
}

/// A duration for the bake line, rounded down: `45s`, `23m`, `1h`, `1h5m`, `2d3h`.
pub fn short_duration(secs: u64) -> String {
    let (days, hours, mins, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) if s > 0 && m < 10 => format!("{m}m{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

/// `3000` as `3,000`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::DataPointRow;

    fn pipeline(bake: &str) -> Result<crate::config::Pipeline, String> {
        let file = format!(
            "[pipeline]\nname = \"shop\"\n\
             [[monitor]]\nid = \"canary\"\n\
             [[monitor]]\nid = \"api-errors\"\n\
             [[stage]]\nname = \"beta\"\n[[stage.step]]\nid = \"a\"\nuses = \"builtin:command\"\n\
             [stage.bake]\n{bake}"
        );
        crate::config::parse(std::path::Path::new("sluice.toml"), file).map_err(|e| e.to_string())
    }

    fn spec(bake: &str) -> BakeSpec {
        pipeline(bake).expect("a valid pipeline").stages[0]
            .bake
            .clone()
            .expect("a bake")
    }

    fn error(bake: &str) -> String {
        pipeline(bake).expect_err("an invalid bake")
    }

    #[test]
    fn a_full_bake_table_is_read() {
        let s = spec(
            "duration = \"1h\"\npositive = 3000\nmonitors = [\"canary\", \"api-errors\"]\ntimeout = \"3h\"\n",
        );
        assert_eq!(s.duration, Duration::from_secs(3600));
        assert_eq!(s.positive, 3000);
        assert_eq!(s.monitors, ["canary", "api-errors"]);
        assert_eq!(s.timeout, Some(Duration::from_secs(3 * 3600)));
        assert_eq!(s.pos.line, 12);
        let s = spec("duration = \"90s\"\nmonitors = [\"canary\"]\n");
        assert_eq!(s.positive, 1, "positive defaults to 1");
        assert_eq!(s.timeout, None);
    }

    #[test]
    fn bake_errors_name_the_line_and_key() {
        assert_eq!(
            error("monitors = [\"canary\"]\n"),
            "sluice.toml:12:1: stage `beta`: `[stage.bake]` needs `duration`, the minimum time the run stays in the stage after its steps (e.g. duration = \"1h\")"
        );
        assert_eq!(
            error("duration = \"soon\"\nmonitors = [\"canary\"]\n"),
            "sluice.toml:13:12: stage `beta`: bake `duration` = \"soon\" is not a duration (expected number at 0); write it like \"30s\", \"15m\" or \"1h30m\""
        );
        assert_eq!(
            error("duration = \"0s\"\nmonitors = [\"canary\"]\n"),
            "sluice.toml:13:12: stage `beta`: bake `duration` must be longer than zero"
        );
        assert_eq!(
            error("duration = \"1h\"\npositive = 0\nmonitors = [\"canary\"]\n"),
            "sluice.toml:14:12: stage `beta`: bake `positive` = 0 must be at least 1: a bake passes on evidence, never on none"
        );
        assert_eq!(
            error("duration = \"1h\"\n"),
            "sluice.toml:12:1: stage `beta`: `[stage.bake]` needs `monitors`, the `[[monitor]]` ids whose data points it counts; declared monitors: canary, api-errors"
        );
        assert_eq!(
            error("duration = \"1h\"\nmonitors = [\"canery\"]\n"),
            "sluice.toml:14:13: stage `beta`: bake monitor `canery` is not a `[[monitor]]` of this file; did you mean `canary`?"
        );
        assert_eq!(
            error("duration = \"1h\"\nmonitors = [\"canary\"]\ntimeout = \"1h\"\n"),
            "sluice.toml:15:11: stage `beta`: bake `timeout` = \"1h\" must be longer than `duration` = \"1h\": the bake could never pass"
        );
        let unknown = error("duration = \"1h\"\nmonitors = [\"canary\"]\nwait = \"1h\"\n");
        assert!(unknown.contains("unknown field `wait`"), "{unknown}");
    }

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    const START: &str = "2026-11-30T08:00:00Z";

    fn counts(positive: u64, negative: u64) -> PointCounts {
        PointCounts {
            positive,
            negative,
            first_negative: None,
            latest_at: (positive + negative > 0).then(|| at("2026-11-30T08:05:00Z")),
        }
    }

    fn decide(s: &BakeSpec, now: &str, c: &PointCounts) -> Decision {
        let p = BakeProgress::new(s, at(START), at(now), c);
        evaluate(&p, c.first_negative.as_ref())
    }

    #[test]
    fn a_bake_allows_only_with_its_time_and_its_points() {
        let s =
            spec("duration = \"1h\"\npositive = 3000\nmonitors = [\"canary\", \"api-errors\"]\n");
        // Enough points, not enough time: waits until the hour is over.
        assert_eq!(
            decide(&s, "2026-11-30T08:23:00Z", &counts(3000, 0)),
            Decision::Wait {
                reason: "bake 23m of 1h, 3,000 of 3,000 positive, 0 negative; needs 37m more in the stage".into(),
                until: Some(at("2026-11-30T09:00:00Z")),
            }
        );
        // Enough time, not enough points: waits with no known end.
        assert_eq!(
            decide(&s, "2026-11-30T09:10:00Z", &counts(1204, 0)),
            Decision::Wait {
                reason: "bake 1h10m of 1h, 1,204 of 3,000 positive, 0 negative; needs 1,796 more positive data points from canary, api-errors".into(),
                until: None,
            }
        );
        assert_eq!(
            decide(&s, "2026-11-30T09:00:00Z", &counts(3000, 0)),
            Decision::Allow {
                reason: "bake 1h of 1h, 3,000 of 3,000 positive, 0 negative".into()
            }
        );
    }

    #[test]
    fn missing_data_is_not_yet_never_success() {
        let s = spec("duration = \"10m\"\nmonitors = [\"canary\"]\n");
        assert_eq!(
            decide(&s, "2026-11-30T12:00:00Z", &counts(0, 0)),
            Decision::Wait {
                reason: "bake 4h of 10m, 0 of 1 positive, 0 negative; needs 1 more positive data point; none came yet from canary (missing data is not success)".into(),
                until: None,
            }
        );
    }

    #[test]
    fn one_negative_point_fails_the_bake_and_is_named() {
        let s = spec("duration = \"1h\"\npositive = 10\nmonitors = [\"canary\"]\n");
        let mut c = counts(50, 1);
        c.first_negative = Some(DataPointRow {
            monitor: "canary".into(),
            name: "login".into(),
            positive: false,
            value: Some(503.0),
            detail: "status 503, expected 200".into(),
            at: at("2026-11-30T08:07:30Z"),
        });
        assert_eq!(
            decide(&s, "2026-11-30T09:30:00Z", &c),
            Decision::Deny {
                reason: "bake failed: 1 negative data point: canary/login at 2026-11-30T08:07:30Z: status 503, expected 200 (bake 1h30m of 1h, 50 of 10 positive, 1 negative)".into()
            }
        );
        c.negative = 2;
        assert!(
            decide(&s, "2026-11-30T08:10:00Z", &c)
                .reason()
                .starts_with("bake failed: 2 negative data points; the first: canary/login at")
        );
    }

    #[test]
    fn a_bake_past_its_timeout_fails() {
        let s =
            spec("duration = \"1h\"\npositive = 10\nmonitors = [\"canary\"]\ntimeout = \"2h\"\n");
        assert_eq!(
            decide(&s, "2026-11-30T10:00:00Z", &counts(3, 0)),
            Decision::Deny {
                reason: "bake failed: not done within its timeout of 2h (bake 2h of 1h, 3 of 10 positive, 0 negative)".into()
            }
        );
        assert_eq!(
            decide(&s, "2026-11-30T09:59:59Z", &counts(3, 0)).name(),
            "wait"
        );
    }

    #[test]
    fn bake_numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1204), "1,204");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(short_duration(45), "45s");
        assert_eq!(short_duration(90), "1m30s");
        assert_eq!(short_duration(23 * 60 + 5), "23m");
        assert_eq!(short_duration(3600), "1h");
        assert_eq!(short_duration(3900), "1h5m");
        assert_eq!(short_duration(2 * 86_400 + 3 * 3600), "2d3h");
    }
}
