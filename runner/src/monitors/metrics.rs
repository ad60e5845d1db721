//! The Prometheus text exposition (format 0.0.4) of `sluice canary`: per monitor and
//! check name (a data point's name), whether it succeeded (0/1) and its latency; per
//! monitor, the latency and time of its last check and its checks counted by outcome.
//!
//! ```text
//! sluice_canary_check_success{monitor="api",check="login"} 1
//! sluice_canary_check_latency_seconds{monitor="api",check="login"} 0.012
//! sluice_canary_monitor_latency_seconds{monitor="api"} 0.031
//! sluice_canary_last_run_timestamp_seconds{monitor="api"} 1764486000.123
//! sluice_canary_checks_total{monitor="api",outcome="data"} 42
//! ```
//!
//! Written by hand: five gauge and counter families of a few series need no metrics
//! library, and the text is built from the recorded checks only.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use crate::monitors::schedule::CheckReport;

/// A check's latest success and latency in seconds (when the plugin measured one).
type CheckSample = (bool, Option<f64>);

#[derive(Debug, Default)]
struct MonitorSeries {
    /// By check name: success, latency in seconds when the plugin measured one.
    checks: BTreeMap<String, CheckSample>,
    latency_seconds: f64,
    last_run_seconds: f64,
    /// By outcome (`data`, `no-data`, `error`).
    totals: BTreeMap<&'static str, u64>,
}

/// What `sluice canary` exposes, updated after every recorded check.
#[derive(Debug, Default)]
pub struct CanaryMetrics {
    monitors: Mutex<BTreeMap<String, MonitorSeries>>,
}

/// A label value escaped as the text format requires (`\`, `"` and newlines).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A latency in seconds from a plugin metric, when its unit says what it is.
fn seconds(value: f64, unit: &str) -> Option<f64> {
    match unit {
        "ms" | "milliseconds" => Some(value / 1000.0),
        "s" | "seconds" => Some(value),
        "us" | "µs" | "microseconds" => Some(value / 1e6),
        _ => None,
    }
}

impl CanaryMetrics {
    /// Count a recorded check.
    pub fn observe(&self, report: &CheckReport) {
        let mut monitors = self.monitors.lock().unwrap_or_else(|e| e.into_inner());
        let series = monitors.entry(report.row.monitor.clone()).or_default();
        for p in &report.points {
            let latency = report
                .metrics
                .iter()
                .find(|m| m.name == p.name || m.name == format!("{}.latency", p.name))
                .and_then(|m| seconds(m.value, &m.unit));
            series.checks.insert(p.name.clone(), (p.positive, latency));
        }
        series.latency_seconds = report.latency.as_secs_f64();
        series.last_run_seconds = report.row.finished_at.as_millisecond() as f64 / 1000.0;
        *series
            .totals
            .entry(report.row.outcome.as_str())
            .or_default() += 1;
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let monitors = self.monitors.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, lines: Vec<String>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for l in lines {
                let _ = writeln!(out, "{name}{l}");
            }
        };
        let per_check = |f: &dyn Fn(&CheckSample) -> Option<String>| {
            monitors
                .iter()
                .flat_map(|(m, s)| {
                    s.checks.iter().filter_map(move |(c, v)| {
                        f(v).map(|v| {
                            format!("{{monitor=\"{}\",check=\"{}\"}} {v}", label(m), label(c))
                        })
                    })
                })
                .collect::<Vec<_>>()
        };
        family(
            "sluice_canary_check_success",
            "gauge",
            "Whether the check's latest run succeeded (1) or failed (0).",
            per_check(&|(ok, _)| Some(u8::from(*ok).to_string())),
        );
        family(
            "sluice_canary_check_latency_seconds",
            "gauge",
            "Latency of the check's latest run, as the monitor measured it.",
            per_check(&|(_, l)| l.map(|l| l.to_string())),
        );
        family(
            "sluice_canary_monitor_latency_seconds",
            "gauge",
            "How long the monitor's latest check took, all of its requests.",
            monitors
                .iter()
                .map(|(m, s)| format!("{{monitor=\"{}\"}} {}", label(m), s.latency_seconds))
                .collect(),
        );
        family(
            "sluice_canary_last_run_timestamp_seconds",
            "gauge",
            "When the monitor's latest check ended, in seconds since the Unix epoch.",
            monitors
                .iter()
                .map(|(m, s)| format!("{{monitor=\"{}\"}} {}", label(m), s.last_run_seconds))
                .collect(),
        );
        family(
            "sluice_canary_checks_total",
            "counter",
            "Checks run, by outcome: data, no-data or error.",
            monitors
                .iter()
                .flat_map(|(m, s)| {
                    s.totals.iter().map(move |(o, n)| {
                        format!("{{monitor=\"{}\",outcome=\"{o}\"}} {n}", label(m))
                    })
                })
                .collect(),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{CheckOutcome, CheckRow, DataPointRow};

    #[test]
    fn the_exposition_has_every_family_with_escaped_labels() {
        let at: jiff::Timestamp = "2026-11-30T10:00:00.5Z".parse().unwrap();
        let point = |name: &str, positive| DataPointRow {
            monitor: "api".into(),
            name: name.into(),
            positive,
            value: None,
            detail: String::new(),
            at,
        };
        let report = CheckReport {
            row: CheckRow {
                id: 1,
                monitor: "api".into(),
                source: "canary".into(),
                scheduled_at: at,
                started_at: at,
                finished_at: at,
                outcome: CheckOutcome::Data,
                positive: 1,
                negative: 1,
                summary: String::new(),
            },
            points: vec![point("login", true), point("say \"hi\"", false)],
            metrics: vec![crate::host::bindings::types::Metric {
                name: "login".into(),
                value: 12.0,
                unit: "ms".into(),
                tags: vec![],
            }],
            latency: std::time::Duration::from_millis(31),
            lateness: std::time::Duration::ZERO,
            skipped: 0,
        };
        let m = CanaryMetrics::default();
        m.observe(&report);
        m.observe(&report);
        insta::assert_snapshot!(m.render());
    }
}
