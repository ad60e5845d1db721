//! `builtin:load-test` end to end: the plugin runs through the `sluice` binary against a
//! small HTTP/1.1 keep-alive server the test starts on loopback, 1 to 2 s of load each.

use crate::support::{HttpServer, Project};

/// A pipeline with one `builtin:load-test` step `load` doing `with`, granted the
/// server's origin and the `load-test` output folder.
fn load_test(server: &HttpServer, with: &str) -> Project {
    Project::new(&format!(
        r#"
[pipeline]
name = "load"

[[stage]]
name = "load"

[[stage.step]]
id = "load"
uses = "builtin:load-test"
timeout = "60s"
with = {{ {with} }}

[stage.step.grants]
net = ["http://127.0.0.1:{port}"]
write = ["load-test"]
"#,
        port = server.port
    ))
}

/// The value of metric `name` in a step record.
fn metric(step: &serde_json::Value, name: &str) -> f64 {
    step["report"]["metrics"]
        .as_array()
        .expect("metrics is a list")
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["value"].as_f64())
        .unwrap_or_else(|| panic!("no metric {name} in {step:#}"))
}

/// `(name, status)` of every test case of a step record.
fn cases(step: &serde_json::Value) -> Vec<(String, String)> {
    step["report"]["test_cases"]
        .as_array()
        .expect("test_cases is a list")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_lowercase(),
            )
        })
        .collect()
}

#[test]
fn a_closed_model_that_holds_its_thresholds_passes_with_metrics_cases_and_artifacts() {
    let s = HttpServer::start();
    let p = load_test(
        &s,
        &format!(
            r#"model = "closed", vus = 4, duration = "1500ms", warm-up = "200ms",
               requests = [{{ url = "http://127.0.0.1:{}/hello", expect = ["2xx"] }}],
               thresholds = {{ http_req_failed = ["rate<0.01"], http_reqs = ["count>100"], http_req_duration = ["p(99)<1000"] }}"#,
            s.port
        ),
    );
    p.run(&[]).expect_code(0);
    let step = p.step("load");
    let requests = metric(&step, "requests");
    assert!(requests > 100.0, "{step:#}");
    assert_eq!(metric(&step, "failed"), 0.0);
    assert!(metric(&step, "latency.p99") > 0.0);
    // Warm-up requests reached the server but are not counted.
    assert!(s.hits("/hello") as f64 > requests, "{step:#}");
    // Keep-alive: a handful of connections, not one per request.
    assert!(s.connections() <= 16, "{} connections", s.connections());
    let mut names = cases(&step);
    names.sort();
    assert_eq!(
        names,
        vec![
            (
                "http_req_duration: p(99)<1000".to_string(),
                "passed".to_string()
            ),
            (
                "http_req_failed: rate<0.01".to_string(),
                "passed".to_string()
            ),
            ("http_reqs: count>100".to_string(), "passed".to_string()),
        ]
    );
    let summary = step["report"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("http_reqs: count>100: passed: observed"),
        "{summary}"
    );
    let hgrm = std::fs::read_to_string(p.path().join("load-test/latency.hgrm")).unwrap();
    assert!(
        hgrm.contains("Percentile") && hgrm.contains("#[Mean"),
        "{hgrm}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.path().join("load-test/load-test.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["summary"]["requests"].as_f64(), Some(requests));
}

