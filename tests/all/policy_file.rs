//! The policy file (`[pipeline] policy = "PATH"`): read and checked like sluice.toml,
//! every problem at file:line:col before any step runs (exit 2); a sound policy is
//! named by `sluice validate`.

use crate::support::{Project, normalize};

const PIPELINE: &str = r#"[pipeline]
name = "web"
policy = "policy/sluice-policy.toml"

[[stage]]
name = "build"

[[stage.step]]
id = "compile"
uses = "builtin:command"
with = { program = "true" }

[stage.step.grants]
exec = ["true"]
"#;

/// `sluice validate` and `sluice run` on a project whose policy is `policy`: both
/// exit 2 with the same errors, and nothing runs.
fn refused(policy: &str) -> String {
    let p = Project::new(PIPELINE);
    p.write("policy/sluice-policy.toml", policy);
    let out = p.sluice(&["validate"]);
    out.expect_code(2);
    let run = p.run(&[]);
    run.expect_code(2);
    assert_eq!(run.stderr, out.stderr);
    assert!(!p.path().join(".sluice/runs").exists(), "nothing ran");
    normalize(&out.stderr, p.path())
}

#[test]
fn policy_file_errors_are_reported_at_once_with_their_positions() {
    insta::assert_snapshot!(refused(
        r#"[policy]
name = "acme-release"
tiers = ["org", "team"]

[protect]
tiers = ["orgs"]
approved-only = "always"

[[key]]
id = "release-2026"
public-key = "RWQnot-a-key"

[[plugin]]
name = "builtin:*"
tier = "org"
keys = ["release-2025"]

[[plugin]]
name = "plugins/lint.wasm"
tier = "team"
digests = ["sha256:1234"]

[[check]]
id = "prod-bake"
builtin = "production-bake"
with = { duration = "1h" }
message = "Production stages bake at least 1h."
warn-from = 2027-02-01
enforce-from = 2027-01-15

[[exemption]]
check = "prod-bak"
pipeline = "legacy-*"
reason = "bake monitors land in Q1"
approved-by = "dana@acme.example"
"#
    ));
}

#[test]
fn policy_file_unknown_key_suggests_the_right_one() {
    insta::assert_snapshot!(refused(
        "[policy]\nname = \"acme-release\"\n\n[protect]\nstage = [\"prod\"]\n"
    ));
}

#[test]
fn policy_file_missing_is_a_configuration_error() {
    let p = Project::new(PIPELINE);
    let out = p.sluice(&["validate"]);
    out.expect_code(2);
    let shown = normalize(&out.stderr, p.path());
    assert!(
        shown.contains("cannot read the policy policy/sluice-policy.toml"),
        "{shown}"
    );
}

#[test]
fn policy_file_sound_validates_and_names_the_policy() {
    let p = Project::new(PIPELINE);
    p.write(
        "policy/sluice-policy.toml",
        r#"[policy]
name = "acme-release"
version = "2026.11"

[protect]
stages = ["prod*"]

[[plugin]]
name = "builtin:*"
tier = "org"
"#,
    );
    let out = p.sluice(&["validate"]);
    out.expect_code(0);
    insta::assert_snapshot!(normalize(&out.stdout, p.path()));
    // The run goes ahead under the policy.
    p.run(&[]).expect_code(0);
}
