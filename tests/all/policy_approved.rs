//! Approved plugins: a protected stage (marked, named by the policy, or deploying to
//! protected targets) may use only approved plugins of an allowed tier, pinned by
//! digest; refusals come at `validate` (exit 2), at the step's `uses`.

use crate::support::{Project, adversary, normalize};

/// A project with the adversary fixture copied to `plugins/probe.wasm`, the pipeline
/// `toml` and the policy `policy`.
fn project(toml: &str, policy: &str) -> Project {
    let p = Project::new(toml);
    std::fs::create_dir_all(p.path().join("plugins")).unwrap();
    std::fs::copy(adversary(), p.path().join("plugins/probe.wasm")).unwrap();
    p.write("policy/sluice-policy.toml", policy);
    p
}

/// `sha256:HEX` of the fixture.
fn probe_digest() -> String {
    use sha2::Digest as _;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(std::fs::read(adversary()).unwrap()))
    )
}

const BUILTINS_ONLY: &str = r#"[policy]
name = "acme-release"
tiers = ["org", "team"]

[protect]
stages = ["prod*"]
targets = ["live*"]

[[plugin]]
name = "builtin:*"
tier = "org"
"#;

/// A pipeline with the probe in stage `stage` (and a built-in in `prod`).
fn probe_in(stage: &str) -> String {
    format!(
        r#"[pipeline]
name = "web"
policy = "policy/sluice-policy.toml"

[[stage]]
name = "{stage}"

[[stage.step]]
id = "probe"
uses = "plugins/probe.wasm"
with = {{ mode = "ok" }}

[[stage]]
name = "prod-eu"

[[stage.step]]
id = "ship"
uses = "builtin:command"
with = {{ program = "true" }}

[stage.step.grants]
exec = ["true"]
"#
    )
}

fn refused_at_validate(p: &Project) -> String {
    let out = p.sluice(&["validate"]);
    out.expect_code(2);
    let run = p.run(&[]);
    run.expect_code(2);
    assert!(!p.path().join(".sluice/runs").exists(), "no step ran");
    normalize(&out.stderr, p.path()).replace(&probe_digest(), "[DIGEST]")
}

#[test]
fn unapproved_plugin_in_protected_stage_is_refused_at_validate() {
    let p = project(&probe_in("prod"), BUILTINS_ONLY);
    insta::assert_snapshot!(refused_at_validate(&p));
}

#[test]
fn unapproved_plugin_in_unprotected_stage_passes() {
    let p = project(&probe_in("test"), BUILTINS_ONLY);
    p.sluice(&["validate"]).expect_code(0);
    p.run(&[]).expect_code(0);
}

#[test]
fn unapproved_plugin_is_refused_everywhere_when_the_policy_says_so() {
    let policy = BUILTINS_ONLY.replace(
        "targets = [\"live*\"]",
        "targets = [\"live*\"]\napproved-only = \"everywhere\"",
    );
    let p = project(&probe_in("test"), &policy);
    let err = refused_at_validate(&p);
    assert!(
        err.contains("sluice.toml:10:8: step `probe` in stage `test`"),
        "{err}"
    );
    assert!(err.contains("`approved-only = \"everywhere\"`"), "{err}");
}

#[test]
fn stage_deploying_to_protected_targets_is_protected() {
    let toml = r#"[pipeline]
name = "web"
policy = "policy/sluice-policy.toml"

[[target]]
name = "live-1"
group = "live"
local = ".fleet/live-1"

[[stage]]
name = "rollout"

[[stage.step]]
id = "probe"
uses = "plugins/probe.wasm"
with = { mode = "ok" }

[stage.step.grants]
targets = ["live"]
"#;
    let p = project(toml, BUILTINS_ONLY);
    let err = refused_at_validate(&p);
    assert!(
        err.contains(
            "step `probe` in protected stage `rollout`: plugin `plugins/probe.wasm` is not approved"
        ),
        "{err}"
    );
    // The same stage granted a target the policy does not protect is not protected.
    let p = project(&toml.replace("live", "staging"), BUILTINS_ONLY);
    p.sluice(&["validate"]).expect_code(0);
}

