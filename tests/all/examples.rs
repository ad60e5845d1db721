//! The pipelines under `examples/` run as the README says they do.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::{Outcome, Project, sluice_in};

fn example(name: &str) -> PathBuf {
    Path::new(sluice_tests::WORKSPACE_ROOT)
        .join("examples")
        .join(name)
}

fn run_example(dir: &Path) -> (Outcome, tempfile::TempDir) {
    let runs = tempfile::tempdir().unwrap();
    let runs_dir = runs.path().display().to_string();
    let out = sluice_in(dir, &["run", "--format", "plain", "--runs-dir", &runs_dir]);
    (out, runs)
}

/// The README's first command: `examples/quickstart/run.sh`, on a copy of the example
/// with ports of its own. Both passes run (1.0.0 deployed in waves and promoted, 1.1.0
/// rolled back), what every host serves is shown, and no service is left running.
#[test]
fn quickstart_demo_runs_both_passes_and_stops_the_fleet() {
    let work = tempfile::Builder::new()
        .prefix("sluice-quickstart-demo-")
        .tempdir()
        .unwrap();
    let dir = work.path().join("quickstart");
    crate::support::copy_tree(&example("quickstart"), &dir);
    for leftover in [".fleet", "dist"] {
        let _ = std::fs::remove_dir_all(dir.join(leftover));
    }
    let listeners: Vec<std::net::TcpListener> = (0..5)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    drop(listeners);
    for file in ["sluice.toml", "release-1.1.toml"] {
        let mut text = std::fs::read_to_string(dir.join(file)).unwrap();
        for (i, port) in ports.iter().enumerate() {
            text = text.replace(&format!("1818{}", i + 1), &port.to_string());
        }
        std::fs::write(dir.join(file), text).unwrap();
    }
    let out = Outcome::of(
        Command::new("bash")
            .arg(dir.join("run.sh"))
            .env("SLUICE", crate::support::sluice_bin())
            .env("SLUICE_CACHE_DIR", crate::support::cache_dir())
            .env_remove("SLUICE_TEST_CLOCK")
            .env_remove("GITHUB_STEP_SUMMARY"),
    );
    // Whatever happened, no service outlives the test.
    for pid_file in (1..=5).map(|i| dir.join(format!(".fleet/box-{i}/run/hello.pid"))) {
        if let Ok(pid) = std::fs::read_to_string(&pid_file) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
            panic!("run.sh left {} behind", pid_file.display());
        }
    }
    out.expect_code(0);
    let text = &out.stdout;
    assert!(text.contains("== pass 1"), "{text}");
    assert!(text.contains("== pass 2"), "{text}");
    assert_eq!(
        text.matches(": 200 hello 1.0.0").count(),
        10,
        "every host serves 1.0.0 after both passes:\n{text}"
    );
    assert!(!text.contains(": 200 hello 1.1.0"), "{text}");
    assert!(
        text.contains("rolled back 1 target to 1.0.0"),
        "the run's status says what happened:\n{text}"
    );
    // The promotion stage was never entered: its step is skipped, not finished.
    assert!(
        text.contains("not reached  0/1 steps finished, 1 skipped"),
        "status counts a skipped step apart:\n{text}"
    );
    for port in &ports {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", *port)).is_err(),
            "something still listens on {port} after run.sh:\n{text}"
        );
    }
}

#[test]
fn rust_example_plugin_runs() {
    // The example's pipeline points at the component the tests' build script built.
    let p = Project::new(&format!(
        r#"
[pipeline]
name = "budget"

[[stage]]
name = "check"

[[stage.step]]
id = "sizes"
uses = "{}"
with = {{ files = ["small.txt", "big.txt"], max-bytes = 100 }}

[stage.step.grants]
read = ["."]
"#,
        sluice_tests::FILE_BUDGET
    ));
    p.write("small.txt", "tiny");
    p.write("big.txt", &"x".repeat(500));
    p.run(&[]).expect_code(1);
    let step = p.step("sizes");
    let findings = step["report"]["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{step:#}");
    assert_eq!(findings[0]["location"]["path"], "big.txt");
    let metrics = step["report"]["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 2, "{step:#}");
}

/// Build the Python example with componentize-py (installed from PyPI when missing).
fn python_component() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = example("python-plugin");
        let status = Command::new("bash")
            .arg(dir.join("build.sh"))
            .current_dir(&dir)
            .status()
            .expect("run examples/python-plugin/build.sh");
        assert!(status.success(), "examples/python-plugin/build.sh failed");
        let wasm = dir.join("build").join("todo_scan.wasm");
        assert!(wasm.exists(), "build.sh made no {}", wasm.display());
        wasm
    })
}