#[test]
fn a_failing_threshold_fails_the_run_and_is_named_in_the_summary_and_junit() {
    let s = HttpServer::start();
    let p = load_test(
        &s,
        &format!(
            r#"model = "closed", vus = 2, duration = "1s",
               requests = [{{ url = "http://127.0.0.1:{}/" }}],
               thresholds = {{ http_req_duration = ["p(99)<0.001"], http_req_failed = ["rate<0.01"] }}"#,
            s.port
        ),
    );
    p.run(&["--report-dir", "reports"]).expect_code(1);
    let step = p.step("load");
    let summary = step["report"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("1 threshold(s) failed")
            && summary.contains("http_req_duration: p(99)<0.001: FAILED: observed ")
            && summary.contains("missed by ")
            && summary.contains("http_req_failed: rate<0.01: passed"),
        "{summary}"
    );
    let junit = std::fs::read_to_string(p.path().join("reports/junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).expect("junit.xml is XML");
    let failed = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("testcase")
                && n.attribute("name") == Some("http_req_duration: p(99)<0.001")
        })
        .unwrap_or_else(|| panic!("no test case for the threshold in {junit}"));
    assert!(
        failed.children().any(|c| c.has_tag_name("failure")),
        "{junit}"
    );
}

#[test]
fn the_open_model_measures_the_error_rate_of_a_server_failing_one_request_in_ten() {
    let s = HttpServer::start();
    let p = load_test(
        &s,
        &format!(
            r#"rate = 500, duration = "2s", max-in-flight = 50,
               requests = [{{ url = "http://127.0.0.1:{}/flaky", expect = ["2xx"] }}],
               thresholds = {{ http_req_failed = ["rate<0.5"] }}"#,
            s.port
        ),
    );
    p.run(&[]).expect_code(0);
    let step = p.step("load");
    let requests = metric(&step, "requests");
    assert!(requests >= 900.0, "{step:#}");
    let rate = metric(&step, "error_rate");
    assert!((rate - 0.1).abs() <= 0.01, "error rate {rate}: {step:#}");
    assert_eq!(metric(&step, "errors.5xx"), metric(&step, "failed"));
    // The open model reports the uncorrected latency next to the corrected one.
    assert!(metric(&step, "latency_uncorrected.p99") <= metric(&step, "latency.p99"));
}

#[test]
fn a_request_to_an_ungranted_host_is_refused_naming_the_grant() {
    let s = HttpServer::start();
    let other = HttpServer::start();
    let p = load_test(
        &s,
        &format!(
            r#"model = "closed", vus = 2, duration = "1s",
               requests = [{{ url = "http://127.0.0.1:{}/" }}]"#,
            other.port
        ),
    );
    let out = p.run(&[]);
    out.expect_code(1);
    let origin = format!("http://127.0.0.1:{}", other.port);
    let grant = format!("add \"{origin}\" under the step's grants, `net`");
    let step = p.step("load");
    let summary = step["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains(&grant) && summary.contains("stopped at the first refused request"),
        "{step:#}"
    );
    assert!(
        out.stdout.contains(&grant) || out.stderr.contains(&grant),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        other.connections(),
        0,
        "a denied request reached the server"
    );
}

#[test]
fn an_abort_on_fail_threshold_stops_the_test_early_and_progress_is_reported() {
    let s = HttpServer::start();
    let p = load_test(
        &s,
        &format!(
            r#"model = "closed", vus = 2, duration = "20s",
               requests = [{{ url = "http://127.0.0.1:{}/" }}],
               thresholds = {{ http_req_duration = [{{ threshold = "p(99)<0.001", abort-on-fail = true, delay-abort-eval = "1500ms" }}] }}"#,
            s.port
        ),
    );
    let started = std::time::Instant::now();
    let out = p.sluice(&["run", "--format", "json"]);
    out.expect_code(1);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the run was not stopped early"
    );
    let step = p.step("load");
    let summary = step["report"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("aborted early: http_req_duration: p(99)<0.001 failed"),
        "{summary}"
    );
    // Live progress once a second: elapsed, rate, errors and p99 so far.
    let progress: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("\"step-progress\""))
        .collect();
    assert!(
        progress.iter().any(|l| l.contains("1.0s: ")
            && l.contains("/s (target 2)")
            && l.contains("errors")
            && l.contains("p99 ")),
        "{}",
        out.stdout
    );
}

