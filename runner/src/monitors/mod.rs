//! Monitors: health checks run on a schedule, whose data points become alarms (an
//! alarm gates a stage's entry and is watched while the stage runs and bakes) and bake
//! evidence.
//!
//! A monitor is declared with `[[monitor]]` in a pipeline file (or a `sluice canary`
//! file): an id, a plugin of the `monitor` world (`uses`), its `with`, its grants and
//! an interval. Every check is recorded in the state store ([`crate::state`]: the check,
//! whether it yielded data, its data points), keyed by the monitor's id: every pipeline
//! sharing the store sees the same evidence, whoever ran the check.
//!
//! Files: `spec` (`[[monitor]]` read and checked), `alarm` (a monitor's state, OK /
//! ALARM / INSUFFICIENT_DATA, from its latest checks and its `missing` rule),
//! `schedule` (running checks on their interval, recorded), `metrics` (the Prometheus
//! text of `sluice canary`).

pub mod alarm;
pub mod metrics;
pub mod schedule;
pub mod spec;

pub use alarm::{AlarmState, AlarmStatus};
pub use spec::{MissingData, MonitorSpec};

/// How many monitors of the pipeline file at `file` run checks (have `uses`), read
/// leniently (0 when the file cannot be read): each holds an instance of the engine
/// for as long as it runs, so the engine is sized for them on top of `--jobs`.
pub fn checking_monitors_in(file: &std::path::Path) -> usize {
    crate::config::load_lenient(file)
        .map(|(p, _)| p.monitors.iter().filter(|m| m.uses.is_some()).count())
        .unwrap_or(0)
}
