//! The pipeline file (`sluice.toml`): parsing it into a [`Pipeline`] and checking
//! everything that can be checked without running a plugin.
//!
//! Every error carries the file, line and column of the offending key, so that a user
//! can fix the file without guessing. Checks that need a plugin's schema live in
//! [`crate::validate`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_spanned::Spanned;

use crate::limits;

/// Default wall-clock limit of a step.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Default memory limit of a step (all linear memories of its component together).
pub const DEFAULT_STEP_MEMORY: u64 = 1 << 30;
/// Default pause before the first retry; it doubles on each further retry.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(1);
/// Default of `processes`: most processes and threads a step's native programs may
/// have at once.
pub const DEFAULT_STEP_PROCESSES: u32 = 512;
/// Default of `tmpdir-size`: the size of the private TMPDIR of a step's native programs.
pub const DEFAULT_STEP_TMPDIR_SIZE: u64 = 1 << 30;

/// A place in a file, 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePos {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for SourcePos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// A problem with the pipeline file, located at a key.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct ConfigError {
    pub pos: SourcePos,
    pub message: String,
}

/// All the problems found in a pipeline file; never empty.
#[derive(Debug, thiserror::Error)]
pub enum PipelineFileError {
    #[error("cannot read pipeline file {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigError>),
}

/// The source text of a pipeline file, kept to turn byte offsets into line and column.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    /// Line and column (1-based, column in characters) of a byte offset.
    pub fn pos(&self, offset: usize) -> SourcePos {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        SourcePos {
            file: self.path.clone(),
            line,
            column,
        }
    }

    /// An error at a byte offset.
    pub fn error(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        ConfigError {
            pos: self.pos(offset),
            message: message.into(),
        }
    }

    /// The byte span of a nested value, following `path` (table keys and array indexes)
    /// from the document root. Falls back to the deepest value found.
    pub fn span_of(&self, path: &[PathSegment]) -> Option<std::ops::Range<usize>> {
        let root = toml::de::DeTable::parse(&self.text).ok()?;
        let mut span = root.span();
        let mut table = Some(root.get_ref());
        let mut value: Option<&toml::de::DeValue<'_>> = None;
        for seg in path {
            let next = match (seg, table, value) {
                (PathSegment::Key(k), Some(t), _) => t.get(k.as_str()),
                (PathSegment::Key(k), None, Some(v)) => v.get(k.as_str()),
                (PathSegment::Index(i), _, Some(v)) => v.get(*i),
                _ => None,
            };
            let Some(next) = next else { break };
            span = next.span();
            value = Some(next.get_ref());
            table = None;
        }
        Some(span)
    }
}

/// One step of a path into the TOML document.
#[derive(Debug, Clone)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// A validated pipeline, ready to plan and run.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    /// Folder of the pipeline file; relative paths are resolved against it.
    pub dir: PathBuf,
    pub source: SourceFile,
    /// Run native programs without Landlock confinement when the kernel lacks it.
    pub allow_unconfined_exec: bool,
    /// The secrets steps may be granted, by name (`[secrets]`).
    pub secrets: Vec<SecretDecl>,
    pub stages: Vec<Stage>,
    /// Where the state database lives (`[pipeline] state = "..."`, resolved against
    /// the pipeline's folder); `None`: `.sluice/state.db` next to the pipeline file.
    pub state: Option<PathBuf>,
    /// The health checks it declares (`[[monitor]]`), in file order.
    pub monitors: Vec<crate::monitors::MonitorSpec>,
    /// Denylists checked at every promotion (`[pipeline] denylist`), resolved against
    /// the pipeline's folder.
    pub denylists: Vec<PathBuf>,
    /// The hosts it may deploy to (`[[target]]`), in file order.
    pub targets: Vec<crate::targets::TargetSpec>,
    /// The organisation policy it follows (`[pipeline] policy`): a file (resolved
    /// against the pipeline's folder) or an OCI reference. See [`crate::policy`].
    pub policy: Option<crate::policy::PolicyRef>,
}

/// A secret declared under `[secrets]`: where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretDecl {
    pub name: String,
    pub source: SecretSource,
    /// Where it is declared, for messages about its value.
    pub pos: SourcePos,
}

/// Where a secret's value is read when a run starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable of the runner.
    Env(String),
    /// A file (its content, less one trailing newline).
    File(PathBuf),
    /// The standard output of a command (less one trailing newline), e.g.
    /// `["pass", "show", "deploy"]` or `["gh", "auth", "token"]`.
    Command(Vec<String>),
}

/// A step's grant of one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretGrant {
    /// The declared secret.
    pub name: String,
    /// Also as this environment variable, for the plugin and its programs.
    pub env: Option<String>,
    /// Also as this file in the private TMPDIR of the step's programs.
    pub file: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub steps: Vec<Step>,
    /// What must allow a run's entry into the stage (`[stage.gates.<id>]`), in file
    /// order; see [`crate::gates`].
    pub gates: Vec<GateSpec>,
    /// How long, and on what evidence, a run stays in the stage after its steps pass
    /// (`[stage.bake]`).
    pub bake: Option<crate::gates::bake::BakeSpec>,
    /// `protected = true`: the stage reaches production. A policy may mark more stages
    /// protected (by name or by the targets they deploy to); see
    /// [`crate::policy::Policy::is_protected`].
    pub protected: bool,
    /// Where the stage is declared (its `name` key), for policy messages.
    pub pos: SourcePos,
}

pub use crate::gates::spec::GateSpec;

/// Where a step's component comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PluginRef {
    /// Embedded in the runner: `builtin:<name>`.
    Builtin(String),
    /// A `.wasm` component on disk (absolute, resolved against the pipeline folder).
    File(PathBuf),
    /// A component in an OCI registry: `oci://HOST[:PORT]/NS/NAME[:TAG][@sha256:HEX]`.
    /// Before plugins load, [`crate::registry::resolve`] pulls it into the cache and
    /// fills in its component's digest (`OciRef::component`); the host loads only an
    /// `Oci` reference with one.
    Oci(crate::registry::OciRef),
}

