//! The stable text output of Rust's built-in test harness (libtest) as `cargo test`
//! prints it: per test binary a `running N tests` block with `test NAME ... ok`,
//! `... FAILED` and `... ignored[, reason]` lines, a `failures:` section with each
//! failed test's captured output under `---- NAME stdout ----`, and a `test result:`
//! line. Cargo names the binaries on stderr (`Running unittests src/lib.rs
//! (target/debug/deps/demo-8348ca7a80742723)`, `Doc-tests demo`), in the same order;
//! they become the suites.
//!
//! Stable libtest prints no per-test durations, so cases carry none; the `finished in`
//! time of each binary is summed into [`Run::duration`].

use std::collections::HashMap;
use std::time::Duration;

use sluice_sdk::{TestCase, TestStatus};

/// What one `cargo test` invocation reported.
#[derive(Debug, Default)]
pub struct Run {
    pub cases: Vec<TestCase>,
    /// Sum of the `finished in` times of the test binaries.
    pub duration: Duration,
    /// Number of `test result:` lines seen (test binaries that ran to the end).
    pub binaries: usize,
}

/// Parse `cargo test`'s standard output, naming suites from its standard error.
pub fn parse(stdout: &str, stderr: &str) -> Run {
    let suites = suite_names(stderr);
    let mut run = Run::default();
    let mut block = 0usize;
    let mut block_start = 0usize;
    let mut captured: HashMap<String, String> = HashMap::new();
    let mut capturing: Option<String> = None;

    let finish_block = |run: &mut Run, captured: &mut HashMap<String, String>, start: usize| {
        for case in &mut run.cases[start..] {
            if let Some(output) = captured.remove(&case.name) {
                let output = output.trim_matches('\n').to_owned();
                if case.status == TestStatus::Failed {
                    case.message = panic_message(&output).or(case.message.take());
                }
                if !output.is_empty() {
                    case.output = Some(output);
                }
            }
        }
        captured.clear();
    };

    for line in stdout.lines() {
        if is_running_line(line) {
            finish_block(&mut run, &mut captured, block_start);
            block += 1;
            block_start = run.cases.len();
            capturing = None;
            continue;
        }
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|rest| rest.strip_suffix(" stdout ----"))
        {
            captured.insert(name.to_owned(), String::new());
            capturing = Some(name.to_owned());
            continue;
        }
        if line == "failures:" {
            capturing = None;
            continue;
        }
        if let Some(summary) = line.strip_prefix("test result: ") {
            capturing = None;
            run.binaries += 1;
            if let Some(duration) = finished_in(summary) {
                run.duration += duration;
            }
            continue;
        }
        if let Some(name) = &capturing {
            let text = captured.entry(name.clone()).or_default();
            text.push_str(line);
            text.push('\n');
            continue;
        }
        if let Some((name, result)) = test_line(line) {
            let suite = suites
                .get(block.saturating_sub(1))
                .cloned()
                .unwrap_or_else(|| format!("test binary {block}"));
            let case = match result {
                "ok" => TestCase::passed(suite, name),
                "FAILED" => TestCase::failed(suite, name).with_message("failed"),
                ignored if ignored.starts_with("ignored") => {
                    let reason = ignored
                        .strip_prefix("ignored, ")
                        .unwrap_or("ignored")
                        .to_owned();
                    TestCase::skipped(suite, name).with_message(reason)
                }
                _ => continue,
            };
            run.cases.push(case);
        }
    }
    finish_block(&mut run, &mut captured, block_start);
    run
}

fn is_running_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("running ") else {
        return false;
    };
    let mut words = rest.split(' ');
    words.next().is_some_and(|n| n.parse::<u64>().is_ok())
        && matches!(words.next(), Some("test" | "tests"))
        && words.next().is_none()
}

/// `test NAME ... RESULT`, also `test NAME - should panic ... ok`; benchmarks and
/// anything else are left out.
fn test_line(line: &str) -> Option<(String, &str)> {
    let rest = line.strip_prefix("test ")?;
    let (name, result) = rest.rsplit_once(" ... ")?;
    let name = name.strip_suffix(" - should panic").unwrap_or(name);
    Some((name.to_owned(), result.trim()))
}

fn finished_in(summary: &str) -> Option<Duration> {
    let secs = summary
        .rsplit_once("finished in ")?
        .1
        .trim()
        .strip_suffix('s')?;
    Duration::try_from_secs_f64(secs.parse().ok()?).ok()
}

/// Suite names from cargo's stderr: `demo (src/lib.rs)`, `integration
/// (tests/integration.rs)`, `demo (doc-tests)`.
pub fn suite_names(stderr: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in stderr.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Running ") {
            // `unittests src/lib.rs (target/debug/deps/demo-8348ca7a80742723)` or
            // `tests/integration.rs (target/debug/deps/integration-95c18cfe0a4e431d)`.
            let rest = rest.strip_prefix("unittests ").unwrap_or(rest);
            let (source, binary) = match rest.rsplit_once(" (") {
                Some((source, binary)) => (source, binary.trim_end_matches(')')),
                None => (rest, rest),
            };
            let file = binary.rsplit('/').next().unwrap_or(binary);
            let crate_name = match file.rsplit_once('-') {
                Some((stem, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => stem,
                _ => file,
            };
            names.push(format!("{crate_name} ({source})"));
        } else if let Some(crate_name) = line.strip_prefix("Doc-tests ") {
            names.push(format!("{crate_name} (doc-tests)"));
        }
    }
    names
}

/// From captured output, the panic: `panicked at src/lib.rs:23:9: assertion failed...`
/// with the lines of its message, up to the backtrace.
fn panic_message(output: &str) -> Option<String> {
    let mut lines = output.lines();
    while let Some(line) = lines.next() {
        if let Some(at) = line.find("panicked at ") {
            let mut message = line[at..].trim_end_matches(':').to_owned();
            for more in lines.by_ref() {
                if more.starts_with("stack backtrace:")
                    || more.starts_with("note: ")
                    || more.is_empty()
                {
                    break;
                }
                message.push('\n');
                message.push_str(more);
            }
            return Some(message);
        }
    }
    None
}
