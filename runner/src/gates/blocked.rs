//! Blocked content: at every promotion, the run's artifact is checked against the
//! pipeline's denylists (`[pipeline] denylist`, in the security-scan plugin's format:
//! package purls with version ranges, git refs). Packages come from the SBOM the build
//! step produced, git refs from the run's commit and its ancestry. The denylist is
//! read again at every evaluation, so one updated while a run waits blocks it too.

use std::path::{Path, PathBuf};

use serde_spanned::Spanned;

use crate::config::{ConfigError, SourceFile};

/// `[pipeline] denylist = "path"` or `["a", "b"]`: the files, resolved against the
/// pipeline's folder.
pub(crate) fn denylist_paths(
    source: &SourceFile,
    dir: &Path,
    raw: Option<&Spanned<toml::Value>>,
    errors: &mut Vec<ConfigError>,
) -> Vec<PathBuf> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let values: Vec<&toml::Value> = match raw.get_ref() {
        toml::Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut paths = Vec::new();
    for v in values {
        match v.as_str() {
            Some(p) if !p.trim().is_empty() && !p.contains('\0') => {
                paths.push(crate::config::normalize(&dir.join(crate::config::expand_home(p))))
            }
            _ => errors.push(source.error(
                raw.span().start,
                "`denylist` is a file path or a list of them, e.g. `denylist = \"denylist.toml\"` (relative to the pipeline file)",
            )),
        }
    }
    paths
}
