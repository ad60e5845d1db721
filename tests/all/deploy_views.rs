//! What people see of deployments, through the binary: `sluice status`, `sluice
//! explain`, `sluice history` and `sluice targets` (text snapshot-tested, JSON checked),
//! all read from the state store.
//!
//! The recorded tests run a pipeline once, then write a deployment, its failure on one
//! target, a bake between waves and the rollback that followed straight into the run's
//! store with the `Store` API (as `builtin:deploy` through the host would), so each view
//! is checked against a known record.

use std::path::Path;

use sluice::state::{HostState, NewDeployment, RevisionRow, Store, TargetRecordRow};

use crate::support::{Outcome, Project, normalize};

const PIPELINE: &str = r#"
[pipeline]
name = "shop"

[[target]]
name = "box-1"
group = "one-box"
local = "fleet/box-1"
url = "http://127.0.0.1:18081"

[[target]]
name = "box-2"
group = "zone-a"
local = "fleet/box-2"
url = "http://127.0.0.1:18082"

[[target]]
name = "box-3"
group = "rest"
local = "fleet/box-3"

[[stage]]
name = "prod"
[[stage.step]]
id = "build"
uses = "builtin:command"
with = { program = "true" }
[stage.step.grants]
exec = ["true"]
"#;

const OLD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const NEW: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// 2026-11-30T08:00:00Z plus `seconds`.
fn t(seconds: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_796_025_600 + seconds).unwrap()
}

fn revision(run: &str, deployment: &str, label: &str, digest: &str) -> RevisionRow {
    RevisionRow {
        deployment_id: deployment.into(),
        label: label.into(),
        digest: digest.into(),
        archive: format!("/opt/sluice/{deployment}"),
        installed: vec!["/srv/web/server".into()],
        run_id: run.into(),
    }
}

fn deployment(
    run: &str,
    kind: &str,
    of: Option<&str>,
    label: &str,
    digest: &str,
    targets: &[&str],
) -> NewDeployment {
    NewDeployment {
        run_id: run.into(),
        stage: "prod".into(),
        step: "deploy".into(),
        application: "shop".into(),
        deployment_group: "fleet".into(),
        label: label.into(),
        digest: digest.into(),
        kind: kind.into(),
        rollback_of: of.map(str::to_string),
        config: "OneAtATime (minimum 2 of 3 healthy)".into(),
        targets: targets.iter().map(|t| t.to_string()).collect(),
    }
}

const LIFECYCLE: [&str; 7] = [
    "ApplicationStop",
    "DownloadBundle",
    "BeforeInstall",
    "Install",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
];

/// Record in `store`, for run `run`: web 1.2.0 deployed to box-1 (healthy), a bake
/// after wave one-box, box-2 failing ValidateService, then the rollback of both to
/// 1.1.0, with the target records as they end.
fn record_failed_deployment_and_rollback(store: &Store, run: &str) {
    for target in ["box-1", "box-2"] {
        let old = revision("r0", "d-r0-1", "1.1.0", OLD);
        store
            .write_target_record(
                &TargetRecordRow {
                    application: "shop".into(),
                    target: target.into(),
                    state: HostState::Healthy,
                    current: Some(old.clone()),
                    last_good: Some(old),
                    updated_at: t(0),
                },
                t(0),
            )
            .unwrap();
    }
    let all = ["box-1", "box-2", "box-3"];
    let d = store
        .begin_deployment(&deployment(run, "deploy", None, "1.2.0", NEW, &all), t(1))
        .unwrap();
    for e in LIFECYCLE {
        store
            .record_deployment_event(&d, "box-1", e, "succeeded", "", t(2))
            .unwrap();
    }
    store
        .record_deployment_event(
            &d,
            "",
            "Bake",
            "started",
            "after wave one-box: 30s and 3 positive from web-health",
            t(3),
        )
        .unwrap();
    store
        .record_deployment_event(
            &d,
            "",
            "Bake",
            "succeeded",
            "after wave one-box: 30s, 3 positive, 0 negative",
            t(33),
        )
        .unwrap();
    for e in &LIFECYCLE[..6] {
        store
            .record_deployment_event(&d, "box-2", e, "succeeded", "", t(34))
            .unwrap();
    }
    store
        .record_deployment_event(
            &d,
            "box-2",
            "ValidateService",
            "failed",
            "scripts/validate.sh exited with code 3",
            t(35),
        )
        .unwrap();
    store
        .finish_deployment(&d, "failed", "ValidateService failed on box-2", t(35))
        .unwrap();
    let r = store
        .begin_deployment(
            &deployment(run, "rollback", Some(&d), "1.1.0", OLD, &["box-1", "box-2"]),
            t(36),
        )
        .unwrap();
    for target in ["box-1", "box-2"] {
        for e in LIFECYCLE {
            store
                .record_deployment_event(&r, target, e, "succeeded", "", t(37))
                .unwrap();
        }
        let back = revision(run, &r, "1.1.0", OLD);
        store
            .write_target_record(
                &TargetRecordRow {
                    application: "shop".into(),
                    target: target.into(),
                    state: HostState::Healthy,
                    current: Some(back.clone()),
                    last_good: Some(revision("r0", "d-r0-1", "1.1.0", OLD)),
                    updated_at: t(38),
                },
                t(38),
            )
            .unwrap();
    }
    store
        .finish_deployment(&r, "succeeded", "box-1, box-2 are back on 1.1.0", t(39))
        .unwrap();
}

