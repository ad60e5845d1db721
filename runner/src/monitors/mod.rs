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

pub mod spec;

pub use spec::{MissingData, MonitorSpec};
