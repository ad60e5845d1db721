//! What a finished run reports: the [`Summary`] (counts, rates, errors by class, latency
//! figures, threshold verdicts, per-second series), the metrics a step reports, a text
//! summary, the percentile spectrum in HdrHistogram's text format, and a JSON document
//! (histograms + series) that an HTML report can plot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::plan::{ModelKind, Plan};
use crate::request::Templates;
use crate::run::StopReason;
use crate::stats::{Second, Stats, ms};
use crate::threshold::ThresholdResult;

/// Latency figures, ms.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Latency {
    /// Minimum.
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub stdev: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    /// Maximum.
    pub max: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Option<Latency> {
        (!h.is_empty()).then(|| Latency {
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            stdev: h.stdev() / 1000.0,
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        })
    }
}

/// One template's share of the run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TemplateSummary {
    /// Its name.
    pub name: String,
    /// Its weight.
    pub weight: u32,
    /// Measured requests finished.
    pub requests: u64,
    /// Of those, failures.
    pub failed: u64,
}

/// The figures of a finished run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    /// `open` or `closed`.
    pub model: ModelKind,
    /// Unmeasured warm-up, s.
    pub warm_up_s: f64,
    /// Measured time, s (from the end of the warm-up to where the schedule stopped).
    pub duration_s: f64,
    /// Why the schedule stopped.
    pub stopped_by: StopReason,
    /// Measured iterations started.
    pub iterations: u64,
    /// Measured requests finished.
    pub requests: u64,
    /// Of those, failures.
    pub failed: u64,
    /// `failed / requests`.
    pub error_rate: f64,
    /// Open model: iterations that could not start (no free slot in time).
    pub dropped_iterations: u64,
    /// Open model: iterations that waited for a slot within `max-start-delay`.
    pub delayed_iterations: u64,
    /// Requests abandoned in flight at the end.
    pub interrupted: u64,
    /// The mean target: iterations per second (open) or virtual users (closed).
    pub target: f64,
    /// Open model: measured iterations scheduled per second (started + dropped).
    pub scheduled_rate: f64,
    /// Requests finished per second of measured time.
    pub achieved_rate: f64,
    /// Responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Failures by class: `5xx`, `timeout`, `connect-refused`, `denied`, `other`...
    pub errors_by_class: BTreeMap<String, u64>,
    /// Up to five distinct transport error messages.
    pub error_samples: Vec<String>,
    /// Latency, ms; in the open model from the intended send time.
    pub latency_ms: Option<Latency>,
    /// Latency from the actual send time, ms.
    pub latency_uncorrected_ms: Option<Latency>,
    /// Whether `latency_ms` is measured from the intended send time.
    pub coordinated_omission_corrected: bool,
    /// Each template's share.
    pub templates: Vec<TemplateSummary>,
    /// Every threshold's verdict.
    pub thresholds: Vec<ThresholdResult>,
    /// The threshold that aborted the run.
    pub aborted_by: Option<String>,
    /// Whether every threshold held (and nothing aborted).
    pub passed: bool,
    /// The per-second series.
    #[serde(skip)]
    pub series: Vec<Second>,
}

/// A finished run: its summary and its histograms.
#[derive(Debug, Clone)]
pub struct Report {
    /// The figures.
    pub summary: Summary,
    /// Latency from the intended send time.
    pub corrected: Histogram<u64>,
    /// Latency from the actual send time.
    pub uncorrected: Histogram<u64>,
}

