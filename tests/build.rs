//! Builds the components the end-to-end tests run: the fixtures under `tests/fixtures/`
//! (the adversary, a plugin on the first contract) and the Rust example plugin. Their
//! paths reach `lib.rs` as compile-time environment variables.

use std::path::PathBuf;

/// `(environment variable, package)` of each component.
const COMPONENTS: &[(&str, &str)] = &[
    ("SLUICE_FIXTURE_ADVERSARY", "sluice-fixture-adversary"),
    ("SLUICE_EXAMPLE_FILE_BUDGET", "sluice-example-file-budget"),
    (
        "SLUICE_FIXTURE_CONTRACT_0_1_0",
        "sluice-fixture-contract-0-1-0",
    ),
    ("SLUICE_FIXTURE_FILE_MONITOR", "sluice-fixture-file-monitor"),
    ("SLUICE_FIXTURE_RAW_FINDINGS", "sluice-fixture-raw-findings"),
    (
        "SLUICE_FIXTURE_MISSING_IMPORT",
        "sluice-fixture-missing-import",
    ),
    (
        "SLUICE_FIXTURE_CONTRACT_0_2_0",
        "sluice-fixture-contract-0-2-0",
    ),
];

fn main() {
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let root = manifest
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf();
    println!("cargo:rerun-if-changed=build.rs");
    println!(
        "cargo:rerun-if-changed={}",
        manifest.join("fixtures").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("examples").join("rust-plugin").display()
    );
    if let Err(e) = sluice_component_build::ensure_wasm_target() {
        panic!("\n\n{e}\n\n");
    }
    let packages: Vec<&str> = COMPONENTS.iter().map(|(_, p)| *p).collect();
    let target_dir = sluice_component_build::wasm_target_dir(&root);
    let built = sluice_component_build::build_components(&root, &target_dir, &packages)
        .unwrap_or_else(|e| panic!("\n\nbuilding the test components failed:\n{e}\n\n"));
    for (var, package) in COMPONENTS {
        let c = built
            .iter()
            .find(|c| c.package == *package)
            .unwrap_or_else(|| panic!("no component was built for {package}"));
        println!("cargo:rustc-env={var}={}", c.wasm.display());
    }
    println!("cargo:rustc-env=SLUICE_WORKSPACE_ROOT={}", root.display());
}
