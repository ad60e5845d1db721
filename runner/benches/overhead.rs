//! Benchmarks of the runner's own overhead. Prints its figures; run with
//! `cargo bench -p sluice --bench overhead`.
//!
//! 1. Warm per-step overhead: a fresh store and instance of a cached plugin, plus the
//!    `run` call of a trivial step (target: at most 100 µs, a tenth of spawning
//!    `/bin/true`).
//! 2. The cost of spawning `/bin/true`, for scale.
//! 3. `sluice run` of a 100-step pipeline with a warm component cache, end to end
//!    (target: under 50 ms), with the state store (every transition recorded) and
//!    without it (the hidden `--no-state`), and their ratio (target: at most 1.2x).
//! 4. The cost of isolation: making a step's sandbox (namespaces, mounts, cgroup,
//!    Landlock, dropped capabilities), `/bin/true` run in a ready one, and whole native
//!    steps (a plugin that runs `/bin/true` through `process`), each a new step or the
//!    same step again, against spawning `/bin/true` directly (target: at most 2 ms
//!    added per native step).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice::capabilities::StepSandbox;
use sluice::capabilities::logs::StepLog;
use sluice::config::{Grants, PluginRef, Step};
use sluice::host::bindings::types::StepInput;
use sluice::host::cache::CacheRoot;
use sluice::host::engine::EngineProfile;
use sluice::host::plugin::PluginHost;
use sluice::host::step::{AttemptLimits, run_attempt};
use sluice::sandbox::Sandbox;

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

fn trivial_step(with: serde_json::Value, grants: Grants) -> Step {
    Step {
        id: "bench".into(),
        uses: PluginRef::File(PathBuf::from(sluice_tests::ADVERSARY)),
        with,
        needs: vec![],
        timeout: Duration::from_secs(30),
        memory: 64 << 20,
        processes: 64,
        tmpdir_size: 16 << 20,
        retries: 0,
        retry_delay: Duration::from_secs(1),
        allow_failure: false,
        grants,
        stage_index: 0,
        step_index: 0,
    }
}

/// Which step each measured attempt belongs to.
#[derive(Clone, Copy, PartialEq)]
enum Steps {
    /// Every attempt in the same step (its sandbox made once).
    Same,
    /// Every attempt a new step (its own sandbox and cgroup); with `settle`, after
    /// the previous step's sandbox had time to be torn down.
    New { settle: bool },
}

/// Per-attempt overhead of `step`, run `n` times after 10% warm-up.
fn step_overhead(
    runtime: &tokio::runtime::Runtime,
    sandbox: &Arc<Sandbox>,
    pooling: bool,
    step: Step,
    n: usize,
    steps: Steps,
    label: &str,
) {
    let fresh_step = steps != Steps::Same;
    let settle = steps == Steps::New { settle: true };
    let cache = tempfile::tempdir().unwrap();
    let host = PluginHost::new(
        EngineProfile {
            max_concurrent_steps: 4,
            pooling,
        },
        Some(CacheRoot::open(cache.path()).unwrap()),
    )
    .unwrap();
    let plugin = runtime.block_on(host.load(&step.uses)).unwrap();
    let workdir = tempfile::tempdir().unwrap();
    let log = StepLog::in_memory(1 << 20, Default::default());
    let resolve = || {
        let _guard = runtime.enter();
        StepSandbox::resolve(
            &step,
            workdir.path().to_path_buf(),
            sandbox.clone(),
            &Default::default(),
            false,
            &log,
            None,
        )
        .unwrap()
    };
    let mut stepsandbox = Some(resolve());
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
        workdir: workdir.path().display().to_string(),
        attempt: 1,
        plugins: vec![],
    };
    let mut samples = Vec::new();
    let warmup = n / 10;
    if fresh_step {
        sandbox_keep_ready(runtime, sandbox);
    }
    for i in 0..n + warmup {
        if fresh_step {
            // The runner prepares sandbox holders ahead (their cgroup joins wait for
            // an RCU grace period); the step starts when one is ready, as in a run
            // where steps take longer than that.
            stepsandbox = None;
            runtime.block_on(async {
                // The previous step's sandbox is torn down in the background (its PID
                // and network namespaces take a few milliseconds of kernel work);
                // real steps last longer than that.
                if settle {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                while sandbox.ready_holders().await == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            });
        }
        let started = Instant::now();
        if fresh_step {
            stepsandbox = Some(resolve());
        }
        let stepsandbox = stepsandbox.as_ref().expect("made above");
        let wasi = stepsandbox.wasi(&log).unwrap();
        let report = runtime
            .block_on(async {
                let report = run_attempt(
                    &plugin,
                    wasi,
                    log.clone(),
                    |d| stepsandbox.attempt(&log, d),
                    input.clone(),
                    limits,
                    std::future::ready(()),
                )
                .await;
                stepsandbox.end_attempt().await;
                report
            })
            .unwrap();
        let took = started.elapsed();
        assert_eq!(
            report.status,
            sluice::host::bindings::types::Status::Passed,
            "{}\n{:?}",
            report.summary,
            log.tail()
        );
        if i >= warmup {
            samples.push(took);
        }
    }
    stats(label, samples);
}

fn warm_step_overhead(runtime: &tokio::runtime::Runtime, sandbox: &Arc<Sandbox>, pooling: bool) {
    let label = if pooling {
        "warm step (pooling allocator)"
    } else {
        "warm step (on-demand allocator)"
    };
    let step = trivial_step(serde_json::json!({ "mode": "ok" }), Grants::default());
    step_overhead(runtime, sandbox, pooling, step, 3000, Steps::Same, label);
}

