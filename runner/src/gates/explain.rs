//! `sluice explain`: why a run is not (yet) in a stage, from data already gathered.
//!
//! Pure rendering: no SQL, no I/O, no clock. The caller (the `explain` command) reads
//! the run, its stages, approvals and overrides from the state store, evaluates every
//! gate of each stage the run has not passed ([`super::evaluate_stage`], read-only), and
//! hands it all here with the instant it used. [`explain`] turns that into an
//! [`Explanation`], which serializes as the `--format json` answer and renders
//! ([`render_text`]) as the text layout:
//!
//! ```text
//! run r1 of pipeline `shop`: waiting since 2026-11-30 05:40Z
//!   artifact: web 1.42.0 (sha256:ab12cd34ef56…)
//!
//! stage prod: WAITING (2 of 3 gates hold it), queued since 2026-11-30 05:40Z
//!   gate            kind      decision  since              next change                   detail
//!   approval        approval  wait      2026-11-30 05:40Z  when approved                 1 of 2 approvals (alice); needs 1 more
//!   business-hours  window    wait      2026-11-30 05:40Z  2026-11-30 08:00Z (in 2h10m)  closed: outside ...; opens Mon 09:00 Europe/Berlin (in 2h10m)
//!   approvals: alice approved at 2026-11-30 05:45Z: "ok"
//!   overrides: none
//!   to clear:
//!     approval: 1 more approval from someone who has not approved yet: sluice approve r1 --stage prod --reason "..."
//!     business-hours: wait until it opens at Mon 09:00 Europe/Berlin, or: sluice override r1 --gate business-hours --stage prod --reason "..."
//! ```
//!
//! The layout starts from the "why is this version not here" table of
//! /work/shared/reference/visibility.md §6.2: one line per gate, every gate (never only
//! the first that blocks), since when its decision stands, when it changes by itself,
//! and the exact commands (with the run id) that clear it. The free-text detail comes
//! last so that the columns before it stay aligned and short.
//!
//! A run that deployed ends with its deployments (see [`crate::reports::deployments`]):
//! each one's end, where it failed, the bakes between its waves and the rollback that
//! followed it.

use jiff::Timestamp;
use serde::Serialize;

use super::{Decision, Verdict, human_duration};
use crate::render::shown;
use crate::state::{ApprovalRow, GateEvaluationRow, OverrideRow, RunRow, RunState, StageRow};

/// What is known about one stage of the run.
#[derive(Debug, Clone)]
pub struct StageFacts<'a> {
    pub stage: &'a str,
    /// The run's passage through the stage, when it has queued for it.
    pub row: Option<&'a StageRow>,
    /// Every gate of the stage evaluated now; `None` for a stage the run has passed
    /// (or left), which is shown in one line.
    pub verdict: Option<&'a Verdict>,
    /// The latest recorded evaluation of each gate (for "since").
    pub recorded: &'a [GateEvaluationRow],
    /// Approvals and rejections of the run's entry into the stage.
    pub approvals: &'a [ApprovalRow],
    /// Overrides of the run that concern the stage (its own, or for any stage).
    pub overrides: &'a [OverrideRow],
    /// The run that holds the stage now, if another does.
    pub holder: Option<&'a str>,
    /// The runs queued for the stage, oldest first (this run among them, if queued).
    pub queue: &'a [String],
}

/// Everything `explain` shows, as data.
#[derive(Debug, Clone)]
pub struct ExplainInput<'a> {
    pub run: &'a RunRow,
    /// The instant the gates were evaluated at.
    pub now: Timestamp,
    pub stages: Vec<StageFacts<'a>>,
}

/// The explanation of one run: the JSON form of `sluice explain`.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub run_id: String,
    pub pipeline: String,
    pub state: RunState,
    pub reason: Option<String>,
    pub started_at: Timestamp,
    pub artifact: Option<crate::state::ArtifactRow>,
    pub superseded_by: Option<String>,
    /// The instant the gates were evaluated at.
    pub evaluated_at: Timestamp,
    pub stages: Vec<StageExplanation>,
    /// Run this after clearing the gates, when no process drives the run.
    pub resume_command: Option<String>,
    /// The run's deployments and rollbacks, as recorded (added by
    /// [`Explanation::with_deployments`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<crate::reports::deployments::DeploymentStory>,
    /// What the pipeline's policy says now (added by [`Explanation::with_policy`]):
    /// warnings with their enforcement dates, checks enforced, exemptions in use or
    /// expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyExplanation>,
}

/// The policy part of an explanation.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyExplanation {
    /// The policy's name (and version, when it has one).
    pub name: String,
    pub version: Option<String>,
    /// One line per check that does not simply pass, as run output shows it.
    pub notices: Vec<String>,
}

