//! The `sluice` command line: argument parsing, the commands, and the mapping of every
//! outcome to a documented exit code.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | the pipeline failed (a step failed or a gate stopped it) |
//! | 2 | usage or configuration error |
//! | 3 | internal error: the async runtime or a thread could not start, or a bug in Sluice (a panic, reported as one `error:` line) |
//! | 4 | waiting: `--no-wait` stopped the run at a gate; it is recorded `waiting`, and `sluice resume RUN` continues it |
//! | 5 | superseded: a newer run of the pipeline took this run's place in a stage's queue; it never continues |
//! | 129, 130, 143 | stopped by SIGHUP, SIGINT (Ctrl-C) or SIGTERM; recorded `interrupted`, `sluice resume RUN` continues it |
//!
//! The durable commands: `run` and `resume` record every transition in the state store
//! (`.sluice/state.db` next to the pipeline file, `[pipeline] state`, or `--state`);
//! `approve`, `reject` and `override` record a person's decision for a run; `status`,
//! `history` and `explain` read the store (explain evaluates the gates now, and writes
//! nothing); `targets` reads the fleet's records from it.
//!
//! Every write to stdout and stderr goes through [`crate::console`], so a closed pipe
//! never turns into a panic: a closed stdout or stderr only stops the output, and the
//! command ends with the code it would have had. The cache root is opened and checked,
//! and `run` isolates itself ([`Sandbox::prepare`]), before the async runtime starts;
//! failing to start the runtime or a thread is exit code 3, and so is a bug that
//! panics (one `error: internal error` line, never Rust's 101). `sluice --help` shows
//! this table.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::{self, PipelineFileError, PluginRef};
use crate::console;
use crate::events::{EventSink, Status};
use crate::executor::{self, RunOptions};
use crate::folders::OwnedDir;
use crate::host::cache::{CacheRoot, default_cache_root};
use crate::host::engine::EngineProfile;
use crate::host::plugin::{EngineError, LoadedPlugin, PluginError, PluginHost};
use crate::render::{self, Format};
use crate::sandbox::Sandbox;
use crate::secrets::SecretValues;
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
    /// Waiting: `--no-wait` stopped the run at a gate (recorded `waiting`).
    pub const WAITING: u8 = 4;
    /// Superseded: a newer run took this run's place in a stage's queue.
    pub const SUPERSEDED: u8 = 5;
    /// Interrupted (Ctrl-C); the shell convention of 128 + SIGINT.
    pub const INTERRUPTED: u8 = 130;
    /// Hung up (SIGHUP): 128 + 1.
    pub const HUNG_UP: u8 = 129;
    /// Terminated (SIGTERM): 128 + 15.
    pub const TERMINATED: u8 = 143;
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

/// The exit codes, as `sluice --help` shows them (the module doc's table, in short).
const EXIT_CODES_HELP: &str = "\
Exit codes:
  0              success
  1              the pipeline failed (a step failed or a gate stopped it)
  2              usage or configuration error
  3              internal error: the async runtime or a thread could not start, or a bug
  4              waiting: --no-wait stopped the run at a gate (`sluice resume RUN` continues)
  5              superseded by a newer run of the pipeline
  129, 130, 143  stopped by SIGHUP, SIGINT or SIGTERM (`sluice resume RUN` continues)
A closed stdout or stderr (`sluice plugins | head -1`) only stops the output: the
command ends with the code it would have had.";

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "Run release pipelines whose steps are sandboxed WebAssembly components",
    after_help = EXIT_CODES_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Folder for compiled plugins [default: $SLUICE_CACHE_DIR, $XDG_CACHE_HOME/sluice or $HOME/.cache/sluice; none: compile in memory]
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// The state database [default: `[pipeline] state`, else .sluice/state.db next to the pipeline file]
    #[arg(long, global = true, value_name = "FILE")]
    state: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a pipeline.
    Run(RunArgs),
    /// Continue a run that waits at a gate or was interrupted; finished steps are not run again.
    Resume(ResumeArgs),
    /// Approve a run's entry into a stage.
    Approve(DecideArgs),
    /// Reject a run's entry into a stage (its approval gate denies).
    Reject(DecideArgs),
    /// Let a run past one gate once, on the record.
    Override(OverrideArgs),
    /// Show a run: its state, stages, gates and steps.
    Status(StatusArgs),
    /// List recent runs of the pipeline.
    History(HistoryArgs),
    /// Why a run (or a version) is not in a stage: every gate, now, and what would clear it.
    Explain(ExplainArgs),
    /// Show the fleet: each `[[target]]` with the revision it runs, the last good one and its state.
    Targets(targets_cli::TargetsArgs),
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
    /// Run the `[[monitor]]`s of a file standalone: checks recorded in the state store
    /// (for the gates of every pipeline sharing it) and served as Prometheus metrics.
    Canary(canary_cli::CanaryArgs),
    /// Work with one plugin.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Pin every plugin the pipeline uses to its digest, in `sluice.lock`.
    Lock(lock_cli::LockArgs),
    /// Organisation policy: check pipelines, report on many, publish a policy.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

