//! Secrets: the step's `secrets` grant, resolved to values when the step starts.
//!
//! The plugin reads a granted secret through the `secrets` import; one granted with
//! `env` is also a variable in the plugin's environment and every program's; one
//! granted with `file` is a file (mode 0600) in the TMPDIR of every program the step
//! starts. Nothing else of the run's secrets is reachable. Every value is masked in
//! whatever leaves the runner (see [`crate::secrets::redact`]).

use crate::config::SecretGrant;
use crate::host::bindings::sluice::plugin::secrets as wit;
use crate::secrets::SecretValues;

/// The secrets one step is granted, with their values.
#[derive(Default)]
pub struct SecretAccess {
    granted: Vec<(SecretGrant, String)>,
}

impl std::fmt::Debug for SecretAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.granted.iter().map(|(g, _)| &g.name))
            .finish()
    }
}

impl SecretAccess {
    /// The values of `grants`, from the run's secrets (every granted secret was read
    /// when the run started).
    pub fn resolve(grants: &[SecretGrant], values: &SecretValues) -> SecretAccess {
        SecretAccess {
            granted: grants
                .iter()
                .filter_map(|g| values.get(&g.name).map(|v| (g.clone(), v.to_string())))
                .collect(),
        }
    }

    /// The names granted.
    pub fn names(&self) -> Vec<String> {
        self.granted.iter().map(|(g, _)| g.name.clone()).collect()
    }

    /// The value of `name`, or why the step may not have it.
    pub fn get(&self, name: &str) -> Result<&str, String> {
        match self.granted.iter().find(|(g, _)| g.name == name) {
            Some((_, value)) => Ok(value),
            None => Err(format!(
                "secret `{name}` is not in the step's `secrets` grant (granted: {}); add \"{name}\" under [stage.step.grants] secrets",
                if self.granted.is_empty() {
                    "none".to_string()
                } else {
                    self.names().join(", ")
                }
            )),
        }
    }

    /// Secrets granted as environment variables: `(variable, value)`.
    pub fn env(&self) -> Vec<(String, String)> {
        self.granted
            .iter()
            .filter_map(|(g, v)| g.env.clone().map(|e| (e, v.clone())))
            .collect()
    }

    /// Secrets granted as files in the programs' TMPDIR: `(file name, value)`.
    pub fn files(&self) -> Vec<(String, String)> {
        self.granted
            .iter()
            .filter_map(|(g, v)| g.file.clone().map(|f| (f, v.clone())))
            .collect()
    }
}

/// The `secrets` import.
impl wit::Host for crate::host::step::StepState {
    fn get(&mut self, name: String) -> Result<String, wit::SecretError> {
        match self.secrets.get(&name) {
            Ok(value) => Ok(value.to_string()),
            Err(why) => {
                self.log.line(
                    crate::capabilities::logs::Source::Runner,
                    &format!("denied: {why}"),
                );
                Err(wit::SecretError::NotGranted(why))
            }
        }
    }
}