impl PluginRef {
    /// Parse a `uses` value; relative paths are resolved against `base`. Only an
    /// `oci://` reference can be malformed; the error says what is wrong with it.
    pub fn parse(uses: &str, base: &Path) -> Result<PluginRef, String> {
        if let Some(name) = uses.strip_prefix("builtin:") {
            return Ok(PluginRef::Builtin(name.to_string()));
        }
        if uses.starts_with(crate::registry::OCI_SCHEME) {
            return crate::registry::OciRef::parse(uses).map(PluginRef::Oci);
        }
        Ok(PluginRef::File(base.join(expand_home(uses))))
    }

    /// The name the policy and the lock file know this plugin by: `builtin:NAME`, the
    /// file's path relative to `base` when it lies beneath it (else absolute), or the
    /// OCI repository without tag or digest (`oci://HOST/NS/NAME`).
    pub fn policy_name(&self, base: &Path) -> String {
        match self {
            PluginRef::Builtin(n) => format!("builtin:{n}"),
            PluginRef::File(p) => p.strip_prefix(base).unwrap_or(p).display().to_string(),
            PluginRef::Oci(r) => r.repository_url(),
        }
    }
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginRef::Builtin(n) => write!(f, "builtin:{n}"),
            PluginRef::File(p) => write!(f, "{}", p.display()),
            PluginRef::Oci(r) => write!(f, "{r}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    pub uses: PluginRef,
    /// The `with` table as JSON.
    pub with: serde_json::Value,
    pub needs: Vec<String>,
    pub timeout: Duration,
    pub memory: u64,
    pub retries: u32,
    pub retry_delay: Duration,
    pub allow_failure: bool,
    /// Most processes and threads the step's native programs may have at once
    /// (`processes`, [`limits::MIN_PROCESSES`]..=[`limits::MAX_PROCESSES`]).
    pub processes: u32,
    /// Size in bytes of the private TMPDIR of the step's native programs
    /// (`tmpdir-size`, [`limits::MIN_TMPDIR_SIZE`]..=[`limits::MAX_TMPDIR_SIZE`]).
    pub tmpdir_size: u64,
    pub grants: Grants,
    /// Indexes into the file: `stage`, `step` array positions (for error locations).
    pub stage_index: usize,
    pub step_index: usize,
}

impl Step {
    /// The `uses` value as written (built-ins by name, files by path).
    pub fn uses_display(&self) -> String {
        self.uses.to_string()
    }

    /// The path of a key of this step inside the pipeline file.
    pub fn key_path(&self, keys: &[PathSegment]) -> Vec<PathSegment> {
        let mut p = vec![
            PathSegment::Key("stage".into()),
            PathSegment::Index(self.stage_index),
            PathSegment::Key("step".into()),
            PathSegment::Index(self.step_index),
        ];
        p.extend_from_slice(keys);
        p
    }
}

/// What a step may touch. Everything not listed is denied.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Folders the step may read (absolute).
    pub read: Vec<PathBuf>,
    /// Folders the step may read and write (absolute).
    pub write: Vec<PathBuf>,
    /// Programs the step may start: bare names (looked up on PATH) or absolute paths.
    pub exec: Vec<String>,
    /// `host:port` pairs the step may connect to.
    pub net: Vec<NetGrant>,
    /// Environment variables passed through from the runner.
    pub env: Vec<String>,
    /// Secrets, by name, from `[secrets]`.
    pub secrets: Vec<SecretGrant>,
    /// Toolchain presets (`toolchain`), as found on this machine. Their folders and
    /// programs are already in `read`, `write` and `exec`; this is what to show.
    pub toolchains: Vec<crate::toolchains::Preset>,
    /// Folders searched for `exec` programs before the runner's PATH, and put first
    /// on the programs' PATH (the toolchains' `bin` folders).
    pub search_path: Vec<PathBuf>,
    /// Variables the toolchains set for the plugin and its programs (caches redirected
    /// into the pipeline's tool cache); the `env` grant and the plugin's own override
    /// them.
    pub toolchain_env: Vec<(String, String)>,
    /// Target groups or single targets (`[[target]]` names) the step may deploy to.
    pub targets: Vec<String>,
    /// How the step reaches SSH targets.
    pub ssh: Option<crate::targets::SshGrant>,
}

/// One network grant: `host:port`, or a URL origin (`http://127.0.0.1:8080`,
/// `https://api.example.com`) that also limits outgoing HTTP to that scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetGrant {
    pub host: String,
    pub port: u16,
    /// `http` or `https` for an origin grant; `None` for `host:port`, which allows
    /// both schemes (and raw TCP).
    pub scheme: Option<String>,
}

impl fmt::Display for NetGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(scheme) = &self.scheme {
            write!(f, "{scheme}://")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl NetGrant {
    /// Whether this grant allows outgoing HTTP with `scheme` to `port`.
    pub fn allows_http(&self, scheme: &str, port: u16) -> bool {
        self.port == port && self.scheme.as_deref().is_none_or(|s| s == scheme)
    }

    pub(crate) fn parse(s: &str) -> Result<NetGrant, String> {
        if let Some((scheme, rest)) = s.split_once("://") {
            return Self::parse_origin(s, scheme, rest);
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, p) = rest
                .split_once("]:")
                .ok_or_else(|| format!("`{s}` is not `[ipv6]:port`"))?;
            (h, p)
        } else {
            s.rsplit_once(':').ok_or_else(|| {
                format!("`{s}` is not `host:port` or a URL origin (`https://{s}`)")
            })?
        };
        if host.is_empty() {
            return Err(format!("`{s}` has no host"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{s}` has no valid port (1-65535)"))?;
        if port == 0 {
            return Err(format!(
                "`{s}` has port 0; name the port the step connects to"
            ));
        }
        Ok(NetGrant {
            host: host.to_string(),
            port,
            scheme: None,
        })
    }

    /// `scheme://host[:port][/]`: an origin, nothing after it.
    fn parse_origin(s: &str, scheme: &str, rest: &str) -> Result<NetGrant, String> {
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => {
                return Err(format!(
                    "`{s}` has scheme `{scheme}`; origins are `http://` or `https://`"
                ));
            }
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "`{s}` is a URL with a path, query or user; grant its origin, `{scheme}://{}`",
                authority.split(['/', '?', '#']).next().unwrap_or_default()
            ));
        }
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            match inner.split_once(']') {
                Some((h, "")) => (h, None),
                Some((h, p)) => (h, Some(p.strip_prefix(':').unwrap_or(p))),
                None => return Err(format!("`{s}` has an unclosed `[`")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("`{s}` has no host"));
        }
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p != 0 => p,
                _ => return Err(format!("`{s}` has no valid port (1-65535)")),
            },
        };
        Ok(NetGrant {
            host: host.to_ascii_lowercase(),
            port,
            scheme: Some(scheme),
        })
    }
}

