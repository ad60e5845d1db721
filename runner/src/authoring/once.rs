//! `sluice plugin run REF --with JSON [--grant KIND=VALUE]... [--workdir DIR]`: run one
//! plugin once, without a pipeline file, under the same sandbox and limits a pipeline
//! step gets, and return its report.
//!
//! There is no second, weaker way to run a step: a [`Session`] writes the invocation
//! as a one-step pipeline (the `with` table, the grants and the timeout as a pipeline
//! file would hold them), checks it with the pipeline file's own checks
//! ([`crate::config::parse`], then [`crate::validate::validate`] for the schema) and
//! runs it with the executor ([`crate::executor::run`]), not recorded in the state
//! store, in a run folder inside a temporary folder that the session hides from steps
//! like `.sluice/` and removes when it ends. `plugin test` and `plugin check` run their
//! cases and checks through the same session.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::AuthoringError;
use crate::config::{self, PluginRef};
use crate::events::{Event, EventSink, Status};
use crate::executor::{self, RunOptions, StepRecord};
use crate::folders::OwnedDir;
use crate::host::bindings::types;
use crate::host::cache::CacheRoot;
use crate::host::plugin::PluginHost;
use crate::host::step::StepFailure;
use crate::sandbox::Sandbox;
use crate::secrets::SecretValues;
use crate::validate;

/// The pipeline, stage and step names a kit run carries (its `step-input` says them).
pub const PIPELINE_NAME: &str = "plugin-run";
pub const STAGE_NAME: &str = "plugin";
pub const STEP_ID: &str = "run";

/// Cap of a kit run's step log, as `sluice run`'s default `--log-limit`.
pub const DEFAULT_LOG_LIMIT: u64 = 16 << 20;

/// The kinds of grant `--grant KIND=VALUE` takes, as a pipeline's `[stage.step.grants]`
/// names them.
const GRANT_KINDS: [&str; 5] = ["read", "write", "exec", "net", "env"];

/// One `--grant KIND=VALUE`, with a relative `read`/`write` folder made absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub kind: String,
    pub value: String,
}

impl Grant {
    /// Parse `KIND=VALUE`; relative `read` and `write` folders are resolved against
    /// `base`. Anything else is a usage error naming the flag.
    pub fn parse(flag: &str, base: &Path) -> Result<Grant, AuthoringError> {
        let usage = |why: String| {
            AuthoringError::Usage(format!(
                "--grant `{flag}`: {why}; use read=DIR, write=DIR, exec=PROGRAM, net=HOST:PORT or net=ORIGIN, env=NAME"
            ))
        };
        let Some((kind, value)) = flag.split_once('=') else {
            return Err(usage("no `=` between the kind and the value".into()));
        };
        let kind = kind.trim();
        if !GRANT_KINDS.contains(&kind) {
            let hint = crate::suggest::closest(kind, GRANT_KINDS.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Err(usage(format!("unknown grant kind `{kind}`{hint}")));
        }
        if value.is_empty() {
            return Err(usage(format!("the `{kind}` grant has an empty value")));
        }
        let value = match kind {
            "read" | "write" => {
                let path = config::expand_home(value);
                base.join(path).display().to_string()
            }
            _ => value.to_string(),
        };
        Ok(Grant {
            kind: kind.to_string(),
            value,
        })
    }
}

/// One run of one plugin: what `sluice plugin run`'s flags (or a test case) say.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `builtin:<name>`, or a path to a component (relative to the current folder).
    pub reference: String,
    /// The step's `with` table.
    pub with: serde_json::Value,
    pub grants: Vec<Grant>,
    /// The step's working folder (the pipeline's folder of a pipeline step).
    pub workdir: PathBuf,
    /// The step's `timeout`, as a pipeline writes it (`30s`); `None`: the default.
    pub timeout: Option<String>,
}

