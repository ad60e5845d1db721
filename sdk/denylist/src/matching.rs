//! Matching: which denylist entries a package (with its version and git source) hits.
//!
//! A range expression is one or more alternatives separated by `||`, each a
//! comma-separated list of comparisons (`<`, `<=`, `>`, `>=`, `=`, `==`, `!=`) that
//! must all hold, or `*` for every version: `>=1.0.0, <1.2.5 || =2.0.0`. Versions are
//! compared with the package's ecosystem's ordering.

use std::cmp::Ordering;

use sluice_lockfiles::Package;
use sluice_lockfiles::versions::Ecosystem;

/// One `op version` comparison.
#[derive(Clone, Debug, PartialEq)]
struct Comparison {
    op: &'static str,
    version: String,
}

/// A parsed range expression.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionRange {
    text: String,
    /// Alternatives (OR) of conjunctions (AND).
    alternatives: Vec<Vec<Comparison>>,
}

impl VersionRange {
    /// Parse a range, checking every version against the ecosystem's syntax.
    pub fn parse(text: &str, ecosystem: Ecosystem) -> Result<VersionRange, String> {
        let mut alternatives = Vec::new();
        for alternative in text.split("||") {
            let alternative = alternative.trim();
            if alternative == "*" {
                alternatives.push(Vec::new());
                continue;
            }
            let mut all = Vec::new();
            for part in alternative.split(',') {
                let part = part.trim();
                let op = ["<=", ">=", "==", "!=", "<", ">", "="].into_iter().find(|op| part.starts_with(op)).ok_or_else(|| {
                    format!("version range `{text}`: `{part}` must start with <, <=, >, >=, =, == or != (or use `*`)")
                })?;
                let version = part[op.len()..].trim();
                ecosystem
                    .parse_version(version)
                    .map_err(|e| format!("version range `{text}`: {e}"))?;
                all.push(Comparison {
                    op,
                    version: version.to_owned(),
                });
            }
            alternatives.push(all);
        }
        Ok(VersionRange {
            text: text.to_owned(),
            alternatives,
        })
    }

