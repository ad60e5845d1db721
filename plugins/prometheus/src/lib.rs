//! `builtin:prometheus`: a monitor that runs an instant PromQL query against a
//! Prometheus HTTP API (`GET /api/v1/query?query=...`) and compares every value it
//! returns with a threshold.
//!
//! ```toml
//! [[monitor]]
//! id = "api-errors"
//! uses = "builtin:prometheus"
//! interval = "30s"
//! with = { url = "http://127.0.0.1:9090", query = 'sum(rate(http_errors_total[1m]))',
//!          operator = ">", threshold = 5 }
//! [monitor.grants]
//! net = ["http://127.0.0.1:9090"]
//! ```
//!
//! `operator` and `threshold` say when a value *breaches* (as a CloudWatch alarm's
//! comparison does): above, `value > 5` is bad. Each series of the result vector is one
//! data point, negative when it breaches, its detail naming the series' labels and its
//! value against the threshold (`{job="api"} = 7, breaches > 5`); a scalar result is
//! one data point. An empty vector is no data point at all: the runner then applies
//! the monitor's `missing` setting (breaching unless said otherwise), and the summary
//! says so. A Prometheus error (`"status": "error"`) is a check error naming its
//! `errorType` and `error`; so is a range vector (an instant query must return an
//! instant vector or a scalar). Metrics: `value`, one per series, tagged with its
//! labels.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sluice_sdk::http::{self, Request, Response};
use sluice_sdk::monitor::{
    CheckContext, CheckResult, HostTransport, Monitor, Operator, Transport, format_number,
};
use sluice_sdk::{DataPoint, HumanDuration, Metric, RunError};

/// The monitor's `with` table.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Base URL of the Prometheus HTTP API, e.g. `http://127.0.0.1:9090` (a path
    /// prefix such as `/prometheus` is kept); its origin must be in the monitor's
    /// `net` grant.
    pub url: String,
    /// The PromQL expression, evaluated as an instant query; it must return an instant
    /// vector or a scalar.
    pub query: String,
    /// With `threshold`: when a value breaches, e.g. `">"` means above the threshold
    /// is bad.
    pub operator: Operator,
    /// The value the operator compares with.
    pub threshold: f64,
    /// Name of the data points; default the monitor's id.
    pub name: Option<String>,
    /// Bound on connecting, the first byte and between bytes of the query.
    pub timeout: Option<HumanDuration>,
    /// Extra request headers, e.g. a tenant header for a multi-tenant Prometheus.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Name of a secret (granted to the monitor) sent as `Authorization: Bearer ...`.
    pub bearer_token_secret: Option<String>,
}

/// The monitor.
pub struct Prometheus;

impl Monitor for Prometheus {
    type Config = Config;
    const NAME: &'static str = "prometheus";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SUMMARY: &'static str = "Runs an instant PromQL query and turns each series into a data point, negative when it breaches the threshold.";

    fn check(config: Config, ctx: &CheckContext) -> Result<CheckResult, RunError> {
        let token = config
            .bearer_token_secret
            .as_deref()
            .map(sluice_sdk::secrets::get)
            .transpose()?;
        check_with(
            &config,
            token.as_deref(),
            ctx,
            &mut HostTransport::default(),
        )
    }
}

sluice_sdk::export_monitor!(Prometheus);

/// The query request: `GET <url>/api/v1/query?query=<encoded>`.
pub fn query_request(config: &Config, bearer_token: Option<&str>) -> Result<Request, RunError> {
    let base = config.url.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(RunError::invalid_config(format!(
            "with.url: `{}` is not an http:// or https:// URL",
            config.url
        )));
    }
    if config.query.trim().is_empty() {
        return Err(RunError::invalid_config("with.query: the query is empty"));
    }
    let encoded: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("query", &config.query)
        .finish();
    let mut request =
        Request::get(format!("{base}/api/v1/query?{encoded}")).header("accept", "application/json");
    for (name, value) in &config.headers {
        request = request.header(name, value);
    }
    if let Some(token) = bearer_token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(timeout) = config.timeout {
        request = request.timeout(timeout.0);
    }
    Ok(request)
}