fn sandbox_keep_ready(runtime: &tokio::runtime::Runtime, sandbox: &Arc<Sandbox>) {
    let _guard = runtime.enter();
    sandbox.keep_ready(2);
}

/// A whole native step: the adversary runs `/bin/true` through `process`, in a step
/// of its own each time (sandbox and cgroup made for it) and in the same step again.
fn native_step_overhead(runtime: &tokio::runtime::Runtime, sandbox: &Arc<Sandbox>) {
    let step = || {
        trivial_step(
            serde_json::json!({ "mode": "exec", "program": "/bin/true" }),
            Grants {
                exec: vec!["/bin/true".into()],
                ..Grants::default()
            },
        )
    };
    step_overhead(
        runtime,
        sandbox,
        true,
        step(),
        300,
        Steps::New { settle: true },
        "native step, new step",
    );
    step_overhead(
        runtime,
        sandbox,
        true,
        step(),
        300,
        Steps::New { settle: false },
        "native step, new step, back to back",
    );
    step_overhead(
        runtime,
        sandbox,
        true,
        step(),
        500,
        Steps::Same,
        "native step, same step (retry or 2nd program)",
    );
}

/// `/bin/true` started in a ready step sandbox and waited for, without a plugin.
fn sandboxed_true(runtime: &tokio::runtime::Runtime, sandbox: &Arc<Sandbox>) {
    use sluice::sandbox::mounts::{Layout, plan};
    use sluice::sandbox::plan::{ProgramPlan, RlimitPlan, SandboxPlan};
    let programs = vec![(
        PathBuf::from("/bin/true"),
        std::fs::canonicalize("/bin/true").unwrap(),
    )];
    let (mounts, landlock) = plan(&Layout {
        read: &[],
        write: &[],
        programs: &programs,
        tmp_size: 16 << 20,
        resolv_conf: None,
    });
    let plan = SandboxPlan {
        mounts,
        landlock,
        net: None,
        rlimits: RlimitPlan::default(),
    };
    let program = ProgramPlan {
        executable: "/bin/true".into(),
        argv0: "true".into(),
        args: vec![],
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        cwd: "/tmp".into(),
        files: vec![],
    };
    let log = StepLog::in_memory(1 << 20, Default::default());
    let mut made = Vec::new();
    let mut env = None;
    for _ in 0..50 {
        // A holder is prepared ahead (cgroup joined, user and network namespaces
        // made); this is what remains when a step starts.
        drop(env.take());
        runtime.block_on(async {
            sandbox.keep_ready(1);
            while sandbox.ready_holders().await == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        let started = Instant::now();
        env = Some(
            runtime
                .block_on(sandbox.open_step(&plan, 64 << 20, 64, Default::default(), &log))
                .unwrap(),
        );
        made.push(started.elapsed());
    }
    stats("step sandbox from a prepared holder", made);
    // The sandbox and its cgroup (which kills what it holds when dropped).
    let (env, _cgroup) = env.unwrap();
    let mut samples = Vec::new();
    for i in 0..550 {
        let started = Instant::now();
        let status = runtime.block_on(async {
            let mut child = env.run(&program, None).await.unwrap();
            child.wait().await.unwrap()
        });
        if i >= 50 {
            samples.push(started.elapsed());
        }
        assert!(status.success());
    }
    stats("/bin/true in a ready step sandbox", samples);
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
    let run = |extra: &[&str]| {
        let started = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", "--format", "plain"])
            .args(extra)
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
    let cold = run(&[]);
    println!(
        "{:<44} {cold:.1?} (compiles the plugin into the cache)",
        "sluice run, 100 steps, cold cache"
    );
    // Interleaved, so both see the same machine load; 50 pairs, as a shared 2-core
    // machine moves single runs by 20% and more.
    let mut with_state = Vec::new();
    let mut without_state = Vec::new();
    for _ in 0..50 {
        with_state.push(run(&[]));
        // The hidden option that records nothing: the run as it was before the store.
        without_state.push(run(&["--no-state"]));
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (m_with, m_without) = (median(&mut with_state), median(&mut without_state));
    let (fastest_with, fastest_without) = (with_state[0], without_state[0]);
    stats("sluice run, 100 steps, warm cache, state", with_state);
    stats("sluice run, 100 steps, warm cache, no state", without_state);
    println!(
        "{:<44} {:.2}x (median {m_with:.1?} / {m_without:.1?}; target <= 1.2x)",
        "state recording: with / without",
        m_with.as_secs_f64() / m_without.as_secs_f64()
    );
    println!(
        "{:<44} {:.2}x (fastest {fastest_with:.1?} / {fastest_without:.1?})",
        "  the same, fastest to fastest",
        fastest_with.as_secs_f64() / fastest_without.as_secs_f64()
    );
}

fn main() {
    // `cargo test` runs benches in test mode with `--bench` absent; do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // Before any thread: the sandbox's launcher is forked from a single-threaded process.
    let sandbox = Arc::new(Sandbox::prepare());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    warm_step_overhead(&runtime, &sandbox, true);
    warm_step_overhead(&runtime, &sandbox, false);
    // Before the sandboxes below: tearing down hundreds of network namespaces keeps
    // the kernel busy for a while afterwards.
    hundred_step_pipeline();
    spawn_true();
    sandboxed_true(&runtime, &sandbox);
    native_step_overhead(&runtime, &sandbox);
}
