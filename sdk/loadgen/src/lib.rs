//! `sluice-loadgen`: the engine of `builtin:load-test`, in plain Rust with no HTTP in it.
//!
//! The plugin owns the network (wasi:http, through the SDK); this crate owns everything
//! else: the load model ([`plan`]), the request mix ([`request`]), the state machine that
//! says what to send and until when to wait ([`run`]), HDR latency statistics and the
//! per-second series ([`stats`]), k6-style thresholds ([`threshold`]) and the report
//! ([`report`]). Time is a [`Duration`](std::time::Duration) since the start of the run
//! that the caller supplies, so the whole engine runs on a virtual clock in tests.
//!
//! A driver is one loop: report what finished, ask [`Run::next`], send or wait.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::time::Duration;
//! use sluice_loadgen::*;
//!
//! let spec: LoadSpec = serde_json::from_str(r#"{"rate": 50, "duration": "2s", "warm-up": "1s"}"#).unwrap();
//! let requests: Vec<RequestSpec> =
//!     serde_json::from_str(r#"[{"url": "http://127.0.0.1:8080/v/{{version}}", "expect": ["2xx"]}]"#).unwrap();
//! let thresholds: ThresholdsSpec = serde_json::from_str(r#"{"http_req_duration": ["p(99)<50"]}"#).unwrap();
//! let variables = BTreeMap::from([("version".to_string(), "1.2.3".to_string())]);
//!
//! let mut run = Run::new(
//!     Plan::new(&spec).unwrap(),
//!     Templates::new(&requests, &variables, 1).unwrap(),
//!     Thresholds::parse(&thresholds).unwrap(),
//! );
//! // A stand-in for wasi:http: every request takes 3 ms and answers 200.
//! let mut in_flight: Vec<(Duration, RequestId)> = Vec::new();
//! let mut now = Duration::ZERO; // the plugin reads its monotonic clock instead
//! loop {
//!     // 1. Report every request that finished (the plugin: every ready pollable).
//!     in_flight.sort();
//!     while in_flight.first().is_some_and(|(at, _)| *at <= now) {
//!         let (at, id) = in_flight.remove(0);
//!         run.finished(id, at, &Outcome::Status(200)).unwrap();
//!     }
//!     // 2. Ask what to do.
//!     match run.next(now) {
//!         Next::Send { id, template, .. } => {
//!             let request = &run.requests()[template];
//!             assert_eq!(request.url, "http://127.0.0.1:8080/v/1.2.3");
//!             in_flight.push((now + Duration::from_millis(3), id));
//!         }
//!         // The plugin: poll the in-flight pollables plus a timer for `until`.
//!         Next::Wait { until } => {
//!             let first_finish = in_flight.iter().map(|f| f.0).min();
//!             now = [until, first_finish].into_iter().flatten().min().unwrap();
//!         }
//!         Next::Done => break,
//!     }
//! }
//! let report = run.finish(now);
//! assert_eq!(report.summary.requests, 100); // 2 s at 50/s; the warm-up is not measured
//! assert!(report.summary.passed, "{}", report.text());
//! let _hgrm: String = report.percentile_spectrum(true);
//! let _json: serde_json::Value = report.json();
//! ```

pub mod duration;
pub mod plan;
pub mod report;
pub mod request;
pub mod run;
pub mod spec;
pub mod stats;
pub mod threshold;

pub use duration::{DurationError, parse_duration};
pub use plan::{Arrivals, LoadSpec, ModelKind, Plan, PlanError, StageSpec};
pub use report::{Latency, Report, Summary, TemplateSummary, WireError};
pub use request::{Class, Outcome, Request, RequestSpec, TemplateError, Templates};
pub use run::{Next, Progress, RequestId, Run, StopReason, UnknownRequest};
pub use spec::{SpecError, TestSpec};
pub use stats::{Second, Stats};
pub use threshold::{
    Threshold, ThresholdError, ThresholdResult, ThresholdSpec, Thresholds, ThresholdsSpec,
};
