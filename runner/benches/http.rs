//! Outgoing HTTP throughput of a plugin through the host's `send_request` and pooled
//! client. Prints its figures; run with `cargo bench -p sluice --bench http`.
//!
//! A small keep-alive HTTP/1.1 server (a thread per connection) listens on loopback;
//! the adversary fixture's `http-many` mode sends GETs through the SDK's `Client`:
//! one in flight at a time (what the blocking helper does) and 8 and 32 in flight.
//! Each figure is requests per second over the whole step (instantiation included,
//! a few hundred microseconds).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice::capabilities::StepSandbox;
use sluice::capabilities::logs::StepLog;
use sluice::config::{Grants, NetGrant, PluginRef, Step};
use sluice::host::bindings::types::{Status, StepInput};
use sluice::host::cache::CacheRoot;
use sluice::host::engine::EngineProfile;
use sluice::host::plugin::PluginHost;
use sluice::host::step::{AttemptLimits, run_attempt};
use sluice::sandbox::Sandbox;

fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut writer = stream;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        // GETs only: skip the headers up to the blank line.
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
        }
        if writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
            .is_err()
        {
            return;
        }
    }
}

fn server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("bound").port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || serve(s));
        }
    });
    port
}

fn run(
    runtime: &tokio::runtime::Runtime,
    sandbox: &Arc<Sandbox>,
    host: &PluginHost,
    port: u16,
    count: u32,
    concurrency: u32,
) -> f64 {
    let with = serde_json::json!({
        "mode": "http-many",
        "url": format!("http://127.0.0.1:{port}/"),
        "count": count,
        "concurrency": concurrency,
    });
    let step = Step {
        id: "bench".into(),
        uses: PluginRef::File(PathBuf::from(sluice_tests::ADVERSARY)),
        with,
        needs: vec![],
        timeout: Duration::from_secs(120),
        memory: 256 << 20,
        processes: 64,
        tmpdir_size: 16 << 20,
        retries: 0,
        retry_delay: Duration::from_secs(1),
        allow_failure: false,
        grants: Grants {
            net: vec![NetGrant {
                host: "127.0.0.1".into(),
                port,
                scheme: Some("http".into()),
            }],
            ..Grants::default()
        },
        stage_index: 0,
        step_index: 0,
    };
    let plugin = runtime.block_on(host.load(&step.uses)).unwrap();
    let workdir = tempfile::tempdir().unwrap();
    let log = StepLog::in_memory(1 << 20, Default::default());
    let steps = {
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
    let limits = AttemptLimits {
        timeout: step.timeout,
        memory: step.memory,
    };
    let started = Instant::now();
    let report = runtime
        .block_on(run_attempt(
            &plugin,
            steps.wasi(&log).unwrap(),
            log.clone(),
            |d| steps.attempt(&log, d),
            input,
            limits,
            std::future::ready(()),
        ))
        .unwrap();
    let took = started.elapsed();
    assert_eq!(report.status, Status::Passed, "{}", report.summary);
    assert!(
        report
            .summary
            .starts_with(&format!("{count} responses, 0 errors")),
        "{}",
        report.summary
    );
    f64::from(count) / took.as_secs_f64()
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
    let port = server();
    let cache = tempfile::tempdir().unwrap();
    let host = PluginHost::new(
        EngineProfile {
            max_concurrent_steps: 4,
            pooling: true,
        },
        Some(CacheRoot::open(cache.path()).unwrap()),
    )
    .unwrap();
    // Warm-up: compile the fixture, open the first connections.
    run(&runtime, &sandbox, &host, port, 1000, 8);
    let one = run(&runtime, &sandbox, &host, port, 20_000, 1);
    println!(
        "{:<44} {one:>10.0} requests/s",
        "one in flight (as the blocking helper)"
    );
    for c in [8, 32] {
        let rate = run(&runtime, &sandbox, &host, port, 50_000, c);
        println!(
            "{:<44} {rate:>10.0} requests/s ({:.1}x one in flight)",
            format!("{c} in flight (concurrent Client)"),
            rate / one
        );
    }
}
