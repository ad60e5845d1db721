//! Organisation checks through the binary, with the test clock (`SLUICE_TEST_CLOCK`):
//! a check that warns before its enforcement date (the run goes on, the warning says
//! the date, on stderr and in the GitHub job summary) and stops the run before any
//! step once enforced (exit 2); an exemption that lets a pipeline through and then
//! expires; a promotion-blocking check whose `policy` gate lets the early stages run,
//! holds the protected stage, and is overridden on the record; `sluice policy check`
//! snapshot-tested.

use crate::durable::{Durable, both, marker_step, run_id_of};

/// Approves every built-in plugin, protects `prod`, and adds `checks`.
fn policy_file(checks: &str) -> String {
    format!(
        r#"[policy]
name = "acme-release"
version = "2026.11"

[protect]
stages = ["prod"]

[[plugin]]
name = "builtin:*"
tier = "org"
{checks}"#
    )
}

/// build (one step) → prod (one step), following `policy.toml`.
fn pipeline(name: &str) -> String {
    format!(
        r#"
[pipeline]
name = "{name}"
policy = "policy.toml"

[[stage]]
name = "build"
{build}
[[stage]]
name = "prod"
{deploy}"#,
        build = marker_step("compile", "0", &[]),
        deploy = marker_step("deploy", "0", &[]),
    )
}

/// `prod` has no window gate: the production-window check is violated.
const WINDOW_CHECK: &str = r#"
[[check]]
id = "prod-window"
builtin = "production-window"
message = "Production deploys happen inside a change window."
warn-from = 2026-11-01
enforce-from = 2027-01-15
"#;