/// `sluice policy ...`.
#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Run a policy's organisation checks over pipelines: what warns, what blocks, and when.
    Check(policy_cli::CheckArgs),
    /// For many pipelines: failing checks, exemptions, automation level (table, JSON, Markdown).
    Report(report_cli::ReportArgs),
    /// Publish a policy file to an OCI registry.
    Push(registry_cli::PolicyPushArgs),
}

/// Options of `sluice run`.
#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The pipeline file.
    #[arg(default_value = "sluice.toml")]
    file: PathBuf,
    #[command(flatten)]
    execution: ExecutionArgs,
    /// Folder that receives the run's folder (logs, reports) [default: .sluice/runs next to the pipeline file]
    #[arg(long, value_name = "DIR")]
    runs_dir: Option<PathBuf>,
    /// Record nothing in the state store and ignore gates (for benchmarks).
    #[arg(long, hide = true)]
    no_state: bool,
}

/// Options of `sluice resume`.
#[derive(clap::Args, Debug)]
struct ResumeArgs {
    /// The run's id.
    run: String,
    /// The pipeline file [default: the one the run was started with]
    #[arg(short = 'f', long)]
    file: Option<PathBuf>,
    /// Continue even though the pipeline file changed since the run started.
    #[arg(long)]
    allow_changed: bool,
    #[command(flatten)]
    execution: ExecutionArgs,
}

/// The options `sluice run` and `sluice resume` share: how the steps run and are shown.
#[derive(clap::Args, Debug)]
struct ExecutionArgs {
    /// Do not wait at a gate: record the run `waiting` and exit with code 4.
    #[arg(long)]
    no_wait: bool,
    /// Steps to run at once, at most [default: number of CPUs]
    #[arg(short, long)]
    jobs: Option<usize>,
    /// How to show progress.
    #[arg(long, value_enum, default_value = "auto")]
    format: Format,
    /// Also show every log line of every step as it is written.
    #[arg(short, long)]
    verbose: bool,
    /// Cap of each step's log, e.g. 16MiB.
    #[arg(long, default_value = "16MiB")]
    log_limit: bytesize::ByteSize,
    /// Folder for junit.xml, results.sarif and summary.json [default: the run's folder/reports]
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
}

/// Which pipeline (and so which state database) a command is about.
#[derive(clap::Args, Debug)]
struct PipelineArg {
    /// The pipeline file.
    #[arg(short = 'f', long, default_value = "sluice.toml")]
    file: PathBuf,
}

/// Options of `sluice approve` and `sluice reject`.
#[derive(clap::Args, Debug)]
struct DecideArgs {
    /// The run's id.
    run: String,
    /// The stage whose entry is decided.
    #[arg(long)]
    stage: String,
    /// Why (recorded, shown by status, history and explain).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    pipeline: PipelineArg,
}

/// Options of `sluice override`.
#[derive(clap::Args, Debug)]
struct OverrideArgs {
    /// The run's id.
    run: String,
    /// The gate to let the run past.
    #[arg(long)]
    gate: String,
    /// The stage of that gate [default: whichever stage the run enters next]
    #[arg(long)]
    stage: Option<String>,
    /// Why (recorded, shown by status, history and explain).
    #[arg(long)]
    reason: String,
    /// How long the override stays usable, e.g. 2h [default: until used]
    #[arg(long, value_name = "DURATION")]
    expires: Option<humantime::Duration>,
    #[command(flatten)]
    pipeline: PipelineArg,
}

/// How the reading commands print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

/// Options of `sluice status`.
#[derive(clap::Args, Debug)]
struct StatusArgs {
    /// The run's id [default: the latest run of the pipeline]
    run: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
    #[command(flatten)]
    pipeline: PipelineArg,
}

/// Options of `sluice history`.
#[derive(clap::Args, Debug)]
struct HistoryArgs {
    /// Only runs that entered this stage.
    #[arg(long)]
    stage: Option<String>,
    /// How many runs, newest first.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
    #[command(flatten)]
    pipeline: PipelineArg,
}

/// Options of `sluice explain`.
#[derive(clap::Args, Debug)]
struct ExplainArgs {
    /// The run's id [default: the latest run, or the latest with --artifact's version]
    run: Option<String>,
    /// Only this stage [default: every stage the run has not passed]
    #[arg(long)]
    stage: Option<String>,
    /// The run that carries this artifact version.
    #[arg(long, value_name = "VERSION")]
    artifact: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
    #[command(flatten)]
    pipeline: PipelineArg,
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
    /// Start a plugin project: `sluice plugin new todo-scan --lang python`.
    New(plugin_cli::NewArgs),
    /// Run one plugin once, without a pipeline, and print its report.
    Run(plugin_cli::RunArgs),
    /// Run fixture cases (`--case DIR`) and compare each report with the expected one.
    Test(plugin_cli::TestArgs),
    /// The conformance kit: the checks every plugin must pass.
    Check(plugin_cli::CheckArgs),
    /// Write the contract (`plugin.wit` and the WASI packages) into a folder.
    Wit(plugin_cli::WitArgs),
    /// Generate guest bindings for C or Go from the contract.
    Bindgen(plugin_cli::BindgenArgs),
    /// Turn a wasip1 core module (C, Go) into a plugin component.
    Componentize(plugin_cli::ComponentizeArgs),
    /// Publish a component to an OCI registry, with its describe() data as annotations.
    Push(registry_cli::PushArgs),
    /// Make a signing key pair for plugins (minisign format).
    Keygen(lock_cli::KeygenArgs),
    /// Sign a component (writes FILE.minisig).
    Sign(lock_cli::SignArgs),
}

