//! Whole runs against a simulated server on a virtual clock: the driver loop a plugin
//! writes, with a fake transport whose latency and outcome the test chooses.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use sluice_loadgen::{
    LoadSpec, ModelKind, Next, Outcome, Plan, Report, RequestSpec, Run, StageSpec, StopReason,
    Templates, Thresholds, ThresholdsSpec,
};

const MS: Duration = Duration::from_millis(1);

/// What the fake server does with the n-th request (template index given).
type Server<'a> = dyn FnMut(u64, usize, Duration) -> (Duration, Outcome) + 'a;

struct Sim {
    /// Largest number in flight seen at once, and at which time.
    max_in_flight: usize,
    /// In flight sampled at chosen times.
    samples: Vec<(Duration, usize)>,
    /// Every (intended, actual) send.
    sends: Vec<(Duration, Duration)>,
}

fn simulate(mut run: Run, server: &mut Server<'_>, sample_at: &[Duration]) -> (Report, Sim) {
    let mut now = Duration::ZERO;
    let mut flying: BinaryHeap<Reverse<(Duration, u64, usize)>> = BinaryHeap::new();
    let mut outcomes: BTreeMap<u64, Outcome> = BTreeMap::new();
    let mut sim = Sim {
        max_in_flight: 0,
        samples: Vec::new(),
        sends: Vec::new(),
    };
    let mut samples = sample_at.iter().copied().peekable();
    let mut n = 0u64;
    loop {
        while let Some(&Reverse((at, id, _))) = flying.peek() {
            if at > now {
                break;
            }
            flying.pop();
            run.finished(id, at, &outcomes.remove(&id).unwrap())
                .unwrap();
        }
        match run.next(now) {
            Next::Send {
                id,
                template,
                intended,
            } => {
                assert!(intended <= now, "never asked to send early");
                let (latency, outcome) = server(n, template, now);
                n += 1;
                flying.push(Reverse((now + latency, id, template)));
                outcomes.insert(id, outcome);
                sim.max_in_flight = sim.max_in_flight.max(flying.len());
                sim.sends.push((intended, now));
            }
            Next::Wait { until } => {
                let next_finish = flying.peek().map(|Reverse((t, _, _))| *t);
                now = match (until, next_finish) {
                    (Some(a), Some(b)) => a.min(b),
                    (a, b) => a.or(b).expect("a run never waits for nothing"),
                };
                // Nothing finishes before `now`: what flies now flew at every sample time before it.
                while let Some(t) = samples.next_if(|t| *t < now) {
                    sim.samples.push((t, flying.len()));
                }
            }
            Next::Done => break,
        }
    }
    (run.finish(now), sim)
}

fn get(url: &str, weight: u32) -> RequestSpec {
    serde_json::from_value(serde_json::json!({ "url": url, "weight": weight })).unwrap()
}

fn run_of(spec: LoadSpec, requests: &[RequestSpec], thresholds: &str) -> Run {
    let plan = Plan::new(&spec).unwrap();
    let vars = BTreeMap::from([("version".to_string(), "2.0.1".to_string())]);
    let templates = Templates::new(requests, &vars, 7).unwrap();
    let t: ThresholdsSpec = serde_json::from_str(thresholds).unwrap();
    Run::new(plan, templates, Thresholds::parse(&t).unwrap())
}

fn open(rate: f64, duration: &str, max_in_flight: u32) -> LoadSpec {
    LoadSpec {
        rate: Some(rate),
        duration: Some(duration.into()),
        max_in_flight: Some(max_in_flight),
        ..LoadSpec::default()
    }
}

fn fixed(latency: Duration) -> impl FnMut(u64, usize, Duration) -> (Duration, Outcome) {
    move |_, _, _| (latency, Outcome::Status(200))
}

