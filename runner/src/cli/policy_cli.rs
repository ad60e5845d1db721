//! `sluice policy check`: every organisation check of a pipeline's policy (or
//! `--policy FILE`), at the current instant, with what each finds, when it will be
//! enforced, and the exemptions in use. Also where a run shows its policy: the
//! notices before the first stage (text on stderr, a `policy` JSON line in `--format
//! json`) and the `policy` gate's input.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::ExpectedError;
use super::exit;
use crate::console;
use crate::host::cache::CacheRoot;
use crate::host::plugin::PluginHost;
use crate::policy::lifecycle::{self, CheckStatus, Notice, Standing};
use crate::policy::{CheckKind, Policy};
use crate::render::Format;

/// `sluice policy check`.
#[derive(clap::Args, Debug)]
pub(super) struct CheckArgs {
    /// The pipeline files to check.
    #[arg(default_value = "sluice.toml")]
    pub files: Vec<PathBuf>,
    /// The policy to check against, instead of each pipeline's `[pipeline] policy`.
    #[arg(long, value_name = "FILE|oci://...")]
    pub policy: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One pipeline file's answer.
#[derive(serde::Serialize)]
struct Checked {
    file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pipeline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_version: Option<String>,
    /// Every check's standing, in the policy's order, each with its phase in words.
    checks: Vec<Shown>,
    /// Whether an enforced run-blocking check is violated (without exemption).
    blocks_run: bool,
    /// Why the file could not be checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(serde::Serialize)]
struct Shown {
    #[serde(flatten)]
    status: CheckStatus,
    /// The standing in words ("will be enforced from 2027-01-15"); absent when it
    /// passes.
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: Option<String>,
}

/// `sluice policy check`.
pub(super) async fn check(
    args: CheckArgs,
    cache_root: Option<CacheRoot>,
) -> Result<u8, ExpectedError> {
    let now = crate::clock::from_env()
        .map_err(ExpectedError::Config)?
        .now();
    let forced = match &args.policy {
        Some(given) => Some(Arc::new(load_given(given).await?)),
        None => None,
    };
    let mut host: Option<PluginHost> = None;
    let mut answers = Vec::new();
    for file in &args.files {
        answers.push(check_file(file, forced.as_ref(), &mut host, &cache_root, now).await);
    }
    if args.json {
        let all = serde_json::json!({
            "evaluated_at": now.to_string(),
            "pipelines": answers,
        });
        console::out_line(&super::json_text(&all));
    } else {
        console::out(&render_text(&answers, now));
    }
    let failed = answers.iter().any(|a| a.blocks_run || a.error.is_some());
    Ok(if failed { exit::CONFIG } else { exit::OK })
}

/// `--policy`: a file, or an `oci://` reference pulled from its registry.
async fn load_given(given: &str) -> Result<Policy, ExpectedError> {
    use crate::policy::PolicyError;
    crate::policy::load_given(given).await.map_err(|e| match e {
        PolicyError::Registry(_) | PolicyError::BadReference { .. } => {
            ExpectedError::Config(format!("--policy {given}: {e}"))
        }
        e => ExpectedError::Config(e.to_string()),
    })
}

async fn check_file(
    file: &Path,
    forced: Option<&Arc<Policy>>,
    host: &mut Option<PluginHost>,
    cache_root: &Option<CacheRoot>,
    now: jiff::Timestamp,
) -> Checked {
    let mut answer = Checked {
        file: file.display().to_string(),
        pipeline: None,
        policy: None,
        policy_version: None,
        checks: Vec::new(),
        blocks_run: false,
        error: None,
    };
    let pipeline = match crate::config::load(file) {
        Ok(p) => p,
        Err(e) => {
            answer.error = Some(e.to_string());
            return answer;
        }
    };
    answer.pipeline = Some(pipeline.name.clone());
    let policy = match forced {
        Some(p) => Arc::clone(p),
        None => match crate::policy::for_pipeline(&pipeline).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                answer.error = Some(format!(
                    "pipeline `{}` follows no policy: add `policy = \"PATH\"` to [pipeline], or give --policy",
                    pipeline.name
                ));
                return answer;
            }
            Err(e) => {
                answer.error = Some(e.to_string());
                return answer;
            }
        },
    };
    answer.policy = Some(policy.name.clone());
    answer.policy_version = policy.version.clone();
    let custom = policy
        .checks
        .iter()
        .any(|c| matches!(c.kind, CheckKind::Custom { .. }));
    if custom && host.is_none() {
        match super::start_host(1, cache_root.clone()) {
            Ok(h) => *host = Some(h),
            Err(e) => {
                answer.error = Some(format!("cannot start the plugin host: {e}"));
                return answer;
            }
        }
    }
    let findings = crate::policy::checks::evaluate(&policy, &pipeline, host.as_ref()).await;
    let statuses = lifecycle::status_at(&policy, &findings, now);
    answer.blocks_run = statuses.iter().any(CheckStatus::blocks_run);
    answer.checks = statuses
        .into_iter()
        .map(|status| {
            let phase = policy
                .checks
                .iter()
                .find(|c| c.id == status.check)
                .and_then(|c| status.phase(c));
            Shown { status, phase }
        })
        .collect();
    answer
}

