//! A denylist file: the step's `denylist` table as a TOML file of its own, so that one
//! file feeds both the security-scan step and the blocked-content gate of a pipeline
//! (`[pipeline] denylist = "denylist.toml"`):
//!
//! ```toml
//! packages = [
//!   { purl = "pkg:npm/event-stream", versions = "=3.3.6", reason = "malware" },
//! ]
//! git-refs = [
//!   { repo = "https://github.com/acme/shop", ref = "3f1c2e9a", reason = "leaked key" },
//! ]
//! ```
//!
//! Errors name the line and column of the fault (of the entry, for a bad purl or range),
//! because a gate that cannot read its denylist waits on that error, and the fix is an
//! edit of that line.

use crate::config::{DenyGitRefConfig, DenyPackageConfig, Denylist};

/// Why a denylist file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct FileError {
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

/// The file as written, every entry with where it is.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFile {
    #[serde(default)]
    packages: Vec<toml::Spanned<DenyPackageConfig>>,
    #[serde(default)]
    git_refs: Vec<toml::Spanned<DenyGitRefConfig>>,
}

/// Parse and check a denylist file's text.
pub fn parse(text: &str) -> Result<Denylist, FileError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        at_offset(text, at, e.message().trim_end().to_owned())
    })?;
    let mut denylist = Denylist::default();
    for entry in &raw.packages {
        let compiled = entry
            .get_ref()
            .compile()
            .map_err(|message| at_offset(text, entry.span().start, message))?;
        denylist.packages.push(compiled);
    }
    for entry in &raw.git_refs {
        let r = entry.get_ref();
        if r.reference.trim().is_empty() {
            return Err(at_offset(
                text,
                entry.span().start,
                format!("git ref of `{}`: `ref` is empty", r.repo),
            ));
        }
        denylist.git_refs.push(r.compile());
    }
    Ok(denylist)
}

fn at_offset(text: &str, offset: usize, message: String) -> FileError {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    FileError {
        line,
        column,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_in_the_step_format_parses() {
        let d = parse(
            "packages = [\n  { purl = \"pkg:npm/event-stream\", versions = \"=3.3.6\", reason = \"malware\" },\n  { purl = \"pkg:cargo/x\", reason = \"all of it\" },\n]\ngit-refs = [{ repo = \"https://github.com/a/b\", ref = \"deadbeef\", reason = \"leak\" }]\n",
        )
        .unwrap();
        assert_eq!(d.packages.len(), 2);
        assert_eq!(d.packages[1].versions.as_str(), "*");
        assert_eq!(d.git_refs[0].reference, "deadbeef");
        assert!(parse("").unwrap().packages.is_empty());
    }

    #[test]
    fn a_bad_range_names_the_line_of_its_entry() {
        let err = parse(
            "packages = [\n  { purl = \"pkg:npm/a\", reason = \"r\" },\n  { purl = \"pkg:npm/b\", versions = \"~1\", reason = \"r\" },\n]\n",
        )
        .unwrap_err();
        assert_eq!(err.line, 3, "{err}");
        assert!(err.message.contains("denylist `pkg:npm/b`"), "{err}");
        assert!(err.message.contains("must start with"), "{err}");
    }

    #[test]
    fn a_syntax_error_or_an_unknown_key_names_its_line() {
        let err =
            parse("packages = [\n  { purl = \"pkg:npm/a\" reason = \"r\" },\n]\n").unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        let err = parse("\n\npackage = []\n").unwrap_err();
        assert_eq!(err.line, 3, "{err}");
        assert!(err.message.contains("package"), "{err}");
        let err = parse("packages = [{ purl = \"pkg:npm/a\" }]\n").unwrap_err();
        assert!(err.message.contains("reason"), "{err}");
    }
}