/// Entry point of the binary: parse arguments, run, and return the exit code.
pub fn main() -> ExitCode {
    report_panics();
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
    let fail = |e: ExpectedError| {
        console::err_line(&format!("error: {e}"));
        ExitCode::from(e.code())
    };
    // Namespaces and the launcher need a process with one thread: before the runtime,
    // and before the cache root is opened (its handle must belong to the runner's
    // mount namespace, where the runner hides it from steps).
    let sandbox = Arc::new(match cli.command {
        Command::Run(_)
        | Command::Resume(_)
        | Command::Plugin {
            command: PluginCommand::Run(_) | PluginCommand::Test(_) | PluginCommand::Check(_),
        } => Sandbox::prepare(),
        _ => Sandbox::unavailable("this command runs no step"),
    });
    // Then check and hold the cache root.
    let cache_root = match open_cache(cli.cache_dir.clone()) {
        Ok(root) => root,
        Err(e) => return fail(e),
    };
    let runtime = match start_runtime() {
        Ok(r) => r,
        Err(e) => return fail(ExpectedError::Internal(e)),
    };
    // A bug that panics on the main thread ends the command with code 3 and one
    // `error:` line (see `report_panics`), never with Rust's 101.
    let dispatched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(dispatch(cli, cache_root, sandbox))
    }));
    match dispatched {
        Ok(Ok(code)) => ExitCode::from(code),
        Ok(Err(e)) => fail(e),
        Err(_) => ExitCode::from(exit::INTERNAL),
    }
}

/// Print a panic as one `error:` line through [`console`] (so a closed stderr is no
/// second panic) instead of Rust's `thread '…' panicked at` text. A panic is a bug in
/// Sluice: the line says so and where. Where the runner catches one (a step's task
/// fails only that step; a plugin's load fails only that load), the run goes on.
fn report_panics() {
    std::panic::set_hook(Box::new(|info| {
        let why = info.payload_as_str().unwrap_or("unknown failure");
        let place = info
            .location()
            .map(|at| format!(" at {}:{}", at.file(), at.line()))
            .unwrap_or_default();
        console::err_line(&format!(
            "error: internal error (a bug in Sluice; please report it): {why}{place}"
        ));
    }));
}

/// Open the cache root: `--cache-dir`, else the default; `None` (with a note) when
/// there is none, and plugins are compiled in memory.
fn open_cache(flag: Option<PathBuf>) -> Result<Option<CacheRoot>, ExpectedError> {
    let Some(path) = flag.or_else(default_cache_root) else {
        console::err_line(
            "note: no cache folder for compiled plugins ($SLUICE_CACHE_DIR, $XDG_CACHE_HOME and $HOME are unset), so plugins are compiled on every run; set SLUICE_CACHE_DIR or pass --cache-dir DIR to keep them",
        );
        return Ok(None);
    };
    CacheRoot::open(&path)
        .map(Some)
        .map_err(|e| ExpectedError::Config(e.to_string()))
}

/// Start the multi-threaded async runtime. Tokio panics when the OS refuses a worker
/// thread (e.g. `ulimit -u` reached), and unwinding from there would wait forever for
/// the workers it already started; so while it starts, a panic prints one `error:`
/// line and exits with code 3 at once.
fn start_runtime() -> Result<tokio::runtime::Runtime, String> {
    const HINT: &str = "too many processes or threads for this user? see `ulimit -u`";
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let why = info.payload_as_str().unwrap_or("unknown failure");
        console::err_line(&format!(
            "error: cannot start the async runtime: {why} ({HINT})"
        ));
        std::process::exit(i32::from(exit::INTERNAL));
    }));
    let built = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    std::panic::set_hook(hook);
    built.map_err(|e| format!("cannot start the async runtime: {e} ({HINT})"))
}

