//! `builtin:lint`: run a linter with machine-readable output (or read the SARIF files a
//! tool wrote) and report its findings with rule, severity, message and exact location.
//!
//! ```toml
//! [[stage.step]]
//! id = "clippy"
//! uses = "builtin:lint"
//! with = { tool = "clippy", changed-since = "origin/main", fail-on = "medium" }
//! [stage.step.grants]
//! exec = ["cargo", "git"]
//! read = [".", "~/.cargo", "~/.rustup"]
//! write = ["target"]
//! env = ["HOME", "CARGO_HOME", "RUSTUP_HOME"]
//! ```
//!
//! Tools and the commands run by default (`command` replaces them, `args` extends them):
//! - `clippy`: `cargo clippy --message-format=json`;
//! - `eslint`: `npx eslint -f json .`;
//! - `ruff`: `ruff check --output-format json .`;
//! - `go-vet`: `go vet -json ./...`;
//! - `staticcheck`: `staticcheck -f json ./...`;
//! - `sarif`: nothing (or `command`); the files named by `sarif` are read.
//!
//! Severities: a tool's errors are `high`, its warnings `medium`, notes `low`. The step
//! fails when a finding reaches `fail-on` (default `high`: the tool's errors fail the
//! step, its warnings make it `warned`; `none` never fails), and when the tool itself
//! broke (non-zero exit with nothing parsed).
//!
//! The summary's first line counts the findings; when the step fails, the lines after
//! it list the findings, worst first and at most [`LISTED_FINDINGS`] of them, as
//! `file:line:col severity rule message`. The tool's raw output stays in the step log.
//! The report publishes `findings` (their count, which also marks the step as an
//! analysis that gets a SARIF run even when clean), `tool`, and with `changed-since`
//! `scope` (which gives its SARIF run a category of its own).

pub mod changed;
pub mod parsers;
pub mod paths;

use std::collections::BTreeMap;
use std::path::Path;

use sluice_sdk::{
    Capability, Command, Finding, HumanDuration, Metric, Output, Plugin, Report, RunError, Status,
    StepContext,
};

use crate::paths::Anchor;

/// How many trailing lines of a broken tool's output go into the summary.
const TAIL_LINES: usize = 20;

/// How many findings a failed step lists in its summary (the worst first).
pub const LISTED_FINDINGS: usize = 20;

/// The linter.
#[derive(serde::Deserialize, schemars::JsonSchema, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// `cargo clippy --message-format=json`.
    Clippy,
    /// `eslint -f json`.
    Eslint,
    /// `ruff check --output-format json`.
    Ruff,
    /// `go vet -json`.
    GoVet,
    /// `staticcheck -f json` (Debian names the program `go-staticcheck`: set `command`).
    Staticcheck,
    /// SARIF files written by any tool (see `sarif`).
    Sarif,
}

/// The lowest severity that fails the step.
#[derive(serde::Deserialize, schemars::JsonSchema, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "kebab-case")]
pub enum FailOn {
    /// Any finding fails.
    Info,
    /// `low` and above.
    Low,
    /// `medium` and above: the tool's warnings too.
    Medium,
    /// `high` and above: the tool's errors (the default).
    #[default]
    High,
    /// Only `critical`.
    Critical,
    /// Never fail on findings (only warn).
    None,
}

/// The step's `with` table.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// The linter whose output is read.
    pub tool: Tool,
    /// Program and arguments to run instead of the tool's default command; its output
    /// must be in the tool's JSON format (for `sarif`: a command that writes the files).
    pub command: Option<Vec<String>>,
    /// Extra arguments for the default command.
    #[serde(default)]
    pub args: Vec<String>,
    /// Project folder, relative to the pipeline's folder; the linter runs in it.
    #[serde(default = "default_path")]
    pub path: String,
    /// SARIF files to read (globs, relative to the pipeline's folder); required for
    /// `tool = "sarif"`, and read in addition to the tool's output otherwise.
    #[serde(default)]
    pub sarif: Vec<String>,
    /// The lowest severity that fails the step: info, low, medium, high (default),
    /// critical or none.
    #[serde(default)]
    pub fail_on: FailOn,
    /// Only report findings in files changed against this git ref (e.g.
    /// `origin/main`), plus uncommitted and untracked files. Needs `git` in `exec`.
    pub changed_since: Option<String>,
    /// Kill the linter after this long, e.g. `10m`.
    pub timeout: Option<HumanDuration>,
    /// Extra environment variables for the linter.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

