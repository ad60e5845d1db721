//! The command line itself: listing plugins, describing one, usage errors.

use crate::support::{Project, normalize};

#[test]
fn plugins_lists_the_builtins() {
    let p = Project::new("");
    let out = p.sluice(&["plugins"]);
    out.expect_code(0);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("builtin:command ")),
        "{}",
        out.stdout
    );
    let json = p.sluice(&["plugins", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let command = v
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "command")
        .unwrap();
    assert_eq!(command["capabilities"], serde_json::json!(["exec"]));
    assert!(command["digest"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn plugin_info_shows_the_schema() {
    let p = Project::new("");
    let out = p.sluice(&["plugin", "info", "builtin:command"]);
    out.expect_code(0);
    let text = regex::Regex::new(r"sha256:[0-9a-f]{64}")
        .unwrap()
        .replace_all(&out.stdout, "sha256:[DIGEST]");
    let text = regex::Regex::new(r"version:      \S+")
        .unwrap()
        .replace_all(&text, "version:      [VERSION]");
    insta::assert_snapshot!(normalize(&text, p.path()));
}

#[test]
fn plugin_info_of_a_component_file() {
    let p = Project::new("");
    let out = p.sluice(&["plugin", "info", "--json", crate::support::adversary()]);
    out.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["name"], "adversary");
}

#[test]
fn unknown_plugin_is_a_usage_error() {
    let p = Project::new("");
    let out = p.sluice(&["plugin", "info", "builtin:nope"]);
    out.expect_code(2);
    let listed = out
        .stderr
        .split("unknown plugin `builtin:nope`; the built-in plugins are: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{}", out.stderr));
    for name in ["build", "command", "lint", "unit-test"] {
        assert!(
            listed.split([',', ' ', '\n']).any(|n| n == name),
            "{name} not listed: {listed}"
        );
    }
}

#[test]
fn missing_pipeline_file_is_a_usage_error() {
    let p = Project::new("");
    std::fs::remove_file(p.path().join("sluice.toml")).unwrap();
    let out = p.sluice(&["run"]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("cannot read pipeline file sluice.toml"),
        "{}",
        out.stderr
    );
}

#[test]
fn bad_flag_is_a_usage_error() {
    let p = Project::new("");
    p.sluice(&["run", "--jobs", "many"]).expect_code(2);
}