async fn dispatch(
    cli: Cli,
    cache_root: Option<CacheRoot>,
    sandbox: Arc<Sandbox>,
) -> Result<u8, ExpectedError> {
    let state_flag = cli.state.clone();
    match cli.command {
        Command::Run(args) => {
            let RunArgs {
                file,
                execution,
                runs_dir,
                no_state,
            } = args;
            let exec = Execution {
                file,
                args: execution,
                runs_dir,
                durable: if no_state {
                    Durability::None
                } else {
                    Durability::New { state: state_flag }
                },
            };
            execute(exec, cache_root, sandbox).await
        }
        Command::Resume(args) => {
            let ResumeArgs {
                run,
                file,
                allow_changed,
                execution,
            } = args;
            let found = durable_cli::find_run_for_resume(&run, file, state_flag, allow_changed)?;
            let exec = Execution {
                file: found.file.clone(),
                args: execution,
                runs_dir: found.runs_dir.clone(),
                durable: Durability::Resume(Box::new(found)),
            };
            execute(exec, cache_root, sandbox).await
        }
        Command::Approve(args) => durable_cli::decide(args, state_flag, "approve"),
        Command::Reject(args) => durable_cli::decide(args, state_flag, "reject"),
        Command::Override(args) => durable_cli::override_gate(args, state_flag).await,
        Command::Status(args) => durable_cli::status(args, state_flag),
        Command::History(args) => durable_cli::history(args, state_flag),
        Command::Explain(args) => durable_cli::explain(args, state_flag).await,
        Command::Targets(args) => targets_cli::targets(args, state_flag),
        Command::Canary(args) => canary_cli::canary(args, state_flag, cache_root).await,
        Command::Validate { file } => {
            let host = start_host(1, cache_root)?;
            let Checked {
                pipeline,
                policy,
                outcome,
                ..
            } = load_and_check(&file, &host).await?;
            let steps: usize = pipeline.stages.iter().map(|s| s.steps.len()).sum();
            let followed = policy
                .as_ref()
                .map(|p| format!("; follows policy `{}`", p.name))
                .unwrap_or_default();
            console::out_line(&format!(
                "{}: pipeline `{}` is valid ({} stages, {steps} steps){followed}",
                file.display(),
                pipeline.name,
                pipeline.stages.len()
            ));
            for notice in &outcome.warnings {
                console::err_line(&format!("warning: {}", notice.text));
            }
            // What each toolchain preset grants on this machine.
            for step in pipeline.stages.iter().flat_map(|s| &s.steps) {
                for preset in &step.grants.toolchains {
                    let shown = preset.describe(&pipeline.dir);
                    console::out_line(&format!("  step `{}`: {shown}", step.id));
                }
            }
            Ok(exit::OK)
        }
        Command::Plugins { json } => {
            let host = start_host(1, cache_root)?;
            let mut all = Vec::new();
            for name in builtins::names() {
                let p = describe_any(&host, &PluginRef::Builtin(name.to_string()))
                    .await
                    .map_err(|e| ExpectedError::Internal(e.to_string()))?;
                all.push(p);
            }
            if json {
                let v: Vec<_> = all.iter().map(plugin_json).collect();
                console::out_line(&json_text(&v));
            } else {
                let width = all
                    .iter()
                    .map(|p| p.reference().to_string().len())
                    .max()
                    .unwrap_or(0);
                for p in &all {
                    let d = p.descriptor();
                    let line = format!(
                        "{:width$}  {:8}  {}",
                        p.reference().to_string(),
                        d.version,
                        d.summary
                    );
                    if !console::out_line(&line) {
                        break;
                    }
                }
            }
            Ok(exit::OK)
        }
        Command::Plugin { command } => match command {
            PluginCommand::Info { reference, json } => {
                plugin_info(reference, json, cache_root).await
            }
            PluginCommand::New(args) => plugin_cli::new(args),
            PluginCommand::Run(args) => plugin_cli::run(args, cache_root, sandbox).await,
            PluginCommand::Test(args) => plugin_cli::test(args, cache_root, sandbox).await,
            PluginCommand::Check(args) => plugin_cli::check(args, cache_root, sandbox).await,
            PluginCommand::Wit(args) => plugin_cli::wit(args),
            PluginCommand::Bindgen(args) => plugin_cli::bindgen(args),
            PluginCommand::Componentize(args) => plugin_cli::componentize(args),
            PluginCommand::Push(args) => registry_cli::push_plugin(args, cache_root).await,
            PluginCommand::Keygen(args) => lock_cli::keygen(args),
            PluginCommand::Sign(args) => lock_cli::sign(args),
        },
        Command::Lock(args) => lock_cli::lock(args, cache_root).await,
        Command::Policy { command } => match command {
            PolicyCommand::Check(args) => policy_cli::check(args, cache_root).await,
            PolicyCommand::Report(args) => report_cli::report(args, cache_root).await,
            PolicyCommand::Push(args) => registry_cli::push_policy(args).await,
        },
    }
}

/// `sluice plugin info`.
async fn plugin_info(
    reference: String,
    json: bool,
    cache_root: Option<CacheRoot>,
) -> Result<u8, ExpectedError> {
    let host = start_host(1, cache_root)?;
    let cwd = std::env::current_dir().map_err(|e| ExpectedError::Internal(e.to_string()))?;
    let mut r = PluginRef::parse(&reference, &cwd)
        .map_err(|e| ExpectedError::Config(format!("`{reference}`: {e}")))?;
    crate::registry::resolve_plugin(&mut r, None)
        .await
        .map_err(|e| ExpectedError::Config(e.to_string()))?;
    let p = describe_any(&host, &r)
        .await
        .map_err(|e| ExpectedError::Config(e.to_string()))?;
    if json {
        console::out_line(&json_text(&plugin_json(&p)));
    } else {
        use std::fmt::Write as _;
        let d = p.descriptor();
        let mut text = String::new();
        let _ = writeln!(text, "plugin:       {}", p.reference());
        if p.world == "monitor" {
            let _ = writeln!(
                text,
                "world:        monitor (a health check: `[[monitor]]`)"
            );
        }
        let _ = writeln!(text, "name:         {}", d.name);
        let _ = writeln!(text, "version:      {}", d.version);
        let _ = writeln!(text, "summary:      {}", d.summary);
        let _ = writeln!(text, "world:        {}", p.world);
        let _ = writeln!(text, "digest:       {}", p.digest);
        let caps: Vec<String> = d
            .capabilities
            .iter()
            .map(|c| capability_name(*c).to_string())
            .collect();
        let _ = writeln!(
            text,
            "capabilities: {}",
            if caps.is_empty() {
                "none".into()
            } else {
                caps.join(", ")
            }
        );
        let _ = writeln!(text, "config schema:");
        for l in json_text(&p.schema).lines() {
            let _ = writeln!(text, "  {l}");
        }
        console::out(&text);
    }
    Ok(exit::OK)
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

/// Pretty JSON of a value that is already JSON (cannot fail).
fn json_text(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("null /* {e} */"))
}