/// Expand a leading `~/` to the user's home folder.
pub fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ if p == "~" => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| p.into()),
        _ => PathBuf::from(p),
    }
}

// ---- raw, span-carrying shape of the file -------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    pipeline: Spanned<RawPipeline>,
    #[serde(default)]
    secrets: BTreeMap<String, Spanned<RawSecret>>,
    #[serde(default, rename = "stage")]
    stages: Vec<Spanned<RawStage>>,
    #[serde(default, rename = "monitor")]
    monitors: Vec<Spanned<crate::monitors::spec::RawMonitor>>,
    #[serde(default, rename = "target")]
    targets: Vec<Spanned<crate::targets::spec::RawTarget>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    env: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
    command: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPipeline {
    name: Spanned<String>,
    #[serde(default)]
    allow_unconfined_exec: bool,
    /// The state database's path, relative to the pipeline file.
    state: Option<Spanned<String>>,
    /// Denylist files checked at every promotion.
    denylist: Option<Spanned<toml::Value>>,
    /// The organisation policy: a path relative to the pipeline file, or `oci://...`.
    policy: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    name: Spanned<String>,
    #[serde(default, rename = "step")]
    steps: Vec<Spanned<RawStep>>,
    #[serde(default)]
    gates: crate::gates::spec::RawGates,
    bake: Option<Spanned<crate::gates::bake::RawBake>>,
    #[serde(default)]
    protected: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawStep {
    id: Spanned<String>,
    uses: Spanned<String>,
    #[serde(default)]
    with: Option<Spanned<toml::Table>>,
    #[serde(default)]
    needs: Vec<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    memory: Option<Spanned<String>>,
    #[serde(default)]
    retries: u32,
    retry_delay: Option<Spanned<String>>,
    #[serde(default)]
    allow_failure: bool,
    processes: Option<Spanned<i64>>,
    tmpdir_size: Option<Spanned<String>>,
    #[serde(default)]
    grants: RawGrants,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGrants {
    #[serde(default)]
    read: Vec<Spanned<String>>,
    #[serde(default)]
    write: Vec<Spanned<String>>,
    #[serde(default)]
    exec: Vec<Spanned<String>>,
    #[serde(default)]
    net: Vec<Spanned<String>>,
    #[serde(default)]
    env: Vec<Spanned<String>>,
    #[serde(default)]
    secrets: Vec<Spanned<toml::Value>>,
    /// A toolchain's name or a list of them.
    toolchain: Option<Spanned<toml::Value>>,
    /// Target groups or targets the step may deploy to.
    #[serde(default)]
    targets: Vec<Spanned<String>>,
    ssh: Option<Spanned<crate::targets::spec::RawSshGrant>>,
}

/// Read and check a pipeline file. Plugins are not loaded here.
pub fn load(path: &Path) -> Result<Pipeline, PipelineFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| PipelineFileError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, text)
}

/// Check pipeline text that came from `path`.
pub fn parse(path: &Path, text: String) -> Result<Pipeline, PipelineFileError> {
    let (pipeline, errors) = parse_lenient(path, text)?;
    if errors.is_empty() {
        Ok(pipeline)
    } else {
        Err(PipelineFileError::Invalid(errors))
    }
}

/// The state database a pipeline file names with `[pipeline] state`, read without
/// checking the rest of the file (the runner starts the database's checkpoints while
/// the pipeline loads). `None` when the key is absent or the file cannot be read or
/// parsed: [`load`] reports those problems.
pub fn declared_state_path(path: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(path).ok()?;
    if !text.contains("state") {
        // No key of that name anywhere: not worth parsing the whole file.
        return None;
    }
    let table: toml::Table = toml::from_str(&text).ok()?;
    let written = table.get("pipeline")?.get("state")?.as_str()?;
    if written.trim().is_empty() || written.contains('\0') || written.ends_with('/') {
        return None;
    }
    Some(normalize(&pipeline_dir(path).join(expand_home(written))))
}

/// The folder of the pipeline file at `path` (`.` for a bare file name), made absolute
/// when it exists: [`Pipeline::dir`], which relative paths in the file start from.
pub fn pipeline_dir(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Like [`load`], but a file whose structure is sound comes back as a pipeline along
/// with the problems in its values, so that later checks (plugins, schemas) can add
/// theirs and the user sees every problem at once.
pub fn load_lenient(path: &Path) -> Result<(Pipeline, Vec<ConfigError>), PipelineFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| PipelineFileError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    parse_lenient(path, text)
}

/// See [`load_lenient`].
pub fn parse_lenient(
    path: &Path,
    text: String,
) -> Result<(Pipeline, Vec<ConfigError>), PipelineFileError> {
    let dir = pipeline_dir(path);
    let display_path = path.to_path_buf();
    let source = SourceFile {
        path: display_path,
        text,
    };
    let raw: RawFile = match toml::from_str(&source.text) {
        Ok(raw) => raw,
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            let message = crate::suggest::complete_unknown_name(e.message().trim());
            return Err(PipelineFileError::Invalid(vec![
                source.error(offset, message),
            ]));
        }
    };
    let mut errors = Vec::new();
    let pipeline = build(&source, &dir, raw, &mut errors);
    errors.sort_by_key(|e| (e.pos.line, e.pos.column));
    Ok((pipeline, errors))
}

