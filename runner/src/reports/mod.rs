//! Reports of a finished run, for the places CI systems show results:
//! - [`junit`]: `junit.xml`, every test case of the run (test tabs of every CI);
//! - [`sarif`]: `results.sarif`, every finding (GitHub code scanning and others);
//! - [`summary`]: `summary.json`, the run at a glance for scripts;
//! - [`github`]: workflow-command annotations and a Markdown job summary, when the run
//!   happens inside GitHub Actions;
//! - [`deployments`]: the run's deployments and rollbacks as the state store recorded
//!   them, for `summary.json`, the job summary, `sluice status` and `sluice explain`.
//!
//! All are derived from the [`RunResult`] and the run's recorded deployments (read by
//! the caller with [`deployments::read`]); none reads anything else.

pub mod deployments;
pub mod github;
pub mod junit;
pub mod sarif;
pub mod summary;

use std::path::{Path, PathBuf};

use crate::executor::RunResult;
use crate::folders::OwnedDir;
use crate::host::bindings::types::Severity;

/// A report that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", path.display())]
pub struct ReportError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Write `junit.xml`, `results.sarif` and `summary.json` into `dir`, replacing what
/// is there without following links. Returns the paths written.
pub fn write_all(
    run: &RunResult,
    deployments: &[deployments::DeploymentStory],
    dir: &OwnedDir,
) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::new();
    let files: [(&str, String); 3] = [
        ("junit.xml", junit::render(run)),
        ("results.sarif", sarif::render(run)),
        ("summary.json", summary::render(run, deployments)),
    ];
    for (name, text) in files {
        let path = dir.path().join(name);
        dir.replace_file(name, text.as_bytes())
            .map_err(|source| ReportError {
                path: path.clone(),
                source,
            })?;
        written.push(path);
    }
    Ok(written)
}

/// Rank of a severity, 0 for the most severe.
pub(crate) fn severity_rank(s: Severity) -> u8 {
    match s {
        Severity::Critical => 0,
        Severity::High => 1,
        Severity::Medium => 2,
        Severity::Low => 3,
        Severity::Info => 4,
    }
}

/// Lower-case name of a severity.
pub(crate) fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
        Severity::Info => "info",
    }
}

/// The folder that holds `.git` above `dir` (the repository root), if any.
pub(crate) fn repository_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

/// `path` (relative to the pipeline folder, or absolute) as a `/`-separated path
/// relative to `base` (the repository root or the pipeline folder), when it lies
/// inside it.
pub(crate) fn relative_to(base: &Path, workdir: &Path, path: &str) -> String {
    let full = crate::config::normalize(&workdir.join(path));
    match full.strip_prefix(base) {
        Ok(rel) => rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => full.display().to_string(),
    }
}
