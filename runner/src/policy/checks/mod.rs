//! Organisation checks over a pipeline: the built-in ones ([`builtin`]) and those
//! written as plugins of the `policy-check` world ([`custom`]). A check finds
//! violations; whether a violation warns or blocks is [`super::lifecycle`]'s to say,
//! at an instant, so findings do not depend on the date.

pub mod builtin;
pub mod custom;

use serde::Serialize;

use super::{CheckKind, Policy};
use crate::config::{Pipeline, SourcePos};

/// One violation of a check, at its place in the pipeline when it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// What is wrong, for the engineer who owns the pipeline.
    pub message: String,
    pub stage: Option<String>,
    pub step: Option<String>,
    /// Where in `sluice.toml` (line:col), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<SourcePosShown>,
}

/// A position as reports show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourcePosShown {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl From<&SourcePos> for SourcePosShown {
    fn from(p: &SourcePos) -> Self {
        SourcePosShown {
            file: p.file.display().to_string(),
            line: p.line,
            column: p.column,
        }
    }
}

/// What one check found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub check: String,
    pub violations: Vec<Violation>,
    /// Set when the check could not run (a custom check's plugin failed or returned
    /// garbage): it is shown, and never blocks.
    pub error: Option<String>,
}

/// Every check's result for one pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct Findings {
    pub pipeline: String,
    pub results: Vec<CheckResult>,
}

/// Run every check of the policy over the pipeline, in file order. Custom checks load
/// through `host` (`None`: they are reported as not run). A check that cannot run
/// comes back with `error` set; it never stops the others.
pub async fn evaluate(
    policy: &Policy,
    pipeline: &Pipeline,
    host: Option<&crate::host::plugin::PluginHost>,
) -> Findings {
    let mut results = Vec::with_capacity(policy.checks.len());
    for check in &policy.checks {
        let result = match (&check.kind, host) {
            (CheckKind::Builtin { name, with }, _) => {
                match builtin::run(name, with, policy, pipeline) {
                    Ok(violations) => CheckResult {
                        check: check.id.clone(),
                        violations,
                        error: None,
                    },
                    Err(error) => CheckResult {
                        check: check.id.clone(),
                        violations: Vec::new(),
                        error: Some(error),
                    },
                }
            }
            (CheckKind::Custom { .. }, Some(host)) => {
                custom::run(check, policy, pipeline, host).await
            }
            (CheckKind::Custom { uses, .. }, None) => CheckResult {
                check: check.id.clone(),
                violations: Vec::new(),
                error: Some(format!(
                    "custom check `{uses}` was not run: no plugin host to load it in"
                )),
            },
        };
        results.push(result);
    }
    Findings {
        pipeline: pipeline.name.clone(),
        results,
    }
}

/// A policy built in code, for the unit tests of the checks and the lifecycle.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};

    use crate::config::{SourceFile, SourcePos};
    use crate::policy::{
        Blocks, CheckKind, CheckSpec, Exemption, Pattern, Policy, PolicyRef, Protection,
    };

    pub(crate) fn pos() -> SourcePos {
        SourcePos {
            file: PathBuf::from("policy.toml"),
            line: 1,
            column: 1,
        }
    }

    /// A policy whose stages named `prod*` are protected, with these checks.
    pub(crate) fn policy(checks: Vec<CheckSpec>, exemptions: Vec<Exemption>) -> Policy {
        Policy {
            name: "acme".into(),
            version: None,
            source: SourceFile {
                path: PathBuf::from("policy.toml"),
                text: String::new(),
            },
            origin: PolicyRef::File(PathBuf::from("policy.toml")),
            digest: String::new(),
            tiers: vec!["org".into()],
            protect: Protection {
                stages: vec![Pattern("prod*".into())],
                ..Protection::default()
            },
            kinds: Vec::new(),
            plugins: Vec::new(),
            keys: Vec::new(),
            ceilings: Vec::new(),
            checks,
            exemptions,
        }
    }

    pub(crate) fn date(s: &str) -> jiff::civil::Date {
        s.parse().expect("a date")
    }

    pub(crate) fn builtin(id: &str, name: &str, with: serde_json::Value) -> CheckSpec {
        CheckSpec {
            id: id.into(),
            kind: CheckKind::Builtin {
                name: name.into(),
                with,
            },
            message: format!("the {name} practice"),
            warn_from: None,
            enforce_from: None,
            blocks: Blocks::Run,
            pos: pos(),
        }
    }

    pub(crate) fn pipeline(text: &str) -> crate::config::Pipeline {
        crate::config::parse(Path::new("sluice.toml"), text.to_string())
            .unwrap_or_else(|e| panic!("a valid pipeline: {e}"))
    }
}
