//! The built-in `build`, `unit-test` and `lint` plugins on a real Rust project
//! (`examples/rust-service`), through the real binary: artifact digest, SBOM,
//! provenance, and reports whose counts match what `cargo test` itself says.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::{copy_tree, sluice_in};

/// A copy of examples/rust-service with its crates in Cargo's cache, run once.
struct ServiceRun {
    dir: CopyDir,
    code: i32,
    stderr: String,
}

fn service_run() -> &'static ServiceRun {
    static RUN: OnceLock<ServiceRun> = OnceLock::new();
    RUN.get_or_init(|| {
        // One fixed folder per checkout, emptied first: a static is never dropped, so a
        // temporary folder here was left behind by every test run. Outside the
        // checkout: inside it, cargo would take the project for part of our workspace.
        let checkout = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            env!("CARGO_TARGET_TMPDIR").hash(&mut h);
            h.finish()
        };
        let dir = CopyDir(std::env::temp_dir().join(format!("sluice-service-{checkout:016x}")));
        if dir.path().exists() {
            std::fs::remove_dir_all(dir.path()).unwrap();
        }
        std::fs::create_dir_all(dir.path()).unwrap();
        copy_tree(
            &Path::new(sluice_tests::WORKSPACE_ROOT).join("examples/rust-service"),
            dir.path(),
        );
        // The pipeline builds offline; make sure its two crates are downloaded.
        let fetched = Command::new("cargo")
            .args(["fetch", "--locked"])
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(fetched.success(), "cargo fetch failed for the example");
        let out = sluice_in(
            dir.path(),
            &["run", "--format", "plain", "--report-dir", "reports"],
        );
        ServiceRun {
            dir,
            code: out.code,
            stderr: out.stderr,
        }
    })
}

/// The folder the example is copied to, kept until the next test run empties it.
struct CopyDir(PathBuf);

impl CopyDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn rust_service_pipeline_warns_on_the_clippy_lint_only() {
    let run = service_run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary = read_json(&run.dir.path().join("reports/summary.json"));
    assert_eq!(summary["status"], "warned", "{summary:#}");
    let statuses: Vec<(&str, &str)> = summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("compile", "passed"),
            ("unit-tests", "passed"),
            ("clippy", "warned")
        ]
    );
}