impl Summary {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build(
        plan: &Plan,
        templates: &Templates,
        stats: Stats,
        window: Duration,
        target: f64,
        stopped_by: StopReason,
        interrupted: u64,
        thresholds: Vec<ThresholdResult>,
    ) -> Report {
        let secs = window.as_secs_f64();
        let per_second = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let aborted_by = thresholds
            .iter()
            .find(|t| t.aborted_run)
            .map(|t| t.name.clone());
        let passed = thresholds.iter().all(|t| t.passed) && aborted_by.is_none();
        let summary = Summary {
            model: plan.model,
            warm_up_s: plan.warm_up.as_secs_f64(),
            duration_s: secs,
            stopped_by,
            iterations: stats.started,
            requests: stats.requests,
            failed: stats.failed,
            error_rate: stats.error_rate().unwrap_or(0.0),
            dropped_iterations: stats.dropped,
            delayed_iterations: stats.delayed,
            interrupted,
            target,
            scheduled_rate: per_second(stats.started + stats.dropped),
            achieved_rate: per_second(stats.requests),
            statuses: stats.statuses.clone(),
            errors_by_class: stats
                .errors_by_class
                .iter()
                .map(|(c, n)| (c.name().to_string(), *n))
                .collect(),
            error_samples: stats.error_samples.clone(),
            latency_ms: Latency::of(&stats.corrected),
            latency_uncorrected_ms: Latency::of(&stats.uncorrected),
            coordinated_omission_corrected: plan.model == ModelKind::Open,
            templates: templates
                .requests()
                .iter()
                .zip(&stats.per_template)
                .map(|(r, &(requests, failed))| TemplateSummary {
                    name: r.name.clone(),
                    weight: r.weight,
                    requests,
                    failed,
                })
                .collect(),
            thresholds,
            aborted_by,
            passed,
            series: stats.series,
        };
        Report {
            summary,
            corrected: stats.corrected,
            uncorrected: stats.uncorrected,
        }
    }
}

impl Report {
    /// The figures a step reports as metrics: `(name, value, unit)`.
    pub fn metrics(&self) -> Vec<(String, f64, &'static str)> {
        let s = &self.summary;
        let target_unit = if s.model == ModelKind::Open {
            "/s"
        } else {
            "vus"
        };
        let mut m = vec![
            ("requests".to_string(), s.requests as f64, "count"),
            ("achieved_rate".to_string(), s.achieved_rate, "/s"),
            ("target".to_string(), s.target, target_unit),
            ("failed".to_string(), s.failed as f64, "count"),
            ("error_rate".to_string(), s.error_rate, "ratio"),
            (
                "dropped_iterations".to_string(),
                s.dropped_iterations as f64,
                "count",
            ),
        ];
        if s.model == ModelKind::Open {
            m.push(("scheduled_rate".to_string(), s.scheduled_rate, "/s"));
        }
        for (class, n) in &s.errors_by_class {
            m.push((format!("errors.{class}"), *n as f64, "count"));
        }
        let mut latency = |prefix: &str, l: &Option<Latency>| {
            if let Some(l) = l {
                for (k, v) in [
                    ("min", l.min),
                    ("mean", l.mean),
                    ("p50", l.p50),
                    ("p90", l.p90),
                    ("p95", l.p95),
                    ("p99", l.p99),
                    ("p99.9", l.p99_9),
                    ("max", l.max),
                ] {
                    m.push((format!("{prefix}.{k}"), v, "ms"));
                }
            }
        };
        latency("latency", &s.latency_ms);
        if s.model == ModelKind::Open {
            latency("latency_uncorrected", &s.latency_uncorrected_ms);
        }
        m
    }

    /// A human summary: one line of figures, then every threshold with its verdict.
    pub fn text(&self) -> String {
        let s = &self.summary;
        let mut out = String::new();
        let target = match s.model {
            ModelKind::Open => format!("target {:.1}/s", s.target),
            ModelKind::Closed => format!("{:.1} VUs", s.target),
        };
        let _ = write!(
            out,
            "{} requests in {:.1}s: {:.1}/s ({target}), {} failed ({:.2}%), {} dropped",
            s.requests,
            s.duration_s,
            s.achieved_rate,
            s.failed,
            s.error_rate * 100.0,
            s.dropped_iterations
        );
        if let Some(l) = &s.latency_ms {
            let _ = write!(
                out,
                "; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                l.p50, l.p99, l.max
            );
            if let (true, Some(u)) = (s.coordinated_omission_corrected, &s.latency_uncorrected_ms) {
                let _ = write!(out, " (uncorrected p99 {:.2} ms)", u.p99);
            }
        }
        if !s.errors_by_class.is_empty() {
            let classes: Vec<String> = s
                .errors_by_class
                .iter()
                .map(|(c, n)| format!("{c}: {n}"))
                .collect();
            let _ = write!(out, "\nerrors: {}", classes.join(", "));
        }
        if let Some(a) = &s.aborted_by {
            let _ = write!(out, "\naborted early: {a} failed");
        }
        for t in &s.thresholds {
            let _ = write!(out, "\n{}", t.message());
        }
        out
    }

    /// The percentile spectrum in HdrHistogram's text format (`outputPercentileDistribution`
    /// with 5 ticks per half distance and values in ms, as wrk2 prints it).
    pub fn percentile_spectrum(&self, corrected: bool) -> String {
        percentile_spectrum(
            if corrected {
                &self.corrected
            } else {
                &self.uncorrected
            },
            1000.0,
        )
    }

