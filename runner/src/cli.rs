//! The `sluice` command line: argument parsing, the commands, and the mapping of every
//! outcome to a documented exit code.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | the pipeline failed (a step failed or a gate stopped it) |
//! | 2 | usage or configuration error |
//! | 3 | internal error |
//! | 130 | interrupted (Ctrl-C) |

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, PipelineFileError, PluginRef};
use crate::events::{EventSink, Status};
use crate::executor::{self, RunOptions};
use crate::host::cache::default_cache_root;
use crate::host::engine::EngineProfile;
use crate::host::plugin::{LoadedPlugin, PluginHost};
use crate::render::{self, Format};
use crate::{builtins, reports, validate};

/// Exit codes of the `sluice` binary.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The pipeline failed: a step failed or a gate stopped it.
    pub const PIPELINE_FAILED: u8 = 1;
    /// Usage or configuration error.
    pub const CONFIG: u8 = 2;
    /// Internal error.
    pub const INTERNAL: u8 = 3;
    /// Interrupted (Ctrl-C); the shell convention of 128 + SIGINT.
    pub const INTERRUPTED: u8 = 130;
}

/// An error at the binary's edge, with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum ExpectedError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Internal(String),
}

impl ExpectedError {
    fn code(&self) -> u8 {
        match self {
            ExpectedError::Config(_) => exit::CONFIG,
            ExpectedError::Internal(_) => exit::INTERNAL,
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "Run release pipelines whose steps are sandboxed WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Folder for compiled plugins [default: $SLUICE_CACHE_DIR, $XDG_CACHE_HOME/sluice or ~/.cache/sluice]
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a pipeline.
    Run(RunArgs),
    /// Check a pipeline file (syntax, keys, plugins, `needs`, each step's `with`) without running it.
    Validate {
        /// The pipeline file.
        #[arg(default_value = "sluice.toml")]
        file: PathBuf,
    },
    /// List the built-in plugins.
    Plugins {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Work with one plugin.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

/// Options of `sluice run`.
#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The pipeline file.
    #[arg(default_value = "sluice.toml")]
    file: PathBuf,
    /// Steps to run at once, at most [default: number of CPUs]
    #[arg(short, long)]
    jobs: Option<usize>,
    /// How to show progress.
    #[arg(long, value_enum, default_value = "auto")]
    format: Format,
    /// Also show every log line of every step as it is written.
    #[arg(short, long)]
    verbose: bool,
    /// Folder that receives the run's folder (logs, reports) [default: .sluice/runs next to the pipeline file]
    #[arg(long, value_name = "DIR")]
    runs_dir: Option<PathBuf>,
    /// Cap of each step's log, e.g. 16MiB.
    #[arg(long, default_value = "16MiB")]
    log_limit: bytesize::ByteSize,
    /// Folder for junit.xml, results.sarif and summary.json [default: the run's folder/reports]
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum PluginCommand {
    /// Show what a plugin says about itself: version, summary, capabilities, config schema.
    Info {
        /// `builtin:<name>` or a path to a .wasm component.
        reference: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Entry point of the binary: parse arguments, run, and return the exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::CONFIG
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("SLUICE_LOG"))
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.code())
        }
    }
}

async fn dispatch(cli: Cli) -> Result<u8, ExpectedError> {
    let cache_root = cli.cache_dir.clone().unwrap_or_else(default_cache_root);
    match cli.command {
        Command::Run(args) => run(args, &cache_root).await,
        Command::Validate { file } => {
            let host = start_host(1, &cache_root)?;
            let (pipeline, _) = load_and_check(&file, &host).await?;
            let steps: usize = pipeline.stages.iter().map(|s| s.steps.len()).sum();
            println!(
                "{}: pipeline `{}` is valid ({} stages, {steps} steps)",
                file.display(),
                pipeline.name,
                pipeline.stages.len()
            );
            Ok(exit::OK)
        }
        Command::Plugins { json } => {
            let host = start_host(1, &cache_root)?;
            let mut all = Vec::new();
            for name in builtins::names() {
                let p = host
                    .load(&PluginRef::Builtin(name.to_string()))
                    .await
                    .map_err(|e| ExpectedError::Internal(e.to_string()))?;
                all.push(p);
            }
            if json {
                let v: Vec<_> = all.iter().map(|p| plugin_json(p)).collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v).expect("JSON values serialise")
                );
            } else {
                let width = all
                    .iter()
                    .map(|p| p.reference().to_string().len())
                    .max()
                    .unwrap_or(0);
                for p in &all {
                    let d = p.descriptor();
                    println!(
                        "{:width$}  {:8}  {}",
                        p.reference().to_string(),
                        d.version,
                        d.summary
                    );
                }
            }
            Ok(exit::OK)
        }
        Command::Plugin {
            command: PluginCommand::Info { reference, json },
        } => {
            let host = start_host(1, &cache_root)?;
            let cwd =
                std::env::current_dir().map_err(|e| ExpectedError::Internal(e.to_string()))?;
            let r = PluginRef::parse(&reference, &cwd);
            let p = host
                .load(&r)
                .await
                .map_err(|e| ExpectedError::Config(e.to_string()))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&plugin_json(&p)).expect("JSON values serialise")
                );
            } else {
                let d = p.descriptor();
                println!("plugin:       {}", p.reference());
                println!("name:         {}", d.name);
                println!("version:      {}", d.version);
                println!("summary:      {}", d.summary);
                println!("digest:       {}", p.digest());
                let caps: Vec<String> = d
                    .capabilities
                    .iter()
                    .map(|c| capability_name(*c).to_string())
                    .collect();
                println!(
                    "capabilities: {}",
                    if caps.is_empty() {
                        "none".into()
                    } else {
                        caps.join(", ")
                    }
                );
                println!("config schema:");
                let schema =
                    serde_json::to_string_pretty(p.schema()).expect("JSON values serialise");
                for l in schema.lines() {
                    println!("  {l}");
                }
            }
            Ok(exit::OK)
        }
    }
}

