//! GitHub Actions output, used when `GITHUB_ACTIONS=true`:
//! - workflow-command annotations (`::error file=…,line=…::message`) for findings and
//!   failed tests, ranked most severe first and cut to GitHub's limits (10 of each
//!   level per step, 50 per job) with a notice saying how many were left out;
//! - a Markdown job summary appended to `$GITHUB_STEP_SUMMARY` (at most 1 MiB), with
//!   the run's deployments and rollbacks.

use std::fmt::Write as _;
use std::io::Write as _;

use super::deployments::DeploymentStory;
use super::junit::Counts;
use super::{relative_to, repository_root, severity_name, severity_rank};
use crate::events::Status;
use crate::executor::RunResult;
use crate::host::bindings::types::{Severity, TestStatus};

/// Annotations GitHub shows per level for one step.
pub const MAX_PER_LEVEL: usize = 10;
/// Annotations GitHub shows per job.
pub const MAX_PER_JOB: usize = 50;
/// Largest job summary GitHub accepts.
pub const MAX_SUMMARY_BYTES: usize = 1 << 20;
/// Longest annotation message we write.
const MAX_MESSAGE: usize = 4096;

/// Escape the message part of a workflow command.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a property value of a workflow command.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// One annotation before rendering.
#[derive(Debug, Clone)]
struct Annotation {
    level: &'static str,
    rank: u8,
    file: Option<String>,
    line: Option<u32>,
    end_line: Option<u32>,
    col: Option<u32>,
    end_col: Option<u32>,
    title: String,
    message: String,
}

impl Annotation {
    fn render(&self) -> String {
        let mut props = Vec::new();
        if let Some(f) = &self.file {
            props.push(format!("file={}", escape_property(f)));
        }
        for (k, v) in [
            ("line", self.line),
            ("endLine", self.end_line),
            ("col", self.col),
            ("endColumn", self.end_col),
        ] {
            if let Some(v) = v.filter(|v| *v > 0) {
                props.push(format!("{k}={v}"));
            }
        }
        props.push(format!("title={}", escape_property(&self.title)));
        let mut message = self.message.clone();
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str("… (truncated)");
        }
        format!(
            "::{} {}::{}",
            self.level,
            props.join(","),
            escape_data(&message)
        )
    }
}

fn level_of(s: Severity) -> &'static str {
    match s {
        Severity::High | Severity::Critical => "error",
        Severity::Medium => "warning",
        Severity::Info | Severity::Low => "notice",
    }
}

/// The workflow commands for a run: annotations within GitHub's limits, then a notice
/// for what was left out.
pub fn annotations(run: &RunResult) -> Vec<String> {
    let base = repository_root(&run.workdir).unwrap_or_else(|| run.workdir.clone());
    let mut all = Vec::new();
    for step in &run.steps {
        let Some(report) = &step.report else { continue };
        for t in report
            .test_cases
            .iter()
            .filter(|t| t.status == TestStatus::Failed)
        {
            all.push(Annotation {
                level: "error",
                rank: 0,
                file: None,
                line: None,
                end_line: None,
                col: None,
                end_col: None,
                title: format!("test failed: {} {}", t.suite, t.name)
                    .trim()
                    .to_string(),
                message: t
                    .message
                    .clone()
                    .unwrap_or_else(|| format!("{} failed", t.name)),
            });
        }
        for f in &report.findings {
            let loc = f.location.as_ref();
            all.push(Annotation {
                level: level_of(f.severity),
                rank: severity_rank(f.severity),
                file: loc.map(|l| relative_to(&base, &run.workdir, &l.path)),
                line: loc.and_then(|l| l.line),
                end_line: loc.and_then(|l| l.end_line),
                col: loc.and_then(|l| l.column),
                end_col: loc.and_then(|l| l.end_column),
                title: format!("{} ({})", f.rule_id, severity_name(f.severity)),
                message: f.message.clone(),
            });
        }
    }
    // Most severe first; failed tests rank with critical findings.
    all.sort_by_key(|a| a.rank);
    let mut shown = Vec::new();
    let mut per_level = std::collections::HashMap::<&str, usize>::new();
    let mut left_out = 0;
    for a in &all {
        let n = per_level.entry(a.level).or_default();
        if *n < MAX_PER_LEVEL && shown.len() < MAX_PER_JOB - 1 {
            *n += 1;
            shown.push(a.render());
        } else {
            left_out += 1;
        }
    }
    if left_out > 0 {
        shown.push(format!(
            "::notice title=sluice::{}",
            escape_data(&format!(
                "{left_out} more findings and failed tests are not annotated (GitHub shows at most {MAX_PER_LEVEL} per level); see results.sarif and junit.xml in the run's reports"
            ))
        ));
    }
    shown
}

