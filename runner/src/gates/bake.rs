//! `[stage.bake]`: after a stage's steps pass, the run stays in the stage for a
//! minimum time AND until its monitors gave a minimum count of positive data points,
//! with zero negative ones since the bake started. Missing data is "not yet", never
//! success; one negative point fails the bake, and a failed bake stops the run.
//!
//! ```toml
//! [stage.bake]
//! duration = "1h"                  # minimum time in the stage after its steps
//! positive = 3000                  # minimum positive data points (default 1)
//! monitors = ["canary", "api-errors"]   # `[[monitor]]` ids whose points count
//! timeout = "3h"                   # optional: fail when not done by then
//! ```

use std::time::Duration;

use serde::Deserialize;
use serde_spanned::Spanned;

use crate::config::{ConfigError, SourceFile, SourcePos};

/// A stage's bake, checked.
#[derive(Debug, Clone)]
pub struct BakeSpec {
    pub duration: Duration,
    /// Positive data points needed.
    pub positive: u64,
    /// The monitors whose data points count.
    pub monitors: Vec<String>,
    /// When set, a bake not done after this long fails.
    pub timeout: Option<Duration>,
    pub pos: SourcePos,
}

/// `[stage.bake]` as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawBake {
    pub(crate) duration: Option<Spanned<String>>,
    pub(crate) positive: Option<Spanned<i64>>,
    #[serde(default)]
    pub(crate) monitors: Vec<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<String>>,
}

/// Check a stage's `[stage.bake]`; `monitors` are the ids the file declares.
pub(crate) fn build_bake(
    source: &SourceFile,
    stage: &str,
    raw: &Spanned<RawBake>,
    monitors: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Option<BakeSpec> {
    // The skeleton: the bake engineer replaces this with the full check.
    let _ = (stage, monitors, &errors);
    let r = raw.get_ref();
    Some(BakeSpec {
        duration: Duration::ZERO,
        positive: r.positive.as_ref().map_or(1, |p| *p.get_ref() as u64),
        monitors: r.monitors.iter().map(|m| m.get_ref().clone()).collect(),
        timeout: None,
        pos: source.pos(raw.span().start),
    })
}
