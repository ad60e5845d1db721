//! The live lines of deployments: one line when a deployment starts and one when it
//! ends (a rollback marked as such, with what it undoes), one line per target when its
//! lifecycle is done (`box-1 1.2.0 healthy (7 events, 1.4s)`), every failure with its
//! detail, every skip, and the bakes between waves as they progress. A target is done
//! when it passed ValidateService and then its health check (`Health`, which follows
//! it target by target when the step checks health), or once the deployment moves on
//! to another lifecycle event, a bake or its end. Lifecycle steps
//! that succeed are counted, not printed (unless `--verbose`), so a deployment to 50
//! targets reads as about 50 lines, not 350.
//!
//! Events carry ids; what a deployment is (its kind, revision, configuration, what a
//! rollback undoes) is read from the state store, where the host recorded it before
//! the event was sent. Without a store (`--no-state`) the event's own detail is shown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::events::Event;
use crate::reports::deployments::{self, short_digest};
use crate::state::{DeploymentRow, Store};

use super::{first_line, seconds, shown};

/// Lines of a failure's detail shown below it (hook output tails run longer).
const DETAIL_LINES: usize = 6;

/// What the renderer knows of the deployments under way.
pub struct DeployLines {
    store: Option<Arc<Store>>,
    known: HashMap<String, Option<DeploymentRow>>,
    targets: HashMap<(String, String), TargetProgress>,
}

/// One target's lifecycle in one deployment, as the events came.
struct TargetProgress {
    first: Instant,
    /// Lifecycle steps that ended (succeeded, failed or skipped).
    ended: usize,
    last_event: String,
    /// When it passed ValidateService (its line waits for its health check).
    validated: Option<Instant>,
    /// Its line was printed (done, failed or skipped).
    shown: bool,
}

impl DeployLines {
    pub fn new(store: Option<Arc<Store>>) -> DeployLines {
        DeployLines {
            store,
            known: HashMap::new(),
            targets: HashMap::new(),
        }
    }

    /// The lines to print for `e` (None: nothing, or not a deployment event); `now` is
    /// when it arrived.
    pub fn line(&mut self, e: &Event, verbose: bool, now: Instant) -> Option<String> {
        let Event::Deploy {
            stage,
            step,
            deployment_id,
            target,
            lifecycle_event,
            state,
            detail,
        } = e
        else {
            return None;
        };
        if target.is_empty() {
            let mut lines = self.flush_done(deployment_id);
            lines.push(match (lifecycle_event.as_str(), state.as_str()) {
                ("Bake", _) => bake_line(state, detail),
                (_, "started") => self.started(stage, step, deployment_id, detail),
                _ => self.ended(deployment_id, state, detail, now),
            });
            return Some(lines.join("\n"));
        }
        self.target_event(
            deployment_id,
            target,
            lifecycle_event,
            state,
            detail,
            verbose,
            now,
        )
    }

    fn row(&mut self, id: &str) -> Option<DeploymentRow> {
        if let Some(known) = self.known.get(id) {
            return known.clone();
        }
        let row = self
            .store
            .as_ref()
            .and_then(|s| s.deployment(id).ok().flatten());
        self.known.insert(id.to_string(), row.clone());
        row
    }

    fn started(&mut self, stage: &str, step: &str, id: &str, detail: &str) -> String {
        // Read afresh: the row was written just before this event.
        self.known.remove(id);
        match self.row(id) {
            Some(d) => {
                let head = if d.kind == "rollback" {
                    match &d.rollback_of {
                        Some(of) => format!("  ROLLBACK {id} {stage}/{step} (undoes {of})"),
                        None => format!("  ROLLBACK {id} {stage}/{step}"),
                    }
                } else {
                    format!("  DEPLOY {id} {stage}/{step}")
                };
                format!(
                    "{head}: {} {} ({}) to {} target{}, {}",
                    shown(&d.application),
                    shown(&d.label),
                    short_digest(&d.digest),
                    d.targets.len(),
                    if d.targets.len() == 1 { "" } else { "s" },
                    shown(&d.config)
                )
            }
            None => {
                let mut s = format!("  DEPLOY {id} {stage}/{step} started");
                if !detail.is_empty() {
                    s.push_str(": ");
                    s.push_str(&shown(first_line(detail)));
                }
                s
            }
        }
    }

