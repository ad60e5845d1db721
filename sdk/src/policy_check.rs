//! Organisation checks (the contract's `policy-check` world, 0.1.6): a rule a platform
//! team's policy file runs over every pipeline. A check is a type that implements
//! [`PolicyCheck`], exported with [`crate::export_policy_check!`]; it receives the
//! pipeline model (docs/policy/model.md: `model-version`, pipeline, stages with kinds,
//! gates, bake and steps, monitors, targets) as a [`serde_json::Value`] and its `with`
//! table as its own config type, and returns the [`Violation`]s it finds.
//!
//! ```
//! use sluice_sdk::policy_check::{PolicyCheck, Violation, production_stages};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema, Default)]
//! #[serde(deny_unknown_fields, rename_all = "kebab-case")]
//! struct Config {}
//!
//! struct NoYolo;
//!
//! impl PolicyCheck for NoYolo {
//!     type Config = Config;
//!     const NAME: &'static str = "no-yolo";
//!     const VERSION: &'static str = "0.1.0";
//!     const SUMMARY: &'static str = "No production stage is named `yolo`.";
//!
//!     fn check(model: &serde_json::Value, _config: Config) -> Result<Vec<Violation>, String> {
//!         Ok(production_stages(model)
//!             .filter(|s| s["name"] == "yolo")
//!             .map(|s| Violation::at_stage("`yolo` reaches production", "yolo"))
//!             .collect())
//!     }
//! }
//!
//! sluice_sdk::export_policy_check!(NoYolo);
//! ```
//!
//! A check imports only `log`: it reads no file, opens no socket, sees no environment.
//! `Err` means it could not decide (shown as a check that failed to run, never as a
//! violation); a panic traps the component, which the runner reports the same way.

use serde_json::Value;

/// The model versions this SDK knows.
pub const MODEL_VERSIONS: &[u64] = &[1];

/// One way the pipeline breaks the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// What is wrong, for the engineer who owns the pipeline.
    pub message: String,
    /// The stage at fault, by name.
    pub stage: Option<String>,
    /// The step at fault, by id (with its `stage`).
    pub step: Option<String>,
}

impl Violation {
    /// A violation of the pipeline as a whole.
    pub fn new(message: impl Into<String>) -> Self {
        Violation {
            message: message.into(),
            stage: None,
            step: None,
        }
    }

    /// A violation at a stage.
    pub fn at_stage(message: impl Into<String>, stage: impl Into<String>) -> Self {
        Violation {
            stage: Some(stage.into()),
            ..Violation::new(message)
        }
    }

    /// A violation at a step of a stage.
    pub fn at_step(
        message: impl Into<String>,
        stage: impl Into<String>,
        step: impl Into<String>,
    ) -> Self {
        Violation {
            step: Some(step.into()),
            ..Violation::at_stage(message, stage)
        }
    }
}

/// An organisation check written in Rust.
pub trait PolicyCheck {
    /// The check's `with` table. Derive `serde::Deserialize` and `schemars::JsonSchema`.
    type Config: serde::de::DeserializeOwned + schemars::JsonSchema;
    /// Short name, e.g. `approval-before-production`.
    const NAME: &'static str;
    /// Semantic version of the check.
    const VERSION: &'static str;
    /// One sentence saying what the check requires.
    const SUMMARY: &'static str;

    /// Check one pipeline model; `Ok(vec![])` passes.
    fn check(model: &Value, config: Self::Config) -> Result<Vec<Violation>, String>;
}

/// The answer to `describe`: name, version, summary and the config's JSON Schema.
pub fn describe_policy_check<C: PolicyCheck>() -> (String, String, String, String) {
    let schema = schemars::schema_for!(C::Config);
    (
        C::NAME.to_owned(),
        C::VERSION.to_owned(),
        C::SUMMARY.to_owned(),
        serde_json::to_string(&schema).expect("a JSON Schema built by schemars always serializes"),
    )
}

