//! `builtin:unit-test`: run a project's tests, retry the failures, and report every test
//! case, telling flaky tests (failed, then passed on a retry) apart from passes.
//!
//! ```toml
//! [[stage.step]]
//! id = "test"
//! uses = "builtin:unit-test"
//! with = { retries = 2 }            # tool detected from Cargo.toml, go.mod, pom.xml...
//! [stage.step.grants]
//! exec = ["cargo"]
//! read = [".", "~/.cargo", "~/.rustup"]
//! write = ["target"]
//! env = ["HOME", "PATH", "CARGO_HOME", "RUSTUP_HOME"]
//! ```
//!
//! Where results come from:
//! - `cargo`: libtest's text output ([`libtest`]); retries re-run only the failed tests
//!   with `cargo test -- --exact NAME...`;
//! - `go`: `go test -json` ([`gotest`]); retries use `-run '^(Test|...)$/^(subtest|...)$'`
//!   on the packages that had failures only;
//! - `pytest`: a JUnit file it writes under `output-dir` ([`junit`]), one per attempt;
//!   retries name the failed tests' node ids (`tests/test_x.py::TestA::test_b[1-2]`,
//!   [`pytest`]), and pytest runs with `-p no:cacheprovider` so that it never needs a
//!   writable `.pytest_cache`;
//! - `nextest` and `maven`: their JUnit files; retries are left to the tool
//!   (`--retries`, `surefire.rerunFailingTestsCount`), whose `<flakyFailure>` entries
//!   become flaky tests;
//! - `npm` and `command`: the JUnit files named by `junit` (e.g. from jest-junit);
//!   retries re-run the whole command (the runner behind it is unknown) and only the
//!   failed tests' results are taken from it.
//!
//! A retry that cannot run (no test name to target, the tool refused its command line,
//! it reported none of the tests it was asked to re-run, it wrote no results) is a
//! warning in the log and in the step's summary, never a silent "0 flaky".
//!
//! The step fails when a test failed, when fewer than `min-tests` (default 1) tests
//! ran, when the tool failed without a failing test (a compile error), or when a test
//! was flaky and `fail-on-flaky` is set; flaky tests otherwise make it `warned`.

pub mod gotest;
pub mod junit;
pub mod libtest;
pub mod pytest;
pub mod retry;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sluice_sdk::{
    Capability, Command, HumanDuration, Metric, Output, Plugin, Report, RunError, Status,
    StepContext, TestCase, TestStatus,
};

/// How many trailing lines of a failed tool's stderr go into the summary.
const TAIL_LINES: usize = 20;

/// The test runner.
#[derive(serde::Deserialize, schemars::JsonSchema, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// Detect from the project's files (Cargo.toml, go.mod, pom.xml, pytest config,
    /// package.json) or from `command`'s program.
    #[default]
    Auto,
    /// `cargo test`.
    Cargo,
    /// `cargo nextest run` with a JUnit-writing profile.
    Nextest,
    /// `go test -json`.
    Go,
    /// `pytest`.
    Pytest,
    /// `npm test`; needs `junit`.
    Npm,
    /// `mvn test` (Surefire reports).
    Maven,
    /// `command`, reading the JUnit files named by `junit`.
    Command,
}

