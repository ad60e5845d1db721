//! Plugin signatures end to end, through the binary: keys made with `sluice plugin
//! keygen`, components signed with `sluice plugin sign`, and a policy that requires
//! signatures in its protected stage: an unsigned plugin, a component changed after
//! signing, a signature by an untrusted key and one by a retired key are refused
//! (exit 2, before any step); a signed one runs; a rotated key takes over.

use std::path::Path;

use crate::lockfile::{change_component, stable_digests};
use crate::support::{Project, adversary, normalize};

const PIPELINE: &str = r#"
[pipeline]
name = "signed"
policy = "policy.toml"

[[stage]]
name = "release"
protected = true

[[stage.step]]
id = "publish"
uses = "plugins/adv.wasm"
with = { mode = "ok" }
"#;

/// A key made by `sluice plugin keygen`: its secret key file and public key.
struct Key {
    file: String,
    public: String,
}

fn keygen(p: &Project, id: &str) -> Key {
    let file = format!("{id}.key");
    let out = p.sluice(&["plugin", "keygen", "--out", &file, "--id", id]);
    out.expect_code(0);
    let public = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("public-key = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no public-key line in\n{}", out.stdout))
        .to_string();
    assert!(
        out.stdout.contains(&format!("id = \"{id}\"")),
        "{}",
        out.stdout
    );
    Key { file, public }
}

fn sign(p: &Project, key: &Key) {
    p.sluice(&["plugin", "sign", "plugins/adv.wasm", "--key", &key.file])
        .expect_code(0);
}

/// How the policy approves the plugins under `plugins/`.
enum Approve {
    /// Any digest pinned by the lock and signed by one of the policy's keys.
    ByKeys,
    /// This digest (`sha256:...`); `require-signature` still asks for a signature.
    ByDigest(String),
}

/// The digest `sluice lock` pinned for `plugins/adv.wasm`.
fn locked_digest(p: &Project) -> String {
    let lock = std::fs::read_to_string(p.path().join("sluice.lock")).expect("a lock");
    let re = regex::Regex::new(r"sha256:[0-9a-f]{64}").unwrap();
    re.find(&lock).expect("a digest").as_str().to_string()
}

/// The policy: the release stage is protected and requires signatures by `keys`
/// (`(id, public key, not-after)`); plugins under `plugins/` are approved as
/// `approve` says.
fn write_policy(p: &Project, keys: &[(&str, &Key, Option<&str>)], approve: &Approve) {
    let mut text =
        String::from("[policy]\nname = \"acme-release\"\n\n[protect]\nrequire-signature = true\n");
    for (id, key, not_after) in keys {
        text.push_str(&format!(
            "\n[[key]]\nid = \"{id}\"\npublic-key = \"{}\"\n",
            key.public
        ));
        if let Some(d) = not_after {
            text.push_str(&format!("not-after = {d}\n"));
        }
    }
    let ids: Vec<String> = keys.iter().map(|(id, _, _)| format!("\"{id}\"")).collect();
    let approval = match approve {
        Approve::ByKeys => format!("keys = [{}]", ids.join(", ")),
        Approve::ByDigest(d) => format!("digests = [\"{d}\"]"),
    };
    text.push_str(&format!(
        "\n[[plugin]]\nname = \"plugins/*\"\ntier = \"org\"\n{approval}\n"
    ));
    p.write("policy.toml", &text);
}

fn project() -> Project {
    let p = Project::new(PIPELINE);
    std::fs::create_dir_all(p.path().join("plugins")).unwrap();
    std::fs::copy(adversary(), p.path().join("plugins/adv.wasm")).unwrap();
    p
}

/// Key ids and digests replaced by stable names.
fn shown(p: &Project, text: &str) -> String {
    let text = stable_digests(&normalize(text, p.path()));
    regex::Regex::new(r"\b[0-9A-F]{16}\b")
        .unwrap()
        .replace_all(&text, "<KEYID>")
        .into_owned()
}