/// A loaded plugin of either world, as `plugins` and `plugin info` show it.
struct Described {
    reference: PluginRef,
    /// `step` or `monitor`.
    world: &'static str,
    descriptor: crate::host::bindings::types::Descriptor,
    digest: String,
    schema: serde_json::Value,
}

impl Described {
    fn reference(&self) -> &PluginRef {
        &self.reference
    }

    fn descriptor(&self) -> &crate::host::bindings::types::Descriptor {
        &self.descriptor
    }
}

/// Load `reference` as a step plugin, or, when it is a component of the `monitor`
/// world (`builtin:canary`, `builtin:http-check`, `builtin:prometheus`...), as a
/// monitor.
async fn describe_any(host: &PluginHost, reference: &PluginRef) -> Result<Described, PluginError> {
    match host.load(reference).await {
        Ok(p) => Ok(Described {
            reference: p.reference().clone(),
            world: "step",
            descriptor: p.descriptor().clone(),
            digest: p.digest().to_owned(),
            schema: p.schema().clone(),
        }),
        Err(PluginError::WrongWorld { .. }) => {
            let m = crate::host::monitor::load_monitor(host, reference).await?;
            Ok(Described {
                reference: m.reference().clone(),
                world: "monitor",
                descriptor: m.descriptor().clone(),
                digest: m.digest().to_owned(),
                schema: m.schema().clone(),
            })
        }
        Err(e) => Err(e),
    }
}

fn plugin_json(p: &Described) -> serde_json::Value {
    let d = p.descriptor();
    serde_json::json!({
        "reference": p.reference().to_string(),
        "world": p.world,
        "name": d.name,
        "version": d.version,
        "summary": d.summary,
        "world": p.world,
        "digest": p.digest,
        "capabilities": d.capabilities.iter().map(|c| capability_name(*c)).collect::<Vec<_>>(),
        "config_schema": p.schema,
    })
}

