//! The live lines of deployments: one line when a deployment starts and one when it
//! ends (a rollback marked as such, with what it undoes), one line per target when its
//! lifecycle is done (`box-1 1.2.0 healthy (7 events, 1.4s)`), every failure with its
//! detail, every skip, and the bakes between waves as they progress. Lifecycle steps
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

/// The lifecycle events after which a target is done and healthy: the last of
/// CodeDeploy's in-place order, and the plugin's own health verdict.
const DONE_EVENTS: [&str; 2] = ["ValidateService", "Health"];

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
        if lifecycle_event == "Bake" {
            return Some(bake_line(state, detail));
        }
        if target.is_empty() {
            return Some(match state.as_str() {
                "started" => self.started(stage, step, deployment_id, detail),
                _ => self.ended(deployment_id, state, detail, now),
            });
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
        let row = self.row(id);
        let progress = self
            .targets
            .entry((id.to_string(), target.to_string()))
            .or_insert_with(|| TargetProgress {
                first: now,
                ended: 0,
                last_event: String::new(),
                shown: false,
            });
        if state != "started" {
            progress.ended += 1;
        }
        progress.last_event = event.to_string();
        let took = seconds(now.saturating_duration_since(progress.first));
        match state {
            "failed" => {
                progress.shown = true;
                let mut s = format!("    {target} FAILED at {event}");
                let mut lines = detail.lines();
                if let Some(first) = lines.next() {
                    s.push_str(&format!(": {}", shown(first)));
                }
                for l in lines.take(DETAIL_LINES) {
                    s.push_str(&format!("\n      | {}", shown(l)));
                }
                Some(s)
            }
            _ if event == "Skip" => {
                progress.shown = true;
                let mut s = format!("    {target} skipped");
                if !detail.is_empty() {
                    s.push_str(&format!(": {}", shown(first_line(detail))));
                }
                Some(s)
            }
            "succeeded" if DONE_EVENTS.contains(&event) && !progress.shown => {
                progress.shown = true;
                let label = row.as_ref().map(|d| d.label.as_str()).unwrap_or("");
                let revision = match &row {
                    _ if label.is_empty() => String::new(),
                    Some(d) if d.kind == "rollback" => format!("back to {}, ", shown(label)),
                    _ => format!("{} ", shown(label)),
                };
                Some(format!(
                    "    {target} {revision}healthy ({}, {took})",
                    events_word(progress.ended)
                ))
            }
            _ if verbose => {
                let mut s = format!("      {target} {event} {state}");
                if !detail.is_empty() {
                    s.push_str(&format!(": {}", shown(first_line(detail))));
                }
                Some(s)
            }
            _ => None,
        }
    }
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
