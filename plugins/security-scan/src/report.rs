//! Turning matches into the step's findings: CVSS v3.x base scores computed from the
//! vector, the mapping from score to severity (CVSS v3.1 qualitative bands), and the
//! finding builders for vulnerabilities, secrets and denylist hits.

use std::sync::Arc;

use sluice_sdk::{Finding, Severity};

use crate::denylist::Hit;
use crate::lockfiles::Package;
use crate::osv::Advisory;
use crate::secrets::Leak;

/// CVSS v3.1 qualitative band of a base score: 0 info (none), < 4 low, < 7 medium,
/// < 9 high, else critical.
pub fn severity_of_score(score: f64) -> Severity {
    if score <= 0.0 {
        Severity::Info
    } else if score < 4.0 {
        Severity::Low
    } else if score < 7.0 {
        Severity::Medium
    } else if score < 9.0 {
        Severity::High
    } else {
        Severity::Critical
    }
}

/// CVSS v3.0/v3.1 base score of a vector such as
/// `CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H` (9.8). Temporal and environmental
/// metrics in the vector are ignored; a missing or unknown base metric is an error.
pub fn cvss3_base_score(vector: &str) -> Result<f64, String> {
    let mut parts = vector.split('/');
    let version = parts.next().unwrap_or_default();
    if version != "CVSS:3.0" && version != "CVSS:3.1" {
        return Err(format!("`{vector}` is not a CVSS v3 vector"));
    }
    let mut metrics = std::collections::HashMap::new();
    for part in parts {
        let (k, v) = part
            .split_once(':')
            .ok_or_else(|| format!("`{vector}`: `{part}` is not `metric:value`"))?;
        metrics.insert(k, v);
    }
    let get = |k: &str| {
        metrics
            .get(k)
            .copied()
            .ok_or_else(|| format!("`{vector}` lacks base metric {k}"))
    };
    let bad = |k: &str, v: &str| format!("`{vector}`: {k}:{v} is not a CVSS v3 value");
    let changed = match get("S")? {
        "U" => false,
        "C" => true,
        v => return Err(bad("S", v)),
    };
    let av = match get("AV")? {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        "P" => 0.2,
        v => return Err(bad("AV", v)),
    };
    let ac = match get("AC")? {
        "L" => 0.77,
        "H" => 0.44,
        v => return Err(bad("AC", v)),
    };
    let pr = match (get("PR")?, changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        ("H", false) => 0.27,
        ("H", true) => 0.5,
        (v, _) => return Err(bad("PR", v)),
    };
    let ui = match get("UI")? {
        "N" => 0.85,
        "R" => 0.62,
        v => return Err(bad("UI", v)),
    };
    let cia = |k: &str| -> Result<f64, String> {
        match get(k)? {
            "H" => Ok(0.56),
            "L" => Ok(0.22),
            "N" => Ok(0.0),
            v => Err(bad(k, v)),
        }
    };
    let iss = 1.0 - (1.0 - cia("C")?) * (1.0 - cia("I")?) * (1.0 - cia("A")?);
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02).powi(15)
    } else {
        6.42 * iss
    };
    let exploitability = 8.22 * av * ac * pr * ui;
    if impact <= 0.0 {
        return Ok(0.0);
    }
    let raw = if changed {
        (1.08 * (impact + exploitability)).min(10.0)
    } else {
        (impact + exploitability).min(10.0)
    };
    Ok(roundup(raw))
}

/// CVSS v3.1's Roundup: the smallest one-decimal number not below `x`, computed so that
/// floating-point noise (4.000000001) does not push it up.
fn roundup(x: f64) -> f64 {
    let int_input = (x * 100_000.0).round() as i64;
    if int_input % 10_000 == 0 {
        int_input as f64 / 100_000.0
    } else {
        ((int_input / 10_000) + 1) as f64 / 10.0
    }
}

