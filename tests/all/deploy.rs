//! `builtin:deploy` end to end, on fleets of local hosts (folders standing for machines)
//! running the quickstart's real service (`examples/quickstart/service`, std only):
//!
//! - the quickstart's two passes: release 1.0.0 in waves, then release 1.1.0 failing its
//!   ValidateService on the first box, rolled back while the fleet keeps serving 1.0.0
//!   (checked over HTTP, and against the recorded revisions);
//! - minimum healthy hosts, polled over HTTP from a thread every 15 ms through a
//!   HalfAtATime and a custom FLEET_PERCENT deployment;
//! - `kill -9` of the runner in the middle of a wave, then `sluice resume`;
//! - an alarm firing during the bake between waves: the rollout stops, the first wave is
//!   rolled back, the later waves are never touched.
//!
//! Every test takes its own free ports. The services the hooks start are stopped by
//! their pid files when the test ends, also when it fails ([`FleetGuard`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sluice::state::{DeploymentRow, HostState, Store, TargetRecordRow};

use crate::durable::wait_until;
use crate::support::{Outcome, Project, command_in, copy_tree, normalize};

/// How often a waiting run looks again in these tests (bakes, gates).
const POLL_MS: &str = "100";

fn quickstart() -> PathBuf {
    Path::new(sluice_tests::WORKSPACE_ROOT).join("examples/quickstart")
}

/// The quickstart service's binaries, built once per test run into the tests' scratch
/// folder: release 1.0.0 and release 1.1.0 (healthy only where HELLO_REGION is set).
fn hello_binaries() -> &'static (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT.get_or_init(|| (build_hello("service"), build_hello("service-1.1")))
}

fn build_hello(folder: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("quickstart-hello")
        .join(folder);
    let status = Command::new("cargo")
        .args(["build", "--release", "--locked", "--offline", "--quiet"])
        .arg("--manifest-path")
        .arg(quickstart().join(folder).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("run cargo");
    assert!(
        status.success(),
        "cargo build of examples/quickstart/{folder} failed"
    );
    target.join("release/hello")
}

/// `n` loopback ports that were free a moment ago.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("bound").port())
        .collect()
}

/// One `GET http://127.0.0.1:<port><path>`: status and body, or None when nothing answers.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((status, body.to_string()))
}

/// The version a host serves on `/`, e.g. `1.0.0`, or what went wrong.
fn served_version(port: u16) -> String {
    match get(port, "/") {
        Some((200, body)) => body
            .trim()
            .strip_prefix("hello ")
            .unwrap_or(&body)
            .to_string(),
        Some((status, body)) => format!("HTTP {status}: {}", body.trim()),
        None => "nothing listening".into(),
    }
}

/// Stops the services that deploy hooks started on the hosts (every `run/*.pid` under
/// each host's folder, by PID) and opens every gate file a hook may wait on, when the
/// test ends, whether it passed or not.
struct FleetGuard {
    hosts: Vec<PathBuf>,
    gates: Vec<PathBuf>,
}

impl FleetGuard {
    fn new(hosts: Vec<PathBuf>) -> FleetGuard {
        FleetGuard {
            hosts,
            gates: Vec::new(),
        }
    }
}

