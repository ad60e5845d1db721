//! `pnpm-lock.yaml`, lockfileVersion 5.x (`/name/1.0.0`), 6.x (`/name@1.0.0`) and 9.x
//! (`name@1.0.0`), from its `packages` map. Peer-dependency suffixes (`(react@18)` or
//! `_react@18`) are dropped. Entries that are tarball URLs, links or local files are
//! not scanned.

use super::{Package, Parsed, unquote};
use crate::versions::Ecosystem;

/// Parse a pnpm-lock.yaml.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let lockfile_version = match doc.get("lockfileVersion") {
        Some(serde_yaml_ng::Value::String(s)) => s.clone(),
        Some(serde_yaml_ng::Value::Number(n)) => n.to_string(),
        _ => return Err("no `lockfileVersion`: is this a pnpm-lock.yaml?".into()),
    };
    let major: u32 = lockfile_version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("unreadable lockfileVersion `{lockfile_version}`"))?;
    let mut parsed = Parsed::default();
    let Some(packages) = doc.get("packages").and_then(|p| p.as_mapping()) else {
        return Ok(parsed);
    };
    let lines = key_lines(text);
    for (key, entry) in packages {
        let Some(key) = key.as_str() else { continue };
        let line = lines.iter().find(|(k, _)| k == key).map(|(_, l)| *l);
        let Some((name, version)) = split_key(key, major) else {
            parsed
                .skipped
                .push(format!("{key}: not a registry package"));
            continue;
        };
        // Entries with a `version` field (tarballs, git) override the key's.
        let version = entry
            .get("version")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .unwrap_or(version);
        let name = entry
            .get("name")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .unwrap_or(name);
        parsed
            .packages
            .push(Package::new(Ecosystem::Npm, name, version, line));
    }
    Ok(parsed)
}

/// `(name, version)` of a `packages` key.
fn split_key(key: &str, major: u32) -> Option<(String, String)> {
    if key.contains(':') && !key.starts_with('/') && major < 9
        || key.starts_with("file:")
        || key.starts_with("link:")
        || key.contains("://")
    {
        return None;
    }
    let key = key.strip_prefix('/').unwrap_or(key);
    let key = key.split('(').next().unwrap_or(key);
    let (name, version) = if major >= 6 {
        let at = key[1..].rfind('@')? + 1;
        (&key[..at], &key[at + 1..])
    } else {
        let slash = key.rfind('/')?;
        let version = &key[slash + 1..];
        (&key[..slash], version.split('_').next().unwrap_or(version))
    };
    if name.is_empty() || version.is_empty() || !version.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some((name.to_owned(), version.to_owned()))
}

/// The line of each key directly under the top-level `packages:` map.
fn key_lines(text: &str) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let mut inside = false;
    for (index, line) in text.lines().enumerate() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            inside = line.trim_end() == "packages:";
            continue;
        }
        if inside
            && line.starts_with("  ")
            && !line.starts_with("   ")
            && line.trim_end().ends_with(':')
        {
            let key = unquote(line.trim().trim_end_matches(':')).to_owned();
            out.push((key, u32::try_from(index + 1).unwrap_or(u32::MAX)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_each_lockfile_version() {
        assert_eq!(
            split_key("/lodash/4.17.15", 5),
            Some(("lodash".into(), "4.17.15".into()))
        );
        assert_eq!(
            split_key("/@babel/core/7.0.0_react@18.0.0", 5),
            Some(("@babel/core".into(), "7.0.0".into()))
        );
        assert_eq!(
            split_key("/@babel/core@7.0.0(react@18.0.0)", 6),
            Some(("@babel/core".into(), "7.0.0".into()))
        );
        assert_eq!(
            split_key("lodash@4.17.15", 9),
            Some(("lodash".into(), "4.17.15".into()))
        );
        assert_eq!(split_key("foo@file:../foo", 9), None);
    }

    #[test]
    fn reads_packages_with_lines() {
        let text = "lockfileVersion: '9.0'\n\nimporters:\n  .: {}\n\npackages:\n\n  '@s/a@1.0.0':\n    resolution: {integrity: x}\n\n  b@2.0.0:\n    resolution: {integrity: y}\n\nsnapshots:\n\n  b@2.0.0: {}\n";
        let parsed = parse(text).unwrap();
        assert_eq!(
            parsed.packages,
            [
                Package::new(Ecosystem::Npm, "@s/a", "1.0.0", Some(8)),
                Package::new(Ecosystem::Npm, "b", "2.0.0", Some(11))
            ]
        );
        assert!(parse("a: [").unwrap_err().contains("YAML"));
    }
}
