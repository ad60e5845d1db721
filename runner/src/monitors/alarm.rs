//! A monitor's alarm state, OK / ALARM / INSUFFICIENT_DATA, from its latest checks:
//! CloudWatch's M of N with its rule for missing data, and staleness — a monitor
//! whose latest check is older than its interval (plus slack) has missed periods,
//! and a missed period is missing data, never silently OK.
//!
//! The periods looked at are, newest first: one missing period per interval elapsed
//! since the latest check beyond the slack, then the recorded checks, the latest N
//! of all these. A check with a negative data point breaches; a check with data and
//! none negative is OK; a check without data (or that failed) is missing. Missing
//! periods count as `missing` says: breaching (the default), not breaching, or not at
//! all. With no period that has data, the state is INSUFFICIENT_DATA, which holds a
//! gate unless `missing = "not-breaching"`. A monitor that never checked has no
//! periods at all: INSUFFICIENT_DATA.

use std::time::Duration;

use serde::Serialize;

use crate::monitors::{MissingData, MonitorSpec};
use crate::state::{CheckOutcome, CheckRow, StateError, Store};

/// Time a check may be late beyond its interval before the period counts as missed:
/// its timeout plus this.
pub const STALE_SLACK: Duration = Duration::from_secs(1);

/// CloudWatch's three alarm states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AlarmState {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "ALARM")]
    Alarm,
    #[serde(rename = "INSUFFICIENT_DATA")]
    InsufficientData,
}

impl AlarmState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

impl std::fmt::Display for AlarmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One evaluation period as judged.
#[derive(Debug, Clone, PartialEq)]
enum Period {
    /// A check with at least one negative data point.
    Breaching { check: usize },
    /// A check with data, none negative.
    Ok,
    /// A check without data (or that failed), or an interval without a check.
    Missing {
        check: Option<usize>,
        at: jiff::Timestamp,
    },
}

/// A monitor's alarm, judged at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmStatus {
    pub monitor: String,
    pub state: AlarmState,
    /// Whether a gate must hold for it: ALARM, or INSUFFICIENT_DATA unless missing
    /// data is treated as not breaching.
    pub holds: bool,
    /// Since when the state stands, when known (ALARM: the M-th newest breaching
    /// period; INSUFFICIENT_DATA: the oldest missing period looked at).
    pub since: Option<jiff::Timestamp>,
    /// Breaching periods among those looked at (missing ones counted as `missing`
    /// says), and how many were looked at.
    pub breaching: u32,
    pub periods: u32,
    /// M and N as configured.
    pub datapoints_to_alarm: u32,
    pub evaluation_periods: u32,
    pub missing: MissingData,
    /// The latest check, when there is one.
    pub latest_check: Option<jiff::Timestamp>,
    /// For people: the failing observation (a negative point's detail, why a check had
    /// no data, how long since the last check).
    pub detail: String,
    /// The check the detail comes from, for the caller to look its points up.
    #[serde(skip)]
    pub detail_check: Option<i64>,
}

impl AlarmStatus {
    /// One line: "`api-errors` ALARM since 2026-11-30T05:44:00Z (2 of 3 checks
    /// breaching): status 500 from /health".
    pub fn describe(&self) -> String {
        let since = self
            .since
            .map(|t| format!(" since {}", t.strftime("%Y-%m-%dT%H:%M:%SZ")))
            .unwrap_or_default();
        let counted = match self.state {
            AlarmState::InsufficientData => match self.missing {
                MissingData::NotBreaching => {
                    " (treated as not breaching: missing = \"not-breaching\")".to_string()
                }
                m => format!(" (treated as breaching: missing = \"{}\")", m.as_str()),
            },
            _ => format!(
                " ({} of {} checks breaching, alarm at {} of {})",
                self.breaching, self.periods, self.datapoints_to_alarm, self.evaluation_periods
            ),
        };
        let detail = if self.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", self.detail)
        };
        format!(
            "monitor `{}` is {}{since}{counted}{detail}",
            self.monitor, self.state
        )
    }
}

/// How old the latest check may be before periods count as missed.
pub fn staleness_limit(spec: &MonitorSpec) -> Duration {
    spec.interval + spec.timeout + STALE_SLACK
}