impl Drop for FleetGuard {
    fn drop(&mut self) {
        for gate in &self.gates {
            let _ = std::fs::write(gate, "");
        }
        for host in &self.hosts {
            let Ok(entries) = std::fs::read_dir(host.join("run")) else {
                continue;
            };
            for entry in entries.flatten() {
                let pid = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let pid = pid.trim();
                if !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit()) {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
        }
    }
}

/// A `sluice` the test started; killed and reaped by PID when dropped.
struct Runner(Option<Child>);

impl Runner {
    fn wait(mut self, limit: Duration) -> Outcome {
        let mut child = self.0.take().expect("the child is there");
        let deadline = Instant::now() + limit;
        while child.try_wait().expect("poll sluice").is_none() {
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

    fn kill9(mut self) {
        let mut child = self.0.take().expect("the child is there");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `sluice <args>` in `dir` with a fast gate poll.
fn sluice(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = command_in(dir, args);
    cmd.env("SLUICE_GATE_POLL_MS", POLL_MS)
        .env_remove("SLUICE_TEST_CLOCK")
        .env_remove("GITHUB_STEP_SUMMARY");
    cmd
}

fn run(dir: &Path, file: &str) -> Outcome {
    Outcome::of(&mut sluice(dir, &["run", "--format", "plain", file]))
}

fn spawn_run(dir: &Path, file: &str) -> Runner {
    let child = sluice(dir, &["run", "--format", "plain", file])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sluice");
    Runner(Some(child))
}

fn store(dir: &Path) -> Store {
    Store::open_existing(&dir.join(".sluice/state.db")).expect("the run's state store")
}

/// The ids of the runs so far, oldest first.
fn run_ids(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(dir.join(".sluice/runs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

fn last_run(dir: &Path) -> String {
    run_ids(dir).pop().expect("a run")
}

fn records(dir: &Path, application: &str) -> Vec<TargetRecordRow> {
    store(dir)
        .target_records(application)
        .expect("read the target records")
}

fn record<'a>(records: &'a [TargetRecordRow], target: &str) -> &'a TargetRecordRow {
    records
        .iter()
        .find(|r| r.target == target)
        .unwrap_or_else(|| panic!("no record of {target} in {records:#?}"))
}

/// The run's deployments: (the deployment, the rollback of it if there is one).
fn deployment_and_rollback(dir: &Path, run: &str) -> (DeploymentRow, Option<DeploymentRow>) {
    let all = store(dir).deployments(run).expect("read the deployments");
    let deploy = all
        .iter()
        .rfind(|d| d.kind == "deploy")
        .unwrap_or_else(|| panic!("no deployment in run {run}: {all:#?}"))
        .clone();
    let rollback = all
        .iter()
        .find(|d| d.kind == "rollback" && d.rollback_of.as_deref() == Some(deploy.id.as_str()))
        .cloned();
    (deploy, rollback)
}

/// The lifecycle events that change a host (a `Skip`, a `Bake` do not).
const LIFECYCLE: [&str; 8] = [
    "ApplicationStop",
    "DownloadBundle",
    "BeforeInstall",
    "Install",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
    "Health",
];

/// The targets a deployment recorded a lifecycle event of.
fn touched(dir: &Path, deployment: &str) -> Vec<String> {
    let mut targets: Vec<String> = store(dir)
        .deployment_events(deployment)
        .expect("read the deployment's events")
        .into_iter()
        .filter(|e| LIFECYCLE.contains(&e.event.as_str()))
        .map(|e| e.target)
        .collect();
    targets.sort();
    targets.dedup();
    targets
}

/// The summary of the `deploy` step of the `nth` run (oldest first).
fn deploy_summary(dir: &Path, nth: usize) -> String {
    let run = &run_ids(dir)[nth];
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(".sluice/runs").join(run).join("run.json"))
            .expect("run.json"),
    )
    .expect("run.json is JSON");
    let step = record["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["step"] == "deploy"))
        .unwrap_or_else(|| panic!("no deploy step in {record:#}"));
    step["report"]["summary"]
        .as_str()
        .unwrap_or_else(|| panic!("the deploy step has no summary: {step:#}"))
        .to_string()
}

/// A host of a test fleet.
struct Host {
    name: String,
    group: String,
    port: u16,
}

fn hosts(groups: &[(&str, usize)]) -> Vec<Host> {
    let count = groups.iter().map(|(_, n)| n).sum();
    let mut ports = free_ports(count).into_iter();
    let mut hosts = Vec::new();
    for (group, n) in groups {
        for _ in 0..*n {
            hosts.push(Host {
                name: format!("h{}", hosts.len() + 1),
                group: group.to_string(),
                port: ports.next().expect("a port per host"),
            });
        }
    }
    hosts
}

/// `[[target]]` tables for `hosts`: local folders under `.fleet/`, each with its port,
/// a region (so that release 1.1.0 is healthy there) and a gate file hooks may wait on.
fn targets_toml(dir: &Path, hosts: &[Host]) -> String {
    hosts
        .iter()
        .map(|h| {
            format!(
                "[[target]]\nname = \"{n}\"\ngroup = \"{g}\"\nlocal = \".fleet/{n}\"\nurl = \"http://127.0.0.1:{p}\"\nvars = {{ PORT = \"{p}\", HELLO_REGION = \"test-1\", GATE = \"{gate}\" }}\n\n",
                n = h.name,
                g = h.group,
                p = h.port,
                gate = dir.join("gates").join(&h.name).display(),
            )
        })
        .collect()
}

fn guard(dir: &Path, hosts: &[Host]) -> FleetGuard {
    let mut guard = FleetGuard::new(
        hosts
            .iter()
            .map(|h| dir.join(".fleet").join(&h.name))
            .collect(),
    );
    guard.gates = hosts
        .iter()
        .map(|h| dir.join("gates").join(&h.name))
        .collect();
    guard
}

/// A pipeline file (application `hello`, one stage `prod`) whose `deploy` step deploys
/// to `hosts` as `deploy` says, with a health check of every host.
fn pipeline(dir: &Path, hosts: &[Host], deploy: &Deploy) -> String {
    let waves = deploy
        .waves
        .iter()
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"[pipeline]
name = "fleet"

{targets}{head}

[[stage]]
name = "prod"
{stage_extra}

[[stage.step]]
id = "deploy"
uses = "builtin:deploy"
timeout = "3m"
[stage.step.with]
bundle = "{bundle}"
application = "hello"
deployment-group = "prod"
config = {config}
waves = [{waves}]
health-check = {{ path = "/health", expect-status = 200, timeout = "2s", attempts = 10, interval = "100ms" }}
{with_extra}
[stage.step.grants]
read = ["dist"]
targets = [{waves}]
"#,
        targets = targets_toml(dir, hosts),
        head = deploy.head,
        stage_extra = deploy.stage_extra,
        bundle = deploy.bundle,
        config = deploy.config,
        with_extra = deploy.with_extra,
    )
}

/// What a test pipeline deploys, and how.
struct Deploy<'a> {
    /// The bundle folder, relative to the project.
    bundle: &'a str,
    /// The `config` value as TOML, e.g. `"HalfAtATime"` with its quotes.
    config: &'a str,
    waves: &'a [&'a str],
    /// TOML before the stage (`[[monitor]]`s).
    head: String,
    /// TOML inside the stage, before its step (`[stage.gates.alarms]`).
    stage_extra: &'a str,
    /// More lines of the step's `with`.
    with_extra: &'a str,
}

impl<'a> Deploy<'a> {
    fn new(bundle: &'a str, config: &'a str, waves: &'a [&'a str]) -> Deploy<'a> {
        Deploy {
            bundle,
            config,
            waves,
            head: String::new(),
            stage_extra: "",
            with_extra: "",
        }
    }
}

