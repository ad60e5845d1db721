//! `yarn.lock`, both yarn v1's own format (`"a@^1", a@~1.2:` headers with
//! `  version "1.2.3"`) and yarn berry's YAML-like one (`"a@npm:^1":` with
//! `  version: 1.2.3`). Entries resolved from a workspace, a link, a portal or a
//! local file are not scanned.

use super::{GitSource, Package, Parsed, unquote};
use crate::versions::Ecosystem;

/// Parse a yarn.lock.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut current: Option<(String, u32, String)> = None; // (name, line, first descriptor)
    let mut version: Option<String> = None;
    let mut resolved: Option<String> = None;
    let flush = |current: &mut Option<(String, u32, String)>,
                 version: &mut Option<String>,
                 resolved: &mut Option<String>,
                 parsed: &mut Parsed|
     -> Result<(), String> {
        if let Some((name, line, descriptor)) = current.take() {
            let Some(v) = version.take() else {
                return Err(format!(
                    "yarn.lock line {line}: entry `{descriptor}` has no version"
                ));
            };
            let r = resolved.take().unwrap_or_default();
            let local = [
                "@workspace:",
                "@link:",
                "@portal:",
                "@file:",
                "@exec:",
                "@patch:",
            ];
            if local.iter().any(|p| descriptor.contains(p)) || r.starts_with("file:") {
                parsed.skipped.push(format!("{descriptor}: local package"));
                return Ok(());
            }
            let mut package = Package::new(Ecosystem::Npm, name, v, Some(line));
            if let Some(git) = super::npm::git_source(&r).or_else(|| {
                (descriptor.contains("@git") || r.contains(".git#")).then(|| {
                    let (repo, commit) = r.split_once('#').unwrap_or((&r, ""));
                    GitSource {
                        repo: repo.to_owned(),
                        reference: None,
                        commit: (!commit.is_empty()).then(|| commit.to_owned()),
                    }
                })
            }) {
                package.git = Some(git);
            }
            parsed.packages.push(package);
        }
        *resolved = None;
        *version = None;
        Ok(())
    };
    for (index, line) in text.lines().enumerate() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if !line.starts_with(' ') {
            flush(&mut current, &mut version, &mut resolved, &mut parsed)?;
            let header = line.trim_end().strip_suffix(':').ok_or_else(|| {
                format!("yarn.lock line {number}: expected an entry header ending in `:`")
            })?;
            let first = unquote(header.split(", ").next().unwrap_or(header)).to_owned();
            if first == "__metadata" {
                continue;
            }
            let name = descriptor_name(&first).ok_or_else(|| {
                format!("yarn.lock line {number}: cannot read a package name from `{first}`")
            })?;
            current = Some((name.to_owned(), number, first));
        } else if current.is_some() && line.starts_with("  ") && !line.starts_with("   ") {
            let field = line.trim();
            if let Some(v) = field
                .strip_prefix("version ")
                .or_else(|| field.strip_prefix("version: "))
            {
                version = Some(unquote(v).to_owned());
            } else if let Some(r) = field
                .strip_prefix("resolved ")
                .or_else(|| field.strip_prefix("resolution: "))
            {
                resolved = Some(unquote(r).to_owned());
            }
        }
    }
    flush(&mut current, &mut version, &mut resolved, &mut parsed)?;
    Ok(parsed)
}

/// The package name of a descriptor: `@scope/name@^1` → `@scope/name`.
fn descriptor_name(descriptor: &str) -> Option<&str> {
    let at = descriptor[1..].find('@')? + 1;
    Some(&descriptor[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_yarn_v1() {
        let text = "# yarn lockfile v1\n\n\n\"@babel/code-frame@^7.0.0\", \"@babel/code-frame@^7.10.4\":\n  version \"7.12.13\"\n  resolved \"https://registry.yarnpkg.com/x\"\n  dependencies:\n    x \"1\"\n\nlodash@4.17.15:\n  version \"4.17.15\"\n";
        let parsed = parse(text).unwrap();
        assert_eq!(
            parsed.packages,
            [
                Package::new(Ecosystem::Npm, "@babel/code-frame", "7.12.13", Some(4)),
                Package::new(Ecosystem::Npm, "lodash", "4.17.15", Some(10))
            ]
        );
    }

    #[test]
    fn reads_berry_and_skips_workspaces() {
        let text = "__metadata:\n  version: 6\n\n\"lodash@npm:4.17.15\":\n  version: 4.17.15\n  resolution: \"lodash@npm:4.17.15\"\n\n\"app@workspace:.\":\n  version: 0.0.0-use.local\n  resolution: \"app@workspace:.\"\n";
        let parsed = parse(text).unwrap();
        assert_eq!(
            parsed.packages,
            [Package::new(Ecosystem::Npm, "lodash", "4.17.15", Some(4))]
        );
        assert_eq!(parsed.skipped.len(), 1);
    }

    #[test]
    fn entries_without_version_are_errors() {
        assert!(
            parse("a@1:\n  resolved \"x\"\n")
                .unwrap_err()
                .contains("line 1")
        );
    }
}
