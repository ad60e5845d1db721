//! The alarms gate (`[stage.gates.<id>] kind = "alarms"`, `alarms = ["api-errors"]`):
//! it allows only while every listed monitor's alarm is OK (or INSUFFICIENT_DATA with
//! `missing = "not-breaching"`). An alarm in ALARM, or without data treated as
//! breaching, makes the gate wait, with a reason naming the monitor, its state, since
//! when, and the failing observation. It never denies: an alarm clears by itself when
//! the service recovers, or is overridden (`sluice override RUN --gate <id>`) to let
//! the fix through, on the record.
//!
//! The evidence is the state store's: every check of each monitor, whoever ran it
//! (this run's watcher or a `sluice canary` sharing the store). The same gate is
//! re-evaluated while the stage runs ([`crate::executor::watch`]).

use std::sync::Arc;

use crate::gates::{Decision, Evaluation, Gate, GateInput};
use crate::monitors::{AlarmStatus, MonitorSpec, alarm};
use crate::state::Store;

/// An alarms gate of one stage.
#[derive(Debug)]
pub struct AlarmsGate {
    id: String,
    /// The listed monitors, in the order listed.
    monitors: Vec<MonitorSpec>,
    store: Option<Arc<Store>>,
}

impl AlarmsGate {
    /// The gate `id` over `monitors` (already checked to be the pipeline's), reading
    /// checks from `store`.
    pub fn new(id: &str, monitors: Vec<MonitorSpec>, store: Option<Arc<Store>>) -> AlarmsGate {
        AlarmsGate {
            id: id.to_string(),
            monitors,
            store,
        }
    }

    /// Every listed alarm's status at `now`; a monitor that cannot be read is an error
    /// text in its place.
    pub fn statuses(&self, now: jiff::Timestamp) -> Vec<Result<AlarmStatus, String>> {
        self.monitors
            .iter()
            .map(|m| match &self.store {
                Some(store) => alarm::read(store, m, now)
                    .map_err(|e| format!("monitor `{}`: cannot read its checks: {e}", m.id)),
                None => Err(format!(
                    "monitor `{}`: no state store to read its checks from",
                    m.id
                )),
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl Gate for AlarmsGate {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &'static str {
        "alarms"
    }

    async fn evaluate(&self, input: &GateInput<'_>) -> Evaluation {
        let statuses = self.statuses(input.now);
        let holding: Vec<String> = statuses
            .iter()
            .filter_map(|s| match s {
                Ok(s) if s.holds => Some(s.describe()),
                Ok(_) => None,
                Err(e) => Some(e.clone()),
            })
            .collect();
        let evidence = serde_json::json!({
            "alarms": statuses
                .iter()
                .map(|s| match s {
                    Ok(s) => serde_json::to_value(s).unwrap_or_default(),
                    Err(e) => serde_json::json!({ "error": e }),
                })
                .collect::<Vec<_>>(),
        });
        let decision = if holding.is_empty() {
            let names: Vec<String> = statuses
                .iter()
                .filter_map(|s| s.as_ref().ok())
                .map(|s| format!("`{}` {}", s.monitor, s.state))
                .collect();
            Decision::Allow {
                reason: format!("no alarm: {}", names.join(", ")),
            }
        } else {
            Decision::Wait {
                reason: holding.join("; "),
                until: None,
            }
        };
        let clear_hint = (!holding.is_empty()).then(|| {
            format!(
                "wait for the alarm to clear, or let the fix through: sluice override {} --gate {} --stage {} --reason \"...\"",
                input.run_id, self.id, input.stage
            )
        });
        Evaluation {
            gate: self.id.clone(),
            kind: "alarms".into(),
            decision,
            clear_hint,
            evidence,
            overridden_by: None,
        }
    }
}