/// One stage of the explanation.
#[derive(Debug, Clone, Serialize)]
pub struct StageExplanation {
    pub stage: String,
    /// `allow`, `wait` or `deny` for a stage evaluated now; the stage's recorded status
    /// (`passed`, `failed`, ...) for one the run has been through.
    pub verdict: String,
    /// The verdict's reason (every gate that holds the run), or what happened.
    pub summary: String,
    pub queued_at: Option<Timestamp>,
    pub entered_at: Option<Timestamp>,
    pub exited_at: Option<Timestamp>,
    /// When the verdict is a wait that ends by itself.
    pub until: Option<Timestamp>,
    pub gates: Vec<GateLine>,
    pub approvals: Vec<ApprovalRow>,
    pub overrides: Vec<OverrideRow>,
    pub holder: Option<String>,
    pub queue: Vec<String>,
    /// What clears each gate that holds the run, with exact commands.
    pub to_clear: Vec<ClearStep>,
    /// The stage's bake, for a stage that bakes (added by [`Explanation::with_bake`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bake: Option<super::bake::BakeStatus>,
}

/// One gate's line.
#[derive(Debug, Clone, Serialize)]
pub struct GateLine {
    pub gate: String,
    pub kind: String,
    /// `allow`, `wait`, `deny` or `overridden`.
    pub decision: String,
    /// Since when this decision stands (from the record); `None` when it was not
    /// recorded as such before (it is new as of `evaluated_at`).
    pub since: Option<Timestamp>,
    pub detail: String,
    /// When the decision changes without anyone acting (a window opening or closing).
    pub next_change_at: Option<Timestamp>,
    /// The next change for people: a time, "when approved", "unknown", ...
    pub next_change: String,
    pub evidence: serde_json::Value,
    pub overridden_by: Option<OverrideRow>,
}

/// What clears one gate.
#[derive(Debug, Clone, Serialize)]
pub struct ClearStep {
    pub gate: String,
    pub hint: String,
}

/// Build the explanation from the facts.
pub fn explain(input: &ExplainInput<'_>) -> Explanation {
    let run = input.run;
    let resumable = matches!(run.state, RunState::Waiting | RunState::Interrupted);
    Explanation {
        run_id: run.run_id.clone(),
        pipeline: run.pipeline.clone(),
        state: run.state,
        reason: run.reason.clone(),
        started_at: run.started_at,
        artifact: run.artifact.clone(),
        superseded_by: run.superseded_by.clone(),
        evaluated_at: input.now,
        stages: input
            .stages
            .iter()
            .map(|s| explain_stage(s, input.now))
            .collect(),
        resume_command: resumable.then(|| format!("sluice resume {}", run.run_id)),
        deployments: Vec::new(),
        policy: None,
    }
}

fn explain_stage(facts: &StageFacts<'_>, now: Timestamp) -> StageExplanation {
    let row = facts.row;
    let mut out = StageExplanation {
        stage: facts.stage.to_string(),
        verdict: String::new(),
        summary: String::new(),
        queued_at: row.map(|r| r.queued_at),
        entered_at: row.and_then(|r| r.entered_at),
        exited_at: row.and_then(|r| r.exited_at),
        until: None,
        gates: Vec::new(),
        approvals: facts.approvals.to_vec(),
        overrides: facts.overrides.to_vec(),
        holder: facts.holder.map(str::to_string),
        queue: facts.queue.to_vec(),
        to_clear: Vec::new(),
        bake: None,
    };
    let Some(verdict) = facts.verdict else {
        let status = row.and_then(|r| r.status.clone()).unwrap_or_else(|| {
            if out.entered_at.is_some() {
                "in progress"
            } else {
                "not reached"
            }
            .into()
        });
        out.summary = match (out.entered_at, out.exited_at) {
            (Some(i), Some(o)) => format!("entered {}, left {}", stamp(i), stamp(o)),
            (Some(i), None) => format!("entered {}", stamp(i)),
            _ => String::new(),
        };
        out.verdict = status;
        return out;
    };
    out.verdict = verdict.decision.name().to_string();
    out.summary = verdict.decision.reason().to_string();
    out.until = verdict.decision.until();
    for e in &verdict.evaluations {
        let decision = e.recorded_decision().to_string();
        let since = facts
            .recorded
            .iter()
            .find(|r| r.gate == e.gate && r.decision == decision)
            .map(|r| r.since);
        let (next_change_at, next_change) = next_change(
            &e.decision,
            &e.kind,
            &e.evidence,
            e.overridden_by.is_some(),
            now,
        );
        if !matches!(e.decision, Decision::Allow { .. })
            && let Some(hint) = &e.clear_hint
        {
            out.to_clear.push(ClearStep {
                gate: e.gate.clone(),
                hint: hint.clone(),
            });
        }
        out.gates.push(GateLine {
            gate: e.gate.clone(),
            kind: e.kind.clone(),
            decision,
            since,
            detail: e.decision.reason().to_string(),
            next_change_at,
            next_change,
            evidence: e.evidence.clone(),
            overridden_by: e.overridden_by.clone(),
        });
    }
    if let Some(holder) = facts.holder {
        out.to_clear.push(ClearStep {
            gate: "(stage busy)".into(),
            hint: format!(
                "run {holder} holds the stage; this run enters after it leaves (see sluice status {holder})"
            ),
        });
    }
    out
}