/// Times of the run itself change from run to run; the recorded ones do not, but are
/// written the same way.
fn stable(text: &str, project: &Path) -> String {
    let text = normalize(text, project);
    let iso = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").unwrap();
    let short = regex::Regex::new(r"\d{4}-\d\d-\d\d \d\d:\d\dZ").unwrap();
    let text = iso.replace_all(&text, "[TIME]");
    let text = short.replace_all(&text, "[TIME]");
    let user = regex::Regex::new(r"(started: +\[TIME\]) by \S+").unwrap();
    user.replace_all(&text, "$1 by [USER]").into_owned()
}

/// A project that ran once, with the deployment story recorded for that run.
fn recorded_project() -> (Project, String) {
    let p = Project::new(PIPELINE);
    p.run(&[]).expect_code(0);
    let run = p.run_record()["run_id"].as_str().unwrap().to_string();
    let store = Store::open_existing(&p.path().join(".sluice/state.db")).unwrap();
    record_failed_deployment_and_rollback(&store, &run);
    (p, run)
}

#[test]
fn status_shows_a_failed_deployment_its_failing_target_bake_and_rollback() {
    let (p, run) = recorded_project();
    let out = p.sluice(&["status", &run]);
    out.expect_code(0);
    insta::assert_snapshot!(stable(&out.stdout, p.path()));
    let json = p.sluice(&["status", &run, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let d = &v["deployments"];
    assert_eq!(d[0]["kind"], "deploy");
    assert_eq!(d[0]["state"], "failed");
    assert_eq!(d[0]["failure"]["target"], "box-2");
    assert_eq!(d[0]["failure"]["event"], "ValidateService");
    assert_eq!(d[0]["rolled_back_by"]["state"], "succeeded");
    assert_eq!(d[1]["kind"], "rollback");
    assert_eq!(d[0]["bakes"][0]["state"], "succeeded");
}

#[test]
fn explain_shows_the_deployments_of_a_run() {
    let (p, run) = recorded_project();
    let out = p.sluice(&["explain", &run]);
    out.expect_code(0);
    insta::assert_snapshot!(stable(&out.stdout, p.path()));
    let json = p.sluice(&["explain", &run, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        v["deployments"][1]["rollback_of"],
        v["deployments"][0]["id"]
    );
}

#[test]
fn history_marks_the_runs_that_deployed_and_rolled_back() {
    let (p, _run) = recorded_project();
    // A second run that deployed nothing has no marker.
    p.run(&[]).expect_code(0);
    let out = p.sluice(&["history"]);
    out.expect_code(0);
    insta::assert_snapshot!(stable(&out.stdout, p.path()));
    let json = p.sluice(&["history", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v[0]["deployed"], false);
    assert_eq!(v[1]["deployed"], true);
    assert_eq!(v[1]["rolled_back"], true);
}

#[test]
fn targets_lists_the_fleet_with_each_record_and_the_never_deployed() {
    let (p, _run) = recorded_project();
    let out = p.sluice(&["targets"]);
    out.expect_code(0);
    insta::assert_snapshot!(stable(&out.stdout, p.path()));
    let json = p.sluice(&["targets", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["targets"][0]["records"][0]["current"]["label"], "1.1.0");
    assert_eq!(v["targets"][2]["deployed"], false);
    let other = p.sluice(&["targets", "--application", "other"]);
    assert_eq!(
        other.stdout.matches("never deployed to").count(),
        3,
        "{}",
        other.stdout
    );
}

#[test]
fn targets_of_a_pipeline_never_run_says_so_without_creating_a_store() {
    let p = Project::new(PIPELINE);
    let out = p.sluice(&["targets"]);
    out.expect_code(0);
    assert_eq!(
        out.stdout.matches("never deployed to").count(),
        3,
        "{}",
        out.stdout
    );
    assert!(!p.path().join(".sluice/state.db").exists());
}

/// A pipeline that deploys `bundles/<version>` with `builtin:deploy` to the three local
/// targets, one group per wave, one at a time.
fn deploying(version: &str) -> String {
    format!(
        r#"{PIPELINE}
[[stage.step]]
id = "deploy"
uses = "builtin:deploy"
needs = ["build"]
[stage.step.with]
bundle = "bundles/{version}"
application = "shop"
[stage.step.grants]
read = ["bundles"]
targets = ["one-box", "zone-a", "rest"]
"#
    )
}

/// A revision whose hooks do nothing but exit: 0, or `validate_exit` for ValidateService.
fn write_bundle(p: &Project, version: &str, validate_exit: u8) {
    let dir = format!("bundles/{version}");
    p.write(
        &format!("{dir}/appspec.yml"),
        "version: 0.0\nos: linux\nhooks:\n  ApplicationStart:\n    - location: start.sh\n  ValidateService:\n    - location: validate.sh\n",
    );
    p.write(&format!("{dir}/start.sh"), "exit 0\n");
    p.write(
        &format!("{dir}/validate.sh"),
        &format!("exit {validate_exit}\n"),
    );
}

/// The deployment lines of a run's output, with their durations blotted out.
fn deploy_lines(stderr: &str, project: &Path) -> String {
    let took = regex::Regex::new(r"(\d+ events?), \d+(\.\d+)?(ms|s|m\d+s)\)").unwrap();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            t.starts_with("DEPLOY ")
                || t.starts_with("ROLLBACK ")
                || t.starts_with("box-")
                || t.starts_with("bake")
                || t.starts_with("baking")
                || t.starts_with("| ")
        })
        .collect();
    let text = normalize(&lines.join("\n"), project);
    took.replace_all(&text, "$1, [TIME])").into_owned()
}

#[test]
fn a_real_deployment_and_its_rollback_in_the_live_lines_status_history_targets_and_summary() {
    let p = Project::new(&deploying("1.0.0"));
    write_bundle(&p, "1.0.0", 0);
    write_bundle(&p, "1.1.0", 3);
    let first = p.run(&[]);
    first.expect_code(0);
    let second_pipeline = deploying("1.1.0");
    p.write("sluice.toml", &second_pipeline);
    // The second run inside GitHub Actions: its lines go to stdout, and the job
    // summary gets the deployments.
    let job_summary = p.path().join("job-summary.md");
    let second = Outcome::of(
        p.command(&["run", "--format", "plain"])
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", &job_summary),
    );
    second.expect_code(1);
    insta::assert_snapshot!(
        "real_deploy_lines",
        format!(
            "--- first run\n{}\n--- second run\n{}",
            deploy_lines(&first.stderr, p.path()),
            deploy_lines(&second.stdout, p.path())
        )
    );
    let md = std::fs::read_to_string(&job_summary).unwrap();
    let section = &md[md.find("### Deployments").expect("a deployments section")..];
    insta::assert_snapshot!("real_job_summary", stable(section, p.path()));
    let run = p.run_record()["run_id"].as_str().unwrap().to_string();
    let status = p.sluice(&["status", &run]);
    status.expect_code(0);
    let deployments: String = status
        .stdout
        .lines()
        .skip_while(|l| *l != "deployments:")
        .take_while(|l| !l.starts_with("failed step"))
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!("real_status_deployments", stable(&deployments, p.path()));
    let history = p.sluice(&["history", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    assert_eq!(
        (v[0]["deployed"].clone(), v[0]["rolled_back"].clone()),
        (true.into(), true.into())
    );
    assert_eq!(
        (v[1]["deployed"].clone(), v[1]["rolled_back"].clone()),
        (true.into(), false.into())
    );
    let targets = p.sluice(&["targets"]);
    targets.expect_code(0);
    insta::assert_snapshot!("real_targets", stable(&targets.stdout, p.path()));
    // Every target is back on 1.0.0, recorded healthy.
    let json = p.sluice(&["targets", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    for t in v["targets"].as_array().unwrap() {
        let r = &t["records"][0];
        assert_eq!(r["state"], "healthy", "{t:#}");
        assert_eq!(r["current"]["label"], "1.0.0", "{t:#}");
    }
    // The run's summary.json lists the failed deployment and its rollback.
    let report = p.run_record()["run_dir"]
        .as_str()
        .map(|d| std::fs::read_to_string(Path::new(d).join("reports/summary.json")).unwrap());
    let summary: serde_json::Value = serde_json::from_str(&report.unwrap()).unwrap();
    assert_eq!(summary["rollbacks"], 1);
    let kinds: Vec<(&str, &str)> = summary["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["kind"].as_str().unwrap(), d["state"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("deploy", "failed"), ("rollback", "succeeded")]);
    assert_eq!(
        summary["deployments"][0]["failure"]["event"],
        "ValidateService"
    );
}