#[test]
fn the_open_model_keeps_its_arrival_rate() {
    let run = run_of(
        open(200.0, "10s", 100),
        &[get("http://h/{{version}}", 1)],
        "{}",
    );
    assert_eq!(run.requests()[0].url, "http://h/2.0.1");
    let (report, sim) = simulate(run, &mut fixed(5 * MS), &[]);
    let s = &report.summary;
    assert_eq!(
        (s.requests, s.iterations, s.dropped_iterations, s.failed),
        (2000, 2000, 0, 0)
    );
    assert_eq!(s.stopped_by, StopReason::Duration);
    assert!(
        (s.achieved_rate - 200.0).abs() < 1e-9,
        "{}",
        s.achieved_rate
    );
    assert!((s.target - 200.0).abs() < 1e-9);
    // Ten seconds of sending; the last request finishes in the eleventh.
    assert_eq!(s.series.len(), 11);
    assert!(
        s.series[..10]
            .iter()
            .all(|x| x.started == 200 && x.requests >= 199),
        "{:?}",
        s.series
    );
    assert_eq!((s.series[10].started, s.series[10].requests), (0, 1));
    // Every iteration left at its intended time: 5 ms spacing, nothing late.
    assert!(sim.sends.iter().all(|(i, a)| i == a));
    assert!(sim.sends.windows(2).all(|w| w[1].0 - w[0].0 == 5 * MS));
    let l = s.latency_ms.as_ref().unwrap();
    assert!(
        (l.p99 - 5.0).abs() < 0.01 && (l.min - 5.0).abs() < 0.01,
        "{l:?}"
    );
    assert_eq!(s.latency_ms, s.latency_uncorrected_ms);
    assert!(s.coordinated_omission_corrected);
    assert_eq!(sim.max_in_flight, 1);
}

#[test]
fn a_slow_server_drops_iterations_k6_style() {
    // 100/s offered, 2 slots, 50 ms per request: capacity 40/s; 60% cannot start.
    let run = run_of(
        open(100.0, "10s", 2),
        &[get("http://h/", 1)],
        r#"{"dropped_iterations": ["count==0"]}"#,
    );
    let (report, sim) = simulate(run, &mut fixed(50 * MS), &[]);
    let s = &report.summary;
    assert_eq!(
        s.iterations + s.dropped_iterations,
        1000,
        "every scheduled iteration is either started or dropped"
    );
    assert_eq!(s.iterations, 400);
    assert_eq!(s.dropped_iterations, 600);
    assert_eq!(s.delayed_iterations, 0);
    assert!(
        sim.sends.iter().all(|(i, a)| i == a),
        "nothing is sent late"
    );
    assert_eq!(sim.max_in_flight, 2);
    assert!(!s.passed);
    assert_eq!(s.thresholds[0].observed, Some(600.0));
    assert_eq!(s.thresholds[0].miss, Some(600.0));
    assert!(report.text().contains("dropped_iterations: count==0: FAILED: observed 600 iterations, missed by 600 iterations"), "{}", report.text());
}

#[test]
fn waiting_for_a_slot_shows_in_the_corrected_latency_only() {
    // As above, but an iteration may wait 30 ms for a slot: those that do are sent late,
    // and their latency from the intended time exceeds the latency from the actual send.
    let mut spec = open(100.0, "10s", 2);
    spec.max_start_delay = Some("30ms".into());
    let run = run_of(spec, &[get("http://h/", 1)], "{}");
    let (report, sim) = simulate(run, &mut fixed(50 * MS), &[]);
    let s = &report.summary;
    assert!(
        s.dropped_iterations > 0 && s.delayed_iterations > 0,
        "{s:?}"
    );
    assert_eq!(s.iterations + s.dropped_iterations, 1000);
    assert!(sim.sends.iter().all(|(i, a)| *a - *i <= 30 * MS));
    let (c, u) = (
        s.latency_ms.as_ref().unwrap(),
        s.latency_uncorrected_ms.as_ref().unwrap(),
    );
    assert!(
        (u.p99 - 50.0).abs() < 0.1 && (u.max - 50.0).abs() < 0.1,
        "uncorrected is the server's 50 ms: {u:?}"
    );
    assert!(
        c.p99 > u.p99 + 10.0,
        "corrected p99 {} above uncorrected {}",
        c.p99,
        u.p99
    );
    assert!(c.max <= 80.1);
    assert!(report.text().contains("uncorrected p99"));
}

