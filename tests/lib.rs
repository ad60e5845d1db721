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

/// A plugin made without the SDK that leaves its findings' fingerprints empty, for the
/// host to compute (`tests/fixtures/raw-findings`).
pub const RAW_FINDINGS: &str = env!("SLUICE_FIXTURE_RAW_FINDINGS");

/// A step plugin importing `example:missing/thing`, which no host provides
/// (`tests/fixtures/missing-import`).
pub const MISSING_IMPORT: &str = env!("SLUICE_FIXTURE_MISSING_IMPORT");

/// A plugin of a made-up incompatible contract, `sluice:plugin@0.2.0`
/// (`tests/fixtures/contract-0.2.0`).
pub const CONTRACT_0_2_0: &str = env!("SLUICE_FIXTURE_CONTRACT_0_2_0");
