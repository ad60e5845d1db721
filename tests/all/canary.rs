//! The built-in monitors through the binary: `builtin:canary`, `builtin:http-check` and
//! `builtin:prometheus` check a local [`HttpServer`] while a durable run is alive, and
//! an alarms gate on the `prod` stage lets the run in or holds it with the monitor's
//! detail. The server asserts what the canary must send (a captured token in
//! `Authorization`), and answers Prometheus's instant-query API for `builtin:prometheus`.
//!
//! Time is the test clock and a 50 ms poll (see `durable.rs`); monitors check every
//! 100 ms.

use crate::durable::{Durable, both, marker_step};
use crate::support::{HttpServer, normalize};

/// build → prod, prod behind an alarms gate on monitor `probe`, declared by `monitor`.
fn pipeline(monitor: &str) -> String {
    format!(
        r#"
[pipeline]
name = "shop"
{monitor}
[[stage]]
name = "build"
{build}
[[stage]]
name = "prod"
[stage.gates.alarms]
alarms = ["probe"]
{deploy}"#,
        build = marker_step("compile", "0", &[]),
        deploy = marker_step("deploy", "0", &[]),
    )
}

/// Monitor `probe` using `uses`, granted `net`, with `with` as TOML table lines.
fn probe(uses: &str, net: &str, with: &str) -> String {
    format!(
        r#"
[[monitor]]
id = "probe"
uses = "{uses}"
interval = "100ms"
[monitor.grants]
net = ["{net}"]
[monitor.with]
{with}
"#
    )
}

/// The canary's login-and-cart flow against `server`, the cart at `cart`.
fn login_and_cart(server: &HttpServer, cart: &str) -> String {
    let base = format!("http://127.0.0.1:{}", server.port);
    probe(
        "builtin:canary",
        &base,
        &format!(
            r#"
[[monitor.with.checks]]
name = "login-and-cart"

[[monitor.with.checks.requests]]
name = "login"
method = "POST"
url = "{base}/login"
json = {{ user = "probe", password = "not-a-secret" }}
expect = {{ status = 200 }}
capture = {{ token = {{ json-path = "$.token" }} }}

[[monitor.with.checks.requests]]
name = "get-cart"
url = "{base}{cart}"
headers = {{ authorization = "Bearer {{{{token}}}}" }}
expect = {{ status = 200, json = [{{ path = "$.items", length = ">= 1" }}] }}
"#
        ),
    )
}

/// The line of `text` that holds `needle`, with the project's folder and the port
/// replaced.
fn line_with(text: &str, needle: &str, d: &Durable, server: &HttpServer) -> String {
    let line = text
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"));
    normalize(line, d.path()).replace(&server.port.to_string(), "[PORT]")
}

#[test]
fn a_canary_flow_carries_the_captured_token_and_lets_the_run_in() {
    let server = HttpServer::start();
    let d = Durable::new(&pipeline(&login_and_cart(&server, "/cart")));
    let out = d.sluice(&["run", "--no-wait", "--verbose"]);
    let text = both(&out);
    out.expect_code(0);
    assert_eq!(d.marker("deploy"), 1, "{text}");
    // The server answers /cart 401 without the token the login returned: the cart
    // passing its assertions proves the canary carried it.
    assert!(server.hits("/login") >= 1 && server.hits("/cart") >= 1);
    assert!(
        text.contains("monitor probe: data, 1 positive, 0 negative: check login-and-cart passed"),
        "{text}"
    );
}

#[test]
fn a_failed_canary_assertion_holds_the_run_with_a_readable_detail() {
    let server = HttpServer::start();
    let d = Durable::new(&pipeline(&login_and_cart(&server, "/empty-cart")));
    let out = d.sluice(&["run", "--no-wait"]);
    let text = both(&out);
    out.expect_code(4);
    assert_eq!(d.marker("deploy"), 0, "{text}");
    insta::assert_snapshot!(line_with(&text, "$.items.length()", &d, &server));
}

#[test]
fn a_canary_check_is_retried_before_it_counts_as_failed() {
    let server = HttpServer::start();
    let base = format!("http://127.0.0.1:{}", server.port);
    let with = format!(
        r#"
retries = 2
retry-delay = "10ms"
[[monitor.with.checks]]
name = "warm-up"
[[monitor.with.checks.requests]]
url = "{base}/third-time"
"#
    );
    let d = Durable::new(&pipeline(&probe("builtin:canary", &base, &with)));
    let out = d.sluice(&["run", "--no-wait", "--verbose"]);
    let text = both(&out);
    out.expect_code(0);
    assert!(server.hits("/third-time") >= 3, "{text}");
    assert!(
        text.contains("monitor probe: data, 1 positive, 0 negative: check warm-up passed"),
        "{text}"
    );
    // Without retries, the first check sees the 503 and the alarm holds the run.
    let server = HttpServer::start();
    let base = format!("http://127.0.0.1:{}", server.port);
    let with = format!(
        "[[monitor.with.checks]]\nname = \"warm-up\"\n[[monitor.with.checks.requests]]\nurl = \"{base}/third-time\"\n"
    );
    let d = Durable::new(&pipeline(&probe("builtin:canary", &base, &with)));
    let out = d.sluice(&["run", "--no-wait"]);
    out.expect_code(4);
    assert!(
        both(&out).contains("warm-up: request-1: status 503, expected 2xx"),
        "{}",
        both(&out)
    );
}

