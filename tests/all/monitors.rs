//! Monitors and alarms through the binary: a pipeline's `[[monitor]]`s check while
//! its run is alive (the fixture monitor `tests/fixtures/file-monitor` reports what a
//! file lists, so each test decides what every check observes), an alarms gate holds
//! a stage's entry, an override lets the fix through on the record, an alarm that
//! fires while a stage runs fails it, and an alarm that fired while a window was
//! closed still stops the run when the window opens.
//!
//! Time is the test clock and a 50 ms poll (see `durable.rs`); monitors check every
//! 100 ms.

use std::time::Duration;

use crate::durable::{Durable, both, marker_step, run_id_of, wait_until};

/// The fixture monitor's path.
fn file_monitor() -> &'static str {
    sluice_tests::FILE_MONITOR
}

/// A `[[monitor]]` of the fixture reading `status.txt`, with extra keys.
fn monitor(id: &str, extra: &str) -> String {
    format!(
        r#"
[[monitor]]
id = "{id}"
uses = "{uses}"
interval = "100ms"
with = {{ file = "status/status-{id}.txt" }}
{extra}
[monitor.grants]
read = ["status"]
"#,
        uses = file_monitor()
    )
}

/// build → prod, prod behind `gates` (TOML), with `monitors` declared.
fn pipeline(monitors: &str, gates: &str, deploy_sleep: &str) -> String {
    format!(
        r#"
[pipeline]
name = "shop"
{monitors}
[[stage]]
name = "build"
{build}
[[stage]]
name = "prod"
{gates}
{deploy}"#,
        build = marker_step("compile", "0", &[]),
        deploy = marker_step("deploy", deploy_sleep, &[]),
    )
}

const ALARM_GATE: &str = "[stage.gates.alarms]\nalarms = [\"api\"]\n";

