//! Monitors: components of the contract's second world, `monitor`, whose `check` the
//! runner calls on a schedule (`[[monitor]]` in a pipeline, or `sluice canary`).
//!
//! A monitor is a type that implements [`Monitor`], exported with
//! [`export_monitor!`](crate::export_monitor):
//!
//! ```
//! use sluice_sdk::monitor::{CheckContext, CheckResult, Monitor};
//! use sluice_sdk::{DataPoint, RunError};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! #[serde(deny_unknown_fields, rename_all = "kebab-case")]
//! struct Config {
//!     /// The URL that must answer 200.
//!     url: String,
//! }
//!
//! struct Up;
//!
//! impl Monitor for Up {
//!     type Config = Config;
//!     const NAME: &'static str = "up";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     const SUMMARY: &'static str = "Checks that a URL answers 200.";
//!
//!     fn check(config: Config, _ctx: &CheckContext) -> Result<CheckResult, RunError> {
//!         let status = sluice_sdk::http::get(&config.url)
//!             .map_err(|e| RunError::failed(e.to_string()))?
//!             .status;
//!         let point = if status == 200 {
//!             DataPoint::positive("up", format!("{} answered 200", config.url))
//!         } else {
//!             DataPoint::negative("up", format!("{}: status {status}, expected 200", config.url))
//!         };
//!         Ok(CheckResult::new(format!("{} answered {status}", config.url)).with_data_point(point))
//!     }
//! }
//!
//! sluice_sdk::export_monitor!(Up);
//! ```
//!
//! A check returns data points (positive or negative observations) and metrics. No data
//! point at all means "no data": the runner applies the monitor's `missing` setting
//! (breaching by default), so a monitor never reports health it did not see. A check
//! that cannot observe at all returns a [`RunError`], which the runner also counts as a
//! check without data, with the error as its detail.
//!
//! Natively (a monitor's unit tests), [`run_check`] drives a monitor without a runner,
//! and [`CheckInput`]s come from [`check_input`].
//!
//! This module also holds what the built-in monitors share: [`Operator`] (a comparison
//! with a threshold, as in `> 5`), [`StatusSet`] (`200`, `[200, 204]`, `"2xx"`,
//! `"200-299"`) and [`expect`] (assertions on an HTTP response).

pub mod expect;

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http::{self, Request, Response};
use crate::{Capability, DataPoint, Descriptor, Metric, RunError, parse_config};

pub use crate::bindings::sluice::plugin::types::{CheckInput, CheckResult};

/// A health check written in Rust. Implement it for a unit struct and export that with
/// [`export_monitor!`](crate::export_monitor).
pub trait Monitor {
    /// The monitor's `with` table (derive `serde::Deserialize` and
    /// `schemars::JsonSchema`, as for a step's).
    type Config: serde::de::DeserializeOwned + schemars::JsonSchema;

    /// Short name, e.g. `http-check`.
    const NAME: &'static str;
    /// Semantic version; `env!("CARGO_PKG_VERSION")` is the usual choice.
    const VERSION: &'static str;
    /// One sentence saying what the monitor checks.
    const SUMMARY: &'static str;

    /// What the monitor may ask for; a monitor looks at a service from the outside,
    /// so the default is [`Capability::Network`].
    fn capabilities() -> Vec<Capability> {
        vec![Capability::Network]
    }

    /// Run one check. `Ok` whenever something was observed (healthy or not); `Err`
    /// when nothing could be (bad configuration, missing grant, unreachable source).
    fn check(config: Self::Config, ctx: &CheckContext) -> Result<CheckResult, RunError>;
}

/// What a running check knows about itself, from the host's [`CheckInput`] (minus the
/// configuration, which the monitor receives parsed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckContext {
    monitor: String,
    workdir: PathBuf,
    sequence: u64,
    scheduled_ms: u64,
}

impl CheckContext {
    /// The monitor's id in the file that declares it.
    pub fn monitor(&self) -> &str {
        &self.monitor
    }

    /// Absolute path of the folder that holds the file declaring the monitor.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// `path` resolved against [`workdir`](Self::workdir).
    pub fn resolve(&self, path: impl AsRef<Path>) -> PathBuf {
        self.workdir.join(path)
    }

