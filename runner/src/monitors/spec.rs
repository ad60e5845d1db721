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
//! timeout = "10s"                # longest one check may take (default: the interval, at most 30s)
//! with = { url = "http://127.0.0.1:9090", query = "sum(rate(errors[1m]))", operator = ">", threshold = 5 }
//! [monitor.grants]
//! net = ["127.0.0.1:9090"]        # outgoing HTTP, checked like a step's
//! secrets = ["api-token"]         # from [secrets]
//! read = ["status"]               # folders it may read (no write, no exec: a monitor looks)
//! ```
//!
//! A `[[monitor]]` without `uses` is fed by another process sharing the state store
//! (`sluice canary`): this pipeline only reads its checks.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_spanned::Spanned;

use crate::config::{
    ConfigError, Grants, NetGrant, PluginRef, SourceFile, SourcePos, check_ident, expand_home,
    normalize, secret_grant,
};

/// The shortest interval a monitor may check on (tests use 100 ms).
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// The longest interval.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// The interval when none is given: a check every minute.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// The longest a check may take when no `timeout` is given (or the interval, if
/// shorter).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Most checks an alarm may look at (`evaluation-periods`).
pub const MAX_EVALUATION_PERIODS: i64 = 100;

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

impl MissingData {
    /// The names the file accepts.
    pub const NAMES: &'static [&'static str] = &["breaching", "not-breaching", "ignore"];

    pub fn as_str(self) -> &'static str {
        match self {
            MissingData::Breaching => "breaching",
            MissingData::NotBreaching => "not-breaching",
            MissingData::Ignore => "ignore",
        }
    }
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
    /// Longest a single check may take (at most the interval).
    pub timeout: Duration,
    pub missing: MissingData,
    /// How many of the latest checks the alarm looks at (N).
    pub evaluation_periods: u32,
    /// How many of those must breach to raise the alarm (M ≤ N).
    pub datapoints_to_alarm: u32,
    /// `read`, `net` and `secrets` only: a monitor runs no program and writes nothing.
    pub grants: Grants,
    /// Where it is declared.
    pub pos: SourcePos,
    /// Byte offsets of its `uses` and `with` values (or of its `id`), for errors found
    /// once the plugin is loaded.
    pub uses_offset: usize,
    pub with_offset: usize,
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
    pub(crate) grants: Option<Spanned<RawMonitorGrants>>,
}

/// `[monitor.grants]`: what a monitor may reach. No `write`, `exec` or `toolchain`: a
/// monitor looks at a service from the outside (serde names the accepted keys).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMonitorGrants {
    #[serde(default)]
    read: Vec<Spanned<String>>,
    #[serde(default)]
    net: Vec<Spanned<String>>,
    #[serde(default)]
    secrets: Vec<Spanned<toml::Value>>,
}

/// Check every `[[monitor]]` of a file, in file order. `declared` are the secrets of
/// the file's `[secrets]`.
pub(crate) fn build_monitors(
    source: &SourceFile,
    dir: &Path,
    raw: &[Spanned<RawMonitor>],
    declared: &HashSet<&str>,
    errors: &mut Vec<ConfigError>,
) -> Vec<MonitorSpec> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut monitors = Vec::new();
    for m in raw {
        let m = m.get_ref();
        let id = m.id.get_ref().clone();
        let at = m.id.span().start;
        check_ident(source, &m.id, "monitor id", errors);
        if let Some(first) = seen.insert(id.clone(), at) {
            let first = source.pos(first);
            errors.push(source.error(
                at,
                format!(
                    "monitor id `{id}` is used twice (first at line {}); monitor ids must be unique in the file",
                    first.line
                ),
            ));
        }
        if let Some(spec) = build_monitor(source, dir, m, declared, errors) {
            monitors.push(spec);
        }
    }
    monitors
}

