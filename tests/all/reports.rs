//! The reports a run writes for CI systems: junit.xml (checked with an XML parser),
//! results.sarif (checked against the official SARIF 2.1.0 JSON schema), summary.json,
//! and the GitHub Actions annotations and job summary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::Project;

const CANNED: &str = r#"
[pipeline]
name = "reports"

[[stage]]
name = "test"

[[stage.step]]
id = "unit"
uses = "{adversary}"
with.mode = "canned"
with.status = "failed"
with.tests = [
  { suite = "math", name = "adds", status = "passed", duration-ms = 12 },
  { suite = "math", name = "divides", status = "failed", message = "assertion `left == right` failed <&>\" ]]> end\n  left: 1\n right: 2", output = "stdout of divides" },
  { suite = "math", name = "slow", status = "skipped", message = "ignored" },
  { suite = "net", name = "retries", status = "flaky" },
]

[[stage.step]]
id = "scan"
uses = "{adversary}"
with.mode = "canned"
with.findings = [
  { rule = "RUSTSEC-2099-0001", severity = "critical", message = "use after free in foo 1.0.0", path = "Cargo.lock", line = 12, score = 9.8, properties = { package = "foo", aliases = "CVE-2099-1" } },
  { rule = "RUSTSEC-2099-0001", severity = "high", message = "same rule, other crate", path = "Cargo.lock", line = 40, score = 7.5 },
  { rule = "clippy::needless_return", severity = "medium", message = "unneeded `return` statement,\nsee docs", path = "src/lib.rs", line = 3, column = 5 },
  { rule = "secret/aws", severity = "low", message = "an AWS key (redacted)" },
]
"#;

fn run_canned() -> (Project, PathBuf) {
    let p = Project::new(CANNED);
    std::fs::create_dir_all(p.path().join(".git")).unwrap();
    p.run(&["--report-dir", "reports"]).expect_code(1);
    let dir = p.path().join("reports");
    (p, dir)
}

#[test]
fn junit_xml_holds_every_test_case() {
    let (_p, dir) = run_canned();
    let text = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("junit.xml is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attribute("tests"), Some("4"));
    assert_eq!(root.attribute("failures"), Some("1"));
    assert_eq!(root.attribute("skipped"), Some("1"));
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    let names: Vec<_> = suites
        .iter()
        .map(|s| s.attribute("name").unwrap())
        .collect();
    assert_eq!(names, ["test/unit/math", "test/unit/net"]);
    let case = |name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
            .unwrap()
    };
    let failure = case("divides")
        .children()
        .find(|n| n.has_tag_name("failure"))
        .expect("a failure element");
    assert_eq!(
        failure.attribute("message"),
        Some("assertion `left == right` failed <&>\" ]]> end")
    );
    assert!(failure.text().unwrap_or("").is_empty() || failure.text().is_some());
    let full: String = failure.descendants().filter_map(|n| n.text()).collect();
    assert!(full.contains("]]> end\n  left: 1"), "{full}");
    assert!(case("slow").children().any(|n| n.has_tag_name("skipped")));
    let flaky = case("retries");
    assert!(
        flaky.children().any(|n| n.has_tag_name("flakyFailure")),
        "flaky retries become flakyFailure"
    );
    assert!(
        !flaky.children().any(|n| n.has_tag_name("failure")),
        "a flaky test is not a failure"
    );
    assert_eq!(case("adds").attribute("time"), Some("0.012"));
}

/// The official SARIF 2.1.0 schema, from the npm package that ships Microsoft's SARIF
/// multitool (downloaded once into the target folder).
pub fn sarif_schema() -> &'static serde_json::Value {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sarif-schema");
        let file = dir.join("package").join("sarif-2.1.0.json");
        if !file.exists() {
            std::fs::create_dir_all(&dir).unwrap();
            let packed = Command::new("npm")
                .args([
                    "pack",
                    "--silent",
                    "@microsoft/sarif-multitool-linux@5.7.0",
                    "--pack-destination",
                ])
                .arg(&dir)
                .output()
                .expect("npm is needed to fetch the SARIF schema");
            assert!(
                packed.status.success(),
                "npm pack failed: {}",
                String::from_utf8_lossy(&packed.stderr)
            );
            let tgz = dir.join(String::from_utf8_lossy(&packed.stdout).trim());
            let status = Command::new("tar")
                .arg("-xzf")
                .arg(&tgz)
                .arg("-C")
                .arg(&dir)
                .arg("package/sarif-2.1.0.json")
                .status()
                .unwrap();
            assert!(
                status.success(),
                "cannot unpack the SARIF schema from {}",
                tgz.display()
            );
            let _ = std::fs::remove_file(tgz);
        }
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
    })
}

