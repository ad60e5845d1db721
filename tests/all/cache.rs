//! The compiled-component cache holds native code, so it is defended: a cache file
//! that was changed, swapped, truncated or replaced by a link is never loaded (the
//! plugin is compiled again and the file replaced, with a warning), a cache folder
//! others can write to is refused, and without any cache folder plugins are compiled
//! in memory rather than in a shared /tmp folder.
//!
//! Every test here uses a cache folder of its own: they tamper with it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{Outcome, Project, normalize, output, require_root};

const PIPELINE: &str = r#"
[pipeline]
name = "cache"

[[stage]]
name = "one"

[[stage.step]]
id = "a"
uses = "{adversary}"
with = { mode = "ok", outputs = { who = "the adversary" } }
"#;

/// A folder for a cache of the test's own, mode 0700.
fn own_cache(p: &Project) -> PathBuf {
    let dir = p.path().join("cache");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn sluice_with_cache(p: &Project, cache: &Path, args: &[&str]) -> Outcome {
    Outcome::of(p.command(args).env("SLUICE_CACHE_DIR", cache))
}

/// The hex digest of a plugin, as `plugin info` reports it.
fn digest_of(p: &Project, cache: &Path, reference: &str) -> String {
    let out = sluice_with_cache(p, cache, &["plugin", "info", "--json", reference]);
    out.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    v["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string()
}

/// Every file under `dir` whose name is `name`.
fn find(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            found.extend(find(&e.path(), name));
        } else if e.file_name() == name {
            found.push(e.path());
        }
    }
    found
}

fn only(mut found: Vec<PathBuf>) -> PathBuf {
    assert_eq!(found.len(), 1, "{found:?}");
    found.pop().unwrap()
}

