//! Fingerprints that tell findings apart across runs: unique within a report, and
//! unchanged when code above a finding moves it to another line.
//!
//! A finding's automatic fingerprint is `<hash>:<occurrence>` (GitHub's
//! `primaryLocationLineHash` has the same shape), where
//! - `hash` is 64-bit FNV-1a, as 16 hex digits, of the rule id, the path and the text of
//!   the finding's line with all whitespace removed (so re-indenting keeps it);
//! - `occurrence` counts, from 1 and in file order (line, then column), the findings of
//!   the report that share that hash: two `needless_return`s on identical lines of one
//!   file are `…:1` and `…:2`.
//!
//! When the line cannot be had (no location, no line, a file the step cannot read, a
//! line past the end of the file), the message takes the place of the line text. That
//! fallback is still unique through the occurrence index, but moves when the message
//! changes.
//!
//! The algorithm is the contract's (the doc comment of `finding.fingerprint` in
//! `wit/plugin.wit`), implemented once in the `sluice-fingerprint` crate, which the
//! runner also uses to fill the fingerprints a plugin leaves empty: a Rust plugin and a
//! plugin in any other language give one finding the same fingerprint.
//!
//! [`assign`] computes them once the plugin returns (see [`run_plugin`](crate::run_plugin)),
//! reading each file once through the step's own grants. A fingerprint the plugin set
//! itself (with [`Finding::with_fingerprint`]) is kept.

use std::io::Read;
use std::path::Path;

pub use sluice_fingerprint::{line_hash, message_hash, normalize_line};

use crate::Finding;

/// 64-bit FNV-1a of `parts` joined by a byte that cannot occur in text, as 16 hex digits.
pub(crate) fn fnv1a(parts: &[&[u8]]) -> String {
    sluice_fingerprint::hash(parts)
}

/// Give every finding that carries no fingerprint of its own (an empty one, or the
/// provisional one [`Finding::new`] gives) its automatic fingerprint. Relative paths
/// are read from `workdir` (the pipeline's folder).
pub fn assign(findings: &mut [Finding], workdir: &Path) {
    let pending: Vec<usize> = findings
        .iter()
        .enumerate()
        .filter(|(_, finding)| {
            finding.fingerprint.is_empty()
                || finding.fingerprint == finding.provisional_fingerprint()
        })
        .map(|(index, _)| index)
        .collect();
    let keys: Vec<sluice_fingerprint::FindingKey<'_>> = pending
        .iter()
        .map(|&index| {
            let finding = &findings[index];
            let location = finding.location.as_ref();
            sluice_fingerprint::FindingKey {
                rule_id: &finding.rule_id,
                message: &finding.message,
                path: location.map(|location| location.path.as_str()),
                line: location.and_then(|location| location.line),
                column: location.and_then(|location| location.column),
            }
        })
        .collect();
    let prints = sluice_fingerprint::fingerprints(&keys, |path| read_source(workdir, path));
    for (index, print) in pending.into_iter().zip(prints) {
        findings[index].fingerprint = print;
    }
}

/// The bytes of `path` (relative to `workdir` unless absolute), at most one byte past
/// the algorithm's bound; `None` when the step cannot read it.
fn read_source(workdir: &Path, path: &str) -> Option<Vec<u8>> {
    let file = std::fs::File::open(crate::fs::resolve(&workdir.join(path))).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let limit = u64::try_from(sluice_fingerprint::MAX_SOURCE_BYTES).unwrap_or(u64::MAX);
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
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
        // The same as the crate's: crates/fingerprint/tests/vectors.json holds many more.
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
