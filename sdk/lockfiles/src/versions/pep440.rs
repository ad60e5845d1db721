//! PEP 440 versions for PyPI, through `pep440_rs` (epochs, pre/post/dev releases, local
//! versions, normalization such as `1.0RC1` == `1.0rc1`).

use std::str::FromStr;

/// Parse a PEP 440 version.
pub fn parse(text: &str) -> Result<pep440_rs::Version, String> {
    pep440_rs::Version::from_str(text.trim())
        .map_err(|e| format!("`{text}` is not a PEP 440 version: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep440_ordering() {
        let v = |s| parse(s).unwrap();
        let ordered = [
            "1.0.dev1",
            "1.0a1",
            "1.0b2",
            "1.0rc1",
            "1.0",
            "1.0.post1",
            "1.1",
            "1!0.1",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("1.0RC1"), v("1.0rc1"));
        assert_eq!(v("2.10"), v("2.10.0"));
        assert!(parse("not-a-version!").is_err());
    }
}