#[test]
fn error_rates_are_counted_exactly_by_class() {
    let mut server = |n: u64, _: usize, _: Duration| {
        let outcome = match n % 100 {
            0..=6 => Outcome::Status(500),
            7 => Outcome::Status(503),
            8 => Outcome::Timeout,
            9 => Outcome::ConnectRefused,
            10 => Outcome::Denied("net: add \"http://10.0.0.1:80\"".into()),
            11 => Outcome::Status(404),
            12 => Outcome::Status(302),
            _ => Outcome::Status(200),
        };
        (2 * MS, outcome)
    };
    let run = run_of(
        open(500.0, "4s", 50),
        &[get("http://h/", 1)],
        r#"{"http_req_failed": ["rate<0.01", "rate<0.2"]}"#,
    );
    let (report, _) = simulate(run, &mut server, &[]);
    let s = &report.summary;
    assert_eq!(s.requests, 2000);
    // 12 failures in every 100: 500s (7), 503 (1), timeout, refused, denied, 404; 302 is expected.
    assert_eq!(s.failed, 240);
    assert_eq!(s.error_rate, 0.12);
    let classes: Vec<(&str, u64)> = s
        .errors_by_class
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        classes,
        vec![
            ("4xx", 20),
            ("5xx", 160),
            ("connect-refused", 20),
            ("denied", 20),
            ("timeout", 20)
        ]
    );
    assert_eq!(s.statuses[&500], 140);
    assert_eq!(s.statuses[&302], 20);
    assert_eq!(
        s.error_samples,
        vec!["net: add \"http://10.0.0.1:80\"".to_string()]
    );
    assert!(!s.thresholds[0].passed && s.thresholds[1].passed);
    assert_eq!(s.thresholds[0].observed, Some(0.12));
    assert!((s.thresholds[0].miss.unwrap() - 0.11).abs() < 1e-12);
    assert!(
        report.text().contains("http_req_failed: rate<0.01: FAILED: observed 0.1200 (12.00%), missed by 0.1100 (11.00%)"),
        "{}",
        report.text()
    );
    assert!(
        report
            .text()
            .contains("errors: 4xx: 20, 5xx: 160, connect-refused: 20, denied: 20, timeout: 20")
    );
    assert_eq!(s.series.iter().map(|x| x.errors).sum::<u64>(), 240);
    assert!(
        s.series[..4].iter().all(|x| x.started == 500),
        "{:?}",
        s.series
    );
}

#[test]
fn ramping_arrival_stages_hit_their_targets() {
    let spec = LoadSpec {
        stages: Some(vec![
            StageSpec {
                target: 100.0,
                duration: "4s".into(),
            },
            StageSpec {
                target: 100.0,
                duration: "3s".into(),
            },
            StageSpec {
                target: 300.0,
                duration: "2s".into(),
            },
        ]),
        max_in_flight: Some(100),
        ..LoadSpec::default()
    };
    let run = run_of(spec, &[get("http://h/", 1)], "{}");
    let (report, _) = simulate(run, &mut fixed(3 * MS), &[]);
    let s = &report.summary;
    let per_second: Vec<u64> = s.series.iter().map(|x| x.started).collect();
    // 0→100 over 4 s: 12.5, 37.5, 62.5, 87.5; then 100 ×3; then 100→300: 150, 250.
    let want = [12.5, 37.5, 62.5, 87.5, 100.0, 100.0, 100.0, 150.0, 250.0];
    assert_eq!(per_second.len(), want.len(), "{per_second:?}");
    for (got, want) in per_second.iter().zip(want) {
        assert!((*got as f64 - want).abs() <= 1.0, "{per_second:?}");
    }
    assert_eq!(s.iterations, 900);
    assert!((s.target - 100.0).abs() < 0.5, "mean target {}", s.target);
}

#[test]
fn closed_model_holds_its_concurrency_and_ramps_one_vu_at_a_time() {
    let spec = LoadSpec {
        model: ModelKind::Closed,
        stages: Some(vec![
            StageSpec {
                target: 10.0,
                duration: "10s".into(),
            },
            StageSpec {
                target: 10.0,
                duration: "5s".into(),
            },
            StageSpec {
                target: 4.0,
                duration: "3s".into(),
            },
        ]),
        ..LoadSpec::default()
    };
    let run = run_of(spec, &[get("http://h/", 1)], "{}");
    let at = |s: u64| Duration::from_secs(s) + 50 * MS;
    let (report, sim) = simulate(run, &mut fixed(100 * MS), &[at(3), at(7), at(12), at(17)]);
    let s = &report.summary;
    let inflight: Vec<usize> = sim.samples.iter().map(|(_, n)| *n).collect();
    // At 17.05 s the ramp is at 5.9 VUs, but the six started at 17.0 s are still in flight.
    assert_eq!(inflight, vec![3, 7, 10, 6]);
    assert_eq!(sim.max_in_flight, 10);
    // 10 VUs at 100 ms a request: 100 requests a second in the steady stage.
    for sec in 10..15 {
        assert!(
            (99..=101).contains(&s.series[sec].requests),
            "{:?}",
            s.series[sec]
        );
    }
    assert!(!s.coordinated_omission_corrected);
    assert_eq!(s.dropped_iterations, 0);
    // (0→10 over 10 s: 50 VU·s) + (10 for 5 s: 50) + (10→4 over 3 s: 21) over 18 s.
    assert!(
        (s.target - 121.0 / 18.0).abs() < 0.01,
        "mean VUs {}",
        s.target
    );
}

