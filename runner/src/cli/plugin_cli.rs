//! `sluice plugin new|run|test|check|wit|bindgen|componentize`: the plugin-author kit
//! at the command line. The work is in [`crate::authoring`]; this module parses the
//! arguments and maps outcomes to exit codes.

use std::path::PathBuf;
use std::sync::Arc;

use super::{ExpectedError, exit};
use crate::authoring::{self, AuthoringError};
use crate::console;
use crate::host::cache::CacheRoot;
use crate::sandbox::Sandbox;

/// `sluice plugin new`.
#[derive(clap::Args, Debug)]
#[command(after_help = authoring::scaffold::languages_help())]
pub(super) struct NewArgs {
    /// The plugin's name: lowercase letters, digits and `-` (e.g. `todo-scan`).
    pub name: String,
    /// The language of the project.
    #[arg(long, value_enum)]
    pub lang: authoring::scaffold::Lang,
    /// Where to write the project [default: ./NAME]; must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// `sluice plugin run`.
#[derive(clap::Args, Debug)]
pub(super) struct RunArgs {
    /// `builtin:<name>` or a path to a .wasm component.
    pub reference: String,
    /// The step's `with` table, as JSON (`'{"paths": ["src"]}'`) [default: {}].
    #[arg(long = "with", value_name = "JSON")]
    pub with: Option<String>,
    /// A grant, as in a pipeline's `[stage.step.grants]`: `read=DIR`, `write=DIR`,
    /// `exec=PROGRAM`, `net=HOST:PORT`, `env=NAME`. Repeat for more.
    #[arg(long = "grant", value_name = "KIND=VALUE")]
    pub grants: Vec<String>,
    /// The step's working folder (relative paths in `with` and in the report are
    /// relative to it) [default: the current folder].
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Step timeout, e.g. `30s` [default: the runner's step default].
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Print the report as text or JSON.
    #[arg(long, value_enum, default_value = "text")]
    pub format: KitFormat,
}

/// `sluice plugin test`.
#[derive(clap::Args, Debug)]
pub(super) struct TestArgs {
    /// `builtin:<name>` or a path to a .wasm component.
    pub reference: String,
    /// A case folder (see `sluice plugin test --help`); a folder whose subfolders are
    /// cases runs them all. Repeat for more.
    #[arg(long = "case", value_name = "DIR", required = true)]
    pub cases: Vec<PathBuf>,
    /// Write each case's `expected.json` from the actual report instead of comparing.
    #[arg(long)]
    pub bless: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub format: KitFormat,
}

/// `sluice plugin check`.
#[derive(clap::Args, Debug)]
pub(super) struct CheckArgs {
    /// `builtin:<name>` or a path to a .wasm component.
    pub reference: String,
    /// Grants the example runs get (as for `sluice plugin run`).
    #[arg(long = "grant", value_name = "KIND=VALUE")]
    pub grants: Vec<String>,
    /// The folder the example runs work in [default: a fresh empty folder].
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: KitFormat,
}

/// `sluice plugin wit`.
#[derive(clap::Args, Debug)]
pub(super) struct WitArgs {
    /// Folder to write `plugin.wit` and `deps/` into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `sluice plugin bindgen`.
#[derive(clap::Args, Debug)]
pub(super) struct BindgenArgs {
    /// The guest language.
    #[arg(long, value_enum)]
    pub lang: authoring::toolkit::BindgenLang,
    /// The world: `step` (a pipeline step) or `monitor` (a health check).
    #[arg(long, default_value = "step")]
    pub world: String,
    /// Folder to write the bindings into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `sluice plugin componentize`.
#[derive(clap::Args, Debug)]
pub(super) struct ComponentizeArgs {
    /// A wasm32-wasip1 core module (from clang, `go build`, TinyGo...).
    pub module: PathBuf,
    /// Where to write the component.
    #[arg(short, long, value_name = "FILE")]
    pub out: PathBuf,
    /// The world the module implements: `step` or `monitor`.
    #[arg(long, default_value = "step")]
    pub world: String,
}

/// Output format of the kit's commands.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KitFormat {
    Text,
    Json,
}

fn to_expected(e: AuthoringError) -> ExpectedError {
    match e {
        AuthoringError::Usage(_) => ExpectedError::Config(e.to_string()),
        AuthoringError::Io { .. } | AuthoringError::Unavailable(_) => {
            ExpectedError::Internal(e.to_string())
        }
    }
}

pub(super) fn new(args: NewArgs) -> Result<u8, ExpectedError> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let made =
        authoring::scaffold::new_project(&args.name, args.lang, &dir).map_err(to_expected)?;
    console::out(&made.next_steps());
    Ok(exit::OK)
}

pub(super) async fn run(
    _args: RunArgs,
    _cache_root: Option<CacheRoot>,
    _sandbox: Arc<Sandbox>,
) -> Result<u8, ExpectedError> {
    Err(to_expected(authoring::once::unavailable()))
}

pub(super) async fn test(
    _args: TestArgs,
    _cache_root: Option<CacheRoot>,
    _sandbox: Arc<Sandbox>,
) -> Result<u8, ExpectedError> {
    Err(to_expected(authoring::cases::unavailable()))
}

pub(super) async fn check(
    _args: CheckArgs,
    _cache_root: Option<CacheRoot>,
    _sandbox: Arc<Sandbox>,
) -> Result<u8, ExpectedError> {
    Err(to_expected(authoring::conformance::unavailable()))
}

pub(super) fn wit(args: WitArgs) -> Result<u8, ExpectedError> {
    let written = authoring::toolkit::write_wit(&args.out).map_err(to_expected)?;
    console::out_line(&format!(
        "wrote the contract sluice:plugin@{} ({} files) to {}",
        authoring::scaffold::contract_version(),
        written,
        args.out.display()
    ));
    Ok(exit::OK)
}

pub(super) fn bindgen(_args: BindgenArgs) -> Result<u8, ExpectedError> {
    Err(to_expected(authoring::toolkit::unavailable("bindgen")))
}

pub(super) fn componentize(_args: ComponentizeArgs) -> Result<u8, ExpectedError> {
    Err(to_expected(authoring::toolkit::unavailable("componentize")))
}
