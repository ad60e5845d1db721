//! Environment variables: a step sees only the variables named in its `env` grant,
//! with the runner's values, and those its toolchain presets set
//! ([`crate::toolchains`]). The runner's environment is never inherited wholesale.

use wasmtime_wasi::WasiCtxBuilder;

/// The granted variables that are set in the runner's environment.
#[derive(Debug, Clone, Default)]
pub struct EnvAccess {
    granted: Vec<String>,
    vars: Vec<(String, String)>,
}

impl EnvAccess {
    /// Take the granted variables from the runner's environment (unset ones are
    /// absent), after the toolchains' variables (`preset`), which a granted variable of
    /// the same name replaces.
    pub fn resolve(granted: &[String], preset: &[(String, String)]) -> EnvAccess {
        let mut vars: Vec<(String, String)> = preset
            .iter()
            .filter(|(name, _)| !granted.contains(name) || std::env::var_os(name).is_none())
            .cloned()
            .collect();
        vars.extend(
            granted
                .iter()
                .filter_map(|name| std::env::var(name).ok().map(|v| (name.clone(), v))),
        );
        EnvAccess {
            granted: granted.to_vec(),
            vars,
        }
    }

    /// Whether the grant names `name` (set in the runner's environment or not).
    pub fn granted(&self, name: &str) -> bool {
        self.granted.iter().any(|g| g == name)
    }

    /// The variables, as `name`, `value`.
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }

    /// Give them to the plugin.
    pub fn apply(&self, wasi: &mut WasiCtxBuilder) {
        wasi.envs(&self.vars);
    }
}