/// `sluice validate` at a fixed instant.
fn validate_at(p: &Project, instant: &str) -> crate::support::Outcome {
    p.write("clock", instant);
    crate::support::Outcome::of(
        p.command(&["validate"])
            .env("SLUICE_TEST_CLOCK", p.path().join("clock")),
    )
}

#[test]
fn an_unsigned_plugin_is_refused_in_a_protected_stage_and_a_signed_one_runs() {
    let p = project();
    let key = keygen(&p, "release-2026");
    p.sluice(&["lock"]).expect_code(0);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(p.path().join(&key.file))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the secret key is private");

    // Approved by its digest, but the policy requires a signature too.
    let digest = locked_digest(&p);
    write_policy(
        &p,
        &[("release-2026", &key, None)],
        &Approve::ByDigest(digest),
    );
    let unsigned = p.run(&[]);
    unsigned.expect_code(2);
    insta::assert_snapshot!("unsigned_refused", shown(&p, &unsigned.stderr));
    assert!(!p.path().join(".sluice/runs").exists(), "no step may run");
    // Approved by key, it is not approved at all without a signature.
    write_policy(&p, &[("release-2026", &key, None)], &Approve::ByKeys);
    p.sluice(&["validate"]).expect_code(2);

    let signed = p.sluice(&["plugin", "sign", "plugins/adv.wasm", "--key", &key.file]);
    signed.expect_code(0);
    insta::assert_snapshot!("sign_output", shown(&p, &signed.stdout));
    assert!(p.path().join("plugins/adv.wasm.minisig").is_file());
    // The standard minisign files: the public key file has the key on its second line.
    let pub_file = std::fs::read_to_string(p.path().join(format!("{}.pub", key.file))).unwrap();
    assert_eq!(pub_file.lines().nth(1), Some(key.public.as_str()));

    p.run(&[]).expect_code(0);
    assert_eq!(p.step("publish")["status"], "passed");
}

#[test]
fn a_component_changed_after_signing_is_refused() {
    let p = project();
    let key = keygen(&p, "release-2026");
    write_policy(&p, &[("release-2026", &key, None)], &Approve::ByKeys);
    sign(&p, &key);
    change_component(&p.path().join("plugins/adv.wasm"), "tampered");
    // Even re-locked at the new bytes, the signature is over the old ones: approved by
    // key, the plugin is not approved...
    p.sluice(&["lock"]).expect_code(0);
    p.sluice(&["validate"]).expect_code(2);
    // ...and even with its new digest approved, the signature the policy requires
    // does not verify.
    let digest = locked_digest(&p);
    write_policy(
        &p,
        &[("release-2026", &key, None)],
        &Approve::ByDigest(digest),
    );
    let out = p.sluice(&["validate"]);
    out.expect_code(2);
    insta::assert_snapshot!("tampered_refused", shown(&p, &out.stderr));
}