    /// The JSON document for reports: the summary, both histograms (recorded buckets and
    /// percentile spectrum, ms) and the per-second series.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "schema": "sluice-loadgen/1",
            "summary": self.summary,
            "histograms": {
                "unit": "ms",
                "corrected": histogram_json(&self.corrected),
                "uncorrected": histogram_json(&self.uncorrected),
            },
            "series": self.summary.series,
        })
    }
}

/// How a [`Report`] crosses a boundary as JSON (the host's load generator hands it to a
/// plugin): the summary, its series and each histogram's recorded values with counts.
#[derive(serde::Serialize, serde::Deserialize)]
struct WireReport {
    summary: Summary,
    series: Vec<Second>,
    corrected: Vec<(u64, u64)>,
    uncorrected: Vec<(u64, u64)>,
}

/// A report whose JSON could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Not a report's JSON.
    #[error("not a load-test report: {0}")]
    Json(#[from] serde_json::Error),
    /// A histogram value outside 1 µs to 1 h.
    #[error("not a load-test report: histogram value {0} µs is out of range")]
    Value(u64),
}

impl Report {
    /// The whole report as JSON text, read back by [`Report::from_wire`] with the same
    /// summary, series and histograms (so the same text, metrics and spectrum).
    pub fn to_wire(&self) -> String {
        let recorded = |h: &Histogram<u64>| -> Vec<(u64, u64)> {
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect()
        };
        let wire = WireReport {
            summary: self.summary.clone(),
            series: self.summary.series.clone(),
            corrected: recorded(&self.corrected),
            uncorrected: recorded(&self.uncorrected),
        };
        serde_json::to_string(&wire).expect("a report always serialises")
    }

    /// A report from [`Report::to_wire`]'s text.
    pub fn from_wire(text: &str) -> Result<Report, WireError> {
        let wire: WireReport = serde_json::from_str(text)?;
        let histogram = |values: &[(u64, u64)]| -> Result<Histogram<u64>, WireError> {
            let mut h = crate::stats::new_histogram();
            for &(value, count) in values {
                h.record_n(value, count)
                    .map_err(|_| WireError::Value(value))?;
            }
            Ok(h)
        };
        let mut summary = wire.summary;
        summary.series = wire.series;
        Ok(Report {
            summary,
            corrected: histogram(&wire.corrected)?,
            uncorrected: histogram(&wire.uncorrected)?,
        })
    }
}

fn histogram_json(h: &Histogram<u64>) -> serde_json::Value {
    let buckets: Vec<(f64, u64)> = h
        .iter_recorded()
        .map(|v| {
            (
                ms(h.highest_equivalent(v.value_iterated_to())),
                v.count_at_value(),
            )
        })
        .collect();
    let percentiles: Vec<(f64, f64)> = if h.is_empty() {
        Vec::new()
    } else {
        h.iter_quantiles(1)
            .map(|v| (v.quantile_iterated_to() * 100.0, ms(v.value_iterated_to())))
            .collect()
    };
    serde_json::json!({
        "count": h.len(),
        "lowest_us": h.low(),
        "highest_us": h.high(),
        "significant_digits": h.sigfig(),
        "buckets": buckets,
        "percentiles": percentiles,
    })
}

/// `h` as HdrHistogram's `outputPercentileDistribution(out, 5, scale)` prints it: values
/// divided by `scale` with three decimals, then the mean/deviation, max/count and
/// bucket footers.
pub fn percentile_spectrum(h: &Histogram<u64>, scale: f64) -> String {
    let mut out = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let value = v.value_iterated_to() as f64 / scale;
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let (mean, stdev) = if h.is_empty() {
        (0.0, 0.0)
    } else {
        (h.mean() / scale, h.stdev() / scale)
    };
    let _ = writeln!(
        out,
        "#[Mean    = {mean:12.3}, StdDeviation   = {stdev:12.3}]"
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / scale,
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets(h)
    );
    out
}

/// HdrHistogram's sub-bucket count: the smallest power of two ≥ 2 × 10^sigfig.
fn sub_buckets(h: &Histogram<u64>) -> u64 {
    let largest_single_unit = 2 * 10u64.pow(u32::from(h.sigfig()));
    largest_single_unit.next_power_of_two()
}
