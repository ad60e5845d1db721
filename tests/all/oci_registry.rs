//! Plugins in a real OCI registry (Debian's docker-registry on a loopback port, see
//! `registry.rs`): `sluice plugin push`, a pipeline pulling by tag and by digest,
//! the cache used with the registry gone, a tampered blob refused, a missing tag and
//! an artifact that is not a plugin refused at `uses`.

use std::path::Path;

use crate::registry::{Registry, sha256_digest};
use crate::support::{Outcome, Project, normalize};

/// The example Rust plugin, built by the tests' build script.
fn component() -> &'static str {
    sluice_tests::FILE_BUDGET
}

/// A pipeline with one step running `uses` on a small file (it passes).
fn pipeline(uses: &str) -> Project {
    let p = Project::new(&format!(
        r#"[pipeline]
name = "oci"

[[stage]]
name = "check"

[[stage.step]]
id = "sizes"
uses = "{uses}"
with = {{ files = ["small.txt"], max-bytes = 100 }}

[stage.step.grants]
read = ["."]
"#
    ));
    p.write("small.txt", "tiny");
    p
}

/// `sluice ARGS` in the project with the OCI cache `cache`.
fn sluice(p: &Project, cache: &Path, args: &[&str]) -> Outcome {
    Outcome::of(
        p.command(args)
            .env("SLUICE_OCI_CACHE", cache)
            .env("SOURCE_DATE_EPOCH", "1796083200"),
    )
}

/// Push the example plugin to `repository:tag`; the manifest digest it printed.
fn push(registry: &Registry, repository: &str, tag: &str, cache: &Path) -> (Outcome, String) {
    let p = Project::new("");
    let reference = format!("oci://{}/{repository}:{tag}", registry.url());
    let out = sluice(&p, cache, &["plugin", "push", component(), &reference]);
    out.expect_code(0);
    let manifest = out
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("manifest:"))
        .unwrap_or_else(|| panic!("no manifest digest in:\n{}", out.stdout))
        .trim()
        .to_string();
    (out, manifest)
}

/// Text with the registry's address and every digest replaced.
fn scrub(text: &str, registry: &Registry, project: &Path) -> String {
    let text = normalize(text, project).replace(&registry.url(), "[REGISTRY]");
    let digests = regex::Regex::new(r"sha256[:-][0-9a-f]{64}").unwrap();
    digests.replace_all(&text, "[DIGEST]").into_owned()
}

