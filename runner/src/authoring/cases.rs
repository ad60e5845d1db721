//! `sluice plugin test REF --case DIR...`: run fixture cases and compare each report
//! with the expected one, showing a diff.
//!
//! A case is a folder:
//! - `case.toml`, every key optional:
//!   - `with`: the step's `with` table (default `{}`);
//!   - `[grants]`: `read`, `write`, `exec`, `net`, `env`, lists as in a pipeline's
//!     `[stage.step.grants]`; relative `read`/`write` folders are relative to the case
//!     folder;
//!   - `workdir`: the step's working folder, relative to the case folder (default: the
//!     case folder itself); paths in `with` and in the report are relative to it;
//!   - `timeout`: the step's timeout, as in a pipeline (`"30s"`);
//!   - `[expect]`: `ignore`, a list of JSON pointers into the report JSON whose values
//!     are not compared, where `*` stands for any array index or object key (e.g.
//!     `/findings/*/fingerprint`, `/metrics/*/value`); and `outcome`: `ok` (the
//!     default: the plugin returns a report, whatever its status) or the kind of
//!     failure expected (`denied`, `invalid-config`, `failed`, `trap`, `timeout`,
//!     `memory-limit`, `limits`, `setup`; see [`super::once::Failure`]);
//! - `expected.json`: the expected outcome, exactly as `sluice plugin run --format json`
//!   prints it: the report as the runner stores it (serde names of the host's types:
//!   `rule_id`, `test_cases`, `data_points`, `media_type`, `end_line`; status and
//!   severity values capitalized, `"Passed"`, `"High"`), or
//!   `{"error": {"kind": ..., "message": ...}}`. `sluice plugin test --bless` writes it
//!   from the actual outcome (whole: `ignore` applies when comparing);
//! - anything else: the fixture files the case reads.
//!
//! `--case DIR` is one case (DIR holds `case.toml`) or a folder of cases: its
//! subfolders that hold a `case.toml`, in name order.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use super::AuthoringError;
use super::once::{Grant, Invocation, Outcome, Session};
use crate::config::SourceFile;

/// The failure kinds an `[expect] outcome` may name, besides `ok`.
const OUTCOMES: [&str; 9] = [
    "ok",
    "denied",
    "invalid-config",
    "failed",
    "trap",
    "timeout",
    "memory-limit",
    "limits",
    "setup",
];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCase {
    #[serde(default)]
    with: Option<Spanned<toml::Table>>,
    #[serde(default)]
    grants: Option<Spanned<std::collections::BTreeMap<String, Spanned<Vec<String>>>>>,
    workdir: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    expect: RawExpect,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
    outcome: Option<Spanned<String>>,
}

/// One case, read and checked.
#[derive(Debug, Clone)]
pub struct Case {
    /// The case folder (canonical).
    pub dir: PathBuf,
    /// The case folder as `--case` led to it (for messages).
    pub shown: PathBuf,
    /// As shown: the folder's name.
    pub name: String,
    pub invocation: Invocation,
    /// JSON pointers, split into tokens (`*` for any).
    pub ignore: Vec<Vec<String>>,
    /// `ok` or a failure kind.
    pub outcome: String,
}

impl Case {
    /// Read `dir/case.toml` for plugin `reference`; errors name the file, line and key.
    pub fn read(dir: &Path, reference: &str) -> Result<Case, AuthoringError> {
        let given = dir.to_path_buf();
        let path = dir.join("case.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| AuthoringError::Io {
            path: path.clone(),
            source,
        })?;
        let source = SourceFile {
            path: path.clone(),
            text,
        };
        let at = |offset: usize, message: String| {
            AuthoringError::Usage(source.error(offset, message).to_string())
        };
        let raw: RawCase = toml::from_str(&source.text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at(offset, e.message().trim().to_string())
        })?;
        let dir = std::fs::canonicalize(dir).map_err(|source| AuthoringError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let with = match raw.with {
            Some(t) => serde_json::to_value(t.get_ref())
                .map_err(|e| at(t.span().start, format!("`with`: {e}")))?,
            None => Value::Object(Default::default()),
        };
        let mut grants = Vec::new();
        if let Some(table) = &raw.grants {
            for (kind, values) in table.get_ref() {
                for value in values.get_ref() {
                    let g = Grant::parse(&format!("{kind}={value}"), &dir).map_err(|_| {
                        at(
                            values.span().start,
                            format!(
                                "`grants.{kind}`: unknown grant kind; use read, write, exec, net or env"
                            ),
                        )
                    })?;
                    grants.push(g);
                }
            }
        }
        let workdir = match &raw.workdir {
            Some(w) => {
                let p = dir.join(w.get_ref());
                if !p.is_dir() {
                    return Err(at(
                        w.span().start,
                        format!("`workdir`: {} is not a folder", p.display()),
                    ));
                }
                p
            }
            None => dir.clone(),
        };
        let mut ignore = Vec::new();
        for pointer in &raw.expect.ignore {
            let p = pointer.get_ref();
            if !p.starts_with('/') {
                return Err(at(
                    pointer.span().start,
                    format!(
                        "`expect.ignore`: `{p}` is not a JSON pointer; write it from the root, e.g. `/findings/*/fingerprint`"
                    ),
                ));
            }
            ignore.push(pointer_tokens(p));
        }
        let outcome = match &raw.expect.outcome {
            Some(o) => {
                let v = o.get_ref().as_str();
                if !OUTCOMES.contains(&v) {
                    let hint = crate::suggest::closest(v, OUTCOMES.iter().copied())
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    return Err(at(
                        o.span().start,
                        format!(
                            "`expect.outcome`: unknown outcome `{v}`{hint}; use {}",
                            OUTCOMES.join(", ")
                        ),
                    ));
                }
                v.to_string()
            }
            None => "ok".into(),
        };
        let name = dir
            .file_name()
            .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into());
        Ok(Case {
            name,
            invocation: Invocation {
                reference: reference.to_string(),
                with,
                grants,
                workdir,
                timeout: raw.timeout.map(|t| t.into_inner()),
            },
            ignore,
            outcome,
            dir,
            shown: given,
        })
    }
}