/// How a plugin ended without a report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    /// `invalid-config`, `denied` or `failed` (the plugin's own `run-error`), or what
    /// the host saw: `trap`, `timeout`, `memory-limit`, `limits` (a program of the step
    /// ran into the step's limits), `setup` (the step could not start).
    pub kind: String,
    /// What went wrong, redacted like every text of a run.
    pub message: String,
}

impl Failure {
    fn of(failure: &StepFailure, message: String) -> Failure {
        let kind = match failure {
            StepFailure::InvalidConfig(_) => "invalid-config",
            StepFailure::Denied(_) => "denied",
            StepFailure::Plugin(_) => "failed",
            StepFailure::Trap(_) => "trap",
            StepFailure::Timeout(_) => "timeout",
            StepFailure::MemoryLimit(_) => "memory-limit",
            StepFailure::Limits(_) => "limits",
            StepFailure::Setup(_) => "setup",
        };
        // The summary says the kind in front (`denied: ...`); the kind is said apart.
        let prefix = match failure {
            StepFailure::InvalidConfig(_) => "invalid configuration: ",
            StepFailure::Denied(_) => "denied: ",
            StepFailure::Trap(_) => "plugin crashed: ",
            StepFailure::Setup(_) => "could not start: ",
            _ => "",
        };
        let message = match message.strip_prefix(prefix) {
            Some(rest) if !prefix.is_empty() => rest.to_string(),
            _ => message,
        };
        Failure {
            kind: kind.into(),
            message,
        }
    }

    /// Whether the plugin itself returned it (a `run-error`), rather than the host
    /// ending the step.
    pub fn is_run_error(&self) -> bool {
        matches!(self.kind.as_str(), "invalid-config" | "denied" | "failed")
    }
}

/// What one run gave.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `name version` of the plugin, as `describe()` said.
    pub plugin: String,
    pub status: Status,
    /// The report's summary, or the failure's message.
    pub summary: String,
    pub report: Option<types::Report>,
    pub failure: Option<Failure>,
    /// The step log, as `[source] text` lines (what `.sluice/runs/*/logs/` would hold).
    pub log: Vec<String>,
    /// Bytes the step log took (the lines and their tags).
    pub log_bytes: u64,
    pub duration_ms: u128,
}

/// Exit codes of `sluice plugin run`.
pub mod exit {
    /// The plugin returned a report whose status is not `failed`.
    pub const OK: u8 = 0;
    /// The plugin failed: a `run-error`, a trap, a timeout, or a report with status
    /// `failed`.
    pub const FAILED: u8 = 1;
    /// Usage or configuration error (a flag, the `with` table, the plugin not found).
    pub const USAGE: u8 = 2;
}

impl Outcome {
    fn from_record(record: StepRecord, log: Vec<String>, log_bytes: u64) -> Outcome {
        let failure = match (&record.report, &record.failure) {
            (None, Some(f)) => Some(Failure::of(f, record.summary.clone())),
            (None, None) => Some(Failure {
                kind: "failed".into(),
                message: record.summary.clone(),
            }),
            _ => None,
        };
        Outcome {
            plugin: match (&record.plugin_name, &record.plugin_version) {
                (Some(n), Some(v)) => format!("{n} {v}"),
                _ => record.uses.clone(),
            },
            status: record.status,
            summary: record.summary,
            report: record.report,
            failure,
            log,
            log_bytes,
            duration_ms: record.duration_ms,
        }
    }