    fn ended(&mut self, id: &str, state: &str, detail: &str, now: Instant) -> String {
        let mut out = String::new();
        // Targets the deployment left before their lifecycle was done.
        let mut open: Vec<(&(String, String), &TargetProgress)> = self
            .targets
            .iter()
            .filter(|((d, _), p)| d == id && !p.shown)
            .collect();
        open.sort_by_key(|(_, p)| p.first);
        for ((_, target), p) in open {
            out.push_str(&format!(
                "    {target} stopped after {} ({}, {})\n",
                p.last_event,
                events_word(p.ended),
                seconds(now.saturating_duration_since(p.first))
            ));
        }
        self.targets.retain(|(d, _), _| d != id);
        let row = self.row(id);
        let word = match &row {
            Some(d) if d.kind == "rollback" => "ROLLBACK",
            _ => "DEPLOY",
        };
        out.push_str(&format!("  {word} {id} {}", state.to_uppercase()));
        // The targets' tally, as recorded.
        let counts = self.store.as_ref().and_then(|store| {
            let d = store.deployment(id).ok().flatten()?;
            let events = store.deployment_events(id).ok()?;
            Some(deployments::story(d, &events, &[]).counts())
        });
        if !detail.is_empty() {
            out.push_str(": ");
            out.push_str(&shown(first_line(detail)));
        }
        if let Some(c) = counts.filter(|c| !c.is_empty()) {
            out.push_str(&format!(" ({c})"));
        }
        self.known.remove(id);
        out
    }