/// The step's `with` table.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(transform = require_a_way_to_read_results)]
pub struct Config {
    /// Test runner; `auto` detects it.
    #[serde(default)]
    pub tool: Tool,
    /// Project folder, relative to the pipeline's folder; tests run in it.
    #[serde(default = "default_path")]
    pub path: String,
    /// Program and arguments that run the tests, instead of the tool's default
    /// (e.g. `["cargo", "test", "--workspace"]`). Its output is read as `tool` says.
    pub command: Option<Vec<String>>,
    /// Extra arguments for the default command.
    #[serde(default)]
    pub args: Vec<String>,
    /// JUnit XML files to read (globs, relative to the pipeline's folder). Files older
    /// than the run are ignored. Required with `tool = "npm"` and `"command"` (and with
    /// a `command` whose program is none of the known tools): their output says nothing
    /// a machine can read. Not used with pytest, whose JUnit file goes to `output-dir`.
    #[serde(default)]
    pub junit: Vec<String>,
    /// Retry failed tests up to this many times; a test that then passes is flaky.
    #[serde(default)]
    pub retries: u32,
    /// Fail the step when a test was flaky (otherwise it only warns).
    #[serde(default)]
    pub fail_on_flaky: bool,
    /// Fail when fewer tests than this ran (an empty test run usually means a broken
    /// filter or discovery).
    #[serde(default = "default_min_tests")]
    pub min_tests: u32,
    /// Kill a test run after this long, e.g. `10m`.
    pub timeout: Option<HumanDuration>,
    /// Extra environment variables for the test command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Where pytest's JUnit file goes (inside a write grant).
    #[serde(default = "default_output_dir")]
    pub output_dir: String,
    /// nextest profile; it must set `[profile.<name>.junit] path = "junit.xml"`.
    #[serde(default = "default_nextest_profile")]
    pub nextest_profile: String,
}

/// Programs whose results the plugin reads itself, so a `command` starting with one of
/// them needs no `junit` (see [`detect`]).
const PROGRAMS_WITH_RESULTS: &str = r"(^|/)(cargo|go|pytest|py\.test|mvn|mvnw|python[0-9.]*)$";

/// Make `sluice validate` refuse a step that has no way to read its results: `npm` and
/// `command` need `junit` (and `command` its `command`), as does an auto-detected
/// `command` whose program is not a known test runner.
fn require_a_way_to_read_results(schema: &mut schemars::Schema) {
    let junit_required = serde_json::json!({
        "required": ["junit"],
        "properties": { "junit": { "minItems": 1 } }
    });
    schema.insert(
        "allOf".into(),
        serde_json::json!([
            {
                "if": { "properties": { "tool": { "const": "npm" } }, "required": ["tool"] },
                "then": junit_required
            },
            {
                "if": { "properties": { "tool": { "const": "command" } }, "required": ["tool"] },
                "then": {
                    "required": ["command", "junit"],
                    "properties": { "junit": { "minItems": 1 } }
                }
            },
            {
                "if": {
                    "properties": {
                        "tool": { "const": "auto" },
                        "command": {
                            "prefixItems": [{ "not": { "pattern": PROGRAMS_WITH_RESULTS } }]
                        }
                    },
                    "required": ["command"]
                },
                "then": junit_required
            }
        ]),
    );
}

fn default_path() -> String {
    ".".into()
}
fn default_min_tests() -> u32 {
    1
}
fn default_output_dir() -> String {
    "target/sluice".into()
}
fn default_nextest_profile() -> String {
    "ci".into()
}

/// The plugin.
pub struct UnitTest;

impl Plugin for UnitTest {
    type Config = Config;
    const NAME: &'static str = "unit-test";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SUMMARY: &'static str = "Runs a project's tests, retries failures and reports every test case, flaky ones included.";

    fn capabilities() -> Vec<Capability> {
        vec![
            Capability::Exec,
            Capability::ReadFiles,
            Capability::WriteFiles,
        ]
    }

    fn run(config: Config, ctx: &StepContext) -> Result<Report, RunError> {
        run(&config, ctx)
    }
}

sluice_sdk::export_plugin!(UnitTest);

