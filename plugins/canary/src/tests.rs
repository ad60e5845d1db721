//! The canary's logic, natively: request building, templates, captures, every
//! assertion kind, retries, and the details a person reads.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sluice_sdk::http::{self, Request, Response};
use sluice_sdk::monitor::{CheckContext, check_input, describe_monitor, run_check as sdk_run};
use sluice_sdk::{DataPoint, RunError};

use super::*;

type Route = Box<dyn FnMut(&Request) -> (Result<Response, http::Error>, Duration)>;

/// A scripted world: a routing function for requests, recorded pauses, fixed secrets.
struct Scripted {
    route: Route,
    sent: Vec<Request>,
    pauses: Vec<Duration>,
    secrets: BTreeMap<String, String>,
}

impl Scripted {
    fn new(
        route: impl FnMut(&Request) -> (Result<Response, http::Error>, Duration) + 'static,
    ) -> Self {
        Scripted {
            route: Box::new(route),
            sent: vec![],
            pauses: vec![],
            secrets: BTreeMap::from([("probe-password".into(), "hunter2".into())]),
        }
    }
}

impl Environment for Scripted {
    fn send(&mut self, request: &Request) -> (Result<Response, http::Error>, Duration) {
        self.sent.push(request.clone());
        (self.route)(request)
    }

    fn pause(&mut self, duration: Duration) {
        self.pauses.push(duration);
    }

    fn secret(&self, name: &str) -> Result<String, RunError> {
        self.secrets.get(name).cloned().ok_or_else(|| {
            RunError::denied(format!(
                "secret `{name}` is not granted: add \"{name}\" under the monitor's grants, `secrets`"
            ))
        })
    }
}

fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Result<Response, http::Error> {
    Ok(Response {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    })
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn header<'a>(r: &'a Request, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn run(config: serde_json::Value, env: &mut Scripted) -> Result<CheckResult, RunError> {
    let config: Config = serde_json::from_value(config).unwrap();
    run_checks(&config, &CheckContext::from(&check_input("{}")), env)
}

/// The shop of the module docs: login returns a token, the cart needs it.
fn shop(items: usize) -> Scripted {
    Scripted::new(move |r| match r.url.as_str() {
        "http://shop/login" => (
            answer(
                200,
                &[
                    ("content-type", "application/json"),
                    ("set-cookie", "session=s-77; Path=/"),
                ],
                r#"{"token":"t-123","user":{"id":9}}"#,
            ),
            ms(20),
        ),
        "http://shop/cart" if header(r, "authorization") == Some("Bearer t-123") => {
            let list: Vec<_> = (0..items).map(|i| json!({"sku": i})).collect();
            (
                answer(
                    200,
                    &[("content-type", "application/json")],
                    &json!({"items": list}).to_string(),
                ),
                ms(10),
            )
        }
        "http://shop/cart" => (answer(401, &[], "no token"), ms(5)),
        _ => (answer(404, &[], ""), ms(1)),
    })
}

fn login_and_cart() -> serde_json::Value {
    json!({"checks": [{
        "name": "login-and-cart",
        "requests": [
            {"name": "login", "method": "post", "url": "http://shop/login",
             "json": {"user": "probe", "password": "{{secret.probe-password}}"},
             "capture": {"token": {"json-path": "$.token"}},
             "expect": {"status": 200}},
            {"name": "get-cart", "url": "http://shop/cart",
             "headers": {"authorization": "Bearer {{token}}"},
             "expect": {"status": 200, "json": [{"path": "$.items", "length": ">= 1"}]}}
        ]
    }]})
}

#[test]
fn a_flow_carries_the_captured_token_to_the_next_request() {
    let mut env = shop(2);
    let r = run(login_and_cart(), &mut env).unwrap();
    assert_eq!(r.data_points.len(), 1, "{r:?}");
    let p = &r.data_points[0];
    assert!(p.positive, "{}", p.detail);
    assert_eq!(p.name, "login-and-cart");
    assert_eq!(p.detail, "2 requests passed in 30ms");
    assert_eq!(r.summary, "check login-and-cart passed");
    let login = &env.sent[0];
    assert_eq!(login.method, "POST");
    assert_eq!(header(login, "content-type"), Some("application/json"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&login.body).unwrap(),
        json!({"user": "probe", "password": "hunter2"})
    );
    assert_eq!(header(&env.sent[1], "authorization"), Some("Bearer t-123"));
}

#[test]
fn a_failed_json_assertion_reads_as_what_was_expected_and_seen() {
    let mut env = shop(0);
    let r = run(login_and_cart(), &mut env).unwrap();
    let p = &r.data_points[0];
    assert!(!p.positive);
    assert_eq!(p.detail, "get-cart: $.items.length() expected >= 1, got 0");
    assert_eq!(
        r.summary,
        "check login-and-cart failed: get-cart: $.items.length() expected >= 1, got 0"
    );
}

#[test]
fn a_failed_status_stops_the_flow_at_that_request() {
    let mut env = Scripted::new(|_| (answer(500, &[], "boom"), ms(3)));
    let mut config = login_and_cart();
    config["checks"][0]["requests"][0]["expect"] = json!({"status": 200});
    let r = run(config, &mut env).unwrap();
    assert_eq!(r.data_points[0].detail, "login: status 500, expected 200");
    assert_eq!(env.sent.len(), 1, "the cart request needs the token");
}

#[test]
fn retries_pause_and_a_later_success_is_positive() {
    let mut calls = 0;
    let mut env = Scripted::new(move |_| {
        calls += 1;
        let status = if calls < 3 { 503 } else { 200 };
        (answer(status, &[], "ok"), ms(4))
    });
    let config = json!({"retries": 5, "retry-delay": "250ms",
        "checks": [{"name": "health", "requests": [{"url": "http://svc/health"}]}]});
    let r = run(config, &mut env).unwrap();
    let p = &r.data_points[0];
    assert!(p.positive);
    assert_eq!(p.detail, "1 request passed in 4ms on attempt 3 of 6");
    assert_eq!(env.pauses, vec![ms(250), ms(250)]);
    let attempts = r
        .metrics
        .iter()
        .find(|m| m.name == "check.attempts")
        .unwrap();
    assert_eq!(attempts.value, 3.0);
    assert_eq!(
        r.metrics
            .iter()
            .filter(|m| m.name == "request.latency")
            .count(),
        3
    );
}

#[test]
fn a_check_that_keeps_failing_reports_its_last_attempt() {
    let mut env = Scripted::new(|_| (answer(503, &[], ""), ms(4)));
    let config = json!({"checks": [{"name": "health", "retries": 2,
        "requests": [{"name": "ping", "url": "http://svc/health"}]}]});
    let r = run(config, &mut env).unwrap();
    assert_eq!(
        r.data_points[0].detail,
        "ping: status 503, expected 2xx (after 3 attempts)"
    );
    assert_eq!(env.pauses, vec![ms(1000), ms(1000)], "default delay 1s");
}

#[test]
fn each_check_is_its_own_data_point() {
    let mut env = Scripted::new(|r| match r.url.as_str() {
        "http://svc/a" => (answer(200, &[], ""), ms(1)),
        _ => (answer(500, &[], ""), ms(1)),
    });
    let config = json!({"checks": [
        {"name": "a", "requests": [{"url": "http://svc/a"}]},
        {"name": "b", "requests": [{"url": "http://svc/b"}]}]});
    let r = run(config, &mut env).unwrap();
    let names: Vec<(&str, bool)> = r
        .data_points
        .iter()
        .map(|p: &DataPoint| (p.name.as_str(), p.positive))
        .collect();
    assert_eq!(names, [("a", true), ("b", false)]);
    assert_eq!(
        r.summary,
        "1 of 2 checks failed; b: request-1: status 500, expected 2xx"
    );
}

#[test]
fn captures_come_from_headers_and_regexes() {
    let mut env = Scripted::new(|r| match r.url.as_str() {
        "http://svc/start" => (
            answer(
                200,
                &[
                    ("set-cookie", "session=s-77; Path=/"),
                    ("x-request-id", "rq-1"),
                ],
                "<a href=\"/next?csrf=c-9\">",
            ),
            ms(1),
        ),
        _ => (answer(200, &[], ""), ms(1)),
    });
    let config = json!({"checks": [{"name": "c", "requests": [
        {"url": "http://svc/start", "capture": {
            "session": {"header": "Set-Cookie", "regex": "session=([^;]+)"},
            "rid": {"header": "x-request-id"},
            "csrf": {"regex": "csrf=([a-z0-9-]+)"}}},
        {"url": "http://svc/next/{{csrf}}?rid={{rid}}", "headers": {"cookie": "session={{session}}"},
         "body": "csrf={{csrf}}"}]}]});
    let r = run(config, &mut env).unwrap();
    assert!(r.data_points[0].positive, "{}", r.data_points[0].detail);
    let next = &env.sent[1];
    assert_eq!(next.url, "http://svc/next/c-9?rid=rq-1");
    assert_eq!(header(next, "cookie"), Some("session=s-77"));
    assert_eq!(next.body, b"csrf=c-9");
}

#[test]
fn a_capture_that_finds_nothing_fails_the_check() {
    let mut env = Scripted::new(|_| (answer(200, &[], r#"{"user":"x"}"#), ms(1)));
    let mut config = login_and_cart();
    config["checks"][0]["requests"][0]["expect"] = json!({});
    let r = run(config, &mut env).unwrap();
    assert_eq!(
        r.data_points[0].detail,
        "login: capture `token`: $.token selected nothing"
    );
    let mut env = Scripted::new(|_| (answer(200, &[], "plain"), ms(1)));
    let config = json!({"checks": [{"name": "c", "requests": [
        {"name": "h", "url": "http://svc/", "capture": {"s": {"header": "set-cookie"}}}]}]});
    let r = run(config, &mut env).unwrap();
    assert_eq!(
        r.data_points[0].detail,
        "h: capture `s`: header set-cookie missing"
    );
}

fn one_request(expect: serde_json::Value) -> serde_json::Value {
    json!({"checks": [{"name": "c", "requests": [{"name": "r", "url": "http://svc/", "expect": expect}]}]})
}

fn detail_for(
    expect: serde_json::Value,
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
    latency: u64,
) -> String {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let body = body.to_owned();
    let mut env = Scripted::new(move |_| {
        (
            Ok(Response {
                status,
                headers: headers.clone(),
                body: body.clone().into_bytes(),
            }),
            ms(latency),
        )
    });
    let r = run(one_request(expect), &mut env).unwrap();
    let p = &r.data_points[0];
    if p.positive {
        "passed".into()
    } else {
        p.detail.clone()
    }
}

#[test]
fn every_assertion_kind_passes_and_fails_readably() {
    let json_body = r#"{"status":"ok","total":120,"items":[1,2],"version":"2.0.1","name":"x"}"#;
    let ct = [
        ("content-type", "application/json; charset=utf-8"),
        ("server", "nginx"),
    ];
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (json!({"status": "2xx"}), "passed"),
        (
            json!({"status": [201, 204]}),
            "r: status 200, expected 201 or 204",
        ),
        (
            json!({"max-latency": "50ms"}),
            "r: latency 80ms, expected at most 50ms",
        ),
        (json!({"max-latency": "1s"}), "passed"),
        (
            json!({"headers": {"content-type": "application/json"}}),
            r#"r: header content-type expected "application/json", got "application/json; charset=utf-8""#,
        ),
        (
            json!({"headers": {"content-type": {"contains": "json"}}}),
            "passed",
        ),
        (
            json!({"headers": {"content-type": {"matches": "^text/"}}}),
            r#"r: header content-type expected to match /^text//, got "application/json; charset=utf-8""#,
        ),
        (
            json!({"headers": {"x-request-id": {}}}),
            "r: header x-request-id missing",
        ),
        (
            json!({"headers": {"server": {"present": false}}}),
            r#"r: header server expected absent, got "nginx""#,
        ),
        (json!({"body-contains": ["ok", "total"]}), "passed"),
        (
            json!({"body-contains": "degraded"}),
            r#"r: body does not contain "degraded" (body: "{\"status\":\"ok\",\"total\":120,\"items\":[1,2],\"version\":\"2.0.1\",\"name\":\"x\"}")"#,
        ),
        (json!({"body-not-contains": "error"}), "passed"),
        (
            json!({"body-not-contains": "ok"}),
            r#"r: body contains "ok""#,
        ),
        (json!({"body-matches": "\"version\":\"2\\."}), "passed"),
        (
            json!({"json": [{"path": "$.status", "equals": "ok"}]}),
            "passed",
        ),
        (
            json!({"json": [{"path": "$.status", "equals": "degraded"}]}),
            r#"r: $.status expected "degraded", got "ok""#,
        ),
        (
            json!({"json": [{"path": "$.total", "value": "< 100"}]}),
            "r: $.total expected < 100, got 120",
        ),
        (
            json!({"json": [{"path": "$.name", "value": "< 100"}]}),
            r#"r: $.name expected a number < 100, got "x""#,
        ),
        (
            json!({"json": [{"path": "$.items", "length": "== 2"}]}),
            "passed",
        ),
        (
            json!({"json": [{"path": "$.total", "length": ">= 1"}]}),
            "r: $.total.length() expected >= 1, got 120 (no length)",
        ),
        (
            json!({"json": [{"path": "$.version", "matches": "^1\\."}]}),
            r#"r: $.version expected to match /^1\./, got "2.0.1""#,
        ),
        (
            json!({"json": [{"path": "$.items[*]", "count": "== 3"}]}),
            "r: count($.items[*]) expected == 3, got 2",
        ),
        (
            json!({"json": [{"path": "$.missing"}]}),
            "r: $.missing selected nothing",
        ),
        (
            json!({"json": [{"path": "$.debug", "exists": false}]}),
            "passed",
        ),
        (
            json!({"json": [{"path": "$.items", "exists": false}]}),
            "r: $.items expected to select nothing, got [1,2]",
        ),
        (
            json!({"json": [{"path": "$.items[?@ > 1]", "count": "== 1"}]}),
            "passed",
        ),
    ];
    for (expect, want) in cases {
        let got = detail_for(expect.clone(), 200, &ct, json_body, 80);
        assert_eq!(got, want, "expect = {expect}");
    }
    assert_eq!(
        detail_for(
            json!({"json": [{"path": "$.a", "exists": true}]}),
            200,
            &[],
            "<html>",
            1
        ),
        "r: body is not JSON (expected value at line 1 column 1): \"<html>\""
    );
}

#[test]
fn a_service_that_does_not_answer_is_a_negative_point() {
    let mut env = Scripted::new(|r| {
        (
            Err(http::Error::ConnectionRefused { url: r.url.clone() }),
            ms(1),
        )
    });
    let r = run(one_request(json!({})), &mut env).unwrap();
    assert_eq!(
        r.data_points[0].detail,
        "r: connection refused (GET http://svc/)"
    );
}

#[test]
fn a_denied_request_is_an_error_naming_the_grant() {
    let mut env = Scripted::new(|_| {
        (
            Err(http::Error::Denied {
                origin: "http://svc:80".into(),
            }),
            ms(0),
        )
    });
    let err = run(one_request(json!({})), &mut env).unwrap_err();
    assert_eq!(
        err,
        RunError::Denied(
            "check `c`, request `r`: HTTP request to http://svc:80 denied: add \"http://svc:80\" under the monitor's grants, `net`".into()
        )
    );
}

#[test]
fn a_secret_not_granted_is_an_error_before_anything_is_sent() {
    let mut env = shop(1);
    env.secrets.clear();
    let err = run(login_and_cart(), &mut env).unwrap_err();
    assert!(matches!(err, RunError::Denied(_)), "{err:?}");
    assert!(env.sent.is_empty());
}

#[test]
fn config_mistakes_name_the_key() {
    let cases = [
        (
            json!({"checks": []}),
            "with.checks: no checks: add at least one `[[checks]]`",
        ),
        (
            json!({"checks": [{"name": "c", "requests": [{"url": "http://s/", "headers": {"authorization": "Bearer {{tokn}}"}}]}]}),
            "with.checks[0].requests[0].headers.authorization: `{{tokn}}` is not captured by an earlier request of the check (no earlier request captures anything); secrets are written `{{secret.NAME}}`",
        ),
        (
            json!({"checks": [{"name": "c", "requests": [{"url": "http://s/", "expect": {"json": [{"path": "items"}]}}]}]}),
            "with.checks[0].requests[0].expect.json[0].path: invalid JSONPath `items`",
        ),
        (
            json!({"checks": [{"name": "c", "requests": [{"url": "http://s/", "capture": {"t": {"regex": "("}}}]}]}),
            "with.checks[0].requests[0].capture.t.regex: invalid regex",
        ),
        (
            json!({"checks": [{"name": "c", "requests": [{"url": "http://s/", "capture": {"t": {"json-path": "$.a", "header": "x"}}}]}]}),
            "with.checks[0].requests[0].capture.t: give `json-path`, `header` (optionally with `regex`) or `regex`",
        ),
        (
            json!({"checks": [{"name": "c", "requests": [{"url": "http://s/", "body": "a", "json": {}}]}]}),
            "with.checks[0].requests[0]: give `body` or `json`, not both",
        ),
        (
            json!({"checks": [{"name": "c", "requests": [{"url": "http://s/"}]}, {"name": "c", "requests": [{"url": "http://s/"}]}]}),
            "with.checks[1].name: two checks are named `c`",
        ),
        (
            json!({"checks": [{"name": "c", "requests": [{"url": "localhost/x"}]}]}),
            "with.checks[0].requests[0].url: `localhost/x` is not an http:// or https:// URL",
        ),
    ];
    for (config, want) in cases {
        let mut env = shop(1);
        let err = run(config.clone(), &mut env).unwrap_err();
        assert!(matches!(err, RunError::InvalidConfig(_)), "{err:?}");
        assert!(
            err.message().starts_with(want),
            "{config}\n got: {}\nwant: {want}",
            err.message()
        );
        assert!(env.sent.is_empty());
    }
}

#[test]
fn a_capture_is_usable_only_after_its_request() {
    let config = json!({"checks": [{"name": "c", "requests": [
        {"url": "http://s/{{token}}", "capture": {"token": {"json-path": "$.t"}}}]}]});
    let err = run(config, &mut shop(1)).unwrap_err();
    assert!(
        err.message()
            .contains("`{{token}}` is not captured by an earlier request"),
        "{err:?}"
    );
}

#[test]
fn the_sdk_harness_refuses_unknown_keys_and_describes_the_schema() {
    let err = sdk_run::<Canary>(check_input(r#"{"checks":[],"retry":1}"#)).unwrap_err();
    assert!(err.message().contains("unknown field `retry`"), "{err:?}");
    let d = describe_monitor::<Canary>();
    assert_eq!(d.name, "canary");
    let schema: serde_json::Value = serde_json::from_str(&d.config_schema).unwrap();
    assert_eq!(schema["required"], json!(["checks"]));
}
