//! `[[monitor]]` as the pipeline file (or a `sluice canary` file) declares it, read and
//! checked with file:line:column and "did you mean" on every error.
//!
//! ```toml
//! [[monitor]]
//! id = "api-errors"
//! uses = "builtin:prometheus"     # a component of the `monitor` world
//! interval = "1m"                 # default 1m; seconds allowed ("500ms" in tests)
//! missing = "breaching"           # or "not-breaching", "ignore" (default breaching)
//! evaluation-periods = 3          # the latest N checks are looked at (default 1)
//! datapoints-to-alarm = 2         # M of them breaching raise the alarm (default N)
//! with = { url = "http://127.0.0.1:9090", query = "sum(rate(errors[1m]))", operator = ">", threshold = 5 }
//! [monitor.grants]
//! net = ["127.0.0.1:9090"]
//! ```
//!
//! A `[[monitor]]` without `uses` is fed by another process sharing the state store
//! (`sluice canary`): this pipeline only reads its checks.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_spanned::Spanned;

use crate::config::{ConfigError, Grants, PluginRef, SourceFile, SourcePos};

/// How checks without data count (CloudWatch's `TreatMissingData`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissingData {
    /// As breaching: no evidence is bad evidence (the default).
    #[default]
    Breaching,
    /// As healthy.
    NotBreaching,
    /// Not at all: the state is judged on the checks that had data; with none, it is
    /// INSUFFICIENT_DATA.
    Ignore,
}

/// One monitor, checked.
#[derive(Debug, Clone)]
pub struct MonitorSpec {
    /// Unique among the file's monitors; the key of its checks in the state store.
    pub id: String,
    /// The plugin that checks; `None`: fed by another process (`sluice canary`).
    pub uses: Option<PluginRef>,
    /// Its `with` table.
    pub with: serde_json::Value,
    /// How often it checks (also how old its latest check may be before it counts as
    /// missing).
    pub interval: Duration,
    /// Longest a single check may take.
    pub timeout: Duration,
    pub missing: MissingData,
    /// How many of the latest checks the alarm looks at (N).
    pub evaluation_periods: u32,
    /// How many of those must breach to raise the alarm (M ≤ N).
    pub datapoints_to_alarm: u32,
    pub grants: Grants,
    /// Where it is declared.
    pub pos: SourcePos,
}

/// One `[[monitor]]` table as serde reads it (unknown keys are rejected with their
/// place).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawMonitor {
    pub(crate) id: Spanned<String>,
    pub(crate) uses: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) with: Option<Spanned<toml::Table>>,
    pub(crate) interval: Option<Spanned<String>>,
    pub(crate) timeout: Option<Spanned<String>>,
    pub(crate) missing: Option<Spanned<String>>,
    pub(crate) evaluation_periods: Option<Spanned<i64>>,
    pub(crate) datapoints_to_alarm: Option<Spanned<i64>>,
    #[serde(default)]
    pub(crate) grants: Option<Spanned<toml::Table>>,
}

/// Check every `[[monitor]]` of a file, in file order.
pub(crate) fn build_monitors(
    source: &SourceFile,
    dir: &Path,
    raw: &[Spanned<RawMonitor>],
    errors: &mut Vec<ConfigError>,
) -> Vec<MonitorSpec> {
    // The skeleton: ids and plugins only. The monitors engineer replaces this with the
    // full check of every key.
    let _ = dir;
    raw.iter()
        .map(|m| {
            let m = m.get_ref();
            MonitorSpec {
                id: m.id.get_ref().clone(),
                uses: m.uses.as_ref().map(|u| PluginRef::parse(u.get_ref(), dir)),
                with: serde_json::Value::Object(Default::default()),
                interval: Duration::from_secs(60),
                timeout: Duration::from_secs(30),
                missing: MissingData::Breaching,
                evaluation_periods: 1,
                datapoints_to_alarm: 1,
                grants: Grants::default(),
                pos: source.pos(m.id.span().start),
            }
        })
        .inspect(|_| {
            let _ = &errors;
        })
        .collect()
}