/// Pick the tool: the configured one, else from `command`'s program, else from the
/// marker files in `project`.
pub fn detect(tool: Tool, command: Option<&[String]>, project: &Path) -> Result<Tool, RunError> {
    if tool != Tool::Auto {
        return Ok(tool);
    }
    if let Some(command) = command {
        let program = command.first().map(String::as_str).unwrap_or("");
        let program = program.rsplit('/').next().unwrap_or(program);
        let has = |word: &str| command.iter().skip(1).any(|arg| arg == word);
        return Ok(match program {
            "cargo" if has("nextest") => Tool::Nextest,
            "cargo" => Tool::Cargo,
            "go" => Tool::Go,
            "pytest" | "py.test" => Tool::Pytest,
            "python" | "python3" if has("pytest") => Tool::Pytest,
            "mvn" | "mvnw" => Tool::Maven,
            _ => Tool::Command,
        });
    }
    let exists = |name: &str| project.join(name).exists();
    if exists("Cargo.toml") {
        Ok(Tool::Cargo)
    } else if exists("go.mod") {
        Ok(Tool::Go)
    } else if exists("pom.xml") {
        Ok(Tool::Maven)
    } else if [
        "pytest.ini",
        "pyproject.toml",
        "setup.cfg",
        "tox.ini",
        "conftest.py",
    ]
    .iter()
    .any(|name| exists(name))
    {
        Ok(Tool::Pytest)
    } else if exists("package.json") {
        Ok(Tool::Npm)
    } else {
        Err(RunError::invalid_config(format!(
            "cannot tell how to run the tests in {}: no Cargo.toml, go.mod, pom.xml, pytest \
             configuration or package.json there (or it is not readable: add it to the `read` \
             grant); set `tool` or `command`",
            project.display()
        )))
    }
}

/// The base command line for `tool`, without retry arguments.
fn base_command(tool: Tool, config: &Config, junit_file: &Path) -> Result<Vec<String>, RunError> {
    if let Some(command) = &config.command {
        if command.is_empty() || command[0].trim().is_empty() {
            return Err(RunError::invalid_config(
                "`command` is empty: give the program and its arguments",
            ));
        }
        let mut command = command.clone();
        if tool == Tool::Pytest {
            command.extend(pytest_options(&command, junit_file));
        }
        return Ok(command);
    }
    let words = |list: &[&str]| {
        list.iter()
            .map(|word| (*word).to_owned())
            .collect::<Vec<_>>()
    };
    let mut command = match tool {
        Tool::Cargo => words(&["cargo", "test", "--no-fail-fast"]),
        Tool::Nextest => {
            let mut command = words(&["cargo", "nextest", "run", "--no-fail-fast", "--profile"]);
            command.push(config.nextest_profile.clone());
            if config.retries > 0 {
                command.push("--retries".into());
                command.push(config.retries.to_string());
            }
            command
        }
        Tool::Go => words(&["go", "test", "-json"]),
        Tool::Pytest => {
            let mut command = vec!["pytest".to_owned()];
            command.extend(pytest_options(&config.args, junit_file));
            command
        }
        Tool::Npm => words(&["npm", "test"]),
        Tool::Maven => {
            let mut command = words(&["mvn", "-B", "test"]);
            if config.retries > 0 {
                command.push(format!(
                    "-Dsurefire.rerunFailingTestsCount={}",
                    config.retries
                ));
            }
            command
        }
        Tool::Command | Tool::Auto => {
            return Err(RunError::invalid_config(
                "`tool = \"command\"` needs `command` (the program and its arguments) and `junit` \
                 (the JUnit files it writes)",
            ));
        }
    };
    command.extend(config.args.iter().cloned());
    if tool == Tool::Go && !command.iter().skip(3).any(|arg| !arg.starts_with('-')) {
        command.push("./...".into());
    }
    Ok(command)
}

/// Options added to every pytest run: no cache (unless `words` use it) and the JUnit
/// file of this attempt.
fn pytest_options(words: &[String], junit_file: &Path) -> Vec<String> {
    let mut options = Vec::new();
    if pytest::can_disable_cache(words) {
        options.extend(pytest::NO_CACHE.map(String::from));
    }
    options.push(format!("--junitxml={}", junit_file.display()));
    options
}

/// How one retry re-runs the failed tests.
#[derive(Debug)]
pub struct RetryPlan {
    /// The command line.
    pub command: Vec<String>,
    /// Whether it names the failed tests (so each of them must be in its results);
    /// otherwise it re-runs the whole command.
    pub targeted: bool,
    /// Failed tests it cannot re-run, each with the reason.
    pub left_out: Vec<String>,
}

