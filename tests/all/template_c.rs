//! `sluice plugin new --lang c`, done as a new plugin author does it: scaffold a project,
//! `./build.sh` (bindings from `sluice plugin bindgen`, Debian's clang-19 and wasi-libc,
//! the component from `sluice plugin componentize`), `./test.sh` (the C helper's native
//! tests, `sluice plugin check`, `sluice plugin test --case cases`), then the sample
//! pipeline. Prints the time from nothing to a passing plugin test and the component's
//! size (the figures the README states).
//!
//! The C toolchain comes from Debian packages (`.ci/run` installs them); a machine
//! without them fails the test, naming the packages to install. The compiler and the
//! sysroot reach the template's scripts as `WASI_CC` and `WASI_SYSROOT` when set in the
//! test's environment, as an author would set them for wasi-sdk.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::support::{Outcome, cache_dir, normalize, sluice_bin, sluice_in};

/// What Debian calls the C toolchain for wasm32 plugins.
const DEBIAN_PACKAGES: &str = "clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32";

/// Panics, naming the Debian packages, unless clang, wasm-ld, wasi-libc and
/// compiler-rt for wasm32 are all here (or `WASI_CC`/`WASI_SYSROOT` point elsewhere).
fn require_c_toolchain() {
    let mut missing = Vec::new();
    let cc = std::env::var_os("WASI_CC")
        .map(PathBuf::from)
        .or_else(|| crate::support::which("clang-19"));
    if cc.is_none() {
        missing.push("clang-19 (the compiler)".to_string());
    }
    let custom_sysroot = std::env::var_os("WASI_SYSROOT").is_some();
    let sysroot = std::env::var_os("WASI_SYSROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr"));
    if !sysroot.join("include/wasm32-wasi").is_dir()
        && !sysroot.join("include/wasm32-wasip1").is_dir()
    {
        missing.push(format!(
            "wasi-libc (no {}/include/wasm32-wasi)",
            sysroot.display()
        ));
    }
    if std::env::var_os("WASI_CC").is_none() {
        if crate::support::which("wasm-ld-19").is_none()
            && !Path::new("/usr/lib/llvm-19/bin/wasm-ld").exists()
        {
            missing.push("lld-19 (wasm-ld)".to_string());
        }
        if !custom_sysroot
            && !Path::new("/usr/lib/llvm-19/lib/clang/19/lib/wasi/libclang_rt.builtins-wasm32.a")
                .exists()
        {
            missing.push("libclang-rt-19-dev-wasm32 (compiler-rt builtins)".to_string());
        }
    }
    if crate::support::which("cc").is_none() && std::env::var_os("CC").is_none() {
        missing.push("gcc (a native C compiler for the helper's unit tests)".to_string());
    }
    assert!(
        missing.is_empty(),
        "the C template test needs Debian's C toolchain for wasm32; missing: {}. Install it with: apt-get install {DEBIAN_PACKAGES} gcc",
        missing.join(", ")
    );
}

/// `bash SCRIPT` in `dir` with the sluice under test as `$SLUICE`, under a hard time
/// limit; panics with the script's output when it fails.
fn script(dir: &Path, name: &str) -> Outcome {
    let mut command = Command::new("timeout");
    command
        .args(["600", "bash"])
        .arg(dir.join(name))
        .current_dir(dir)
        .env("SLUICE", sluice_bin())
        .env("SLUICE_CACHE_DIR", cache_dir());
    let out = Outcome::of(&mut command);
    assert_eq!(
        out.code,
        0,
        "{name} failed in {}:\nstdout:\n{}\nstderr:\n{}",
        dir.display(),
        out.stdout,
        out.stderr
    );
    out
}

