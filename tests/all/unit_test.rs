//! `builtin:unit-test` on real pytest projects: a retry re-runs exactly the failed
//! tests by node id (and a test that then passes is flaky), a retry that cannot run is
//! a warning in the log and the report, and a tool whose results cannot be read is
//! refused by `sluice validate`.

use std::process::Command;

use crate::support::{Project, normalize, output};

/// The Python interpreter that has pytest (CI installs it) and the installation folder
/// the step must be able to read.
fn python_with_pytest() -> (String, String) {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, pytest; print(sys.executable); print(sys.base_prefix)",
        ])
        .output()
        .expect("run python3 (CI installs it)");
    assert!(
        out.status.success(),
        "python3 with pytest is needed (CI installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("paths are UTF-8");
    let mut lines = text.lines();
    let executable = lines.next().expect("sys.executable").to_owned();
    let prefix = lines.next().expect("sys.base_prefix").to_owned();
    (executable, prefix)
}

/// A pytest project whose step runs `python -m pytest tests` with two retries, granted
/// just the interpreter, its installation, the project (read) and `target` (write).
fn pytest_project(test_file: &str) -> Project {
    let (python, prefix) = python_with_pytest();
    let p = Project::new(&format!(
        r#"
[pipeline]
name = "py"

[[stage]]
name = "test"

[[stage.step]]
id = "unit"
uses = "builtin:unit-test"
with = {{ tool = "pytest", command = ["{python}", "-m", "pytest", "tests"], retries = 2 }}
[stage.step.grants]
exec = ["{python}"]
read = [".", "{prefix}"]
write = ["target"]
env = ["PYTHONDONTWRITEBYTECODE"]
"#
    ));
    p.write(
        "pyproject.toml",
        "[tool.pytest.ini_options]\ntestpaths = [\"tests\"]\n",
    );
    p.write("tests/test_app.py", test_file);
    std::fs::create_dir_all(p.path().join("target")).expect("create target");
    p
}

/// Fails on its first run only: the first run leaves a marker in `target` (the step's
/// write grant), and the retry finds it.
const FLAKY_ONCE: &str = r#"
import pathlib

import pytest

MARKER = pathlib.Path(__file__).parent.parent / "target" / "flaky-marker"


def test_steady():
    pass


class TestGroup:
    @pytest.mark.parametrize("n", [1, 2, 3])
    def test_positive(self, n):
        assert n > 0


def test_fails_first_time():
    if not MARKER.exists():
        MARKER.write_text("ran")
        raise AssertionError("first run fails")
"#;

#[test]
fn a_pytest_test_failing_once_is_retried_by_node_id_and_flaky() {
    let p = pytest_project(FLAKY_ONCE);
    let out = p.run(&[]);
    out.expect_code(0);
    let step = p.step("unit");
    assert_eq!(step["status"], "warned", "{step:#}");
    let summary = step["report"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("5 tests: 4 passed, 0 failed, 0 skipped, 1 flaky"),
        "{summary}"
    );
    let cases = step["report"]["test_cases"].as_array().unwrap();
    let flaky: Vec<&str> = cases
        .iter()
        // The record keeps the contract's enum names (`Flaky`).
        .filter(|case| {
            case["status"]
                .as_str()
                .is_some_and(|status| status.eq_ignore_ascii_case("flaky"))
        })
        .map(|case| case["name"].as_str().unwrap())
        .collect();
    assert_eq!(flaky, ["test_fails_first_time"]);

    // The retry named that one test, without the `tests` folder that selects them all,
    // and pytest ran it alone, without its cache.
    let log = p.step_log("unit");
    assert!(
        log.contains("retry 1 of 2: 1 failed test(s)"),
        "no retry line in the log:\n{log}"
    );
    let retry_line = log
        .lines()
        .filter(|line| line.contains("running `"))
        .nth(1)
        .unwrap_or_else(|| panic!("no second command in the log:\n{log}"));
    assert!(
        retry_line.contains(" -m pytest -p no:cacheprovider --junitxml=")
            && retry_line.contains("pytest-junit-2.xml tests/test_app.py::test_fails_first_time`"),
        "{retry_line}"
    );
    assert!(
        !retry_line.contains(" tests ") && !retry_line.contains("--lf"),
        "{retry_line}"
    );
    // What pytest itself said on the retry (its JUnit file lives in the step's sandbox).
    let retry_output = &log[log.find("retry 1 of 2").unwrap()..];
    assert!(
        retry_output.contains("collected 1 item") && retry_output.contains("1 passed"),
        "the retry ran more than the failed test:\n{retry_output}"
    );
    assert!(
        !log.contains("PytestCacheWarning") && !log.contains(".pytest_cache"),
        "pytest tried to use its cache:\n{log}"
    );
    assert!(!log.contains("could not run"), "{log}");
    assert_eq!(output(&step, "retry-warnings"), "0");
}

