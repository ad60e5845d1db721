//! Stages, the `needs` DAG, parallelism, retries and `allow-failure`.

use crate::support::{Project, output};

fn millis(step: &serde_json::Value, name: &str) -> u64 {
    output(step, name)
        .parse()
        .expect("a timestamp in milliseconds")
}

const THREE_SLEEPERS: &str = r#"
[pipeline]
name = "dag"

[[stage]]
name = "test"

[[stage.step]]
id = "a"
uses = "{adversary}"
with = { mode = "sleep", ms = 400 }

[[stage.step]]
id = "b"
uses = "{adversary}"
with = { mode = "sleep", ms = 400 }

[[stage.step]]
id = "c"
uses = "{adversary}"
with = { mode = "sleep", ms = 400 }
"#;

#[test]
fn independent_steps_run_in_parallel() {
    let p = Project::new(THREE_SLEEPERS);
    p.run(&["--jobs", "3"]).expect_code(0);
    let steps: Vec<_> = ["a", "b", "c"].iter().map(|id| p.step(id)).collect();
    let latest_start = steps.iter().map(|s| millis(s, "started-ms")).max().unwrap();
    let earliest_end = steps
        .iter()
        .map(|s| millis(s, "finished-ms"))
        .min()
        .unwrap();
    assert!(
        latest_start < earliest_end,
        "all three sleeps should overlap: {steps:#?}"
    );
}

#[test]
fn jobs_bounds_parallelism() {
    let p = Project::new(THREE_SLEEPERS);
    p.run(&["--jobs", "1"]).expect_code(0);
    let mut spans: Vec<(u64, u64)> = ["a", "b", "c"]
        .iter()
        .map(|id| p.step(id))
        .map(|s| (millis(&s, "started-ms"), millis(&s, "finished-ms")))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "with --jobs 1 no two steps overlap: {spans:?}"
        );
    }
}

#[test]
fn needs_orders_steps_and_passes_outputs() {
    let p = Project::new(
        r#"
[pipeline]
name = "needs"

[[stage]]
name = "build"

[[stage.step]]
id = "late"
uses = "{adversary}"
with = { mode = "echo-input" }
needs = ["first", "second"]

[[stage.step]]
id = "first"
uses = "{adversary}"
with = { mode = "sleep", ms = 200 }

[[stage.step]]
id = "second"
uses = "{adversary}"
with = { mode = "ok", outputs = { version = "1.2.3" } }
"#,
    );
    p.run(&[]).expect_code(0);
    let late = p.step("late");
    let first = p.step("first");
    let seen = output(&late, "seen-outputs");
    assert!(
        seen.contains("1.2.3"),
        "outputs of `second` reach `late`: {seen}"
    );
    assert!(
        seen.contains("finished-ms"),
        "outputs of `first` reach `late`: {seen}"
    );
    assert_eq!(output(&late, "stage"), "build");
    let late_record = p.run_record();
    let order: Vec<&str> = late_record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["late", "first", "second"],
        "records keep file order"
    );
    assert!(millis(&first, "finished-ms") > 0);
}