    /// 1 for the first check of this instance, then 2, 3, ...
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// When the runner meant this check to start.
    pub fn scheduled(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.scheduled_ms)
    }
}

impl From<&CheckInput> for CheckContext {
    fn from(input: &CheckInput) -> Self {
        CheckContext {
            monitor: input.monitor.clone(),
            workdir: PathBuf::from(&input.workdir),
            sequence: input.sequence,
            scheduled_ms: input.scheduled_ms,
        }
    }
}

impl CheckResult {
    /// A result with a one-line summary and nothing observed yet.
    pub fn new(summary: impl Into<String>) -> Self {
        CheckResult {
            data_points: Vec::new(),
            metrics: Vec::new(),
            summary: summary.into(),
        }
    }

    /// Add a data point.
    pub fn with_data_point(mut self, point: DataPoint) -> Self {
        self.data_points.push(point);
        self
    }

    /// Add data points.
    pub fn with_data_points(mut self, points: impl IntoIterator<Item = DataPoint>) -> Self {
        self.data_points.extend(points);
        self
    }

    /// Add a metric.
    pub fn with_metric(mut self, metric: Metric) -> Self {
        self.metrics.push(metric);
        self
    }

    /// Add metrics.
    pub fn with_metrics(mut self, metrics: impl IntoIterator<Item = Metric>) -> Self {
        self.metrics.extend(metrics);
        self
    }

    /// Replace the summary.
    pub fn with_summary(mut self, summary: impl Into<String>) -> Self {
        self.summary = summary.into();
        self
    }

    /// How many data points are negative.
    pub fn negatives(&self) -> usize {
        self.data_points.iter().filter(|p| !p.positive).count()
    }

    /// The first negative data point, if any.
    pub fn first_negative(&self) -> Option<&DataPoint> {
        self.data_points.iter().find(|p| !p.positive)
    }
}

/// The descriptor that `describe()` returns for `M`.
pub fn describe_monitor<M: Monitor>() -> Descriptor {
    let schema = schemars::schema_for!(M::Config);
    Descriptor {
        name: M::NAME.to_owned(),
        version: M::VERSION.to_owned(),
        summary: M::SUMMARY.to_owned(),
        config_schema: serde_json::to_string(&schema)
            .expect("a JSON Schema built by schemars always serializes"),
        capabilities: M::capabilities(),
    }
}

/// Run `M` on one check input, exactly as the exported `check()` does: parse the
/// configuration (errors name the field), build the [`CheckContext`], call
/// [`Monitor::check`]. Natively, this is the test harness of a monitor.
pub fn run_check<M: Monitor>(input: CheckInput) -> Result<CheckResult, RunError> {
    let config: M::Config = parse_config(&input.config)?;
    let ctx = CheckContext::from(&input);
    M::check(config, &ctx)
}

/// A check input for tests: monitor `test`, the given `with` table (JSON text),
/// workdir `/`, first check, scheduled now.
pub fn check_input(config: impl Into<String>) -> CheckInput {
    CheckInput {
        monitor: "test".into(),
        config: config.into(),
        workdir: "/".into(),
        sequence: 1,
        scheduled_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    }
}

/// Sends a monitor's requests and times them. [`HostTransport`] sends them through the
/// host (`wasi:http`, under the monitor's `net` grant); a unit test implements it with
/// canned responses, so that everything around the request is tested natively.
pub trait Transport {
    /// Send `request` and wait for the whole response; also say how long that took
    /// (from handing the request over to the end of the response body, or the error).
    fn send(&mut self, request: &Request) -> (Result<Response, http::Error>, Duration);
}

/// The real [`Transport`]: the SDK's HTTP client.
#[derive(Default)]
pub struct HostTransport {
    client: http::Client,
}

impl Transport for HostTransport {
    fn send(&mut self, request: &Request) -> (Result<Response, http::Error>, Duration) {
        let started = std::time::Instant::now();
        if let Err(e) = self.client.start(request) {
            return (Err(e), started.elapsed());
        }
        match self.client.wait(None) {
            Some(done) => (done.result, done.finished - done.sent),
            None => (
                Err(http::Error::Other {
                    url: request.url.clone(),
                    message: "no response".into(),
                }),
                started.elapsed(),
            ),
        }
    }
}