fn build(source: &SourceFile, dir: &Path, raw: RawFile, errors: &mut Vec<ConfigError>) -> Pipeline {
    let secrets = build_secrets(source, dir, &raw.secrets, errors);
    let declared: HashSet<&str> = raw.secrets.keys().map(String::as_str).collect();
    let name = raw.pipeline.get_ref().name.get_ref().trim().to_string();
    if name.is_empty() {
        errors.push(source.error(
            raw.pipeline.get_ref().name.span().start,
            "`pipeline.name` is empty",
        ));
    } else if let Some(message) = too_long("pipeline name", &name) {
        errors.push(source.error(raw.pipeline.get_ref().name.span().start, message));
    }
    if raw.stages.is_empty() {
        errors.push(source.error(
            raw.pipeline.span().start,
            "the pipeline has no stages; add a `[[stage]]` table with at least one `[[stage.step]]`",
        ));
    }
    let monitors =
        crate::monitors::spec::build_monitors(source, dir, &raw.monitors, &declared, errors);
    let targets = crate::targets::spec::build_targets(source, dir, &raw.targets, errors);
    let monitor_ids: Vec<&str> = monitors.iter().map(|m| m.id.as_str()).collect();
    let mut stage_names: HashMap<String, ()> = HashMap::new();
    let mut step_ids: HashSet<String> = HashSet::new();
    let mut stages = Vec::new();
    for (stage_index, raw_stage) in raw.stages.into_iter().enumerate() {
        let span = raw_stage.span();
        let raw_stage = raw_stage.into_inner();
        let stage_name = raw_stage.name.get_ref().clone();
        check_ident(source, &raw_stage.name, "stage name", errors);
        if stage_names.insert(stage_name.clone(), ()).is_some() {
            errors.push(source.error(
                raw_stage.name.span().start,
                format!("stage `{stage_name}` is defined twice"),
            ));
        }
        if raw_stage.steps.is_empty() {
            errors.push(source.error(
                span.start,
                format!("stage `{stage_name}` has no steps; add a `[[stage.step]]`"),
            ));
        }
        let mut steps = Vec::new();
        for (step_index, raw_step) in raw_stage.steps.into_iter().enumerate() {
            let raw_step = raw_step.into_inner();
            let id = raw_step.id.get_ref().clone();
            check_ident(source, &raw_step.id, "step id", errors);
            if !step_ids.insert(id.clone()) {
                errors.push(source.error(
                    raw_step.id.span().start,
                    format!(
                        "step id `{id}` is used twice; step ids must be unique in the pipeline"
                    ),
                ));
            }
            steps.push(build_step(
                source,
                dir,
                raw_step,
                (stage_index, step_index),
                &declared,
                errors,
            ));
        }
        check_needs(source, &stage_name, &steps, errors);
        let gates = crate::gates::spec::build_gates(
            source,
            &stage_name,
            &raw_stage.gates,
            &monitor_ids,
            errors,
        );
        let bake = raw_stage.bake.as_ref().and_then(|bake| {
            crate::gates::bake::build_bake(source, &stage_name, bake, &monitor_ids, errors)
        });
        stages.push(Stage {
            pos: source.pos(raw_stage.name.span().start),
            name: stage_name,
            steps,
            gates,
            bake,
            protected: raw_stage.protected,
        });
    }
    crate::targets::spec::check_grants(source, &targets, &stages, &declared, errors);
    let state = state_path(source, dir, raw.pipeline.get_ref().state.as_ref(), errors);
    let denylists = crate::gates::blocked::denylist_paths(
        source,
        dir,
        raw.pipeline.get_ref().denylist.as_ref(),
        errors,
    );
    let policy =
        crate::policy::policy_ref(source, dir, raw.pipeline.get_ref().policy.as_ref(), errors);
    Pipeline {
        policy,
        name,
        dir: dir.to_path_buf(),
        source: source.clone(),
        allow_unconfined_exec: raw.pipeline.get_ref().allow_unconfined_exec,
        secrets,
        stages,
        state,
        monitors,
        denylists,
        targets,
    }
}

/// `[pipeline] state = "..."`: the state database's path, resolved against the
/// pipeline's folder (`~/` expanded).
fn state_path(
    source: &SourceFile,
    dir: &Path,
    value: Option<&Spanned<String>>,
    errors: &mut Vec<ConfigError>,
) -> Option<PathBuf> {
    let value = value?;
    let written = value.get_ref();
    if written.trim().is_empty() || written.contains('\0') || written.ends_with('/') {
        errors.push(source.error(
            value.span().start,
            format!(
                "`state` = \"{written}\" is not a file path; name the state database's file, e.g. `state = \".sluice/state.db\"` (relative to the pipeline file)"
            ),
        ));
        return None;
    }
    Some(normalize(&dir.join(expand_home(written))))
}

/// `[secrets]`: each entry names exactly one source.
fn build_secrets(
    source: &SourceFile,
    dir: &Path,
    raw: &BTreeMap<String, Spanned<RawSecret>>,
    errors: &mut Vec<ConfigError>,
) -> Vec<SecretDecl> {
    let mut decls = Vec::new();
    for (name, entry) in raw {
        let at = entry.span().start;
        let pos = source.pos(at);
        if !valid_secret_name(name) {
            errors.push(source.error(
                at,
                format!("secret name `{name}` must start with a letter and use only letters, digits, `-` and `_`"),
            ));
            continue;
        }
        let RawSecret { env, file, command } = entry.get_ref();
        let mut sources = Vec::new();
        if let Some(v) = env {
            if valid_variable(v.get_ref()) {
                sources.push(SecretSource::Env(v.get_ref().clone()));
            } else {
                errors.push(source.error(
                    v.span().start,
                    format!(
                        "secret `{name}`: `env` = \"{}\" is not a variable name",
                        v.get_ref()
                    ),
                ));
                continue;
            }
        }
        if let Some(f) = file {
            sources.push(SecretSource::File(normalize(
                &dir.join(expand_home(f.get_ref())),
            )));
        }
        if let Some(c) = command {
            if c.get_ref().is_empty() || c.get_ref()[0].is_empty() {
                errors.push(source.error(
                    c.span().start,
                    format!("secret `{name}`: `command` is empty; write the program and its arguments, e.g. [\"gh\", \"auth\", \"token\"]"),
                ));
                continue;
            }
            sources.push(SecretSource::Command(c.get_ref().clone()));
        }
        match sources.len() {
            1 => decls.push(SecretDecl {
                name: name.clone(),
                source: sources.remove(0),
                pos,
            }),
            0 => errors.push(source.error(
                at,
                format!("secret `{name}` has no source; give one of `env`, `file` or `command`"),
            )),
            _ => errors.push(source.error(
                at,
                format!("secret `{name}` has more than one source; give only one of `env`, `file` or `command`"),
            )),
        }
    }
    decls
}

