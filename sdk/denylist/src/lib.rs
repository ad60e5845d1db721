//! Blocked content: package versions (a package-url plus a version range) and git
//! references that must not appear in an artifact. One format and one matcher for both
//! users: `builtin:security-scan` (a step: the `denylist` table of its `with`, matched
//! against lockfiles) and the runner's blocked-content gate (at every promotion: a
//! denylist file, matched against the run's SBOM and its git commit). Plain Rust with no
//! host imports, so the wasm plugin and the native runner share it.
//!
//! - [`config`]: the format as written, and its checking into a [`Denylist`];
//! - [`file`]: the same format as a file of its own, with errors at a line;
//! - [`matching`]: version ranges, package selectors, and which entries a package hits.

pub mod config;
pub mod file;
pub mod matching;

/// The package type [`check`] matches, from the shared lockfile crate.
pub use sluice_lockfiles::Package;

pub use config::{DenyGitRefConfig, DenyPackageConfig, Denylist, DenylistConfig};
pub use matching::{
    GitRefEntry, Hit, PackageEntry, PackageSelector, VersionRange, check, normalize_repo,
    package_of_purl,
};
