//! The OSV schema (the parts a dependency scanner needs), loading a database from a
//! directory of `<ID>.json` files or from an ecosystem's `all.zip`, and the OSV range
//! algorithm (`ossf/osv-schema` docs/schema.md, "Evaluation"):
//!
//! a version is affected when it is listed in `versions`, or when some `SEMVER` or
//! `ECOSYSTEM` range is "before its limits" (`limit` events; none means `*`) and,
//! walking the range's events sorted by version, the last event at or below the version
//! is an `introduced` (with `fixed` at or below clearing it, and `last_affected` strictly
//! below clearing it). `GIT` ranges speak of commits, not versions, and are skipped.
//! Withdrawn advisories are ignored.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::versions::{Ecosystem, Version};

/// One OSV record.
#[derive(Clone, Debug, Deserialize)]
pub struct Advisory {
    /// `RUSTSEC-2021-0001`, `GHSA-...`, `PYSEC-...`.
    pub id: String,
    /// RFC 3339 time of the last change.
    #[serde(default)]
    pub modified: String,
    /// Set when the advisory was withdrawn.
    #[serde(default)]
    pub withdrawn: Option<String>,
    /// Other ids of the same vulnerability (CVE, GHSA).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// One-line summary.
    #[serde(default)]
    pub summary: Option<String>,
    /// Long description (Markdown).
    #[serde(default)]
    pub details: Option<String>,
    /// CVSS vectors and the like.
    #[serde(default)]
    pub severity: Vec<SeverityEntry>,
    /// What packages and versions it affects.
    #[serde(default)]
    pub affected: Vec<Affected>,
    /// Links; the `ADVISORY` one becomes the finding's help URI.
    #[serde(default)]
    pub references: Vec<Reference>,
    /// Database-specific extras, e.g. GHSA's `severity: "HIGH"`.
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

/// `severity[]`: a scoring system and its score (a CVSS vector for `CVSS_V3`/`CVSS_V4`).
#[derive(Clone, Debug, Deserialize)]
pub struct SeverityEntry {
    /// `CVSS_V2`, `CVSS_V3`, `CVSS_V4`, `Ubuntu`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The vector or value.
    pub score: String,
}

/// `references[]`.
#[derive(Clone, Debug, Deserialize)]
pub struct Reference {
    /// `ADVISORY`, `WEB`, `PACKAGE`...
    #[serde(rename = "type")]
    pub kind: String,
    /// The link.
    pub url: String,
}

/// `affected[]`: one package and its affected versions.
#[derive(Clone, Debug, Deserialize)]
pub struct Affected {
    /// The package (absent in some non-package records).
    #[serde(default)]
    pub package: Option<PackageRef>,
    /// Version ranges.
    #[serde(default)]
    pub ranges: Vec<Range>,
    /// Explicitly listed affected versions.
    #[serde(default)]
    pub versions: Vec<String>,
    /// Per-package severity (overrides the top-level one).
    #[serde(default)]
    pub severity: Vec<SeverityEntry>,
    /// Database-specific extras (RustSec puts `cvss` and `informational` here).
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
    /// Ecosystem-specific extras (some databases put `severity` here).
    #[serde(default)]
    pub ecosystem_specific: Option<serde_json::Value>,
}

/// `affected[].package`.
#[derive(Clone, Debug, Deserialize)]
pub struct PackageRef {
    /// `crates.io`, `npm`, `PyPI`, `Go`, `RubyGems`, or others this scanner ignores.
    pub ecosystem: String,
    /// Name as the ecosystem spells it.
    pub name: String,
    /// Package-url without a version.
    #[serde(default)]
    pub purl: Option<String>,
}

/// `affected[].ranges[]`.
#[derive(Clone, Debug, Deserialize)]
pub struct Range {
    /// `SEMVER`, `ECOSYSTEM` or `GIT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Events, each with exactly one key.
    #[serde(default)]
    pub events: Vec<Event>,
}

/// One range event.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Event {
    /// Vulnerable from this version on (`0`: from the start).
    #[serde(default)]
    pub introduced: Option<String>,
    /// No longer vulnerable from this version on.
    #[serde(default)]
    pub fixed: Option<String>,
    /// Vulnerable up to and including this version.
    #[serde(default)]
    pub last_affected: Option<String>,
    /// The range applies only below this version (`*`: no limit).
    #[serde(default)]
    pub limit: Option<String>,
}

