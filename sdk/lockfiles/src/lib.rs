//! `sluice-lockfiles`: what a project's lockfiles pin and what its built artifact
//! contains, shared by `builtin:security-scan` (advisories, denylist), `builtin:build`
//! (the SBOM) and the runner. Plain Rust with no host imports, so it builds for the
//! wasm plugins and natively alike.
//!
//! - Lockfile readers, one module per format ([`Format`]). Each turns a lockfile's text
//!   into the packages it pins, with the 1-based line where each package's entry starts
//!   (what a finding points at), for packages taken from git the repository and commit,
//!   and where the format records them the checksums, the dependency edges and whether a
//!   package is only needed for development.
//! - [`discover`]: finding lockfiles under folders, honouring ignore files and `exclude`
//!   globs.
//! - [`closure`]: the dependency closure of a built target (normal dependencies for the
//!   target platform) from `cargo metadata`, a package-lock.json or `go list -deps`,
//!   with edges and scopes, for an SBOM of what ships.
//! - [`versions`]: each ecosystem's version ordering.

pub mod cargo;
pub mod closure;
pub mod discover;
pub mod gemfile;
pub mod gomod;
pub mod npm;
pub mod pipfile;
pub mod pnpm;
pub mod poetry;
pub mod requirements;
pub mod versions;
pub mod yarn;

use std::path::Path;

use crate::versions::Ecosystem;

pub use discover::{Discovery, Found};

/// A package pinned by a lockfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// Name as the ecosystem spells it.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// Its ecosystem.
    pub ecosystem: Ecosystem,
    /// 1-based line of the package's entry in the lockfile.
    pub line: Option<u32>,
    /// Where it came from, when that was a git repository.
    pub git: Option<GitSource>,
    /// Where the lockfile says it came from (Cargo's `source`, npm's `resolved`), when
    /// it says.
    pub source: Option<String>,
    /// Checksums of its published archive the lockfile records.
    pub checksums: Vec<Checksum>,
    /// Its license, when the lockfile records one (npm does).
    pub license: Option<String>,
    /// The packages it depends on, when the lockfile records the edges (Cargo.lock,
    /// package-lock.json).
    pub dependencies: Vec<PackageRef>,
    /// The lockfile marks it as needed only for development (npm's `dev`).
    pub dev: bool,
}

/// A package named by name and exact version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PackageRef {
    /// Name as the ecosystem spells it.
    pub name: String,
    /// Exact version.
    pub version: String,
}

/// A checksum a lockfile records for a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checksum {
    /// What kind of digest it is.
    pub algorithm: ChecksumAlgorithm,
    /// Lowercase hex for the SHA family; Go's `h1:` text as written.
    pub value: String,
}

/// A checksum's algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
    /// Go's `h1:` hash: a SHA-256 of a file list, not of one file.
    GoH1,
}

impl ChecksumAlgorithm {
    /// The CycloneDX `hashes[].alg` name, when CycloneDX has one.
    pub fn cyclonedx_name(self) -> Option<&'static str> {
        match self {
            ChecksumAlgorithm::Sha1 => Some("SHA-1"),
            ChecksumAlgorithm::Sha256 => Some("SHA-256"),
            ChecksumAlgorithm::Sha384 => Some("SHA-384"),
            ChecksumAlgorithm::Sha512 => Some("SHA-512"),
            ChecksumAlgorithm::GoH1 => None,
        }
    }
}

/// A git source of a package.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GitSource {
    /// Repository URL as the lockfile gives it.
    pub repo: String,
    /// Branch or tag asked for, if the lockfile says.
    pub reference: Option<String>,
    /// Commit the lockfile pins.
    pub commit: Option<String>,
}

impl Package {
    /// A package from a registry.
    pub fn new(
        ecosystem: Ecosystem,
        name: impl Into<String>,
        version: impl Into<String>,
        line: Option<u32>,
    ) -> Self {
        Package {
            name: name.into(),
            version: version.into(),
            ecosystem,
            line,
            git: None,
            source: None,
            checksums: Vec::new(),
            license: None,
            dependencies: Vec::new(),
            dev: false,
        }
    }

    /// Its package URL (purl-spec): `pkg:cargo/serde@1.0.200`, `pkg:npm/%40eslint/js@9.39.5`.
    pub fn purl(&self) -> String {
        purl(self.ecosystem, &self.name, &self.version)
    }
}

/// The package URL of `name@version` in `ecosystem`. An npm scope keeps its slash as the
/// namespace separator with its `@` encoded; PyPI names are normalized (PEP 503); a
/// `+` in a version is encoded.
pub fn purl(ecosystem: Ecosystem, name: &str, version: &str) -> String {
    let name = match ecosystem {
        Ecosystem::Npm => name.replacen('@', "%40", 1),
        Ecosystem::PyPI => ecosystem.normalize_name(name),
        _ => name.to_owned(),
    };
    let kind = ecosystem.purl_type();
    if version.is_empty() {
        format!("pkg:{kind}/{name}")
    } else {
        format!("pkg:{kind}/{name}@{}", version.replace('+', "%2B"))
    }
}

/// A lockfile that could not be read, with what in it is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// The format it was read as.
    pub format: Format,
    /// What is wrong, with the line or key where the format allows.
    pub message: String,
}

/// What a lockfile yielded.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    /// The packages.
    pub packages: Vec<Package>,
    /// Entries that were deliberately not scanned, with the reason (e.g. an unpinned
    /// requirement), so a report can say so.
    pub skipped: Vec<String>,
    /// The packages the project itself depends on at runtime, when the lockfile records
    /// them (package-lock.json's root entry).
    pub direct: Vec<PackageRef>,
}