fn start_host(jobs: usize, cache_root: Option<CacheRoot>) -> Result<PluginHost, ExpectedError> {
    let profile = EngineProfile::for_jobs(jobs);
    PluginHost::new(profile, cache_root).map_err(|e| match e {
        EngineError::Cache(_) => ExpectedError::Config(e.to_string()),
        EngineError::Engine(_) => ExpectedError::Internal(e.to_string()),
    })
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

/// A pipeline checked whole before it runs: its plugins loaded, its lock and policy
/// applied.
struct Checked {
    pipeline: config::Pipeline,
    plugins: std::collections::HashMap<PluginRef, std::sync::Arc<LoadedPlugin>>,
    /// The pipeline's policy, when it references one.
    policy: Option<std::sync::Arc<crate::policy::Policy>>,
    /// What the policy said: warnings to show, findings for the `policy` gate.
    outcome: crate::policy::Outcome,
}

/// Read the pipeline file and check it whole: plugins (pulled from registries when
/// `oci://`), schemas, the lock file, the policy. Every problem found is reported at
/// once.
async fn load_and_check(file: &Path, host: &PluginHost) -> Result<Checked, ExpectedError> {
    let (mut pipeline, mut errors) = config::load_lenient(file).map_err(|e| match e {
        PipelineFileError::Unreadable { .. } => ExpectedError::Config(e.to_string()),
        PipelineFileError::Invalid(errors) => config_error(&errors),
    })?;
    let policy = crate::policy::for_pipeline(&pipeline)
        .await
        .map_err(|e| ExpectedError::Config(e.to_string()))?;
    let lock = match crate::lockfile::read_for(&pipeline, file) {
        Ok(lock) => lock,
        Err(more) => {
            errors.extend(more);
            None
        }
    };
    if let Err(more) = crate::registry::resolve(&mut pipeline, lock.as_ref()).await {
        errors.extend(more);
    }
    errors.sort_by_key(|e| (e.pos.line, e.pos.column));
    // Monitors load like steps' plugins, and their problems are reported with them.
    if let Err(more) =
        crate::host::monitor::load_all(host, &pipeline.source, &pipeline.monitors).await
    {
        errors.extend(more);
        errors.sort_by_key(|e| (e.pos.line, e.pos.column));
    }
    let plugins = match validate::validate(&pipeline, host).await {
        Ok(plugins) if errors.is_empty() => plugins,
        Ok(_) => return Err(config_error(&errors)),
        Err(validate::Invalid::Internal(e)) => return Err(ExpectedError::Internal(e.to_string())),
        Err(validate::Invalid::Config(more)) => {
            // A step whose `uses` is already reported needs no second error.
            let lines: std::collections::HashSet<usize> =
                errors.iter().map(|e| e.pos.line).collect();
            errors.extend(more.into_iter().filter(|e| !lines.contains(&e.pos.line)));
            errors.sort_by_key(|e| (e.pos.line, e.pos.column));
            return Err(config_error(&errors));
        }
    };
    let mut errors = crate::lockfile::check(&pipeline, &plugins, lock.as_ref());
    let now = crate::clock::from_env()
        .map_err(ExpectedError::Config)?
        .now();
    let mut outcome = crate::policy::enforce(
        &pipeline,
        &plugins,
        policy.as_ref(),
        lock.as_ref(),
        host,
        now,
    )
    .await;
    errors.append(&mut outcome.errors);
    if !errors.is_empty() {
        errors.sort_by_key(|e| (e.pos.file.clone(), e.pos.line, e.pos.column));
        // The policy's notices still say what they know (an exemption that expired).
        for notice in &outcome.warnings {
            console::err_line(&format!("warning: {}", notice.text));
        }
        return Err(config_error(&errors));
    }
    Ok(Checked {
        pipeline,
        plugins,
        policy,
        outcome,
    })
}

/// What `run` and `resume` do: run a pipeline, new or recorded.
struct Execution {
    file: PathBuf,
    args: ExecutionArgs,
    runs_dir: Option<PathBuf>,
    durable: Durability,
}

/// Whether and how a run is recorded in the state store.
enum Durability {
    /// Not at all (a hidden option, for benchmarks).
    None,
    /// A new run, in the database `state` or the pipeline's.
    New { state: Option<PathBuf> },
    /// A recorded run, continued.
    Resume(Box<durable_cli::ResumeTarget>),
}

async fn execute(
    exec: Execution,
    cache_root: Option<CacheRoot>,
    sandbox: Arc<Sandbox>,
) -> Result<u8, ExpectedError> {
    let Execution {
        file,
        args:
            ExecutionArgs {
                no_wait,
                jobs,
                format,
                verbose,
                log_limit,
                report_dir,
            },
        runs_dir,
        durable,
    } = exec;
    // A new run's state database is opened now, while plugins load.
    let store_ahead = match &durable {
        Durability::New { state } => Some(durable_cli::StoreAhead::start(&file, state.as_deref())),
        _ => None,
    };
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let log_limit = log_limit.as_u64();
    let cache = cache_root.clone();
    // Each checking monitor keeps one instance for as long as the run is alive.
    let host = start_host(
        jobs + crate::monitors::checking_monitors_in(&file),
        cache_root,
    )?;
    let Checked {
        pipeline,
        plugins,
        policy,
        outcome,
    } = load_and_check(&file, &host).await?;
    // The policy's notices are shown before the first stage; its gate guards the
    // protected stages; the job summary lists the notices.
    policy_cli::show_notices(format, policy.as_deref(), &outcome.warnings);
    let policy_gate = policy_cli::gate_input(policy.as_ref(), &outcome, &pipeline, &host).await;
    let policy_summary = policy
        .as_deref()
        .map(|p| reports::github::policy_section(p, &outcome.warnings))
        .unwrap_or_default();
    let monitors = crate::host::monitor::load_all(&host, &pipeline.source, &pipeline.monitors)
        .await
        .map_err(|errors| config_error(&errors))?;
    // Secrets are read before anything is created; a command source may take a while.
    let for_secrets = pipeline.clone();
    let secrets = tokio::task::spawn_blocking(move || SecretValues::resolve(&for_secrets))
        .await
        .map_err(|e| ExpectedError::Internal(format!("reading the secrets: {e}")))?
        .map_err(|errors| {
            ExpectedError::Config(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\nerror: "),
            )
        })?;
    let resumed_run = match &durable {
        Durability::Resume(target) => Some(target.run.run_id.clone()),
        _ => None,
    };
    let folders = RunnerFolders::open(
        &pipeline,
        runs_dir.as_deref(),
        report_dir.as_deref(),
        resumed_run.as_deref(),
    )?;
    // The store is opened before the runner's folders are hidden (and through the
    // `.sluice` handle when it lies there), so steps can never reach it.
    let durable = match durable {
        Durability::None => None,
        Durability::New { state } => Some(durable_cli::start_new(
            &pipeline,
            &file,
            &folders,
            state.as_deref(),
            no_wait,
            policy_gate.as_ref(),
            store_ahead.unwrap_or_default(),
        )?),
        Durability::Resume(target) => Some(durable_cli::start_resume(
            &pipeline,
            *target,
            &folders,
            no_wait,
            policy_gate.as_ref(),
        )?),
    };
    let mut durable = durable;
    if let Some(d) = durable.as_mut() {
        d.monitors = executor::watch::watched(&pipeline.monitors, &monitors);
    }
    let journal_store = durable
        .as_ref()
        .map(|d| (d.store.clone(), folders.run_id.clone()));
    let state_db = durable.as_ref().map(|d| d.store.path().to_path_buf());
    private::protect(
        &pipeline,
        &folders,
        cache.as_ref(),
        sandbox.isolation(),
        state_db.as_deref(),
    )
    .map_err(|errors| ExpectedError::Config(errors.join("\nerror: ")))?;
    // Opened before any step runs, so that no step can swap it for a link.
    let job_summary = reports::github::open_job_summary()
        .map_err(|e| ExpectedError::Config(format!("cannot open $GITHUB_STEP_SUMMARY: {e}")))?;
    // Inside GitHub Actions, nothing a plugin prints acts as a workflow command.
    let fence = reports::github::CommandFence::open();
    let (events, rx) = EventSink::channel(verbose || format == Format::Json);
    let renderer = tokio::spawn(render::render(
        format,
        verbose,
        rx,
        journal_store.as_ref().map(|(store, _)| store.clone()),
    ));
    let opts = RunOptions {
        jobs,
        run_id: folders.run_id.clone(),
        run_dir: folders
            .run
            .try_clone()
            .map_err(|e| ExpectedError::Internal(e.to_string()))?,
        log_limit,
        events,
        sandbox: sandbox.clone(),
        secrets: Arc::new(secrets),
        durable,
    };
    let result = tokio::select! {
        result = executor::run(&pipeline, &plugins, opts) => result,
        code = stop_signal() => {
            // Every step's sandbox dies, with every process in it, before the runner
            // exits. Records of finished steps are already on disk.
            sandbox.shutdown().await;
            if let Some(fence) = fence {
                fence.close();
            }
            let resumable = match &journal_store {
                Some((store, run_id)) => {
                    durable_cli::mark_interrupted(store, run_id);
                    format!("; `sluice resume {run_id}` continues it")
                }
                None => String::new(),
            };
            console::err_line(&format!(
                "interrupted: the running steps were stopped{resumable}"
            ));
            return Ok(code);
        }
    };
    // No sandbox is left running; prepared holders and their cgroups go too.
    sandbox.shutdown().await;
    // Every sender is gone once the run returns; the renderer drains and ends.
    let _ = renderer.await;
    if let Some(fence) = fence {
        fence.close();
    }
    let result = match result
        .map_err(|e| ExpectedError::Internal(format!("cannot record the run: {e}")))?
    {
        executor::RunEnd::Finished(result) => *result,
        executor::RunEnd::Stopped(executor::durable::Stopped::Waiting {
            stage, in_bake, ..
        }) => {
            let run_id = &folders.run_id;
            let what = if in_bake {
                format!("bakes in stage `{stage}`")
            } else {
                format!("waits for stage `{stage}`")
            };
            console::err_line(&format!(
                "run {run_id} {what}; `sluice explain {run_id}` says what would clear it, `sluice resume {run_id}` continues it"
            ));
            return Ok(exit::WAITING);
        }
        executor::RunEnd::Stopped(executor::durable::Stopped::Superseded { stage, by }) => {
            console::err_line(&format!(
                "run {} is superseded: run {by} took its place in the queue of stage `{stage}`",
                folders.run_id
            ));
            return Ok(exit::SUPERSEDED);
        }
    };
    let report_dir = match folders.reports {
        Some(dir) => dir,
        None => folders
            .run
            .dir("reports")
            .map_err(|e| ExpectedError::Internal(e.to_string()))?,
    };
    // Deployments are shown as the state store recorded them.
    let deployed = match &journal_store {
        Some((store, run_id)) => reports::deployments::read(store, run_id).unwrap_or_else(|e| {
            console::err_line(&format!("warning: cannot read the run's deployments: {e}"));
            Vec::new()
        }),
        None => Vec::new(),
    };
    reports::write_all(&result, &deployed, &report_dir)
        .map_err(|e| ExpectedError::Internal(e.to_string()))?;
    if format != Format::Json {
        console::err_line(&format!("reports: {}", report_dir.path().display()));
    }
    if reports::github::in_github_actions() {
        reports::github::print_annotations(&result);
        if let Some(file) = job_summary
            && let Err(e) =
                reports::github::append_job_summary(file, &result, &deployed, &policy_summary)
        {
            console::err_line(&format!(
                "warning: cannot append the job summary to $GITHUB_STEP_SUMMARY: {e}"
            ));
        }
    }
    Ok(match result.status {
        Status::Failed => exit::PIPELINE_FAILED,
        _ => exit::OK,
    })
}

/// Wait for SIGINT, SIGTERM or SIGHUP; the exit code that says which.
async fn stop_signal() -> u8 {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return exit::INTERRUPTED;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => exit::INTERRUPTED,
        _ = term.recv() => exit::TERMINATED,
        _ = hup.recv() => exit::HUNG_UP,
    }
}

