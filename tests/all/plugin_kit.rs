//! The plugin-author kit through the real binary: `sluice plugin run` on a real fixture
//! project, `sluice plugin test` with passing, failing and blessed cases, and `sluice
//! plugin check` on every built-in plugin.

use std::path::Path;

use crate::security_scan::{advisory_db, scan_data};
use crate::support::{Project, normalize, sluice_in};

/// A project with a vulnerable Cargo.lock and a leaked token, and the token.
fn vulnerable_project() -> (Project, String) {
    let p = Project::new("[pipeline]\nname = \"unused\"\n");
    p.write("app/Cargo.lock", &scan_data("cargo/vulnerable/Cargo.lock"));
    // Built at run time so that this repository holds no token-shaped string.
    let token = format!("ghp_{}", "R7xK2mQ9vL4pT8wZ3nB6cY1dF5gH0jS2aE4u");
    p.write("app/deploy.sh", &format!("export GITHUB_TOKEN={token}\n"));
    (p, token)
}

fn scan_with(db: &Path) -> String {
    serde_json::json!({
        "paths": ["app"],
        "database": db.display().to_string(),
        "fail-on": "critical",
        "secrets": {"paths": ["app"]},
    })
    .to_string()
}

/// Values that change from run to run or day to day (`scan.time = 167.06 ms`, the
/// advisory database's age).
fn without_timings(text: &str) -> String {
    let re = regex::Regex::new(r"(?m)^(  (scan\.time|database\.age) = )[0-9.]+").unwrap();
    let text = re.replace_all(text, "${1}[N]");
    let re = regex::Regex::new(r"is \d+ days old").unwrap();
    re.replace_all(&text, "is [N] days old").into_owned()
}

/// What differs between machines: the sandbox's note (Landlock ABI, cgroup version)
/// and where `echo` lives.
fn machine_neutral(text: &str) -> String {
    let text: String = text
        .lines()
        .filter(|l| !l.contains("native programs run isolated"))
        .map(|l| format!("{l}\n"))
        .collect();
    regex::Regex::new(r"\(/[^)]*/echo\)")
        .unwrap()
        .replace_all(&text, "([ECHO])")
        .into_owned()
}

#[test]
fn plugin_run_prints_the_security_scan_report_of_a_fixture_project() {
    let db = advisory_db();
    let (p, token) = vulnerable_project();
    let db_grant = format!("read={}", db.parent().unwrap().display());
    let with = scan_with(&db);
    let out = p.sluice(&[
        "plugin",
        "run",
        "builtin:security-scan",
        "--with",
        &with,
        "--grant",
        "read=.",
        "--grant",
        &db_grant,
    ]);
    // Critical advisories: the report's status is failed, so the exit code is 1.
    out.expect_code(1);
    assert!(out.stdout.contains("outcome: failed"), "{}", out.stdout);
    assert!(!out.stdout.contains(&token), "{}", out.stdout);
    assert!(!out.stderr.contains(&token), "{}", out.stderr);
    assert!(
        out.stdout.contains("app/Cargo.lock:"),
        "findings are shown as path:line:col: {}",
        out.stdout
    );
    insta::assert_snapshot!(
        "plugin_run_security_scan",
        without_timings(&normalize(&out.stdout, p.path()))
    );

    // The JSON is the report as the runner stores it.
    let out = p.sluice(&[
        "plugin",
        "run",
        "builtin:security-scan",
        "--with",
        &with,
        "--grant",
        "read=.",
        "--grant",
        &db_grant,
        "--format",
        "json",
    ]);
    out.expect_code(1);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let rules: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule_id"].as_str().unwrap())
        .collect();
    assert!(rules.iter().any(|r| r.starts_with("RUSTSEC-")), "{rules:?}");
    assert!(rules.iter().any(|r| r.contains("github")), "{rules:?}");
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| !f["fingerprint"].as_str().unwrap().is_empty())
    );
    assert!(!out.stdout.contains(&token));
    // Nothing is left in the project: the run folder was temporary.
    assert!(!p.path().join(".sluice").exists());
}

