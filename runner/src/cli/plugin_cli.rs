//! `sluice plugin new|run|test|check|wit|bindgen|componentize`: the plugin-author kit
//! at the command line. The work is in [`crate::authoring`]; this module parses the
//! arguments and maps outcomes to exit codes.

use std::path::PathBuf;
use std::sync::Arc;

use super::{ExpectedError, exit};
use crate::authoring::once::{Grant, Invocation};
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
    /// What the project is: a pipeline step (`step`), or an organisation check over
    /// the pipeline model (`policy-check`, for a policy file's `[[check]] uses`).
    #[arg(long, value_enum, default_value = "step")]
    pub world: authoring::toolkit::ContractWorld,
}

const RUN_HELP: &str = "\
The plugin runs as the only step of a one-step pipeline (pipeline `plugin-run`, stage
`plugin`, step `run`), with the sandbox, limits and grant checks of a pipeline step, not
recorded in the state store; its run folder is temporary. `--with` is checked against
the plugin's schema first. The step log (the plugin's stdout, stderr and log lines) is
shown on stderr as it is written; the report goes to stdout.

Exit codes:
  0  the plugin returned a report whose status is passed, warned or skipped
  1  the plugin failed: a run-error (denied, invalid-config, failed), a trap, a
     timeout, or a report whose status is failed
  2  usage or configuration error: a flag, --with against the schema, the plugin
     cannot be loaded
  3  internal error

--format json prints the report as the runner stores it (.sluice/runs/<id>/steps/
<step>.json, under `report`), or {\"error\": {\"kind\": ..., \"message\": ...}} when the
plugin returned no report. See docs/plugins/kit.md.";

const TEST_HELP: &str = "\
A case is a folder with case.toml (with, [grants], workdir, timeout, [expect] ignore and
outcome), expected.json (what `sluice plugin run --format json` prints) and its fixture
files. --case DIR is one case, or a folder whose subfolders are cases (in name order).
Relative grants and workdir are relative to the case folder. `[expect] ignore` lists
JSON pointers whose values are not compared, `*` standing for any index or key:
  ignore = [\"/findings/*/fingerprint\", \"/metrics/*/value\"]

Exit codes: 0 every case passed (or was blessed), 1 a case failed, 2 usage error (a
case.toml error names its file, line and key), 3 internal error. See docs/plugins/kit.md.";

const CHECK_HELP: &str = "\
Checks: schema-valid, schema-closed, schema-examples, examples-valid, example-runs,
denied-without-grants, stable-fingerprints, no-output-flood, describe-pure; each passes,
fails or warns with a reason (a monitor skips the run checks). The example runs get the
--grant flags, or, with none, read of the work folder.

Exit codes: 0 no check failed (warnings allowed), 1 a check failed, 2 usage error, 3
internal error. See docs/plugins/kit.md.";

/// `sluice plugin run`.
#[derive(clap::Args, Debug)]
#[command(after_help = RUN_HELP)]
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
#[command(after_help = TEST_HELP)]
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
#[command(after_help = CHECK_HELP)]
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
        AuthoringError::Io { .. } | AuthoringError::Internal(_) => {
            ExpectedError::Internal(e.to_string())
        }
    }
}

pub(super) fn new(args: NewArgs) -> Result<u8, ExpectedError> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    let made = authoring::scaffold::new_project(&args.name, args.lang, args.world, &dir)
        .map_err(to_expected)?;
    console::out(&made.next_steps());
    Ok(exit::OK)
}

/// A session for `plugin run|test|check`: the plugin host and the hidden scratch
/// folder. The cache root is hidden from steps as `sluice run` hides it.
fn start_session(
    cache_root: Option<CacheRoot>,
    sandbox: Arc<Sandbox>,
) -> Result<authoring::once::Session, ExpectedError> {
    let cache = cache_root.clone();
    let host = super::start_host(1, cache_root)?;
    authoring::once::Session::start(host, sandbox, cache.as_ref()).map_err(to_expected)
}

fn current_dir() -> Result<PathBuf, ExpectedError> {
    std::env::current_dir().map_err(|e| ExpectedError::Internal(format!("the current folder: {e}")))
}

/// `--grant` flags, relative folders against the current folder.
fn parse_grants(flags: &[String], base: &std::path::Path) -> Result<Vec<Grant>, ExpectedError> {
    flags
        .iter()
        .map(|f| Grant::parse(f, base).map_err(to_expected))
        .collect()
}

/// `--workdir`, absolute and existing [default: the current folder].
fn workdir(
    flag: Option<&std::path::Path>,
    base: &std::path::Path,
) -> Result<PathBuf, ExpectedError> {
    let dir = flag.map_or_else(|| base.to_path_buf(), |d| base.join(d));
    std::fs::canonicalize(&dir)
        .map_err(|e| ExpectedError::Config(format!("--workdir {}: {e}", dir.display())))
}