/// Print the annotations to stdout, where the runner reads workflow commands; stop
/// quietly when stdout is gone.
pub fn print_annotations(run: &RunResult) {
    for line in annotations(run) {
        if !crate::console::out_line(&line) {
            break;
        }
    }
}

fn icon(s: Status) -> &'static str {
    match s {
        Status::Passed => "✅",
        Status::Failed => "❌",
        Status::Warned => "⚠️",
        Status::Skipped => "⏭️",
    }
}

fn cell(s: &str) -> String {
    s.lines().next().unwrap_or("").replace('|', "\\|")
}

/// The Markdown job summary of a run, at most [`MAX_SUMMARY_BYTES`].
pub fn job_summary(run: &RunResult, deployed: &[DeploymentStory]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## {} Pipeline `{}` {}\n",
        icon(run.status),
        run.pipeline,
        run.status.as_str()
    );
    if let Some(reason) = &run.reason {
        let _ = writeln!(md, "**{}**\n", cell(reason));
    }
    if let Some(a) = &run.artifact {
        let _ = writeln!(
            md,
            "Artifact: `{}` {} (`{}`)\n",
            a.name, a.version, a.digest
        );
    }
    let _ = writeln!(md, "| | stage | step | tests | findings | time | summary |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for s in &run.steps {
        let (tests, findings) = match &s.report {
            Some(r) => {
                let c = Counts::of(&r.test_cases);
                let tests = if c.tests == 0 {
                    String::new()
                } else {
                    let mut t = format!("{} passed", c.tests - c.failures - c.skipped - c.flaky);
                    for (n, what) in [
                        (c.failures, "failed"),
                        (c.flaky, "flaky"),
                        (c.skipped, "skipped"),
                    ] {
                        if n > 0 {
                            t.push_str(&format!(", {n} {what}"));
                        }
                    }
                    t
                };
                (
                    tests,
                    if r.findings.is_empty() {
                        String::new()
                    } else {
                        r.findings.len().to_string()
                    },
                )
            }
            None => (String::new(), String::new()),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.1}s | {} |",
            icon(s.status),
            s.stage,
            s.step,
            tests,
            findings,
            s.duration_ms as f64 / 1000.0,
            cell(&s.summary)
        );
    }
    let failed: Vec<String> = run
        .steps
        .iter()
        .filter_map(|s| s.report.as_ref().map(|r| (s, r)))
        .flat_map(|(s, r)| {
            r.test_cases
                .iter()
                .filter(|t| t.status == TestStatus::Failed)
                .map(move |t| format!("- `{}/{}` {} {}", s.stage, s.step, t.suite, t.name))
        })
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(md, "\n### Failed tests\n");
        for l in &failed {
            let _ = writeln!(md, "{l}");
        }
    }
    md.push_str(&super::deployments::render_markdown(deployed));
    if md.len() > MAX_SUMMARY_BYTES {
        let note = "\n\n_(summary truncated to GitHub's 1 MiB limit; see summary.json)_\n";
        let mut cut = MAX_SUMMARY_BYTES - note.len();
        while !md.is_char_boundary(cut) {
            cut -= 1;
        }
        md.truncate(cut);
        md.push_str(note);
    }
    md
}

/// Whether the runner runs as a step of a GitHub Actions job.
pub fn in_github_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// GitHub's workflow-command fence: between `::stop-commands::TOKEN` and `::TOKEN::`
/// the Actions runner acts on no command, whatever a plugin prints. The token is
/// random, so no plugin can end the fence early.
pub struct CommandFence {
    token: String,
}

impl CommandFence {
    /// Print the opening line (on stdout, where everything goes inside GitHub
    /// Actions); `None` outside GitHub Actions.
    pub fn open() -> Option<CommandFence> {
        if !in_github_actions() {
            return None;
        }
        let mut bytes = [0u8; 16];
        rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()).ok()?;
        let token = hex::encode(bytes);
        crate::console::out_line(&format!("::stop-commands::{token}"));
        Some(CommandFence { token })
    }

    /// Print the closing line; commands printed after it (the run's annotations) are
    /// acted on again.
    pub fn close(self) {
        crate::console::out_line(&format!("::{}::", self.token));
    }
}