/// Judge a monitor from its latest checks (newest first, at least N of them when
/// there are), at `now`. Pure: no store, no clock.
pub fn judge(spec: &MonitorSpec, checks: &[CheckRow], now: jiff::Timestamp) -> AlarmStatus {
    let n = spec.evaluation_periods as usize;
    let interval = jiff::SignedDuration::try_from(spec.interval).unwrap_or_default();
    let mut periods: Vec<Period> = Vec::new();
    if let Some(latest) = checks.first() {
        let limit = jiff::SignedDuration::try_from(staleness_limit(spec)).unwrap_or_default();
        let age = now.duration_since(latest.finished_at);
        if age > limit && !interval.is_zero() {
            // One missed period per interval beyond the limit, the newest first.
            let missed = 1 + ((age - limit).as_millis() / interval.as_millis().max(1)) as usize;
            for k in (0..missed.min(n)).rev() {
                let at = latest.finished_at + limit + interval * (k as i32);
                periods.push(Period::Missing { check: None, at });
            }
            periods.reverse();
        }
    }
    for (i, c) in checks.iter().enumerate() {
        if periods.len() >= n {
            break;
        }
        periods.push(match c.outcome {
            CheckOutcome::Data if c.negative > 0 => Period::Breaching { check: i },
            CheckOutcome::Data => Period::Ok,
            _ => Period::Missing {
                check: Some(i),
                at: c.finished_at,
            },
        });
    }
    periods.truncate(n);
    let latest_check = checks.first().map(|c| c.finished_at);
    let base = AlarmStatus {
        monitor: spec.id.clone(),
        state: AlarmState::InsufficientData,
        holds: spec.missing != MissingData::NotBreaching,
        since: None,
        breaching: 0,
        periods: periods.len() as u32,
        datapoints_to_alarm: spec.datapoints_to_alarm,
        evaluation_periods: spec.evaluation_periods,
        missing: spec.missing,
        latest_check,
        detail: String::new(),
        detail_check: None,
    };
    let missing_detail = |p: &Period| match p {
        Period::Missing { check: Some(i), .. } => {
            let c = &checks[*i];
            let what = if c.outcome == CheckOutcome::Error {
                "check failed"
            } else {
                "no data"
            };
            (format!("{what}: {}", c.summary), Some(c.id))
        }
        Period::Missing { check: None, .. } => (
            format!(
                "no check since {} (it checks every {})",
                latest_check
                    .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_default(),
                humantime::format_duration(spec.interval)
            ),
            None,
        ),
        _ => (String::new(), None),
    };
    if periods.is_empty() {
        return AlarmStatus {
            detail: "no check has run yet".into(),
            ..base
        };
    }
    if periods.iter().all(|p| matches!(p, Period::Missing { .. })) {
        let (detail, detail_check) = missing_detail(&periods[0]);
        let since = periods.iter().rev().find_map(|p| match p {
            Period::Missing { at, .. } => Some(*at),
            _ => None,
        });
        return AlarmStatus {
            since,
            detail,
            detail_check,
            ..base
        };
    }
    let counts_breaching = |p: &Period| match p {
        Period::Breaching { .. } => true,
        Period::Ok => false,
        Period::Missing { .. } => spec.missing == MissingData::Breaching,
    };
    let judged: Vec<&Period> = periods
        .iter()
        .filter(|p| spec.missing != MissingData::Ignore || !matches!(p, Period::Missing { .. }))
        .collect();
    let breaching: Vec<&&Period> = judged.iter().filter(|p| counts_breaching(p)).collect();
    let alarm = breaching.len() as u32 >= spec.datapoints_to_alarm;
    let period_time = |p: &Period| match p {
        Period::Breaching { check } => Some(checks[*check].finished_at),
        Period::Missing { at, .. } => Some(*at),
        Period::Ok => None,
    };
    let (detail, detail_check) = match breaching.first() {
        Some(Period::Breaching { check }) => {
            (checks[*check].summary.clone(), Some(checks[*check].id))
        }
        Some(p) => missing_detail(p),
        None => (String::new(), None),
    };
    AlarmStatus {
        state: if alarm {
            AlarmState::Alarm
        } else {
            AlarmState::Ok
        },
        holds: alarm,
        since: if alarm {
            breaching
                .get(spec.datapoints_to_alarm as usize - 1)
                .and_then(|p| period_time(p))
        } else {
            None
        },
        breaching: breaching.len() as u32,
        periods: judged.len() as u32,
        detail: if alarm { detail } else { String::new() },
        detail_check: if alarm { detail_check } else { None },
        ..base
    }
}