fn build_monitor(
    source: &SourceFile,
    dir: &Path,
    m: &RawMonitor,
    declared: &HashSet<&str>,
    errors: &mut Vec<ConfigError>,
) -> Option<MonitorSpec> {
    let id = m.id.get_ref().clone();
    let what = format!("monitor `{id}`");
    let uses = m.uses.as_ref().and_then(|u| {
        let text = u.get_ref().trim();
        let r = match PluginRef::parse(text, dir) {
            Ok(r) => r,
            Err(reason) => {
                errors.push(source.error(
                    u.span().start,
                    format!("{what}: `uses` = \"{text}\": {reason}"),
                ));
                return None;
            }
        };
        match &r {
            PluginRef::Builtin(name) if name.is_empty() => {
                errors.push(source.error(
                    u.span().start,
                    format!("{what}: `builtin:` needs a plugin name, e.g. `builtin:http-check`"),
                ));
                None
            }
            PluginRef::File(_) if text.is_empty() => {
                errors.push(source.error(
                    u.span().start,
                    format!("{what}: `uses` is empty; name a built-in monitor (`builtin:http-check`) or a .wasm component, or leave `uses` out for a monitor that another process (`sluice canary`) feeds"),
                ));
                None
            }
            _ => Some(r),
        }
    });
    let with = match &m.with {
        Some(t) => match serde_json::to_value(t.get_ref()) {
            Ok(v) => v,
            Err(e) => {
                errors.push(source.error(
                    t.span().start,
                    format!("{what}: `with` cannot be expressed as JSON: {e}"),
                ));
                serde_json::Value::Null
            }
        },
        None => serde_json::Value::Object(Default::default()),
    };
    if m.uses.is_none()
        && let Some(t) = &m.with
    {
        errors.push(source.error(
            t.span().start,
            format!("{what}: `with` configures a plugin, but the monitor has no `uses`; add `uses` or remove `with`"),
        ));
    }
    let interval = duration(
        source,
        &what,
        m.interval.as_ref(),
        "interval",
        DEFAULT_INTERVAL,
        errors,
    );
    let timeout = match &m.timeout {
        None => interval.min(DEFAULT_TIMEOUT),
        Some(t) => {
            let timeout = duration(source, &what, Some(t), "timeout", DEFAULT_TIMEOUT, errors);
            if timeout > interval {
                errors.push(source.error(
                    t.span().start,
                    format!(
                        "{what}: `timeout` = \"{}\" is longer than its `interval` ({}); a check must end before the next is due",
                        t.get_ref(),
                        humantime::format_duration(interval)
                    ),
                ));
            }
            timeout.min(interval)
        }
    };
    let missing = match &m.missing {
        None => MissingData::default(),
        Some(v) => match v.get_ref().trim() {
            "breaching" => MissingData::Breaching,
            "not-breaching" => MissingData::NotBreaching,
            "ignore" => MissingData::Ignore,
            other => {
                let mut message = format!(
                    "{what}: `missing` = \"{other}\" is not one of \"breaching\" (the default), \"not-breaching\", \"ignore\""
                );
                if let Some(meant) =
                    crate::suggest::closest(other, MissingData::NAMES.iter().copied())
                {
                    message.push_str(&format!("; did you mean \"{meant}\"?"));
                }
                errors.push(source.error(v.span().start, message));
                MissingData::default()
            }
        },
    };
    let periods = count(
        source,
        &what,
        m.evaluation_periods.as_ref(),
        "evaluation-periods",
        1,
        errors,
    );
    let to_alarm = match &m.datapoints_to_alarm {
        None => periods,
        Some(v) => {
            let n = count(
                source,
                &what,
                Some(v),
                "datapoints-to-alarm",
                periods,
                errors,
            );
            if n > periods {
                errors.push(source.error(
                    v.span().start,
                    format!(
                        "{what}: `datapoints-to-alarm` = {n} is more than `evaluation-periods` = {periods}; the alarm looks at the latest {periods} check(s), so at most {periods} can breach"
                    ),
                ));
                periods
            } else {
                n
            }
        }
    };
    let grants = m
        .grants
        .as_ref()
        .map(|g| build_grants(source, dir, &what, g.get_ref(), declared, errors))
        .unwrap_or_default();
    // Kept even with errors (the file is refused anyway), so that other checks still
    // know its id and every problem is reported at once.
    Some(MonitorSpec {
        id,
        uses,
        with,
        interval,
        timeout,
        missing,
        evaluation_periods: periods,
        datapoints_to_alarm: to_alarm,
        grants,
        pos: source.pos(m.id.span().start),
        uses_offset: m
            .uses
            .as_ref()
            .map_or(m.id.span().start, |u| u.span().start),
        with_offset: m
            .with
            .as_ref()
            .map_or(m.id.span().start, |w| w.span().start),
    })
}

