//! Thresholds in k6's syntax: `<aggregation> <operator> <value>` on a named metric
//! (`http_req_duration: ["p(99)<50", "avg<20"]`), optionally with `abort-on-fail` and
//! `delay-abort-eval`; parsed with errors that say which threshold, what is wrong and what
//! is valid, and evaluated against any [`Observe`] (the run's statistics).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::duration::parse_duration;

/// A metric thresholds can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Request latency in ms (a trend). In the open model, from the intended send time.
    HttpReqDuration,
    /// Request latency in ms from the actual send time (a trend).
    HttpReqDurationUncorrected,
    /// Share of finished requests that failed (a rate).
    HttpReqFailed,
    /// Finished requests (a counter).
    HttpReqs,
    /// Iterations of the open model that could not start (a counter).
    DroppedIterations,
    /// Iterations started (a counter).
    Iterations,
}

const METRICS: [Metric; 6] = [
    Metric::HttpReqDuration,
    Metric::HttpReqDurationUncorrected,
    Metric::HttpReqFailed,
    Metric::HttpReqs,
    Metric::DroppedIterations,
    Metric::Iterations,
];

impl Metric {
    /// Its name, as in k6.
    pub fn name(self) -> &'static str {
        match self {
            Metric::HttpReqDuration => "http_req_duration",
            Metric::HttpReqDurationUncorrected => "http_req_duration_uncorrected",
            Metric::HttpReqFailed => "http_req_failed",
            Metric::HttpReqs => "http_reqs",
            Metric::DroppedIterations => "dropped_iterations",
            Metric::Iterations => "iterations",
        }
    }

    fn parse(name: &str) -> Option<Metric> {
        METRICS.into_iter().find(|m| m.name() == name)
    }

    fn is_trend(self) -> bool {
        matches!(
            self,
            Metric::HttpReqDuration | Metric::HttpReqDurationUncorrected
        )
    }

    fn valid_aggregations(self) -> &'static str {
        match self {
            Metric::HttpReqDuration | Metric::HttpReqDurationUncorrected => {
                "avg, min, max, med, p(N) with N from 0 to 100"
            }
            Metric::HttpReqFailed => "rate",
            Metric::HttpReqs | Metric::DroppedIterations | Metric::Iterations => "count, rate",
        }
    }
}

/// How a metric is reduced to one number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregation {
    /// Mean (trends).
    Avg,
    /// Minimum (trends).
    Min,
    /// Maximum (trends).
    Max,
    /// Median (trends).
    Med,
    /// Percentile 0-100 (trends).
    Percentile(f64),
    /// Per second (counters) or share (rates).
    Rate,
    /// Total (counters).
    Count,
}

