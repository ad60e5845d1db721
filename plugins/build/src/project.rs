//! What kind of project a folder holds, how to build it, what it calls itself (name and
//! version), which lockfiles pin its dependencies, and what its built target ships (the
//! dependency closure, asked of `cargo metadata` / `go list` or read from
//! package-lock.json).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sluice_lockfiles::closure::{self, Closure};
use sluice_lockfiles::versions::Ecosystem;
use sluice_lockfiles::{Format, PackageRef, Parsed};
use sluice_sdk::{Command, Output, RunError};

/// A project kind, by its marker file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Cargo,
    Npm,
    Go,
    Maven,
    Make,
}

impl Kind {
    /// Lowercase name, for the provenance.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Cargo => "cargo",
            Kind::Npm => "npm",
            Kind::Go => "go",
            Kind::Maven => "maven",
            Kind::Make => "make",
        }
    }
}

/// The kind of project in `folder`, by the first marker file found.
pub fn detect(folder: &Path) -> Option<Kind> {
    [
        ("Cargo.toml", Kind::Cargo),
        ("package.json", Kind::Npm),
        ("go.mod", Kind::Go),
        ("pom.xml", Kind::Maven),
        ("Makefile", Kind::Make),
        ("makefile", Kind::Make),
        ("GNUmakefile", Kind::Make),
    ]
    .into_iter()
    .find(|(marker, _)| folder.join(marker).is_file())
    .map(|(_, kind)| kind)
}

/// The build command: `explicit` when given, else the kind's default plus `args`.
pub fn command(
    kind: Option<Kind>,
    explicit: Option<&[String]>,
    args: &[String],
) -> Option<Vec<String>> {
    if let Some(explicit) = explicit {
        return explicit
            .first()
            .filter(|program| !program.trim().is_empty())
            .map(|_| explicit.to_vec());
    }
    let base: &[&str] = match kind? {
        Kind::Cargo => &["cargo", "build", "--release"],
        Kind::Npm => &["npm", "run", "build"],
        Kind::Go => &["go", "build", "./..."],
        Kind::Maven => &["mvn", "-B", "package"],
        Kind::Make => &["make"],
    };
    let mut words: Vec<String> = base.iter().map(|word| (*word).to_owned()).collect();
    words.extend(args.iter().cloned());
    Some(words)
}

/// The project's name and version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identity {
    pub kind: Option<Kind>,
    pub name: Option<String>,
    pub version: Option<String>,
}

impl Identity {
    /// The project's purl, when its ecosystem has one.
    pub fn purl(&self) -> Option<String> {
        let name = self.name.as_deref()?;
        let version = self.version.as_deref().unwrap_or("");
        let ecosystem = match self.kind? {
            Kind::Cargo => "cargo",
            Kind::Npm => "npm",
            Kind::Go => "golang",
            _ => return None,
        };
        let ecosystem = match ecosystem {
            "cargo" => Ecosystem::CratesIo,
            "npm" => Ecosystem::Npm,
            _ => Ecosystem::Go,
        };
        Some(sluice_lockfiles::purl(ecosystem, name, version))
    }
}

/// Name and version from the manifest (Cargo.toml with `version.workspace = true`
/// followed to the workspace root, then `cargo metadata`; package.json; go.mod's module
/// path), with `fallback_version` when the manifest has none.
pub fn identity(kind: Option<Kind>, project: &Path, fallback_version: Option<&str>) -> Identity {
    let mut identity = Identity {
        kind,
        ..Identity::default()
    };
    match kind {
        Some(Kind::Cargo) => {
            if let Ok(text) = std::fs::read_to_string(project.join("Cargo.toml")) {
                let (name, version) = cargo_manifest(&text, project);
                identity.name = name;
                identity.version = version;
            }
            if identity.version.is_none() && identity.name.is_some() {
                identity.version = cargo_metadata_version(project);
            }
        }
        Some(Kind::Npm) => {
            if let Ok(text) = std::fs::read_to_string(project.join("package.json"))
                && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
            {
                identity.name = json["name"].as_str().map(str::to_owned);
                identity.version = json["version"].as_str().map(str::to_owned);
            }
        }
        Some(Kind::Go) => {
            if let Ok(text) = std::fs::read_to_string(project.join("go.mod")) {
                identity.name = go_module_path(&text);
            }
        }
        _ => {}
    }
    if identity.version.is_none() {
        identity.version = fallback_version.map(str::to_owned);
    }
    identity
}

