//! Custom organisation checks (world `policy-check`, contract 0.1.6) end to end: the
//! Python template scaffolded with `sluice plugin new --world policy-check`, built with
//! componentize-py, passing its own `./test.sh`, then referenced by a policy's
//! `[[check]] uses` and run by `sluice policy check` on a pipeline that passes and one
//! that breaks it; a check that traps, answers `err` or returns garbage is reported as
//! failed and the runner exits cleanly; a step component used as a check, and the
//! check used as a step, are refused naming their world.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::scaffolded::Scaffolded;
use crate::support::{Outcome, sluice_in};

/// The template's check, edited to misbehave on demand: `mode = "trap"` raises a
/// `ValueError`, `"err"` raises `CheckError`, `"garbage"` names a stage the pipeline
/// does not have. Built once per test run; its `.wasm` kept under the target folder.
struct BuiltCheck {
    /// The component, as the template built it (unmodified).
    template_wasm: PathBuf,
    /// The component with the `mode` switch.
    moody_wasm: PathBuf,
    /// What `./test.sh` printed.
    test_output: String,
    /// What `sluice plugin new` printed.
    new_output: String,
}

fn built_check() -> &'static BuiltCheck {
    static BUILT: OnceLock<BuiltCheck> = OnceLock::new();
    BUILT.get_or_init(|| {
        let project = scaffold("approval-gate");
        project.script("./build.sh", &[]);
        let tested = project.script("./test.sh", &[]);
        project.report_time("python policy-check");
        let kept = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("policy-checks");
        std::fs::create_dir_all(&kept).unwrap();
        let template_wasm = kept.join("approval-gate.wasm");
        std::fs::copy(project.dir.join("approval-gate.wasm"), &template_wasm).unwrap();

        project.edit(
            "approval_gate.py",
            "from sluice_plugin.policy_check import PolicyCheck,",
            "from sluice_plugin.policy_check import CheckError, PolicyCheck,",
        );
        project.edit(
            "approval_gate.py",
            "\"properties\": {",
            "\"properties\": {\"mode\": {\"enum\": [\"trap\", \"err\", \"garbage\"]},",
        );
        project.edit(
            "approval_gate.py",
            "        wanted = config.get(\"min-approvers\", 1)",
            "        mode = config.get(\"mode\")\n        if mode == \"trap\":\n            raise ValueError(\"boom in the check\")\n        if mode == \"err\":\n            raise CheckError(\"cannot judge this model\")\n        if mode == \"garbage\":\n            return [Violation(\"somewhere\", stage=\"no-such-stage\")]\n        wanted = config.get(\"min-approvers\", 1)",
        );
        project.script("./build.sh", &[]);
        let moody_wasm = kept.join("approval-gate-moody.wasm");
        std::fs::copy(project.dir.join("approval-gate.wasm"), &moody_wasm).unwrap();
        BuiltCheck {
            template_wasm,
            moody_wasm,
            test_output: format!("{}{}", tested.stdout, tested.stderr),
            new_output: project.output.clone(),
        }
    })
}

/// `sluice plugin new NAME --lang python --world policy-check` in a temp folder.
fn scaffold(name: &str) -> Scaffolded {
    let started = std::time::Instant::now();
    let temp = tempfile::Builder::new()
        .prefix("sluice-template-python-check-")
        .tempdir()
        .unwrap();
    let dir = temp.path().join(name);
    let dir_text = dir.display().to_string();
    let out = sluice_in(
        temp.path(),
        &[
            "plugin",
            "new",
            name,
            "--lang",
            "python",
            "--world",
            "policy-check",
            "--dir",
            &dir_text,
        ],
    );
    out.expect_code(0);
    Scaffolded {
        output: out.stdout.replace(&dir_text, "[DIR]"),
        _temp: temp,
        dir,
        started,
    }
}

const PASSING: &str = r#"
[pipeline]
name = "passing"

[[stage]]
name = "test"
[[stage.step]]
id = "unit"
uses = "builtin:command"
with = { run = ["true"] }
grants = { exec = ["true"] }

[[stage]]
name = "prod"
protected = true
[stage.gates.approve]
kind = "approval"
required = 2
[[stage.step]]
id = "ship"
uses = "builtin:command"
with = { run = ["true"] }
grants = { exec = ["true"] }
"#;

const FAILING: &str = r#"
[pipeline]
name = "failing"

[[stage]]
name = "test"
[[stage.step]]
id = "unit"
uses = "builtin:command"
with = { run = ["true"] }
grants = { exec = ["true"] }

[[stage]]
name = "prod"
protected = true
[[stage.step]]
id = "ship"
uses = "builtin:command"
with = { run = ["true"] }
grants = { exec = ["true"] }
"#;