/// The folders a run writes: `.sluice/` next to the pipeline file, the runs folder
/// (`.sluice/runs`, or `--runs-dir`), this run's folder, and `--report-dir`.
struct RunnerFolders {
    state: OwnedDir,
    runs: OwnedDir,
    run_id: String,
    run: OwnedDir,
    reports: Option<OwnedDir>,
}

impl RunnerFolders {
    fn open(
        pipeline: &config::Pipeline,
        runs_dir: Option<&Path>,
        report_dir: Option<&Path>,
        resumed_run: Option<&str>,
    ) -> Result<RunnerFolders, ExpectedError> {
        let internal = |e: std::io::Error| {
            ExpectedError::Internal(format!("cannot create the run's folder: {e}"))
        };
        let state = OwnedDir::open_or_create(&pipeline.dir.join(".sluice")).map_err(internal)?;
        // Keep run folders and state out of the project's version control.
        if !state.contains(".gitignore") {
            let _ = state.replace_file(
                ".gitignore",
                b"# Written by sluice: run logs, records and state are not sources.\n*\n",
            );
        }
        let runs = match runs_dir {
            Some(dir) => OwnedDir::open_or_create(dir).map_err(internal)?,
            None => state.dir("runs").map_err(internal)?,
        };
        let (run_id, run) = match resumed_run {
            // A resumed run goes on in its own folder.
            Some(id) => (id.to_string(), runs.dir(id).map_err(internal)?),
            None => {
                let id = executor::new_run_id();
                let run = runs.create_dir(&id).map_err(internal)?;
                (id, run)
            }
        };
        let reports = report_dir
            .map(|d| {
                OwnedDir::open_or_create(d).map_err(|e| {
                    ExpectedError::Config(format!("cannot use the report folder: {e}"))
                })
            })
            .transpose()?;
        Ok(RunnerFolders {
            state,
            runs,
            run_id,
            run,
            reports,
        })
    }
}

