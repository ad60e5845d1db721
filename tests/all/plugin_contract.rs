//! The contract's host side (0.1.5), end to end: fingerprints the host computes for a
//! plugin that leaves them empty (the same ones the Rust SDK computes), a trapped
//! plugin's summary naming its last error line, components refused at load for an
//! interface the runner lacks or another contract version, and the binary's edge
//! (a closed stdout is never a panic).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::{Outcome, Project, normalize, which};

/// A project with `src/a.txt` (granted) and `secret/b.txt` (not granted), both holding
/// TODO lines, and one step per `(id, uses, with)`, each granted `read = ["src"]`.
fn scan_project(steps: &[(&str, &str, &str)]) -> Project {
    let mut toml = String::from("[pipeline]\nname = \"contract\"\n\n[[stage]]\nname = \"scan\"\n");
    for (id, uses, with) in steps {
        toml.push_str(&format!(
            "\n[[stage.step]]\nid = \"{id}\"\nuses = \"{uses}\"\nwith = {with}\nallow-failure = true\n\n[stage.step.grants]\nread = [\"src\"]\n"
        ));
    }
    let p = Project::new(&toml);
    p.write("src/a.txt", "x\n    TODO one\nTODO two\n\tTODO one\n");
    p.write("secret/b.txt", "TODO secret\n");
    p
}