/// Write a revision bundle under `dir`: the service `binary`, the quickstart's appspec
/// hooks (stop, start, validate) and scripts, plus `before_install` as the BeforeInstall
/// hook when given. `tag` goes into the bundle so that two bundles of one binary differ.
fn write_bundle(dir: &Path, rel: &str, binary: &Path, tag: &str, before_install: Option<&str>) {
    let out = dir.join(rel);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(out.join("bin")).unwrap();
    std::fs::create_dir_all(out.join("scripts")).unwrap();
    std::fs::copy(binary, out.join("bin/hello")).unwrap();
    let version = Command::new(binary).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    let version = version.trim().trim_start_matches("hello ");
    std::fs::write(out.join("bin/VERSION"), format!("{version}\n")).unwrap();
    std::fs::write(out.join("bin/TAG"), format!("{tag}\n")).unwrap();
    for script in ["stop.sh", "start.sh", "validate.sh"] {
        std::fs::copy(
            quickstart().join("deploy/scripts").join(script),
            out.join("scripts").join(script),
        )
        .unwrap();
    }
    let mut hooks =
        String::from("  ApplicationStop:\n    - location: scripts/stop.sh\n      timeout: 30\n");
    if let Some(body) = before_install {
        std::fs::write(
            out.join("scripts/before-install.sh"),
            format!("#!/bin/sh\nset -eu\n{body}\n"),
        )
        .unwrap();
        hooks.push_str(
            "  BeforeInstall:\n    - location: scripts/before-install.sh\n      timeout: 120\n",
        );
    }
    hooks.push_str(
        "  ApplicationStart:\n    - location: scripts/start.sh\n      timeout: 30\n  ValidateService:\n    - location: scripts/validate.sh\n      timeout: 30\n",
    );
    std::fs::write(
        out.join("appspec.yml"),
        format!(
            "version: 0.0\nos: linux\nfiles:\n  - source: bin\n    destination: /opt/hello\nfile_exists_behavior: OVERWRITE\nhooks:\n{hooks}"
        ),
    )
    .unwrap();
    for entry in std::fs::read_dir(out.join("scripts")).unwrap().flatten() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Bring every host of `hosts` up on `binary` (all at once), and check they serve it.
fn deploy_initial(p: &Project, hosts: &[Host], binary: &Path, waves: &[&str]) -> DeploymentRow {
    write_bundle(p.path(), "dist/initial", binary, "initial", None);
    p.write(
        "sluice.toml",
        &pipeline(
            p.path(),
            hosts,
            &Deploy::new("dist/initial", "\"AllAtOnce\"", waves),
        ),
    );
    run(p.path(), "sluice.toml").expect_code(0);
    for h in hosts {
        assert_eq!(
            get(h.port, "/health").map(|r| r.0),
            Some(200),
            "{} is not healthy",
            h.name
        );
    }
    deployment_and_rollback(p.path(), &last_run(p.path())).0
}

#[test]
fn quickstart_rolls_back_a_release_failing_validate_service_and_the_fleet_keeps_serving() {
    // A copy of the example, with ports of its own.
    let work = tempfile::Builder::new()
        .prefix("sluice-quickstart-")
        .tempdir()
        .unwrap();
    let dir = work.path();
    copy_tree(&quickstart(), dir);
    for leftover in [".fleet", "dist"] {
        let _ = std::fs::remove_dir_all(dir.join(leftover));
    }
    let ports = free_ports(5);
    for file in ["sluice.toml", "release-1.1.toml"] {
        let mut text = std::fs::read_to_string(dir.join(file)).unwrap();
        for (i, port) in ports.iter().enumerate() {
            text = text.replace(&format!("1818{}", i + 1), &port.to_string());
        }
        std::fs::write(dir.join(file), text).unwrap();
    }
    let _fleet = FleetGuard::new(
        (1..=5)
            .map(|i| dir.join(format!(".fleet/box-{i}")))
            .collect(),
    );

    let first = run(dir, "sluice.toml");
    first.expect_code(0);
    for port in &ports {
        assert_eq!(
            served_version(*port),
            "1.0.0",
            "port {port}\n{}",
            first.stderr
        );
        assert_eq!(get(*port, "/health").map(|r| r.0), Some(200));
    }
    let (deployed, rollback) = deployment_and_rollback(dir, &last_run(dir));
    assert_eq!(deployed.state, "succeeded", "{deployed:#?}");
    assert!(rollback.is_none());
    assert_eq!(
        touched(dir, &deployed.id),
        ["box-1", "box-2", "box-3", "box-4", "box-5"]
    );
    let good = records(dir, "hello");
    assert_eq!(good.len(), 5, "{good:#?}");
    let good_digest = deployed.digest.clone();
    for r in &good {
        assert_eq!(r.state, HostState::Healthy, "{r:#?}");
        assert_eq!(
            r.current.as_ref().map(|c| &c.digest),
            Some(&good_digest),
            "{r:#?}"
        );
        assert_eq!(r.last_good, r.current, "{r:#?}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join(".fleet/RELEASED"))
            .unwrap()
            .trim(),
        "1.0.0",
        "the promotion stage ran"
    );

    let second = run(dir, "release-1.1.toml");
    second.expect_code(1);
    // What people read of both deployments: the deploy step's summary of each pass.
    let summaries = format!(
        "pass 1: {}\npass 2: {}\n",
        deploy_summary(dir, 0),
        deploy_summary(dir, 1)
    );
    let summaries = ports.iter().enumerate().fold(summaries, |text, (i, port)| {
        text.replace(&port.to_string(), &format!("[PORT-{}]", i + 1))
    });
    let digest = regex::Regex::new(r"sha256:[0-9a-f]+").expect("a valid regex");
    let summaries = normalize(&summaries, dir);
    let summaries = digest.replace_all(&summaries, "sha256:[DIGEST]");
    insta::assert_snapshot!("quickstart_deploy_summaries", summaries);
    assert!(
        second.stderr.contains("ValidateService") && second.stderr.contains("box-1"),
        "the failure names the event and the host:\n{}",
        second.stderr
    );
    // Every host, box-1 included, serves 1.0.0 again, and is healthy.
    for port in &ports {
        assert_eq!(
            served_version(*port),
            "1.0.0",
            "port {port}\n{}",
            second.stderr
        );
        assert_eq!(get(*port, "/health").map(|r| r.0), Some(200));
    }
    let (failed, rollback) = deployment_and_rollback(dir, &last_run(dir));
    assert_eq!(failed.state, "failed", "{failed:#?}");
    assert_ne!(failed.digest, good_digest, "1.1.0 is a different revision");
    // OneAtATime, one box first: the broken release never left box-1.
    assert_eq!(touched(dir, &failed.id), ["box-1"]);
    let validate = store(dir)
        .deployment_events(&failed.id)
        .unwrap()
        .into_iter()
        .find(|e| e.event == "ValidateService" && e.state == "failed")
        .expect("ValidateService failed on box-1");
    assert_eq!(validate.target, "box-1");
    let rollback = rollback.expect("a rollback deployment");
    assert_eq!(rollback.state, "succeeded", "{rollback:#?}");
    assert_eq!(touched(dir, &rollback.id), ["box-1"]);
    for r in &records(dir, "hello") {
        assert_eq!(r.state, HostState::Healthy, "{r:#?}");
        assert_eq!(
            r.current.as_ref().map(|c| &c.digest),
            Some(&good_digest),
            "{r:#?}"
        );
        assert_eq!(
            r.last_good.as_ref().map(|c| &c.digest),
            Some(&good_digest),
            "{r:#?}"
        );
    }
    let untouched = record(&records(dir, "hello"), "box-5").clone();
    assert_eq!(
        untouched.current.as_ref().map(|c| &c.deployment_id),
        Some(&deployed.id),
        "box-5 still runs what the first pass deployed"
    );
}

/// Samples of which hosts answer `200` on `/health`, taken every 15 ms from a thread.
struct HealthPoller {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<Vec<bool>>>>,
}

impl HealthPoller {
    fn start(ports: Vec<u16>) -> HealthPoller {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                samples.push(
                    ports
                        .iter()
                        .map(|p| get(*p, "/health").is_some_and(|r| r.0 == 200))
                        .collect(),
                );
                std::thread::sleep(Duration::from_millis(15));
            }
            samples
        });
        HealthPoller {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<Vec<bool>> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("the poller")
    }
}