fn capability_name(c: crate::host::bindings::types::Capability) -> &'static str {
    use crate::host::bindings::types::Capability as C;
    match c {
        C::ReadFiles => "read-files",
        C::WriteFiles => "write-files",
        C::Exec => "exec",
        C::Network => "network",
        C::Env => "env",
    }
}

fn plugin_json(p: &LoadedPlugin) -> serde_json::Value {
    let d = p.descriptor();
    serde_json::json!({
        "reference": p.reference().to_string(),
        "name": d.name,
        "version": d.version,
        "summary": d.summary,
        "digest": p.digest(),
        "capabilities": d.capabilities.iter().map(|c| capability_name(*c)).collect::<Vec<_>>(),
        "config_schema": p.schema(),
    })
}

fn start_host(jobs: usize, cache_root: &Path) -> Result<PluginHost, ExpectedError> {
    let profile = EngineProfile {
        max_concurrent_steps: jobs.clamp(1, 256) as u32,
        pooling: true,
    };
    PluginHost::new(profile, cache_root).map_err(|e| ExpectedError::Internal(e.to_string()))
}

fn config_error(errors: &[config::ConfigError]) -> ExpectedError {
    ExpectedError::Config(
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\nerror: "),
    )
}

/// Read the pipeline file and check it whole, plugins and schemas included. Every
/// problem found is reported at once.
async fn load_and_check(
    file: &Path,
    host: &PluginHost,
) -> Result<
    (
        config::Pipeline,
        std::collections::HashMap<PluginRef, std::sync::Arc<LoadedPlugin>>,
    ),
    ExpectedError,
> {
    let (pipeline, mut errors) = config::load_lenient(file).map_err(|e| match e {
        PipelineFileError::Unreadable { .. } => ExpectedError::Config(e.to_string()),
        PipelineFileError::Invalid(errors) => config_error(&errors),
    })?;
    match validate::validate(&pipeline, host).await {
        Ok(plugins) if errors.is_empty() => Ok((pipeline, plugins)),
        Ok(_) => Err(config_error(&errors)),
        Err(more) => {
            // A step whose `uses` is already reported needs no second error.
            let lines: std::collections::HashSet<usize> =
                errors.iter().map(|e| e.pos.line).collect();
            errors.extend(more.into_iter().filter(|e| !lines.contains(&e.pos.line)));
            errors.sort_by_key(|e| (e.pos.line, e.pos.column));
            Err(config_error(&errors))
        }
    }
}

async fn run(args: RunArgs, cache_root: &Path) -> Result<u8, ExpectedError> {
    let RunArgs {
        file,
        jobs,
        format,
        verbose,
        runs_dir,
        log_limit,
        report_dir,
    } = args;
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let log_limit = log_limit.as_u64();
    let host = start_host(jobs, cache_root)?;
    let (pipeline, plugins) = load_and_check(&file, &host).await?;
    let (events, rx) = EventSink::channel(verbose || format == Format::Json);
    let renderer = tokio::spawn(render::render(format, verbose, rx));
    let opts = RunOptions {
        jobs,
        runs_root: runs_dir.unwrap_or_else(|| pipeline.dir.join(".sluice").join("runs")),
        log_limit,
        events,
    };
    let result = tokio::select! {
        result = executor::run(&pipeline, &plugins, opts) => result,
        _ = tokio::signal::ctrl_c() => {
            // Dropping the run cancels every step; their programs' process groups are
            // killed as they go. Records of finished steps are already on disk.
            eprintln!("interrupted: the running steps were stopped");
            return Ok(exit::INTERRUPTED);
        }
    };
    // Every sender is gone once the run returns; the renderer drains and ends.
    let _ = renderer.await;
    let result =
        result.map_err(|e| ExpectedError::Internal(format!("cannot record the run: {e}")))?;
    let report_dir = report_dir.unwrap_or_else(|| result.run_dir.join("reports"));
    reports::write_all(&result, &report_dir).map_err(|e| ExpectedError::Internal(e.to_string()))?;
    if format != Format::Json {
        eprintln!("reports: {}", report_dir.display());
    }
    if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
        reports::github::print_annotations(&result);
        if let Err(e) = reports::github::append_job_summary(&result) {
            eprintln!("warning: cannot append the job summary to $GITHUB_STEP_SUMMARY: {e}");
        }
    }
    Ok(match result.status {
        Status::Failed => exit::PIPELINE_FAILED,
        _ => exit::OK,
    })
}
