//! `builtin:deploy` through the binary, for what is the plugin's own: an AppSpec it
//! refuses before anything is deployed, shown as people read it (file, line, column);
//! ApplicationStop running the previous revision's own script, read from its archive on
//! the target; and a redeploy of the same revision doing nothing. The deployments at
//! scale (waves, rollback over HTTP, minimum healthy hosts, resume) are in `deploy.rs`.

use crate::support::{Project, normalize};

/// A pipeline `hello` with one local target and a deploy step of `dist/bundle`.
const PIPELINE: &str = r#"
[pipeline]
name = "hello"

[[target]]
name = "box-1"
group = "one-box"
local = "fleet/box-1"

[[stage]]
name = "prod"

[[stage.step]]
id = "deploy"
uses = "builtin:deploy"
[stage.step.with]
bundle = "dist/bundle"
[stage.step.grants]
read = ["dist"]
targets = ["one-box"]
"#;

/// Run the pipeline with `appspec` as the bundle's `appspec.yml` (and the scripts it
/// may name); the step's failure as the console shows it.
fn refused(appspec: &str) -> String {
    let p = Project::new(PIPELINE);
    p.write("dist/bundle/appspec.yml", appspec);
    p.write("dist/bundle/scripts/start.sh", "#!/bin/sh\n");
    let out = p.run(&[]);
    out.expect_code(1);
    assert!(
        !p.path().join("fleet/box-1/var").exists(),
        "nothing may reach the target before the AppSpec is accepted"
    );
    let console = format!("{}{}", out.stdout, out.stderr);
    let line = console
        .lines()
        .find(|l| l.contains("FAIL prod/deploy"))
        .unwrap_or_else(|| panic!("no failed deploy step in\n{console}"));
    normalize(line.trim(), p.path())
}

#[test]
fn an_appspec_with_an_unknown_key_is_refused_naming_its_line_and_column() {
    insta::assert_snapshot!(refused(
        "version: 0.0\nos: linux\nhooks:\n  ApplicationStart:\n    - location: scripts/start.sh\n      timout: 30\n"
    ));
}

#[test]
fn an_appspec_for_windows_is_refused() {
    insta::assert_snapshot!(refused("version: 0.0\nos: windows\n"));
}

#[test]
fn an_appspec_hook_whose_script_is_missing_is_refused_before_deploying() {
    insta::assert_snapshot!(refused(
        "version: 0.0\nos: linux\nhooks:\n  ValidateService:\n    - location: scripts/validate.sh\n"
    ));
}

#[test]
fn an_appspec_mode_that_is_not_octal_is_refused() {
    insta::assert_snapshot!(refused(
        "version: 0.0\nos: linux\npermissions:\n  - object: /opt/hello\n    mode: 758\n"
    ));
}

/// Two local targets in two waves, deploying the bundle folder `dist/<version>`.
fn two_boxes(version: &str) -> String {
    format!(
        r#"
[pipeline]
name = "hello"

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
[stage.step.grants]
read = ["dist"]
targets = ["one-box", "zone-a"]
"#
    )
}

/// A revision whose ApplicationStop script is `stop` and logs who stopped it.
fn write_revision(p: &Project, version: &str, stop: &str) {
    p.write(
        &format!("dist/{version}/appspec.yml"),
        &format!(
            "version: 0.0\nos: linux\nfiles:\n  - source: app\n    destination: /opt/hello\nfile_exists_behavior: OVERWRITE\nhooks:\n  ApplicationStop:\n    - location: scripts/{stop}\n  ValidateService:\n    - location: scripts/validate.sh\n      timeout: 30\n"
        ),
    );
    p.write(&format!("dist/{version}/app/version"), version);
    p.write(
        &format!("dist/{version}/scripts/{stop}"),
        &format!(
            "echo \"{stop} of $SLUICE_REVISION ($LIFECYCLE_EVENT, $APPLICATION_NAME/$DEPLOYMENT_GROUP_NAME)\" >> \"$SLUICE_TARGET_ROOT/stops.log\"\n"
        ),
    );
    p.write(
        &format!("dist/{version}/scripts/validate.sh"),
        &format!("grep -qx {version} \"$SLUICE_TARGET_ROOT/opt/hello/version\"\n"),
    );
}

/// The deploy step's line of a run's console output.
fn deploy_line(p: &Project) -> String {
    let out = p.run(&[]);
    let console = format!("{}{}", out.stdout, out.stderr);
    let line = console
        .lines()
        .find(|l| l.contains(" prod/deploy "))
        .unwrap_or_else(|| panic!("no deploy step in\n{console}"));
    normalize(line.trim(), p.path())
}

#[test]
fn application_stop_runs_the_previous_revisions_own_script_and_a_redeploy_is_a_no_op() {
    let p = Project::new(&two_boxes("v1"));
    write_revision(&p, "v1", "stop.sh");
    write_revision(&p, "v2", "stop-v2.sh");
    let mut lines = vec![deploy_line(&p)];
    p.write("sluice.toml", &two_boxes("v2"));
    lines.push(deploy_line(&p));
    lines.push(deploy_line(&p));
    let stops = std::fs::read_to_string(p.path().join("fleet/box-1/stops.log")).unwrap();
    let served = std::fs::read_to_string(p.path().join("fleet/box-2/opt/hello/version")).unwrap();
    insta::assert_snapshot!(format!(
        "{}\n--- box-1 stops.log\n{stops}--- box-2 /opt/hello/version\n{served}",
        lines.join("\n")
    ));
}