impl Aggregation {
    fn text(self) -> String {
        match self {
            Aggregation::Avg => "avg".into(),
            Aggregation::Min => "min".into(),
            Aggregation::Max => "max".into(),
            Aggregation::Med => "med".into(),
            Aggregation::Percentile(p) => format!("p({p})"),
            Aggregation::Rate => "rate".into(),
            Aggregation::Count => "count".into(),
        }
    }
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==` or `===`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    fn holds(self, observed: f64, bound: f64) -> bool {
        match self {
            Op::Lt => observed < bound,
            Op::Le => observed <= bound,
            Op::Gt => observed > bound,
            Op::Ge => observed >= bound,
            Op::Eq => observed == bound,
            Op::Ne => observed != bound,
        }
    }
}

/// Anything that can say what a metric's aggregation is now: `None` while it has no data.
pub trait Observe {
    /// The current value (latencies in ms, rates per second or as a share).
    fn observe(&self, metric: Metric, aggregation: Aggregation) -> Option<f64>;
}

/// One threshold entry as the pipeline writes it: a string, or a table with options.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum ThresholdSpec {
    /// `"p(99)<50"`.
    Plain(String),
    /// `{ threshold = "p(99)<50", abort-on-fail = true, delay-abort-eval = "10s" }`.
    Full {
        /// The expression.
        threshold: String,
        /// Stop the test as soon as this threshold fails.
        #[serde(default, rename = "abort-on-fail")]
        abort_on_fail: bool,
        /// How long into the measured run before an abort is considered (e.g. "10s").
        #[serde(default, rename = "delay-abort-eval")]
        delay_abort_eval: Option<String>,
        /// k6's spelling of `abort-on-fail`, so a k6 threshold can be pasted as it is.
        /// A field of its own rather than a serde alias: the closed schema must list it.
        #[serde(
            default,
            rename = "abortOnFail",
            skip_serializing_if = "Option::is_none"
        )]
        abort_on_fail_k6: Option<bool>,
        /// k6's spelling of `delay-abort-eval`.
        #[serde(
            default,
            rename = "delayAbortEval",
            skip_serializing_if = "Option::is_none"
        )]
        delay_abort_eval_k6: Option<String>,
    },
}

/// The `thresholds` table: metric name → entries.
pub type ThresholdsSpec = BTreeMap<String, Vec<ThresholdSpec>>;

/// A threshold that could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("thresholds.{metric}: \"{expression}\": {problem}")]
pub struct ThresholdError {
    /// The metric key as written.
    pub metric: String,
    /// The expression as written.
    pub expression: String,
    /// What is wrong and what is valid.
    pub problem: String,
}

/// One parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The metric.
    pub metric: Metric,
    /// The aggregation.
    pub aggregation: Aggregation,
    /// The comparison.
    pub op: Op,
    /// The bound.
    pub bound: f64,
    /// The expression as written, trimmed.
    pub expression: String,
    /// Stop the test when it fails during the run.
    pub abort_on_fail: bool,
    /// Measured time before it may abort the run.
    pub delay_abort_eval: Duration,
}

/// The verdict on one threshold.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ThresholdResult {
    /// `metric: expression`, the name of its test case.
    pub name: String,
    /// The metric.
    pub metric: &'static str,
    /// The expression.
    pub expression: String,
    /// The observed value, `None` when the metric has no data (which fails).
    pub observed: Option<f64>,
    /// The unit of `observed` and `miss`: `ms`, `/s`, `share` or `requests`...
    pub unit: &'static str,
    /// Whether it held.
    pub passed: bool,
    /// When it failed, how far the observed value is beyond the bound (always ≥ 0).
    pub miss: Option<f64>,
    /// Whether it stopped the run.
    pub aborted_run: bool,
}

impl ThresholdResult {
    /// One line for a summary: `http_req_duration: p(99)<50: observed 63.2 ms, missed by 13.2 ms`.
    pub fn message(&self) -> String {
        let verdict = if self.passed { "passed" } else { "FAILED" };
        let unit = |v: f64| match self.unit {
            "share" => format!("{} ({:.2}%)", fmt_num(v), v * 100.0),
            unit => format!("{} {unit}", fmt_num(v)),
        };
        match (self.observed, self.miss) {
            (None, _) => format!("{}: {verdict}: no data (no request finished)", self.name),
            (Some(v), Some(m)) => format!(
                "{}: {verdict}: observed {}, missed by {}",
                self.name,
                unit(v),
                unit(m)
            ),
            (Some(v), None) => format!("{}: {verdict}: observed {}", self.name, unit(v)),
        }
    }
}

/// The units a [`ThresholdResult`] can carry.
const UNITS: [&str; 5] = ["ms", "share", "/s", "requests", "iterations"];

/// [`ThresholdResult`] as JSON has it (its static names as text).
#[derive(serde::Deserialize)]
struct ThresholdResultText {
    name: String,
    metric: String,
    expression: String,
    observed: Option<f64>,
    unit: String,
    passed: bool,
    miss: Option<f64>,
    aborted_run: bool,
}

/// Read back from JSON (a report that crossed a boundary): the metric and unit must be
/// ones this crate names.
impl<'de> serde::Deserialize<'de> for ThresholdResult {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ThresholdResult, D::Error> {
        use serde::de::Error;
        let t = ThresholdResultText::deserialize(d)?;
        let metric = Metric::parse(&t.metric)
            .map(Metric::name)
            .ok_or_else(|| D::Error::custom(format!("unknown metric {:?}", t.metric)))?;
        let unit = UNITS
            .into_iter()
            .find(|u| *u == t.unit)
            .ok_or_else(|| D::Error::custom(format!("unknown unit {:?}", t.unit)))?;
        Ok(ThresholdResult {
            name: t.name,
            metric,
            expression: t.expression,
            observed: t.observed,
            unit,
            passed: t.passed,
            miss: t.miss,
            aborted_run: t.aborted_run,
        })
    }
}

fn fmt_num(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.4}")
    }
}

impl Threshold {
    /// Reads one expression on `metric` (a metric name as written).
    pub fn parse(metric: &str, expression: &str) -> Result<Threshold, ThresholdError> {
        let fail = |problem: String| ThresholdError {
            metric: metric.to_string(),
            expression: expression.to_string(),
            problem,
        };
        if metric.contains('{') {
            return Err(fail(
                "submetrics selected by tags ({...}) are not supported; name a whole metric".into(),
            ));
        }
        let m = Metric::parse(metric.trim()).ok_or_else(|| {
            fail(format!(
                "unknown metric; valid: {}",
                METRICS.map(Metric::name).join(", ")
            ))
        })?;
        let text: String = expression.chars().filter(|c| !c.is_whitespace()).collect();
        let op_at = text
            .find(['<', '>', '=', '!'])
            .ok_or_else(|| fail("no comparison; write <aggregation><operator><value>, e.g. p(95)<250, with <, <=, >, >=, ==, !=".into()))?;
        let (agg_text, rest) = text.split_at(op_at);
        let (op, value_text) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("===", Op::Eq),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find_map(|(s, op)| rest.strip_prefix(s).map(|v| (op, v)))
        .ok_or_else(|| {
            fail(format!(
                "\"{rest}\" has no valid operator; valid: <, <=, >, >=, ==, ===, !="
            ))
        })?;
        let bound: f64 = value_text
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| {
                fail(format!(
                    "the value \"{value_text}\" is not a number{}",
                    if m.is_trend() {
                        " (latencies are in milliseconds, without a unit)"
                    } else {
                        ""
                    }
                ))
            })?;
        let aggregation = match agg_text {
            "avg" => Aggregation::Avg,
            "min" => Aggregation::Min,
            "max" => Aggregation::Max,
            "med" => Aggregation::Med,
            "rate" => Aggregation::Rate,
            "count" => Aggregation::Count,
            p if p.starts_with("p(") && p.ends_with(')') => {
                let n: f64 = p[2..p.len() - 1].parse().map_err(|_| {
                    fail(format!(
                        "\"{p}\" is not a percentile; write p(N) with N from 0 to 100, e.g. p(99.9)"
                    ))
                })?;
                if !(0.0..=100.0).contains(&n) {
                    return Err(fail(format!("percentile {n} is outside 0 to 100")));
                }
                Aggregation::Percentile(n)
            }
            other => {
                return Err(fail(format!(
                    "unknown aggregation \"{other}\"; valid on {}: {}",
                    m.name(),
                    m.valid_aggregations()
                )));
            }
        };
        let fits = match aggregation {
            Aggregation::Avg
            | Aggregation::Min
            | Aggregation::Max
            | Aggregation::Med
            | Aggregation::Percentile(_) => m.is_trend(),
            Aggregation::Rate => !m.is_trend(),
            Aggregation::Count => !m.is_trend() && m != Metric::HttpReqFailed,
        };
        if !fits {
            return Err(fail(format!(
                "\"{}\" does not apply to {}; valid: {}",
                aggregation.text(),
                m.name(),
                m.valid_aggregations()
            )));
        }
        Ok(Threshold {
            metric: m,
            aggregation,
            op,
            bound,
            expression: expression.trim().to_string(),
            abort_on_fail: false,
            delay_abort_eval: Duration::ZERO,
        })
    }

    /// Its name: `metric: expression`.
    pub fn name(&self) -> String {
        format!("{}: {}", self.metric.name(), self.expression)
    }

    fn unit(&self) -> &'static str {
        match (self.metric, self.aggregation) {
            (Metric::HttpReqDuration | Metric::HttpReqDurationUncorrected, _) => "ms",
            (Metric::HttpReqFailed, _) => "share",
            (_, Aggregation::Rate) => "/s",
            (Metric::HttpReqs, _) => "requests",
            _ => "iterations",
        }
    }

    /// Evaluates it against `observed`.
    pub fn evaluate(&self, observed: &dyn Observe) -> ThresholdResult {
        let value = observed.observe(self.metric, self.aggregation);
        let passed = value.is_some_and(|v| self.op.holds(v, self.bound));
        let miss = match (passed, value) {
            (false, Some(v)) => Some(match self.op {
                Op::Eq => (v - self.bound).abs(),
                Op::Ne => 0.0,
                _ => (v - self.bound).abs(),
            }),
            _ => None,
        };
        ThresholdResult {
            name: self.name(),
            metric: self.metric.name(),
            expression: self.expression.clone(),
            observed: value,
            unit: self.unit(),
            passed,
            miss,
            aborted_run: false,
        }
    }
}

/// All thresholds of a test.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thresholds(pub Vec<Threshold>);

impl Thresholds {
    /// Reads the `thresholds` table.
    pub fn parse(spec: &ThresholdsSpec) -> Result<Thresholds, ThresholdError> {
        let mut all = Vec::new();
        for (metric, entries) in spec {
            for entry in entries {
                let t = match entry {
                    ThresholdSpec::Plain(e) => Threshold::parse(metric, e)?,
                    ThresholdSpec::Full {
                        threshold,
                        abort_on_fail,
                        delay_abort_eval,
                        abort_on_fail_k6,
                        delay_abort_eval_k6,
                    } => {
                        let mut t = Threshold::parse(metric, threshold)?;
                        t.abort_on_fail = *abort_on_fail || abort_on_fail_k6.unwrap_or(false);
                        if let Some(d) = delay_abort_eval.as_ref().or(delay_abort_eval_k6.as_ref())
                        {
                            t.delay_abort_eval =
                                parse_duration(&format!("thresholds.{metric}.delay-abort-eval"), d)
                                    .map_err(|e| ThresholdError {
                                        metric: metric.clone(),
                                        expression: threshold.clone(),
                                        problem: e.to_string(),
                                    })?;
                        }
                        t
                    }
                };
                all.push(t);
            }
        }
        Ok(Thresholds(all))
    }

    /// The first abort-on-fail threshold that fails now, `measured` into the run; a
    /// threshold whose metric has no data yet cannot abort.
    pub fn abort_check(
        &self,
        observed: &dyn Observe,
        measured: Duration,
    ) -> Option<ThresholdResult> {
        self.0
            .iter()
            .filter(|t| t.abort_on_fail && measured >= t.delay_abort_eval)
            .map(|t| t.evaluate(observed))
            .find(|r| r.observed.is_some() && !r.passed)
    }

    /// Every threshold's verdict.
    pub fn evaluate(&self, observed: &dyn Observe) -> Vec<ThresholdResult> {
        self.0.iter().map(|t| t.evaluate(observed)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(BTreeMap<(Metric, String), f64>);
    impl Observe for Fixed {
        fn observe(&self, metric: Metric, aggregation: Aggregation) -> Option<f64> {
            self.0.get(&(metric, aggregation.text())).copied()
        }
    }

    #[test]
    fn parses_k6_expressions() {
        let t = Threshold::parse("http_req_duration", "p(99) < 50").unwrap();
        assert_eq!(
            (t.aggregation, t.op, t.bound),
            (Aggregation::Percentile(99.0), Op::Lt, 50.0)
        );
        let t = Threshold::parse("http_req_duration", "p(99.9)<=30.5").unwrap();
        assert_eq!(
            (t.aggregation, t.op, t.bound),
            (Aggregation::Percentile(99.9), Op::Le, 30.5)
        );
        for (e, agg, op) in [
            ("avg<20", Aggregation::Avg, Op::Lt),
            ("med<10", Aggregation::Med, Op::Lt),
            ("max<100", Aggregation::Max, Op::Lt),
            ("min>=0", Aggregation::Min, Op::Ge),
        ] {
            let t = Threshold::parse("http_req_duration", e).unwrap();
            assert_eq!((t.aggregation, t.op), (agg, op), "{e}");
        }
        let t = Threshold::parse("http_req_failed", "rate<0.01").unwrap();
        assert_eq!(
            (t.aggregation, t.op, t.bound),
            (Aggregation::Rate, Op::Lt, 0.01)
        );
        let t = Threshold::parse("http_reqs", "count>1000").unwrap();
        assert_eq!((t.aggregation, t.op), (Aggregation::Count, Op::Gt));
        let t = Threshold::parse("dropped_iterations", "count==0").unwrap();
        assert_eq!(
            (t.aggregation, t.op, t.bound),
            (Aggregation::Count, Op::Eq, 0.0)
        );
        assert_eq!(
            Threshold::parse("http_reqs", "rate===5").unwrap().op,
            Op::Eq
        );
        assert_eq!(Threshold::parse("http_reqs", "rate!=5").unwrap().op, Op::Ne);
        assert_eq!(
            Threshold::parse("http_reqs", "rate>500").unwrap().op,
            Op::Gt
        );
    }

    #[test]
    fn errors_say_what_is_wrong_and_what_is_valid() {
        let err = |m: &str, e: &str| Threshold::parse(m, e).unwrap_err().to_string();
        let e = err("http_req_durations", "p(99)<50");
        assert!(
            e.contains("unknown metric") && e.contains("http_req_duration,"),
            "{e}"
        );
        let e = err("http_req_duration", "p99<50");
        assert!(
            e.contains("unknown aggregation \"p99\"") && e.contains("p(N)"),
            "{e}"
        );
        let e = err("http_req_duration", "p(99)<50ms");
        assert!(
            e.contains("\"50ms\" is not a number") && e.contains("milliseconds"),
            "{e}"
        );
        let e = err("http_req_duration", "p(101)<50");
        assert!(e.contains("outside 0 to 100"), "{e}");
        let e = err("http_req_failed", "count<5");
        assert!(
            e.contains("does not apply to http_req_failed") && e.contains("valid: rate"),
            "{e}"
        );
        let e = err("http_reqs", "avg<5");
        assert!(e.contains("valid: count, rate"), "{e}");
        let e = err("http_reqs", "count 5");
        assert!(e.contains("no comparison"), "{e}");
        let e = err("http_reqs", "count=>5");
        assert!(e.contains("no valid operator"), "{e}");
        let e = err("http_req_duration{status:200}", "avg<5");
        assert!(e.contains("submetrics"), "{e}");
        assert!(
            e.starts_with("thresholds.http_req_duration{status:200}: \"avg<5\""),
            "{e}"
        );
    }

    #[test]
    fn the_closed_threshold_schema_still_takes_k6_spellings() {
        let schema = serde_json::to_string(&schemars::schema_for!(ThresholdSpec)).unwrap();
        assert!(
            schema.contains("\"additionalProperties\":false"),
            "{schema}"
        );
        for key in [
            "abort-on-fail",
            "abortOnFail",
            "delay-abort-eval",
            "delayAbortEval",
        ] {
            assert!(
                schema.contains(&format!("\"{key}\"")),
                "{key} missing: {schema}"
            );
        }
        let spec: ThresholdsSpec = serde_json::from_str(
            r#"{"http_req_failed": [{"threshold": "rate<0.01", "abortOnFail": true, "delayAbortEval": "5s"}]}"#,
        )
        .unwrap();
        let t = Thresholds::parse(&spec).unwrap();
        assert!(t.0[0].abort_on_fail);
        assert_eq!(t.0[0].delay_abort_eval, Duration::from_secs(5));
    }

    #[test]
    fn reads_the_table_with_abort_options() {
        let spec: ThresholdsSpec = serde_json::from_str(
            r#"{"http_req_duration": ["p(95)<250", {"threshold": "p(99)<800", "abort-on-fail": true, "delay-abort-eval": "15s"}],
                "http_req_failed": [{"threshold": "rate<0.01", "abortOnFail": true}]}"#,
        )
        .unwrap();
        let t = Thresholds::parse(&spec).unwrap();
        assert_eq!(t.0.len(), 3);
        assert!(!t.0[0].abort_on_fail);
        assert!(t.0[1].abort_on_fail);
        assert_eq!(t.0[1].delay_abort_eval, Duration::from_secs(15));
        assert!(t.0[2].abort_on_fail && t.0[2].delay_abort_eval.is_zero());
        let bad: ThresholdsSpec = serde_json::from_str(
            r#"{"http_req_duration": [{"threshold": "p(99)<8", "delay-abort-eval": "soon"}]}"#,
        )
        .unwrap();
        let e = Thresholds::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("delay-abort-eval") && e.contains("soon"), "{e}");
    }

    #[test]
    fn evaluates_with_observed_value_and_miss() {
        let observed = Fixed(BTreeMap::from([
            ((Metric::HttpReqDuration, "p(99)".to_string()), 63.25),
            ((Metric::HttpReqDuration, "avg".to_string()), 12.0),
            ((Metric::HttpReqs, "rate".to_string()), 450.0),
            ((Metric::DroppedIterations, "count".to_string()), 0.0),
        ]));
        let r = Threshold::parse("http_req_duration", "p(99)<50")
            .unwrap()
            .evaluate(&observed);
        assert!(!r.passed);
        assert_eq!(r.observed, Some(63.25));
        assert_eq!(r.miss, Some(13.25));
        assert_eq!(
            r.message(),
            "http_req_duration: p(99)<50: FAILED: observed 63.250 ms, missed by 13.250 ms"
        );
        let r = Threshold::parse("http_req_duration", "avg<20")
            .unwrap()
            .evaluate(&observed);
        assert!(r.passed && r.miss.is_none());
        let r = Threshold::parse("http_reqs", "rate>500")
            .unwrap()
            .evaluate(&observed);
        assert_eq!((r.passed, r.miss, r.unit), (false, Some(50.0), "/s"));
        let r = Threshold::parse("dropped_iterations", "count==0")
            .unwrap()
            .evaluate(&observed);
        assert!(r.passed);
        let r = Threshold::parse("http_req_failed", "rate<0.01")
            .unwrap()
            .evaluate(&observed);
        assert!(
            !r.passed && r.observed.is_none(),
            "no data fails at the end"
        );
        assert!(r.message().contains("no data"));
    }

    #[test]
    fn abort_waits_for_its_delay_and_for_data() {
        let observed = Fixed(BTreeMap::from([(
            (Metric::HttpReqDuration, "p(99)".to_string()),
            90.0,
        )]));
        let spec: ThresholdsSpec = serde_json::from_str(
            r#"{"http_req_duration": [{"threshold": "p(99)<50", "abort-on-fail": true, "delay-abort-eval": "10s"}],
                "http_req_failed": [{"threshold": "rate<0.01", "abort-on-fail": true}]}"#,
        )
        .unwrap();
        let t = Thresholds::parse(&spec).unwrap();
        assert!(t.abort_check(&observed, Duration::from_secs(9)).is_none());
        let r = t.abort_check(&observed, Duration::from_secs(10)).unwrap();
        assert_eq!(r.name, "http_req_duration: p(99)<50");
    }
}
