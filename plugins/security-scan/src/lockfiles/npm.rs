//! `package-lock.json` / `npm-shrinkwrap.json`, lockfileVersion 2 and 3: the `packages`
//! map, keyed by install path (`node_modules/a/node_modules/b`). The root entry (`""`),
//! workspace links (`link: true`) and folders outside `node_modules` (workspace
//! members) are the project's own code and are not scanned. Version 1 files (only the
//! nested `dependencies` tree) are refused with a hint to regenerate them.

use std::collections::HashMap;

use super::{GitSource, Package, Parsed, line_of};
use crate::versions::Ecosystem;

/// Parse a package-lock.json.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let version = doc
        .get("lockfileVersion")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let Some(packages) = doc.get("packages").and_then(|p| p.as_object()) else {
        return Err(format!(
            "lockfileVersion {version} without a `packages` map: regenerate it with npm 7 or later (`npm install --package-lock-only`)"
        ));
    };
    let lines = key_lines(text);
    let mut parsed = Parsed::default();
    for (key, entry) in packages {
        if key.is_empty() {
            continue;
        }
        let Some(at) = key.rfind("node_modules/") else {
            parsed.skipped.push(format!("{key}: workspace member"));
            continue;
        };
        if entry.get("link").and_then(|l| l.as_bool()) == Some(true) {
            parsed
                .skipped
                .push(format!("{key}: link to a local folder"));
            continue;
        }
        // An alias (`"x": "npm:y@1"`) installs under x but is package y.
        let name = entry
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or(&key[at + "node_modules/".len()..]);
        let Some(version) = entry.get("version").and_then(|v| v.as_str()) else {
            parsed.skipped.push(format!("{key}: no version"));
            continue;
        };
        let mut package = Package::new(
            Ecosystem::Npm,
            name,
            version,
            lines.get(key.as_str()).copied(),
        );
        if let Some(resolved) = entry.get("resolved").and_then(|r| r.as_str()) {
            if let Some(git) = git_source(resolved) {
                package.git = Some(git);
            } else if resolved.starts_with("file:") {
                parsed.skipped.push(format!("{key}: local file"));
                continue;
            }
        }
        parsed.packages.push(package);
    }
    parsed.packages.sort_by_key(|p| p.line);
    Ok(parsed)
}

/// `git+ssh://git@github.com/o/r.git#<commit>` → repository and commit.
pub(crate) fn git_source(resolved: &str) -> Option<GitSource> {
    let rest = resolved
        .strip_prefix("git+")
        .or_else(|| resolved.starts_with("git://").then_some(resolved))?;
    let (repo, commit) = match rest.split_once('#') {
        Some((r, c)) => (r, Some(c.to_owned())),
        None => (rest, None),
    };
    Some(GitSource {
        repo: repo.to_owned(),
        reference: None,
        commit,
    })
}

/// Line of each `"node_modules/...": {` key. npm writes one key per line.
fn key_lines(text: &str) -> HashMap<&str, u32> {
    let mut lines = HashMap::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix('"')
            && let Some(end) = rest.find("\": {")
        {
            let key = &rest[..end];
            if key.contains("node_modules/") {
                lines.entry(key).or_insert(line_of(text, offset));
            }
        }
        offset += line.len();
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_v3_packages() {
        let text = r#"{
  "name": "x",
  "lockfileVersion": 3,
  "packages": {
    "": { "name": "x" },
    "node_modules/lodash": {
      "version": "4.17.15"
    },
    "node_modules/a/node_modules/@s/b": {
      "version": "1.0.0"
    },
    "node_modules/alias": {
      "name": "real",
      "version": "2.0.0"
    },
    "node_modules/dep": {
      "version": "1.0.0",
      "resolved": "git+ssh://git@github.com/o/dep.git#abc123"
    },
    "packages/ws": { "version": "0.0.1" },
    "node_modules/ws": { "resolved": "packages/ws", "link": true }
  }
}"#;
        let parsed = parse(text).unwrap();
        let got: Vec<_> = parsed
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.line))
            .collect();
        assert_eq!(
            got,
            [
                ("lodash", "4.17.15", Some(6)),
                ("@s/b", "1.0.0", Some(9)),
                ("real", "2.0.0", Some(12)),
                ("dep", "1.0.0", Some(16))
            ]
        );
        assert_eq!(
            parsed.packages[3].git.as_ref().unwrap().commit.as_deref(),
            Some("abc123")
        );
        assert_eq!(parsed.skipped.len(), 2);
    }

    #[test]
    fn v1_is_refused_with_a_hint() {
        let err = parse(r#"{"lockfileVersion": 1, "dependencies": {}}"#).unwrap_err();
        assert!(err.contains("npm install --package-lock-only"), "{err}");
        assert!(parse("{").unwrap_err().contains("not valid JSON"));
    }
}
