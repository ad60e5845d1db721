//! The orchestration overhead of `builtin:deploy`: the built `sluice` binary deploys a
//! bundle with no-op hooks (each `exit 0`) to 50 local hosts, AllAtOnce and OneAtATime,
//! and the bench prints, per host, the deploy step's wall time minus the hooks' own
//! time, next to the hooks' own time. Run with `cargo bench -p sluice --bench deploy`.
//!
//! The hooks' own time is what the step recorded of them: the duration of every hook
//! run, as the host measured it, in the `succeeded` records of the hook events in the
//! state store (`deployment_events`). The overhead is everything else the step spent: reading the
//! records, copying the bundle, Install, the host calls and the recording itself. The
//! step's wall time is its own duration in the run record (the runner's start-up and
//! the plugin's compilation are not in it).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sluice::state::Store;

const HOSTS: usize = 50;
/// The events whose time is the hooks' own (the others are the deployment's work).
const HOOK_EVENTS: [&str; 5] = [
    "ApplicationStop",
    "BeforeInstall",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
];

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("a folder")).expect("create folders");
    std::fs::write(path, text).expect("write a file");
}

/// A project deploying a bundle of no-op hooks to `HOSTS` local hosts with `config`.
fn project(dir: &Path, config: &str) {
    let bundle = dir.join("dist/bundle");
    write(&bundle.join("app/README"), "a revision that does nothing\n");
    let mut hooks = String::new();
    for event in &HOOK_EVENTS[1..] {
        let script = format!("scripts/{event}.sh");
        write(&bundle.join(&script), "#!/bin/sh\nexit 0\n");
        std::fs::set_permissions(
            bundle.join(&script),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("make the hook executable");
        hooks.push_str(&format!(
            "  {event}:\n    - location: {script}\n      timeout: 60\n"
        ));
    }
    write(
        &bundle.join("appspec.yml"),
        &format!(
            "version: 0.0\nos: linux\nfiles:\n  - source: app\n    destination: /opt/app\nhooks:\n{hooks}"
        ),
    );
    let mut toml = String::from("[pipeline]\nname = \"bench\"\n\n");
    for i in 1..=HOSTS {
        toml.push_str(&format!(
            "[[target]]\nname = \"host-{i}\"\ngroup = \"fleet\"\nlocal = \"fleet/host-{i}\"\n\n"
        ));
    }
    toml.push_str(&format!(
        r#"[[stage]]
name = "prod"

[[stage.step]]
id = "deploy"
uses = "builtin:deploy"
timeout = "30m"
[stage.step.with]
bundle = "dist/bundle"
application = "bench"
config = {config}
[stage.step.grants]
read = ["dist"]
targets = ["fleet"]
"#
    ));
    write(&dir.join("sluice.toml"), &toml);
}

/// What one deployment cost.
struct Figures {
    wall: Duration,
    step: Duration,
    hooks: Duration,
    hook_runs: usize,
}

fn deploy(cache: &Path, config: &str) -> Figures {
    let dir = tempfile::tempdir().expect("a scratch folder");
    project(dir.path(), config);
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--format", "plain", "sluice.toml"])
        .current_dir(dir.path())
        .env("SLUICE_CACHE_DIR", cache)
        .output()
        .expect("run sluice");
    let wall = start.elapsed();
    assert!(
        out.status.success(),
        "the deployment failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs = dir.path().join(".sluice/runs");
    let run_dir = std::fs::read_dir(&runs)
        .expect("a run folder")
        .next()
        .expect("one run")
        .expect("list runs")
        .path();
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).expect("run.json"))
            .expect("run.json is JSON");
    let step_ms = run["steps"][0]["duration_ms"]
        .as_u64()
        .expect("the step's duration_ms");
    let run_id = run_dir
        .file_name()
        .expect("a name")
        .to_string_lossy()
        .into_owned();

    let store = Store::open_existing(&dir.path().join(".sluice/state.db")).expect("the store");
    let deployments = store.deployments(&run_id).expect("deployments");
    let (mut hooks, mut hook_runs) = (Duration::ZERO, 0);
    for d in &deployments {
        for e in store.deployment_events(&d.id).expect("events") {
            if HOOK_EVENTS.contains(&e.event.as_str()) && e.state == "succeeded" {
                for ms in hook_durations_ms(&e.detail) {
                    hooks += Duration::from_millis(ms);
                    hook_runs += 1;
                }
            }
        }
    }
    assert!(hook_runs > 0, "no hook durations recorded in the events");
    Figures {
        wall,
        step: Duration::from_millis(step_ms),
        hooks,
        hook_runs,
    }
}

/// The durations in a succeeded hook event's detail, as `builtin:deploy` records them:
/// `scripts/a.sh exit 0 (12 ms), scripts/b.sh exit 0 (3 ms)`.
fn hook_durations_ms(detail: &str) -> Vec<u64> {
    detail
        .split("exit 0 (")
        .skip(1)
        .filter_map(|rest| rest.split_once(" ms)")?.0.parse().ok())
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let cache = tempfile::tempdir().expect("a cache folder");
    // Compile the plugins once, outside the figures.
    let _ = deploy(cache.path(), "\"AllAtOnce\"");
    println!(
        "deploy to {HOSTS} local hosts, hooks BeforeInstall, AfterInstall, ApplicationStart, ValidateService (each `exit 0`):"
    );
    for config in ["AllAtOnce", "OneAtATime"] {
        let f = deploy(cache.path(), &format!("\"{config}\""));
        let per_host = |d: Duration| ms(d) / HOSTS as f64;
        let overhead = f.step.saturating_sub(f.hooks);
        println!(
            "  {config:<10}  step {:>8.1} ms (sluice run {:>8.1} ms), hooks' own time {:>8.1} ms over {} hook runs",
            ms(f.step),
            ms(f.wall),
            ms(f.hooks),
            f.hook_runs
        );
        println!(
            "  {config:<10}  per host: orchestration overhead {:>6.2} ms, hooks' own time {:>6.2} ms",
            per_host(overhead),
            per_host(f.hooks)
        );
    }
    println!(
        "  (AllAtOnce runs its hosts in lockstep, one lifecycle event of every host before the next, not in parallel: its hooks never overlap, so wall time minus their summed time is the whole overhead.)"
    );
}