/// A run that must behave as the real adversary plugin; returns its warning lines.
fn run_is_the_real_plugin(p: &Project, cache: &Path) -> Vec<String> {
    let out = sluice_with_cache(p, cache, &["run", "--format", "plain"]);
    out.expect_code(0);
    let step = p.step("a");
    assert_eq!(step["plugin_name"], "adversary", "{step:#}");
    assert_eq!(output(&step, "who"), "the adversary");
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    out.stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn tampered_cache_files_are_never_loaded() {
    let p = Project::new(PIPELINE);
    let cache = own_cache(&p);
    assert!(run_is_the_real_plugin(&p, &cache).is_empty());
    let mine = digest_of(&p, &cache, crate::support::adversary());
    let theirs = digest_of(&p, &cache, "builtin:command");
    let entry = only(find(&cache, &format!("{mine}.cwasm")));
    let other = only(find(&cache, &format!("{theirs}.cwasm")));
    let index = only(
        std::fs::read_dir(entry.parent().unwrap().join("index"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect(),
    );
    let valid = std::fs::read(&entry).unwrap();
    let valid_index = std::fs::read_to_string(&index).unwrap();
    assert!(valid_index.contains(&mine), "{valid_index}");

    type Tamper<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Tamper)> = vec![
        (
            "other bytes",
            Box::new(|| std::fs::write(&entry, b"\x7fELF not a compiled component").unwrap()),
        ),
        (
            "the valid entry of a different component",
            Box::new(|| {
                std::fs::copy(&other, &entry).unwrap();
            }),
        ),
        (
            "the valid entry, truncated",
            Box::new(|| std::fs::write(&entry, &valid[..valid.len() / 2]).unwrap()),
        ),
        (
            "a symbolic link to a different component's entry",
            Box::new(|| {
                std::fs::remove_file(&entry).unwrap();
                std::os::unix::fs::symlink(&other, &entry).unwrap();
            }),
        ),
        (
            "an index entry naming a different component's digest",
            Box::new(|| std::fs::write(&index, valid_index.replace(&mine, &theirs)).unwrap()),
        ),
        (
            "a key other than the one the entries were written with",
            Box::new(|| std::fs::write(cache.join("key"), [7u8; 32]).unwrap()),
        ),
    ];
    let engine_dir = regex::Regex::new(r"wasmtime-48/[0-9a-f]{24}/(index/[0-9a-f]{32})?").unwrap();
    let mut seen = String::new();
    for (what, tamper) in &cases {
        tamper();
        let warnings = run_is_the_real_plugin(&p, &cache);
        assert!(!warnings.is_empty(), "{what}: no warning");
        seen.push_str(&format!("# {what}\n"));
        for w in warnings {
            let w = w
                .replace(&cache.display().to_string(), "[CACHE]")
                .replace(&mine, "[DIGEST]");
            let w = normalize(&w, p.path());
            let w = engine_dir
                .replace_all(&w, |c: &regex::Captures| {
                    format!(
                        "wasmtime-48/[ENGINE]/{}",
                        if c.get(1).is_some() {
                            "index/[PATH-HASH]"
                        } else {
                            ""
                        }
                    )
                })
                .into_owned();
            seen.push_str(&w);
            seen.push('\n');
        }
        // The bad file was replaced by a good one: the next run loads it silently.
        assert!(
            std::fs::symlink_metadata(&entry).unwrap().is_file(),
            "{what}: the entry was replaced by a regular file"
        );
        assert!(run_is_the_real_plugin(&p, &cache).is_empty(), "{what}");
    }
    // A key is never replaced behind the user's back, even a foreign one.
    assert_eq!(std::fs::read(cache.join("key")).unwrap(), [7u8; 32]);
    insta::assert_snapshot!(seen);
}

#[test]
fn cache_folders_others_can_write_are_refused() {
    let p = Project::new(PIPELINE);
    let cache = own_cache(&p);
    sluice_with_cache(&p, &cache, &["plugins"]).expect_code(0);
    let layout = cache.join("v2");
    let mode = |path: &Path, m: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap()
    };
    let mut seen = String::new();
    let mut refused = |what: &str| {
        let out = sluice_with_cache(&p, &cache, &["plugins"]);
        out.expect_code(2);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        seen.push_str(&format!(
            "# {what}\n{}",
            out.stderr.replace(&cache.display().to_string(), "[CACHE]")
        ));
    };
    mode(&cache, 0o777);
    refused("the root, mode 0777");
    mode(&cache, 0o770);
    refused("the root, mode 0770");
    mode(&cache, 0o700);
    mode(&layout, 0o757);
    refused("a folder inside, mode 0757");
    mode(&layout, 0o700);
    mode(&cache.join("key"), 0o644);
    refused("the key, mode 0644");
    mode(&cache.join("key"), 0o600);
    require_root("to give the cache folder to another user");
    std::os::unix::fs::chown(&cache, Some(65534), Some(65534)).unwrap();
    refused("the root, owned by another user");
    std::os::unix::fs::chown(&cache, Some(0), Some(0)).unwrap();
    // A root that is a symbolic link the user chose is followed, and what it leads to
    // is checked.
    let link = p.path().join("cache-link");
    std::os::unix::fs::symlink(&cache, &link).unwrap();
    sluice_with_cache(&p, &link, &["plugins"]).expect_code(0);
    mode(&cache, 0o777);
    let out = sluice_with_cache(&p, &link, &["plugins"]);
    out.expect_code(2);
    assert!(out.stderr.contains("chmod go-w"), "{}", out.stderr);
    mode(&cache, 0o700);
    sluice_with_cache(&p, &cache, &["plugins"]).expect_code(0);
    insta::assert_snapshot!(seen);
}

#[test]
fn without_a_cache_folder_plugins_compile_in_memory() {
    let p = Project::new(PIPELINE);
    let tmp = p.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let shared = Path::new("/tmp/sluice-cache");
    let existed = shared.exists();
    let out = Outcome::of(
        p.command(&["run", "--format", "plain"])
            .env_remove("SLUICE_CACHE_DIR")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("HOME")
            .env("TMPDIR", &tmp),
    );
    out.expect_code(0);
    assert_eq!(output(&p.step("a"), "who"), "the adversary");
    let notes: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("note:"))
        .collect();
    insta::assert_snapshot!(notes.join("\n"));
    assert!(
        std::fs::read_dir(&tmp).unwrap().next().is_none(),
        "nothing is written to TMPDIR"
    );
    assert_eq!(
        shared.exists(),
        existed,
        "/tmp/sluice-cache was not created"
    );
}