fn valid_secret_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= limits::MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_variable(name: &str) -> bool {
    !name.is_empty() && !name.contains('=') && !name.contains('\0')
}

/// One entry of a step's `secrets` grant: a name, or `{ name, env, file }`.
pub(crate) fn secret_grant(
    source: &SourceFile,
    entry: &Spanned<toml::Value>,
    declared: &HashSet<&str>,
    errors: &mut Vec<ConfigError>,
) -> Option<SecretGrant> {
    let at = entry.span().start;
    let mut fail = |message: String| {
        errors.push(source.error(at, message));
        None
    };
    let grant = match entry.get_ref() {
        toml::Value::String(name) => SecretGrant {
            name: name.clone(),
            env: None,
            file: None,
        },
        toml::Value::Table(t) => {
            let text = |key: &str| -> Result<Option<String>, String> {
                match t.get(key) {
                    None => Ok(None),
                    Some(toml::Value::String(s)) => Ok(Some(s.clone())),
                    Some(_) => Err(format!("`secrets` grant: `{key}` must be a string")),
                }
            };
            if let Some(unknown) = t
                .keys()
                .find(|k| !["name", "env", "file"].contains(&k.as_str()))
            {
                return fail(format!(
                    "`secrets` grant: unknown key `{unknown}`, expected one of `name`, `env`, `file`"
                ));
            }
            let (name, env, file) = match (text("name"), text("env"), text("file")) {
                (Ok(Some(n)), Ok(e), Ok(f)) => (n, e, f),
                (Ok(None), _, _) => {
                    return fail(
                        "`secrets` grant: a table needs `name`, the declared secret".into(),
                    );
                }
                (Err(m), _, _) | (_, Err(m), _) | (_, _, Err(m)) => return fail(m),
            };
            SecretGrant { name, env, file }
        }
        _ => {
            return fail(
                "`secrets` grant: each entry is a secret's name, or `{ name = \"...\", env = \"VAR\" }` / `{ name = \"...\", file = \"file-name\" }`".into(),
            );
        }
    };
    if !declared.contains(grant.name.as_str()) {
        return fail(format!(
            "`secrets` grant `{}` is not declared; declare it under [secrets], e.g. `{} = {{ env = \"...\" }}`",
            grant.name, grant.name
        ));
    }
    if let Some(env) = &grant.env
        && !valid_variable(env)
    {
        return fail(format!(
            "`secrets` grant `{}`: `env` = \"{env}\" is not a variable name",
            grant.name
        ));
    }
    if let Some(file) = &grant.file
        && (file.is_empty()
            || file.contains('/')
            || file == "."
            || file == ".."
            || file.contains('\0'))
    {
        return fail(format!(
            "`secrets` grant `{}`: `file` = \"{file}\" must be a plain file name (it is made in the programs' TMPDIR)",
            grant.name
        ));
    }
    Some(grant)
}

pub(crate) fn check_ident(
    source: &SourceFile,
    s: &Spanned<String>,
    what: &str,
    errors: &mut Vec<ConfigError>,
) {
    let v = s.get_ref();
    if let Some(message) = too_long(what, v) {
        errors.push(source.error(s.span().start, message));
        return;
    }
    let ok = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok {
        errors.push(source.error(
            s.span().start,
            format!("{what} `{v}` must start with a letter or digit and use only letters, digits, `-`, `_` and `.`"),
        ));
    }
}

/// The error for a name longer than [`limits::MAX_NAME_CHARS`], if it is.
fn too_long(what: &str, name: &str) -> Option<String> {
    let chars = name.chars().count();
    (chars > limits::MAX_NAME_CHARS).then(|| {
        let start: String = name.chars().take(24).collect();
        format!(
            "{what} `{start}…` is {chars} characters long; the limit is {}",
            limits::MAX_NAME_CHARS
        )
    })
}

