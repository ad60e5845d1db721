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

pub mod alarms;
pub mod approval;
pub mod bake;
pub mod blocked;
pub mod explain;
pub mod policy;
pub mod spec;
pub mod window;

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
    // Every gate at the same instant (`input.now`), together: none can go stale while
    // another is looked at.
    let evaluations = futures::future::join_all(gates.iter().map(|g| g.evaluate(input))).await;
    let evaluations: Vec<Evaluation> = evaluations
        .into_iter()
        .map(|e| apply_override(e, input, overrides))
        .collect();
    let decision = combine(&evaluations);
    Verdict {
        decision,
        evaluations,
    }
}

/// Turn a wait or deny into an allow when an active override covers the gate: one
/// naming the gate before one for every gate (`*`), one naming the stage before one
/// for any stage, the oldest first. What the gate decided is kept in the evidence
/// (`overridden`), and the reason says both.
fn apply_override(
    mut evaluation: Evaluation,
    input: &GateInput<'_>,
    overrides: &[crate::state::OverrideRow],
) -> Evaluation {
    if matches!(evaluation.decision, Decision::Allow { .. }) {
        return evaluation;
    }
    let chosen = overrides
        .iter()
        .filter(|o| {
            o.run_id == input.run_id
                && (o.gate == evaluation.gate || o.gate == "*")
                && o.stage.as_deref().is_none_or(|s| s == input.stage)
                && o.used_at.is_none()
                && o.expires_at.is_none_or(|t| t > input.now)
        })
        .min_by_key(|o| (o.gate == "*", o.stage.is_none(), o.created_at, o.id));
    let Some(chosen) = chosen else {
        return evaluation;
    };
    let was = serde_json::to_value(&evaluation.decision).unwrap_or_default();
    if let serde_json::Value::Object(map) = &mut evaluation.evidence {
        map.insert("overridden".into(), was);
    } else {
        evaluation.evidence = serde_json::json!({ "gate": evaluation.evidence, "overridden": was });
    }
    let expires = chosen
        .expires_at
        .map(|t| format!(", expires {t}"))
        .unwrap_or_default();
    evaluation.decision = Decision::Allow {
        reason: format!(
            "overridden by {} (override #{}{expires}: {}); the gate said: {}",
            chosen.actor,
            chosen.id,
            chosen.reason,
            evaluation.decision.reason()
        ),
    };
    evaluation.clear_hint = None;
    evaluation.overridden_by = Some(chosen.clone());
    evaluation
}

/// The verdict over evaluations: deny if any denies; else wait if any waits (until the
/// latest `until` when every waiting gate knows one); else allow.
fn combine(evaluations: &[Evaluation]) -> Decision {
    let denied: Vec<String> = evaluations
        .iter()
        .filter(|e| matches!(e.decision, Decision::Deny { .. }))
        .map(|e| format!("gate `{}` denied: {}", e.gate, e.decision.reason()))
        .collect();
    if !denied.is_empty() {
        return Decision::Deny {
            reason: denied.join("; "),
        };
    }
    let waiting: Vec<&Evaluation> = evaluations
        .iter()
        .filter(|e| matches!(e.decision, Decision::Wait { .. }))
        .collect();
    if !waiting.is_empty() {
        let until = waiting
            .iter()
            .map(|e| e.decision.until())
            .collect::<Option<Vec<_>>>()
            .and_then(|all| all.into_iter().max());
        return Decision::Wait {
            reason: waiting
                .iter()
                .map(|e| format!("gate `{}` waits: {}", e.gate, e.decision.reason()))
                .collect::<Vec<_>>()
                .join("; "),
            until,
        };
    }
    let overridden = evaluations
        .iter()
        .filter(|e| e.overridden_by.is_some())
        .count();
    let reason = match (evaluations.len(), overridden) {
        (0, _) => "the stage has no gates".to_string(),
        (1, 0) => format!("gate `{}` allows", evaluations[0].gate),
        (n, 0) => format!("all {n} gates allow"),
        (n, o) => format!("all {n} gates allow ({o} overridden)"),
    };
    Decision::Allow { reason }
}

