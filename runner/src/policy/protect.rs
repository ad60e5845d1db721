//! Which stages of a pipeline are protected (they reach production), and the kinds
//! of each stage (`build`, `test`, `deploy`, `production`, and those the policy names
//! by pattern), which ceilings and checks select stages by.

use super::Policy;
use crate::config::{Pipeline, Stage};

impl Policy {
    /// Whether the stage is protected: marked `protected = true`, named by
    /// `[protect] stages`, or granting a target group or target `[protect] targets`
    /// names.
    pub fn is_protected(&self, pipeline: &Pipeline, stage: &Stage) -> bool {
        let _ = pipeline;
        stage.protected || self.protect.stages.iter().any(|p| p.matches(&stage.name))
    }
}

/// The kinds of a stage: from its plugins (`builtin:build` → `build`; unit-test,
/// load-test → `test`; deploy or a `targets` grant → `deploy`), `production` when
/// protected, and those whose `[kinds]` patterns match its name. Without a policy,
/// only the inferred kinds and `protected = true`.
pub fn stage_kinds(policy: Option<&Policy>, pipeline: &Pipeline, stage: &Stage) -> Vec<String> {
    let _ = (policy, pipeline, stage);
    Vec::new()
}