/// How bad an advisory is for one affected package: `(severity, CVSS score)`.
/// The CVSS v3 vector of the `affected` entry, else of the advisory, else RustSec's
/// `database_specific.cvss`, gives the score. Without one, a qualitative
/// `database_specific.severity` (GHSA's LOW/MODERATE/HIGH/CRITICAL) is used; a
/// RustSec informational advisory (unmaintained, unsound, notice) is low; anything
/// else unscored is medium. CVSS v4 vectors are not scored (see the design note).
pub fn advisory_severity(advisory: &Advisory, affected_index: usize) -> (Severity, Option<f64>) {
    let affected = advisory.affected.get(affected_index);
    let vectors = affected
        .into_iter()
        .flat_map(|a| a.severity.iter())
        .chain(advisory.severity.iter())
        .filter(|s| s.kind == "CVSS_V3")
        .map(|s| s.score.clone())
        .chain(
            affected
                .and_then(|a| a.database_specific.as_ref())
                .and_then(|d| d.get("cvss"))
                .and_then(|c| c.as_str())
                .map(str::to_owned),
        );
    for vector in vectors {
        if let Ok(score) = cvss3_base_score(&vector) {
            return (severity_of_score(score), Some(score));
        }
    }
    let qualitative = advisory
        .database_specific
        .as_ref()
        .and_then(|d| d.get("severity"))
        .or_else(|| {
            affected
                .and_then(|a| a.ecosystem_specific.as_ref())
                .and_then(|d| d.get("severity"))
        })
        .and_then(|s| s.as_str());
    if let Some(q) = qualitative.and_then(parse_severity) {
        return (q, None);
    }
    let informational = affected
        .and_then(|a| a.database_specific.as_ref())
        .and_then(|d| d.get("informational"))
        .and_then(|i| i.as_str());
    match informational {
        Some(_) => (Severity::Low, None),
        None => (Severity::Medium, None),
    }
}

/// `critical`, `high`, `medium`/`moderate`, `low`, `info`/`none` (any case).
pub fn parse_severity(text: &str) -> Option<Severity> {
    match text.to_ascii_lowercase().as_str() {
        "critical" => Some(Severity::Critical),
        "high" => Some(Severity::High),
        "medium" | "moderate" => Some(Severity::Medium),
        "low" => Some(Severity::Low),
        "info" | "none" => Some(Severity::Info),
        _ => None,
    }
}

/// The fixed and last-affected versions of an `affected` entry, and its ranges as text
/// (`>= 0.6.3, < 0.6.14 | >= 1.0.0, < 1.6.1`).
pub fn describe_ranges(advisory: &Advisory, affected_index: usize) -> (Vec<String>, String) {
    let Some(affected) = advisory.affected.get(affected_index) else {
        return (Vec::new(), String::new());
    };
    let mut fixed = Vec::new();
    let mut pieces = Vec::new();
    for range in affected.ranges.iter().filter(|r| r.kind != "GIT") {
        let mut current = String::new();
        for event in &range.events {
            if let Some(v) = &event.introduced {
                if !current.is_empty() {
                    pieces.push(std::mem::take(&mut current));
                }
                current = if v == "0" {
                    ">= 0".to_owned()
                } else {
                    format!(">= {v}")
                };
            } else if let Some(v) = &event.fixed {
                fixed.push(v.clone());
                current = format!("{current}, < {v}");
                pieces.push(std::mem::take(&mut current));
            } else if let Some(v) = &event.last_affected {
                current = format!("{current}, <= {v}");
                pieces.push(std::mem::take(&mut current));
            } else if let Some(v) = &event.limit {
                pieces.push(format!("limit < {v}"));
            }
        }
        if !current.is_empty() {
            pieces.push(current);
        }
    }
    if !affected.versions.is_empty() {
        pieces.push(format!("versions {}", affected.versions.join(", ")));
    }
    (fixed, pieces.join(" | "))
}

/// The finding for a vulnerable package.
pub fn vulnerability_finding(
    lockfile: &str,
    package: &Package,
    advisory: &Arc<Advisory>,
    affected_index: usize,
) -> Finding {
    let (severity, score) = advisory_severity(advisory, affected_index);
    let (fixed, ranges) = describe_ranges(advisory, affected_index);
    let summary = advisory
        .summary
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("vulnerable");
    let advice = if fixed.is_empty() {
        "no fixed version is known".to_owned()
    } else {
        format!("fixed in {}", fixed.join(", "))
    };
    let message = format!(
        "{} {} ({}): {}: {summary}; {advice}",
        package.name, package.version, package.ecosystem, advisory.id
    );
    let purl = package.ecosystem.purl(&package.name, &package.version);
    let mut finding = Finding::new(advisory.id.clone(), severity, message)
        .at(lockfile, package.line, None)
        .with_fingerprint(Finding::automatic_fingerprint(
            &advisory.id,
            Some(lockfile),
            &purl,
        ))
        .with_property("package", package.name.clone())
        .with_property("version", package.version.clone())
        .with_property("ecosystem", package.ecosystem.osv_name())
        .with_property("purl", purl)
        .with_property("aliases", advisory.aliases.join(","))
        .with_property("fixed-versions", fixed.join(","))
        .with_property("affected-ranges", ranges);
    if let Some(score) = score {
        finding = finding.with_security_severity(score);
    }
    if let Some(uri) = advisory.help_uri() {
        finding = finding.with_help_uri(uri);
    }
    finding
}

