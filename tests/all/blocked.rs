//! Blocked content through the binary: the pipeline's denylist (`[pipeline] denylist`,
//! the security-scan step's format) is checked at every promotion against the SBOM
//! the run's build step produced and the run's git history. A package blocked after
//! the scan passed stops the promotion; a denylist updated while a run waits blocks it
//! too; an override lets it through on the record; a denylisted commit in the run's
//! ancestry (a real git repository) blocks; an unreadable or invalid denylist holds the
//! run (fail closed), naming the file and line; `explain` shows the block.

use std::path::Path;
use std::process::Command;

use crate::support::{Outcome, Project, normalize};

/// A fixed instant for the test clock, so that `explain` is the same every time.
const CLOCK: &str = "2026-11-30T07:00:00Z";

/// The OSV advisory of the scan's database: about another package, so the scan passes.
const ADVISORY: &str = r#"{"id": "GHSA-test-0001", "modified": "2026-11-20T00:00:00Z", "published": "2026-11-20T00:00:00Z", "summary": "prototype pollution", "affected": [{"package": {"ecosystem": "npm", "name": "lodash"}, "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}]}]}"#;

/// A small npm project: its lockfile pins left-pad 1.3.0.
const PACKAGE_JSON: &str =
    r#"{"name": "shop", "version": "1.4.2", "dependencies": {"left-pad": "^1.3.0"}}"#;
const PACKAGE_LOCK: &str = r#"{
  "name": "shop",
  "version": "1.4.2",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": {"name": "shop", "version": "1.4.2", "dependencies": {"left-pad": "^1.3.0"}},
    "node_modules/left-pad": {"version": "1.3.0", "resolved": "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz", "license": "WTFPL"}
  }
}
"#;

/// A denylist that blocks nothing this project carries.
const UNRELATED: &str = r#"packages = [
  { purl = "pkg:npm/event-stream", versions = "=3.3.6", reason = "malware" },
]
"#;

/// The same file once left-pad is blocked.
const LEFT_PAD_BLOCKED: &str = r#"packages = [
  { purl = "pkg:npm/event-stream", versions = "=3.3.6", reason = "malware" },
  { purl = "pkg:npm/left-pad", versions = "<2", reason = "unpublished upstream; use the vendored copy" },
]
"#;

/// build (builtin:build with its SBOM, and a security scan) → staging, optionally
/// behind an approval.
fn shop_pipeline(staging_gates: &str) -> String {
    format!(
        r#"
[pipeline]
name = "shop"
denylist = "denylist.toml"

[[stage]]
name = "build"

[[stage.step]]
id = "package"
uses = "builtin:build"
with = {{ command = ["true"], artifacts = ["app.bin"], provenance = false }}
[stage.step.grants]
exec = ["true"]
read = ["."]
write = ["target"]

[[stage.step]]
id = "scan"
uses = "builtin:security-scan"
needs = ["package"]
with = {{ lockfiles = ["package-lock.json"], database = "osv", max-database-age-days = 100000, secrets = {{ enabled = false }} }}
[stage.step.grants]
read = ["."]

[[stage]]
name = "staging"
{staging_gates}
[[stage.step]]
id = "deploy"
uses = "builtin:command"
with = {{ program = "sh", args = ["-c", "echo deployed >> {{markers}}/deploy"] }}
[stage.step.grants]
exec = ["sh"]
write = ["{{markers}}"]
"#
    )
}

const APPROVAL: &str = "[stage.gates.approval]\nrequired = 1\n";

/// A project of the npm shop with `denylist` as its denylist file.
fn shop(staging_gates: &str, denylist: &str) -> Project {
    let p = Project::new("");
    with_markers(&p, &shop_pipeline(staging_gates));
    p.write("package.json", PACKAGE_JSON);
    p.write("package-lock.json", PACKAGE_LOCK);
    p.write("app.bin", "the deliverable");
    p.write("osv/GHSA-test-0001.json", ADVISORY);
    p.write("markers/deploy", "");
    p.write("target/.keep", "");
    p.write("denylist.toml", denylist);
    p.write("clock", CLOCK);
    p
}