#[test]
fn a_signature_by_a_key_the_policy_does_not_trust_is_refused() {
    let p = project();
    let trusted = keygen(&p, "release-2026");
    let stranger = keygen(&p, "someone-else");
    p.sluice(&["lock"]).expect_code(0);
    let digest = locked_digest(&p);
    write_policy(
        &p,
        &[("release-2026", &trusted, None)],
        &Approve::ByDigest(digest),
    );
    sign(&p, &stranger);
    let out = p.sluice(&["validate"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("which the policy does not trust; trusted keys: `release-2026` ("),
        "{}",
        out.stderr
    );
    write_policy(&p, &[("release-2026", &trusted, None)], &Approve::ByKeys);
    p.sluice(&["validate"]).expect_code(2);
}

#[test]
fn a_rotated_key_takes_over_from_a_retired_one() {
    let p = project();
    let old = keygen(&p, "release-2026");
    p.sluice(&["lock"]).expect_code(0);
    sign(&p, &old);
    let now = "2026-11-29T10:00:00Z";
    // Before the retirement date, the old key's signature counts.
    write_policy(
        &p,
        &[("release-2026", &old, Some("2026-12-31"))],
        &Approve::ByKeys,
    );
    validate_at(&p, now).expect_code(0);

    // Rotation: the new key is added, the old one retired yesterday; the plugin is
    // still signed by the old key only.
    let new = keygen(&p, "release-2027");
    let rotated = [
        ("release-2026", &old, Some("2026-11-28")),
        ("release-2027", &new, None),
    ];
    write_policy(&p, &rotated, &Approve::ByKeys);
    validate_at(&p, now).expect_code(2);
    write_policy(&p, &rotated, &Approve::ByDigest(locked_digest(&p)));
    let retired = validate_at(&p, now);
    retired.expect_code(2);
    insta::assert_snapshot!("retired_key_refused", shown(&p, &retired.stderr));

    // Re-signed with the new key, it is accepted either way.
    sign(&p, &new);
    validate_at(&p, now).expect_code(0);
    write_policy(&p, &rotated, &Approve::ByKeys);
    validate_at(&p, now).expect_code(0);
}

#[test]
fn keygen_never_overwrites_a_key() {
    let p = project();
    keygen(&p, "release-2026");
    let again = p.sluice(&["plugin", "keygen", "--out", "release-2026.key", "--id", "x"]);
    again.expect_code(2);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    let bad = p.sluice(&["plugin", "keygen", "--out", "k2", "--id", "no spaces"]);
    bad.expect_code(2);
    assert!(bad.stderr.contains("is not a key id"), "{}", bad.stderr);
    assert!(!Path::new(&p.path().join("k2")).exists());
}

#[test]
fn a_signature_pushed_with_a_plugin_is_pulled_and_verified() {
    use crate::registry::Registry;
    let registry = Registry::start();
    let signed_ref = format!("oci://{}/acme/adv:1.0", registry.url());
    let unsigned_ref = format!("oci://{}/acme/adv:2.0", registry.url());
    let p = Project::new(&PIPELINE.replace("plugins/adv.wasm", &signed_ref));
    let cache = p.path().join("oci-cache");
    let with_cache = |cache: &Path, args: &[&str]| {
        crate::support::Outcome::of(p.command(args).env("SLUICE_OCI_CACHE", cache))
    };
    std::fs::copy(adversary(), p.path().join("signed.wasm")).unwrap();
    std::fs::copy(adversary(), p.path().join("unsigned.wasm")).unwrap();
    change_component(&p.path().join("unsigned.wasm"), "unsigned");
    let key = keygen(&p, "release-2026");
    p.sluice(&["plugin", "sign", "signed.wasm", "--key", &key.file])
        .expect_code(0);
    with_cache(&cache, &["plugin", "push", "signed.wasm", &signed_ref]).expect_code(0);
    with_cache(&cache, &["plugin", "push", "unsigned.wasm", &unsigned_ref]).expect_code(0);

    let policy = format!(
        "[policy]\nname = \"acme-release\"\n\n[protect]\nrequire-signature = true\n\n[[key]]\nid = \"release-2026\"\npublic-key = \"{}\"\n\n[[plugin]]\nname = \"oci://{}/acme/*\"\ntier = \"org\"\nkeys = [\"release-2026\"]\n",
        key.public,
        registry.url()
    );
    p.write("policy.toml", &policy);
    // A fresh cache: the component and its signature both come from the registry.
    with_cache(&cache, &["lock"]).expect_code(0);
    let fresh = p.path().join("fresh-cache");
    with_cache(&fresh, &["run", "--format", "plain"]).expect_code(0);
    assert_eq!(p.step("publish")["status"], "passed");

    // The same plugin pushed without a signature is refused.
    p.write(
        "sluice.toml",
        &PIPELINE.replace("plugins/adv.wasm", &unsigned_ref),
    );
    with_cache(&fresh, &["lock"]).expect_code(0);
    let out = with_cache(&fresh, &["validate"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("step `publish` in protected stage `release`"),
        "{}",
        out.stderr
    );
}
