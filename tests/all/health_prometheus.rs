//! Health signals against a real Prometheus (tests/all/prometheus.rs starts one per
//! test on a loopback port and stops it by PID): an alarm from `builtin:prometheus`
//! that halts a promotion and the override that lets the fix through; no data
//! (INSUFFICIENT_DATA) holding a run by default and not with `missing =
//! "not-breaching"`; `sluice canary --metrics-addr` scraped by Prometheus; and `sluice
//! explain` showing the alarm.
//!
//! Time: the run's clock is the test clock (`SLUICE_TEST_CLOCK`, fixed), so what
//! `explain` prints is stable; monitors tick in real time at a 200 ms interval and a
//! waiting run looks again every 50 ms (`SLUICE_GATE_POLL_MS`). Each wait polls a
//! condition with a deadline; none sleeps.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::prometheus::{MetricsService, Prometheus, ScrapeTarget, prometheus_or_skip};
use crate::support::{HttpServer, Outcome, Project, normalize};

/// The instant every run of these tests sees.
const NOW: &str = "2026-11-30T10:00:00Z";

/// How long a test waits for a condition before failing.
const PATIENCE: Duration = Duration::from_secs(60);

/// A project whose runs use the test clock and a fast gate poll.
struct Health {
    project: Project,
}

impl Health {
    /// A project with pipeline file `toml`, where `{markers}` is its markers folder.
    fn new(toml: &str) -> Health {
        let project = Project::new("");
        let markers = project.path().join("markers");
        std::fs::create_dir_all(&markers).expect("create the markers folder");
        project.write(
            "sluice.toml",
            &toml.replace("{markers}", &markers.display().to_string()),
        );
        project.write("clock", NOW);
        Health { project }
    }

    fn path(&self) -> &Path {
        self.project.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.project.command(args);
        cmd.env("SLUICE_TEST_CLOCK", self.path().join("clock"))
            .env("SLUICE_GATE_POLL_MS", "50")
            .env("SLUICE_ACTOR", "tester");
        for var in ["GITHUB_ACTIONS", "GITHUB_SHA", "GITHUB_RUN_ID", "GITHUB_ACTOR"] {
            cmd.env_remove(var);
        }
        cmd
    }

    fn sluice(&self, args: &[&str]) -> Outcome {
        Outcome::of(&mut self.command(args))
    }

    /// `sluice <args>` in the background; killed by PID if the test ends first.
    fn spawn(&self, args: &[&str]) -> Running {
        let child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sluice");
        Running { child: Some(child) }
    }