/// Milliseconds of `duration`, as a metric value.
pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// `duration` as a person reads it: `812ms`, `1.25s`.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{}ms", ms.round() as u64)
    } else {
        format!("{}s", format_number((ms / 10.0).round() / 100.0))
    }
}

/// The start of a response body, quoted, for a data point's detail: control
/// characters as spaces, at most 80 characters, `empty` for a blank body.
pub fn excerpt(body: &str) -> String {
    const MAX: usize = 80;
    let flat: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.is_empty() {
        return "empty".into();
    }
    match flat.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}...", &flat[..cut]),
        None => format!("{flat:?}"),
    }
}

/// A comparison against a threshold: `>`, `>=`, `<`, `<=`, `==` or `!=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
}

impl Operator {
    /// Every operator, in the order the schema lists them.
    pub const ALL: [Operator; 6] = [
        Operator::Greater,
        Operator::GreaterOrEqual,
        Operator::Less,
        Operator::LessOrEqual,
        Operator::Equal,
        Operator::NotEqual,
    ];

    /// The operator as written: `>=`.
    pub fn symbol(self) -> &'static str {
        match self {
            Operator::Greater => ">",
            Operator::GreaterOrEqual => ">=",
            Operator::Less => "<",
            Operator::LessOrEqual => "<=",
            Operator::Equal => "==",
            Operator::NotEqual => "!=",
        }
    }

    /// Whether `value <op> threshold` holds. NaN compares as nothing does (only `!=`
    /// holds), as in IEEE 754.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Operator::Greater => value > threshold,
            Operator::GreaterOrEqual => value >= threshold,
            Operator::Less => value < threshold,
            Operator::LessOrEqual => value <= threshold,
            Operator::Equal => value == threshold,
            Operator::NotEqual => value != threshold,
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl std::str::FromStr for Operator {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Operator::ALL
            .into_iter()
            .find(|op| op.symbol() == text.trim())
            .ok_or_else(|| format!("invalid operator `{text}`: write one of >, >=, <, <=, ==, !="))
    }
}

impl<'de> serde::Deserialize<'de> for Operator {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Operator {
    fn schema_name() -> Cow<'static, str> {
        "Operator".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "enum": [">", ">=", "<", "<=", "==", "!="],
            "description": "How the value compares with the threshold.",
        })
    }
}

/// A comparison with its threshold, written as text: `">= 1"`, `"< 0.5"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// How the value compares.
    pub operator: Operator,
    /// What it is compared with.
    pub threshold: f64,
}

impl Comparison {
    /// Whether `value` satisfies the comparison.
    pub fn holds(&self, value: f64) -> bool {
        self.operator.holds(value, self.threshold)
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.operator, format_number(self.threshold))
    }
}

impl std::str::FromStr for Comparison {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            format!(
                "invalid comparison `{text}`: write an operator (>, >=, <, <=, ==, !=) and a number, e.g. `>= 1`"
            )
        };
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !matches!(c, '>' | '<' | '=' | '!'))
            .ok_or_else(invalid)?;
        let (op, number) = trimmed.split_at(split);
        let operator = op.parse().map_err(|_| invalid())?;
        let threshold = number.trim().parse().map_err(|_| invalid())?;
        Ok(Comparison {
            operator,
            threshold,
        })
    }
}

impl<'de> serde::Deserialize<'de> for Comparison {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Comparison {
    fn schema_name() -> Cow<'static, str> {
        "Comparison".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": r"^\s*(>=|<=|==|!=|>|<)\s*-?[0-9.eE+-]+\s*$",
            "description": "An operator and a number, e.g. `>= 1` or `< 0.5`.",
        })
    }
}

/// A number as a person writes it: `3` rather than `3.0`, `0.25` as is.
pub fn format_number(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// The HTTP statuses a response may have: `200`, `[200, 204]`, `"2xx"`, `"200-299"`,
/// or a list mixing them (`[200, "3xx"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet {
    ranges: Vec<(u16, u16)>,
    text: String,
}

impl StatusSet {
    /// Any status from 200 to 299.
    pub fn success() -> StatusSet {
        StatusSet {
            ranges: vec![(200, 299)],
            text: "2xx".into(),
        }
    }