/// A folder with `policy.toml` (one `[[check]]` using `wasm` with `with`),
/// `passing.toml` and `failing.toml`.
fn workspace(wasm: &Path, with: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("sluice-policy-custom-")
        .tempdir()
        .unwrap();
    std::fs::create_dir_all(dir.path().join("checks")).unwrap();
    std::fs::copy(wasm, dir.path().join("checks/approval-gate.wasm")).unwrap();
    std::fs::write(
        dir.path().join("policy.toml"),
        format!(
            r#"[policy]
name = "acme"

[[check]]
id = "approval-gate"
uses = "checks/approval-gate.wasm"
with = {with}
message = "Every production stage has an approval gate."
"#
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("passing.toml"), PASSING).unwrap();
    std::fs::write(dir.path().join("failing.toml"), FAILING).unwrap();
    dir
}

fn policy_check(dir: &Path, pipeline: &str) -> Outcome {
    sluice_in(
        dir,
        &["policy", "check", "--policy", "policy.toml", pipeline],
    )
}

fn both(out: &Outcome) -> String {
    format!("{}{}", out.stdout, out.stderr)
}

/// A clean exit: a code the CLI documents (0 to 2), no panic of the runner.
#[track_caller]
fn assert_clean_exit(out: &Outcome) {
    let text = both(out);
    assert!((0..=2).contains(&out.code), "exit {}:\n{text}", out.code);
    assert!(!text.contains("panicked at 'sluice"), "{text}");
    assert!(!text.contains("RUST_BACKTRACE"), "{text}");
}

#[test]
fn python_policy_check_template_builds_and_passes_its_own_test() {
    let built = built_check();
    insta::assert_snapshot!(built.new_output);
    // pytest ran natively, then `sluice policy check` on both fixtures.
    assert!(
        built.test_output.contains(" passed"),
        "{}",
        built.test_output
    );
    assert!(
        built
            .test_output
            .contains("the check passes fixtures/passing and reports fixtures/failing"),
        "{}",
        built.test_output
    );
}

#[test]
fn a_custom_python_check_runs_in_policy_check_on_a_passing_and_a_failing_pipeline() {
    let built = built_check();
    let dir = workspace(&built.template_wasm, "{ min-approvers = 2 }");

    let passing = policy_check(dir.path(), "passing.toml");
    passing.expect_code(0);
    assert!(
        !both(&passing).contains("reaches production"),
        "{}",
        both(&passing)
    );

    let failing = policy_check(dir.path(), "failing.toml");
    assert_clean_exit(&failing);
    let text = both(&failing);
    assert!(text.contains("approval-gate"), "{text}");
    assert!(
        text.contains("stage `prod` reaches production without an approval gate"),
        "{text}"
    );
    // Placed at the stage's `name` in the pipeline file.
    assert!(text.contains("failing.toml:14"), "{text}");
}

#[test]
fn a_custom_check_whose_config_breaks_its_schema_is_reported_at_the_policys_check() {
    let built = built_check();
    let dir = workspace(&built.template_wasm, "{ min-approvers = 0 }");
    let out = policy_check(dir.path(), "failing.toml");
    assert_clean_exit(&out);
    let text = both(&out);
    assert!(text.contains("policy.toml:"), "{text}");
    assert!(text.contains("with.min-approvers"), "{text}");
}

#[test]
fn a_trapping_custom_check_is_reported_as_failed_and_the_runner_exits_cleanly() {
    let built = built_check();
    let dir = workspace(&built.moody_wasm, "{ mode = \"trap\" }");
    let out = policy_check(dir.path(), "failing.toml");
    assert_clean_exit(&out);
    let text = both(&out);
    assert!(text.contains("plugin trapped"), "{text}");
    assert!(text.contains("ValueError: boom in the check"), "{text}");
    assert!(!text.contains("reaches production"), "{text}");
}

#[test]
fn a_custom_check_answering_err_or_garbage_is_reported_as_failed() {
    let built = built_check();
    let dir = workspace(&built.moody_wasm, "{ mode = \"err\" }");
    let out = policy_check(dir.path(), "failing.toml");
    assert_clean_exit(&out);
    assert!(
        both(&out).contains("returned an error: cannot judge this model"),
        "{}",
        both(&out)
    );

    let dir = workspace(&built.moody_wasm, "{ mode = \"garbage\" }");
    let out = policy_check(dir.path(), "failing.toml");
    assert_clean_exit(&out);
    let text = both(&out);
    assert!(text.contains("malformed output"), "{text}");
    assert!(text.contains("no-such-stage"), "{text}");
}

#[test]
fn a_step_component_used_as_a_check_is_refused_naming_its_world() {
    let python = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("templates")
        .join("python-todo-scan.wasm");
    // Any step component will do; the Python template's when another test built it,
    // else the fixture plugin every e2e run builds.
    let step = if python.is_file() {
        python
    } else {
        PathBuf::from(crate::support::adversary())
    };
    let dir = workspace(&step, "{}");
    let out = policy_check(dir.path(), "failing.toml");
    assert_clean_exit(&out);
    let text = both(&out);
    assert!(text.contains("is a step plugin (world `step`"), "{text}");
    assert!(text.contains("policy-check"), "{text}");
}

#[test]
fn a_policy_check_component_used_as_a_step_is_refused_naming_its_world() {
    let built = built_check();
    let p = crate::support::Project::new(
        r#"
[pipeline]
name = "misuse"

[[stage]]
name = "check"
[[stage.step]]
id = "rule"
uses = "./rule.wasm"
"#,
    );
    std::fs::copy(&built.template_wasm, p.path().join("rule.wasm")).unwrap();
    let out = p.sluice(&["validate"]);
    out.expect_code(2);
    let text = both(&out);
    assert!(
        text.contains("is an organisation check (world `policy-check`"),
        "{text}"
    );
}