#[test]
fn a_check_warns_before_its_date_and_stops_the_run_once_enforced() {
    let d = Durable::new(&pipeline("shop"));
    d.project.write("policy.toml", &policy_file(WINDOW_CHECK));
    // The last second before enforcement: the run goes on, and says when it stops.
    d.set_clock("2027-01-14T23:59:59Z");
    let summary = d.path().join("summary.md");
    let out = crate::support::Outcome::of(
        d.command(&["run", "--format", "plain", "--no-wait"])
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", &summary),
    );
    out.expect_code(0);
    assert!(
        both(&out).contains("warning: check `prod-window` (will be enforced from 2027-01-15)"),
        "{}",
        both(&out)
    );
    assert_eq!(d.marker("compile"), 1);
    assert_eq!(d.marker("deploy"), 1);
    let summary = std::fs::read_to_string(&summary).expect("the job summary is written");
    assert!(
        summary.contains("### Policy `acme-release` 2026.11"),
        "{summary}"
    );
    assert!(
        summary.contains("| `prod-window` | ⚠️ will be enforced from 2027-01-15 | production stage `prod` has no window gate"),
        "{summary}"
    );
    // With --format json, the notices are one `policy` line before the run's events.
    let out = d.sluice(&["run", "--format", "json", "--no-wait"]);
    out.expect_code(0);
    let first = out.stdout.lines().next().expect("a first line");
    let event: serde_json::Value = serde_json::from_str(first).expect("a JSON line");
    insta::assert_snapshot!(
        "run_json_policy_event",
        serde_json::to_string_pretty(&event).unwrap()
    );
    let second: serde_json::Value =
        serde_json::from_str(out.stdout.lines().nth(1).expect("the run's events")).unwrap();
    assert_eq!(second["event"], "run-started");
    // From 00:00 UTC of enforce-from, the run stops before any step.
    d.set_clock("2027-01-15T00:00:00Z");
    let out = d.sluice(&["run", "--format", "plain", "--no-wait"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("check `prod-window`") && out.stderr.contains("2027-01-15"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("sluice.toml:"), "{}", out.stderr);
    assert_eq!(d.marker("compile"), 2, "no step ran");
    assert_eq!(d.run_ids().len(), 2, "no run was started");
}

#[test]
fn an_exemption_lets_a_pipeline_through_until_it_expires() {
    let d = Durable::new(&pipeline("legacy-shop"));
    d.project.write(
        "policy.toml",
        &policy_file(&format!(
            "{WINDOW_CHECK}
[[exemption]]
check = \"prod-window\"
pipeline = \"legacy-*\"
reason = \"the change calendar lands in Q1\"
approved-by = \"dana@acme.example\"
ticket = \"REL-1234\"
expires = 2027-03-01
"
        )),
    );
    d.set_clock("2027-03-01T23:59:59Z");
    let out = d.sluice(&["run", "--format", "plain", "--no-wait"]);
    out.expect_code(0);
    assert!(
        out.stderr.contains("2027-03-01") && out.stderr.contains("dana@acme.example"),
        "the exemption in use is shown: {}",
        out.stderr
    );
    assert_eq!(d.marker("deploy"), 1);
    // The day after, the check applies again, and says why.
    d.set_clock("2027-03-02T00:00:00Z");
    let out = d.sluice(&["run", "--format", "plain", "--no-wait"]);
    out.expect_code(2);
    assert!(out.stderr.contains("check `prod-window`"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("expired on 2027-03-01; the check applies again"),
        "{}",
        out.stderr
    );
    assert_eq!(d.marker("compile"), 1, "no step ran");
    let check = d.sluice(&["policy", "check"]);
    check.expect_code(2);
    assert!(
        check.stdout.contains(
            "exemption expired on 2027-03-01; the check applies again; enforced since 2027-01-15; blocks the run"
        ),
        "{}",
        check.stdout
    );
}

#[test]
fn a_promotion_check_holds_the_protected_stage_until_overridden_on_the_record() {
    let d = Durable::new(&pipeline("shop"));
    d.project.write(
        "policy.toml",
        &policy_file(&WINDOW_CHECK.replace(
            "enforce-from = 2027-01-15",
            "enforce-from = 2026-11-15\nblocks = \"promotion\"",
        )),
    );
    let out = d.sluice(&["run", "--format", "plain", "--no-wait"]);
    out.expect_code(4);
    let id = run_id_of(&both(&out));
    assert!(
        both(&out).contains("enforced since 2026-11-15; blocks promotion into protected stages"),
        "{}",
        both(&out)
    );
    assert_eq!(d.marker("compile"), 1, "the early stages run");
    assert_eq!(d.marker("deploy"), 0, "the protected stage is held");
    let explain = d.sluice(&["explain", &id]);
    explain.expect_code(0);
    insta::assert_snapshot!("explain_policy_gate", d.text(&explain.stdout));
    // The gate is overridden like every gate, on the record.
    d.sluice_as(
        "dana",
        &[
            "override",
            &id,
            "--gate",
            "policy",
            "--stage",
            "prod",
            "--reason",
            "INC-42: the change window is waived by the on-call lead",
        ],
    )
    .expect_code(0);
    let out = d.sluice(&["resume", &id, "--format", "plain", "--no-wait"]);
    out.expect_code(0);
    assert!(both(&out).contains("overridden by dana"), "{}", both(&out));
    assert_eq!(d.marker("deploy"), 1);
    let status = d.status_json(&id);
    let overrides = status["overrides"].as_array().unwrap();
    assert_eq!(overrides.len(), 1);
    assert_eq!(overrides[0]["gate"], "policy");
    assert!(!overrides[0]["used_at"].is_null());
}

#[test]
fn policy_check_shows_every_checks_standing() {
    let d = Durable::new(&format!(
        "{}\n[stage.bake]\nduration = \"10m\"\npositive = 1\nmonitors = [\"health\"]\n\n[[monitor]]\nid = \"health\"\nuses = \"builtin:http-check\"\ninterval = \"1s\"\n[monitor.with]\nurl = \"http://127.0.0.1:9/health\"\n[monitor.grants]\nnet = [\"http://127.0.0.1:9\"]\n",
        pipeline("shop")
    ));
    d.project.write(
        "policy.toml",
        &policy_file(&format!(
            r#"{WINDOW_CHECK}
[[check]]
id = "prod-bake"
builtin = "production-bake"
with = {{ duration = "1h", positive = 3 }}
message = "Production stages bake at least 1h with 3 positive data points."
warn-from = 2027-02-01
enforce-from = 2027-03-01

[[check]]
id = "scan"
builtin = "scan-before-production"
message = "A security scan runs before production."
enforce-from = 2026-11-01

[[check]]
id = "tests-fail-loudly"
builtin = "no-allow-failure-in-tests"
message = "Tests never fail quietly."

[[exemption]]
check = "scan"
pipeline = "shop"
reason = "the scanner is being replaced"
approved-by = "dana@acme.example"
expires = 2026-12-31
"#
        )),
    );
    d.set_clock("2026-11-30T07:00:00Z");
    let out = d.sluice(&["policy", "check"]);
    out.expect_code(0);
    insta::assert_snapshot!("policy_check_text", d.text(&out.stdout));
    let json = d.sluice(&["policy", "check", "--json"]);
    json.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    let checks = v["pipelines"][0]["checks"].as_array().unwrap();
    let standings: Vec<&str> = checks
        .iter()
        .map(|c| c["standing"]["standing"].as_str().unwrap())
        .collect();
    assert_eq!(standings, ["warns", "announced", "exempt", "passes"]);
    assert_eq!(checks[1]["standing"]["warn_from"], "2027-02-01");
    // Once the exemption is over, the enforced check fails the check, exit 2.
    d.set_clock("2027-01-01T00:00:00Z");
    let out = d.sluice(&["policy", "check"]);
    out.expect_code(2);
    assert!(
        out.stdout
            .contains("exemption expired on 2026-12-31; the check applies again"),
        "{}",
        out.stdout
    );
    // A pipeline that cannot be read is a row with its error; the others are checked.
    d.project.write("broken.toml", "[pipeline\n");
    let out = d.sluice(&["policy", "check", "sluice.toml", "broken.toml"]);
    out.expect_code(2);
    assert!(
        out.stdout.contains("broken.toml: error: "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("sluice.toml: pipeline `shop`"),
        "{}",
        out.stdout
    );
}
