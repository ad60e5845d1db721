//! Custom organisation checks: components of the `policy-check` world, given the
//! pipeline model ([`crate::policy::model`]) as JSON and their `with` config, returning
//! violations. A platform team writes them in any language the author kit supports.

use super::CheckResult;
use crate::config::Pipeline;
use crate::host::plugin::PluginHost;
use crate::policy::{CheckSpec, Policy};

/// Run one custom check (`CheckKind::Custom`) over the pipeline: load its component
/// (world `policy-check`), give it the model and its `with`, collect its violations.
/// A check that fails to load or run comes back with `error` set, never a panic.
pub async fn run(
    check: &CheckSpec,
    policy: &Policy,
    pipeline: &Pipeline,
    host: &PluginHost,
) -> CheckResult {
    let _ = (policy, pipeline, host);
    CheckResult {
        check: check.id.clone(),
        violations: Vec::new(),
        error: Some("custom checks are not supported yet".into()),
    }
}