/// The case folders `--case DIR` names: DIR itself when it holds `case.toml`, else its
/// subfolders that do, in name order.
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>, AuthoringError> {
    if dir.join("case.toml").is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let entries = std::fs::read_dir(dir).map_err(|source| AuthoringError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("case.toml").is_file())
        .collect();
    found.sort();
    if found.is_empty() {
        return Err(AuthoringError::Usage(format!(
            "--case {}: no case.toml in it or in any of its subfolders (a case is a folder with a case.toml; see `sluice plugin test --help`)",
            dir.display()
        )));
    }
    Ok(found)
}

/// What one case gave.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseResult {
    pub name: String,
    pub dir: PathBuf,
    /// `passed`, `failed` or `blessed`.
    pub result: &'static str,
    /// Why it failed (outcome mismatch, missing expected.json...).
    pub problems: Vec<String>,
    /// The unified diff of expected and actual JSON (ignored fields left out), when
    /// they differ.
    pub diff: Option<String>,
    pub duration_ms: u128,
    #[serde(skip)]
    pub log_tail: Vec<String>,
}

/// Run one case (or bless it).
pub async fn run_case(
    session: &Session,
    case: &Case,
    bless: bool,
) -> Result<CaseResult, AuthoringError> {
    let outcome = session.run(&case.invocation).await?;
    let actual = outcome.to_json();
    let mut result = CaseResult {
        name: case.name.clone(),
        dir: case.shown.clone(),
        result: "passed",
        problems: vec![],
        diff: None,
        duration_ms: outcome.duration_ms,
        log_tail: outcome.log.iter().rev().take(10).rev().cloned().collect(),
    };
    let expected_path = case.shown.join("expected.json");
    if bless {
        let text = pretty(&actual);
        std::fs::write(&expected_path, text).map_err(|source| AuthoringError::Io {
            path: expected_path.clone(),
            source,
        })?;
        result.result = "blessed";
        return Ok(result);
    }
    let got = outcome_kind(&outcome);
    if got != case.outcome {
        result.problems.push(format!(
            "expected outcome `{}`, got `{got}`: {}",
            case.outcome, outcome.summary
        ));
    }
    match std::fs::read_to_string(&expected_path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => result.problems.push(format!(
            "{} is missing; `sluice plugin test --bless` writes it from this run",
            expected_path.display()
        )),
        Err(source) => {
            return Err(AuthoringError::Io {
                path: expected_path,
                source,
            });
        }
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Err(e) => result.problems.push(format!(
                "{}:{}:{}: not JSON: {e}",
                expected_path.display(),
                e.line(),
                e.column()
            )),
            Ok(mut expected) => {
                let mut actual = actual;
                for pointer in &case.ignore {
                    remove_matching(&mut expected, pointer);
                    remove_matching(&mut actual, pointer);
                }
                if expected != actual {
                    result.diff = Some(diff(&pretty(&expected), &pretty(&actual)));
                    result.problems.push(
                        "the outcome differs from expected.json (- expected, + actual)".into(),
                    );
                }
            }
        },
    }
    if !result.problems.is_empty() {
        result.result = "failed";
    }
    Ok(result)
}

/// `ok` for a report, else the failure's kind.
fn outcome_kind(outcome: &Outcome) -> String {
    match (&outcome.report, &outcome.failure) {
        (Some(_), _) => "ok".into(),
        (None, Some(f)) => f.kind.clone(),
        (None, None) => "failed".into(),
    }
}

