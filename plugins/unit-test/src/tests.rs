//! Parsers checked against output captured from the real tools (see tests/data/README.md).

use sluice_sdk::{TestCase, TestStatus};

use super::*;

macro_rules! data {
    ($file:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/", $file))
    };
}

fn find<'a>(cases: &'a [TestCase], name: &str) -> &'a TestCase {
    cases
        .iter()
        .find(|case| case.name == name)
        .unwrap_or_else(|| panic!("no test case {name} in {cases:#?}"))
}

#[test]
fn libtest_passing_failing_and_ignored() {
    let run = libtest::parse(data!("cargo-test.stdout"), data!("cargo-test.stderr"));
    let names: Vec<(&str, &str, TestStatus)> = run
        .cases
        .iter()
        .map(|case| (case.suite.as_str(), case.name.as_str(), case.status))
        .collect();
    assert_eq!(
        names,
        vec![
            ("demo (src/lib.rs)", "tests::adds", TestStatus::Passed),
            ("demo (src/lib.rs)", "tests::fails", TestStatus::Failed),
            ("demo (src/lib.rs)", "tests::flaky_once", TestStatus::Failed),
            ("demo (src/lib.rs)", "tests::needs_db", TestStatus::Skipped),
            (
                "integration (tests/integration.rs)",
                "integration_passes",
                TestStatus::Passed
            ),
        ]
    );
    assert_eq!(run.binaries, 3);
    assert_eq!(run.duration, Duration::from_millis(190));
    let fails = find(&run.cases, "tests::fails");
    assert_eq!(
        fails.message.as_deref(),
        Some(
            "panicked at src/lib.rs:23:9\nassertion `left == right` failed: math is broken\n  left: 4\n right: 5"
        )
    );
    let output = fails.output.as_deref().unwrap();
    assert!(output.starts_with("about to compare\n"), "{output}");
    assert!(
        !output.contains("flaky_once"),
        "output of another test leaked in: {output}"
    );
    assert_eq!(
        find(&run.cases, "tests::needs_db").message.as_deref(),
        Some("needs a database")
    );
    assert_eq!(
        find(&run.cases, "tests::flaky_once").message.as_deref(),
        Some("panicked at src/lib.rs:36:13\nfirst run fails")
    );
}

#[test]
fn libtest_suite_names_follow_cargo() {
    assert_eq!(
        libtest::suite_names(data!("cargo-test.stderr")),
        vec![
            "demo (src/lib.rs)",
            "integration (tests/integration.rs)",
            "demo (doc-tests)"
        ]
    );
}

#[test]
fn cargo_retry_turns_a_pass_into_flaky() {
    let mut cases = libtest::parse(data!("cargo-test.stdout"), data!("cargo-test.stderr")).cases;
    let retried = libtest::parse(
        data!("cargo-test-retry.stdout"),
        data!("cargo-test-retry.stderr"),
    )
    .cases;
    assert_eq!(retry::merge(&mut cases, &retried), 2);
    retry::settle(&mut cases);
    let flaky = find(&cases, "tests::flaky_once");
    assert_eq!(flaky.status, TestStatus::Flaky);
    assert_eq!(flaky.flaky_attempts.len(), 1);
    assert!(flaky.flaky_attempts[0].message.contains("first run fails"));
    assert!(
        flaky.flaky_attempts[0]
            .output
            .contains("panicked at src/lib.rs:36:13")
    );
    let fails = find(&cases, "tests::fails");
    assert_eq!(fails.status, TestStatus::Failed);
    assert!(fails.flaky_attempts.is_empty());
    assert!(
        fails
            .message
            .as_deref()
            .unwrap()
            .ends_with("(failed all 2 attempts)"),
        "{:?}",
        fails.message
    );
    assert_eq!(find(&cases, "tests::adds").status, TestStatus::Passed);
}