/// `[package] name` and `version` of a Cargo.toml; `version.workspace = true` is looked
/// up in the nearest parent folder's `[workspace.package]`.
pub fn cargo_manifest(text: &str, folder: &Path) -> (Option<String>, Option<String>) {
    let Ok(manifest) = toml::from_str::<toml::Table>(text) else {
        return (None, None);
    };
    let Some(package) = manifest
        .get("package")
        .and_then(|package| package.as_table())
    else {
        return (None, None);
    };
    let name = package
        .get("name")
        .and_then(|name| name.as_str())
        .map(str::to_owned);
    let version = match package.get("version") {
        Some(toml::Value::String(version)) => Some(version.clone()),
        Some(toml::Value::Table(table))
            if table.get("workspace").and_then(|w| w.as_bool()) == Some(true) =>
        {
            workspace_version(folder)
        }
        // No `version` means 0.0.0 for Cargo; that says nothing, so leave it out.
        _ => None,
    };
    (name, version)
}

fn workspace_version(folder: &Path) -> Option<String> {
    folder.ancestors().find_map(|dir| {
        let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
        let manifest = toml::from_str::<toml::Table>(&text).ok()?;
        manifest
            .get("workspace")?
            .get("package")?
            .get("version")?
            .as_str()
            .map(str::to_owned)
    })
}

/// The version `cargo metadata --no-deps --format-version 1` gives the package whose
/// manifest is in `project`.
fn cargo_metadata_version(project: &Path) -> Option<String> {
    let output = Command::new("cargo")
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .cwd(project)
        .run()
        .ok()
        .filter(|output| output.success())?;
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    let manifest = project.join("Cargo.toml");
    json["packages"]
        .as_array()?
        .iter()
        .find(|package| {
            package["manifest_path"]
                .as_str()
                .is_some_and(|path| Path::new(path) == manifest)
        })
        .and_then(|package| package["version"].as_str())
        .map(str::to_owned)
}

/// The `module` path of a go.mod.
pub fn go_module_path(go_mod: &str) -> Option<String> {
    go_mod
        .lines()
        .find_map(|line| line.trim().strip_prefix("module "))
        .map(|module| module.trim().trim_matches('"').to_owned())
}

/// A lockfile that was read.
pub struct Lock {
    pub name: &'static str,
    pub path: PathBuf,
    pub sha256: String,
    pub format: Format,
    pub parsed: Parsed,
}