/// A parametrized test whose id changes on every run (a common accident: ids made from
/// a time, a process id or a temporary path) cannot be selected again by its node id.
const ID_CHANGES_EVERY_RUN: &str = r#"
import time

import pytest


def test_steady():
    pass


@pytest.mark.parametrize("started", [time.time_ns()], ids=lambda ns: f"t{ns}")
def test_run_specific(started):
    raise AssertionError(f"fails in the run started at {started}")
"#;

#[test]
fn a_pytest_retry_that_cannot_run_is_a_warning_not_zero_flaky() {
    let p = pytest_project(ID_CHANGES_EVERY_RUN);
    let out = p.run(&[]);
    out.expect_code(1);
    let step = p.step("unit");
    assert_eq!(step["status"], "failed", "{step:#}");
    let summary = step["report"]["summary"].as_str().unwrap();
    let warning = "retry 1 of 2 could not run: `pytest` reported none of the failed tests \
                   (exited 4: pytest refused its command line (usage error); it said: \
                   ERROR: not found:";
    assert!(
        summary.starts_with("2 tests: 1 passed, 1 failed, 0 skipped, 0 flaky")
            && summary.contains(warning)
            && summary.contains("tests/test_app.py::test_run_specific"),
        "{summary}"
    );
    assert_eq!(output(&step, "retry-warnings"), "1");
    let log = p.step_log("unit");
    assert!(log.contains(warning), "no warning in the log:\n{log}");
    // The same command would fail the same way: no second retry.
    assert!(!log.contains("retry 2 of 2"), "{log}");
    // The console shows it too.
    assert!(out.stderr.contains("could not run"), "{}", out.stderr);
}

#[test]
fn validate_refuses_npm_without_a_way_to_read_results() {
    let p = Project::new(
        r#"
[pipeline]
name = "web"

[[stage]]
name = "test"

[[stage.step]]
id = "unit"
uses = "builtin:unit-test"
with = { tool = "npm", retries = 1 }

[[stage.step]]
id = "script"
uses = "builtin:unit-test"
with = { command = ["./run-tests.sh"] }
"#,
    );
    let out = p.sluice(&["validate"]);
    out.expect_code(2);
    insta::assert_snapshot!(normalize(&out.stderr, p.path()));
    // With a JUnit file to read, both are fine.
    p.write(
        "sluice.toml",
        r#"
[pipeline]
name = "web"

[[stage]]
name = "test"

[[stage.step]]
id = "unit"
uses = "builtin:unit-test"
with = { tool = "npm", retries = 1, junit = ["junit.xml"] }

[[stage.step]]
id = "script"
uses = "builtin:unit-test"
with = { command = ["./run-tests.sh"], junit = ["reports/*.xml"] }
"#,
    );
    p.sluice(&["validate"]).expect_code(0);
}

/// A test runner the plugin knows nothing about: it writes a JUnit file of its own name
/// per run (as jest-junit or gotestsum can), and a test in it fails on its first run.
const RUNNER_WITH_A_FILE_PER_RUN: &str = r#"#!/bin/sh
set -e
out="target/junit-$(date +%s%N).xml"
if [ -e target/flaky-marker ]; then
  flaky='<testcase classname="suite" name="flaky"/>'
else
  : > target/flaky-marker
  flaky='<testcase classname="suite" name="flaky"><failure message="first run fails"/></testcase>'
fi
printf '<testsuite name="suite"><testcase classname="suite" name="steady"/>%s</testsuite>\n' "$flaky" > "$out"
grep -q failure "$out" && exit 1
exit 0
"#;

#[test]
fn a_whole_command_retry_reads_its_own_junit_file_not_the_previous_one() {
    let p = Project::new(
        r#"
[pipeline]
name = "script"

[[stage]]
name = "test"

[[stage.step]]
id = "unit"
uses = "builtin:unit-test"
with = { command = ["/bin/sh", "run-tests.sh"], junit = ["target/junit-*.xml"], retries = 1 }
[stage.step.grants]
exec = ["/bin/sh"]
read = ["."]
write = ["target"]
"#,
    );
    p.write("run-tests.sh", RUNNER_WITH_A_FILE_PER_RUN);
    std::fs::create_dir_all(p.path().join("target")).expect("create target");
    let out = p.run(&[]);
    out.expect_code(0);
    let step = p.step("unit");
    let summary = step["report"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("2 tests: 1 passed, 0 failed, 0 skipped, 1 flaky (command"),
        "{summary}"
    );
    let log = p.step_log("unit");
    assert!(
        log.contains("retry 1 of 1: 1 failed test(s), re-running the whole command"),
        "{log}"
    );
}
