//! A pipeline file is checked whole before any step runs; each problem names the
//! file, line and column, and the run exits with code 2.

use crate::support::{Project, normalize};

fn validate(toml: &str) -> String {
    let p = Project::new(toml);
    let out = p.sluice(&["validate"]);
    out.expect_code(2);
    // `run` must refuse the same file the same way, before running anything.
    let run = p.sluice(&["run", "--format", "plain"]);
    run.expect_code(2);
    assert_eq!(run.stderr, out.stderr);
    assert!(!p.path().join(".sluice").exists(), "nothing ran");
    let builtins = regex::Regex::new(r"the built-in plugins are: [a-z, -]+").unwrap();
    builtins
        .replace_all(
            &normalize(&out.stderr, p.path()),
            "the built-in plugins are: [BUILTINS]",
        )
        .into_owned()
}

#[test]
fn toml_syntax_error() {
    insta::assert_snapshot!(validate("[pipeline]\nname = \"x\n"));
}

#[test]
fn unknown_key() {
    insta::assert_snapshot!(validate(
        r#"[pipeline]
name = "web"

[[stage]]
name = "build"

[[stage.step]]
id = "compile"
uses = "builtin:command"
with = { program = "echo" }
retrys = 2
"#
    ));
}

#[test]
fn unknown_plugin_and_bad_values() {
    insta::assert_snapshot!(validate(
        r#"[pipeline]
name = "web"

[[stage]]
name = "build"

[[stage.step]]
id = "compile"
uses = "builtin:compiler"
timeout = "ten minutes"
memory = "lots"

[[stage.step]]
id = "missing"
uses = "plugins/none.wasm"

[stage.step.grants]
net = ["localhost"]
exec = ["./build.sh"]
"#
    ));
}

#[test]
fn cycle_and_unknown_needs() {
    insta::assert_snapshot!(validate(
        r#"[pipeline]
name = "web"

[[stage]]
name = "test"

[[stage.step]]
id = "a"
uses = "builtin:command"
with = { program = "true" }
needs = ["c"]

[[stage.step]]
id = "b"
uses = "builtin:command"
with = { program = "true" }
needs = ["a"]

[[stage.step]]
id = "c"
uses = "builtin:command"
with = { program = "true" }
needs = ["b"]

[[stage]]
name = "deploy"

[[stage.step]]
id = "d"
uses = "builtin:command"
with = { program = "true" }
needs = ["a"]
"#
    ));
}

#[test]
fn with_is_checked_against_the_plugin_schema() {
    insta::assert_snapshot!(validate(
        r#"[pipeline]
name = "web"

[[stage]]
name = "build"

[[stage.step]]
id = "compile"
uses = "builtin:command"

[stage.step.with]
args = ["build", 7]
colour = "always"
"#
    ));
}

#[test]
fn duplicate_ids_and_empty_stage() {
    insta::assert_snapshot!(validate(
        r#"[pipeline]
name = "web"

[[stage]]
name = "build"

[[stage.step]]
id = "x"
uses = "builtin:command"
with = { program = "true" }

[[stage.step]]
id = "x"
uses = "builtin:command"
with = { program = "true" }

[[stage]]
name = "empty"
"#
    ));
}

#[test]
fn valid_file_is_accepted() {
    let p = Project::new(
        r#"[pipeline]
name = "web"

[[stage]]
name = "build"

[[stage.step]]
id = "compile"
uses = "builtin:command"
with = { program = "echo", args = ["hi"] }
"#,
    );
    let out = p.sluice(&["validate"]);
    out.expect_code(0);
    assert_eq!(
        out.stdout,
        "sluice.toml: pipeline `web` is valid (1 stages, 1 steps)\n"
    );
}