#[test]
fn sarif_matches_the_schema_and_github_needs() {
    let (_p, dir) = run_canned();
    let sarif: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.sarif")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(sarif_schema()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "results.sarif violates the SARIF 2.1.0 schema: {errors:#?}"
    );
    assert_eq!(sarif["version"], "2.1.0");
    let runs = sarif["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "one run per step with findings");
    let run = &runs[0];
    assert_eq!(run["automationDetails"]["id"], "reports/test/scan/");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 3, "rules are listed once");
    let rustsec = rules
        .iter()
        .find(|r| r["id"] == "RUSTSEC-2099-0001")
        .unwrap();
    assert_eq!(
        rustsec["properties"]["security-severity"], "9.8",
        "the highest CVSS of the rule"
    );
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    let first = &results[0];
    assert_eq!(first["level"], "error");
    assert_eq!(
        first["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "Cargo.lock"
    );
    assert_eq!(
        first["locations"][0]["physicalLocation"]["region"]["startLine"],
        12
    );
    assert_eq!(first["properties"]["aliases"], "CVE-2099-1");
    assert!(
        first["partialFingerprints"]["sluiceFingerprint/v2"]
            .as_str()
            .unwrap()
            .len()
            >= 16
    );
    assert_eq!(results[2]["level"], "warning");
    assert_eq!(results[3]["level"], "note");
    assert!(
        results[3].get("locations").is_none(),
        "a finding without a place has no location"
    );
}

#[test]
fn sarif_uris_are_relative_to_the_repository_root() {
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join(".git")).unwrap();
    let sub = repo.path().join("services/api");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(
        sub.join("sluice.toml"),
        CANNED.replace("{adversary}", crate::support::adversary()),
    )
    .unwrap();
    crate::support::sluice_in(
        &sub,
        &["run", "--format", "plain", "--report-dir", "reports"],
    )
    .expect_code(1);
    let sarif: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sub.join("reports/results.sarif")).unwrap())
            .unwrap();
    let uri = &sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
        ["uri"];
    assert_eq!(uri, "services/api/Cargo.lock");
}

#[test]
fn summary_json_counts_tests_and_findings() {
    let (_p, dir) = run_canned();
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["status"], "failed");
    assert_eq!(
        s["tests"],
        serde_json::json!({ "total": 4, "passed": 1, "failed": 1, "skipped": 1, "flaky": 1 })
    );
    assert_eq!(s["findings"]["critical"], 1);
    assert_eq!(s["findings"]["high"], 1);
    assert_eq!(s["findings"]["medium"], 1);
    assert_eq!(s["findings"]["low"], 1);
    assert_eq!(s["steps"].as_array().unwrap().len(), 2);
}

#[test]
fn reports_default_to_the_run_folder() {
    let p = Project::new(CANNED);
    let out = p.run(&[]);
    out.expect_code(1);
    let run = p.run_record();
    let reports = PathBuf::from(run["run_dir"].as_str().unwrap()).join("reports");
    for f in ["junit.xml", "results.sarif", "summary.json"] {
        assert!(
            reports.join(f).exists(),
            "{f} missing in {}",
            reports.display()
        );
    }
    assert!(
        out.stderr
            .contains(&format!("reports: {}", reports.display())),
        "{}",
        out.stderr
    );
}

#[test]
fn github_actions_gets_ranked_annotations_and_a_job_summary() {
    let mut findings = String::new();
    for i in 0..15 {
        findings.push_str(&format!(
            "{{ rule = \"lint/high\", severity = \"high\", message = \"high {i}, with: specials%\", path = \"src/a,b.rs\", line = {} }},\n",
            i + 1
        ));
        findings.push_str(&format!(
            "{{ rule = \"lint/low\", severity = \"low\", message = \"low {i}\" }},\n"
        ));
    }
    let p = Project::new(&format!(
        r#"
[pipeline]
name = "gha"

[[stage]]
name = "lint"

[[stage.step]]
id = "lint"
uses = "{{adversary}}"
with.mode = "canned"
with.status = "failed"
with.findings = [
{findings}]
with.tests = [{{ suite = "s", name = "t", status = "failed", message = "boom\nline 2" }}]
"#
    ));
    let summary = p.path().join("step-summary.md");
    let out = std::process::Command::new(crate::support::sluice_bin())
        .args(["run", "--format", "plain"])
        .current_dir(p.path())
        .env("SLUICE_CACHE_DIR", crate::support::cache_dir())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("::")).collect();
    let errors: Vec<&&str> = lines.iter().filter(|l| l.starts_with("::error ")).collect();
    let notices: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("::notice "))
        .collect();
    assert_eq!(errors.len(), 10, "{stdout}");
    assert!(
        errors[0].starts_with("::error title=test failed%3A s t::boom%0Aline 2"),
        "failed tests come first: {}",
        errors[0]
    );
    assert!(
        errors[1].starts_with(
            "::error file=src/a%2Cb.rs,line=1,title=lint/high (high)::high 0, with: specials%25"
        ),
        "{}",
        errors[1]
    );
    assert_eq!(
        notices.len(),
        11,
        "10 low findings and one note about the rest: {stdout}"
    );
    let note = notices.last().unwrap();
    assert!(
        note.contains("11 more findings and failed tests are not annotated"),
        "{note}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("## ❌ Pipeline `gha` failed"), "{md}");
    assert!(
        md.contains("| ❌ | lint | lint | 0 passed, 1 failed | 30 |"),
        "{md}"
    );
    assert!(md.contains("### Failed tests"), "{md}");
}