pub(super) async fn run(
    args: RunArgs,
    cache_root: Option<CacheRoot>,
    sandbox: Arc<Sandbox>,
) -> Result<u8, ExpectedError> {
    let cwd = current_dir()?;
    let with = match &args.with {
        None => serde_json::Value::Object(Default::default()),
        Some(text) => serde_json::from_str(text).map_err(|e| {
            ExpectedError::Config(format!(
                "--with: not JSON: {e} (at line {}, column {}); write e.g. --with '{{\"paths\": [\"src\"]}}'",
                e.line(),
                e.column()
            ))
        })?,
    };
    let invocation = Invocation {
        reference: args.reference.clone(),
        with,
        grants: parse_grants(&args.grants, &cwd)?,
        workdir: workdir(args.workdir.as_deref(), &cwd)?,
        timeout: args.timeout.clone(),
    };
    let session = start_session(cache_root, sandbox)?;
    let outcome = session.run(&invocation).await;
    session.finish().await;
    let outcome = outcome.map_err(to_expected)?;
    match args.format {
        KitFormat::Json => {
            console::out_line(&super::json_text(&outcome.to_json()));
        }
        KitFormat::Text => {
            console::out(&outcome.to_text());
        }
    }
    Ok(outcome.exit_code())
}

pub(super) async fn test(
    args: TestArgs,
    cache_root: Option<CacheRoot>,
    sandbox: Arc<Sandbox>,
) -> Result<u8, ExpectedError> {
    let mut cases = Vec::new();
    for dir in &args.cases {
        for found in authoring::cases::discover(dir).map_err(to_expected)? {
            cases.push(authoring::cases::Case::read(&found, &args.reference).map_err(to_expected)?);
        }
    }
    let mut session = start_session(cache_root, sandbox)?;
    session.live_log = authoring::once::LiveLog::Quiet;
    let mut results = Vec::new();
    let mut error = None;
    for case in &cases {
        match authoring::cases::run_case(&session, case, args.bless).await {
            Ok(r) => {
                if args.format == KitFormat::Text {
                    console::out(&authoring::cases::case_text(&r));
                }
                results.push(r);
            }
            Err(e) => {
                // A case that cannot run (its `with` does not match the schema...)
                // names the case and stops the command.
                // Said in terms of case.toml: `with.key`, not the `--with` flag.
                let text = e
                    .to_string()
                    .replace("--with: `", "`with.")
                    .replace("--with: ", "`with`: ");
                error = Some(AuthoringError::Usage(format!(
                    "{}: {text}",
                    case.shown.join("case.toml").display()
                )));
                break;
            }
        }
    }
    session.finish().await;
    if let Some(e) = error {
        return Err(to_expected(e));
    }
    let summary = authoring::cases::summary_line(&results);
    match args.format {
        KitFormat::Text => {
            console::out_line(&summary);
        }
        KitFormat::Json => {
            let failed = results.iter().filter(|r| r.result == "failed").count();
            console::out_line(&super::json_text(&serde_json::json!({
                "cases": results,
                "passed": results.iter().filter(|r| r.result == "passed").count(),
                "failed": failed,
                "blessed": results.iter().filter(|r| r.result == "blessed").count(),
                "summary": summary,
            })));
        }
    }
    Ok(if results.iter().any(|r| r.result == "failed") {
        exit::PIPELINE_FAILED
    } else {
        exit::OK
    })
}

pub(super) async fn check(
    args: CheckArgs,
    cache_root: Option<CacheRoot>,
    sandbox: Arc<Sandbox>,
) -> Result<u8, ExpectedError> {
    let cwd = current_dir()?;
    // Without --workdir, the example runs work in a fresh empty folder.
    let empty = match &args.workdir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("sluice-check-")
                .tempdir()
                .map_err(|e| {
                    ExpectedError::Internal(format!("cannot make a temporary folder: {e}"))
                })?,
        ),
    };
    let workdir = match &empty {
        Some(dir) => workdir(Some(dir.path()), &cwd)?,
        None => workdir(args.workdir.as_deref(), &cwd)?,
    };
    let mut grants = parse_grants(&args.grants, &cwd)?;
    if grants.is_empty() {
        grants.push(Grant {
            kind: "read".into(),
            value: workdir.display().to_string(),
        });
    }
    let setup = authoring::conformance::CheckSetup { grants, workdir };
    let mut session = start_session(cache_root, sandbox)?;
    session.live_log = authoring::once::LiveLog::Quiet;
    session.log_limit = authoring::conformance::FLOOD_BOUND + (64 << 10);
    let result = authoring::conformance::check_plugin(&session, &args.reference, &setup).await;
    session.finish().await;
    let result = result.map_err(to_expected)?;
    match args.format {
        KitFormat::Text => {
            console::out(&result.to_text());
        }
        KitFormat::Json => {
            console::out_line(&super::json_text(&serde_json::json!({
                "plugin": result.plugin,
                "world": result.world,
                "checks": result.checks,
                "passed": result.passed(),
                "summary": result.summary_line(),
            })));
        }
    }
    Ok(if result.passed() {
        exit::OK
    } else {
        exit::PIPELINE_FAILED
    })
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
