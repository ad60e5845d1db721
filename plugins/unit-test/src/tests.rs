//! Parsers checked against output captured from the real tools (see tests/data/README.md).

use sluice_sdk::{TestCase, TestStatus};

use super::*;

macro_rules! data {
    ($file:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/", $file))
    };
}

/// A project folder with no files at all.
fn no_files(_: &str) -> pytest::Entry {
    pytest::Entry::Missing
}

/// A project folder that does not exist.
fn nowhere() -> pytest::ProjectFiles {
    let missing = Path::new("/nonexistent/sluice-unit-test-project");
    pytest::ProjectFiles {
        project: missing.to_path_buf(),
        top: missing.to_path_buf(),
    }
}

/// The scratch project that `pytest-ids-junit.xml` was captured from.
fn pytest_ids_files() -> pytest::ProjectFiles {
    let project = pytest_ids_project();
    pytest::ProjectFiles {
        top: project.clone(),
        project,
    }
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
    let plan = plan_retry(Tool::Cargo, &base, &failed, &nowhere()).unwrap();
    assert!(plan.targeted);
    assert_eq!(
        plan.command.join(" "),
        "cargo test --no-fail-fast -- --exact tests::fails tests::flaky_once"
    );
    let with_sep: Vec<String> = ["cargo", "test", "--", "--include-ignored"]
        .map(String::from)
        .to_vec();
    assert_eq!(
        plan_retry(Tool::Cargo, &with_sep, &failed, &nowhere())
            .unwrap()
            .command
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
fn pytest_junit_cases_and_a_retry_merge() {
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

    // go-test-retry.jsonl: a retry by top-level names (see go-multi.jsonl for today's).
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

/// The scratch project that `pytest-ids-junit.xml` was captured from.
fn pytest_ids_project() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pytest-ids-project")
}

fn failed_of(cases: &[TestCase]) -> Vec<&TestCase> {
    cases
        .iter()
        .filter(|case| case.status == TestStatus::Failed)
        .collect()
}

#[test]
fn pytest_node_ids_from_junit_classes_nesting_and_parameters() {
    let cases = junit::parse(data!("pytest-ids-junit.xml")).unwrap();
    let project = pytest_ids_project();
    let entry = |relative: &str| pytest::entry_on_disk(&project, relative);
    let ids: Vec<String> = cases
        .iter()
        .map(|case| pytest::node_id(case, &entry).unwrap())
        .collect();
    // Exactly the node ids pytest printed for the same run (`-rA`-style summary and
    // `--collect-only -q`).
    assert_eq!(
        ids,
        [
            "tests/pkg/test_in_package.py::TestThing::test_broken",
            "tests/test_calc.py::test_adds",
            "tests/test_calc.py::test_fails",
            "tests/test_calc.py::test_needs_db",
            "tests/test_calc.py::test_param[1-2-3]",
            "tests/test_calc.py::test_param[2-2-5]",
            "tests/test_calc.py::test_param[zero::sum/x [y]]",
            "tests/test_calc.py::TestOuter::test_method",
            "tests/test_calc.py::TestOuter::TestInner::test_nested[ok]",
            r"tests/test_calc.py::TestOuter::TestInner::test_nested[b\xe4d]",
            "tests/test_calc.py::test_flaky_once",
            "tests/v1.2/test_dotted.py::test_in_dotted_folder",
        ]
    );
}

#[test]
fn pytest_node_id_of_a_file_that_is_not_there_is_an_error() {
    let case = TestCase::failed("tests.test_gone.TestA", "test_b");
    let err = pytest::node_id(&case, &no_files).unwrap_err();
    assert!(err.contains("`tests.test_gone.TestA`"), "{err}");
    // A doctest of a text file keeps the file's dots.
    let doctest = TestCase::failed("README.rst", "README.rst");
    let readme = |relative: &str| {
        if relative == "README.rst" {
            pytest::Entry::File
        } else {
            pytest::Entry::Missing
        }
    };
    assert_eq!(
        pytest::node_id(&doctest, &readme).unwrap(),
        "README.rst::README.rst"
    );
}

#[test]
fn pytest_retry_names_exactly_the_failed_node_ids() {
    let cases = junit::parse(data!("pytest-ids-junit.xml")).unwrap();
    let files = pytest_ids_files();
    let base: Vec<String> = [
        "pytest",
        "-p",
        "no:cacheprovider",
        "--junitxml=pytest-ids-junit-retry.xml",
        "-q",
    ]
    .map(String::from)
    .to_vec();
    let plan = plan_retry(Tool::Pytest, &base, &failed_of(&cases), &files).unwrap();
    assert!(plan.targeted);
    assert!(plan.left_out.is_empty(), "{:?}", plan.left_out);
    // The exact command that produced pytest-ids-junit-retry.xml.
    assert_eq!(
        plan.command,
        [
            "pytest",
            "-p",
            "no:cacheprovider",
            "--junitxml=pytest-ids-junit-retry.xml",
            "-q",
            "tests/pkg/test_in_package.py::TestThing::test_broken",
            "tests/test_calc.py::test_fails",
            "tests/test_calc.py::test_param[2-2-5]",
            "tests/test_calc.py::test_param[zero::sum/x [y]]",
            r"tests/test_calc.py::TestOuter::TestInner::test_nested[b\xe4d]",
            "tests/test_calc.py::test_flaky_once",
            "tests/v1.2/test_dotted.py::test_in_dotted_folder",
        ]
    );

    // The retry ran those seven and nothing else; the flaky one passed.
    let retried = junit::parse(data!("pytest-ids-junit-retry.xml")).unwrap();
    assert_eq!(retried.len(), 7);
    let mut merged = cases.clone();
    assert_eq!(retry::merge(&mut merged, &retried), 7);
    retry::settle(&mut merged);
    let flaky: Vec<&str> = merged
        .iter()
        .filter(|case| case.status == TestStatus::Flaky)
        .map(|case| case.name.as_str())
        .collect();
    assert_eq!(flaky, ["test_flaky_once"]);
    assert_eq!(count(&merged, TestStatus::Failed), 6);
    assert_eq!(count(&merged, TestStatus::Passed), 4);
}

#[test]
fn pytest_retry_drops_test_paths_but_keeps_option_values() {
    let cases = junit::parse(data!("pytest-ids-junit.xml")).unwrap();
    let failed: Vec<&TestCase> = failed_of(&cases)
        .into_iter()
        .filter(|case| case.name == "test_flaky_once")
        .collect();
    let files = pytest_ids_files();
    let base: Vec<String> = [
        "python3",
        "-X",
        "utf8",
        "-m",
        "pytest",
        "tests",
        "./tests/test_calc.py::test_adds",
        "-k",
        "tests",
        "--ignore",
        "tests/v1.2",
        "--tb=short",
        "-p",
        "no:cacheprovider",
    ]
    .map(String::from)
    .to_vec();
    let plan = plan_retry(Tool::Pytest, &base, &failed, &files).unwrap();
    assert_eq!(
        plan.command.join(" "),
        "python3 -X utf8 -m pytest -k tests --ignore tests/v1.2 --tb=short -p no:cacheprovider \
         tests/test_calc.py::test_flaky_once"
    );
}

#[test]
fn pytest_retry_without_any_node_id_cannot_run() {
    let cases = junit::parse(data!("pytest-ids-junit.xml")).unwrap();
    let base: Vec<String> = vec!["pytest".into()];
    let err = plan_retry(Tool::Pytest, &base, &failed_of(&cases), &nowhere()).unwrap_err();
    assert!(
        err.contains("tests.test_calc::test_flaky_once: no test file"),
        "{err}"
    );
}

#[test]
fn pytest_runs_without_its_cache_unless_asked_for_it() {
    let junit = Path::new("/out/pytest-junit-1.xml");
    let config: Config = serde_json::from_str(r#"{"tool":"pytest","args":["-q"]}"#).unwrap();
    assert_eq!(
        base_command(Tool::Pytest, &config, junit).unwrap(),
        [
            "pytest",
            "-p",
            "no:cacheprovider",
            "--junitxml=/out/pytest-junit-1.xml",
            "-q"
        ]
    );
    // `--lf` needs the cache: leave it on (see pytest-lf-without-cache.stderr).
    assert!(data!("pytest-lf-without-cache.stderr").contains("unrecognized arguments: --lf"));
    let config: Config =
        serde_json::from_str(r#"{"command":["python3","-m","pytest","--lf"]}"#).unwrap();
    assert_eq!(
        base_command(Tool::Pytest, &config, junit).unwrap(),
        [
            "python3",
            "-m",
            "pytest",
            "--lf",
            "--junitxml=/out/pytest-junit-1.xml"
        ]
    );
}

#[test]
fn a_retry_that_reports_none_of_its_tests_is_a_warning() {
    let cases = junit::parse(data!("pytest-ids-junit.xml")).unwrap();
    let targets: Vec<(String, String)> = failed_of(&cases)
        .iter()
        .map(|case| (case.suite.clone(), case.name.clone()))
        .collect();
    // What pytest did with a node id that matched nothing.
    let retried = junit::parse(data!("pytest-node-id-not-found-junit.xml")).unwrap();
    assert!(retried.is_empty());
    let again = Invocation {
        output: Output {
            exit_code: Some(4),
            signal: None,
            timed_out: false,
            stdout: b"\nno tests ran in 0.01s\n".to_vec(),
            stderr: data!("pytest-node-id-not-found.stderr").as_bytes().to_vec(),
            truncated: false,
            duration: Duration::from_millis(250),
        },
        started: SystemTime::now(),
    };
    let problem = retry_problem(
        Tool::Pytest,
        &again,
        &Results::Globs(&[]),
        &targets,
        &retried,
        0,
    )
    .unwrap();
    assert!(
        problem.starts_with(
            "could not run: `pytest` reported none of the failed tests (exited 4: pytest \
             refused its command line (usage error); it said: ERROR: not found:"
        ),
        "{problem}"
    );
    assert!(problem.contains("test_calc.py::test_gone"), "{problem}");

    // Some reported, some not: name the missing ones.
    let partial = junit::parse(data!("pytest-ids-junit-retry.xml")).unwrap();
    let mut more = targets.clone();
    more.push(("tests.test_calc".into(), "test_vanished".into()));
    let problem = retry_problem(
        Tool::Pytest,
        &again,
        &Results::Globs(&[]),
        &more,
        &partial,
        7,
    )
    .unwrap();
    assert!(
        problem.starts_with(
            "did not report 1 of the failed tests it re-ran: tests.test_calc::test_vanished"
        ),
        "{problem}"
    );
    assert!(
        retry_problem(
            Tool::Pytest,
            &again,
            &Results::Globs(&[]),
            &targets,
            &partial,
            7
        )
        .is_none()
    );
}

#[test]
fn go_build_failures_are_left_out_of_a_retry() {
    let cases = gotest::parse(data!("go-test-build-failed.jsonl"));
    let base: Vec<String> = ["go", "test", "-json", "./..."].map(String::from).to_vec();
    let err = plan_retry(Tool::Go, &base, &failed_of(&cases), &nowhere()).unwrap_err();
    assert!(
        err.contains("package example.com/godemo failed without a failing test"),
        "{err}"
    );
}

#[test]
fn the_schema_requires_junit_where_nothing_else_reads_results() {
    let schema = serde_json::to_value(schemars::schema_for!(Config)).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors = |with: serde_json::Value| -> Vec<String> {
        validator
            .iter_errors(&with)
            .map(|err| err.to_string())
            .collect()
    };
    let junit_missing = vec!["\"junit\" is a required property".to_owned()];
    assert_eq!(errors(serde_json::json!({"tool": "npm"})), junit_missing);
    assert_eq!(
        errors(serde_json::json!({"tool": "npm", "junit": []})),
        vec!["[] has less than 1 item".to_owned()]
    );
    assert!(errors(serde_json::json!({"tool": "npm", "junit": ["junit.xml"]})).is_empty());
    assert_eq!(
        errors(serde_json::json!({"tool": "command"})),
        vec![
            "\"command\" is a required property".to_owned(),
            "\"junit\" is a required property".to_owned()
        ]
    );
    assert_eq!(
        errors(serde_json::json!({"command": ["./run-tests"]})),
        junit_missing
    );
    assert_eq!(
        errors(serde_json::json!({"tool": "auto", "command": ["gotestsum"]})),
        junit_missing
    );
    for program in [
        "cargo",
        "/usr/bin/go",
        "pytest",
        "py.test",
        "mvnw",
        "python3",
        ".venv/bin/python3.12",
    ] {
        assert!(
            errors(serde_json::json!({"command": [program, "test"]})).is_empty(),
            "{program}"
        );
    }
    // A tool that reads its own results needs nothing more.
    for tool in ["auto", "cargo", "nextest", "go", "pytest", "maven"] {
        assert!(
            errors(serde_json::json!({"tool": tool})).is_empty(),
            "{tool}"
        );
    }
    // The tool's own command with a known tool set explicitly is fine too.
    assert!(errors(serde_json::json!({"tool": "pytest", "command": ["./pt"]})).is_empty());
}

#[test]
fn pytest_node_ids_when_the_rootdir_is_above_the_project() {
    // pytest run in `tests/` takes the folder of `pyproject.toml` as its rootdir, so the
    // JUnit class names start at that folder; the command line wants `tests/`-relative.
    let cases = junit::parse(data!("pytest-ids-junit.xml")).unwrap();
    let top = pytest_ids_project();
    let files = pytest::ProjectFiles {
        project: top.join("tests"),
        top,
    };
    let ids: Vec<String> = failed_of(&cases)
        .iter()
        .map(|case| files.node_id(case).unwrap())
        .collect();
    assert_eq!(ids[0], "pkg/test_in_package.py::TestThing::test_broken");
    assert_eq!(ids[1], "test_calc.py::test_fails");
    assert_eq!(ids[6], "v1.2/test_dotted.py::test_in_dotted_folder");
    // Never above the pipeline's folder.
    let files = pytest::ProjectFiles {
        project: pytest_ids_project().join("tests"),
        top: pytest_ids_project().join("tests"),
    };
    assert!(files.node_id(failed_of(&cases)[1]).is_err());
}

#[test]
fn go_retry_targets_failed_tests_subtests_and_packages() {
    let cases = gotest::parse(data!("go-multi.jsonl"));
    let summary: Vec<(&str, &str, TestStatus)> = cases
        .iter()
        .map(|case| (case.suite.as_str(), case.name.as_str(), case.status))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("example.com/godemo", "TestAdd", TestStatus::Passed),
            ("example.com/godemo", "TestFails", TestStatus::Failed),
            ("example.com/godemo", "TestTable/one", TestStatus::Passed),
            ("example.com/godemo", "TestTable/two", TestStatus::Failed),
            (
                "example.com/godemo",
                "TestTable/with_space",
                TestStatus::Passed
            ),
            ("example.com/godemo", "TestFlakyOnce", TestStatus::Failed),
            ("example.com/godemo/other", "TestFails", TestStatus::Passed),
            ("example.com/godemo/other", "TestOther", TestStatus::Passed),
        ]
    );
    let base: Vec<String> = ["go", "test", "-json", "-run", "Test", "-vet=off", "./..."]
        .map(String::from)
        .to_vec();
    let plan = plan_retry(Tool::Go, &base, &failed_of(&cases), &nowhere()).unwrap();
    assert!(plan.targeted);
    // The exact command that produced go-multi-retry.jsonl (the base's own `-run`
    // gives way).
    assert_eq!(
        plan.command,
        [
            "go",
            "test",
            "-run",
            "^(TestFails|TestFlakyOnce|TestTable)$/^(two)$",
            "-json",
            "-vet=off",
            "example.com/godemo"
        ]
    );
    let retried = gotest::parse(data!("go-multi-retry.jsonl"));
    let ran: Vec<&str> = retried.iter().map(|case| case.name.as_str()).collect();
    assert_eq!(ran, ["TestFails", "TestTable/two", "TestFlakyOnce"]);
    let mut merged = cases.clone();
    assert_eq!(retry::merge(&mut merged, &retried), 3);
    retry::settle(&mut merged);
    assert_eq!(find(&merged, "TestFlakyOnce").status, TestStatus::Flaky);
    assert_eq!(find(&merged, "TestTable/two").status, TestStatus::Failed);
    assert_eq!(count(&merged, TestStatus::Passed), 5);
}
