//! RubyGems version ordering, as `Gem::Version#<=>` defines it: the version is split
//! into numeric and alphabetic segments (`1.0.0.rc1` → 1, 0, 0, "rc", 1), trailing
//! zeros are dropped, a string segment sorts before any number (so `1.0.a` < `1.0`),
//! and `-` means `.pre.` (`1.0-1` == `1.0.pre.1`).

use std::cmp::Ordering;

/// One segment of a gem version.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Number(u64),
    Text(String),
}

/// A parsed RubyGems version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GemVersion {
    /// The version as written.
    original: String,
    /// Canonical segments: trailing zeros (before any text segment) removed.
    segments: Vec<Segment>,
}

impl GemVersion {
    /// Parse a gem version (`Gem::Version::ANCHORED_VERSION_PATTERN`: digits, letters,
    /// dots and dashes, starting with a digit).
    pub fn parse(text: &str) -> Result<GemVersion, String> {
        let trimmed = text.trim();
        let valid = trimmed.starts_with(|c: char| c.is_ascii_digit())
            && trimmed
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if !valid {
            return Err(format!("`{text}` is not a RubyGems version"));
        }
        let normalized = trimmed.replace('-', ".pre.");
        let mut segments = Vec::new();
        for part in normalized.split('.') {
            // Each dotted part splits further at digit/letter boundaries.
            let mut current = String::new();
            let mut digits = None;
            for c in part.chars() {
                let is_digit = c.is_ascii_digit();
                if digits.is_some_and(|d| d != is_digit) {
                    segments.push(segment(&current));
                    current.clear();
                }
                digits = Some(is_digit);
                current.push(c);
            }
            if !current.is_empty() {
                segments.push(segment(&current));
            }
        }
        // `Gem::Version#canonical_segments`: drop zeros that end the release part and
        // zeros right before the first text segment.
        let first_text = segments
            .iter()
            .position(|s| matches!(s, Segment::Text(_)))
            .unwrap_or(segments.len());
        let (release, pre) = segments.split_at(first_text);
        let mut release = release.to_vec();
        while release.len() > 1 && release.last() == Some(&Segment::Number(0)) {
            release.pop();
        }
        let mut pre = pre.to_vec();
        while pre.last() == Some(&Segment::Number(0)) {
            pre.pop();
        }
        release.extend(pre);
        Ok(GemVersion {
            original: trimmed.to_owned(),
            segments: release,
        })
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.original
    }
}

fn segment(text: &str) -> Segment {
    match text.parse::<u64>() {
        Ok(n) => Segment::Number(n),
        Err(_) => Segment::Text(text.to_owned()),
    }
}

impl PartialOrd for GemVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for GemVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.segments.len().max(other.segments.len());
        for i in 0..len {
            let a = self.segments.get(i).cloned().unwrap_or(Segment::Number(0));
            let b = other.segments.get(i).cloned().unwrap_or(Segment::Number(0));
            let order = match (&a, &b) {
                (Segment::Number(x), Segment::Number(y)) => x.cmp(y),
                (Segment::Text(x), Segment::Text(y)) => x.cmp(y),
                (Segment::Text(_), Segment::Number(_)) => Ordering::Less,
                (Segment::Number(_), Segment::Text(_)) => Ordering::Greater,
            };
            if order != Ordering::Equal {
                return order;
            }
        }
        Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> GemVersion {
        GemVersion::parse(s).unwrap()
    }

    #[test]
    fn gem_version_ordering_matches_rubygems() {
        // Cases from RubyGems' own test_gem_version.rb.
        let ordered = [
            "1.0.a",
            "1.0.b",
            "1.0.rc1",
            "1.0",
            "1.0.1",
            "1.1",
            "1.10",
            "2.0.0.pre",
            "2.0.0",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("1.0").cmp(&v("1.0.0")), Ordering::Equal);
        assert_eq!(v("1.0-1").cmp(&v("1.0.pre.1")), Ordering::Equal);
        assert_eq!(v("5.2.4.3").cmp(&v("5.2.4.10")), Ordering::Less);
        assert_eq!(v("1.8.2.a10").cmp(&v("1.8.2.a9")), Ordering::Greater);
        assert!(GemVersion::parse("junk!").is_err());
        assert!(GemVersion::parse("").is_err());
    }
}