/// The retry of `failed` (cases of the previous attempt) for `tool`, from its `base`
/// command line. `files` finds pytest's test files on disk. `Err` says why no retry
/// can run at all.
pub fn plan_retry(
    tool: Tool,
    base: &[String],
    failed: &[&TestCase],
    files: &pytest::ProjectFiles,
) -> Result<RetryPlan, String> {
    let mut command = base.to_vec();
    let mut left_out = Vec::new();
    match tool {
        Tool::Cargo => {
            if !command.iter().any(|arg| arg == "--") {
                command.push("--".into());
            }
            command.push("--exact".into());
            let mut names: Vec<String> = failed.iter().map(|case| case.name.clone()).collect();
            names.sort();
            names.dedup();
            command.extend(names);
        }
        Tool::Go => {
            let mut tops = BTreeSet::new();
            let mut subtests = BTreeSet::new();
            let mut packages = BTreeSet::new();
            for case in failed {
                if case.name == "(package)" {
                    left_out.push(format!(
                        "package {} failed without a failing test (a build error?); it is not \
                         re-run",
                        case.suite
                    ));
                    continue;
                }
                packages.insert(case.suite.clone());
                let mut levels = case.name.split('/');
                tops.insert(regex_escape(levels.next().unwrap_or(&case.name)));
                if let Some(subtest) = levels.next() {
                    subtests.insert(regex_escape(subtest));
                }
            }
            if tops.is_empty() {
                return Err(left_out.join("; "));
            }
            // `-run` matches each level of a test's name on its own: the failed top-level
            // tests, then (when subtests failed) the failed subtests' names. A test with
            // no subtest runs whole; other subtests of a failed parent do not run again.
            let join = |names: &BTreeSet<String>| {
                names
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join("|")
            };
            let mut pattern = format!("^({})$", join(&tops));
            if !subtests.is_empty() {
                pattern.push_str(&format!("/^({})$", join(&subtests)));
            }
            // The retry's `-run` replaces the command's own (the failed tests matched it).
            let mut words = std::mem::take(&mut command).into_iter();
            while let Some(word) = words.next() {
                let flag = word.trim_start_matches('-');
                if word.starts_with('-') && (flag == "run" || flag == "test.run") {
                    words.next();
                } else if !(word.starts_with('-')
                    && (flag.starts_with("run=") || flag.starts_with("test.run=")))
                {
                    command.push(word);
                }
            }
            // Only the packages that had failures, instead of every package.
            if let Some(at) = command.iter().position(|arg| arg == "./...") {
                command.splice(at..=at, packages);
            }
            let at = command
                .iter()
                .position(|arg| arg == "test")
                .map_or(command.len(), |at| at + 1);
            command.splice(at..at, ["-run".to_owned(), pattern]);
        }
        Tool::Pytest => {
            let mut ids = Vec::new();
            for case in failed {
                match files.node_id(case) {
                    Ok(id) => ids.push(id),
                    Err(why) => left_out.push(format!("{}::{}: {why}", case.suite, case.name)),
                }
            }
            ids.dedup();
            if ids.is_empty() {
                return Err(format!(
                    "no failed test has a pytest node id to re-run: {}",
                    left_out.join("; ")
                ));
            }
            let prefix = pytest::program_words(base);
            command = pytest::retry_command(base, prefix, &ids, &|path| files.entry(path));
        }
        Tool::Npm | Tool::Command | Tool::Auto | Tool::Nextest | Tool::Maven => {
            return Ok(RetryPlan {
                command,
                targeted: false,
                left_out,
            });
        }
    }
    Ok(RetryPlan {
        command,
        targeted: true,
        left_out,
    })
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|ch| {
            let special = "\\.+*?()|[]{}^$".contains(ch);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(ch))
        })
        .collect()
}