/// A duration key: humantime syntax, sub-second values allowed, within
/// [`MIN_INTERVAL`]..=[`MAX_INTERVAL`].
fn duration(
    source: &SourceFile,
    what: &str,
    value: Option<&Spanned<String>>,
    key: &str,
    default: Duration,
    errors: &mut Vec<ConfigError>,
) -> Duration {
    let Some(v) = value else { return default };
    let text = v.get_ref().trim();
    let problem = match humantime::parse_duration(text) {
        Ok(d) if d < MIN_INTERVAL => format!(
            "is shorter than the minimum of {}",
            humantime::format_duration(MIN_INTERVAL)
        ),
        Ok(d) if d > MAX_INTERVAL => format!(
            "is longer than the maximum of {}",
            humantime::format_duration(MAX_INTERVAL)
        ),
        Ok(d) => return d,
        Err(_) => "is not a duration; write e.g. \"1m\", \"30s\" or \"500ms\"".to_string(),
    };
    errors.push(source.error(
        v.span().start,
        format!("{what}: `{key}` = \"{text}\" {problem}"),
    ));
    default
}

/// A count key in `1..=`[`MAX_EVALUATION_PERIODS`].
fn count(
    source: &SourceFile,
    what: &str,
    value: Option<&Spanned<i64>>,
    key: &str,
    default: u32,
    errors: &mut Vec<ConfigError>,
) -> u32 {
    let Some(v) = value else { return default };
    let n = *v.get_ref();
    if (1..=MAX_EVALUATION_PERIODS).contains(&n) {
        return n as u32;
    }
    errors.push(source.error(
        v.span().start,
        format!("{what}: `{key}` = {n} must be between 1 and {MAX_EVALUATION_PERIODS}"),
    ));
    default
}

