//! `sluice plugin new --lang rust`, as a new author uses it: the project is made in a
//! temporary folder outside this workspace (it must build on its own, with the SDK
//! copied into it), built with `./build.sh`, tested with `./test.sh` (`cargo test`,
//! `sluice plugin check`, `sluice plugin test --case cases`) and run in its sample
//! pipeline. A panic fails its step with the panic message as the summary.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::scaffolded::{Scaffolded, step_record, tools_dir};

/// Where the scaffolded Rust projects build: one Cargo target folder in the tools
/// cache, so the SDK's dependencies compile once per checkout, not once per test.
fn cargo_target_dir() -> String {
    tools_dir()
        .join("rust-template-target")
        .display()
        .to_string()
}

/// What the one full run of the Rust template left: the component (copied out of the
/// project, which is removed), the sample pipeline's step record, what `new` printed.
pub struct TemplateRun {
    pub wasm: PathBuf,
    pub scan_step: serde_json::Value,
    pub new_output: String,
    pub test_output: String,
}

/// Scaffold, build, test and run the Rust template once per test run.
pub fn rust_template() -> &'static TemplateRun {
    static RUN: OnceLock<TemplateRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let project = Scaffolded::new("todo-scan", "rust");
        let target = cargo_target_dir();
        let env = [("CARGO_TARGET_DIR", target.as_str())];
        project.script("./build.sh", &env);
        let tested = project.script("./test.sh", &env);
        project.report_time("rust");
        project.sluice(&["run", "--format", "plain"]).expect_code(0);
        let scan_step = step_record(&project.dir, "scan");
        let kept = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("templates");
        std::fs::create_dir_all(&kept).unwrap();
        let wasm = kept.join("rust-todo-scan.wasm");
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
fn rust_template_builds_and_passes_its_own_test_outside_the_workspace() {
    let run = rust_template();
    insta::assert_snapshot!(run.new_output);
    // test.sh ran the unit tests natively, then the kit on the component.
    assert!(
        run.test_output.contains("test result: ok"),
        "{}",
        run.test_output
    );
    assert!(run.wasm.metadata().unwrap().len() > 0);
}

#[test]
fn rust_template_runs_in_its_sample_pipeline() {
    let step = &rust_template().scan_step;
    assert_eq!(step["report"]["status"], "Warned", "{step:#}");
    assert_eq!(
        step["report"]["summary"], "2 matches of `TODO` in 2 files",
        "{step:#}"
    );
    let findings = step["report"]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2, "{step:#}");
    assert_eq!(findings[0]["rule_id"], "todo-scan/match");
    assert_eq!(findings[0]["location"]["path"], "fixtures/src/main.c");
    assert_eq!(findings[0]["location"]["line"], 2);
    assert_eq!(findings[0]["location"]["column"], 8);
}

#[test]
fn rust_panic_fails_the_step_with_the_panic_message() {
    let project = Scaffolded::new("todo-scan", "rust");
    project.edit(
        "src/lib.rs",
        "        scan(&config, ctx.workdir(), granted_folders().as_deref())",
        "        panic!(\"boom: {} paths\", config.paths.len())",
    );
    let target = cargo_target_dir();
    project.script("./build.sh", &[("CARGO_TARGET_DIR", target.as_str())]);
    let out = project.sluice(&["run", "--format", "plain"]);
    out.expect_code(1);
    let step = step_record(&project.dir, "scan");
    let summary = step["summary"].as_str().unwrap_or_default();
    assert!(
        summary.contains("boom: 1 paths"),
        "the step's summary carries the panic message:\n{step:#}\n{}",
        out.stdout
    );
}