/// Where results of `tool` come from.
fn reads_junit(tool: Tool, config: &Config) -> bool {
    !config.junit.is_empty()
        || matches!(
            tool,
            Tool::Nextest | Tool::Pytest | Tool::Maven | Tool::Npm | Tool::Command
        )
}

fn run(config: &Config, ctx: &StepContext) -> Result<Report, RunError> {
    let project = ctx.resolve(&config.path);
    let tool = detect(config.tool, config.command.as_deref(), &project)?;
    let output_dir = ctx.resolve(&config.output_dir);
    if tool == Tool::Pytest {
        sluice_sdk::fs::create_dir_all(&output_dir)?;
    }
    let junit_globs: Vec<String> = if !config.junit.is_empty() {
        config.junit.clone()
    } else {
        match tool {
            Tool::Nextest => vec![format!(
                "{}/target/nextest/{}/junit.xml",
                config.path, config.nextest_profile
            )],
            Tool::Maven => vec![format!(
                "{}/target/surefire-reports/TEST-*.xml",
                config.path
            )],
            _ => Vec::new(),
        }
    };
    if reads_junit(tool, config) && tool != Tool::Pytest && junit_globs.is_empty() {
        return Err(RunError::invalid_config(format!(
            "`{}` prints no machine-readable results: set `junit` to the JUnit XML files it writes \
             (e.g. jest-junit's `junit.xml`)",
            tool_name(tool)
        )));
    }
    // pytest writes one JUnit file per attempt, and each attempt reads only its own.
    let results = |attempt: u32| match tool {
        Tool::Pytest => Results::File(output_dir.join(format!("pytest-junit-{attempt}.xml"))),
        _ => Results::Globs(&junit_globs),
    };

    let first_results = results(1);
    let base = base_command(tool, config, first_results.junit_file())?;
    first_results.clear()?;
    let first = execute(config, &project, &base)?;
    // JUnit files already read, with their modification times: a retry that rewrites
    // nothing must not read an earlier attempt's file as its own.
    let mut read_before = Vec::new();
    let mut cases = collect(tool, config, ctx, &first_results, &first, &mut read_before)?;
    let mut total_duration = first.output.duration;
    let first_failed = count(&cases, TestStatus::Failed);
    let mut warnings = Vec::new();

    let plugin_retries = matches!(
        tool,
        Tool::Cargo | Tool::Go | Tool::Pytest | Tool::Npm | Tool::Command
    );
    let files = pytest::ProjectFiles {
        project: project.clone(),
        top: ctx.workdir().to_path_buf(),
    };
    if plugin_retries && !first.output.timed_out {
        for attempt in 2..=config.retries + 1 {
            let retry = attempt - 1;
            let failed: Vec<&TestCase> = cases
                .iter()
                .filter(|case| case.status == TestStatus::Failed)
                .collect();
            if failed.is_empty() {
                break;
            }
            let attempt_results = results(attempt);
            let base = base_command(tool, config, attempt_results.junit_file())?;
            let plan = match plan_retry(tool, &base, &failed, &files) {
                Ok(plan) => plan,
                Err(why) => {
                    warnings.push(format!(
                        "retry {retry} of {} could not run: {why}",
                        config.retries
                    ));
                    break;
                }
            };
            for left_out in &plan.left_out {
                let warning = format!("not retried: {left_out}");
                if !warnings.contains(&warning) {
                    warnings.push(warning);
                }
            }
            let targets: Vec<(String, String)> = if plan.targeted {
                failed
                    .iter()
                    .map(|case| (case.suite.clone(), case.name.clone()))
                    .collect()
            } else {
                Vec::new()
            };
            sluice_sdk::log::info(format!(
                "retry {retry} of {}: {} failed test(s){}",
                config.retries,
                failed.len(),
                if plan.targeted {
                    ""
                } else {
                    ", re-running the whole command (it cannot select single tests)"
                }
            ));
            attempt_results.clear()?;
            let again = execute(config, &project, &plan.command)?;
            total_duration += again.output.duration;
            let retried = collect(
                tool,
                config,
                ctx,
                &attempt_results,
                &again,
                &mut read_before,
            )?;
            let seen = retry::merge(&mut cases, &retried);
            if let Some(problem) =
                retry_problem(tool, &again, &attempt_results, &targets, &retried, seen)
            {
                warnings.push(format!("retry {retry} of {} {problem}", config.retries));
                if seen == 0 {
                    // The same command would fail the same way again.
                    break;
                }
            }
        }
    }
    for warning in &warnings {
        sluice_sdk::log::warn(warning.clone());
    }
    retry::settle(&mut cases);

    Ok(judge(
        config,
        tool,
        &base,
        &first,
        first_failed,
        cases,
        total_duration,
        warnings,
    ))
}

