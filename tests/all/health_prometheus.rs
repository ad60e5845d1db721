//! Health signals against a real Prometheus (tests/all/prometheus.rs starts one per
//! test on a loopback port and stops it by PID): an alarm from `builtin:prometheus`
//! that halts a promotion and the override that lets the fix through; no data
//! (INSUFFICIENT_DATA) holding a run by default and not with `missing =
//! "not-breaching"`; `sluice canary --metrics-addr` scraped by Prometheus; and `sluice
//! explain` showing the alarm.
//!
//! Time: the run's clock is the test clock (`SLUICE_TEST_CLOCK`, fixed, through
//! `durable.rs`'s `Durable`), so what `explain` prints is stable; monitors tick in real
//! time at a 200 ms interval and a waiting run looks again every 50 ms
//! (`SLUICE_GATE_POLL_MS`). Each wait polls a condition with a deadline; none sleeps.

use std::path::Path;
use std::time::Duration;

use crate::durable::{Durable, Running, both, marker_step, run_id_of};
use crate::prometheus::{MetricsService, Prometheus, ScrapeTarget, prometheus_or_skip};
use crate::support::{HttpServer, normalize};

/// How long a test waits for a process to end before failing.
const PATIENCE: Duration = Duration::from_secs(60);

/// build → prod, prod's entry gated by the alarm of monitor `api-errors`: a
/// `builtin:prometheus` query against `prometheus`, breaching above `threshold`.
fn alarm_pipeline(prometheus: &Prometheus, query: &str, threshold: f64, missing: &str) -> String {
    format!(
        r#"
[pipeline]
name = "shop"

[[monitor]]
id = "api-errors"
uses = "builtin:prometheus"
interval = "200ms"
missing = "{missing}"
with = {{ url = "{url}", query = '{query}', operator = ">", threshold = {threshold} }}
[monitor.grants]
net = ["{url}"]

[[stage]]
name = "build"
{build}
[[stage]]
name = "prod"

[stage.gates.alarms]
alarms = ["api-errors"]
{deploy}"#,
        url = prometheus.url(),
        build = marker_step("compile", "0", &[]),
        deploy = marker_step("deploy", "0", &[]),
    )
}

/// What `sluice explain` prints, with the run id, times and the Prometheus port made
/// stable.
fn stable(text: &str, project: &Path, prometheus: &Prometheus) -> String {
    normalize(text, project).replace(&prometheus.address(), "127.0.0.1:[PROMETHEUS]")
}

#[test]
fn a_prometheus_alarm_halts_promotion_until_an_override_lets_the_fix_through() {
    let Some(bin) = prometheus_or_skip() else {
        return;
    };
    let service = MetricsService::start();
    service.set_counter("shop_errors_total{route=\"/checkout\"}", 0.0);
    let prometheus = Prometheus::start(&bin, &[ScrapeTarget::loopback("shop", service.port)]);
    let query = "sum(shop_errors_total)";
    let d = Durable::new(&alarm_pipeline(&prometheus, query, 5.0, "breaching"));
    prometheus.wait_target_up("shop");
    prometheus.wait_value(query, 0.0);
    // The service starts failing: Prometheus sees 12 errors, above the threshold of 5.
    service.set_counter("shop_errors_total{route=\"/checkout\"}", 12.0);
    prometheus.wait_value(query, 12.0);

    let out = d.sluice(&["run", "--no-wait", "--format", "plain"]);
    out.expect_code(4);
    let told = both(&out);
    let run = run_id_of(&told);
    assert!(
        told.contains("monitor `api-errors` is ALARM") && told.contains("12"),
        "--no-wait names the alarm and what Prometheus answered:\n{told}"
    );
    assert_eq!(d.marker("compile"), 1, "{told}");
    assert_eq!(
        d.marker("deploy"),
        0,
        "prod must not start while the alarm fires"
    );

    let explained = d.sluice(&["explain", &run]);
    explained.expect_code(0);
    insta::assert_snapshot!(
        "explain_shows_the_prometheus_alarm",
        stable(&explained.stdout, d.path(), &prometheus)
    );

    // The fix must go out although the alarm still fires: an override, on the record.
    d.sluice(&[
        "override",
        &run,
        "--gate",
        "alarms",
        "--stage",
        "prod",
        "--reason",
        "hotfix for the checkout errors",
    ])
    .expect_code(0);
    let done = d.sluice(&["resume", &run, "--format", "plain"]);
    done.expect_code(0);
    assert_eq!(
        d.marker("deploy"),
        1,
        "the override lets prod run:\n{}",
        both(&done)
    );
    let status = d.status_json(&run);
    assert_eq!(status["run"]["state"], "passed", "{status:#}");
    let overrides = status["overrides"].as_array().expect("overrides listed");
    assert_eq!(overrides.len(), 1, "{status:#}");
    assert_eq!(overrides[0]["actor"], "tester", "{status:#}");
    assert_eq!(overrides[0]["reason"], "hotfix for the checkout errors");
    assert!(
        status.to_string().contains("\"overridden\""),
        "the entry is recorded as overridden, not as a healthy alarm: {status:#}"
    );
}

