//! The plugin against a fake fleet: targets in memory, archives holding AppSpec texts,
//! hooks that succeed unless told otherwise, and a count of targets down at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use sluice_sdk::deploy::{
    BakeRequest, BundleSource, DeployError, Deployment, DeploymentEnd, DeploymentKind, EventState,
    Hook, HookOutcome, HostState, InstallRequest, StagedBundle, Target, TargetRecord,
};
use sluice_sdk::{Artifact, StepContext, StepInput};

use super::*;
use crate::fleet::Fleet;

const GOOD_APPSPEC: &str = "\
version: 0.0
os: linux
files:
  - source: app
    destination: /opt/hello
hooks:
  ApplicationStop:
    - location: scripts/stop.sh
  ApplicationStart:
    - location: scripts/start.sh
      timeout: 60
  ValidateService:
    - location: scripts/validate.sh
      timeout: 30
";

#[derive(Default)]
struct FakeFleet {
    targets: Vec<Target>,
    records: BTreeMap<String, TargetRecord>,
    /// Archive folder → (digest, appspec text).
    archives: BTreeMap<String, (String, String)>,
    /// Digest of each local bundle folder, by path.
    bundles: BTreeMap<String, String>,
    /// `(target, script)` → exit code (0 when absent); applies to every archive.
    exit_codes: BTreeMap<(String, String), i32>,
    /// `(target, archive containing)` → exit code, for failing one revision's scripts.
    exit_codes_in: Vec<(String, String, String, i32)>,
    /// Fire an alarm once this many hooks ran.
    alarm_after_hooks: Option<usize>,
    bake_result: Option<Result<String, String>>,
    begun: Vec<Deployment>,
    finished: Vec<(String, DeploymentEnd, String)>,
    events: Vec<(String, String, String, EventState, String)>,
    hooks: Vec<(String, Hook)>,
    bakes: Vec<BakeRequest>,
    installs: Vec<(String, InstallRequest)>,
    /// Targets whose service is down right now (between ApplicationStop and a healthy
    /// record), and the most that were down at once.
    down: BTreeSet<String>,
    most_down: usize,
    /// Order in which targets first went down.
    went_down: Vec<String>,
    fail_write_for: Option<String>,
}

impl FakeFleet {
    fn new(groups: &[(&str, &[&str])]) -> FakeFleet {
        let mut fleet = FakeFleet::default();
        for (group, names) in groups {
            for name in *names {
                fleet.targets.push(Target {
                    name: name.to_string(),
                    group: group.to_string(),
                    kind: "local".into(),
                    url: Some(format!("http://127.0.0.1/{name}")),
                    root: format!("/fleet/{name}"),
                    vars: vec![],
                });
            }
        }
        fleet
    }

    fn go_down(&mut self, target: &str) {
        if self.down.insert(target.to_string()) {
            self.went_down.push(target.to_string());
        }
        self.most_down = self.most_down.max(self.down.len());
    }

    fn record(&self, target: &str) -> TargetRecord {
        self.records.get(target).cloned().unwrap_or(TargetRecord {
            current: None,
            last_good: None,
            state: HostState::Fresh,
        })
    }

    fn events_of(&self, target: &str) -> Vec<String> {
        self.events
            .iter()
            .filter(|(_, t, _, _, _)| t == target)
            .map(|(_, _, event, state, _)| {
                format!(
                    "{event}:{}",
                    format!("{state:?}").trim_start_matches("EventState::")
                )
            })
            .collect()
    }
}