    /// The JSON `--format json` prints: the report as the runner stores it (in
    /// `.sluice/runs/<id>/steps/<step>.json`, under `report`), or, when there is none,
    /// `{"error": {"kind": ..., "message": ...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        match (&self.report, &self.failure) {
            (Some(report), _) => serde_json::to_value(report).unwrap_or_else(|e| {
                json!({"error": {"kind": "failed", "message": format!("the report cannot be shown as JSON: {e}")}})
            }),
            (None, failure) => {
                let failure = failure.clone().unwrap_or(Failure {
                    kind: "failed".into(),
                    message: self.summary.clone(),
                });
                json!({ "error": failure })
            }
        }
    }

    /// The exit code of `sluice plugin run` for this outcome (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match &self.report {
            Some(r) if r.status != types::Status::Failed => exit::OK,
            _ => exit::FAILED,
        }
    }

    /// The outcome for people: the summary and outcome, then findings as
    /// `path:line:col severity rule message`, tests, metrics, outputs and artifacts.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let shown = |s: &str| crate::render::shown(s).into_owned();
        let mut t = String::new();
        let _ = writeln!(t, "plugin:  {}", shown(&self.plugin));
        match (&self.report, &self.failure) {
            (Some(report), _) => {
                let _ = writeln!(t, "outcome: {}", status_name(report.status));
                let _ = writeln!(t, "summary: {}", shown(&report.summary));
                if !report.findings.is_empty() {
                    let _ = writeln!(t, "findings ({}):", report.findings.len());
                    for f in &report.findings {
                        let place = match &f.location {
                            Some(l) => {
                                let mut p = l.path.clone();
                                if let Some(line) = l.line {
                                    p.push_str(&format!(":{line}"));
                                    if let Some(col) = l.column {
                                        p.push_str(&format!(":{col}"));
                                    }
                                }
                                p
                            }
                            None => "-".into(),
                        };
                        let _ = writeln!(
                            t,
                            "  {} {} {} {}",
                            shown(&place),
                            severity_name(f.severity),
                            shown(&f.rule_id),
                            shown(&f.message)
                        );
                    }
                }
                if !report.test_cases.is_empty() {
                    let _ = writeln!(t, "tests ({}):", report.test_cases.len());
                    for c in &report.test_cases {
                        let name = if c.suite.is_empty() {
                            c.name.clone()
                        } else {
                            format!("{}::{}", c.suite, c.name)
                        };
                        let _ = writeln!(
                            t,
                            "  {} {}{}",
                            test_status_name(c.status),
                            shown(&name),
                            c.message
                                .as_deref()
                                .map(|m| format!(": {}", shown(m)))
                                .unwrap_or_default()
                        );
                    }
                }
                if !report.metrics.is_empty() {
                    let _ = writeln!(t, "metrics:");
                    for m in &report.metrics {
                        let _ =
                            writeln!(t, "  {} = {} {}", shown(&m.name), m.value, shown(&m.unit));
                    }
                }
                if !report.outputs.is_empty() {
                    let _ = writeln!(t, "outputs:");
                    for (k, v) in &report.outputs {
                        let _ = writeln!(t, "  {} = {}", shown(k), shown(v));
                    }
                }
                if !report.artifacts.is_empty() {
                    let _ = writeln!(t, "artifacts:");
                    for a in &report.artifacts {
                        let _ = writeln!(t, "  {} ({})", shown(&a.path), shown(&a.media_type));
                    }
                }
            }
            (None, failure) => {
                let kind = failure.as_ref().map_or("failed", |f| f.kind.as_str());
                let what = if failure.as_ref().is_some_and(Failure::is_run_error) {
                    "run-error"
                } else {
                    "failed"
                };
                let _ = writeln!(t, "outcome: {what} ({kind})");
                let _ = writeln!(t, "summary: {}", shown(&self.summary));
            }
        }
        t
    }
}

pub fn status_name(s: types::Status) -> &'static str {
    match s {
        types::Status::Passed => "passed",
        types::Status::Failed => "failed",
        types::Status::Warned => "warned",
        types::Status::Skipped => "skipped",
    }
}

pub fn severity_name(s: types::Severity) -> &'static str {
    match s {
        types::Severity::Info => "info",
        types::Severity::Low => "low",
        types::Severity::Medium => "medium",
        types::Severity::High => "high",
        types::Severity::Critical => "critical",
    }
}

fn test_status_name(s: types::TestStatus) -> &'static str {
    match s {
        types::TestStatus::Passed => "passed",
        types::TestStatus::Failed => "failed",
        types::TestStatus::Skipped => "skipped",
        types::TestStatus::Flaky => "flaky",
    }
}