#[test]
fn python_example_plugin_runs() {
    python_component();
    let (out, runs) = run_example(&example("python-plugin"));
    // The sample sources hold TODO markers, which the plugin reports as a warning.
    out.expect_code(0);
    let run_dir = std::fs::read_dir(runs.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    let step = &run["steps"][0];
    assert_eq!(step["status"], "warned", "{step:#}");
    let findings = step["report"]["findings"].as_array().unwrap();
    assert!(!findings.is_empty(), "{step:#}");
    assert!(
        findings
            .iter()
            .all(|f| f["location"]["line"].as_u64().unwrap() > 0)
    );
}

#[test]
fn promotion_example_waits_for_approvals_and_the_window_then_resumes() {
    let state = tempfile::tempdir().unwrap();
    let db = state.path().join("state.db").display().to_string();
    let clock = state.path().join("clock");
    // A Monday, 11:00 in Berlin: the window is open; only the approvals are missing.
    std::fs::write(&clock, "2026-11-30T10:00:00Z").unwrap();
    let dir = example("promotion");
    let runs = tempfile::tempdir().unwrap();
    let runs_dir = runs.path().display().to_string();
    let sluice = |actor: &str, args: &[&str]| {
        let mut cmd = crate::support::command_in(&dir, args);
        cmd.env("SLUICE_TEST_CLOCK", &clock)
            .env("SLUICE_ACTOR", actor)
            .args(["--state", &db]);
        Outcome::of(&mut cmd)
    };
    let out = sluice(
        "ci",
        &[
            "run",
            "--format",
            "plain",
            "--no-wait",
            "--runs-dir",
            &runs_dir,
        ],
    );
    out.expect_code(4);
    assert!(
        out.stderr.contains("PASS staging/deploy-staging"),
        "{}",
        out.stderr
    );
    let run = regex::Regex::new(r"\(run (\S+)\)")
        .unwrap()
        .captures(&out.stderr)
        .unwrap()[1]
        .to_string();
    for who in ["alice", "bob"] {
        sluice(
            who,
            &[
                "approve",
                &run,
                "--stage",
                "prod",
                "--reason",
                "release 1.4.2",
            ],
        )
        .expect_code(0);
    }
    let out = sluice("ci", &["resume", &run, "--format", "plain"]);
    out.expect_code(0);
    assert!(
        out.stderr.contains("PASS prod/deploy-prod"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("not run again"), "{}", out.stderr);
}

/// A free loopback port (bound, then released for the server to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `python3 -m http.server`, as the health example's comments start it; killed by PID
/// on drop.
struct StandInService(std::process::Child);

impl StandInService {
    fn start(site: &Path, port: u16) -> StandInService {
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(site)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs http.server");
        let service = StandInService(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "http.server did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        service
    }
}

impl Drop for StandInService {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn health_example_bakes_on_a_live_service_and_fails_its_bake_when_the_service_goes_down() {
    // The example as written, scaled down in time and on a free port: checks every
    // 200 ms, a 1 s bake.
    let port = free_port();
    let text = std::fs::read_to_string(example("health").join("sluice.toml"))
        .unwrap()
        .replace("8080", &port.to_string())
        .replace("interval = \"2s\"", "interval = \"200ms\"")
        .replace("duration = \"10s\"", "duration = \"1s\"");
    assert!(text.contains("interval = \"200ms\"") && text.contains("duration = \"1s\""));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sluice.toml"), text).unwrap();
    let service = StandInService::start(&example("health").join("site"), port);

    let out = sluice_in(dir.path(), &["run", "--format", "plain"]);
    out.expect_code(0);
    assert!(
        out.stderr.contains("PASS prod/deploy-prod"),
        "{}",
        out.stderr
    );

    drop(service);
    let out = sluice_in(dir.path(), &["run", "--format", "plain"]);
    out.expect_code(1);
    assert!(out.stderr.contains("bake failed"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("PASS prod/deploy-prod"),
        "{}",
        out.stderr
    );
}
