//! The `policy` gate: at the entry of every protected stage of a pipeline with a
//! policy, it holds the run while an enforced organisation check that blocks
//! promotion is violated (and not exempt), at the instant it is evaluated. Overridable
//! on the record like every gate (`sluice override RUN --gate policy`).
//!
//! It holds (a wait without end) rather than denies: a denied stage fails the run at
//! once, leaving nothing to override; a held run waits (or stops, with `--no-wait`,
//! resumable) until someone overrides the gate on the record, or the policy's owners
//! add an exemption (a resume reads the policy again), exactly as an approval gate
//! waits for its approvers.
//!
//! The checks' findings are computed once, before the run starts (they depend on the
//! pipeline, not on the date); the gate applies the lifecycle
//! ([`crate::policy::lifecycle::status_at`]) at each evaluation's instant, so a check
//! enforced from tomorrow denies tomorrow, and an exemption that expires tonight stops
//! letting the run through tomorrow.

use std::sync::Arc;

use crate::config::{Pipeline, Stage};
use crate::gates::{Decision, Evaluation, Gate, GateInput};
use crate::policy::lifecycle::{self, Standing};
use crate::policy::{Blocks, Policy};

/// The gate's id, as `sluice override --gate` names it.
pub const GATE_ID: &str = "policy";

/// What the gate is built with: the policy and the pipeline's check results.
#[derive(Debug, Clone)]
pub struct PolicyGateInput {
    pub policy: std::sync::Arc<crate::policy::Policy>,
    pub findings: std::sync::Arc<crate::policy::checks::Findings>,
}

/// Whether the policy puts its gate at the entry of the stage: the stage is protected
/// and the policy has a check that blocks promotion.
pub fn guards(policy: &Policy, pipeline: &Pipeline, stage: &Stage) -> bool {
    policy.checks.iter().any(|c| c.blocks == Blocks::Promotion)
        && policy.is_protected(pipeline, stage)
}

/// The `policy` gate of one protected stage.
#[derive(Debug)]
pub struct PolicyGate {
    input: PolicyGateInput,
}

impl PolicyGate {
    pub fn new(input: &PolicyGateInput) -> PolicyGate {
        PolicyGate {
            input: PolicyGateInput {
                policy: Arc::clone(&input.policy),
                findings: Arc::clone(&input.findings),
            },
        }
    }
}

#[async_trait::async_trait]
impl Gate for PolicyGate {
    fn id(&self) -> &str {
        GATE_ID
    }

