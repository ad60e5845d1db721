//! `builtin:deploy` through the binary, for what is the plugin's own: an AppSpec it
//! refuses before anything is deployed, shown as people read it (file, line, column).
//! The deployments themselves (waves, rollback over HTTP, minimum healthy hosts,
//! resume) are in `deploy.rs`.

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