impl Decision {
    /// `allow`, `wait` or `deny`.
    pub fn name(&self) -> &'static str {
        match self {
            Decision::Allow { .. } => "allow",
            Decision::Wait { .. } => "wait",
            Decision::Deny { .. } => "deny",
        }
    }
    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow { reason }
            | Decision::Wait { reason, .. }
            | Decision::Deny { reason } => reason,
        }
    }
    /// When a waiting gate will allow without anyone acting, if known.
    pub fn until(&self) -> Option<jiff::Timestamp> {
        match self {
            Decision::Wait { until, .. } => *until,
            _ => None,
        }
    }
}

impl Evaluation {
    /// The decision as the state store records it: `allow`, `wait`, `deny`, or
    /// `overridden` when an override turned it into an allow.
    pub fn recorded_decision(&self) -> &'static str {
        if self.overridden_by.is_some() {
            "overridden"
        } else {
            self.decision.name()
        }
    }
}

/// What gates are built with besides their spec: the pipeline (its monitors,
/// denylists and folder) and the state store, where gates such as alarms read their
/// evidence (`None` only in tests that need no evidence).
#[derive(Clone, Copy)]
pub struct GateEnv<'a> {
    pub pipeline: &'a crate::config::Pipeline,
    pub store: Option<&'a std::sync::Arc<crate::state::Store>>,
    /// The pipeline's policy and check results, for the `policy` gate of protected
    /// stages (`None`: no policy).
    pub policy: Option<&'a policy::PolicyGateInput>,
}

/// The gate a spec from the pipeline file configures.
pub fn build(spec: &GateSpec, env: &GateEnv<'_>) -> Box<dyn Gate> {
    match &spec.kind {
        GateKind::Approval(a) => Box::new(approval::ApprovalGate::new(&spec.id, a.clone())),
        GateKind::Window(w) => Box::new(window::WindowGate::new(&spec.id, w.clone())),
        GateKind::Alarms(a) => Box::new(alarms::AlarmsGate::new(
            &spec.id,
            a.alarms
                .iter()
                .filter_map(|id| env.pipeline.monitors.iter().find(|m| &m.id == id).cloned())
                .collect(),
            env.store.cloned(),
        )),
    }
}

/// The gates of a stage of the pipeline, built, in file order; then the pipeline's
/// blocked-content gate, on every stage after the first when it has denylists; then
/// the policy's gate, on every protected stage when the policy has a check that
/// blocks promotion.
pub fn build_stage(stage: &crate::config::Stage, env: &GateEnv<'_>) -> Vec<Box<dyn Gate>> {
    let mut gates: Vec<Box<dyn Gate>> = stage.gates.iter().map(|spec| build(spec, env)).collect();
    if blocked::guards(env.pipeline, &stage.name) {
        gates.push(Box::new(blocked::BlockedContentGate::new(env)));
    }
    if let Some(input) = env.policy
        && policy::guards(&input.policy, env.pipeline, stage)
    {
        gates.push(Box::new(policy::PolicyGate::new(input)));
    }
    gates
}

/// The ids of a stage's gates, as `sluice override --gate` may name them: those of the
/// pipeline file, then the implicit ones (blocked content at its entry, the bake at its
/// end).
pub fn gate_ids<'a>(
    pipeline: &'a crate::config::Pipeline,
    stage: &'a crate::config::Stage,
) -> Vec<&'a str> {
    gate_ids_under(pipeline, stage, None)
}

/// [`gate_ids`] of a pipeline that follows `policy`: with the policy's gate on the
/// stages it guards (see [`policy::guards`]).
pub fn gate_ids_under<'a>(
    pipeline: &'a crate::config::Pipeline,
    stage: &'a crate::config::Stage,
    under: Option<&crate::policy::Policy>,
) -> Vec<&'a str> {
    let mut ids: Vec<&str> = stage.gates.iter().map(|g| g.id.as_str()).collect();
    if blocked::guards(pipeline, &stage.name) {
        ids.push(blocked::GATE_ID);
    }
    if under.is_some_and(|p| policy::guards(p, pipeline, stage)) {
        ids.push(policy::GATE_ID);
    }
    if stage.bake.is_some() {
        ids.push(bake::BAKE_GATE);
    }
    ids
}

