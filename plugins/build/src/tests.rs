//! The shared lockfile readers on this plugin's real lockfiles (see tests/data/README.md) and the
//! documents against the CycloneDX and in-toto/SLSA shapes.

use std::path::Path;

use serde_json::json;

use sluice_lockfiles::closure;
use sluice_lockfiles::{Format, Package, PackageRef};

use super::*;

macro_rules! data {
    ($file:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/", $file))
    };
}

fn parse(format: Format, text: &str) -> Vec<Package> {
    format.parse(text).unwrap().packages
}

#[test]
fn cargo_lock_with_checksums_and_edges() {
    let packages = parse(Format::Cargo, data!("Cargo.lock"));
    assert_eq!(packages.len(), 11);
    let serde_json = packages.iter().find(|p| p.name == "serde_json").unwrap();
    assert_eq!(
        serde_json.purl(),
        format!("pkg:cargo/serde_json@{}", serde_json.version)
    );
    assert_eq!(serde_json.checksums[0].value.len(), 64);
    assert!(
        serde_json
            .dependencies
            .iter()
            .any(|dep| dep.name == "itoa" && dep.version == "1.0.19"),
        "{:?}",
        serde_json.dependencies
    );
    let itoa = packages.iter().find(|p| p.name == "itoa").unwrap();
    assert_eq!(
        itoa.checksums[0].value,
        "3bd1574e617a9a6c1f8f8181bd7e841e1f20e4277607ef28945765188d6284d4"
    );
    assert_eq!(
        itoa.source.as_deref(),
        Some("registry+https://github.com/rust-lang/crates.io-index")
    );
    assert!(Format::Cargo.parse("not = [toml").is_err());
}

#[test]
fn package_lock_v3_with_dev_flags_and_integrity() {
    let packages = parse(Format::PackageLock, data!("package-lock.json"));
    let utils = packages
        .iter()
        .find(|p| p.name == "@eslint-community/eslint-utils")
        .unwrap();
    assert_eq!(utils.version, "4.10.1");
    assert_eq!(
        utils.purl(),
        "pkg:npm/%40eslint-community/eslint-utils@4.10.1"
    );
    // sha512-cuadcxVF... decoded: 64 bytes, hex starts with 72e69d73.
    assert_eq!(utils.checksums[0].value.len(), 128);
    assert!(utils.checksums[0].value.starts_with("72e69d73"));
    assert_eq!(utils.license.as_deref(), Some("MIT"));
    assert!(packages.iter().any(|p| p.name == "eslint"));
}

#[test]
fn go_sum_keeps_downloaded_modules() {
    let packages = parse(Format::GoSum, data!("go.sum"));
    assert_eq!(
        project::go_module_path(data!("go.mod")).as_deref(),
        Some("github.com/spf13/cobra")
    );
    let mut purls: Vec<String> = packages.iter().map(Package::purl).collect();
    purls.sort();
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
}

#[test]
fn target_and_feature_flags_carry_over_from_the_build_command() {
    let words = |text: &str| text.split(' ').map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(
        project::build_target(&words("cargo build --target wasm32-wasip2")).as_deref(),
        Some("wasm32-wasip2")
    );
    assert_eq!(
        project::build_target(&words("cargo build --target=x86_64-unknown-linux-musl")).as_deref(),
        Some("x86_64-unknown-linux-musl")
    );
    assert_eq!(project::build_target(&words("cargo build --release")), None);
    assert_eq!(
        project::metadata_flags(&words(
            "cargo build --release --locked -F a,b --features=c --no-default-features --target x"
        )),
        [
            "--locked",
            "--features",
            "a,b",
            "--features=c",
            "--no-default-features"
        ]
    );
}

/// The SBOM of a real npm project (eslint and friends, installed as the project's own
/// dependencies): every component ships, carries the lock's hashes and license, and
/// every edge points at a component.
#[test]
fn cyclonedx_document() {
    let lock = Format::PackageLock
        .parse(data!("package-lock.json"))
        .unwrap();
    let root = PackageRef {
        name: "jsdemo".into(),
        version: "1.2.3".into(),
    };
    let closures = vec![closure::package_lock(&lock, root)];
    let subject = documents::Subject {
        name: "jsdemo",
        version: Some("1.2.3"),
        purl: Some("pkg:npm/jsdemo@1.2.3".into()),
    };
    let bom = documents::cyclonedx(
        &subject,
        &closures,
        &lock.packages,
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
    assert_eq!(bom["metadata"]["component"]["purl"], "pkg:npm/jsdemo@1.2.3");
    let components = bom["components"].as_array().unwrap();
    assert_eq!(components.len(), closures[0].components.len());
    assert!(components.len() > 50, "{}", components.len());
    let utils = components
        .iter()
        .find(|c| c["name"] == "@eslint-community/eslint-utils")
        .unwrap();
    assert_eq!(utils["scope"], "required");
    assert_eq!(utils["hashes"][0]["alg"], "SHA-512");
    assert_eq!(utils["licenses"][0]["expression"], "MIT");
    let refs: Vec<&str> = components
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap())
        .collect();
    let dependencies = bom["dependencies"].as_array().unwrap();
    // The project and every component have an entry; every edge points at a component.
    assert_eq!(dependencies.len(), components.len() + 1);
    assert_eq!(dependencies[0]["ref"], "pkg:npm/jsdemo@1.2.3");
    assert_eq!(dependencies[0]["dependsOn"].as_array().unwrap().len(), 3);
    for dependency in dependencies {
        for target in dependency["dependsOn"].as_array().unwrap() {
            assert!(
                refs.contains(&target.as_str().unwrap()),
                "{target} is not a component"
            );
        }
    }
    // Same seed, same serial; another run, another.
    let again = documents::cyclonedx(&subject, &closures, &[], "run-1/build/abc", "x", "0.1.0");
    assert_eq!(again["serialNumber"], bom["serialNumber"]);
    let other = documents::cyclonedx(&subject, &closures, &[], "run-2/build/abc", "x", "0.1.0");
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
    assert_eq!(guess_media_type("dist/app.tar.gz"), "application/gzip");
    assert_eq!(
        relative_to(Path::new("/w"), Path::new("/w/target/app")),
        "target/app"
    );
}
