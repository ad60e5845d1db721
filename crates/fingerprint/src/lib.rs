//! The finding fingerprint of the `sluice:plugin` contract: the one implementation of the
//! algorithm that the doc comment of `finding.fingerprint` in `wit/plugin.wit` states.
//! The runner fills every fingerprint a plugin left empty with it, and the Rust SDK
//! fills its findings' with it, so that one finding has one identity whatever the
//! language of the plugin that reported it. `tests/vectors.json` holds inputs and
//! expected fingerprints for the helpers of the other languages to check against.
//!
//! A fingerprint is `<hash>:<occurrence>` (GitHub's `primaryLocationLineHash` has the
//! same shape):
//! - `hash` is 64-bit FNV-1a ([`hash`]) of the finding's rule id, path and the text of
//!   its line with all whitespace removed (so re-indenting keeps it, and so does moving
//!   the line) ([`line_hash`]); when that line cannot be had (no location, no line, a
//!   file the caller cannot read, a line past the end of the file) the message takes
//!   the place of the line text ([`message_hash`]);
//! - `occurrence` counts from 1, in file order (line, then column), the findings that
//!   share that hash: two identical lines with the same finding are `…:1` and `…:2`.
//!
//! The crate is pure: [`fingerprints`] asks its caller for a file's bytes, and the
//! caller decides which files may be read (the runner: only inside the step's grants;
//! the SDK: whatever the plugin itself can read, which is the same).

#![deny(missing_docs)]

use std::collections::HashMap;

/// The most bytes of a source file the algorithm reads: a longer file counts as
/// unreadable (its findings take the message fallback). Readers should stop there.
pub const MAX_SOURCE_BYTES: usize = 64 << 20;

/// The characters removed from a line before it is hashed: Unicode's `White_Space`
/// property (what Rust's `char::is_whitespace` tests), spelled out for other languages,
/// whose "space" tests differ (Python's `str.isspace` also takes U+001C..U+001F, a
/// JavaScript `\s` takes U+FEFF and not U+0085).
pub const WHITESPACE: &[char] = &[
    '\u{0009}', '\u{000A}', '\u{000B}', '\u{000C}', '\u{000D}', '\u{0020}', '\u{0085}', '\u{00A0}',
    '\u{1680}', '\u{2000}', '\u{2001}', '\u{2002}', '\u{2003}', '\u{2004}', '\u{2005}', '\u{2006}',
    '\u{2007}', '\u{2008}', '\u{2009}', '\u{200A}', '\u{2028}', '\u{2029}', '\u{202F}', '\u{205F}',
    '\u{3000}',
];

/// 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3) of `parts`
/// joined by one 0xff byte (a byte UTF-8 text never contains, so `("ab", "c")` and
/// `("a", "bc")` differ), as 16 lowercase hex digits.
pub fn hash(parts: &[&[u8]]) -> String {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            hash ^= 0xff;
            hash = hash.wrapping_mul(PRIME);
        }
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    format!("{hash:016x}")
}

/// A source line as it enters the hash: every [`WHITESPACE`] character removed.
pub fn normalize_line(line: &str) -> String {
    line.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The hash part of the fingerprint of a finding of `rule_id` in `path` whose line
/// reads `line_text`: the parts are the ASCII word `line`, the rule id, the path and
/// the normalized line.
pub fn line_hash(rule_id: &str, path: &str, line_text: &str) -> String {
    hash(&[
        b"line",
        rule_id.as_bytes(),
        path.as_bytes(),
        normalize_line(line_text).as_bytes(),
    ])
}

/// The hash part when the finding's line cannot be had: the ASCII word `message`, the
/// rule id, the path (empty without a location) and the message.
pub fn message_hash(rule_id: &str, path: Option<&str>, message: &str) -> String {
    hash(&[
        b"message",
        rule_id.as_bytes(),
        path.unwrap_or("").as_bytes(),
        message.as_bytes(),
    ])
}

/// What the algorithm needs of one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FindingKey<'a> {
    /// The finding's `rule-id`.
    pub rule_id: &'a str,
    /// The finding's `message`.
    pub message: &'a str,
    /// Its location's `path`, when it has a location.
    pub path: Option<&'a str>,
    /// Its location's 1-based `line`, when known.
    pub line: Option<u32>,
    /// Its location's 1-based `column`, when known.
    pub column: Option<u32>,
}