/// Where one attempt's results are read from.
enum Results<'a> {
    /// The JUnit file this attempt writes (pytest).
    File(PathBuf),
    /// JUnit files matching these globs (relative to the pipeline's folder), or the
    /// tool's own output when there are none.
    Globs(&'a [String]),
}

impl Results<'_> {
    /// Remove what an earlier run left in this attempt's own JUnit file, so that a
    /// file is there afterwards only if this attempt wrote it.
    fn clear(&self) -> Result<(), RunError> {
        match self {
            Results::File(file) => match std::fs::remove_file(file) {
                Ok(()) => Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(err) => Err(RunError::failed(format!(
                    "cannot remove the old JUnit file {}: {err}",
                    file.display()
                ))),
            },
            Results::Globs(_) => Ok(()),
        }
    }

    fn junit_file(&self) -> &Path {
        match self {
            Results::File(file) => file,
            Results::Globs(_) => Path::new(""),
        }
    }
}

/// What went wrong with a retry that ran, if anything: it reported none (or only some)
/// of the failed tests it targeted, or, untargeted, none of them.
fn retry_problem(
    tool: Tool,
    again: &Invocation,
    results: &Results<'_>,
    targets: &[(String, String)],
    retried: &[TestCase],
    seen: usize,
) -> Option<String> {
    let missing: Vec<String> = targets
        .iter()
        .filter(|(suite, name)| {
            !retried
                .iter()
                .any(|case| &case.suite == suite && &case.name == name)
        })
        .map(|(suite, name)| format!("{suite}::{name}"))
        .collect();
    if seen > 0 && missing.is_empty() {
        return None;
    }
    let mut why = again.output.describe_exit();
    if tool == Tool::Pytest
        && let Some(meaning) = again.output.exit_code.and_then(pytest::exit_meaning)
    {
        why.push_str(": ");
        why.push_str(meaning);
    }
    if let Results::File(file) = results
        && !fresh(file, again.started)
    {
        why.push_str(&format!("; it wrote no JUnit file {}", file.display()));
    }
    let last = last_lines(&again.output, 3);
    if !last.is_empty() {
        why.push_str(&format!("; it said: {last}"));
    }
    if seen == 0 {
        Some(format!(
            "could not run: `{}` reported none of the failed tests ({why})",
            tool_name(tool)
        ))
    } else {
        let shown: Vec<&str> = missing.iter().take(5).map(String::as_str).collect();
        Some(format!(
            "did not report {} of the failed tests it re-ran: {}{} ({why})",
            missing.len(),
            shown.join(", "),
            if missing.len() > 5 { ", ..." } else { "" }
        ))
    }
}

fn fresh(file: &Path, since: SystemTime) -> bool {
    std::fs::metadata(file)
        .and_then(|meta| meta.modified())
        .is_ok_and(|modified| modified >= since)
}

/// One finished invocation.
struct Invocation {
    output: Output,
    started: SystemTime,
}

