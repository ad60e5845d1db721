//! Monitors and alarms through the binary: a pipeline's `[[monitor]]`s check while
//! its run is alive (the fixture monitor `tests/fixtures/file-monitor` reports what a
//! file lists, so each test decides what every check observes), an alarms gate holds
//! a stage's entry, an override lets the fix through on the record, an alarm that
//! fires while a stage runs fails it, and an alarm that fired while a window was
//! closed still stops the run when the window opens.
//!
//! Time is the test clock and a 50 ms poll (see `durable.rs`); monitors check every
//! 100 ms.

use std::time::Duration;

use crate::durable::{Durable, both, marker_step, run_id_of, wait_until};

/// The fixture monitor's path.
fn file_monitor() -> &'static str {
    sluice_tests::FILE_MONITOR
}

/// A `[[monitor]]` of the fixture reading `status.txt`, with extra keys.
fn monitor(id: &str, extra: &str) -> String {
    format!(
        r#"
[[monitor]]
id = "{id}"
uses = "{uses}"
interval = "100ms"
with = {{ file = "status-{id}.txt" }}
{extra}
[monitor.grants]
read = ["."]
"#,
        uses = file_monitor()
    )
}

/// build → prod, prod behind `gates` (TOML), with `monitors` declared.
fn pipeline(monitors: &str, gates: &str, deploy_sleep: &str) -> String {
    format!(
        r#"
[pipeline]
name = "shop"
{monitors}
[[stage]]
name = "build"
{build}
[[stage]]
name = "prod"
{gates}
{deploy}"#,
        build = marker_step("compile", "0", &[]),
        deploy = marker_step("deploy", deploy_sleep, &[]),
    )
}

const ALARM_GATE: &str = "[stage.gates.alarms]\nalarms = [\"api\"]\n";

fn status(d: &Durable, id: &str, text: &str) {
    let tmp = d.path().join(format!("status-{id}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, d.path().join(format!("status-{id}.txt"))).unwrap();
}

#[test]
fn an_alarm_halts_promotion_and_its_override_lets_the_fix_through_on_the_record() {
    let d = Durable::new(&pipeline(&monitor("api", ""), ALARM_GATE, "0"));
    status(&d, "api", "negative health status 500 from /health\n");
    let out = d.sluice(&["run", "--no-wait"]);
    out.expect_code(4);
    let text = both(&out);
    let run = run_id_of(&text);
    assert!(
        text.contains("monitor `api` is ALARM") && text.contains("health: status 500 from /health"),
        "{text}"
    );
    assert_eq!(d.marker("compile"), 1);
    assert_eq!(d.marker("deploy"), 0);
    // The checks are in the store, with the run as their source.
    let waiting = d.status_json(&run);
    assert_eq!(waiting["run"]["state"], "waiting", "{waiting}");
    // Resuming while the alarm fires waits again.
    let again = d.sluice(&["resume", &run, "--no-wait"]);
    again.expect_code(4);
    assert_eq!(d.marker("deploy"), 0);
    // The fix goes through on an override, on the record.
    d.sluice(&[
        "override",
        &run,
        "--gate",
        "alarms",
        "--stage",
        "prod",
        "--reason",
        "the fix for INC-9",
    ])
    .expect_code(0);
    let done = d.sluice(&["resume", &run]);
    done.expect_code(0);
    assert_eq!(d.marker("deploy"), 1, "{}", both(&done));
    let history = d.sluice(&["status", &run]);
    history.expect_code(0);
    assert!(
        both(&history).contains("the fix for INC-9"),
        "{}",
        both(&history)
    );
}

#[test]
fn insufficient_data_is_breaching_by_default_and_not_breaching_lets_it_pass() {
    let d = Durable::new(&pipeline(&monitor("api", ""), ALARM_GATE, "0"));
    status(&d, "api", "none\n");
    let out = d.sluice(&["run", "--no-wait"]);
    out.expect_code(4);
    assert!(
        both(&out).contains("monitor `api` is INSUFFICIENT_DATA since 2026-11-30T07:00:00Z (treated as breaching: missing = \"breaching\"): no data"),
        "{}",
        both(&out)
    );
    let d = Durable::new(&pipeline(
        &monitor("api", "missing = \"not-breaching\""),
        ALARM_GATE,
        "0",
    ));
    status(&d, "api", "none\n");
    let out = d.sluice(&["run", "--no-wait"]);
    out.expect_code(0);
    assert_eq!(d.marker("deploy"), 1);
}

#[test]
fn an_alarm_that_fires_while_a_stage_runs_stops_it_and_fails_the_stage() {
    let d = Durable::new(&pipeline(&monitor("api", ""), ALARM_GATE, "30"));
    status(&d, "api", "positive health ok\n");
    let run = d.spawn(&["run"]);
    wait_until("the deploy step to start", Duration::from_secs(60), || {
        d.marker("deploy") == 1
    });
    status(&d, "api", "negative health status 503\n");
    let out = run.finish(Duration::from_secs(20));
    out.expect_code(1);
    let text = both(&out);
    assert!(
        text.contains("stage `prod` stopped: alarm gate `alarms` fired while the stage ran: monitor `api` is ALARM")
            && text.contains("health: status 503"),
        "{text}"
    );
}

#[test]
fn an_alarm_that_fired_while_a_window_was_closed_still_stops_the_run_when_it_opens() {
    let gates = format!(
        "{ALARM_GATE}[stage.gates.business-hours]\nkind = \"window\"\ntimezone = \"Europe/Berlin\"\ndays = \"Mon-Fri\"\nhours = \"09:00-17:00\"\n"
    );
    let d = Durable::new(&pipeline(&monitor("api", ""), &gates, "0"));
    status(&d, "api", "positive health ok\n");
    let run = d.spawn(&["run"]);
    wait_until("the run to wait", Duration::from_secs(60), || {
        d.run_ids().first().is_some_and(|id| {
            d.try_status_json(id)
                .is_some_and(|s| s["run"]["state"] == "running" && d.marker("compile") == 1)
        })
    });
    let id = d.run_ids()[0].clone();
    // The alarm fires while the window is closed, then the window opens.
    status(&d, "api", "negative health status 500\n");
    std::thread::sleep(Duration::from_millis(500));
    d.set_clock("2026-11-30T10:00:00Z");
    // Well past several polls and checks, the run still waits, held by the alarm.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(d.marker("deploy"), 0);
    let explain = d.sluice(&["explain", &id]);
    assert!(
        both(&explain).contains("monitor `api` is ALARM"),
        "{}",
        both(&explain)
    );
    // It clears: the run goes in.
    status(&d, "api", "positive health ok\n");
    let out = run.finish(Duration::from_secs(30));
    out.expect_code(0);
    assert_eq!(d.marker("deploy"), 1);
}
