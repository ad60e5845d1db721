//! `builtin:build`: build a project, declare what it produced, and write a CycloneDX
//! SBOM of its locked dependencies and an in-toto/SLSA v1 provenance statement for
//! its artifacts.
//!
//! ```toml
//! [[stage.step]]
//! id = "build"
//! uses = "builtin:build"
//! with = { artifacts = ["target/release/app"] }   # Cargo detected from Cargo.toml
//! [stage.step.grants]
//! exec = ["cargo", "git"]
//! read = [".", "~/.cargo", "~/.rustup"]
//! write = ["target"]
//! env = ["HOME", "CARGO_HOME", "RUSTUP_HOME"]
//! ```
//!
//! - The command: `command` if set, else by the marker file in `path`: `Cargo.toml` →
//!   `cargo build --release`, `package.json` → `npm run build`, `go.mod` → `go build
//!   ./...`, `pom.xml` → `mvn -B package`, `Makefile` → `make`; `args` are appended.
//! - Artifacts: the files matching `artifacts`. Each is a deliverable (name and
//!   version) when a version is known (Cargo.toml or `cargo metadata`, package.json,
//!   or `version`), else a plain artifact.
//! - `<output-dir>/sbom.cdx.json` (CycloneDX 1.5): what the built target ships, its
//!   dependency closure with edges (`cargo metadata` for the build's platform,
//!   package-lock.json without dev dependencies, `go list -deps`), hashes from the
//!   lockfiles; build-only packages are `scope: excluded`, dev dependencies left out;
//!   and `<output-dir>/provenance.intoto.json` (in-toto Statement v1, SLSA
//!   Provenance v1 predicate); `output-dir` must be inside a `write` grant.

pub mod documents;
pub mod project;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sluice_sdk::{
    Capability, Command, HumanDuration, Metric, Output, Plugin, ProcessError, Report, RunError,
    StepContext,
};

use sluice_lockfiles::closure::Scope;

use crate::documents::Digested;
use crate::project::Kind;

/// The SLSA build type of this plugin's provenance.
pub const BUILD_TYPE: &str = "urn:sluice:build-type:builtin-build:v1";
/// How many trailing lines of a failed build's output go into the summary.
const TAIL_LINES: usize = 20;

/// The step's `with` table.
#[derive(serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Project folder, relative to the pipeline's folder; the build runs in it.
    #[serde(default = "default_path")]
    pub path: String,
    /// Program and arguments that build the project, instead of the detected command.
    pub command: Option<Vec<String>>,
    /// Extra arguments for the detected command.
    #[serde(default)]
    pub args: Vec<String>,
    /// Kill the build after this long, e.g. `20m`.
    #[serde(serialize_with = "duration_text")]
    pub timeout: Option<HumanDuration>,
    /// Extra environment variables for the build.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Files the build produces (globs, relative to the pipeline's folder). Each must
    /// match at least one file.
    #[serde(default)]
    pub artifacts: Vec<String>,
    /// Media type of the artifacts; guessed from the file name when absent.
    pub media_type: Option<String>,
    /// Deliverable name; defaults to the package's name, else the file name.
    pub name: Option<String>,
    /// Deliverable version, when the project's manifest has none.
    pub version: Option<String>,
    /// Where the SBOM and the provenance go (inside a `write` grant).
    #[serde(default = "default_output_dir")]
    pub output_dir: String,
    /// Write the CycloneDX SBOM.
    #[serde(default = "yes")]
    pub sbom: bool,
    /// Write the provenance statement.
    #[serde(default = "yes")]
    pub provenance: bool,
}

/// Record a duration in the provenance the way the pipeline wrote it (`20m`).
fn duration_text<S: serde::Serializer>(
    duration: &Option<HumanDuration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => serializer.serialize_some(&duration.to_string()),
        None => serializer.serialize_none(),
    }
}

fn default_path() -> String {
    ".".into()
}
fn default_output_dir() -> String {
    "target/sluice".into()
}
fn yes() -> bool {
    true
}