impl Advisory {
    /// The day (days since the Unix epoch) it was last modified, if `modified` parses.
    pub fn modified_day(&self) -> Option<i64> {
        parse_rfc3339_day(&self.modified)
    }

    /// The advisory's web page: its `ADVISORY` reference, else the first one.
    pub fn help_uri(&self) -> Option<&str> {
        self.references
            .iter()
            .find(|r| r.kind == "ADVISORY")
            .or_else(|| self.references.first())
            .map(|r| r.url.as_str())
    }
}

/// Why a version could not be judged against a range.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeError(pub String);

/// Is `version` affected by this `affected` entry (in `ecosystem`'s ordering)?
/// A range whose events do not parse is reported as an error, not silently skipped,
/// unless another range or the `versions` list already says "affected".
pub fn is_affected(
    affected: &Affected,
    ecosystem: Ecosystem,
    version: &Version,
    raw: &str,
) -> Result<bool, RangeError> {
    if affected
        .versions
        .iter()
        .any(|listed| listed == raw || ecosystem.parse_version(listed).is_ok_and(|v| v == *version))
    {
        return Ok(true);
    }
    let mut error = None;
    for range in &affected.ranges {
        if range.kind != "SEMVER" && range.kind != "ECOSYSTEM" {
            continue;
        }
        // SEMVER ranges use SemVer ordering whatever the ecosystem; ECOSYSTEM ranges
        // the ecosystem's own (identical for crates.io, npm and Go).
        match range_includes(range, ecosystem, version) {
            Ok(true) => return Ok(true),
            Ok(false) => {}
            Err(e) => error = Some(e),
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(false),
    }
}

/// Parse an event version; `0` in `introduced` means "before every version".
fn event_version(ecosystem: Ecosystem, text: &str) -> Result<Version, RangeError> {
    ecosystem
        .parse_version(text)
        .map_err(|e| RangeError(format!("range event {e}")))
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Introduced,
    Fixed,
    LastAffected,
    Limit,
}

/// The OSV algorithm for one range.
pub fn range_includes(
    range: &Range,
    ecosystem: Ecosystem,
    version: &Version,
) -> Result<bool, RangeError> {
    // `None` version = "0", below everything.
    let mut events: Vec<(Kind, Option<Version>)> = Vec::new();
    for event in &range.events {
        let (kind, text) = match event {
            Event {
                introduced: Some(t),
                ..
            } => (Kind::Introduced, t),
            Event { fixed: Some(t), .. } => (Kind::Fixed, t),
            Event {
                last_affected: Some(t),
                ..
            } => (Kind::LastAffected, t),
            Event { limit: Some(t), .. } => (Kind::Limit, t),
            _ => {
                return Err(RangeError(
                    "a range event has none of introduced, fixed, last_affected, limit".into(),
                ));
            }
        };
        let parsed =
            if (kind == Kind::Introduced && text == "0") || (kind == Kind::Limit && text == "*") {
                None
            } else {
                Some(event_version(ecosystem, text)?)
            };
        events.push((kind, parsed));
    }
    // BeforeLimits: with limit events, the version must be below one of them.
    let limits: Vec<&Option<Version>> = events
        .iter()
        .filter(|(k, _)| *k == Kind::Limit)
        .map(|(_, v)| v)
        .collect();
    if !limits.is_empty()
        && !limits.iter().any(|l| match l {
            None => true,
            Some(limit) => version < limit,
        })
    {
        return Ok(false);
    }
    events.retain(|(k, _)| *k != Kind::Limit);
    // Sort by version ("0" first); at equal versions, keep introduced before the others
    // so that `introduced: X, fixed: X` means "not affected".
    events.sort_by(|(ka, va), (kb, vb)| match (va, vb) {
        (None, None) => ka.cmp(kb),
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(a), Some(b)) => a.cmp(b).then(ka.cmp(kb)),
    });
    let mut vulnerable = false;
    for (kind, at) in &events {
        match kind {
            Kind::Introduced => {
                if at.as_ref().is_none_or(|at| version >= at) {
                    vulnerable = true;
                }
            }
            Kind::Fixed => {
                if at.as_ref().is_none_or(|at| version >= at) {
                    vulnerable = false;
                }
            }
            Kind::LastAffected => {
                if at.as_ref().is_some_and(|at| version > at) {
                    vulnerable = false;
                }
            }
            Kind::Limit => {}
        }
    }
    Ok(vulnerable)
}