/// One check through `transport`.
pub fn check_with(
    config: &Config,
    bearer_token: Option<&str>,
    ctx: &CheckContext,
    transport: &mut dyn Transport,
) -> Result<CheckResult, RunError> {
    let request = query_request(config, bearer_token)?;
    let (outcome, _) = transport.send(&request);
    let response = outcome.map_err(|e| match e {
        http::Error::Denied { origin } => RunError::denied(format!(
            "monitor `{}`: HTTP request to {origin} denied: add \"{origin}\" under the monitor's grants, `net`",
            ctx.monitor()
        )),
        other => RunError::failed(format!("Prometheus query failed: {other}")),
    })?;
    let samples = parse_response(&config.url, &response)?;
    Ok(judge(config, ctx.monitor(), &samples))
}

/// One value of the result: its series' labels (none for a scalar) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels, `__name__` included when present.
    pub labels: BTreeMap<String, String>,
    /// The value (`NaN` and `±Inf` as Prometheus writes them).
    pub value: f64,
}

/// The parts of a Prometheus API answer this monitor reads.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiResponse {
    status: String,
    data: Option<QueryData>,
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryData {
    result_type: String,
    result: serde_json::Value,
}

#[derive(serde::Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// The samples of an instant-query answer, or an error naming what Prometheus said.
pub fn parse_response(url: &str, response: &Response) -> Result<Vec<Sample>, RunError> {
    let body = response.text();
    let parsed: ApiResponse = serde_json::from_str(&body).map_err(|_| {
        RunError::failed(format!(
            "Prometheus at {url} answered {} with a body that is not its API's JSON: {}",
            response.status,
            excerpt(&body)
        ))
    })?;
    if parsed.status != "success" {
        return Err(RunError::failed(format!(
            "Prometheus at {url} answered {} with an error: {}: {}",
            response.status,
            parsed.error_type.as_deref().unwrap_or("unknown error type"),
            parsed.error.as_deref().unwrap_or("(no message)")
        )));
    }
    let data = parsed.data.ok_or_else(|| {
        RunError::failed(format!(
            "Prometheus at {url} answered success without `data`"
        ))
    })?;
    let malformed = |e: serde_json::Error| {
        RunError::failed(format!(
            "Prometheus at {url} answered a malformed {} result: {e}",
            data.result_type
        ))
    };
    match data.result_type.as_str() {
        "vector" => {
            let samples: Vec<VectorSample> =
                serde_json::from_value(data.result.clone()).map_err(malformed)?;
            samples
                .into_iter()
                .map(|s| {
                    Ok(Sample {
                        value: parse_value(url, &s.value.1)?,
                        labels: s.metric,
                    })
                })
                .collect()
        }
        "scalar" => {
            let (_, value): (f64, String) =
                serde_json::from_value(data.result.clone()).map_err(malformed)?;
            Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: parse_value(url, &value)?,
            }])
        }
        "matrix" => Err(RunError::invalid_config(
            "with.query returns a range vector; an instant check needs one value per series: \
             wrap it in a function such as `max_over_time(...)` or `rate(...)`",
        )),
        other => Err(RunError::invalid_config(format!(
            "with.query returns a {other}; it must return an instant vector or a scalar"
        ))),
    }
}

/// A sample value as Prometheus writes it: `"1.5"`, `"NaN"`, `"+Inf"`, `"-Inf"`.
fn parse_value(url: &str, text: &str) -> Result<f64, RunError> {
    text.parse::<f64>().map_err(|_| {
        RunError::failed(format!(
            "Prometheus at {url} answered a sample value that is not a number: {text:?}"
        ))
    })
}

