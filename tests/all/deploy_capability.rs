//! The `deploy-targets` import through the binary: what a step may reach (its granted
//! targets, its read grant, its targets' URLs), that a run without a state store may
//! not deploy, and that an alarm of the stage reaches a deploy step (which rolls back)
//! instead of aborting it. The adversary fixture's `deploy` mode calls the import
//! directly, so each test sees the host's own answers.
//!
//! Time is the test clock and a 50 ms poll (see `durable.rs`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::durable::{Durable, both, marker_step, wait_until};
use crate::support::{adversary, normalize};

/// Two local targets: box-1 in group one-box (its service at `url`), box-2 in zone-a.
fn targets(url: &str) -> String {
    format!(
        r#"
[[target]]
name = "box-1"
group = "one-box"
local = "fleet/box-1"
url = "{url}"

[[target]]
name = "box-2"
group = "zone-a"
local = "fleet/box-2"
"#
    )
}

/// A pipeline `shop` with `head` (targets, monitors), one stage `prod` with `gates`
/// and `steps`.
fn pipeline(head: &str, gates: &str, steps: &str) -> String {
    format!("[pipeline]\nname = \"shop\"\n{head}\n[[stage]]\nname = \"prod\"\n{gates}\n{steps}")
}

/// A step of the adversary in `deploy` mode with `with` keys and `grants`.
fn deploy_step(id: &str, with: &str, grants: &str) -> String {
    format!(
        "\n[[stage.step]]\nid = \"{id}\"\nuses = \"{}\"\nwith = {{ mode = \"deploy\", {with} }}\n[stage.step.grants]\n{grants}\n",
        adversary()
    )
}

