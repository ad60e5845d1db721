//! The executor's side of deploy steps (steps with a `targets` grant): what their
//! `deploy-targets` import needs from the run ([`setting`]: the pipeline's targets,
//! the store and clock to record in, the event sink), and what a stage tells them
//! while they run ([`StageDeploySignals`]):
//!
//! - an alarm of the stage that fires does not abort a deploy step (a host left half
//!   installed is worse than one rolled back): the reason is raised here, `alarm()`
//!   returns it, and the step is let finish, rolling back; the other steps of the stage
//!   are stopped as before, and the stage fails naming the alarm (`run_stage`);
//! - `bake()` between waves: recorded (a `Bake` lifecycle step of the deployment,
//!   started, then succeeded or failed with the progress line), then decided every
//!   poll by [`crate::gates::bake::evaluate`], the same rules as a stage's bake (the
//!   minimum time AND the positive data points of its monitors since it started, AND
//!   no negative one), until it passes, a negative point or the timeout fails it, or an
//!   alarm of the stage fires. Time is the run's clock (the test clock under
//!   `SLUICE_TEST_CLOCK`).
//!
//! A deploy step that was running when the runner died has no final record, so
//! `sluice resume` runs it again like any unfinished step; its `begin` records the
//! deployment the dead runner left as interrupted, and the targets' records, in the
//! store, are what the new attempt reads.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::capabilities::deploy::{DeployRecorder, DeploySetting, StageSignals};
use crate::config::{SourcePos, Step};
use crate::gates::Decision;
use crate::gates::bake::{BakeProgress, BakeSpec, evaluate};
use crate::host::bindings::sluice::plugin::deploy_targets as wit;
use crate::monitors::MonitorSpec;

use super::RunContext;

/// What one stage tells its deploy steps: the alarm that fired, and how to bake.
pub(super) struct StageDeploySignals {
    alarm: Mutex<Option<String>>,
    /// The pipeline's monitors: the ids a bake may name, and their intervals.
    monitors: Arc<Vec<MonitorSpec>>,
}

impl StageDeploySignals {
    pub(super) fn new(monitors: Arc<Vec<MonitorSpec>>) -> Arc<StageDeploySignals> {
        Arc::new(StageDeploySignals {
            alarm: Mutex::new(None),
            monitors,
        })
    }

    /// An alarm of the stage fired: deploy steps see `reason` from now on.
    pub(super) fn raise(&self, reason: &str) {
        super::lock(&self.alarm).get_or_insert_with(|| reason.to_string());
    }

    async fn bake(
        &self,
        rec: &DeployRecorder,
        deployment_id: &str,
        request: &wit::BakeRequest,
    ) -> Result<String, String> {
        let label = &request.label;
        let declared: Vec<&str> = self.monitors.iter().map(|m| m.id.as_str()).collect();
        let unknown: Vec<&str> = request
            .monitors
            .iter()
            .map(String::as_str)
            .filter(|m| !declared.contains(m))
            .collect();
        if request.monitors.is_empty() || !unknown.is_empty() {
            let what = if unknown.is_empty() {
                "names no monitor; a bake passes on evidence, never on none".to_string()
            } else {
                format!("names no monitor `{}`", unknown.join("`, `"))
            };
            return Err(format!(
                "bake {label}: {what}; the pipeline declares {}",
                if declared.is_empty() {
                    "no [[monitor]]".to_string()
                } else {
                    declared.join(", ")
                }
            ));
        }
        let spec = BakeSpec {
            duration: Duration::from_millis(request.duration_ms),
            positive: request.positive.max(1),
            monitors: request.monitors.clone(),
            timeout: request.timeout_ms.map(Duration::from_millis),
            pos: SourcePos {
                file: Default::default(),
                line: 0,
                column: 0,
            },
        };
        let started = rec.now();
        let empty = crate::state::PointCounts::default();
        let start_line = BakeProgress::new(&spec, started, started, &empty).line();
        rec.record_event(
            deployment_id,
            "",
            "Bake",
            "started",
            &format!("{label}: {start_line}"),
        )?;
        // As often as the monitors bring news, at most every poll interval.
        let poll = self
            .monitors
            .iter()
            .filter(|m| spec.monitors.contains(&m.id))
            .map(|m| m.interval)
            .min()
            .map_or(rec.clock.poll_interval(), |m| {
                m.min(rec.clock.poll_interval())
            });
        loop {
            let now = rec.now();
            let counts = rec
                .store
                .point_counts(&spec.monitors, started, now)
                .map_err(|e| format!("bake {label}: cannot count data points: {e}"))?;
            let progress = BakeProgress::new(&spec, started, now, &counts);
            let decision = match StageSignals::alarm(self) {
                Some(alarm) => Decision::Deny {
                    reason: format!(
                        "bake failed: {} ({})",
                        alarm.replace("fired while the stage ran", "fired during the bake"),
                        progress.line()
                    ),
                },
                None => evaluate(&progress, counts.first_negative.as_ref()),
            };
            match decision {
                Decision::Allow { reason } => {
                    let detail = format!("{label}: {reason}");
                    rec.record_event(deployment_id, "", "Bake", "succeeded", &detail)?;
                    return Ok(detail);
                }
                Decision::Deny { reason } => {
                    let detail = format!("{label}: {reason}");
                    rec.record_event(deployment_id, "", "Bake", "failed", &detail)?;
                    return Err(detail);
                }
                Decision::Wait { .. } => tokio::time::sleep(poll).await,
            }
        }
    }
}

impl StageSignals for StageDeploySignals {
    fn alarm(&self) -> Option<String> {
        super::lock(&self.alarm).clone()
    }

    fn bake<'a>(
        &'a self,
        recorder: &'a DeployRecorder,
        deployment_id: &'a str,
        request: &'a wit::BakeRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send + 'a>>
    {
        Box::pin(StageDeploySignals::bake(
            self,
            recorder,
            deployment_id,
            request,
        ))
    }
}

/// What a step with a `targets` grant needs to deploy; `None` for other steps. A run
/// without a state store gets no recorder: its deploy calls are denied.
pub(super) fn setting(
    ctx: &RunContext,
    stage: &str,
    step: &Step,
    signals: &Arc<StageDeploySignals>,
) -> Option<DeploySetting> {
    if step.grants.targets.is_empty() {
        return None;
    }
    Some(DeploySetting {
        targets: ctx.targets.clone(),
        recorder: ctx.journal.as_ref().map(|j| DeployRecorder {
            store: j.store().clone(),
            clock: j.clock().clone(),
            run_id: ctx.run_id.clone(),
            stage: stage.to_string(),
            step: step.id.clone(),
            events: ctx.events.clone(),
        }),
        signals: signals.clone(),
        redactor: ctx.redactor.clone(),
    })
}
