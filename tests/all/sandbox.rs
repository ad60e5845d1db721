//! Each sandbox attack, made by a real component or by a native program it starts,
//! must fail with a message that names the missing grant, and must not get through.

use crate::support::{Project, output, tcp_listener};

/// A pipeline with one step, `with` and `grants` as TOML inline tables' bodies.
fn one_step(with: &str, grants: &str) -> Project {
    let p = Project::new(&format!(
        r#"
[pipeline]
name = "sandbox"

[[stage]]
name = "attack"

[[stage.step]]
id = "attack"
uses = "{{adversary}}"
with = {{ {with} }}
timeout = "20s"

[stage.step.grants]
{grants}
"#
    ));
    p.write("src/inside.txt", "inside the grant");
    p
}

#[test]
fn reading_a_granted_file_works() {
    let p = one_step(
        r#"mode = "read", path = "src/inside.txt""#,
        r#"read = ["src"]"#,
    );
    p.run(&[]).expect_code(0);
    assert_eq!(output(&p.step("attack"), "content"), "inside the grant");
}

#[test]
fn reading_outside_grants_is_denied() {
    let p = one_step(
        r#"mode = "read", path = "/etc/passwd""#,
        r#"read = ["src"]"#,
    );
    let out = p.run(&[]);
    out.expect_code(1);
    let step = p.step("attack");
    assert!(
        step["summary"].as_str().unwrap().starts_with("denied: "),
        "{step:#}"
    );
    assert!(
        !out.stderr.contains("root:x:0:0"),
        "the file's content must not leak: {}",
        out.stderr
    );
}

#[test]
fn denied_read_names_the_missing_grant() {
    let p = one_step(
        r#"mode = "sdk-read", path = "/etc/passwd""#,
        r#"read = ["src"]"#,
    );
    p.run(&[]).expect_code(1);
    let summary = p.step("attack")["summary"].as_str().unwrap().to_string();
    assert!(
        summary.starts_with(
            "denied: cannot read /etc/passwd: the step has no `read` grant covering it"
        ),
        "{summary}"
    );
}

#[test]
fn reading_through_dotdot_is_denied() {
    let p = one_step(
        r#"mode = "read", path = "src/../secret.txt""#,
        r#"read = ["src"]"#,
    );
    p.write("secret.txt", "top secret");
    let out = p.run(&[]);
    out.expect_code(1);
    assert!(!out.stderr.contains("top secret"), "{}", out.stderr);
    assert!(
        p.step("attack")["summary"]
            .as_str()
            .unwrap()
            .starts_with("denied: ")
    );
}

#[test]
fn reading_through_a_symlink_out_of_the_grant_is_denied() {
    let p = one_step(
        r#"mode = "read", path = "src/link/secret.txt""#,
        r#"read = ["src"]"#,
    );
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "top secret").unwrap();
    std::os::unix::fs::symlink(outside.path(), p.path().join("src/link")).unwrap();
    let out = p.run(&[]);
    out.expect_code(1);
    assert!(!out.stderr.contains("top secret"), "{}", out.stderr);
}

#[test]
fn writing_to_a_read_grant_is_denied() {
    let p = one_step(
        r#"mode = "write", path = "src/inside.txt", content = "overwritten""#,
        r#"read = ["src"]"#,
    );
    p.run(&[]).expect_code(1);
    assert_eq!(
        std::fs::read_to_string(p.path().join("src/inside.txt")).unwrap(),
        "inside the grant"
    );
}

#[test]
fn writing_to_a_write_grant_works() {
    let p = one_step(
        r#"mode = "write", path = "out/result.txt", content = "made by the step""#,
        r#"write = ["out"]"#,
    );
    p.run(&[]).expect_code(0);
    assert_eq!(
        std::fs::read_to_string(p.path().join("out/result.txt")).unwrap(),
        "made by the step"
    );
}

