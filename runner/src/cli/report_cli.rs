//! `sluice policy report DIR...`: the policy standing and automation level of every
//! pipeline under the folders given, for the people who lead the teams that own them,
//! printed as a table for a terminal, one JSON document, or a Markdown page. The
//! report itself is [`crate::policy::report`]; this file reads the arguments and
//! prints.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use super::{ExpectedError, exit};
use crate::console;
use crate::host::cache::CacheRoot;
use crate::policy::Policy;
use crate::policy::report::{
    Automation, CheckRow, ExemptionRow, ExemptionState, PipelineReport, Report, StandingName,
};
use crate::render::shown;

/// How `sluice policy report` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReportFormat {
    /// A table for a terminal, then the details of each pipeline.
    Table,
    /// One JSON document (`report-version` 1, see docs/policy/report.md).
    Json,
    /// A Markdown page (for a wiki or a GitHub job summary).
    Markdown,
}

/// `sluice policy report`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Each pipeline is a row: the checks it fails now, those that warn (with the earliest \
date one will be enforced), its exemptions (with the earliest expiry) and its \
automation score and level; then the details. A pipeline file that does not load is \
a row with its error.

Exit status: 0 when the report is printed, whatever the pipelines' standing (it is a \
report, not a gate: use `sluice validate` or `sluice policy check` to stop a build); \
2 for a usage error (a folder that does not exist, a --policy that cannot be read).")]
pub(super) struct ReportArgs {
    /// Folders searched for pipeline files (`sluice.toml` and `*.toml` files with a
    /// `[pipeline]` table), recursively; `target/`, `node_modules/` and hidden
    /// folders are skipped.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// The policy to report against, instead of each pipeline's own.
    #[arg(long, value_name = "FILE|oci://...")]
    pub policy: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
}

/// `sluice policy report`.
pub(super) async fn report(
    args: ReportArgs,
    cache_root: Option<CacheRoot>,
) -> Result<u8, ExpectedError> {
    let now = crate::clock::from_env()
        .map_err(ExpectedError::Config)?
        .now();
    let policy = match &args.policy {
        Some(text) => Some(load_policy(text).await?),
        None => None,
    };
    // Custom checks are plugins; built-in checks and the automation score need none.
    let host = super::start_host(1, cache_root)?;
    let report = crate::policy::report::report(&args.dirs, policy, now, Some(&host))
        .await
        .map_err(|e| ExpectedError::Config(e.to_string()))?;
    let text = match args.format {
        ReportFormat::Table => table(&report),
        ReportFormat::Json => super::json_text(&report),
        ReportFormat::Markdown => markdown(&report),
    };
    console::out(&text);
    if !text.ends_with('\n') {
        console::out("\n");
    }
    Ok(exit::OK)
}

/// `--policy FILE|oci://...`, read and checked; a problem is a usage error.
async fn load_policy(text: &str) -> Result<Arc<Policy>, ExpectedError> {
    use crate::policy::PolicyError;
    crate::policy::load_given(text)
        .await
        .map(Arc::new)
        .map_err(|e| match e {
            PolicyError::BadReference { reason, .. } => {
                ExpectedError::Config(format!("--policy {text}: {reason}"))
            }
            e => ExpectedError::Config(format!("--policy: {e}")),
        })
}

// ---- the cells every format shares ----------------------------------------------------

fn pipeline_cell(r: &PipelineReport) -> String {
    r.pipeline.clone().unwrap_or_else(|| "-".into())
}

fn policy_cell(r: &PipelineReport) -> String {
    match (&r.policy, &r.policy_error) {
        (Some(p), _) => p.label(),
        (None, Some(_)) => "unreadable".into(),
        (None, None) => "no policy".into(),
    }
}

fn failing_cell(r: &PipelineReport) -> String {
    if r.policy.is_none() {
        return "-".into();
    }
    r.counts.failing.to_string()
}

fn warnings_cell(r: &PipelineReport) -> String {
    if r.policy.is_none() {
        return "-".into();
    }
    match (r.counts.warnings, r.counts.earliest_enforcement) {
        (0, _) => "0".into(),
        (n, Some(d)) => format!("{n} (enforced from {d})"),
        (n, None) => n.to_string(),
    }
}

fn exemptions_cell(r: &PipelineReport) -> String {
    if r.policy.is_none() {
        return "-".into();
    }
    match (r.counts.exemptions, r.counts.earliest_expiry) {
        (0, _) => "0".into(),
        (n, Some(d)) => format!("{n} (expires {d})"),
        (n, None) => format!("{n} (permanent)"),
    }
}

