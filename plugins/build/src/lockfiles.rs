//! The dependency closure a project's lockfiles pin, for the SBOM:
//! - `Cargo.lock` (v3/v4): every `[[package]]` with a `source` (registry or git), its
//!   `checksum` (SHA-256 of the .crate) and its dependency edges; packages without a
//!   source are the workspace's own crates;
//! - `package-lock.json` (lockfileVersion 2 and 3, the `packages` map): every
//!   `node_modules/...` entry, its `integrity` (SRI `sha512-`/`sha256-`/`sha1-`) and
//!   license; `dev` entries are marked so;
//! - `go.sum`: every module version whose source was downloaded (lines without the
//!   `/go.mod` suffix), with its `h1:` hash as a property (it is a hash of a file
//!   list, not of one file, so not a CycloneDX hash). `go.mod`'s `module` line names
//!   the project.

use std::collections::BTreeMap;

/// One pinned package.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    /// `cargo`, `npm` or `golang` (the purl type).
    pub ecosystem: &'static str,
    pub name: String,
    pub version: String,
    /// `(CycloneDX algorithm, hex)`, e.g. `("SHA-256", "3bd1...")`.
    pub hashes: Vec<(String, String)>,
    /// Further facts: `source`, `go-h1`, `license`, `scope`.
    pub properties: BTreeMap<String, String>,
    /// purls of the packages it depends on.
    pub depends_on: Vec<String>,
}

impl Package {
    /// Package URL (purl-spec): `pkg:cargo/serde@1.0.200`, `pkg:npm/%40eslint/js@9.39.5`,
    /// `pkg:golang/github.com/spf13/pflag@v1.0.5`.
    pub fn purl(&self) -> String {
        purl(self.ecosystem, &self.name, &self.version)
    }
}

/// A purl for `name@version` of `ecosystem`.
pub fn purl(ecosystem: &str, name: &str, version: &str) -> String {
    let name = match ecosystem {
        // An npm scope keeps its slash as the namespace separator; `@` is encoded.
        "npm" => name.replacen('@', "%40", 1),
        _ => name.to_owned(),
    };
    format!("pkg:{ecosystem}/{name}@{}", version.replace('+', "%2B"))
}

/// The project's own package, as the lockfile names it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Root {
    pub name: Option<String>,
    pub version: Option<String>,
}

/// Parse `Cargo.lock`. Returns the registry/git packages and the workspace's own
/// crates' names.
pub fn cargo_lock(text: &str) -> Result<(Vec<Package>, Vec<String>), String> {
    #[derive(serde::Deserialize)]
    struct Lock {
        #[serde(default)]
        package: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        name: String,
        version: String,
        source: Option<String>,
        checksum: Option<String>,
        #[serde(default)]
        dependencies: Vec<String>,
    }
    let lock: Lock = toml::from_str(text).map_err(|err| format!("not a Cargo.lock: {err}"))?;
    // A dependency is written `name`, or `name version` when several versions are locked.
    let mut versions: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for entry in &lock.package {
        versions
            .entry(&entry.name)
            .or_default()
            .push(&entry.version);
    }
    let mut packages = Vec::new();
    let mut local = Vec::new();
    for entry in &lock.package {
        let Some(source) = &entry.source else {
            local.push(entry.name.clone());
            continue;
        };
        let depends_on = entry
            .dependencies
            .iter()
            .filter_map(|dependency| {
                let mut words = dependency.split(' ');
                let name = words.next()?;
                let version = match words.next() {
                    Some(version) => version,
                    None => versions.get(name)?.first()?,
                };
                Some(purl("cargo", name, version))
            })
            .collect();
        let mut properties = BTreeMap::new();
        properties.insert("source".to_owned(), source.clone());
        packages.push(Package {
            ecosystem: "cargo",
            name: entry.name.clone(),
            version: entry.version.clone(),
            hashes: entry
                .checksum
                .iter()
                .map(|sum| ("SHA-256".to_owned(), sum.clone()))
                .collect(),
            properties,
            depends_on,
        });
    }
    Ok((packages, local))
}

/// Parse `package-lock.json` (lockfileVersion 2 or 3).
pub fn package_lock(text: &str) -> Result<(Vec<Package>, Root), String> {
    let lock: serde_json::Value =
        serde_json::from_str(text).map_err(|err| format!("not a package-lock.json: {err}"))?;
    let packages = lock["packages"].as_object().ok_or(
        "package-lock.json has no `packages` map (lockfileVersion 1, npm 6): regenerate it with npm 7 or later",
    )?;
    let root = Root {
        name: lock["name"].as_str().map(str::to_owned),
        version: lock["version"].as_str().map(str::to_owned),
    };
    let mut out = Vec::new();
    for (key, entry) in packages {
        let Some(at) = key.rfind("node_modules/") else {
            continue; // "" is the project itself; other keys are workspace folders.
        };
        if entry["link"] == true {
            continue;
        }
        let name = entry["name"]
            .as_str()
            .unwrap_or(&key[at + "node_modules/".len()..])
            .to_owned();
        let Some(version) = entry["version"].as_str() else {
            continue;
        };
        let mut hashes = Vec::new();
        if let Some(integrity) = entry["integrity"].as_str() {
            for sri in integrity.split_whitespace() {
                if let Some((alg, hash)) = sri.split_once('-') {
                    let alg = match alg {
                        "sha512" => "SHA-512",
                        "sha384" => "SHA-384",
                        "sha256" => "SHA-256",
                        "sha1" => "SHA-1",
                        _ => continue,
                    };
                    if let Some(bytes) = base64_decode(hash) {
                        hashes.push((alg.to_owned(), hex(&bytes)));
                    }
                }
            }
        }
        let mut properties = BTreeMap::new();
        if let Some(resolved) = entry["resolved"].as_str() {
            properties.insert("source".to_owned(), resolved.to_owned());
        }
        if let Some(license) = entry["license"].as_str() {
            properties.insert("license".to_owned(), license.to_owned());
        }
        if entry["dev"] == true {
            properties.insert("scope".to_owned(), "dev".to_owned());
        }
        out.push(Package {
            ecosystem: "npm",
            name,
            version: version.to_owned(),
            hashes,
            properties,
            depends_on: Vec::new(),
        });
    }
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    out.dedup_by(|a, b| a.name == b.name && a.version == b.version);
    Ok((out, root))
}

/// Parse `go.sum` (and the module path from `go.mod`, when given).
pub fn go_sum(sum: &str, go_mod: Option<&str>) -> (Vec<Package>, Root) {
    let mut packages = Vec::new();
    for line in sum.lines() {
        let mut words = line.split_whitespace();
        let (Some(module), Some(version), Some(hash)) = (words.next(), words.next(), words.next())
        else {
            continue;
        };
        if version.ends_with("/go.mod") {
            continue;
        }
        let mut properties = BTreeMap::new();
        properties.insert("go-h1".to_owned(), hash.to_owned());
        packages.push(Package {
            ecosystem: "golang",
            name: module.to_owned(),
            version: version.to_owned(),
            hashes: Vec::new(),
            properties,
            depends_on: Vec::new(),
        });
    }
    let name = go_mod.and_then(|text| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix("module "))
            .map(|module| module.trim().trim_matches('"').to_owned())
    });
    (
        packages,
        Root {
            name,
            version: None,
        },
    )
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Standard base64 (with or without padding), as in SRI hashes.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
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