/// The samples judged: one data point and one metric each.
pub fn judge(config: &Config, monitor: &str, samples: &[Sample]) -> CheckResult {
    let name = config.name.as_deref().unwrap_or(monitor);
    if samples.is_empty() {
        return CheckResult::new(format!(
            "`{}` returned no series: no data (the monitor's `missing` setting decides how that counts)",
            config.query
        ));
    }
    let mut result = CheckResult::new("");
    for sample in samples {
        let series = series_name(&sample.labels);
        let value = format_number(sample.value);
        let breaching = config.operator.holds(sample.value, config.threshold);
        let threshold = format_number(config.threshold);
        let point = if breaching {
            DataPoint::negative(
                name,
                format!(
                    "{series} = {value}, breaches {} {threshold}",
                    config.operator
                ),
            )
        } else {
            DataPoint::positive(
                name,
                format!(
                    "{series} = {value}, within threshold (breaches {} {threshold})",
                    config.operator
                ),
            )
        };
        let mut metric = Metric::new("value", sample.value, "");
        for (k, v) in &sample.labels {
            metric = metric.tag(k, v);
        }
        result = result.with_data_point(point).with_metric(metric);
    }
    let breaching = result.negatives();
    let summary = match (samples.len(), result.first_negative()) {
        (1, _) => result.data_points[0].detail.clone(),
        (n, Some(first)) => format!(
            "{breaching} of {n} series breach {} {}; first: {}",
            config.operator,
            format_number(config.threshold),
            first.detail
        ),
        (n, None) => format!(
            "{n} series, none breaches {} {}",
            config.operator,
            format_number(config.threshold)
        ),
    };
    result.with_summary(summary)
}

/// A series as PromQL writes it: `http_errors_total{job="api"}`, `{job="api"}`, or
/// `scalar` for a scalar result.
pub fn series_name(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "scalar".into();
    }
    let mut out = labels.get("__name__").cloned().unwrap_or_default();
    let rest: Vec<_> = labels.iter().filter(|(k, _)| *k != "__name__").collect();
    if !rest.is_empty() || out.is_empty() {
        out.push('{');
        for (i, (k, v)) in rest.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{k}={v:?}");
        }
        out.push('}');
    }
    out
}

