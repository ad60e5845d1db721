//! The host's load generator (the `load-generator` import of contract 0.1.7): hand the
//! runner a whole HTTP load test and poll it, instead of sending every request through
//! [`http`](crate::http). The runner drives `sluice-loadgen`'s engine natively over
//! keep-alive connections, under the step's `net` grant (every origin checked before
//! the test starts). Why: docs/design/0036-load-generator-on-the-host.md.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! # fn run() -> Result<(), sluice_sdk::RunError> {
//! let spec = serde_json::json!({
//!     "model": "closed", "vus": 16, "duration": "30s",
//!     "requests": [{ "url": "http://127.0.0.1:8080/health" }],
//!     "thresholds": { "http_req_duration": ["p(99)<50"] },
//! });
//! let run = sluice_sdk::load::start(&spec.to_string(), &[], None)?;
//! loop {
//!     let p = run.progress(Duration::from_secs(1));
//!     sluice_sdk::log::info(&format!("{} requests, {:.0}/s", p.requests, p.rate));
//!     if p.done {
//!         break;
//!     }
//! }
//! // `sluice-loadgen`'s `Report::from_wire` reads it back; its `summary` is plain JSON.
//! let report: serde_json::Value = serde_json::from_str(&run.finish()?).unwrap();
//! # let _ = report; Ok(()) }
//! ```
//!
//! The spec is `sluice-loadgen`'s `TestSpec` (docs/design/0012-load-generator.md): the
//! load model's keys, `requests`, `thresholds` and `seed`. Outside a WebAssembly host
//! (a plugin's native unit tests) [`start`] fails: there is no runner to run the test.

use std::time::Duration;

use crate::RunError;

/// Where a test is (see [`LoadRun::progress`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Since the test began, warm-up included.
    pub elapsed: Duration,
    /// Still in the warm-up.
    pub warming_up: bool,
    /// Measured requests finished.
    pub requests: u64,
    /// Requests finished per second over the last whole second.
    pub rate: f64,
    /// The target now: iterations per second (open model) or virtual users (closed).
    pub target: f64,
    /// Measured failures.
    pub errors: u64,
    /// Measured dropped iterations.
    pub dropped: u64,
    /// Requests in flight.
    pub in_flight: u32,
    /// p99 latency so far, ms.
    pub p99_ms: Option<f64>,
    /// The schedule's length, warm-up included, when it has one.
    pub total: Option<Duration>,
    /// The test is over: [`LoadRun::finish`] returns at once.
    pub done: bool,
}

impl std::fmt::Display for Progress {
    /// `1.0s: 28112 requests, 28112/s (target 16), 0 errors, 0 dropped, p99 0.61 ms`:
    /// the line `builtin:load-test` logs as its progress.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let phase = if self.warming_up { " (warm-up)" } else { "" };
        write!(
            f,
            "{:.1}s{phase}: {} requests, {:.0}/s (target {:.0}), {} errors, {} dropped, p99 {}",
            self.elapsed.as_secs_f64(),
            self.requests,
            self.rate,
            self.target,
            self.errors,
            self.dropped,
            self.p99_ms
                .map_or("-".to_string(), |v| format!("{v:.2} ms"))
        )
    }
}

/// Why a test did not start.
#[derive(Debug, Clone, PartialEq)]
pub enum StartError {
    /// The spec is not a valid test (the text names the key at fault).
    Invalid(String),
    /// A request's origin is not granted (the text names the grant to add); nothing
    /// was sent.
    Denied(String),
    /// The runner could not run it.
    Failed(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Invalid(m) | StartError::Denied(m) | StartError::Failed(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for StartError {}

impl From<StartError> for RunError {
    fn from(e: StartError) -> RunError {
        match e {
            StartError::Invalid(m) => RunError::invalid_config(format!("with: {m}")),
            StartError::Denied(m) => RunError::denied(m),
            StartError::Failed(m) => RunError::failed(m),
        }
    }
}

/// Starts a test: `spec` is a `TestSpec` as JSON text, `variables` fill `{{name}}` in
/// its requests, `timeout` bounds connecting, the first byte and the gap between bytes
/// of each request (default: 10 s to connect, 60 s to read; never past the step's
/// timeout).
pub fn start(
    spec: &str,
    variables: &[(String, String)],
    timeout: Option<Duration>,
) -> Result<LoadRun, StartError> {
    let timeout_ms = timeout.map_or(0, |t| {
        u32::try_from(t.as_millis()).unwrap_or(u32::MAX).max(1)
    });
    host::start(spec, variables, timeout_ms).map(|inner| LoadRun { inner })
}

/// A test the runner is running; dropping it stops the test.
pub struct LoadRun {
    inner: host::Run,
}

impl LoadRun {
    /// Waits up to `wait` (or until the test is over) and says where it is.
    pub fn progress(&self, wait: Duration) -> Progress {
        host::progress(
            &self.inner,
            u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
        )
    }

    /// Ends the schedule now; requests in flight count as interrupted.
    pub fn stop(&self) {
        host::stop(&self.inner);
    }

    /// Waits for the end of the test and returns its report: `sluice-loadgen`'s `Report`
    /// as JSON (`Report::from_wire`).
    pub fn finish(self) -> Result<String, RunError> {
        host::finish(&self.inner).map_err(RunError::failed)
    }
}

#[cfg(target_arch = "wasm32")]
mod host {
    use std::time::Duration;

    use super::{Progress, StartError};
    use crate::bindings::sluice::plugin::load_generator as wit;

    pub type Run = wit::LoadRun;

    pub fn start(
        spec: &str,
        variables: &[(String, String)],
        timeout_ms: u32,
    ) -> Result<Run, StartError> {
        wit::start(spec, variables, timeout_ms).map_err(|e| match e {
            wit::StartError::Invalid(m) => StartError::Invalid(m),
            wit::StartError::Denied(m) => StartError::Denied(m),
            wit::StartError::Failed(m) => StartError::Failed(m),
        })
    }

    pub fn progress(run: &Run, wait_ms: u32) -> Progress {
        let p = run.progress(wait_ms);
        Progress {
            elapsed: Duration::from_millis(p.elapsed_ms),
            warming_up: p.warming_up,
            requests: p.requests,
            rate: p.rate,
            target: p.target,
            errors: p.errors,
            dropped: p.dropped,
            in_flight: p.in_flight,
            p99_ms: p.p99_ms,
            total: p.total_ms.map(Duration::from_millis),
            done: p.done,
        }
    }

    pub fn stop(run: &Run) {
        run.stop();
    }

    pub fn finish(run: &Run) -> Result<String, String> {
        run.finish()
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod host {
    //! Native stand-in: no runner, so no test starts.
    use super::{Progress, StartError};

    pub enum Run {}

    pub fn start(_: &str, _: &[(String, String)], _: u32) -> Result<Run, StartError> {
        Err(StartError::Failed(
            "the load generator needs the Sluice runner (this is a native build)".into(),
        ))
    }

    pub fn progress(run: &Run, _: u32) -> Progress {
        match *run {}
    }

    pub fn stop(run: &Run) {
        match *run {}
    }

    pub fn finish(run: &Run) -> Result<String, String> {
        match *run {}
    }
}
