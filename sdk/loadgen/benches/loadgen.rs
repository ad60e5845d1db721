//! Prints what the engine costs per request, so a load generator built on it spends its
//! time on the network: recording 10 M latencies (into a bare HDR histogram and through
//! the run's full bookkeeping), and the scheduler's overhead per iteration in both models.
//!
//! `cargo bench -p sluice-loadgen`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use sluice_loadgen::stats::{Stats, new_histogram};
use sluice_loadgen::{
    LoadSpec, ModelKind, Next, Outcome, Plan, RequestSpec, Run, Templates, Thresholds,
    ThresholdsSpec,
};

const N: u64 = 10_000_000;

fn report(what: &str, n: u64, elapsed: Duration) {
    let ns = elapsed.as_nanos() as f64 / n as f64;
    println!(
        "{what:<58} {n:>9} in {:>7.3}s  {ns:>7.1} ns each  {:>6.1} M/s",
        elapsed.as_secs_f64(),
        1e3 / ns
    );
}

/// Latencies spread like a real run: mostly ~1-5 ms, a tail to ~1 s.
fn latency(i: u64) -> u64 {
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    1000 + (x % 4000)
        + if x.is_multiple_of(1000) {
            x % 1_000_000
        } else {
            0
        }
}

fn main() {
    let mut h = new_histogram();
    let start = Instant::now();
    for i in 0..N {
        h.saturating_record(black_box(latency(i)));
    }
    report(
        "record into the HDR histogram (1 us..1 h, 3 digits)",
        N,
        start.elapsed(),
    );
    black_box(h.value_at_quantile(0.99));

    let mut stats = Stats::new(Duration::ZERO, 1);
    let ok = Outcome::Status(200);
    let start = Instant::now();
    for i in 0..N {
        let us = latency(i);
        let at = Duration::from_micros(i * 10 + us);
        stats.record_finish(
            at,
            Duration::from_micros(us + 3),
            Duration::from_micros(us),
            0,
            black_box(&ok),
            true,
        );
    }
    report(
        "record a finished request (both histograms, series, counts)",
        N,
        start.elapsed(),
    );
    black_box(stats.requests);

    let templates = || {
        let specs: Vec<RequestSpec> = serde_json::from_value(serde_json::json!([
            { "url": "http://127.0.0.1:8080/a", "weight": 3 },
            { "url": "http://127.0.0.1:8080/b", "weight": 1 }
        ]))
        .unwrap();
        Templates::new(&specs, &BTreeMap::new(), 1).unwrap()
    };
    let thresholds: ThresholdsSpec = serde_json::from_str(
        r#"{"http_req_duration": [{"threshold": "p(99)<5000", "abort-on-fail": true}], "http_req_failed": ["rate<0.01"]}"#,
    )
    .unwrap();

    for model in [ModelKind::Open, ModelKind::Closed] {
        let spec = match model {
            ModelKind::Open => LoadSpec {
                rate: Some(1_000_000.0),
                duration: Some("10s".into()),
                max_in_flight: Some(64),
                ..LoadSpec::default()
            },
            ModelKind::Closed => LoadSpec {
                model,
                vus: Some(64),
                iterations: Some(N),
                ..LoadSpec::default()
            },
        };
        let mut run = Run::new(
            Plan::new(&spec).unwrap(),
            templates(),
            Thresholds::parse(&thresholds).unwrap(),
        );
        // Each request takes 50 us of virtual time; the loop is all scheduler.
        let mut flying = std::collections::VecDeque::new();
        let mut now = Duration::ZERO;
        let mut iterations = 0u64;
        let start = Instant::now();
        loop {
            match run.next(now) {
                Next::Send { id, .. } => {
                    iterations += 1;
                    flying.push_back((now + Duration::from_micros(50), id));
                }
                Next::Wait { until } => {
                    let next = flying.front().map(|f| f.0);
                    now = match (until, next) {
                        (Some(a), Some(b)) => a.min(b),
                        (a, b) => a.or(b).unwrap(),
                    };
                    while let Some(&(at, id)) = flying.front() {
                        if at > now {
                            break;
                        }
                        flying.pop_front();
                        run.finished(id, at, &ok).unwrap();
                    }
                }
                Next::Done => break,
            }
        }
        let elapsed = start.elapsed();
        let report_ = run.finish(now);
        assert_eq!(report_.summary.requests, iterations);
        report(
            &format!("scheduler, {model:?} model: next + finished per iteration"),
            iterations,
            elapsed,
        );
    }
}