fn status(d: &Durable, id: &str, text: &str) {
    let dir = d.path().join("status");
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = dir.join(format!("status-{id}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(format!("status-{id}.txt"))).unwrap();
}

#[test]
fn an_alarm_halts_promotion_and_its_override_lets_the_fix_through_on_the_record() {
    let d = Durable::new(&pipeline(&monitor("api", ""), ALARM_GATE, "0"));
    status(&d, "api", "negative health status 500 from /health\n");
    let out = d.sluice(&["run", "--no-wait"]);
    out.expect_code(4);
    let text = both(&out);
    let run = run_id_of(&text);
    assert!(
        text.contains("monitor `api` is ALARM") && text.contains("health: status 500 from /health"),
        "{text}"
    );
    assert_eq!(d.marker("compile"), 1);
    assert_eq!(d.marker("deploy"), 0);
    // The checks are in the store, with the run as their source.
    let waiting = d.status_json(&run);
    assert_eq!(waiting["run"]["state"], "waiting", "{waiting}");
    // Resuming while the alarm fires waits again.
    let again = d.sluice(&["resume", &run, "--no-wait"]);
    again.expect_code(4);
    assert_eq!(d.marker("deploy"), 0);
    // The fix goes through on an override, on the record.
    d.sluice(&[
        "override",
        &run,
        "--gate",
        "alarms",
        "--stage",
        "prod",
        "--reason",
        "the fix for INC-9",
    ])
    .expect_code(0);
    let done = d.sluice(&["resume", &run]);
    done.expect_code(0);
    assert_eq!(d.marker("deploy"), 1, "{}", both(&done));
    let history = d.sluice(&["status", &run]);
    history.expect_code(0);
    assert!(
        both(&history).contains("the fix for INC-9"),
        "{}",
        both(&history)
    );
}

#[test]
fn insufficient_data_is_breaching_by_default_and_not_breaching_lets_it_pass() {
    let d = Durable::new(&pipeline(&monitor("api", ""), ALARM_GATE, "0"));
    status(&d, "api", "none\n");
    let out = d.sluice(&["run", "--no-wait"]);
    out.expect_code(4);
    assert!(
        both(&out).contains("monitor `api` is INSUFFICIENT_DATA since 2026-11-30T07:00:00Z (treated as breaching: missing = \"breaching\"): no data"),
        "{}",
        both(&out)
    );
    let d = Durable::new(&pipeline(
        &monitor("api", "missing = \"not-breaching\""),
        ALARM_GATE,
        "0",
    ));
    status(&d, "api", "none\n");
    let out = d.sluice(&["run", "--no-wait"]);
    out.expect_code(0);
    assert_eq!(d.marker("deploy"), 1);
}

#[test]
fn an_alarm_that_fires_while_a_stage_runs_stops_it_and_fails_the_stage() {
    let d = Durable::new(&pipeline(&monitor("api", ""), ALARM_GATE, "30"));
    status(&d, "api", "positive health ok\n");
    let run = d.spawn(&["run"]);
    wait_until("the deploy step to start", Duration::from_secs(60), || {
        d.marker("deploy") == 1
    });
    status(&d, "api", "negative health status 503\n");
    let out = run.finish(Duration::from_secs(20));
    out.expect_code(1);
    let text = both(&out);
    assert!(
        text.contains("stage `prod` stopped: alarm gate `alarms` fired while the stage ran: monitor `api` is ALARM")
            && text.contains("health: status 503"),
        "{text}"
    );
}

#[test]
fn an_alarm_that_fired_while_a_window_was_closed_still_stops_the_run_when_it_opens() {
    let gates = format!(
        "{ALARM_GATE}[stage.gates.business-hours]\nkind = \"window\"\ntimezone = \"Europe/Berlin\"\ndays = \"Mon-Fri\"\nhours = \"09:00-17:00\"\n"
    );
    let d = Durable::new(&pipeline(&monitor("api", ""), &gates, "0"));
    status(&d, "api", "positive health ok\n");
    let run = d.spawn(&["run"]);
    wait_until("the run to wait", Duration::from_secs(60), || {
        d.run_ids().first().is_some_and(|id| {
            d.try_status_json(id)
                .is_some_and(|s| s["run"]["state"] == "running" && d.marker("compile") == 1)
        })
    });
    let id = d.run_ids()[0].clone();
    // The alarm fires while the window is closed, then the window opens.
    status(&d, "api", "negative health status 500\n");
    std::thread::sleep(Duration::from_millis(500));
    d.set_clock("2026-11-30T10:00:00Z");
    // Well past several polls and checks, the run still waits, held by the alarm.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(d.marker("deploy"), 0);
    let explain = d.sluice(&["explain", &id]);
    assert!(
        both(&explain).contains("monitor `api` is ALARM"),
        "{}",
        both(&explain)
    );
    // It clears: the run goes in.
    status(&d, "api", "positive health ok\n");
    let out = run.finish(Duration::from_secs(30));
    out.expect_code(0);
    assert_eq!(d.marker("deploy"), 1);
}

/// A `sluice canary` file: the fixture monitor `api` reading `status-api.txt`.
fn canary_file() -> String {
    monitor("api", "")
}

/// A pipeline whose monitor `api` is fed by `sluice canary` (no `uses`), M of N as
/// given, behind an alarms gate.
fn fed_pipeline(extra: &str) -> String {
    pipeline(
        &format!("\n[[monitor]]\nid = \"api\"\ninterval = \"100ms\"\n{extra}\n"),
        ALARM_GATE,
        "0",
    )
}

/// `sluice canary canary.toml --checks N` with the status file saying `status`.
fn canary_checks(d: &Durable, status_text: &str, n: u32) -> String {
    status(d, "api", status_text);
    let out = d.sluice(&["canary", "canary.toml", "--checks", &n.to_string()]);
    out.expect_code(0);
    out.stdout
}

#[test]
fn sluice_canary_records_checks_that_a_pipelines_alarm_gate_reads() {
    let d = Durable::new(&fed_pipeline(""));
    d.project.write("canary.toml", &canary_file());
    let lines = canary_checks(&d, "negative login status 401 on /login\n", 2);
    // One line per check.
    assert_eq!(
        lines
            .lines()
            .filter(|l| l.contains(" api data: 0 positive, 1 negative"))
            .count(),
        2,
        "{lines}"
    );
    let out = d.sluice(&["run", "--no-wait"]);
    out.expect_code(4);
    assert!(
        both(&out).contains("monitor `api` is ALARM")
            && both(&out).contains("login: status 401 on /login"),
        "{}",
        both(&out)
    );
    canary_checks(&d, "positive login ok\n", 1);
    d.sluice(&["run", "--no-wait"]).expect_code(0);
    assert_eq!(d.marker("deploy"), 1);
}

#[test]
fn sluice_canary_refuses_a_monitor_whose_read_grant_covers_its_state_database() {
    let d = Durable::new(&fed_pipeline(""));
    d.project.write(
        "canary.toml",
        &canary_file().replace("read = [\"status\"]", "read = [\".\"]"),
    );
    let out = d.sluice(&["canary", "canary.toml", "--checks", "1"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("monitor `api`: its `read` grant")
            && out.stderr.contains("covers the state database"),
        "{}",
        out.stderr
    );
}

#[test]
fn m_of_n_raises_the_alarm_only_when_m_of_the_latest_n_checks_breach() {
    let d = Durable::new(&fed_pipeline(
        "evaluation-periods = 3\ndatapoints-to-alarm = 2",
    ));
    d.project.write("canary.toml", &canary_file());
    canary_checks(&d, "negative login status 500\n", 1);
    canary_checks(&d, "positive login ok\n", 2);
    // Latest three: +, +, -: one of three breaches.
    d.sluice(&["run", "--no-wait"]).expect_code(0);
    canary_checks(&d, "negative login status 500\n", 1);
    // -, +, +: still one.
    d.sluice(&["run", "--no-wait"]).expect_code(0);
    canary_checks(&d, "negative login status 502\n", 1);
    // -, -, +: two of three.
    let out = d.sluice(&["run", "--no-wait"]);
    out.expect_code(4);
    assert!(
        both(&out).contains("(2 of 3 checks breaching, alarm at 2 of 3): login: status 502"),
        "{}",
        both(&out)
    );
}

#[test]
fn sluice_canary_serves_prometheus_metrics_while_it_runs() {
    use std::io::{BufRead, Read, Write};
    let d = Durable::new(&fed_pipeline(""));
    d.project.write("canary.toml", &canary_file());
    status(&d, "api", "positive login ok\nnegative search status 500\n");
    let mut canary = d
        .command(&[
            "canary",
            "canary.toml",
            "--checks",
            "200",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sluice canary");
    let mut stdout = std::io::BufReader::new(canary.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("metrics: http://")
        .and_then(|a| a.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address in {first:?}"))
        .to_string();
    // Wait for a check, then scrape.
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let _ = canary.kill();
    let _ = canary.wait();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    for expected in [
        "sluice_canary_check_success{monitor=\"api\",check=\"login\"} 1",
        "sluice_canary_check_success{monitor=\"api\",check=\"search\"} 0",
        "# TYPE sluice_canary_checks_total counter",
        "sluice_canary_last_run_timestamp_seconds{monitor=\"api\"}",
        "sluice_canary_monitor_latency_seconds{monitor=\"api\"}",
    ] {
        assert!(response.contains(expected), "no {expected} in:\n{response}");
    }
}

#[test]
fn monitor_config_errors_are_located_with_suggestions() {
    let text = format!(
        r#"
[pipeline]
name = "shop"

[[monitor]]
id = "api"
uses = "{{adversary}}"
interval = "often"
missing = "breching"
evaluation-periods = 2
datapoints-to-alarm = 3

[[monitor]]
id = "latency"
uses = "{uses}"
with = {{ file = "x" }}

[[stage]]
name = "prod"
[stage.gates.alarms]
alarms = ["ap1", "latency"]
{deploy}"#,
        uses = file_monitor(),
        deploy = marker_step("deploy", "0", &[]),
    );
    let d = Durable::new(&text.replace("{adversary}", crate::support::adversary()));
    let out = d.sluice(&["validate"]);
    out.expect_code(2);
    let shown = d
        .text(&out.stderr)
        .replace(file_monitor(), "[FILE_MONITOR]");
    insta::assert_snapshot!(shown);
    // A step component used as a monitor is named as one.
    let d = Durable::new(&pipeline(
        &format!(
            "\n[[monitor]]\nid = \"api\"\nuses = \"{}\"\n",
            crate::support::adversary()
        ),
        "",
        "0",
    ));
    let out = d.sluice(&["validate"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("is a step plugin (world `step`, exports `plugin`)"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_http_check_that_fails_against_a_local_server_holds_promotion_with_its_detail() {
    let server = crate::support::HttpServer::start();
    let base = format!("http://127.0.0.1:{}", server.port);
    let monitor = |path: &str| {
        format!(
            "\n[[monitor]]\nid = \"api\"\nuses = \"builtin:http-check\"\ninterval = \"100ms\"\nwith = {{ url = \"{base}{path}\" }}\n[monitor.grants]\nnet = [\"{base}\"]\n"
        )
    };
    // `/cart` without a token answers 401.
    let d = Durable::new(&pipeline(&monitor("/cart"), ALARM_GATE, "0"));
    let out = d.sluice(&["run", "--no-wait"]);
    out.expect_code(4);
    assert!(
        both(&out).contains(
            "monitor `api` is ALARM since 2026-11-30T07:00:00Z (1 of 1 checks breaching, alarm at 1 of 1)"
        ) && both(&out).contains(&format!("GET {base}/cart: status 401, expected 2xx")),
        "{}",
        both(&out)
    );
    assert!(server.hits("/cart") >= 1);
    let d = Durable::new(&pipeline(&monitor("/health"), ALARM_GATE, "0"));
    d.sluice(&["run", "--no-wait"]).expect_code(0);
    assert_eq!(d.marker("deploy"), 1);
}
