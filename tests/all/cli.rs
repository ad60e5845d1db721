//! The command line itself: listing plugins, describing one, usage errors.

use std::os::unix::fs::PermissionsExt;

use crate::support::{Outcome, Project, normalize};

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

/// A pipe whose reading end is already closed: every write to it fails with EPIPE.
fn closed_pipe() -> std::process::Stdio {
    let (reader, writer) = std::io::pipe().expect("create a pipe");
    drop(reader);
    writer.into()
}

fn many_steps(n: usize) -> String {
    let mut toml = String::from("[pipeline]\nname = \"many\"\n\n[[stage]]\nname = \"all\"\n");
    for i in 0..n {
        toml.push_str(&format!(
            "\n[[stage.step]]\nid = \"s{i}\"\nuses = \"{{adversary}}\"\nwith = {{ mode = \"log\" }}\n"
        ));
    }
    toml
}

/// Every step of the last run passed and its record is complete.
fn all_recorded(p: &Project, n: usize) {
    let run = p.run_record();
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps.len(), n, "{run:#}");
    assert!(steps.iter().all(|s| s["status"] == "passed"), "{run:#}");
    let reports = std::path::Path::new(run["run_dir"].as_str().unwrap()).join("reports");
    assert!(reports.join("junit.xml").is_file());
    assert!(reports.join("summary.json").is_file());
}

#[test]
fn broken_pipe_ends_quietly() {
    let p = Project::new(&many_steps(30));
    let bin = crate::support::sluice_bin();
    // Short commands whose stdout is gone end with the code they would have had.
    for args in [
        &["plugins"][..],
        &["plugins", "--json"],
        &["plugin", "info", "builtin:command"],
        &["plugin", "info", "--json", "builtin:command"],
        &["validate"],
    ] {
        let out = Outcome::of(p.command(args).stdout(closed_pipe()));
        out.expect_code(0);
        assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
        assert!(out.stderr.is_empty(), "{args:?}: {}", out.stderr);
    }
    // ... and so do errors whose stderr is gone.
    let out = Outcome::of(
        p.command(&["plugin", "info", "builtin:nope"])
            .stdout(closed_pipe())
            .stderr(closed_pipe()),
    );
    out.expect_code(2);
    // A run whose output is gone still runs every step, records everything and ends
    // with its own code.
    for format in ["plain", "json", "tty"] {
        let out = Outcome::of(
            p.command(&["run", "--format", format])
                .stdout(closed_pipe())
                .stderr(closed_pipe()),
        );
        out.expect_code(0);
        all_recorded(&p, 30);
    }
    // The same through real pipelines into `head`, checking sluice's own status.
    let cache = crate::support::cache_dir();
    for (command, stream) in [
        ("plugins", "1"),
        ("plugins --json", "1"),
        ("plugin info builtin:command", "1"),
        ("validate", "1"),
        ("run --format json", "1"),
        ("run --format plain", "2"),
        ("run --format plain --verbose", "2"),
    ] {
        // Sluice's own status, not head's; its stderr is kept in a file when only
        // stdout goes into the pipe.
        let script = if stream == "1" {
            format!(
                "'{bin}' {command} 2>stderr.txt | head -c 1 >/dev/null; status=${{PIPESTATUS[0]}}; cat stderr.txt >&2; exit $status"
            )
        } else {
            format!(
                "'{bin}' {command} 2>&1 >/dev/null | head -c 1 >/dev/null; exit ${{PIPESTATUS[0]}}"
            )
        };
        let out = Outcome::of(
            std::process::Command::new("bash")
                .args(["-c", &script])
                .current_dir(p.path())
                .env("SLUICE_CACHE_DIR", &cache),
        );
        assert_eq!(out.code, 0, "`{command}`: {}", out.stderr);
        assert!(
            !out.stderr.contains("panicked"),
            "`{command}`: {}",
            out.stderr
        );
        if command.starts_with("run") {
            all_recorded(&p, 30);
        }
    }
}

#[test]
fn runtime_start_failure_exits_3() {
    crate::support::require_root("to run sluice as user nobody with a tiny process limit");
    // A folder nobody (uid 65534) can enter, with a cache folder nobody owns.
    let p = Project::new(
        r#"[pipeline]
name = "threads"

[[stage]]
name = "one"

[[stage.step]]
id = "a"
uses = "builtin:command"
with = { program = "true" }
"#,
    );
    std::fs::set_permissions(p.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cache = p.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&cache, Some(65534), Some(65534)).unwrap();
    // A copy nobody can reach: the build folder may sit under a private one (a clone
    // in a `mktemp -d` folder).
    let bin = p.path().join("sluice");
    std::fs::copy(crate::support::sluice_bin(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    // With 1 to 4 processes allowed, the runtime's workers, the epoch ticker, the
    // thread that compiles a plugin or the compiler's own threads cannot start.
    let mut seen = Vec::new();
    let cases = (1..=4)
        .map(|l| (l, "plugins"))
        .chain((1..=4).map(|l| (l, "validate")));
    for (limit, command) in cases {
        let out = Outcome::of(
            std::process::Command::new("setpriv")
                .args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "bash",
                    "-c",
                    &format!("ulimit -u {limit}; exec \"$0\" {command}"),
                    bin.to_str().unwrap(),
                ])
                .current_dir(p.path())
                .env("SLUICE_CACHE_DIR", &cache),
        );
        assert_eq!(out.code, 3, "{command}, ulimit -u {limit}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{command}, ulimit -u {limit}: one line: {}",
            out.stderr
        );
        assert!(lines[0].starts_with("error: "), "{}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        seen.push(lines[0].to_string());
    }
    assert!(
        seen[0].starts_with("error: cannot start the async runtime: "),
        "{seen:#?}"
    );
}