/// The fingerprints of `findings` (the findings of one report that carry none of their
/// own, in report order), one per finding in the same order.
///
/// `read` is asked for the bytes of each path a finding with a line of 1 or more
/// points into (once per path, the path exactly as the finding gave it: the caller
/// resolves a relative one against the pipeline's folder); `None` means the file cannot
/// be read, and its findings take the message fallback, as do files longer than
/// [`MAX_SOURCE_BYTES`]. Only one file's bytes are held at a time.
pub fn fingerprints(
    findings: &[FindingKey<'_>],
    mut read: impl FnMut(&str) -> Option<Vec<u8>>,
) -> Vec<String> {
    // The line text of each finding that has one, file by file.
    let mut line_texts: Vec<Option<String>> = vec![None; findings.len()];
    let mut by_path: Vec<(&str, Vec<usize>)> = Vec::new();
    for (index, finding) in findings.iter().enumerate() {
        let (Some(path), Some(1..)) = (finding.path, finding.line) else {
            continue;
        };
        match by_path.iter_mut().find(|(known, _)| *known == path) {
            Some((_, indexes)) => indexes.push(index),
            None => by_path.push((path, vec![index])),
        }
    }
    for (path, indexes) in by_path {
        let Some(bytes) = read(path).filter(|bytes| bytes.len() <= MAX_SOURCE_BYTES) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text
            .split('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .collect();
        for index in indexes {
            let wanted = findings[index]
                .line
                .and_then(|line| usize::try_from(line).ok())
                .and_then(|line| line.checked_sub(1));
            line_texts[index] = wanted
                .and_then(|line| lines.get(line))
                .map(|line| (*line).to_owned());
        }
    }

    let hashes: Vec<String> = findings
        .iter()
        .zip(&line_texts)
        .map(|(finding, text)| match (finding.path, text) {
            (Some(path), Some(text)) => line_hash(finding.rule_id, path, text),
            _ => message_hash(finding.rule_id, finding.path, finding.message),
        })
        .collect();
    // File order, so that the occurrence does not depend on how the tool sorted its
    // output (severity, rule, …); the sort is stable, so ties keep report order.
    let mut order: Vec<usize> = (0..findings.len()).collect();
    order.sort_by_key(|&index| {
        let finding = &findings[index];
        (finding.line.unwrap_or(0), finding.column.unwrap_or(0))
    });
    let mut occurrences: HashMap<&str, u32> = HashMap::new();
    let mut result = vec![String::new(); findings.len()];
    for index in order {
        let count = occurrences.entry(hashes[index].as_str()).or_insert(0);
        *count += 1;
        result[index] = format!("{}:{count}", hashes[index]);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(rule: &'a str, path: &'a str, line: u32, column: u32) -> FindingKey<'a> {
        FindingKey {
            rule_id: rule,
            message: "unneeded `return` statement",
            path: Some(path),
            line: Some(line),
            column: Some(column),
        }
    }

    const SOURCE: &str = "fn a() -> i32 {\n    return 1;\n}\nfn b() -> i32 {\n    return 1;\n}\nfn c() -> i32 {\n\treturn 2;\n}\n";

    fn reader(text: &str) -> impl FnMut(&str) -> Option<Vec<u8>> + '_ {
        move |path| (path == "src/lib.rs").then(|| text.as_bytes().to_vec())
    }

    #[test]
    fn repeated_findings_in_one_file_are_told_apart_in_file_order() {
        let prints = fingerprints(
            &[
                key("clippy::needless_return", "src/lib.rs", 5, 5),
                key("clippy::needless_return", "src/lib.rs", 2, 5),
                key("clippy::needless_return", "src/lib.rs", 8, 2),
            ],
            reader(SOURCE),
        );
        let (hash_b, count_b) = prints[0].split_once(':').unwrap();
        let (hash_a, count_a) = prints[1].split_once(':').unwrap();
        assert_eq!((hash_a, count_a, count_b), (hash_b, "1", "2"));
        assert_ne!(prints[2].split_once(':').unwrap().0, hash_a);
    }

    #[test]
    fn inserting_lines_above_keeps_the_fingerprint() {
        let moved = format!("// a comment\nuse std::fmt;\n\n{SOURCE}");
        let old = fingerprints(
            &[key("r", "src/lib.rs", 2, 5), key("r", "src/lib.rs", 8, 2)],
            reader(SOURCE),
        );
        let new = fingerprints(
            &[key("r", "src/lib.rs", 5, 5), key("r", "src/lib.rs", 11, 2)],
            reader(&moved),
        );
        assert_eq!(old, new);
        assert_ne!(old[0], old[1]);
    }

    #[test]
    fn reindenting_keeps_the_fingerprint() {
        assert_eq!(
            line_hash("r", "a.rs", "    return 1;"),
            line_hash("r", "a.rs", "\treturn  1 ;\u{3000}")
        );
        assert_ne!(
            line_hash("r", "a.rs", "return 1;"),
            line_hash("r", "b.rs", "return 1;")
        );
    }

    #[test]
    fn whitespace_is_exactly_the_white_space_property() {
        let listed: String = WHITESPACE.iter().collect();
        assert_eq!(normalize_line(&listed), "");
        let all_whitespace = (0..=0x10_FFFF_u32)
            .filter_map(char::from_u32)
            .filter(|c| c.is_whitespace())
            .collect::<Vec<_>>();
        assert_eq!(all_whitespace, WHITESPACE);
    }

    #[test]
    fn unreadable_files_fall_back_to_the_message_and_stay_unique() {
        let same = |path, line| FindingKey {
            rule_id: "r",
            message: "same",
            path,
            line,
            column: Some(1),
        };
        let prints = fingerprints(
            &[
                same(Some("missing/file.rs"), Some(3)),
                same(Some("missing/file.rs"), Some(1)),
                same(None, None),
            ],
            |_| None,
        );
        let hash = message_hash("r", Some("missing/file.rs"), "same");
        assert_eq!(prints[1], format!("{hash}:1"));
        assert_eq!(prints[0], format!("{hash}:2"));
        assert_eq!(prints[2], format!("{}:1", message_hash("r", None, "same")));
    }

    #[test]
    fn each_file_is_read_once() {
        let mut reads = Vec::new();
        fingerprints(
            &[key("r", "src/lib.rs", 2, 5), key("r", "src/lib.rs", 5, 5)],
            |path| {
                reads.push(path.to_owned());
                Some(SOURCE.as_bytes().to_vec())
            },
        );
        assert_eq!(reads, ["src/lib.rs"]);
    }

    #[test]
    fn a_file_past_the_size_bound_counts_as_unreadable() {
        let prints = fingerprints(&[key("r", "big", 1, 1)], |_| {
            Some(vec![b'x'; MAX_SOURCE_BYTES + 1])
        });
        let expected = message_hash("r", Some("big"), "unneeded `return` statement");
        assert_eq!(prints, [format!("{expected}:1")]);
    }

    #[test]
    fn known_values() {
        // So that a change to the scheme shows up here: it would reopen every alert, and
        // must come with a new `partialFingerprints` key in the runner's SARIF. The
        // values were computed independently (FNV-1a 64 in Python).
        assert_eq!(hash(&[b"a"]), "af63dc4c8601ec8c");
        assert_eq!(
            line_hash("rule", "src/lib.rs", "  return 1;"),
            "bd609e49a417b5a3"
        );
        assert_eq!(
            message_hash("rule", Some("src/lib.rs"), "msg"),
            "46fbd0ed9fa9bad5"
        );
    }
}
