//! SemVer 2.0 ordering for crates.io and npm. OSV ranges sometimes write a version
//! with fewer than three parts (`1.2`) or `0`; those are padded with zeros.
//! Build metadata is ignored when comparing, as SemVer says.

use std::cmp::Ordering;

/// Parse a SemVer version, accepting a leading `v`/`=` and one- or two-part versions.
pub fn parse(text: &str) -> Result<semver::Version, String> {
    let trimmed = text.trim().trim_start_matches(['v', '=']);
    if let Ok(v) = semver::Version::parse(trimmed) {
        return Ok(v);
    }
    // Pad `1` and `1.2` (the core before any `-pre` or `+build`).
    let split = trimmed.find(['-', '+']).unwrap_or(trimmed.len());
    let (core, rest) = trimmed.split_at(split);
    let parts = core.split('.').count();
    if (1..3).contains(&parts)
        && core
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        let padded = format!("{core}{}{rest}", ".0".repeat(3 - parts));
        if let Ok(v) = semver::Version::parse(&padded) {
            return Ok(v);
        }
    }
    Err(format!("`{text}` is not a SemVer version"))
}

/// SemVer precedence: like `semver::Version`'s order, minus build metadata.
pub fn compare(a: &semver::Version, b: &semver::Version) -> Ordering {
    (a.major, a.minor, a.patch, &a.pre).cmp(&(b.major, b.minor, b.patch, &b.pre))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_short_and_prefixed_versions() {
        assert_eq!(parse("0").unwrap(), semver::Version::new(0, 0, 0));
        assert_eq!(parse("1.2").unwrap(), semver::Version::new(1, 2, 0));
        assert_eq!(parse("v1.2.3").unwrap(), semver::Version::new(1, 2, 3));
        assert_eq!(parse("1.2-rc.1").unwrap().pre.as_str(), "rc.1");
        assert!(parse("1.x").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn prereleases_sort_before_releases_and_build_is_ignored() {
        let v = |s| parse(s).unwrap();
        assert_eq!(compare(&v("0.0.0-0"), &v("0.0.0")), Ordering::Less);
        assert_eq!(
            compare(&v("1.0.0-alpha.2"), &v("1.0.0-alpha.10")),
            Ordering::Less
        );
        assert_eq!(
            compare(&v("1.0.0-alpha.beta"), &v("1.0.0-alpha.1")),
            Ordering::Greater
        );
        assert_eq!(compare(&v("1.0.0+a"), &v("1.0.0+b")), Ordering::Equal);
        assert_eq!(compare(&v("1.6.0"), &v("1.6.1")), Ordering::Less);
    }
}