fn automation_cell(a: Option<&Automation>) -> String {
    a.map_or_else(|| "-".into(), |a| format!("{} {}", a.score, a.level.name()))
}

/// When a check matters, in words: since when it blocks, from when it will.
fn check_when(c: &CheckRow) -> String {
    let blocks = match c.blocks {
        "promotion" => "blocks promotion into protected stages",
        _ => "blocks the run",
    };
    let mut when = match c.standing {
        StandingName::Enforced => match c.enforce_from {
            Some(d) => format!("enforced since {d}, {blocks}"),
            None => format!("enforced, {blocks}"),
        },
        StandingName::Warns => match c.enforce_from {
            Some(d) => format!("warning; enforced from {d}"),
            None => "warning only (no enforce-from)".into(),
        },
        StandingName::Announced => {
            let warn = c
                .warn_from
                .map(|d| format!("warns from {d}"))
                .unwrap_or_else(|| "announced".into());
            match c.enforce_from {
                Some(d) => format!("{warn}, enforced from {d}"),
                None => warn,
            }
        }
        StandingName::Exempt => match &c.exemption {
            Some(e) => {
                let until = e
                    .expires
                    .map_or_else(|| "permanently".to_string(), |d| format!("until {d}"));
                format!(
                    "exempt {until}, approved by {}: {}",
                    e.approved_by, e.reason
                )
            }
            None => "exempt".into(),
        },
        StandingName::Failed => format!(
            "could not run: {}",
            c.error.as_deref().unwrap_or("unknown error")
        ),
        StandingName::Passes => "passes".into(),
    };
    if let Some(d) = c.expired_exemption {
        let _ = write!(when, " (its exemption expired after {d})");
    }
    when
}

/// A violation in one line: its message (prefixed with its stage and step unless it
/// names them already) and its place in the pipeline file.
fn violation_line(v: &crate::policy::checks::Violation) -> String {
    fn named<'a>(what: &'a Option<String>, message: &str) -> Option<&'a String> {
        what.as_ref()
            .filter(|w| !message.contains(&format!("`{w}`")))
    }
    let mut line = String::new();
    match (named(&v.stage, &v.message), named(&v.step, &v.message)) {
        (Some(stage), Some(step)) => {
            let _ = write!(line, "stage `{stage}`, step `{step}`: ");
        }
        (Some(stage), None) => {
            let _ = write!(line, "stage `{stage}`: ");
        }
        (None, Some(step)) => {
            let _ = write!(line, "step `{step}`: ");
        }
        (None, None) => {}
    }
    line.push_str(&v.message);
    if let Some(at) = &v.at {
        let _ = write!(line, " ({}:{}:{})", at.file, at.line, at.column);
    }
    line
}

fn exemption_line(e: &ExemptionRow) -> String {
    let ticket = e
        .ticket
        .as_ref()
        .map(|t| format!(" ({t})"))
        .unwrap_or_default();
    let state = match (e.state, e.expires) {
        (ExemptionState::Expired, Some(d)) => format!("expired after {d}"),
        (state, Some(d)) => format!("{} until {d}", state.as_str()),
        (state, None) => format!("{}, permanent", state.as_str()),
    };
    format!(
        "{}{ticket}: {state}, approved by {}: {}",
        e.check, e.approved_by, e.reason
    )
}

/// The non-passing checks, most urgent first (policy order within a standing).
fn notable_checks(r: &PipelineReport) -> Vec<&CheckRow> {
    let mut checks: Vec<&CheckRow> = r
        .checks
        .iter()
        .filter(|c| c.standing != StandingName::Passes)
        .collect();
    checks.sort_by_key(|c| c.standing);
    checks
}