    fn kind(&self) -> &'static str {
        "policy"
    }

    async fn evaluate(&self, input: &GateInput<'_>) -> Evaluation {
        let policy = &self.input.policy;
        let statuses = lifecycle::status_at(policy, &self.input.findings, input.now);
        let promotion: Vec<_> = statuses
            .iter()
            .filter(|s| {
                policy
                    .checks
                    .iter()
                    .any(|c| c.id == s.check && c.blocks == Blocks::Promotion)
            })
            .collect();
        let evidence = serde_json::json!({
            "policy": policy.name,
            "version": policy.version,
            "checks": promotion,
        });
        let blocking: Vec<String> = promotion
            .iter()
            .filter(|s| s.blocks_promotion())
            .filter_map(|s| {
                let check = policy.checks.iter().find(|c| c.id == s.check)?;
                Some(format!(
                    "check `{}` ({}): {}",
                    s.check,
                    s.phase(check).unwrap_or_default(),
                    s.violations_text()
                ))
            })
            .collect();
        let (decision, clear_hint) = if blocking.is_empty() {
            let warning = promotion
                .iter()
                .filter(|s| {
                    matches!(
                        s.standing,
                        Standing::Warns { .. } | Standing::Exempt { .. } | Standing::Failed { .. }
                    )
                })
                .count();
            let reason = match (promotion.len(), warning) {
                (n, 0) => format!(
                    "policy `{}`: no enforced promotion check is violated ({n} checked)",
                    policy.name
                ),
                (n, w) => format!(
                    "policy `{}`: no enforced promotion check is violated ({n} checked, {w} with a notice)",
                    policy.name
                ),
            };
            (Decision::Allow { reason }, None)
        } else {
            (
                Decision::Wait {
                    reason: format!("policy `{}`: {}", policy.name, blocking.join("; ")),
                    until: None,
                },
                Some(format!(
                    "fix the pipeline and start a new run, have the policy's owners grant an exemption and resume, or: sluice override {} --gate {GATE_ID} --stage {} --reason \"...\"",
                    input.run_id, input.stage
                )),
            )
        };
        Evaluation {
            gate: GATE_ID.into(),
            kind: "policy".into(),
            decision,
            clear_hint,
            evidence,
            overridden_by: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::checks::testing::{builtin, date, pipeline, policy};
    use crate::policy::checks::{CheckResult, Findings, Violation};

    fn gate() -> (Pipeline, PolicyGate) {
        let mut check = builtin("prod-window", "production-window", serde_json::Value::Null);
        check.blocks = Blocks::Promotion;
        check.warn_from = Some(date("2026-12-01"));
        check.enforce_from = Some(date("2027-01-15"));
        let policy = policy(vec![check], Vec::new());
        let pipeline = pipeline(
            "[pipeline]\nname = \"shop\"\n[[stage]]\nname = \"beta\"\n[[stage.step]]\nid = \"a\"\nuses = \"builtin:command\"\n\
             [[stage]]\nname = \"prod\"\n[[stage.step]]\nid = \"b\"\nuses = \"builtin:command\"\n",
        );
        let findings = Findings {
            pipeline: "shop".into(),
            results: vec![CheckResult {
                check: "prod-window".into(),
                violations: vec![Violation {
                    message: "production stage `prod` has no window gate".into(),
                    stage: Some("prod".into()),
                    step: None,
                    at: None,
                }],
                error: None,
            }],
        };
        assert!(guards(&policy, &pipeline, &pipeline.stages[1]));
        assert!(!guards(&policy, &pipeline, &pipeline.stages[0]));
        let gate = PolicyGate::new(&PolicyGateInput {
            policy: Arc::new(policy),
            findings: Arc::new(findings),
        });
        (pipeline, gate)
    }

    #[test]
    fn protected_stages_get_the_gate_and_override_can_name_it() {
        let (pipeline, gate) = gate();
        let input = gate.input;
        let env = crate::gates::GateEnv {
            pipeline: &pipeline,
            store: None,
            policy: Some(&input),
        };
        let kinds = |i: usize| -> Vec<&'static str> {
            crate::gates::build_stage(&pipeline.stages[i], &env)
                .iter()
                .map(|g| g.kind())
                .collect()
        };
        assert_eq!(kinds(0), Vec::<&str>::new());
        assert_eq!(kinds(1), ["policy"]);
        let ids = |i: usize| {
            crate::gates::gate_ids_under(&pipeline, &pipeline.stages[i], Some(&input.policy))
        };
        assert!(ids(0).is_empty());
        assert_eq!(ids(1), [GATE_ID]);
        // Without a promotion check, no stage has the gate.
        let mut run_only = (*input.policy).clone();
        run_only.checks[0].blocks = Blocks::Run;
        assert!(
            crate::gates::gate_ids_under(&pipeline, &pipeline.stages[1], Some(&run_only))
                .is_empty()
        );
    }

    fn evaluate(gate: &PolicyGate, now: &str) -> Evaluation {
        let input = GateInput {
            pipeline: "shop",
            run_id: "r1",
            stage: "prod",
            now: now.parse().unwrap(),
            approvals: &[],
            artifact: None,
        };
        futures::executor::block_on(gate.evaluate(&input))
    }

    #[test]
    fn the_gate_holds_the_run_from_the_day_the_check_is_enforced() {
        let (_pipeline, gate) = gate();
        let before = evaluate(&gate, "2027-01-14T23:59:59Z");
        assert_eq!(
            before.decision,
            Decision::Allow {
                reason: "policy `acme`: no enforced promotion check is violated (1 checked, 1 with a notice)".into()
            }
        );
        assert_eq!(
            before.evidence["checks"][0]["standing"]["standing"],
            "warns"
        );
        let at = evaluate(&gate, "2027-01-15T00:00:00Z");
        assert_eq!(
            at.decision,
            Decision::Wait {
                reason: "policy `acme`: check `prod-window` (enforced since 2027-01-15; blocks promotion into protected stages): production stage `prod` has no window gate".into(),
                until: None,
            }
        );
        assert_eq!(
            at.clear_hint.as_deref(),
            Some(
                "fix the pipeline and start a new run, have the policy's owners grant an exemption and resume, or: sluice override r1 --gate policy --stage prod --reason \"...\""
            )
        );
    }
}