fn excerpt(body: &str) -> String {
    let flat = body.trim();
    match flat.char_indices().nth(120) {
        Some((cut, _)) => format!("{:?}...", &flat[..cut]),
        None if flat.is_empty() => "empty".into(),
        None => format!("{flat:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::monitor::{check_input, run_check};
    use std::time::Duration;

    struct Canned {
        outcome: Result<Response, http::Error>,
        sent: Vec<Request>,
    }

    impl Canned {
        fn json(status: u16, body: serde_json::Value) -> Canned {
            Canned::text(status, &body.to_string())
        }

        fn text(status: u16, body: &str) -> Canned {
            Canned {
                outcome: Ok(Response {
                    status,
                    headers: vec![],
                    body: body.as_bytes().to_vec(),
                }),
                sent: vec![],
            }
        }
    }

    impl Transport for Canned {
        fn send(&mut self, request: &Request) -> (Result<Response, http::Error>, Duration) {
            self.sent.push(request.clone());
            (self.outcome.clone(), Duration::from_millis(2))
        }
    }

    fn config(json: serde_json::Value) -> Config {
        serde_json::from_value(json).unwrap()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({"url": "http://127.0.0.1:9090/", "query": "sum by (job) (rate(errors_total{code=~\"5..\"}[1m]))",
                           "operator": ">", "threshold": 5})
    }

    fn run(cfg: serde_json::Value, t: &mut Canned) -> Result<CheckResult, RunError> {
        check_with(
            &config(cfg),
            None,
            &CheckContext::from(&check_input("{}")),
            t,
        )
    }

    fn vector(samples: &[(&[(&str, &str)], &str)]) -> serde_json::Value {
        let result: Vec<_> = samples
            .iter()
            .map(|(labels, v)| {
                let metric: serde_json::Map<_, _> = labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
                    .collect();
                serde_json::json!({"metric": metric, "value": [1700000000.123, v]})
            })
            .collect();
        serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": result}})
    }

    #[test]
    fn the_query_is_url_encoded_under_api_v1_query() {
        let mut t = Canned::json(200, vector(&[]));
        let mut cfg = base();
        cfg["headers"] = serde_json::json!({"x-scope-orgid": "team-a"});
        check_with(
            &config(cfg),
            Some("s3cret"),
            &CheckContext::from(&check_input("{}")),
            &mut t,
        )
        .unwrap();
        let r = &t.sent[0];
        assert_eq!(r.method, "GET");
        assert_eq!(
            r.url,
            "http://127.0.0.1:9090/api/v1/query?query=sum+by+%28job%29+%28rate%28errors_total%7Bcode%3D%7E%225..%22%7D%5B1m%5D%29%29"
        );
        assert!(
            r.headers
                .contains(&("x-scope-orgid".into(), "team-a".into()))
        );
        assert!(
            r.headers
                .contains(&("authorization".into(), "Bearer s3cret".into()))
        );
    }

    #[test]
    fn each_series_is_a_point_negative_when_it_breaches() {
        let mut t = Canned::json(
            200,
            vector(&[
                (&[("job", "api"), ("instance", "a:1")], "7"),
                (&[("job", "web")], "2.5"),
            ]),
        );
        let r = run(base(), &mut t).unwrap();
        assert_eq!(r.data_points.len(), 2);
        assert!(!r.data_points[0].positive);
        assert_eq!(
            r.data_points[0].detail,
            r#"{instance="a:1", job="api"} = 7, breaches > 5"#
        );
        assert!(r.data_points[1].positive);
        assert_eq!(
            r.data_points[1].detail,
            r#"{job="web"} = 2.5, within threshold (breaches > 5)"#
        );
        assert_eq!(r.data_points[0].name, "test");
        assert_eq!(
            r.summary,
            r#"1 of 2 series breach > 5; first: {instance="a:1", job="api"} = 7, breaches > 5"#
        );
        assert_eq!(r.metrics[0].value, 7.0);
        assert!(r.metrics[0].tags.contains(&("job".into(), "api".into())));
    }

    #[test]
    fn every_operator_decides_the_breach() {
        for (op, value, breaches) in [
            (">", "5", false),
            (">=", "5", true),
            ("<", "4.9", true),
            ("<=", "6", false),
            ("==", "5", true),
            ("!=", "5", false),
        ] {
            let mut cfg = base();
            cfg["operator"] = serde_json::json!(op);
            let mut t = Canned::json(200, vector(&[(&[("__name__", "up")], value)]));
            let r = run(cfg, &mut t).unwrap();
            assert_eq!(r.data_points[0].positive, !breaches, "{value} {op} 5");
            assert!(
                r.data_points[0]
                    .detail
                    .starts_with(&format!("up = {value}"))
            );
        }
    }

    #[test]
    fn special_values_parse_as_prometheus_writes_them() {
        let mut t = Canned::json(
            200,
            vector(&[
                (&[("a", "1")], "NaN"),
                (&[("a", "2")], "+Inf"),
                (&[("a", "3")], "-Inf"),
            ]),
        );
        let r = run(base(), &mut t).unwrap();
        // NaN > 5 does not hold: not breaching, as in Prometheus's own comparisons.
        assert!(r.data_points[0].positive);
        assert!(!r.data_points[1].positive);
        assert!(r.data_points[2].positive);
        assert_eq!(r.data_points[1].detail, r#"{a="2"} = inf, breaches > 5"#);
    }

    #[test]
    fn a_scalar_result_is_one_point() {
        let body = serde_json::json!({"status": "success",
            "data": {"resultType": "scalar", "result": [1700000000.5, "9"]}});
        let mut t = Canned::json(200, body);
        let r = run(base(), &mut t).unwrap();
        assert_eq!(r.data_points.len(), 1);
        assert_eq!(r.data_points[0].detail, "scalar = 9, breaches > 5");
        assert_eq!(r.summary, "scalar = 9, breaches > 5");
    }

    #[test]
    fn an_empty_vector_is_no_data_and_says_so() {
        let mut t = Canned::json(200, vector(&[]));
        let r = run(base(), &mut t).unwrap();
        assert!(r.data_points.is_empty());
        assert!(
            r.summary.contains("returned no series: no data"),
            "{}",
            r.summary
        );
        assert!(r.summary.contains("`missing`"), "{}", r.summary);
    }

    #[test]
    fn a_prometheus_error_names_its_type_and_message() {
        let body = serde_json::json!({"status": "error", "errorType": "bad_data",
            "error": "invalid parameter \"query\": 1:5: parse error: unexpected end of input"});
        let mut t = Canned::json(400, body);
        let err = run(base(), &mut t).unwrap_err();
        assert_eq!(
            err,
            RunError::Failed(
                "Prometheus at http://127.0.0.1:9090/ answered 400 with an error: bad_data: invalid parameter \"query\": 1:5: parse error: unexpected end of input".into()
            )
        );
    }

    #[test]
    fn a_body_that_is_not_the_api_is_an_error_quoting_it() {
        let mut t = Canned::text(502, "<html>Bad Gateway</html>");
        let err = run(base(), &mut t).unwrap_err();
        assert_eq!(
            err.message(),
            "Prometheus at http://127.0.0.1:9090/ answered 502 with a body that is not its API's JSON: \"<html>Bad Gateway</html>\""
        );
    }

    #[test]
    fn a_range_vector_asks_for_an_instant_one() {
        let body = serde_json::json!({"status": "success",
            "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "1"]]}]}});
        let mut t = Canned::json(200, body);
        let err = run(base(), &mut t).unwrap_err();
        assert!(matches!(err, RunError::InvalidConfig(_)));
        assert!(err.message().contains("max_over_time"), "{err:?}");
    }

    #[test]
    fn a_denied_or_failed_query_is_an_error() {
        let mut t = Canned {
            outcome: Err(http::Error::Denied {
                origin: "http://127.0.0.1:9090".into(),
            }),
            sent: vec![],
        };
        let err = run(base(), &mut t).unwrap_err();
        assert!(matches!(err, RunError::Denied(_)));
        assert!(
            err.message()
                .contains("add \"http://127.0.0.1:9090\" under the monitor's grants, `net`")
        );
        let mut t = Canned {
            outcome: Err(http::Error::ConnectionRefused {
                url: "http://127.0.0.1:9090/api/v1/query".into(),
            }),
            sent: vec![],
        };
        let err = run(base(), &mut t).unwrap_err();
        assert_eq!(
            err.message(),
            "Prometheus query failed: HTTP request to http://127.0.0.1:9090/api/v1/query: connection refused"
        );
    }

    #[test]
    fn series_names_read_like_promql() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(series_name(&labels(&[("__name__", "up")])), "up");
        assert_eq!(
            series_name(&labels(&[("__name__", "up"), ("job", "x")])),
            r#"up{job="x"}"#
        );
        assert_eq!(series_name(&labels(&[])), "scalar");
    }

    #[test]
    fn config_is_checked_before_anything_is_sent() {
        let err = run_check::<Prometheus>(check_input(
            r#"{"url":"http://x","query":"up","operator":"=>","threshold":1}"#,
        ))
        .unwrap_err();
        assert!(err.message().contains("at `operator`"), "{err:?}");
        let mut t = Canned::json(200, vector(&[]));
        let mut cfg = base();
        cfg["query"] = serde_json::json!("  ");
        assert_eq!(
            run(cfg, &mut t).unwrap_err().message(),
            "with.query: the query is empty"
        );
        assert!(t.sent.is_empty());
    }
}