/// The whole path of a new C author, timed: from nothing (a fresh folder; the Debian
/// toolchain installed) to `./test.sh` passing, then the sample pipeline and a path
/// outside the grants.
#[test]
fn c_template_builds_and_passes_its_own_test_from_nothing() {
    require_c_toolchain();
    let work = tempfile::Builder::new()
        .prefix("sluice-template-c-")
        .tempdir()
        .unwrap();
    let dir = work.path().join("todo-scan");
    let started = Instant::now();
    sluice_in(
        work.path(),
        &[
            "plugin",
            "new",
            "todo-scan",
            "--lang",
            "c",
            "--dir",
            &dir.display().to_string(),
        ],
    )
    .expect_code(0);
    let built = script(&dir, "build.sh");
    let build = started.elapsed();
    let tested = script(&dir, "test.sh");
    let total = started.elapsed();
    let size = std::fs::metadata(dir.join("todo-scan.wasm")).unwrap().len();
    println!(
        "template c: from nothing to a passing plugin test in {:.1}s (plugin new + ./build.sh {:.1}s, ./test.sh {:.1}s); component {} bytes ({:.0} KB)",
        total.as_secs_f64(),
        build.as_secs_f64(),
        (total - build).as_secs_f64(),
        size,
        size as f64 / 1e3
    );
    assert!(
        built.stdout.contains("wrote todo-scan.wasm"),
        "{}",
        built.stdout
    );
    // The test script ran the helper's native tests (the host's fingerprint vectors
    // among them), the conformance kit and the cases.
    let said = format!("{}{}", tested.stdout, tested.stderr);
    assert!(
        said.contains("sluice_plugin.h: fingerprint vectors"),
        "{said}"
    );

    // The sample pipeline runs the built component on fixtures/.
    let (out, step) = crate::scaffolded::run_pipeline(&dir, "sluice.toml", "scan");
    out.expect_code(0);
    insta::assert_snapshot!("c_template_sample_pipeline", normalize(&out.stderr, &dir));
    assert_eq!(step["status"], "warned", "{step:#}");
    assert_eq!(
        step["summary"], "2 matches of `TODO` in 2 files",
        "{step:#}"
    );
    // The C helper's findings and fingerprints are the contract's.
    crate::scaffolded::assert_sample_findings(&step);

    // A path outside the grants: run-error::denied naming the grant, not ENOTCAPABLE.
    std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
    std::fs::write(dir.join("elsewhere/a.txt"), "TODO\n").unwrap();
    let pipeline = std::fs::read_to_string(dir.join("sluice.toml"))
        .unwrap()
        .replace("paths = [\"fixtures\"]", "paths = [\"elsewhere\"]");
    std::fs::write(dir.join("denied.toml"), pipeline).unwrap();
    let (out, step) = crate::scaffolded::run_pipeline(&dir, "denied.toml", "scan");
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        step["summary"],
        "denied: cannot read `elsewhere`: the step has no read grant covering it; add `read = [\"elsewhere\"]` to the step's grants",
        "{step:#}"
    );
}

/// The C helper's copy of the fingerprint test vectors (sdk/c/test/vectors.h) is what
/// its generator makes from the host's crates/fingerprint/tests/vectors.json: a vector
/// added to the reference reaches the C tests.
#[test]
fn the_c_helpers_fingerprint_vectors_are_the_hosts() {
    let root = Path::new(sluice_tests::WORKSPACE_ROOT);
    let vectors = root.join("crates/fingerprint/tests/vectors.json");
    assert!(
        vectors.is_file(),
        "{} is missing: the reference vectors of the fingerprint (crates/fingerprint)",
        vectors.display()
    );
    let out = Command::new("python3")
        .arg(root.join("sdk/c/test/gen_vectors.py"))
        .arg(&vectors)
        .output()
        .expect("run python3 sdk/c/test/gen_vectors.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read_to_string(root.join("sdk/c/test/vectors.h")).unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "sdk/c/test/vectors.h is stale: run `python3 sdk/c/test/gen_vectors.py crates/fingerprint/tests/vectors.json > sdk/c/test/vectors.h`"
    );
}

