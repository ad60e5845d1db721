//! The deployments of a run as people read them, from the state store (never from a
//! plugin's report): each deployment with its revision, configuration and end, what
//! became of every target it could touch, the lifecycle step that failed, the bakes
//! between its waves, and the rollback that followed it. `sluice status`, `sluice
//! explain`, `summary.json` and the GitHub job summary all show this one reading.

use std::fmt::Write as _;

use serde::Serialize;

use crate::render::shown;
use crate::state::{DeploymentEventRow, DeploymentRow, StateError, Store};

/// The lifecycle event after which a target runs its new revision healthily (the last
/// of CodeDeploy's in-place order), and the plugin's own health verdict.
const LAST_EVENTS: [&str; 2] = ["ValidateService", "Health"];

/// One deployment of a run, with what became of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentStory {
    #[serde(flatten)]
    pub deployment: DeploymentRow,
    /// Every target the deployment could touch, in wave order.
    pub outcomes: Vec<TargetOutcome>,
    /// The first lifecycle step that failed.
    pub failure: Option<DeploymentEventRow>,
    /// The bakes between its waves: the end of each, or the latest word of one under way.
    pub bakes: Vec<DeploymentEventRow>,
    /// The rollback deployment that undid this one.
    pub rolled_back_by: Option<RollbackEnd>,
}

/// The rollback that followed a deployment, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollbackEnd {
    pub id: String,
    pub state: String,
    pub reason: Option<String>,
}

/// What became of one target in one deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetOutcome {
    pub target: String,
    /// `healthy`, `failed`, `skipped` (it ran the revision already), `in progress`,
    /// `stopped` (the deployment ended before the target's lifecycle did), `waiting`
    /// (its wave has not come yet) or `not reached` (the deployment ended first).
    pub state: String,
    /// Its last lifecycle event (the failing one for a failed target).
    pub event: Option<String>,
    pub detail: String,
    /// Lifecycle steps that ended (succeeded, failed or skipped).
    pub events: usize,
    /// From its first recorded step to its last, in milliseconds.
    pub duration_ms: u64,
}

impl DeploymentStory {
    pub fn is_rollback(&self) -> bool {
        self.deployment.kind == "rollback"
    }

