//! The step end to end (natively): configuration checks, a scan of a real Cargo.lock
//! against the real RustSec database, a planted secret, the denylist, ignores and the
//! resulting status, findings, metrics and outputs.

mod common;

use std::path::{Path, PathBuf};

use sluice_plugin_security_scan::osv::parse_date;
use sluice_plugin_security_scan::{Config, SecurityScan, run_scan};
use sluice_sdk::{Plugin, RunError, Severity, Status, StepInput};

struct Workdir(PathBuf);

impl Workdir {
    fn new(name: &str) -> Workdir {
        let dir =
            std::env::temp_dir().join(format!("sluice-secscan-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("app")).unwrap();
        std::fs::copy(
            common::data("cargo/vulnerable/Cargo.lock"),
            dir.join("app/Cargo.lock"),
        )
        .unwrap();
        Workdir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(json: serde_json::Value) -> Config {
    serde_json::from_value(json).unwrap()
}

fn day(date: &str) -> i64 {
    parse_date(date).unwrap()
}

#[test]
fn vulnerable_lockfile_fails_with_sarif_ready_findings() {
    let work = Workdir::new("vuln");
    let db = common::rustsec_db();
    let report = run_scan(config(serde_json::json!({ "database": db, "secrets": { "enabled": false }, "max-database-age-days": 100000 })), work.path(), day("2026-11-22")).unwrap();
    assert_eq!(report.status, Status::Failed, "{}", report.summary);
    let regex = report
        .findings
        .iter()
        .find(|f| f.rule_id == "RUSTSEC-2022-0013")
        .expect("regex advisory");
    let location = regex.location.as_ref().unwrap();
    assert_eq!(location.path, "app/Cargo.lock");
    let text = std::fs::read_to_string(work.path().join("app/Cargo.lock")).unwrap();
    let line = text.lines().position(|l| l == "name = \"regex\"").unwrap() as u32; // the [[package]] line above
    assert_eq!(location.line, Some(line));
    // CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H in the advisory.
    assert_eq!(regex.security_severity, Some(7.5));
    assert_eq!(regex.severity, Severity::High);
    let prop = |name: &str| {
        regex
            .properties
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap()
    };
    assert_eq!(prop("purl"), "pkg:cargo/regex@1.5.4");
    assert_eq!(prop("fixed-versions"), "1.5.5");
    assert!(
        prop("aliases").contains("CVE-2022-24713"),
        "{}",
        prop("aliases")
    );
    assert_eq!(prop("ecosystem"), "crates.io");
    assert_eq!(
        report.output("vulnerabilities"),
        Some(report.findings.len().to_string().as_str())
    );
    assert!(
        report
            .metrics
            .iter()
            .any(|m| m.name == "advisories.loaded" && m.value > 1000.0)
    );
    assert!(
        report
            .metrics
            .iter()
            .any(|m| m.name == "packages.scanned" && m.value == 17.0)
    );
    assert_eq!(
        regex.help_uri.as_deref(),
        Some("https://rustsec.org/advisories/RUSTSEC-2022-0013.html")
    );
}

#[test]
fn fail_on_ignores_and_expiry() {
    let work = Workdir::new("ignore");
    let db = common::rustsec_db();
    // Critical-only threshold: fails while a critical finding is there...
    let base = serde_json::json!({ "database": db, "secrets": { "enabled": false }, "max-database-age-days": 100000, "fail-on": "critical" });
    let report = run_scan(config(base.clone()), work.path(), day("2026-11-22")).unwrap();
    let critical: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Critical)
        .map(|f| f.rule_id.clone())
        .collect();
    assert!(
        !critical.is_empty(),
        "smallvec 1.6.0's RUSTSEC-2021-0003 is rated 9.8"
    );
    assert_eq!(report.status, Status::Failed);
    // ...and only warns for the rest once those are ignored.
    let mut base = base;
    base["ignore"] = critical
        .iter()
        .map(|id| serde_json::json!({ "id": id, "reason": "test" }))
        .collect();
    let report = run_scan(config(base.clone()), work.path(), day("2026-11-22")).unwrap();
    assert!(!report.findings.is_empty());
    assert_eq!(report.status, Status::Warned, "{}", report.summary);
    let all = report.findings.len();

    let mut with_ignore = base.clone();
    with_ignore["ignore"].as_array_mut().unwrap().push(serde_json::json!({ "id": "CVE-2022-24713", "reason": "only trusted patterns", "expires": "2026-12-31" }));
    let ignored = run_scan(config(with_ignore.clone()), work.path(), day("2026-11-22")).unwrap();
    assert_eq!(ignored.findings.len(), all - 1);
    assert!(
        !ignored
            .findings
            .iter()
            .any(|f| f.rule_id == "RUSTSEC-2022-0013")
    );
    // The day after expiry the advisory is back, and the summary says why.
    let expired = run_scan(config(with_ignore), work.path(), day("2027-01-01")).unwrap();
    assert_eq!(expired.findings.len(), all);
    assert!(
        expired
            .summary
            .contains("ignore for CVE-2022-24713 expired"),
        "{}",
        expired.summary
    );
}

#[test]
fn old_database_warns() {
    let work = Workdir::new("age");
    let report = run_scan(config(serde_json::json!({ "database": common::rustsec_db(), "secrets": { "enabled": false }, "max-database-age-days": 1, "fail-on": "critical" })), work.path(), day("2099-01-01")).unwrap();
    assert!(
        report.summary.contains("days old (limit 1)"),
        "{}",
        report.summary
    );
    assert!(
        report
            .metrics
            .iter()
            .any(|m| m.name == "database.age" && m.value > 20_000.0)
    );
}

#[test]
fn denylist_fails_and_names_the_entry() {
    let work = Workdir::new("deny");
    let report = run_scan(
        config(serde_json::json!({
            "database": common::rustsec_db(), "secrets": { "enabled": false }, "max-database-age-days": 100000, "fail-on": "critical",
            "ignore": [],
            "denylist": { "packages": [{ "purl": "pkg:cargo/base64", "versions": ">=0.5.0, <0.6.0", "reason": "use the std-free fork" }, { "purl": "pkg:cargo/lru", "versions": ">=1.0.0", "reason": "not this one" }] }
        })),
        work.path(),
        day("2026-11-22"),
    )
    .unwrap();
    assert_eq!(report.status, Status::Failed);
    let blocked: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule_id.starts_with("denylist/"))
        .collect();
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0].rule_id, "denylist/package/pkg:cargo/base64");
    assert!(
        blocked[0]
            .message
            .contains("base64 0.5.1 is in `>=0.5.0, <0.6.0`")
            && blocked[0].message.contains("use the std-free fork"),
        "{}",
        blocked[0].message
    );
    assert_eq!(report.output("blocked"), Some("1"));
}