/// Days since the Unix epoch of an RFC 3339 time (`2023-06-13T13:10:24Z`); only the
/// date part is read.
pub fn parse_rfc3339_day(text: &str) -> Option<i64> {
    let date = text.get(..10)?;
    parse_date(date)
}

/// Days since the Unix epoch of a `YYYY-MM-DD` date.
pub fn parse_date(date: &str) -> Option<i64> {
    let mut parts = date.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// Advisories matching a package (each with the index of its matching `affected`
/// entry), and the problems met on the way.
pub type Matches = (Vec<(Arc<Advisory>, usize)>, Vec<String>);

/// An advisory database: the advisories of the supported ecosystems, indexed by
/// ecosystem and normalized package name.
#[derive(Default)]
pub struct Database {
    by_package: HashMap<(Ecosystem, String), Vec<Arc<Advisory>>>,
    /// Advisories loaded (withdrawn ones and ones for other ecosystems excluded).
    pub loaded: usize,
    /// Withdrawn advisories that were skipped.
    pub withdrawn: usize,
    /// The newest `modified` day seen: the database's high-water mark.
    pub newest_day: Option<i64>,
}

impl Database {
    /// Load a database from a directory (recursively: `<dir>/<ID>.json`, or the
    /// `<dir>/<Ecosystem>/...` layout of a multi-ecosystem mirror, also reading any
    /// `all.zip` found) or from an `all.zip` file.
    pub fn load(path: &Path) -> Result<Database, String> {
        let mut db = Database::default();
        let meta = std::fs::metadata(path).map_err(|e| {
            format!(
                "cannot read the advisory database `{}`: {e}",
                path.display()
            )
        })?;
        if meta.is_dir() {
            db.load_dir(path)?;
        } else {
            db.load_zip(path)?;
        }
        if db.loaded == 0 && db.withdrawn == 0 {
            return Err(format!(
                "`{}` holds no OSV advisories for crates.io, npm, PyPI, Go or RubyGems: point `database` at a folder of OSV `<ID>.json` files or an ecosystem's `all.zip`",
                path.display()
            ));
        }
        Ok(db)
    }

    fn load_dir(&mut self, dir: &Path) -> Result<(), String> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot list `{}`: {e}", dir.display()))?;
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path.is_dir() {
                self.load_dir(&path)?;
            } else if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read(&path)
                    .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
                self.add_json(&text, &path.display().to_string())?;
            } else if path.extension().is_some_and(|e| e == "zip") {
                self.load_zip(&path)?;
            }
        }
        Ok(())
    }

    fn load_zip(&mut self, path: &Path) -> Result<(), String> {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
        let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
            .map_err(|e| format!("`{}` is not a readable zip archive: {e}", path.display()))?;
        let mut buffer = Vec::new();
        for index in 0..archive.len() {
            let mut entry = archive
                .by_index(index)
                .map_err(|e| format!("`{}`: entry {index}: {e}", path.display()))?;
            if !entry.name().ends_with(".json") {
                continue;
            }
            let name = format!("{}!{}", path.display(), entry.name());
            buffer.clear();
            entry
                .read_to_end(&mut buffer)
                .map_err(|e| format!("`{name}`: {e}"))?;
            self.add_json(&buffer, &name)?;
        }
        Ok(())
    }

    /// Add one advisory given as JSON; `origin` names it in errors.
    pub fn add_json(&mut self, json: &[u8], origin: &str) -> Result<(), String> {
        let advisory: Advisory = serde_json::from_slice(json)
            .map_err(|e| format!("`{origin}` is not an OSV record: {e}"))?;
        self.add(advisory);
        Ok(())
    }

    /// Add one advisory.
    pub fn add(&mut self, advisory: Advisory) {
        if let Some(day) = advisory.modified_day() {
            self.newest_day = Some(self.newest_day.map_or(day, |d| d.max(day)));
        }
        if advisory.withdrawn.is_some() {
            self.withdrawn += 1;
            return;
        }
        let advisory = Arc::new(advisory);
        let mut keys: Vec<(Ecosystem, String)> = advisory
            .affected
            .iter()
            .filter_map(|a| {
                let p = a.package.as_ref()?;
                let eco = Ecosystem::from_osv(&p.ecosystem)?;
                Some((eco, eco.normalize_name(&p.name)))
            })
            .collect();
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            return;
        }
        self.loaded += 1;
        for key in keys {
            self.by_package
                .entry(key)
                .or_default()
                .push(Arc::clone(&advisory));
        }
    }

    /// The advisories that mention a package.
    pub fn advisories_for(&self, ecosystem: Ecosystem, name: &str) -> &[Arc<Advisory>] {
        self.by_package
            .get(&(ecosystem, ecosystem.normalize_name(name)))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The advisories affecting `name` at `version`, each with the `affected` entry that
    /// matched. Ranges that cannot be evaluated are returned as errors alongside.
    pub fn matches(
        &self,
        ecosystem: Ecosystem,
        name: &str,
        version: &str,
    ) -> Result<Matches, String> {
        let parsed = ecosystem.parse_version(version)?;
        let wanted = ecosystem.normalize_name(name);
        let mut found = Vec::new();
        let mut problems = Vec::new();
        for advisory in self.advisories_for(ecosystem, name) {
            for (index, affected) in advisory.affected.iter().enumerate() {
                let Some(package) = &affected.package else {
                    continue;
                };
                if Ecosystem::from_osv(&package.ecosystem) != Some(ecosystem)
                    || ecosystem.normalize_name(&package.name) != wanted
                {
                    continue;
                }
                match is_affected(affected, ecosystem, &parsed, version) {
                    Ok(true) => {
                        found.push((Arc::clone(advisory), index));
                        break;
                    }
                    Ok(false) => {}
                    Err(RangeError(e)) => problems.push(format!("{}: {e}", advisory.id)),
                }
            }
        }
        Ok((found, problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(kind: &str, events: &[(&str, &str)]) -> Range {
        Range {
            kind: kind.into(),
            events: events
                .iter()
                .map(|(k, v)| {
                    let mut e = Event::default();
                    let v = Some((*v).to_owned());
                    match *k {
                        "introduced" => e.introduced = v,
                        "fixed" => e.fixed = v,
                        "last_affected" => e.last_affected = v,
                        "limit" => e.limit = v,
                        _ => unreachable!(),
                    }
                    e
                })
                .collect(),
        }
    }

    fn includes(eco: Ecosystem, r: &Range, v: &str) -> bool {
        range_includes(r, eco, &eco.parse_version(v).unwrap()).unwrap()
    }

    #[test]
    fn introduced_and_fixed() {
        let r = range("SEMVER", &[("introduced", "0"), ("fixed", "1.2.3")]);
        assert!(includes(Ecosystem::CratesIo, &r, "0.0.1"));
        assert!(includes(Ecosystem::CratesIo, &r, "1.2.2"));
        assert!(includes(Ecosystem::CratesIo, &r, "1.2.3-rc.1"));
        assert!(!includes(Ecosystem::CratesIo, &r, "1.2.3"));
        assert!(!includes(Ecosystem::CratesIo, &r, "2.0.0"));
    }

    #[test]
    fn several_introduced_fixed_pairs_in_any_order() {
        // RUSTSEC-2021-0003's smallvec range, events given out of order.
        let r = range(
            "SEMVER",
            &[
                ("introduced", "1.0.0"),
                ("fixed", "1.6.1"),
                ("introduced", "0.6.3"),
                ("fixed", "0.6.14"),
            ],
        );
        for (v, want) in [
            ("0.6.2", false),
            ("0.6.3", true),
            ("0.6.13", true),
            ("0.6.14", false),
            ("0.9.0", false),
            ("1.0.0", true),
            ("1.6.0", true),
            ("1.6.1", false),
        ] {
            assert_eq!(includes(Ecosystem::CratesIo, &r, v), want, "{v}");
        }
    }

    #[test]
    fn last_affected_is_inclusive() {
        let r = range(
            "ECOSYSTEM",
            &[("introduced", "1.0"), ("last_affected", "1.4")],
        );
        assert!(includes(Ecosystem::PyPI, &r, "1.4"));
        assert!(includes(Ecosystem::PyPI, &r, "1.4.0"));
        assert!(!includes(Ecosystem::PyPI, &r, "1.4.post1"));
        assert!(!includes(Ecosystem::PyPI, &r, "0.9"));
    }

    #[test]
    fn limits_bound_the_range() {
        let r = range("ECOSYSTEM", &[("introduced", "0"), ("limit", "2.0.0")]);
        assert!(includes(Ecosystem::Npm, &r, "1.9.9"));
        assert!(!includes(Ecosystem::Npm, &r, "2.0.0"));
        let star = range("ECOSYSTEM", &[("introduced", "1.0.0"), ("limit", "*")]);
        assert!(includes(Ecosystem::Npm, &star, "9.0.0"));
    }

    #[test]
    fn introduced_equal_to_fixed_affects_nothing() {
        let r = range("SEMVER", &[("introduced", "1.0.0"), ("fixed", "1.0.0")]);
        assert!(!includes(Ecosystem::CratesIo, &r, "1.0.0"));
    }

    #[test]
    fn rubygems_and_go_orderings_are_used() {
        let r = range("ECOSYSTEM", &[("introduced", "0"), ("fixed", "2.2.3.1")]);
        assert!(includes(Ecosystem::RubyGems, &r, "2.2.3"));
        assert!(includes(Ecosystem::RubyGems, &r, "2.2.3.1.a"));
        assert!(!includes(Ecosystem::RubyGems, &r, "2.2.3.1"));
        let g = range(
            "SEMVER",
            &[
                ("introduced", "0"),
                ("fixed", "0.0.0-20200622213623-75b288015ac9"),
            ],
        );
        assert!(includes(
            Ecosystem::Go,
            &g,
            "v0.0.0-20191109021931-daa7c04131f5"
        ));
        assert!(!includes(Ecosystem::Go, &g, "v0.3.0"));
    }

    #[test]
    fn versions_list_and_withdrawn() {
        let mut db = Database::default();
        db.add_json(br#"{"id":"X-1","modified":"2024-01-02T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"a"},"versions":["1.0.0"]}]}"#, "x").unwrap();
        db.add_json(br#"{"id":"X-2","modified":"2025-03-01T00:00:00Z","withdrawn":"2025-03-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]}]}"#, "y").unwrap();
        db.add_json(br#"{"id":"X-3","modified":"2020-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Debian:12","name":"a"},"versions":["1.0.0"]}]}"#, "z").unwrap();
        assert_eq!((db.loaded, db.withdrawn), (1, 1));
        assert_eq!(db.newest_day, parse_date("2025-03-01"));
        let ids = |v: &str| {
            db.matches(Ecosystem::Npm, "a", v)
                .unwrap()
                .0
                .iter()
                .map(|(a, _)| a.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("1.0.0"), ["X-1"]);
        assert!(ids("1.0.1").is_empty());
        assert!(
            db.add_json(b"{}", "broken.json")
                .unwrap_err()
                .contains("broken.json")
        );
    }

    #[test]
    fn bad_event_versions_are_errors() {
        let r = range("SEMVER", &[("introduced", "zero"), ("fixed", "1.0.0")]);
        assert!(
            range_includes(
                &r,
                Ecosystem::CratesIo,
                &Ecosystem::CratesIo.parse_version("0.1.0").unwrap()
            )
            .is_err()
        );
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2000-03-01"), Some(11_017));
        assert_eq!(parse_rfc3339_day("2023-06-13T13:10:24Z"), Some(19_521));
        assert_eq!(parse_date("2023-13-01"), None);
        assert_eq!(parse_date("soon"), None);
    }
}