fn default_path() -> String {
    ".".into()
}

/// The plugin.
pub struct Lint;

impl Plugin for Lint {
    type Config = Config;
    const NAME: &'static str = "lint";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SUMMARY: &'static str =
        "Runs a linter with machine-readable output (or reads SARIF) and reports its findings.";

    fn capabilities() -> Vec<Capability> {
        vec![Capability::Exec, Capability::ReadFiles]
    }

    fn run(config: Config, ctx: &StepContext) -> Result<Report, RunError> {
        run(&config, ctx)
    }
}

sluice_sdk::export_plugin!(Lint);

/// The command line for `tool`, or `None` when nothing is to be run.
pub fn command_for(tool: Tool, config: &Config) -> Result<Option<Vec<String>>, RunError> {
    if let Some(command) = &config.command {
        if command
            .first()
            .is_none_or(|program| program.trim().is_empty())
        {
            return Err(RunError::invalid_config(
                "`command` is empty: give the program and its arguments",
            ));
        }
        return Ok(Some(command.clone()));
    }
    let words = |list: &[&str]| {
        list.iter()
            .map(|word| (*word).to_owned())
            .collect::<Vec<_>>()
    };
    let (mut command, default_target) = match tool {
        Tool::Clippy => (words(&["cargo", "clippy", "--message-format=json"]), None),
        Tool::Eslint => (words(&["npx", "eslint", "-f", "json"]), Some(".")),
        Tool::Ruff => (
            words(&["ruff", "check", "--output-format", "json"]),
            Some("."),
        ),
        Tool::GoVet => (words(&["go", "vet", "-json"]), Some("./...")),
        Tool::Staticcheck => (words(&["staticcheck", "-f", "json"]), Some("./...")),
        Tool::Sarif => return Ok(None),
    };
    command.extend(config.args.iter().cloned());
    // Add the default target unless the arguments name one.
    if let Some(target) = default_target
        && !config.args.iter().any(|arg| !arg.starts_with('-'))
    {
        command.push(target.to_owned());
    }
    Ok(Some(command))
}

fn threshold(fail_on: FailOn) -> Option<u8> {
    Some(match fail_on {
        FailOn::Info => 0,
        FailOn::Low => 1,
        FailOn::Medium => 2,
        FailOn::High => 3,
        FailOn::Critical => 4,
        FailOn::None => return None,
    })
}

fn tool_name(tool: Tool) -> &'static str {
    match tool {
        Tool::Clippy => "clippy",
        Tool::Eslint => "eslint",
        Tool::Ruff => "ruff",
        Tool::GoVet => "go vet",
        Tool::Staticcheck => "staticcheck",
        Tool::Sarif => "sarif",
    }
}

/// Parse a tool's output (`stdout`, `stderr`) into findings.
pub fn parse_output(
    tool: Tool,
    stdout: &str,
    stderr: &str,
    anchor: &Anchor,
) -> Result<Vec<Finding>, String> {
    match tool {
        Tool::Clippy => Ok(parsers::clippy(stdout, anchor)),
        Tool::Eslint => parsers::eslint(stdout, anchor),
        Tool::Ruff => parsers::ruff(stdout, anchor),
        // go vet prints its JSON on stderr (and nothing when there is nothing to say).
        Tool::GoVet => {
            let text = if stderr.contains('{') { stderr } else { stdout };
            if text.contains('{') {
                parsers::go_vet(text, anchor)
            } else {
                Ok(Vec::new())
            }
        }
        Tool::Staticcheck => parsers::staticcheck(stdout, anchor),
        Tool::Sarif => parsers::sarif(stdout, anchor),
    }
}