/// Append the job summary to `file` (see [`open_job_summary`]).
pub fn append_job_summary(
    mut file: std::fs::File,
    run: &RunResult,
    deployed: &[DeploymentStory],
    policy: &str,
) -> std::io::Result<()> {
    file.write_all(job_summary(run, deployed).as_bytes())?;
    file.write_all(policy.as_bytes())
}

/// The "Policy" section of the job summary: every check that warns (with the date it
/// will be enforced), blocks promotion, is exempt (until when, approved by whom) or
/// had its exemption expire; empty when the pipeline follows no policy or every
/// check passes.
pub fn policy_section(
    policy: &crate::policy::Policy,
    notices: &[crate::policy::lifecycle::Notice],
) -> String {
    if notices.is_empty() {
        return String::new();
    }
    let mut md = String::new();
    let version = policy
        .version
        .as_deref()
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    let _ = writeln!(md, "\n### Policy `{}`{version}\n", policy.name);
    let _ = writeln!(md, "| check | standing | what it found |");
    let _ = writeln!(md, "|---|---|---|");
    let mut shown: Vec<&str> = Vec::new();
    for notice in notices {
        // One row per check: its phase already says when an exemption expired.
        if shown.contains(&notice.check.as_str()) {
            continue;
        }
        shown.push(&notice.check);
        let phase = policy
            .checks
            .iter()
            .find(|c| c.id == notice.check)
            .and_then(|c| notice.status.phase(c))
            .unwrap_or_default();
        let icon = match notice.status.standing {
            crate::policy::lifecycle::Standing::Exempt { .. } => "🛡️",
            crate::policy::lifecycle::Standing::Enforced { .. } => "⛔",
            _ => "⚠️",
        };
        let found = notice.status.violations_text();
        let _ = writeln!(
            md,
            "| `{}` | {icon} {} | {} |",
            notice.check,
            cell(&phase),
            cell(&found)
        );
    }
    md
}

/// Open `$GITHUB_STEP_SUMMARY` for appending, when it is set, without following a
/// link at its last component. Done before any step runs.
pub fn open_job_summary() -> std::io::Result<Option<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else {
        return Ok(None);
    };
    if std::env::var("GITHUB_ACTIONS").ok().as_deref() != Some("true") {
        return Ok(None);
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_section_lists_warnings_with_their_dates_and_exemptions_with_their_expiry() {
        use crate::policy::checks::testing::{builtin, date, policy};
        use crate::policy::checks::{CheckResult, Findings, Violation};
        use crate::policy::{Exemption, Pattern};
        let mut bake = builtin(
            "prod-bake",
            "production-bake",
            serde_json::json!({"duration": "1h", "positive": 3}),
        );
        bake.warn_from = Some(date("2026-12-01"));
        bake.enforce_from = Some(date("2027-01-15"));
        let mut window = builtin("prod-window", "production-window", serde_json::Value::Null);
        window.enforce_from = Some(date("2026-11-01"));
        let mut policy = policy(
            vec![bake, window],
            vec![Exemption {
                check: "prod-window".into(),
                pipeline: Pattern("shop".into()),
                reason: "the change calendar | lands in Q1".into(),
                approved_by: "dana@acme.example".into(),
                ticket: Some("REL-1234".into()),
                expires: Some(date("2027-03-01")),
                pos: crate::policy::checks::testing::pos(),
            }],
        );
        policy.version = Some("2026.11".into());
        let violated = |check: &str, message: &str| CheckResult {
            check: check.into(),
            violations: vec![Violation {
                message: message.into(),
                stage: Some("prod".into()),
                step: None,
                at: Some(crate::policy::checks::SourcePosShown {
                    file: "sluice.toml".into(),
                    line: 12,
                    column: 8,
                }),
            }],
            error: None,
        };
        let findings = Findings {
            pipeline: "shop".into(),
            results: vec![
                violated(
                    "prod-bake",
                    "stage `prod` bakes 10m with 1 positive data point; the policy asks for at least 1h and 3",
                ),
                violated("prod-window", "production stage `prod` has no window gate"),
            ],
        };
        let now = "2026-12-24T12:00:00Z".parse().unwrap();
        let statuses = crate::policy::lifecycle::status_at(&policy, &findings, now);
        let notices = crate::policy::lifecycle::notices(&policy, &statuses);
        insta::assert_snapshot!(policy_section(&policy, &notices));
        assert_eq!(policy_section(&policy, &[]), "");
    }

    #[test]
    fn escaping_follows_the_actions_toolkit() {
        assert_eq!(escape_data("50% done\r\nnext"), "50%25 done%0D%0Anext");
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
    }
}