impl Drop for HealthPoller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Deploy `bundle` with `config` while polling every host; returns the fewest healthy
/// hosts seen at one moment, and how many samples were taken.
fn deploy_polled(p: &Project, hosts: &[Host], bundle: &str, config: &str) -> (usize, usize) {
    p.write(
        "sluice.toml",
        &pipeline(p.path(), hosts, &Deploy::new(bundle, config, &["fleet"])),
    );
    let poller = HealthPoller::start(hosts.iter().map(|h| h.port).collect());
    let out = run(p.path(), "sluice.toml");
    let samples = poller.finish();
    out.expect_code(0);
    assert!(samples.len() > 20, "too few samples: {}", samples.len());
    assert!(
        samples.first().is_some_and(|s| s.iter().all(|h| *h)),
        "every host is healthy before the deployment"
    );
    assert!(
        samples.last().is_some_and(|s| s.iter().all(|h| *h)),
        "every host is healthy after the deployment"
    );
    let fewest = samples
        .iter()
        .map(|s| s.iter().filter(|h| **h).count())
        .min()
        .expect("samples");
    (fewest, samples.len())
}

#[test]
fn minimum_healthy_hosts_holds_at_every_moment_of_half_at_a_time_and_a_custom_minimum() {
    let (v1, v11) = hello_binaries();
    let p = Project::new("");
    let fleet = hosts(&[("fleet", 6)]);
    let _guard = guard(p.path(), &fleet);
    deploy_initial(&p, &fleet, v1, &["fleet"]);
    // Each host is down from its ApplicationStop to its ApplicationStart: 300 ms at least.
    let slow = Some("sleep 0.3");

    // HalfAtATime on 6 hosts: batches of 3, so at least 3 healthy at every moment, and
    // the 3 of a batch go down together.
    write_bundle(p.path(), "dist/half", v11, "half", slow);
    let (fewest, samples) = deploy_polled(&p, &fleet, "dist/half", "\"HalfAtATime\"");
    assert!(
        fewest >= 3,
        "HalfAtATime let the healthy hosts drop to {fewest} of 6"
    );
    assert_eq!(
        fewest, 3,
        "a batch of 3 goes down together ({samples} samples)"
    );
    for h in &fleet {
        assert_eq!(served_version(h.port), "1.1.0", "{}", h.name);
    }

    // FLEET_PERCENT 60 of 6 hosts is 3.6, rounded up to 4 healthy: batches of 2.
    write_bundle(p.path(), "dist/custom", v1, "custom", slow);
    let (fewest, samples) = deploy_polled(
        &p,
        &fleet,
        "dist/custom",
        "{ minimum-healthy-hosts = { type = \"FLEET_PERCENT\", value = 60 } }",
    );
    assert!(
        fewest >= 4,
        "60% of 6 (rounded up: 4) let the healthy hosts drop to {fewest}"
    );
    assert_eq!(
        fewest, 4,
        "a batch of 2 goes down together ({samples} samples)"
    );
    for h in &fleet {
        assert_eq!(served_version(h.port), "1.0.0", "{}", h.name);
    }
}