/// Where the step log goes while a run is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveLog {
    /// Each line on stderr as it is written (`plugin run`).
    Stderr,
    /// Kept only (`plugin test`, `plugin check`).
    Quiet,
}

/// What `plugin run|test|check` share for as long as the command runs: the plugin
/// host, the sandbox, and a hidden temporary folder for run folders.
pub struct Session {
    host: PluginHost,
    sandbox: Arc<Sandbox>,
    /// The temporary folder, and `runs/` in it (hidden from steps when it can be).
    scratch: Option<tempfile::TempDir>,
    runs: OwnedDir,
    runs_hidden: bool,
    /// Folders no grant may cover when they cannot be hidden: `(path, what)`.
    private: Vec<(PathBuf, &'static str)>,
    pub log_limit: u64,
    pub live_log: LiveLog,
}

impl Session {
    /// A session: a temporary folder for run folders, hidden from steps like
    /// `.sluice/` is (and so is the compiled-plugin cache).
    pub fn start(
        host: PluginHost,
        sandbox: Arc<Sandbox>,
        cache: Option<&CacheRoot>,
    ) -> Result<Session, AuthoringError> {
        let scratch = tempfile::Builder::new()
            .prefix("sluice-plugin-")
            .tempdir()
            .map_err(|e| {
                AuthoringError::Internal(format!("cannot make a temporary folder: {e}"))
            })?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AuthoringError::Io { path, source }
        };
        let runs_path = scratch.path().join("runs");
        let runs = OwnedDir::open_or_create(&runs_path).map_err(io(&runs_path))?;
        let isolation = sandbox.isolation();
        let mut private = vec![(runs_path.clone(), "run records")];
        let runs_hidden = isolation.hide(runs.handle(), runs.path()).is_ok();
        if let Some(cache) = cache {
            if isolation.hide(cache.handle(), cache.path()).is_err() {
                private.push((cache.path().to_path_buf(), "compiled-plugin cache"));
            }
        }
        if runs_hidden {
            private.retain(|(p, _)| p != &runs_path);
        }
        Ok(Session {
            host,
            sandbox,
            scratch: Some(scratch),
            runs,
            runs_hidden,
            private,
            log_limit: DEFAULT_LOG_LIMIT,
            live_log: LiveLog::Stderr,
        })
    }

    /// The plugin host (to describe a plugin).
    pub fn host(&self) -> &PluginHost {
        &self.host
    }

    /// End the session: every sandbox stopped, the temporary folder removed.
    pub async fn finish(mut self) {
        self.sandbox.shutdown().await;
        self.remove_scratch();
    }

    fn remove_scratch(&mut self) {
        if self.runs_hidden {
            // The cover lives in this process's mount namespace only; lift it so that
            // the folder can be removed.
            let _ = rustix::mount::unmount(self.runs.path(), rustix::mount::UnmountFlags::DETACH);
            self.runs_hidden = false;
        }
        if let Some(dir) = self.scratch.take() {
            let _ = dir.close();
        }
    }

