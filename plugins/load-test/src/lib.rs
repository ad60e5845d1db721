//! `builtin:load-test`: an HTTP load test against the artifact under test, judged by
//! k6-style thresholds.
//!
//! ```toml
//! [[stage.step]]
//! id = "load"
//! uses = "builtin:load-test"
//! with = { model = "closed", vus = 16, duration = "30s", warm-up = "5s",
//!          requests = [{ url = "http://127.0.0.1:8080/v/{{version}}", expect = ["2xx"] }],
//!          thresholds = { http_req_duration = ["p(99)<50"], http_req_failed = ["rate<0.01"] } }
//! [stage.step.grants]
//! net = ["http://127.0.0.1:8080"]
//! write = ["load-test"]
//! ```
//!
//! The load model, requests, thresholds and seed are `sluice-loadgen`'s [`TestSpec`]
//! (docs/design/0012-load-generator.md); this plugin adds the per-request `timeout` and
//! the `output` folder. The test itself runs in the host's load generator
//! ([`sluice_sdk::load`], contract 0.1.7: the same engine, driven natively over
//! keep-alive connections; docs/design/0036-load-generator-on-the-host.md): the plugin
//! checks its configuration, starts the test, logs its progress every second, and turns
//! the engine's report into the step's. `{{version}}` in a request is the version of
//! the run's artifact under test.
//!
//! The step fails when a threshold fails (the summary names each threshold with the
//! observed value and by how much it missed; each threshold is a test case), and at the
//! start when the step's `net` grant refuses a request's origin (the error names the grant to
//! add; nothing is sent).
//! It reports the figures as metrics and writes `latency.hgrm` (the percentile spectrum in
//! HdrHistogram's text format) and `load-test.json` (histograms and per-second series)
//! into `output`, which must be granted for writing.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sluice_loadgen::TestSpec;
use sluice_sdk::load::{self, StartError};
use sluice_sdk::{
    Capability, HumanDuration, Metric, Plugin, Report, RunError, StepContext, TestCase,
};

/// Test suite name of the threshold test cases.
pub const SUITE: &str = "load-test";

/// How often the live progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The step's `with` table: the test plus what the plugin itself needs.
///
/// Read by hand ([`Config::from_value`]): serde's `flatten` of a [`TestSpec`], which
/// itself flattens its load model and refuses unknown keys, refuses every key of the
/// load model; the derive here gives the schema.
#[derive(schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// The load model, requests, thresholds and seed.
    #[serde(flatten)]
    pub test: TestSpec,
    /// Bound on connecting, on the first byte and between bytes of each request; a
    /// request that takes longer counts as a `timeout` error. Without it, the host's
    /// bounds apply: 10s to connect, 60s for the first byte and between bytes (never
    /// past the step's own timeout).
    pub timeout: Option<HumanDuration>,
    /// Folder (relative to the pipeline's folder, granted for writing) that receives
    /// `latency.hgrm` and `load-test.json`; default `load-test`.
    #[serde(default = "default_output")]
    pub output: String,
}

impl Config {
    /// Takes the plugin's own keys out of the table and reads the rest as the test.
    pub fn from_value(value: serde_json::Value) -> Result<Config, String> {
        let serde_json::Value::Object(mut table) = value else {
            return Err("with: expected a table".into());
        };
        let timeout = table
            .remove("timeout")
            .map(serde_json::from_value::<HumanDuration>)
            .transpose()
            .map_err(|e| format!("with.timeout: {e}"))?;
        let output = table
            .remove("output")
            .map(serde_json::from_value::<String>)
            .transpose()
            .map_err(|e| format!("with.output: {e}"))?
            .unwrap_or_else(default_output);
        let test = serde_json::from_value(serde_json::Value::Object(table))
            .map_err(|e| format!("with: {e}"))?;
        Ok(Config {
            test,
            timeout,
            output,
        })
    }
}

impl<'de> serde::Deserialize<'de> for Config {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Config, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Config::from_value(value).map_err(serde::de::Error::custom)
    }
}

fn default_output() -> String {
    "load-test".into()
}

/// The plugin.
pub struct LoadTest;

impl Plugin for LoadTest {
    type Config = Config;
    const NAME: &'static str = "load-test";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SUMMARY: &'static str =
        "Runs an HTTP load test (open or closed model) and judges it by k6-style thresholds.";

    fn capabilities() -> Vec<Capability> {
        vec![Capability::Network, Capability::WriteFiles]
    }

