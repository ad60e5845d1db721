//! `sluice plugin new --lang js` as a new author uses it: scaffold into a temporary
//! folder, `npm install` (componentize-js from npm, through an npm cache kept under
//! the test tools folder), `./build.sh`, `./test.sh` (node --test, then `sluice plugin
//! check` and `sluice plugin test --case cases`), then the sample pipeline. The time
//! from nothing to a passing test and the component's size are printed
//! (`cargo test ... template_js -- --nocapture`).
//!
//! Node.js 20+ and npm must be on PATH (Debian: `apt-get install nodejs npm`), and the
//! npm registry reachable on a first run; without them the test fails saying so.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::{cache_dir, sluice_bin, which};

/// Where toolchains and their caches live between runs: `SLUICE_TEST_TOOLS`, or
/// `target/test-tools/`.
fn test_tools() -> PathBuf {
    let dir = std::env::var_os("SLUICE_TEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("the target folder holds tmp/")
                .join("test-tools")
        });
    std::fs::create_dir_all(&dir).expect("create the test tools folder");
    dir
}

/// `program args` in `dir` under a hard time limit (coreutils `timeout`, which kills
/// the whole command on expiry), with the project's environment.
fn run_capped(dir: &Path, limit: Duration, program: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("--kill-after=10")
        .arg(limit.as_secs().to_string())
        .arg(program)
        .args(args)
        .current_dir(dir)
        .env("SLUICE", sluice_bin())
        .env("SLUICE_CACHE_DIR", cache_dir())
        .env("npm_config_cache", test_tools().join("npm-cache"))
        .env("npm_config_update_notifier", "false")
        .env_remove("SLUICE_LOG")
        .output()
        .unwrap_or_else(|err| panic!("cannot start {program}: {err}"))
}

#[track_caller]
fn expect_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Node.js 20 or newer and npm, or a failure saying what to install.
fn require_node() {
    let missing: Vec<&str> = ["node", "npm"]
        .into_iter()
        .filter(|tool| which(tool).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "the JavaScript template needs {} on PATH: install Node.js 20+ and npm (Debian: apt-get install nodejs npm)",
        missing.join(" and ")
    );
    let version = Command::new("node")
        .arg("--version")
        .output()
        .expect("run node --version");
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "componentize-js needs Node.js 20 or newer; PATH has node {version}"
    );
}

/// A scaffolded, installed and built project.
struct Built {
    _dir: tempfile::TempDir,
    project: PathBuf,
    wasm: PathBuf,
    elapsed_to_build: Duration,
    started: Instant,
}

fn scaffold_install_build(name: &str) -> Built {
    require_node();
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("sluice-template-js-")
        .tempdir()
        .expect("create a temp folder");
    let project = dir.path().join(name);
    let out = Command::new(sluice_bin())
        .args(["plugin", "new", name, "--lang", "js", "--dir"])
        .arg(&project)
        .output()
        .expect("run sluice plugin new");
    expect_success("sluice plugin new --lang js", &out);

    let out = run_capped(
        &project,
        Duration::from_secs(900),
        "npm",
        &["install", "--no-audit", "--no-fund", "--prefer-offline"],
    );
    assert!(
        out.status.success(),
        "npm install failed ({}): is the npm registry (registry.npmjs.org) reachable? The cache is {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        test_tools().join("npm-cache").display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let out = run_capped(&project, Duration::from_secs(900), "./build.sh", &[]);
    expect_success("./build.sh", &out);
    let wasm = project.join(format!("{name}.wasm"));
    assert!(wasm.is_file(), "./build.sh made no {}", wasm.display());
    Built {
        _dir: dir,
        project,
        wasm,
        elapsed_to_build: started.elapsed(),
        started,
    }
}

#[test]
fn js_template_builds_and_passes_its_own_test_then_runs_in_its_pipeline() {
    let built = scaffold_install_build("todo-scan");
    let out = run_capped(&built.project, Duration::from_secs(600), "./test.sh", &[]);
    expect_success("./test.sh", &out);
    let to_passing = built.started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("# fail 0"),
        "node --test did not pass:\n{stdout}"
    );
    let size = std::fs::metadata(&built.wasm).expect("the component").len();
    println!(
        "template js: nothing to a passing test in {:.1} s (build done at {:.1} s); component {:.1} MB",
        to_passing.as_secs_f64(),
        built.elapsed_to_build.as_secs_f64(),
        size as f64 / 1e6
    );

    // The sample pipeline: the plugin on fixtures/, as a step.
    let out = Command::new(sluice_bin())
        .args(["run", "--format", "plain"])
        .current_dir(&built.project)
        .env("SLUICE_CACHE_DIR", cache_dir())
        .env_remove("SLUICE_LOG")
        .output()
        .expect("run sluice run");
    // `sluice run` shows its progress on stderr.
    let shown = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the sample pipeline failed\n--- stdout\n{}\n--- stderr\n{shown}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        shown.contains("2 matches of `TODO` in 2 files"),
        "the sample pipeline's summary is missing:\n{shown}"
    );
    same_fingerprints_as_the_reference(&built.project);

    // A bug: the exception ends the step as `failed`, its summary naming the error
    // (`TypeError: ...`) and its log holding the stack.
    let scan = built.project.join("src/scan.js");
    let source = std::fs::read_to_string(&scan).expect("read src/scan.js");
    let source = source.replacen(
        "  const scanned = ",
        "  if (pattern === 'TODO') throw new TypeError(`boom: ${pattern}`);\n  const scanned = ",
        1,
    );
    std::fs::write(&scan, source).expect("write src/scan.js");
    let out = run_capped(&built.project, Duration::from_secs(900), "./build.sh", &[]);
    expect_success("./build.sh after the bug", &out);
    let out = Command::new(sluice_bin())
        .args(["run", "--format", "plain"])
        .current_dir(&built.project)
        .env("SLUICE_CACHE_DIR", cache_dir())
        .env_remove("SLUICE_LOG")
        .output()
        .expect("run sluice run");
    let shown = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the step did not fail:\n{shown}"
    );
    assert!(
        shown.contains("FAIL check/scan") && shown.contains("TypeError: boom: TODO"),
        "the failure does not name the exception:\n{shown}"
    );
    assert!(
        shown.contains("scan@src/scan.js:"),
        "the step log has no stack frame of the plugin:\n{shown}"
    );
}

