//! What kind of project a folder holds, how to build it, what it calls itself (name and
//! version), and which lockfiles pin its dependencies.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use sluice_sdk::{Command, RunError};

use crate::lockfiles::{self, Package};

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
        let purl = lockfiles::purl(ecosystem, name, version);
        Some(if version.is_empty() {
            purl.trim_end_matches('@').to_owned()
        } else {
            purl
        })
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
                identity.name = lockfiles::go_sum("", Some(&text)).1.name;
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

/// A lockfile that was read.
pub struct Lock {
    pub name: &'static str,
    pub path: PathBuf,
    pub sha256: String,
    pub packages: Vec<Package>,
}

/// Read the lockfiles in `project` (and, for Cargo, the workspace root above it).
pub fn read_lockfiles(project: &Path) -> Result<Vec<Lock>, RunError> {
    let mut locks = Vec::new();
    let read = |path: &Path| -> Result<Option<(Vec<u8>, String)>, RunError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                Ok(Some((bytes, text)))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => {
                Err(sluice_sdk::fs::Error::new(path, sluice_sdk::fs::Access::Read, err).into())
            }
        }
    };
    let digest = |bytes: &[u8]| lockfiles::hex(&Sha256::digest(bytes));
    // A workspace member's Cargo.lock lives at the workspace root.
    if project.join("Cargo.toml").is_file()
        && let Some(path) = project
            .ancestors()
            .map(|dir| dir.join("Cargo.lock"))
            .find(|path| path.is_file())
        && let Some((bytes, text)) = read(&path)?
    {
        let (packages, _) = lockfiles::cargo_lock(&text)
            .map_err(|err| RunError::failed(format!("cannot read {}: {err}", path.display())))?;
        locks.push(Lock {
            name: "Cargo.lock",
            sha256: digest(&bytes),
            path,
            packages,
        });
    }
    let path = project.join("package-lock.json");
    if let Some((bytes, text)) = read(&path)? {
        let (packages, _) = lockfiles::package_lock(&text)
            .map_err(|err| RunError::failed(format!("cannot read {}: {err}", path.display())))?;
        locks.push(Lock {
            name: "package-lock.json",
            sha256: digest(&bytes),
            path,
            packages,
        });
    }
    let path = project.join("go.sum");
    if let Some((bytes, text)) = read(&path)? {
        let go_mod = std::fs::read_to_string(project.join("go.mod")).ok();
        let (packages, _) = lockfiles::go_sum(&text, go_mod.as_deref());
        locks.push(Lock {
            name: "go.sum",
            sha256: digest(&bytes),
            path,
            packages,
        });
    }
    let path = project.join("go.mod");
    if let Some((bytes, _)) = read(&path)? {
        // go.mod is a build input too (its `require`s select the versions).
        locks.push(Lock {
            name: "go.mod",
            sha256: digest(&bytes),
            path,
            packages: Vec::new(),
        });
    }
    Ok(locks)
}
