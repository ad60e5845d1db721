//! `builtin:canary`: synthetic HTTP checks, each a flow of requests whose responses
//! are asserted on and whose values feed the next request.
//!
//! ```toml
//! [[monitor]]
//! id = "shop"
//! uses = "builtin:canary"
//! interval = "1m"
//! [monitor.grants]
//! net = ["http://127.0.0.1:8080"]
//! secrets = ["probe-password"]
//!
//! [[monitor.with.checks]]
//! name = "login-and-cart"
//! retries = 2
//! retry-delay = "500ms"
//!
//! [[monitor.with.checks.requests]]
//! name = "login"
//! method = "POST"
//! url = "http://127.0.0.1:8080/login"
//! json = { user = "probe", password = "{{secret.probe-password}}" }
//! capture = { token = { json-path = "$.token" } }
//! expect = { status = 200, max-latency = "300ms" }
//!
//! [[monitor.with.checks.requests]]
//! name = "get-cart"
//! url = "http://127.0.0.1:8080/cart"
//! headers = { authorization = "Bearer {{token}}" }
//! expect = { status = 200, json = [{ path = "$.items", length = ">= 1" }] }
//! ```
//!
//! Every run of a check is one data point named after the check: positive when every
//! assertion of every request held (on some attempt: a failed check is retried
//! `retries` times, `retry-delay` apart), negative with the first failed assertion of
//! the last attempt as its detail (`get-cart: $.items.length() expected >= 1, got 0`).
//! A service that does not answer is a negative point too; a request the `net` grant
//! refuses is an error naming the grant to add. Metrics: `request.latency` (ms, per
//! check and request) and `check.duration` (ms, per check, all attempts).
//!
//! Modules: [`config`] reads and checks the `with` table, [`template`] fills
//! `{{name}}`, [`flow`] runs one attempt of a check and judges its responses.

pub mod config;
pub mod flow;
pub mod template;

use std::time::{Duration, Instant};

use sluice_sdk::http::{Request, Response};
use sluice_sdk::monitor::{
    CheckContext, CheckResult, HostTransport, Monitor, Transport, format_duration, millis,
};
use sluice_sdk::{DataPoint, Metric, RunError};

use config::{Check, Config, prepare};
use flow::{Environment, attempt, read_secrets};

/// The monitor.
pub struct Canary;

impl Monitor for Canary {
    type Config = Config;
    const NAME: &'static str = "canary";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SUMMARY: &'static str = "Synthetic HTTP checks: request flows with captured values and assertions on status, latency, headers, body and JSON paths; one data point per check run.";

    fn check(config: Config, ctx: &CheckContext) -> Result<CheckResult, RunError> {
        run_checks(&config, ctx, &mut HostEnvironment::default())
    }
}

sluice_sdk::export_monitor!(Canary);

/// The host's HTTP, a real pause, the host's secrets.
#[derive(Default)]
pub struct HostEnvironment {
    transport: HostTransport,
}

impl Environment for HostEnvironment {
    fn send(&mut self, request: &Request) -> (Result<Response, sluice_sdk::http::Error>, Duration) {
        self.transport.send(request)
    }

    fn pause(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn secret(&self, name: &str) -> Result<String, RunError> {
        sluice_sdk::secrets::get(name)
    }
}

/// What one check came to, over its attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutcome {
    /// The check's data point.
    pub point: DataPoint,
    /// Its metrics.
    pub metrics: Vec<Metric>,
}

/// Run every check of `config` (each with its retries) through `env`.
pub fn run_checks(
    config: &Config,
    _ctx: &CheckContext,
    env: &mut dyn Environment,
) -> Result<CheckResult, RunError> {
    let prepared = prepare(config)?;
    let mut result = CheckResult::new("");
    for check in &prepared.checks {
        let outcome = run_check(check, env)?;
        result = result
            .with_data_point(outcome.point)
            .with_metrics(outcome.metrics);
    }
    let total = result.data_points.len();
    let failed: Vec<&DataPoint> = result.data_points.iter().filter(|p| !p.positive).collect();
    let summary = match failed.first() {
        None if total == 1 => format!("check {} passed", result.data_points[0].name),
        None => format!("{total} checks passed"),
        Some(first) if total == 1 => format!("check {} failed: {}", first.name, first.detail),
        Some(first) => format!(
            "{} of {total} checks failed; {}: {}",
            failed.len(),
            first.name,
            first.detail
        ),
    };
    Ok(result.with_summary(summary))
}

/// Run one check, retrying it while it fails and retries are left.
pub fn run_check(check: &Check, env: &mut dyn Environment) -> Result<CheckOutcome, RunError> {
    let secrets = read_secrets(check, env)?;
    let started = Instant::now();
    let attempts_allowed = check.retries + 1;
    let mut metrics = Vec::new();
    let mut number = 0;
    let last = loop {
        number += 1;
        let outcome = attempt(check, &secrets, env)?;
        for (request, latency) in &outcome.latencies {
            metrics.push(
                Metric::new("request.latency", millis(*latency), "ms")
                    .tag("check", &check.name)
                    .tag("request", request)
                    .tag("attempt", number),
            );
        }
        if outcome.failure.is_none() || number >= attempts_allowed {
            break outcome;
        }
        if let Some(failure) = &outcome.failure {
            sluice_sdk::log::write(
                sluice_sdk::log::Level::Warn,
                format!(
                    "check {}: attempt {number} of {attempts_allowed} failed: {failure}; retrying",
                    check.name
                ),
                [("retry-in", format_duration(check.retry_delay))],
            );
        }
        env.pause(check.retry_delay);
    };
    let elapsed = started.elapsed();
    metrics.push(Metric::new("check.duration", millis(elapsed), "ms").tag("check", &check.name));
    metrics.push(Metric::new("check.attempts", f64::from(number), "").tag("check", &check.name));
    let point = match &last.failure {
        None => {
            let requests = last.latencies.len();
            let plural = if requests == 1 { "" } else { "s" };
            let retried = if number > 1 {
                format!(" on attempt {number} of {attempts_allowed}")
            } else {
                String::new()
            };
            DataPoint::positive(
                &check.name,
                format!(
                    "{requests} request{plural} passed in {}{retried}",
                    format_duration(last.latencies.iter().map(|(_, d)| *d).sum())
                ),
            )
        }
        Some(failure) => {
            let after = if number > 1 {
                format!(" (after {number} attempts)")
            } else {
                String::new()
            };
            DataPoint::negative(&check.name, format!("{failure}{after}"))
        }
    };
    Ok(CheckOutcome { point, metrics })
}

#[cfg(test)]
mod tests;