/// Check the target of `sluice override RUN --gate G [--stage S]` against the
/// pipeline: the stage must exist, and the gate (or `*`) must be a gate of that stage,
/// or of some stage when none is named. The error lists the pipeline's gates, with a
/// "did you mean".
pub fn check_override_target(
    pipeline: &crate::config::Pipeline,
    gate: &str,
    stage: Option<&str>,
) -> Result<(), String> {
    let all: Vec<String> = pipeline
        .stages
        .iter()
        .flat_map(|s| {
            gate_ids(pipeline, s)
                .into_iter()
                .map(move |g| format!("{}/{g}", s.name))
        })
        .collect();
    let listing = if all.is_empty() {
        "the pipeline has no gates".to_string()
    } else {
        format!("gates (stage/gate): {}", all.join(", "))
    };
    let stages: Vec<&crate::config::Stage> = match stage {
        Some(name) => match pipeline.stages.iter().find(|s| s.name == name) {
            Some(s) => vec![s],
            None => {
                let mut message = format!(
                    "pipeline `{}` has no stage `{name}`; stages: {}",
                    pipeline.name,
                    pipeline
                        .stages
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if let Some(meant) =
                    crate::suggest::closest(name, pipeline.stages.iter().map(|s| s.name.as_str()))
                {
                    message.push_str(&format!("; did you mean `{meant}`?"));
                }
                return Err(message);
            }
        },
        None => pipeline.stages.iter().collect(),
    };
    let has_gate = |s: &&crate::config::Stage| {
        let ids = gate_ids(pipeline, s);
        if gate == "*" {
            !ids.is_empty()
        } else {
            ids.contains(&gate)
        }
    };
    if stages.iter().any(has_gate) {
        return Ok(());
    }
    let place = match stage {
        Some(name) => format!("stage `{name}` has"),
        None => format!("pipeline `{}` has", pipeline.name),
    };
    let mut message = if gate == "*" {
        format!("{place} no gates to override; {listing}")
    } else {
        format!("{place} no gate `{gate}`; {listing}")
    };
    let candidates = stages.iter().flat_map(|s| gate_ids(pipeline, s));
    if gate != "*"
        && let Some(meant) = crate::suggest::closest(gate, candidates)
    {
        message.push_str(&format!("; did you mean `{meant}`?"));
    }
    Err(message)
}

/// A duration for people, rounded up to the minute: `2h10m`, `3d4h`, `45m`.
pub fn human_duration(d: jiff::SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    let minutes = (secs + 59) / 60;
    let (days, hours, mins) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours, mins) {
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ApprovalRow, OverrideRow};

    fn stage_gates(text: &str) -> (crate::config::Pipeline, Vec<Box<dyn Gate>>) {
        let file = format!(
            "[pipeline]\nname = \"shop\"\n[[stage]]\nname = \"beta\"\n[[stage.step]]\nid = \"a\"\nuses = \"builtin:command\"\n\
             [[stage]]\nname = \"prod\"\n[[stage.step]]\nid = \"b\"\nuses = \"builtin:command\"\n{text}"
        );
        let pipeline = crate::config::parse(std::path::Path::new("sluice.toml"), file)
            .expect("valid pipeline");
        let env = GateEnv {
            pipeline: &pipeline,
            store: None,
            policy: None,
        };
        let gates = build_stage(&pipeline.stages[1], &env);
        (pipeline, gates)
    }

    const GATES: &str = "[stage.gates.approval]\nrequired = 2\n\
        [stage.gates.business-hours]\nkind = \"window\"\ntimezone = \"Europe/Berlin\"\ndays = \"Mon-Thu\"\nhours = \"09:00-16:00\"\n";

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn approve(actor: &str) -> ApprovalRow {
        ApprovalRow {
            run_id: "r1".into(),
            stage: "prod".into(),
            action: "approve".into(),
            actor: actor.into(),
            reason: "ok".into(),
            at: at("2026-11-30T07:00:00Z"),
        }
    }

    fn an_override(id: i64, gate: &str, stage: Option<&str>) -> OverrideRow {
        OverrideRow {
            id,
            run_id: "r1".into(),
            gate: gate.into(),
            stage: stage.map(str::to_string),
            actor: "dana".into(),
            reason: "hotfix for INC-7".into(),
            created_at: at("2026-11-30T07:30:00Z"),
            expires_at: None,
            used_at: None,
        }
    }

    fn verdict(now: &str, approvals: &[ApprovalRow], overrides: &[OverrideRow]) -> Verdict {
        let (_p, gates) = stage_gates(GATES);
        let input = GateInput {
            pipeline: "shop",
            run_id: "r1",
            stage: "prod",
            now: at(now),
            approvals,
            artifact: None,
        };
        futures::executor::block_on(evaluate_stage(&gates, &input, overrides))
    }

    #[test]
    fn every_gate_is_evaluated_and_the_wait_lasts_until_the_latest_known_end() {
        // Mon 06:50 Berlin: the window opens at 09:00, the approvals are missing.
        let v = verdict("2026-11-30T05:50:00Z", &[approve("alice")], &[]);
        assert_eq!(v.evaluations.len(), 2);
        assert_eq!(
            v.decision,
            Decision::Wait {
                reason: "gate `approval` waits: 1 of 2 approvals (alice); needs 1 more; gate `business-hours` waits: closed: outside Mon-Thu 09:00-16:00 Europe/Berlin; opens Mon 09:00 Europe/Berlin (in 2h10m)".into(),
                // An approval has no known end, so neither has the wait.
                until: None,
            }
        );
        // With both approvals, the window alone holds the run, until it opens.
        let v = verdict(
            "2026-11-30T05:50:00Z",
            &[approve("alice"), approve("bob")],
            &[],
        );
        assert_eq!(v.decision.until(), Some(at("2026-11-30T08:00:00Z")));
        let v = verdict(
            "2026-11-30T08:00:00Z",
            &[approve("alice"), approve("bob")],
            &[],
        );
        assert_eq!(
            v.decision,
            Decision::Allow {
                reason: "all 2 gates allow".into()
            }
        );
    }

    #[test]
    fn a_deny_wins_over_a_wait() {
        let mut reject = approve("carol");
        reject.action = "reject".into();
        reject.reason = "not this week".into();
        let v = verdict("2026-11-30T05:50:00Z", &[reject], &[]);
        assert_eq!(
            v.decision,
            Decision::Deny {
                reason: "gate `approval` denied: rejected by carol: not this week".into()
            }
        );
        assert_eq!(v.evaluations[1].decision.name(), "wait");
    }

    #[test]
    fn an_override_turns_its_gate_into_an_allow_on_the_record() {
        let v = verdict(
            "2026-11-30T05:50:00Z",
            &[approve("alice"), approve("bob")],
            &[an_override(7, "business-hours", Some("prod"))],
        );
        assert_eq!(
            v.decision,
            Decision::Allow {
                reason: "all 2 gates allow (1 overridden)".into()
            }
        );
        let window = &v.evaluations[1];
        assert_eq!(window.recorded_decision(), "overridden");
        assert_eq!(window.overridden_by.as_ref().map(|o| o.id), Some(7));
        assert_eq!(
            window.decision.reason(),
            "overridden by dana (override #7: hotfix for INC-7); the gate said: closed: outside Mon-Thu 09:00-16:00 Europe/Berlin; opens Mon 09:00 Europe/Berlin (in 2h10m)"
        );
        assert_eq!(window.evidence["overridden"]["decision"], "wait");
        // A gate that allows by itself does not use the override.
        assert!(v.evaluations[0].overridden_by.is_none());
        assert_eq!(v.evaluations[0].recorded_decision(), "allow");
    }

    #[test]
    fn a_star_override_covers_every_gate_and_a_specific_one_is_preferred() {
        let v = verdict(
            "2026-11-30T05:50:00Z",
            &[],
            &[
                an_override(1, "*", None),
                an_override(2, "approval", Some("prod")),
            ],
        );
        assert!(matches!(v.decision, Decision::Allow { .. }), "{v:?}");
        assert_eq!(
            v.evaluations[0].overridden_by.as_ref().map(|o| o.id),
            Some(2)
        );
        assert_eq!(
            v.evaluations[1].overridden_by.as_ref().map(|o| o.id),
            Some(1)
        );
    }

    #[test]
    fn used_expired_and_other_stage_overrides_do_not_apply() {
        let mut used = an_override(1, "business-hours", Some("prod"));
        used.used_at = Some(at("2026-11-29T00:00:00Z"));
        let mut expired = an_override(2, "business-hours", Some("prod"));
        expired.expires_at = Some(at("2026-11-30T05:50:00Z"));
        let other_stage = an_override(3, "business-hours", Some("beta"));
        let mut other_run = an_override(4, "business-hours", Some("prod"));
        other_run.run_id = "r0".into();
        let v = verdict(
            "2026-11-30T05:50:00Z",
            &[approve("alice"), approve("bob")],
            &[used, expired, other_stage, other_run],
        );
        assert_eq!(v.decision.name(), "wait");
        assert!(v.evaluations.iter().all(|e| e.overridden_by.is_none()));
        // Unexpired, it applies, and the reason says until when.
        let mut live = an_override(5, "business-hours", None);
        live.expires_at = Some(at("2026-11-30T06:00:00Z"));
        let v = verdict(
            "2026-11-30T05:50:00Z",
            &[approve("alice"), approve("bob")],
            &[live],
        );
        assert!(
            v.evaluations[1].decision.reason().starts_with(
                "overridden by dana (override #5, expires 2026-11-30T06:00:00Z: hotfix"
            ),
            "{v:?}"
        );
    }

    #[test]
    fn a_stage_without_gates_allows() {
        let v = futures::executor::block_on(evaluate_stage(
            &[],
            &GateInput {
                pipeline: "shop",
                run_id: "r1",
                stage: "prod",
                now: at("2026-11-30T05:50:00Z"),
                approvals: &[],
                artifact: None,
            },
            &[],
        ));
        assert_eq!(
            v.decision,
            Decision::Allow {
                reason: "the stage has no gates".into()
            }
        );
    }

    #[test]
    fn override_targets_are_checked_against_the_pipeline() {
        let (p, _) = stage_gates(GATES);
        assert!(check_override_target(&p, "approval", Some("prod")).is_ok());
        assert!(check_override_target(&p, "business-hours", None).is_ok());
        assert!(check_override_target(&p, "*", None).is_ok());
        assert_eq!(
            check_override_target(&p, "busines-hours", Some("prod")).unwrap_err(),
            "stage `prod` has no gate `busines-hours`; gates (stage/gate): prod/approval, prod/business-hours; did you mean `business-hours`?"
        );
        assert_eq!(
            check_override_target(&p, "approval", Some("beta")).unwrap_err(),
            "stage `beta` has no gate `approval`; gates (stage/gate): prod/approval, prod/business-hours"
        );
        assert_eq!(
            check_override_target(&p, "approval", Some("prd")).unwrap_err(),
            "pipeline `shop` has no stage `prd`; stages: beta, prod; did you mean `prod`?"
        );
        assert_eq!(
            check_override_target(&p, "*", Some("beta")).unwrap_err(),
            "stage `beta` has no gates to override; gates (stage/gate): prod/approval, prod/business-hours"
        );
    }

    #[test]
    fn durations_for_people_round_up_to_the_minute() {
        let d = jiff::SignedDuration::from_secs;
        assert_eq!(human_duration(d(0)), "0m");
        assert_eq!(human_duration(d(1)), "1m");
        assert_eq!(human_duration(d(2 * 3600 + 9 * 60 + 30)), "2h10m");
        assert_eq!(human_duration(d(3 * 3600)), "3h");
        assert_eq!(human_duration(d(3 * 86400 + 4 * 3600 + 60)), "3d4h");
        assert_eq!(human_duration(d(-5)), "0m");
    }
}