fn fingerprints(p: &Project, id: &str) -> Vec<String> {
    let step = p.step(id);
    step["report"]["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("step {id} has no findings: {step:#}"))
        .iter()
        .map(|finding| finding["fingerprint"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_plugin_leaving_fingerprints_empty_gets_the_ones_the_rust_sdk_computes() {
    let with = r#"{ paths = ["src/a.txt", "secret/b.txt"], pattern = "TODO" }"#;
    let sdk_with =
        r#"{ mode = "todo-scan", paths = ["src/a.txt", "secret/b.txt"], pattern = "TODO" }"#;
    let p = scan_project(&[
        ("raw", sluice_tests::RAW_FINDINGS, with),
        ("sdk", crate::support::adversary(), sdk_with),
    ]);
    p.run(&[]).expect_code(0);
    let from_host = fingerprints(&p, "raw");
    let from_sdk = fingerprints(&p, "sdk");
    assert_eq!(from_host, from_sdk);
    // The algorithm itself: lines 2 and 4 read the same once whitespace is removed, so
    // they share the hash and count 1 and 2; the file outside the step's grants is
    // never read by the host (its TODO line would give a line hash): the message stands in.
    let line = |text: &str, occurrence: u32| {
        format!(
            "{}:{occurrence}",
            sluice_fingerprint::line_hash("raw/match", "src/a.txt", text)
        )
    };
    let unreadable = format!(
        "{}:1",
        sluice_fingerprint::message_hash("raw/match", Some("secret/b.txt"), "found unreadable")
    );
    assert_eq!(
        from_host,
        [
            line("TODO one", 1),
            line("TODO two", 1),
            line("TODO one", 2),
            unreadable
        ]
    );
}

fn one_step(uses: &str, with: &str) -> Project {
    Project::new(&format!(
        "[pipeline]\nname = \"contract\"\n\n[[stage]]\nname = \"check\"\n\n[[stage.step]]\nid = \"bad\"\nuses = \"{uses}\"\nwith = {with}\n"
    ))
}

fn summary(p: &Project, id: &str) -> String {
    p.step(id)["summary"].as_str().unwrap().to_owned()
}

#[test]
fn a_rust_panic_fails_the_step_with_the_panic_message_in_its_summary() {
    let p = one_step(crate::support::adversary(), r#"{ mode = "panic" }"#);
    p.run(&[]).expect_code(1);
    let summary = summary(&p, "bad");
    let expected = regex::Regex::new(
        r"^plugin trapped: panicked at tests/fixtures/adversary/src/lib\.rs:\d+:\d+: fixture panic \(wasm trap: .*unreachable.*; backtrace in the step log\)$",
    )
    .unwrap();
    assert!(expected.is_match(&summary), "{summary}");
    // The wasm frames are in the log, not the summary.
    let log = p.step_log("bad");
    let frame = regex::Regex::new(r"(?m)^\[sluice\]\s+0:\s+0x[0-9a-f]+ - ").unwrap();
    assert!(frame.is_match(&log), "{log}");
}

#[test]
fn a_trap_without_an_error_line_says_the_trap_alone() {
    let p = one_step(crate::support::adversary(), r#"{ mode = "trap" }"#);
    p.run(&[]).expect_code(1);
    let summary = summary(&p, "bad");
    assert!(
        summary.starts_with("plugin trapped: wasm trap: ") && !summary.contains('\n'),
        "{summary}"
    );
}

/// componentize-py, from PATH or installed from PyPI into the test tools folder.
fn componentize_py() -> PathBuf {
    if let Some(found) = which("componentize-py") {
        return found;
    }
    let tools = std::env::var_os("SLUICE_TEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(sluice_tests::WORKSPACE_ROOT).join("target/test-tools"));
    let dir = tools.join("componentize-py-0.25.1");
    let bin = dir.join("bin").join("componentize-py");
    if !bin.exists() {
        let status = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--target"])
            .arg(&dir)
            .arg("componentize-py==0.25.1")
            .status()
            .expect("python3 is needed to install componentize-py");
        assert!(
            status.success() && bin.exists(),
            "componentize-py is missing and `pip install --target {} componentize-py==0.25.1` failed",
            dir.display()
        );
    }
    bin
}

const PYTHON_BOOM: &str = r#"from wit_world import exports
from wit_world.imports import sluice_plugin_types as types


def scan(config):
    raise ValueError("boom")


class Plugin(exports.Plugin):
    def describe(self) -> types.Descriptor:
        return types.Descriptor(
            name="boom",
            version="0.1.0",
            summary="Raises ValueError",
            config_schema='{"type":"object","additionalProperties":false}',
            capabilities=[],
        )

    def run(self, input: types.StepInput) -> types.Report:
        scan(input.config)
"#;

#[test]
fn a_python_exception_fails_the_step_with_the_exception_line() {
    let p = one_step("boom.wasm", "{}");
    p.write("app.py", PYTHON_BOOM);
    let bin = componentize_py();
    let wit = Path::new(sluice_tests::WORKSPACE_ROOT).join("wit");
    let mut build = Command::new(&bin);
    build
        .arg("-d")
        .arg(&wit)
        .args(["-w", "step", "componentize", "app", "-o", "boom.wasm"])
        .current_dir(p.path());
    if let Some(lib) = bin.parent().and_then(Path::parent) {
        // Installed with `pip --target`: its package is next to `bin/`.
        build.env("PYTHONPATH", lib);
    }
    let built = Outcome::of(&mut build);
    built.expect_code(0);
    p.run(&[]).expect_code(1);
    let summary = summary(&p, "bad");
    assert!(
        summary.starts_with("plugin trapped: ValueError: boom (wasm trap: "),
        "{summary}"
    );
    assert!(
        p.step_log("bad")
            .contains("[stderr] Traceback (most recent call last):")
    );
}

#[test]
fn a_component_importing_an_interface_the_runner_lacks_is_refused_naming_it() {
    let p = one_step(sluice_tests::MISSING_IMPORT, "{}");
    let out = p.sluice(&["validate"]);
    out.expect_code(2);
    let shown = normalize(&out.stderr, p.path()).replace(sluice_tests::MISSING_IMPORT, "[FIXTURE]");
    insta::assert_snapshot!(shown);
}

#[test]
fn a_component_of_another_contract_version_is_refused_naming_this_runners() {
    let p = one_step(sluice_tests::CONTRACT_0_2_0, "{}");
    let out = p.sluice(&["validate"]);
    out.expect_code(2);
    let shown = normalize(&out.stderr, p.path()).replace(sluice_tests::CONTRACT_0_2_0, "[FIXTURE]");
    insta::assert_snapshot!(shown);
}

/// `sluice <args>` in `dir` with its stdout a pipe whose read end is closed before
/// the command writes: what `sluice … | head -1` does to it.
fn with_stdout_closed(dir: &Path, args: &[&str]) -> Outcome {
    let mut child = crate::support::command_in(dir, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sluice");
    drop(child.stdout.take());
    Outcome::from_child(child)
}

#[test]
fn a_closed_stdout_ends_output_quietly_with_the_commands_own_exit_code() {
    let p = one_step(crate::support::adversary(), r#"{ mode = "ok" }"#);
    for (args, code) in [
        (&["plugins"][..], 0),
        (&["plugins", "--json"][..], 0),
        (&["plugin", "info", "builtin:lint", "--json"][..], 0),
        (&["plugin", "info", "builtin:command"][..], 0),
        (&["--help"][..], 0),
        (&["run", "--format", "json"][..], 0),
        (&["status", "--format", "json"][..], 0),
        (&["plugin", "info", "builtin:nope"][..], 2),
    ] {
        let out = with_stdout_closed(p.path(), args);
        assert_eq!(out.code, code, "sluice {args:?}: {}", out.stderr);
        assert!(
            !out.stderr.contains("panicked") && !out.stderr.contains("internal error"),
            "sluice {args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn the_exit_codes_are_in_sluice_help() {
    let out = crate::support::sluice_in(Path::new("."), &["--help"]);
    out.expect_code(0);
    for line in [
        "  1              the pipeline failed",
        "  3              internal error: the async runtime or a thread could not start, or a bug",
        "  129, 130, 143  stopped by SIGHUP, SIGINT or SIGTERM",
        "A closed stdout or stderr",
    ] {
        assert!(out.stdout.contains(line), "{line:?} in\n{}", out.stdout);
    }
}

fn grants_step(path: &str) -> Project {
    let p = Project::new(&format!(
        r#"[pipeline]
name = "contract"

[[stage]]
name = "check"

[[stage.step]]
id = "grants"
uses = "{{adversary}}"
with = {{ mode = "grants", path = "{path}" }}

[stage.step.grants]
read = ["src"]
write = ["out"]
exec = ["git"]
env = ["HOME"]
"#
    ));
    p.write("src/main.rs", "fn main() {}\n");
    p.write("secret/key", "k\n");
    p
}

#[test]
fn the_sdk_sees_its_grants_and_a_path_outside_them_is_denied_naming_the_grant() {
    let p = grants_step("src/../src/main.rs");
    p.run(&[]).expect_code(0);
    let step = p.step("grants");
    let root = p.path().canonicalize().unwrap();
    let output = |name| crate::support::output(&step, name);
    assert_eq!(output("read"), root.join("src").display().to_string());
    assert_eq!(output("write"), root.join("out").display().to_string());
    assert_eq!(output("exec"), "git");
    assert_eq!(output("env"), "HOME");
    assert_eq!(
        output("path"),
        p.path().join("src/main.rs").display().to_string()
    );

    let p = grants_step("secret/key");
    p.run(&[]).expect_code(1);
    assert_eq!(
        normalize(&summary(&p, "grants"), p.path()),
        "denied: cannot read [PROJECT]/secret/key: the step has no `read` grant covering it \
         (add it under [stage.step.grants] read)"
    );
}