#[test]
fn cargo_retry_command_targets_exact_names() {
    let cases = libtest::parse(data!("cargo-test.stdout"), data!("cargo-test.stderr")).cases;
    let failed: Vec<&TestCase> = cases
        .iter()
        .filter(|case| case.status == TestStatus::Failed)
        .collect();
    let base: Vec<String> = ["cargo", "test", "--no-fail-fast"]
        .map(String::from)
        .to_vec();
    // The exact command that produced cargo-test-retry.stdout.
    assert_eq!(
        retry_command(Tool::Cargo, &base, &failed)
            .unwrap()
            .join(" "),
        "cargo test --no-fail-fast -- --exact tests::fails tests::flaky_once"
    );
    let with_sep: Vec<String> = ["cargo", "test", "--", "--include-ignored"]
        .map(String::from)
        .to_vec();
    assert_eq!(
        retry_command(Tool::Cargo, &with_sep, &failed)
            .unwrap()
            .join(" "),
        "cargo test -- --include-ignored --exact tests::fails tests::flaky_once"
    );
}

#[test]
fn nextest_junit_with_a_flaky_failure() {
    let cases = junit::parse(data!("nextest-junit.xml")).unwrap();
    assert_eq!(cases.len(), 4);
    let flaky = find(&cases, "tests::flaky_once");
    assert_eq!(flaky.suite, "demo");
    assert_eq!(flaky.status, TestStatus::Flaky);
    assert_eq!(flaky.flaky_attempts.len(), 1);
    let attempt = &flaky.flaky_attempts[0];
    assert!(
        attempt.message.starts_with("thread 'tests::flaky_once'"),
        "{}",
        attempt.message
    );
    assert!(attempt.output.contains("first run fails"));
    assert!(
        attempt.output.contains("test tests::flaky_once ... FAILED"),
        "nested system-out kept"
    );
    assert_eq!(attempt.duration_ms, 119);
    let fails = find(&cases, "tests::fails");
    assert_eq!(fails.status, TestStatus::Failed);
    assert!(
        fails
            .message
            .as_deref()
            .unwrap()
            .contains("(failed all 2 attempts)"),
        "{:?}",
        fails.message
    );
    assert!(fails.output.as_deref().unwrap().contains("math is broken"));
    assert_eq!(find(&cases, "tests::adds").status, TestStatus::Passed);
    assert_eq!(find(&cases, "tests::adds").duration_ms, 10);
    assert_eq!(
        find(&cases, "integration_passes").suite,
        "demo::integration"
    );
}

#[test]
fn pytest_junit_and_last_failed_retry() {
    let mut cases = junit::parse(data!("pytest-junit.xml")).unwrap();
    let summary: Vec<(&str, &str, TestStatus)> = cases
        .iter()
        .map(|case| (case.suite.as_str(), case.name.as_str(), case.status))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("tests.test_calc", "test_adds", TestStatus::Passed),
            ("tests.test_calc", "test_fails", TestStatus::Failed),
            ("tests.test_calc", "test_needs_db", TestStatus::Skipped),
            (
                "tests.test_calc.TestClassy",
                "test_method",
                TestStatus::Passed
            ),
            ("tests.test_calc", "test_flaky_once", TestStatus::Failed),
        ]
    );
    let fails = find(&cases, "test_fails");
    assert!(
        fails
            .message
            .as_deref()
            .unwrap()
            .starts_with("AssertionError: math is broken"),
        "{:?}",
        fails.message
    );
    assert!(
        fails
            .output
            .as_deref()
            .unwrap()
            .contains("about to compare"),
        "captured stdout kept"
    );
    assert_eq!(
        find(&cases, "test_needs_db").message.as_deref(),
        Some("needs a database")
    );

    let retried = junit::parse(data!("pytest-junit-retry.xml")).unwrap();
    assert_eq!(retry::merge(&mut cases, &retried), 2);
    retry::settle(&mut cases);
    assert_eq!(find(&cases, "test_flaky_once").status, TestStatus::Flaky);
    assert!(
        find(&cases, "test_flaky_once").flaky_attempts[0]
            .message
            .contains("first run fails")
    );
    assert_eq!(find(&cases, "test_fails").status, TestStatus::Failed);
}