#[test]
fn secrets_are_found_and_redacted() {
    let work = Workdir::new("secret");
    let token = format!("ghp_{}", "R7xK2mQ9vL4pT8wZ3nB6cY1dF5gH0jS2aE4u");
    std::fs::write(
        work.path().join("app/deploy.sh"),
        format!("#!/bin/sh\nexport GITHUB_TOKEN={token}\n"),
    )
    .unwrap();
    std::fs::write(work.path().join(".gitignore"), "build/\n").unwrap();
    std::fs::create_dir_all(work.path().join("build")).unwrap();
    std::fs::write(work.path().join("build/copy.sh"), format!("{token}\n")).unwrap();
    let report = run_scan(
        config(
            serde_json::json!({ "lockfiles": [], "paths": ["app/none"], "secrets": { "paths": ["."] } }),
        ),
        work.path(),
        day("2026-11-22"),
    );
    // `paths` for lockfiles points at a folder that does not exist: a clear error.
    let err = report.unwrap_err();
    assert!(err.message().contains("app/none"), "{}", err.message());

    let report = run_scan(config(serde_json::json!({ "paths": ["app"], "database": common::rustsec_db(), "max-database-age-days": 100000 })), work.path(), day("2026-11-22")).unwrap();
    let secrets: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule_id.starts_with("secret/"))
        .collect();
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    assert_eq!(secrets[0].rule_id, "secret/github-pat");
    let location = secrets[0].location.as_ref().unwrap();
    assert_eq!(
        (location.path.as_str(), location.line, location.column),
        ("app/deploy.sh", Some(2), Some(21))
    );
    let everything = format!("{:?}", report);
    assert!(
        !everything.contains(&token[4..]),
        "the secret leaked into the report"
    );
    assert_eq!(report.output("secrets"), Some("1"));
}

