//! `[stage.bake]` through the binary: a bake passes only with its minimum time AND its
//! positive data points, fails on one negative point (and stops the run), waits while
//! data is missing (`--no-wait` exits 4), survives a killed runner, ends on an override,
//! and shows in `status`, `history` and `explain` (snapshot-tested).
//!
//! The data points are written straight into the run's state store by the test (as a
//! monitor or a `sluice canary` process sharing the store would), while the runner
//! waits; time is the test clock (`SLUICE_TEST_CLOCK`), and a baking run looks again
//! every 50 ms (`SLUICE_GATE_POLL_MS`): no test sleeps for a bake.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice::state::{BakeRow, CheckOutcome, CheckRow, DataPointRow, Store};

use crate::support::{Outcome, Project, normalize};

/// Monday 2026-11-30, 08:00 UTC: where every test's clock starts.
const T0: &str = "2026-11-30T08:00:00Z";

/// A project whose pipeline bakes: a clock file, a markers folder, its store.
struct Baking {
    project: Project,
}

/// A `sluice` process the test started; killed and reaped by PID when dropped.
struct Running {
    child: Option<Child>,
}

impl Running {
    fn finish(mut self, limit: Duration) -> Outcome {
        let mut child = self.child.take().expect("the child is there");
        let deadline = Instant::now() + limit;
        while child.try_wait().expect("poll the child").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = Outcome::from_child(child);
                panic!(
                    "sluice did not end within {limit:?}\n--- stdout\n{}\n--- stderr\n{}",
                    out.stdout, out.stderr
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Outcome::from_child(child)
    }

    fn ended(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    /// SIGKILL it and reap it.
    fn kill9(mut self) {
        let mut child = self.child.take().expect("the child is there");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// build (one step, bakes) → prod (one step). `bake` is the `[stage.bake]` body.
fn pipeline(bake: &str) -> String {
    format!(
        r#"
[pipeline]
name = "shop"

[[monitor]]
id = "canary"

[[monitor]]
id = "api-errors"

[[stage]]
name = "beta"
{compile}
[stage.bake]
{bake}

[[stage]]
name = "prod"
{deploy}"#,
        compile = marker_step("compile"),
        deploy = marker_step("deploy"),
    )
}

fn marker_step(id: &str) -> String {
    format!(
        r#"
[[stage.step]]
id = "{id}"
uses = "builtin:command"
with = {{ program = "sh", args = ["-c", "echo x >> {{markers}}/{id}"] }}

[stage.step.grants]
exec = ["sh"]
write = ["{{markers}}"]
"#
    )
}

impl Baking {
    fn new(bake: &str) -> Baking {
        Baking::with_pipeline(&pipeline(bake))
    }

    /// A project with this pipeline file (`{markers}` is the markers folder).
    fn with_pipeline(toml: &str) -> Baking {
        let project = Project::new("");
        let markers = project.path().join("markers");
        std::fs::create_dir_all(&markers).unwrap();
        project.write(
            "sluice.toml",
            &toml.replace("{markers}", &markers.display().to_string()),
        );
        let b = Baking { project };
        b.set_clock(T0);
        b
    }

    fn path(&self) -> &Path {
        self.project.path()
    }

    fn set_clock(&self, instant: &str) {
        let tmp = self.path().join("clock.tmp");
        std::fs::write(&tmp, instant).unwrap();
        std::fs::rename(&tmp, self.path().join("clock")).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.project.command(args);
        cmd.env("SLUICE_TEST_CLOCK", self.path().join("clock"))
            .env("SLUICE_GATE_POLL_MS", "50")
            .env("SLUICE_ACTOR", "tester");
        for var in [
            "GITHUB_ACTIONS",
            "GITHUB_SHA",
            "GITHUB_RUN_ID",
            "GITHUB_ACTOR",
            "CI_PIPELINE_ID",
            "GITHUB_STEP_SUMMARY",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    fn sluice(&self, args: &[&str]) -> Outcome {
        Outcome::of(&mut self.command(args))
    }

    fn spawn(&self, args: &[&str]) -> Running {
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sluice");
        Running { child: Some(child) }
    }

    fn marker(&self, name: &str) -> usize {
        std::fs::read_to_string(self.path().join("markers").join(name))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// The ids of the runs so far, oldest first.
    fn run_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.path().join(".sluice/runs"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    fn store(&self) -> Option<Store> {
        Store::open_existing(&self.path().join(".sluice/state.db")).ok()
    }

    /// The bake of stage beta of the run, as recorded.
    fn bake(&self, run: &str) -> Option<BakeRow> {
        self.store()?.bake(run, "beta").ok().flatten()
    }

    /// Record one check of `monitor` with its points, as a monitor process would.
    fn record(&self, monitor: &str, at: &str, points: &[(&str, bool, &str)]) {
        let at: jiff::Timestamp = at.parse().unwrap();
        let rows: Vec<DataPointRow> = points
            .iter()
            .map(|(name, positive, detail)| DataPointRow {
                monitor: monitor.into(),
                name: (*name).into(),
                positive: *positive,
                value: None,
                detail: (*detail).into(),
                at,
            })
            .collect();
        let check = CheckRow {
            id: 0,
            monitor: monitor.into(),
            source: "test".into(),
            scheduled_at: at,
            started_at: at,
            finished_at: at,
            outcome: CheckOutcome::Data,
            positive: 0,
            negative: 0,
            summary: format!("{} points", rows.len()),
        };
        let store = self.store().expect("the state database exists");
        store.record_check(&check, &rows).expect("record a check");
        store.checkpoint().expect("checkpoint");
    }

    fn status_json(&self, run: &str) -> serde_json::Value {
        let out = self.sluice(&["status", run, "--format", "json"]);
        out.expect_code(0);
        serde_json::from_str(&out.stdout).expect("status --format json is JSON")
    }

    fn text(&self, s: &str) -> String {
        normalize(s, self.path())
    }
}

/// Wait until `cond` holds, failing after `limit`.
#[track_caller]
fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The only run's id, once it has started baking stage beta.
fn wait_for_bake(b: &Baking) -> String {
    wait_until("the run to start its bake", Duration::from_secs(60), || {
        b.run_ids().len() == 1 && b.bake(&b.run_ids()[0]).is_some()
    });
    b.run_ids()[0].clone()
}

/// Wait until the recorded counts of the bake are `positive` and `negative` at or
/// after `at`: the runner has looked at the store since.
fn wait_for_counts(b: &Baking, run: &str, positive: u64, negative: u64, at: &str) {
    let at: jiff::Timestamp = at.parse().unwrap();
    wait_until(
        &format!("the bake to count {positive} positive, {negative} negative at {at}"),
        Duration::from_secs(30),
        || {
            b.bake(run).is_some_and(|r| {
                r.positive == positive && r.negative == negative && r.updated_at >= at
            })
        },
    );
    // A few more polls: a bake that was going to end on these counts has ended.
    std::thread::sleep(Duration::from_millis(300));
}

fn both(out: &Outcome) -> String {
    format!("{}{}", out.stdout, out.stderr)
}

#[test]
fn a_bake_passes_only_after_its_duration_and_its_positive_points() {
    let b =
        Baking::new("duration = \"10m\"\npositive = 3\nmonitors = [\"canary\", \"api-errors\"]");
    // N points before the time: still baking.
    let mut run = b.spawn(&["run", "--format", "plain"]);
    let id = wait_for_bake(&b);
    assert_eq!(b.marker("compile"), 1);
    b.record(
        "canary",
        T0,
        &[("login", true, "200 in 40ms"), ("search", true, "200")],
    );
    b.record("api-errors", T0, &[("rate", true, "0.1% < 1%")]);
    wait_for_counts(&b, &id, 3, 0, T0);
    b.set_clock("2026-11-30T08:09:59Z");
    wait_for_counts(&b, &id, 3, 0, "2026-11-30T08:09:59Z");
    assert!(!run.ended(), "the bake passed before its 10 minutes");
    assert_eq!(b.marker("deploy"), 0, "prod ran before the bake passed");
    // A baking run shows as baking.
    let status = b.sluice(&["status", &id]);
    assert!(
        status
            .stdout
            .contains(&format!("run {id}: baking in stage beta")),
        "{}",
        status.stdout
    );
    let history = b.sluice(&["history"]);
    assert!(
        history
            .stdout
            .lines()
            .any(|l| l.starts_with(&id) && l.contains(" baking ")),
        "{}",
        history.stdout
    );
    // The time is done too: the bake passes and the run promotes.
    b.set_clock("2026-11-30T08:10:00Z");
    let out = run.finish(Duration::from_secs(60));
    out.expect_code(0);
    let shown = both(&out);
    assert!(
        shown.contains("baking stage beta: bake 0s of 10m, 0 of 3 positive, 0 negative; needs 10m more in the stage and 3 more positive data points; none came yet from canary, api-errors (missing data is not success)"),
        "{shown}"
    );
    assert!(
        shown.contains("bake of stage beta passed: bake 10m of 10m, 3 of 3 positive, 0 negative"),
        "{shown}"
    );
    assert_eq!(b.marker("deploy"), 1);
    let row = b.bake(&id).unwrap();
    assert_eq!(row.outcome.as_deref(), Some("passed"));
    assert_eq!(row.started_at, T0.parse().unwrap());

    // The time before N points: a second run, whose window starts at 08:10, sees none
    // of the first run's points, and waits past its time until the third comes.
    let mut run = b.spawn(&["run", "--format", "json"]);
    wait_until("the second run to bake", Duration::from_secs(60), || {
        b.run_ids().len() == 2 && b.bake(&b.run_ids()[1]).is_some()
    });
    let second = b.run_ids()[1].clone();
    b.record(
        "canary",
        "2026-11-30T08:11:00Z",
        &[("login", true, "200"), ("search", true, "200")],
    );
    b.set_clock("2026-11-30T08:30:00Z");
    wait_for_counts(&b, &second, 2, 0, "2026-11-30T08:30:00Z");
    assert!(!run.ended(), "the bake passed with 2 of 3 positive points");
    assert_eq!(b.marker("deploy"), 1);
    b.record(
        "api-errors",
        "2026-11-30T08:29:00Z",
        &[("rate", true, "0.2% < 1%")],
    );
    let out = run.finish(Duration::from_secs(60));
    out.expect_code(0);
    // The live progress is JSON too.
    let events: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &serde_json::Value| e["event"] == "bake")
        .collect();
    let last = events.last().expect("bake events");
    assert_eq!(last["state"], "passed");
    assert_eq!(last["progress"]["positive"], 3);
    assert_eq!(last["progress"]["elapsed_secs"], 20 * 60);
    assert_eq!(b.marker("deploy"), 2);
}

#[test]
fn a_single_negative_point_fails_the_bake_and_stops_the_run() {
    let b = Baking::new("duration = \"10m\"\npositive = 100\nmonitors = [\"canary\"]");
    let run = b.spawn(&["run", "--format", "plain"]);
    let id = wait_for_bake(&b);
    b.record(
        "canary",
        T0,
        &[("login", true, "200"), ("search", true, "200")],
    );
    b.record(
        "canary",
        "2026-11-30T08:00:30Z",
        &[
            ("login", false, "status 503, expected 200"),
            ("search", true, "200"),
        ],
    );
    b.set_clock("2026-11-30T08:01:00Z");
    let out = run.finish(Duration::from_secs(60));
    out.expect_code(1);
    let detail = "bake failed: 1 negative data point: canary/login at 2026-11-30T08:00:30Z: status 503, expected 200 (bake 1m of 10m, 3 of 100 positive, 1 negative)";
    assert!(both(&out).contains(detail), "{}", both(&out));
    assert_eq!(b.marker("deploy"), 0, "a failed bake stops the run");
    let row = b.bake(&id).unwrap();
    assert_eq!(row.outcome.as_deref(), Some("failed"));
    assert_eq!(row.detail.as_deref(), Some(detail));
    assert_eq!((row.positive, row.negative), (3, 1));
    let status = b.status_json(&id);
    assert_eq!(status["run"]["state"], "failed");
    assert_eq!(
        status["run"]["reason"],
        format!("stage `beta`: {detail}").as_str()
    );
    let stages = status["stages"].as_array().unwrap();
    assert!(
        stages
            .iter()
            .any(|s| s["stage"] == "beta" && s["status"] == "failed"),
        "{stages:?}"
    );
    assert!(
        !stages
            .iter()
            .any(|s| s["stage"] == "prod" && s["entered_at"].is_string())
    );
}

#[test]
fn a_bake_without_data_waits_past_its_duration_and_says_why() {
    let b = Baking::new("duration = \"5m\"\nmonitors = [\"canary\"]");
    let out = b.sluice(&["run", "--format", "plain", "--no-wait"]);
    out.expect_code(4);
    let id = b.run_ids()[0].clone();
    let why = "stage `beta`: bake 0s of 5m, 0 of 1 positive, 0 negative; needs 5m more in the stage and 1 more positive data point; none came yet from canary (missing data is not success)";
    let status = b.status_json(&id);
    assert_eq!(status["run"]["state"], "waiting");
    assert_eq!(status["run"]["reason"], why);
    // Long past its duration, with no data, it still waits, and says why.
    b.set_clock("2026-11-30T09:00:00Z");
    let out = b.sluice(&["resume", &id, "--format", "plain", "--no-wait"]);
    out.expect_code(4);
    let status = b.status_json(&id);
    assert_eq!(
        status["run"]["reason"],
        "stage `beta`: bake 1h of 5m, 0 of 1 positive, 0 negative; needs 1 more positive data point; none came yet from canary (missing data is not success)"
    );
    assert_eq!(
        b.marker("compile"),
        1,
        "resume does not run a finished step again"
    );
    assert_eq!(b.marker("deploy"), 0);
    // In process too: a runner waits, then passes when data comes.
    let run = b.spawn(&["resume", &id, "--format", "plain"]);
    wait_for_counts(&b, &id, 0, 0, "2026-11-30T09:00:00Z");
    b.record("canary", "2026-11-30T08:58:00Z", &[("login", true, "200")]);
    let out = run.finish(Duration::from_secs(60));
    out.expect_code(0);
    assert_eq!(b.marker("deploy"), 1);
    let row = b.bake(&id).unwrap();
    assert_eq!(
        row.started_at,
        T0.parse().unwrap(),
        "the bake kept its start"
    );
    assert_eq!(row.outcome.as_deref(), Some("passed"));
}

#[test]
fn a_killed_runner_resumes_its_bake_from_the_recorded_start() {
    let b = Baking::new("duration = \"10m\"\npositive = 2\nmonitors = [\"canary\"]");
    let run = b.spawn(&["run", "--format", "plain"]);
    let id = wait_for_bake(&b);
    run.kill9();
    // Time goes on while no runner bakes; points keep coming.
    b.set_clock("2026-11-30T08:12:00Z");
    b.record(
        "canary",
        "2026-11-30T08:05:00Z",
        &[("login", true, "200"), ("search", true, "200")],
    );
    let out = b.sluice(&["resume", &id, "--format", "plain"]);
    out.expect_code(0);
    assert!(
        both(&out)
            .contains("bake of stage beta passed: bake 12m of 10m, 2 of 2 positive, 0 negative"),
        "{}",
        both(&out)
    );
    let row = b.bake(&id).unwrap();
    assert_eq!(row.started_at, T0.parse().unwrap(), "not a new bake");
    assert_eq!(b.marker("compile"), 1);
    assert_eq!(b.marker("deploy"), 1);
}

#[test]
fn an_override_of_gate_bake_ends_the_bake_as_overridden() {
    let b = Baking::new("duration = \"1h\"\npositive = 3000\nmonitors = [\"canary\"]");
    let run = b.spawn(&["run", "--format", "plain"]);
    let id = wait_for_bake(&b);
    // A mistyped gate is refused with the stage's gates listed.
    let wrong = b.sluice(&[
        "override", &id, "--gate", "bak", "--stage", "beta", "--reason", "x",
    ]);
    wrong.expect_code(2);
    assert!(
        wrong.stderr.contains("did you mean `bake`?"),
        "{}",
        wrong.stderr
    );
    b.sluice(&[
        "override",
        &id,
        "--gate",
        "bake",
        "--stage",
        "beta",
        "--reason",
        "hotfix for INC-9",
    ])
    .expect_code(0);
    let out = run.finish(Duration::from_secs(60));
    out.expect_code(0);
    assert_eq!(b.marker("deploy"), 1);
    let row = b.bake(&id).unwrap();
    assert_eq!(row.outcome.as_deref(), Some("overridden"));
    let detail = row.detail.unwrap();
    assert!(
        detail.starts_with("overridden by tester (override #1: hotfix for INC-9); the bake said: bake 0s of 1h, 0 of 3,000 positive"),
        "{detail}"
    );
    let status = b.status_json(&id);
    assert!(status["overrides"][0]["used_at"].is_string(), "{status}");
}

#[test]
fn explain_shows_a_bake_in_progress() {
    let b = Baking::new(
        "duration = \"1h\"\npositive = 3000\nmonitors = [\"canary\", \"api-errors\"]\ntimeout = \"3h\"",
    );
    b.sluice(&["run", "--format", "plain", "--no-wait"])
        .expect_code(4);
    let id = b.run_ids()[0].clone();
    b.record(
        "canary",
        "2026-11-30T08:10:00Z",
        &[("login", true, "200"), ("search", true, "200")],
    );
    b.record(
        "api-errors",
        "2026-11-30T08:20:00Z",
        &[("rate", true, "0.1% < 1%")],
    );
    b.set_clock("2026-11-30T08:23:00Z");
    let explain = b.sluice(&["explain", &id]);
    explain.expect_code(0);
    insta::assert_snapshot!("explain_baking", b.text(&explain.stdout));
    let json = b.sluice(&["explain", &id, "--format", "json"]);
    json.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let beta = &v["stages"][0];
    assert_eq!(beta["stage"], "beta");
    insta::assert_snapshot!(
        "explain_baking_json",
        serde_json::to_string_pretty(&beta["bake"]).unwrap()
    );
    let status = b.sluice(&["status", &id]);
    status.expect_code(0);
    insta::assert_snapshot!("status_baking", b.text(&status.stdout));
}

/// beta (bakes on the `canary` monitor; with `alarm`, its entry is behind the `api`
/// alarm, watched during the bake too) → prod, where both monitors are real
/// `[[monitor]]`s: the fixture monitor reporting what `status-<id>.txt` lists,
/// checking every 100 ms while the run is alive.
fn monitored_pipeline(alarm: bool, bake: &str) -> String {
    let gate = if alarm {
        "[stage.gates.alarms]\nalarms = [\"api\"]\n"
    } else {
        ""
    };
    let monitor = |id: &str| {
        format!(
            "[[monitor]]\nid = \"{id}\"\nuses = \"{uses}\"\ninterval = \"100ms\"\nwith = {{ file = \"status-{id}.txt\" }}\n[monitor.grants]\nread = [\".\"]\n",
            uses = sluice_tests::FILE_MONITOR
        )
    };
    format!(
        "[pipeline]\nname = \"shop\"\n{canary}{api}\n[[stage]]\nname = \"beta\"\n{gate}{compile}\n[stage.bake]\n{bake}\n\n[[stage]]\nname = \"prod\"\n{deploy}",
        canary = monitor("canary"),
        api = monitor("api"),
        compile = marker_step("compile"),
        deploy = marker_step("deploy"),
    )
}

impl Baking {
    /// What the fixture monitor `id` observes from now on.
    fn observe(&self, id: &str, text: &str) {
        let tmp = self.path().join(format!("status-{id}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.path().join(format!("status-{id}.txt"))).unwrap();
    }
}

#[test]
fn a_real_monitor_feeds_the_bake_until_it_passes() {
    // No alarm here: a test clock moved by a minute makes a 100 ms monitor stale.
    let b = Baking::with_pipeline(&monitored_pipeline(
        false,
        "duration = \"1m\"\npositive = 3\nmonitors = [\"canary\"]",
    ));
    b.observe("api", "positive health ok\n");
    b.observe("canary", "positive login 200 in 12ms\n");
    let run = b.spawn(&["run", "--format", "plain"]);
    let id = wait_for_bake(&b);
    wait_until(
        "3 positive points from the monitor",
        Duration::from_secs(30),
        || b.bake(&id).is_some_and(|r| r.positive >= 3),
    );
    assert_eq!(b.marker("deploy"), 0, "the bake's minute has not passed");
    b.set_clock("2026-11-30T08:01:00Z");
    let out = run.finish(Duration::from_secs(60));
    out.expect_code(0);
    let row = b.bake(&id).unwrap();
    assert_eq!(row.outcome.as_deref(), Some("passed"), "{}", both(&out));
    assert!(row.positive >= 3 && row.negative == 0, "{row:?}");
    assert_eq!(b.marker("deploy"), 1);
}

#[test]
fn an_alarm_firing_during_the_bake_fails_it() {
    let b = Baking::with_pipeline(&monitored_pipeline(
        true,
        "duration = \"1h\"\npositive = 3\nmonitors = [\"canary\"]",
    ));
    b.observe("api", "positive health ok\n");
    b.observe("canary", "positive login 200\n");
    let run = b.spawn(&["run", "--format", "plain"]);
    let id = wait_for_bake(&b);
    b.observe("api", "negative health status 503 from /health\n");
    let out = run.finish(Duration::from_secs(60));
    out.expect_code(1);
    let row = b.bake(&id).unwrap();
    assert_eq!(row.outcome.as_deref(), Some("failed"), "{}", both(&out));
    let detail = row.detail.unwrap();
    assert!(
        detail.starts_with(
            "bake failed: alarm gate `alarms` fired during the bake: monitor `api` is ALARM"
        ) && detail.contains("status 503 from /health"),
        "{detail}"
    );
    assert_eq!(b.marker("deploy"), 0, "a failed bake stops the run");
    assert_eq!(
        b.status_json(&id)["run"]["reason"],
        format!("stage `beta`: {detail}").as_str()
    );
}

#[test]
fn a_bake_without_a_state_store_fails_rather_than_pass_on_no_evidence() {
    let b = Baking::new("duration = \"1m\"\nmonitors = [\"canary\"]");
    let out = b.sluice(&["run", "--format", "plain", "--no-state"]);
    out.expect_code(1);
    assert!(
        both(&out).contains("stage `beta`: bake failed: the run has no state store (--no-state), so the data points of canary cannot be counted; run without --no-state"),
        "{}",
        both(&out)
    );
    assert_eq!(b.marker("compile"), 1);
    assert_eq!(b.marker("deploy"), 0);
}