/// The plugin.
pub struct Build;

impl Plugin for Build {
    type Config = Config;
    const NAME: &'static str = "build";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const SUMMARY: &'static str =
        "Builds a project, declares its artifacts and writes a CycloneDX SBOM and SLSA provenance.";

    fn capabilities() -> Vec<Capability> {
        vec![
            Capability::Exec,
            Capability::ReadFiles,
            Capability::WriteFiles,
        ]
    }

    fn run(config: Config, ctx: &StepContext) -> Result<Report, RunError> {
        run(&config, ctx)
    }
}

sluice_sdk::export_plugin!(Build);

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn run(config: &Config, ctx: &StepContext) -> Result<Report, RunError> {
    let project = ctx.resolve(&config.path);
    let kind = project::detect(&project);
    let words = project::command(kind, config.command.as_deref(), &config.args).ok_or_else(|| {
        RunError::invalid_config(format!(
            "cannot tell how to build {}: no Cargo.toml, package.json, go.mod, pom.xml or Makefile \
             there (or it is not readable: add it to the `read` grant); set `command`",
            project.display()
        ))
    })?;
    let started_on = documents::rfc3339(now_seconds());
    let mut command = Command::new(&words[0])
        .args(words[1..].iter().cloned())
        .envs(config.env.clone())
        .cwd(&project);
    if let Some(timeout) = config.timeout {
        command = command.timeout(timeout.0);
    }
    let shown = command.display();
    sluice_sdk::log::info(format!("running `{shown}`"));
    let output = command.run()?;
    let finished_on = documents::rfc3339(now_seconds());
    let duration_metric = Metric::new(
        "build.duration",
        output.duration.as_secs_f64() * 1000.0,
        "ms",
    );
    if !output.success() {
        return Ok(Report::failed(format!(
            "`{shown}` {} after {}; last lines of {}",
            output.describe_exit(),
            HumanDuration(output.duration),
            tail_of(&output)
        ))
        .with_metric(duration_metric));
    }

    // What the project says about itself.
    let identity = project::identity(kind, &project, config.version.as_deref());

    // Artifacts, hashed here for the provenance (the host hashes them again for the run).
    let mut subjects = Vec::new();
    let mut report = Report::passed(String::new()).with_metric(duration_metric);
    for file in artifact_files(ctx, &config.artifacts)? {
        let relative = relative_to(ctx.workdir(), &file);
        let sha256 = sha256_file(&file)?;
        let media_type = config
            .media_type
            .clone()
            .unwrap_or_else(|| guess_media_type(&relative).to_owned());
        let file_name = file
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = config
            .name
            .clone()
            .or_else(|| identity.name.clone())
            .unwrap_or(file_name);
        report = match &identity.version {
            Some(version) => {
                report.with_deliverable(relative.clone(), media_type, name, version.clone())
            }
            None => report.with_artifact(relative.clone(), media_type),
        };
        subjects.push(Digested {
            name: relative,
            sha256,
        });
    }

    let output_dir = ctx.resolve(&config.output_dir);
    let output_dir_shown = config.output_dir.trim_end_matches('/');
    if config.sbom || config.provenance {
        sluice_sdk::fs::create_dir_all(&output_dir)?;
    }

    // Lockfiles: SBOM components and provenance inputs.
    let locks = project::read_lockfiles(&project)?;
    let mut byproducts = Vec::new();
    let mut components = 0;
    let mut build_only = 0;
    if config.sbom {
        let subject_name = identity
            .name
            .clone()
            .unwrap_or_else(|| ctx.pipeline().to_owned());
        let subject = documents::Subject {
            name: &subject_name,
            version: identity.version.as_deref(),
            purl: identity.purl(),
        };
        let seed = format!(
            "{}/{}/{}",
            ctx.run_id(),
            ctx.step(),
            locks
                .iter()
                .map(|lock| lock.sha256.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
        let closures = project::shipped(&project, &locks, &words, &config.env)?;
        let locked: Vec<_> = locks
            .iter()
            .flat_map(|lock| lock.parsed.packages.iter().cloned())
            .collect();
        components = closures
            .iter()
            .map(|c| c.scoped(Scope::Required).count())
            .sum();
        build_only = closures
            .iter()
            .map(|c| c.scoped(Scope::Build).count())
            .sum();
        let bom = documents::cyclonedx(
            &subject,
            &closures,
            &locked,
            &seed,
            &finished_on,
            env!("CARGO_PKG_VERSION"),
        );
        let bytes = pretty(&bom);
        let path = output_dir.join("sbom.cdx.json");
        sluice_sdk::fs::write(&path, &bytes)?;
        let shown_path = format!("{output_dir_shown}/sbom.cdx.json");
        byproducts.push(json!({"name": shown_path, "digest": {"sha256": sluice_lockfiles::hex(&Sha256::digest(&bytes))}, "mediaType": "application/vnd.cyclonedx+json"}));
        report = report.with_artifact(shown_path, "application/vnd.cyclonedx+json");
    }

    let mut git_commit = None;
    if config.provenance {
        let mut dependencies: Vec<Value> = Vec::new();
        git_commit = git_head(&project);
        if let Some(commit) = &git_commit {
            dependencies.push(json!({"uri": format!("git+file://{}", project.display()), "digest": {"gitCommit": commit}}));
        }
        for lock in &locks {
            dependencies.push(json!({"name": lock.name, "uri": format!("file:{}", relative_to(ctx.workdir(), &lock.path)), "digest": {"sha256": lock.sha256}}));
        }
        let plugins: Vec<Value> = ctx
            .plugins()
            .iter()
            .map(|plugin| json!({"name": plugin.step, "uri": plugin.uses, "digest": documents::digest_set(&plugin.digest)}))
            .collect();
        let own = ctx
            .plugins()
            .iter()
            .rev()
            .find(|plugin| plugin.step == ctx.step());
        let builder_id = match own {
            Some(plugin) => format!("urn:sluice:builder:{}", plugin.uses),
            None => "urn:sluice:builder:builtin:build".to_owned(),
        };
        let config_json = serde_json::to_value(config)
            .map_err(|err| RunError::failed(format!("cannot record the configuration: {err}")))?;
        let provenance = documents::Provenance {
            subjects: &subjects,
            build_type: BUILD_TYPE,
            external: json!({
                "pipeline": ctx.pipeline(),
                "stage": ctx.stage(),
                "step": ctx.step(),
                "command": words,
                "config": config_json,
            }),
            internal: json!({"runId": ctx.run_id(), "attempt": ctx.attempt(), "projectKind": kind.map(Kind::name)}),
            dependencies,
            builder_id,
            plugins,
            byproducts,
            invocation_id: ctx.run_id(),
            started_on: &started_on,
            finished_on: &finished_on,
        };
        let statement = documents::statement(&provenance, env!("CARGO_PKG_VERSION"));
        sluice_sdk::fs::write(
            output_dir.join("provenance.intoto.json"),
            pretty(&statement),
        )?;
        report = report.with_artifact(
            format!("{output_dir_shown}/provenance.intoto.json"),
            "application/vnd.in-toto+json",
        );
    }

    let mut summary = format!("`{shown}` succeeded in {}", HumanDuration(output.duration));
    summary.push_str(&format!("; {} artifact(s)", subjects.len()));
    if let (Some(name), Some(version)) = (&identity.name, &identity.version) {
        summary.push_str(&format!(" of {name} {version}"));
    }
    if config.sbom {
        summary.push_str(&format!("; SBOM of {components} shipped package(s)"));
        if build_only > 0 {
            summary.push_str(&format!(" and {build_only} build-only"));
        }
    }
    if config.provenance {
        summary.push_str(match git_commit {
            Some(_) => "; provenance with the git commit",
            None => "; provenance (no git commit: not a repository, or `git` not in `exec`)",
        });
    }
    let mut report = report
        .with_summary(summary)
        .with_metric(Metric::new(
            "build.artifacts",
            subjects.len() as f64,
            "count",
        ))
        .with_metric(Metric::new(
            "build.sbom.components",
            components as f64,
            "count",
        ));
    if let Some(version) = &identity.version {
        report = report.with_output("version", version);
    }
    if let Some(commit) = git_commit {
        report = report.with_output("git-commit", commit);
    }
    Ok(report)
}

/// `git rev-parse HEAD`, when git is granted and this is a repository.
fn git_head(project: &Path) -> Option<String> {
    // The sandbox usually hides ~/.gitconfig, which git treats as fatal; nothing in it
    // matters to `rev-parse`.
    let command = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .cwd(project);
    match command.run() {
        Ok(output) if output.success() => {
            let commit = output.stdout_text().trim().to_owned();
            (commit.len() >= 40 && commit.chars().all(|c| c.is_ascii_hexdigit())).then_some(commit)
        }
        Ok(output) => {
            sluice_sdk::log::info(format!(
                "no git commit recorded: `git rev-parse HEAD` {}",
                output.describe_exit()
            ));
            None
        }
        Err(ProcessError::Denied(message)) => {
            sluice_sdk::log::info(format!("no git commit recorded: {message}"));
            None
        }
        Err(err) => {
            sluice_sdk::log::info(format!("no git commit recorded: {}", err.message()));
            None
        }
    }
}

fn pretty(value: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("JSON values always serialize");
    bytes.push(b'\n');
    bytes
}

fn artifact_files(ctx: &StepContext, globs: &[String]) -> Result<Vec<PathBuf>, RunError> {
    let mut files = Vec::new();
    for pattern in globs {
        let found: Vec<PathBuf> = sluice_sdk::glob::expand(ctx.workdir(), pattern)
            .map_err(|err| RunError::invalid_config(format!("`artifacts`: {err}")))?
            .into_iter()
            .filter(|path| path.is_file())
            .collect();
        if found.is_empty() {
            return Err(RunError::failed(format!(
                "`artifacts` pattern `{pattern}` matched no file after the build (is it inside a `read` grant?)"
            )));
        }
        files.extend(found);
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// SHA-256 of a file, read in chunks.
pub fn sha256_file(path: &Path) -> Result<String, RunError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)
        .map_err(|err| sluice_sdk::fs::Error::new(path, sluice_sdk::fs::Access::Read, err))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = file
            .read(&mut buffer)
            .map_err(|err| sluice_sdk::fs::Error::new(path, sluice_sdk::fs::Access::Read, err))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(sluice_lockfiles::hex(&hasher.finalize()))
}

/// `path` relative to the pipeline's folder when inside it, else absolute.
pub fn relative_to(workdir: &Path, path: &Path) -> String {
    match path.strip_prefix(workdir) {
        Ok(inside) => inside.to_string_lossy().into_owned(),
        Err(_) => path.to_string_lossy().into_owned(),
    }
}

/// A media type from the file name.
pub fn guess_media_type(path: &str) -> &'static str {
    let lower = path.to_ascii_lowercase();
    let ends = |suffix: &str| lower.ends_with(suffix);
    if ends(".tar.gz") || ends(".tgz") {
        "application/gzip"
    } else if ends(".wasm") {
        "application/wasm"
    } else if ends(".zip") {
        "application/zip"
    } else if ends(".jar") {
        "application/java-archive"
    } else if ends(".tar") {
        "application/x-tar"
    } else if ends(".json") {
        "application/json"
    } else if ends(".whl") {
        "application/zip"
    } else {
        "application/octet-stream"
    }
}

fn tail_of(output: &Output) -> String {
    let (stream, text) = if output.stderr.iter().any(|byte| !byte.is_ascii_whitespace()) {
        ("stderr", output.stderr_text())
    } else {
        ("stdout", output.stdout_text())
    };
    let lines: Vec<&str> = text.trim_end().lines().collect();
    format!(
        "{stream}:\n{}",
        lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
    )
}

#[cfg(test)]
mod tests;
