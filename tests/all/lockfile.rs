//! `sluice.lock` end to end: `sluice lock` writes it, `run` and `validate` refuse a
//! component whose digest differs from it (exit 2, with the command that updates it),
//! `sluice lock --update` re-pins, and `--check` fails a stale lock for CI.

use std::collections::HashMap;
use std::path::Path;

use crate::support::{Project, adversary, normalize};

const TWO_PLUGINS: &str = r#"
[pipeline]
name = "locked"

[[stage]]
name = "build"

[[stage.step]]
id = "a"
uses = "plugins/adv.wasm"
with = { mode = "ok" }

[[stage.step]]
id = "b"
uses = "./plugins/other.wasm"
with = { mode = "ok" }

[[stage.step]]
id = "again"
uses = "plugins/adv.wasm"
with = { mode = "ok" }
"#;

/// Built-ins are pinned by the runner binary, never locked.
const WITH_A_BUILTIN: &str = r#"
[[stage.step]]
id = "lint"
uses = "builtin:lint"
with = { tool = "clippy", path = "." }
"#;

/// Append a custom section to a component: still a valid component, other bytes.
pub fn change_component(path: &Path, note: &str) {
    let name = b"sluice-test";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(note.as_bytes());
    assert!(section.len() < 128, "one-byte LEB128 size");
    let mut bytes = std::fs::read(path).expect("read the component");
    bytes.push(0);
    bytes.push(section.len() as u8);
    bytes.extend_from_slice(&section);
    std::fs::write(path, bytes).expect("write the component");
}

/// A project with the adversary fixture copied to `plugins/adv.wasm` and a variant
/// of it (other bytes) at `plugins/other.wasm`.
fn project(toml: &str) -> Project {
    let p = Project::new(toml);
    std::fs::create_dir_all(p.path().join("plugins")).unwrap();
    std::fs::copy(adversary(), p.path().join("plugins/adv.wasm")).unwrap();
    std::fs::copy(adversary(), p.path().join("plugins/other.wasm")).unwrap();
    change_component(&p.path().join("plugins/other.wasm"), "other");
    p
}

/// Digests replaced by `sha256:<1>`, `sha256:<2>`... in order of first appearance, so
/// snapshots do not change when the fixture is rebuilt.
pub fn stable_digests(text: &str) -> String {
    let re = regex::Regex::new(r"sha256:[0-9a-f]{64}").unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    re.replace_all(text, |c: &regex::Captures| {
        let n = seen.len() + 1;
        let n = *seen.entry(c[0].to_string()).or_insert(n);
        format!("sha256:<{n}>")
    })
    .into_owned()
}

fn shown(p: &Project, text: &str) -> String {
    stable_digests(&normalize(text, p.path()))
}

#[test]
fn sluice_lock_writes_one_sorted_entry_per_plugin_file() {
    let p = project(&format!("{TWO_PLUGINS}{WITH_A_BUILTIN}"));
    let out = p.sluice(&["lock"]);
    out.expect_code(0);
    let lock = std::fs::read_to_string(p.path().join("sluice.lock")).unwrap();
    insta::assert_snapshot!(shown(
        &p,
        &format!("$ sluice lock\n{}\n--- sluice.lock\n{lock}", out.stdout)
    ));
    // Written again, nothing changes.
    let again = p.sluice(&["lock"]);
    again.expect_code(0);
    assert_eq!(again.stdout.trim(), "sluice.lock is up to date (2 plugins)");
    p.sluice(&["lock", "--check"]).expect_code(0);
    p.sluice(&["validate"]).expect_code(0);
}

#[test]
fn a_component_changed_after_locking_is_refused_until_the_lock_is_updated() {
    let p = project(TWO_PLUGINS);
    p.sluice(&["lock"]).expect_code(0);
    change_component(&p.path().join("plugins/adv.wasm"), "rebuilt");

    let run = p.run(&[]);
    run.expect_code(2);
    assert!(!p.path().join(".sluice/runs").exists(), "no step may run");
    insta::assert_snapshot!(
        "changed_component_refused",
        shown(&p, &format!("$ sluice run\n{}", run.stderr))
    );
    let validate = p.sluice(&["validate"]);
    validate.expect_code(2);
    assert!(
        validate
            .stderr
            .contains("run `sluice lock --update plugins/adv.wasm`"),
        "{}",
        validate.stderr
    );

    // `sluice lock` keeps the pin (and says it is stale); `--check` fails.
    let kept = p.sluice(&["lock"]);
    kept.expect_code(0);
    assert!(
        kept.stderr
            .contains("warning: ! plugins/adv.wasm is sha256:"),
        "{}",
        kept.stderr
    );
    let check = p.sluice(&["lock", "--check"]);
    check.expect_code(1);
    insta::assert_snapshot!(
        "stale_lock_check",
        shown(
            &p,
            &format!("$ sluice lock --check\n{}{}", check.stdout, check.stderr)
        )
    );

    let update = p.sluice(&["lock", "--update", "plugins/adv.wasm"]);
    update.expect_code(0);
    insta::assert_snapshot!(
        "lock_update",
        shown(
            &p,
            &format!("$ sluice lock --update plugins/adv.wasm\n{}", update.stdout)
        )
    );
    p.sluice(&["lock", "--check"]).expect_code(0);
    p.run(&[]).expect_code(0);
}