impl Fleet for FakeFleet {
    fn targets(&mut self) -> Vec<Target> {
        self.targets.clone()
    }
    fn begin(&mut self, deployment: &Deployment) -> Result<String, DeployError> {
        self.begun.push(deployment.clone());
        Ok(format!("d-r1-{}", self.begun.len()))
    }
    fn finish(&mut self, id: &str, end: DeploymentEnd, reason: &str) -> Result<(), DeployError> {
        self.finished.push((id.into(), end, reason.into()));
        Ok(())
    }
    fn progress(
        &mut self,
        id: &str,
        target: &str,
        event: &str,
        state: EventState,
        detail: &str,
    ) -> Result<(), DeployError> {
        self.events
            .push((id.into(), target.into(), event.into(), state, detail.into()));
        Ok(())
    }
    fn read_record(&mut self, _: &str, target: &str) -> Result<TargetRecord, DeployError> {
        Ok(self.record(target))
    }
    fn write_record(
        &mut self,
        _: &str,
        target: &str,
        update: &TargetRecord,
    ) -> Result<(), DeployError> {
        if self.fail_write_for.as_deref() == Some(target) {
            return Err(DeployError::Unreachable(format!("{target}: disk full")));
        }
        if update.state == HostState::Healthy {
            self.down.remove(target);
        } else {
            self.go_down(target);
        }
        self.records.insert(target.into(), update.clone());
        Ok(())
    }
    fn bundle_digest(&mut self, source: &BundleSource) -> Result<String, DeployError> {
        match source {
            BundleSource::LocalFolder(path) => Ok(self.bundles[path].clone()),
            BundleSource::Archive(a) => Ok(self.archives[a].0.clone()),
        }
    }
    fn read_archive_file(
        &mut self,
        _: &str,
        archive: &str,
        path: &str,
    ) -> Result<String, DeployError> {
        assert_eq!(path, "appspec.yml");
        self.archives
            .get(archive)
            .map(|(_, text)| text.clone())
            .ok_or_else(|| DeployError::Failed(format!("{archive}: no such archive")))
    }
    fn download_bundle(
        &mut self,
        target: &str,
        id: &str,
        source: &BundleSource,
    ) -> Result<StagedBundle, DeployError> {
        self.go_down(target);
        let (digest, text) = match source {
            BundleSource::LocalFolder(path) => {
                let text =
                    std::fs::read_to_string(PathBuf::from(path).join("appspec.yml")).unwrap();
                (self.bundles[path].clone(), text)
            }
            BundleSource::Archive(a) => self.archives[a].clone(),
        };
        let archive = format!("/var/lib/sluice-deploy/hello/{id}/{target}/deployment-archive");
        self.archives
            .insert(archive.clone(), (digest.clone(), text));
        Ok(StagedBundle { archive, digest })
    }
    fn install(
        &mut self,
        target: &str,
        request: &InstallRequest,
    ) -> Result<Vec<String>, DeployError> {
        self.installs.push((target.into(), request.clone()));
        Ok(vec![format!("/opt/hello/{}", request.archive.len())])
    }
    fn run_hook(&mut self, target: &str, _: &str, hook: &Hook) -> Result<HookOutcome, DeployError> {
        if hook.event == "ApplicationStop" {
            self.go_down(target);
        }
        self.hooks.push((target.into(), hook.clone()));
        let mut code = self
            .exit_codes
            .get(&(target.to_string(), hook.script.clone()))
            .copied()
            .unwrap_or(0);
        for (t, archive_part, script, c) in &self.exit_codes_in {
            if t == target && hook.archive.contains(archive_part.as_str()) && &hook.script == script
            {
                code = *c;
            }
        }
        Ok(HookOutcome {
            exit_code: Some(code),
            signal: None,
            timed_out: false,
            output_tail: if code == 0 {
                String::new()
            } else {
                "curl: connection refused".into()
            },
            duration_ms: 5,
        })
    }
    fn alarm(&mut self) -> Option<String> {
        match self.alarm_after_hooks {
            Some(n) if self.hooks.len() >= n => Some("fleet-health: 3 negative data points".into()),
            _ => None,
        }
    }
    fn bake(&mut self, _: &str, request: &BakeRequest) -> Result<String, String> {
        self.bakes.push(request.clone());
        self.bake_result.clone().unwrap_or(Ok("baked".into()))
    }
    fn http_status(&mut self, _: &str, _: Duration) -> Result<u16, String> {
        Ok(200)
    }
    fn pause(&mut self, _: Duration) {}
}

/// A bundle folder on disk with `appspec` and the scripts it names.
struct Bundle {
    dir: PathBuf,
}