#[test]
fn constant_vus_and_an_iteration_count() {
    let spec = LoadSpec {
        model: ModelKind::Closed,
        vus: Some(4),
        iterations: Some(500),
        ..LoadSpec::default()
    };
    let run = run_of(spec, &[get("http://h/", 1)], "{}");
    let (report, sim) = simulate(run, &mut fixed(10 * MS), &[]);
    let s = &report.summary;
    assert_eq!((s.iterations, s.requests, s.interrupted), (500, 500, 0));
    assert_eq!(s.stopped_by, StopReason::Iterations);
    assert_eq!(sim.max_in_flight, 4);
    assert!((s.achieved_rate - 400.0).abs() < 5.0, "{}", s.achieved_rate);

    let run = run_of(open(1000.0, "1h", 10).clone(), &[get("http://h/", 1)], "{}");
    let mut spec = open(1000.0, "1h", 10);
    spec.iterations = Some(250);
    drop(run);
    let (report, _) = simulate(
        run_of(spec, &[get("http://h/", 1)], "{}"),
        &mut fixed(MS),
        &[],
    );
    assert_eq!(
        (report.summary.iterations, report.summary.stopped_by.clone()),
        (250, StopReason::Iterations)
    );
    assert!((report.summary.duration_s - 0.25).abs() < 0.002);
}

#[test]
fn the_warm_up_is_not_measured() {
    let mut spec = open(100.0, "3s", 10);
    spec.warm_up = Some("2s".into());
    // Slow during the warm-up (a cold cache), fast after.
    let mut server = |_: u64, _: usize, now: Duration| {
        (
            if now < Duration::from_secs(2) {
                80 * MS
            } else {
                4 * MS
            },
            Outcome::Status(200),
        )
    };
    let run = run_of(
        spec,
        &[get("http://h/", 1)],
        r#"{"http_req_duration": ["max<10"]}"#,
    );
    let (report, sim) = simulate(run, &mut server, &[]);
    let s = &report.summary;
    assert_eq!(sim.sends.len(), 500);
    assert_eq!((s.requests, s.iterations), (300, 300));
    assert_eq!(s.duration_s, 3.0);
    assert!(s.passed, "{}", report.text());
    assert_eq!(s.series.len(), 3);
}

#[test]
fn thresholds_pass_and_fail_with_their_misses() {
    let thresholds = r#"{"http_req_duration": ["p(99)<50", "avg<20", "med<10", "max<100", "p(95)<=30"],
                         "http_reqs": ["count>1000", "rate>500"], "http_req_failed": ["rate<0.01"]}"#;
    let run = run_of(open(200.0, "10s", 50), &[get("http://h/", 1)], thresholds);
    let (report, _) = simulate(run, &mut fixed(8 * MS), &[]);
    let s = &report.summary;
    let verdicts: Vec<(&str, bool)> = s
        .thresholds
        .iter()
        .map(|t| (t.name.as_str(), t.passed))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("http_req_duration: p(99)<50", true),
            ("http_req_duration: avg<20", true),
            ("http_req_duration: med<10", true),
            ("http_req_duration: max<100", true),
            ("http_req_duration: p(95)<=30", true),
            ("http_req_failed: rate<0.01", true),
            ("http_reqs: count>1000", true),
            ("http_reqs: rate>500", false),
        ]
    );
    assert!(!s.passed);
    let rate = &s.thresholds[7];
    assert_eq!(
        (rate.observed, rate.miss, rate.unit),
        (Some(200.0), Some(300.0), "/s")
    );
    assert!(
        report
            .text()
            .contains("http_reqs: rate>500: FAILED: observed 200 /s, missed by 300 /s")
    );

    let run = run_of(
        open(200.0, "10s", 50),
        &[get("http://h/", 1)],
        r#"{"http_req_duration": ["p(99)<50"]}"#,
    );
    let (report, _) = simulate(run, &mut fixed(63 * MS), &[]);
    let t = &report.summary.thresholds[0];
    assert!(!t.passed);
    assert!((t.miss.unwrap() - 13.0).abs() < 0.05, "{t:?}");
}

