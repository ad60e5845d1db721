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
        "6 finding(s) from eslint (5 high, 1 medium); 5 at or above `fail-on`\n\
         src/app.js:1:7 high no-unused-vars 'unused' is assigned a value but never used.\n\
         src/app.js:1:17 high semi Missing semicolon.\n\
         src/app.js:3:3 high no-undef 'console' is not defined.\n\
         src/app.js:3:28 high semi Missing semicolon.\n\
         src/app.js:4:35 high no-undef 'missing' is not defined.\n\
         src/app.js:3:3 medium no-console Unexpected console statement."
    );
    assert_eq!(report.output("tool"), Some("eslint"));
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

/// The folder of a capture under `tests/data/repeated/`.
fn repeated(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/repeated")
        .join(name)
}

/// How many distinct fingerprints `findings` have.
fn distinct_fingerprints(findings: &[Finding]) -> usize {
    findings
        .iter()
        .map(|finding| finding.fingerprint.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len()
}

/// Where each capture under `tests/data/repeated/` was made.
fn captured_at(tool: Tool) -> &'static str {
    match tool {
        Tool::Eslint => "/tmp/lintcap/js",
        Tool::Ruff => "/tmp/lintcap/py",
        _ => "/tmp/lintcap/go",
    }
}

/// Parse a capture of `tool` whose sources now lie in `dir` (standing for the
/// pipeline's folder), and return its findings before and after the SDK assigned the
/// final fingerprints.
fn fingerprinted(tool: Tool, output: &str, dir: &Path) -> (Vec<Finding>, Vec<Finding>) {
    let anchor = Anchor::new(captured_at(tool), captured_at(tool));
    let (stdout, stderr) = match tool {
        Tool::GoVet => ("", output),
        _ => (output, ""),
    };
    let parsed = parse_output(tool, stdout, stderr, &anchor).unwrap();
    let mut report = Report::passed("").with_findings(parsed.clone());
    report.assign_fingerprints(dir);
    (parsed, report.findings)
}