#[test]
fn stage_failure_stops_later_stages() {
    let p = Project::new(
        r#"
[pipeline]
name = "stops"

[[stage]]
name = "test"

[[stage.step]]
id = "broken"
uses = "{adversary}"
with = { mode = "fail", message = "assertion failed: 1 == 2" }

[[stage.step]]
id = "fine"
uses = "{adversary}"
with = { mode = "ok" }

[[stage.step]]
id = "after-broken"
uses = "{adversary}"
with = { mode = "ok" }
needs = ["broken"]

[[stage]]
name = "deploy"

[[stage.step]]
id = "ship"
uses = "{adversary}"
with = { mode = "ok" }
"#,
    );
    let out = p.run(&[]);
    out.expect_code(1);
    assert_eq!(p.step("broken")["status"], "failed");
    assert_eq!(
        p.step("fine")["status"],
        "passed",
        "an independent sibling still runs"
    );
    assert_eq!(p.step("after-broken")["status"], "skipped");
    assert_eq!(p.step("ship")["status"], "skipped");
    assert_eq!(p.step("ship")["attempts"], 0);
    assert!(
        out.stderr.contains("assertion failed: 1 == 2"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("stage `test` failed (step broken)"),
        "{}",
        out.stderr
    );
}

#[test]
fn retries_turn_a_flaky_step_green() {
    let p = Project::new(
        r#"
[pipeline]
name = "retry"

[[stage]]
name = "test"

[[stage.step]]
id = "flaky"
uses = "{adversary}"
with = { mode = "flaky", fail-attempts = 2 }
retries = 2
retry-delay = "10ms"
"#,
    );
    let out = p.run(&[]);
    out.expect_code(0);
    let step = p.step("flaky");
    assert_eq!(step["status"], "passed");
    assert_eq!(step["attempts"], 3);
    assert_eq!(out.stderr.matches("RETRY").count(), 2, "{}", out.stderr);
}

#[test]
fn retries_run_out() {
    let p = Project::new(
        r#"
[pipeline]
name = "retry"

[[stage]]
name = "test"

[[stage.step]]
id = "flaky"
uses = "{adversary}"
with = { mode = "flaky", fail-attempts = 2 }
retries = 1
retry-delay = "10ms"
"#,
    );
    p.run(&[]).expect_code(1);
    assert_eq!(p.step("flaky")["attempts"], 2);
    assert_eq!(p.step("flaky")["status"], "failed");
}

#[test]
fn allowed_failure_warns_and_never_passes() {
    let p = Project::new(
        r#"
[pipeline]
name = "allowed"

[[stage]]
name = "lint"

[[stage.step]]
id = "style"
uses = "{adversary}"
with = { mode = "fail", message = "3 style issues" }
allow-failure = true

[[stage.step]]
id = "after"
uses = "{adversary}"
with = { mode = "ok" }
needs = ["style"]

[[stage]]
name = "next"

[[stage.step]]
id = "runs"
uses = "{adversary}"
with = { mode = "ok" }
"#,
    );
    let out = p.run(&[]);
    out.expect_code(0);
    let style = p.step("style");
    assert_eq!(style["status"], "warned");
    assert!(
        style["summary"]
            .as_str()
            .unwrap()
            .starts_with("failed (allowed): "),
        "{style:#}"
    );
    assert_eq!(p.step("after")["status"], "passed");
    assert_eq!(p.step("runs")["status"], "passed");
    assert_eq!(p.run_record()["status"], "warned");
}

#[test]
fn json_format_emits_one_event_per_line() {
    let p = Project::new(
        r#"
[pipeline]
name = "json"

[[stage]]
name = "only"

[[stage.step]]
id = "talk"
uses = "{adversary}"
with = { mode = "log" }
"#,
    );
    let out = p.sluice(&["run", "--format", "json"]);
    out.expect_code(0);
    let events: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"run-started"));
    assert_eq!(kinds.last(), Some(&"run-finished"));
    assert!(kinds.contains(&"step-log"), "{kinds:?}");
    assert!(kinds.contains(&"step-progress"), "{kinds:?}");
    let finished = events
        .iter()
        .find(|e| e["event"] == "step-finished")
        .unwrap();
    assert_eq!(finished["status"], "passed");
}

#[test]
fn plain_output_of_a_failing_run() {
    let p = Project::new(
        r#"
[pipeline]
name = "shown"

[[stage]]
name = "build"

[[stage.step]]
id = "compile"
uses = "{adversary}"
with = { mode = "ok", summary = "compiled 12 crates" }

[[stage.step]]
id = "docs"
uses = "{adversary}"
with = { mode = "fail", message = "broken link in README" }
allow-failure = true
needs = ["compile"]

[[stage]]
name = "test"

[[stage.step]]
id = "unit"
uses = "{adversary}"
with = { mode = "fail", message = "2 of 40 tests failed" }

[[stage.step]]
id = "report"
uses = "{adversary}"
with = { mode = "ok" }
needs = ["unit"]

[[stage]]
name = "deploy"

[[stage.step]]
id = "ship"
uses = "{adversary}"
with = { mode = "ok" }
"#,
    );
    let out = p.run(&["--jobs", "1"]);
    out.expect_code(1);
    insta::assert_snapshot!(crate::support::normalize(&out.stderr, p.path()));
}

