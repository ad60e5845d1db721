//! `poetry.lock`: `[[package]]` tables with `name` and `version`. Packages whose
//! `source.type` is `directory`, `file` or `url` are local and not scanned; `git`
//! sources keep their repository and commit.

use super::{GitSource, Package, Parsed, toml_packages};
use crate::versions::Ecosystem;

/// Parse a poetry.lock.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    for (table, line) in toml_packages(text, "poetry.lock")? {
        let field = |key: &str| table.get(key).and_then(|v| v.as_str());
        let (Some(name), Some(version)) = (field("name"), field("version")) else {
            return Err(format!(
                "poetry.lock line {line}: a package without `name` or `version`"
            ));
        };
        let mut package = Package::new(Ecosystem::PyPI, name, version, Some(line));
        if let Some(source) = table.get("source").and_then(|s| s.as_table()) {
            let get = |k: &str| source.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            match get("type").as_deref() {
                Some("git") => {
                    package.git = Some(GitSource {
                        repo: get("url").unwrap_or_default(),
                        reference: get("reference"),
                        commit: get("resolved_reference"),
                    })
                }
                Some("directory" | "file" | "url") => {
                    parsed
                        .skipped
                        .push(format!("{name} {version}: local or URL source"));
                    continue;
                }
                _ => {}
            }
        }
        parsed.packages.push(package);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_packages() {
        let text = "[[package]]\nname = \"Jinja2\"\nversion = \"2.11.2\"\n\n[[package]]\nname = \"mine\"\nversion = \"0.1\"\n[package.source]\ntype = \"directory\"\nurl = \"../mine\"\n";
        let parsed = parse(text).unwrap();
        assert_eq!(
            parsed.packages,
            [Package::new(Ecosystem::PyPI, "Jinja2", "2.11.2", Some(1))]
        );
        assert_eq!(parsed.skipped.len(), 1);
    }
}
