//! The lockfile parsers against real lockfiles (see tests/data/README.md) and the
//! documents against the CycloneDX and in-toto/SLSA shapes.

use std::path::Path;

use serde_json::json;

use super::*;
use crate::lockfiles::Package;

macro_rules! data {
    ($file:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/", $file))
    };
}

#[test]
fn cargo_lock_closure_with_checksums_and_edges() {
    let (packages, local) = lockfiles::cargo_lock(data!("Cargo.lock")).unwrap();
    assert_eq!(local, vec!["lockdemo"]);
    assert_eq!(packages.len(), 11);
    let serde_json = packages.iter().find(|p| p.name == "serde_json").unwrap();
    assert_eq!(
        serde_json.purl(),
        format!("pkg:cargo/serde_json@{}", serde_json.version)
    );
    assert_eq!(serde_json.hashes[0].0, "SHA-256");
    assert_eq!(serde_json.hashes[0].1.len(), 64);
    assert!(
        serde_json
            .depends_on
            .iter()
            .any(|dep| dep.starts_with("pkg:cargo/itoa@1.0.19")),
        "{:?}",
        serde_json.depends_on
    );
    let itoa = packages.iter().find(|p| p.name == "itoa").unwrap();
    assert_eq!(
        itoa.hashes[0].1,
        "3bd1574e617a9a6c1f8f8181bd7e841e1f20e4277607ef28945765188d6284d4"
    );
    assert_eq!(
        itoa.properties["source"],
        "registry+https://github.com/rust-lang/crates.io-index"
    );
    assert!(lockfiles::cargo_lock("not = [toml").is_err());
}

#[test]
fn package_lock_v3_with_scopes_and_integrity() {
    let (packages, root) = lockfiles::package_lock(data!("package-lock.json")).unwrap();
    assert_eq!(root.name.as_deref(), Some("jsdemo"));
    assert_eq!(root.version.as_deref(), Some("1.2.3"));
    let utils = packages
        .iter()
        .find(|p| p.name == "@eslint-community/eslint-utils")
        .unwrap();
    assert_eq!(utils.version, "4.10.1");
    assert_eq!(
        utils.purl(),
        "pkg:npm/%40eslint-community/eslint-utils@4.10.1"
    );
    assert_eq!(utils.hashes[0].0, "SHA-512");
    // sha512-cuadcxVF... decoded: 64 bytes, hex starts with 72e69d73.
    assert_eq!(utils.hashes[0].1.len(), 128);
    assert!(
        utils.hashes[0].1.starts_with("72e69d73"),
        "{}",
        utils.hashes[0].1
    );
    assert_eq!(utils.properties["license"], "MIT");
    assert!(packages.iter().any(|p| p.name == "eslint"));
    assert!(packages.len() > 50, "{}", packages.len());
}

#[test]
fn go_sum_keeps_downloaded_modules() {
    let (packages, root) = lockfiles::go_sum(data!("go.sum"), Some(data!("go.mod")));
    assert_eq!(root.name.as_deref(), Some("github.com/spf13/cobra"));
    let purls: Vec<String> = packages.iter().map(Package::purl).collect();
    assert_eq!(
        purls,
        vec![
            "pkg:golang/github.com/cpuguy83/go-md2man/v2@v2.0.2",
            "pkg:golang/github.com/inconshreveable/mousetrap@v1.1.0",
            "pkg:golang/github.com/russross/blackfriday/v2@v2.1.0",
            "pkg:golang/github.com/spf13/pflag@v1.0.5",
            "pkg:golang/gopkg.in/check.v1@v0.0.0-20161208181325-20d25e280405",
            "pkg:golang/gopkg.in/yaml.v3@v3.0.1",
        ]
    );
    assert_eq!(
        packages[3].properties["go-h1"],
        "h1:iy+VFUOCP1a+8yFto/drg2CJ5u0yRoB7fZw3DKv/JXA="
    );
}

