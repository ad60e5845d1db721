//! `sluice canary FILE`: the monitors of a file run standalone, as a long-running
//! process. FILE is any TOML file with `[[monitor]]` tables (a pipeline file works
//! too; its other tables are not looked at, and its `[secrets]` are resolved when it
//! is one). Every monitor with `uses` checks on its interval until SIGINT/SIGTERM (or
//! `--checks N` each, for tests); every check is recorded in the state store
//! (`--state PATH`, default `.sluice/state.db` next to FILE) before its line is
//! printed, so every pipeline sharing that store sees the checks in its alarms gates
//! and bakes; and `/metrics` is served on `--metrics-addr` in Prometheus's text format.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_spanned::Spanned;

use super::{ExpectedError, config_error, start_host};
use crate::capabilities::logs::StepLog;
use crate::capabilities::secrets::SecretAccess;
use crate::config::{self, SourceFile};
use crate::console;
use crate::host::cache::CacheRoot;
use crate::host::monitor::{MonitorGrants, MonitorInstance};
use crate::monitors::MonitorSpec;
use crate::monitors::metrics::CanaryMetrics;
use crate::monitors::schedule::{CheckReport, Recorder, run_checks};
use crate::secrets::SecretValues;

/// Options of `sluice canary`.
#[derive(clap::Args, Debug)]
pub(super) struct CanaryArgs {
    /// A TOML file with `[[monitor]]` tables (a pipeline file works too).
    file: PathBuf,
    /// Serve Prometheus metrics on this address, e.g. 127.0.0.1:9464 (port 0: any free
    /// port, printed at start).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Stop after this many checks of each monitor [default: run until stopped]
    #[arg(long, value_name = "N")]
    checks: Option<u64>,
}

/// A `sluice canary` file that is not a pipeline: only its `[[monitor]]` tables are
/// read (other tables are left alone).
#[derive(Deserialize)]
struct RawCanaryFile {
    #[serde(default, rename = "monitor")]
    monitors: Vec<Spanned<crate::monitors::spec::RawMonitor>>,
}

/// The monitors of FILE, the values of the secrets they may be granted, and the
/// file's folder.
fn read_monitors(
    file: &Path,
) -> Result<(Vec<MonitorSpec>, SourceFile, SecretValues, PathBuf), ExpectedError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        ExpectedError::Config(format!(
            "cannot read the canary file {}: {e}",
            file.display()
        ))
    })?;
    let is_pipeline = toml::from_str::<toml::Table>(&text)
        .map(|t| t.contains_key("pipeline"))
        .unwrap_or(false);
    if is_pipeline {
        let pipeline = config::load(file).map_err(|e| match e {
            config::PipelineFileError::Invalid(errors) => config_error(&errors),
            other => ExpectedError::Config(other.to_string()),
        })?;
        let secrets = SecretValues::resolve(&pipeline).map_err(|errors| {
            ExpectedError::Config(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\nerror: "),
            )
        })?;
        return Ok((pipeline.monitors, pipeline.source, secrets, pipeline.dir));
    }
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let source = SourceFile {
        path: file.to_path_buf(),
        text,
    };
    let raw: RawCanaryFile = toml::from_str(&source.text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        config_error(&[source.error(
            at,
            crate::suggest::complete_unknown_name(e.message().trim()),
        )])
    })?;
    let mut errors = Vec::new();
    let monitors = crate::monitors::spec::build_monitors(
        &source,
        &dir,
        &raw.monitors,
        &HashSet::new(),
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(config_error(&errors));
    }
    Ok((monitors, source, SecretValues::default(), dir))
}

/// One line per check: when, which monitor, what it came to, how long it took.
fn check_line(report: &CheckReport) -> String {
    let r = &report.row;
    let skipped = if report.skipped > 0 {
        format!(", {} ticks skipped so far", report.skipped)
    } else {
        String::new()
    };
    format!(
        "{} {} {}: {} positive, {} negative in {}ms{skipped}: {}",
        r.finished_at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
        r.monitor,
        r.outcome.as_str(),
        r.positive,
        r.negative,
        report.latency.as_millis(),
        crate::render::shown(&r.summary)
    )
}