#[test]
fn a_runner_killed_in_the_middle_of_a_wave_resumes_and_every_host_ends_on_a_recorded_revision() {
    let (v1, v11) = hello_binaries();
    let p = Project::new("");
    let dir = p.path();
    let fleet = hosts(&[("one-box", 1), ("zone", 2)]);
    let _guard = guard(dir, &fleet);
    let waves = ["one-box", "zone"];
    let initial = deploy_initial(&p, &fleet, v1, &waves);

    // BeforeInstall says it started, then waits for the host's gate file; h1's gate is
    // open, so the second wave (h2, h3) is where the runner dies.
    std::fs::create_dir_all(dir.join("gates")).unwrap();
    std::fs::write(dir.join("gates/h1"), "").unwrap();
    write_bundle(
        dir,
        "dist/next",
        v11,
        "next",
        Some(
            "touch \"$SLUICE_TARGET_ROOT/before-install.started\"\nwhile [ ! -f \"$GATE\" ]; do sleep 0.05; done",
        ),
    );
    p.write(
        "sluice.toml",
        &pipeline(
            dir,
            &fleet,
            &Deploy::new("dist/next", "\"OneAtATime\"", &waves),
        ),
    );
    let runner = spawn_run(dir, "sluice.toml");
    let h2_started = dir.join(".fleet/h2/before-install.started");
    wait_until(
        "the second wave's BeforeInstall on h2",
        Duration::from_secs(120),
        || h2_started.exists(),
    );
    assert_eq!(
        served_version(fleet[0].port),
        "1.1.0",
        "the first wave is done"
    );
    runner.kill9();
    let run_id = last_run(dir);
    let (cut, _) = deployment_and_rollback(dir, &run_id);
    assert_eq!(
        cut.state, "in-progress",
        "the dead runner never finished it: {cut:#?}"
    );
    assert_eq!(
        record(&records(dir, "hello"), "h2").state,
        HostState::Installing,
        "h2 was under way when the runner died"
    );

    // Open the gates (a hook the dead runner left behind ends too), then resume.
    for h in &fleet {
        std::fs::write(dir.join("gates").join(&h.name), "").unwrap();
    }
    let resumed = Outcome::of(&mut sluice(dir, &["resume", &run_id, "--format", "plain"]));
    assert!(
        resumed.code == 0 || resumed.code == 1,
        "resume completes or rolls back\n{}",
        resumed.stderr
    );

    let deployments = store(dir).deployments(&run_id).unwrap();
    assert!(
        deployments
            .iter()
            .any(|d| d.id == cut.id && d.state == "interrupted"),
        "the deployment the runner left is recorded as interrupted: {deployments:#?}"
    );
    assert!(
        deployments.iter().all(|d| d.state != "in-progress"),
        "nothing is left in progress: {deployments:#?}"
    );
    // Every host serves a revision, and it is the one its record says it runs.
    let version_digest = |version: &str| match version {
        "1.0.0" => initial.digest.clone(),
        "1.1.0" => cut.digest.clone(),
        other => panic!("a host serves {other}"),
    };
    let records = records(dir, "hello");
    for h in &fleet {
        let r = record(&records, &h.name);
        let served = served_version(h.port);
        assert_eq!(
            r.state,
            HostState::Healthy,
            "{} serves {served}: {r:#?}",
            h.name
        );
        assert_eq!(
            r.current.as_ref().map(|c| c.digest.clone()),
            Some(version_digest(&served)),
            "{} serves {served}, its record says {r:#?}",
            h.name
        );
    }
    if resumed.code == 0 {
        for h in &fleet {
            assert_eq!(served_version(h.port), "1.1.0", "{}", h.name);
        }
    }
}