fn build_step(
    source: &SourceFile,
    dir: &Path,
    raw: RawStep,
    (stage_index, step_index): (usize, usize),
    declared: &HashSet<&str>,
    errors: &mut Vec<ConfigError>,
) -> Step {
    let id = raw.id.get_ref().clone();
    let uses_text = raw.uses.get_ref().trim();
    let uses = PluginRef::parse(uses_text, dir).unwrap_or_else(|reason| {
        errors.push(source.error(
            raw.uses.span().start,
            format!("step `{id}`: `uses` = \"{uses_text}\": {reason}"),
        ));
        PluginRef::File(PathBuf::new())
    });
    match &uses {
        PluginRef::Builtin(name) if name.is_empty() => errors.push(source.error(
            raw.uses.span().start,
            "`builtin:` needs a plugin name, e.g. `builtin:command`",
        )),
        PluginRef::File(_) if uses_text.is_empty() => errors.push(source.error(
            raw.uses.span().start,
            "`uses` is empty; name a built-in (`builtin:command`) or a .wasm component",
        )),
        _ => {}
    }
    let with = match raw.with {
        Some(t) => match serde_json::to_value(t.get_ref()) {
            Ok(v) => v,
            Err(e) => {
                errors.push(source.error(
                    t.span().start,
                    format!("`with` cannot be expressed as JSON: {e}"),
                ));
                serde_json::Value::Null
            }
        },
        None => serde_json::Value::Object(Default::default()),
    };
    let timeout = parse_duration(
        source,
        raw.timeout.as_ref(),
        "timeout",
        DEFAULT_STEP_TIMEOUT,
        limits::MAX_TIMEOUT,
        errors,
    );
    let retry_delay = parse_duration(
        source,
        raw.retry_delay.as_ref(),
        "retry-delay",
        DEFAULT_RETRY_DELAY,
        limits::MAX_RETRY_DELAY,
        errors,
    );
    let memory = parse_size(
        source,
        raw.memory.as_ref(),
        "memory",
        DEFAULT_STEP_MEMORY,
        limits::MIN_MEMORY..=limits::MAX_MEMORY,
        errors,
    );
    let tmpdir_size = parse_size(
        source,
        raw.tmpdir_size.as_ref(),
        "tmpdir-size",
        DEFAULT_STEP_TMPDIR_SIZE,
        limits::MIN_TMPDIR_SIZE..=limits::MAX_TMPDIR_SIZE,
        errors,
    );
    let processes = match &raw.processes {
        None => DEFAULT_STEP_PROCESSES,
        Some(p) => {
            let n = *p.get_ref();
            let problem = if n < limits::MIN_PROCESSES {
                format!("is below the minimum of {}", limits::MIN_PROCESSES)
            } else if n > limits::MAX_PROCESSES {
                format!("is above the maximum of {}", limits::MAX_PROCESSES)
            } else {
                String::new()
            };
            match u32::try_from(n) {
                Ok(n) if problem.is_empty() => n,
                _ => {
                    errors
                        .push(source.error(p.span().start, format!("`processes` = {n} {problem}")));
                    DEFAULT_STEP_PROCESSES
                }
            }
        }
    };
    if raw.retries > limits::MAX_RETRIES {
        let off = source
            .span_of(&step_path(stage_index, step_index, "retries"))
            .map_or(raw.id.span().start, |s| s.start);
        errors.push(source.error(
            off,
            format!(
                "retries = {} is above the limit of {}",
                raw.retries,
                limits::MAX_RETRIES
            ),
        ));
    }
    let grants = build_grants(
        source,
        dir,
        &raw.grants,
        (stage_index, step_index),
        declared,
        errors,
    );
    Step {
        id,
        uses,
        with,
        needs: raw.needs.iter().map(|n| n.get_ref().clone()).collect(),
        timeout,
        memory,
        retries: raw.retries,
        retry_delay,
        allow_failure: raw.allow_failure,
        processes,
        tmpdir_size,
        grants,
        stage_index,
        step_index,
    }
}

fn step_path(stage: usize, step: usize, key: &str) -> Vec<PathSegment> {
    vec![
        PathSegment::Key("stage".into()),
        PathSegment::Index(stage),
        PathSegment::Key("step".into()),
        PathSegment::Index(step),
        PathSegment::Key(key.into()),
    ]
}

fn parse_duration(
    source: &SourceFile,
    value: Option<&Spanned<String>>,
    key: &str,
    default: Duration,
    max: Duration,
    errors: &mut Vec<ConfigError>,
) -> Duration {
    let Some(v) = value else { return default };
    let too_long = || {
        source.error(
            v.span().start,
            format!(
                "`{key}` = \"{}\" is too long; the limit is {}",
                v.get_ref(),
                humantime::format_duration(max)
            ),
        )
    };
    match humantime::parse_duration(v.get_ref().trim()) {
        Ok(d) if d > max => {
            errors.push(too_long());
            default
        }
        Ok(d) if !d.is_zero() => d,
        Ok(_) => {
            errors.push(source.error(v.span().start, format!("`{key}` must be longer than zero")));
            default
        }
        Err(humantime::DurationError::NumberOverflow) => {
            errors.push(too_long());
            default
        }
        Err(_) => {
            errors.push(source.error(
                v.span().start,
                format!(
                    "`{key}` = \"{}\" is not a duration; write e.g. \"90s\", \"10m\" or \"1h 30m\"",
                    v.get_ref()
                ),
            ));
            default
        }
    }
}

/// A size key (`memory`, `tmpdir-size`) within `range`, or its default and an error.
fn parse_size(
    source: &SourceFile,
    value: Option<&Spanned<String>>,
    key: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    errors: &mut Vec<ConfigError>,
) -> u64 {
    let Some(v) = value else { return default };
    let problem = match limits::parse_size(v.get_ref()) {
        Ok(n) if range.contains(&n) => return n,
        Ok(n) if n < *range.start() => {
            format!(
                "is below the minimum of {}",
                limits::show_size(*range.start())
            )
        }
        Ok(_) | Err(limits::SizeError::Overflow) => {
            format!(
                "is above the maximum of {}",
                limits::show_size(*range.end())
            )
        }
        Err(e) => e.to_string(),
    };
    errors.push(source.error(
        v.span().start,
        format!("`{key}` = \"{}\" {problem}", v.get_ref()),
    ));
    default
}