    /// The one-step pipeline an invocation stands for, checked like a pipeline file:
    /// the grants and the timeout by the pipeline file's checks, the `with` table
    /// against the plugin's schema.
    async fn pipeline(
        &self,
        inv: &Invocation,
    ) -> Result<
        (
            config::Pipeline,
            std::collections::HashMap<PluginRef, Arc<crate::host::plugin::LoadedPlugin>>,
        ),
        AuthoringError,
    > {
        let with = match &inv.with {
            serde_json::Value::Object(_) => toml::Value::try_from(&inv.with).map_err(|e| {
                AuthoringError::Usage(format!(
                    "--with: {e} (a step's `with` table is TOML: no null values)"
                ))
            })?,
            other => {
                return Err(AuthoringError::Usage(format!(
                    "--with: a step's `with` must be a JSON object, not {other}"
                )));
            }
        };
        let mut step = toml::Table::new();
        step.insert("id".into(), STEP_ID.into());
        let cwd = std::env::current_dir()
            .map_err(|e| AuthoringError::Internal(format!("the current folder: {e}")))?;
        let uses = match inv.reference.strip_prefix("builtin:") {
            Some(_) => inv.reference.clone(),
            None => cwd
                .join(config::expand_home(&inv.reference))
                .display()
                .to_string(),
        };
        step.insert("uses".into(), uses.into());
        if let Some(t) = &inv.timeout {
            step.insert("timeout".into(), t.clone().into());
        }
        step.insert("with".into(), with);
        let mut grants = toml::Table::new();
        for g in &inv.grants {
            let list = grants
                .entry(g.kind.clone())
                .or_insert_with(|| toml::Value::Array(vec![]));
            if let toml::Value::Array(a) = list {
                a.push(g.value.clone().into());
            }
        }
        step.insert("grants".into(), toml::Value::Table(grants));
        let file = json!({
            "pipeline": {"name": PIPELINE_NAME},
            "stage": [{"name": STAGE_NAME, "step": [step]}],
        });
        let text = toml::to_string(&file)
            .map_err(|e| AuthoringError::Internal(format!("the one-step pipeline: {e}")))?;
        let path = inv.workdir.join("(plugin run)");
        let pipeline = config::parse(&path, text).map_err(|e| match e {
            config::PipelineFileError::Invalid(errors) => AuthoringError::Usage(
                errors
                    .iter()
                    .map(|e| flag_message(&e.message))
                    .collect::<Vec<_>>()
                    .join("\nerror: "),
            ),
            other => AuthoringError::Usage(other.to_string()),
        })?;
        self.refuse_private_grants(&pipeline)?;
        let plugins = match validate::validate(&pipeline, &self.host).await {
            Ok(p) => p,
            Err(validate::Invalid::Internal(e)) => {
                return Err(AuthoringError::Internal(e.to_string()));
            }
            Err(validate::Invalid::Config(errors)) => {
                return Err(AuthoringError::Usage(
                    errors
                        .iter()
                        .map(|e| flag_message(&e.message))
                        .collect::<Vec<_>>()
                        .join("\nerror: "),
                ));
            }
        };
        Ok((pipeline, plugins))
    }