#[test]
fn plugin_run_without_the_read_grant_prints_the_denial_and_exits_1() {
    let db = advisory_db();
    let (p, _) = vulnerable_project();
    let out = p.sluice(&[
        "plugin",
        "run",
        "builtin:security-scan",
        "--with",
        &scan_with(&db),
        "--format",
        "json",
    ]);
    out.expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "denied", "{v:#}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("read"),
        "{v:#}"
    );
}

#[test]
fn plugin_run_with_a_mistyped_with_key_exits_2_naming_the_key() {
    let p = Project::new("[pipeline]\nname = \"unused\"\n");
    let out = p.sluice(&[
        "plugin",
        "run",
        "builtin:command",
        "--with",
        r#"{"progam": "echo"}"#,
    ]);
    out.expect_code(2);
    assert!(out.stderr.contains("--with: `progam`"), "{}", out.stderr);
    assert!(out.stderr.contains("`program`"), "{}", out.stderr);
}

#[test]
fn plugin_run_with_an_unknown_grant_kind_is_a_usage_error_naming_the_flag() {
    let p = Project::new("[pipeline]\nname = \"unused\"\n");
    let out = p.sluice(&[
        "plugin",
        "run",
        "builtin:command",
        "--with",
        r#"{"program": "echo"}"#,
        "--grant",
        "exe=echo",
    ]);
    out.expect_code(2);
    assert!(out.stderr.contains("--grant `exe=echo`"), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean `exec`"), "{}", out.stderr);
}

#[test]
fn plugin_run_shows_the_step_log_on_stderr_and_the_outputs_on_stdout() {
    let p = Project::new("[pipeline]\nname = \"unused\"\n");
    let out = p.sluice(&[
        "plugin",
        "run",
        "builtin:command",
        "--with",
        r#"{"program": "echo", "args": ["hello from echo"]}"#,
        "--grant",
        "exec=echo",
    ]);
    out.expect_code(0);
    assert!(
        out.stderr.contains("[exec] hello from echo"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("outcome: passed"), "{}", out.stdout);
    assert!(
        out.stdout.contains("stdout = hello from echo"),
        "{}",
        out.stdout
    );
}

/// Cases of `builtin:command`: one passing, one expecting a denial, one whose
/// expected.json says another output.
fn command_cases(p: &Project) {
    p.write(
        "cases/echo/case.toml",
        "with = { program = \"echo\", args = [\"hi\"] }\n\n[grants]\nexec = [\"echo\"]\n\n[expect]\nignore = [\"/metrics/*/value\", \"/summary\"]\n",
    );
    p.write(
        "cases/no-exec/case.toml",
        "with = { program = \"echo\", args = [\"hi\"] }\n\n[expect]\noutcome = \"denied\"\n",
    );
    p.write(
        "cases/wrong/case.toml",
        "with = { program = \"echo\", args = [\"actual\"] }\n\n[grants]\nexec = [\"echo\"]\n\n[expect]\nignore = [\"/metrics/*/value\", \"/summary\"]\n",
    );
}

#[test]
fn plugin_test_shows_a_diff_for_a_failing_case_and_bless_writes_expected_json() {
    let p = Project::new("[pipeline]\nname = \"unused\"\n");
    command_cases(&p);
    let out = p.sluice(&[
        "plugin",
        "test",
        "builtin:command",
        "--case",
        "cases",
        "--bless",
    ]);
    out.expect_code(0);
    assert!(
        out.stdout
            .contains("3 cases: 0 passed, 0 failed, 3 blessed"),
        "{}",
        out.stdout
    );
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.path().join("cases/echo/expected.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(expected["status"], "Passed");
    let out = p.sluice(&["plugin", "test", "builtin:command", "--case", "cases"]);
    out.expect_code(0);
    assert!(
        out.stdout.contains("3 cases: 3 passed, 0 failed"),
        "{}",
        out.stdout
    );

    // The wrong case now expects another output than the plugin gives.
    let path = p.path().join("cases/wrong/expected.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"actual\"", "\"expected\"")).unwrap();
    let out = p.sluice(&["plugin", "test", "builtin:command", "--case", "cases"]);
    out.expect_code(1);
    insta::assert_snapshot!(
        "plugin_test_failing_case",
        machine_neutral(&normalize(&out.stdout, p.path()))
    );

    // One case alone, and JSON for CI.
    let out = p.sluice(&[
        "plugin",
        "test",
        "builtin:command",
        "--case",
        "cases/wrong",
        "--format",
        "json",
    ]);
    out.expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["failed"], 1);
    assert!(
        v["cases"][0]["diff"]
            .as_str()
            .unwrap()
            .contains("+      \"actual\"")
    );
}

#[test]
fn a_case_toml_error_names_the_file_line_and_key() {
    let p = Project::new("[pipeline]\nname = \"unused\"\n");
    p.write(
        "cases/bad/case.toml",
        "with = { program = \"echo\" }\n\n[expect]\noutcome = \"denyed\"\n",
    );
    let out = p.sluice(&["plugin", "test", "builtin:command", "--case", "cases"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("cases/bad/case.toml:4:") && out.stderr.contains("`expect.outcome`"),
        "{}",
        out.stderr
    );
}

#[test]
fn plugin_check_passes_on_every_builtin() {
    let dir = tempfile::tempdir().unwrap();
    let list = sluice_in(dir.path(), &["plugins", "--json"]);
    list.expect_code(0);
    let plugins: Vec<serde_json::Value> = serde_json::from_str(&list.stdout).unwrap();
    assert!(plugins.len() >= 10, "{}", list.stdout);
    let fixture = Project::new("[pipeline]\nname = \"unused\"\n");
    let token = format!("ghp_{}", "R7xK2mQ9vL4pT8wZ3nB6cY1dF5gH0jS2aE4u");
    fixture.write("app/deploy.sh", &format!("export GITHUB_TOKEN={token}\n"));
    let fixture_arg = fixture.path().display().to_string();
    let fixture_grant = format!("read={fixture_arg}");
    let mut failures = Vec::new();
    for p in &plugins {
        let reference = p["reference"].as_str().unwrap();
        // What each built-in's examples need to run.
        let mut args = vec!["plugin", "check", reference, "--format", "json"];
        match reference {
            "builtin:command" => args.extend(["--grant", "exec=echo"]),
            // A leaked token, so that fingerprints are compared for real.
            "builtin:security-scan" => {
                args.extend(["--workdir", &fixture_arg, "--grant", &fixture_grant]);
            }
            _ => {}
        }
        let out = sluice_in(dir.path(), &args);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{reference}: not JSON ({e}): {}\n{}",
                out.stdout, out.stderr
            )
        });
        let checks = v["checks"].as_array().unwrap();
        assert!(checks.len() >= 9, "{reference}: {v:#}");
        if reference == "builtin:security-scan" {
            let stable = checks
                .iter()
                .find(|c| c["name"] == "stable-fingerprints")
                .unwrap();
            assert!(
                stable["reason"]
                    .as_str()
                    .unwrap()
                    .contains("the same in two runs"),
                "{stable:#}"
            );
        }
        if out.code != 0 || v["passed"] != true {
            failures.push(format!("{reference}: {v:#}\n{}", out.stderr));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn plugin_check_runs_the_examples_of_builtin_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = sluice_in(
        dir.path(),
        &["plugin", "check", "builtin:command", "--grant", "exec=echo"],
    );
    out.expect_code(0);
    let text = regex::Regex::new(r"largest step log [0-9.]+ [KMG]?i?B")
        .unwrap()
        .replace_all(&out.stdout, "largest step log [SIZE]")
        .into_owned();
    insta::assert_snapshot!("plugin_check_command", machine_neutral(&text));
}