fn build_grants(
    source: &SourceFile,
    dir: &Path,
    raw: &RawGrants,
    (stage_index, step_index): (usize, usize),
    declared: &HashSet<&str>,
    errors: &mut Vec<ConfigError>,
) -> Grants {
    let mut path_list = |list: &[Spanned<String>], key: &str| -> Vec<PathBuf> {
        list.iter()
            .filter_map(|p| {
                let s = p.get_ref();
                if s.trim().is_empty() || s.contains('\0') {
                    errors.push(
                        source.error(p.span().start, format!("`{key}` grant `{s}` is not a path")),
                    );
                    return None;
                }
                Some(normalize(&dir.join(expand_home(s))))
            })
            .collect()
    };
    let mut read = path_list(&raw.read, "read");
    let mut write = path_list(&raw.write, "write");
    let mut exec = Vec::new();
    let mut toolchains = Vec::new();
    if let Some(value) = &raw.toolchain {
        let mut entry_path = step_path(stage_index, step_index, "grants");
        entry_path.push(PathSegment::Key("toolchain".into()));
        for (toolchain, at) in toolchain_names(source, value, &entry_path, errors) {
            match crate::toolchains::discover(toolchain, dir) {
                Ok(preset) => toolchains.push(preset),
                Err(e) => errors.push(source.error(at, e.to_string())),
            }
        }
    }
    let mut search_path: Vec<PathBuf> = Vec::new();
    let mut toolchain_env: Vec<(String, String)> = Vec::new();
    for preset in &mut toolchains {
        // cargo writes its build into the project's `target`; a step that may not
        // write there builds into the tool cache instead (kept between runs).
        if preset.toolchain == crate::toolchains::Toolchain::Rust
            && !write.iter().any(|w| dir.join("target").starts_with(w))
        {
            preset.env.push((
                "CARGO_TARGET_DIR".into(),
                crate::toolchains::cache_root(dir)
                    .join("rust/target")
                    .display()
                    .to_string(),
            ));
        }
        for folder in &preset.read {
            if !read.contains(folder) {
                read.push(folder.clone());
            }
        }
        for folder in &preset.write {
            if !write.contains(folder) {
                write.push(folder.clone());
            }
        }
        for program in &preset.exec {
            if !exec.contains(program) {
                exec.push(program.clone());
            }
        }
        for folder in &preset.search_path {
            if !search_path.contains(folder) {
                search_path.push(folder.clone());
            }
        }
        for (name, value) in &preset.env {
            if !toolchain_env.iter().any(|(n, _)| n == name) {
                toolchain_env.push((name.clone(), value.clone()));
            }
        }
    }
    for e in &raw.exec {
        let s = e.get_ref();
        if s.is_empty() || s.contains('\0') {
            errors.push(source.error(
                e.span().start,
                format!(
                    "`exec` grant `{s}` must be a program name (found on PATH), a path relative to the pipeline folder or an absolute path"
                ),
            ));
        } else if s.contains('/') && !s.starts_with('/') {
            match relative_program(dir, s, &read, &write) {
                Ok(path) => exec.push(path.display().to_string()),
                Err(message) => errors
                    .push(source.error(e.span().start, format!("`exec` grant `{s}` {message}"))),
            }
        } else if !exec.contains(s) {
            exec.push(s.clone());
        }
    }
    let mut net = Vec::new();
    for n in &raw.net {
        match NetGrant::parse(n.get_ref()) {
            Ok(g) => net.push(g),
            Err(m) => errors.push(source.error(n.span().start, format!("`net` grant {m}"))),
        }
    }
    let mut env = Vec::new();
    for v in &raw.env {
        let s = v.get_ref();
        if s.is_empty() || s.contains('=') || s.contains('\0') {
            errors.push(source.error(
                v.span().start,
                format!("`env` grant `{s}` is not a variable name"),
            ));
        } else {
            env.push(s.clone());
        }
    }
    let mut secrets: Vec<SecretGrant> = Vec::new();
    for entry in &raw.secrets {
        if let Some(grant) = secret_grant(source, entry, declared, errors) {
            if secrets.iter().any(|g| g.name == grant.name) {
                errors.push(source.error(
                    entry.span().start,
                    format!("`secrets` grant `{}` is given twice", grant.name),
                ));
            } else {
                secrets.push(grant);
            }
        }
    }
    let ssh = raw
        .ssh
        .as_ref()
        .map(|g| crate::targets::spec::build_ssh_grant(source, dir, g, errors));
    Grants {
        read,
        write,
        exec,
        net,
        env,
        secrets,
        toolchains,
        search_path,
        toolchain_env,
        targets: raw.targets.iter().map(|t| t.get_ref().clone()).collect(),
        ssh,
    }
}

/// The toolchains a `toolchain` value names (a name or a list of names), each with
/// where it is written.
fn toolchain_names(
    source: &SourceFile,
    value: &Spanned<toml::Value>,
    key_path: &[PathSegment],
    errors: &mut Vec<ConfigError>,
) -> Vec<(crate::toolchains::Toolchain, usize)> {
    use crate::toolchains::Toolchain;
    let valid = Toolchain::ALL
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    // Each entry of a list is located on its own.
    let entry_at = |i: usize| {
        let mut path = key_path.to_vec();
        path.push(PathSegment::Index(i));
        source
            .span_of(&path)
            .map_or(value.span().start, |s| s.start)
    };
    let names: Vec<(&toml::Value, usize)> = match value.get_ref() {
        toml::Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (item, entry_at(i)))
            .collect(),
        single => vec![(single, value.span().start)],
    };
    let mut found = Vec::new();
    for (name, at) in names {
        match name.as_str().map(|n| (n, Toolchain::parse(n))) {
            Some((_, Some(t))) if found.iter().any(|(f, _)| *f == t) => errors.push(source.error(
                at,
                format!("`toolchain` names `{t}` twice"),
            )),
            Some((_, Some(t))) => found.push((t, at)),
            Some((other, None)) => errors.push(source.error(
                at,
                format!("unknown toolchain `{other}`; valid toolchains: {valid}"),
            )),
            None => errors.push(source.error(
                at,
                format!(
                    "`toolchain` must be a toolchain's name or a list of them (valid toolchains: {valid}), e.g. `toolchain = \"rust\"`"
                ),
            )),
        }
    }
    found
}

/// An `exec` grant written relative to the pipeline folder (`.venv/bin/pytest`): its
/// absolute path, which must stay in the pipeline folder, name a program, and lead
/// (links followed) into the step's `read` or `write` grants or a system folder.
fn relative_program(
    dir: &Path,
    written: &str,
    read: &[PathBuf],
    write: &[PathBuf],
) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let path = normalize(&dir.join(written));
    if !path.starts_with(dir) {
        return Err(format!(
            "leads out of the pipeline folder {}; write an absolute path instead",
            dir.display()
        ));
    }
    let file = std::fs::canonicalize(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "names {}, which does not exist (paths are relative to the pipeline folder)",
            path.display()
        ),
        _ => format!("names {}, which cannot be read: {e}", path.display()),
    })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("names {}: {e}", file.display()))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("names {}, which is not a program", file.display()));
    }
    let real = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
    let granted = read.iter().chain(write).any(|g| file.starts_with(real(g)))
        || crate::sandbox::mounts::SYSTEM_FOLDERS
            .iter()
            .any(|s| file.starts_with(s));
    if !granted {
        let folder = file.parent().unwrap_or(&file);
        return Err(format!(
            "leads to {}, outside the step's `read` and `write` grants; grant its folder (`read = [\"{}\"]`) or use a `toolchain` preset",
            file.display(),
            folder.display()
        ));
    }
    Ok(path)
}