impl Bundle {
    fn new(name: &str, appspec: &str) -> Bundle {
        let dir = std::env::temp_dir().join(format!(
            "sluice-deploy-test-{}-{name}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("scripts")).unwrap();
        std::fs::create_dir_all(dir.join("app")).unwrap();
        std::fs::write(dir.join("appspec.yml"), appspec).unwrap();
        for script in ["stop.sh", "start.sh", "validate.sh", "before.sh"] {
            std::fs::write(dir.join("scripts").join(script), "#!/bin/sh\n").unwrap();
        }
        Bundle { dir }
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn context(version: &str) -> StepContext {
    StepContext::from(StepInput {
        run_id: "r1".into(),
        pipeline: "hello".into(),
        stage: "prod".into(),
        step: "deploy".into(),
        config: String::new(),
        artifact: Some(Artifact {
            name: "hello".into(),
            version: version.into(),
            digest: format!("sha256:{version}"),
        }),
        outputs: vec![],
        workdir: "/".into(),
        attempt: 1,
        plugins: vec![],
    })
}

fn config(bundle: &Bundle, extra: serde_json::Value) -> Config {
    let mut with = serde_json::json!({ "bundle": bundle.dir.to_string_lossy() });
    for (k, v) in extra.as_object().unwrap() {
        with[k] = v.clone();
    }
    serde_json::from_value(with).unwrap()
}

/// Deploy `version` (a bundle with `appspec`) with the `with` table `extra`.
fn deploy_version(
    fleet: &mut FakeFleet,
    version: &str,
    appspec: &str,
    extra: serde_json::Value,
) -> Report {
    let bundle = Bundle::new(version, appspec);
    fleet.bundles.insert(
        bundle.dir.to_string_lossy().into_owned(),
        format!("sha256:{version}000000000000000000"),
    );
    run_deploy(&config(&bundle, extra), &context(version), fleet).unwrap()
}

fn three_waves() -> FakeFleet {
    FakeFleet::new(&[
        ("one-box", &["box-1"]),
        ("zone-a", &["box-2", "box-3"]),
        ("rest", &["box-4", "box-5"]),
    ])
}

#[test]
fn first_deployment_runs_the_lifecycle_in_codedeploy_order_on_every_target() {
    let mut fleet = three_waves();
    let report = deploy_version(&mut fleet, "1.0.0", GOOD_APPSPEC, serde_json::json!({}));
    assert_eq!(
        report.status,
        sluice_sdk::Status::Passed,
        "{}",
        report.summary
    );
    assert_eq!(
        report.summary,
        "deployed 1.0.0 to 5 targets in 3 waves (OneAtATime)"
    );
    assert_eq!(
        fleet.events_of("box-1"),
        [
            "ApplicationStop:Skipped",
            "DownloadBundle:Started",
            "DownloadBundle:Succeeded",
            "BeforeInstall:Skipped",
            "Install:Started",
            "Install:Succeeded",
            "AfterInstall:Skipped",
            "ApplicationStart:Started",
            "ApplicationStart:Succeeded",
            "ValidateService:Started",
            "ValidateService:Succeeded",
        ]
    );
    // Waves in order, one target at a time.
    assert_eq!(
        fleet.went_down,
        ["box-1", "box-2", "box-3", "box-4", "box-5"]
    );
    assert_eq!(fleet.most_down, 1);
    for target in ["box-1", "box-5"] {
        let record = fleet.record(target);
        assert_eq!(record.state, HostState::Healthy);
        assert_eq!(record.current.as_ref().unwrap().label, "1.0.0");
        assert_eq!(
            record.last_good, record.current,
            "last good moves on success"
        );
    }
    assert_eq!(
        fleet.begun[0].config,
        "OneAtATime (minimum 4 of 5 healthy, 1 at a time)"
    );
    assert_eq!(fleet.finished[0].1, DeploymentEnd::Succeeded);
}

#[test]
fn hooks_get_codedeploys_variables_and_sluices_own() {
    let mut fleet = FakeFleet::new(&[("one-box", &["box-1"])]);
    deploy_version(&mut fleet, "1.0.0", GOOD_APPSPEC, serde_json::json!({}));
    let (_, hook) = &fleet.hooks[0];
    assert_eq!(hook.event, "ApplicationStart");
    assert_eq!(hook.timeout_ms, 60_000);
    let env: BTreeMap<_, _> = hook.env.iter().cloned().collect();
    assert_eq!(env["LIFECYCLE_EVENT"], "ApplicationStart");
    assert_eq!(env["DEPLOYMENT_ID"], "d-r1-1");
    assert_eq!(env["APPLICATION_NAME"], "hello");
    assert_eq!(env["DEPLOYMENT_GROUP_NAME"], "prod");
    assert_eq!(
        env["DEPLOYMENT_GROUP_ID"],
        deployment_group_id("hello", "prod")
    );
    assert_eq!(env["SLUICE_RUN_ID"], "r1");
    assert_eq!(env["SLUICE_STAGE"], "prod");
    assert_eq!(env["SLUICE_REVISION"], "1.0.0");
    assert_eq!(env["SLUICE_ARTIFACT_VERSION"], "1.0.0");
    assert_eq!(env["SLUICE_ARTIFACT_DIGEST"], "sha256:1.0.0");
    assert_ne!(
        deployment_group_id("hello", "prod"),
        deployment_group_id("hello", "staging")
    );
}

#[test]
fn application_stop_runs_the_previous_revisions_hooks_from_its_archive() {
    let mut fleet = FakeFleet::new(&[("one-box", &["box-1"])]);
    deploy_version(&mut fleet, "1.0.0", GOOD_APPSPEC, serde_json::json!({}));
    let old_archive = fleet.record("box-1").current.unwrap().archive;
    // 2.0.0 has no ApplicationStop hook of its own: the one that runs is 1.0.0's.
    let new_appspec =
        GOOD_APPSPEC.replace("  ApplicationStop:\n    - location: scripts/stop.sh\n", "");
    fleet.hooks.clear();
    fleet.installs.clear();
    let report = deploy_version(&mut fleet, "2.0.0", &new_appspec, serde_json::json!({}));
    assert_eq!(
        report.status,
        sluice_sdk::Status::Passed,
        "{}",
        report.summary
    );
    let (_, stop) = &fleet.hooks[0];
    assert_eq!(stop.event, "ApplicationStop");
    assert_eq!(stop.script, "scripts/stop.sh");
    assert_eq!(stop.archive, old_archive);
    assert_eq!(
        stop.env
            .iter()
            .find(|(k, _)| k == "SLUICE_REVISION")
            .unwrap()
            .1,
        "1.0.0"
    );
    // Install removes what 1.0.0 installed.
    let (_, install) = &fleet.installs[0];
    assert_eq!(
        install.cleanup,
        vec![format!("/opt/hello/{}", old_archive.len())]
    );
}

#[test]
fn a_failing_application_stop_blocks_the_deployment_unless_ignored() {
    let mut fleet = FakeFleet::new(&[("one-box", &["box-1"])]);
    deploy_version(&mut fleet, "1.0.0", GOOD_APPSPEC, serde_json::json!({}));
    fleet
        .exit_codes
        .insert(("box-1".into(), "scripts/stop.sh".into()), 3);
    let report = deploy_version(&mut fleet, "2.0.0", GOOD_APPSPEC, serde_json::json!({}));
    assert_eq!(report.status, sluice_sdk::Status::Failed);
    assert!(
        report
            .summary
            .starts_with("ApplicationStop failed on box-1: scripts/stop.sh (exit 3)"),
        "{}",
        report.summary
    );
    let report = deploy_version(
        &mut fleet,
        "2.0.0",
        GOOD_APPSPEC,
        serde_json::json!({ "ignore-application-stop-failures": true }),
    );
    assert_eq!(
        report.status,
        sluice_sdk::Status::Passed,
        "{}",
        report.summary
    );
}

#[test]
fn redeploying_the_same_revision_is_a_no_op_per_target_unless_forced() {
    let mut fleet = three_waves();
    deploy_version(&mut fleet, "1.0.0", GOOD_APPSPEC, serde_json::json!({}));
    let hooks_before = fleet.hooks.len();
    let report = deploy_version(&mut fleet, "1.0.0", GOOD_APPSPEC, serde_json::json!({}));
    assert_eq!(report.status, sluice_sdk::Status::Passed);
    assert_eq!(
        report.summary,
        "1.0.0 already runs on all 5 targets; nothing deployed"
    );
    assert_eq!(fleet.hooks.len(), hooks_before, "no hook ran");
    assert_eq!(fleet.events.iter().filter(|e| e.2 == "Skip").count(), 5);
    let report = deploy_version(
        &mut fleet,
        "1.0.0",
        GOOD_APPSPEC,
        serde_json::json!({ "force": true }),
    );
    assert_eq!(
        report.summary,
        "deployed 1.0.0 to 5 targets in 3 waves (OneAtATime)"
    );
    assert!(fleet.hooks.len() > hooks_before);
}

#[test]
fn a_failed_validate_service_rolls_the_touched_targets_back_to_the_last_good_revision() {
    let mut fleet = three_waves();
    deploy_version(&mut fleet, "1.0.0", GOOD_APPSPEC, serde_json::json!({}));
    fleet.hooks.clear();
    fleet.exit_codes_in.push((
        "box-1".into(),
        "d-r1-2".into(),
        "scripts/validate.sh".into(),
        1,
    ));
    let report = deploy_version(&mut fleet, "2.0.0", GOOD_APPSPEC, serde_json::json!({}));
    assert_eq!(report.status, sluice_sdk::Status::Failed);
    assert_eq!(
        report.summary,
        "ValidateService failed on box-1: scripts/validate.sh (exit 1): curl: connection refused; rolled back 1 target to 1.0.0"
    );
    let rollback = &fleet.begun[2];
    assert_eq!(rollback.kind, DeploymentKind::Rollback);
    assert_eq!(rollback.rollback_of.as_deref(), Some("d-r1-2"));
    assert_eq!(rollback.targets, ["box-1"]);
    assert_eq!(rollback.label, "1.0.0");
    assert_eq!(fleet.finished[1].1, DeploymentEnd::Failed);
    assert_eq!(fleet.finished[2].1, DeploymentEnd::Succeeded);
    // box-1 runs 1.0.0 again, healthy, from a new deployment (its hooks ran).
    let record = fleet.record("box-1");
    assert_eq!(record.state, HostState::Healthy);
    let current = record.current.unwrap();
    assert_eq!(
        (current.label.as_str(), current.deployment_id.as_str()),
        ("1.0.0", "d-r1-3")
    );
    assert!(fleet.hooks.iter().any(|(t, h)| t == "box-1"
        && h.event == "ValidateService"
        && h.archive.contains("d-r1-3")));
    // The rollback stopped the failed revision first.
    let stop = fleet
        .hooks
        .iter()
        .find(|(_, h)| {
            h.event == "ApplicationStop"
                && h.env
                    .iter()
                    .any(|(k, v)| k == "DEPLOYMENT_ID" && v == "d-r1-3")
        })
        .unwrap();
    assert!(stop.1.archive.contains("d-r1-2"));
    // Untouched targets still run 1.0.0 from the first deployment.
    assert_eq!(
        fleet.record("box-2").current.unwrap().deployment_id,
        "d-r1-1"
    );
    assert_eq!(report.output("rollback-deployment-id"), Some("d-r1-3"));
    let rolled_back = report
        .metrics
        .iter()
        .find(|m| m.name == "targets.rolled_back")
        .unwrap();
    assert_eq!(rolled_back.value, 1.0);
}

#[test]
fn rollback_covers_every_touched_target_unhealthy_first() {
    let mut fleet = FakeFleet::new(&[("all", &["a", "b", "c", "d"])]);
    deploy_version(&mut fleet, "1.0.0", GOOD_APPSPEC, serde_json::json!({}));
    fleet
        .exit_codes_in
        .push(("d".into(), "d-r1-2".into(), "scripts/validate.sh".into(), 1));
    let report = deploy_version(
        &mut fleet,
        "2.0.0",
        GOOD_APPSPEC,
        serde_json::json!({ "config": "HalfAtATime" }),
    );
    assert_eq!(report.status, sluice_sdk::Status::Failed);
    assert!(
        report.summary.ends_with("rolled back 4 targets to 1.0.0"),
        "{}",
        report.summary
    );
    let rollback = &fleet.begun[2];
    assert_eq!(rollback.targets, ["a", "b", "c", "d"]);
    // The failed target goes first, then the one left installing, then the healthy
    // ones, in batches of 2.
    let order: Vec<&str> = fleet
        .events
        .iter()
        .filter(|e| e.0 == "d-r1-3" && e.2 == "DownloadBundle" && e.3 == EventState::Started)
        .map(|e| e.1.as_str())
        .collect();
    assert_eq!(order, ["d", "c", "a", "b"]);
    for t in ["a", "b", "c", "d"] {
        assert_eq!(fleet.record(t).current.unwrap().label, "1.0.0");
        assert_eq!(fleet.record(t).state, HostState::Healthy);
    }
}

#[test]
fn a_first_deployment_that_fails_rolls_back_to_nothing() {
    let mut fleet = FakeFleet::new(&[("one-box", &["box-1"])]);
    fleet
        .exit_codes
        .insert(("box-1".into(), "scripts/validate.sh".into()), 1);
    let report = deploy_version(&mut fleet, "1.0.0", GOOD_APPSPEC, serde_json::json!({}));
    assert_eq!(report.status, sluice_sdk::Status::Failed);
    assert!(
        report
            .summary
            .ends_with("rolled back 1 target to nothing (no earlier good revision; stopped)"),
        "{}",
        report.summary
    );
    // The failed revision's ApplicationStop ran in the rollback.
    let last = fleet.hooks.last().unwrap();
    assert_eq!(last.1.event, "ApplicationStop");
    let record = fleet.record("box-1");
    assert_eq!(
        (record.current, record.last_good, record.state),
        (None, None, HostState::Fresh)
    );
}

#[test]
fn a_failed_rollback_is_reported_with_the_failure_it_undid() {
    let mut fleet = FakeFleet::new(&[("one-box", &["box-1"])]);
    deploy_version(&mut fleet, "1.0.0", GOOD_APPSPEC, serde_json::json!({}));
    fleet.exit_codes_in.push((
        "box-1".into(),
        "d-r1-2".into(),
        "scripts/validate.sh".into(),
        1,
    ));
    fleet.exit_codes_in.push((
        "box-1".into(),
        "d-r1-3".into(),
        "scripts/start.sh".into(),
        7,
    ));
    let report = deploy_version(&mut fleet, "2.0.0", GOOD_APPSPEC, serde_json::json!({}));
    assert_eq!(report.status, sluice_sdk::Status::Failed);
    assert_eq!(
        report.summary,
        "ValidateService failed on box-1: scripts/validate.sh (exit 1): curl: connection refused; rollback failed too: ApplicationStart failed on box-1: scripts/start.sh (exit 7): curl: connection refused"
    );
    assert_eq!(fleet.finished[2].1, DeploymentEnd::Failed);
    assert_eq!(fleet.record("box-1").state, HostState::Failed);
}

#[test]
fn rollback_can_be_turned_off() {
    let mut fleet = FakeFleet::new(&[("one-box", &["box-1"])]);
    deploy_version(&mut fleet, "1.0.0", GOOD_APPSPEC, serde_json::json!({}));
    fleet
        .exit_codes
        .insert(("box-1".into(), "scripts/validate.sh".into()), 1);
    let report = deploy_version(
        &mut fleet,
        "2.0.0",
        GOOD_APPSPEC,
        serde_json::json!({ "rollback": false }),
    );
    assert!(
        report.summary.ends_with("; not rolled back"),
        "{}",
        report.summary
    );
    assert_eq!(fleet.begun.len(), 2);
    assert_eq!(fleet.record("box-1").state, HostState::Failed);
}

#[test]
fn after_a_crash_targets_left_installing_are_redeployed_first() {
    let mut fleet = FakeFleet::new(&[("all", &["a", "b", "c"])]);
    deploy_version(&mut fleet, "1.0.0", GOOD_APPSPEC, serde_json::json!({}));
    // The runner died while c was installing 2.0.0.
    let mut c = fleet.record("c");
    c.state = HostState::Installing;
    c.current.as_mut().unwrap().digest = "sha256:2.0.0000000000000000000".into();
    fleet.records.insert("c".into(), c);
    fleet.went_down.clear();
    let report = deploy_version(&mut fleet, "2.0.0", GOOD_APPSPEC, serde_json::json!({}));
    assert_eq!(
        report.status,
        sluice_sdk::Status::Passed,
        "{}",
        report.summary
    );
    assert_eq!(fleet.went_down, ["c", "a", "b"]);
    assert_eq!(
        report.summary,
        "deployed 2.0.0 to 3 targets in 1 wave (OneAtATime)"
    );
}

#[test]
fn a_rollback_after_resume_also_covers_targets_the_dead_deployment_finished() {
    let mut fleet = FakeFleet::new(&[("all", &["a", "b"])]);
    deploy_version(&mut fleet, "1.0.0", GOOD_APPSPEC, serde_json::json!({}));
    // The runner died after a ran 2.0.0 to the end, before the deployment finished:
    // a is healthy on 2.0.0, its last good still 1.0.0.
    let mut a = fleet.record("a");
    let current = a.current.as_mut().unwrap();
    current.digest = "sha256:2.0.0000000000000000000".into();
    current.label = "2.0.0".into();
    fleet.records.insert("a".into(), a);
    fleet
        .exit_codes_in
        .push(("b".into(), "d-r1-2".into(), "scripts/validate.sh".into(), 1));
    let report = deploy_version(&mut fleet, "2.0.0", GOOD_APPSPEC, serde_json::json!({}));
    assert!(
        report.summary.ends_with("rolled back 2 targets to 1.0.0"),
        "{}",
        report.summary
    );
    assert_eq!(fleet.begun[2].targets, ["a", "b"]);
    assert_eq!(fleet.record("a").current.unwrap().label, "1.0.0");
}

#[test]
fn half_at_a_time_keeps_the_minimum_healthy_and_moves_a_batch_together() {
    let names = ["h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9"];
    let mut fleet = FakeFleet::new(&[("all", &names)]);
    deploy_version(
        &mut fleet,
        "1.0.0",
        GOOD_APPSPEC,
        serde_json::json!({ "config": "AllAtOnce" }),
    );
    assert_eq!(fleet.most_down, 9);
    fleet.most_down = 0;
    let report = deploy_version(
        &mut fleet,
        "2.0.0",
        GOOD_APPSPEC,
        serde_json::json!({ "config": "HalfAtATime" }),
    );
    assert_eq!(report.status, sluice_sdk::Status::Passed);
    assert_eq!(
        fleet.most_down, 4,
        "9 targets HalfAtATime: 4 at a time, 5 stay healthy"
    );
    // Lockstep: every target of the first batch starts ApplicationStart before any of
    // them runs ValidateService.
    let d2: Vec<_> = fleet.events.iter().filter(|e| e.0 == "d-r1-2").collect();
    let last_start = d2
        .iter()
        .rposition(|e| {
            e.2 == "ApplicationStart" && ["h1", "h2", "h3", "h4"].contains(&e.1.as_str())
        })
        .unwrap();
    let first_validate = d2.iter().position(|e| e.2 == "ValidateService").unwrap();
    assert!(last_start < first_validate);
}

#[test]
fn a_custom_minimum_bounds_how_many_targets_are_down() {
    let names = ["h1", "h2", "h3", "h4", "h5"];
    let mut fleet = FakeFleet::new(&[("all", &names)]);
    deploy_version(&mut fleet, "1.0.0", GOOD_APPSPEC, serde_json::json!({}));
    fleet.most_down = 0;
    let custom = serde_json::json!({
        "config": { "minimum-healthy-hosts": { "type": "FLEET_PERCENT", "value": 50 } }
    });
    deploy_version(&mut fleet, "2.0.0", GOOD_APPSPEC, custom);
    assert_eq!(fleet.most_down, 2, "50% of 5 rounds up to 3 healthy");
    let bundle = Bundle::new("95", GOOD_APPSPEC);
    fleet
        .bundles
        .insert(bundle.dir.to_string_lossy().into_owned(), "sha256:x".into());
    let too_high = config(
        &bundle,
        serde_json::json!({ "config": { "minimum-healthy-hosts": { "type": "HOST_COUNT", "value": 5 } } }),
    );
    let err = run_deploy(&too_high, &context("3.0.0"), &mut fleet).unwrap_err();
    assert!(err.message().contains("fleet of 5 targets"), "{err:?}");
}

#[test]
fn a_bake_runs_between_waves_and_a_failed_bake_rolls_back() {
    let mut fleet = three_waves();
    deploy_version(&mut fleet, "1.0.0", GOOD_APPSPEC, serde_json::json!({}));
    let bake = serde_json::json!({
        "bake-between-waves": { "duration": "3s", "positive": 2, "monitors": ["fleet-health"] }
    });
    deploy_version(&mut fleet, "2.0.0", GOOD_APPSPEC, bake.clone());
    let labels: Vec<_> = fleet.bakes.iter().map(|b| b.label.as_str()).collect();
    assert_eq!(labels, ["after wave one-box", "after wave zone-a"]);
    assert_eq!(
        (fleet.bakes[0].duration_ms, fleet.bakes[0].positive),
        (3000, 2)
    );

    fleet.bake_result = Some(Err("fleet-health: negative data point: 503".into()));
    let report = deploy_version(&mut fleet, "3.0.0", GOOD_APPSPEC, bake);
    assert_eq!(
        report.summary,
        "the bake after wave one-box failed: fleet-health: negative data point: 503; rolled back 1 target to 2.0.0"
    );
    assert!(fleet.record("box-2").current.unwrap().label == "2.0.0");
}

#[test]
fn an_alarm_stops_the_rollout_and_rolls_back() {
    let mut fleet = three_waves();
    deploy_version(&mut fleet, "1.0.0", GOOD_APPSPEC, serde_json::json!({}));
    // Fires after box-1 and box-2 ran their hooks (3 hooks each).
    fleet.alarm_after_hooks = Some(fleet.hooks.len() + 6);
    let report = deploy_version(&mut fleet, "2.0.0", GOOD_APPSPEC, serde_json::json!({}));
    assert_eq!(report.status, sluice_sdk::Status::Failed);
    assert_eq!(
        report.summary,
        "stopped by an alarm: fleet-health: 3 negative data points; rolled back 2 targets to 1.0.0"
    );
    assert_eq!(fleet.finished[1].1, DeploymentEnd::Stopped);
    assert_eq!(
        fleet.record("box-3").current.unwrap().deployment_id,
        "d-r1-1"
    );
}

#[test]
fn waves_must_name_granted_groups() {
    let mut fleet = three_waves();
    let bundle = Bundle::new("w", GOOD_APPSPEC);
    fleet
        .bundles
        .insert(bundle.dir.to_string_lossy().into_owned(), "sha256:x".into());
    let bad = config(
        &bundle,
        serde_json::json!({ "waves": ["one-box", "zone-b"] }),
    );
    let err = run_deploy(&bad, &context("1"), &mut fleet).unwrap_err();
    assert_eq!(
        err.message(),
        "waves[1] = `zone-b`: the step is granted no target in this group (granted groups: one-box, zone-a, rest); add it to [stage.step.grants] targets"
    );
}

#[test]
fn no_granted_targets_is_a_missing_grant() {
    let mut fleet = FakeFleet::default();
    let bundle = Bundle::new("none", GOOD_APPSPEC);
    fleet
        .bundles
        .insert(bundle.dir.to_string_lossy().into_owned(), "sha256:x".into());
    let err = run_deploy(
        &config(&bundle, serde_json::json!({})),
        &context("1"),
        &mut fleet,
    )
    .unwrap_err();
    assert!(matches!(err, RunError::Denied(_)), "{err:?}");
}

#[test]
fn a_target_whose_record_cannot_be_written_fails_closed() {
    let mut fleet = FakeFleet::new(&[("one-box", &["box-1"])]);
    fleet.fail_write_for = Some("box-1".into());
    let report = deploy_version(&mut fleet, "1.0.0", GOOD_APPSPEC, serde_json::json!({}));
    assert_eq!(report.status, sluice_sdk::Status::Failed);
    assert!(
        report.summary.starts_with(
            "DownloadBundle failed on box-1: its record could not be written: box-1: disk full"
        ),
        "{}",
        report.summary
    );
}

mod appspec_files {
    use crate::appspec::{parse, parse_mode};

    fn error(text: &str) -> String {
        parse("dist/bundle/appspec.yml", text, &|_| true)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_keys_name_the_file_line_and_column() {
        let text = "version: 0.0\nos: linux\nhooks:\n  ValidateService:\n    - location: v.sh\n      timout: 30\n";
        let e = error(text);
        assert!(e.starts_with("dist/bundle/appspec.yml:6:7: "), "{e}");
        assert!(e.contains("unknown field `timout`"), "{e}");
    }

    #[test]
    fn windows_is_refused() {
        let e = error("version: 0.0\nos: windows\n");
        assert!(e.starts_with("dist/bundle/appspec.yml:2:"), "{e}");
        assert!(e.contains("this runner deploys to linux targets"), "{e}");
    }

    #[test]
    fn only_version_0_0_is_accepted() {
        assert!(error("version: 1.0\nos: linux\n").contains("the only AppSpec version is 0.0"));
        assert!(parse("a", "version: 0.0\nos: linux\n", &|_| true).is_ok());
    }

    #[test]
    fn modes_are_octal_digits_as_chmod_takes_them() {
        assert_eq!(parse_mode("750"), Ok(0o750));
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert!(parse_mode("789").is_err());
        assert!(parse_mode("u+x").is_err());
        assert!(parse_mode("7").is_err());
        let ok = "version: 0.0\nos: linux\npermissions:\n  - object: /opt/app\n    mode: 750\n  - object: /opt/app/conf\n    mode: \"0640\"\n    type: [file]\n";
        let spec = parse("a", ok, &|_| true).unwrap();
        assert_eq!(spec.permissions[0].mode, Some(0o750));
        assert_eq!(spec.permissions[1].mode, Some(0o640));
        assert_eq!(spec.permissions[1].kinds, ["file"]);
        let bad = "version: 0.0\nos: linux\npermissions:\n  - object: /opt/app\n    mode: 758\n";
        let e = error(bad);
        assert!(e.starts_with("dist/bundle/appspec.yml:5:"), "{e}");
        assert!(e.contains("mode `758` is not a numeric chmod mode"), "{e}");
    }

    #[test]
    fn acls_and_context_are_not_supported() {
        let e = error(
            "version: 0.0\nos: linux\npermissions:\n  - object: /opt/app\n    acls: [\"u:bob:rw\"]\n",
        );
        assert!(e.contains(":5:"), "{e}");
        assert!(e.contains("`acls` is not supported"), "{e}");
        let e = error(
            "version: 0.0\nos: linux\npermissions:\n  - object: /opt/app\n    context: {type: t}\n",
        );
        assert!(e.contains("`context` (SELinux) is not supported"), "{e}");
    }

    #[test]
    fn an_events_timeouts_must_fit_its_budget() {
        let e = error(
            "version: 0.0\nos: linux\nhooks:\n  BeforeInstall:\n    - location: a.sh\n      timeout: 3000\n    - location: b.sh\n      timeout: 900\n",
        );
        assert!(e.contains("add up to 3900 s"), "{e}");
        let e = error(
            "version: 0.0\nos: linux\nhooks:\n  BeforeInstall:\n    - location: a.sh\n      timeout: 4000\n",
        );
        assert!(e.contains("1 to 3600 seconds"), "{e}");
    }

    #[test]
    fn reserved_and_traffic_events_take_no_scripts() {
        let e = error("version: 0.0\nos: linux\nhooks:\n  Install:\n    - location: a.sh\n");
        assert!(e.contains("unknown field `Install`"), "{e}");
        let e =
            error("version: 0.0\nos: linux\nhooks:\n  BeforeAllowTraffic:\n    - location: a.sh\n");
        assert!(e.contains("load balancer"), "{e}");
    }

    #[test]
    fn a_hook_whose_script_is_missing_is_refused_with_its_line() {
        let text = "version: 0.0\nos: linux\nhooks:\n  ValidateService:\n    - location: scripts/validate.sh\n";
        let e = parse("dist/bundle/appspec.yml", text, &|_| false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "dist/bundle/appspec.yml:5:17: hooks.ValidateService: script `scripts/validate.sh` is not in the bundle"
        );
    }

    #[test]
    fn destinations_are_absolute() {
        let e =
            error("version: 0.0\nos: linux\nfiles:\n  - source: app\n    destination: opt/app\n");
        assert!(e.contains("must be an absolute path"), "{e}");
    }
}
