//! Parsers checked against output captured from the real tools (see tests/data/README.md).

use std::path::Path;

use sluice_sdk::{Finding, Severity, Status};

use super::*;

macro_rules! data {
    ($file:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/", $file))
    };
}

fn brief(
    finding: &Finding,
) -> (
    String,
    Severity,
    String,
    Option<u32>,
    Option<u32>,
    Option<u32>,
    Option<u32>,
) {
    let location = finding.location.as_ref().expect("a location");
    (
        finding.rule_id.clone(),
        finding.severity,
        location.path.clone(),
        location.line,
        location.column,
        location.end_line,
        location.end_column,
    )
}

#[test]
fn clippy_json_lines() {
    let anchor = Anchor::new("/tmp/scratch", "/tmp/scratch/demo");
    let findings = parsers::clippy(data!("clippy.jsonl"), &anchor);
    let got: Vec<_> = findings.iter().map(brief).collect();
    let s = |text: &str| text.to_owned();
    assert_eq!(
        got,
        vec![
            (
                s("clippy::needless_return"),
                Severity::Medium,
                s("demo/src/lib.rs"),
                Some(4),
                Some(5),
                Some(4),
                Some(16)
            ),
            (
                s("clippy::ptr_arg"),
                Severity::Medium,
                s("demo/src/lib.rs"),
                Some(7),
                Some(24),
                Some(7),
                Some(32)
            ),
            (
                s("clippy::len_zero"),
                Severity::Medium,
                s("demo/src/lib.rs"),
                Some(8),
                Some(5),
                Some(8),
                Some(16)
            ),
        ]
    );
    assert_eq!(findings[0].message, "unneeded `return` statement");
    assert_eq!(
        findings[0].help_uri.as_deref(),
        Some("https://rust-lang.github.io/rust-clippy/rust-1.95.0/index.html#needless_return")
    );
}

#[test]
fn eslint_json() {
    let anchor = Anchor::new("/tmp/scratch/jsdemo", "/tmp/scratch/jsdemo");
    let findings = parsers::eslint(data!("eslint.json"), &anchor).unwrap();
    assert_eq!(findings.len(), 6);
    let s = |text: &str| text.to_owned();
    assert_eq!(
        brief(&findings[0]),
        (
            s("no-unused-vars"),
            Severity::High,
            s("src/app.js"),
            Some(1),
            Some(7),
            Some(1),
            Some(12)
        )
    );
    assert_eq!(
        brief(&findings[3]),
        (
            s("no-console"),
            Severity::Medium,
            s("src/app.js"),
            Some(3),
            Some(3),
            Some(3),
            Some(13)
        )
    );
    assert_eq!(
        findings[0].message,
        "'unused' is assigned a value but never used."
    );
    assert_eq!(
        findings[0].help_uri.as_deref(),
        Some("https://eslint.org/docs/latest/rules/no-unused-vars")
    );
    // Same rule, same file, same message on another line: the SDK's fingerprint leaves
    // lines out on purpose, so the two missing semicolons share one.
    assert_eq!(findings[1].fingerprint, findings[4].fingerprint);
    assert_ne!(findings[0].fingerprint, findings[1].fingerprint);
}

#[test]
fn ruff_json() {
    let anchor = Anchor::new("/tmp/scratch/pydemo", "/tmp/scratch/pydemo");
    let findings = parsers::ruff(data!("ruff.json"), &anchor).unwrap();
    let got: Vec<(String, String, Option<u32>)> = findings
        .iter()
        .map(|f| {
            (
                f.rule_id.clone(),
                f.location.as_ref().unwrap().path.clone(),
                f.location.as_ref().unwrap().line,
            )
        })
        .collect();
    let s = |text: &str| text.to_owned();
    assert_eq!(
        got,
        vec![
            (s("ruff::I001"), s("calc.py"), Some(1)),
            (s("ruff::F401"), s("calc.py"), Some(1)),
            (s("ruff::F401"), s("calc.py"), Some(1)),
            (s("ruff::F841"), s("calc.py"), Some(5)),
            (s("ruff::F401"), s("old.py"), Some(1)),
            (s("ruff::F401"), s("pkg/new.py"), Some(1)),
        ]
    );
    assert_eq!(findings[1].severity, Severity::High);
    assert_eq!(findings[1].message, "`os` imported but unused");
    assert_eq!(
        findings[1].help_uri.as_deref(),
        Some("https://docs.astral.sh/ruff/rules/unused-import")
    );
    assert_eq!(brief(&findings[1]).4, Some(8));
    assert_eq!(brief(&findings[1]).6, Some(9));
}

