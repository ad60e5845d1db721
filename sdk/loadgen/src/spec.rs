//! The whole test as a pipeline writes it (`with` of a `builtin:load-test` step): the load
//! model, the requests, the thresholds and a seed, built into a [`Run`] in one call.

use std::collections::BTreeMap;

use crate::plan::{LoadSpec, Plan, PlanError};
use crate::request::{RequestSpec, TemplateError, Templates};
use crate::run::Run;
use crate::threshold::{ThresholdError, Thresholds, ThresholdsSpec};

/// The load model, requests, thresholds and seed of one test.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TestSpec {
    /// The load model.
    #[serde(flatten)]
    pub load: LoadSpec,
    /// The requests an iteration chooses from, by weight.
    pub requests: Vec<RequestSpec>,
    /// k6-style thresholds by metric, e.g. `http_req_duration = ["p(99)<50"]`.
    #[serde(default)]
    pub thresholds: ThresholdsSpec,
    /// Seed of the weighted request choice (default 1): the same seed, the same mix.
    #[serde(default)]
    pub seed: Option<u64>,
}

/// Why a test could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// The load model.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A request template.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A threshold.
    #[error(transparent)]
    Threshold(#[from] ThresholdError),
}

impl TestSpec {
    /// Checks everything and makes the run; `variables` fill `{{name}}` in the requests
    /// (the plugin passes `version`).
    pub fn build(&self, variables: &BTreeMap<String, String>) -> Result<Run, SpecError> {
        let plan = Plan::new(&self.load)?;
        let templates = Templates::new(&self.requests, variables, self.seed.unwrap_or(1))?;
        let thresholds = Thresholds::parse(&self.thresholds)?;
        Ok(Run::new(plan, templates, thresholds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<TestSpec, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn one_table_builds_a_run() {
        let spec = read(
            r#"{"model": "closed", "vus": 8, "duration": "30s", "warm-up": "5s",
                "requests": [{"url": "http://127.0.0.1:8080/{{version}}"}],
                "thresholds": {"http_req_duration": ["p(99)<50"]}, "seed": 9}"#,
        )
        .unwrap();
        let vars = BTreeMap::from([("version".to_string(), "3.1.0".to_string())]);
        let run = spec.build(&vars).unwrap();
        assert_eq!(run.plan().vus_at(std::time::Duration::ZERO), 8);
        assert_eq!(run.requests()[0].url, "http://127.0.0.1:8080/3.1.0");
    }

    #[test]
    fn unknown_keys_and_each_kind_of_fault_are_reported() {
        let e = read(r#"{"rate": 5, "duration": "1s", "requests": [], "rps": 5}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rps"), "{e}");
        let vars = BTreeMap::new();
        let bad_plan = read(r#"{"duration": "1s", "requests": [{"url": "http://h/"}]}"#).unwrap();
        assert!(matches!(bad_plan.build(&vars), Err(SpecError::Plan(_))));
        let bad_request =
            read(r#"{"rate": 1, "duration": "1s", "requests": [{"url": "http://h/{{version}}"}]}"#)
                .unwrap();
        let e = bad_request.build(&vars).unwrap_err().to_string();
        assert_eq!(
            e,
            "requests[0].url: unknown variable {{version}}; defined: none"
        );
        let bad_threshold = read(
            r#"{"rate": 1, "duration": "1s", "requests": [{"url": "http://h/"}], "thresholds": {"http_req_failed": ["p(99)<1"]}}"#,
        )
        .unwrap();
        assert!(matches!(
            bad_threshold.build(&vars),
            Err(SpecError::Threshold(_))
        ));
    }

    #[test]
    fn the_schema_names_every_key() {
        let schema = serde_json::to_string(&schemars::schema_for!(TestSpec)).unwrap();
        for key in [
            "max-in-flight",
            "max-start-delay",
            "warm-up",
            "graceful-stop",
            "stages",
            "requests",
            "thresholds",
            "expect",
            "abort-on-fail",
            "delay-abort-eval",
        ] {
            assert!(
                schema.contains(&format!("\"{key}\"")),
                "{key} missing from {schema}"
            );
        }
    }
}