    /// How many times step `name` ran (it appends a line to its marker).
    fn marker(&self, name: &str) -> usize {
        std::fs::read_to_string(self.path().join("markers").join(name))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// The id of the only run so far, once it exists.
    fn wait_run_id(&self) -> String {
        let runs = self.path().join(".sluice/runs");
        let mut id = None;
        wait_until("the run to be recorded", || {
            id = std::fs::read_dir(&runs)
                .ok()
                .and_then(|mut d| d.next())
                .and_then(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned());
            id.is_some()
        });
        id.expect("a run id")
    }

    fn status_json(&self, run: &str) -> serde_json::Value {
        let out = self.sluice(&["status", run, "--format", "json"]);
        out.expect_code(0);
        serde_json::from_str(&out.stdout).expect("status --format json is JSON")
    }

    /// `sluice explain RUN` (text), once it exits 0.
    fn explain(&self, run: &str) -> String {
        let out = self.sluice(&["explain", run]);
        if out.code == 0 {
            out.stdout
        } else {
            format!("(explain exited {}) {}{}", out.code, out.stdout, out.stderr)
        }
    }
}

/// A `sluice` process the test started; killed and reaped by PID when dropped.
struct Running {
    child: Option<Child>,
}

impl Running {
    /// Wait for its end (at most [`PATIENCE`]) and collect what it did.
    fn finish(mut self) -> Outcome {
        let mut child = self.child.take().expect("the child is there");
        let deadline = Instant::now() + PATIENCE;
        while child.try_wait().expect("poll the child").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = Outcome::from_child(child);
                panic!(
                    "sluice did not end within {PATIENCE:?}\n--- stdout\n{}\n--- stderr\n{}",
                    out.stdout, out.stderr
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Outcome::from_child(child)
    }

    /// Ask it to stop (SIGTERM by PID), and collect what it did.
    fn interrupt(self) -> Outcome {
        let pid = self.child.as_ref().expect("the child is there").id();
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        self.finish()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Wait until `cond` holds, failing after [`PATIENCE`].
#[track_caller]
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A step that appends a line to its marker file.
fn marker_step(id: &str) -> String {
    format!(
        r#"
[[stage.step]]
id = "{id}"
uses = "builtin:command"
with = {{ program = "sh", args = ["-c", "echo x >> {{markers}}/{id}"] }}
[stage.step.grants]
exec = ["sh"]
write = ["{{markers}}"]
"#
    )
}

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
        build = marker_step("compile"),
        deploy = marker_step("deploy"),
    )
}

/// What `sluice explain` prints, with the run id, times and the Prometheus port made
/// stable.
fn stable(text: &str, project: &Path, prometheus: &Prometheus) -> String {
    normalize(text, project).replace(&prometheus.address(), "127.0.0.1:[PROMETHEUS]")
}

#[test]
fn a_prometheus_alarm_halts_promotion_until_an_override_lets_the_fix_through() {
    let Some(bin) = prometheus_or_skip("a_prometheus_alarm_halts_promotion") else {
        return;
    };
    let service = MetricsService::start();
    service.set_counter("shop_errors_total{route=\"/checkout\"}", 0.0);
    let prometheus = Prometheus::start(&bin, &[ScrapeTarget::loopback("shop", service.port)]);
    let h = Health::new(&alarm_pipeline(
        &prometheus,
        "sum(shop_errors_total)",
        5.0,
        "breaching",
    ));
    prometheus.wait_target_up("shop");
    // The service starts failing: Prometheus sees 12 errors, above the threshold of 5.
    service.set_counter("shop_errors_total{route=\"/checkout\"}", 12.0);
    prometheus.wait_value("sum(shop_errors_total)", 12.0);

    let run = h.spawn(&["run", "--format", "plain"]);
    let id = h.wait_run_id();
    let mut shown = String::new();
    wait_until("explain to show the alarm firing", || {
        shown = h.explain(&id);
        shown.contains("ALARM") && shown.contains("12")
    });
    assert_eq!(h.marker("compile"), 1, "build ran:\n{shown}");
    assert_eq!(h.marker("deploy"), 0, "prod must not start while the alarm fires");
    insta::assert_snapshot!(
        "explain_shows_the_prometheus_alarm",
        stable(&shown, h.path(), &prometheus)
    );

    // The waiting process is stopped; a CI job resuming with --no-wait is told why.
    run.interrupt();
    let out = h.sluice(&["resume", &id, "--no-wait", "--format", "plain"]);
    out.expect_code(4);
    let told = format!("{}{}", out.stdout, out.stderr);
    assert!(told.contains("api-errors"), "--no-wait names the alarm:\n{told}");
    assert_eq!(h.marker("deploy"), 0);

    // The fix must go out although the alarm still fires: an override, on the record.
    h.sluice(&[
        "override",
        &id,
        "--gate",
        "alarms",
        "--stage",
        "prod",
        "--reason",
        "hotfix for the checkout errors",
    ])
    .expect_code(0);
    let out = h.sluice(&["resume", &id, "--format", "plain"]);
    out.expect_code(0);
    assert_eq!(h.marker("deploy"), 1, "the override lets prod run");
    let status = h.status_json(&id);
    assert_eq!(status["run"]["state"], "passed", "{status:#}");
    let overrides = status["overrides"].as_array().expect("overrides listed");
    assert_eq!(overrides.len(), 1, "{status:#}");
    assert_eq!(overrides[0]["actor"], "tester");
    assert_eq!(overrides[0]["reason"], "hotfix for the checkout errors");
    let gates = status["gates"].as_array().expect("gate evaluations listed");
    assert!(
        gates
            .iter()
            .any(|g| g["gate"] == "alarms" && g["decision"] == "overridden"),
        "the entry is recorded as overridden, not as a healthy alarm: {status:#}"
    );
}

#[test]
fn a_query_without_data_holds_the_run_by_default_and_not_with_missing_not_breaching() {
    let Some(bin) = prometheus_or_skip("a_query_without_data_holds_the_run") else {
        return;
    };
    let service = MetricsService::start();
    service.set_gauge("shop_up", 1.0);
    let prometheus = Prometheus::start(&bin, &[ScrapeTarget::loopback("shop", service.port)]);
    // `payment_errors_total` does not exist yet: the query returns an empty vector.
    let query = "sum(payment_errors_total)";
    let held = Health::new(&alarm_pipeline(&prometheus, query, 5.0, "breaching"));
    let lenient = Health::new(&alarm_pipeline(&prometheus, query, 5.0, "not-breaching"));
    prometheus.wait_target_up("shop");
    prometheus.wait_value("shop_up", 1.0);
    assert!(prometheus.query(query).is_empty(), "no data yet");

    // Missing data treated as not breaching: the run goes through without waiting.
    let out = lenient.sluice(&["run", "--no-wait", "--format", "plain"]);
    out.expect_code(0);
    assert_eq!(lenient.marker("deploy"), 1);

    // By default, no data is breaching: the run waits at prod, saying why.
    let run = held.spawn(&["run", "--format", "plain"]);
    let id = held.wait_run_id();
    let mut shown = String::new();
    wait_until("explain to show the alarm without data", || {
        shown = held.explain(&id);
        shown.contains("INSUFFICIENT_DATA")
    });
    assert_eq!(held.marker("deploy"), 0, "no data must not pass:\n{shown}");

    // The series appears, under the threshold: the alarm is OK and the run goes on.
    service.set_counter("payment_errors_total", 1.0);
    prometheus.wait_value(query, 1.0);
    let out = run.finish();
    out.expect_code(0);
    assert_eq!(held.marker("deploy"), 1);
}

#[test]
fn sluice_canary_serves_metrics_that_prometheus_scrapes() {
    let Some(bin) = prometheus_or_skip("sluice_canary_serves_metrics") else {
        return;
    };
    let shop = HttpServer::start();
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    // Prometheus first: its first scrape of a new target comes ~5 s after it starts.
    let prometheus = Prometheus::start(&bin, &[ScrapeTarget::loopback("canary", metrics_port)]);
    let h = Health::new(&format!(
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
"#,
        port = shop.port
    ));
    h.project.write("canary.toml", &std::fs::read_to_string(h.path().join("sluice.toml")).unwrap());
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let canary = h.spawn(&["canary", "canary.toml", "--metrics-addr", &metrics_addr]);

    prometheus.wait_target_up("canary");
    let passing = r#"sluice_canary_check_success{check="login-and-cart"}"#;
    let failing = r#"sluice_canary_check_success{check="empty-cart"}"#;
    let labels = prometheus.wait_value(passing, 1.0);
    assert_eq!(labels["monitor"], "shop", "{labels}");
    prometheus.wait_value(failing, 0.0);
    let latency = prometheus.query(r#"sluice_canary_check_duration_seconds{check="login-and-cart"}"#);
    assert!(
        latency.len() == 1 && latency[0].1 > 0.0 && latency[0].1 < 5.0,
        "a latency in seconds: {latency:?}"
    );
    let last_run = prometheus.query(r#"sluice_canary_check_last_run_timestamp_seconds{check="empty-cart"}"#);
    assert!(
        last_run.len() == 1 && last_run[0].1 > 1.7e9,
        "the last run as a Unix time: {last_run:?}"
    );
    assert!(shop.hits("/empty-cart") > 0 && shop.hits("/cart") > 0);

    let out = canary.interrupt();
    let told = format!("{}{}", out.stdout, out.stderr);
    assert!(
        told.contains("empty-cart") && told.contains("$.items"),
        "the failed assertion is readable in the canary's output:\n{told}"
    );
}