/// Serve `/metrics` on `listener` until the task is dropped.
async fn serve_metrics(listener: tokio::net::TcpListener, metrics: Arc<CanaryMetrics>) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    async move {
                        if req.uri().path() == "/metrics" {
                            hyper::Response::builder()
                                .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                                .body(Full::new(Bytes::from(metrics.render())))
                        } else {
                            hyper::Response::builder()
                                .status(404)
                                .body(Full::new(Bytes::from(
                                    "not found; metrics are at /metrics\n",
                                )))
                        }
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Run `sluice canary`.
pub(super) async fn canary(
    args: CanaryArgs,
    state_flag: Option<PathBuf>,
    cache_root: Option<CacheRoot>,
) -> Result<u8, ExpectedError> {
    let (monitors, source, secrets, dir) = read_monitors(&args.file)?;
    let checking: Vec<MonitorSpec> = monitors.into_iter().filter(|m| m.uses.is_some()).collect();
    if checking.is_empty() {
        return Err(ExpectedError::Config(format!(
            "{}: no `[[monitor]]` with `uses`; sluice canary runs the monitors that check (add `uses = \"builtin:http-check\"`, for example)",
            args.file.display()
        )));
    }
    let host = start_host(checking.len(), cache_root)?;
    let loaded = crate::host::monitor::load_all(&host, &source, &checking)
        .await
        .map_err(|errors| config_error(&errors))?;
    let state_path = state_flag.unwrap_or_else(|| dir.join(".sluice").join("state.db"));
    // A monitor may read files; never the state database its checks are recorded in.
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let db_dir = state_path.parent().map(real).unwrap_or_default();
    for m in &checking {
        if let Some(grant) = m.grants.read.iter().find(|g| db_dir.starts_with(real(g))) {
            return Err(ExpectedError::Config(format!(
                "monitor `{}`: its `read` grant {} covers the state database {}; grant a narrower folder, or move the database with --state",
                m.id,
                grant.display(),
                state_path.display()
            )));
        }
    }
    let store = Arc::new(crate::state::Store::open(&state_path).map_err(|e| {
        ExpectedError::Config(format!(
            "cannot open the state database {}: {e}",
            state_path.display()
        ))
    })?);
    let clock = crate::clock::from_env().map_err(ExpectedError::Config)?;
    let metrics = Arc::new(CanaryMetrics::default());
    let server = match args.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                ExpectedError::Config(format!("cannot serve metrics on {addr}: {e}"))
            })?;
            let bound = listener.local_addr().unwrap_or(addr);
            console::out_line(&format!("metrics: http://{bound}/metrics"));
            Some(tokio::spawn(serve_metrics(listener, metrics.clone())))
        }
        None => None,
    };
    let secrets = Arc::new(secrets);
    let redactor = Arc::new(secrets.redactor());
    let file = std::fs::canonicalize(&args.file).unwrap_or(args.file.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for spec in checking {
        let plugin = loaded[&spec.id].clone();
        let log = StepLog::in_memory(64 << 10, redactor.clone());
        let access = Arc::new(SecretAccess::resolve(&spec.grants.secrets, &secrets));
        let grants = MonitorGrants::resolve(&spec.grants, access, &log)
            .map_err(|e| ExpectedError::Config(format!("monitor `{}`: {e}", spec.id)))?;
        let recorder = Recorder {
            store: store.clone(),
            clock: clock.clone(),
            source: format!("canary {}", file.display()),
            workdir: dir.clone(),
            redactor: redactor.clone(),
        };
        let metrics = metrics.clone();
        let max = args.checks;
        tasks.spawn(async move {
            let instance = MonitorInstance::new(plugin, grants, log);
            run_checks(&spec, instance, &recorder, max, |report| {
                metrics.observe(report);
                console::out_line(&check_line(report));
            })
            .await
            .map_err(|e| format!("monitor `{}`: cannot record its checks: {e}", spec.id))
        });
    }
    let all_done = async {
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(ExpectedError::Internal(e)),
                Err(e) => {
                    return Err(ExpectedError::Internal(format!(
                        "a monitor task failed: {e}"
                    )));
                }
            }
        }
        Ok(super::exit::OK)
    };
    let code = tokio::select! {
        done = all_done => done,
        code = super::stop_signal() => Ok(code),
    };
    if let Some(server) = server {
        server.abort();
    }
    if let Err(e) = store.checkpoint() {
        console::err_line(&format!(
            "warning: cannot checkpoint the state database: {e}"
        ));
    }
    code
}
