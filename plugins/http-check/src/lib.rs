//! `builtin:http-check`: a monitor that sends one HTTP request per check and judges the
//! response on its status, its latency and its body.
//!
//! ```toml
//! [[monitor]]
//! id = "api-health"
//! uses = "builtin:http-check"
//! interval = "1m"
//! with = { url = "http://127.0.0.1:8080/health", status = "2xx", max-latency = "300ms",
//!          body-contains = "ok", body-matches = '"version":"[0-9.]+"' }
//! [monitor.grants]
//! net = ["http://127.0.0.1:8080"]
//! ```
//!
//! Each check yields one data point named after the monitor (or `name`): positive when
//! every assertion held, negative with the first failed one as its detail
//! (`GET http://127.0.0.1:8080/health: status 503, expected 2xx`). A service that
//! does not answer (connection refused, timeout) is a negative data point too: that is
//! what the check is for. A request the monitor's `net` grant refuses is an error
//! naming the grant to add, since nothing was observed. Metrics: `latency` (ms) and
//! `status`.

use std::collections::BTreeMap;

use regex::Regex;
use sluice_sdk::http::{self, Request};
use sluice_sdk::monitor::expect::ResponseExpect;
use sluice_sdk::monitor::{
    CheckContext, CheckResult, HostTransport, Monitor, StatusSet, Transport, format_duration,
    millis,
};
use sluice_sdk::{DataPoint, HumanDuration, Metric, RunError};

/// The monitor's `with` table.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// The URL to request (`http://` or `https://`); its origin must be in the
    /// monitor's `net` grant.
    pub url: String,
    /// The request method; default `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Request headers, e.g. `{ accept = "application/json" }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The request body, as text.
    pub body: Option<String>,
    /// Bound on connecting, on the first byte and between bytes; a response slower
    /// than that is a negative data point. Default: the host's (never past the
    /// monitor's own timeout).
    pub timeout: Option<HumanDuration>,
    /// The statuses that pass: a code (`200`), a class (`"2xx"`), a range
    /// (`"200-299"`) or a list of them; default `"2xx"`.
    #[serde(default = "StatusSet::success")]
    pub status: StatusSet,
    /// The longest the whole response may take, e.g. `"300ms"`.
    pub max_latency: Option<HumanDuration>,
    /// Text the body must contain: one string or a list (all must be present).
    #[serde(default, deserialize_with = "sluice_sdk::one_or_many")]
    #[schemars(with = "sluice_sdk::OneOrMany")]
    pub body_contains: Vec<String>,
    /// A regular expression (Rust `regex` syntax) the body must match.
    pub body_matches: Option<String>,
    /// Name of the data point; default the monitor's id.
    pub name: Option<String>,
}

fn default_method() -> String {
    "GET".into()
}

/// The monitor.
pub struct HttpCheck;

impl Monitor for HttpCheck {
    type Config = Config;
    const NAME: &'static str = "http-check";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SUMMARY: &'static str =
        "Sends one HTTP request per check and judges its status, latency and body.";

    fn check(config: Config, ctx: &CheckContext) -> Result<CheckResult, RunError> {
        check_with(&config, ctx, &mut HostTransport::default())
    }
}

sluice_sdk::export_monitor!(HttpCheck);

/// The configuration, checked beyond its schema: the request to send and the
/// assertions on its response (the body regex compiles).
pub struct Prepared {
    request: Request,
    expect: ResponseExpect,
}

/// Build the request and compile the regex; errors name the key at fault.
pub fn prepare(config: &Config) -> Result<Prepared, RunError> {
    if !(config.url.starts_with("http://") || config.url.starts_with("https://")) {
        return Err(RunError::invalid_config(format!(
            "with.url: `{}` is not an http:// or https:// URL",
            config.url
        )));
    }
    let body_matches = config
        .body_matches
        .as_deref()
        .map(|re| {
            Regex::new(re).map_err(|e| {
                RunError::invalid_config(format!("with.body-matches: invalid regex: {e}"))
            })
        })
        .transpose()?;
    let mut request = Request::new(config.method.to_ascii_uppercase(), config.url.clone());
    for (name, value) in &config.headers {
        request = request.header(name, value);
    }
    if let Some(body) = &config.body {
        request = request.body(body.as_bytes().to_vec());
    }
    if let Some(timeout) = config.timeout {
        request = request.timeout(timeout.0);
    }
    Ok(Prepared {
        request,
        expect: ResponseExpect {
            status: config.status.clone(),
            max_latency: config.max_latency,
            body_contains: config.body_contains.clone(),
            body_matches,
            ..ResponseExpect::default()
        },
    })
}

