//! `Cargo.lock` (format versions 1 to 4). Only packages from a registry or from git are
//! scanned: workspace members and path dependencies have no `source` and are the
//! project's own code, which a crates.io advisory of the same name does not describe.

use super::{GitSource, Package, Parsed, toml_packages};
use crate::versions::Ecosystem;

/// Parse a Cargo.lock.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    for (table, line) in toml_packages(text, "Cargo.lock")? {
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
        assert_eq!(
            parsed.packages[0],
            Package::new(Ecosystem::CratesIo, "regex", "1.5.4", Some(7))
        );
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
