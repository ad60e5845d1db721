//! `sluice plugin new --lang python`, as a new author uses it: scaffold, `./build.sh`
//! (componentize-py from the tools cache, installed from PyPI when missing),
//! `./test.sh` (pytest natively, `sluice plugin check`, `sluice plugin test --case
//! cases`) and the sample pipeline. An uncaught exception fails its step with the
//! exception's line as the summary, and the Rust and Python templates give one finding
//! one fingerprint.

use std::sync::OnceLock;

use crate::scaffolded::{Scaffolded, finding_identities, step_record};
use crate::template_rust::{TemplateRun, rust_template};

/// Scaffold, build, test and run the Python template once per test run.
fn python_template() -> &'static TemplateRun {
    static RUN: OnceLock<TemplateRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let project = Scaffolded::new("todo-scan", "python");
        project.script("./build.sh", &[]);
        let tested = project.script("./test.sh", &[]);
        project.report_time("python");
        project.sluice(&["run", "--format", "plain"]).expect_code(0);
        let scan_step = step_record(&project.dir, "scan");
        let kept = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("templates");
        std::fs::create_dir_all(&kept).unwrap();
        let wasm = kept.join("python-todo-scan.wasm");
        std::fs::copy(project.dir.join("todo-scan.wasm"), &wasm).unwrap();
        TemplateRun {
            wasm,
            scan_step,
            new_output: project.output.clone(),
            test_output: format!("{}{}", tested.stdout, tested.stderr),
        }
    })
}

#[test]
fn python_template_builds_and_passes_its_own_test() {
    let run = python_template();
    insta::assert_snapshot!(run.new_output);
    // test.sh ran pytest natively before the kit.
    assert!(run.test_output.contains(" passed"), "{}", run.test_output);
}

#[test]
fn python_template_runs_in_its_sample_pipeline_like_the_rust_one() {
    let python = &python_template().scan_step;
    assert_eq!(python["report"]["status"], "Warned", "{python:#}");
    assert_eq!(
        python["report"]["summary"], "2 matches of `TODO` in 2 files",
        "{python:#}"
    );
    let rust = &rust_template().scan_step;
    assert_eq!(python["report"]["outputs"], rust["report"]["outputs"]);
    assert_eq!(
        finding_identities(&python["report"]),
        finding_identities(&rust["report"])
    );
}

/// The same inputs give the Rust and the Python plugin the same findings with the same
/// fingerprints: one finding, one identity, whatever the plugin's language.
#[test]
fn rust_and_python_templates_give_a_finding_the_same_fingerprint() {
    let rust = rust_template();
    let python = python_template();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("lib")).unwrap();
    std::fs::write(
        src.join("main.c"),
        "// TODO: split this file\nint main(void) {\n    return 0; // TODO return a code\n}\n",
    )
    .unwrap();
    // Repeated identical lines (occurrence indexes), CRLF, non-ASCII text, tabs.
    std::fs::write(
        src.join("lib/util.txt"),
        "caf\u{e9} TODO\r\n  TODO TODO\nTODO TODO\n\tTODO TODO \u{2014} \u{2603}\nnothing here\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sluice.toml"),
        format!(
            r#"
[pipeline]
name = "same-fingerprints"

[[stage]]
name = "scan"

[[stage.step]]
id = "rust"
uses = "{}"
with = {{ paths = ["src"], pattern = "TODO" }}
[stage.step.grants]
read = ["src"]

[[stage.step]]
id = "python"
uses = "{}"
with = {{ paths = ["src"], pattern = "TODO" }}
[stage.step.grants]
read = ["src"]
"#,
            rust.wasm.display(),
            python.wasm.display()
        ),
    )
    .unwrap();
    crate::support::sluice_in(dir.path(), &["run", "--format", "plain"]).expect_code(0);
    let from_rust = finding_identities(&step_record(dir.path(), "rust")["report"]);
    let from_python = finding_identities(&step_record(dir.path(), "python")["report"]);
    assert_eq!(from_rust.len(), 9, "{from_rust:#?}");
    assert_eq!(from_rust, from_python);
    // Identical lines share a hash and differ by their occurrence index.
    let prints: Vec<&str> = from_rust
        .iter()
        .map(|f| f["fingerprint"].as_str().unwrap())
        .collect();
    assert!(
        prints.iter().all(|p| p.len() == 18 && p.contains(':')),
        "{prints:?}"
    );
    let distinct: std::collections::HashSet<_> = prints.iter().collect();
    assert_eq!(distinct.len(), prints.len(), "{prints:?}");
}

#[test]
fn python_uncaught_exception_fails_the_step_with_its_line() {
    let project = Scaffolded::new("todo-scan", "python");
    // Outside the helper, which would map it to run-error::failed: the component's
    // own export raises.
    project.edit(
        "app.py",
        "Plugin, WitWorld = export(TodoScan)",
        "Plugin, WitWorld = export(TodoScan)\n\n\nclass Plugin(Plugin):\n    def run(self, input):\n        raise ValueError(\"boom\")",
    );
    project.script("./build.sh", &[]);
    let out = project.sluice(&["run", "--format", "plain"]);
    out.expect_code(1);
    let step = step_record(&project.dir, "scan");
    let summary = step["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("ValueError: boom"),
        "the step's summary carries the exception's line:\n{step:#}\n{}",
        out.stdout
    );
}

/// The helper's own tests under CPython, its fingerprints against the host's test
/// vectors (crates/fingerprint/tests/vectors.json) among them.
#[test]
fn python_helper_passes_its_tests_and_the_fingerprint_vectors() {
    let sdk = std::path::Path::new(sluice_tests::WORKSPACE_ROOT).join("sdk/python");
    let out = crate::support::Outcome::of(
        std::process::Command::new("timeout")
            .args([
                "300",
                "python3",
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests",
            ])
            .current_dir(&sdk)
            .env("PYTHONDONTWRITEBYTECODE", "1"),
    );
    assert!(
        !out.stderr.contains("No module named pytest"),
        "pytest is missing: python3 -m pip install pytest (.ci/run does)"
    );
    out.expect_code(0);
    assert!(out.stdout.contains(" passed"), "{}", out.stdout);
}