#[test]
fn a_pushed_plugin_runs_by_tag_and_by_digest_and_from_the_cache_without_the_registry() {
    let mut registry = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    let (out, manifest_digest) = push(&registry, "acme/budget", "1.0", cache.path());
    insta::assert_snapshot!(
        "plugin_push_output",
        scrub(&out.stdout, &registry, Path::new("/nonexistent"))
    );

    // The manifest as the registry serves it: the CNCF wasm layout, describe() as
    // annotations.
    let manifest = registry.manifest("acme/budget", "1.0");
    let wasm = std::fs::read(component()).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest:#}");
    assert_eq!(layers[0]["mediaType"], "application/wasm");
    assert_eq!(layers[0]["digest"], sha256_digest(&wasm));
    assert_eq!(layers[0]["size"], wasm.len());
    let a = &manifest["annotations"];
    assert_eq!(a["org.opencontainers.image.title"], "file-budget");
    assert_eq!(a["dev.sluice.plugin.name"], "file-budget");
    assert_eq!(a["dev.sluice.plugin.world"], "step");
    assert_eq!(
        a["org.opencontainers.image.created"],
        "2026-12-01T00:00:00Z"
    );
    assert!(
        a["org.opencontainers.image.version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{a:#}"
    );
    assert_eq!(
        a["org.opencontainers.image.description"],
        a["dev.sluice.plugin.summary"]
    );
    let caps: serde_json::Value =
        serde_json::from_str(a["dev.sluice.plugin.capabilities"].as_str().unwrap()).unwrap();
    assert_eq!(caps, serde_json::json!(["read-files"]));
    let schema: serde_json::Value =
        serde_json::from_str(a["dev.sluice.plugin.config-schema"].as_str().unwrap()).unwrap();
    assert!(schema["properties"]["max-bytes"].is_object(), "{schema:#}");

    // Its config blob.
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let (status, _, body) = registry.get(
        &format!("/v2/acme/budget/blobs/{config_digest}"),
        "application/vnd.wasm.config.v0+json",
    );
    assert_eq!(status, 200);
    let config: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2");
    assert_eq!(
        config["layerDigests"],
        serde_json::json!([sha256_digest(&wasm)])
    );
    assert!(
        config["component"]["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("sluice:plugin/step@0.1.")),
        "{config:#}"
    );
    assert!(
        config["component"]["exports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().is_some_and(|e| e.starts_with("sluice:plugin/"))),
        "{config:#}"
    );

    // By tag, with a cache of its own.
    let by_tag = pipeline(&format!("oci://{}/acme/budget:1.0", registry.url()));
    let run_cache = tempfile::tempdir().unwrap();
    sluice(&by_tag, run_cache.path(), &["run", "--format", "plain"]).expect_code(0);
    assert_eq!(by_tag.step("sizes")["status"], "passed");
    let cached = run_cache
        .path()
        .join("blobs/sha256")
        .join(sha256_digest(&wasm).trim_start_matches("sha256:"));
    assert_eq!(
        std::fs::read(&cached).unwrap(),
        wasm,
        "the component is cached by digest"
    );

    // By digest, into another empty cache.
    let pinned = format!("oci://{}/acme/budget:1.0@{manifest_digest}", registry.url());
    let by_digest = pipeline(&pinned);
    let digest_cache = tempfile::tempdir().unwrap();
    sluice(
        &by_digest,
        digest_cache.path(),
        &["run", "--format", "plain"],
    )
    .expect_code(0);
    assert_eq!(by_digest.step("sizes")["status"], "passed");
    // The component's own digest works as a pin too.
    let by_component = pipeline(&format!(
        "oci://{}/acme/budget@{}",
        registry.url(),
        sha256_digest(&wasm)
    ));
    sluice(
        &by_component,
        tempfile::tempdir().unwrap().path(),
        &["validate"],
    )
    .expect_code(0);

    // The registry gone: a pinned plugin comes from the cache alone...
    registry.stop();
    let again = pipeline(&pinned);
    sluice(&again, digest_cache.path(), &["run", "--format", "plain"]).expect_code(0);
    assert_eq!(again.step("sizes")["status"], "passed");
    // ...while a tag must ask the registry, and says it cannot reach it.
    let out = sluice(&by_tag, run_cache.path(), &["validate"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .contains(&format!("cannot reach the registry at {}", registry.url())),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("sluice.toml:9:8"), "{}", out.stderr);
}

#[test]
fn a_tampered_blob_in_the_registry_is_refused() {
    let registry = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    push(&registry, "acme/budget", "1.0", cache.path());
    let wasm = std::fs::read(component()).unwrap();
    let layer = sha256_digest(&wasm);
    // Same length, other bytes: only the digest can tell.
    let blob = registry.blob_path(&layer);
    let mut tampered = std::fs::read(&blob).unwrap();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    std::fs::write(&blob, &tampered).unwrap();

    let p = pipeline(&format!("oci://{}/acme/budget:1.0", registry.url()));
    let fresh = tempfile::tempdir().unwrap();
    let out = sluice(&p, fresh.path(), &["run", "--format", "plain"]);
    out.expect_code(2);
    assert!(out.stderr.contains(&layer), "{}", out.stderr);
    assert!(out.stderr.contains("tampered"), "{}", out.stderr);
    assert!(!p.path().join(".sluice/runs").exists(), "no step ran");
    // Nothing of it is left in the cache.
    let blobs = fresh.path().join("blobs/sha256");
    let left: Vec<_> = std::fs::read_dir(&blobs)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    insta::assert_snapshot!(
        "tampered_blob_refused",
        scrub(&out.stderr, &registry, p.path())
    );
}

#[test]
fn a_tag_the_registry_lacks_is_refused_at_uses() {
    let registry = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    push(&registry, "acme/budget", "1.0", cache.path());
    let p = pipeline(&format!("oci://{}/acme/budget:9.9", registry.url()));
    let out = sluice(&p, cache.path(), &["validate"]);
    out.expect_code(2);
    insta::assert_snapshot!(
        "unknown_tag_refused",
        scrub(&out.stderr, &registry, p.path())
    );
}

#[test]
fn an_artifact_that_is_not_a_plugin_is_refused_with_its_media_types() {
    let registry = Registry::start();
    let config = registry.put_blob(
        "acme/image",
        b"{\"architecture\":\"amd64\",\"os\":\"linux\"}",
    );
    let layer = registry.put_blob("acme/image", b"not a tarball, not a component");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 38},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 30}],
    });
    registry.put_manifest(
        "acme/image",
        "1.0",
        "application/vnd.oci.image.manifest.v1+json",
        &manifest.to_string(),
    );
    let p = pipeline(&format!("oci://{}/acme/image:1.0", registry.url()));
    let cache = tempfile::tempdir().unwrap();
    let out = sluice(&p, cache.path(), &["validate"]);
    out.expect_code(2);
    insta::assert_snapshot!(
        "not_a_plugin_refused",
        scrub(&out.stderr, &registry, p.path())
    );
}