fn execute(config: &Config, project: &Path, words: &[String]) -> Result<Invocation, RunError> {
    let mut command = Command::new(&words[0])
        .args(words[1..].iter().cloned())
        .envs(config.env.clone())
        .cwd(project);
    if let Some(timeout) = config.timeout {
        command = command.timeout(timeout.0);
    }
    sluice_sdk::log::info(format!("running `{}`", command.display()));
    // File times have coarse resolution on some systems: allow a little slack.
    let started = SystemTime::now() - Duration::from_secs(2);
    let output = command.run()?;
    if output.truncated {
        sluice_sdk::log::warn(
            "the test command printed more than the host keeps; results may be incomplete",
        );
    }
    Ok(Invocation { output, started })
}

fn collect(
    tool: Tool,
    config: &Config,
    ctx: &StepContext,
    results: &Results<'_>,
    run: &Invocation,
    read_before: &mut Vec<(PathBuf, Option<SystemTime>)>,
) -> Result<Vec<TestCase>, RunError> {
    let files = match results {
        Results::File(file) => {
            if fresh(file, run.started) {
                vec![file.clone()]
            } else {
                Vec::new()
            }
        }
        Results::Globs(globs) if reads_junit(tool, config) => {
            let mut files = Vec::new();
            for file in junit_files(ctx, globs, run.started)? {
                let modified = std::fs::metadata(&file)
                    .and_then(|meta| meta.modified())
                    .ok();
                let key = (file.clone(), modified);
                if read_before.contains(&key) {
                    sluice_sdk::log::debug(format!(
                        "ignoring {}: an earlier attempt's, unchanged",
                        file.display()
                    ));
                } else {
                    read_before.push(key);
                    files.push(file);
                }
            }
            files
        }
        Results::Globs(_) => {
            return Ok(match tool {
                Tool::Cargo => {
                    libtest::parse(&run.output.stdout_text(), &run.output.stderr_text()).cases
                }
                Tool::Go => gotest::parse(&run.output.stdout_text()),
                _ => Vec::new(),
            });
        }
    };
    let mut cases = Vec::new();
    for file in files {
        let text = sluice_sdk::fs::read_to_string(&file)?;
        let parsed = junit::parse(&text).map_err(|err| {
            RunError::failed(format!("cannot read JUnit file {}: {err}", file.display()))
        })?;
        cases.extend(parsed);
    }
    Ok(cases)
}