/// One check through `transport`.
pub fn check_with(
    config: &Config,
    ctx: &CheckContext,
    transport: &mut dyn Transport,
) -> Result<CheckResult, RunError> {
    let prepared = prepare(config)?;
    let name = config.name.as_deref().unwrap_or(ctx.monitor());
    let what = format!("{} {}", prepared.request.method, prepared.request.url);
    let (outcome, latency) = transport.send(&prepared.request);
    let latency_metric = Metric::new("latency", millis(latency), "ms").tag("url", &config.url);
    let response = match outcome {
        Ok(response) => response,
        Err(http::Error::Denied { origin }) => {
            return Err(RunError::denied(format!(
                "monitor `{}`: HTTP request to {origin} denied: add \"{origin}\" under the monitor's grants, `net`",
                ctx.monitor()
            )));
        }
        Err(http::Error::Invalid { reason, .. }) => {
            return Err(RunError::invalid_config(format!(
                "with.url: {reason} (`{}`)",
                config.url
            )));
        }
        Err(e) => {
            // The service did not answer: exactly what a health check is to notice.
            let detail = format!("{what}: {}", no_answer(&e));
            return Ok(CheckResult::new(detail.clone())
                .with_data_point(DataPoint::negative(name, detail))
                .with_metric(latency_metric));
        }
    };
    let status_metric =
        Metric::new("status", f64::from(response.status), "").tag("url", &config.url);
    let result = CheckResult::new("")
        .with_metric(latency_metric)
        .with_metric(status_metric);
    let point = match prepared.expect.first_failure(&response, latency) {
        Some(failure) => DataPoint::negative(name, format!("{what}: {failure}")),
        None => DataPoint::positive(
            name,
            format!(
                "{what}: {} in {}",
                response.status,
                format_duration(latency)
            ),
        ),
    };
    Ok(result
        .with_summary(point.detail.clone())
        .with_data_point(point))
}

