//! What `builtin:build`'s SBOM lists, and what lockfile discovery skips, through the
//! real binary: the SBOM of examples/rust-service is exactly what `cargo tree -e normal`
//! prints (packages and edges), with build-only packages marked and dev dependencies
//! left out; an excluded broken lockfile does not fail a security scan.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use crate::support::{Project, copy_tree, sluice_in};

fn cargo(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("cargo")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// `cargo tree -e normal --prefix depth`: the packages (name, version) below the root
/// and the edges between them, as cargo prints them.
type Tree = (
    BTreeSet<(String, String)>,
    BTreeMap<(String, String), BTreeSet<(String, String)>>,
);

fn cargo_tree_normal(dir: &Path) -> Tree {
    let out = cargo(
        dir,
        &[
            "tree",
            "-e",
            "normal",
            "--prefix",
            "depth",
            "--offline",
            "--locked",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut packages = BTreeSet::new();
    let mut edges: BTreeMap<_, BTreeSet<_>> = BTreeMap::new();
    let mut stack: Vec<(String, String)> = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let digits = line.chars().take_while(char::is_ascii_digit).count();
        let depth: usize = line[..digits].parse().unwrap();
        let mut words = line[digits..].split_whitespace();
        let name = words.next().unwrap().to_owned();
        let version = words.next().unwrap().trim_start_matches('v').to_owned();
        let id = (name, version);
        stack.truncate(depth);
        if let Some(parent) = stack.last() {
            edges.entry(parent.clone()).or_default().insert(id.clone());
        }
        if depth > 0 {
            packages.insert(id.clone());
        }
        edges.entry(id.clone()).or_default();
        stack.push(id);
    }
    (packages, edges)
}

fn id_of(component: &serde_json::Value) -> (String, String) {
    (
        component["name"].as_str().unwrap().to_owned(),
        component["version"].as_str().unwrap().to_owned(),
    )
}

/// The regression: the SBOM listed the whole lockfile. Here the service gains a
/// dependency with a dependency of its own (lock_api → scopeguard), one with a build
/// dependency (num-traits, build: autocfg) and a dev dependency (tempfile and its
/// tree): the SBOM's shipped components must be exactly `cargo tree -e normal`'s, with
/// the same edges; autocfg is there as build-only; no dev-only package is in it.
#[test]
fn sbom_lists_exactly_the_normal_dependency_closure_with_edges() {
    let dir = tempfile::Builder::new()
        .prefix("sluice-sbom-")
        .tempdir()
        .unwrap();
    let dir = dir.path();
    copy_tree(
        &Path::new(sluice_tests::WORKSPACE_ROOT).join("examples/rust-service"),
        dir,
    );
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let manifest = manifest.replace(
        "itoa = \"1\"\n",
        "itoa = \"1\"\nlock_api = \"0.4\"\nnum-traits = \"0.2\"\n\n[dev-dependencies]\ntempfile = \"3\"\n",
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    // Resolve from Cargo's cache when it has the crates (the workspace's own build put
    // them there), else from crates.io.
    if !cargo(dir, &["generate-lockfile", "--offline"])
        .status
        .success()
    {
        let out = cargo(dir, &["generate-lockfile"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = cargo(dir, &["fetch", "--locked"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        dir.join("sluice.toml"),
        r#"[pipeline]
name = "inventory-service"

[[stage]]
name = "build"

[[stage.step]]
id = "compile"
uses = "builtin:build"
with = { artifacts = ["target/release/inventory"], args = ["--locked", "--offline"], timeout = "10m" }
timeout = "15m"
[stage.step.grants]
exec = ["cargo"]
read = [".", "~/.cargo", "~/.rustup"]
write = ["target"]
env = ["HOME", "CARGO_HOME", "RUSTUP_HOME"]
"#,
    )
    .unwrap();
    let run = sluice_in(dir, &["run", "--format", "plain"]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let (expected, tree_edges) = cargo_tree_normal(dir);
    let names: BTreeSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        ["itoa", "semver", "lock_api", "scopeguard", "num-traits"]
            .iter()
            .all(|n| names.contains(n)),
        "{expected:?}"
    );
    let sbom: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("target/sluice/sbom.cdx.json")).unwrap(),
    )
    .unwrap();
    let components = sbom["components"].as_array().unwrap();
    let shipped: BTreeSet<(String, String)> = components
        .iter()
        .filter(|c| c["scope"] == "required")
        .map(id_of)
        .collect();
    assert_eq!(shipped, expected);
    let build_only: Vec<(String, String)> = components
        .iter()
        .filter(|c| c["scope"] == "excluded")
        .map(id_of)
        .collect();
    assert_eq!(build_only.len(), 1, "{build_only:?}");
    assert_eq!(build_only[0].0, "autocfg");
    let locked = std::fs::read_to_string(dir.join("Cargo.lock")).unwrap();
    for dev_only in ["tempfile", "fastrand"] {
        assert!(locked.contains(&format!("name = \"{dev_only}\"")));
        assert!(
            components.iter().all(|c| c["name"] != dev_only),
            "{dev_only} is dev-only but in the SBOM"
        );
    }

    // Edges: each shipped package's (and the service's) dependencies among the shipped
    // packages are cargo tree's.
    let by_ref: BTreeMap<&str, (String, String)> = components
        .iter()
        .map(|c| (c["bom-ref"].as_str().unwrap(), id_of(c)))
        .chain([(
            sbom["metadata"]["component"]["bom-ref"].as_str().unwrap(),
            ("inventory-service".to_owned(), "0.3.1".to_owned()),
        )])
        .collect();
    let mut sbom_edges: BTreeMap<(String, String), BTreeSet<(String, String)>> = BTreeMap::new();
    for entry in sbom["dependencies"].as_array().unwrap() {
        let from = by_ref[entry["ref"].as_str().unwrap()].clone();
        if from.0 != "inventory-service" && !shipped.contains(&from) {
            continue;
        }
        let to = entry["dependsOn"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| by_ref[r.as_str().unwrap()].clone())
            .filter(|id| shipped.contains(id))
            .collect();
        sbom_edges.insert(from, to);
    }
    assert_eq!(sbom_edges, tree_edges);
    let summary = run.stderr;
    assert!(
        summary.contains(&format!(
            "SBOM of {} shipped package(s) and 1 build-only",
            expected.len()
        )),
        "{summary}"
    );
}

/// The regression: a deliberately broken lockfile under a test-fixture folder failed a
/// scan of the whole repository. With `exclude` it is not read; without, it still fails
/// the step (so the exclusion is what makes the difference).
#[test]
fn an_excluded_broken_lockfile_does_not_fail_the_scan() {
    let pipeline = |exclude: &str| {
        format!(
            r#"
[pipeline]
name = "audit"

[[stage]]
name = "security"

[[stage.step]]
id = "scan"
uses = "builtin:security-scan"
timeout = "2m"
with = {{ database = "osv", secrets = {{ enabled = false }}{exclude} }}

[stage.step.grants]
read = ["."]
"#
        )
    };
    let setup = |p: &Project| {
        p.write(
            "Cargo.lock",
            &std::fs::read_to_string(
                Path::new(sluice_tests::WORKSPACE_ROOT).join("examples/rust-service/Cargo.lock"),
            )
            .unwrap(),
        );
        p.write(
            "tests/fixtures/broken/Cargo.lock",
            "[[package]\nname = \"x\"\n",
        );
        p.write(
            "osv/RUSTSEC-2099-0001.json",
            r#"{"id": "RUSTSEC-2099-0001", "modified": "2099-01-01T00:00:00Z", "summary": "nothing real", "affected": [{"package": {"ecosystem": "crates.io", "name": "not-a-dependency"}, "ranges": [{"type": "SEMVER", "events": [{"introduced": "0.0.0-0"}]}]}]}"#,
        );
    };

    let excluded = Project::new(&pipeline(r#", exclude = ["tests/fixtures/**"]"#));
    setup(&excluded);
    let out = excluded.run(&[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let step = excluded.step("scan");
    assert_eq!(step["status"], "passed", "{step:#}");

    let included = Project::new(&pipeline(""));
    setup(&included);
    let out = included.run(&[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("tests/fixtures/broken/Cargo.lock"),
        "{}",
        out.stderr
    );
}
