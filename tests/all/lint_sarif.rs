//! `builtin:lint` with real clippy into `results.sarif`: one fingerprint per finding even
//! when a rule repeats in one file (on identical lines too), the same fingerprints after
//! a line is inserted above the findings, an (empty) SARIF run for a clean lint step so
//! that code scanning closes its fixed alerts, and a failing step's console that shows
//! the findings, never the tool's JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::support::{Project, normalize};

/// A crate where clippy repeats each of three lints, `len_zero` on two identical lines.
const REPEATED: &str = "\
pub fn first(v: &Vec<i32>) -> i32 {
    if v.len() == 0 {
        return 0;
    }
    return v[0];
}

pub fn last(v: &Vec<i32>) -> i32 {
    if v.len() == 0 {
        return 0;
    }
    return v[v.len() - 1];
}
";

const CLEAN: &str = "\
/// The first element, if any.
pub fn first(v: &[i32]) -> Option<i32> {
    v.first().copied()
}
";

fn manifest(name: &str) -> String {
    format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n"
    )
}

/// Two clippy steps: `clean` on a crate without findings, then `repeated`, which fails
/// on clippy's warnings.
const PIPELINE: &str = r#"
[pipeline]
name = "lint-sarif"

[[stage]]
name = "lint"

[[stage.step]]
id = "clean"
uses = "builtin:lint"
with = { tool = "clippy", path = "clean", fail-on = "medium" }
timeout = "10m"
[stage.step.grants]
exec = ["cargo"]
read = [".", "~/.cargo", "~/.rustup"]
write = ["clean"]
env = ["HOME", "CARGO_HOME", "RUSTUP_HOME"]

[[stage.step]]
id = "repeated"
uses = "builtin:lint"
with = { tool = "clippy", path = "repeated", fail-on = "medium" }
timeout = "10m"
[stage.step.grants]
exec = ["cargo"]
read = [".", "~/.cargo", "~/.rustup"]
write = ["repeated"]
env = ["HOME", "CARGO_HOME", "RUSTUP_HOME"]
"#;

