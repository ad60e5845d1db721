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
#[command(
    after_help = "The bindings are for the contract embedded in this sluice \
(`sluice plugin wit` writes it), made with the wit-bindgen-c / wit-bindgen-go 0.61.1 \
libraries; nothing else to install.\n\n\
C: writes WORLD.h, WORLD.c and WORLD_component_type.o (link the object file: it carries \
the world's type information). Implement the `exports_sluice_plugin_*` functions the \
header declares.\n\n\
Go: writes a `main` package with its go.mod (or, with --go-package, a library) and \
go-pkg/, the runtime package the bindings import (go.bytecodealliance.org/pkg), with a \
`replace` line so that no Go module proxy is needed."
)]
pub(super) struct BindgenArgs {
    /// The guest language.
    #[arg(long, value_enum)]
    pub lang: authoring::toolkit::BindgenLang,
    /// The world: `step` (a pipeline step) or `monitor` (a health check).
    #[arg(long, value_enum, default_value = "step")]
    pub world: authoring::toolkit::ContractWorld,
    /// Folder to write the bindings into (generated files are overwritten).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Go only: generate a library package with this import path (e.g.
    /// `example.com/todo-scan/bindings`) instead of a `main` package with its own go.mod.
    #[arg(long, value_name = "IMPORT_PATH")]
    pub go_package: Option<String>,
}

/// `sluice plugin componentize`.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "The module must be a wasm32-wasip1 *reactor* (clang `-mexec-model=reactor`, \
Go `-buildmode=c-shared`) exporting the world's functions. When it carries no \
component-type metadata (Go), the world's is embedded from the contract in this sluice. \
The wasip1 imports are adapted to WASI 0.2 by the preview1 reactor adapter of this \
runner's wasmtime (wasi-preview1-component-adapter-provider 48.0.8), and the component \
is validated before it is written.\n\n\
Exit codes: 0 written; 2 the module is not usable (the message says why); 3 the \
component could not be written."
)]
pub(super) struct ComponentizeArgs {
    /// A wasm32-wasip1 core module (from clang, `go build`...).
    pub module: PathBuf,
    /// Where to write the component.
    #[arg(short, long, value_name = "FILE")]
    pub out: PathBuf,
    /// The world the module implements: `step` or `monitor`.
    #[arg(long, value_enum, default_value = "step")]
    pub world: authoring::toolkit::ContractWorld,
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
    let mut text = format!(
        "created {} plugin `{}` in {} ({} files)\n",
        args.lang.folder(),
        args.name,
        made.dir.display(),
        made.files.len()
    );
    text.push_str(&format!(
        "next:\n  cd {}\n  {}    # build the component\n  {}    # check it and run its test cases\n",
        made.dir.display(),
        made.build,
        made.test
    ));
    console::out(&text);
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

pub(super) fn bindgen(args: BindgenArgs) -> Result<u8, ExpectedError> {
    use authoring::toolkit::{BindgenLang, BindgenOptions};
    if args.go_package.is_some() && args.lang != BindgenLang::Go {
        return Err(ExpectedError::Config(
            "--go-package is for `--lang go` only".to_string(),
        ));
    }
    let options = BindgenOptions {
        go_package: args.go_package.clone(),
    };
    let generated = authoring::toolkit::bindgen(args.lang, args.world, &args.out, &options)
        .map_err(to_expected)?;
    let mut text = format!(
        "wrote {} bindings for world `{}` of sluice:plugin@{} ({} files) to {}\n",
        match args.lang {
            BindgenLang::C => "C",
            BindgenLang::Go => "Go",
        },
        args.world.name(),
        authoring::scaffold::contract_version(),
        generated.files.len(),
        args.out.display()
    );
    if !generated.go_mod_lines.is_empty() {
        text.push_str("add to your go.mod:\n");
        for line in &generated.go_mod_lines {
            text.push_str(&format!("  {line}\n"));
        }
    }
    console::out(&text);
    Ok(exit::OK)
}

pub(super) fn componentize(args: ComponentizeArgs) -> Result<u8, ExpectedError> {
    let (made, _) = authoring::toolkit::componentize(&args.module, &args.out, args.world)
        .map_err(to_expected)?;
    console::out_line(&format!(
        "wrote {} ({}, world `{}`{})",
        args.out.display(),
        bytesize::ByteSize(made.size as u64),
        made.world,
        if made.embedded_metadata {
            ", type information embedded"
        } else {
            ""
        }
    ));
    Ok(exit::OK)
}
