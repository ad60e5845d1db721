//! Paths of the components the end-to-end tests (`tests/all`) run, built from source
//! by this crate's build script.

/// The adversarial fixture (`tests/fixtures/adversary`): one plugin that, depending on
/// its `mode`, behaves or attacks the sandbox.
pub const ADVERSARY: &str = env!("SLUICE_FIXTURE_ADVERSARY");

/// The Rust example plugin (`examples/rust-plugin`).
pub const FILE_BUDGET: &str = env!("SLUICE_EXAMPLE_FILE_BUDGET");

/// The workspace's top folder.
pub const WORKSPACE_ROOT: &str = env!("SLUICE_WORKSPACE_ROOT");

/// A plugin built against the first contract, `sluice:plugin@0.1.0`
/// (`tests/fixtures/contract-0.1.0`).
pub const CONTRACT_0_1_0: &str = env!("SLUICE_FIXTURE_CONTRACT_0_1_0");

/// A monitor (world `monitor`) whose checks report what a file lists
/// (`tests/fixtures/file-monitor`).
pub const FILE_MONITOR: &str = env!("SLUICE_FIXTURE_FILE_MONITOR");
