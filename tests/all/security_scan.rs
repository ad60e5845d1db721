//! The built-in `security-scan` plugin through the real binary, on the real RustSec
//! advisory database: vulnerable crates, a leaked token and a denylisted package end up
//! in the run's SARIF with `security-severity`, and the token itself appears nowhere.

use std::path::{Path, PathBuf};

use crate::support::Project;

/// The RustSec advisories in OSV form (../shared/data), canonical.
pub fn advisory_db() -> PathBuf {
    let db = Path::new(sluice_tests::WORKSPACE_ROOT).join("../shared/data/osv/crates.io");
    assert!(
        db.is_dir(),
        "the RustSec OSV data is expected at {}",
        db.display()
    );
    std::fs::canonicalize(db).unwrap()
}

/// A file of the security-scan plugin's test data.
pub fn scan_data(rel: &str) -> String {
    std::fs::read_to_string(
        Path::new(sluice_tests::WORKSPACE_ROOT)
            .join("plugins/security-scan/tests/data")
            .join(rel),
    )
    .unwrap()
}

fn all_text_under(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all_text_under(&path, out);
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            out.push_str(&text);
        }
    }
}

#[test]
fn vulnerabilities_secrets_and_denylist_reach_sarif() {
    let db = advisory_db();
    let db_folder = db.parent().unwrap().display().to_string();
    let p = Project::new(&format!(
        r#"
[pipeline]
name = "audit"

[[stage]]
name = "security"

[[stage.step]]
id = "scan"
uses = "builtin:security-scan"
timeout = "2m"

[stage.step.with]
paths = ["app"]
database = "{}"
fail-on = "high"
secrets = {{ paths = ["app"] }}
denylist = {{ packages = [{{ purl = "pkg:cargo/regex", versions = "<1.5.5", reason = "ReDoS, see RUSTSEC-2022-0013" }}] }}

[stage.step.grants]
read = [".", "{db_folder}"]
"#,
        db.display()
    ));
    p.write("app/Cargo.lock", &scan_data("cargo/vulnerable/Cargo.lock"));
    // Built at run time so that this repository holds no token-shaped string.
    let token = format!("ghp_{}", "R7xK2mQ9vL4pT8wZ3nB6cY1dF5gH0jS2aE4u");
    p.write("app/deploy.sh", &format!("export GITHUB_TOKEN={token}\n"));
    let out = p.run(&["--report-dir", "reports"]);
    out.expect_code(1);

    let sarif: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.path().join("reports/results.sarif")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(crate::reports::sarif_schema()).unwrap();
    assert!(
        validator.is_valid(&sarif),
        "results.sarif violates the SARIF 2.1.0 schema"
    );
    let run = &sarif["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let rule = |id: &str| {
        rules
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no rule {id} in {rules:#?}"))
    };
    // smallvec 1.6.0: RUSTSEC-2021-0003, CVSS 9.8 in the advisory.
    assert_eq!(
        rule("RUSTSEC-2021-0003")["properties"]["security-severity"],
        "9.8"
    );
    let results = run["results"].as_array().unwrap();
    let smallvec = results
        .iter()
        .find(|r| r["ruleId"] == "RUSTSEC-2021-0003")
        .unwrap();
    assert_eq!(smallvec["level"], "error");
    assert_eq!(
        smallvec["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "app/Cargo.lock"
    );
    let lock = scan_data("cargo/vulnerable/Cargo.lock");
    let line = lock
        .lines()
        .position(|l| l == "name = \"smallvec\"")
        .unwrap()
        + 1;
    let reported = smallvec["locations"][0]["physicalLocation"]["region"]["startLine"]
        .as_u64()
        .unwrap() as usize;
    assert!(
        reported == line || reported + 1 == line,
        "smallvec is at line {line}, reported {reported}"
    );
    assert!(
        results
            .iter()
            .any(|r| r["ruleId"].as_str().unwrap().starts_with("secret/")),
        "the token is found"
    );
    assert!(
        results
            .iter()
            .any(|r| r["ruleId"].as_str().unwrap().starts_with("denylist/")),
        "the denylist matches"
    );

    let mut everything = out.stderr.clone();
    all_text_under(&p.path().join("reports"), &mut everything);
    all_text_under(&p.path().join(".sluice"), &mut everything);
    assert!(
        !everything.contains(&token[4..]),
        "the secret must never be printed or stored"
    );
}

/// Copy the RustSec OSV files into `to`.
fn copy_advisories(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(advisory_db()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

/// Regression: `database = "../osv"` was refused as ungranted although `..` (or
/// `../osv`) was granted, because the plugin handed `<project>/../osv` to WASI, which
/// picks the grant by prefix and cannot leave it through `..`. Also guards the summary's
/// count: packages, not package/advisory pairs.
#[test]
fn database_outside_the_project_folder_is_read_through_its_grant() {
    // <tmp>/repo is the pipeline folder; <tmp>/osv the database, beside it.
    let p = Project::new("");
    copy_advisories(&p.path().join("osv/crates.io"));
    let step = |id: &str, read: &str| {
        format!(
            r#"
[[stage.step]]
id = "{id}"
uses = "builtin:security-scan"
timeout = "2m"
with = {{ database = "../osv/crates.io", secrets = {{ enabled = false }}, max-database-age-days = 100000 }}
grants = {{ read = {read} }}
"#
        )
    };
    p.write(
        "repo/sluice.toml",
        &format!(
            "[pipeline]\nname = \"audit\"\n\n[[stage]]\nname = \"security\"\n{}{}",
            step("parent-granted", r#"["..", "."]"#),
            step("folder-granted", r#"[".", "../osv"]"#)
        ),
    );
    p.write("repo/Cargo.lock", &scan_data("cargo/vulnerable/Cargo.lock"));
    let repo = p.path().join("repo");
    let out = crate::support::sluice_in(&repo, &["run", "--format", "plain"]);
    out.expect_code(1);
    assert!(
        !out.stderr.contains("no `read` grant"),
        "no grant is missing: {}",
        out.stderr
    );

    let runs = repo.join(".sluice/runs");
    let run_dir = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    for id in ["parent-granted", "folder-granted"] {
        let step = run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == id)
            .unwrap();
        assert_eq!(step["status"], "failed", "{step:#}");
        let findings = step["report"]["findings"].as_array().unwrap();
        let mut purls: Vec<&str> = findings
            .iter()
            .map(|f| {
                // Properties are `[name, value]` pairs.
                f["properties"]
                    .as_array()
                    .and_then(|pairs| pairs.iter().find(|pair| pair[0] == "purl"))
                    .and_then(|pair| pair[1].as_str())
                    .unwrap_or_else(|| panic!("a purl in {f:#}"))
            })
            .collect();
        let advisories = purls.len();
        purls.sort_unstable();
        purls.dedup();
        assert!(advisories > purls.len(), "{purls:?}");
        let summary = step["report"]["summary"].as_str().unwrap();
        assert!(
            summary.starts_with(&format!(
                "{} vulnerable packages ({advisories} advisories) in 1 lockfile (17 packages)",
                purls.len()
            )),
            "{id}: {summary}"
        );
    }
}

/// Regression (issue 9): ordinary code that the previous default rules reported as
/// high-severity secrets (real lines from crates, paramiko and the issue) passes a
/// secret scan; a real token fails it, unless its line carries `gitleaks:allow`.
#[test]
fn secret_scan_passes_ordinary_code_and_honours_gitleaks_allow() {
    let p = Project::new(
        r#"
[pipeline]
name = "secrets"

[[stage]]
name = "security"

[[stage.step]]
id = "scan"
uses = "builtin:security-scan"
timeout = "2m"
with = { secrets = { paths = ["src"] } }
grants = { read = ["."] }
"#,
    );
    p.write("src/ordinary.txt", &scan_data("secrets/ordinary-code.txt"));
    // Built at run time so that this repository holds no token-shaped string.
    let token = ["ghp_", "R7xK2mQ9vL4pT8wZ3nB6cY1dF5gH0jS2aE4u"].concat();
    p.write(
        "src/fixture.sh",
        &format!("export GITHUB_TOKEN={token}  # gitleaks:allow (a revoked test token)\n"),
    );
    let out = p.run(&[]);
    out.expect_code(0);
    let step = p.step("scan");
    assert_eq!(step["status"], "passed", "{step:#}");
    assert_eq!(step["report"]["findings"].as_array().map_or(0, Vec::len), 0);
    assert!(
        step["report"]["summary"]
            .as_str()
            .unwrap()
            .contains("0 secrets"),
        "{step:#}"
    );
    // A clean scan still gets its SARIF run, so code scanning closes fixed alerts.
    let run_dir = p.run_record()["run_dir"].as_str().unwrap().to_string();
    let sarif: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&run_dir).join("reports/results.sarif")).unwrap(),
    )
    .unwrap();
    let runs = sarif["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{sarif:#}");
    assert_eq!(
        runs[0]["results"].as_array().map_or(0, Vec::len),
        0,
        "{sarif:#}"
    );

    // A second project: run ids sort by time only to the second.
    let p = Project::new(&std::fs::read_to_string(p.path().join("sluice.toml")).unwrap());
    p.write("src/deploy.sh", &format!("export GITHUB_TOKEN={token}\n"));
    let out = p.run(&[]);
    out.expect_code(1);
    let findings = p.step("scan")["report"]["findings"].clone();
    let findings = findings.as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0]["rule_id"], "secret/github-pat", "{findings:#?}");
    assert!(!out.stderr.contains(&token[4..]));
}