/// Files matching `globs` (relative to the pipeline's folder) written since `since`.
fn junit_files(
    ctx: &StepContext,
    globs: &[String],
    since: SystemTime,
) -> Result<Vec<PathBuf>, RunError> {
    let mut files = Vec::new();
    for pattern in globs {
        let paths = sluice_sdk::glob::expand(ctx.workdir(), pattern)
            .map_err(|err| RunError::invalid_config(format!("`junit`: {err}")))?;
        for path in paths.into_iter().filter(|path| path.is_file()) {
            let fresh = std::fs::metadata(&path)
                .and_then(|meta| meta.modified())
                .map(|modified| modified >= since)
                .unwrap_or(true);
            if fresh {
                files.push(path);
            } else {
                sluice_sdk::log::debug(format!(
                    "ignoring {}: written before this run",
                    path.display()
                ));
            }
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn count(cases: &[TestCase], status: TestStatus) -> usize {
    cases.iter().filter(|case| case.status == status).count()
}

fn tool_name(tool: Tool) -> &'static str {
    match tool {
        Tool::Auto => "auto",
        Tool::Cargo => "cargo test",
        Tool::Nextest => "cargo nextest",
        Tool::Go => "go test",
        Tool::Pytest => "pytest",
        Tool::Npm => "npm test",
        Tool::Maven => "mvn test",
        Tool::Command => "command",
    }
}

#[allow(clippy::too_many_arguments)]
fn judge(
    config: &Config,
    tool: Tool,
    base: &[String],
    first: &Invocation,
    first_failed: usize,
    cases: Vec<TestCase>,
    duration: Duration,
    warnings: Vec<String>,
) -> Report {
    let passed = count(&cases, TestStatus::Passed);
    let failed = count(&cases, TestStatus::Failed);
    let skipped = count(&cases, TestStatus::Skipped);
    let flaky = count(&cases, TestStatus::Flaky);
    let total = cases.len();
    let shown = Command::new(&base[0])
        .args(base[1..].iter().cloned())
        .display();
    let mut summary = format!(
        "{total} tests: {passed} passed, {failed} failed, {skipped} skipped, {flaky} flaky ({} in {})",
        tool_name(tool),
        HumanDuration(duration)
    );
    let mut status = if flaky > 0 && !config.fail_on_flaky {
        Status::Warned
    } else {
        Status::Passed
    };
    let mut problems: Vec<String> = Vec::new();

    if failed > 0 {
        status = Status::Failed;
        let names: Vec<String> = cases
            .iter()
            .filter(|case| case.status == TestStatus::Failed)
            .take(5)
            .map(|case| format!("{}::{}", case.suite, case.name))
            .collect();
        problems.push(format!(
            "failed: {}{}",
            names.join(", "),
            if failed > 5 { ", ..." } else { "" }
        ));
    }
    if flaky > 0 && config.fail_on_flaky {
        status = Status::Failed;
        problems.push(format!("{flaky} flaky test(s) and `fail-on-flaky` is set"));
    }
    let tail = tail_of(&first.output);
    if first.output.timed_out {
        status = Status::Failed;
        problems.push(format!("`{shown}` {}", first.output.describe_exit()));
    } else if !first.output.success() && first_failed == 0 {
        status = Status::Failed;
        problems.push(format!(
            "`{shown}` {} without a failing test (a build error?); last lines:\n{tail}",
            first.output.describe_exit()
        ));
    }
    if total < config.min_tests as usize {
        status = Status::Failed;
        let hint = if tool == Tool::Pytest {
            " (did pytest write its JUnit file? check `output-dir` is inside a write grant)"
        } else if reads_junit(tool, config) {
            " (no fresh JUnit file matched; check `junit`)"
        } else {
            ""
        };
        problems.push(format!(
            "{total} tests ran, fewer than `min-tests` = {}{hint}",
            config.min_tests
        ));
    }
    let retry_warnings = warnings.len();
    if retry_warnings > 0 {
        status = status.worse(Status::Warned);
    }
    problems.extend(warnings);
    if !problems.is_empty() {
        summary.push_str("; ");
        summary.push_str(&problems.join("; "));
    }

    let metric = |name: &str, value: usize| {
        Metric::new(name, value as f64, "count").tag("tool", tool_name(tool))
    };
    Report::new(status, summary)
        .with_metric(metric("tests.total", total))
        .with_metric(metric("tests.passed", passed))
        .with_metric(metric("tests.failed", failed))
        .with_metric(metric("tests.skipped", skipped))
        .with_metric(metric("tests.flaky", flaky))
        .with_metric(
            Metric::new("tests.duration", duration.as_secs_f64() * 1000.0, "ms")
                .tag("tool", tool_name(tool)),
        )
        .with_output("tests-total", total)
        .with_output("tests-failed", failed)
        .with_output("tests-flaky", flaky)
        .with_output("retry-warnings", retry_warnings)
        .with_test_cases(cases)
}

fn tail_of(output: &Output) -> String {
    tail_lines(output, TAIL_LINES).join("\n")
}

/// The last `count` lines of a program's stderr (its stdout when stderr is empty).
fn tail_lines(output: &Output, count: usize) -> Vec<String> {
    let text = if output.stderr.iter().any(|byte| !byte.is_ascii_whitespace()) {
        output.stderr_text()
    } else {
        output.stdout_text()
    };
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(count)..]
        .iter()
        .map(|line| (*line).to_owned())
        .collect()
}

/// The last non-blank lines of a program's output, on one line, for a warning.
fn last_lines(output: &Output, count: usize) -> String {
    tail_lines(output, count * 2)
        .iter()
        .map(|line| line.trim())
        .filter(|line| !line.is_empty())
        .rev()
        .take(count)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests;
