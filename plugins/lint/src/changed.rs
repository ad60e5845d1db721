//! Restricting findings to the files changed against a git base ref (`changed-since`):
//! the files `git diff --name-only --merge-base <ref>` lists (committed and uncommitted
//! changes since the merge base; `<ref>...HEAD` plus `git diff HEAD` on a git too old
//! for `--merge-base`), plus untracked files (`git ls-files --others
//! --exclude-standard`). Git prints paths relative to the repository's top folder.

use std::collections::BTreeSet;
use std::path::Path;

use sluice_sdk::Finding;

use crate::paths::Anchor;

/// The changed files, relative to the pipeline's folder, from git's `--name-only`
/// listings (each relative to the repository's top folder `toplevel`).
pub fn changed_files(toplevel: &Path, workdir: &Path, listings: &[&str]) -> BTreeSet<String> {
    let anchor = Anchor::new(workdir, toplevel);
    listings
        .iter()
        .flat_map(|listing| listing.lines())
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| anchor.relative(line))
        .collect()
}

/// Keep the findings whose file is in `changed`; findings without a location are kept
/// (they are about the whole project). Returns how many were dropped.
pub fn retain_changed(findings: &mut Vec<Finding>, changed: &BTreeSet<String>) -> usize {
    let before = findings.len();
    findings.retain(|finding| match &finding.location {
        Some(location) => changed.contains(&location.path),
        None => true,
    });
    before - findings.len()
}
