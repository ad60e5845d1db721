//! The runner's notion of "now" for everything durable: gate decisions, approvals,
//! overrides and their expiry, time windows, stage entries.
//!
//! In production it is the system clock. Tests control it: with
//! `SLUICE_TEST_CLOCK=<file>`, the file holds one RFC 3339 instant
//! (`2026-11-30T08:00:00Z`), re-read on every [`Clock::now`]; a test moves time by
//! rewriting the file, never by sleeping. How often a waiting run re-evaluates its gates
//! is real time: [`Clock::poll_interval`], 10 s by default, `SLUICE_GATE_POLL_MS` in
//! tests.

use std::sync::Arc;
use std::time::Duration;

/// Where the current time comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> jiff::Timestamp;
    /// How long a waiting run sleeps (real time) before it evaluates its gates again.
    fn poll_interval(&self) -> Duration;
}

/// The clock a command uses: the test clock when `SLUICE_TEST_CLOCK` is set, else the
/// system clock. An unreadable or malformed test clock file is an error naming the file.
pub fn from_env() -> Result<Arc<dyn Clock>, String> {
    todo!("issue 11: system clock and file-driven test clock")
}
