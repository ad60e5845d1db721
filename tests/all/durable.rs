//! Durable runs through the binary: gates that wait (approval, time window), overrides,
//! `--no-wait` and resume, supersede, `kill -9` and resume, a stale stage claim, and the
//! reading commands (`status`, `history`, `explain`) snapshot-tested.
//!
//! Time is the test clock (`SLUICE_TEST_CLOCK`, a file holding one instant) and a
//! waiting run re-evaluates every 50 ms (`SLUICE_GATE_POLL_MS`): no test sleeps for a
//! gate. Steps append to marker files (`builtin:command` running `sh -c`), so a test
//! can count how often each step really ran.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Outcome, Project, normalize};

/// Monday 2026-11-30, 07:00 UTC: 08:00 in Berlin, before business hours.
const MONDAY_EARLY: &str = "2026-11-30T07:00:00Z";
/// The same Monday, 10:00 UTC: 11:00 in Berlin, inside business hours.
const MONDAY_LATE_MORNING: &str = "2026-11-30T10:00:00Z";

/// A project for durable runs: a pipeline file, a test clock, a markers folder.
pub(crate) struct Durable {
    pub(crate) project: Project,
}

/// A `sluice` process a test started; killed and reaped by PID when dropped.
pub(crate) struct Running {
    child: Option<Child>,
}

impl Running {
    /// Wait for its end (at most `limit`), and collect what it did.
    pub(crate) fn finish(mut self, limit: Duration) -> Outcome {
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

    /// Send it a signal by PID (`TERM`, `INT`...).
    pub(crate) fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("the child is there").id();
        Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .expect("run kill");
    }

