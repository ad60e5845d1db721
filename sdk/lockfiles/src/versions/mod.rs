//! Version orderings, one per ecosystem: what "1.2.3 < 1.10" means differs between
//! crates.io/npm (SemVer), PyPI (PEP 440), Go (SemVer with a `v` prefix and
//! `+incompatible`) and RubyGems (`Gem::Version`).

pub mod go;
pub mod pep440;
pub mod rubygems;
pub mod semver;

use std::cmp::Ordering;
use std::fmt;

/// A package ecosystem, named as OSV names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ecosystem {
    /// Rust crates (`crates.io`).
    CratesIo,
    /// JavaScript packages (`npm`).
    Npm,
    /// Python packages (`PyPI`).
    PyPI,
    /// Go modules (`Go`).
    Go,
    /// Ruby gems (`RubyGems`).
    RubyGems,
}

impl Ecosystem {
    /// Every supported ecosystem.
    pub const ALL: [Ecosystem; 5] = [
        Ecosystem::CratesIo,
        Ecosystem::Npm,
        Ecosystem::PyPI,
        Ecosystem::Go,
        Ecosystem::RubyGems,
    ];

    /// The ecosystem's name in OSV records (`affected[].package.ecosystem`).
    pub fn osv_name(self) -> &'static str {
        match self {
            Ecosystem::CratesIo => "crates.io",
            Ecosystem::Npm => "npm",
            Ecosystem::PyPI => "PyPI",
            Ecosystem::Go => "Go",
            Ecosystem::RubyGems => "RubyGems",
        }
    }

    /// Parse an OSV ecosystem name; `None` for ecosystems this scanner does not read.
    /// A suffix such as `Debian:12` is not one of ours either.
    pub fn from_osv(name: &str) -> Option<Ecosystem> {
        Ecosystem::ALL.into_iter().find(|e| e.osv_name() == name)
    }

    /// The package-url type (`pkg:<type>/...`).
    pub fn purl_type(self) -> &'static str {
        match self {
            Ecosystem::CratesIo => "cargo",
            Ecosystem::Npm => "npm",
            Ecosystem::PyPI => "pypi",
            Ecosystem::Go => "golang",
            Ecosystem::RubyGems => "gem",
        }
    }

    /// The ecosystem of a package-url type.
    pub fn from_purl_type(kind: &str) -> Option<Ecosystem> {
        Ecosystem::ALL.into_iter().find(|e| e.purl_type() == kind)
    }

    /// The package name as the ecosystem compares it: PyPI names are case-insensitive
    /// and treat runs of `-`, `_` and `.` alike (PEP 503); the others are exact.
    pub fn normalize_name(self, name: &str) -> String {
        match self {
            Ecosystem::PyPI => {
                let mut out = String::with_capacity(name.len());
                let mut last_sep = false;
                for c in name.chars() {
                    if matches!(c, '-' | '_' | '.') {
                        if !last_sep {
                            out.push('-');
                        }
                        last_sep = true;
                    } else {
                        out.push(c.to_ascii_lowercase());
                        last_sep = false;
                    }
                }
                out
            }
            Ecosystem::RubyGems | Ecosystem::CratesIo | Ecosystem::Npm | Ecosystem::Go => {
                name.to_owned()
            }
        }
    }

    /// The package-url of `name` at `version`.
    pub fn purl(self, name: &str, version: &str) -> String {
        let name = match self {
            Ecosystem::Npm if name.starts_with('@') => name.replacen('@', "%40", 1),
            Ecosystem::PyPI => self.normalize_name(name),
            _ => name.to_owned(),
        };
        format!("pkg:{}/{}@{}", self.purl_type(), name, version)
    }

    /// Parse a version in this ecosystem's syntax.
    pub fn parse_version(self, text: &str) -> Result<Version, String> {
        match self {
            Ecosystem::CratesIo | Ecosystem::Npm => semver::parse(text).map(Version::SemVer),
            Ecosystem::Go => go::parse(text).map(Version::SemVer),
            Ecosystem::PyPI => pep440::parse(text).map(|v| Version::Pep440(Box::new(v))),
            Ecosystem::RubyGems => rubygems::GemVersion::parse(text).map(Version::Gem),
        }
    }

    /// Compare two versions of this ecosystem; an error names the one that is invalid.
    pub fn compare(self, a: &str, b: &str) -> Result<Ordering, String> {
        Ok(self.parse_version(a)?.cmp(&self.parse_version(b)?))
    }
}

impl fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.osv_name())
    }
}

/// A parsed version of some ecosystem. Versions of one ecosystem are totally ordered;
/// comparing versions of different ecosystems orders by ecosystem kind (never done by
/// the scanner, but it keeps `Ord` total).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Version {
    /// crates.io, npm and Go.
    SemVer(::semver::Version),
    /// PyPI.
    Pep440(Box<pep440_rs::Version>),
    /// RubyGems.
    Gem(rubygems::GemVersion),
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Version::SemVer(a), Version::SemVer(b)) => semver::compare(a, b),
            (Version::Pep440(a), Version::Pep440(b)) => a.cmp(b),
            (Version::Gem(a), Version::Gem(b)) => a.cmp(b),
            (a, b) => a.rank().cmp(&b.rank()),
        }
    }
}

impl Version {
    fn rank(&self) -> u8 {
        match self {
            Version::SemVer(_) => 0,
            Version::Pep440(_) => 1,
            Version::Gem(_) => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecosystem_names_round_trip() {
        for e in Ecosystem::ALL {
            assert_eq!(Ecosystem::from_osv(e.osv_name()), Some(e));
            assert_eq!(Ecosystem::from_purl_type(e.purl_type()), Some(e));
        }
        assert_eq!(Ecosystem::from_osv("Debian:12"), None);
    }

    #[test]
    fn pypi_names_are_normalized() {
        assert_eq!(Ecosystem::PyPI.normalize_name("Jinja2"), "jinja2");
        assert_eq!(
            Ecosystem::PyPI.normalize_name("zope.interface"),
            "zope-interface"
        );
        assert_eq!(Ecosystem::PyPI.normalize_name("A__b-.c"), "a-b-c");
        assert_eq!(Ecosystem::Npm.normalize_name("JSON"), "JSON");
    }

    #[test]
    fn purls() {
        assert_eq!(
            Ecosystem::Npm.purl("@babel/core", "7.0.0"),
            "pkg:npm/%40babel/core@7.0.0"
        );
        assert_eq!(
            Ecosystem::CratesIo.purl("regex", "1.5.4"),
            "pkg:cargo/regex@1.5.4"
        );
        assert_eq!(
            Ecosystem::PyPI.purl("Jinja2", "2.10"),
            "pkg:pypi/jinja2@2.10"
        );
    }

    #[test]
    fn each_ecosystem_orders_its_own_way() {
        use Ordering::*;
        assert_eq!(Ecosystem::CratesIo.compare("1.10.0", "1.9.0"), Ok(Greater));
        assert_eq!(Ecosystem::Npm.compare("1.0.0-alpha", "1.0.0"), Ok(Less));
        assert_eq!(Ecosystem::PyPI.compare("1.0rc1", "1.0"), Ok(Less));
        assert_eq!(Ecosystem::PyPI.compare("1.0.post1", "1.0"), Ok(Greater));
        assert_eq!(Ecosystem::Go.compare("v1.2.3", "1.2.3"), Ok(Equal));
        assert_eq!(Ecosystem::RubyGems.compare("1.0.a", "1.0"), Ok(Less));
        assert!(
            Ecosystem::CratesIo
                .compare("not a version", "1.0.0")
                .is_err()
        );
    }
}
