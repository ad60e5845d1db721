//! `builtin:command`: run one granted native program through the host's `process`
//! import and pass when it exits with a success code.
//!
//! ```toml
//! [[stage.step]]
//! id = "compile"
//! uses = "builtin:command"
//! with = { program = "cargo", args = ["build", "--release"], timeout = "10m" }
//! [stage.step.grants]
//! exec = ["cargo"]
//! ```
//!
//! Later steps can read its outputs `exit-code` and `stdout` (trimmed, at most 4 KiB).

use std::collections::BTreeMap;

use sluice_sdk::{
    Capability, Command, HumanDuration, Metric, Output, Plugin, Report, RunError, StepContext,
};

/// How much of the program's standard output is published as the `stdout` output.
const STDOUT_OUTPUT_LIMIT: usize = 4096;
/// How many trailing lines of a failed program's output go into the summary.
const FAILURE_TAIL_LINES: usize = 20;

/// The step's `with` table.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(example = serde_json::json!({"program": "echo", "args": ["hello"]}))]
struct Config {
    /// The program: a bare name looked up on PATH, or an absolute path. It must be listed
    /// in the step's `exec` grant.
    program: String,
    /// Arguments, passed as they are (no shell is involved).
    #[serde(default)]
    args: Vec<String>,
    /// Extra environment variables for the program. It also gets PATH and the step's
    /// granted variables.
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Working directory; defaults to the pipeline's folder. Must be inside a grant.
    cwd: Option<String>,
    /// Text written to the program's standard input (closed when absent).
    stdin: Option<String>,
    /// Kill the program after this long, e.g. `30s` or `5m`; never later than the step's
    /// own timeout.
    timeout: Option<HumanDuration>,
    /// Exit codes that count as success.
    #[serde(default = "default_success_codes")]
    success_codes: Vec<i32>,
}

fn default_success_codes() -> Vec<i32> {
    vec![0]
}

struct CommandPlugin;

impl Plugin for CommandPlugin {
    type Config = Config;
    const NAME: &'static str = "command";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SUMMARY: &'static str =
        "Runs one granted program and passes when it exits with a success code.";

    fn capabilities() -> Vec<Capability> {
        vec![Capability::Exec]
    }

    fn run(config: Config, _ctx: &StepContext) -> Result<Report, RunError> {
        if config.program.trim().is_empty() {
            return Err(RunError::invalid_config(
                "`program` is empty: name the program to run",
            ));
        }
        if config.success_codes.is_empty() {
            return Err(RunError::invalid_config(
                "`success-codes` is empty, so no exit could ever pass",
            ));
        }

        let mut command = Command::new(&config.program)
            .args(config.args)
            .envs(config.env);
        if let Some(cwd) = &config.cwd {
            command = command.cwd(cwd);
        }
        if let Some(stdin) = config.stdin {
            command = command.stdin(stdin);
        }
        if let Some(timeout) = config.timeout {
            command = command.timeout(timeout.0);
        }

        let output = command.run()?;
        if output.truncated {
            sluice_sdk::log::warn(
                "the program printed more than the host keeps; its captured output was cut",
            );
        }
        Ok(report(&command, &output, &config.success_codes))
    }
}

/// Judge the finished program and describe it.
fn report(command: &Command, output: &Output, success_codes: &[i32]) -> Report {
    let shown = command.display();
    let duration = HumanDuration(output.duration);
    let passed = !output.timed_out
        && output
            .exit_code
            .is_some_and(|code| success_codes.contains(&code));
    let ending = if output.timed_out {
        output.describe_exit()
    } else {
        format!("{} in {duration}", output.describe_exit())
    };

    let mut report = if passed {
        Report::passed(format!("`{shown}` {ending}"))
    } else {
        let mut summary = format!("`{shown}` {ending}");
        if output.exit_code.is_some() && success_codes != [0] {
            summary.push_str(&format!(" (success codes: {success_codes:?})"));
        }
        // Tools disagree on where errors go; show whichever stream has something.
        let (stream, text) = if output.stderr.iter().any(|byte| !byte.is_ascii_whitespace()) {
            ("stderr", output.stderr_text())
        } else {
            ("stdout", output.stdout_text())
        };
        let tail = last_lines(&text, FAILURE_TAIL_LINES);
        if !tail.is_empty() {
            summary.push_str(&format!("; last lines of {stream}:\n{tail}"));
        }
        Report::failed(summary)
    };

    if let Some(code) = output.exit_code {
        report = report.with_output("exit-code", code);
    }
    if let Some(signal) = output.signal {
        report = report.with_output("signal", signal);
    }
    report
        .with_output(
            "stdout",
            capped(output.stdout_text().trim(), STDOUT_OUTPUT_LIMIT),
        )
        .with_metric(
            Metric::new(
                "command.duration",
                output.duration.as_secs_f64() * 1000.0,
                "ms",
            )
            .tag("program", command.program()),
        )
}