fn run(config: &Config, ctx: &StepContext) -> Result<Report, RunError> {
    let project = ctx.resolve(&config.path);
    let anchor = Anchor::new(ctx.workdir(), &project);
    if config.tool == Tool::Sarif && config.sarif.is_empty() {
        return Err(RunError::invalid_config(
            "`tool = \"sarif\"` needs `sarif`: the SARIF files to read",
        ));
    }

    let mut findings = Vec::new();
    let mut problems = Vec::new();
    let mut ran = None;
    if let Some(words) = command_for(config.tool, config)? {
        let output = execute(config, &project, &words)?;
        let shown = Command::new(&words[0])
            .args(words[1..].iter().cloned())
            .display();
        if config.tool != Tool::Sarif || config.command.is_none() {
            match parse_output(
                config.tool,
                &output.stdout_text(),
                &output.stderr_text(),
                &anchor,
            ) {
                Ok(parsed) => findings.extend(parsed),
                Err(err) => problems.push(format!(
                    "`{shown}` {}: {err}; last lines:\n{}",
                    output.describe_exit(),
                    tail_of(&output)
                )),
            }
        }
        if output.timed_out {
            problems.push(format!("`{shown}` {}", output.describe_exit()));
        } else if !output.success() && findings.is_empty() && problems.is_empty() {
            problems.push(format!(
                "`{shown}` {} without reporting a finding (the tool broke?); last lines:\n{}",
                output.describe_exit(),
                tail_of(&output)
            ));
        }
        ran = Some(shown);
    }
    for file in sarif_files(ctx, &config.sarif)? {
        let text = sluice_sdk::fs::read_to_string(&file)?;
        let parsed = parsers::sarif(&text, &anchor)
            .map_err(|err| RunError::failed(format!("cannot read {}: {err}", file.display())))?;
        findings.extend(parsed);
    }

    let mut dropped = 0;
    if let Some(base) = &config.changed_since {
        let changed = changed_files(&project, ctx.workdir(), base)?;
        dropped = changed::retain_changed(&mut findings, &changed);
    }
    Ok(judge(config, ran, findings, dropped, problems))
}

fn execute(config: &Config, project: &Path, words: &[String]) -> Result<Output, RunError> {
    let mut command = Command::new(&words[0])
        .args(words[1..].iter().cloned())
        .envs(config.env.clone())
        .cwd(project);
    if let Some(timeout) = config.timeout {
        command = command.timeout(timeout.0);
    }
    sluice_sdk::log::info(format!("running `{}`", command.display()));
    let output = command.run()?;
    if output.truncated {
        sluice_sdk::log::warn(
            "the linter printed more than the host keeps; findings may be missing",
        );
    }
    Ok(output)
}

fn git(project: &Path, args: &[&str]) -> Result<Output, RunError> {
    // The sandbox usually hides ~/.gitconfig, which git treats as fatal; the listings
    // need none of it. `core.quotepath=off` keeps non-ASCII file names unquoted.
    Command::new("git")
        .args(["-c", "core.quotepath=off"])
        .args(args.iter().copied())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .cwd(project)
        .run()
        .map_err(|err| match err {
        sluice_sdk::ProcessError::Denied(message) => RunError::denied(format!(
            "`changed-since` runs git, which the step may not start ({message}); add \"git\" to `exec`"
        )),
        other => RunError::from(other),
    })
}

fn changed_files(
    project: &Path,
    workdir: &Path,
    base: &str,
) -> Result<std::collections::BTreeSet<String>, RunError> {
    let toplevel = git(project, &["rev-parse", "--show-toplevel"])?;
    if !toplevel.success() {
        return Err(RunError::failed(format!(
            "`changed-since` needs a git checkout, but `git rev-parse --show-toplevel` {}: {}",
            toplevel.describe_exit(),
            toplevel.stderr_text().trim()
        )));
    }
    let toplevel_path = toplevel.stdout_text().trim().to_owned();
    let mut listings = Vec::new();
    let diff = git(project, &["diff", "--name-only", "--merge-base", base])?;
    if diff.success() {
        listings.push(diff.stdout_text());
    } else {
        // Git before 2.30 has no `--merge-base`: committed changes since the merge base,
        // then uncommitted ones.
        let range = format!("{base}...HEAD");
        let committed = git(project, &["diff", "--name-only", &range])?;
        if !committed.success() {
            return Err(RunError::failed(format!(
                "cannot list the files changed since `{base}`: `git diff --name-only {range}` {}: {} \
                 (is the ref fetched? CI checkouts are often shallow: fetch it or set fetch-depth: 0)",
                committed.describe_exit(),
                committed.stderr_text().trim()
            )));
        }
        listings.push(committed.stdout_text());
        listings.push(git(project, &["diff", "--name-only", "HEAD"])?.stdout_text());
    }
    let untracked = git(
        project,
        &["ls-files", "--others", "--exclude-standard", "--full-name"],
    )?;
    if untracked.success() {
        listings.push(untracked.stdout_text());
    }
    let refs: Vec<&str> = listings.iter().map(String::as_str).collect();
    Ok(changed::changed_files(
        Path::new(&toplevel_path),
        workdir,
        &refs,
    ))
}