/// Write the pipeline file, its `{markers}` being the project's markers folder.
fn with_markers(p: &Project, pipeline: &str) {
    let markers = p.path().join("markers");
    p.write(
        "sluice.toml",
        &pipeline.replace("{markers}", &markers.display().to_string()),
    );
}

/// `sluice <args>` in the project with the test clock, a fast gate poll and an actor.
fn sluice(p: &Project, actor: &str, args: &[&str]) -> Outcome {
    let mut cmd: Command = p.command(args);
    cmd.env("SLUICE_TEST_CLOCK", p.path().join("clock"))
        .env("SLUICE_GATE_POLL_MS", "50")
        .env("SLUICE_ACTOR", actor);
    for var in [
        "GITHUB_ACTIONS",
        "GITHUB_SHA",
        "GITHUB_RUN_ID",
        "GITHUB_ACTOR",
        "CI_PIPELINE_ID",
        "GITHUB_STEP_SUMMARY",
    ] {
        cmd.env_remove(var);
    }
    Outcome::of(&mut cmd)
}

fn both(out: &Outcome) -> String {
    format!("{}{}", out.stdout, out.stderr)
}

/// The id of the only run so far.
fn only_run(p: &Project) -> String {
    let mut ids: Vec<String> = std::fs::read_dir(p.path().join(".sluice/runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids.pop().unwrap()
}

fn status_json(p: &Project, run: &str) -> serde_json::Value {
    let out = sluice(p, "tester", &["status", run, "--format", "json"]);
    out.expect_code(0);
    serde_json::from_str(&out.stdout).unwrap()
}

fn deployed(p: &Project) -> usize {
    std::fs::read_to_string(p.path().join("markers/deploy"))
        .unwrap()
        .lines()
        .count()
}

/// The recorded evaluation of the blocked-content gate in `sluice status --format json`.
fn blocked_gate(status: &serde_json::Value) -> serde_json::Value {
    status["gates"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["gate"] == "blocked-content")
        .cloned()
        .unwrap_or_else(|| panic!("no blocked-content gate in {status:#}"))
}

/// Digests of files whose bytes hold times and run ids (the SBOM) differ per run.
fn stable(text: &str, dir: &Path) -> String {
    let re = regex::Regex::new(r"sha256:[0-9a-f]{12}").unwrap();
    re.replace_all(&normalize(text, dir), "sha256:[DIGEST]")
        .into_owned()
}

#[test]
fn a_blocked_package_already_inside_a_built_artifact_stops_its_promotion_although_the_scan_passed()
{
    // The scan step has no denylist entry for left-pad: it passes. The pipeline's
    // denylist blocks it, and the promotion to staging checks the built SBOM.
    let p = shop("", LEFT_PAD_BLOCKED);
    let out = sluice(&p, "tester", &["run", "--format", "plain"]);
    out.expect_code(1);
    let shown = both(&out);
    assert!(shown.contains("gate `blocked-content` denied"), "{shown}");
    assert!(
        shown.contains("pkg:npm/left-pad@1.3.0")
            && shown.contains("package/pkg:npm/left-pad")
            && shown.contains("denylist.toml")
            && shown.contains("unpublished upstream; use the vendored copy"),
        "the reason names the package, the entry, the file and the entry's reason:\n{shown}"
    );
    let record = p.run_record();
    let scan = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "scan")
        .unwrap();
    assert_eq!(scan["status"], "passed", "{scan:#}");
    assert_eq!(deployed(&p), 0, "a blocked artifact does not enter staging");
    let id = only_run(&p);
    let status = status_json(&p, &id);
    assert_eq!(status["run"]["state"], "failed");
    let gate = blocked_gate(&status);
    assert_eq!(gate["decision"], "deny", "{gate:#}");
    let evidence = &gate["evidence"];
    assert_eq!(
        evidence["packages_checked"], 2,
        "shop itself and left-pad: {evidence:#}"
    );
    assert_eq!(evidence["sboms"][0]["path"], "target/sluice/sbom.cdx.json");
    assert_eq!(evidence["sboms"][0]["step"], "package");
    assert_eq!(evidence["denylists"][0]["file"], "denylist.toml");
    assert!(
        evidence["denylists"][0]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{evidence:#}"
    );
}

#[test]
fn an_sbom_changed_after_the_build_recorded_it_is_not_trusted() {
    let p = shop(APPROVAL, UNRELATED);
    sluice(&p, "tester", &["run", "--format", "plain", "--no-wait"]).expect_code(4);
    let id = only_run(&p);
    // Someone rewrites the SBOM without left-pad... or at all: its digest changed.
    let sbom = p.path().join("target/sluice/sbom.cdx.json");
    let text = std::fs::read_to_string(&sbom).unwrap();
    std::fs::write(&sbom, text.replace("left-pad", "right-pad")).unwrap();
    sluice(
        &p,
        "alice",
        &["approve", &id, "--stage", "staging", "--reason", "ok"],
    )
    .expect_code(0);
    let out = sluice(&p, "tester", &["resume", &id, "--format", "plain"]);
    out.expect_code(1);
    assert!(
        both(&out).contains("changed since the step reported it"),
        "{}",
        both(&out)
    );
    assert_eq!(deployed(&p), 0);
}

#[test]
fn updating_the_denylist_while_a_run_waits_blocks_it_too() {
    let p = shop(APPROVAL, UNRELATED);
    let out = sluice(&p, "tester", &["run", "--format", "plain", "--no-wait"]);
    out.expect_code(4);
    let id = only_run(&p);
    let gate = blocked_gate(&status_json(&p, &id));
    assert_eq!(gate["decision"], "allow", "nothing blocked yet: {gate:#}");

    // left-pad is blocked while the run waits for its approval.
    p.write("denylist.toml", LEFT_PAD_BLOCKED);
    let explain = sluice(&p, "tester", &["explain", &id]);
    explain.expect_code(0);
    insta::assert_snapshot!("explain_blocked", stable(&explain.stdout, p.path()));

    sluice(
        &p,
        "alice",
        &[
            "approve",
            &id,
            "--stage",
            "staging",
            "--reason",
            "release notes ok",
        ],
    )
    .expect_code(0);
    let out = sluice(&p, "tester", &["resume", &id, "--format", "plain"]);
    out.expect_code(1);
    assert!(
        both(&out).contains("gate `blocked-content` denied: blocked: pkg:npm/left-pad@1.3.0"),
        "{}",
        both(&out)
    );
    assert_eq!(deployed(&p), 0);
    assert_eq!(status_json(&p, &id)["run"]["state"], "failed");
}

#[test]
fn an_override_lets_a_blocked_artifact_through_on_the_record() {
    let p = shop(APPROVAL, UNRELATED);
    sluice(&p, "tester", &["run", "--format", "plain", "--no-wait"]).expect_code(4);
    let id = only_run(&p);
    p.write("denylist.toml", LEFT_PAD_BLOCKED);
    sluice(
        &p,
        "dana",
        &[
            "override",
            &id,
            "--gate",
            "blocked-content",
            "--stage",
            "staging",
            "--reason",
            "INC-12: left-pad is vendored, the fix ships in this run",
        ],
    )
    .expect_code(0);
    sluice(
        &p,
        "alice",
        &["approve", &id, "--stage", "staging", "--reason", "ok"],
    )
    .expect_code(0);
    let out = sluice(&p, "tester", &["resume", &id, "--format", "plain"]);
    out.expect_code(0);
    assert!(both(&out).contains("overridden by dana"), "{}", both(&out));
    assert_eq!(deployed(&p), 1);
    let status = status_json(&p, &id);
    let overrides = status["overrides"].as_array().unwrap();
    assert_eq!(overrides.len(), 1, "{status:#}");
    assert_eq!(overrides[0]["gate"], "blocked-content");
    assert!(!overrides[0]["used_at"].is_null(), "the override is used");
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_denylisted_git_commit_or_tag_in_the_runs_ancestry_blocks() {
    if crate::support::which("git").is_none() {
        panic!("git is needed for this test");
    }
    let p = Project::new("");
    with_markers(
        &p,
        r#"
[pipeline]
name = "forked"
denylist = ["denylist.toml"]

[[stage]]
name = "build"

[[stage.step]]
id = "compile"
uses = "builtin:command"
with = { program = "true" }
[stage.step.grants]
exec = ["true"]

[[stage]]
name = "prod"

[[stage.step]]
id = "deploy"
uses = "builtin:command"
with = { program = "sh", args = ["-c", "echo deployed >> {markers}/deploy"] }
[stage.step.grants]
exec = ["sh"]
write = ["{markers}"]
"#,
    );
    p.write("markers/deploy", "");
    p.write("clock", CLOCK);
    p.write(".gitignore", ".sluice/\nmarkers\nclock\n");
    let dir = p.path();
    git(dir, &["init", "-q", "-b", "main"]);
    p.write("src.txt", "a credential that leaked\n");
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "leak"]);
    let leaked = git(dir, &["rev-parse", "HEAD"]);
    p.write("src.txt", "rotated\n");
    git(dir, &["commit", "-q", "-am", "rotate"]);
    // The denylist names the leaked commit by a prefix, in the upstream repository.
    p.write(
        "denylist.toml",
        &format!(
            "git-refs = [{{ repo = \"https://github.com/acme/shop\", ref = \"{}\", reason = \"carries a leaked credential\" }}]\n",
            &leaked[..10]
        ),
    );
    git(dir, &["add", "denylist.toml"]);
    git(dir, &["commit", "-q", "-m", "denylist"]);
    let out = sluice(&p, "tester", &["run", "--format", "plain"]);
    out.expect_code(1);
    let shown = both(&out);
    assert!(
        shown.contains("gate `blocked-content` denied")
            && shown.contains(&format!(
                "{} is an ancestor of the run's commit",
                &leaked[..10]
            ))
            && shown.contains("carries a leaked credential"),
        "{shown}"
    );
    assert_eq!(deployed(&p), 0);
    let head = git(dir, &["rev-parse", "HEAD"]);
    let gate = blocked_gate(&status_json(&p, &only_run(&p)));
    assert_eq!(gate["evidence"]["commit"], head.as_str(), "{gate:#}");
    assert!(
        gate["evidence"]["ancestry"]
            .as_str()
            .unwrap()
            .starts_with("checked with git"),
        "{gate:#}"
    );

    // A commit that is not in the history does not block.
    p.write(
        "denylist.toml",
        "git-refs = [{ repo = \"https://github.com/acme/shop\", ref = \"0123456789abcdef\", reason = \"elsewhere\" }]\n",
    );
    git(dir, &["commit", "-q", "-am", "another denylist"]);
    let out = sluice(&p, "tester", &["run", "--format", "plain"]);
    out.expect_code(0);
    assert_eq!(deployed(&p), 1);

    // A tag blocks when the entry's repository is one of this repository's remotes;
    // the same tag name in another repository says nothing about this history.
    git(dir, &["tag", "v0.9-leaky", &leaked]);
    git(
        dir,
        &["remote", "add", "origin", "git@github.com:acme/shop.git"],
    );
    p.write(
        "denylist.toml",
        "git-refs = [{ repo = \"https://github.com/someone/else\", ref = \"v0.9-leaky\", reason = \"not ours\" }]\n",
    );
    git(dir, &["commit", "-q", "-am", "a tag of another repository"]);
    sluice(&p, "tester", &["run", "--format", "plain"]).expect_code(0);
    assert_eq!(deployed(&p), 2);
    p.write(
        "denylist.toml",
        "git-refs = [{ repo = \"https://github.com/acme/shop\", ref = \"v0.9-leaky\", reason = \"the leaky release\" }]\n",
    );
    git(dir, &["commit", "-q", "-am", "our tag"]);
    let out = sluice(&p, "tester", &["run", "--format", "plain"]);
    out.expect_code(1);
    assert!(
        both(&out).contains("v0.9-leaky is an ancestor of the run's commit"),
        "{}",
        both(&out)
    );
    assert_eq!(deployed(&p), 2);
}

#[test]
fn an_unreadable_or_invalid_denylist_fails_closed_naming_the_file() {
    let p = shop(
        "",
        "packages = [\n  { purl = \"pkg:npm/event-stream\", versions = \"=3.3.6\", reason = \"malware\" },\n  { purl = \"pkg:npm/left-pad\", versions = \"~1\", reason = \"typo\" },\n]\n",
    );
    let out = sluice(&p, "tester", &["run", "--format", "plain", "--no-wait"]);
    out.expect_code(4);
    let shown = both(&out);
    assert!(
        shown.contains("WAIT blocked-content")
            && shown.contains("denylist.toml: line 3, column 3: denylist `pkg:npm/left-pad`"),
        "the wait names the file and the line:\n{shown}"
    );
    assert_eq!(deployed(&p), 0, "an unusable denylist never allows");
    let id = only_run(&p);

    // Gone: still waiting, and saying so.
    std::fs::remove_file(p.path().join("denylist.toml")).unwrap();
    let out = sluice(
        &p,
        "tester",
        &["resume", &id, "--format", "plain", "--no-wait"],
    );
    out.expect_code(4);
    assert!(
        both(&out).contains("denylist.toml cannot be read"),
        "{}",
        both(&out)
    );
    assert_eq!(deployed(&p), 0);

    // Fixed: read again, and the run goes on.
    p.write("denylist.toml", UNRELATED);
    let out = sluice(
        &p,
        "tester",
        &["resume", &id, "--format", "plain", "--no-wait"],
    );
    out.expect_code(0);
    assert_eq!(deployed(&p), 1);
}

#[test]
fn an_artifact_without_an_sbom_is_denied_and_a_run_with_nothing_built_is_not() {
    // The deliverable is built without an SBOM: nothing shows it free of left-pad.
    let p = Project::new("");
    with_markers(
        &p,
        &shop_pipeline("").replace("provenance = false", "provenance = false, sbom = false"),
    );
    for (file, text) in [
        ("package.json", PACKAGE_JSON),
        ("package-lock.json", PACKAGE_LOCK),
        ("app.bin", "the deliverable"),
        ("osv/GHSA-test-0001.json", ADVISORY),
        ("markers/deploy", ""),
        ("target/.keep", ""),
        ("denylist.toml", UNRELATED),
        ("clock", CLOCK),
    ] {
        p.write(file, text);
    }
    let out = sluice(&p, "tester", &["run", "--format", "plain"]);
    out.expect_code(1);
    assert!(
        both(&out).contains("reported no CycloneDX SBOM (application/vnd.cyclonedx+json)"),
        "{}",
        both(&out)
    );
    assert_eq!(deployed(&p), 0);

    // A first stage that builds nothing: nothing to promote yet, so nothing blocked.
    let q = Project::new("");
    with_markers(
        &q,
        r#"
[pipeline]
name = "checks-first"
denylist = "denylist.toml"

[[stage]]
name = "lint"

[[stage.step]]
id = "lint"
uses = "builtin:command"
with = { program = "true" }
[stage.step.grants]
exec = ["true"]

[[stage]]
name = "build"

[[stage.step]]
id = "deploy"
uses = "builtin:command"
with = { program = "sh", args = ["-c", "echo deployed >> {markers}/deploy"] }
[stage.step.grants]
exec = ["sh"]
write = ["{markers}"]
"#,
    );
    q.write("markers/deploy", "");
    q.write("denylist.toml", UNRELATED);
    q.write("clock", CLOCK);
    let out = sluice(&q, "tester", &["run", "--format", "plain"]);
    out.expect_code(0);
    assert!(
        both(&out).contains("the run has no artifact yet"),
        "{}",
        both(&out)
    );
    assert_eq!(deployed(&q), 1);
}