    /// Whether it has ended by itself.
    pub(crate) fn ended(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    /// SIGKILL it and reap it.
    pub(crate) fn kill9(mut self) {
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

impl Durable {
    pub(crate) fn new(toml: &str) -> Durable {
        let project = Project::new("");
        let markers = project.path().join("markers");
        std::fs::create_dir_all(&markers).unwrap();
        project.write(
            "sluice.toml",
            &toml.replace("{markers}", &markers.display().to_string()),
        );
        let d = Durable { project };
        d.set_clock(MONDAY_EARLY);
        d
    }

    pub(crate) fn path(&self) -> &Path {
        self.project.path()
    }

    pub(crate) fn set_clock(&self, instant: &str) {
        // Written whole and renamed, so a reader never sees half a file.
        let tmp = self.path().join("clock.tmp");
        std::fs::write(&tmp, instant).unwrap();
        std::fs::rename(&tmp, self.path().join("clock")).unwrap();
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
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

    pub(crate) fn sluice(&self, args: &[&str]) -> Outcome {
        Outcome::of(&mut self.command(args))
    }

    pub(crate) fn sluice_as(&self, actor: &str, args: &[&str]) -> Outcome {
        Outcome::of(self.command(args).env("SLUICE_ACTOR", actor))
    }

    pub(crate) fn spawn(&self, args: &[&str]) -> Running {
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sluice");
        Running { child: Some(child) }
    }

    /// How many times the step `name` appended to its marker.
    pub(crate) fn marker(&self, name: &str) -> usize {
        std::fs::read_to_string(self.path().join("markers").join(name))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    pub(crate) fn status_json(&self, run: &str) -> serde_json::Value {
        let out = self.sluice(&["status", run, "--format", "json"]);
        out.expect_code(0);
        serde_json::from_str(&out.stdout).expect("status --format json is JSON")
    }

    pub(crate) fn try_status_json(&self, run: &str) -> Option<serde_json::Value> {
        let out = self.sluice(&["status", run, "--format", "json"]);
        (out.code == 0).then(|| serde_json::from_str(&out.stdout).ok())?
    }

    pub(crate) fn run_state(&self, run: &str) -> String {
        self.status_json(run)["run"]["state"]
            .as_str()
            .expect("a state")
            .to_string()
    }

    /// The ids of the runs so far, oldest first.
    pub(crate) fn run_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.path().join(".sluice/runs"))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    pub(crate) fn text(&self, s: &str) -> String {
        normalize(s, self.path())
    }
}

/// Wait until `cond` holds, failing after `limit`.
#[track_caller]
pub(crate) fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A step that appends to its marker file, then sleeps `sleep` seconds.
pub(crate) fn marker_step(id: &str, sleep: &str, needs: &[&str]) -> String {
    let needs = if needs.is_empty() {
        String::new()
    } else {
        format!(
            "needs = [{}]\n",
            needs
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        r#"
[[stage.step]]
id = "{id}"
uses = "builtin:command"
with = {{ program = "sh", args = ["-c", "echo x >> {{markers}}/{id}; sleep {sleep}"] }}
{needs}
[stage.step.grants]
exec = ["sh", "sleep"]
write = ["{{markers}}"]
"#
    )
}

/// build (one step) → prod (one step) behind an approval gate.
fn approval_pipeline(required: u32) -> String {
    format!(
        r#"
[pipeline]
name = "release"

[[stage]]
name = "build"
{build}
[[stage]]
name = "prod"

[stage.gates.approval]
required = {required}
{deploy}"#,
        build = marker_step("compile", "0", &[]),
        deploy = marker_step("deploy", "0", &[]),
    )
}

/// build → prod behind a Berlin business-hours window.
fn window_pipeline() -> String {
    format!(
        r#"
[pipeline]
name = "windowed"

[[stage]]
name = "build"
{build}
[[stage]]
name = "prod"

[stage.gates.business-hours]
kind = "window"
timezone = "Europe/Berlin"
days = "Mon-Thu"
hours = "09:00-16:00"
{deploy}"#,
        build = marker_step("compile", "0", &[]),
        deploy = marker_step("deploy", "0", &[]),
    )
}

/// What a command printed, both streams.
pub(crate) fn both(out: &Outcome) -> String {
    format!("{}{}", out.stdout, out.stderr)
}

pub(crate) fn run_id_of(out: &str) -> String {
    let re = regex::Regex::new(r"\(run (\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6})\)").unwrap();
    re.captures(out)
        .unwrap_or_else(|| panic!("no run id in:\n{out}"))[1]
        .to_string()
}

#[test]
fn a_run_waits_for_approval_in_process_until_another_process_approves() {
    let d = Durable::new(&approval_pipeline(1));
    let run = d.spawn(&["run", "--format", "plain"]);
    wait_until("the run to wait at prod", Duration::from_secs(60), || {
        d.run_ids().len() == 1
            && d.marker("compile") == 1
            && d.try_status_json(&d.run_ids()[0]).is_some_and(|s| {
                s["gates"]
                    .as_array()
                    .is_some_and(|g| g.iter().any(|g| g["decision"] == "wait"))
            })
    });
    let id = d.run_ids()[0].clone();
    assert_eq!(d.marker("deploy"), 0, "prod must not start before approval");
    assert_eq!(d.run_state(&id), "running");
    d.sluice_as(
        "alice",
        &[
            "approve",
            &id,
            "--stage",
            "prod",
            "--reason",
            "release notes reviewed",
        ],
    )
    .expect_code(0);
    let out = run.finish(Duration::from_secs(60));
    out.expect_code(0);
    let shown = format!("{}{}", out.stdout, out.stderr);
    assert!(shown.contains("waiting for stage prod"), "{shown}");
    assert!(
        shown.contains(&format!(
            "sluice approve {id} --stage prod --reason \"...\""
        )) || shown.contains(&format!("sluice approve {id} --stage prod")),
        "the wait shows the command that clears it:\n{shown}"
    );
    assert_eq!(d.marker("deploy"), 1);
    let status = d.status_json(&id);
    assert_eq!(status["run"]["state"], "passed");
    let approvals = status["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 1);
    assert_eq!(approvals[0]["actor"], "alice");
    assert_eq!(approvals[0]["reason"], "release notes reviewed");
}

#[test]
fn no_wait_exits_4_at_a_gate_and_resume_continues_after_approval() {
    let d = Durable::new(&approval_pipeline(2));
    let out = d.sluice(&["run", "--format", "plain", "--no-wait"]);
    out.expect_code(4);
    let id = run_id_of(&both(&out));
    assert_eq!(d.run_state(&id), "waiting");
    assert_eq!(d.marker("compile"), 1);
    assert_eq!(d.marker("deploy"), 0);
    // One approval of two: still waiting.
    d.sluice_as(
        "alice",
        &["approve", &id, "--stage", "prod", "--reason", "ok"],
    )
    .expect_code(0);
    d.sluice(&["resume", &id, "--format", "plain", "--no-wait"])
        .expect_code(4);
    // The same person approving twice counts once.
    d.sluice_as(
        "alice",
        &["approve", &id, "--stage", "prod", "--reason", "again"],
    )
    .expect_code(0);
    d.sluice(&["resume", &id, "--format", "plain", "--no-wait"])
        .expect_code(4);
    d.sluice_as(
        "bob",
        &["approve", &id, "--stage", "prod", "--reason", "lgtm"],
    )
    .expect_code(0);
    let out = d.sluice(&["resume", &id, "--format", "plain", "--no-wait"]);
    out.expect_code(0);
    assert!(
        both(&out).contains("not run again"),
        "the finished build step is taken back, not re-run:\n{}",
        out.stdout
    );
    assert_eq!(d.marker("compile"), 1, "a finished step never runs twice");
    assert_eq!(d.marker("deploy"), 1);
    assert_eq!(d.run_state(&id), "passed");
    // Reports of a resumed run cover all its steps.
    let record = d.project.run_record();
    let steps: Vec<&str> = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["compile", "deploy"]);
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            d.path()
                .join(".sluice/runs")
                .join(&id)
                .join("reports/summary.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let reported: Vec<&str> = summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(reported, ["compile", "deploy"], "{summary:#}");
    // A finished run is not resumed.
    let again = d.sluice(&["resume", &id]);
    again.expect_code(2);
    assert!(again.stderr.contains("has finished"), "{}", again.stderr);
}

#[test]
fn a_rejection_denies_the_stage_and_fails_the_run() {
    let d = Durable::new(&approval_pipeline(1));
    let out = d.sluice(&["run", "--format", "plain", "--no-wait"]);
    out.expect_code(4);
    let id = run_id_of(&both(&out));
    d.sluice_as(
        "carol",
        &["reject", &id, "--stage", "prod", "--reason", "bad canary"],
    )
    .expect_code(0);
    let out = d.sluice(&["resume", &id, "--format", "plain"]);
    out.expect_code(1);
    assert!(
        both(&out).contains("gate `approval` denied"),
        "{}",
        out.stdout
    );
    assert_eq!(d.marker("deploy"), 0, "nothing runs after a denied stage");
    assert_eq!(d.run_state(&id), "failed");
}

#[test]
fn a_closed_window_holds_the_run_until_it_opens() {
    let d = Durable::new(&window_pipeline());
    let run = d.spawn(&["run", "--format", "plain"]);
    wait_until(
        "the run to wait for the window",
        Duration::from_secs(60),
        || {
            d.marker("compile") == 1
                && d.run_ids().first().is_some_and(|id| {
                    d.try_status_json(id).is_some_and(|s| {
                        s["gates"]
                            .as_array()
                            .is_some_and(|g| g.iter().any(|g| g["decision"] == "wait"))
                    })
                })
        },
    );
    assert_eq!(
        d.marker("deploy"),
        0,
        "prod waits while the window is closed"
    );
    // 09:30 in Berlin: the window is open.
    d.set_clock("2026-11-30T08:30:00Z");
    let out = run.finish(Duration::from_secs(60));
    out.expect_code(0);
    assert_eq!(d.marker("deploy"), 1);
}

#[test]
fn an_open_window_lets_the_run_through() {
    let d = Durable::new(&window_pipeline());
    d.set_clock(MONDAY_LATE_MORNING);
    d.sluice(&["run", "--format", "plain", "--no-wait"])
        .expect_code(0);
    assert_eq!(d.marker("deploy"), 1);
}

#[test]
fn an_override_lets_one_run_past_a_closed_window_on_the_record() {
    let d = Durable::new(&window_pipeline());
    let out = d.sluice(&["run", "--format", "plain", "--no-wait"]);
    out.expect_code(4);
    let id = run_id_of(&both(&out));
    // An unknown gate is refused with the gates there are.
    let wrong = d.sluice(&[
        "override",
        &id,
        "--gate",
        "business-hour",
        "--stage",
        "prod",
        "--reason",
        "hotfix",
    ]);
    wrong.expect_code(2);
    assert!(
        wrong.stderr.contains("did you mean `business-hours`"),
        "{}",
        wrong.stderr
    );
    d.sluice_as(
        "dave",
        &[
            "override",
            &id,
            "--gate",
            "business-hours",
            "--stage",
            "prod",
            "--reason",
            "hotfix for incident 42",
            "--expires",
            "2h",
        ],
    )
    .expect_code(0);
    let out = d.sluice(&["resume", &id, "--format", "plain", "--no-wait"]);
    out.expect_code(0);
    assert!(both(&out).contains("overridden by dave"), "{}", out.stdout);
    assert_eq!(d.marker("deploy"), 1);
    let status = d.status_json(&id);
    let overrides = status["overrides"].as_array().unwrap();
    assert_eq!(overrides.len(), 1);
    assert_eq!(overrides[0]["actor"], "dave");
    assert!(
        !overrides[0]["used_at"].is_null(),
        "the override is used once"
    );
}

#[test]
fn a_newer_run_supersedes_an_older_one_waiting_at_the_same_gate() {
    let d = Durable::new(&approval_pipeline(1));
    let older = d.spawn(&["run", "--format", "plain"]);
    wait_until(
        "the older run to wait at prod",
        Duration::from_secs(60),
        || {
            d.run_ids().len() == 1
                && d.try_status_json(&d.run_ids()[0]).is_some_and(|s| {
                    s["stages"]
                        .as_array()
                        .is_some_and(|s| s.iter().any(|s| s["stage"] == "prod"))
                })
        },
    );
    let older_id = d.run_ids()[0].clone();
    let newer = d.sluice(&["run", "--format", "plain", "--no-wait"]);
    newer.expect_code(4);
    let newer_id = run_id_of(&both(&newer));
    let out = older.finish(Duration::from_secs(60));
    out.expect_code(5);
    assert!(out.stderr.contains(&newer_id), "{}", out.stderr);
    let status = d.status_json(&older_id);
    assert_eq!(status["run"]["state"], "superseded");
    assert_eq!(status["run"]["superseded_by"], newer_id.as_str());
    let resumed = d.sluice(&["resume", &older_id]);
    resumed.expect_code(2);
    assert!(resumed.stderr.contains("superseded"), "{}", resumed.stderr);
    assert_eq!(d.marker("deploy"), 0);
}

/// One stage: `quick` and `after-quick` finish at once; `slow` sleeps the first time
/// it runs (while `{markers}/slow-once` exists), not when run again.
fn kill_pipeline() -> String {
    let slow = r#"
[[stage.step]]
id = "slow"
uses = "builtin:command"
with = { program = "sh", args = ["-c", "echo x >> {markers}/slow; if [ -f {markers}/slow-once ]; then rm {markers}/slow-once; sleep 30; fi"] }

[stage.step.grants]
exec = ["sh", "sleep", "rm"]
write = ["{markers}"]
"#;
    format!(
        r#"
[pipeline]
name = "killed"

[[stage]]
name = "build"
{quick}{after}{slow}
[[stage]]
name = "ship"
{ship}"#,
        quick = marker_step("quick", "0", &[]),
        after = marker_step("after-quick", "0", &["quick"]),
        ship = marker_step("ship", "0", &[]),
    )
}

#[test]
fn after_kill_9_in_a_stage_resume_runs_only_the_unfinished_steps() {
    let d = Durable::new(&kill_pipeline());
    std::fs::write(d.path().join("markers/slow-once"), "").unwrap();
    let run = d.spawn(&["run", "--format", "plain"]);
    wait_until(
        "quick steps done and slow started",
        Duration::from_secs(60),
        || {
            d.marker("quick") == 1
                && d.marker("slow") == 1
                && !d.path().join("markers/slow-once").exists()
                && d.run_ids().len() == 1
                && d.try_status_json(&d.run_ids()[0])
                    .is_some_and(|s| s["steps"].as_array().is_some_and(|s| s.len() == 2))
        },
    );
    run.kill9();
    let id = d.run_ids()[0].clone();
    // The dead runner's run is interrupted, not running.
    assert_eq!(d.run_state(&id), "interrupted");
    let out = d.sluice(&["resume", &id, "--format", "plain"]);
    out.expect_code(0);
    assert_eq!(d.marker("quick"), 1, "a finished step never runs twice");
    assert_eq!(
        d.marker("after-quick"),
        1,
        "a finished step never runs twice"
    );
    assert_eq!(d.marker("slow"), 2, "the interrupted step runs again");
    assert_eq!(d.marker("ship"), 1);
    let status = d.status_json(&id);
    assert_eq!(status["run"]["state"], "passed");
    let steps = status["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4, "every step recorded finished exactly once");
    let slow_attempts: Vec<_> = status["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["step"] == "slow")
        .collect();
    assert_eq!(slow_attempts.len(), 2, "{slow_attempts:#?}");
    assert!(slow_attempts[0]["finished_at"].is_null());
    assert_eq!(slow_attempts[1]["attempt"], 2);
}

#[test]
fn a_stage_claim_left_by_a_dead_runner_is_taken_over() {
    let d = Durable::new(&kill_pipeline());
    std::fs::write(d.path().join("markers/slow-once"), "").unwrap();
    let run = d.spawn(&["run", "--format", "plain"]);
    wait_until("the slow step to start", Duration::from_secs(60), || {
        d.marker("slow") == 1 && !d.path().join("markers/slow-once").exists()
    });
    run.kill9();
    // The dead run held stage `build`; a new run takes the stage over instead of
    // waiting for it forever.
    let out = d.sluice(&["run", "--format", "plain", "--no-wait"]);
    out.expect_code(0);
    assert_eq!(d.marker("ship"), 1);
}

#[test]
fn status_history_and_explain_say_what_holds_a_run() {
    let d = Durable::new(&format!(
        r#"
[pipeline]
name = "shown"

[[stage]]
name = "build"
{build}
[[stage]]
name = "prod"

[stage.gates.approval]
required = 2

[stage.gates.business-hours]
kind = "window"
timezone = "Europe/Berlin"
days = "Mon-Thu"
hours = "09:00-16:00"
{deploy}"#,
        build = marker_step("compile", "0", &[]),
        deploy = marker_step("deploy", "0", &[]),
    ));
    let out = d.sluice(&["run", "--format", "plain", "--no-wait"]);
    out.expect_code(4);
    let id = run_id_of(&both(&out));
    d.set_clock("2026-11-30T07:10:00Z");
    d.sluice_as(
        "alice",
        &["approve", &id, "--stage", "prod", "--reason", "looks good"],
    )
    .expect_code(0);
    d.set_clock("2026-11-30T07:20:00Z");
    let explain = d.sluice(&["explain", &id]);
    explain.expect_code(0);
    insta::assert_snapshot!("explain_waiting", d.text(&explain.stdout));
    let status = d.sluice(&["status", &id]);
    status.expect_code(0);
    insta::assert_snapshot!("status_waiting", d.text(&status.stdout));
    let history = d.sluice(&["history"]);
    history.expect_code(0);
    insta::assert_snapshot!("history_one_waiting", d.text(&history.stdout));
    let json = d.sluice(&["explain", &id, "--format", "json"]);
    json.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let prod = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "prod")
        .unwrap_or_else(|| panic!("no stage prod in {v:#}"));
    assert_eq!(prod["verdict"], "wait", "{prod:#}");
    assert_eq!(prod["gates"].as_array().unwrap().len(), 2, "{prod:#}");
    // explain writes nothing: the run is still waiting, with the same evaluations.
    assert_eq!(d.run_state(&id), "waiting");
}

#[test]
fn sigterm_records_the_run_interrupted_and_resume_finishes_it() {
    let d = Durable::new(&kill_pipeline());
    std::fs::write(d.path().join("markers/slow-once"), "").unwrap();
    let run = d.spawn(&["run", "--format", "plain"]);
    wait_until("the slow step to start", Duration::from_secs(60), || {
        d.marker("slow") == 1 && !d.path().join("markers/slow-once").exists()
    });
    run.signal("TERM");
    let out = run.finish(Duration::from_secs(30));
    out.expect_code(143);
    let id = d.run_ids()[0].clone();
    assert!(
        out.stderr.contains(&format!("sluice resume {id}")),
        "{}",
        out.stderr
    );
    let status = d.status_json(&id);
    assert_eq!(status["run"]["state"], "interrupted");
    assert_eq!(status["run"]["reason"], "stopped by a signal", "{status:#}");
    d.sluice(&["resume", &id, "--format", "plain"])
        .expect_code(0);
    assert_eq!(d.marker("quick"), 1);
    assert_eq!(d.marker("slow"), 2);
    assert_eq!(d.marker("ship"), 1);
}

#[test]
fn resume_refuses_a_run_driven_by_a_live_runner_and_a_changed_pipeline_file() {
    let d = Durable::new(&approval_pipeline(1));
    let run = d.spawn(&["run", "--format", "plain"]);
    wait_until("the run to wait at prod", Duration::from_secs(60), || {
        d.run_ids().first().is_some_and(|id| {
            d.try_status_json(id)
                .is_some_and(|s| s["run"]["current_stage"] == "prod")
        })
    });
    let id = d.run_ids()[0].clone();
    let busy = d.sluice(&["resume", &id, "--no-wait"]);
    busy.expect_code(2);
    assert!(
        busy.stderr.contains("is being driven by pid"),
        "{}",
        busy.stderr
    );
    run.kill9();
    let text = std::fs::read_to_string(d.path().join("sluice.toml")).unwrap();
    std::fs::write(
        d.path().join("sluice.toml"),
        format!("{text}\n# changed after the run started\n"),
    )
    .unwrap();
    let changed = d.sluice(&["resume", &id, "--no-wait"]);
    changed.expect_code(2);
    assert!(
        changed.stderr.contains("--allow-changed"),
        "{}",
        changed.stderr
    );
    d.sluice(&[
        "resume",
        &id,
        "--no-wait",
        "--allow-changed",
        "--format",
        "plain",
    ])
    .expect_code(4);
    assert_eq!(d.marker("compile"), 1);
}

#[test]
fn a_state_database_of_schema_1_is_migrated_and_its_runs_stay_readable() {
    let d = Durable::new(&approval_pipeline(1));
    let db = d.path().join(".sluice/state.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let fixture =
        Path::new(sluice_tests::WORKSPACE_ROOT).join("crates/state/src/fixtures/schema-v1.sql");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(&std::fs::read_to_string(fixture).unwrap())
            .unwrap();
    }
    let history = d.sluice(&["history", "--format", "json"]);
    history.expect_code(0);
    let runs: Vec<serde_json::Value> = serde_json::from_str(&history.stdout).unwrap();
    assert!(
        runs.iter()
            .any(|r| r["run_id"] == "20261102T090000.000Z-aaaaaa" && r["state"] == "passed"),
        "{runs:#?}"
    );
    let old = d.status_json("20261102T090000.000Z-aaaaaa");
    assert_eq!(old["run"]["artifact"]["version"], "1.4.0");
    assert_eq!(old["run"]["trigger"]["actor"], "alice");
    // The migrated database takes new runs, gates and all.
    d.sluice(&["run", "--format", "plain", "--no-wait"])
        .expect_code(4);
    let version: u32 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert!(
        version > 1,
        "migrated to the current schema, found {version}"
    );
}

/// The chaos test: SIGKILL the runner at 20 random moments (seeded, printed) of a
/// three-stage pipeline, resume each time until the run finishes, and check the
/// record: every step finished exactly once, no finished step ran again, no run left
/// running.
#[test]
fn chaos_kill_9_at_random_moments_then_resume_keeps_the_record_consistent() {
    let seed: u64 = std::env::var("SLUICE_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("chaos seed: {seed} (rerun with SLUICE_CHAOS_SEED={seed})");
    let mut rng = seed | 1;
    let mut next = move || {
        // xorshift64*
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut toml = String::from("\n[pipeline]\nname = \"chaos\"\n");
    let mut all_steps = Vec::new();
    for stage in ["build", "test", "ship"] {
        toml.push_str(&format!("\n[[stage]]\nname = \"{stage}\"\n"));
        for n in 1..=3 {
            let id = format!("{stage}-{n}");
            toml.push_str(&marker_step(&id, "0.1", &[]));
            all_steps.push((stage.to_string(), id));
        }
    }
    let d = Durable::new(&toml);
    let started = Instant::now();
    // Kills that interrupted a recorded, unfinished run; those that came before the run
    // was recorded or after it ended do not count.
    let mut kills = 0;
    let mut early_kills = 0;
    let mut late_kills = 0;
    let mut rounds = 0;
    while kills < 20 {
        rounds += 1;
        for (_, step) in &all_steps {
            let _ = std::fs::remove_file(d.path().join("markers").join(step));
        }
        let runs_before = d.run_ids().len();
        let mut child = d.spawn(&["run", "--format", "plain", "--jobs", "3"]);
        let mut run: Option<String> = None;
        // (step, marker count) of every step recorded finished at some kill.
        let mut finished_at_kills: Vec<(String, usize)> = Vec::new();
        loop {
            std::thread::sleep(Duration::from_millis(next() % 600));
            if kills >= 20 || child.ended() {
                child.finish(Duration::from_secs(60)).expect_code(0);
                break;
            }
            child.kill9();
            if run.is_none() {
                run = d.run_ids().get(runs_before).cloned();
            }
            let status = run.as_ref().and_then(|r| d.try_status_json(r));
            let Some(status) = status else {
                // Killed before the run was recorded: it never started; start anew.
                early_kills += 1;
                run = None;
                break;
            };
            let state = status["run"]["state"].as_str().unwrap().to_string();
            assert_ne!(
                state, "running",
                "a dead runner's run is left running (seed {seed})"
            );
            if state == "passed" {
                late_kills += 1;
            } else {
                kills += 1;
            }
            for s in status["steps"].as_array().unwrap() {
                let step = s["step"].as_str().unwrap().to_string();
                let count = d.marker(&step);
                finished_at_kills.push((step, count));
            }
            if state == "passed" {
                break;
            }
            child = d.spawn(&[
                "resume",
                run.as_ref().unwrap(),
                "--format",
                "plain",
                "--jobs",
                "3",
            ]);
        }
        let run = match run {
            Some(r) => r,
            None => match d.run_ids().get(runs_before) {
                // The round's run ended by itself before any kill.
                Some(r) if d.try_status_json(r).is_some() => r.clone(),
                _ => continue,
            },
        };
        while d.run_state(&run) != "passed" {
            d.sluice(&["resume", &run, "--format", "plain", "--jobs", "3"])
                .expect_code(0);
        }
        let status = d.status_json(&run);
        let mut seen: Vec<(String, String)> = status["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["stage"].as_str().unwrap().to_string(),
                    s["step"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        seen.sort();
        let mut expected = all_steps.clone();
        expected.sort();
        assert_eq!(
            seen, expected,
            "every step finished exactly once (seed {seed})"
        );
        for (step, count) in &finished_at_kills {
            assert_eq!(
                d.marker(step),
                *count,
                "step {step} was recorded finished, then ran again (seed {seed})"
            );
        }
        for (_, step) in &all_steps {
            let attempts = status["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["step"] == step.as_str())
                .count();
            let ran = d.marker(step);
            assert!(
                ran >= 1 && ran <= attempts,
                "step {step} ran {ran} times in {attempts} recorded attempts (seed {seed})"
            );
        }
    }
    // The store's own consistency check: every finished step has exactly one final
    // record and a finished attempt, no half-written run, no orphan rows.
    let store = sluice::state::Store::open_existing(&d.path().join(".sluice/state.db")).unwrap();
    let problems = store.consistency_problems().unwrap();
    assert!(
        problems.is_empty(),
        "inconsistent record (seed {seed}): {problems:#?}"
    );
    drop(store);
    let history = d.sluice(&["history", "--format", "json", "--limit", "1000"]);
    history.expect_code(0);
    let recorded: Vec<serde_json::Value> = serde_json::from_str(&history.stdout).unwrap();
    for r in &recorded {
        assert_ne!(r["state"], "running", "no run left running (seed {seed})");
    }
    eprintln!(
        "chaos: {kills} kills in the middle of a run ({early_kills} before it was recorded, {late_kills} after it ended) over {rounds} runs in {:.1}s (seed {seed})",
        started.elapsed().as_secs_f64()
    );
}

/// A state database moved by `--state` is not hidden from steps: a grant that covers it
/// is refused before any step runs, and the same database outside every grant is fine.
#[test]
fn a_grant_covering_a_state_database_moved_by_state_is_refused() {
    let toml = format!(
        "[pipeline]\nname = \"exposed\"\n\n[[stage]]\nname = \"build\"\n{}\n",
        marker_step("b1", "0", &[])
    )
    .replace(
        "write = [\"{markers}\"]",
        "write = [\"{markers}\"]\nread = [\".\"]",
    );
    let d = Durable::new(&toml);
    let out = d.sluice(&["run", "--state", "state.db"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("step `b1`: `read` grant ")
            && out
                .stderr
                .contains(" covers the state database state.db (set by --state"),
        "{}",
        out.stderr
    );
    assert_eq!(d.marker("b1"), 0, "no step ran");
    let elsewhere = tempfile::tempdir().unwrap();
    let db = elsewhere.path().join("state.db");
    d.sluice(&["run", "--state", &db.display().to_string()])
        .expect_code(0);
    assert_eq!(d.marker("b1"), 1);
}