#[test]
fn cyclonedx_document() {
    let (packages, _) = lockfiles::cargo_lock(data!("Cargo.lock")).unwrap();
    let subject = documents::Subject {
        name: "lockdemo",
        version: Some("0.3.1"),
        purl: Some("pkg:cargo/lockdemo@0.3.1".into()),
    };
    let bom = documents::cyclonedx(
        &subject,
        &packages,
        "run-1/build/abc",
        "2026-11-22T16:33:07Z",
        "0.1.0",
    );
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["specVersion"], "1.5");
    let serial = bom["serialNumber"].as_str().unwrap();
    assert!(
        serial.starts_with("urn:uuid:") && serial.len() == 45,
        "{serial}"
    );
    assert_eq!(&serial[23..24], "8", "UUID version 8");
    assert_eq!(
        bom["metadata"]["component"]["purl"],
        "pkg:cargo/lockdemo@0.3.1"
    );
    assert_eq!(bom["components"].as_array().unwrap().len(), 11);
    let component = &bom["components"][0];
    assert_eq!(component["type"], "library");
    assert_eq!(component["bom-ref"], component["purl"]);
    // Every dependency edge points at a component of the BOM.
    let refs: Vec<&str> = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap())
        .collect();
    for dependency in bom["dependencies"].as_array().unwrap() {
        for target in dependency["dependsOn"].as_array().unwrap() {
            assert!(
                refs.contains(&target.as_str().unwrap()),
                "{target} is not a component"
            );
        }
    }
    // Same seed, same serial; another run, another.
    let again = documents::cyclonedx(&subject, &packages, "run-1/build/abc", "x", "0.1.0");
    assert_eq!(again["serialNumber"], bom["serialNumber"]);
    let other = documents::cyclonedx(&subject, &packages, "run-2/build/abc", "x", "0.1.0");
    assert_ne!(other["serialNumber"], bom["serialNumber"]);
}

#[test]
fn provenance_statement_shape() {
    let subjects = vec![Digested {
        name: "target/release/lockdemo".into(),
        sha256: "ab".repeat(32),
    }];
    let provenance = documents::Provenance {
        subjects: &subjects,
        build_type: BUILD_TYPE,
        external: json!({"pipeline": "p", "stage": "build", "step": "compile", "command": ["cargo", "build"], "config": {}}),
        internal: json!({"runId": "r1"}),
        dependencies: vec![
            json!({"uri": "git+file:///x", "digest": {"gitCommit": "1".repeat(40)}}),
        ],
        builder_id: "urn:sluice:builder:builtin:build".into(),
        plugins: vec![
            json!({"name": "compile", "uri": "builtin:build", "digest": documents::digest_set("sha256:00ff")}),
        ],
        byproducts: vec![],
        invocation_id: "r1",
        started_on: "2026-11-22T16:33:07Z",
        finished_on: "2026-11-22T16:34:07Z",
    };
    let statement = documents::statement(&provenance, "0.1.0");
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(statement["subject"][0]["digest"]["sha256"], "ab".repeat(32));
    let predicate = &statement["predicate"];
    assert_eq!(predicate["buildDefinition"]["buildType"], BUILD_TYPE);
    assert_eq!(
        predicate["runDetails"]["builder"]["id"],
        "urn:sluice:builder:builtin:build"
    );
    assert_eq!(
        predicate["runDetails"]["builder"]["builderDependencies"][0]["digest"],
        json!({"sha256": "00ff"})
    );
    assert_eq!(predicate["runDetails"]["metadata"]["invocationId"], "r1");
}

#[test]
fn manifests_and_detection() {
    let (name, version) =
        project::cargo_manifest(data!("Cargo.toml.txt"), Path::new("/nonexistent"));
    assert_eq!(
        (name.as_deref(), version.as_deref()),
        (Some("lockdemo"), Some("0.3.1"))
    );
    // This crate's own manifest says `version.workspace = true`: followed to the root.
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let own = std::fs::read_to_string(here.join("Cargo.toml")).unwrap();
    let (name, version) = project::cargo_manifest(&own, here);
    assert_eq!(name.as_deref(), Some("sluice-plugin-build"));
    assert_eq!(version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(project::detect(here), Some(project::Kind::Cargo));
    assert_eq!(
        project::command(Some(project::Kind::Cargo), None, &["--locked".into()]).unwrap(),
        ["cargo", "build", "--release", "--locked"]
    );
    assert_eq!(project::command(None, None, &[]), None);
}

#[test]
fn hashing_and_helpers() {
    let file = std::env::temp_dir().join(format!("sluice-build-hash-{}", std::process::id()));
    std::fs::write(&file, b"abc").unwrap();
    assert_eq!(
        sha256_file(&file).unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    std::fs::remove_file(&file).unwrap();
    assert_eq!(documents::rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(documents::rfc3339(1_795_365_187), "2026-11-22T16:33:07Z");
    assert_eq!(lockfiles::base64_decode("YWJj"), Some(b"abc".to_vec()));
    assert_eq!(guess_media_type("dist/app.tar.gz"), "application/gzip");
    assert_eq!(
        relative_to(Path::new("/w"), Path::new("/w/target/app")),
        "target/app"
    );
}