#[test]
fn values_beyond_the_documented_bounds() {
    let long_id = "x".repeat(300);
    insta::assert_snapshot!(validate(&format!(
        r#"[pipeline]
name = "web"

[[stage]]
name = "build"

[[stage.step]]
id = "forever"
uses = "builtin:command"
with = {{ program = "true" }}
timeout = "18446744073709551616s"
retry-delay = "2h"

[[stage.step]]
id = "ages"
uses = "builtin:command"
with = {{ program = "true" }}
timeout = "100000h"

[[stage.step]]
id = "{long_id}"
uses = "builtin:command"
with = {{ program = "true" }}

[[stage.step]]
id = "huge"
uses = "builtin:command"
with = {{ program = "true" }}
memory = "99999999TiB"

[[stage.step]]
id = "big"
uses = "builtin:command"
with = {{ program = "true" }}
memory = "300GiB"

[[stage.step]]
id = "native"
uses = "builtin:command"
with = {{ program = "true" }}
processes = 0
tmpdir-size = "1KiB"

[[stage.step]]
id = "native-max"
uses = "builtin:command"
with = {{ program = "true" }}
processes = 65537
tmpdir-size = "65GiB"
"#
    )));
}

#[test]
fn names_longer_than_64_characters() {
    insta::assert_snapshot!(validate(&format!(
        r#"[pipeline]
name = "{}"

[[stage]]
name = "{}"

[[stage.step]]
id = "ok"
uses = "builtin:command"
with = {{ program = "true" }}
"#,
        "p".repeat(65),
        "s".repeat(65)
    )));
}

#[test]
fn processes_and_tmpdir_size_within_bounds_are_accepted() {
    let p = Project::new(
        r#"[pipeline]
name = "web"

[[stage]]
name = "build"

[[stage.step]]
id = "compile"
uses = "builtin:command"
with = { program = "true" }
processes = 65536
tmpdir-size = "64GiB"
memory = "256GiB"
timeout = "7days"
retry-delay = "1h"
"#,
    );
    p.sluice(&["validate"]).expect_code(0);
}

/// `sluice <args>` in `p`, killed (and the test failed) if it takes 10 s or more.
fn within_10s(p: &Project, args: &[&str]) -> crate::support::Outcome {
    let started = std::time::Instant::now();
    let mut child = p
        .command(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sluice");
    while child.try_wait().expect("wait for sluice").is_none() {
        if started.elapsed() > std::time::Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`sluice {}` still ran after 10 s", args.join(" "));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    crate::support::Outcome::from_child(child)
}

#[test]
fn uses_must_be_a_regular_file_of_bounded_size() {
    let p = Project::new(
        r#"[pipeline]
name = "web"

[[stage]]
name = "build"

[[stage.step]]
id = "zeros"
uses = "/dev/zero"

[[stage.step]]
id = "fifo"
uses = "plugin.fifo"

[[stage.step]]
id = "folder"
uses = "plugins"

[[stage.step]]
id = "huge"
uses = "huge.wasm"
"#,
    );
    let made = std::process::Command::new("mkfifo")
        .arg(p.path().join("plugin.fifo"))
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    std::fs::create_dir(p.path().join("plugins")).unwrap();
    // Sparse: 600 MiB long, nothing on disk.
    std::fs::File::create(p.path().join("huge.wasm"))
        .unwrap()
        .set_len(600 << 20)
        .unwrap();
    let out = within_10s(&p, &["validate"]);
    out.expect_code(2);
    let run = within_10s(&p, &["run", "--format", "plain"]);
    run.expect_code(2);
    assert_eq!(run.stderr, out.stderr);
    for path in ["/dev/zero", "plugin.fifo"] {
        within_10s(&p, &["plugin", "info", path]).expect_code(2);
    }
    insta::assert_snapshot!(normalize(&out.stderr, p.path()));
}

#[test]
fn mistyped_keys_and_values_get_the_valid_ones_and_the_closest() {
    insta::assert_snapshot!(validate(
        r#"[pipeline]
name = "web"

[[stage]]
name = "check"

[[stage.step]]
id = "lint"
uses = "builtin:lint"
with = { tool = "clipy" }

[[stage.step]]
id = "compile"
uses = "builtin:command"
with = { program = "make", arg = ["all"], timeout = 5 }
"#
    ));
}
