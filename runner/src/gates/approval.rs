//! The manual approval gate: a run may enter once enough distinct people approved its
//! entry into the stage (`sluice approve RUN --stage S --reason ...`); any rejection
//! (`sluice reject`) denies it, naming who and why. The same person approving twice
//! counts once. Who acted is [`actor_from_env`], recorded with every approval,
//! rejection and override.

use super::spec::ApprovalSpec;
use super::{Decision, Evaluation, Gate, GateInput};
use crate::state::ApprovalRow;

/// An approval gate, configured.
#[derive(Debug)]
pub struct ApprovalGate {
    id: String,
    spec: ApprovalSpec,
}

impl ApprovalGate {
    pub fn new(id: &str, spec: ApprovalSpec) -> ApprovalGate {
        ApprovalGate {
            id: id.to_string(),
            spec,
        }
    }
}

/// The environment variables naming the person or CI user acting, in order of
/// preference; then the login name of the process's user.
pub const ACTOR_VARIABLES: &[&str] = &[
    "SLUICE_ACTOR",
    "GITHUB_ACTOR",
    "GITLAB_USER_LOGIN",
    "BUILDKITE_BUILD_CREATOR",
    "USER",
    "LOGNAME",
];

/// Who is acting (approving, rejecting, overriding, starting a run): `$SLUICE_ACTOR`,
/// else the CI's user (`$GITHUB_ACTOR`, `$GITLAB_USER_LOGIN`,
/// `$BUILDKITE_BUILD_CREATOR`), else `$USER`/`$LOGNAME`, else the name of the
/// process's uid in /etc/passwd, else `uid:<n>`.
pub fn actor_from_env() -> String {
    actor_from(
        |name| std::env::var(name).ok(),
        || std::fs::read_to_string("/etc/passwd").ok(),
    )
}

fn actor_from(
    var: impl Fn(&str) -> Option<String>,
    passwd: impl FnOnce() -> Option<String>,
) -> String {
    for name in ACTOR_VARIABLES {
        if let Some(value) = var(name) {
            let value = value.trim();
            if !value.is_empty() {
                return value.to_string();
            }
        }
    }
    let uid = rustix::process::getuid().as_raw();
    passwd()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let _password = fields.next()?;
                let id: u32 = fields.next()?.parse().ok()?;
                (id == uid && !name.is_empty()).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| format!("uid:{uid}"))
}