#[test]
fn go_vet_json_on_stderr() {
    let anchor = Anchor::new("/tmp/scratch", "/tmp/scratch/godemo");
    let findings = parse_output(Tool::GoVet, "", data!("go-vet.json"), &anchor).unwrap();
    assert_eq!(findings.len(), 1);
    let s = |text: &str| text.to_owned();
    assert_eq!(
        brief(&findings[0]),
        (
            s("go-vet::printf"),
            Severity::High,
            s("godemo/calc.go"),
            Some(9),
            Some(38),
            None,
            None
        )
    );
    assert_eq!(
        findings[0].message,
        "fmt.Sprintf format %s has arg n of wrong type int"
    );
    assert!(
        parse_output(Tool::GoVet, "", "", &anchor)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn staticcheck_json_lines() {
    let anchor = Anchor::new("/tmp", "/tmp/sc");
    let findings =
        parse_output(Tool::Staticcheck, data!("staticcheck.jsonl"), "", &anchor).unwrap();
    let s = |text: &str| text.to_owned();
    assert_eq!(findings.len(), 2);
    // The end column is exclusive in staticcheck's output, inclusive in a finding.
    assert_eq!(
        brief(&findings[0]),
        (
            s("staticcheck::S1003"),
            Severity::High,
            s("sc/main.go"),
            Some(12),
            Some(6),
            Some(12),
            Some(39)
        )
    );
    assert_eq!(
        findings[0].message,
        "should use strings.Contains(items[i], \"x\") instead"
    );
    assert_eq!(
        findings[0].help_uri.as_deref(),
        Some("https://staticcheck.dev/docs/checks/#S1003")
    );
    assert_eq!(brief(&findings[1]).0, "staticcheck::SA5009");
    assert_eq!(brief(&findings[1]).3, Some(21));
    assert!(
        parse_output(Tool::Staticcheck, "", "", &anchor)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn sarif_from_ruff_matches_its_json() {
    let anchor = Anchor::new("/tmp/scratch/pydemo", "/tmp/scratch/pydemo");
    let from_sarif = parsers::sarif(data!("ruff.sarif"), &anchor).unwrap();
    let from_json = parsers::ruff(data!("ruff.json"), &anchor).unwrap();
    assert_eq!(from_sarif.len(), from_json.len());
    for (sarif, json) in from_sarif.iter().zip(&from_json) {
        assert_eq!(format!("ruff::{}", sarif.rule_id), json.rule_id);
        assert_eq!(sarif.location, json.location, "{}", sarif.message);
        assert_eq!(sarif.message, json.message);
    }
    assert_eq!(
        from_sarif[0].properties,
        vec![("tool".to_owned(), "ruff".to_owned())]
    );
}

#[test]
fn sarif_from_eslint_uses_the_artifact_table_and_rules() {
    let anchor = Anchor::new("/tmp/scratch/jsdemo", "/tmp/scratch/jsdemo");
    let findings = parsers::sarif(data!("eslint.sarif"), &anchor).unwrap();
    let from_json = parsers::eslint(data!("eslint.json"), &anchor).unwrap();
    assert_eq!(findings.len(), 6);
    for (sarif, json) in findings.iter().zip(&from_json) {
        assert_eq!(sarif.rule_id, json.rule_id);
        assert_eq!(sarif.severity, json.severity);
        assert_eq!(sarif.location, json.location);
    }
    assert_eq!(
        findings[0].help_uri.as_deref(),
        Some("https://eslint.org/docs/latest/rules/no-unused-vars")
    );
}

#[test]
fn changed_since_keeps_changed_and_untracked_files() {
    let changed = changed::changed_files(
        Path::new("/tmp/scratch/pydemo"),
        Path::new("/tmp/scratch/pydemo"),
        &[data!("git-diff-merge-base.txt"), data!("git-untracked.txt")],
    );
    assert_eq!(
        changed.into_iter().collect::<Vec<_>>(),
        vec!["calc.py", "pkg/new.py"]
    );
    let changed = changed::changed_files(
        Path::new("/tmp/scratch/pydemo"),
        Path::new("/tmp/scratch/pydemo"),
        &[data!("git-diff-merge-base.txt"), data!("git-untracked.txt")],
    );
    let anchor = Anchor::new("/tmp/scratch/pydemo", "/tmp/scratch/pydemo");
    let mut findings = parsers::ruff(data!("ruff.json"), &anchor).unwrap();
    assert_eq!(changed::retain_changed(&mut findings, &changed), 1);
    assert!(
        findings
            .iter()
            .all(|f| f.location.as_ref().unwrap().path != "old.py")
    );
    // Git paths are relative to the repository; a pipeline in a subfolder sees them
    // relative to itself.
    let from_subfolder = changed::changed_files(
        Path::new("/tmp/scratch/pydemo"),
        Path::new("/tmp/scratch/pydemo/pkg"),
        &[data!("git-untracked.txt")],
    );
    assert_eq!(
        from_subfolder.into_iter().collect::<Vec<_>>(),
        vec!["new.py"]
    );
}

fn config(json: &str) -> Config {
    serde_json::from_str(json).unwrap()
}

#[test]
fn fail_on_threshold() {
    let anchor = Anchor::new("/tmp/scratch/jsdemo", "/tmp/scratch/jsdemo");
    let findings = parsers::eslint(data!("eslint.json"), &anchor).unwrap();
    let report = judge(
        &config(r#"{"tool":"eslint"}"#),
        None,
        findings.clone(),
        0,
        vec![],
    );
    assert_eq!(report.status, Status::Failed);
    assert_eq!(
        report.summary,
        "6 finding(s) from eslint (5 high, 1 medium); 5 at or above `fail-on`"
    );
    let warnings_only: Vec<Finding> = findings
        .iter()
        .filter(|f| f.severity == Severity::Medium)
        .cloned()
        .collect();
    assert_eq!(
        judge(
            &config(r#"{"tool":"eslint"}"#),
            None,
            warnings_only.clone(),
            0,
            vec![]
        )
        .status,
        Status::Warned
    );
    assert_eq!(
        judge(
            &config(r#"{"tool":"eslint","fail-on":"medium"}"#),
            None,
            warnings_only,
            0,
            vec![]
        )
        .status,
        Status::Failed
    );
    assert_eq!(
        judge(
            &config(r#"{"tool":"eslint","fail-on":"none"}"#),
            None,
            findings,
            0,
            vec![]
        )
        .status,
        Status::Warned
    );
    assert_eq!(
        judge(&config(r#"{"tool":"eslint"}"#), None, vec![], 0, vec![]).status,
        Status::Passed
    );
    let broken = judge(
        &config(r#"{"tool":"eslint"}"#),
        None,
        vec![],
        0,
        vec!["`npx eslint` exited 2".into()],
    );
    assert_eq!(broken.status, Status::Failed);
}

#[test]
fn default_commands() {
    let command = |json: &str| {
        command_for(config(json).tool, &config(json))
            .unwrap()
            .map(|words| words.join(" "))
    };
    assert_eq!(
        command(r#"{"tool":"clippy","args":["--workspace"]}"#).unwrap(),
        "cargo clippy --message-format=json --workspace"
    );
    assert_eq!(
        command(r#"{"tool":"ruff"}"#).unwrap(),
        "ruff check --output-format json ."
    );
    assert_eq!(
        command(r#"{"tool":"eslint","args":["src"]}"#).unwrap(),
        "npx eslint -f json src"
    );
    assert_eq!(
        command(r#"{"tool":"go-vet"}"#).unwrap(),
        "go vet -json ./..."
    );
    assert_eq!(command(r#"{"tool":"sarif","sarif":["x.sarif"]}"#), None);
}