/// Remove `.` and resolve `..` lexically (the path need not exist yet).
pub fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `needs` must name steps of the same stage and must not form a cycle.
fn check_needs(source: &SourceFile, stage: &str, steps: &[Step], errors: &mut Vec<ConfigError>) {
    let ids: HashSet<&str> = steps.iter().map(|s| s.id.as_str()).collect();
    let mut ok = true;
    for s in steps {
        for (i, need) in s.needs.iter().enumerate() {
            let bad = if need == &s.id {
                Some(format!("step `{}` needs itself", s.id))
            } else if !ids.contains(need.as_str()) {
                Some(format!(
                    "step `{}` needs `{need}`, which is not a step of stage `{stage}` (steps: {})",
                    s.id,
                    steps
                        .iter()
                        .map(|s| s.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            } else {
                None
            };
            if let Some(msg) = bad {
                ok = false;
                let span = source.span_of(
                    &s.key_path(&[PathSegment::Key("needs".into()), PathSegment::Index(i)]),
                );
                errors.push(source.error(span.map_or(0, |r| r.start), msg));
            }
        }
    }
    if !ok {
        return;
    }
    if let Some(cycle) = find_cycle(steps) {
        let first = steps
            .iter()
            .find(|s| s.id == cycle[0])
            .expect("cycle names a step");
        let span = source.span_of(&first.key_path(&[PathSegment::Key("needs".into())]));
        errors.push(source.error(
            span.map_or(0, |r| r.start),
            format!(
                "steps of stage `{stage}` need each other in a cycle: {}",
                cycle.join(" -> ")
            ),
        ));
    }
}

/// A cycle in the `needs` graph, as step ids with the first repeated at the end.
fn find_cycle(steps: &[Step]) -> Option<Vec<String>> {
    let graph: BTreeMap<&str, &[String]> = steps
        .iter()
        .map(|s| (s.id.as_str(), s.needs.as_slice()))
        .collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<'a>(
        n: &'a str,
        graph: &BTreeMap<&'a str, &'a [String]>,
        marks: &mut HashMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(n) {
            Some(Mark::Done) => return None,
            Some(Mark::Visiting) => {
                let start = stack
                    .iter()
                    .position(|s| *s == n)
                    .expect("visiting node is on the stack");
                let mut cycle: Vec<String> = stack[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(n, Mark::Visiting);
        stack.push(n);
        for m in graph.get(n).copied().unwrap_or_default() {
            if let Some(c) = visit(m.as_str(), graph, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(n, Mark::Done);
        None
    }
    let mut marks = HashMap::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, &graph, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(text: &str) -> Vec<String> {
        match parse(Path::new("sluice.toml"), text.to_string()) {
            Ok(_) => vec![],
            Err(PipelineFileError::Invalid(e)) => e.iter().map(|e| e.to_string()).collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = errs(
            "[pipeline]\nname = \"x\"\n[[stage]]\nname = \"b\"\n[[stage.step]]\nid = \"a\"\nuses = \"builtin:command\"\ntimout = \"1s\"\n",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("sluice.toml:8:1: unknown field `timout`"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn cycle_is_reported_with_its_path() {
        let e = errs(
            "[pipeline]\nname = \"x\"\n[[stage]]\nname = \"b\"\n\
             [[stage.step]]\nid = \"a\"\nuses = \"builtin:command\"\nneeds = [\"b\"]\n\
             [[stage.step]]\nid = \"b\"\nuses = \"builtin:command\"\nneeds = [\"a\"]\n",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("cycle: a -> b -> a"), "{}", e[0]);
        assert!(e[0].starts_with("sluice.toml:8:"), "{}", e[0]);
    }

    fn step_with_grants(grants: &str) -> String {
        format!(
            "[pipeline]\nname = \"x\"\n[[stage]]\nname = \"b\"\n[[stage.step]]\nid = \"a\"\nuses = \"builtin:command\"\n[stage.step.grants]\n{grants}\n"
        )
    }

    #[test]
    fn toolchain_must_be_a_known_name_or_a_list_of_them() {
        let e = errs(&step_with_grants("toolchain = 3"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("sluice.toml:9:13: `toolchain` must be a toolchain's name or a list of them (valid toolchains: \"rust\", \"python\", \"node\", \"go\")"),
            "{}",
            e[0]
        );
        let e = errs(&step_with_grants("toolchain = [\"ruby\", \"java\"]"));
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].contains("unknown toolchain `ruby`; valid toolchains: \"rust\""),
            "{}",
            e[0]
        );
    }

    #[test]
    fn relative_exec_grants_stay_in_the_pipeline_folder() {
        let e = errs(&step_with_grants("exec = [\"../bin/tool\"]"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("leads out of the pipeline folder"),
            "{}",
            e[0]
        );
        let e = errs(&step_with_grants("exec = [\"tools/none\"]"));
        assert!(e[0].contains("which does not exist"), "{}", e[0]);
    }

    #[test]
    fn net_grants_parse() {
        assert_eq!(NetGrant::parse("127.0.0.1:80").unwrap().port, 80);
        assert_eq!(NetGrant::parse("[::1]:8080").unwrap().host, "::1");
        assert!(NetGrant::parse("localhost").is_err());
        assert!(NetGrant::parse("h:0").is_err());
        let g = NetGrant::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (g.host.as_str(), g.port, g.scheme.as_deref()),
            ("127.0.0.1", 8080, Some("http"))
        );
        assert_eq!(g.to_string(), "http://127.0.0.1:8080");
        let g = NetGrant::parse("https://API.example.com/").unwrap();
        assert_eq!((g.host.as_str(), g.port), ("api.example.com", 443));
        assert!(g.allows_http("https", 443) && !g.allows_http("http", 443));
        assert_eq!(NetGrant::parse("http://[::1]:81").unwrap().host, "::1");
        assert!(
            NetGrant::parse("https://h/path")
                .unwrap_err()
                .contains("`https://h`")
        );
        assert!(NetGrant::parse("ftp://h").is_err());
        assert!(NetGrant::parse("http://h:0").is_err());
        assert!(NetGrant::parse("h:80").unwrap().allows_http("https", 80));
    }
}
