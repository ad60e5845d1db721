//! `sluice plugin test REF --case DIR...`: run fixture cases and compare each report
//! with the expected one, showing a diff.
//!
//! A case is a folder:
//! - `case.toml`: `with` (the step's `with` table), `[grants]` (`read`, `write`, `exec`,
//!   `net`, `env`, as in a pipeline; relative paths are relative to the case folder),
//!   `workdir` (default: the case folder), and `[expect]` with `ignore`, a list of
//!   JSON pointers or `*`-patterns of fields not compared (durations, for instance),
//!   and `outcome` (`ok`, the default, or the `run-error` kind expected);
//! - `expected.json`: the expected report (as `sluice plugin run --format json` prints
//!   it); `sluice plugin test --bless` writes it from the actual report;
//! - anything else: the fixture files the case reads.
//!
//! Skeleton: the `kit` part of issue 14 builds it.

use super::AuthoringError;

/// Run cases. Skeleton.
pub fn unavailable() -> AuthoringError {
    AuthoringError::Unavailable("test")
}