    /// Does the range contain `version`?
    pub fn contains(&self, ecosystem: Ecosystem, version: &str) -> Result<bool, String> {
        let v = ecosystem.parse_version(version)?;
        for alternative in &self.alternatives {
            let mut all = true;
            for c in alternative {
                let order = v.cmp(&ecosystem.parse_version(&c.version)?);
                let holds = match c.op {
                    "<" => order == Ordering::Less,
                    "<=" => order != Ordering::Greater,
                    ">" => order == Ordering::Greater,
                    ">=" => order != Ordering::Less,
                    "!=" => order != Ordering::Equal,
                    _ => order == Ordering::Equal,
                };
                if !holds {
                    all = false;
                    break;
                }
            }
            if all {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A package-url without version: `pkg:npm/%40scope/name`, `pkg:cargo/regex`.
#[derive(Clone, Debug, PartialEq)]
pub struct PackageSelector {
    /// The purl as written.
    pub purl: String,
    /// Its ecosystem.
    pub ecosystem: Ecosystem,
    /// Normalized package name.
    pub name: String,
}

impl PackageSelector {
    /// Parse a package-url of a supported type. A version in the purl is refused (put it
    /// in `versions`).
    pub fn parse(purl: &str) -> Result<PackageSelector, String> {
        let rest = purl
            .strip_prefix("pkg:")
            .ok_or_else(|| format!("`{purl}` is not a package-url: it must start with `pkg:`"))?;
        let rest = rest.split(['?', '#']).next().unwrap_or(rest);
        let (kind, path) = rest
            .split_once('/')
            .ok_or_else(|| format!("`{purl}` has no name after its type"))?;
        let ecosystem = Ecosystem::from_purl_type(kind).ok_or_else(|| {
            format!("`{purl}`: type `{kind}` is not one of cargo, npm, pypi, golang, gem")
        })?;
        if path
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains('@'))
        {
            return Err(format!(
                "`{purl}`: give the versions in `versions`, not in the package-url"
            ));
        }
        let name = path
            .replace("%40", "@")
            .replace("%2F", "/")
            .replace("%2f", "/");
        Ok(PackageSelector {
            purl: purl.to_owned(),
            ecosystem,
            name: ecosystem.normalize_name(&name),
        })
    }

    /// Is this the package?
    pub fn selects(&self, package: &Package) -> bool {
        package.ecosystem == self.ecosystem
            && self.ecosystem.normalize_name(&package.name) == self.name
    }
}

/// A blocked package range.
#[derive(Clone, Debug)]
pub struct PackageEntry {
    /// Which package.
    pub selector: PackageSelector,
    /// Which versions.
    pub versions: VersionRange,
    /// Why.
    pub reason: String,
}

/// A blocked git reference.
#[derive(Clone, Debug)]
pub struct GitRefEntry {
    /// Repository URL (compared without scheme, user, `.git` suffix and case).
    pub repo: String,
    /// A commit (full or a prefix of at least 7 hex digits), branch or tag.
    pub reference: String,
    /// Why.
    pub reason: String,
}

/// What matched, for a finding.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// Rule-id suffix: `package/<purl>` or `git-ref/<repo>@<ref>`.
    pub entry: String,
    /// The entry's reason.
    pub reason: String,
    /// The range or ref that matched.
    pub matched: String,
}

/// Reduce a repository URL to `host/path` for comparison.
pub fn normalize_repo(url: &str) -> String {
    let url = url.trim().to_ascii_lowercase();
    let url = url.strip_prefix("git+").unwrap_or(&url);
    let url = url.split_once("://").map_or(url, |(_, rest)| rest);
    let url = url
        .split_once('@')
        .filter(|(user, _)| !user.contains('/'))
        .map_or(url, |(_, rest)| rest);
    let url = url.replacen(':', "/", 1);
    let url = url
        .split(['?', '#'])
        .next()
        .unwrap_or(&url)
        .trim_end_matches('/');
    url.strip_suffix(".git").unwrap_or(url).to_owned()
}

/// The denylist entries a package hits.
pub fn check(package: &Package, packages: &[PackageEntry], git_refs: &[GitRefEntry]) -> Vec<Hit> {
    let mut hits = Vec::new();
    for entry in packages {
        // A version that does not parse cannot be judged: treat it as inside the range,
        // since a denylist must fail closed.
        if entry.selector.selects(package)
            && entry
                .versions
                .contains(package.ecosystem, &package.version)
                .unwrap_or(true)
        {
            hits.push(Hit {
                entry: format!("package/{}", entry.selector.purl),
                reason: entry.reason.clone(),
                matched: format!(
                    "{} {} is in `{}`",
                    package.name,
                    package.version,
                    entry.versions.as_str()
                ),
            });
        }
    }
    if let Some(git) = &package.git {
        let repo = normalize_repo(&git.repo);
        for entry in git_refs {
            if normalize_repo(&entry.repo) != repo {
                continue;
            }
            let wanted = entry.reference.to_ascii_lowercase();
            let commit_hit = git
                .commit
                .as_deref()
                .is_some_and(|c| wanted.len() >= 7 && c.to_ascii_lowercase().starts_with(&wanted));
            let ref_hit = git
                .reference
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(&entry.reference));
            if commit_hit || ref_hit {
                hits.push(Hit {
                    entry: format!("git-ref/{}@{}", repo, entry.reference),
                    reason: entry.reason.clone(),
                    matched: format!(
                        "{} comes from {} at {}",
                        package.name,
                        git.repo,
                        git.commit
                            .as_deref()
                            .or(git.reference.as_deref())
                            .unwrap_or("?")
                    ),
                });
            }
        }
    }
    hits
}

/// The package a versioned package-url names (`pkg:npm/%40scope/name@1.2.3`, as an SBOM
/// component's `purl` gives it), for [`check`]. Qualifiers and subpath are dropped;
/// `%xx` escapes in the name and version are decoded.
pub fn package_of_purl(purl: &str) -> Result<Package, String> {
    let rest = purl
        .strip_prefix("pkg:")
        .ok_or_else(|| format!("`{purl}` is not a package-url: it must start with `pkg:`"))?;
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let (kind, path) = rest
        .split_once('/')
        .ok_or_else(|| format!("`{purl}` has no name after its type"))?;
    let ecosystem = Ecosystem::from_purl_type(kind).ok_or_else(|| {
        format!("`{purl}`: type `{kind}` is not one of cargo, npm, pypi, golang, gem")
    })?;
    // The version follows the last `@` of the last path segment (an npm scope's `@`
    // is escaped as `%40`, and sits in an earlier segment anyway).
    let last_segment = path.rfind('/').map_or(0, |i| i + 1);
    let at = path[last_segment..]
        .rfind('@')
        .map(|i| last_segment + i)
        .ok_or_else(|| format!("`{purl}` has no version (`@version`)"))?;
    let (name, version) = (&path[..at], &path[at + 1..]);
    if name.is_empty() || version.is_empty() {
        return Err(format!("`{purl}` has an empty name or version"));
    }
    Ok(Package::new(
        ecosystem,
        percent_decode(name),
        percent_decode(version),
        None,
    ))
}

/// Decode `%xx` escapes; anything else, malformed escapes included, is kept as is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_lockfiles::GitSource;