/// The finding for a leaked secret: it names the rule, never shows the secret.
pub fn secret_finding(leak: &Leak) -> Finding {
    Finding::new(
        format!("secret/{}", leak.rule_id),
        Severity::High,
        format!("{} (secret redacted, {} characters, entropy {:.2}); revoke it and remove it from the tree, or mark the line with `gitleaks:allow` if it is not a secret", leak.description, leak.secret_len, leak.entropy),
    )
    .at(leak.path.clone(), leak.line, leak.column)
    .with_fingerprint(leak.fingerprint.clone())
    .with_property("rule", leak.rule_id.clone())
}

/// The finding for a denylisted package or git reference.
pub fn denylist_finding(lockfile: &str, package: &Package, hit: &Hit) -> Finding {
    Finding::new(
        format!("denylist/{}", hit.entry),
        Severity::Critical,
        format!(
            "blocked by denylist entry `{}`: {}; reason: {}",
            hit.entry, hit.matched, hit.reason
        ),
    )
    .at(lockfile, package.line, None)
    .with_property("package", package.name.clone())
    .with_property("version", package.version.clone())
    .with_property("ecosystem", package.ecosystem.osv_name())
    .with_property(
        "purl",
        package.ecosystem.purl(&package.name, &package.version),
    )
    .with_property("denylist-entry", hit.entry.clone())
    .with_property("reason", hit.reason.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvss3_scores_match_the_nvd_calculator() {
        for (vector, want) in [
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
            ("CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", 8.1),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
            ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4),
            ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5),
            ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
        ] {
            assert_eq!(cvss3_base_score(vector), Ok(want), "{vector}");
        }
        assert!(cvss3_base_score("CVSS:4.0/AV:N").is_err());
        assert!(
            cvss3_base_score("CVSS:3.1/AV:N/AC:L")
                .unwrap_err()
                .contains("lacks")
        );
        assert!(cvss3_base_score("CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H").is_err());
    }

    #[test]
    fn bands() {
        assert_eq!(severity_of_score(0.0), Severity::Info);
        assert_eq!(severity_of_score(3.9), Severity::Low);
        assert_eq!(severity_of_score(4.0), Severity::Medium);
        assert_eq!(severity_of_score(7.0), Severity::High);
        assert_eq!(severity_of_score(9.0), Severity::Critical);
        assert_eq!(parse_severity("MODERATE"), Some(Severity::Medium));
        assert_eq!(parse_severity("severe"), None);
    }

    fn advisory(json: &str) -> Advisory {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn advisory_severity_sources() {
        let scored = advisory(
            r#"{"id":"A","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],"affected":[{"package":{"ecosystem":"npm","name":"x"}}]}"#,
        );
        assert_eq!(advisory_severity(&scored, 0), (Severity::High, Some(7.5)));
        let ghsa =
            advisory(r#"{"id":"B","database_specific":{"severity":"CRITICAL"},"affected":[]}"#);
        assert_eq!(advisory_severity(&ghsa, 0), (Severity::Critical, None));
        let unmaintained = advisory(
            r#"{"id":"C","affected":[{"package":{"ecosystem":"crates.io","name":"x"},"database_specific":{"informational":"unmaintained"}}]}"#,
        );
        assert_eq!(advisory_severity(&unmaintained, 0), (Severity::Low, None));
        let bare =
            advisory(r#"{"id":"D","affected":[{"package":{"ecosystem":"crates.io","name":"x"}}]}"#);
        assert_eq!(advisory_severity(&bare, 0), (Severity::Medium, None));
    }

    #[test]
    fn ranges_are_described() {
        let a = advisory(
            r#"{"id":"A","affected":[{"package":{"ecosystem":"crates.io","name":"smallvec"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0.6.3"},{"fixed":"0.6.14"},{"introduced":"1.0.0"},{"fixed":"1.6.1"}]}]}]}"#,
        );
        let (fixed, ranges) = describe_ranges(&a, 0);
        assert_eq!(fixed, ["0.6.14", "1.6.1"]);
        assert_eq!(ranges, ">= 0.6.3, < 0.6.14 | >= 1.0.0, < 1.6.1");
    }
}
