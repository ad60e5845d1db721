//! The bake phase of a stage: after its steps pass and before the run leaves it, the
//! run stays in the stage until its `[stage.bake]` passes, fails, or is overridden.
//!
//! The bake's start is recorded once (`Store::start_bake`): a resumed run (after
//! `--no-wait`, a kill, a crash) continues the recorded bake and never starts the clock
//! over. Every poll interval ([`crate::clock::Clock::poll_interval`], or the shortest
//! interval of the bake's monitors when that is shorter) the data points of
//! the bake's monitors since that start are counted in the store and the bake decided
//! ([`crate::gates::bake::evaluate`]); the counts are recorded (`update_bake`) and
//! shown (an [`Event::Bake`]) whenever what they show changes. The end is recorded with
//! `finish_bake` (`passed`, `failed` or `overridden`) before it is shown. An override
//! of gate `bake` for the stage ends a bake that has not passed as `overridden`, and
//! the override is marked used. The stage's alarms gates are watched during the bake
//! as while its steps ran (`executor::watch`): an alarm that fires fails the bake.
//!
//! No SQL here: every statement lives in [`crate::state`].

use crate::config::Stage;
use crate::events::{Event, EventSink};
use crate::gates::Decision;
use crate::gates::bake::{BAKE_GATE, BakeProgress, BakeSpec, evaluate};
use crate::state::{BakeRow, RunState};

use super::durable::{Journal, Stopped};

/// How a stage's bake ended.
pub(super) enum BakeEnd {
    /// The bake passed (or was overridden): the stage passes.
    Passed,
    /// The bake failed: the stage fails and the run stops, for this reason.
    Failed(String),
    /// `--no-wait`: the run stops as waiting during the bake; `sluice resume` goes on.
    Stop(Stopped),
}

/// What ended the bake, as recorded.
const PASSED: &str = "passed";
const FAILED: &str = "failed";
const OVERRIDDEN: &str = "overridden";

/// Bake `stage` after its steps passed. A run without a state store (`--no-state`)
/// cannot count data points, so its bake fails rather than pass on no evidence; an
/// error is a store that cannot be written.
pub(super) async fn run_bake(
    journal: Option<&Journal>,
    stage: &Stage,
    spec: &BakeSpec,
    monitor_interval: Option<std::time::Duration>,
    no_wait: bool,
    events: &EventSink,
    alarm: impl std::future::Future<Output = String>,
) -> std::io::Result<BakeEnd> {
    let Some(journal) = journal else {
        let reason = format!(
            "stage `{}`: bake failed: the run has no state store (--no-state), so the data points of {} cannot be counted; run without --no-state",
            stage.name,
            spec.monitors.join(", ")
        );
        return Ok(BakeEnd::Failed(reason));
    };
    // The stage's alarms are watched during the bake as while its steps ran: one that
    // fires fails the bake.
    let end = tokio::select! {
        end = bake_stage(journal, stage, spec, monitor_interval, no_wait, events) => end,
        fired = alarm => alarm_fired(journal, stage, spec, &fired, events),
    };
    match end {
        Some(end) => Ok(end),
        None => Err(std::io::Error::other(journal.failure().unwrap_or_default())),
    }
}

