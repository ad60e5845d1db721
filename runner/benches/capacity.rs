//! Benchmark of the runner's capacity: the real `sluice` binary runs 1,000 independent
//! pure-WebAssembly steps that each sleep 3 s, with `--jobs 1000`. Prints the makespan
//! (first step started to last step finished, from the steps' own clocks, and the
//! whole process) against the sleep (target: at most 1.1×), and the peak RSS of the
//! runner process (`wait4`'s `ru_maxrss`; target: at most 300 MB).
//!
//! Run with `cargo bench -p sluice --bench capacity`. `SLUICE_BENCH_STEPS`,
//! `SLUICE_BENCH_SLEEP_MS` and `SLUICE_BENCH_RUNS` change the defaults (1000, 3000, 3);
//! the projects and the plugin cache live under `TMPDIR` (e.g. `TMPDIR=/dev/shm` to
//! take the disk out of the figures).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TARGET_RATIO: f64 = 1.1;
const TARGET_RSS_MB: f64 = 300.0;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn write_pipeline(dir: &Path, steps: u64, sleep_ms: u64) {
    let mut toml = String::from("[pipeline]\nname = \"capacity\"\n\n[[stage]]\nname = \"sleep\"\n");
    for i in 0..steps {
        toml.push_str(&format!(
            "\n[[stage.step]]\nid = \"s{i:04}\"\nuses = \"{}\"\n\
             with = {{ mode = \"sleep\", ms = {sleep_ms} }}\n",
            sluice_tests::ADVERSARY
        ));
    }
    std::fs::write(dir.join("sluice.toml"), toml).expect("write the pipeline");
}

/// What one `sluice run` did.
struct Measured {
    wall: Duration,
    max_rss_kib: i64,
    /// First step started to last step finished, by the steps' own clocks.
    makespan: Duration,
    /// First step started to last step started: the cost of starting them all.
    start_spread: Duration,
    passed: usize,
    steps: usize,
}

/// Run `sluice run --jobs <jobs>` in `dir` and wait for it with `wait4`, which gives
/// the child's peak resident set.
fn run(dir: &Path, cache: &Path, jobs: u64) -> Measured {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--format", "plain", "--jobs", &jobs.to_string()])
        .current_dir(dir)
        .env("SLUICE_CACHE_DIR", cache)
        .env_remove("SLUICE_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sluice");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet waited for (`child` is never waited on);
    // `status` and `usage` are valid for writes.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    let wall = started.elapsed();
    drop(child);
    let (makespan, start_spread, passed, steps) = read_run(dir);
    Measured {
        wall,
        max_rss_kib: usage.ru_maxrss,
        makespan,
        start_spread,
        passed,
        steps,
    }
}

/// The makespan, the start spread and the passed steps of the newest run in `dir`.
fn read_run(dir: &Path) -> (Duration, Duration, usize, usize) {
    let runs = dir.join(".sluice").join("runs");
    let mut all: Vec<_> = std::fs::read_dir(&runs)
        .expect("the runs folder")
        .map(|e| e.expect("a run").path())
        .collect();
    all.sort();
    let last = all.last().expect("a run");
    let text = std::fs::read_to_string(last.join("run.json")).expect("run.json");
    let record: serde_json::Value = serde_json::from_str(&text).expect("run.json is JSON");
    let steps = record["steps"].as_array().expect("steps");
    let time = |s: &serde_json::Value, name: &str| -> Option<u64> {
        s["report"]["outputs"]
            .as_array()?
            .iter()
            .find(|o| o[0] == name)?[1]
            .as_str()?
            .parse()
            .ok()
    };
    let first = steps.iter().filter_map(|s| time(s, "started-ms")).min();
    let last_start = steps.iter().filter_map(|s| time(s, "started-ms")).max();
    let last = steps.iter().filter_map(|s| time(s, "finished-ms")).max();
    let span = |from: Option<u64>, to: Option<u64>| match (from, to) {
        (Some(a), Some(b)) => Duration::from_millis(b.saturating_sub(a)),
        _ => Duration::ZERO,
    };
    let passed = steps.iter().filter(|s| s["status"] == "passed").count();
    (
        span(first, last),
        span(first, last_start),
        passed,
        steps.len(),
    )
}

fn main() {
    // `cargo test` runs benches as tests without `--bench`: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let steps = env_or("SLUICE_BENCH_STEPS", 1000);
    let sleep_ms = env_or("SLUICE_BENCH_SLEEP_MS", 3000);
    let runs = env_or("SLUICE_BENCH_RUNS", 3);
    let sleep = Duration::from_millis(sleep_ms);
    let cache = tempfile::tempdir().expect("a cache folder");
    std::fs::set_permissions(
        cache.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("a private cache folder");

    // Compile the plugin into the cache first, so the runs measure running only.
    let warm = tempfile::tempdir().expect("a project folder");
    write_pipeline(warm.path(), 1, 1);
    run(warm.path(), cache.path(), 1);

    println!(
        "capacity: {steps} pure-wasm steps sleeping {sleep:?} each, --jobs {steps}, {runs} runs"
    );
    let mut ratios = Vec::new();
    let mut peaks = Vec::new();
    // Every run's folder is kept until the end: on ext4 without a journal (this CI's
    // VMs), creating a file skips over every inode deleted in the last 30 s (330 s
    // while its table is unwritten), so deleting one run's thousands of files made
    // the next run's step files slow to create (1.24x, then 1.38x, 1.38x).
    let mut projects = Vec::new();
    for i in 1..=runs {
        let project = tempfile::tempdir().expect("a project folder");
        write_pipeline(project.path(), steps, sleep_ms);
        let m = run(project.path(), cache.path(), steps);
        let ratio = m.makespan.as_secs_f64() / sleep.as_secs_f64();
        let rss_mb = m.max_rss_kib as f64 / 1024.0;
        println!(
            "run {i}: {}/{} steps passed; makespan {:.3}s = {ratio:.3}x the sleep \
             (last step started {:.3}s after the first; whole process {:.3}s = {:.3}x); \
             peak RSS {rss_mb:.1} MiB",
            m.passed,
            m.steps,
            m.makespan.as_secs_f64(),
            m.start_spread.as_secs_f64(),
            m.wall.as_secs_f64(),
            m.wall.as_secs_f64() / sleep.as_secs_f64(),
        );
        if m.passed != m.steps || m.steps as u64 != steps {
            println!("  FAILED STEPS: only {} of {steps} passed", m.passed);
        }
        ratios.push(ratio);
        peaks.push(rss_mb);
        projects.push(project);
    }
    ratios.sort_by(f64::total_cmp);
    peaks.sort_by(f64::total_cmp);
    let median = |v: &[f64]| v[v.len() / 2];
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "median makespan ratio {:.3}x (target <= {TARGET_RATIO}x: {}); \
         median peak RSS {:.1} MiB (target <= {TARGET_RSS_MB} MB: {})",
        median(&ratios),
        verdict(median(&ratios) <= TARGET_RATIO),
        median(&peaks),
        verdict(median(&peaks) * 1.048_576 <= TARGET_RSS_MB),
    );
}
