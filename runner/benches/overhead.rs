//! Benchmarks of the runner's own overhead. Prints its figures; run with
//! `cargo bench -p sluice --bench overhead`.
//!
//! 1. Warm per-step overhead: a fresh store and instance of a cached plugin, plus the
//!    `run` call of a trivial step (target: at most 100 µs, a tenth of spawning
//!    `/bin/true`).
//! 2. The cost of spawning `/bin/true`, for scale.
//! 3. `sluice run` of a 100-step pipeline with a warm component cache, end to end
//!    (target: under 50 ms).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sluice::capabilities::StepSandbox;
use sluice::capabilities::logs::StepLog;
use sluice::config::{Grants, PluginRef, Step};
use sluice::host::bindings::types::StepInput;
use sluice::host::cache::CacheRoot;
use sluice::host::engine::EngineProfile;
use sluice::host::plugin::PluginHost;
use sluice::host::step::{AttemptLimits, run_attempt};

fn stats(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let n = samples.len();
    let mean = samples.iter().sum::<Duration>() / n as u32;
    let pct = |p: f64| samples[((n as f64 * p) as usize).min(n - 1)];
    println!(
        "{name:<44} n={n:<5} mean={:>9.1?} p50={:>9.1?} p99={:>9.1?} min={:>9.1?}",
        mean,
        pct(0.50),
        pct(0.99),
        samples[0]
    );
}

fn trivial_step() -> Step {
    Step {
        id: "bench".into(),
        uses: PluginRef::File(PathBuf::from(sluice_tests::ADVERSARY)),
        with: serde_json::json!({ "mode": "ok" }),
        needs: vec![],
        timeout: Duration::from_secs(30),
        memory: 64 << 20,
        retries: 0,
        retry_delay: Duration::from_secs(1),
        allow_failure: false,
        processes: sluice::config::DEFAULT_STEP_PROCESSES,
        tmpdir_size: sluice::config::DEFAULT_STEP_TMPDIR_SIZE,
        grants: Grants::default(),
        stage_index: 0,
        step_index: 0,
    }
}

fn warm_step_overhead(runtime: &tokio::runtime::Runtime, pooling: bool) {
    let cache = tempfile::tempdir().unwrap();
    let host = PluginHost::new(
        EngineProfile {
            max_concurrent_steps: 4,
            pooling,
        },
        Some(CacheRoot::open(cache.path()).unwrap()),
    )
    .unwrap();
    let step = trivial_step();
    let plugin = runtime.block_on(host.load(&step.uses)).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let log = StepLog::in_memory(1 << 20);
    let sandbox = StepSandbox::resolve(
        &step,
        scratch.path().to_path_buf(),
        scratch.path().join("tmp"),
        false,
        &log,
    )
    .unwrap();
    let limits = AttemptLimits {
        timeout: step.timeout,
        memory: step.memory,
    };
    let input = StepInput {
        run_id: "bench".into(),
        pipeline: "bench".into(),
        stage: "bench".into(),
        step: "bench".into(),
        config: step.with.to_string(),
        artifact: None,
        outputs: vec![],
        workdir: scratch.path().display().to_string(),
        attempt: 1,
        plugins: vec![],
    };
    let mut samples = Vec::new();
    for i in 0..3000 {
        let started = Instant::now();
        let wasi = sandbox.wasi(&log).unwrap();
        let report = runtime
            .block_on(run_attempt(
                &plugin,
                wasi,
                log.clone(),
                |d| sandbox.exec(&log, d),
                input.clone(),
                limits,
            ))
            .unwrap();
        let took = started.elapsed();
        assert!(!report.summary.is_empty());
        if i >= 200 {
            samples.push(took);
        }
    }
    let label = if pooling {
        "warm step (pooling allocator)"
    } else {
        "warm step (on-demand allocator)"
    };
    stats(label, samples);
}

fn spawn_true() {
    let mut samples = Vec::new();
    for _ in 0..500 {
        let started = Instant::now();
        let status = std::process::Command::new("/bin/true").status().unwrap();
        samples.push(started.elapsed());
        assert!(status.success());
    }
    stats("spawn /bin/true", samples);
}

fn hundred_step_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut toml = String::from("[pipeline]\nname = \"hundred\"\n\n[[stage]]\nname = \"all\"\n");
    for i in 0..100 {
        toml.push_str(&format!(
            "\n[[stage.step]]\nid = \"s{i}\"\nuses = \"{}\"\nwith = {{ mode = \"ok\" }}\n",
            sluice_tests::ADVERSARY
        ));
    }
    std::fs::write(dir.path().join("sluice.toml"), toml).unwrap();
    let run = || {
        let started = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", "--format", "plain"])
            .current_dir(dir.path())
            .env("SLUICE_CACHE_DIR", cache.path())
            .output()
            .unwrap();
        let took = started.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        took
    };
    let cold = run();
    println!(
        "{:<44} {cold:.1?} (compiles the plugin into the cache)",
        "sluice run, 100 steps, cold cache"
    );
    let samples: Vec<Duration> = (0..20).map(|_| run()).collect();
    stats("sluice run, 100 steps, warm cache", samples);
}

fn main() {
    // `cargo test` runs benches in test mode with `--bench` absent; do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    warm_step_overhead(&runtime, true);
    warm_step_overhead(&runtime, false);
    spawn_true();
    hundred_step_pipeline();
}
