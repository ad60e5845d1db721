//! The canary's scheduling accuracy and cost: 100 checks at a 100 ms interval on one
//! monitor instance, each recorded in a state store, through the same code as
//! `sluice canary` (`monitors::schedule::run_checks`). Prints the drift of each
//! check's start against its tick (p50, p99, max; target p99 < 5 ms) and the CPU time
//! (user + system, getrusage) per check, for a trivial monitor (the file-monitor
//! fixture) and, when the build has it, `builtin:http-check` against a local server.
//!
//! `cargo bench -p sluice --bench canary`

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use sluice::capabilities::logs::StepLog;
use sluice::capabilities::secrets::SecretAccess;
use sluice::config::{Grants, NetGrant, PluginRef, SourcePos};
use sluice::host::cache::CacheRoot;
use sluice::host::engine::EngineProfile;
use sluice::host::monitor::{MonitorGrants, MonitorInstance, load_monitor};
use sluice::host::plugin::PluginHost;
use sluice::monitors::schedule::{Recorder, run_checks};
use sluice::monitors::{MissingData, MonitorSpec};

const CHECKS: u64 = 100;
const INTERVAL: Duration = Duration::from_millis(100);

/// CPU time of this process so far (user + system).
fn cpu_time() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes the struct it is given; RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn spec(uses: PluginRef, with: serde_json::Value, grants: Grants) -> MonitorSpec {
    MonitorSpec {
        id: "bench".into(),
        uses: Some(uses),
        with,
        interval: INTERVAL,
        timeout: INTERVAL,
        missing: MissingData::Breaching,
        evaluation_periods: 1,
        datapoints_to_alarm: 1,
        grants,
        pos: SourcePos {
            file: "bench.toml".into(),
            line: 1,
            column: 1,
        },
        uses_offset: 0,
        with_offset: 0,
    }
}

/// A local HTTP server answering every request 200 `ok`, on its own thread.
fn server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut line = String::new();
                    let mut empty = true;
                    while reader.read_line(&mut line).unwrap_or(0) > 0 {
                        if line == "\r\n" {
                            break;
                        }
                        empty = false;
                        line.clear();
                    }
                    if empty {
                        return;
                    }
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok",
                    );
                }
            });
        }
    });
    port
}

fn measure(runtime: &tokio::runtime::Runtime, host: &PluginHost, name: &str, spec: MonitorSpec) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(sluice::state::Store::open(&dir.path().join("state.db")).unwrap());
    let plugin = match runtime.block_on(load_monitor(host, spec.uses.as_ref().unwrap())) {
        Ok(p) => p,
        Err(e) => {
            println!("{name:<40} skipped: {e}");
            return;
        }
    };
    let log = StepLog::in_memory(64 << 10, Default::default());
    let grants =
        MonitorGrants::resolve(&spec.grants, Arc::new(SecretAccess::default()), &log).unwrap();
    let recorder = Recorder {
        store,
        clock: sluice::clock::from_env().unwrap(),
        source: "bench".into(),
        workdir: dir.path().to_path_buf(),
        redactor: Arc::new(Default::default()),
    };
    let mut lateness = Vec::new();
    let mut outcomes = std::collections::BTreeMap::new();
    let mut skipped = 0;
    let cpu_before = cpu_time();
    runtime
        .block_on(run_checks(
            &spec,
            MonitorInstance::new(plugin, grants, log),
            &recorder,
            Some(CHECKS),
            |r| {
                lateness.push(r.lateness);
                skipped = r.skipped;
                *outcomes.entry(r.row.outcome.as_str()).or_insert(0) += 1;
            },
        ))
        .unwrap();
    let cpu = cpu_time() - cpu_before;
    lateness.sort();
    let at = |q: f64| lateness[((lateness.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<40} drift p50 {:>6.3} ms  p99 {:>6.3} ms  max {:>6.3} ms  ({} checks, {skipped} ticks skipped, outcomes {outcomes:?})",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(*lateness.last().unwrap()),
        lateness.len()
    );
    println!(
        "{name:<40} CPU {:>8.1} µs per check (user + system, recording included)",
        cpu.as_secs_f64() * 1e6 / CHECKS as f64
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let host = PluginHost::new(
        EngineProfile {
            max_concurrent_steps: 2,
            pooling: true,
        },
        Some(CacheRoot::open(cache.path()).unwrap()),
    )
    .unwrap();
    let status = tempfile::tempdir().unwrap();
    std::fs::write(status.path().join("status.txt"), "positive check ok\n").unwrap();
    let grants = Grants {
        read: vec![status.path().to_path_buf()],
        ..Grants::default()
    };
    measure(
        &runtime,
        &host,
        "file-monitor (trivial)",
        spec(
            PluginRef::File(sluice_tests::FILE_MONITOR.into()),
            serde_json::json!({ "file": status.path().join("status.txt").display().to_string() }),
            grants,
        ),
    );
    let port = server();
    let net = Grants {
        net: vec![NetGrant {
            host: "127.0.0.1".into(),
            port,
            scheme: None,
        }],
        ..Grants::default()
    };
    measure(
        &runtime,
        &host,
        "builtin:http-check (local server)",
        spec(
            PluginRef::Builtin("http-check".into()),
            serde_json::json!({ "url": format!("http://127.0.0.1:{port}/health") }),
            net,
        ),
    );
}