#[test]
fn abort_on_fail_stops_early_after_its_delay() {
    let thresholds = r#"{"http_req_duration": [{"threshold": "p(99)<50", "abort-on-fail": true, "delay-abort-eval": "2s"}],
                         "http_reqs": ["count>10"]}"#;
    let run = run_of(open(100.0, "30s", 50), &[get("http://h/", 1)], thresholds);
    let (report, sim) = simulate(run, &mut fixed(200 * MS), &[]);
    let s = &report.summary;
    assert_eq!(s.stopped_by, StopReason::Aborted);
    assert_eq!(s.aborted_by.as_deref(), Some("http_req_duration: p(99)<50"));
    assert!(
        s.duration_s >= 2.0 && s.duration_s <= 2.2,
        "{}",
        s.duration_s
    );
    assert!(sim.sends.len() < 230, "{}", sim.sends.len());
    assert!(!s.passed);
    assert!(s.thresholds[0].aborted_run && !s.thresholds[1].aborted_run);
    assert!(s.thresholds[1].passed);
    assert!(
        report
            .text()
            .contains("aborted early: http_req_duration: p(99)<50 failed")
    );
    assert_eq!(
        s.interrupted, 0,
        "in-flight requests finished within the graceful stop"
    );

    // A fast server never trips it.
    let run = run_of(open(100.0, "5s", 50), &[get("http://h/", 1)], thresholds);
    let (report, _) = simulate(run, &mut fixed(2 * MS), &[]);
    assert_eq!(report.summary.stopped_by, StopReason::Duration);
    assert!(report.summary.passed);
}

#[test]
fn weights_shape_the_mix() {
    let run = run_of(
        open(1000.0, "10s", 100),
        &[get("http://h/a", 1), get("http://h/b", 4)],
        "{}",
    );
    let mut server = |_: u64, template: usize, _: Duration| {
        (MS, Outcome::Status(if template == 0 { 200 } else { 201 }))
    };
    let (report, _) = simulate(run, &mut server, &[]);
    let t = &report.summary.templates;
    assert_eq!(t[0].requests + t[1].requests, 10_000);
    let share = t[1].requests as f64 / 10_000.0;
    assert!((share - 0.8).abs() < 0.015, "{share}");
    assert_eq!(report.summary.statuses[&201], t[1].requests);
    assert_eq!(t[1].name, "GET http://h/b");
}

#[test]
fn requests_past_the_graceful_stop_are_interrupted() {
    let mut spec = open(10.0, "1s", 10);
    spec.graceful_stop = Some("1s".into());
    let run = run_of(spec, &[get("http://h/", 1)], "{}");
    let (report, _) = simulate(
        run,
        &mut |n: u64, _: usize, _: Duration| {
            (
                if n >= 8 { 5000 * MS } else { 10 * MS },
                Outcome::Status(200),
            )
        },
        &[],
    );
    let s = &report.summary;
    assert_eq!((s.iterations, s.requests, s.interrupted), (10, 8, 2));
}

#[test]
fn progress_reports_rate_errors_and_p99_so_far() {
    let mut run = run_of(open(100.0, "10s", 10), &[get("http://h/", 1)], "{}");
    let mut now = Duration::ZERO;
    let mut n = 0;
    while now < Duration::from_millis(2500) {
        match run.next(now) {
            Next::Send { id, .. } => {
                n += 1;
                let outcome = if n % 4 == 0 {
                    Outcome::Status(500)
                } else {
                    Outcome::Status(200)
                };
                run.finished(id, now + 2 * MS, &outcome).unwrap();
            }
            Next::Wait { until } => now = until.unwrap(),
            Next::Done => unreachable!(),
        }
    }
    let p = run.progress(now);
    assert_eq!(p.requests, 250);
    assert_eq!(p.errors, 62);
    assert_eq!(p.rate, 100.0);
    assert_eq!(p.target, 100.0);
    assert!((p.p99_ms.unwrap() - 2.0).abs() < 0.01);
    assert!(
        p.to_string().starts_with(
            "2.5s: 250 requests, 100/s (target 100), 62 errors, 0 dropped, p99 2.00 ms"
        ),
        "{p}"
    );
    assert!(
        run.finished(10_000, now, &Outcome::Timeout).is_err(),
        "unknown ids are refused"
    );
    let report = run.finish(now);
    assert_eq!(report.summary.stopped_by, StopReason::Interrupted);
}