/// The record of step `id` of the only run, from its `run.json`.
fn step_summary(d: &Durable, id: &str) -> String {
    d.project.step(id)["summary"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The deployments recorded for the only run: (kind, state, reason).
fn deployments(d: &Durable) -> Vec<(String, String, String)> {
    let store = sluice::state::Store::open_existing(&d.path().join(".sluice/state.db")).unwrap();
    let run = &d.run_ids()[0];
    store
        .deployments(run)
        .unwrap()
        .into_iter()
        .map(|r| (r.kind, r.state, r.reason.unwrap_or_default()))
        .collect()
}

#[test]
fn a_step_is_denied_a_target_it_was_not_granted() {
    let d = Durable::new(&pipeline(
        &targets("http://127.0.0.1:1"),
        "",
        &deploy_step(
            "deploy",
            "targets = [\"box-1\", \"box-2\"]",
            "targets = [\"one-box\"]",
        ),
    ));
    let out = d.sluice(&["run"]);
    out.expect_code(1);
    insta::assert_snapshot!(step_summary(&d, "deploy"), @r#"denied: target `box-2` (group `zone-a`) is not granted to this step (targets = [one-box]); add "zone-a" or "box-2" to the step's grants `targets`"#);
    // Nothing was begun: the denial came before anything was recorded.
    assert_eq!(deployments(&d), vec![]);
    // The step log lists what it was granted.
    assert!(
        d.project
            .step_log("deploy")
            .contains("deploy targets granted: box-1 (one-box, local)"),
        "{}",
        d.project.step_log("deploy")
    );
}

#[test]
fn a_bundle_outside_the_read_grant_is_refused() {
    let d = Durable::new(&pipeline(
        &targets("http://127.0.0.1:1"),
        "",
        &deploy_step(
            "deploy",
            "targets = [\"box-1\"], bundle = \"private\"",
            "targets = [\"one-box\"]\nread = [\"bundle\"]",
        ),
    ));
    d.project
        .write("bundle/appspec.yml", "version: 0.0\nos: linux\n");
    d.project.write("private/key", "not for the fleet\n");
    let out = d.sluice(&["run"]);
    out.expect_code(1);
    let summary = normalize(&step_summary(&d, "deploy"), d.path());
    insta::assert_snapshot!(summary, @r#"denied: bundle [PROJECT]/private is outside the step's read grant; add "private" to its grants `read`"#);
}

#[test]
fn a_bake_between_waves_naming_an_undeclared_monitor_fails_naming_the_declared_ones() {
    let server = FlipServer::start();
    let base = format!("http://127.0.0.1:{}", server.port);
    let monitor = format!(
        "\n[[monitor]]\nid = \"api\"\nuses = \"builtin:http-check\"\ninterval = \"100ms\"\nwith = {{ url = \"{base}/health\" }}\n[monitor.grants]\nnet = [\"{base}\"]\n"
    );
    let d = Durable::new(&pipeline(
        &(targets(&base) + &monitor),
        "",
        &deploy_step(
            "deploy",
            "targets = [\"box-1\"], bake-monitors = [\"api\", \"latency\"]",
            "targets = [\"one-box\"]",
        ),
    ));
    let out = d.sluice(&["run"]);
    out.expect_code(1);
    insta::assert_snapshot!(step_summary(&d, "deploy"), @"bake after wave one-box: names no monitor `latency`; the pipeline declares api");
}

#[test]
fn no_state_refuses_to_deploy_with_its_message() {
    let d = Durable::new(&pipeline(
        &targets("http://127.0.0.1:1"),
        "",
        &deploy_step("deploy", "targets = [\"box-1\"]", "targets = [\"one-box\"]"),
    ));
    let out = d.sluice(&["run", "--no-state"]);
    out.expect_code(1);
    insta::assert_snapshot!(step_summary(&d, "deploy"), @"denied: deploying records every target's revision in the state store; run without --no-state");
}

#[test]
fn a_deploy_step_reaches_its_targets_url_without_a_net_grant() {
    let server = FlipServer::start();
    let url = format!("http://127.0.0.1:{}", server.port);
    let probe = |id: &str, grants: &str| {
        format!(
            "\n[[stage.step]]\nid = \"{id}\"\nuses = \"{}\"\nwith = {{ mode = \"http-get\", url = \"{url}/health\" }}\n[stage.step.grants]\n{grants}\n",
            adversary()
        )
    };
    let steps =
        probe("granted", "targets = [\"one-box\"]") + &probe("ungranted", "targets = [\"zone-a\"]");
    let d = Durable::new(&pipeline(&targets(&url), "", &steps));
    let out = d.sluice(&["run"]);
    out.expect_code(1);
    let granted = d.project.step("granted");
    assert_eq!(granted["status"], "passed", "{granted:#}");
    assert!(
        d.project.step_log("granted").contains(&format!(
            "outgoing HTTP allowed to the granted targets' url: {url}"
        )),
        "{}",
        d.project.step_log("granted")
    );
    // box-2 has no url; zone-a's grant opens nothing.
    let ungranted = d.project.step("ungranted");
    assert_eq!(ungranted["status"], "failed", "{ungranted:#}");
    assert!(
        step_summary(&d, "ungranted").contains("denied"),
        "{}",
        step_summary(&d, "ungranted")
    );
}

#[test]
fn an_alarm_during_a_deployment_reaches_the_plugin_which_rolls_back() {
    let server = FlipServer::start();
    let base = format!("http://127.0.0.1:{}", server.port);
    let monitor = format!(
        "\n[[monitor]]\nid = \"api\"\nuses = \"builtin:http-check\"\ninterval = \"100ms\"\nwith = {{ url = \"{base}/health\" }}\n[monitor.grants]\nnet = [\"{base}\"]\n"
    );
    let steps = marker_step("sidecar", "30", &[])
        + &deploy_step(
            "deploy",
            "targets = [\"box-1\"], wait-alarm-ms = 30000",
            "targets = [\"one-box\"]",
        );
    let d = Durable::new(&pipeline(
        &(targets(&base) + &monitor),
        "[stage.gates.alarms]\nalarms = [\"api\"]\n",
        &steps,
    ));
    let run = d.spawn(&["run"]);
    wait_until(
        "the deployment and the sidecar to start",
        Duration::from_secs(60),
        || d.marker("sidecar") == 1 && deployment_begun(&d),
    );
    server.fail();
    let out = run.finish(Duration::from_secs(30));
    out.expect_code(1);
    let text = both(&out);
    assert!(
        text.contains(
            "stage `prod` stopped: alarm gate `alarms` fired while the stage ran: monitor `api` is ALARM"
        ),
        "{text}"
    );
    // The deploy step was told, not aborted: it stopped its deployment and rolled back.
    let summary = step_summary(&d, "deploy");
    assert!(
        summary.starts_with("rolled back: alarm gate `alarms` fired while the stage ran"),
        "{summary}"
    );
    let recorded = deployments(&d);
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_eq!(
        (recorded[0].0.as_str(), recorded[0].1.as_str()),
        ("deploy", "stopped")
    );
    assert!(
        recorded[0].2.starts_with("alarm gate `alarms` fired"),
        "{recorded:?}"
    );
    assert_eq!(
        (recorded[1].0.as_str(), recorded[1].1.as_str()),
        ("rollback", "succeeded")
    );
    // The other step of the stage was stopped as before.
    assert!(
        step_summary(&d, "sidecar").starts_with("stopped: alarm gate `alarms`"),
        "{}",
        step_summary(&d, "sidecar")
    );
}

#[test]
fn after_kill_9_during_a_deployment_resume_deploys_again_and_the_dead_one_is_interrupted() {
    let d = Durable::new(&pipeline(
        &targets("http://127.0.0.1:1"),
        "",
        &deploy_step(
            "deploy",
            "targets = [\"box-1\"], wait-alarm-ms = 2000",
            "targets = [\"one-box\"]",
        ),
    ));
    let run = d.spawn(&["run"]);
    wait_until("the deployment to begin", Duration::from_secs(60), || {
        deployment_begun(&d)
    });
    run.kill9();
    let id = d.run_ids()[0].clone();
    let out = d.sluice(&["resume", &id]);
    out.expect_code(0);
    // The resumed step deployed again; the dead runner's deployment is on the record
    // as interrupted, once, and nothing else was recorded twice.
    let recorded = deployments(&d);
    assert_eq!(
        recorded,
        vec![
            (
                "deploy".to_string(),
                "interrupted".to_string(),
                "the runner stopped during this deployment".to_string()
            ),
            (
                "deploy".to_string(),
                "succeeded".to_string(),
                "done".to_string()
            ),
        ]
    );
}

/// `builtin:deploy` of `dist/<version>` to box-1 (one-box) then box-2 (zone-a), with
/// a bake between the waves on monitor `api` (an HTTP check of `base`).
fn fleet_pipeline(base: &str, version: &str) -> String {
    format!(
        r#"[pipeline]
name = "shop"

[[monitor]]
id = "api"
uses = "builtin:http-check"
interval = "100ms"
with = {{ url = "{base}/health" }}
[monitor.grants]
net = ["{base}"]

[[target]]
name = "box-1"
group = "one-box"
local = "fleet/box-1"

[[target]]
name = "box-2"
group = "zone-a"
local = "fleet/box-2"

[[stage]]
name = "prod"

[[stage.step]]
id = "deploy"
uses = "builtin:deploy"
[stage.step.with]
bundle = "dist/{version}"
application = "shop"
config = "AllAtOnce"
waves = ["one-box", "zone-a"]
bake-between-waves = {{ duration = "1s", positive = 2, monitors = ["api"], timeout = "30s" }}
[stage.step.grants]
read = ["dist"]
targets = ["one-box", "zone-a"]
"#
    )
}

/// A bundle `dist/<version>` installing `/srv/shop/version` and checking it.
fn write_bundle(d: &Durable, version: &str) {
    let at = format!("dist/{version}");
    d.project.write(
        &format!("{at}/appspec.yml"),
        "version: 0.0\nos: linux\nfiles:\n  - source: content\n    destination: /srv/shop\nhooks:\n  ValidateService:\n    - location: scripts/validate.sh\n      timeout: 10\n",
    );
    d.project
        .write(&format!("{at}/content/version"), &format!("{version}\n"));
    d.project.write(
        &format!("{at}/scripts/validate.sh"),
        "test -f \"$SLUICE_TARGET_ROOT/srv/shop/version\"\n",
    );
}

/// `sluice run` on the system clock (a bake between waves waits real time), gates
/// polled every 50 ms.
fn run_on_the_system_clock(d: &Durable) -> std::process::Command {
    let mut cmd = d.project.command(&["run", "--format", "plain"]);
    cmd.env("SLUICE_GATE_POLL_MS", "50")
        .env("SLUICE_ACTOR", "tester")
        .env_remove("SLUICE_TEST_CLOCK")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}

#[test]
fn builtin_deploy_bakes_between_waves_and_a_failed_bake_rolls_back_to_the_recorded_revision() {
    let server = FlipServer::start();
    let base = format!("http://127.0.0.1:{}", server.port);
    let d = Durable::new(&fleet_pipeline(&base, "v1"));
    write_bundle(&d, "v1");
    write_bundle(&d, "v2");
    let version = |name: &str| {
        std::fs::read_to_string(d.path().join(format!("fleet/{name}/srv/shop/version")))
            .unwrap_or_default()
    };
    // v1 goes out: one box, a bake on the monitor's data points, then zone-a.
    let first = crate::support::Outcome::of(&mut run_on_the_system_clock(&d));
    first.expect_code(0);
    assert_eq!(
        (version("box-1"), version("box-2")),
        ("v1\n".into(), "v1\n".into())
    );
    let store = sluice::state::Store::open_existing(&d.path().join(".sluice/state.db")).unwrap();
    let run_1 = d.run_ids()[0].clone();
    let ds = store.deployments(&run_1).unwrap();
    assert_eq!(ds.len(), 1, "{ds:?}");
    let bake: Vec<(String, String)> = store
        .deployment_events(&ds[0].id)
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "Bake")
        .map(|e| (e.state, e.detail))
        .collect();
    assert_eq!(bake.len(), 2, "{bake:?}");
    assert_eq!(bake[0].0, "started");
    assert_eq!(bake[1].0, "succeeded", "{bake:?}");
    assert!(bake[1].1.contains("0 negative"), "{bake:?}");
    // v2: the service fails while the bake after one-box runs.
    d.project.write("sluice.toml", &fleet_pipeline(&base, "v2"));
    let run = Spawned(Some(
        run_on_the_system_clock(&d).spawn().expect("start sluice"),
    ));
    wait_until("the bake after one-box", Duration::from_secs(60), || {
        d.run_ids().len() == 2
            && store.deployments(&d.run_ids()[1]).is_ok_and(|ds| {
                ds.first().is_some_and(|dep| {
                    store
                        .deployment_events(&dep.id)
                        .is_ok_and(|es| es.iter().any(|e| e.event == "Bake"))
                })
            })
    });
    server.fail();
    let out = run.finish(Duration::from_secs(60));
    out.expect_code(1);
    // box-1, the only one touched, is back on v1, recorded; box-2 never left it.
    assert_eq!(
        (version("box-1"), version("box-2")),
        ("v1\n".into(), "v1\n".into())
    );
    let run_2 = d.run_ids()[1].clone();
    let ds = store.deployments(&run_2).unwrap();
    let kinds: Vec<(&str, &str)> = ds
        .iter()
        .map(|d| (d.kind.as_str(), d.state.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [("deploy", "failed"), ("rollback", "succeeded")],
        "{ds:#?}"
    );
    assert!(
        ds[0]
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("negative"),
        "{ds:#?}"
    );
    let box_1 = store.target_record("shop", "box-1").unwrap();
    assert_eq!(
        box_1.current.as_ref().map(|r| r.label.as_str()),
        Some("v1"),
        "{box_1:?}"
    );
    assert_eq!(box_1.state, sluice::state::HostState::Healthy, "{box_1:?}");
}

/// A `sluice` this file started: killed and reaped by PID when dropped unfinished.
struct Spawned(Option<std::process::Child>);

impl Spawned {
    /// Wait for its end, at most `limit` (then kill it and fail).
    fn finish(mut self, limit: Duration) -> crate::support::Outcome {
        let mut child = self.0.take().expect("the child is there");
        let deadline = std::time::Instant::now() + limit;
        while child.try_wait().expect("poll the child").is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let out = crate::support::Outcome::from_child(child);
                panic!(
                    "sluice did not finish in {limit:?}\n{}{}",
                    out.stdout, out.stderr
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        crate::support::Outcome::from_child(child)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn builtin_deploy_is_told_of_an_alarm_during_its_bake_and_rolls_back_instead_of_being_aborted() {
    let (api, canary) = (FlipServer::start(), FlipServer::start());
    let api_base = format!("http://127.0.0.1:{}", api.port);
    let canary_base = format!("http://127.0.0.1:{}", canary.port);
    // The bake counts monitor `canary` (always healthy) for 30 s; only the alarm of
    // monitor `api`, behind the stage's alarms gate, can end it early.
    let pipeline = |version: &str| {
        fleet_pipeline(&canary_base, version)
            .replacen(
                "[[target]]",
                &format!(
                    "[[monitor]]\nid = \"api\"\nuses = \"builtin:http-check\"\ninterval = \"100ms\"\nwith = {{ url = \"{api_base}/health\" }}\n[monitor.grants]\nnet = [\"{api_base}\"]\n\n[[target]]"
                ),
                1,
            )
            .replacen("id = \"api\"\nuses", "id = \"canary\"\nuses", 1)
            .replace("monitors = [\"api\"], timeout = \"30s\"", "monitors = [\"canary\"], timeout = \"60s\"")
            .replace("duration = \"1s\"", "duration = \"30s\"")
            .replace(
                "name = \"prod\"\n",
                "name = \"prod\"\n[stage.gates.alarms]\nalarms = [\"api\"]\n",
            )
    };
    let d = Durable::new(&pipeline("v2"));
    write_bundle(&d, "v2");
    let store_path = d.path().join(".sluice/state.db");
    let run = Spawned(Some(
        run_on_the_system_clock(&d).spawn().expect("start sluice"),
    ));
    let mut deployment = String::new();
    wait_until("the bake after one-box", Duration::from_secs(60), || {
        let Ok(store) = sluice::state::Store::open_existing(&store_path) else {
            return false;
        };
        let Some(run_id) = d.run_ids().first().cloned() else {
            return false;
        };
        let Some(dep) = store
            .deployments(&run_id)
            .ok()
            .and_then(|ds| ds.first().cloned())
        else {
            return false;
        };
        deployment = dep.id.clone();
        store
            .deployment_events(&dep.id)
            .is_ok_and(|es| es.iter().any(|e| e.event == "Bake"))
    });
    api.fail();
    let out = run.finish(Duration::from_secs(60));
    out.expect_code(1);
    let text = both(&out);
    assert!(
        text.contains("stage `prod` stopped: alarm gate `alarms` fired while the stage ran: monitor `api` is ALARM"),
        "{text}"
    );
    let store = sluice::state::Store::open_existing(&store_path).unwrap();
    let bake_end = store
        .deployment_events(&deployment)
        .unwrap()
        .into_iter()
        .rfind(|e| e.event == "Bake")
        .unwrap();
    assert_eq!(bake_end.state, "failed", "{bake_end:?}");
    assert!(
        bake_end
            .detail
            .contains("alarm gate `alarms` fired during the bake"),
        "{bake_end:?}"
    );
    // The step ran to its end: it rolled back box-1 (a fresh target: nothing to go
    // back to, so its files are removed) and said so, rather than being cut off.
    let summary = step_summary(&d, "deploy");
    assert!(!summary.starts_with("stopped:"), "{summary}");
    let kinds: Vec<String> = store
        .deployments(&d.run_ids()[0])
        .unwrap()
        .iter()
        .map(|d| format!("{} {}", d.kind, d.state))
        .collect();
    // The deployment ended (builtin:deploy records a bake an alarm failed as a failed
    // deployment) and the touched target was rolled back.
    assert!(
        kinds == ["deploy stopped", "rollback succeeded"]
            || kinds == ["deploy failed", "rollback succeeded"],
        "{kinds:?}"
    );
}

/// Whether the only run has begun a deployment (recorded in its store).
fn deployment_begun(d: &Durable) -> bool {
    let Some(run) = d.run_ids().first().cloned() else {
        return false;
    };
    let Ok(store) = sluice::state::Store::open_existing(&d.path().join(".sluice/state.db")) else {
        return false;
    };
    store.deployments(&run).is_ok_and(|ds| !ds.is_empty())
}

/// An HTTP server on a loopback port answering `200 ok` to everything until
/// [`FlipServer::fail`], then `500 down`. Its thread ends with the test process.
struct FlipServer {
    port: u16,
    failing: Arc<AtomicBool>,
}

impl FlipServer {
    fn start() -> FlipServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("bound").port();
        let failing = Arc::new(AtomicBool::new(false));
        let flag = failing.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let flag = flag.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
                    let mut writer = stream;
                    loop {
                        // The request line and headers; requests here have no body.
                        let mut line = String::new();
                        loop {
                            line.clear();
                            match reader.read_line(&mut line) {
                                Ok(0) | Err(_) => return,
                                Ok(_) if line.trim_end().is_empty() => break,
                                Ok(_) => {}
                            }
                        }
                        let answer = if flag.load(Ordering::SeqCst) {
                            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\ndown"
                        } else {
                            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                        };
                        if writer.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FlipServer { port, failing }
    }

    /// Answer 500 from now on.
    fn fail(&self) {
        self.failing.store(true, Ordering::SeqCst);
    }
}