/// Why there was no response, without repeating the URL.
fn no_answer(error: &http::Error) -> String {
    match error {
        http::Error::Timeout { .. } => "timed out".into(),
        http::Error::ConnectionRefused { .. } => "connection refused".into(),
        http::Error::Other { message, .. } => format!("no response ({message})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sluice_sdk::http::Response;
    use sluice_sdk::monitor::excerpt;

    use super::*;
    use sluice_sdk::monitor::{check_input, run_check};

    /// Answers every request with a canned outcome and latency, and keeps the requests.
    struct Canned {
        outcome: Result<Response, http::Error>,
        latency: Duration,
        sent: Vec<Request>,
    }

    impl Canned {
        fn answer(status: u16, body: &str, latency_ms: u64) -> Canned {
            Canned {
                outcome: Ok(Response {
                    status,
                    headers: vec![("content-type".into(), "text/plain".into())],
                    body: body.as_bytes().to_vec(),
                }),
                latency: Duration::from_millis(latency_ms),
                sent: Vec::new(),
            }
        }

        fn fail(error: http::Error) -> Canned {
            Canned {
                outcome: Err(error),
                latency: Duration::from_millis(3),
                sent: Vec::new(),
            }
        }
    }

    impl Transport for Canned {
        fn send(&mut self, request: &Request) -> (Result<Response, http::Error>, Duration) {
            self.sent.push(request.clone());
            (self.outcome.clone(), self.latency)
        }
    }

    fn config(json: serde_json::Value) -> Config {
        serde_json::from_value(json).unwrap()
    }

    fn ctx() -> CheckContext {
        CheckContext::from(&check_input("{}"))
    }

    fn run(json: serde_json::Value, transport: &mut Canned) -> Result<CheckResult, RunError> {
        check_with(&config(json), &ctx(), transport)
    }

    const URL: &str = "http://127.0.0.1:8080/health";

    #[test]
    fn builds_the_request_from_the_config() {
        let mut t = Canned::answer(200, "ok", 5);
        run(
            serde_json::json!({"url": URL, "method": "post", "headers": {"x-probe": "1"},
                               "body": "ping", "timeout": "2s"}),
            &mut t,
        )
        .unwrap();
        let sent = &t.sent[0];
        assert_eq!(sent.method, "POST");
        assert_eq!(sent.url, URL);
        assert_eq!(sent.headers, vec![("x-probe".to_string(), "1".to_string())]);
        assert_eq!(sent.body, b"ping");
        assert_eq!(sent.timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn a_healthy_answer_is_one_positive_point_with_metrics() {
        let mut t = Canned::answer(200, "ok", 12);
        let r = run(serde_json::json!({"url": URL}), &mut t).unwrap();
        assert_eq!(r.data_points.len(), 1);
        let p = &r.data_points[0];
        assert!(p.positive);
        assert_eq!(p.name, "test");
        assert_eq!(p.detail, format!("GET {URL}: 200 in 12ms"));
        assert_eq!(r.summary, p.detail);
        assert_eq!(r.metrics[0].name, "latency");
        assert_eq!(r.metrics[0].value, 12.0);
        assert_eq!(r.metrics[1].name, "status");
    }

    #[test]
    fn status_outside_the_set_is_negative() {
        let mut t = Canned::answer(503, "", 5);
        let r = run(serde_json::json!({"url": URL, "name": "health"}), &mut t).unwrap();
        let p = &r.data_points[0];
        assert!(!p.positive);
        assert_eq!(p.name, "health");
        assert_eq!(p.detail, format!("GET {URL}: status 503, expected 2xx"));
        let mut t = Canned::answer(301, "", 5);
        let r = run(
            serde_json::json!({"url": URL, "status": [200, "3xx"]}),
            &mut t,
        )
        .unwrap();
        assert!(r.data_points[0].positive);
        let mut t = Canned::answer(204, "", 5);
        let r = run(serde_json::json!({"url": URL, "status": "200-203"}), &mut t).unwrap();
        assert_eq!(
            r.data_points[0].detail,
            format!("GET {URL}: status 204, expected 200-203")
        );
    }

    #[test]
    fn slower_than_max_latency_is_negative() {
        let mut t = Canned::answer(200, "ok", 812);
        let r = run(
            serde_json::json!({"url": URL, "max-latency": "300ms"}),
            &mut t,
        )
        .unwrap();
        assert_eq!(
            r.data_points[0].detail,
            format!("GET {URL}: latency 812ms, expected at most 300ms")
        );
        let mut t = Canned::answer(200, "ok", 300);
        let r = run(
            serde_json::json!({"url": URL, "max-latency": "300ms"}),
            &mut t,
        )
        .unwrap();
        assert!(r.data_points[0].positive);
    }

    #[test]
    fn body_must_contain_every_text_and_match_the_regex() {
        let body = r#"{"status":"ok","version":"1.2.3"}"#;
        let mut t = Canned::answer(200, body, 5);
        let r = run(
            serde_json::json!({"url": URL, "body-contains": ["ok", "version"],
                               "body-matches": r#""version":"[0-9.]+""#}),
            &mut t,
        )
        .unwrap();
        assert!(r.data_points[0].positive, "{}", r.data_points[0].detail);
        let r = run(
            serde_json::json!({"url": URL, "body-contains": "degraded"}),
            &mut t,
        )
        .unwrap();
        assert_eq!(
            r.data_points[0].detail,
            format!(
                r#"GET {URL}: body does not contain "degraded" (body: "{{\"status\":\"ok\",\"version\":\"1.2.3\"}}")"#
            )
        );
        let r = run(
            serde_json::json!({"url": URL, "body-matches": "^up$"}),
            &mut t,
        )
        .unwrap();
        assert!(
            r.data_points[0]
                .detail
                .starts_with(&format!("GET {URL}: body does not match /^up$/")),
            "{}",
            r.data_points[0].detail
        );
    }

    #[test]
    fn no_answer_is_a_negative_point_not_an_error() {
        let mut t = Canned::fail(http::Error::ConnectionRefused { url: URL.into() });
        let r = run(serde_json::json!({"url": URL}), &mut t).unwrap();
        assert_eq!(
            r.data_points[0].detail,
            format!("GET {URL}: connection refused")
        );
        assert!(!r.data_points[0].positive);
        let mut t = Canned::fail(http::Error::Timeout { url: URL.into() });
        let r = run(serde_json::json!({"url": URL}), &mut t).unwrap();
        assert_eq!(r.data_points[0].detail, format!("GET {URL}: timed out"));
    }

    #[test]
    fn a_denied_request_is_an_error_naming_the_grant() {
        let mut t = Canned::fail(http::Error::Denied {
            origin: "http://127.0.0.1:8080".into(),
        });
        let err = run(serde_json::json!({"url": URL}), &mut t).unwrap_err();
        assert_eq!(
            err,
            RunError::Denied(
                "monitor `test`: HTTP request to http://127.0.0.1:8080 denied: add \"http://127.0.0.1:8080\" under the monitor's grants, `net`".into()
            )
        );
    }

    #[test]
    fn bad_regex_and_url_are_config_errors_naming_the_key() {
        let mut t = Canned::answer(200, "", 1);
        let err = run(serde_json::json!({"url": URL, "body-matches": "("}), &mut t).unwrap_err();
        assert!(
            err.message()
                .starts_with("with.body-matches: invalid regex"),
            "{err:?}"
        );
        let err = run(serde_json::json!({"url": "ftp://x/"}), &mut t).unwrap_err();
        assert_eq!(
            err.message(),
            "with.url: `ftp://x/` is not an http:// or https:// URL"
        );
        assert!(t.sent.is_empty());
    }

    #[test]
    fn the_schema_refuses_unknown_keys_through_the_sdk() {
        let err =
            run_check::<HttpCheck>(check_input(r#"{"url":"http://x/","stauts":200}"#)).unwrap_err();
        assert!(err.message().contains("unknown field `stauts`"), "{err:?}");
        let d = sluice_sdk::monitor::describe_monitor::<HttpCheck>();
        let schema: serde_json::Value = serde_json::from_str(&d.config_schema).unwrap();
        assert_eq!(schema["required"], serde_json::json!(["url"]));
        assert!(schema["properties"]["max-latency"].is_object());
    }

    #[test]
    fn long_bodies_are_cut_in_details() {
        let long = "x".repeat(200);
        let e = excerpt(&long);
        assert!(e.ends_with("...") && e.len() < 100, "{e}");
        assert_eq!(excerpt("  \n"), "empty");
    }
}