#[test]
fn a_plugin_missing_from_the_lock_is_refused_and_unused_entries_are_dropped() {
    let p = project(TWO_PLUGINS);
    p.sluice(&["lock"]).expect_code(0);
    // `b` now uses a third component; `other.wasm` is no longer used.
    std::fs::copy(adversary(), p.path().join("plugins/third.wasm")).unwrap();
    change_component(&p.path().join("plugins/third.wasm"), "third");
    let toml = TWO_PLUGINS.replace("./plugins/other.wasm", "plugins/third.wasm");
    p.write("sluice.toml", &toml);

    let validate = p.sluice(&["validate"]);
    validate.expect_code(2);
    assert!(
        validate.stderr.contains(
            "sluice.toml:15:8: step `b`: plugin `plugins/third.wasm` is not in sluice.lock; run `sluice lock` to pin it"
        ),
        "{}",
        validate.stderr
    );
    p.sluice(&["lock", "--check"]).expect_code(1);
    let relock = p.sluice(&["lock"]);
    relock.expect_code(0);
    insta::assert_snapshot!(
        "lock_adds_and_drops",
        shown(&p, &format!("$ sluice lock\n{}", relock.stdout))
    );
    p.sluice(&["validate"]).expect_code(0);
}

#[test]
fn a_malformed_lock_is_refused_at_its_line_and_column() {
    let p = project(TWO_PLUGINS);
    p.write(
        "sluice.lock",
        "version = 1\n\n[[plugin]]\nuses = \"plugins/adv.wasm\"\ndigest = \"sha256:1234\"\n",
    );
    let validate = p.sluice(&["validate"]);
    validate.expect_code(2);
    insta::assert_snapshot!(shown(&p, &validate.stderr));
    p.write("sluice.lock", "version = 7\n");
    let validate = p.sluice(&["validate"]);
    validate.expect_code(2);
    assert!(
        validate
            .stderr
            .contains("sluice.lock:1:11: lock format version 7 is not one this sluice reads"),
        "{}",
        validate.stderr
    );
}

#[test]
fn lock_update_names_only_plugins_the_pipeline_uses() {
    let p = project(TWO_PLUGINS);
    let out = p.sluice(&["lock", "--update", "plugins/nope.wasm"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("--update `plugins/nope.wasm`: the pipeline uses no such plugin; it locks `plugins/adv.wasm`, `plugins/other.wasm`"),
        "{}",
        out.stderr
    );
    assert!(!p.path().join("sluice.lock").exists());
}

/// `sluice ARGS` in the project with its own OCI cache.
fn with_cache(p: &Project, cache: &Path, args: &[&str]) -> crate::support::Outcome {
    crate::support::Outcome::of(p.command(args).env("SLUICE_OCI_CACHE", cache))
}

#[test]
fn an_oci_tag_runs_at_its_locked_digest_until_the_lock_is_updated() {
    use crate::registry::{Registry, sha256_digest};
    let registry = Registry::start();
    let reference = format!("oci://{}/acme/adv:1.0", registry.url());
    let p = Project::new(&format!(
        "[pipeline]\nname = \"oci-locked\"\n\n[[stage]]\nname = \"build\"\n\n[[stage.step]]\nid = \"a\"\nuses = \"{reference}\"\nwith = {{ mode = \"ok\" }}\n"
    ));
    let cache = p.path().join("oci-cache");
    std::fs::copy(adversary(), p.path().join("v1.wasm")).unwrap();
    std::fs::copy(adversary(), p.path().join("v2.wasm")).unwrap();
    change_component(&p.path().join("v2.wasm"), "v2");
    let v1 = sha256_digest(&std::fs::read(p.path().join("v1.wasm")).unwrap());
    let v2 = sha256_digest(&std::fs::read(p.path().join("v2.wasm")).unwrap());

    with_cache(&p, &cache, &["plugin", "push", "v1.wasm", &reference]).expect_code(0);
    let locked = with_cache(&p, &cache, &["lock"]);
    locked.expect_code(0);
    assert_eq!(
        locked.stdout,
        format!("+ {reference} {v1}\nwrote sluice.lock (1 plugin)\n")
    );

    // The tag moves to v2; what runs does not change: a fresh cache pulls the
    // locked component, and the lock is not stale (Cargo's semantics).
    with_cache(&p, &cache, &["plugin", "push", "v2.wasm", &reference]).expect_code(0);
    let fresh = p.path().join("fresh-cache");
    with_cache(&p, &fresh, &["run", "--format", "plain"]).expect_code(0);
    assert!(
        fresh
            .join("blobs/sha256")
            .join(&v1["sha256:".len()..])
            .is_file()
    );
    assert!(
        !fresh
            .join("blobs/sha256")
            .join(&v2["sha256:".len()..])
            .exists()
    );
    with_cache(&p, &fresh, &["lock", "--check"]).expect_code(0);

    // `--update` re-resolves the tag.
    let updated = with_cache(&p, &fresh, &["lock", "--update", &reference]);
    updated.expect_code(0);
    assert_eq!(
        updated.stdout,
        format!("~ {reference} {v1} → {v2}\nwrote sluice.lock (1 plugin)\n")
    );
    with_cache(&p, &fresh, &["validate"]).expect_code(0);
}