/// Bake `stage` for the run of `journal`: wait in the process (or stop with
/// `no_wait`) until the bake passes, fails or is overridden. `None` when the store
/// cannot be written (the journal keeps why).
async fn bake_stage(
    journal: &Journal,
    stage: &Stage,
    spec: &BakeSpec,
    monitor_interval: Option<std::time::Duration>,
    no_wait: bool,
    events: &EventSink,
) -> Option<BakeEnd> {
    let run_id = journal.run_id.clone();
    let name = stage.name.clone();
    let started = journal.now();
    let row = journal.write(|s| s.start_bake(&run_id, &name, started))?;
    if let Some(end) = already_finished(&row) {
        return Some(end);
    }
    let mut shown: Option<String> = None;
    loop {
        let now = journal.now();
        let counts = journal.write(|s| s.point_counts(&spec.monitors, row.started_at, now))?;
        let progress = BakeProgress::new(spec, row.started_at, now, &counts);
        let decision = evaluate(&progress, counts.first_negative.as_ref());
        if !matches!(decision, Decision::Allow { .. }) {
            let overrides = journal.write(|s| s.active_overrides(&run_id, &name, now))?;
            if let Some(o) = overrides
                .iter()
                .filter(|o| o.gate == BAKE_GATE)
                .min_by_key(|o| (o.created_at, o.id))
            {
                let reason = format!(
                    "overridden by {} (override #{}: {}); the bake said: {}",
                    o.actor,
                    o.id,
                    o.reason,
                    decision.reason()
                );
                journal.write(|s| {
                    s.update_bake(&run_id, &name, progress.positive, progress.negative, now)?;
                    s.finish_bake(&run_id, &name, OVERRIDDEN, &reason, now)?;
                    s.use_override(o.id, now)
                })?;
                send(events, &name, OVERRIDDEN, &reason, progress);
                return Some(BakeEnd::Passed);
            }
        }
        match decision {
            Decision::Allow { reason } => {
                journal.write(|s| {
                    s.update_bake(&run_id, &name, progress.positive, progress.negative, now)?;
                    s.finish_bake(&run_id, &name, PASSED, &reason, now)
                })?;
                send(events, &name, PASSED, &reason, progress);
                return Some(BakeEnd::Passed);
            }
            Decision::Deny { reason } => {
                journal.write(|s| {
                    s.update_bake(&run_id, &name, progress.positive, progress.negative, now)?;
                    s.finish_bake(&run_id, &name, FAILED, &reason, now)
                })?;
                send(events, &name, FAILED, &reason, progress);
                return Some(BakeEnd::Failed(format!("stage `{name}`: {reason}")));
            }
            Decision::Wait { reason, .. } => {
                // Recorded, then shown, whenever what it shows changes (the counts, or
                // the time in the bake as the line rounds it).
                if shown.as_deref() != Some(reason.as_str()) {
                    let (positive, negative) = (progress.positive, progress.negative);
                    journal.write(|s| s.update_bake(&run_id, &name, positive, negative, now))?;
                    send(events, &name, "baking", &reason, progress);
                    shown = Some(reason.clone());
                }
                if no_wait {
                    let why = format!("stage `{name}`: {reason}");
                    let at = journal.now();
                    journal
                        .write(|s| s.set_run_state(&run_id, RunState::Waiting, Some(&why), at))?;
                    return Some(BakeEnd::Stop(Stopped::Waiting {
                        stage: name,
                        reason: why,
                        in_bake: true,
                    }));
                }
            }
        }
        // As often as the monitors bring news: a negative point fails the bake within
        // one of their intervals, and a passing bake does not linger a poll too long.
        let poll =
            monitor_interval.map_or(journal.poll_interval(), |m| m.min(journal.poll_interval()));
        tokio::time::sleep(poll).await;
    }
}

/// An alarm of the stage fired during its bake: the bake fails, recorded, naming it.
fn alarm_fired(
    journal: &Journal,
    stage: &Stage,
    spec: &BakeSpec,
    fired: &str,
    events: &EventSink,
) -> Option<BakeEnd> {
    let (run_id, name) = (journal.run_id.clone(), stage.name.clone());
    let now = journal.now();
    let row = journal.write(|s| s.bake(&run_id, &name))??;
    if let Some(end) = already_finished(&row) {
        return Some(end);
    }
    let counts = journal.write(|s| s.point_counts(&spec.monitors, row.started_at, now))?;
    let progress = BakeProgress::new(spec, row.started_at, now, &counts);
    let fired = fired.replace("fired while the stage ran", "fired during the bake");
    let reason = format!("bake failed: {fired} ({})", progress.line());
    journal.write(|s| {
        s.update_bake(&run_id, &name, progress.positive, progress.negative, now)?;
        s.finish_bake(&run_id, &name, FAILED, &reason, now)
    })?;
    send(events, &name, FAILED, &reason, progress);
    Some(BakeEnd::Failed(format!("stage `{name}`: {reason}")))
}

/// A bake recorded as finished before the runner stopped (it died between the end of
/// the bake and the stage's exit): its outcome stands.
fn already_finished(row: &BakeRow) -> Option<BakeEnd> {
    match row.outcome.as_deref()? {
        PASSED | OVERRIDDEN => Some(BakeEnd::Passed),
        _ => Some(BakeEnd::Failed(format!(
            "stage `{}`: {}",
            row.stage,
            row.detail.as_deref().unwrap_or("bake failed")
        ))),
    }
}

fn send(events: &EventSink, stage: &str, state: &str, reason: &str, progress: BakeProgress) {
    events.send(Event::Bake {
        stage: stage.to_string(),
        state: state.to_string(),
        reason: reason.to_string(),
        progress,
    });
}
