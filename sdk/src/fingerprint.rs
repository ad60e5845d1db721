//! Fingerprints that tell findings apart across runs: unique within a report, and
//! unchanged when code above a finding moves it to another line.
//!
//! A finding's automatic fingerprint is `<hash>:<occurrence>` (GitHub's
//! `primaryLocationLineHash` has the same shape), where
//! - `hash` is 64-bit FNV-1a, as 16 hex digits, of the rule id, the path and the text of
//!   the finding's first line with all whitespace removed (so re-indenting keeps it);
//! - `occurrence` counts, from 1 and in file order (line, then column), the findings of
//!   the report that share that hash: two `needless_return`s on identical lines of one
//!   file are `…:1` and `…:2`.
//!
//! When the line cannot be had (no location, no line, a file the step cannot read, a
//! line past the end of the file), the message takes the place of the line text. That
//! fallback is still unique through the occurrence index, but moves when the message
//! changes.
//!
//! [`assign`] computes them once the plugin returns (see [`run_plugin`](crate::run_plugin)),
//! reading each file once through the step's own grants. A fingerprint the plugin set
//! itself (with [`Finding::with_fingerprint`]) is kept.

use std::collections::HashMap;
use std::path::Path;

use crate::Finding;

/// 64-bit FNV-1a of `parts`, with a separator between them that cannot occur in text
/// (so that `("ab", "c")` and `("a", "bc")` differ), as 16 hex digits.
pub(crate) fn fnv1a(parts: &[&[u8]]) -> String {
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

/// A source line as it enters the hash: every whitespace character removed.
pub fn normalize_line(line: &str) -> String {
    line.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The hash part of a fingerprint for a finding of `rule_id` in `path` whose first line
/// reads `line_text`.
pub fn line_hash(rule_id: &str, path: &str, line_text: &str) -> String {
    fnv1a(&[
        b"line",
        rule_id.as_bytes(),
        path.as_bytes(),
        normalize_line(line_text).as_bytes(),
    ])
}

/// The hash part of a fingerprint when the finding's line is unknown: rule, path and
/// message.
pub fn message_hash(rule_id: &str, path: Option<&str>, message: &str) -> String {
    fnv1a(&[
        b"message",
        rule_id.as_bytes(),
        path.unwrap_or("").as_bytes(),
        message.as_bytes(),
    ])
}

/// Give every finding that carries no fingerprint of its own (an empty one, or the
/// provisional one [`Finding::new`] gives) its automatic fingerprint. Relative paths
/// are read from `workdir` (the pipeline's folder).
pub fn assign(findings: &mut [Finding], workdir: &Path) {
    let mut sources = SourceFiles::new(workdir);
    // Hash part and file position of each finding to fingerprint.
    let mut pending: Vec<(usize, String, (u32, u32))> = Vec::new();
    for (index, finding) in findings.iter().enumerate() {
        if !finding.fingerprint.is_empty()
            && finding.fingerprint != finding.provisional_fingerprint()
        {
            continue;
        }
        let location = finding.location.as_ref();
        let position = location.map_or((0, 0), |location| {
            (location.line.unwrap_or(0), location.column.unwrap_or(0))
        });
        let line_text = location.and_then(|location| {
            let line = location.line.filter(|line| *line > 0)?;
            sources.line(&location.path, line)
        });
        let hash = match (location, line_text) {
            (Some(location), Some(text)) => line_hash(&finding.rule_id, &location.path, text),
            _ => message_hash(
                &finding.rule_id,
                location.map(|location| location.path.as_str()),
                &finding.message,
            ),
        };
        pending.push((index, hash, position));
    }
    // File order, so that the occurrence index does not depend on how the tool sorted
    // its output (severity, rule, …); the sort is stable for equal positions.
    pending.sort_by_key(|(_, _, position)| *position);
    let mut occurrences: HashMap<String, u32> = HashMap::new();
    for (index, hash, _) in pending {
        let count = occurrences.entry(hash.clone()).or_insert(0);
        *count += 1;
        findings[index].fingerprint = format!("{hash}:{count}");
    }
}

/// The files findings point into, each read at most once.
struct SourceFiles<'a> {
    workdir: &'a Path,
    /// Lines of each file by the path the finding gave; `None` when it is unreadable.
    files: HashMap<String, Option<Vec<String>>>,
}

impl<'a> SourceFiles<'a> {
    fn new(workdir: &'a Path) -> Self {
        SourceFiles {
            workdir,
            files: HashMap::new(),
        }
    }

    /// Line `line` (1-based) of `path`, without its line ending.
    fn line(&mut self, path: &str, line: u32) -> Option<&str> {
        let workdir = self.workdir;
        let lines = self.files.entry(path.to_owned()).or_insert_with(|| {
            let bytes = crate::fs::read(workdir.join(path)).ok()?;
            let text = String::from_utf8_lossy(&bytes);
            Some(
                text.split('\n')
                    .map(|line| line.strip_suffix('\r').unwrap_or(line).to_owned())
                    .collect(),
            )
        });
        let index = usize::try_from(line).ok()?.checked_sub(1)?;
        lines.as_ref()?.get(index).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;

    fn scratch(name: &str, text: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sluice-fingerprint-{name}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("src/lib.rs"), text).unwrap();
        dir
    }

    fn finding(rule: &str, line: u32, column: u32) -> Finding {
        Finding::new(rule, Severity::Medium, "unneeded `return` statement").at(
            "src/lib.rs",
            line,
            column,
        )
    }

    const SOURCE: &str = "fn a() -> i32 {\n    return 1;\n}\nfn b() -> i32 {\n    return 1;\n}\nfn c() -> i32 {\n\treturn 2;\n}\n";

    #[test]
    fn repeated_findings_in_one_file_are_told_apart() {
        let dir = scratch("repeated", SOURCE);
        let mut findings = vec![
            finding("clippy::needless_return", 5, 5),
            finding("clippy::needless_return", 2, 5),
            finding("clippy::needless_return", 8, 2),
        ];
        assign(&mut findings, &dir);
        // Identical lines share the hash and differ by occurrence, in file order.
        let (hash_b, count_b) = findings[0].fingerprint.split_once(':').unwrap();
        let (hash_a, count_a) = findings[1].fingerprint.split_once(':').unwrap();
        assert_eq!((hash_a, count_a, count_b), (hash_b, "1", "2"));
        assert_ne!(findings[2].fingerprint.split_once(':').unwrap().0, hash_a);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn inserting_lines_above_keeps_the_fingerprint() {
        let before = scratch("before", SOURCE);
        let after = scratch("after", &format!("// a comment\nuse std::fmt;\n\n{SOURCE}"));
        let mut old = vec![finding("r", 2, 5), finding("r", 8, 2)];
        let mut new = vec![finding("r", 5, 5), finding("r", 11, 2)];
        assign(&mut old, &before);
        assign(&mut new, &after);
        let prints = |findings: &[Finding]| {
            findings
                .iter()
                .map(|finding| finding.fingerprint.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(prints(&old), prints(&new));
        assert_ne!(old[0].fingerprint, old[1].fingerprint);
        std::fs::remove_dir_all(before).unwrap();
        std::fs::remove_dir_all(after).unwrap();
    }

    #[test]
    fn reindenting_keeps_the_fingerprint() {
        assert_eq!(
            line_hash("r", "a.rs", "    return 1;"),
            line_hash("r", "a.rs", "\treturn  1 ;\r")
        );
        assert_ne!(
            line_hash("r", "a.rs", "return 1;"),
            line_hash("r", "b.rs", "return 1;")
        );
    }

    #[test]
    fn unreadable_files_fall_back_to_the_message_and_stay_unique() {
        let mut findings = vec![
            Finding::new("r", Severity::Low, "same").at("missing/file.rs", 3, 1),
            Finding::new("r", Severity::Low, "same").at("missing/file.rs", 1, 1),
            Finding::new("r", Severity::Low, "same"),
        ];
        assign(&mut findings, Path::new("/nonexistent-sluice-dir"));
        let hash = message_hash("r", Some("missing/file.rs"), "same");
        assert_eq!(findings[1].fingerprint, format!("{hash}:1"));
        assert_eq!(findings[0].fingerprint, format!("{hash}:2"));
        assert_eq!(
            findings[2].fingerprint,
            format!("{}:1", message_hash("r", None, "same"))
        );
    }

    #[test]
    fn explicit_fingerprints_are_kept() {
        let dir = scratch("explicit", SOURCE);
        let mut findings = vec![
            finding("r", 2, 5).with_fingerprint("scanner-id-1"),
            finding("r", 5, 5),
        ];
        assign(&mut findings, &dir);
        assert_eq!(findings[0].fingerprint, "scanner-id-1");
        assert!(findings[1].fingerprint.ends_with(":1"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn known_values() {
        // So that a change to the scheme shows up here: it would reopen every alert, and
        // must come with a new `partialFingerprints` key in the runner's SARIF. The
        // values were computed independently (FNV-1a 64 in Python).
        assert_eq!(fnv1a(&[b"a"]), "af63dc4c8601ec8c");
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
