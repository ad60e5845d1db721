//! Secrets the step is granted, through the host's `secrets` import.
//!
//! ```no_run
//! let token = sluice_sdk::secrets::get("registry-token")?;
//! # Ok::<(), sluice_sdk::RunError>(())
//! ```
//!
//! The runner masks every secret value (`***`) in whatever leaves it: the step log, the
//! step's record and report, the console. A secret granted with `env` is also in the
//! plugin's environment (`std::env::var`), and one granted with `file` is a file in the
//! TMPDIR of every program the step starts.
//!
//! Outside a WebAssembly host (a plugin's native unit tests), a secret is read from the
//! environment variable `SLUICE_SECRET_<NAME>` (upper case, `-` as `_`).

use crate::RunError;

/// The value of secret `name`; denied (naming the grant to add) when the step's
/// `secrets` grant does not name it.
pub fn get(name: &str) -> Result<String, RunError> {
    host::get(name).map_err(RunError::denied)
}

#[cfg(target_arch = "wasm32")]
mod host {
    use crate::bindings::sluice::plugin::secrets;

    pub(super) fn get(name: &str) -> Result<String, String> {
        secrets::get(name).map_err(|secrets::SecretError::NotGranted(why)| why)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod host {
    //! Native stand-in for the `secrets` import, for unit tests.
    pub(super) fn get(name: &str) -> Result<String, String> {
        let var = format!("SLUICE_SECRET_{}", name.to_uppercase().replace('-', "_"));
        std::env::var(&var).map_err(|_| format!("secret `{name}` is not set (set {var} in tests)"))
    }
}