impl Explanation {
    /// Add the run's deployments (read by the caller): each with its end, the failing
    /// target and lifecycle event, the bakes between its waves and the rollback that
    /// followed.
    pub fn with_deployments(
        &mut self,
        deployments: Vec<crate::reports::deployments::DeploymentStory>,
    ) {
        self.deployments = deployments;
    }

    /// Add what the pipeline's policy says at `evaluated_at` (decided by the caller).
    pub fn with_policy(&mut self, policy: PolicyExplanation) {
        self.policy = Some(policy);
    }

    /// Add the bake of `stage` (read and decided by the caller at `evaluated_at`); a bake
    /// under way also says what ends it.
    pub fn with_bake(&mut self, stage: &str, bake: super::bake::BakeStatus) {
        let run_id = self.run_id.clone();
        let Some(s) = self.stages.iter_mut().find(|s| s.stage == stage) else {
            return;
        };
        if bake.state == "baking" {
            // The run is in the stage: its bake, not its entry gates, holds it now.
            if s.gates.is_empty() {
                s.verdict = "baking".into();
                s.summary = s
                    .entered_at
                    .map(|t| format!("entered {}", stamp(t)))
                    .unwrap_or_default();
                s.until = bake.until;
            }
            let wait = match bake.until {
                Some(t) => format!("passes by itself at {}", stamp(t)),
                None => format!(
                    "passes once {} in the stage passed and {} positive data points came with no negative one",
                    super::bake::short_duration(bake.duration_secs),
                    super::bake::thousands(bake.needed)
                ),
            };
            s.to_clear.push(ClearStep {
                gate: super::bake::BAKE_GATE.into(),
                hint: format!(
                    "{wait}; or: sluice override {run_id} --gate {} --stage {stage} --reason \"...\"",
                    super::bake::BAKE_GATE
                ),
            });
        }
        s.bake = Some(bake);
    }
}

/// The bake's line in the text layout.
fn bake_line(out: &mut String, b: &super::bake::BakeStatus) {
    use std::fmt::Write;
    let monitors = b.monitors.join(", ");
    let _ = match (b.state.as_str(), b.started_at) {
        ("not started", _) | (_, None) => writeln!(
            out,
            "  bake: not started ({} and {} positive from {monitors}): {}",
            super::bake::short_duration(b.duration_secs),
            super::bake::thousands(b.needed),
            shown(&b.detail)
        ),
        ("baking", Some(start)) => {
            let until = b
                .until
                .map(|u| format!(", passes at {}", stamp(u)))
                .unwrap_or_default();
            writeln!(
                out,
                "  bake: baking since {}{until} (from {monitors}): {}",
                stamp(start),
                shown(&b.detail)
            )
        }
        (ended, Some(start)) => writeln!(
            out,
            "  bake: {ended} (started {}, ended {}, from {monitors}): {}",
            stamp(start),
            b.finished_at.map(stamp).unwrap_or_else(|| "-".into()),
            shown(&b.detail)
        ),
    };
}

/// When a gate's decision changes by itself, and how to say it.
fn next_change(
    decision: &Decision,
    kind: &str,
    evidence: &serde_json::Value,
    overridden: bool,
    now: Timestamp,
) -> (Option<Timestamp>, String) {
    let at = |t: Timestamp| {
        if t > now {
            format!(
                "{} (in {})",
                stamp(t),
                human_duration(t.duration_since(now))
            )
        } else {
            stamp(t)
        }
    };
    match decision {
        _ if overridden => (None, "-".into()),
        Decision::Wait { until: Some(t), .. } => (Some(*t), at(*t)),
        Decision::Wait { until: None, .. } if kind == "approval" => (None, "when approved".into()),
        Decision::Wait { until: None, .. } if kind == "alarms" => {
            (None, "when the alarms clear".into())
        }
        Decision::Wait { until: None, .. } => (None, "unknown".into()),
        Decision::Deny { .. } => (None, "never (override or new run)".into()),
        Decision::Allow { .. } => {
            match evidence
                .get("closes_at")
                .and_then(|c| c.as_str())
                .and_then(|c| c.parse::<Timestamp>().ok())
            {
                Some(t) => (Some(t), format!("closes {}", at(t))),
                None => (None, "-".into()),
            }
        }
    }
}