/// `[monitor.grants]`, checked like a step's: folders resolved against the file's
/// folder, `net` entries parsed as `host:port` or origins, secrets declared.
fn build_grants(
    source: &SourceFile,
    dir: &Path,
    what: &str,
    raw: &RawMonitorGrants,
    declared: &HashSet<&str>,
    errors: &mut Vec<ConfigError>,
) -> Grants {
    let mut grants = Grants::default();
    for p in &raw.read {
        let s = p.get_ref();
        if s.trim().is_empty() || s.contains('\0') {
            errors.push(source.error(
                p.span().start,
                format!("{what}: `read` grant `{s}` is not a path"),
            ));
        } else {
            grants.read.push(normalize(&dir.join(expand_home(s))));
        }
    }
    for n in &raw.net {
        match NetGrant::parse(n.get_ref()) {
            Ok(g) => grants.net.push(g),
            Err(m) => errors.push(source.error(n.span().start, format!("{what}: `net` grant {m}"))),
        }
    }
    for entry in &raw.secrets {
        if let Some(grant) = secret_grant(source, entry, declared, errors) {
            if grants.secrets.iter().any(|g| g.name == grant.name) {
                errors.push(source.error(
                    entry.span().start,
                    format!("{what}: `secrets` grant `{}` is given twice", grant.name),
                ));
            } else {
                grants.secrets.push(grant);
            }
        }
    }
    grants
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(monitors: &str) -> Result<Vec<MonitorSpec>, Vec<String>> {
        let text = format!(
            "[pipeline]\nname = \"shop\"\n[secrets]\ntoken = {{ env = \"TOKEN\" }}\n[[stage]]\nname = \"beta\"\n[[stage.step]]\nid = \"a\"\nuses = \"builtin:command\"\n{monitors}"
        );
        match crate::config::parse(Path::new("sluice.toml"), text) {
            Ok(p) => Ok(p.monitors),
            Err(crate::config::PipelineFileError::Invalid(e)) => {
                Err(e.iter().map(|e| e.to_string()).collect())
            }
            Err(e) => Err(vec![e.to_string()]),
        }
    }

    #[test]
    fn a_monitor_is_read_with_its_defaults() {
        let m = parse("[[monitor]]\nid = \"api\"\nuses = \"builtin:http-check\"\nwith = { url = \"http://127.0.0.1:8080\" }\n[monitor.grants]\nnet = [\"127.0.0.1:8080\"]\nsecrets = [\"token\"]\n").unwrap();
        assert_eq!(m.len(), 1);
        let m = &m[0];
        assert_eq!(m.id, "api");
        assert_eq!(m.uses, Some(PluginRef::Builtin("http-check".into())));
        assert_eq!(m.interval, Duration::from_secs(60));
        assert_eq!(m.timeout, Duration::from_secs(30));
        assert_eq!(m.missing, MissingData::Breaching);
        assert_eq!((m.evaluation_periods, m.datapoints_to_alarm), (1, 1));
        assert_eq!(m.grants.net.len(), 1);
        assert_eq!(m.grants.secrets[0].name, "token");
        assert_eq!(m.with["url"], "http://127.0.0.1:8080");
    }

    #[test]
    fn sub_second_intervals_and_m_of_n_are_accepted() {
        let m = parse("[[monitor]]\nid = \"api\"\nuses = \"builtin:http-check\"\ninterval = \"100ms\"\nmissing = \"not-breaching\"\nevaluation-periods = 5\ndatapoints-to-alarm = 3\n").unwrap();
        assert_eq!(m[0].interval, Duration::from_millis(100));
        // The timeout defaults to the interval when that is shorter than 30 s.
        assert_eq!(m[0].timeout, Duration::from_millis(100));
        assert_eq!(m[0].missing, MissingData::NotBreaching);
        assert_eq!((m[0].evaluation_periods, m[0].datapoints_to_alarm), (5, 3));
        // M defaults to N.
        let m = parse("[[monitor]]\nid = \"fed\"\nevaluation-periods = 4\n").unwrap();
        assert_eq!((m[0].evaluation_periods, m[0].datapoints_to_alarm), (4, 4));
        assert_eq!(m[0].uses, None);
    }

    #[test]
    fn every_value_error_is_located() {
        let e = parse("[[monitor]]\nid = \"api\"\nuses = \"builtin:http-check\"\ninterval = \"soon\"\nmissing = \"breching\"\nevaluation-periods = 2\ndatapoints-to-alarm = 3\ntimeout = \"1ms\"\n").unwrap_err();
        assert_eq!(
            e,
            vec![
                "sluice.toml:13:12: monitor `api`: `interval` = \"soon\" is not a duration; write e.g. \"1m\", \"30s\" or \"500ms\"",
                "sluice.toml:14:11: monitor `api`: `missing` = \"breching\" is not one of \"breaching\" (the default), \"not-breaching\", \"ignore\"; did you mean \"breaching\"?",
                "sluice.toml:16:23: monitor `api`: `datapoints-to-alarm` = 3 is more than `evaluation-periods` = 2; the alarm looks at the latest 2 check(s), so at most 2 can breach",
                "sluice.toml:17:11: monitor `api`: `timeout` = \"1ms\" is shorter than the minimum of 10ms",
            ]
        );
    }

    #[test]
    fn duplicate_ids_and_grants_a_monitor_cannot_have_are_errors() {
        let e = parse("[[monitor]]\nid = \"api\"\n[[monitor]]\nid = \"api\"\n").unwrap_err();
        assert_eq!(
            e,
            vec![
                "sluice.toml:13:6: monitor id `api` is used twice (first at line 11); monitor ids must be unique in the file"
            ]
        );
        let e = parse(
            "[[monitor]]\nid = \"api\"\nuses = \"x.wasm\"\n[monitor.grants]\nexec = [\"curl\"]\n",
        )
        .unwrap_err();
        assert!(e[0].contains("unknown field `exec`"), "{e:?}");
        let e = parse("[[monitor]]\nid = \"api\"\nuses = \"x.wasm\"\n[monitor.grants]\nsecrets = [\"tokn\"]\n").unwrap_err();
        assert!(e[0].contains("tokn"), "{e:?}");
    }

    #[test]
    fn a_timeout_longer_than_the_interval_is_an_error() {
        let e = parse(
            "[[monitor]]\nid = \"api\"\nuses = \"x.wasm\"\ninterval = \"1s\"\ntimeout = \"2s\"\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            vec![
                "sluice.toml:14:11: monitor `api`: `timeout` = \"2s\" is longer than its `interval` (1s); a check must end before the next is due"
            ]
        );
    }
}
