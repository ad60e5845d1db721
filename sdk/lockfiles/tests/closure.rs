//! The shipped dependency closure on real `cargo metadata` output (see
//! data/README.md for how it was captured).

mod common;

use std::path::Path;

use sluice_lockfiles::closure::{self, Scope};
use sluice_lockfiles::{Format, PackageRef};

/// semver 1.0.28 from crates.io depends on nothing it ships; its Cargo.lock (made by
/// `cargo generate-lockfile`) pins 52 other packages for its benchmarks and tests
/// (criterion, clap, ...). The closure must be empty, as `cargo tree -e normal` says.
#[test]
fn semver_ships_no_dependency_though_its_lockfile_pins_52() {
    let json = common::read("cargo-metadata/semver/metadata.json");
    let closure = closure::cargo_metadata(&json, Path::new("/tmp/semver-cap")).unwrap();
    assert_eq!(
        closure.roots,
        [PackageRef {
            name: "semver".into(),
            version: "1.0.28".into()
        }]
    );
    let tree = common::read("cargo-metadata/semver/cargo-tree-normal.txt");
    let from_cargo_tree: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "semver")
        .collect();
    assert!(from_cargo_tree.is_empty(), "{from_cargo_tree:?}");
    assert_eq!(closure.scoped(Scope::Required).count(), 0);
    assert_eq!(closure.scoped(Scope::Build).count(), 0);
    assert!(closure.root_dependencies.values().all(Vec::is_empty));

    // ...whereas the lockfile alone lists the dev-only world.
    let locked = Format::Cargo
        .parse(&common::read("cargo-metadata/semver/Cargo.lock"))
        .unwrap();
    assert_eq!(locked.packages.len(), 52);
    assert!(locked.packages.iter().any(|p| p.name == "criterion"));
}

/// The project is found by its manifest path; another folder falls back to the
/// resolve root, and output without a resolve graph is refused with a hint.
#[test]
fn roots_and_refusals() {
    let json = common::read("cargo-metadata/semver/metadata.json");
    let elsewhere = closure::cargo_metadata(&json, Path::new("/elsewhere")).unwrap();
    assert_eq!(elsewhere.roots[0].name, "semver");
    let err = closure::cargo_metadata(
        r#"{"packages":[],"workspace_members":[],"resolve":null}"#,
        Path::new("/p"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("--no-deps"), "{err}");
    let err = closure::cargo_metadata("{", Path::new("/p")).unwrap_err();
    assert!(err.to_string().contains("cargo metadata"), "{err}");
}

/// A real package-lock.json: express is a runtime dependency, so the closure holds
/// its whole tree with edges, and every component is reachable from the root.
#[test]
fn package_lock_closure_follows_the_install_tree() {
    let parsed = Format::PackageLock
        .parse(&common::read("package-lock-v3/package-lock.json"))
        .unwrap();
    let root = PackageRef {
        name: "fixture".into(),
        version: "1.0.0".into(),
    };
    let closure = closure::package_lock(&parsed, root.clone());
    let names: Vec<&str> = closure
        .components
        .iter()
        .map(|c| c.id.name.as_str())
        .collect();
    for name in ["express", "lodash", "minimist", "body-parser", "accepts"] {
        assert!(names.contains(&name), "{name} missing: {names:?}");
    }
    let express = closure
        .components
        .iter()
        .find(|c| c.id.name == "express")
        .unwrap();
    assert!(express.dependencies.iter().any(|d| d.name == "body-parser"));
    // Every dependency edge points at a component of the closure.
    for component in &closure.components {
        for dependency in &component.dependencies {
            assert!(
                closure.components.iter().any(|c| &c.id == dependency),
                "{dependency:?}"
            );
        }
    }
    assert_eq!(closure.root_dependencies[&root].len(), 3);
}

/// Real `go list -deps -json ./...` output (go 1.19) for a main module that imports a
/// module replaced by a local folder, and whose test imports net/http: the closure is
/// that one module, with the edge, and neither the standard library nor test imports.
#[test]
fn go_list_closure_has_modules_not_std_nor_test_imports() {
    let json = common::read("go-list/go-list.json");
    assert!(!json.contains("\"ImportPath\": \"net/http\""));
    let closure = closure::go_list(&json).unwrap();
    let root = PackageRef {
        name: "example.com/app".into(),
        version: String::new(),
    };
    assert_eq!(closure.roots, std::slice::from_ref(&root));
    let lib = PackageRef {
        name: "example.com/lib".into(),
        version: "v0.1.0".into(),
    };
    assert_eq!(closure.root_dependencies[&root], std::slice::from_ref(&lib));
    assert_eq!(closure.components.len(), 1);
    assert_eq!(closure.components[0].id, lib);
    assert_eq!(
        closure.components[0].source, None,
        "replaced by a local folder"
    );
    assert!(closure.components[0].dependencies.is_empty());
}