/// The fingerprints the JS component computed (in the guest, with the helper) are those
/// of the reference implementation (crates/fingerprint) for the same findings: one
/// finding has one identity in JavaScript, Rust and the host.
fn same_fingerprints_as_the_reference(project: &Path) {
    let runs = project.join(".sluice/runs");
    let run = std::fs::read_dir(&runs)
        .expect("the sample pipeline's run folder")
        .map(|entry| entry.expect("list runs").path())
        .max()
        .expect("one run");
    let step: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("steps/scan.json")).expect("the step's record"),
    )
    .expect("the step's record is JSON");
    let findings = step["report"]["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 2, "{step:#}");
    let keys: Vec<sluice_fingerprint::FindingKey<'_>> = findings
        .iter()
        .map(|finding| sluice_fingerprint::FindingKey {
            rule_id: finding["rule_id"].as_str().expect("rule_id"),
            message: finding["message"].as_str().expect("message"),
            path: finding["location"]["path"].as_str(),
            line: finding["location"]["line"].as_u64().map(|line| line as u32),
            column: finding["location"]["column"]
                .as_u64()
                .map(|column| column as u32),
        })
        .collect();
    let expected =
        sluice_fingerprint::fingerprints(&keys, |path| std::fs::read(project.join(path)).ok());
    let actual: Vec<&str> = findings
        .iter()
        .map(|finding| finding["fingerprint"].as_str().expect("fingerprint"))
        .collect();
    assert_eq!(
        actual, expected,
        "the JS helper's fingerprints differ from crates/fingerprint's"
    );
    // Hashed from the line's text, not the message fallback.
    assert_ne!(
        expected[0].split(':').next(),
        Some(
            sluice_fingerprint::message_hash(keys[0].rule_id, keys[0].path, keys[0].message)
                .as_str()
        )
    );
}

/// The JS helper's copy of the fingerprint test vectors is the reference's, and the
/// helper passes them natively (`node --test`, no component).
#[test]
fn js_helper_passes_the_fingerprint_vectors_of_the_reference() {
    require_node();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let reference = std::fs::read(root.join("crates/fingerprint/tests/vectors.json"))
        .expect("crates/fingerprint/tests/vectors.json");
    let copy = std::fs::read(root.join("sdk/js/test/fingerprint-vectors.json"))
        .expect("sdk/js/test/fingerprint-vectors.json");
    assert!(
        reference == copy,
        "sdk/js/test/fingerprint-vectors.json is not crates/fingerprint/tests/vectors.json: copy it again"
    );
    let out = run_capped(
        &root.join("sdk/js"),
        Duration::from_secs(120),
        "node",
        &["--test"],
    );
    expect_success("node --test in sdk/js", &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("# fail 0") && !stdout.contains("# pass 0"),
        "{stdout}"
    );
}