#[test]
fn build_records_the_artifact_sbom_and_provenance() {
    let run = service_run();
    let dir = run.dir.path();
    let summary = read_json(&dir.join("reports/summary.json"));
    let binary = dir.join("target/release/inventory");
    let digest = format!("sha256:{}", sha256_of(&binary));
    assert_eq!(summary["artifact"]["digest"], digest.as_str());
    assert_eq!(summary["artifact"]["name"], "inventory-service");
    assert_eq!(summary["artifact"]["version"], "0.3.1");

    let sbom = read_json(&dir.join("target/sluice/sbom.cdx.json"));
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    let purls: Vec<&str> = sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["purl"].as_str().unwrap())
        .collect();
    assert!(
        purls.contains(&"pkg:cargo/semver@1.0.28") && purls.contains(&"pkg:cargo/itoa@1.0.19"),
        "{purls:?}"
    );

    let provenance = read_json(&dir.join("target/sluice/provenance.intoto.json"));
    assert_eq!(provenance["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        provenance["predicateType"],
        "https://slsa.dev/provenance/v1"
    );
    let subject = &provenance["subject"][0];
    assert_eq!(
        format!("sha256:{}", subject["digest"]["sha256"].as_str().unwrap()),
        digest
    );
    let build = &provenance["predicate"]["buildDefinition"];
    assert_eq!(build["externalParameters"]["pipeline"], "inventory-service");
    assert_eq!(build["externalParameters"]["step"], "compile");
    let lock_digest = sha256_of(&dir.join("Cargo.lock"));
    assert!(
        build["resolvedDependencies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["digest"]["sha256"] == lock_digest.as_str())
    );
    let record = read_json(
        &dir.join(".sluice/runs")
            .read_dir()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
            .join("steps/compile.json"),
    );
    let plugin_digest = record["plugin_digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let builders = provenance["predicate"]["runDetails"]["builder"]["builderDependencies"]
        .as_array()
        .unwrap();
    assert!(
        builders
            .iter()
            .any(|b| b["digest"]["sha256"] == plugin_digest.as_str()),
        "{builders:#?}"
    );
}

/// `(passed, failed, ignored)` summed over cargo's own `test result:` lines.
fn cargo_test_counts(dir: &Path) -> (u64, u64, u64) {
    let out = Command::new("cargo")
        .args(["test", "--locked", "--offline", "--no-fail-fast"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", dir.join("target/direct"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let re =
        regex::Regex::new(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored").unwrap();
    re.captures_iter(&text).fold((0, 0, 0), |(p, f, i), c| {
        (
            p + c[1].parse::<u64>().unwrap(),
            f + c[2].parse::<u64>().unwrap(),
            i + c[3].parse::<u64>().unwrap(),
        )
    })
}

#[test]
fn junit_counts_match_cargo_test() {
    let run = service_run();
    let (passed, failed, ignored) = cargo_test_counts(run.dir.path());
    assert_eq!(
        (passed, failed, ignored),
        (8, 0, 1),
        "what cargo test says about the example"
    );
    let text = std::fs::read_to_string(run.dir.path().join("reports/junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let root = doc.root_element();
    let attr = |n: &str| root.attribute(n).unwrap().parse::<u64>().unwrap();
    assert_eq!(attr("tests"), passed + failed + ignored);
    assert_eq!(attr("failures"), failed);
    assert_eq!(attr("skipped"), ignored);
    let ignored_case = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("testcase")
                && n.attribute("name")
                    .is_some_and(|a| a.ends_with("large_ledger_snapshot_round_trips"))
        })
        .expect("the ignored test is listed");
    assert!(ignored_case.children().any(|n| n.has_tag_name("skipped")));
}

#[test]
fn clippy_finding_reaches_sarif_with_its_exact_place() {
    let run = service_run();
    let sarif = read_json(&run.dir.path().join("reports/results.sarif"));
    let lib = std::fs::read_to_string(run.dir.path().join("src/lib.rs")).unwrap();
    let line = lib
        .lines()
        .position(|l| l.contains("return Ok(on_hand - reserved);"))
        .unwrap()
        + 1;
    let results: Vec<&serde_json::Value> = sarif["runs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["results"].as_array().unwrap())
        .collect();
    let needless = results
        .iter()
        .find(|r| r["ruleId"] == "clippy::needless_return")
        .unwrap_or_else(|| panic!("no clippy::needless_return in {sarif:#}"));
    let loc = &needless["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "src/lib.rs");
    assert_eq!(loc["region"]["startLine"], line as u64);
    assert_eq!(loc["region"]["startColumn"], 9);
    assert_eq!(needless["level"], "warning");
}

fn flaky_project() -> tempfile::TempDir {
    let temp = tempfile::Builder::new()
        .prefix("sluice-flaky-")
        .tempdir()
        .unwrap();
    let dir = temp.path().to_path_buf();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"flaky\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("src/lib.rs"),
        r#"
#[cfg(test)]
mod tests {
    #[test]
    fn steady() {}

    /// Fails on its first run only: the first run leaves a marker behind.
    #[test]
    fn fails_first_time() {
        let marker = concat!(env!("CARGO_MANIFEST_DIR"), "/target/flaky-marker");
        if std::fs::metadata(marker).is_err() {
            std::fs::write(marker, "ran").unwrap();
            panic!("first run fails");
        }
    }
}
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("sluice.toml"),
        r#"
[pipeline]
name = "flaky"

[[stage]]
name = "test"

[[stage.step]]
id = "unit"
uses = "builtin:unit-test"
with = { tool = "cargo", args = ["--offline"], retries = 2 }
[stage.step.grants]
exec = ["cargo"]
read = [".", "~/.cargo", "~/.rustup"]
write = ["target"]
env = ["HOME", "CARGO_HOME", "RUSTUP_HOME"]
"#,
    )
    .unwrap();
    // The step may not write outside `target`, so the lockfile must exist beforehand.
    let locked = Command::new("cargo")
        .args(["generate-lockfile", "--offline"])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(locked.success());
    temp
}

#[test]
fn a_test_failing_once_is_flaky_not_passed() {
    let project = flaky_project();
    let dir = project.path();
    let out = sluice_in(
        dir,
        &["run", "--format", "plain", "--report-dir", "reports"],
    );
    out.expect_code(0);
    let text = std::fs::read_to_string(dir.join("reports/junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let case = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("testcase")
                && n.attribute("name")
                    .is_some_and(|a| a.ends_with("fails_first_time"))
        })
        .expect("the flaky test is listed");
    let flaky = case
        .children()
        .find(|n| n.has_tag_name("flakyFailure"))
        .expect("its failed attempt is kept");
    assert!(
        flaky
            .descendants()
            .filter_map(|n| n.text())
            .collect::<String>()
            .contains("first run fails")
    );
    assert_eq!(doc.root_element().attribute("failures"), Some("0"));
    let summary = read_json(&dir.join("reports/summary.json"));
    assert_eq!(summary["tests"]["flaky"], 1);
    assert_eq!(summary["tests"]["passed"], 1);
    let _ = std::fs::remove_dir_all(dir);
}
