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
