//! Go module versions: SemVer with a mandatory `v` prefix in go.mod (OSV drops it) and an
//! optional `+incompatible` suffix, which does not take part in ordering. Pseudo-versions
//! (`v0.0.0-20191109021931-daa7c04131f5`) are SemVer pre-releases and order correctly.

/// Parse a Go module version, with or without its `v`.
pub fn parse(text: &str) -> Result<semver::Version, String> {
    let trimmed = text.trim();
    let bare = trimmed.strip_prefix('v').unwrap_or(trimmed);
    let bare = bare.strip_suffix("+incompatible").unwrap_or(bare);
    super::semver::parse(bare).map_err(|_| format!("`{text}` is not a Go module version"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn go_versions() {
        let v = |s| parse(s).unwrap();
        assert_eq!(v("v2.0.0+incompatible"), semver::Version::new(2, 0, 0));
        let pseudo = v("v0.0.0-20191109021931-daa7c04131f5");
        assert_eq!(
            super::super::semver::compare(&pseudo, &v("0.0.1")),
            Ordering::Less
        );
        assert_eq!(
            super::super::semver::compare(&v("v0.3.7"), &v("0.3.8")),
            Ordering::Less
        );
        assert!(parse("master").is_err());
    }
}