#[test]
fn config_errors_are_actionable() {
    let work = Workdir::new("config");
    let err = run_scan(
        config(serde_json::json!({ "secrets": { "enabled": false } })),
        work.path(),
        0,
    )
    .unwrap_err();
    assert!(
        matches!(&err, RunError::InvalidConfig(m) if m.contains("no `database`")),
        "{err:?}"
    );
    let err = run_scan(
        config(serde_json::json!({ "fail-on": "severe" })),
        work.path(),
        0,
    )
    .unwrap_err();
    assert!(
        err.message()
            .contains("critical, high, medium, low or info")
    );
    let err = run_scan(config(serde_json::json!({ "ignore": [{ "id": "X", "reason": "r", "expires": "31/12/2026" }] })), work.path(), 0).unwrap_err();
    assert!(err.message().contains("YYYY-MM-DD"));
    let err = run_scan(config(serde_json::json!({ "denylist": { "packages": [{ "purl": "pkg:cargo/x", "versions": "~1", "reason": "r" }] } })), work.path(), 0).unwrap_err();
    assert!(err.message().contains("must start with"));
    let err = run_scan(
        config(serde_json::json!({ "database": "missing-db", "secrets": { "enabled": false } })),
        work.path(),
        0,
    )
    .unwrap_err();
    assert!(err.message().contains("missing-db"), "{}", err.message());
}

#[test]
fn schema_and_unknown_fields() {
    let descriptor = sluice_sdk::describe_plugin::<SecurityScan>();
    assert_eq!(descriptor.name, "security-scan");
    let schema: serde_json::Value = serde_json::from_str(&descriptor.config_schema).unwrap();
    assert_eq!(schema["additionalProperties"], false);
    for field in [
        "lockfiles",
        "database",
        "max-database-age-days",
        "ignore",
        "fail-on",
        "secrets",
        "denylist",
    ] {
        assert!(
            schema["properties"][field]["description"].is_string()
                || schema["properties"][field].is_object(),
            "{field}"
        );
    }
    let input = StepInput {
        run_id: "r".into(),
        pipeline: "p".into(),
        stage: "s".into(),
        step: "scan".into(),
        config: r#"{"databse": "x"}"#.into(),
        artifact: None,
        outputs: vec![],
        workdir: "/nonexistent".into(),
        attempt: 1,
        plugins: vec![],
    };
    let err = sluice_sdk::run_plugin::<SecurityScan>(input).unwrap_err();
    assert!(
        err.message().contains("unknown field `databse`"),
        "{}",
        err.message()
    );
    let _ = SecurityScan::capabilities();
}

/// Regression: the summary said "22 vulnerable package(s)" for 10 packages, counting
/// package/advisory pairs. The same real lockfile in two folders, with packages that
/// each match several advisories, is still counted once per package.
#[test]
fn summary_counts_vulnerable_packages_not_advisory_matches() {
    let work = Workdir::new("count");
    std::fs::create_dir_all(work.path().join("copy")).unwrap();
    std::fs::copy(
        common::data("cargo/vulnerable/Cargo.lock"),
        work.path().join("copy/Cargo.lock"),
    )
    .unwrap();
    let db = common::rustsec_db();
    let report = run_scan(
        config(serde_json::json!({ "database": db, "paths": ["app", "copy"], "secrets": { "enabled": false }, "max-database-age-days": 100000 })),
        work.path(),
        day("2026-11-22"),
    )
    .unwrap();
    let mut packages: Vec<String> = report
        .findings
        .iter()
        .map(|f| {
            f.properties
                .iter()
                .find(|(n, _)| n == "purl")
                .unwrap()
                .1
                .clone()
        })
        .collect();
    let advisories = packages.len();
    packages.sort();
    packages.dedup();
    assert!(
        advisories > 2 * packages.len(),
        "the data must have packages with several advisories: {advisories} matches, {} packages",
        packages.len()
    );
    let expected = format!(
        "{} vulnerable packages ({advisories} advisories) in 2 lockfiles (34 packages)",
        packages.len()
    );
    assert!(
        report.summary.starts_with(&expected),
        "expected `{expected}…`, got `{}`",
        report.summary
    );
    assert_eq!(
        report.output("vulnerable-packages"),
        Some(packages.len().to_string().as_str())
    );
    assert_eq!(
        report.output("vulnerabilities"),
        Some(advisories.to_string().as_str())
    );
}