/// Read the lockfiles in `project` (and, for Cargo, the workspace root above it):
/// Cargo.lock, package-lock.json, go.sum, and go.mod (a build input too: its `require`s
/// select the versions).
pub fn read_lockfiles(project: &Path) -> Result<Vec<Lock>, RunError> {
    let mut candidates = Vec::new();
    // A workspace member's Cargo.lock lives at the workspace root.
    if project.join("Cargo.toml").is_file()
        && let Some(path) = project
            .ancestors()
            .map(|dir| dir.join("Cargo.lock"))
            .find(|path| path.is_file())
    {
        candidates.push(("Cargo.lock", path, Format::Cargo));
    }
    candidates.push((
        "package-lock.json",
        project.join("package-lock.json"),
        Format::PackageLock,
    ));
    candidates.push(("go.sum", project.join("go.sum"), Format::GoSum));
    candidates.push(("go.mod", project.join("go.mod"), Format::GoMod));
    let mut locks = Vec::new();
    for (name, path, format) in candidates {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => {
                return Err(
                    sluice_sdk::fs::Error::new(&path, sluice_sdk::fs::Access::Read, err).into(),
                );
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let parsed = format
            .parse(&text)
            .map_err(|err| RunError::failed(format!("cannot read {}: {err}", path.display())))?;
        locks.push(Lock {
            name,
            sha256: sluice_lockfiles::hex(&Sha256::digest(&bytes)),
            path,
            format,
            parsed,
        });
    }
    Ok(locks)
}

/// What the built target ships, one closure per ecosystem the project uses: from
/// `cargo metadata` for a Cargo.toml (for the platform the build targeted), from
/// package-lock.json for an npm project, from `go list -deps` for a go.mod. `build`
/// is the build command (its `--target`, `--offline`, `--locked`, `--frozen` carry
/// over to `cargo metadata`); `env` is the step's extra environment.
pub fn shipped(
    project: &Path,
    locks: &[Lock],
    build: &[String],
    env: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<Closure>, RunError> {
    let mut closures = Vec::new();
    if project.join("Cargo.toml").is_file() {
        closures.push(cargo_closure(project, build, env)?);
    }
    if let Some(lock) = locks.iter().find(|lock| lock.format == Format::PackageLock) {
        let text = std::fs::read_to_string(&lock.path).unwrap_or_default();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let root = PackageRef {
            name: json["name"].as_str().unwrap_or("").to_owned(),
            version: json["version"].as_str().unwrap_or("").to_owned(),
        };
        closures.push(closure::package_lock(&lock.parsed, root));
    }
    if project.join("go.mod").is_file() {
        let output = tool(
            Command::new("go")
                .args(["list", "-deps", "-json", "./..."])
                .envs(env.clone())
                .cwd(project),
        )?;
        closures.push(
            closure::go_list(&output.stdout_text())
                .map_err(|err| RunError::failed(err.to_string()))?,
        );
    }
    Ok(closures)
}

/// The closure of the Cargo package (or virtual workspace) in `project`.
fn cargo_closure(
    project: &Path,
    build: &[String],
    env: &std::collections::BTreeMap<String, String>,
) -> Result<Closure, RunError> {
    let target = match build_target(build) {
        Some(target) => target,
        None => {
            let output = tool(
                Command::new("cargo")
                    .arg("-vV")
                    .envs(env.clone())
                    .cwd(project),
            )?;
            output
                .stdout_text()
                .lines()
                .find_map(|line| line.strip_prefix("host: "))
                .map(|host| host.trim().to_owned())
                .ok_or_else(|| {
                    RunError::failed(
                        "`cargo -vV` names no `host:` platform; set `--target` in `args`",
                    )
                })?
        }
    };
    let mut args = vec![
        "metadata".to_owned(),
        "--format-version".into(),
        "1".into(),
        "--filter-platform".into(),
        target,
    ];
    args.extend(metadata_flags(build));
    let output = tool(
        Command::new("cargo")
            .args(args)
            .envs(env.clone())
            .cwd(project),
    )?;
    closure::cargo_metadata(&output.stdout_text(), project)
        .map_err(|err| RunError::failed(err.to_string()))
}

/// The flags of a cargo build command that change what `cargo metadata` resolves or
/// may fetch: features (`--features x`, `--features=x`, `-F x`, `--all-features`,
/// `--no-default-features`) and `--offline`, `--locked`, `--frozen`.
pub fn metadata_flags(build: &[String]) -> Vec<String> {
    let mut flags = Vec::new();
    let mut words = build.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "--offline" | "--locked" | "--frozen" | "--all-features" | "--no-default-features" => {
                flags.push(word.clone())
            }
            "--features" | "-F" => {
                if let Some(value) = words.next() {
                    flags.extend(["--features".to_owned(), value.clone()]);
                }
            }
            _ if word.starts_with("--features=") => flags.push(word.clone()),
            _ => {}
        }
    }
    flags
}

/// The platform a cargo build command targets (`--target x` or `--target=x`).
pub fn build_target(build: &[String]) -> Option<String> {
    build.iter().enumerate().find_map(|(at, word)| {
        if word == "--target" {
            build.get(at + 1).cloned()
        } else {
            word.strip_prefix("--target=").map(str::to_owned)
        }
    })
}

/// Run a tool the SBOM needs; a denial or a failure becomes an error that names the
/// command, what it said, and how to get past it.
fn tool(command: Command) -> Result<Output, RunError> {
    let shown = command.display();
    let hint = "the SBOM lists what the built target ships, which this tool computes; grant its program under `exec`, or set `sbom = false`";
    match command.run() {
        Ok(output) if output.success() => Ok(output),
        Ok(output) => {
            let stderr = output.stderr_text();
            let lines: Vec<&str> = stderr.trim_end().lines().collect();
            Err(RunError::failed(format!(
                "cannot compute the SBOM: `{shown}` {}: {}\n({hint})",
                output.describe_exit(),
                lines[lines.len().saturating_sub(10)..].join("\n")
            )))
        }
        Err(err) => Err(RunError::failed(format!(
            "cannot compute the SBOM: `{shown}`: {}\n({hint})",
            err.message()
        ))),
    }
}
