//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::PathBuf;

/// A file under `tests/data/`. The Cargo.lock files (`cargo/...`) are security-scan's
/// test data, which its advisory tests also read; they are not copied here.
pub fn data(path: &str) -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if path.starts_with("cargo/") {
        return manifest
            .join("../../plugins/security-scan/tests/data")
            .join(path);
    }
    manifest.join("tests/data").join(path)
}

/// Read a file under `tests/data/`.
pub fn read(path: &str) -> String {
    std::fs::read_to_string(data(path))
        .unwrap_or_else(|e| panic!("cannot read test data {path}: {e}"))
}