    fn run(config: Config, ctx: &StepContext) -> Result<Report, RunError> {
        run(&config, ctx)
    }
}

sluice_sdk::export_plugin!(LoadTest);

/// The template variables: `version` of the artifact under test, when the run has one.
pub fn variables(ctx: &StepContext) -> BTreeMap<String, String> {
    ctx.artifact()
        .map(|a| BTreeMap::from([("version".to_string(), a.version.clone())]))
        .unwrap_or_default()
}

fn run(config: &Config, ctx: &StepContext) -> Result<Report, RunError> {
    let variables = variables(ctx);
    // Checked here first too, so a configuration error reads as the engine words it.
    config
        .test
        .build(&variables)
        .map_err(|e| RunError::invalid_config(format!("with: {e}")))?;
    let spec =
        serde_json::to_string(&config.test).map_err(|e| RunError::failed(format!("with: {e}")))?;
    let variables: Vec<(String, String)> = variables.into_iter().collect();
    let timeout = config.timeout.map(Duration::from);
    let test = match load::start(&spec, &variables, timeout) {
        Ok(test) => test,
        Err(StartError::Denied(why)) => {
            return Err(RunError::denied(format!(
                "{why}\n(the load test stopped at the first refused request, before sending any)"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    loop {
        let p = test.progress(PROGRESS_EVERY);
        if p.done {
            break;
        }
        sluice_sdk::log::progress(
            p.elapsed.as_secs(),
            p.total.map(|t| t.as_secs()),
            p.to_string(),
        );
    }
    let wire = test.finish()?;
    let report = sluice_loadgen::Report::from_wire(&wire)
        .map_err(|e| RunError::failed(format!("the load generator's report: {e}")))?;
    finish(config, ctx, &report)
}

/// The step's report: summary, metrics, one test case per threshold, two artifacts.
fn finish(
    config: &Config,
    ctx: &StepContext,
    report: &sluice_loadgen::Report,
) -> Result<Report, RunError> {
    let s = &report.summary;
    let out = Path::new(&config.output);
    let dir = ctx.resolve(out);
    sluice_sdk::fs::create_dir_all(&dir)?;
    let hgrm = out.join("latency.hgrm");
    let json = out.join("load-test.json");
    sluice_sdk::fs::write(ctx.resolve(&hgrm), report.percentile_spectrum(true))?;
    let document = serde_json::to_string_pretty(&report.json())
        .map_err(|e| RunError::failed(format!("{}: {e}", json.display())))?;
    sluice_sdk::fs::write(ctx.resolve(&json), document)?;

    let mut text = report.text();
    if !s.passed {
        let failed = s.thresholds.iter().filter(|t| !t.passed).count();
        text = format!("{failed} threshold(s) failed: {text}");
    }
    let mut step = if s.passed {
        Report::passed(text)
    } else {
        Report::failed(text)
    };
    step = step
        .with_metrics(
            report
                .metrics()
                .into_iter()
                .map(|(name, value, unit)| Metric::new(name, value, unit)),
        )
        .with_test_cases(s.thresholds.iter().map(|t| {
            let case = if t.passed {
                TestCase::passed(SUITE, &t.name)
            } else {
                TestCase::failed(SUITE, &t.name)
            };
            case.with_message(t.message())
        }))
        .with_artifact(hgrm.to_string_lossy(), "text/plain")
        .with_artifact(json.to_string_lossy(), "application/json");
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_flattens_the_test_and_refuses_unknown_keys() {
        let c: Config = serde_json::from_str(
            r#"{"model": "closed", "vus": 2, "duration": "1s", "timeout": "2s", "output": "out",
                "requests": [{"url": "http://127.0.0.1:1/"}]}"#,
        )
        .unwrap();
        assert_eq!(c.output, "out");
        assert_eq!(c.timeout.map(Duration::from), Some(Duration::from_secs(2)));
        let e = serde_json::from_str::<Config>(
            r#"{"rate": 5, "duration": "1s", "requests": [{"url": "http://h/"}], "rps": 5}"#,
        )
        .err()
        .expect("an unknown key is refused")
        .to_string();
        assert!(e.contains("rps"), "{e}");
    }

    #[test]
    fn the_schema_names_the_plugin_keys_and_the_test_keys() {
        let schema = serde_json::to_string(&schemars::schema_for!(Config)).unwrap();
        for key in ["timeout", "output", "requests", "thresholds", "vus", "rate"] {
            assert!(schema.contains(&format!("\"{key}\"")), "{key}: {schema}");
        }
    }
}
