//! The `grants` import (contract 0.1.5): what the step was granted, as the plugin sees
//! it, so that a plugin can resolve paths against its folders and say which grant is
//! missing before it tries. The answer is fixed when the step's grants are resolved;
//! nothing here widens or checks access (the other capabilities do).

use std::sync::Arc;

use crate::host::bindings::sluice::plugin::grants as wit;

/// One step's grants, as the `grants` import reports them.
#[derive(Debug, Clone)]
pub struct GrantedView {
    granted: wit::Granted,
}

impl Default for GrantedView {
    /// No grants at all (what `describe` sees).
    fn default() -> Self {
        GrantedView {
            granted: wit::Granted {
                read: Vec::new(),
                write: Vec::new(),
                exec: Vec::new(),
                net: Vec::new(),
                env: Vec::new(),
                secrets: Vec::new(),
                targets: Vec::new(),
            },
        }
    }
}

impl GrantedView {
    /// The view of resolved grants: `read` and `write` are the canonical folders the
    /// step actually got (a missing read folder is left out, as it is from the preopens).
    pub fn new(
        files: &super::files::FileAccess,
        step: &crate::config::Grants,
        secrets: Vec<String>,
    ) -> GrantedView {
        let text = |p: &std::path::Path| p.to_string_lossy().into_owned();
        GrantedView {
            granted: wit::Granted {
                read: files.read_only().map(text).collect(),
                write: files.writable().map(text).collect(),
                exec: step.exec.clone(),
                net: step.net.iter().map(ToString::to_string).collect(),
                env: step.env.clone(),
                secrets,
                targets: step.targets.clone(),
            },
        }
    }

    /// The folders the step may read (its read and write grants), as the host resolved
    /// them.
    pub fn readable_folders(&self) -> Vec<std::path::PathBuf> {
        self.granted
            .read
            .iter()
            .chain(&self.granted.write)
            .map(std::path::PathBuf::from)
            .collect()
    }

    /// What the import returns.
    pub fn granted(&self) -> &wit::Granted {
        &self.granted
    }
}

/// The `grants` import. `describe` (a store without capabilities) sees no grants.
impl wit::Host for crate::host::step::StepState {
    fn current(&mut self) -> wit::Granted {
        self.grants.granted().clone()
    }
}

/// Shared by every attempt of a step.
pub type SharedGrants = Arc<GrantedView>;
