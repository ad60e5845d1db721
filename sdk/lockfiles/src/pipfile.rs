//! `Pipfile.lock`: the `default` and `develop` maps of package → `{ "version": "==1.2" }`.
//! Entries without a `version` (git, path or editable installs) are not scanned, except
//! that git entries keep their repository and `ref` for the denylist.

use super::{GitSource, Package, Parsed};
use crate::versions::Ecosystem;

/// Parse a Pipfile.lock.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let mut parsed = Parsed::default();
    for section in ["default", "develop"] {
        let Some(entries) = doc.get(section).and_then(|s| s.as_object()) else {
            continue;
        };
        let section_line = find_line(text, &format!("    \"{section}\": {{"), 0);
        for (name, entry) in entries {
            let line = section_line.and_then(|from| {
                find_line(text, &format!("        \"{name}\": {{"), from as usize)
            });
            match entry.get("version").and_then(|v| v.as_str()) {
                Some(v) => {
                    let version = v.trim_start_matches("==").trim_start_matches('=');
                    parsed.packages.push(Package::new(
                        Ecosystem::PyPI,
                        name.clone(),
                        version,
                        line,
                    ));
                }
                None => match entry.get("git").and_then(|g| g.as_str()) {
                    Some(repo) => {
                        let mut package = Package::new(Ecosystem::PyPI, name.clone(), "0", line);
                        package.git = Some(GitSource {
                            repo: repo.to_owned(),
                            reference: None,
                            commit: entry.get("ref").and_then(|r| r.as_str()).map(str::to_owned),
                        });
                        parsed.skipped.push(format!(
                            "{section}.{name}: git checkout, checked against the denylist only"
                        ));
                        parsed.packages.push(package);
                    }
                    None => parsed.skipped.push(format!(
                        "{section}.{name}: no version (path or editable install)"
                    )),
                },
            }
        }
    }
    Ok(parsed)
}

/// The 1-based line at or after line `from` that starts with `prefix`.
fn find_line(text: &str, prefix: &str, from: usize) -> Option<u32> {
    text.lines()
        .enumerate()
        .skip(from)
        .find(|(_, l)| l.starts_with(prefix))
        .and_then(|(i, _)| u32::try_from(i + 1).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_sections() {
        let text = "{\n    \"default\": {\n        \"jinja2\": {\n            \"version\": \"==2.10\"\n        }\n    },\n    \"develop\": {\n        \"jinja2\": {\n            \"version\": \"==3.0\"\n        },\n        \"local\": {\n            \"path\": \".\"\n        }\n    }\n}\n";
        let parsed = parse(text).unwrap();
        assert_eq!(
            parsed.packages,
            [
                Package::new(Ecosystem::PyPI, "jinja2", "2.10", Some(3)),
                Package::new(Ecosystem::PyPI, "jinja2", "3.0", Some(8))
            ]
        );
        assert_eq!(parsed.skipped.len(), 1);
    }
}