#[test]
fn env_not_granted_is_invisible() {
    let p = one_step(r#"mode = "env", name = "HOME""#, "");
    let out = p.run(&[]);
    out.expect_code(1);
    assert!(
        out.stderr
            .contains("environment variable HOME is not granted"),
        "{}",
        out.stderr
    );
}

#[test]
fn env_granted_is_visible() {
    let p = one_step(r#"mode = "env", name = "HOME""#, r#"env = ["HOME"]"#);
    p.run(&[]).expect_code(0);
    assert_eq!(
        output(&p.step("attack"), "value"),
        std::env::var("HOME").unwrap()
    );
}

#[test]
fn exec_not_granted_names_the_grant() {
    let p = one_step(
        r#"mode = "exec", program = "uname", args = ["-a"]"#,
        r#"exec = ["echo"]"#,
    );
    let out = p.run(&[]);
    out.expect_code(1);
    let summary = p.step("attack")["summary"].as_str().unwrap().to_string();
    assert!(
        summary.contains("not in the step's `exec` grant (granted: echo)"),
        "{summary}"
    );
    assert!(
        summary.contains(r#"add "uname" under [stage.step.grants] exec"#),
        "{summary}"
    );
}

#[test]
fn exec_granted_runs_and_streams_output() {
    let p = one_step(
        r#"mode = "exec", program = "echo", args = ["hello from echo"]"#,
        r#"exec = ["echo"]"#,
    );
    p.run(&[]).expect_code(0);
    assert_eq!(
        output(&p.step("attack"), "stdout").trim(),
        "hello from echo"
    );
    assert!(
        p.step_log("attack").contains("[exec] hello from echo"),
        "{}",
        p.step_log("attack")
    );
}

#[test]
fn native_program_cannot_write_outside_grants() {
    // The host's /tmp is not the program's (its /tmp is private), the project is only
    // readable, and system folders are read-only.
    let host_tmp = std::env::temp_dir().join(format!("sluice-escape-{}", std::process::id()));
    let _ = std::fs::remove_file(&host_tmp);
    let script = format!(
        "echo escaped > {}; echo tmp=$?; echo escaped > escaped.txt; echo project=$?; echo escaped > /usr/sluice-escape; echo usr=$?",
        host_tmp.display()
    );
    let p = one_step(
        &format!(r#"mode = "exec", program = "sh", args = ["-c", "{script}"]"#),
        r#"exec = ["sh"]
read = ["."]
write = ["out"]"#,
    );
    p.run(&[]).expect_code(0);
    assert!(
        !host_tmp.exists(),
        "a confined program wrote {}",
        host_tmp.display()
    );
    assert!(!p.path().join("escaped.txt").exists());
    assert!(!std::path::Path::new("/usr/sluice-escape").exists());
    let out = output(&p.step("attack"), "stdout");
    assert!(out.contains("tmp=0"), "its private /tmp is writable: {out}");
    assert!(out.contains("project=2") && out.contains("usr=2"), "{out}");
    assert!(
        p.step_log("attack").contains("Read-only file system"),
        "{}",
        p.step_log("attack")
    );
}

#[test]
fn native_program_can_write_inside_its_write_grant() {
    let p = one_step(
        r#"mode = "exec", program = "sh", args = ["-c", "echo built > out/artifact.txt"]"#,
        r#"exec = ["sh"]
read = ["."]
write = ["out"]"#,
    );
    p.run(&[]).expect_code(0);
    assert_eq!(
        std::fs::read_to_string(p.path().join("out/artifact.txt")).unwrap(),
        "built\n"
    );
}

#[test]
fn native_program_cannot_read_outside_grants() {
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("key"), "private key material").unwrap();
    let script = format!("cat {}/key", secret.path().display());
    let p = one_step(
        &format!(r#"mode = "exec", program = "sh", args = ["-c", "{script}"]"#),
        r#"exec = ["sh"]
read = ["."]"#,
    );
    let out = p.run(&[]);
    out.expect_code(1);
    assert!(!p.step_log("attack").contains("private key material"));
    assert!(!out.stderr.contains("private key material"));
}

#[test]
fn plugin_connects_only_to_granted_ports() {
    let (_granted, granted_port) = tcp_listener();
    let (_other, other_port) = tcp_listener();
    let grants = format!(r#"net = ["127.0.0.1:{granted_port}"]"#);
    let ok = one_step(
        &format!(r#"mode = "connect", addr = "127.0.0.1:{granted_port}""#),
        &grants,
    );
    ok.run(&[]).expect_code(0);
    let denied = one_step(
        &format!(r#"mode = "connect", addr = "127.0.0.1:{other_port}""#),
        &grants,
    );
    denied.run(&[]).expect_code(1);
    let log = denied.step_log("attack");
    assert!(
        log.contains(&format!(
            "denied TCP connection to 127.0.0.1:{other_port}: not in the step's `net` grant"
        )),
        "{log}"
    );
}

#[test]
fn plugin_without_net_grant_has_no_network() {
    let (_l, port) = tcp_listener();
    let p = one_step(
        &format!(r#"mode = "connect", addr = "127.0.0.1:{port}""#),
        "",
    );
    p.run(&[]).expect_code(1);
}

#[test]
fn native_program_connects_only_to_granted_ports() {
    let (_granted, granted_port) = tcp_listener();
    let (_other, other_port) = tcp_listener();
    let grants = format!(
        r#"exec = ["bash"]
net = ["127.0.0.1:{granted_port}"]"#
    );
    let connect = |port: u16| {
        format!(
            r#"mode = "exec", program = "bash", args = ["-c", "exec 3<>/dev/tcp/127.0.0.1/{port}"]"#
        )
    };
    let ok = one_step(&connect(granted_port), &grants);
    ok.run(&[]).expect_code(0);
    let denied = one_step(&connect(other_port), &grants);
    denied.run(&[]).expect_code(1);
    assert!(
        denied.step_log("attack").contains("Permission denied"),
        "{}",
        denied.step_log("attack")
    );
}

#[test]
fn native_program_without_net_grant_has_no_network() {
    let (_l, port) = tcp_listener();
    let p = one_step(
        &format!(
            r#"mode = "exec", program = "bash", args = ["-c", "exec 3<>/dev/tcp/127.0.0.1/{port}"]"#
        ),
        r#"exec = ["bash"]"#,
    );
    p.run(&[]).expect_code(1);
}

#[test]
fn killing_a_program_never_empties_a_granted_folder_under_tmp() {
    // The project lives under the machine's /tmp (tempfile's default), so its granted
    // folders are mounted below the sandbox's own /tmp, which is emptied when a
    // program is killed. What is under a grant is the user's and must survive.
    let p = Project::new(
        r#"
[pipeline]
name = "keep"

[[stage]]
name = "work"

[[stage.step]]
id = "slow"
uses = "builtin:command"
with = { program = "sleep", args = ["30"], timeout = "1s" }

[stage.step.grants]
exec = ["sleep"]
read = ["src"]
write = ["out"]
"#,
    );
    assert!(
        p.path().starts_with(std::env::temp_dir()),
        "the project is under /tmp"
    );
    p.write("src/main.rs", "fn main() {}");
    p.write("out/kept.txt", "written before the run");
    p.run(&[]).expect_code(1);
    assert_eq!(
        std::fs::read_to_string(p.path().join("src/main.rs")).unwrap(),
        "fn main() {}"
    );
    assert_eq!(
        std::fs::read_to_string(p.path().join("out/kept.txt")).unwrap(),
        "written before the run"
    );
}
