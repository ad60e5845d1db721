//! Running a monitor's checks on its interval, drift-free: the next check is due at
//! the previous *scheduled* start plus the interval (never at the previous end plus
//! the interval, which drifts by each check's duration). A check that starts so late
//! that whole intervals have passed skips those ticks, counted, instead of running
//! them back to back. Each check runs under the monitor's timeout on the monitor's
//! one instance, and is recorded with [`Store::record_check`] before anyone is told
//! of it.
//!
//! Two clocks: ticks are real time ([`tokio::time::Instant`]); what is recorded is
//! the run's clock ([`crate::clock::Clock`], the test clock in tests), so gates and
//! bakes compare checks with the same "now" they use.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::clock::Clock;
use crate::host::bindings::types;
use crate::host::monitor::MonitorInstance;
use crate::monitors::MonitorSpec;
use crate::secrets::redact::Redactor;
use crate::state::{CheckOutcome, CheckRow, DataPointRow, Store};

/// Ticks at a fixed interval from a start, counting the ticks it skips.
#[derive(Debug)]
pub struct Ticks {
    interval: Duration,
    next: Instant,
    /// Ticks skipped so far, because a tick came when a later one was already due.
    pub skipped: u64,
}

impl Ticks {
    /// Ticks at `start`, `start + interval`, ...
    pub fn new(start: Instant, interval: Duration) -> Ticks {
        Ticks {
            interval,
            next: start,
            skipped: 0,
        }
    }

    /// The next tick that is due at `now` or later, skipping (and counting) every
    /// tick already past by a whole interval; it becomes the current one.
    pub fn advance(&mut self, now: Instant) -> Instant {
        let mut due = self.next;
        if now > due + self.interval {
            let late = now - due;
            let behind = (late.as_nanos() / self.interval.as_nanos().max(1)) as u32;
            due += self.interval * behind;
            self.skipped += u64::from(behind);
        }
        self.next = due + self.interval;
        due
    }

    /// Wait for the next tick; returns when it was scheduled.
    pub async fn tick(&mut self) -> Instant {
        let due = self.advance(Instant::now());
        tokio::time::sleep_until(due).await;
        due
    }
}

/// One check as recorded, with what the plugin measured.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub row: CheckRow,
    pub points: Vec<DataPointRow>,
    pub metrics: Vec<types::Metric>,
    /// How long the check took (real time).
    pub latency: Duration,
    /// How late it started against its tick (real time).
    pub lateness: Duration,
    /// Ticks skipped so far.
    pub skipped: u64,
}

/// Where and how a monitor's checks are recorded.
pub struct Recorder {
    pub store: Arc<Store>,
    pub clock: Arc<dyn Clock>,
    /// Who runs the checks: `run <id>` or `canary <file>`.
    pub source: String,
    /// The folder of the file declaring the monitor (`check-input.workdir`).
    pub workdir: PathBuf,
    /// Every text stored or shown goes through it.
    pub redactor: Arc<Redactor>,
}

/// The instant of the run's clock that corresponds to the real-time `at`.
fn clock_instant(clock: &dyn Clock, at: Instant) -> jiff::Timestamp {
    let now = clock.now();
    let real_now = Instant::now();
    let delta = if at >= real_now {
        jiff::SignedDuration::try_from(at - real_now).unwrap_or_default()
    } else {
        -jiff::SignedDuration::try_from(real_now - at).unwrap_or_default()
    };
    now.checked_add(delta).unwrap_or(now)
}