/// `plugin bindgen` writes the C bindings of either world; `plugin componentize`
/// refuses what is not a core module, naming the file and what is wrong.
#[test]
fn the_toolkit_writes_bindings_and_refuses_what_is_not_a_core_module() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let out = sluice_in(
        dir,
        &[
            "plugin", "bindgen", "--lang", "c", "--world", "monitor", "--out", "gen",
        ],
    );
    out.expect_code(0);
    insta::assert_snapshot!("toolkit_bindgen_c_monitor", normalize(&out.stdout, dir));
    for file in ["monitor.h", "monitor.c", "monitor_component_type.o"] {
        assert!(dir.join("gen").join(file).is_file(), "no gen/{file}");
    }
    assert_eq!(
        sluice_in(
            dir,
            &[
                "plugin",
                "bindgen",
                "--lang",
                "c",
                "--go-package",
                "x",
                "--out",
                "g"
            ]
        )
        .code,
        2
    );

    std::fs::write(dir.join("build.sh"), "#!/bin/sh\n").unwrap();
    std::fs::copy(crate::support::adversary(), dir.join("plugin.wasm")).unwrap();
    let mut refusals = String::new();
    for (module, why) in [
        ("build.sh", "a script"),
        ("missing.wasm", "no such file"),
        ("plugin.wasm", "a component already"),
    ] {
        let out = sluice_in(dir, &["plugin", "componentize", module, "-o", "out.wasm"]);
        assert_eq!(out.code, 2, "{why}: {}", out.stderr);
        refusals.push_str(&format!(
            "$ sluice plugin componentize {module} -o out.wasm\n"
        ));
        refusals.push_str(&normalize(&out.stderr, dir));
    }
    insta::assert_snapshot!("toolkit_componentize_refusals", refusals);
    assert!(
        !dir.join("out.wasm").exists(),
        "a refused module wrote output"
    );
}

/// A C plugin that cannot go on (`sluice_panic`, a failed `assert`) fails its step with
/// the line it wrote, not a bare wasm trap.
#[test]
fn c_plugin_panics_and_failed_asserts_fail_the_step_with_their_line() {
    require_c_toolchain();
    let work = tempfile::Builder::new()
        .prefix("sluice-template-c-panic-")
        .tempdir()
        .unwrap();
    let dir = work.path().join("todo-scan");
    sluice_in(
        work.path(),
        &[
            "plugin",
            "new",
            "todo-scan",
            "--lang",
            "c",
            "--dir",
            &dir.display().to_string(),
        ],
    )
    .expect_code(0);
    let source_path = dir.join("todo_scan.c");
    let source = std::fs::read_to_string(&source_path).unwrap();
    let failing = source.replacen(
        "\n    file_list_t files = {0};\n",
        "\n    if (strcmp(pattern, \"boom\") == 0) sluice_panic(\"boom: %s\", paths->items[0].string);\n    assert(strcmp(pattern, \"assert\") != 0);\n    file_list_t files = {0};\n",
        1,
    );
    assert_ne!(
        source, failing,
        "the template's scan changed: update this test"
    );
    std::fs::write(&source_path, format!("#include <assert.h>\n{failing}")).unwrap();
    script(&dir, "build.sh");
    let pipeline = std::fs::read_to_string(dir.join("sluice.toml")).unwrap();
    for (pattern, line) in [
        ("boom", "panic: boom: fixtures".to_string()),
        (
            "assert",
            "Assertion failed: strcmp(pattern, \"assert\") != 0".to_string(),
        ),
    ] {
        let file = format!("{pattern}.toml");
        std::fs::write(
            dir.join(&file),
            pipeline.replace("pattern = \"TODO\"", &format!("pattern = \"{pattern}\"")),
        )
        .unwrap();
        let (out, step) = crate::scaffolded::run_pipeline(&dir, &file, "scan");
        assert_ne!(out.code, 0, "{}", out.stderr);
        let summary = step["summary"].as_str().unwrap();
        assert!(summary.contains(&line), "{pattern}: {summary}");
    }
}
