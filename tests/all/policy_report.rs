//! `sluice policy report`: over the repository's examples against the example policy
//! (table, JSON, Markdown, snapshot-tested at a fixed instant), and over a folder of
//! pipelines built to show every standing: a file that does not load, a check
//! enforced, one warning, one announced, an exemption in use and one expired.

use std::path::{Path, PathBuf};

use crate::support::{Outcome, Project, command_in, normalize};

/// The instant every report here is made at.
const NOW: &str = "2026-11-30T08:00:00Z";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the runner crate lies in the repository")
        .to_path_buf()
}

/// `sluice policy report ARGS` in `dir`, at [`NOW`].
fn report_in(dir: &Path, args: &[&str]) -> Outcome {
    let clock = tempfile::NamedTempFile::new().expect("a clock file");
    std::fs::write(clock.path(), NOW).expect("write the clock");
    let mut all = vec!["policy", "report"];
    all.extend_from_slice(args);
    Outcome::of(command_in(dir, &all).env("SLUICE_TEST_CLOCK", clock.path()))
}

/// Digests change with every edit of a policy file; nothing else here does.
fn without_digests(text: &str) -> String {
    let re = regex::Regex::new(r"sha256:[0-9a-f]{64}").expect("valid regex");
    re.replace_all(text, "sha256:[DIGEST]").into_owned()
}

/// The example policy (the `policy` branch's acme-release), from the repository root.
const EXAMPLES_POLICY: &str = "examples/policy/sluice-policy.toml";

/// `sluice policy report examples --policy EXAMPLES_POLICY --format FORMAT` from the
/// repository's root, its digests replaced.
fn report_examples(format: &str) -> String {
    let out = report_in(
        &repo_root(),
        &["examples", "--policy", EXAMPLES_POLICY, "--format", format],
    );
    out.expect_code(0);
    without_digests(&out.stdout)
}

#[test]
fn policy_report_over_the_examples_as_a_table() {
    insta::assert_snapshot!(report_examples("table"));
}