#[test]
fn go_test_json_with_subtests_skips_and_retries() {
    let mut cases = gotest::parse(data!("go-test.jsonl"));
    let summary: Vec<(&str, TestStatus)> = cases
        .iter()
        .map(|case| (case.name.as_str(), case.status))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("TestAdd", TestStatus::Passed),
            ("TestFails", TestStatus::Failed),
            ("TestSkipped", TestStatus::Skipped),
            ("TestTable/one", TestStatus::Passed),
            ("TestTable/two", TestStatus::Failed),
            ("TestFlakyOnce", TestStatus::Failed),
        ]
    );
    assert!(cases.iter().all(|case| case.suite == "example.com/godemo"));
    let fails = find(&cases, "TestFails");
    assert_eq!(
        fails.message.as_deref(),
        Some("calc_test.go:16: about to compare\ncalc_test.go:18: Add(2, 2) = 4, want 5")
    );
    assert_eq!(
        find(&cases, "TestSkipped").message.as_deref(),
        Some("calc_test.go:23: needs a database")
    );

    let failed: Vec<&TestCase> = cases
        .iter()
        .filter(|case| case.status == TestStatus::Failed)
        .collect();
    let base: Vec<String> = ["go", "test", "-json", "-vet=off", "./..."]
        .map(String::from)
        .to_vec();
    // The exact command that produced go-test-retry.jsonl.
    assert_eq!(
        retry_command(Tool::Go, &base, &failed).unwrap(),
        [
            "go",
            "test",
            "-run",
            "^(TestFails|TestFlakyOnce|TestTable)$",
            "-json",
            "-vet=off",
            "./..."
        ]
    );
    let retried = gotest::parse(data!("go-test-retry.jsonl"));
    retry::merge(&mut cases, &retried);
    retry::settle(&mut cases);
    assert_eq!(find(&cases, "TestFlakyOnce").status, TestStatus::Flaky);
    assert_eq!(find(&cases, "TestTable/two").status, TestStatus::Failed);
}

#[test]
fn go_build_failure_is_a_failed_package() {
    let cases = gotest::parse(data!("go-test-build-failed.jsonl"));
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].suite, "example.com/godemo");
    assert_eq!(cases[0].name, "(package)");
    assert_eq!(cases[0].status, TestStatus::Failed);
}

#[test]
fn junit_rejects_broken_xml() {
    assert!(junit::parse("<testsuite><testcase name=\"a\">").is_err());
    assert!(junit::parse("<testsuite><testcase classname=\"x\"/></testsuite>").is_err());
}

#[test]
fn detects_the_tool() {
    let dir = std::env::temp_dir().join(format!("sluice-unit-test-detect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(detect(Tool::Auto, None, &dir).is_err());
    std::fs::write(dir.join("go.mod"), "module x\n").unwrap();
    assert_eq!(detect(Tool::Auto, None, &dir).unwrap(), Tool::Go);
    std::fs::write(dir.join("Cargo.toml"), "").unwrap();
    assert_eq!(detect(Tool::Auto, None, &dir).unwrap(), Tool::Cargo);
    let nextest: Vec<String> = ["cargo", "nextest", "run"].map(String::from).to_vec();
    assert_eq!(
        detect(Tool::Auto, Some(&nextest), &dir).unwrap(),
        Tool::Nextest
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_mistakes_are_reported_before_running() {
    let input = |config: &str| sluice_sdk::StepInput {
        run_id: "r".into(),
        pipeline: "p".into(),
        stage: "s".into(),
        step: "t".into(),
        config: config.into(),
        artifact: None,
        outputs: Vec::new(),
        workdir: std::env::temp_dir().to_string_lossy().into_owned(),
        attempt: 1,
        plugins: vec![],
    };
    let err = sluice_sdk::run_plugin::<UnitTest>(input(
        r#"{"tool":"command","command":["./run-tests"]}"#,
    ))
    .unwrap_err();
    assert!(err.message().contains("set `junit`"), "{err:?}");
    let err =
        sluice_sdk::run_plugin::<UnitTest>(input(r#"{"tool":"cargo","retries":"2"}"#)).unwrap_err();
    assert!(err.message().contains("at `retries`"), "{err:?}");
    // A valid configuration gets as far as running the program, which needs a host.
    let err = sluice_sdk::run_plugin::<UnitTest>(input(r#"{"tool":"cargo"}"#)).unwrap_err();
    assert!(err.message().contains("native build"), "{err:?}");
}