    /// Whether `status` is in the set.
    pub fn contains(&self, status: u16) -> bool {
        self.ranges
            .iter()
            .any(|&(lo, hi)| lo <= status && status <= hi)
    }

    fn parse_item(text: &str) -> Result<(u16, u16), String> {
        let t = text.trim();
        let invalid = || {
            format!(
                "invalid status `{text}`: write a code (200), a class (\"2xx\") or a range (\"200-299\")"
            )
        };
        let code = |s: &str| -> Result<u16, String> {
            let n: u16 = s.trim().parse().map_err(|_| invalid())?;
            if (100..=599).contains(&n) {
                Ok(n)
            } else {
                Err(invalid())
            }
        };
        if let Some(class) = t.strip_suffix("xx").or_else(|| t.strip_suffix("XX")) {
            let digit: u16 = class.parse().map_err(|_| invalid())?;
            if !(1..=5).contains(&digit) || class.len() != 1 {
                return Err(invalid());
            }
            return Ok((digit * 100, digit * 100 + 99));
        }
        if let Some((lo, hi)) = t.split_once('-') {
            let (lo, hi) = (code(lo)?, code(hi)?);
            if lo > hi {
                return Err(invalid());
            }
            return Ok((lo, hi));
        }
        let n = code(t)?;
        Ok((n, n))
    }
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for StatusSet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(StatusSet {
            ranges: vec![StatusSet::parse_item(text)?],
            text: text.trim().to_owned(),
        })
    }
}

impl<'de> serde::Deserialize<'de> for StatusSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Item {
            Code(u64),
            Text(String),
        }
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Written {
            One(Item),
            Many(Vec<Item>),
        }
        let items = match Written::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "expected a status code (200), a class (\"2xx\"), a range (\"200-299\") or a list of them",
            )
        })? {
            Written::One(item) => vec![item],
            Written::Many(items) => items,
        };
        if items.is_empty() {
            return Err(serde::de::Error::custom("the list of statuses is empty"));
        }
        let mut ranges = Vec::new();
        let mut texts = Vec::new();
        for item in items {
            let text = match item {
                Item::Code(n) => n.to_string(),
                Item::Text(t) => t,
            };
            ranges.push(StatusSet::parse_item(&text).map_err(serde::de::Error::custom)?);
            texts.push(text.trim().to_owned());
        }
        Ok(StatusSet {
            ranges,
            text: texts.join(" or "),
        })
    }
}

