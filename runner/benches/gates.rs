//! The cost of deciding at a stage's entry: gate evaluations and the `explain` answer.
//! Prints its figures; run with `cargo bench -p sluice --bench gates`.
//!
//! A waiting run evaluates every gate of its stage at each poll (10 s by default), and
//! `sluice explain` evaluates the gates of every stage the run has not passed; the
//! target for the whole `explain` command is under 50 ms on a database of 10,000 runs
//! (benches/state.rs measures the store's share). This bench measures the gates' share:
//! a window's standing (an ordinary week, and a year-long freeze, the worst case: the
//! search walks a year day by day), a whole stage (two approvals needed among 50
//! responses from 25 people, an ordinary window and a year-long freeze, 10 overrides
//! that do not apply), and rendering the explanation as text and as JSON.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use sluice::gates::explain::{ExplainInput, StageFacts, explain, render_text, to_json};
use sluice::gates::window::WindowGate;
use sluice::gates::{GateInput, GateKind, build_stage, evaluate_stage};
use sluice::state::{ApprovalRow, ArtifactRow, OverrideRow, RunRow, RunState, Trigger};

const PIPELINE: &str = r#"
[pipeline]
name = "shop"

[[stage]]
name = "prod"

[[stage.step]]
id = "deploy"
uses = "builtin:command"

[stage.gates.approval]
required = 2

[stage.gates.business-hours]
kind = "window"
timezone = "Europe/Berlin"
allow = [{ days = "Mon-Thu", hours = "09:00-12:00,13:00-16:00" }, { days = "Fri", hours = "09:00-12:00" }]
blackout = ["2026-12-24", "2026-12-31..2027-01-01"]

[stage.gates.freeze]
kind = "window"
timezone = "America/New_York"
blackout = ["2026-11-01..2027-11-30"]
"#;

/// Mean time per call of `f` over `n` calls.
fn per_call(n: u32, mut f: impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed() / n
}

fn at(s: &str) -> jiff::Timestamp {
    s.parse().expect("instant")
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let pipeline =
        sluice::config::parse(Path::new("sluice.toml"), PIPELINE.to_string()).expect("pipeline");
    let stage = &pipeline.stages[0];
    let window = |id: &str| {
        let spec = stage.gates.iter().find(|g| g.id == id).expect("gate");
        match &spec.kind {
            GateKind::Window(w) => WindowGate::new(id, w.clone()),
            GateKind::Approval(_) | GateKind::Alarms(_) => unreachable!("a window"),
        }
    };
    let now = at("2026-11-30T05:50:00Z");

    let hours = window("business-hours");
    let ordinary = per_call(20_000, || {
        black_box(hours.standing(black_box(now)));
    });
    let freeze = window("freeze");
    let frozen = per_call(500, || {
        black_box(freeze.standing(black_box(now)));
    });

    let run_id = "20261130-054000-7f3a";
    let approvals: Vec<ApprovalRow> = (0..50)
        .map(|i| ApprovalRow {
            run_id: run_id.into(),
            stage: "prod".into(),
            action: "approve".into(),
            actor: format!("person-{}", i % 25),
            reason: "ok".into(),
            at: at("2026-11-30T05:45:00Z"),
        })
        .collect();
    let overrides: Vec<OverrideRow> = (0..10)
        .map(|i| OverrideRow {
            id: i,
            run_id: run_id.into(),
            gate: "business-hours".into(),
            stage: Some("beta".into()),
            actor: "dana".into(),
            reason: "not this stage".into(),
            created_at: at("2026-11-30T05:00:00Z"),
            expires_at: None,
            used_at: None,
        })
        .collect();
    let env = sluice::gates::GateEnv {
        pipeline: &pipeline,
        store: None,
        policy: None,
    };
    let gates = build_stage(stage, &env);
    let input = GateInput {
        pipeline: "shop",
        run_id,
        stage: "prod",
        now,
        approvals: &approvals,
        artifact: None,
    };
    let verdict = futures::executor::block_on(evaluate_stage(&gates, &input, &overrides));
    let whole_stage = per_call(500, || {
        black_box(futures::executor::block_on(evaluate_stage(
            &gates,
            black_box(&input),
            &overrides,
        )));
    });

    let run = RunRow {
        run_id: run_id.into(),
        pipeline: "shop".into(),
        pipeline_file: "/work/shop/sluice.toml".into(),
        pipeline_digest: "9f86d081884c7d65".into(),
        run_dir: "/work/shop/.sluice/runs/20261130-054000-7f3a".into(),
        trigger: Trigger::default(),
        state: RunState::Waiting,
        reason: None,
        started_at: at("2026-11-30T05:40:00Z"),
        finished_at: None,
        current_stage: Some("prod".into()),
        artifact: Some(ArtifactRow {
            name: "web".into(),
            version: Some("1.42.0".into()),
            digest: format!("sha256:{}", "ab".repeat(32)),
        }),
        superseded_by: None,
        holder: None,
    };
    let facts = || ExplainInput {
        run: &run,
        now,
        stages: vec![StageFacts {
            stage: "prod",
            row: None,
            verdict: Some(&verdict),
            recorded: &[],
            approvals: &approvals,
            overrides: &overrides,
            holder: None,
            queue: &[],
        }],
    };
    let text = per_call(2_000, || {
        black_box(render_text(&explain(&facts())));
    });
    let json = per_call(2_000, || {
        black_box(to_json(&explain(&facts())).to_string());
    });

    println!("gates: the cost of deciding at a stage's entry (release build)");
    println!(
        "  window standing, ordinary week          {:>10.1?} per evaluation",
        ordinary
    );
    println!(
        "  window standing, year-long freeze       {:>10.1?} per evaluation (worst case: a year walked)",
        frozen
    );
    println!(
        "  evaluate_stage (approval 50 responses, 2 windows, 10 overrides) {:>10.1?}",
        whole_stage
    );
    println!("  explain text for one stage              {:>10.1?}", text);
    println!("  explain JSON for one stage              {:>10.1?}", json);
    let share = (whole_stage + text).as_secs_f64() / Duration::from_millis(50).as_secs_f64();
    println!(
        "  gates' share of the 50 ms explain budget: {:.2}% per stage",
        share * 100.0
    );
}