fn summary_line(report: &Report) -> String {
    let s = &report.summary;
    let plural = |n: usize, one: &str, many: &str| {
        if n == 1 {
            format!("{n} {one}")
        } else {
            format!("{n} {many}")
        }
    };
    let mut parts = vec![
        format!("{} failing now", s.failing),
        format!("{} with warnings", s.warned),
        format!("{} exempt from a check", s.exempt),
    ];
    if s.without_policy > 0 {
        parts.push(format!("{} without a policy", s.without_policy));
    }
    if s.errors > 0 {
        parts.push(plural(s.errors, "does not load", "do not load"));
    }
    let levels = s
        .levels
        .iter()
        .filter(|l| l.pipelines > 0)
        .map(|l| format!("{} {}", l.pipelines, l.level.name()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut line = format!(
        "{}: {}",
        plural(s.pipelines, "pipeline", "pipelines"),
        parts.join(", ")
    );
    if !levels.is_empty() {
        let _ = write!(line, "; automation: {levels}");
    }
    line
}

// ---- table ----------------------------------------------------------------------------

const HEADERS: [&str; 7] = [
    "FILE",
    "PIPELINE",
    "POLICY",
    "FAILING",
    "WARNINGS",
    "EXEMPTIONS",
    "AUTOMATION",
];

/// One row per pipeline, aligned, then what stands behind each row's numbers.
fn table(report: &Report) -> String {
    let rows: Vec<Vec<String>> = report
        .pipelines
        .iter()
        .map(|r| {
            if r.errors.is_empty() {
                vec![
                    r.file.clone(),
                    pipeline_cell(r),
                    policy_cell(r),
                    failing_cell(r),
                    warnings_cell(r),
                    exemptions_cell(r),
                    automation_cell(r.automation.as_ref()),
                ]
            } else {
                let more = match r.errors.len() {
                    1 => String::new(),
                    n => format!(" (and {} more)", n - 1),
                };
                vec![r.file.clone(), format!("error: {}{more}", r.errors[0])]
            }
        })
        .map(|cells| cells.iter().map(|c| shown(c).into_owned()).collect())
        .collect();
    let mut widths: Vec<usize> = HEADERS.iter().map(|h| h.chars().count()).collect();
    for row in rows.iter().filter(|r| r.len() == HEADERS.len()) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // An error row's file sets the first column too; its message runs on.
    for row in rows.iter().filter(|r| r.len() != HEADERS.len()) {
        widths[0] = widths[0].max(row[0].chars().count());
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                let _ = write!(out, "{cell}{}  ", " ".repeat(pad));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = String::new();
    if let Some(p) = &report.policy_override {
        let _ = writeln!(
            out,
            "policy {} ({}), at {}\n",
            shown(&p.label()),
            shown(&p.source),
            report.generated_at
        );
    } else {
        let _ = writeln!(
            out,
            "each pipeline's own policy, at {}\n",
            report.generated_at
        );
    }
    out.push_str(&line(&HEADERS.map(String::from)));
    for row in &rows {
        out.push_str(&line(row));
    }
    for r in &report.pipelines {
        let details = table_details(r);
        if !details.is_empty() {
            out.push('\n');
            out.push_str(&details);
        }
    }
    let _ = writeln!(out, "\n{}", summary_line(report));
    out
}

/// The details of one pipeline; empty when there is nothing to say.
fn table_details(r: &PipelineReport) -> String {
    const INDENT: &str = "             ";
    let mut out = String::new();
    let mut item = |label: &str, first: &str, more: &[String]| {
        let _ = writeln!(out, "  {label:<10} {}", shown(first));
        for m in more {
            let _ = writeln!(out, "{INDENT}{}", shown(m));
        }
    };
    for e in &r.errors {
        item("error", e, &[]);
    }
    if let Some(e) = &r.policy_error {
        item("policy", &format!("cannot be read: {e}"), &[]);
    }
    for c in notable_checks(r) {
        let mut more = vec![check_when(c)];
        more.extend(
            c.violations
                .iter()
                .map(|v| format!("- {}", violation_line(v))),
        );
        item(
            c.standing.as_str(),
            &format!("{}: {}", c.check, c.message),
            &more,
        );
    }
    for e in &r.exemptions {
        item("exemption", &exemption_line(e), &[]);
    }
    if let Some(a) = &r.automation
        && !a.gaps.is_empty()
    {
        let gaps: Vec<String> = a
            .gaps
            .iter()
            .map(|g| format!("-{:<3} {}", g.deduction, g.text))
            .collect();
        item(
            "automation",
            &format!("{}/100, {}", a.score, a.level.name()),
            &gaps,
        );
    }
    if out.is_empty() {
        return out;
    }
    let title = match (&r.pipeline, &r.policy) {
        (Some(name), Some(p)) => format!("{}: pipeline `{name}`, policy {}", r.file, p.label()),
        (Some(name), None) => format!("{}: pipeline `{name}`", r.file),
        (None, _) => format!("{}: does not load", r.file),
    };
    format!("{}\n{out}", shown(&title))
}

// ---- markdown -------------------------------------------------------------------------

/// Text for a Markdown table cell: one line, pipes escaped, no raw HTML (`<` outside
/// code spans written as `&lt;`; inside them it is literal already).
fn md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_code = false;
    for c in shown(s).chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.push(c);
            }
            '\n' => out.push(' '),
            '|' => out.push_str("\\|"),
            '<' if !in_code => out.push_str("&lt;"),
            _ => out.push(c),
        }
    }
    out
}