/// The alarms the stage's alarms gates looked at, one line each, from the gates'
/// evidence (the [`crate::monitors::AlarmStatus`] of each listed monitor):
///
/// ```text
///   alarms:
///     api  ALARM  since 2026-11-30 05:44Z  2 of 3 checks breaching (alarm at 2 of 3), last check 2026-11-30 05:49Z: login: status 502
/// ```
fn render_alarms(out: &mut String, s: &StageExplanation) {
    use std::fmt::Write;
    let alarms: Vec<&serde_json::Value> = s
        .gates
        .iter()
        .filter(|g| g.kind == "alarms")
        .filter_map(|g| g.evidence.get("alarms").and_then(|a| a.as_array()))
        .flatten()
        .collect();
    if alarms.is_empty() {
        return;
    }
    let text = |v: &serde_json::Value, key: &str| {
        v.get(key)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let time = |v: &serde_json::Value, key: &str| {
        v.get(key)
            .and_then(|x| x.as_str())
            .and_then(|t| t.parse::<Timestamp>().ok())
            .map(stamp)
    };
    let number =
        |v: &serde_json::Value, key: &str| v.get(key).and_then(|x| x.as_u64()).unwrap_or(0);
    let rows: Vec<[String; 4]> = alarms
        .iter()
        .map(|a| {
            if let Some(error) = a.get("error").and_then(|e| e.as_str()) {
                return [
                    String::new(),
                    "UNKNOWN".into(),
                    String::new(),
                    shown(error).into_owned(),
                ];
            }
            let state = text(a, "state");
            let counts = if state == "INSUFFICIENT_DATA" {
                format!("no data, missing = \"{}\"", text(a, "missing"))
            } else {
                format!(
                    "{} of {} checks breaching (alarm at {} of {})",
                    number(a, "breaching"),
                    number(a, "periods"),
                    number(a, "datapoints_to_alarm"),
                    number(a, "evaluation_periods")
                )
            };
            let last = time(a, "latest_check")
                .map(|t| format!(", last check {t}"))
                .unwrap_or_else(|| ", never checked".into());
            let detail = text(a, "detail");
            let detail = if detail.is_empty() {
                String::new()
            } else {
                format!(": {}", shown(&detail))
            };
            [
                text(a, "monitor"),
                state,
                time(a, "since")
                    .map(|t| format!("since {t}"))
                    .unwrap_or_default(),
                format!("{counts}{last}{detail}"),
            ]
        })
        .collect();
    let mut widths = [0usize; 3];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    out.push_str("  alarms:\n");
    for r in &rows {
        let mut line = String::from("    ");
        for (i, cell) in r.iter().enumerate() {
            if i == 3 {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// An instant for people: UTC to the minute, `2026-11-30 08:00Z`.
fn stamp(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%MZ").to_string()
}

/// The text layout of `sluice explain`.
pub fn render_text(e: &Explanation) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let state = serde_json::to_value(e.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let _ = write!(
        out,
        "run {} of pipeline `{}`: {state}",
        e.run_id, e.pipeline
    );
    if let Some(reason) = &e.reason {
        let _ = write!(out, " ({})", shown(reason));
    }
    let _ = writeln!(out, ", started {}", stamp(e.started_at));
    if let Some(a) = &e.artifact {
        let _ = writeln!(
            out,
            "  artifact: {}{} ({})",
            shown(&a.name),
            a.version
                .as_deref()
                .map(|v| format!(" {}", shown(v)))
                .unwrap_or_default(),
            short_digest(&a.digest)
        );
    }
    if let Some(by) = &e.superseded_by {
        let _ = writeln!(out, "  superseded by run {by}");
    }
    let _ = writeln!(out, "  gates evaluated at {}", stamp(e.evaluated_at));
    for s in &e.stages {
        out.push('\n');
        render_stage(&mut out, s);
    }
    if !e.deployments.is_empty() {
        let _ = writeln!(out, "\ndeployments:");
        out.push_str(&crate::reports::deployments::render_text(
            &e.deployments,
            "  ",
            stamp,
        ));
    }
    if let Some(policy) = &e.policy {
        let version = policy
            .version
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        if policy.notices.is_empty() {
            let _ = writeln!(
                out,
                "\npolicy `{}`{version}: every organisation check passes",
                policy.name
            );
        } else {
            let _ = writeln!(out, "\npolicy `{}`{version}:", policy.name);
            for notice in &policy.notices {
                let _ = writeln!(out, "  {}", shown(notice));
            }
        }
    }
    if let Some(cmd) = &e.resume_command {
        let _ = writeln!(out, "\nno process drives this run; once cleared: {cmd}");
    }
    out
}

fn render_stage(out: &mut String, s: &StageExplanation) {
    use std::fmt::Write;
    if s.gates.is_empty() && !matches!(s.verdict.as_str(), "allow" | "wait" | "deny") {
        let _ = write!(out, "stage {}: {}", s.stage, s.verdict);
        if !s.summary.is_empty() {
            let _ = write!(out, " ({})", s.summary);
        }
        out.push('\n');
        if let Some(b) = &s.bake {
            bake_line(out, b);
        }
        for c in &s.to_clear {
            let _ = writeln!(out, "  to clear: {}: {}", c.gate, c.hint);
        }
        return;
    }
    let holding = s
        .gates
        .iter()
        .filter(|g| matches!(g.decision.as_str(), "wait" | "deny"))
        .count();
    let word = match s.verdict.as_str() {
        "allow" => "ALLOWED".to_string(),
        "wait" => "WAITING".to_string(),
        "deny" => "DENIED".to_string(),
        other => other.to_uppercase(),
    };
    let _ = write!(out, "stage {}: {word}", s.stage);
    if s.gates.is_empty() {
        out.push_str(" (no gates)");
    } else if holding > 0 {
        let _ = write!(out, " ({holding} of {} gates hold it)", s.gates.len());
    }
    if let Some(q) = s.queued_at {
        let _ = write!(out, ", queued since {}", stamp(q));
    }
    if let Some(u) = s.until {
        let _ = write!(out, ", until {}", stamp(u));
    }
    out.push('\n');
    if !s.gates.is_empty() {
        let header = ["gate", "kind", "decision", "since", "next change", "detail"];
        let rows: Vec<[String; 6]> = s
            .gates
            .iter()
            .map(|g| {
                [
                    g.gate.clone(),
                    g.kind.clone(),
                    g.decision.clone(),
                    g.since.map(stamp).unwrap_or_else(|| "-".into()),
                    g.next_change.clone(),
                    shown(&g.detail).into_owned(),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |out: &mut String, cells: [&str; 6]| {
            let mut text = String::from("  ");
            for (i, cell) in cells.iter().enumerate() {
                if i == 5 {
                    text.push_str(cell);
                } else {
                    let _ = write!(text, "{cell:<w$}  ", w = widths[i]);
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(out, header);
        for r in &rows {
            line(out, [&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]);
        }
    }
    render_alarms(out, s);
    if let Some(b) = &s.bake {
        bake_line(out, b);
    }
    super::blocked::render_explain(out, &s.gates);
    if s.approvals.is_empty() {
        if s.gates.iter().any(|g| g.kind == "approval") {
            out.push_str("  approvals: none\n");
        }
    } else {
        out.push_str("  approvals:\n");
        for a in &s.approvals {
            let verb = if a.action == "reject" {
                "rejected"
            } else {
                "approved"
            };
            let _ = writeln!(
                out,
                "    {} {verb} at {}: \"{}\"",
                shown(&a.actor),
                stamp(a.at),
                shown(&a.reason)
            );
        }
    }
    if s.overrides.is_empty() {
        out.push_str("  overrides: none\n");
    } else {
        out.push_str("  overrides:\n");
        for o in &s.overrides {
            let scope = match &o.stage {
                Some(stage) => format!("gate {} of stage {stage}", o.gate),
                None => format!("gate {} of the next stage that has it", o.gate),
            };
            let applies = s
                .gates
                .iter()
                .any(|g| g.overridden_by.as_ref().is_some_and(|by| by.id == o.id));
            let unused = if applies { "applies now" } else { "unused" };
            let status = match (o.used_at, o.expires_at) {
                (Some(u), _) => format!("used {}", stamp(u)),
                (None, Some(x)) => format!("{unused}, expires {}", stamp(x)),
                (None, None) => format!("{unused}, no expiry"),
            };
            let _ = writeln!(
                out,
                "    #{} by {} at {} for {scope} ({status}): \"{}\"",
                o.id,
                shown(&o.actor),
                stamp(o.created_at),
                shown(&o.reason)
            );
        }
    }
    if s.holder.is_some() || !s.queue.is_empty() {
        let _ = writeln!(
            out,
            "  stage held by: {}; queued: {}",
            s.holder.as_deref().unwrap_or("nobody"),
            if s.queue.is_empty() {
                "none".to_string()
            } else {
                s.queue.join(", ")
            }
        );
    }
    if !s.to_clear.is_empty() {
        out.push_str("  to clear:\n");
        for c in &s.to_clear {
            let _ = writeln!(out, "    {}: {}", c.gate, c.hint);
        }
    }
}

/// `sha256:ab12cd34ef56…`: enough to recognise, short enough for a header.
pub(super) fn short_digest(digest: &str) -> String {
    let (algo, hex) = digest.split_once(':').unwrap_or(("", digest));
    let short: String = hex.chars().take(12).collect();
    let ellipsis = if hex.chars().count() > 12 { "…" } else { "" };
    if algo.is_empty() {
        format!("{short}{ellipsis}")
    } else {
        format!("{algo}:{short}{ellipsis}")
    }
}

/// The JSON form of `sluice explain --format json`.
pub fn to_json(e: &Explanation) -> serde_json::Value {
    serde_json::to_value(e).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::{GateInput, build_stage, evaluate_stage};
    use crate::state::{ArtifactRow, Trigger};

    const PIPELINE: &str = "[pipeline]\nname = \"shop\"\n\
        [[stage]]\nname = \"beta\"\n[[stage.step]]\nid = \"a\"\nuses = \"builtin:command\"\n\
        [[stage]]\nname = \"prod\"\n[[stage.step]]\nid = \"b\"\nuses = \"builtin:command\"\n\
        [stage.gates.approval]\nrequired = 2\n\
        [stage.gates.business-hours]\nkind = \"window\"\ntimezone = \"Europe/Berlin\"\ndays = \"Mon-Thu\"\nhours = \"09:00-16:00\"\n";

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn run(state: RunState) -> RunRow {
        RunRow {
            run_id: "20261130-054000-7f3a".into(),
            pipeline: "shop".into(),
            pipeline_file: "/work/shop/sluice.toml".into(),
            pipeline_digest: "9f86d081884c7d65".into(),
            run_dir: "/work/shop/.sluice/runs/20261130-054000-7f3a".into(),
            trigger: Trigger {
                actor: "ci-bot".into(),
                ci: vec![],
                git_commit: None,
            },
            state,
            reason: None,
            started_at: at("2026-11-30T05:40:00Z"),
            finished_at: None,
            current_stage: Some("prod".into()),
            artifact: Some(ArtifactRow {
                name: "web".into(),
                version: Some("1.42.0".into()),
                digest: "sha256:ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12"
                    .into(),
            }),
            superseded_by: None,
            holder: None,
        }
    }

    fn response(action: &str, actor: &str, reason: &str, time: &str) -> ApprovalRow {
        ApprovalRow {
            run_id: "20261130-054000-7f3a".into(),
            stage: "prod".into(),
            action: action.into(),
            actor: actor.into(),
            reason: reason.into(),
            at: at(time),
        }
    }

    fn stage_row(stage: &str, entered: bool, status: Option<&str>) -> StageRow {
        StageRow {
            run_id: "20261130-054000-7f3a".into(),
            stage: stage.into(),
            queued_at: at("2026-11-30T05:41:00Z"),
            entered_at: entered.then(|| at("2026-11-30T05:41:00Z")),
            exited_at: status.map(|_| at("2026-11-30T05:44:00Z")),
            status: status.map(str::to_string),
        }
    }

    fn recorded(gate: &str, decision: &str, since: &str) -> GateEvaluationRow {
        GateEvaluationRow {
            run_id: "20261130-054000-7f3a".into(),
            stage: "prod".into(),
            gate: gate.into(),
            kind: String::new(),
            evaluated_at: at("2026-11-30T05:49:00Z"),
            decision: decision.into(),
            reason: String::new(),
            until: None,
            evidence: serde_json::Value::Null,
            since: at(since),
        }
    }

    fn verdict(now: Timestamp, approvals: &[ApprovalRow], overrides: &[OverrideRow]) -> Verdict {
        let pipeline =
            crate::config::parse(std::path::Path::new("sluice.toml"), PIPELINE.to_string())
                .unwrap();
        let env = crate::gates::GateEnv {
            pipeline: &pipeline,
            store: None,
            policy: None,
        };
        let gates = build_stage(&pipeline.stages[1], &env);
        let input = GateInput {
            pipeline: "shop",
            run_id: "20261130-054000-7f3a",
            stage: "prod",
            now,
            approvals,
            artifact: None,
        };
        futures::executor::block_on(evaluate_stage(&gates, &input, overrides))
    }

    #[test]
    fn explain_shows_each_alarm_with_its_state_counts_and_failing_observation() {
        use crate::monitors::{AlarmState, AlarmStatus, MissingData};
        let now = at("2026-11-30T05:50:00Z");
        let firing = AlarmStatus {
            monitor: "api-errors".into(),
            state: AlarmState::Alarm,
            holds: true,
            since: Some(at("2026-11-30T05:44:00Z")),
            breaching: 2,
            periods: 3,
            datapoints_to_alarm: 2,
            evaluation_periods: 3,
            missing: MissingData::Breaching,
            latest_check: Some(at("2026-11-30T05:49:30Z")),
            detail: "login: status 502".into(),
            detail_check: None,
        };
        let silent = AlarmStatus {
            monitor: "latency".into(),
            state: AlarmState::InsufficientData,
            since: None,
            breaching: 0,
            periods: 0,
            latest_check: None,
            detail: "no check has run yet".into(),
            ..firing.clone()
        };
        let quiet = AlarmStatus {
            monitor: "checkout".into(),
            state: AlarmState::Ok,
            holds: false,
            since: None,
            breaching: 0,
            detail: String::new(),
            ..firing.clone()
        };
        let reason = format!("{}; {}", firing.describe(), silent.describe());
        let v = Verdict {
            decision: Decision::Wait {
                reason: reason.clone(),
                until: None,
            },
            evaluations: vec![crate::gates::Evaluation {
                gate: "alarms".into(),
                kind: "alarms".into(),
                decision: Decision::Wait {
                    reason,
                    until: None,
                },
                clear_hint: Some("wait for the alarm to clear, or let the fix through: sluice override 20261130-054000-7f3a --gate alarms --stage prod --reason \"...\"".into()),
                evidence: serde_json::json!({ "alarms": [firing, silent, quiet] }),
                overridden_by: None,
            }],
        };
        let prod = stage_row("prod", false, None);
        let rec = [recorded("alarms", "wait", "2026-11-30T05:44:00Z")];
        let r = run(RunState::Waiting);
        let input = ExplainInput {
            run: &r,
            now,
            stages: vec![StageFacts {
                stage: "prod",
                row: Some(&prod),
                verdict: Some(&v),
                recorded: &rec,
                approvals: &[],
                overrides: &[],
                holder: None,
                queue: &[],
            }],
        };
        insta::assert_snapshot!(render_text(&explain(&input)));
    }

    #[test]
    fn explain_a_run_waiting_for_approval_and_a_window_behind_a_busy_stage() {
        let now = at("2026-11-30T05:50:00Z");
        let approvals = [response(
            "approve",
            "alice",
            "beta looks healthy",
            "2026-11-30T05:45:00Z",
        )];
        let v = verdict(now, &approvals, &[]);
        let beta = stage_row("beta", true, Some("passed"));
        let prod = stage_row("prod", false, None);
        let rec = [
            recorded("approval", "wait", "2026-11-30T05:44:00Z"),
            recorded("business-hours", "wait", "2026-11-30T05:44:00Z"),
        ];
        let queue = [
            "20261130-054000-7f3a".to_string(),
            "20261130-054500-1c2d".to_string(),
        ];
        let r = run(RunState::Waiting);
        let input = ExplainInput {
            run: &r,
            now,
            stages: vec![
                StageFacts {
                    stage: "beta",
                    row: Some(&beta),
                    verdict: None,
                    recorded: &[],
                    approvals: &[],
                    overrides: &[],
                    holder: None,
                    queue: &[],
                },
                StageFacts {
                    stage: "prod",
                    row: Some(&prod),
                    verdict: Some(&v),
                    recorded: &rec,
                    approvals: &approvals,
                    overrides: &[],
                    holder: Some("20261129-220000-0b1e"),
                    queue: &queue,
                },
            ],
        };
        let e = explain(&input);
        insta::assert_snapshot!(render_text(&e));
        insta::assert_snapshot!(
            "explain_waiting_json",
            serde_json::to_string_pretty(&to_json(&e)).unwrap()
        );
    }

    #[test]
    fn explain_a_denied_run_with_an_override_used_on_the_window() {
        let now = at("2026-11-30T05:50:00Z");
        let approvals = [
            response("approve", "alice", "ok", "2026-11-30T05:45:00Z"),
            response(
                "reject",
                "carol",
                "p99 regressed in beta\u{1b}[31m",
                "2026-11-30T05:47:00Z",
            ),
        ];
        let overrides = [OverrideRow {
            id: 3,
            run_id: "20261130-054000-7f3a".into(),
            gate: "business-hours".into(),
            stage: Some("prod".into()),
            actor: "dana".into(),
            reason: "hotfix for INC-7".into(),
            created_at: at("2026-11-30T05:48:00Z"),
            expires_at: Some(at("2026-11-30T07:48:00Z")),
            used_at: None,
        }];
        let v = verdict(now, &approvals, &overrides);
        let prod = stage_row("prod", false, None);
        let rec = [recorded("approval", "deny", "2026-11-30T05:47:00Z")];
        let mut r = run(RunState::Failed);
        r.reason = Some(
            "stage `prod`: gate `approval` denied: rejected by carol: p99 regressed in beta".into(),
        );
        let input = ExplainInput {
            run: &r,
            now,
            stages: vec![StageFacts {
                stage: "prod",
                row: Some(&prod),
                verdict: Some(&v),
                recorded: &rec,
                approvals: &approvals,
                overrides: &overrides,
                holder: None,
                queue: &[],
            }],
        };
        insta::assert_snapshot!(render_text(&explain(&input)));
    }

    #[test]
    fn explain_an_allowed_stage_with_an_open_window() {
        let now = at("2026-11-30T09:00:00Z");
        let approvals = [
            response("approve", "alice", "ok", "2026-11-30T05:45:00Z"),
            response("approve", "bob", "ok", "2026-11-30T05:46:00Z"),
        ];
        let v = verdict(now, &approvals, &[]);
        let r = run(RunState::Running);
        let input = ExplainInput {
            run: &r,
            now,
            stages: vec![StageFacts {
                stage: "prod",
                row: None,
                verdict: Some(&v),
                recorded: &[],
                approvals: &approvals,
                overrides: &[],
                holder: None,
                queue: &[],
            }],
        };
        insta::assert_snapshot!(render_text(&explain(&input)));
    }

    fn bake_spec() -> crate::gates::bake::BakeSpec {
        let file = "[pipeline]\nname = \"shop\"\n[[monitor]]\nid = \"canary\"\n[[monitor]]\nid = \"api-errors\"\n\
            [[stage]]\nname = \"beta\"\n[[stage.step]]\nid = \"a\"\nuses = \"builtin:command\"\n\
            [stage.bake]\nduration = \"1h\"\npositive = 3000\nmonitors = [\"canary\", \"api-errors\"]\n\
            [[stage]]\nname = \"prod\"\n[[stage.step]]\nid = \"b\"\nuses = \"builtin:command\"\n\
            [stage.bake]\nduration = \"30m\"\nmonitors = [\"canary\"]\n";
        let pipeline =
            crate::config::parse(std::path::Path::new("sluice.toml"), file.to_string()).unwrap();
        pipeline.stages[0].bake.clone().unwrap()
    }

    #[test]
    fn explain_a_stage_baking_with_its_progress() {
        use crate::gates::bake::{BakeProgress, BakeStatus, evaluate};
        let now = at("2026-11-30T06:23:00Z");
        let spec = bake_spec();
        let counts = crate::state::PointCounts {
            positive: 1204,
            negative: 0,
            first_negative: None,
            latest_at: Some(at("2026-11-30T06:22:30Z")),
        };
        let progress = BakeProgress::new(&spec, at("2026-11-30T06:00:00Z"), now, &counts);
        let decision = evaluate(&progress, None);
        let beta = stage_row("beta", true, None);
        let mut r = run(RunState::Running);
        r.current_stage = Some("beta".into());
        let input = ExplainInput {
            run: &r,
            now,
            stages: vec![
                StageFacts {
                    stage: "beta",
                    row: Some(&beta),
                    verdict: None,
                    recorded: &[],
                    approvals: &[],
                    overrides: &[],
                    holder: None,
                    queue: &[],
                },
                StageFacts {
                    stage: "prod",
                    row: None,
                    verdict: None,
                    recorded: &[],
                    approvals: &[],
                    overrides: &[],
                    holder: None,
                    queue: &[],
                },
            ],
        };
        let mut e = explain(&input);
        e.with_bake("beta", BakeStatus::baking(&progress, &decision));
        e.with_bake("prod", BakeStatus::not_started(&spec));
        insta::assert_snapshot!(render_text(&e));
        insta::assert_snapshot!(
            "explain_baking_json",
            serde_json::to_string_pretty(&to_json(&e)).unwrap()
        );
    }

    #[test]
    fn explain_a_failed_bake_with_its_first_negative_point() {
        use crate::gates::bake::BakeStatus;
        let spec = bake_spec();
        let row = crate::state::BakeRow {
            run_id: "20261130-054000-7f3a".into(),
            stage: "beta".into(),
            started_at: at("2026-11-30T06:00:00Z"),
            updated_at: at("2026-11-30T06:12:00Z"),
            positive: 700,
            negative: 1,
            finished_at: Some(at("2026-11-30T06:12:00Z")),
            outcome: Some("failed".into()),
            detail: Some("bake failed: 1 negative data point: canary/login at 2026-11-30T06:11:40Z: status 503, expected 200 (bake 12m of 1h, 700 of 3,000 positive, 1 negative)".into()),
        };
        let beta = StageRow {
            exited_at: Some(at("2026-11-30T06:12:00Z")),
            ..stage_row("beta", true, Some("failed"))
        };
        let mut r = run(RunState::Failed);
        r.reason = Some(format!("stage `beta`: {}", row.detail.clone().unwrap()));
        let input = ExplainInput {
            run: &r,
            now: at("2026-11-30T07:00:00Z"),
            stages: vec![StageFacts {
                stage: "beta",
                row: Some(&beta),
                verdict: None,
                recorded: &[],
                approvals: &[],
                overrides: &[],
                holder: None,
                queue: &[],
            }],
        };
        let mut e = explain(&input);
        e.with_bake("beta", BakeStatus::finished(&spec, &row));
        insta::assert_snapshot!(render_text(&e));
    }
}