fn sarif_files(ctx: &StepContext, globs: &[String]) -> Result<Vec<std::path::PathBuf>, RunError> {
    let mut found = Vec::new();
    for pattern in globs {
        let matches = sluice_sdk::glob::expand(ctx.workdir(), pattern)
            .map_err(|err| RunError::invalid_config(format!("`sarif`: {err}")))?;
        let before = found.len();
        found.extend(matches.into_iter().filter(|path| path.is_file()));
        if found.len() == before {
            sluice_sdk::log::warn(format!("`sarif` pattern `{pattern}` matched no file"));
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

/// Decide the step's status from the findings.
pub fn judge(
    config: &Config,
    ran: Option<String>,
    mut findings: Vec<Finding>,
    dropped: usize,
    problems: Vec<String>,
) -> Report {
    // Worst first, then in file order, whatever order the tool printed them in.
    findings.sort_by(|a, b| {
        b.severity
            .rank()
            .cmp(&a.severity.rank())
            .then_with(|| position(a).cmp(&position(b)))
    });
    let mut by_severity = [0usize; 5];
    for finding in &findings {
        by_severity[finding.severity.rank() as usize] += 1;
    }
    let failing = threshold(config.fail_on)
        .map(|limit| {
            findings
                .iter()
                .filter(|finding| finding.severity.rank() >= limit)
                .count()
        })
        .unwrap_or(0);
    let mut status = if failing > 0 {
        Status::Failed
    } else if findings.is_empty() {
        Status::Passed
    } else {
        Status::Warned
    };
    let names = ["info", "low", "medium", "high", "critical"];
    let counts: Vec<String> = (0..5)
        .rev()
        .filter(|&index| by_severity[index] > 0)
        .map(|index| format!("{} {}", by_severity[index], names[index]))
        .collect();
    let mut summary = match findings.len() {
        0 => format!("no findings from {}", tool_name(config.tool)),
        count => format!(
            "{count} finding(s) from {} ({})",
            tool_name(config.tool),
            counts.join(", ")
        ),
    };
    if failing > 0 {
        summary.push_str(&format!("; {failing} at or above `fail-on`"));
    }
    if let Some(base) = &config.changed_since {
        summary.push_str(&format!(
            "; {dropped} more in files unchanged since {base} left out"
        ));
    }
    if !problems.is_empty() {
        status = Status::Failed;
        summary.push_str("; ");
        summary.push_str(&problems.join("; "));
    }
    if status == Status::Failed && !findings.is_empty() {
        summary.push('\n');
        summary.push_str(&listing(&findings, LISTED_FINDINGS));
    }
    let mut report = Report::new(status, summary)
        .with_metric(
            Metric::new("lint.findings", findings.len() as f64, "count")
                .tag("tool", tool_name(config.tool)),
        )
        .with_output("findings", findings.len())
        .with_output("failing-findings", failing)
        .with_output("tool", tool_name(config.tool));
    for (index, count) in by_severity.iter().enumerate() {
        report = report.with_metric(
            Metric::new("lint.findings.by-severity", *count as f64, "count")
                .tag("tool", tool_name(config.tool))
                .tag("severity", names[index]),
        );
    }
    if let Some(ran) = ran {
        report = report.with_output("command", ran);
    }
    if let Some(base) = &config.changed_since {
        // Only part of the code was judged: its SARIF run must not close the alerts of
        // full runs (see runner/src/reports/sarif.rs).
        report = report.with_output("scope", format!("files changed since {base}"));
    }
    report.with_findings(findings)
}

/// Where a finding is, for sorting: path, line, column (findings without one first).
fn position(finding: &Finding) -> (&str, u32, u32) {
    finding.location.as_ref().map_or(("", 0, 0), |location| {
        (
            location.path.as_str(),
            location.line.unwrap_or(0),
            location.column.unwrap_or(0),
        )
    })
}

/// The first `limit` findings, worst first, one a line, and how many more there are
/// (see [`Finding::listing`]).
pub fn listing(findings: &[Finding], limit: usize) -> String {
    Finding::listing(findings, limit)
}

fn tail_of(output: &Output) -> String {
    let text = if output.stderr.iter().any(|byte| !byte.is_ascii_whitespace()) {
        output.stderr_text()
    } else {
        output.stdout_text()
    };
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

#[cfg(test)]
mod tests;