    /// Targets by state, in a fixed order: `3 healthy, 1 failed, 1 not reached`.
    pub fn counts(&self) -> String {
        let order = [
            "healthy",
            "failed",
            "skipped",
            "in progress",
            "stopped",
            "waiting",
            "not reached",
        ];
        order
            .iter()
            .filter_map(|state| {
                let n = self.outcomes.iter().filter(|o| o.state == *state).count();
                (n > 0).then(|| format!("{n} {state}"))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `deploy of web 1.2.0 (sha256:ab12cd34ef56…)` or `rollback of d-…-1 to web 1.1.0
    /// (…)`.
    pub fn title(&self) -> String {
        let d = &self.deployment;
        let what = match (&d.rollback_of, self.is_rollback()) {
            (Some(of), true) => format!("rollback of {of} to"),
            (None, true) => "rollback to".to_string(),
            _ => "deploy of".to_string(),
        };
        format!(
            "{what} {} {} ({})",
            shown(&d.application),
            shown(&d.label),
            short_digest(&d.digest)
        )
    }
}

/// Read the deployments of `run_id`, oldest first.
pub fn read(store: &Store, run_id: &str) -> Result<Vec<DeploymentStory>, StateError> {
    let rows = store.deployments(run_id)?;
    let mut stories = Vec::with_capacity(rows.len());
    for row in &rows {
        let events = store.deployment_events(&row.id)?;
        stories.push(story(row.clone(), &events, &rows));
    }
    Ok(stories)
}

/// The story of one deployment from its recorded events; `all` are the run's
/// deployments (to find the rollback that followed it).
pub fn story(
    deployment: DeploymentRow,
    events: &[DeploymentEventRow],
    all: &[DeploymentRow],
) -> DeploymentStory {
    let mut names: Vec<String> = deployment.targets.clone();
    for e in events {
        if !e.target.is_empty() && e.event != "Bake" && !names.contains(&e.target) {
            names.push(e.target.clone());
        }
    }
    let ended = deployment.finished_at.is_some();
    let succeeded = deployment.state == "succeeded";
    let outcomes = names
        .iter()
        .map(|name| {
            let mine: Vec<&DeploymentEventRow> = events
                .iter()
                .filter(|e| &e.target == name && e.event != "Bake")
                .collect();
            outcome(name, &mine, ended, succeeded)
        })
        .collect();
    let failure = events
        .iter()
        .find(|e| e.state == "failed" && e.event != "Bake")
        .or_else(|| events.iter().find(|e| e.state == "failed"))
        .cloned();
    let bake_events: Vec<&DeploymentEventRow> =
        events.iter().filter(|e| e.event == "Bake").collect();
    let mut bakes: Vec<DeploymentEventRow> = bake_events
        .iter()
        .filter(|e| e.state != "started")
        .map(|e| (*e).clone())
        .collect();
    if let Some(last) = bake_events.last()
        && last.state == "started"
    {
        bakes.push((*last).clone());
    }
    let rolled_back_by = all
        .iter()
        .find(|d| d.kind == "rollback" && d.rollback_of.as_deref() == Some(&deployment.id))
        .map(|d| RollbackEnd {
            id: d.id.clone(),
            state: d.state.clone(),
            reason: d.reason.clone(),
        });
    DeploymentStory {
        deployment,
        outcomes,
        failure,
        bakes,
        rolled_back_by,
    }
}

fn outcome(
    target: &str,
    events: &[&DeploymentEventRow],
    ended: bool,
    succeeded: bool,
) -> TargetOutcome {
    let done = events.iter().filter(|e| e.state != "started").count();
    let duration_ms = match (events.first(), events.last()) {
        (Some(a), Some(b)) => (b.at.as_millisecond() - a.at.as_millisecond()).max(0) as u64,
        _ => 0,
    };
    let failed = events.iter().find(|e| e.state == "failed");
    let last = events.last();
    let (state, event, detail) = match (failed, last) {
        (_, None) if ended => ("not reached", None, String::new()),
        (_, None) => ("waiting", None, String::new()),
        (Some(f), _) => ("failed", Some(f.event.clone()), f.detail.clone()),
        (None, Some(l)) if l.event == "Skip" => {
            ("skipped", Some(l.event.clone()), l.detail.clone())
        }
        (None, Some(l))
            if succeeded || (l.state == "succeeded" && LAST_EVENTS.contains(&l.event.as_str())) =>
        {
            ("healthy", Some(l.event.clone()), l.detail.clone())
        }
        (None, Some(l)) if ended => ("stopped", Some(l.event.clone()), l.detail.clone()),
        (None, Some(l)) => ("in progress", Some(l.event.clone()), l.detail.clone()),
    };
    TargetOutcome {
        target: target.to_string(),
        state: state.to_string(),
        event,
        detail,
        events: done,
        duration_ms,
    }
}

/// `sha256:ab12cd34ef56…`: enough to recognise, short enough for a line.
pub fn short_digest(digest: &str) -> String {
    let (algo, hex) = digest.split_once(':').unwrap_or(("", digest));
    let short: String = hex.chars().take(12).collect();
    let ellipsis = if hex.chars().count() > 12 { "…" } else { "" };
    if algo.is_empty() {
        format!("{short}{ellipsis}")
    } else {
        format!("{algo}:{short}{ellipsis}")
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The text lines of `sluice status` and `sluice explain`, each indented by `indent`;
/// `stamp` writes an instant the way the command does.
pub fn render_text(
    stories: &[DeploymentStory],
    indent: &str,
    stamp: impl Fn(jiff::Timestamp) -> String,
) -> String {
    let mut out = String::new();
    for s in stories {
        let d = &s.deployment;
        let _ = write!(
            out,
            "{indent}{} {} by {}/{}: {}",
            d.id,
            s.title(),
            d.stage,
            d.step,
            d.state
        );
        if let Some(reason) = &d.reason {
            let _ = write!(out, ": {}", shown(first_line(reason)));
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "{indent}  {} to {} target{} of group {} ({}), started {}{}",
            shown(&d.config),
            d.targets.len(),
            if d.targets.len() == 1 { "" } else { "s" },
            shown(&d.deployment_group),
            s.counts(),
            stamp(d.started_at),
            d.finished_at
                .map(|f| format!(", ended {}", stamp(f)))
                .unwrap_or_default()
        );
        if let Some(f) = &s.failure {
            let on = if f.target.is_empty() {
                String::new()
            } else {
                format!(" on {}", f.target)
            };
            let _ = writeln!(
                out,
                "{indent}  failed{on} at {}: {}",
                f.event,
                shown(first_line(&f.detail))
            );
        }
        for b in &s.bakes {
            let _ = writeln!(
                out,
                "{indent}  bake {}: {}",
                b.state,
                shown(first_line(&b.detail))
            );
        }
        for o in s
            .outcomes
            .iter()
            .filter(|o| !matches!(o.state.as_str(), "healthy" | "not reached" | "skipped"))
            .filter(|o| s.failure.as_ref().is_none_or(|f| f.target != o.target))
        {
            let _ = writeln!(
                out,
                "{indent}  {} {}{}",
                o.target,
                o.state,
                o.event
                    .as_ref()
                    .map(|e| format!(" after {e}"))
                    .unwrap_or_default()
            );
        }
        if let Some(r) = &s.rolled_back_by {
            let _ = write!(out, "{indent}  rolled back by {}: {}", r.id, r.state);
            if let Some(reason) = &r.reason {
                let _ = write!(out, ": {}", shown(first_line(reason)));
            }
            out.push('\n');
        }
    }
    out
}

/// Escape a Markdown table cell (one line, no `|`).
fn cell(s: &str) -> String {
    first_line(s).replace('|', "\\|")
}

/// The Markdown section of the GitHub job summary (empty when the run deployed nothing).
pub fn render_markdown(stories: &[DeploymentStory]) -> String {
    if stories.is_empty() {
        return String::new();
    }
    let mut md = String::new();
    let rollbacks = stories.iter().filter(|s| s.is_rollback()).count();
    let _ = write!(md, "\n### Deployments\n\n");
    if rollbacks > 0 {
        let _ = writeln!(
            md,
            "**{rollbacks} rollback{}**\n",
            if rollbacks == 1 { "" } else { "s" }
        );
    }
    let _ = writeln!(
        md,
        "| | deployment | kind | revision | configuration | targets | state |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for s in stories {
        let d = &s.deployment;
        let icon = match d.state.as_str() {
            "succeeded" => "✅",
            "in-progress" => "⏳",
            "interrupted" => "⚠️",
            "stopped" => "🛑",
            _ => "❌",
        };
        let kind = match &d.rollback_of {
            Some(of) if s.is_rollback() => format!("↩️ rollback of `{of}`"),
            _ => d.kind.clone(),
        };
        let mut state = d.state.clone();
        if let Some(reason) = &d.reason {
            state.push_str(": ");
            state.push_str(reason);
        }
        let _ = writeln!(
            md,
            "| {icon} | `{}` | {} | {} `{}` | {} | {} | {} |",
            d.id,
            cell(&kind),
            cell(&d.label),
            short_digest(&d.digest),
            cell(&d.config),
            cell(&s.counts()),
            cell(&state)
        );
    }
    let failures: Vec<&DeploymentStory> = stories.iter().filter(|s| s.failure.is_some()).collect();
    if !failures.is_empty() {
        md.push('\n');
        for s in failures {
            let f = s.failure.as_ref().expect("filtered on failure");
            let _ = writeln!(
                md,
                "- `{}` failed on `{}` at {}: {}",
                s.deployment.id,
                cell(&f.target),
                cell(&f.event),
                cell(&f.detail)
            );
        }
    }
    md
}

/// The deployments as `summary.json` lists them.
pub fn to_json(stories: &[DeploymentStory]) -> serde_json::Value {
    serde_json::to_value(stories).unwrap_or_default()
}

/// A store holding one run that deployed `web 1.2.0` to three targets, failed
/// ValidateService on `box-2` after a bake on `box-1`, and rolled both touched targets
/// back to `1.1.0`: what the tests of every view read.
#[cfg(test)]
pub(crate) mod fixture {
    use std::path::PathBuf;

    use crate::state::{
        Holder, HostState, NewDeployment, NewRun, RevisionRow, Store, TargetRecordRow, Trigger,
    };

    pub const RUN: &str = "r1";

    /// 2026-11-30T08:00:00Z plus `seconds`.
    pub fn t(seconds: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_796_025_600 + seconds).unwrap()
    }

    pub fn revision(deployment: &str, label: &str, digest: &str) -> RevisionRow {
        RevisionRow {
            deployment_id: deployment.into(),
            label: label.into(),
            digest: digest.into(),
            archive: format!("/opt/sluice/archives/{deployment}"),
            installed: vec!["/srv/web/server".into()],
            run_id: RUN.into(),
        }
    }

    pub const OLD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    pub const NEW: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    /// The store, and the lifecycle steps as they were recorded, in order (deployment,
    /// target, event, state, detail, second), for the live-lines test to replay.
    pub fn store(dir: &std::path::Path) -> Store {
        let store = Store::open(&dir.join("state.db")).unwrap();
        store
            .create_run(
                &NewRun {
                    run_id: RUN.into(),
                    pipeline: "shop".into(),
                    pipeline_file: PathBuf::from("/srv/shop/sluice.toml"),
                    pipeline_digest: "d1".into(),
                    run_dir: PathBuf::from("/srv/shop/.sluice/runs/r1"),
                    trigger: Trigger {
                        actor: "alice".into(),
                        ci: vec![],
                        git_commit: None,
                    },
                    started_at: t(0),
                },
                &Holder::current(),
            )
            .unwrap();
        for (target, label, digest) in [("box-1", "1.1.0", OLD), ("box-2", "1.1.0", OLD)] {
            store
                .write_target_record(
                    &TargetRecordRow {
                        application: "web".into(),
                        target: target.into(),
                        state: HostState::Healthy,
                        current: Some(revision("d-r0-1", label, digest)),
                        last_good: Some(revision("d-r0-1", label, digest)),
                        updated_at: t(0),
                    },
                    t(0),
                )
                .unwrap();
        }
        store
    }

    /// What happened, in order: `(target, event, state, detail, second)`; an empty
    /// target with event `Deployment` is a deployment's start or end (its detail the
    /// end's reason), and `Rollback` starts the rollback.
    pub const STEPS: &[(&str, &str, &str, &str, i64)] = &[
        ("", "Deployment", "started", "", 1),
        ("box-1", "ApplicationStop", "succeeded", "", 1),
        ("box-1", "DownloadBundle", "succeeded", "", 2),
        ("box-1", "BeforeInstall", "succeeded", "", 2),
        ("box-1", "Install", "succeeded", "", 3),
        ("box-1", "AfterInstall", "succeeded", "", 3),
        ("box-1", "ApplicationStart", "succeeded", "", 4),
        ("box-1", "ValidateService", "succeeded", "", 5),
        (
            "",
            "Bake",
            "started",
            "after wave one-box: 30s and 3 positive from web-health",
            5,
        ),
        (
            "",
            "Bake",
            "succeeded",
            "after wave one-box: 30s, 3 positive, 0 negative",
            35,
        ),
        ("box-2", "ApplicationStop", "succeeded", "", 36),
        ("box-2", "DownloadBundle", "succeeded", "", 36),
        ("box-2", "BeforeInstall", "succeeded", "", 37),
        ("box-2", "Install", "succeeded", "", 37),
        ("box-2", "AfterInstall", "succeeded", "", 38),
        ("box-2", "ApplicationStart", "succeeded", "", 38),
        (
            "box-2",
            "ValidateService",
            "failed",
            "scripts/validate.sh exited with code 3\ncurl: (7) Failed to connect to 127.0.0.1 port 8082",
            40,
        ),
        (
            "",
            "Deployment",
            "failed",
            "ValidateService failed on box-2",
            40,
        ),
        ("", "Rollback", "started", "", 41),
        ("box-1", "ApplicationStop", "succeeded", "", 41),
        (
            "box-1",
            "DownloadBundle",
            "skipped",
            "the archive is on the target",
            41,
        ),
        ("box-1", "BeforeInstall", "succeeded", "", 42),
        ("box-1", "Install", "succeeded", "", 42),
        ("box-1", "AfterInstall", "succeeded", "", 42),
        ("box-1", "ApplicationStart", "succeeded", "", 43),
        ("box-1", "ValidateService", "succeeded", "", 43),
        ("box-2", "ApplicationStop", "succeeded", "", 43),
        (
            "box-2",
            "DownloadBundle",
            "skipped",
            "the archive is on the target",
            43,
        ),
        ("box-2", "BeforeInstall", "succeeded", "", 44),
        ("box-2", "Install", "succeeded", "", 44),
        ("box-2", "AfterInstall", "succeeded", "", 44),
        ("box-2", "ApplicationStart", "succeeded", "", 45),
        ("box-2", "ValidateService", "succeeded", "", 45),
        (
            "",
            "Deployment",
            "succeeded",
            "box-1, box-2 are back on 1.1.0",
            46,
        ),
    ];

    /// Record step `i` of [`STEPS`]; returns the deployment it belongs to.
    pub fn record(store: &Store, i: usize) -> String {
        let (target, event, state, detail, second) = STEPS[i];
        let current = |store: &Store| {
            let all = store.deployments(RUN).unwrap();
            all.last().map(|d| d.id.clone()).unwrap_or_default()
        };
        match (target, event) {
            ("", "Deployment" | "Rollback") if state == "started" => {
                let rollback = event == "Rollback";
                let first = current(store);
                store
                    .begin_deployment(
                        &NewDeployment {
                            run_id: RUN.into(),
                            stage: "prod".into(),
                            step: "deploy".into(),
                            application: "web".into(),
                            deployment_group: "fleet".into(),
                            label: if rollback { "1.1.0" } else { "1.2.0" }.into(),
                            digest: if rollback { OLD } else { NEW }.into(),
                            kind: if rollback { "rollback" } else { "deploy" }.into(),
                            rollback_of: rollback.then_some(first),
                            config: "OneAtATime (minimum 2 of 3 healthy)".into(),
                            targets: if rollback {
                                vec!["box-1".into(), "box-2".into()]
                            } else {
                                vec!["box-1".into(), "box-2".into(), "box-3".into()]
                            },
                        },
                        t(second),
                    )
                    .unwrap()
            }
            ("", "Deployment") => {
                let id = current(store);
                store
                    .finish_deployment(&id, state, detail, t(second))
                    .unwrap();
                id
            }
            _ => {
                let id = current(store);
                store
                    .record_deployment_event(&id, target, event, state, detail, t(second))
                    .unwrap();
                id
            }
        }
    }

    /// The whole story recorded.
    pub fn recorded(dir: &std::path::Path) -> Store {
        let store = store(dir);
        for i in 0..STEPS.len() {
            record(&store, i);
        }
        store
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::{RUN, recorded, t};
    use super::*;

    fn stamp(t: jiff::Timestamp) -> String {
        t.strftime("%H:%M:%S").to_string()
    }

    #[test]
    fn a_failed_deployment_names_the_failing_target_its_bake_and_the_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let store = recorded(dir.path());
        let stories = read(&store, RUN).unwrap();
        assert_eq!(stories.len(), 2);
        let failed = &stories[0];
        assert_eq!(failed.counts(), "1 healthy, 1 failed, 1 not reached");
        let f = failed.failure.as_ref().unwrap();
        assert_eq!(
            (f.target.as_str(), f.event.as_str()),
            ("box-2", "ValidateService")
        );
        assert_eq!(failed.rolled_back_by.as_ref().unwrap().state, "succeeded");
        assert_eq!(failed.bakes.len(), 1);
        assert_eq!(stories[1].counts(), "2 healthy");
        assert!(stories[1].is_rollback());
        let _ = t(0);
        insta::assert_snapshot!(render_text(&stories, "  ", stamp));
    }

    #[test]
    fn the_job_summary_lists_deployments_and_rollbacks() {
        let dir = tempfile::tempdir().unwrap();
        let store = recorded(dir.path());
        let stories = read(&store, RUN).unwrap();
        insta::assert_snapshot!(render_markdown(&stories));
        assert_eq!(render_markdown(&[]), "");
    }

    #[test]
    fn a_deployment_under_way_shows_its_targets_in_progress_and_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::fixture::store(dir.path());
        // Up to box-2's ApplicationStart: box-1 done, box-2 under way, box-3 waiting.
        for i in 0..16 {
            super::fixture::record(&store, i);
        }
        let stories = read(&store, RUN).unwrap();
        assert_eq!(
            stories[0].counts(),
            "1 healthy, 1 in progress, 1 waiting",
            "box-3 is waiting, not counted as not reached: {:?}",
            stories[0].outcomes
        );
        assert_eq!(stories[0].outcomes[2].state, "waiting");
        assert!(stories[0].failure.is_none());
        assert!(stories[0].rolled_back_by.is_none());
    }
}
