//! The check: every stage that reaches production has an approval gate with at least
//! `min-approvers` approvers. It reads only the pipeline model (docs/policy/model.md in
//! Sluice); `cargo test` runs it natively on sample models.

use serde_json::Value;
use sluice_sdk::policy_check::{PolicyCheck, Violation, gates_of_kind, production_stages};

/// The check's `with` table.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(example = example())]
pub struct Config {
    /// The fewest distinct approvers a production stage's approval gate may ask for.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub min_approvers: u64,
}

fn one() -> u64 {
    1
}

fn example() -> Value {
    serde_json::json!({ "min-approvers": 2 })
}

/// The check.
pub struct {{name_camel}};

impl PolicyCheck for {{name_camel}} {
    type Config = Config;
    const NAME: &'static str = "{{name}}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SUMMARY: &'static str = "Every production stage has an approval gate with enough approvers.";

    fn check(model: &Value, config: Config) -> Result<Vec<Violation>, String> {
        let mut found = Vec::new();
        for stage in production_stages(model) {
            let name = stage["name"].as_str().unwrap_or_default();
            let most = gates_of_kind(stage, "approval")
                .filter_map(|g| g["settings"]["required"].as_u64())
                .max();
            match most {
                None => found.push(Violation::at_stage(
                    format!(
                        "stage `{name}` reaches production without an approval gate; add [stage.gates.approve] kind = \"approval\" with required = {}",
                        config.min_approvers
                    ),
                    name,
                )),
                Some(most) if most < config.min_approvers => found.push(Violation::at_stage(
                    format!(
                        "stage `{name}` asks {most} approver(s) for production; this check wants at least {}",
                        config.min_approvers
                    ),
                    name,
                )),
                Some(_) => {}
            }
        }
        Ok(found)
    }
}

sluice_sdk::export_policy_check!({{name_camel}});

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::policy_check::run_policy_check;

    fn model(prod_gates: &str) -> String {
        format!(
            r#"{{"model-version": 1, "stages": [
                {{"name": "test", "kinds": ["test"], "protected": false, "gates": []}},
                {{"name": "prod", "kinds": ["production"], "protected": true, "gates": {prod_gates}}}
            ]}}"#
        )
    }

    #[test]
    fn a_production_stage_without_an_approval_gate_is_a_violation() {
        let found = run_policy_check::<{{name_camel}}>(&model("[]"), "{}").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].stage.as_deref(), Some("prod"));
    }

    #[test]
    fn min_approvers_counts_the_gates_required_approvers() {
        let gates = r#"[{"id": "a", "kind": "approval", "settings": {"required": 1}}]"#;
        assert!(run_policy_check::<{{name_camel}}>(&model(gates), "{}").unwrap().is_empty());
        let found = run_policy_check::<{{name_camel}}>(&model(gates), r#"{"min-approvers": 2}"#).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
    }

    #[test]
    fn an_unknown_model_version_is_an_error() {
        assert!(run_policy_check::<{{name_camel}}>(r#"{"model-version": 9}"#, "{}").is_err());
    }
}