/// A summary table, then a section per pipeline.
fn markdown(report: &Report) -> String {
    let mut out = String::from("# Policy report\n\n");
    match &report.policy_override {
        Some(p) => {
            let _ = writeln!(
                out,
                "Policy **{}** (`{}`), evaluated at {}.\n",
                md(&p.label()),
                md(&p.source),
                report.generated_at
            );
        }
        None => {
            let _ = writeln!(
                out,
                "Each pipeline's own policy, evaluated at {}.\n",
                report.generated_at
            );
        }
    }
    let _ = writeln!(out, "{}.\n", md(&summary_line(report)));
    out.push_str(
        "| Pipeline | File | Policy | Failing | Warnings | Exemptions | Automation |\n\
         |---|---|---|---:|---|---|---|\n",
    );
    for r in &report.pipelines {
        if r.errors.is_empty() {
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} | {} | {} | {} |",
                md(&pipeline_cell(r)),
                md(&r.file),
                md(&policy_cell(r)),
                failing_cell(r),
                warnings_cell(r),
                exemptions_cell(r),
                automation_cell(r.automation.as_ref())
            );
        } else {
            let _ = writeln!(out, "| - | `{}` | | | | | does not load |", md(&r.file));
        }
    }
    for r in &report.pipelines {
        out.push('\n');
        out.push_str(&markdown_section(r));
    }
    out
}

fn markdown_section(r: &PipelineReport) -> String {
    let mut out = String::new();
    match &r.pipeline {
        Some(name) => {
            let _ = writeln!(out, "## {} (`{}`)\n", md(name), md(&r.file));
        }
        None => {
            let _ = writeln!(out, "## `{}`\n", md(&r.file));
        }
    }
    if !r.errors.is_empty() {
        out.push_str("The pipeline file does not load:\n\n~~~text\n");
        for e in &r.errors {
            let _ = writeln!(out, "{}", shown(e));
        }
        out.push_str("~~~\n");
        return out;
    }
    match (&r.policy, &r.policy_error) {
        (Some(p), _) => {
            let _ = writeln!(out, "Policy: {} (`{}`)\n", md(&p.label()), md(&p.source));
        }
        (None, Some(e)) => {
            let _ = writeln!(
                out,
                "Its policy cannot be read:\n\n~~~text\n{}\n~~~\n",
                shown(e)
            );
        }
        (None, None) => out.push_str("No policy.\n\n"),
    }
    let checks = notable_checks(r);
    if r.policy.is_some() {
        if checks.is_empty() {
            out.push_str("Every check passes.\n\n");
        } else {
            out.push_str("| Check | Standing | When | Findings |\n|---|---|---|---|\n");
            for c in checks {
                let mut found = vec![md(&c.message)];
                found.extend(c.violations.iter().map(|v| md(&violation_line(v))));
                let _ = writeln!(
                    out,
                    "| `{}` | **{}** | {} | {} |",
                    md(&c.check),
                    c.standing.as_str(),
                    md(&check_when(c)),
                    found.join("<br>")
                );
            }
            out.push('\n');
        }
    }
    if !r.exemptions.is_empty() {
        out.push_str(
            "| Exempt from | State | Expires | Approved by | Ticket | Reason |\n|---|---|---|---|---|---|\n",
        );
        for e in &r.exemptions {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} |",
                md(&e.check),
                e.state.as_str(),
                e.expires
                    .map_or_else(|| "never".to_string(), |d| d.to_string()),
                md(&e.approved_by),
                md(e.ticket.as_deref().unwrap_or("")),
                md(&e.reason)
            );
        }
        out.push('\n');
    }
    if let Some(a) = &r.automation {
        let _ = writeln!(out, "Automation: **{}/100, {}**.", a.score, a.level.name());
        if a.gaps.is_empty() {
            out.push_str("Nothing costs it points.\n");
        } else {
            out.push('\n');
            for g in &a.gaps {
                let _ = writeln!(out, "- −{} {}", g.deduction, md(&g.text));
            }
        }
    }
    out
}