#[test]
fn policy_report_over_the_examples_as_json() {
    let text = report_examples("json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("one JSON document");
    assert_eq!(doc["report-version"], 1);
    assert_eq!(doc["generated-at"], NOW);
    insta::assert_snapshot!(text);
}

#[test]
fn policy_report_over_the_examples_as_markdown() {
    let text = report_examples("markdown");
    assert!(text.starts_with("# Policy report\n"), "{text}");
    insta::assert_snapshot!(text);
}

const POLICY: &str = r#"
[policy]
name = "acme-release"
version = "2026.11"

[protect]
stages = ["prod"]

[kinds]
test = ["test*"]

[[plugin]]
name = "builtin:*"
tier = "org"

[[check]]
id = "prod-window"
builtin = "production-window"
message = "Production stages deploy only inside a time window."
warn-from = 2026-10-01
enforce-from = 2026-11-01

[[check]]
id = "tests-must-pass"
builtin = "no-allow-failure-in-tests"
message = "Test stages do not allow failure."
warn-from = 2026-11-01
enforce-from = 2027-02-01

[[check]]
id = "prod-bake"
builtin = "production-bake"
with = { duration = "1h", positive = 3 }
message = "Production stages bake at least 1h with 3 positive data points."
warn-from = 2026-12-01
enforce-from = 2027-01-15

[[exemption]]
check = "prod-window"
pipeline = "legacy-*"
reason = "the billing batch runs at night"
approved-by = "dana@acme.example"
ticket = "REL-1234"
expires = 2026-11-15

[[exemption]]
check = "tests-must-pass"
pipeline = "legacy-*"
reason = "flaky contract tests, fixed in Q1"
approved-by = "lee@acme.example"
expires = 2027-03-01
"#;

/// A pipeline following `../sluice-policy.toml`: a test stage whose step may fail, and
/// a production stage behind an approval, with no window and no bake.
fn pipeline(name: &str) -> String {
    format!(
        r#"
[pipeline]
name = "{name}"
policy = "../sluice-policy.toml"

[[stage]]
name = "test"

[[stage.step]]
id = "contract-tests"
uses = "builtin:command"
allow-failure = true
with = {{ program = "echo", args = ["tests"] }}
[stage.step.grants]
exec = ["echo"]

[[stage]]
name = "prod"
[stage.gates.approval]

[[stage.step]]
id = "ship"
uses = "builtin:command"
with = {{ program = "echo", args = ["shipped"] }}
[stage.step.grants]
exec = ["echo"]
"#
    )
}

/// Four pipeline files: two following the policy, one without a policy, one broken.
fn fleet() -> Project {
    let p = Project::new(&pipeline("checkout"));
    std::fs::remove_file(p.path().join("sluice.toml")).expect("remove the default file");
    p.write("sluice-policy.toml", POLICY);
    p.write("checkout/sluice.toml", &pipeline("checkout"));
    p.write("legacy/release.toml", &pipeline("legacy-billing"));
    p.write(
        "tools/sluice.toml",
        "[pipeline]\nname = \"tools\"\n\n[[stage]]\nname = \"lint\"\n\n[[stage.step]]\nid = \"lint\"\nuses = \"builtin:command\"\nwith = { program = \"echo\", args = [\"ok\"] }\n[stage.step.grants]\nexec = [\"echo\"]\n",
    );
    p.write(
        "broken/sluice.toml",
        "[pipeline]\nname = \"broken\"\n\n[[stage]]\nname = \"build\"\nstepz = []\n",
    );
    p.write(
        "target/sluice.toml",
        "[pipeline]\nname = \"build output\"\n",
    );
    p
}

#[test]
fn policy_report_shows_each_standing_an_expired_exemption_and_a_broken_file() {
    let p = fleet();
    let out = report_in(p.path(), &["."]);
    out.expect_code(0);
    insta::assert_snapshot!(normalize(&out.stdout, p.path()));
}

#[test]
fn policy_report_json_has_the_documented_standings_and_exemption_states() {
    let p = fleet();
    let out = report_in(p.path(), &[".", "--format", "json"]);
    out.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    let rows = doc["pipelines"].as_array().expect("pipelines");
    let files: Vec<&str> = rows.iter().map(|r| r["file"].as_str().unwrap()).collect();
    assert_eq!(
        files,
        [
            "./broken/sluice.toml",
            "./checkout/sluice.toml",
            "./legacy/release.toml",
            "./tools/sluice.toml"
        ]
    );

    let broken = &rows[0];
    assert!(broken["pipeline"].is_null());
    let error = broken["errors"][0].as_str().expect("an error");
    assert!(
        error.starts_with("./broken/sluice.toml:6:1:") && error.contains("stepz"),
        "{error}"
    );

    let standing = |row: &serde_json::Value, check: &str| {
        row["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["check"] == check)
            .unwrap_or_else(|| panic!("no check {check} in {row:#}"))["standing"]
            .as_str()
            .expect("a standing")
            .to_string()
    };
    let checkout = &rows[1];
    assert_eq!(standing(checkout, "prod-window"), "enforced");
    assert_eq!(standing(checkout, "tests-must-pass"), "warns");
    assert_eq!(standing(checkout, "prod-bake"), "announced");
    assert_eq!(checkout["counts"]["failing"], 1);
    assert_eq!(checkout["counts"]["warnings"], 2);
    assert_eq!(checkout["counts"]["earliest-enforcement"], "2027-01-15");
    assert_eq!(checkout["exemptions"].as_array().map(Vec::len), Some(0));

    let legacy = &rows[2];
    assert_eq!(legacy["pipeline"], "legacy-billing");
    assert_eq!(standing(legacy, "prod-window"), "enforced");
    let window = legacy["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "prod-window")
        .unwrap();
    assert_eq!(window["expired-exemption"], "2026-11-15");
    assert_eq!(standing(legacy, "tests-must-pass"), "exempt");
    let states: Vec<(&str, &str)> = legacy["exemptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["check"].as_str().unwrap(), e["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [("prod-window", "expired"), ("tests-must-pass", "in-use")]
    );
    assert_eq!(legacy["counts"]["exemptions"], 1);
    assert_eq!(legacy["counts"]["earliest-expiry"], "2027-03-01");

    let tools = &rows[3];
    assert!(tools["policy"].is_null());
    assert_eq!(tools["automation"]["score"], 100);

    // The production stage: approval, no bake, no alarms, no window, no canary; the
    // test step that may fail.
    let gaps: Vec<&str> = checkout["automation"]["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["gap"].as_str().unwrap())
        .collect();
    assert_eq!(
        gaps,
        [
            "manual-approval",
            "no-bake",
            "no-alarms",
            "no-window",
            "no-canary",
            "allow-failure"
        ]
    );
    assert_eq!(
        checkout["automation"]["score"],
        100 - 20 - 10 - 10 - 5 - 15 - 5
    );
    assert_eq!(checkout["automation"]["level"], "manual");

    assert_eq!(doc["summary"]["pipelines"], 4);
    assert_eq!(doc["summary"]["errors"], 1);
    assert_eq!(doc["summary"]["failing"], 2);
    assert_eq!(doc["summary"]["without-policy"], 1);
}

#[test]
fn policy_report_at_a_later_instant_enforces_what_only_warned() {
    let p = fleet();
    let clock = tempfile::NamedTempFile::new().expect("a clock file");
    std::fs::write(clock.path(), "2027-02-01T00:00:00Z").expect("write the clock");
    let out = Outcome::of(
        command_in(
            p.path(),
            &["policy", "report", "checkout", "--format", "json"],
        )
        .env("SLUICE_TEST_CLOCK", clock.path()),
    );
    out.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let checks = doc["pipelines"][0]["checks"].as_array().expect("checks");
    let standings: Vec<(&str, &str)> = checks
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap(),
                c["standing"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        standings,
        [
            ("prod-window", "enforced"),
            ("tests-must-pass", "enforced"),
            ("prod-bake", "enforced")
        ]
    );
}

#[test]
fn policy_report_of_a_folder_that_does_not_exist_is_a_usage_error() {
    let p = fleet();
    let out = report_in(p.path(), &["no-such-folder"]);
    out.expect_code(2);
    insta::assert_snapshot!(out.stderr.trim_end(), @"error: no such folder: no-such-folder (give the folders to search for pipeline files)");
}

#[test]
fn policy_report_as_markdown_escapes_table_cells() {
    let p = fleet();
    p.write(
        "pipes/sluice.toml",
        "[pipeline]\nname = \"a|b <i>\"\n\n[[stage]]\nname = \"lint\"\n\n[[stage.step]]\nid = \"lint\"\nuses = \"builtin:command\"\nwith = { program = \"echo\", args = [\"ok\"] }\n[stage.step.grants]\nexec = [\"echo\"]\n",
    );
    let out = report_in(p.path(), &["pipes", "--format", "markdown"]);
    out.expect_code(0);
    assert!(
        out.stdout
            .contains("| a\\|b &lt;i> | `pipes/sluice.toml` |"),
        "{}",
        out.stdout
    );
}