#[async_trait::async_trait]
impl Gate for ApprovalGate {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "approval"
    }
    async fn evaluate(&self, input: &GateInput<'_>) -> Evaluation {
        let rows: Vec<&ApprovalRow> = input
            .approvals
            .iter()
            .filter(|a| a.run_id == input.run_id && a.stage == input.stage)
            .collect();
        let rejections: Vec<&ApprovalRow> = rows
            .iter()
            .copied()
            .filter(|a| a.action == "reject")
            .collect();
        // Distinct approvers, in the order they first approved.
        let mut approvers: Vec<&str> = Vec::new();
        for a in rows.iter().filter(|a| a.action == "approve") {
            if !approvers.contains(&a.actor.as_str()) {
                approvers.push(&a.actor);
            }
        }
        let required = self.spec.required as usize;
        let evidence = serde_json::json!({
            "required": required,
            "approved_by": approvers,
            "responses": rows.iter().map(|a| serde_json::json!({
                "action": a.action,
                "actor": a.actor,
                "reason": a.reason,
                "at": a.at.to_string(),
            })).collect::<Vec<_>>(),
        });
        let approve_command = format!(
            "sluice approve {} --stage {} --reason \"...\"",
            input.run_id, input.stage
        );
        let override_command = format!(
            "sluice override {} --gate {} --stage {} --reason \"...\"",
            input.run_id, self.id, input.stage
        );
        let (decision, clear_hint) = if !rejections.is_empty() {
            let reason = rejections
                .iter()
                .map(|r| format!("rejected by {}: {}", r.actor, r.reason))
                .collect::<Vec<_>>()
                .join("; ");
            (
                Decision::Deny { reason },
                Some(format!(
                    "a rejection stands for this run; start a new run, or: {override_command}"
                )),
            )
        } else if approvers.len() >= required {
            (
                Decision::Allow {
                    reason: format!(
                        "{} of {required} approvals ({})",
                        approvers.len(),
                        approvers.join(", ")
                    ),
                },
                None,
            )
        } else {
            let missing = required - approvers.len();
            let by = if approvers.is_empty() {
                String::new()
            } else {
                format!(" ({})", approvers.join(", "))
            };
            let more = if missing == 1 {
                "approval"
            } else {
                "approvals"
            };
            (
                Decision::Wait {
                    reason: format!(
                        "{} of {required} approvals{by}; needs {missing} more",
                        approvers.len()
                    ),
                    until: None,
                },
                Some(format!(
                    "{missing} more {more} from someone who has not approved yet: {approve_command}"
                )),
            )
        };
        Evaluation {
            gate: self.id.clone(),
            kind: "approval".into(),
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

    fn row(action: &str, actor: &str, reason: &str, stage: &str) -> ApprovalRow {
        ApprovalRow {
            run_id: "r1".into(),
            stage: stage.into(),
            action: action.into(),
            actor: actor.into(),
            reason: reason.into(),
            at: "2026-11-30T08:00:00Z".parse().unwrap(),
        }
    }

    fn eval(required: u32, rows: &[ApprovalRow]) -> Evaluation {
        let gate = ApprovalGate::new("approval", ApprovalSpec { required });
        let input = GateInput {
            pipeline: "shop",
            run_id: "r1",
            stage: "prod",
            now: "2026-11-30T09:00:00Z".parse().unwrap(),
            approvals: rows,
            artifact: None,
        };
        futures::executor::block_on(gate.evaluate(&input))
    }

    #[test]
    fn without_approvals_the_gate_waits_and_names_the_command() {
        let e = eval(1, &[]);
        assert_eq!(
            e.decision,
            Decision::Wait {
                reason: "0 of 1 approvals; needs 1 more".into(),
                until: None
            }
        );
        assert_eq!(
            e.clear_hint.as_deref(),
            Some(
                "1 more approval from someone who has not approved yet: sluice approve r1 --stage prod --reason \"...\""
            )
        );
    }

    #[test]
    fn the_same_approver_twice_counts_once() {
        let rows = [
            row("approve", "alice", "lgtm", "prod"),
            row("approve", "alice", "really lgtm", "prod"),
        ];
        let e = eval(2, &rows);
        assert_eq!(
            e.decision,
            Decision::Wait {
                reason: "1 of 2 approvals (alice); needs 1 more".into(),
                until: None
            }
        );
        assert_eq!(e.evidence["approved_by"], serde_json::json!(["alice"]));
        assert_eq!(e.evidence["responses"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn enough_distinct_approvers_allow() {
        let rows = [
            row("approve", "alice", "lgtm", "prod"),
            row("approve", "bob", "ok", "prod"),
        ];
        assert_eq!(
            eval(2, &rows).decision,
            Decision::Allow {
                reason: "2 of 2 approvals (alice, bob)".into()
            }
        );
    }

    #[test]
    fn approvals_of_another_stage_do_not_count() {
        let rows = [row("approve", "alice", "lgtm", "beta")];
        assert!(matches!(eval(1, &rows).decision, Decision::Wait { .. }));
    }

    #[test]
    fn any_rejection_denies_naming_who_and_why() {
        let rows = [
            row("approve", "alice", "lgtm", "prod"),
            row("reject", "carol", "p99 regressed in beta", "prod"),
            row("approve", "bob", "ok", "prod"),
        ];
        let e = eval(2, &rows);
        assert_eq!(
            e.decision,
            Decision::Deny {
                reason: "rejected by carol: p99 regressed in beta".into()
            }
        );
        assert_eq!(
            e.clear_hint.as_deref(),
            Some(
                "a rejection stands for this run; start a new run, or: sluice override r1 --gate approval --stage prod --reason \"...\""
            )
        );
    }

    #[test]
    fn the_actor_comes_from_the_first_variable_set_then_passwd_then_the_uid() {
        let vars = |set: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                set.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            actor_from(
                vars(&[
                    ("USER", "dev"),
                    ("GITHUB_ACTOR", "octocat"),
                    ("SLUICE_ACTOR", " ")
                ]),
                || None
            ),
            "octocat"
        );
        assert_eq!(
            actor_from(vars(&[("SLUICE_ACTOR", "release-bot")]), || None),
            "release-bot"
        );
        let uid = rustix::process::getuid().as_raw();
        assert_eq!(
            actor_from(vars(&[]), || Some(format!(
                "root:x:0:0::/root:/bin/sh\nsomeone:x:{uid}:{uid}::/home/someone:/bin/sh\n"
            ))),
            if uid == 0 { "root" } else { "someone" }
        );
        assert_eq!(actor_from(vars(&[]), || None), format!("uid:{uid}"));
    }
}