/// The last `count` non-empty-trailing lines of `text`.
fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// At most `limit` bytes of `text`, cut at a character boundary.
fn capped(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

sluice_sdk::export_plugin!(CommandPlugin);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sluice_sdk::Status;

    use super::*;

    fn output(exit_code: Option<i32>, stderr: &str) -> Output {
        Output {
            exit_code,
            signal: if exit_code.is_none() { Some(9) } else { None },
            timed_out: false,
            stdout: b"  version 1.0\n".to_vec(),
            stderr: stderr.as_bytes().to_vec(),
            truncated: false,
            duration: Duration::from_millis(1200),
        }
    }

    #[test]
    fn passes_on_a_success_code() {
        let command = Command::new("cargo").args(["build", "--release"]);
        let report = report(&command, &output(Some(0), ""), &[0]);
        assert_eq!(report.status, Status::Passed);
        assert_eq!(report.summary, "`cargo build --release` exited 0 in 1.2s");
        assert_eq!(report.output("exit-code"), Some("0"));
        assert_eq!(report.output("stdout"), Some("version 1.0"));
    }

    #[test]
    fn fails_with_the_tail_of_stderr() {
        let stderr: String = (1..=30).map(|n| format!("line {n}\n")).collect();
        let report = report(&Command::new("make"), &output(Some(2), &stderr), &[0]);
        assert_eq!(report.status, Status::Failed);
        assert!(
            report
                .summary
                .starts_with("`make` exited 2 in 1.2s; last lines of stderr:\nline 11\n"),
            "{}",
            report.summary
        );
        assert!(report.summary.ends_with("line 30"));
        let killed = super::report(&Command::new("make"), &output(None, ""), &[0]);
        assert!(
            killed
                .summary
                .starts_with("`make` was killed by signal 9 (SIGKILL)"),
            "{}",
            killed.summary
        );
        assert_eq!(killed.output("exit-code"), None);
    }

    #[test]
    fn other_success_codes_count() {
        assert_eq!(
            report(&Command::new("grep"), &output(Some(1), ""), &[0, 1]).status,
            Status::Passed
        );
    }

    #[test]
    fn caps_at_a_character_boundary() {
        assert_eq!(capped("héllo", 2), "h");
        assert_eq!(capped("abc", 10), "abc");
    }

    #[test]
    fn config_rejects_unknown_fields_and_bad_durations() {
        let input = |config: &str| sluice_sdk::StepInput {
            run_id: "r".into(),
            pipeline: "p".into(),
            stage: "s".into(),
            step: "t".into(),
            config: config.into(),
            artifact: None,
            outputs: Vec::new(),
            workdir: "/w".into(),
            attempt: 1,
            plugins: vec![],
        };
        let err =
            sluice_sdk::run_plugin::<CommandPlugin>(input(r#"{"program":"x","timeout":"soon"}"#))
                .unwrap_err();
        assert!(
            err.message()
                .contains("at `timeout`: invalid duration `soon`"),
            "{err:?}"
        );
        let err =
            sluice_sdk::run_plugin::<CommandPlugin>(input(r#"{"program":"x","sucess-codes":[1]}"#))
                .unwrap_err();
        assert!(
            err.message().contains("unknown field `sucess-codes`"),
            "{err:?}"
        );
        let schema = sluice_sdk::describe_plugin::<CommandPlugin>().config_schema;
        assert!(schema.contains(r#""success-codes""#), "{schema}");
    }
}