fn project() -> Project {
    // Not under /tmp: the sandbox empties its /tmp when a step's programs are stopped,
    // and a write grant under the host's /tmp is mounted inside it (a bug reported to
    // the sandbox's owner: the second run here found `repeated/` empty).
    let dir = tempfile::Builder::new()
        .prefix("sluice-lint-sarif-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let p = Project { dir };
    p.write("sluice.toml", PIPELINE);
    p.write("clean/Cargo.toml", &manifest("clean"));
    p.write("clean/src/lib.rs", CLEAN);
    p.write("repeated/Cargo.toml", &manifest("repeated"));
    p.write("repeated/src/lib.rs", REPEATED);
    // Reports' URIs are relative to the repository root.
    std::fs::create_dir_all(p.path().join(".git")).unwrap();
    p
}

fn sarif(dir: &Path) -> serde_json::Value {
    let path = dir.join("reports/results.sarif");
    serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// The SARIF run of step `step`.
fn run_of<'a>(sarif: &'a serde_json::Value, step: &str) -> &'a serde_json::Value {
    sarif["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|run| run["automationDetails"]["id"] == format!("lint-sarif/lint/{step}/"))
        .unwrap_or_else(|| panic!("no SARIF run for step {step}: {sarif:#}"))
}

/// (rule, line) → fingerprint of every result of a run.
fn fingerprints(run: &serde_json::Value) -> BTreeMap<(String, u64), String> {
    run["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| {
            let line = result["locations"][0]["physicalLocation"]["region"]["startLine"]
                .as_u64()
                .unwrap();
            (
                (result["ruleId"].as_str().unwrap().to_owned(), line),
                result["partialFingerprints"]["sluiceFingerprint/v2"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no fingerprint in {result:#}"))
                    .to_owned(),
            )
        })
        .collect()
}

#[test]
fn repeated_clippy_findings_get_distinct_fingerprints_that_survive_an_inserted_line() {
    let p = project();
    let out = p.run(&["--jobs", "1", "--report-dir", "reports"]);
    out.expect_code(1);
    let first = sarif(p.path());
    let before = fingerprints(run_of(&first, "repeated"));
    let rules: BTreeSet<&str> = before.keys().map(|(rule, _)| rule.as_str()).collect();
    assert_eq!(
        rules,
        BTreeSet::from([
            "clippy::len_zero",
            "clippy::needless_return",
            "clippy::ptr_arg"
        ]),
        "{before:#?}"
    );
    assert_eq!(before.len(), 6, "two findings of each rule: {before:#?}");
    let distinct: BTreeSet<&String> = before.values().collect();
    assert_eq!(distinct.len(), before.len(), "{before:#?}");
    // The lines were read and hashed (not the messages, the fallback): the two
    // `if v.len() == 0 {` lines share a hash and count 1 and 2, while the two `return`s
    // (same message, different lines) have hashes of their own.
    let print = |rule: &str, line: u64| before[&(rule.to_owned(), line)].clone();
    let (zero_a, zero_b) = (print("clippy::len_zero", 2), print("clippy::len_zero", 9));
    assert_eq!(
        zero_a.split_once(':').unwrap().0,
        zero_b.split_once(':').unwrap().0
    );
    assert_eq!(
        (
            zero_a.split_once(':').unwrap().1,
            zero_b.split_once(':').unwrap().1
        ),
        ("1", "2")
    );
    let (return_a, return_b) = (
        print("clippy::needless_return", 5),
        print("clippy::needless_return", 12),
    );
    assert_ne!(
        return_a.split_once(':').unwrap().0,
        return_b.split_once(':').unwrap().0
    );
    assert!(return_a.ends_with(":1") && return_b.ends_with(":1"));

    // A line inserted at the top moves every finding one line down, and changes none
    // of their fingerprints.
    p.write("repeated/src/lib.rs", &format!("//! Lookups.\n{REPEATED}"));
    p.run(&["--jobs", "1", "--report-dir", "reports"])
        .expect_code(1);
    let after = fingerprints(run_of(&sarif(p.path()), "repeated"));
    let moved: BTreeMap<(String, u64), String> = before
        .into_iter()
        .map(|((rule, line), print)| ((rule, line + 1), print))
        .collect();
    assert_eq!(after, moved);
}

#[test]
fn a_clean_lint_step_still_writes_its_sarif_run() {
    let p = project();
    p.run(&["--jobs", "1", "--report-dir", "reports"])
        .expect_code(1);
    let sarif = sarif(p.path());
    let clean = run_of(&sarif, "clean");
    assert_eq!(clean["results"], serde_json::json!([]), "{clean:#}");
    let tool = &clean["tool"];
    assert_eq!(tool["driver"]["name"], "sluice lint", "{tool:#}");
    assert!(tool["driver"]["version"].is_string(), "{tool:#}");
    assert_eq!(tool["extensions"][0]["name"], "clippy", "{tool:#}");
    assert_eq!(sarif["runs"].as_array().unwrap().len(), 2, "{sarif:#}");
    // Still valid SARIF, empty run and all.
    let validator = jsonschema::validator_for(crate::reports::sarif_schema()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn a_failing_lint_step_shows_its_findings_on_the_console() {
    let p = project();
    let out = p.run(&["--jobs", "1"]);
    out.expect_code(1);
    for line in [
        "| repeated/src/lib.rs:1:17 medium clippy::ptr_arg",
        "| repeated/src/lib.rs:2:8 medium clippy::len_zero length comparison to zero",
        "| repeated/src/lib.rs:9:8 medium clippy::len_zero length comparison to zero",
        "| repeated/src/lib.rs:12:5 medium clippy::needless_return unneeded `return` statement",
    ] {
        assert!(out.stderr.contains(line), "no `{line}` in:\n{}", out.stderr);
    }
    // The raw output stays in the step's log.
    assert!(
        p.step_log("repeated")
            .contains(r#"{"reason":"compiler-message""#)
    );
}

#[test]
fn a_failing_lint_step_never_prints_the_tools_json() {
    let p = project();
    let out = p.run(&["--jobs", "1"]);
    out.expect_code(1);
    assert!(
        !out.stderr.contains(r#""reason""#) && !out.stderr.contains("compiler-message"),
        "raw clippy JSON on the console:\n{}",
        out.stderr
    );
    // The failed step's lines (the order of the steps' lines is the console's business).
    let console = normalize(&out.stderr, p.path());
    let block: Vec<&str> = console
        .lines()
        .skip_while(|line| !line.starts_with("  FAIL lint/repeated"))
        .enumerate()
        .take_while(|(index, line)| *index == 0 || line.starts_with("       "))
        .map(|(_, line)| line)
        .collect();
    insta::assert_snapshot!(block.join("\n"));
}