#[test]
fn plugin_info_describes_a_plugin_in_a_registry() {
    let registry = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    push(&registry, "acme/budget", "1.0", cache.path());
    let p = Project::new("");
    let reference = format!("oci://{}/acme/budget:1.0", registry.url());
    let out = sluice(&p, cache.path(), &["plugin", "info", "--json", &reference]);
    out.expect_code(0);
    let info: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(info["name"], "file-budget");
    assert_eq!(info["reference"], reference);
    let wasm = std::fs::read(component()).unwrap();
    assert_eq!(info["digest"], sha256_digest(&wasm));
}

#[test]
fn pushing_a_file_that_is_not_a_plugin_is_refused() {
    let registry = Registry::start();
    let p = Project::new("");
    p.write("junk.wasm", "not a component");
    let cache = tempfile::tempdir().unwrap();
    let reference = format!("oci://{}/acme/junk:1.0", registry.url());
    let out = sluice(
        &p,
        cache.path(),
        &["plugin", "push", "junk.wasm", &reference],
    );
    out.expect_code(2);
    assert!(
        out.stderr.contains("is not a plugin this runner loads"),
        "{}",
        out.stderr
    );
    let (status, _, _) = registry.get(
        "/v2/acme/junk/manifests/1.0",
        "application/vnd.oci.image.manifest.v1+json",
    );
    assert_eq!(status, 404, "nothing was pushed");
}

/// A protected stage running `uses`, under the policy in `policy.toml` (or `policy`).
fn protected_pipeline(uses: &str, policy: &str) -> Project {
    let p = Project::new(&format!(
        r#"[pipeline]
name = "release"
policy = "{policy}"

[[stage]]
name = "prod"
protected = true

[[stage.step]]
id = "sizes"
uses = "{uses}"
with = {{ files = ["small.txt"], max-bytes = 100 }}

[stage.step.grants]
read = ["."]
"#
    ));
    p.write("small.txt", "tiny");
    p
}

/// A policy requiring signatures by `public_key` (id `release-2026`) in protected
/// stages, approving any plugin of `oci://REGISTRY/acme/` signed by it.
fn signature_policy(registry: &Registry, public_key: &str) -> String {
    format!(
        r#"[policy]
name = "acme-release"
version = "2026.11"

[protect]
require-signature = true

[[key]]
id = "release-2026"
public-key = "{public_key}"

[[plugin]]
name = "oci://{}/acme/*"
tier = "org"
keys = ["release-2026"]
"#,
        registry.url()
    )
}

#[test]
fn a_signature_pushed_with_a_plugin_is_pulled_and_verified_and_an_unsigned_push_is_refused() {
    let registry = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    let keys = Project::new("");
    std::fs::create_dir_all(keys.path().join("plugins")).unwrap();
    std::fs::copy(component(), keys.path().join("plugins/budget.wasm")).unwrap();
    let out = sluice(
        &keys,
        cache.path(),
        &[
            "plugin",
            "keygen",
            "--out",
            "release.key",
            "--id",
            "release-2026",
        ],
    );
    out.expect_code(0);
    let public_key = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("public-key = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no public key in\n{}", out.stdout))
        .to_string();

    // Pushed before signing: no signature travels with it.
    let unsigned_ref = format!("oci://{}/acme/unsigned:1.0", registry.url());
    let out = sluice(
        &keys,
        cache.path(),
        &["plugin", "push", "plugins/budget.wasm", &unsigned_ref],
    );
    out.expect_code(0);
    assert!(!out.stdout.contains("signature:"), "{}", out.stdout);
    let unsigned_pin = pinned_reference(&out.stdout);

    sluice(
        &keys,
        cache.path(),
        &[
            "plugin",
            "sign",
            "plugins/budget.wasm",
            "--key",
            "release.key",
        ],
    )
    .expect_code(0);
    let signed_ref = format!("oci://{}/acme/signed:1.0", registry.url());
    let out = sluice(
        &keys,
        cache.path(),
        &["plugin", "push", "plugins/budget.wasm", &signed_ref],
    );
    out.expect_code(0);
    let wasm = std::fs::read(component()).unwrap();
    let hex = sha256_digest(&wasm)
        .trim_start_matches("sha256:")
        .to_string();
    assert!(
        out.stdout
            .contains(&format!("acme/signed:sha256-{hex}.sig")),
        "{}",
        out.stdout
    );
    let signed_pin = pinned_reference(&out.stdout);
    let sig_manifest = registry.manifest("acme/signed", &format!("sha256-{hex}.sig"));
    assert_eq!(
        sig_manifest["layers"][0]["mediaType"],
        "application/vnd.sluice.signature.minisign"
    );

    // Pulled by a pipeline whose policy requires signatures: the signature comes along.
    let signed = protected_pipeline(&signed_pin, "policy.toml");
    signed.write("policy.toml", &signature_policy(&registry, &public_key));
    let run_cache = tempfile::tempdir().unwrap();
    sluice(&signed, run_cache.path(), &["run", "--format", "plain"]).expect_code(0);
    assert_eq!(signed.step("sizes")["status"], "passed");
    assert!(
        run_cache
            .path()
            .join(format!("blobs/sha256/{hex}.minisig"))
            .is_file(),
        "the signature is cached beside the component"
    );

    // The same bytes pushed unsigned: refused in the protected stage.
    let unsigned = protected_pipeline(&unsigned_pin, "policy.toml");
    unsigned.write("policy.toml", &signature_policy(&registry, &public_key));
    let out = sluice(
        &unsigned,
        tempfile::tempdir().unwrap().path(),
        &["validate"],
    );
    out.expect_code(2);
    assert!(out.stderr.contains("sluice.toml:11:8"), "{}", out.stderr);
}

