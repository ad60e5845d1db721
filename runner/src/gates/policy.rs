//! The `policy` gate: at the entry of every protected stage of a pipeline with a
//! policy, it denies while an enforced organisation check that blocks promotion is
//! violated (and not exempt), at the instant it is evaluated. Overridable on the
//! record like every gate (`sluice override RUN --gate policy`).

/// The gate's id, as `sluice override --gate` names it.
pub const GATE_ID: &str = "policy";

/// What the gate is built with: the policy and the pipeline's check results.
#[derive(Debug, Clone)]
pub struct PolicyGateInput {
    pub policy: std::sync::Arc<crate::policy::Policy>,
    pub findings: std::sync::Arc<crate::policy::checks::Findings>,
}
