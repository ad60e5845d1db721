//! `package-lock.json` / `npm-shrinkwrap.json`, lockfileVersion 2 and 3: the `packages`
//! map, keyed by install path (`node_modules/a/node_modules/b`). The root entry (`""`),
//! workspace links (`link: true`) and folders outside `node_modules` (workspace
//! members) are the project's own code and are not scanned. Version 1 files (only the
//! nested `dependencies` tree) are refused with a hint to regenerate them.
//!
//! Each package keeps its `integrity` (SRI hashes, as hex checksums), `license`,
//! `resolved` URL, `dev` flag, and its dependency edges, found the way Node resolves a
//! `require`: the nearest `node_modules/<name>` up the package's install path. The
//! project's own runtime dependencies (`dependencies`, `optionalDependencies`,
//! `peerDependencies` of the root entry) are [`Parsed::direct`].

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{Checksum, ChecksumAlgorithm, GitSource, Package, PackageRef, Parsed, line_of};
use crate::versions::Ecosystem;

/// The dependency maps that are installed for production.
const RUNTIME_DEPENDENCY_KEYS: [&str; 3] =
    ["dependencies", "optionalDependencies", "peerDependencies"];

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
        package.dev = entry.get("dev").and_then(Value::as_bool) == Some(true);
        package.license = entry
            .get("license")
            .and_then(Value::as_str)
            .map(str::to_owned);
        package.checksums = entry
            .get("integrity")
            .and_then(Value::as_str)
            .map(sri_checksums)
            .unwrap_or_default();
        package.dependencies = edges(packages, key, entry);
        if let Some(resolved) = entry.get("resolved").and_then(|r| r.as_str()) {
            package.source = Some(resolved.to_owned());
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
    if let Some(root) = packages.get("") {
        parsed.direct = edges(packages, "", root);
    }
    Ok(parsed)
}

/// The packages `entry` (installed at `key`) depends on at runtime, resolved to the
/// installed copies. A dependency with no installed copy (an optional one for another
/// platform) has no edge.
fn edges(packages: &Map<String, Value>, key: &str, entry: &Value) -> Vec<PackageRef> {
    let mut out = Vec::new();
    for field in RUNTIME_DEPENDENCY_KEYS {
        let Some(names) = entry.get(field).and_then(Value::as_object) else {
            continue;
        };
        for name in names.keys() {
            let Some((found_key, found)) = installed(packages, key, name) else {
                continue;
            };
            let found = match found.get("link").and_then(Value::as_bool) {
                // A link's target entry holds the version (a workspace member).
                Some(true) => match found.get("resolved").and_then(Value::as_str) {
                    Some(target) => match packages.get(target) {
                        Some(target) => target,
                        None => continue,
                    },
                    None => continue,
                },
                _ => found,
            };
            let Some(version) = found.get("version").and_then(Value::as_str) else {
                continue;
            };
            let at = found_key.rfind("node_modules/").map_or(0, |at| at + 13);
            let name = found
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(&found_key[at..]);
            let edge = PackageRef {
                name: name.to_owned(),
                version: version.to_owned(),
            };
            if !out.contains(&edge) {
                out.push(edge);
            }
        }
    }
    out
}

/// Where Node finds `name` from the package installed at `key`: `key/node_modules/name`,
/// then the same from each enclosing install folder, up to the project's own.
fn installed<'a>(
    packages: &'a Map<String, Value>,
    key: &str,
    name: &str,
) -> Option<(&'a String, &'a Value)> {
    let mut base = key.to_owned();
    loop {
        let candidate = if base.is_empty() {
            format!("node_modules/{name}")
        } else {
            format!("{base}/node_modules/{name}")
        };
        if let Some(found) = packages.get_key_value(&candidate) {
            return Some(found);
        }
        if base.is_empty() {
            return None;
        }
        // Up one install folder: `a/node_modules/@s/b` → `a`, `node_modules/x` → ``.
        base = match base.rfind("node_modules/") {
            Some(at) => base[..at].trim_end_matches('/').to_owned(),
            None => String::new(),
        };
    }
}

/// SRI (`sha512-<base64> sha1-<base64>`) as hex checksums; unknown algorithms and
/// undecodable values are left out.
fn sri_checksums(integrity: &str) -> Vec<Checksum> {
    integrity
        .split_whitespace()
        .filter_map(|sri| {
            let (algorithm, value) = sri.split_once('-')?;
            let algorithm = match algorithm {
                "sha512" => ChecksumAlgorithm::Sha512,
                "sha384" => ChecksumAlgorithm::Sha384,
                "sha256" => ChecksumAlgorithm::Sha256,
                "sha1" => ChecksumAlgorithm::Sha1,
                _ => return None,
            };
            Some(Checksum {
                algorithm,
                value: super::hex(&base64_decode(value)?),
            })
        })
        .collect()
}

/// Standard or URL-safe base64, padded or not.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
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
    fn resolves_edges_like_node_and_keeps_dev_flags_and_hashes() {
        let text = r#"{
  "lockfileVersion": 3,
  "packages": {
    "": { "name": "x", "dependencies": { "a": "^1" }, "devDependencies": { "t": "^1" } },
    "node_modules/a": { "version": "1.0.0", "dependencies": { "b": "^2", "c": "^1" },
      "integrity": "sha1-AAECAw==", "license": "MIT" },
    "node_modules/a/node_modules/b": { "version": "2.0.0" },
    "node_modules/b": { "version": "1.0.0", "dev": true },
    "node_modules/c": { "version": "1.0.0" },
    "node_modules/t": { "version": "1.0.0", "dev": true, "dependencies": { "b": "^1" } }
  }
}"#;
        let parsed = parse(text).unwrap();
        let refs = |list: &[PackageRef]| -> Vec<String> {
            list.iter()
                .map(|r| format!("{}@{}", r.name, r.version))
                .collect()
        };
        assert_eq!(refs(&parsed.direct), ["a@1.0.0"]);
        let a = &parsed.packages[0];
        assert_eq!(refs(&a.dependencies), ["b@2.0.0", "c@1.0.0"]);
        assert_eq!(a.checksums[0].value, "00010203");
        assert_eq!(a.license.as_deref(), Some("MIT"));
        let dev: Vec<_> = parsed
            .packages
            .iter()
            .filter(|p| p.dev)
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(dev, ["b", "t"]);
        assert_eq!(refs(&parsed.packages[4].dependencies), ["b@1.0.0"]);
    }

    #[test]
    fn v1_is_refused_with_a_hint() {
        let err = parse(r#"{"lockfileVersion": 1, "dependencies": {}}"#).unwrap_err();
        assert!(err.contains("npm install --package-lock-only"), "{err}");
        assert!(parse("{").unwrap_err().contains("not valid JSON"));
    }
}
