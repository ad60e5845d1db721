//! `sluice plugin run REF --with JSON [--grant KIND=VALUE]... [--workdir DIR]`: run one
//! plugin once, without a pipeline file, under the same sandbox and limits a pipeline
//! step gets, and return its report.
//!
//! Skeleton: the `kit` part of issue 14 builds it.

use super::AuthoringError;

/// Run one plugin once. Skeleton.
pub fn unavailable() -> AuthoringError {
    AuthoringError::Unavailable("run")
}