#[test]
fn a_slow_endpoint_in_the_open_model_drops_iterations_and_corrects_for_the_waits() {
    let s = HttpServer::start();
    let p = load_test(
        &s,
        &format!(
            r#"rate = 200, duration = "1500ms", max-in-flight = 4, max-start-delay = "200ms",
               requests = [{{ url = "http://127.0.0.1:{}/sleep" }}],
               thresholds = {{ dropped_iterations = ["count==0"] }}"#,
            s.port
        ),
    );
    p.run(&[]).expect_code(1);
    let step = p.step("load");
    assert!(metric(&step, "dropped_iterations") > 0.0, "{step:#}");
    let corrected = metric(&step, "latency.p99");
    let uncorrected = metric(&step, "latency_uncorrected.p99");
    assert!(
        corrected > uncorrected + 20.0,
        "corrected p99 {corrected} ms, uncorrected {uncorrected} ms"
    );
    assert!(uncorrected >= 50.0, "{step:#}");
    let summary = step["report"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("dropped_iterations: count==0: FAILED"),
        "{summary}"
    );
}

/// The per-second series of the JSON artifact: `(started, requests)` of each second.
fn series(p: &Project) -> Vec<(f64, f64)> {
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.path().join("load-test/load-test.json")).unwrap(),
    )
    .unwrap();
    json["series"]
        .as_array()
        .unwrap_or_else(|| panic!("no series in {json:#}"))
        .iter()
        .map(|s| {
            (
                s["started"].as_f64().unwrap(),
                s["requests"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// `observed` is within `share` (e.g. 0.15 for ±15%) of `expected`.
fn near(observed: f64, expected: f64, share: f64) -> bool {
    (observed - expected).abs() <= expected * share
}

#[test]
fn the_version_of_the_artifact_built_earlier_in_the_run_reaches_the_server() {
    let s = HttpServer::start();
    let p = Project::new(&format!(
        r#"
[pipeline]
name = "versioned"

[[stage]]
name = "build"

[[stage.step]]
id = "package"
uses = "builtin:build"
with = {{ command = ["true"], artifacts = ["app.bin"], name = "app", version = "2.5.0-rc.1", sbom = false, provenance = false }}
[stage.step.grants]
exec = ["true"]
read = ["."]

[[stage]]
name = "load"

[[stage.step]]
id = "load"
uses = "builtin:load-test"
timeout = "60s"
with = {{ model = "closed", vus = 2, iterations = 20,
          requests = [{{ url = "http://127.0.0.1:{port}/v/{{{{version}}}}", expect = ["2xx"] }}],
          thresholds = {{ http_req_failed = ["rate==0"] }} }}
[stage.step.grants]
net = ["http://127.0.0.1:{port}"]
write = ["load-test"]
"#,
        port = s.port
    ));
    p.write("app.bin", "the deliverable");
    let out = p.run(&[]);
    out.expect_code(0);
    assert_eq!(p.run_record()["artifact"]["version"], "2.5.0-rc.1");
    let step = p.step("load");
    assert_eq!(metric(&step, "requests"), 20.0, "{step:#}");
    assert_eq!(s.hits("/v/2.5.0-rc.1"), 20, "the server saw other paths");
}

#[test]
fn a_ramping_arrival_rate_starts_iterations_at_the_rate_of_each_stage() {
    let s = HttpServer::start();
    // 100/s for a second, then 100 -> 300/s over two: 100, 150, 250 in the three seconds.
    let p = load_test(
        &s,
        &format!(
            r#"start = 100, stages = [{{ target = 100, duration = "1s" }}, {{ target = 300, duration = "2s" }}],
               max-in-flight = 50,
               requests = [{{ url = "http://127.0.0.1:{}/" }}],
               thresholds = {{ dropped_iterations = ["count==0"], http_reqs = ["count>=450"] }}"#,
            s.port
        ),
    );
    p.run(&[]).expect_code(0);
    let step = p.step("load");
    assert_eq!(metric(&step, "requests"), 500.0, "{step:#}");
    let series = series(&p);
    let started: Vec<f64> = series.iter().map(|(started, _)| *started).collect();
    for (second, expected) in [100.0, 150.0, 250.0].into_iter().enumerate() {
        assert!(
            near(started[second], expected, 0.15),
            "second {second}: {} started, expected {expected}: {started:?}",
            started[second]
        );
    }
    assert_eq!(started.iter().sum::<f64>(), 500.0, "{started:?}");
}

#[test]
fn a_ramping_concurrency_adds_virtual_users_stage_by_stage() {
    let s = HttpServer::start();
    // `/sleep` answers in 50 ms, so each virtual user makes at most 20 requests a second;
    // 1 -> 5 VUs over 4 s moves one VU at a time: 1, 2, 3, 4 VUs in the four seconds.
    let p = load_test(
        &s,
        &format!(
            r#"model = "closed", start = 1, stages = [{{ target = 5, duration = "4s" }}],
               requests = [{{ url = "http://127.0.0.1:{}/sleep" }}]"#,
            s.port
        ),
    );
    p.run(&[]).expect_code(0);
    let series = series(&p);
    let started: Vec<f64> = series.iter().map(|(started, _)| *started).collect();
    assert!(started.len() >= 4, "{series:?}");
    let per_vu = started[0];
    // At most 20; fewer when a loaded machine is slow to answer or to send.
    assert!(
        (8.0..=20.0).contains(&per_vu),
        "one VU against a 50 ms endpoint started {per_vu} iterations in a second: {started:?}"
    );
    for (second, vus) in [1.0, 2.0, 3.0, 4.0].into_iter().enumerate() {
        assert!(
            near(started[second], per_vu * vus, 0.2),
            "second {second}: {} started, expected about {vus} x {per_vu}: {started:?}",
            started[second]
        );
    }
}

#[test]
fn a_refused_host_fails_the_step_without_metrics_or_artifacts() {
    let s = HttpServer::start();
    let p = load_test(
        &s,
        r#"model = "closed", vus = 2, duration = "1s",
           requests = [{ url = "http://localhost:9/" }],
           thresholds = { http_req_failed = ["rate<0.01"] }"#,
    );
    p.run(&[]).expect_code(1);
    let step = p.step("load");
    let grant = "add \"http://localhost:9\" under the step's grants, `net`";
    let summary = step["summary"].as_str().unwrap_or_default();
    assert!(summary.contains(grant), "{step:#}");
    assert_ne!(step["status"], "passed", "{step:#}");
    // Nothing pretends the test ran: no metrics, no test cases, no artifacts.
    let report = &step["report"];
    for list in ["metrics", "test_cases", "artifacts"] {
        assert!(
            report[list].as_array().is_none_or(|l| l.is_empty()),
            "{list}: {step:#}"
        );
    }
    // The host creates the granted folder; the plugin writes nothing into it.
    let written: Vec<_> = std::fs::read_dir(p.path().join("load-test"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(written.is_empty(), "artifacts written: {written:?}");
    assert!(
        p.step_log("load")
            .contains("denied HTTP GET http://localhost:9/"),
        "{}",
        p.step_log("load")
    );
    assert_eq!(s.connections(), 0);
}

#[test]
fn a_load_test_of_more_requests_than_the_step_has_resource_slots_runs_to_the_end() {
    // A step may hold 100 000 resources at once (host/step.rs): a test longer than that
    // runs in the host's load generator, which holds one resource per test, not per
    // request (the wasi:http side of this is `http::request_options_are_freed_...`).
    let s = HttpServer::start();
    let p = load_test(
        &s,
        &format!(
            r#"model = "closed", vus = 16, iterations = 101000,
               requests = [{{ url = "http://127.0.0.1:{}/" }}],
               thresholds = {{ http_req_failed = ["rate==0"] }}"#,
            s.port
        ),
    );
    p.run(&[]).expect_code(0);
    assert_eq!(metric(&p.step("load"), "requests"), 101000.0);
}