/// Pretty JSON with a final newline, as expected.json holds it.
pub fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// A unified line diff (`-` expected, `+` actual) with 3 lines of context.
pub fn diff(expected: &str, actual: &str) -> String {
    similar::TextDiff::from_lines(expected, actual)
        .unified_diff()
        .context_radius(3)
        .header("expected.json", "actual")
        .to_string()
}

/// The tokens of a JSON pointer (`/a/0` → `a`, `0`), unescaped.
fn pointer_tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// Remove every value at `tokens` (`*`: any index or key) from `v`.
pub fn remove_matching(v: &mut Value, tokens: &[String]) {
    let Some((first, rest)) = tokens.split_first() else {
        return;
    };
    let matches = |key: &str| first == "*" || first == key;
    match v {
        Value::Object(map) => {
            if rest.is_empty() {
                map.retain(|k, _| !matches(k));
            } else {
                for (k, child) in map.iter_mut() {
                    if matches(k) {
                        remove_matching(child, rest);
                    }
                }
            }
        }
        Value::Array(items) => {
            if rest.is_empty() {
                let mut i = 0;
                items.retain(|_| {
                    let keep = !matches(&i.to_string());
                    i += 1;
                    keep
                });
            } else {
                for (i, child) in items.iter_mut().enumerate() {
                    if matches(&i.to_string()) {
                        remove_matching(child, rest);
                    }
                }
            }
        }
        _ => {}
    }
}

/// The closing line: `3 cases: 2 passed, 1 failed` (and `, N blessed`).
pub fn summary_line(results: &[CaseResult]) -> String {
    let count = |r: &str| results.iter().filter(|c| c.result == r).count();
    let n = results.len();
    let mut line = format!(
        "{n} case{}: {} passed, {} failed",
        if n == 1 { "" } else { "s" },
        count("passed"),
        count("failed")
    );
    let blessed = count("blessed");
    if blessed > 0 {
        line.push_str(&format!(", {blessed} blessed"));
    }
    line
}

/// One case's result for people: `PASS name`, or `FAIL name` with its problems, its
/// diff and the tail of its step log.
pub fn case_text(r: &CaseResult) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let tag = match r.result {
        "passed" => "PASS",
        "blessed" => "BLESSED",
        _ => "FAIL",
    };
    let _ = writeln!(t, "{tag} {} ({})", r.name, r.dir.display());
    for p in &r.problems {
        let _ = writeln!(t, "  {}", crate::render::shown(p));
    }
    if let Some(d) = &r.diff {
        for l in d.lines() {
            let _ = writeln!(t, "    {}", crate::render::shown(l));
        }
    }
    if r.result == "failed" && !r.log_tail.is_empty() {
        let _ = writeln!(t, "  step log (last lines):");
        for l in &r.log_tail {
            let _ = writeln!(t, "    {}", crate::render::shown(l));
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ignore_pointers_with_a_star_remove_the_field_of_every_element() {
        let mut v = json!({"findings": [{"fingerprint": "a", "message": "m"}, {"fingerprint": "b"}], "summary": "s"});
        remove_matching(&mut v, &pointer_tokens("/findings/*/fingerprint"));
        assert_eq!(
            v,
            json!({"findings": [{"message": "m"}, {}], "summary": "s"})
        );
        remove_matching(&mut v, &pointer_tokens("/summary"));
        assert_eq!(v, json!({"findings": [{"message": "m"}, {}]}));
        remove_matching(&mut v, &pointer_tokens("/findings/0"));
        assert_eq!(v, json!({"findings": [{}]}));
    }

    #[test]
    fn the_summary_line_counts_passed_and_failed_cases() {
        let r = |result| CaseResult {
            name: "c".into(),
            dir: PathBuf::from("c"),
            result,
            problems: vec![],
            diff: None,
            duration_ms: 0,
            log_tail: vec![],
        };
        assert_eq!(
            summary_line(&[r("passed"), r("failed"), r("passed")]),
            "3 cases: 2 passed, 1 failed"
        );
    }

    #[test]
    fn a_case_toml_error_names_the_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("case.toml"),
            "with = { paths = [\"src\"] }\n\n[expect]\noutcome = \"denyed\"\n",
        )
        .unwrap();
        let e = Case::read(dir.path(), "builtin:lint")
            .unwrap_err()
            .to_string();
        assert!(e.contains("case.toml:4:"), "{e}");
        assert!(e.contains("`expect.outcome`"), "{e}");
        assert!(e.contains("did you mean `denied`"), "{e}");
        std::fs::write(dir.path().join("case.toml"), "[expect]\nignor = []\n").unwrap();
        let e = Case::read(dir.path(), "builtin:lint")
            .unwrap_err()
            .to_string();
        assert!(e.contains("case.toml:2:"), "{e}");
        assert!(e.contains("ignor"), "{e}");
    }
}