/// Run one check on `instance` (scheduled at `scheduled`), record it, and return it.
pub async fn check_once(
    spec: &MonitorSpec,
    instance: &mut MonitorInstance,
    recorder: &Recorder,
    scheduled: Instant,
    skipped: u64,
) -> Result<CheckReport, crate::state::StateError> {
    let started = Instant::now();
    let scheduled_at = clock_instant(recorder.clock.as_ref(), scheduled);
    let started_at = recorder.clock.now();
    let wall_scheduled = std::time::SystemTime::now()
        .checked_sub(started.saturating_duration_since(scheduled))
        .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
    let input = types::CheckInput {
        monitor: spec.id.clone(),
        config: spec.with.to_string(),
        workdir: recorder.workdir.display().to_string(),
        sequence: 0,
        scheduled_ms: wall_scheduled
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };
    let outcome = instance.check(input, spec.timeout).await;
    let latency = started.elapsed();
    let finished_at = recorder.clock.now().max(started_at);
    let redact = |s: &str| recorder.redactor.redact(s).into_owned();
    let (outcome, summary, points, metrics) = match outcome {
        Ok(result) => {
            let points: Vec<DataPointRow> = result
                .data_points
                .iter()
                .map(|p| DataPointRow {
                    monitor: spec.id.clone(),
                    name: redact(&p.name),
                    positive: p.positive,
                    value: result
                        .metrics
                        .iter()
                        .find(|m| m.name == p.name)
                        .map(|m| m.value),
                    detail: redact(&p.detail),
                    // The run's clock, not the plugin's: a bake counts points with the
                    // same clock it started by.
                    at: finished_at,
                })
                .collect();
            let outcome = if points.is_empty() {
                CheckOutcome::NoData
            } else {
                CheckOutcome::Data
            };
            (outcome, redact(&result.summary), points, result.metrics)
        }
        Err(failure) => {
            let mut text = failure.to_string();
            // The monitor's own last line: not the runner's (a trap's wasm frames).
            let tail = instance.log_tail();
            if let Some(last) = tail
                .iter()
                .rev()
                .find(|line| !line.starts_with("[sluice] "))
            {
                text.push_str(&format!(" (its log ends: {last})"));
            }
            (CheckOutcome::Error, redact(&text), Vec::new(), Vec::new())
        }
    };
    let row = CheckRow {
        id: 0,
        monitor: spec.id.clone(),
        source: recorder.source.clone(),
        scheduled_at,
        started_at,
        finished_at,
        outcome,
        positive: points.iter().filter(|p| p.positive).count() as u32,
        negative: points.iter().filter(|p| !p.positive).count() as u32,
        summary,
    };
    let id = recorder.store.record_check(&row, &points)?;
    Ok(CheckReport {
        row: CheckRow { id, ..row },
        points,
        metrics,
        latency,
        lateness: started.saturating_duration_since(scheduled),
        skipped,
    })
}

/// Check `spec` on its interval from now on, for ever or for `max_checks` checks,
/// telling `on_check` of each recorded check. Holds one of the engine's instance
/// slots for as long as it runs (the monitor's one instance lives between checks).
/// A check that cannot be recorded ends the loop with the store's error.
pub async fn run_checks(
    spec: &MonitorSpec,
    mut instance: MonitorInstance,
    recorder: &Recorder,
    max_checks: Option<u64>,
    mut on_check: impl FnMut(&CheckReport),
) -> Result<(), crate::state::StateError> {
    let plugin = instance.plugin().clone();
    let _slot = plugin.slots().acquire(plugin.needs(), |_| {}).await;
    let mut ticks = Ticks::new(Instant::now(), spec.interval);
    let mut done = 0;
    while max_checks.is_none_or(|max| done < max) {
        let scheduled = ticks.tick().await;
        let report = check_once(spec, &mut instance, recorder, scheduled, ticks.skipped).await?;
        on_check(&report);
        done += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_scheduled_from_the_start_not_from_the_last_end() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut t = Ticks::new(start, ms(100));
        assert_eq!(t.advance(start), start);
        // The check took 30 ms: the next tick is still at 100 ms.
        assert_eq!(t.advance(start + ms(30)), start + ms(100));
        // Called 50 ms late: the tick keeps its time (it is due now), nothing skipped.
        assert_eq!(t.advance(start + ms(150)), start + ms(200));
        assert_eq!(t.skipped, 0);
    }

    #[test]
    fn ticks_missed_by_whole_intervals_are_skipped_and_counted_not_bunched() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut t = Ticks::new(start, ms(100));
        t.advance(start);
        // The next tick was due at 100 ms; at 450 ms three ticks are past by a whole
        // interval: 100, 200, 300 are skipped, 400 is the one to run.
        assert_eq!(t.advance(start + ms(450)), start + ms(400));
        assert_eq!(t.skipped, 3);
        assert_eq!(t.advance(start + ms(420)), start + ms(500));
    }
}
