//! `sluice plugin check REF`: the conformance kit. The checks every plugin must pass,
//! runnable by any author and by CI on every built-in: `describe()` returns a valid
//! schema that closes its objects; `run()` with the schema's examples returns a
//! well-formed report; a denied path becomes `run-error::denied` naming a grant;
//! findings have stable fingerprints; no output flood.
//!
//! Skeleton: the `kit` part of issue 14 builds it.

use super::AuthoringError;

/// Check a plugin. Skeleton.
pub fn unavailable() -> AuthoringError {
    AuthoringError::Unavailable("check")
}
