//! Outgoing HTTP of plugins (`wasi:http/outgoing-handler`) under the `net` grant: a
//! real HTTP/1.1 keep-alive server on loopback, started by each test, and the
//! adversary fixture sending through the SDK's blocking and concurrent helpers.

use std::time::{Duration, Instant};

use crate::support::{HttpServer as Server, Project, output};

/// A pipeline with one adversary step doing `with`, under `grants`, with `timeout`.
fn step(with: &str, grants: &str, timeout: &str) -> Project {
    Project::new(&format!(
        r#"
[pipeline]
name = "http"

[[stage]]
name = "call"

[[stage.step]]
id = "call"
uses = "{{adversary}}"
with = {{ {with} }}
timeout = "{timeout}"

[stage.step.grants]
{grants}
"#
    ))
}

#[test]
fn a_granted_get_returns_the_response() {
    let s = Server::start();
    let p = step(
        &format!(
            r#"mode = "http-get", url = "http://127.0.0.1:{}/hi""#,
            s.port
        ),
        &format!(r#"net = ["http://127.0.0.1:{}"]"#, s.port),
        "20s",
    );
    let out = p.run(&[]);
    out.expect_code(0);
    let rec = p.step("call");
    assert_eq!(output(&rec, "status"), "200");
    assert_eq!(output(&rec, "body"), "hello");
    assert_eq!(s.hits("/hi"), 1);
}

#[test]
fn concurrent_requests_reuse_keep_alive_connections() {
    let s = Server::start();
    let p = step(
        &format!(
            r#"mode = "http-many", url = "http://127.0.0.1:{}/", count = 200, concurrency = 4"#,
            s.port
        ),
        &format!(r#"net = ["127.0.0.1:{}"]"#, s.port),
        "30s",
    );
    p.run(&[]).expect_code(0);
    let rec = p.step("call");
    assert_eq!(output(&rec, "ok"), "200", "{rec:#}");
    assert_eq!(output(&rec, "errors"), "0");
    assert_eq!(output(&rec, "statuses"), r#"{"200":200}"#);
    assert_eq!(output(&rec, "in-order"), "true");
    assert_eq!(s.hits("/"), 200);
    // Four in flight at a time: a handful of connections, never one per request. (The
    // pooled client races a new connection against the next idle one; a connection
    // that loses the race is pooled and reused too, so there can be a few over four.)
    let conns = s.connections();
    assert!(
        (1..=8).contains(&conns),
        "200 requests took {conns} connections"
    );

    // One at a time: every request on the same connection.
    let s = Server::start();
    let p = step(
        &format!(
            r#"mode = "http-many", url = "http://127.0.0.1:{}/", count = 100, concurrency = 1"#,
            s.port
        ),
        &format!(r#"net = ["127.0.0.1:{}"]"#, s.port),
        "30s",
    );
    p.run(&[]).expect_code(0);
    assert_eq!(output(&p.step("call"), "ok"), "100");
    assert_eq!(s.hits("/"), 100);
    assert_eq!(
        s.connections(),
        1,
        "100 sequential requests, one connection"
    );
}

#[test]
fn an_ungranted_port_is_refused_naming_the_grant_and_logged() {
    let s = Server::start();
    let other = Server::start();
    let p = step(
        &format!(r#"mode = "http-get", url = "http://127.0.0.1:{}/""#, s.port),
        &format!(r#"net = ["127.0.0.1:{}"]"#, other.port),
        "20s",
    );
    let out = p.run(&[]);
    out.expect_code(1);
    let origin = format!("http://127.0.0.1:{}", s.port);
    let log = p.step_log("call");
    assert!(
        log.contains(&format!("denied HTTP GET {origin}/"))
            && log.contains(&format!("add \"{origin}\" under the step's grants, `net`")),
        "{log}"
    );
    assert!(
        out.stdout.contains(&format!("add \"{origin}\""))
            || out.stderr.contains(&format!("add \"{origin}\"")),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(s.connections(), 0, "a denied request reached the server");
}

#[test]
fn an_origin_grant_allows_only_its_scheme() {
    let s = Server::start();
    let p = step(
        &format!(r#"mode = "http-get", url = "http://127.0.0.1:{}/""#, s.port),
        &format!(r#"net = ["https://127.0.0.1:{}"]"#, s.port),
        "20s",
    );
    p.run(&[]).expect_code(1);
    let log = p.step_log("call");
    assert!(
        log.contains(&format!("denied HTTP GET http://127.0.0.1:{}/", s.port)),
        "{log}"
    );
    assert_eq!(s.connections(), 0);
}

/// The host resolves names itself and checks the addresses: `localhost` resolves to
/// 127.0.0.1 (and ::1). Granting `127.0.0.1:PORT` lets a request to
/// `http://localhost:PORT` through (to 127.0.0.1, the checked address); granting
/// `127.0.0.2:PORT` does not, even though the request names the same port and
/// something listens there: what the name resolves to is not granted.
#[test]
fn a_name_is_checked_by_the_address_it_resolves_to() {
    let s = Server::start();
    let url = format!(r#"mode = "http-get", url = "http://localhost:{}/""#, s.port);
    let ok = step(&url, &format!(r#"net = ["127.0.0.1:{}"]"#, s.port), "20s");
    ok.run(&[]).expect_code(0);
    assert_eq!(output(&ok.step("call"), "status"), "200");
    assert_eq!(s.connections(), 1);

    let denied = step(&url, &format!(r#"net = ["127.0.0.2:{}"]"#, s.port), "20s");
    denied.run(&[]).expect_code(1);
    let log = denied.step_log("call");
    assert!(
        log.contains("localhost resolves to") && log.contains("127.0.0.1"),
        "{log}"
    );
    assert!(
        log.contains(&format!("add \"http://localhost:{}\"", s.port)),
        "{log}"
    );
    assert_eq!(s.connections(), 1, "the denied request reached the server");

    // Granted by name: the request goes to the addresses the name had at step start.
    let by_name = step(
        &url,
        &format!(r#"net = ["http://localhost:{}"]"#, s.port),
        "20s",
    );
    by_name.run(&[]).expect_code(0);
    assert_eq!(output(&by_name.step("call"), "status"), "200");
}

#[test]
fn a_redirect_is_returned_to_the_plugin_not_followed() {
    let s = Server::start();
    let p = step(
        &format!(
            r#"mode = "http-get", url = "http://127.0.0.1:{}/redirect""#,
            s.port
        ),
        &format!(r#"net = ["http://127.0.0.1:{}"]"#, s.port),
        "20s",
    );
    p.run(&[]).expect_code(0);
    let rec = p.step("call");
    assert_eq!(output(&rec, "status"), "302");
    assert_eq!(output(&rec, "location"), "/");
    assert_eq!(s.hits("/redirect"), 1);
    assert_eq!(s.hits("/"), 0, "the host followed the redirect");
}

#[test]
fn a_request_timeout_fires() {
    let s = Server::start();
    let p = step(
        &format!(
            r#"mode = "http-get", url = "http://127.0.0.1:{}/slow", timeout-ms = 500"#,
            s.port
        ),
        &format!(r#"net = ["127.0.0.1:{}"]"#, s.port),
        "20s",
    );
    let started = Instant::now();
    let out = p.run(&[]);
    out.expect_code(1);
    assert!(started.elapsed() < Duration::from_secs(15));
    let rec = p.step("call");
    let failure = rec.to_string();
    assert!(failure.contains("timed out"), "{rec:#}");
    assert!(!failure.contains("timed out after 20s"), "{rec:#}");
}

#[test]
fn a_stalled_body_fails_with_the_between_bytes_timeout() {
    let s = Server::start();
    let p = step(
        &format!(
            r#"mode = "http-get", url = "http://127.0.0.1:{}/stall", timeout-ms = 500"#,
            s.port
        ),
        &format!(r#"net = ["127.0.0.1:{}"]"#, s.port),
        "20s",
    );
    let started = Instant::now();
    p.run(&[]).expect_code(1);
    assert!(started.elapsed() < Duration::from_secs(15));
    let rec = p.step("call").to_string();
    assert!(rec.contains("timed out"), "{rec}");
    assert_eq!(s.hits("/stall"), 1);
}

/// `https://` to a server that speaks plain HTTP: the TLS handshake fails and the
/// plugin gets a TLS error (the system's roots are loaded on the way).
#[test]
fn https_to_a_plain_server_is_a_tls_error() {
    let s = Server::start();
    let p = step(
        &format!(
            r#"mode = "http-get", url = "https://127.0.0.1:{}/""#,
            s.port
        ),
        &format!(r#"net = ["https://127.0.0.1:{}"]"#, s.port),
        "20s",
    );
    p.run(&[]).expect_code(1);
    let rec = p.step("call").to_string();
    assert!(rec.contains("Tls"), "{rec}");
    assert_eq!(s.hits("/"), 0);
}

/// A plugin that asks for no timeout still cannot wait past its step: the host's
/// defaults (60 s for the first byte) are clamped to the time the step has left.
#[test]
fn a_stalled_request_ends_with_the_step_timeout() {
    let s = Server::start();
    let p = step(
        &format!(
            r#"mode = "http-get", url = "http://127.0.0.1:{}/slow""#,
            s.port
        ),
        &format!(r#"net = ["127.0.0.1:{}"]"#, s.port),
        "2s",
    );
    let started = Instant::now();
    p.run(&[]).expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "took {:?}",
        started.elapsed()
    );
    assert!(p.step("call").to_string().contains("timed out"));
}

#[test]
fn a_refused_connection_is_its_own_error() {
    let (listener, port) = crate::support::tcp_listener();
    drop(listener);
    let p = step(
        &format!(r#"mode = "http-get", url = "http://127.0.0.1:{port}/""#),
        &format!(r#"net = ["127.0.0.1:{port}"]"#),
        "20s",
    );
    p.run(&[]).expect_code(1);
    let rec = p.step("call").to_string();
    assert!(rec.contains("connection refused"), "{rec}");
}

#[test]
fn a_bad_origin_grant_is_reported_with_its_line() {
    let p = step(
        r#"mode = "ok""#,
        r#"net = ["https://api.example.com/v1"]"#,
        "20s",
    );
    let out = p.run(&[]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("sluice.toml:15:8")
            && out
                .stderr
                .contains("grant its origin, `https://api.example.com`"),
        "{}",
        out.stderr
    );
}

#[test]
fn request_options_are_freed_so_requests_with_a_timeout_outlive_the_resource_slots() {
    // With a timeout every request carries `request-options`, and wasmtime-wasi-http
    // 48's `outgoing-handler.handle` never deletes them: our own `handle`
    // (capabilities/http.rs) must, or the step traps near its 100 000th request
    // ("resource table has no free keys"; a step holds 100 000 resources at most).
    let s = Server::start();
    let p = step(
        &format!(
            r#"mode = "http-many", url = "http://127.0.0.1:{}/", count = 101000, concurrency = 16, timeout-ms = 5000"#,
            s.port
        ),
        &format!(r#"net = ["127.0.0.1:{}"]"#, s.port),
        "120s",
    );
    p.run(&[]).expect_code(0);
    let rec = p.step("call");
    assert_eq!(output(&rec, "ok"), "101000", "{rec:#}");
    assert_eq!(output(&rec, "errors"), "0");
}