    #[test]
    fn ranges() {
        let r = VersionRange::parse(">=1.0.0, <1.2.5 || =2.0.0", Ecosystem::Npm).unwrap();
        for (v, want) in [
            ("0.9.9", false),
            ("1.0.0", true),
            ("1.2.4", true),
            ("1.2.5", false),
            ("2.0.0", true),
            ("2.0.1", false),
        ] {
            assert_eq!(r.contains(Ecosystem::Npm, v), Ok(want), "{v}");
        }
        assert!(
            VersionRange::parse("*", Ecosystem::PyPI)
                .unwrap()
                .contains(Ecosystem::PyPI, "0.1")
                .unwrap()
        );
        let py = VersionRange::parse("<2.11", Ecosystem::PyPI).unwrap();
        assert!(py.contains(Ecosystem::PyPI, "2.10").unwrap());
        assert!(!py.contains(Ecosystem::PyPI, "2.11.0").unwrap());
        assert!(
            VersionRange::parse("~1.0", Ecosystem::Npm)
                .unwrap_err()
                .contains("must start with")
        );
        assert!(VersionRange::parse("<banana", Ecosystem::CratesIo).is_err());
    }

    #[test]
    fn purls() {
        let s = PackageSelector::parse("pkg:npm/%40babel/core").unwrap();
        assert_eq!(
            (s.ecosystem, s.name.as_str()),
            (Ecosystem::Npm, "@babel/core")
        );
        assert_eq!(
            PackageSelector::parse("pkg:pypi/Jinja2").unwrap().name,
            "jinja2"
        );
        assert!(
            PackageSelector::parse("npm/x")
                .unwrap_err()
                .contains("pkg:")
        );
        assert!(
            PackageSelector::parse("pkg:maven/a/b")
                .unwrap_err()
                .contains("not one of")
        );
        assert!(
            PackageSelector::parse("pkg:npm/lodash@4.17.15")
                .unwrap_err()
                .contains("versions")
        );
    }

    #[test]
    fn package_and_git_hits() {
        let entries = [PackageEntry {
            selector: PackageSelector::parse("pkg:cargo/regex").unwrap(),
            versions: VersionRange::parse("<1.5.5", Ecosystem::CratesIo).unwrap(),
            reason: "ReDoS".into(),
        }];
        let refs = [GitRefEntry {
            repo: "https://github.com/Evil/Thing".into(),
            reference: "deadbeef1".into(),
            reason: "compromised".into(),
        }];
        let old = Package::new(Ecosystem::CratesIo, "regex", "1.5.4", Some(3));
        let new = Package::new(Ecosystem::CratesIo, "regex", "1.5.5", Some(3));
        assert_eq!(check(&old, &entries, &refs).len(), 1);
        assert!(check(&new, &entries, &refs).is_empty());
        let mut git = Package::new(Ecosystem::CratesIo, "thing", "0.1.0", None);
        git.git = Some(GitSource {
            repo: "git+ssh://git@github.com/evil/thing.git".into(),
            reference: None,
            commit: Some("DEADBEEF1234".into()),
        });
        let hits = check(&git, &entries, &refs);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].entry, "git-ref/github.com/evil/thing@deadbeef1");
        git.git.as_mut().unwrap().commit = Some("0123456789".into());
        assert!(check(&git, &entries, &refs).is_empty());
    }

    #[test]
    fn versioned_purls_of_sbom_components() {
        let p = package_of_purl("pkg:npm/%40babel/core@7.0.0").unwrap();
        assert_eq!(
            (p.ecosystem, p.name.as_str(), p.version.as_str()),
            (Ecosystem::Npm, "@babel/core", "7.0.0")
        );
        let p = package_of_purl("pkg:cargo/regex@1.5.4?checksum=sha256:ab").unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str()), ("regex", "1.5.4"));
        let p = package_of_purl("pkg:golang/github.com/a/b@v1.2.3%2Bincompatible").unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_str()),
            ("github.com/a/b", "v1.2.3+incompatible")
        );
        assert!(
            package_of_purl("pkg:npm/left-pad")
                .unwrap_err()
                .contains("no version")
        );
        assert!(
            package_of_purl("pkg:maven/a/b@1")
                .unwrap_err()
                .contains("not one of")
        );
    }

    #[test]
    fn repo_normalization() {
        assert_eq!(normalize_repo("git@github.com:o/r.git"), "github.com/o/r");
        assert_eq!(normalize_repo("https://GitHub.com/o/r/"), "github.com/o/r");
        assert_eq!(
            normalize_repo("git+https://github.com/o/r?branch=x#abc"),
            "github.com/o/r"
        );
    }
}
