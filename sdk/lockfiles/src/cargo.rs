//! `Cargo.lock` (format versions 1 to 4). Only packages from a registry or from git are
//! scanned: workspace members and path dependencies have no `source` and are the
//! project's own code, which a crates.io advisory of the same name does not describe.
//! Each package keeps its `source`, its `checksum` (SHA-256 of the .crate) and its
//! dependency edges (`dependencies` entries are `name`, or `name version` when several
//! versions are locked, resolved here to exact versions).

use std::collections::BTreeMap;

use super::{Checksum, ChecksumAlgorithm, GitSource, Package, PackageRef, Parsed, toml_packages};
use crate::versions::Ecosystem;

/// Parse a Cargo.lock.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let tables = toml_packages(text, "Cargo.lock")?;
    let mut versions: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (table, _) in &tables {
        if let (Some(name), Some(version)) = (
            table.get("name").and_then(|v| v.as_str()),
            table.get("version").and_then(|v| v.as_str()),
        ) {
            versions.entry(name).or_default().push(version);
        }
    }
    for (table, line) in &tables {
        let line = *line;
        let field = |key: &str| table.get(key).and_then(|v| v.as_str());
        let (Some(name), Some(version)) = (field("name"), field("version")) else {
            return Err(format!(
                "Cargo.lock line {line}: a package without `name` or `version`"
            ));
        };
        let Some(source) = field("source") else {
            parsed.skipped.push(format!(
                "{name} {version}: local (path or workspace) package"
            ));
            continue;
        };
        let mut package = Package::new(Ecosystem::CratesIo, name, version, Some(line));
        package.source = Some(source.to_owned());
        if let Some(sum) = field("checksum") {
            package.checksums.push(Checksum {
                algorithm: ChecksumAlgorithm::Sha256,
                value: sum.to_ascii_lowercase(),
            });
        }
        let dependencies = table.get("dependencies").and_then(|d| d.as_array());
        for entry in dependencies.into_iter().flatten() {
            let Some(entry) = entry.as_str() else {
                return Err(format!(
                    "Cargo.lock line {line}: {name} {version}: `dependencies` entries must be strings"
                ));
            };
            let mut words = entry.split(' ');
            let dependency = words.next().unwrap_or_default();
            let locked = match words.next() {
                Some(exact) => Some(exact),
                None => versions
                    .get(dependency)
                    .and_then(|found| (found.len() == 1).then(|| found[0])),
            };
            let Some(locked) = locked else {
                return Err(format!(
                    "Cargo.lock line {line}: {name} {version} depends on `{entry}`, which names no single locked package"
                ));
            };
            package.dependencies.push(PackageRef {
                name: dependency.to_owned(),
                version: locked.to_owned(),
            });
        }
        if let Some(rest) = source.strip_prefix("git+") {
            package.git = Some(git_source(rest));
        } else if !(source.starts_with("registry+") || source.starts_with("sparse+")) {
            parsed
                .skipped
                .push(format!("{name} {version}: unknown source `{source}`"));
            continue;
        }
        parsed.packages.push(package);
    }
    Ok(parsed)
}

/// `https://github.com/o/r?branch=main#<commit>` → repo, reference, commit.
fn git_source(rest: &str) -> GitSource {
    let (url, commit) = match rest.split_once('#') {
        Some((u, c)) => (u, Some(c.to_owned())),
        None => (rest, None),
    };
    let (repo, query) = match url.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (url, None),
    };
    let reference = query.and_then(|q| {
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            matches!(k, "branch" | "tag" | "rev").then(|| v.to_owned())
        })
    });
    GitSource {
        repo: repo.to_owned(),
        reference,
        commit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_registry_and_git_packages_with_lines() {
        let text = "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"regex\"\nversion = \"1.5.4\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n[[package]]\nname = \"g\"\nversion = \"0.2.0\"\nsource = \"git+https://github.com/o/g?branch=dev#0123abcd\"\n";
        let parsed = parse(text).unwrap();
        assert_eq!(parsed.packages.len(), 2);
        let mut regex = Package::new(Ecosystem::CratesIo, "regex", "1.5.4", Some(7));
        regex.source = Some("registry+https://github.com/rust-lang/crates.io-index".into());
        assert_eq!(parsed.packages[0], regex);
        let git = parsed.packages[1].git.clone().unwrap();
        assert_eq!(
            (
                git.repo.as_str(),
                git.reference.as_deref(),
                git.commit.as_deref()
            ),
            ("https://github.com/o/g", Some("dev"), Some("0123abcd"))
        );
        assert_eq!(
            parsed.skipped,
            ["app 0.1.0: local (path or workspace) package"]
        );
    }

    #[test]
    fn keeps_checksums_and_resolves_dependency_edges() {
        let text = "version = 4\n\n[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"ABCD\"\ndependencies = [\n \"b\",\n \"c 2.0.0\",\n]\n\n[[package]]\nname = \"b\"\nversion = \"0.1.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n[[package]]\nname = \"c\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n\n[[package]]\nname = \"c\"\nversion = \"2.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n";
        let a = &parse(text).unwrap().packages[0];
        assert_eq!(a.checksums[0].value, "abcd");
        let edges: Vec<_> = a
            .dependencies
            .iter()
            .map(|d| (d.name.as_str(), d.version.as_str()))
            .collect();
        assert_eq!(edges, [("b", "0.1.0"), ("c", "2.0.0")]);
        let ambiguous = text.replace("\"c 2.0.0\"", "\"c\"");
        assert!(
            parse(&ambiguous)
                .unwrap_err()
                .contains("names no single locked package")
        );
    }

    #[test]
    fn rejects_broken_files() {
        assert!(
            parse("[[package]\n")
                .unwrap_err()
                .contains("not a valid Cargo.lock")
        );
        assert!(
            parse("[[package]]\nname = \"x\"\n")
                .unwrap_err()
                .contains("line 1")
        );
    }
}
