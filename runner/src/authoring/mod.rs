//! The plugin-author kit: what `sluice plugin new|run|test|check|wit|bindgen|componentize`
//! do, one module per job. Each works on one plugin, outside any pipeline.
//!
//! - [`scaffold`]: `plugin new`, a project from the templates embedded in the binary;
//! - [`once`]: `plugin run`, one plugin run once with a `with` table and grants;
//! - [`cases`]: `plugin test`, fixture cases run and compared with expected reports;
//! - [`conformance`]: `plugin check`, the checks every plugin must pass;
//! - [`toolkit`]: `plugin wit`, `plugin bindgen` and `plugin componentize`, the build
//!   steps of languages without a component toolchain of their own (C, Go).

pub mod cases;
pub mod conformance;
pub mod once;
pub mod scaffold;
pub mod toolkit;

/// Why an authoring command could not do its job. Every message names the file, key or
/// plugin at fault and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum AuthoringError {
    /// Bad input from the user (a name, a flag, a case file): exit code 2.
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The runner itself failed (a temporary folder, the engine): exit code 3.
    #[error("{0}")]
    Internal(String),
}

/// The files embedded by the build script: `(path relative to the workspace root,
/// bytes)` under `templates/`, `wit/` and `sdk/{python,js,go,c}/`.
pub(crate) mod embedded {
    include!(concat!(env!("OUT_DIR"), "/authoring_files.rs"));

    /// The embedded files under `prefix/` (a folder relative to the workspace root),
    /// as `(path relative to that folder, bytes)`.
    pub fn under(prefix: &str) -> impl Iterator<Item = (&'static str, &'static [u8])> + '_ {
        AUTHORING_FILES.iter().filter_map(move |(path, bytes)| {
            let rest = path.strip_prefix(prefix)?.strip_prefix('/')?;
            Some((rest, *bytes))
        })
    }
}