/// The `pin it with:` reference `plugin push` or `policy push` printed.
fn pinned_reference(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("pin it with: "))
        .unwrap_or_else(|| panic!("no pin in\n{stdout}"))
        .to_string()
}

#[test]
fn a_policy_pushed_to_the_registry_is_applied_by_reference() {
    let registry = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    let author = Project::new("");
    // Approves only builtin plugins: the example plugin is unapproved in `prod`.
    author.write(
        "policy.toml",
        "[policy]\nname = \"acme-release\"\nversion = \"2026.11\"\n\n[[plugin]]\nname = \"builtin:*\"\ntier = \"org\"\n",
    );
    let reference = format!("oci://{}/acme/policy:2026.11", registry.url());
    let out = sluice(
        &author,
        cache.path(),
        &["policy", "push", "policy.toml", &reference],
    );
    out.expect_code(0);
    let pin = pinned_reference(&out.stdout);
    let manifest = registry.manifest("acme/policy", "2026.11");
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.sluice.policy.v1+toml"
    );
    assert_eq!(
        manifest["annotations"]["dev.sluice.policy.name"],
        "acme-release"
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.version"],
        "2026.11"
    );

    let p = protected_pipeline(component(), &reference);
    let out = sluice(&p, cache.path(), &["validate"]);
    out.expect_code(2);
    assert!(out.stderr.contains("acme-release"), "{}", out.stderr);
    // Pinned by digest, the policy comes from the cache when it is there.
    let pinned = protected_pipeline(component(), &pin);
    sluice(&pinned, cache.path(), &["validate"]).expect_code(2);

    // A policy file with an error is not pushed.
    author.write("broken.toml", "[policy]\nnam = \"x\"\n");
    let broken = format!("oci://{}/acme/policy:broken", registry.url());
    let out = sluice(
        &author,
        cache.path(),
        &["policy", "push", "broken.toml", &broken],
    );
    out.expect_code(2);
    assert!(out.stderr.contains("broken.toml:2:1"), "{}", out.stderr);
    let (status, _, _) = registry.get(
        "/v2/acme/policy/manifests/broken",
        "application/vnd.oci.image.manifest.v1+json",
    );
    assert_eq!(status, 404, "nothing was pushed");
}

#[test]
fn the_lock_pins_a_tag_to_its_component_and_a_moved_tag_is_not_followed() {
    let registry = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    push(&registry, "acme/budget", "1.0", cache.path());
    let p = pipeline(&format!("oci://{}/acme/budget:1.0", registry.url()));
    sluice(&p, cache.path(), &["lock"]).expect_code(0);
    let lock = std::fs::read_to_string(p.path().join("sluice.lock")).unwrap();
    let wasm = std::fs::read(component()).unwrap();
    assert!(lock.contains(&sha256_digest(&wasm)), "{lock}");

    // The tag moves to another component (one whose config does not fit the step).
    let other = Project::new("");
    let out = sluice(
        &other,
        cache.path(),
        &[
            "plugin",
            "push",
            crate::support::adversary(),
            &format!("oci://{}/acme/budget:1.0", registry.url()),
        ],
    );
    out.expect_code(0);

    // Locked, the run pulls the locked component by its digest, into an empty cache.
    let fresh = tempfile::tempdir().unwrap();
    sluice(&p, fresh.path(), &["run", "--format", "plain"]).expect_code(0);
    assert_eq!(p.step("sizes")["status"], "passed");
    // Unlocked, it follows the tag (and the other component refuses the config).
    std::fs::remove_file(p.path().join("sluice.lock")).unwrap();
    sluice(&p, tempfile::tempdir().unwrap().path(), &["validate"]).expect_code(2);
}
