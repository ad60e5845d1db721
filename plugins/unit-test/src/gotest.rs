//! `go test -json` (test2json) output: one `TestEvent` per line, `{Time, Action,
//! Package, Test, Elapsed, Output}`, with actions `start`, `run`, `pause`, `cont`,
//! `output`, `pass`, `fail`, `skip`, `bench` (and, from Go 1.24, `build-output` and
//! `build-fail`). Lines that are not JSON (Go before 1.24 prints `FAIL pkg [build
//! failed]` there) are checked for build failures.
//!
//! Subtests (`TestTable/two`) are cases of their own; a parent test that has subtests
//! is left out unless it failed while none of its subtests did (a failure of its own).
//! A package that failed without a failing test (a panic in `TestMain`, a build error)
//! becomes a failed case named `(package)`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use sluice_sdk::{TestCase, TestStatus};

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Event {
    action: String,
    #[serde(default)]
    package: String,
    #[serde(default)]
    import_path: String,
    #[serde(default)]
    test: Option<String>,
    #[serde(default)]
    elapsed: Option<f64>,
    #[serde(default)]
    output: Option<String>,
}

#[derive(Default)]
struct Seen {
    status: Option<TestStatus>,
    elapsed: Duration,
    output: String,
}

/// Parse a `go test -json` stream. Returns the cases in the order their results came.
pub fn parse(stream: &str) -> Vec<TestCase> {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut tests: HashMap<(String, String), Seen> = HashMap::new();
    let mut packages: BTreeMap<String, Seen> = BTreeMap::new();

    for line in stream.lines() {
        let Ok(event) = serde_json::from_str::<Event>(line) else {
            // `FAIL	example.com/pkg [build failed]` (Go < 1.24).
            if let Some(rest) = line.strip_prefix("FAIL\t")
                && let Some(package) = rest.strip_suffix(" [build failed]")
            {
                let seen = packages.entry(package.trim().to_owned()).or_default();
                seen.status = Some(TestStatus::Failed);
                seen.output.push_str("build failed\n");
            }
            continue;
        };
        let package = if event.package.is_empty() {
            event.import_path.clone()
        } else {
            event.package.clone()
        };
        let status = match event.action.as_str() {
            "pass" => Some(TestStatus::Passed),
            "fail" | "build-fail" => Some(TestStatus::Failed),
            "skip" => Some(TestStatus::Skipped),
            _ => None,
        };
        let seen = match &event.test {
            Some(test) => {
                let key = (package.clone(), test.clone());
                if !tests.contains_key(&key) {
                    order.push(key.clone());
                }
                tests.entry(key).or_default()
            }
            None => packages.entry(package).or_default(),
        };
        if let Some(output) = &event.output {
            seen.output.push_str(output);
        }
        if let Some(status) = status {
            seen.status = Some(status);
            seen.elapsed = event
                .elapsed
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                .unwrap_or_default();
        }
    }

    let has_children = |package: &str, test: &str| {
        let prefix = format!("{test}/");
        tests
            .keys()
            .any(|(p, t)| p == package && t.starts_with(&prefix))
    };
    let child_failed = |package: &str, test: &str| {
        let prefix = format!("{test}/");
        tests.iter().any(|((p, t), seen)| {
            p == package && t.starts_with(&prefix) && seen.status == Some(TestStatus::Failed)
        })
    };

    let mut cases = Vec::new();
    let mut failed_packages = HashMap::new();
    for (package, test) in &order {
        let seen = &tests[&(package.clone(), test.clone())];
        // A test that never finished (the binary crashed or timed out) failed.
        let status = seen.status.unwrap_or(TestStatus::Failed);
        // A parent of subtests is a case only when it failed on its own.
        let failed_on_its_own = status == TestStatus::Failed && !child_failed(package, test);
        if has_children(package, test) && !failed_on_its_own {
            continue;
        }
        if status == TestStatus::Failed {
            failed_packages.insert(package.clone(), ());
        }
        let mut case =
            TestCase::new(package.clone(), test.clone(), status).with_duration(seen.elapsed);
        let message = message_of(&seen.output);
        match status {
            TestStatus::Failed => {
                case.message = Some(match (seen.status, message) {
                    (None, Some(message)) => format!("did not finish: {message}"),
                    (None, None) => "did not finish (the test binary crashed or timed out)".into(),
                    (_, Some(message)) => message,
                    (_, None) => "failed".into(),
                });
            }
            TestStatus::Skipped => case.message = message,
            _ => {}
        }
        if !seen.output.trim().is_empty() {
            case.output = Some(seen.output.trim_end().to_owned());
        }
        cases.push(case);
    }
    for (package, seen) in packages {
        if seen.status == Some(TestStatus::Failed) && !failed_packages.contains_key(&package) {
            let message = message_of(&seen.output).unwrap_or_else(|| "the package failed".into());
            let mut case = TestCase::failed(package, "(package)")
                .with_message(message)
                .with_duration(seen.elapsed);
            if !seen.output.trim().is_empty() {
                case.output = Some(seen.output.trim_end().to_owned());
            }
            cases.push(case);
        }
    }
    cases
}

/// The lines a test printed itself (`t.Error`, `t.Skip`, `t.Log`, a panic), without the
/// framework's `=== RUN` / `--- FAIL` lines.
fn message_of(output: &str) -> Option<String> {
    let lines: Vec<&str> = output
        .lines()
        .filter(|line| {
            let trimmed = line.trim_start();
            !(trimmed.starts_with("=== ")
                || trimmed.starts_with("--- ")
                || trimmed == "FAIL"
                || trimmed == "PASS"
                || trimmed.starts_with("FAIL\t")
                || trimmed.starts_with("ok  \t")
                || trimmed.is_empty())
        })
        .map(str::trim)
        .collect();
    if lines.is_empty() {
        None
    } else {
        Some(lines.join("\n"))
    }
}