    /// Where the temporary folder or the cache could not be hidden, no grant may
    /// cover them (as `sluice run` does for `.sluice/`).
    fn refuse_private_grants(&self, pipeline: &config::Pipeline) -> Result<(), AuthoringError> {
        let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        for step in pipeline.stages.iter().flat_map(|s| &s.steps) {
            let granted = step
                .grants
                .read
                .iter()
                .map(|g| ("read", g))
                .chain(step.grants.write.iter().map(|g| ("write", g)));
            for (kind, grant) in granted {
                let grant_real = real(grant);
                for (path, what) in &self.private {
                    let folder = real(path);
                    if folder.starts_with(&grant_real) || grant_real.starts_with(&folder) {
                        return Err(AuthoringError::Usage(format!(
                            "--grant {kind}={}: covers sluice's own folder {} ({what}), which this machine cannot hide from steps; grant the folders the plugin needs instead",
                            grant.display(),
                            folder.display()
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Check an invocation as `sluice run` checks a pipeline (errors are
    /// [`AuthoringError::Usage`]), without running it.
    pub async fn check_invocation(&self, inv: &Invocation) -> Result<(), AuthoringError> {
        self.pipeline(inv).await.map(|_| ())
    }

    /// Run the plugin once, as a step of a one-step pipeline.
    pub async fn run(&self, inv: &Invocation) -> Result<Outcome, AuthoringError> {
        let (pipeline, plugins) = self.pipeline(inv).await?;
        let run_id = executor::new_run_id();
        let io = |path: PathBuf| move |source| AuthoringError::Io { path, source };
        let run_dir = self
            .runs
            .create_dir(&run_id)
            .map_err(io(self.runs.path().join(&run_id)))?;
        let (events, mut rx) = EventSink::channel(true);
        let live = self.live_log;
        let collected = Arc::new(Mutex::new((Vec::<String>::new(), 0u64)));
        let sink = collected.clone();
        let printer = tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                if let Event::StepLog { source, line, .. } = event {
                    let entry = format!("[{source}] {line}");
                    if live == LiveLog::Stderr {
                        crate::console::err_line(&crate::render::shown(&entry));
                    }
                    let mut log = sink.lock().unwrap_or_else(|e| e.into_inner());
                    log.1 += entry.len() as u64 + 1;
                    log.0.push(entry);
                }
            }
        });
        let opts = RunOptions {
            jobs: 1,
            run_id: run_id.clone(),
            run_dir,
            log_limit: self.log_limit,
            events,
            sandbox: self.sandbox.clone(),
            secrets: Arc::new(SecretValues::default()),
            durable: None,
        };
        let end = executor::run(&pipeline, &plugins, opts).await;
        let _ = printer.await;
        // The run folder goes (through the handle: its path is covered here).
        let handle_path = format!(
            "/proc/self/fd/{}/{run_id}",
            std::os::fd::AsRawFd::as_raw_fd(self.runs.handle())
        );
        let _ = std::fs::remove_dir_all(&handle_path);
        let result = match end.map_err(|e| AuthoringError::Internal(format!("the run: {e}")))? {
            executor::RunEnd::Finished(result) => *result,
            executor::RunEnd::Stopped(_) => {
                return Err(AuthoringError::Internal(
                    "a run without state store stopped at a gate".into(),
                ));
            }
        };
        let record =
            result.steps.into_iter().next().ok_or_else(|| {
                AuthoringError::Internal("the one-step pipeline ran no step".into())
            })?;
        let (log, bytes) =
            std::mem::take(&mut *collected.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(Outcome::from_record(record, log, bytes))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.remove_scratch();
    }
}

/// A pipeline-file message about the one-step pipeline, said in terms of the flags:
/// `step `run` (builtin:x): `with.paths`: ...` becomes `--with: `paths`: ...`.
fn flag_message(message: &str) -> String {
    let prefix = format!("step `{STEP_ID}`");
    let Some(rest) = message.strip_prefix(&prefix) else {
        return message.to_string();
    };
    // `step `run` (builtin:x): ...` or `step `run`: ...`
    let rest = match rest.strip_prefix(" (") {
        Some(r) => r.split_once("): ").map_or(r, |(_, r)| r),
        None => rest.strip_prefix(": ").unwrap_or(rest),
    };
    if let Some(r) = rest.strip_prefix("`with") {
        let (key, tail) = r.split_once('`').unwrap_or((r, ""));
        let key = key.trim_start_matches('.');
        if key.is_empty() {
            return format!("--with{tail}");
        }
        return format!("--with: `{key}`{tail}");
    }
    rest.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_flag_of_an_unknown_kind_is_a_usage_error_naming_it() {
        let e = Grant::parse("raed=src", Path::new("/w"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--grant `raed=src`"), "{e}");
        assert!(e.contains("did you mean `read`"), "{e}");
        let e = Grant::parse("src", Path::new("/w"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no `=`"), "{e}");
    }

    #[test]
    fn relative_read_and_write_grants_resolve_against_the_current_folder() {
        let g = Grant::parse("read=src", Path::new("/w")).unwrap();
        assert_eq!(g.value, "/w/src");
        let g = Grant::parse("net=example.com:443", Path::new("/w")).unwrap();
        assert_eq!(g.value, "example.com:443");
    }

    #[test]
    fn schema_errors_are_said_in_terms_of_the_with_flag() {
        assert_eq!(
            flag_message("step `run` (builtin:lint): `with.paths[0]`: must be a string"),
            "--with: `paths[0]`: must be a string"
        );
        assert_eq!(
            flag_message("step `run`: cannot load x.wasm: no such file"),
            "cannot load x.wasm: no such file"
        );
    }
}