/// Read a monitor's latest checks from the store and judge them at `now`; the detail
/// of an ALARM names the failing data point.
pub fn read(
    store: &Store,
    spec: &MonitorSpec,
    now: jiff::Timestamp,
) -> Result<AlarmStatus, StateError> {
    let checks = store.recent_checks(&spec.id, now, spec.evaluation_periods)?;
    let mut status = judge(spec, &checks, now);
    if status.state == AlarmState::Alarm
        && let Some(id) = status.detail_check
        && let Some(point) = store.check_points(id)?.into_iter().find(|p| !p.positive)
    {
        status.detail = if point.detail.is_empty() {
            format!("{} negative", point.name)
        } else {
            format!("{}: {}", point.name, point.detail)
        };
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(missing: MissingData, n: u32, m: u32) -> MonitorSpec {
        MonitorSpec {
            id: "api".into(),
            uses: None,
            with: serde_json::Value::Null,
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            missing,
            evaluation_periods: n,
            datapoints_to_alarm: m,
            grants: Default::default(),
            pos: crate::config::SourcePos {
                file: "sluice.toml".into(),
                line: 1,
                column: 1,
            },
            uses_offset: 0,
            with_offset: 0,
        }
    }

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    /// Checks newest first, from words: `+` data all positive, `-` a negative point,
    /// `0` no data, `!` an error; one a minute, the newest at 10:00.
    fn checks(words: &str) -> Vec<CheckRow> {
        words
            .chars()
            .enumerate()
            .map(|(i, w)| {
                let t = at("2026-11-30T10:00:00Z") - jiff::SignedDuration::from_mins(i as i64);
                CheckRow {
                    id: 100 - i as i64,
                    monitor: "api".into(),
                    source: "test".into(),
                    scheduled_at: t,
                    started_at: t,
                    finished_at: t,
                    outcome: match w {
                        '+' | '-' => CheckOutcome::Data,
                        '0' => CheckOutcome::NoData,
                        _ => CheckOutcome::Error,
                    },
                    positive: u32::from(w == '+'),
                    negative: u32::from(w == '-'),
                    summary: format!("check {i}"),
                }
            })
            .collect()
    }

    const NOW: &str = "2026-11-30T10:00:05Z";

    #[test]
    fn a_negative_point_raises_the_alarm_and_positive_ones_clear_it() {
        let s = spec(MissingData::Breaching, 1, 1);
        let st = judge(&s, &checks("-+"), at(NOW));
        assert_eq!((st.state, st.holds), (AlarmState::Alarm, true));
        assert_eq!(st.since, Some(at("2026-11-30T10:00:00Z")));
        assert_eq!(st.detail, "check 0");
        let st = judge(&s, &checks("+-"), at(NOW));
        assert_eq!((st.state, st.holds), (AlarmState::Ok, false));
    }

    #[test]
    fn m_of_n_needs_m_breaching_checks_among_the_latest_n() {
        let s = spec(MissingData::Breaching, 3, 2);
        assert_eq!(judge(&s, &checks("-++-"), at(NOW)).state, AlarmState::Ok);
        let st = judge(&s, &checks("-+-+"), at(NOW));
        assert_eq!(st.state, AlarmState::Alarm);
        assert_eq!((st.breaching, st.periods), (2, 3));
        // Since the second newest breaching check: when M of N first held.
        assert_eq!(st.since, Some(at("2026-11-30T09:58:00Z")));
        assert_eq!(
            st.describe(),
            "monitor `api` is ALARM since 2026-11-30T09:58:00Z (2 of 3 checks breaching, alarm at 2 of 3): check 0"
        );
    }

    #[test]
    fn no_check_at_all_is_insufficient_data_and_holds_unless_not_breaching() {
        let st = judge(&spec(MissingData::Breaching, 1, 1), &[], at(NOW));
        assert_eq!((st.state, st.holds), (AlarmState::InsufficientData, true));
        assert_eq!(
            st.describe(),
            "monitor `api` is INSUFFICIENT_DATA (treated as breaching: missing = \"breaching\"): no check has run yet"
        );
        let st = judge(&spec(MissingData::Ignore, 1, 1), &[], at(NOW));
        assert!(st.holds);
        let st = judge(
            &spec(MissingData::NotBreaching, 1, 1),
            &checks("00"),
            at(NOW),
        );
        assert_eq!((st.state, st.holds), (AlarmState::InsufficientData, false));
    }

    #[test]
    fn missing_checks_count_as_the_missing_rule_says() {
        // Two of three without data, one positive; alarm at 2 of 3.
        let words = "0+!";
        let st = judge(&spec(MissingData::Breaching, 3, 2), &checks(words), at(NOW));
        assert_eq!(st.state, AlarmState::Alarm);
        assert_eq!(st.detail, "no data: check 0");
        let st = judge(
            &spec(MissingData::NotBreaching, 3, 2),
            &checks(words),
            at(NOW),
        );
        assert_eq!(st.state, AlarmState::Ok);
        // Ignored: judged on the one check with data.
        let st = judge(&spec(MissingData::Ignore, 3, 2), &checks(words), at(NOW));
        assert_eq!((st.state, st.periods), (AlarmState::Ok, 1));
        let st = judge(&spec(MissingData::Ignore, 3, 1), &checks("0-!"), at(NOW));
        assert_eq!(st.state, AlarmState::Alarm);
    }

    #[test]
    fn a_stale_latest_check_is_missed_periods_never_silently_ok() {
        let s = spec(MissingData::Breaching, 1, 1);
        // Latest check positive, but 10 minutes old at a 1-minute interval.
        let st = judge(&s, &checks("+"), at("2026-11-30T10:10:00Z"));
        assert_eq!((st.state, st.holds), (AlarmState::InsufficientData, true));
        assert_eq!(
            st.detail,
            "no check since 2026-11-30T10:00:00Z (it checks every 1m)"
        );
        // Within its interval plus the slack, it still counts.
        let st = judge(&s, &checks("+"), at("2026-11-30T10:01:10Z"));
        assert_eq!(st.state, AlarmState::Ok);
        // With N = 3, one missed period and two positive checks: 1 of 3 breaching.
        let st = judge(
            &spec(MissingData::Breaching, 3, 2),
            &checks("++"),
            at("2026-11-30T10:01:30Z"),
        );
        assert_eq!((st.state, st.breaching, st.periods), (AlarmState::Ok, 1, 3));
    }
}
