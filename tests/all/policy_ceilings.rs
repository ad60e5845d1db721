//! Capability ceilings: grants above what the policy allows a stage kind or plugin
//! are refused before any step runs (exit 2), each at the grant itself, naming the
//! ceiling and where the policy declares it.

use crate::support::{Project, normalize};

const POLICY: &str = r#"[policy]
name = "acme-release"

[kinds]
build = ["build*", "compile"]

[[plugin]]
name = "builtin:*"
tier = "org"

[[ceiling]]
id = "build-net"
kinds = ["build"]
net = ["crates.io:443", "*.crates.io:443", "pypi.org:443"]
exec-deny = ["curl", "wget"]

[[ceiling]]
id = "no-secrets-in-tests"
stages = ["test*"]
secrets = false
env = ["RUST_*"]
"#;

fn project(toml: &str) -> Project {
    let p = Project::new(toml);
    p.write("policy/sluice-policy.toml", POLICY);
    p
}

fn refused(p: &Project) -> String {
    let out = p.sluice(&["validate"]);
    out.expect_code(2);
    let run = p.run(&[]);
    run.expect_code(2);
    assert_eq!(run.stderr, out.stderr);
    assert!(!p.path().join(".sluice/runs").exists(), "no step ran");
    normalize(&out.stderr, p.path())
}

fn step(stage: &str, grants: &str) -> String {
    format!(
        r#"[pipeline]
name = "web"
policy = "policy/sluice-policy.toml"

[[stage]]
name = "{stage}"

[[stage.step]]
id = "fetch"
uses = "builtin:command"
with = {{ program = "true" }}

[stage.step.grants]
{grants}
"#
    )
}

#[test]
fn exec_of_curl_in_a_build_stage_is_refused_by_a_ceiling() {
    let p = project(&step("build", "exec = [\"true\", \"/usr/bin/curl\"]"));
    insta::assert_snapshot!(refused(&p));
}

#[test]
fn net_beyond_the_package_registries_is_refused_in_a_build_stage() {
    let p = project(&step(
        "compile",
        "net = [\"https://crates.io\", \"static.crates.io:443\", \"https://evil.example\", \"pypi.org:80\"]",
    ));
    insta::assert_snapshot!(refused(&p));
}

#[test]
fn ceilings_bound_only_the_steps_they_select() {
    // The same grants in a stage that is neither a build nor a test stage pass.
    let p = project(&step(
        "package",
        "exec = [\"true\", \"curl\"]\nnet = [\"https://evil.example\"]\nenv = [\"HOME\"]",
    ));
    p.sluice(&["validate"]).expect_code(0);
}

#[test]
fn secrets_and_env_above_a_ceiling_are_refused() {
    let toml = step(
        "test-unit",
        "env = [\"RUST_LOG\", \"AWS_SECRET_ACCESS_KEY\"]\nsecrets = [\"token\"]",
    )
    .replace(
        "[[stage]]",
        "[secrets]\ntoken = { env = \"SLUICE_TEST_TOKEN\" }\n\n[[stage]]",
    );
    let p = project(&toml);
    insta::assert_snapshot!(refused(&p));
}