#[test]
fn repeated_findings_in_one_file_get_distinct_fingerprints() {
    // Captures whose findings repeat the same rule in one file (see tests/data/README.md).
    // The first number is what the fingerprint of rule, path and message gave (the
    // collisions code scanning merged into one alert), the second the findings.
    let eslint_dir = repeated("eslint");
    let ruff_dir = repeated("ruff");
    let go_dir = repeated("go-vet");
    let cases = [
        (
            Tool::Eslint,
            std::fs::read_to_string(eslint_dir.join("eslint.json")).unwrap(),
            eslint_dir,
            (5, 17),
        ),
        (
            Tool::Ruff,
            std::fs::read_to_string(ruff_dir.join("ruff.json")).unwrap(),
            ruff_dir,
            (4, 6),
        ),
        (
            Tool::GoVet,
            std::fs::read_to_string(go_dir.join("go-vet.json")).unwrap(),
            go_dir,
            (4, 5),
        ),
    ];
    // The sources are there, so the lines are hashed (not the messages): the two
    // identical `let sum = 0` lines missing their semicolon are occurrences 1 and 2.
    let (_, eslint) = fingerprinted(Tool::Eslint, &cases[0].1, &cases[0].2);
    let semi = sluice_sdk::fingerprint::line_hash("semi", "src/cart.js", "let sum = 0");
    let lines = |print: &str| {
        eslint
            .iter()
            .filter(|f| f.fingerprint == print)
            .map(|f| f.location.as_ref().unwrap().line.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(lines(&format!("{semi}:1")), [2]);
    assert_eq!(lines(&format!("{semi}:2")), [11]);
    for (tool, output, dir, (before, total)) in cases {
        let (parsed, findings) = fingerprinted(tool, &output, &dir);
        assert_eq!(
            (distinct_fingerprints(&parsed), parsed.len()),
            (before, total),
            "{tool:?}: the old scheme's collisions"
        );
        assert_eq!(
            distinct_fingerprints(&findings),
            findings.len(),
            "{tool:?}: {:#?}",
            findings
                .iter()
                .map(|f| (&f.rule_id, &f.location, &f.fingerprint))
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn clippy_on_smallvec_gets_a_fingerprint_per_finding() {
    // The sources are not stored (smallvec's lib.rs alone is 80 KB), so this also covers
    // the fallback for files the step cannot read: still one fingerprint per finding.
    let anchor = Anchor::new("/tmp/lintcap/smallvec", "/tmp/lintcap/smallvec");
    let parsed = parsers::clippy(data!("repeated/smallvec-clippy.jsonl"), &anchor);
    assert_eq!(
        (distinct_fingerprints(&parsed), parsed.len()),
        (11, 19),
        "the old scheme's collisions"
    );
    let mut report = Report::passed("").with_findings(parsed);
    report.assign_fingerprints(Path::new("/nonexistent-sluice-folder"));
    assert_eq!(
        distinct_fingerprints(&report.findings),
        report.findings.len()
    );
}

#[test]
fn inserting_a_line_above_findings_keeps_their_fingerprints() {
    for (tool, output_file, source) in [
        (Tool::Eslint, "eslint.json", "src/cart.js"),
        (Tool::Ruff, "ruff.json", "inventory.py"),
        (Tool::GoVet, "go-vet.json", "stock.go"),
    ] {
        let name = match tool {
            Tool::Eslint => "eslint",
            Tool::Ruff => "ruff",
            _ => "go-vet",
        };
        let dir = repeated(name);
        let output = std::fs::read_to_string(dir.join(output_file)).unwrap();
        let (_, before) = fingerprinted(tool, &output, &dir);

        // The same tree with a comment line added at the top of the linted file, and
        // the tool's findings moved one line down, as the tool would then report them.
        let moved =
            std::env::temp_dir().join(format!("sluice-lint-moved-{name}-{}", std::process::id()));
        let target = moved.join(source);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let text = std::fs::read_to_string(dir.join(source)).unwrap();
        let comment = if tool == Tool::Ruff { "#" } else { "//" };
        std::fs::write(&target, format!("{comment} a new first line\n{text}")).unwrap();
        let mut after = before.clone();
        for finding in &mut after {
            let location = finding.location.as_mut().unwrap();
            location.line = location.line.map(|line| line + 1);
            // As a parser would have left it: no fingerprint of its own.
            finding.fingerprint.clear();
        }
        let mut report = Report::passed("").with_findings(after);
        report.assign_fingerprints(&moved);
        std::fs::remove_dir_all(&moved).unwrap();
        let prints = |findings: &[Finding]| {
            findings
                .iter()
                .map(|finding| finding.fingerprint.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(prints(&before), prints(&report.findings), "{tool:?}");
    }
}

#[test]
fn a_failed_step_lists_a_bounded_number_of_findings_worst_first() {
    let dir = repeated("eslint");
    let output = std::fs::read_to_string(dir.join("eslint.json")).unwrap();
    let (_, findings) = fingerprinted(Tool::Eslint, &output, &dir);
    let report = judge(
        &config(r#"{"tool":"eslint","fail-on":"medium"}"#),
        None,
        findings,
        0,
        vec![],
    );
    assert_eq!(report.status, Status::Failed);
    let lines: Vec<&str> = report.summary.lines().collect();
    assert_eq!(lines.len(), 1 + 17);
    assert_eq!(lines[1], "src/cart.js:2:14 high semi Missing semicolon.");
    assert_eq!(
        lines[17],
        "src/cart.js:13:5 medium no-console Unexpected console statement."
    );
    let capped = listing(&report.findings, 5);
    let capped: Vec<&str> = capped.lines().collect();
    assert_eq!(capped.len(), 6);
    assert_eq!(capped[5], "and 12 more");
    // A step that does not fail keeps its summary to the one line.
    let warned = judge(
        &config(r#"{"tool":"eslint","fail-on":"none"}"#),
        None,
        report.findings.clone(),
        0,
        vec![],
    );
    assert_eq!(warned.summary.lines().count(), 1);
}
