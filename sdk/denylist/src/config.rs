//! The denylist as written: the security-scan step's `denylist` table (`with = {
//! denylist = { packages = [...], git-refs = [...] } }`) and, in the same shape, a
//! denylist file (see [`crate::file`]). [`DenylistConfig::compile`] checks every entry
//! and turns it into the [`Denylist`] that [`crate::check`] matches against.

use crate::matching::{GitRefEntry, PackageEntry, PackageSelector, VersionRange};

/// Blocked content.
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DenylistConfig {
    /// Blocked package versions.
    #[serde(default)]
    pub packages: Vec<DenyPackageConfig>,
    /// Blocked git references.
    #[serde(default)]
    pub git_refs: Vec<DenyGitRefConfig>,
}

/// A blocked package range.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DenyPackageConfig {
    /// Package-url without version, e.g. `pkg:npm/event-stream`, `pkg:cargo/openssl`.
    pub purl: String,
    /// Versions: comparisons joined by `,` (and) and `||` (or), e.g.
    /// `>=3.3.6, <3.3.7 || =4.0.0`, or `*` for all.
    #[serde(default = "star")]
    pub versions: String,
    /// Why it is blocked.
    pub reason: String,
}

/// A blocked git reference.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DenyGitRefConfig {
    /// Repository URL (any of https/ssh forms; compared without scheme and `.git`).
    pub repo: String,
    /// A commit (at least 7 hex digits), branch or tag.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Why it is blocked.
    pub reason: String,
}

fn star() -> String {
    "*".into()
}

/// A checked denylist, ready to match.
#[derive(Clone, Debug, Default)]
pub struct Denylist {
    pub packages: Vec<PackageEntry>,
    pub git_refs: Vec<GitRefEntry>,
}

impl DenyPackageConfig {
    /// Check the purl and the range against the purl's ecosystem.
    pub fn compile(&self) -> Result<PackageEntry, String> {
        let selector = PackageSelector::parse(&self.purl).map_err(|e| format!("denylist: {e}"))?;
        let versions = VersionRange::parse(&self.versions, selector.ecosystem)
            .map_err(|e| format!("denylist `{}`: {e}", self.purl))?;
        Ok(PackageEntry {
            selector,
            versions,
            reason: self.reason.clone(),
        })
    }
}

impl DenyGitRefConfig {
    pub fn compile(&self) -> GitRefEntry {
        GitRefEntry {
            repo: self.repo.clone(),
            reference: self.reference.clone(),
            reason: self.reason.clone(),
        }
    }
}

impl DenylistConfig {
    /// Check every entry; the first bad one is the error, naming its purl.
    pub fn compile(&self) -> Result<Denylist, String> {
        Ok(Denylist {
            packages: self
                .packages
                .iter()
                .map(DenyPackageConfig::compile)
                .collect::<Result<_, _>>()?,
            git_refs: self
                .git_refs
                .iter()
                .map(DenyGitRefConfig::compile)
                .collect(),
        })
    }
}