#[test]
fn unpinned_file_plugin_is_refused_until_its_digest_is_in_the_policy() {
    let approved =
        format!("{BUILTINS_ONLY}\n[[plugin]]\nname = \"plugins/*.wasm\"\ntier = \"org\"\n");
    let p = project(&probe_in("prod"), &approved);
    insta::assert_snapshot!(refused_at_validate(&p));
    let pinned = format!("{approved}digests = [\"{}\"]\n", probe_digest());
    p.write("policy/sluice-policy.toml", &pinned);
    p.sluice(&["validate"]).expect_code(0);
    p.run(&[]).expect_code(0);
}

#[test]
fn plugin_of_a_tier_not_allowed_in_protected_stages_is_refused() {
    let policy = format!(
        "{}\n[[plugin]]\nname = \"plugins/probe.wasm\"\ntier = \"team\"\ndigests = [\"{}\"]\n",
        BUILTINS_ONLY.replace(
            "targets = [\"live*\"]",
            "targets = [\"live*\"]\ntiers = [\"org\"]"
        ),
        probe_digest()
    );
    let p = project(&probe_in("prod"), &policy);
    insta::assert_snapshot!(refused_at_validate(&p));
    // In an unprotected stage the team tier is fine.
    let p = project(&probe_in("test"), &policy);
    p.sluice(&["validate"]).expect_code(0);
}

#[test]
fn plugin_approved_by_key_is_accepted_once_locked_and_signed() {
    let p = project(&probe_in("prod"), BUILTINS_ONLY);
    p.sluice(&[
        "plugin",
        "keygen",
        "--out",
        "release.key",
        "--id",
        "release-2026",
    ])
    .expect_code(0);
    let public = std::fs::read_to_string(p.path().join("release.key.pub")).unwrap();
    let public = public.lines().nth(1).unwrap();
    let policy = BUILTINS_ONLY.replace(
        "targets = [\"live*\"]",
        "targets = [\"live*\"]\nrequire-signature = true",
    ) + &format!(
        "\n[[key]]\nid = \"release-2026\"\npublic-key = \"{public}\"\n\n[[plugin]]\nname = \"plugins/probe.wasm\"\ntier = \"org\"\nkeys = [\"release-2026\"]\n"
    );
    p.write("policy/sluice-policy.toml", &policy);
    // Neither locked nor signed: not pinned.
    let err = refused_at_validate(&p);
    assert!(
        err.contains("is approved (policy/sluice-policy.toml:"),
        "{err}"
    );
    assert!(err.contains("not both pinned"), "{err}");
    // Locked but not signed: still not pinned.
    p.sluice(&["lock"]).expect_code(0);
    let err = refused_at_validate(&p);
    assert!(err.contains("not both pinned"), "{err}");
    // Locked and signed by the entry's key: pinned, and signed as required.
    p.sluice(&[
        "plugin",
        "sign",
        "plugins/probe.wasm",
        "--key",
        "release.key",
    ])
    .expect_code(0);
    p.sluice(&["validate"]).expect_code(0);
    p.run(&[]).expect_code(0);
}

#[test]
fn unsigned_plugin_pinned_by_digest_is_refused_where_signatures_are_required() {
    let policy = format!(
        "{}\n[[key]]\nid = \"release-2026\"\npublic-key = \"RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3\"\n\n[[plugin]]\nname = \"plugins/probe.wasm\"\ntier = \"org\"\ndigests = [\"{}\"]\n",
        BUILTINS_ONLY.replace(
            "targets = [\"live*\"]",
            "targets = [\"live*\"]\nrequire-signature = true"
        ),
        probe_digest()
    );
    let p = project(&probe_in("prod"), &policy);
    insta::assert_snapshot!(refused_at_validate(&p));
}