/// An HTTP endpoint a monitor checks: `200 ok` until the test flips it, `500` after.
struct Switch {
    port: u16,
    failing: Arc<AtomicBool>,
}

impl Switch {
    fn start() -> Switch {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("bound").port();
        let failing = Arc::new(AtomicBool::new(false));
        let flag = failing.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut line = String::new();
                let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let (status, body) = if flag.load(Ordering::SeqCst) {
                    ("500 Internal Server Error", "errors spiking")
                } else {
                    ("200 OK", "ok")
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Switch { port, failing }
    }
}

#[test]
fn an_alarm_during_the_bake_between_waves_stops_the_rollout_and_rolls_the_first_wave_back() {
    let (v1, v11) = hello_binaries();
    let p = Project::new("");
    let dir = p.path();
    let fleet = hosts(&[("one-box", 1), ("zone", 1), ("rest", 1)]);
    let _guard = guard(dir, &fleet);
    let waves = ["one-box", "zone", "rest"];
    let initial = deploy_initial(&p, &fleet, v1, &waves);
    let before = records(dir, "hello");

    let switch = Switch::start();
    write_bundle(dir, "dist/next", v11, "next", None);
    let mut deploy = Deploy::new("dist/next", "\"OneAtATime\"", &waves);
    deploy.head = format!(
        r#"[[monitor]]
id = "errors"
uses = "builtin:http-check"
interval = "100ms"
evaluation-periods = 1
datapoints-to-alarm = 1
[monitor.with]
url = "http://127.0.0.1:{port}/errors"
status = 200
[monitor.grants]
net = ["http://127.0.0.1:{port}"]
"#,
        port = switch.port
    );
    deploy.stage_extra = "[stage.gates.alarms]\nalarms = [\"errors\"]\n";
    deploy.with_extra = "bake-between-waves = { duration = \"5s\", positive = 2, monitors = [\"errors\"], timeout = \"1m\" }";
    p.write("sluice.toml", &pipeline(dir, &fleet, &deploy));
    let runner = spawn_run(dir, "sluice.toml");
    // The first wave is done once h1 serves 1.1.0: the 5 s bake has begun. The errors
    // monitor turns bad now.
    wait_until("h1 to serve 1.1.0", Duration::from_secs(120), || {
        served_version(fleet[0].port) == "1.1.0"
    });
    switch.failing.store(true, Ordering::SeqCst);
    let out = runner.wait(Duration::from_secs(120));
    out.expect_code(1);

    let (stopped, rollback) = deployment_and_rollback(dir, &last_run(dir));
    assert!(
        stopped.state == "stopped" || stopped.state == "failed",
        "{stopped:#?}"
    );
    assert!(
        stopped
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("errors")),
        "the reason names the monitor: {stopped:#?}"
    );
    assert_eq!(
        touched(dir, &stopped.id),
        ["h1"],
        "later waves were never touched"
    );
    let rollback = rollback.expect("a rollback deployment");
    assert_eq!(rollback.state, "succeeded", "{rollback:#?}");
    assert_eq!(touched(dir, &rollback.id), ["h1"]);
    for h in &fleet {
        assert_eq!(
            served_version(h.port),
            "1.0.0",
            "{}\n{}",
            h.name,
            out.stderr
        );
    }
    let after = records(dir, "hello");
    for name in ["h2", "h3"] {
        assert_eq!(
            record(&after, name),
            record(&before, name),
            "{name} was never touched"
        );
    }
    let h1 = record(&after, "h1");
    assert_eq!(h1.state, HostState::Healthy, "{h1:#?}");
    assert_eq!(
        h1.current.as_ref().map(|c| &c.digest),
        Some(&initial.digest)
    );
}