fn standing_word(s: &Standing) -> &'static str {
    match s {
        Standing::Passes => "passes",
        Standing::Announced { .. } => "announced",
        Standing::Warns { .. } => "warns",
        Standing::Enforced { .. } => "enforced",
        Standing::Exempt { .. } => "exempt",
        Standing::Failed { .. } => "failed",
    }
}

fn render_text(answers: &[Checked], now: jiff::Timestamp) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for a in answers {
        if let Some(error) = &a.error {
            let _ = writeln!(out, "{}: error: {error}", a.file);
            continue;
        }
        let version = a
            .policy_version
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{}: pipeline `{}`, policy `{}`{version}, at {now}",
            a.file,
            a.pipeline.as_deref().unwrap_or_default(),
            a.policy.as_deref().unwrap_or_default()
        );
        let width = a
            .checks
            .iter()
            .map(|c| c.status.check.len())
            .max()
            .unwrap_or(0);
        for c in &a.checks {
            let word = standing_word(&c.status.standing);
            let phase = c.phase.as_deref().unwrap_or("");
            let line = format!("  {:<width$}  {word:<9}  {phase}", c.status.check);
            let _ = writeln!(out, "{}", line.trim_end());
            for v in &c.status.violations {
                let at =
                    v.at.as_ref()
                        .map(|p| format!(" ({}:{}:{})", p.file, p.line, p.column))
                        .unwrap_or_default();
                let _ = writeln!(out, "      - {}{at}", v.message);
            }
        }
        let count = |word: &str| {
            a.checks
                .iter()
                .filter(|c| standing_word(&c.status.standing) == word)
                .count()
        };
        let mut parts = Vec::new();
        for word in [
            "passes",
            "warns",
            "enforced",
            "exempt",
            "announced",
            "failed",
        ] {
            let n = count(word);
            if n > 0 {
                parts.push(format!("{n} {word}"));
            }
        }
        let verdict = if a.blocks_run {
            "an enforced check blocks the run"
        } else {
            "nothing blocks the run"
        };
        let _ = writeln!(
            out,
            "  {} {}: {}; {verdict}",
            a.checks.len(),
            if a.checks.len() == 1 {
                "check"
            } else {
                "checks"
            },
            if parts.is_empty() {
                "none".to_string()
            } else {
                parts.join(", ")
            }
        );
    }
    out
}

/// The `policy` gate's input for a run: the policy and its findings (from `enforce`,
/// or evaluated here when it left them out). `None` without a policy.
pub(super) async fn gate_input(
    policy: Option<&Arc<Policy>>,
    outcome: &crate::policy::Outcome,
    pipeline: &crate::config::Pipeline,
    host: &PluginHost,
) -> Option<crate::gates::policy::PolicyGateInput> {
    let policy = policy?;
    let findings = match &outcome.findings {
        Some(f) => Arc::clone(f),
        None => Arc::new(crate::policy::checks::evaluate(policy, pipeline, Some(host)).await),
    };
    Some(crate::gates::policy::PolicyGateInput {
        policy: Arc::clone(policy),
        findings,
    })
}

/// Show the policy's notices before the first stage: `warning: ...` lines on stderr,
/// or, with `--format json`, one `{"event":"policy",...}` line on stdout before the
/// run's events.
pub(super) fn show_notices(format: Format, policy: Option<&Policy>, notices: &[Notice]) {
    let Some(policy) = policy else { return };
    if format == Format::Json {
        let line = serde_json::json!({
            "event": "policy",
            "policy": policy.name,
            "version": policy.version,
            "notices": notices.iter().map(|n| serde_json::json!({
                "check": n.check,
                "text": n.text,
                "status": n.status,
            })).collect::<Vec<_>>(),
        });
        console::out_line(&line.to_string());
        return;
    }
    for notice in notices {
        console::err_line(&format!("warning: {}", notice.text));
    }
}