impl schemars::JsonSchema for StatusSet {
    fn schema_name() -> Cow<'static, str> {
        "StatusSet".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Expected status: a code (200), a class (\"2xx\"), a range (\"200-299\") or a list of them.",
            "anyOf": [
                { "type": "integer", "minimum": 100, "maximum": 599 },
                { "type": "string" },
                {
                    "type": "array",
                    "minItems": 1,
                    "items": { "anyOf": [
                        { "type": "integer", "minimum": 100, "maximum": 599 },
                        { "type": "string" }
                    ] }
                }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http;

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    struct ValueConfig {
        /// The value observed.
        value: f64,
        /// When it is bad.
        breach: Comparison,
    }

    struct Fixed;

    impl Monitor for Fixed {
        type Config = ValueConfig;
        const NAME: &'static str = "fixed";
        const VERSION: &'static str = "0.1.0";
        const SUMMARY: &'static str = "Reports a fixed value.";

        fn check(config: ValueConfig, ctx: &CheckContext) -> Result<CheckResult, RunError> {
            let bad = config.breach.holds(config.value);
            let detail = format!("{} = {}", ctx.monitor(), format_number(config.value));
            let point = if bad {
                DataPoint::negative("value", detail)
            } else {
                DataPoint::positive("value", detail)
            };
            Ok(CheckResult::new(format!("check {}", ctx.sequence()))
                .with_data_point(point)
                .with_metric(Metric::new("value", config.value, "")))
        }
    }

    #[test]
    fn run_check_parses_config_and_passes_the_context() {
        let result = run_check::<Fixed>(check_input(r#"{"value":3,"breach":"> 5"}"#)).unwrap();
        assert_eq!(result.summary, "check 1");
        assert_eq!(result.negatives(), 0);
        assert_eq!(result.data_points[0].detail, "test = 3");
        let result = run_check::<Fixed>(check_input(r#"{"value":6,"breach":">5"}"#)).unwrap();
        assert_eq!(
            result.first_negative().map(|p| p.detail.as_str()),
            Some("test = 6")
        );
    }

    #[test]
    fn check_config_errors_name_the_field() {
        let err = run_check::<Fixed>(check_input(r#"{"value":3,"breach":"=> 5"}"#)).unwrap_err();
        let RunError::InvalidConfig(message) = err else {
            panic!("expected InvalidConfig")
        };
        assert!(message.contains("at `breach`"), "{message}");
        assert!(message.contains("invalid comparison `=> 5`"), "{message}");
    }

    #[test]
    fn describe_monitor_states_network_and_schema() {
        let d = describe_monitor::<Fixed>();
        assert_eq!(d.name, "fixed");
        assert_eq!(d.capabilities, vec![Capability::Network]);
        let schema: serde_json::Value = serde_json::from_str(&d.config_schema).unwrap();
        assert_eq!(
            schema["properties"]["value"]["description"],
            "The value observed."
        );
    }

    #[test]
    fn operators_compare_as_written() {
        let cases = [
            (">", 2.0, 1.0, true),
            (">", 1.0, 1.0, false),
            (">=", 1.0, 1.0, true),
            ("<", 0.5, 1.0, true),
            ("<=", 1.5, 1.0, false),
            ("==", 1.0, 1.0, true),
            ("!=", 1.0, 1.0, false),
            ("!=", f64::NAN, 1.0, true),
            (">", f64::NAN, 1.0, false),
        ];
        for (op, value, threshold, expected) in cases {
            let op: Operator = op.parse().unwrap();
            assert_eq!(
                op.holds(value, threshold),
                expected,
                "{value} {op} {threshold}"
            );
        }
        assert!("=>".parse::<Operator>().unwrap_err().contains(">, >=, <"));
    }

    #[test]
    fn comparisons_parse_with_or_without_spaces() {
        let c: Comparison = ">=1".parse().unwrap();
        assert_eq!(c.to_string(), ">= 1");
        assert!(c.holds(1.0) && !c.holds(0.0));
        let c: Comparison = " < -0.5 ".parse().unwrap();
        assert_eq!(c.to_string(), "< -0.5");
        assert!("1".parse::<Comparison>().is_err());
        assert!(">= x".parse::<Comparison>().is_err());
    }

    #[test]
    fn status_sets_take_codes_classes_ranges_and_lists() {
        let one: StatusSet = serde_json::from_str("200").unwrap();
        assert!(one.contains(200) && !one.contains(201));
        let class: StatusSet = serde_json::from_str(r#""2xx""#).unwrap();
        assert!(class.contains(204) && !class.contains(301));
        assert_eq!(class.to_string(), "2xx");
        let range: StatusSet = serde_json::from_str(r#""200-204""#).unwrap();
        assert!(range.contains(204) && !range.contains(205));
        let list: StatusSet = serde_json::from_str(r#"[200, "3xx"]"#).unwrap();
        assert!(list.contains(302) && !list.contains(201));
        assert_eq!(list.to_string(), "200 or 3xx");
        for bad in [r#""2x""#, "700", r#""299-200""#, "[]", r#""6xx""#] {
            assert!(serde_json::from_str::<StatusSet>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_print_as_people_read_them() {
        assert_eq!(format_duration(Duration::from_micros(812_400)), "812ms");
        assert_eq!(format_duration(Duration::from_millis(1250)), "1.25s");
        assert_eq!(format_duration(Duration::from_secs(3)), "3s");
    }

    #[test]
    fn numbers_print_without_a_useless_fraction() {
        assert_eq!(format_number(3.0), "3");
        assert_eq!(format_number(0.25), "0.25");
        assert_eq!(format_number(-2.0), "-2");
    }

    #[test]
    fn natively_http_reports_that_no_host_is_present() {
        // A monitor's HTTP calls fail natively rather than reach the network: unit
        // tests drive the logic around them with canned responses.
        assert!(http::get("http://127.0.0.1:1/").is_err());
    }
}