#[test]
fn a_canary_request_outside_the_net_grant_is_denied_naming_the_grant() {
    let server = HttpServer::start();
    let other = HttpServer::start();
    // Granted the other server's origin only.
    let flow = login_and_cart(&server, "/cart").replace(
        &format!("net = [\"http://127.0.0.1:{}\"]", server.port),
        &format!("net = [\"http://127.0.0.1:{}\"]", other.port),
    );
    let d = Durable::new(&pipeline(&flow));
    let out = d.sluice(&["run", "--no-wait"]);
    let text = both(&out);
    out.expect_code(4);
    assert_eq!(server.hits("/login"), 0, "{text}");
    let origin = format!("http://127.0.0.1:{}", server.port);
    assert!(
        text.contains(&format!(
            "check `login-and-cart`, request `login`: HTTP request to {origin} denied: add \"{origin}\" under the monitor's grants, `net`"
        )),
        "{text}"
    );
}

#[test]
fn http_check_judges_latency() {
    let server = HttpServer::start();
    let base = format!("http://127.0.0.1:{}", server.port);
    // `/sleep` answers after 50 ms.
    let slow = format!("url = \"{base}/sleep\"\nmax-latency = \"10ms\"\nbody-contains = \"slept\"");
    let d = Durable::new(&pipeline(&probe("builtin:http-check", &base, &slow)));
    let out = d.sluice(&["run", "--no-wait"]);
    let text = both(&out);
    out.expect_code(4);
    let re = regex::Regex::new(&format!(
        r"probe: GET {base}/sleep: latency \d+ms, expected at most 10ms"
    ))
    .unwrap();
    assert!(re.is_match(&text), "{text}");
    let fine = format!("url = \"{base}/sleep\"\nmax-latency = \"5s\"\nbody-contains = \"slept\"");
    let d = Durable::new(&pipeline(&probe("builtin:http-check", &base, &fine)));
    let out = d.sluice(&["run", "--no-wait", "--verbose"]);
    out.expect_code(0);
    assert!(
        both(&out).contains(&format!(
            "monitor probe: data, 1 positive, 0 negative: GET {base}/sleep: 200 in"
        )),
        "{}",
        both(&out)
    );
}

#[test]
fn prometheus_queries_a_fake_api_series_by_series() {
    let server = HttpServer::start();
    let base = format!("http://127.0.0.1:{}", server.port);
    let query =
        |q: &str| format!("url = \"{base}\"\nquery = \"{q}\"\noperator = \">\"\nthreshold = 5");
    // Two series, one of which breaches.
    let d = Durable::new(&pipeline(&probe(
        "builtin:prometheus",
        &base,
        &query("errors"),
    )));
    let out = d.sluice(&["run", "--no-wait"]);
    let text = both(&out);
    out.expect_code(4);
    assert!(text.contains(r#"{job="api"} = 7, breaches > 5"#), "{text}");
    // One series within the threshold.
    let d = Durable::new(&pipeline(&probe("builtin:prometheus", &base, &query("up"))));
    let out = d.sluice(&["run", "--no-wait", "--verbose"]);
    out.expect_code(0);
    assert!(
        both(&out).contains(r#"up{job="api"} = 1, within threshold (breaches > 5)"#),
        "{}",
        both(&out)
    );
    // No series: no data, breaching by default.
    let d = Durable::new(&pipeline(&probe(
        "builtin:prometheus",
        &base,
        &query("nothing"),
    )));
    let out = d.sluice(&["run", "--no-wait"]);
    out.expect_code(4);
    assert!(both(&out).contains("INSUFFICIENT_DATA"), "{}", both(&out));
    // A Prometheus error names its type.
    let d = Durable::new(&pipeline(&probe(
        "builtin:prometheus",
        &base,
        &query("rate(("),
    )));
    let out = d.sluice(&["run", "--no-wait"]);
    out.expect_code(4);
    assert!(
        both(&out).contains("answered 400 with an error: bad_data: invalid parameter"),
        "{}",
        both(&out)
    );
}

#[test]
fn the_builtin_monitors_are_listed_and_described_as_monitors() {
    let p = crate::support::Project::new("");
    let out = p.sluice(&["plugins"]);
    out.expect_code(0);
    for name in ["canary", "http-check", "prometheus"] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(&format!("builtin:{name} "))),
            "{}",
            out.stdout
        );
    }
    let info = p.sluice(&["plugin", "info", "--json", "builtin:canary"]);
    info.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    assert_eq!(v["world"], "monitor");
    assert_eq!(v["capabilities"], serde_json::json!(["network"]));
    assert_eq!(
        v["config_schema"]["required"],
        serde_json::json!(["checks"])
    );
    let text = p.sluice(&["plugin", "info", "builtin:prometheus"]);
    text.expect_code(0);
    assert!(
        text.stdout.contains("world:        monitor"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("\"threshold\""), "{}", text.stdout);
}