#[test]
fn the_spectrum_and_the_json_document() {
    let run = run_of(
        open(1000.0, "2s", 100),
        &[get("http://h/", 1)],
        r#"{"http_req_duration": ["p(99)<50"]}"#,
    );
    let mut server = |n: u64, _: usize, _: Duration| {
        (
            Duration::from_micros(500 + (n % 1000) * 10),
            Outcome::Status(200),
        )
    };
    let (report, _) = simulate(run, &mut server, &[]);
    let text = report.percentile_spectrum(true);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "       Value     Percentile TotalCount 1/(1-Percentile)"
    );
    assert_eq!(lines[1], "");
    assert_eq!(
        lines[2],
        "       0.500 0.000000000000          2           1.00"
    );
    let rows: Vec<Vec<&str>> = lines[2..lines.len() - 3]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let last = rows.last().unwrap();
    assert_eq!(
        last.len(),
        3,
        "the 100% row has no 1/(1-p) column: {last:?}"
    );
    assert_eq!(last[1], "1.000000000000");
    assert_eq!(last[2], "2000");
    let values: Vec<f64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert!(values.windows(2).all(|w| w[0] <= w[1]));
    assert!(
        (values[values.len() - 1] - 10.49).abs() < 0.01,
        "{values:?}"
    );
    assert!(
        lines[lines.len() - 3].starts_with("#[Mean    =        5.4"),
        "{}",
        lines[lines.len() - 3]
    );
    assert_eq!(
        lines[lines.len() - 2],
        "#[Max     =       10.495, Total count    =         2000]"
    );
    assert_eq!(
        lines[lines.len() - 1],
        "#[Buckets =           22, SubBuckets     =         2048]"
    );

    let json = report.json();
    assert_eq!(json["schema"], "sluice-loadgen/1");
    assert_eq!(json["summary"]["requests"], 2000);
    assert_eq!(json["summary"]["thresholds"][0]["passed"], true);
    assert_eq!(json["histograms"]["corrected"]["count"], 2000);
    let buckets = json["histograms"]["corrected"]["buckets"]
        .as_array()
        .unwrap();
    let total: u64 = buckets.iter().map(|b| b[1].as_u64().unwrap()).sum();
    assert_eq!(total, 2000);
    assert_eq!(
        json["series"].as_array().unwrap().len(),
        3,
        "the last requests finish in second 2"
    );
    assert_eq!(json["series"][0]["started"], 1000);
    assert!(json["series"][1]["p99_ms"].as_f64().unwrap() > 10.0);
    let metrics = report.metrics();
    let get = |n: &str| metrics.iter().find(|m| m.0 == n).unwrap().1;
    assert_eq!(get("requests"), 2000.0);
    assert!(
        (get("latency.p50") - 5.5).abs() < 0.02,
        "{}",
        get("latency.p50")
    );
    assert!(get("latency_uncorrected.p99.9") > 10.0);
}

#[test]
fn a_report_read_back_from_its_wire_form_says_the_same() {
    let mut server = |n: u64, _: usize, _: Duration| {
        let outcome = if n.is_multiple_of(10) {
            Outcome::Status(500)
        } else {
            Outcome::Status(200)
        };
        (Duration::from_micros(1500 + 37 * (n % 50)), outcome)
    };
    let run = run_of(
        open(200.0, "3s", 50),
        &[get("http://h/", 1)],
        r#"{"http_req_failed": ["rate<0.01"], "http_req_duration": ["p(99)<50"]}"#,
    );
    let (report, _) = simulate(run, &mut server, &[]);
    let back = Report::from_wire(&report.to_wire()).unwrap();
    assert_eq!(back.text(), report.text());
    assert_eq!(
        back.percentile_spectrum(true),
        report.percentile_spectrum(true)
    );
    assert_eq!(
        back.percentile_spectrum(false),
        report.percentile_spectrum(false)
    );
    assert_eq!(back.summary.series, report.summary.series);
    assert_eq!(back.summary.thresholds, report.summary.thresholds);
    assert_eq!(back.metrics().len(), report.metrics().len());
    assert!(!back.summary.passed);
    assert!(Report::from_wire("{}").is_err());
}