/// The lockfile formats this scanner reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `Cargo.lock`.
    Cargo,
    /// `package-lock.json` (lockfileVersion 2 and 3) or `npm-shrinkwrap.json`.
    PackageLock,
    /// `yarn.lock` (v1 and berry).
    Yarn,
    /// `pnpm-lock.yaml`.
    Pnpm,
    /// `go.mod`.
    GoMod,
    /// `go.sum`.
    GoSum,
    /// Pinned `requirements.txt`.
    Requirements,
    /// `poetry.lock`.
    Poetry,
    /// `Pipfile.lock`.
    Pipfile,
    /// `Gemfile.lock`.
    Gemfile,
}

impl Format {
    /// File names found by auto-detection, with their format. `go.sum` is not
    /// auto-detected: `go.mod` holds the build list already (name it explicitly to
    /// scan a go.sum).
    pub const AUTO: [(&'static str, Format); 10] = [
        ("Cargo.lock", Format::Cargo),
        ("package-lock.json", Format::PackageLock),
        ("npm-shrinkwrap.json", Format::PackageLock),
        ("yarn.lock", Format::Yarn),
        ("pnpm-lock.yaml", Format::Pnpm),
        ("go.mod", Format::GoMod),
        ("requirements.txt", Format::Requirements),
        ("poetry.lock", Format::Poetry),
        ("Pipfile.lock", Format::Pipfile),
        ("Gemfile.lock", Format::Gemfile),
    ];

    /// The format of a file, from its name (`requirements-dev.txt` and `*.txt` under a
    /// `requirements/` folder count as requirements files).
    pub fn detect(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?;
        if name == "go.sum" {
            return Some(Format::GoSum);
        }
        if let Some((_, f)) = Format::AUTO.iter().find(|(n, _)| *n == name) {
            return Some(*f);
        }
        let in_requirements_dir = path
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|d| d == "requirements");
        if name.ends_with(".txt") && (name.starts_with("requirements") || in_requirements_dir) {
            return Some(Format::Requirements);
        }
        None
    }

    /// Parse a lockfile's text. Errors say what in the file is wrong.
    pub fn parse(self, text: &str) -> Result<Parsed, ParseError> {
        let parsed = match self {
            Format::Cargo => cargo::parse(text),
            Format::PackageLock => npm::parse(text),
            Format::Yarn => yarn::parse(text),
            Format::Pnpm => pnpm::parse(text),
            Format::GoMod => gomod::parse_go_mod(text),
            Format::GoSum => gomod::parse_go_sum(text),
            Format::Requirements => requirements::parse(text),
            Format::Poetry => poetry::parse(text),
            Format::Pipfile => pipfile::parse(text),
            Format::Gemfile => gemfile::parse(text),
        };
        parsed.map_err(|message| ParseError {
            format: self,
            message,
        })
    }

    /// The file name this format is usually found under, for messages.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Cargo => "Cargo.lock",
            Format::PackageLock => "package-lock.json",
            Format::Yarn => "yarn.lock",
            Format::Pnpm => "pnpm-lock.yaml",
            Format::GoMod => "go.mod",
            Format::GoSum => "go.sum",
            Format::Requirements => "requirements.txt",
            Format::Poetry => "poetry.lock",
            Format::Pipfile => "Pipfile.lock",
            Format::Gemfile => "Gemfile.lock",
        }
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// 1-based line number of the byte offset `at` in `text`.
pub(crate) fn line_of(text: &str, at: usize) -> u32 {
    u32::try_from(
        text[..at.min(text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1,
    )
    .unwrap_or(u32::MAX)
}

/// `s` without one pair of surrounding double or single quotes.
pub(crate) fn unquote(s: &str) -> &str {
    let s = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

/// Read `[[package]]` tables (Cargo.lock, poetry.lock) with the line each starts on:
/// the TOML is parsed for real, and lines are matched by walking the headers in order.
pub(crate) fn toml_packages(text: &str, what: &str) -> Result<Vec<(toml::Table, u32)>, String> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| format!("not a valid {what}: {e}"))?;
    let tables = match doc.get("package") {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_table()
                    .cloned()
                    .ok_or_else(|| format!("{what}: `package` entries must be tables"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(format!("{what}: `package` must be an array of tables")),
    };
    let header_lines: Vec<u32> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == "[[package]]")
        .map(|(i, _)| u32::try_from(i + 1).unwrap_or(u32::MAX))
        .collect();
    if header_lines.len() != tables.len() {
        return Err(format!(
            "{what}: {} `[[package]]` headers but {} package tables; write each as a `[[package]]` header",
            header_lines.len(),
            tables.len()
        ));
    }
    Ok(tables.into_iter().zip(header_lines).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats_by_name() {
        assert_eq!(
            Format::detect(Path::new("a/Cargo.lock")),
            Some(Format::Cargo)
        );
        assert_eq!(
            Format::detect(Path::new("requirements-dev.txt")),
            Some(Format::Requirements)
        );
        assert_eq!(
            Format::detect(Path::new("requirements/base.txt")),
            Some(Format::Requirements)
        );
        assert_eq!(Format::detect(Path::new("go.sum")), Some(Format::GoSum));
        assert_eq!(Format::detect(Path::new("notes.txt")), None);
    }

    #[test]
    fn lines_and_quotes() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 4), 3);
        assert_eq!(unquote("'x'"), "x");
        assert_eq!(unquote("\"x\""), "x");
        assert_eq!(unquote("x"), "x");
    }
}