#[test]
fn a_query_without_data_holds_the_run_by_default_and_not_with_missing_not_breaching() {
    let Some(bin) = prometheus_or_skip() else {
        return;
    };
    let service = MetricsService::start();
    service.set_gauge("shop_up", 1.0);
    let prometheus = Prometheus::start(&bin, &[ScrapeTarget::loopback("shop", service.port)]);
    // `payment_errors_total` does not exist yet: the query returns an empty vector.
    let query = "sum(payment_errors_total)";
    let held = Durable::new(&alarm_pipeline(&prometheus, query, 5.0, "breaching"));
    let lenient = Durable::new(&alarm_pipeline(&prometheus, query, 5.0, "not-breaching"));
    prometheus.wait_target_up("shop");
    prometheus.wait_value("shop_up", 1.0);
    assert!(prometheus.query(query).is_empty(), "no data yet");

    // By default, no data is breaching: the run is held at prod, saying why.
    let out = held.sluice(&["run", "--no-wait", "--format", "plain"]);
    out.expect_code(4);
    let told = both(&out);
    let run = run_id_of(&told);
    assert!(
        told.contains("monitor `api-errors` is INSUFFICIENT_DATA")
            && told.contains("treated as breaching"),
        "{told}"
    );
    assert_eq!(held.marker("deploy"), 0, "no data must not pass");

    // Missing data treated as not breaching: the same query lets a run through.
    let out = lenient.sluice(&["run", "--no-wait", "--format", "plain"]);
    out.expect_code(0);
    assert_eq!(lenient.marker("deploy"), 1, "{}", both(&out));

    // The series appears, under the threshold: the alarm is OK, the held run goes on.
    service.set_counter("payment_errors_total", 1.0);
    prometheus.wait_value(query, 1.0);
    let done = held.spawn(&["resume", &run, "--format", "plain"]);
    let done = done.finish(PATIENCE);
    done.expect_code(0);
    assert_eq!(held.marker("deploy"), 1, "{}", both(&done));
}

#[test]
fn sluice_canary_serves_metrics_that_prometheus_scrapes() {
    let Some(bin) = prometheus_or_skip() else {
        return;
    };
    let shop = HttpServer::start();
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    // Prometheus first: its first scrape of a new target comes ~5 s after it starts.
    let prometheus = Prometheus::start(&bin, &[ScrapeTarget::loopback("canary", metrics_port)]);
    let d = Durable::new("");
    std::fs::write(d.path().join("canary.toml"), canary_file(shop.port)).unwrap();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let canary: Running = d.spawn(&["canary", "canary.toml", "--metrics-addr", &metrics_addr]);

    prometheus.wait_target_up("canary");
    let passing = r#"sluice_canary_check_success{monitor="shop",check="login-and-cart"}"#;
    let failing = r#"sluice_canary_check_success{monitor="shop",check="empty-cart"}"#;
    let labels = prometheus.wait_value(passing, 1.0);
    assert_eq!(labels["job"], "canary", "scraped by Prometheus: {labels}");
    prometheus.wait_value(failing, 0.0);
    let latency = prometheus.query(r#"sluice_canary_monitor_latency_seconds{monitor="shop"}"#);
    assert!(
        latency.len() == 1 && latency[0].1 > 0.0 && latency[0].1 < 5.0,
        "the last check's latency in seconds: {latency:?}"
    );
    let last_run = prometheus.query(r#"sluice_canary_last_run_timestamp_seconds{monitor="shop"}"#);
    assert!(
        last_run.len() == 1 && last_run[0].1 > 1.7e9,
        "the last run as a Unix time: {last_run:?}"
    );
    assert!(shop.hits("/empty-cart") > 0 && shop.hits("/cart") > 0);

    canary.signal("TERM");
    let out = canary.finish(PATIENCE);
    let told = both(&out);
    assert!(
        told.contains("empty-cart") && told.contains("$.items"),
        "the failed assertion is readable in the canary's output:\n{told}"
    );
}

/// A canary file: one flow that logs in and reads a cart with the captured token
/// (passes), one that expects items in an empty cart (fails).
fn canary_file(port: u16) -> String {
    format!(
        r#"
[[monitor]]
id = "shop"
uses = "builtin:canary"
interval = "200ms"
[monitor.grants]
net = ["http://127.0.0.1:{port}"]

[[monitor.with.checks]]
name = "login-and-cart"

[[monitor.with.checks.requests]]
name = "login"
method = "POST"
url = "http://127.0.0.1:{port}/login"
capture = {{ token = {{ json-path = "$.token" }} }}
expect = {{ status = 200 }}

[[monitor.with.checks.requests]]
name = "get-cart"
url = "http://127.0.0.1:{port}/cart"
headers = {{ authorization = "Bearer {{{{token}}}}" }}
expect = {{ status = 200, json = [{{ path = "$.items", length = ">= 1" }}] }}

[[monitor.with.checks]]
name = "empty-cart"

[[monitor.with.checks.requests]]
name = "login"
method = "POST"
url = "http://127.0.0.1:{port}/login"
capture = {{ token = {{ json-path = "$.token" }} }}

[[monitor.with.checks.requests]]
name = "get-empty-cart"
url = "http://127.0.0.1:{port}/empty-cart"
headers = {{ authorization = "Bearer {{{{token}}}}" }}
expect = {{ json = [{{ path = "$.items", length = ">= 1" }}] }}
"#
    )
}