    /// The "done" lines of the targets of deployment `id` that passed ValidateService
    /// and are not waiting on their own health check, in the order they passed.
    fn flush_done(&mut self, id: &str) -> Vec<String> {
        let row = self.row(id);
        let mut done: Vec<(&(String, String), &mut TargetProgress)> = self
            .targets
            .iter_mut()
            .filter(|((d, _), p)| d == id && p.validated.is_some() && !p.shown)
            .collect();
        done.sort_by_key(|(_, p)| p.validated);
        done.into_iter()
            .map(|((_, target), p)| {
                p.shown = true;
                done_line(target, row.as_ref(), p, p.validated.unwrap_or(p.first))
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn target_event(
        &mut self,
        id: &str,
        target: &str,
        event: &str,
        state: &str,
        detail: &str,
        verbose: bool,
        now: Instant,
    ) -> Option<String> {
        // A target that passed ValidateService is done once its health check (which
        // follows it, target by target) passed, or once the deployment moves on.
        let mut lines = if event == "Health" || event == "ValidateService" {
            Vec::new()
        } else {
            self.flush_done(id)
        };
        let row = self.row(id);
        let progress = self
            .targets
            .entry((id.to_string(), target.to_string()))
            .or_insert_with(|| TargetProgress {
                first: now,
                ended: 0,
                last_event: String::new(),
                validated: None,
                shown: false,
            });
        if state != "started" {
            progress.ended += 1;
        }
        progress.last_event = event.to_string();
        match state {
            "failed" => {
                progress.shown = true;
                let mut s = format!("    {target} FAILED at {event}");
                let mut detail_lines = detail.lines();
                if let Some(first) = detail_lines.next() {
                    s.push_str(&format!(": {}", shown(first)));
                }
                for l in detail_lines.take(DETAIL_LINES) {
                    s.push_str(&format!("\n      | {}", shown(l)));
                }
                lines.push(s);
            }
            _ if event == "Skip" => {
                progress.shown = true;
                let mut s = format!("    {target} skipped");
                if !detail.is_empty() {
                    s.push_str(&format!(": {}", shown(first_line(detail))));
                }
                lines.push(s);
            }
            "succeeded" if event == "ValidateService" && !progress.shown => {
                progress.validated = Some(now);
            }
            "succeeded" if event == "Health" && !progress.shown => {
                progress.shown = true;
                lines.push(done_line(target, row.as_ref(), progress, now));
            }
            "succeeded" if event == "End" && !detail.is_empty() => {
                progress.shown = true;
                lines.push(format!("    {target}: {}", shown(first_line(detail))));
            }
            _ if verbose => {
                let mut s = format!("      {target} {event} {state}");
                if !detail.is_empty() {
                    s.push_str(&format!(": {}", shown(first_line(detail))));
                }
                lines.push(s);
            }
            _ => {}
        }
        (!lines.is_empty()).then(|| lines.join("\n"))
    }
}

/// `box-1 1.2.0 healthy (7 events, 1.4s)`; `box-1 back to 1.1.0, healthy (...)` in a
/// rollback.
fn done_line(target: &str, row: Option<&DeploymentRow>, p: &TargetProgress, at: Instant) -> String {
    let label = row.map(|d| d.label.as_str()).unwrap_or("");
    let revision = match row {
        _ if label.is_empty() => String::new(),
        Some(d) if d.kind == "rollback" => format!("back to {}, ", shown(label)),
        _ => format!("{} ", shown(label)),
    };
    format!(
        "    {target} {revision}healthy ({}, {})",
        events_word(p.ended),
        seconds(at.saturating_duration_since(p.first))
    )
}

fn events_word(n: usize) -> String {
    format!("{n} event{}", if n == 1 { "" } else { "s" })
}

fn bake_line(state: &str, detail: &str) -> String {
    let word = match state {
        "started" => "baking",
        "succeeded" => "bake passed",
        "failed" => "bake FAILED",
        other => other,
    };
    let mut s = format!("    {word}");
    if !detail.is_empty() {
        s.push_str(&format!(": {}", shown(first_line(detail))));
    }
    s
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::reports::deployments::fixture;

    fn event(
        deployment_id: &str,
        target: &str,
        lifecycle_event: &str,
        state: &str,
        detail: &str,
    ) -> Event {
        Event::Deploy {
            stage: "prod".into(),
            step: "deploy".into(),
            deployment_id: deployment_id.into(),
            target: target.into(),
            lifecycle_event: lifecycle_event.into(),
            state: state.into(),
            detail: detail.into(),
        }
    }

    /// Record each step of the fixture, then show its event, as the host does.
    fn replay(verbose: bool) -> String {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(fixture::store(dir.path()));
        let mut lines = DeployLines::new(Some(store.clone()));
        let start = Instant::now();
        let mut out = Vec::new();
        for (i, (target, ev, state, detail, second)) in fixture::STEPS.iter().enumerate() {
            let id = fixture::record(&store, i);
            let ev = if *ev == "Rollback" { "Deployment" } else { ev };
            let now = start + Duration::from_secs(*second as u64);
            if let Some(l) = lines.line(&event(&id, target, ev, state, detail), verbose, now) {
                out.push(l);
            }
        }
        out.join("\n")
    }

    #[test]
    fn a_deployment_shows_one_line_per_target_its_failure_bake_and_rollback() {
        insta::assert_snapshot!(replay(false));
    }

    #[test]
    fn verbose_shows_every_lifecycle_step() {
        let text = replay(true);
        assert!(
            text.contains("      box-1 BeforeInstall succeeded"),
            "{text}"
        );
        assert!(
            text.contains("DownloadBundle skipped: the archive is on the target"),
            "{text}"
        );
    }

    #[test]
    fn fifty_targets_read_as_about_fifty_lines() {
        let mut lines = DeployLines::new(None);
        let now = Instant::now();
        let mut shown = 0;
        let events = [
            "ApplicationStop",
            "DownloadBundle",
            "BeforeInstall",
            "Install",
            "AfterInstall",
            "ApplicationStart",
            "ValidateService",
        ];
        let mut all = vec![event("d-1", "", "Deployment", "started", "")];
        for n in 0..50 {
            for e in events {
                all.push(event("d-1", &format!("box-{n}"), e, "started", ""));
                all.push(event("d-1", &format!("box-{n}"), e, "succeeded", ""));
            }
        }
        all.push(event("d-1", "", "Deployment", "succeeded", "50 targets"));
        for e in &all {
            shown += lines.line(e, false, now).map_or(0, |l| l.lines().count());
        }
        assert_eq!(shown, 52, "a start, 50 targets, an end");
    }

    #[test]
    fn a_batch_in_lockstep_shows_each_target_once_its_health_check_ended() {
        let mut lines = DeployLines::new(None);
        let t0 = Instant::now();
        let mut out = Vec::new();
        for (e, s) in [
            (event("d-1", "", "Deployment", "started", "web 1.2.0"), 0),
            (event("d-1", "box-1", "ValidateService", "succeeded", ""), 1),
            (event("d-1", "box-2", "ValidateService", "succeeded", ""), 1),
            (
                event(
                    "d-1",
                    "box-1",
                    "Health",
                    "started",
                    "http://127.0.0.1:18081/health",
                ),
                2,
            ),
            (
                event("d-1", "box-1", "Health", "succeeded", "GET /health: 200"),
                2,
            ),
            (
                event(
                    "d-1",
                    "box-2",
                    "Health",
                    "started",
                    "http://127.0.0.1:18082/health",
                ),
                3,
            ),
            (
                event(
                    "d-1",
                    "box-2",
                    "Health",
                    "failed",
                    "GET /health: 503, expected 200 after 3 attempts",
                ),
                4,
            ),
            (event("d-1", "box-3", "ValidateService", "succeeded", ""), 5),
            (
                event("d-1", "", "Deployment", "failed", "Health failed on box-2"),
                6,
            ),
        ] {
            if let Some(l) = lines.line(&e, false, t0 + Duration::from_secs(s)) {
                out.push(l);
            }
        }
        insta::assert_snapshot!(out.join("\n"), @r"
          DEPLOY d-1 prod/deploy started: web 1.2.0
            box-1 healthy (2 events, 1.0s)
            box-2 FAILED at Health: GET /health: 503, expected 200 after 3 attempts
            box-3 healthy (1 event, 0ms)
          DEPLOY d-1 FAILED: Health failed on box-2
        ");
    }

    #[test]
    fn a_deployment_ended_before_its_targets_were_done_says_where_each_stopped() {
        let mut lines = DeployLines::new(None);
        let t0 = Instant::now();
        let mut out = Vec::new();
        for (e, s) in [
            (event("d-1", "", "Deployment", "started", "web 1.2.0"), 0),
            (event("d-1", "box-1", "BeforeInstall", "succeeded", ""), 1),
            (event("d-1", "box-1", "Install", "succeeded", ""), 2),
            (event("d-1", "box-1", "AfterInstall", "started", ""), 2),
            (
                event(
                    "d-1",
                    "",
                    "Deployment",
                    "stopped",
                    "alarm web-errors fired: 5xx above 1%",
                ),
                3,
            ),
        ] {
            if let Some(l) = lines.line(&e, false, t0 + Duration::from_secs(s)) {
                out.push(l);
            }
        }
        insta::assert_snapshot!(out.join("\n"), @r"
          DEPLOY d-1 prod/deploy started: web 1.2.0
            box-1 stopped after AfterInstall (2 events, 2.0s)
          DEPLOY d-1 STOPPED: alarm web-errors fired: 5xx above 1%
        ");
    }
}
