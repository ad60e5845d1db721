//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::PathBuf;

/// A file under `tests/data/`.
pub fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

/// Read a file under `tests/data/`.
pub fn read(path: &str) -> String {
    std::fs::read_to_string(data(path))
        .unwrap_or_else(|e| panic!("cannot read test data {path}: {e}"))
}

/// The RustSec advisory database in OSV form, `<workspace>/../shared/data/osv/crates.io`.
/// Panics with a clear message when it is missing.
pub fn rustsec_db() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/osv/crates.io");
    assert!(
        path.is_dir(),
        "the RustSec OSV database is missing: expected a folder of RUSTSEC-*.json files at {} \
         (the `shared/` folder sits next to the workspace; in CI it is checked out there)",
        path.display()
    );
    path
}
