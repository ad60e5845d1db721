//! Gates: what decides whether a run may enter a stage.
//!
//! A gate belongs to the entry of a stage (`[stage.gates.<id>]` in `sluice.toml`) and
//! evaluates to allow, wait (why, and until when if known) or deny (why). Every gate of
//! a stage is evaluated together, at one instant, and every evaluation is kept: nothing
//! stops at the first gate that blocks, so `explain` can say everything that holds a
//! run. An override (`sluice override`) turns one gate's wait or deny into an allow for
//! one run, on the record.
//!
//! One module per kind, behind [`Gate`]: `approval` (manual approvals and rejections)
//! and `window` (allowed days and hours in an IANA time zone, blackout dates). The next
//! kinds (alarms, bake, blocked content) plug in the same way; their evaluation may
//! query the outside world, so [`Gate::evaluate`] is async.

use serde::Serialize;

pub mod spec;

pub use spec::{GateKind, GateSpec};

/// What a gate decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    /// The run may enter.
    Allow { reason: String },
    /// Not yet: `reason` says what is missing; `until`, when known, is when the gate
    /// will allow without anyone acting (a window opening).
    Wait {
        reason: String,
        until: Option<jiff::Timestamp>,
    },
    /// Never, for this run, unless overridden (a rejection).
    Deny { reason: String },
}

/// One gate's evaluation, as recorded and explained.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The gate's id in the pipeline file (`[stage.gates.<id>]`).
    pub gate: String,
    /// Its kind: `approval`, `window`, ...
    pub kind: String,
    pub decision: Decision,
    /// What would clear it, for a person: "2 more approvals: sluice approve RUN --stage prod --reason ...".
    pub clear_hint: Option<String>,
    /// What the gate looked at (approvals counted, the window's rule and zone, ...).
    pub evidence: serde_json::Value,
    /// Set when an override turned a wait or deny into an allow.
    pub overridden_by: Option<crate::state::OverrideRow>,
}

/// Everything a gate may look at, read from the state store at one instant.
#[derive(Debug, Clone)]
pub struct GateInput<'a> {
    pub pipeline: &'a str,
    pub run_id: &'a str,
    pub stage: &'a str,
    pub now: jiff::Timestamp,
    /// Approvals and rejections recorded for this run and stage.
    pub approvals: &'a [crate::state::ApprovalRow],
    /// The artifact of the run, when a step reported one.
    pub artifact: Option<&'a crate::state::ArtifactRow>,
}

/// One kind of gate, configured for one stage.
#[async_trait::async_trait]
pub trait Gate: Send + Sync + std::fmt::Debug {
    /// Its id in the pipeline file.
    fn id(&self) -> &str;
    /// Its kind.
    fn kind(&self) -> &'static str;
    /// Decide for this input. Never fails: a gate that cannot decide waits, and says why.
    async fn evaluate(&self, input: &GateInput<'_>) -> Evaluation;
}

/// The verdict over all gates of a stage: allow only when every gate allows (or is
/// overridden); deny when any denies; else wait, until the latest known `until` if
/// every waiting gate knows one.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub decision: Decision,
    pub evaluations: Vec<Evaluation>,
}

/// Evaluate every gate of a stage at `input.now`, apply the active overrides, and
/// combine. Never stops at the first gate that blocks.
pub async fn evaluate_stage(
    gates: &[Box<dyn Gate>],
    input: &GateInput<'_>,
    overrides: &[crate::state::OverrideRow],
) -> Verdict {
    let _ = (gates, input, overrides);
    todo!("issue 11: evaluate every gate, apply overrides, combine")
}
