//! Benchmark: scan the workspace's own Cargo.lock (a few hundred real packages) against
//! the full RustSec database in OSV form, natively, and print the times. When a
//! `sluice` binary and the plugin's component are available, also time the same scan
//! run as a pipeline step through the real runner:
//!
//! ```text
//! cargo bench -p sluice-plugin-security-scan
//! SLUICE_BIN=/path/to/sluice SECURITY_SCAN_WASM=/path/to/sluice_plugin_security_scan.wasm cargo bench ...
//! ```
//!
//! Defaults: `SLUICE_BIN=<workspace>/target/release/sluice` (run `cargo build --release` first), `SECURITY_SCAN_WASM=<workspace>/target/wasm/wasm32-wasip2/release/sluice_plugin_security_scan.wasm`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sluice_plugin_security_scan::lockfiles::Format;
use sluice_plugin_security_scan::osv::Database;
use sluice_plugin_security_scan::scan::{scan_packages, today};

const ROUNDS: usize = 10;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists");
    let db_path = manifest.join("../../../shared/data/osv/crates.io");
    assert!(
        db_path.is_dir(),
        "the RustSec OSV database is missing at {}: the `shared/` folder must sit next to the workspace",
        db_path.display()
    );
    let lockfile = workspace.join("Cargo.lock");
    let text = std::fs::read_to_string(&lockfile).expect("the workspace has a Cargo.lock");

    let mut load_times = Vec::new();
    let mut db = None;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        db = Some(Database::load(&db_path).expect("the database loads"));
        load_times.push(t.elapsed());
    }
    let db = db.expect("at least one round");

    let mut parse_times = Vec::new();
    let mut match_times = Vec::new();
    let mut result = None;
    let mut packages = 0;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let parsed = Format::Cargo.parse(&text).expect("Cargo.lock parses");
        parse_times.push(t.elapsed());
        packages = parsed.packages.len();
        let t = Instant::now();
        result = Some(scan_packages(&db, &parsed.packages, &[], &[], &[], today()));
        match_times.push(t.elapsed());
    }
    let result = result.expect("at least one round");
    let load = median(load_times);
    let parse = median(parse_times);
    let matching = median(match_times);
    println!(
        "native scan of {} ({packages} registry packages) against {} advisories ({} withdrawn), median of {ROUNDS} rounds:",
        lockfile.display(),
        db.loaded,
        db.withdrawn
    );
    println!("  load database   {:>9.2} ms", load.as_secs_f64() * 1e3);
    println!("  parse lockfile  {:>9.2} ms", parse.as_secs_f64() * 1e3);
    println!("  match           {:>9.2} ms", matching.as_secs_f64() * 1e3);
    println!(
        "  total           {:>9.2} ms",
        (load + parse + matching).as_secs_f64() * 1e3
    );
    println!("  vulnerabilities found: {}", result.vulnerabilities.len());
    for hit in &result.vulnerabilities {
        println!(
            "    {} {} {}",
            hit.advisory.id, hit.package.name, hit.package.version
        );
    }

    let sluice = std::env::var_os("SLUICE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/release/sluice"));
    let wasm = std::env::var_os("SECURITY_SCAN_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            workspace.join("target/wasm/wasm32-wasip2/release/sluice_plugin_security_scan.wasm")
        });
    if !sluice.is_file() || !wasm.is_file() {
        println!(
            "through sluice: skipped (need {} and {})",
            sluice.display(),
            wasm.display()
        );
        return;
    }
    through_sluice(
        &sluice,
        &wasm,
        &workspace,
        &db_path.canonicalize().expect("database path"),
    );
}

/// Run the scan as a pipeline step of the real runner, a few times, and print the
/// wall time of `sluice run` and the step's own `scan.time` metric.
fn through_sluice(sluice: &Path, wasm: &Path, workspace: &Path, db: &Path) {
    let dir = std::env::temp_dir().join(format!("sluice-secscan-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pipeline = format!(
        r#"[pipeline]
name = "security-scan-bench"

[[stage]]
name = "audit"

[[stage.step]]
id = "scan"
uses = "{wasm}"
with = {{ lockfiles = ["{lock}"], database = "{db}", max-database-age-days = 100000, fail-on = "critical", secrets = {{ enabled = false }} }}
[stage.step.grants]
read = ["{ws}", "{db}"]
"#,
        wasm = wasm.display(),
        lock = workspace.join("Cargo.lock").display(),
        ws = workspace.display(),
        db = db.display(),
    );
    std::fs::write(dir.join("sluice.toml"), pipeline).expect("write the pipeline");
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let t = Instant::now();
        let out = std::process::Command::new(sluice)
            .arg("run")
            .arg("--format")
            .arg("plain")
            .arg(dir.join("sluice.toml"))
            .output()
            .expect("sluice starts");
        times.push(t.elapsed());
        last = Some(out);
    }
    let out = last.expect("ran");
    let wall = median(times);
    println!("through sluice ({}), median of 3 runs:", sluice.display());
    println!(
        "  `sluice run` wall time {:>9.2} ms (exit {:?})",
        wall.as_secs_f64() * 1e3,
        out.status.code()
    );
    let runs = dir.join(".sluice/runs");
    let newest = std::fs::read_dir(&runs)
        .ok()
        .and_then(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).max());
    if let Some(run) = newest
        && let Ok(text) = std::fs::read_to_string(run.join("run.json"))
    {
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let metric = find_metric(&json, "scan.time");
        if let Some(ms) = metric {
            println!("  step's own scan.time metric (inside wasm) {ms:>9.2} ms");
        }
    } else {
        println!(
            "  no run record under {}; stdout:\n{}\nstderr:\n{}",
            runs.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The value of the first metric called `name` anywhere in the run record.
fn find_metric(json: &serde_json::Value, name: &str) -> Option<f64> {
    match json {
        serde_json::Value::Object(map) => {
            if map.get("name").and_then(|n| n.as_str()) == Some(name)
                && let Some(v) = map.get("value").and_then(|v| v.as_f64())
            {
                return Some(v);
            }
            map.values().find_map(|v| find_metric(v, name))
        }
        serde_json::Value::Array(items) => items.iter().find_map(|v| find_metric(v, name)),
        _ => None,
    }
}