/// Run `C` exactly as the exported `check()` does: parse the model (JSON text) and
/// refuse a model version this SDK does not know, parse the config (errors name the
/// field), call [`PolicyCheck::check`]. Natively, this is the test harness of a check.
pub fn run_policy_check<C: PolicyCheck>(
    model: &str,
    config: &str,
) -> Result<Vec<Violation>, String> {
    let model: Value =
        serde_json::from_str(model).map_err(|e| format!("the model is not JSON: {e}"))?;
    let version = model["model-version"].as_u64();
    if !version.is_some_and(|v| MODEL_VERSIONS.contains(&v)) {
        return Err(format!(
            "model-version {} is not one this check knows ({MODEL_VERSIONS:?}); rebuild it with a newer sluice-sdk",
            model["model-version"]
        ));
    }
    let de = &mut serde_json::Deserializer::from_str(config);
    let config: C::Config = serde_path_to_error::deserialize(de)
        .map_err(|e| format!("invalid `with` at `{}`: {}", e.path(), e.inner()))?;
    let found = C::check(&model, config)?;
    if let Some(v) = found.iter().find(|v| v.message.trim().is_empty()) {
        return Err(format!(
            "{} returned a violation without a message: {v:?}",
            C::NAME
        ));
    }
    Ok(found)
}

/// The model's stages, in order.
pub fn stages(model: &Value) -> impl Iterator<Item = &Value> {
    model["stages"].as_array().into_iter().flatten()
}

/// The stages that reach production (protected, or of kind `production`).
pub fn production_stages(model: &Value) -> impl Iterator<Item = &Value> {
    stages(model).filter(|s| s["protected"] == true || has_kind(s, "production"))
}

/// Whether `stage` has `kind` among its kinds.
pub fn has_kind(stage: &Value, kind: &str) -> bool {
    stage["kinds"]
        .as_array()
        .is_some_and(|k| k.iter().any(|k| k == kind))
}

/// The gates of `stage` of `kind` (`approval`, `window`, `alarms`).
pub fn gates_of_kind<'a>(stage: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> {
    stage["gates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(move |g| g["kind"] == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    struct Config {
        #[serde(default)]
        forbidden: Vec<String>,
    }

    struct Forbid;

    impl PolicyCheck for Forbid {
        type Config = Config;
        const NAME: &'static str = "forbid";
        const VERSION: &'static str = "0.1.0";
        const SUMMARY: &'static str = "No stage has a forbidden name.";
        fn check(model: &Value, config: Config) -> Result<Vec<Violation>, String> {
            Ok(stages(model)
                .filter_map(|s| s["name"].as_str())
                .filter(|n| config.forbidden.iter().any(|f| f == n))
                .map(|n| Violation::at_stage(format!("stage `{n}` is forbidden"), n))
                .collect())
        }
    }

    const MODEL: &str = r#"{"model-version": 1, "stages": [
        {"name": "test", "kinds": ["test"], "protected": false, "gates": []},
        {"name": "yolo", "kinds": [], "protected": true, "gates": [{"id": "a", "kind": "approval", "settings": {"required": 1}}]}
    ]}"#;

    #[test]
    fn a_check_runs_natively_like_the_component() {
        let found = run_policy_check::<Forbid>(MODEL, r#"{"forbidden": ["yolo"]}"#).unwrap();
        assert_eq!(
            found,
            vec![Violation::at_stage("stage `yolo` is forbidden", "yolo")]
        );
        assert!(run_policy_check::<Forbid>(MODEL, "{}").unwrap().is_empty());
    }

    #[test]
    fn an_unknown_model_version_or_bad_config_is_an_error() {
        let err = run_policy_check::<Forbid>(r#"{"model-version": 7}"#, "{}").unwrap_err();
        assert!(err.contains("model-version 7"), "{err}");
        let err = run_policy_check::<Forbid>(MODEL, r#"{"forbidden": 3}"#).unwrap_err();
        assert!(err.contains("`forbidden`"), "{err}");
    }

    #[test]
    fn model_helpers_find_production_stages_and_gates() {
        let model: Value = serde_json::from_str(MODEL).unwrap();
        let prod: Vec<_> = production_stages(&model).map(|s| &s["name"]).collect();
        assert_eq!(prod, vec!["yolo"]);
        let yolo = production_stages(&model).next().unwrap();
        assert_eq!(gates_of_kind(yolo, "approval").count(), 1);
        assert!(has_kind(&model["stages"][0], "test"));
    }

    #[test]
    fn describe_gives_the_configs_schema() {
        let (name, _, _, schema) = describe_policy_check::<Forbid>();
        assert_eq!(name, "forbid");
        let schema: Value = serde_json::from_str(&schema).unwrap();
        assert!(schema["properties"]["forbidden"].is_object(), "{schema}");
    }
}