#[test]
fn a_failed_step_is_recalled_after_the_siblings_that_finished_later() {
    let p = Project::new(
        r#"
[pipeline]
name = "recap"

[[stage]]
name = "check"

[[stage.step]]
id = "lint"
uses = "{adversary}"
with = { mode = "fail", message = "3 findings" }

[[stage.step]]
id = "unit"
uses = "{adversary}"
with = { mode = "sleep", ms = 300 }

[[stage.step]]
id = "docs"
uses = "{adversary}"
with = { mode = "sleep", ms = 600 }
"#,
    );
    let out = p.run(&["--jobs", "3"]);
    out.expect_code(1);
    let shown = crate::support::normalize(&out.stderr, p.path());
    // In the order they finished: the failure first, then its slower siblings.
    let at = |needle: &str| {
        shown
            .find(needle)
            .unwrap_or_else(|| panic!("`{needle}` is not shown:\n{shown}"))
    };
    assert!(at("FAIL check/lint") < at("PASS check/unit"));
    assert!(at("PASS check/unit") < at("PASS check/docs"));
    // And recalled after them, right before the run's last line.
    let recap = at("failed steps (1):");
    assert!(recap > at("PASS check/docs"), "{shown}");
    assert!(
        shown[recap..].contains("FAIL check/lint: 3 findings (log: "),
        "{shown}"
    );
    assert!(recap < at("pipeline failed"), "{shown}");
}

#[test]
fn interrupt_stops_running_programs() {
    use std::process::{Command, Stdio};
    let marker = format!("6{}.25", std::process::id() % 1000);
    let p = Project::new(&format!(
        r#"
[pipeline]
name = "interrupt"

[[stage]]
name = "long"

[[stage.step]]
id = "done"
uses = "{{adversary}}"
with = {{ mode = "ok" }}

[[stage.step]]
id = "waits"
uses = "builtin:command"
with = {{ program = "sleep", args = ["{marker}"] }}
needs = ["done"]

[stage.step.grants]
exec = ["sleep"]
"#
    ));
    let mut child = Command::new(crate::support::sluice_bin())
        .args(["run", "--format", "plain"])
        .current_dir(p.path())
        .env("SLUICE_CACHE_DIR", crate::support::cache_dir())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = || {
        Command::new("pgrep")
            .args(["-f", &format!("sleep {marker}")])
            .output()
            .unwrap()
            .status
            .success()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !running() {
        assert!(
            std::time::Instant::now() < deadline,
            "the step never started its program"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        !running(),
        "the step's program outlived the interrupted run"
    );
    // What finished before the interrupt stays recorded.
    let runs = p.path().join(".sluice/runs");
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let done: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("steps/done.json")).unwrap())
            .unwrap();
    assert_eq!(done["status"], "passed");
}

#[test]
fn a_plugin_built_against_contract_0_1_0_still_runs() {
    // The runner speaks sluice:plugin@0.1.1 (0.1.1 added `secrets`); a component
    // built against 0.1.0 imports `sluice:plugin/log@0.1.0` and must still link.
    let p = Project::new(&format!(
        r#"
[pipeline]
name = "old-contract"

[[stage]]
name = "check"

[[stage.step]]
id = "old"
uses = "{}"
"#,
        sluice_tests::CONTRACT_0_1_0
    ));
    let out = p.run(&["--verbose"]);
    out.expect_code(0);
    assert!(
        out.stderr.contains("built against sluice:plugin@0.1.0"),
        "{}",
        out.stderr
    );
    let log = p.step_log("old");
    assert!(log.contains("step old on contract 0.1.0"), "{log}");
}

#[test]
fn run_ids_sort_in_the_order_runs_started_even_within_one_second() {
    let p = Project::new(
        r#"
[pipeline]
name = "quick"

[[stage]]
name = "one"

[[stage.step]]
id = "ok"
uses = "{adversary}"
with = { mode = "ok" }
"#,
    );
    let mut started = Vec::new();
    for _ in 0..4 {
        let out = p.run(&[]);
        out.expect_code(0);
        started.push(p.run_record()["run_id"].as_str().unwrap().to_string());
    }
    let mut sorted = started.clone();
    sorted.sort();
    assert_eq!(sorted, started, "run ids must sort by start time");
}