mod canary_cli;
mod durable_cli;
mod lock_cli;
mod plugin_cli;
mod policy_cli;
mod registry_cli;
mod report_cli;
mod targets_cli;

/// Keeping the runner's own folders from the steps.
mod private {
    use super::*;
    use crate::sandbox::runner_ns::RunnerIsolation;

    /// Hide the runner's folders from every step, or, where that cannot be done,
    /// refuse grants that cover them. Grants inside them are refused always. A state
    /// database outside `.sluice/` (`--state`, `[pipeline] state`) is not hidden, so a
    /// grant that covers it is refused.
    pub(super) fn protect(
        pipeline: &config::Pipeline,
        folders: &RunnerFolders,
        cache: Option<&CacheRoot>,
        isolation: &RunnerIsolation,
        state_db: Option<&Path>,
    ) -> Result<(), Vec<String>> {
        let mut private: Vec<(&std::os::fd::OwnedFd, &Path, &str)> = vec![(
            folders.state.handle(),
            folders.state.path(),
            "run records and state",
        )];
        if !folders.runs.path().starts_with(folders.state.path()) {
            private.push((folders.runs.handle(), folders.runs.path(), "run records"));
        }
        if let Some(cache) = cache {
            private.push((cache.handle(), cache.path(), "compiled-plugin cache"));
        }
        let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        // Resolved before the cover goes up: the default database then resolves into
        // `.sluice/`, which is hidden.
        let exposed_db = state_db
            .map(real)
            .filter(|db| !db.starts_with(real(folders.state.path())));
        let hidden = isolation.can_hide().map_err(str::to_string).and_then(|()| {
            private
                .iter()
                .try_for_each(|(handle, path, _)| isolation.hide(handle, path))
                .map_err(|e| e.to_string())
        });
        let mut errors = Vec::new();
        for stage in &pipeline.stages {
            for step in &stage.steps {
                let grants = step
                    .grants
                    .read
                    .iter()
                    .map(|g| ("read", g))
                    .chain(step.grants.write.iter().map(|g| ("write", g)));
                for (kind, grant) in grants {
                    let granted = real(grant);
                    if let Some(db) = &exposed_db
                        && db.starts_with(&granted)
                    {
                        errors.push(format!(
                            "{}: step `{}`: `{kind}` grant {} covers the state database {} (set by --state or [pipeline] state), which sluice does not hide from steps; keep the database outside every grant (the default, .sluice/state.db, is hidden)",
                            pipeline.source.path.display(),
                            step.id,
                            grant.display(),
                            pipeline_relative(pipeline, db)
                        ));
                    }
                    for (_, path, what) in &private {
                        let folder = real(path);
                        let shown = pipeline_relative(pipeline, &folder);
                        if granted.starts_with(&folder) {
                            errors.push(format!(
                                "{}: step `{}`: `{kind}` grant {} lies inside sluice's own folder {shown} ({what}); steps cannot be granted it",
                                pipeline.source.path.display(),
                                step.id,
                                grant.display()
                            ));
                        } else if folder.starts_with(&granted)
                            && let Err(why) = &hidden
                        {
                            errors.push(format!(
                                "{}: step `{}`: `{kind}` grant {} covers sluice's own folder {shown} ({what}), which this machine cannot hide from steps ({why}); grant the folders the step needs instead, or keep runs elsewhere with --runs-dir and the cache with --cache-dir",
                                pipeline.source.path.display(),
                                step.id,
                                grant.display()
                            ));
                        }
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn pipeline_relative(pipeline: &config::Pipeline, path: &Path) -> String {
        match path.strip_prefix(&pipeline.dir) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
            _ => path.display().to_string(),
        }
    }
}
