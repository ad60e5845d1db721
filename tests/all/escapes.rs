//! Regression tests for the ways out of the sandbox that a hostile step (a plugin, or
//! a native program it is granted) found, each named after what it guards. They run
//! the real binary; every process a test starts is checked gone at its end.

use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Project, cache_dir, output, sluice_bin, tcp_listener};

/// A pipeline of one adversary step with `with`, `grants` and `extra` step keys (a
/// 20 s timeout unless `extra` sets one).
fn one_step(with: &str, grants: &str, extra: &str) -> Project {
    let timeout = if extra.contains("timeout") {
        ""
    } else {
        "timeout = \"20s\""
    };
    Project::new(&format!(
        r#"
[pipeline]
name = "escapes"

[[stage]]
name = "attack"

[[stage.step]]
id = "attack"
uses = "{{adversary}}"
with = {{ {with} }}
{timeout}
{extra}

[stage.step.grants]
{grants}
"#
    ))
}

/// `with` for running `script` with bash.
fn bash(script: &str) -> String {
    format!(
        r#"mode = "exec", program = "bash", args = ["-c", {}]"#,
        toml_string(script)
    )
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let out = Command::new("pgrep")
        .args(["-af", marker])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("pgrep"))
        .map(str::to_string)
        .collect()
}

/// Wait up to `within` for no process to carry `marker`; kill any left (by PID) so
/// that a failing test does not leak them, then fail.
#[track_caller]
fn assert_none_left(marker: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left = processes_with(marker);
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            for line in &left {
                if let Some(pid) = line.split_whitespace().next() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            panic!("processes outlived their step: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `sluice run --format plain` in `p`, killed after `secs` seconds whatever it does,
/// so that a regression that hangs fails the test instead of hanging CI.
fn run_within(p: &Project, secs: u32) -> crate::support::Outcome {
    crate::support::Outcome::of(
        Command::new("timeout")
            .args([
                "-s",
                "KILL",
                &secs.to_string(),
                sluice_bin(),
                "run",
                "--format",
                "plain",
            ])
            .current_dir(p.path())
            .env("SLUICE_CACHE_DIR", cache_dir()),
    )
}

/// A marker unique to this test process and call site.
fn marker(tag: u32) -> String {
    format!("{}.{}{}", 900 + tag, std::process::id() % 1000, tag)
}

#[test]
fn a_symlink_planted_in_the_run_folder_redirects_no_write() {
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("bashrc");
    std::fs::write(&victim, "# untouched\n").unwrap();
    let outside = victim_dir.path().join("keep");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("file"), "keep me").unwrap();
    // The first step tries to plant links where the runner writes the later step's
    // log and record, and its own scratch folder.
    let script = format!(
        "ls -la .sluice; for d in .sluice/runs/*/; do mkdir -p $d/logs/attack $d/steps; \
         ln -s {v} $d/logs/attack/later.log; ln -s {v} $d/steps/later.json; ln -s {o} $d/tmp; done; \
         ln -s {v} .sluice/state.db; echo planted; true",
        v = victim.display(),
        o = outside.display()
    );
    let p = Project::new(&format!(
        r#"
[pipeline]
name = "plant"

[[stage]]
name = "attack"

[[stage.step]]
id = "plant"
uses = "{{adversary}}"
with = {{ {} }}
[stage.step.grants]
exec = ["bash"]
read = ["."]
write = ["."]

[[stage.step]]
id = "wasm-plant"
uses = "{{adversary}}"
with = {{ mode = "write", path = ".sluice/runs/forged.json", content = "forged" }}
needs = ["plant"]
allow-failure = true
[stage.step.grants]
write = ["."]

[[stage.step]]
id = "later"
uses = "{{adversary}}"
with = {{ mode = "log" }}
needs = ["wasm-plant"]
"#,
        bash(&script)
    ));
    p.run(&[]).expect_code(0);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "# untouched\n");
    assert_eq!(
        std::fs::read_to_string(outside.join("file")).unwrap(),
        "keep me"
    );
    let plant_log = p.step_log("plant");
    assert!(
        plant_log.contains("Read-only file system") || plant_log.contains("No such file"),
        "the run folder is out of the step's reach: {plant_log}"
    );
    let wasm = p.step("wasm-plant");
    assert_eq!(wasm["status"], "warned", "{wasm:#}");
    assert!(
        wasm["summary"]
            .as_str()
            .unwrap()
            .contains("cannot write .sluice/runs/forged.json"),
        "{wasm:#}"
    );
    assert!(!p.path().join(".sluice/runs/forged.json").exists());
    // The later step's log and record are real files, written by the runner.
    let later_log = p.step_log("later");
    assert!(later_log.contains("an info line"), "{later_log}");
    let record = p.step("later");
    let log_path = Path::new(record["log"].as_str().unwrap());
    assert!(
        !log_path
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // The state database is the runner's own file, not the link the step tried to plant.
    let db = p.path().join(".sluice/state.db");
    assert!(!db.symlink_metadata().unwrap().file_type().is_symlink());
}

#[test]
fn grants_inside_the_runner_folder_are_refused() {
    let p = one_step(r#"mode = "ok""#, r#"read = [".sluice/runs"]"#, "");
    let out = p.run(&[]);
    out.expect_code(2);
    assert!(
        out.stderr.contains("`read` grant")
            && out
                .stderr
                .contains("lies inside sluice's own folder .sluice"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_step_cannot_plant_in_the_compiled_cache() {
    // A private cache, granted for writing as a build cache under ~/.cache would be.
    let home = tempfile::tempdir().unwrap();
    let cache = home.path().join(".cache").join("sluice");
    let p = Project::new(&format!(
        r#"
[pipeline]
name = "cache"

[[stage]]
name = "attack"

[[stage.step]]
id = "plant"
uses = "{{adversary}}"
with = {{ {} }}
[stage.step.grants]
exec = ["bash"]
write = ["{}"]
"#,
        bash(&format!(
            "for f in $(find {c} -name '*.cwasm'); do printf garbage > $f && echo replaced $f; done; ls -la {c}/sluice; true",
            c = home.path().join(".cache").display()
        )),
        home.path().join(".cache").display()
    ));
    let run = |p: &Project| {
        let out = Command::new(sluice_bin())
            .args(["run", "--format", "plain"])
            .current_dir(p.path())
            .env("SLUICE_CACHE_DIR", &cache)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The first run compiles the adversary into the cache; its step tries to replace
    // every compiled file it can find from `~/.cache`.
    let (code, stderr) = run(&p);
    assert_eq!(code, Some(0), "{stderr}");
    let log = p.step_log("plant");
    assert!(
        !log.contains("[exec] replaced"),
        "the cache is hidden from the step: {log}"
    );
    // The next run loads what the runner compiled, untouched.
    let before: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert!(!before.is_empty());
    let (code, stderr) = run(&p);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn root_with_net_grant_holds_no_capability_and_sees_no_foreign_process() {
    let (_l, port) = tcp_listener();
    let secret = format!("runner-secret-{}", std::process::id());
    let script = "grep -E '^Cap(Eff|Prm|Bnd|Amb)' /proc/self/status; \
                  for f in /proc/[0-9]*/environ; do cat $f 2>/dev/null | tr '\\0' '\\n'; done | grep -c RUNNER_SECRET; \
                  hostname evil 2>&1; echo hostname=$?; \
                  perl -MSocket -e 'socket(my $s, PF_INET, SOCK_RAW, 1) or die \"raw: $!\\n\"' 2>&1; echo raw=$?; \
                  ls /proc | grep -E '^[0-9]+$' | wc -l";
    let p = one_step(
        &bash(script),
        &format!(
            r#"exec = ["bash"]
net = ["127.0.0.1:{port}"]"#
        ),
        "",
    );
    let out = Command::new(sluice_bin())
        .args(["run", "--format", "plain"])
        .current_dir(p.path())
        .env("SLUICE_CACHE_DIR", cache_dir())
        .env("RUNNER_SECRET", &secret)
        .output()
        .unwrap();
    let stdout = output(&p.step("attack"), "stdout");
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for set in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(set) && l.ends_with("0000000000000000")),
            "{set} is empty: {stdout}"
        );
    }
    assert!(!stdout.contains(&secret), "{stdout}");
    assert!(stdout.contains("hostname=1"), "{stdout}");
    assert!(stdout.contains("raw: Operation not permitted"), "{stdout}");
    // Only the sandbox's own processes: its init, bash, ls, grep, wc.
    let visible: usize = stdout.lines().last().unwrap().trim().parse().unwrap();
    assert!(visible <= 6, "{stdout}");
}

#[test]
fn unix_sockets_outside_the_grants_are_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    let (_l, port) = tcp_listener();
    let script = format!(
        "perl -MIO::Socket::UNIX -e 'IO::Socket::UNIX->new(Peer => \"{}\") or die \"connect: $!\\n\"; print \"connected\\n\"'",
        path.display()
    );
    for net in ["", &format!(r#"net = ["127.0.0.1:{port}"]"#)] {
        let p = one_step(
            &bash(&script),
            &format!("exec = [\"bash\"]\nread = [\".\"]\n{net}"),
            "",
        );
        p.run(&[]).expect_code(1);
        let log = p.step_log("attack");
        assert!(log.contains("connect: No such file or directory"), "{log}");
        assert!(listener.accept().is_err(), "nothing connected");
    }
}

#[test]
fn no_program_outlives_its_step() {
    let m = marker(1);
    // The pause lets the daemons escape bash's process group and session first.
    let p = one_step(
        &bash(&format!(
            "setsid sleep {m} & disown; nohup sleep {m} >/dev/null 2>&1 & sleep 0.3; echo started"
        )),
        r#"exec = ["bash"]"#,
        "",
    );
    run_within(&p, 60).expect_code(0);
    assert!(output(&p.step("attack"), "stdout").contains("started"));
    assert_none_left(&m, Duration::from_secs(2));
}

/// Start `sluice run` on a step whose daemon and foreground program sleep, wait for
/// them, stop the runner with `signal`, and return its exit code.
fn stop_runner_with(signal: &str, m: &str) -> Option<i32> {
    let p = one_step(
        &bash(&format!("setsid sleep {m} & sleep {m}")),
        r#"exec = ["bash"]"#,
        r#"timeout = "60s""#,
    );
    let mut child = Command::new(sluice_bin())
        .args(["run", "--format", "plain"])
        .current_dir(p.path())
        .env("SLUICE_CACHE_DIR", cache_dir())
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_with(m).len() < 2 {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the step never started its programs");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_none_left(m, Duration::from_secs(3));
    status.code()
}

#[test]
fn sigterm_of_the_runner_stops_every_program() {
    assert_eq!(stop_runner_with("TERM", &marker(2)), Some(143));
}

#[test]
fn sighup_of_the_runner_stops_every_program() {
    assert_eq!(stop_runner_with("HUP", &marker(3)), Some(129));
}

#[test]
fn sigkill_of_the_runner_stops_every_program() {
    assert_eq!(stop_runner_with("KILL", &marker(4)), None);
}

#[test]
fn a_process_flood_is_refused_by_the_step_limit() {
    let m = marker(5);
    let p = one_step(
        &bash(&format!(
            "for i in $(seq 2000); do sleep {m} & done 2>/dev/null; echo spawned; wait"
        )),
        r#"exec = ["bash"]"#,
        r#"processes = 50
timeout = "8s""#,
    );
    let log_says_capped = |p: &Project| p.step_log("attack").contains("50 processes (cgroup");
    p.run(&[]).expect_code(1);
    assert!(
        log_says_capped(&p),
        "the limit was enforced: {}",
        p.step_log("attack")
    );
    let summary = p.step("attack")["summary"].as_str().unwrap().to_string();
    assert!(
        summary.contains("reached its limit of 50 processes"),
        "{summary}"
    );
    assert_none_left(&m, Duration::from_secs(3));
}

#[test]
fn a_memory_bomb_is_killed_at_the_step_limit() {
    let p = one_step(
        r#"mode = "exec", program = "perl", args = ["-e", "$x = 'a' x (600 << 20); print length $x"]"#,
        r#"exec = ["perl"]"#,
        r#"memory = "256MiB""#,
    );
    p.run(&[]).expect_code(1);
    let summary = p.step("attack")["summary"].as_str().unwrap().to_string();
    assert!(
        summary.contains("killed for exceeding the step's memory limit of 256.0 MiB"),
        "{summary}\n{}",
        p.step_log("attack")
    );
}

#[test]
fn tmpdir_is_private_and_capped() {
    let p = one_step(
        &bash("echo $TMPDIR; head -c 3000000 /dev/zero > $TMPDIR/big; echo rc=$?"),
        r#"exec = ["bash"]"#,
        r#"tmpdir-size = "2MiB""#,
    );
    p.run(&[]).expect_code(0);
    let out = output(&p.step("attack"), "stdout");
    assert!(out.starts_with("/tmp\n"), "{out}");
    assert!(out.contains("rc=1"), "the write past the cap fails: {out}");
    assert!(p.step_log("attack").contains("No space left on device"));
}

#[test]
fn reading_a_fifo_ends_at_the_timeout() {
    let p = one_step(
        r#"mode = "read", path = "pipe""#,
        r#"read = ["."]"#,
        r#"timeout = "2s""#,
    );
    make_fifo(&p.path().join("pipe"));
    let started = Instant::now();
    run_within(&p, 30).expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(p.step("attack")["summary"], "timed out after 2s");
}

#[test]
fn a_fifo_or_huge_artifact_is_refused_in_time() {
    for (name, why) in [
        ("pipe", "is not a regular file"),
        ("sparse", "more than the 4.0 GiB an artifact may be"),
    ] {
        let p = one_step(
            &format!(r#"mode = "artifact", path = "{name}""#),
            r#"read = ["."]"#,
            r#"timeout = "2s""#,
        );
        make_fifo(&p.path().join("pipe"));
        let sparse = std::fs::File::create(p.path().join("sparse")).unwrap();
        sparse.set_len(8 << 30).unwrap();
        let started = Instant::now();
        run_within(&p, 30).expect_code(1);
        assert!(started.elapsed() < Duration::from_secs(10));
        let summary = p.step("attack")["summary"].as_str().unwrap().to_string();
        assert!(summary.contains(why), "{summary}");
    }
}

fn make_fifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn an_exec_grant_is_not_a_grant_for_another_name_of_the_same_file() {
    // `tool` and a link to it under another name, as rustup's proxies are.
    let bin = tempfile::tempdir().unwrap();
    let tool = bin.path().join("granted-tool");
    std::fs::write(&tool, "#!/bin/sh\necho tool ran as $0\n").unwrap();
    std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(&tool, bin.path().join("other-name")).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let run = |program: &str| {
        let p = one_step(
            &format!(r#"mode = "exec", program = "{program}""#),
            &format!(
                "exec = [\"granted-tool\"]\nread = [\"{}\"]",
                bin.path().display()
            ),
            "",
        );
        let out = Command::new(sluice_bin())
            .args(["run", "--format", "plain"])
            .current_dir(p.path())
            .env("SLUICE_CACHE_DIR", cache_dir())
            .env("PATH", &path)
            .output()
            .unwrap();
        (
            out.status.code(),
            p.step("attack")["summary"].as_str().unwrap().to_string(),
        )
    };
    let (code, summary) = run("granted-tool");
    assert_eq!(code, Some(0), "{summary}");
    let (code, summary) = run("other-name");
    assert_eq!(code, Some(1));
    assert!(
        summary.contains("not in the step's `exec` grant"),
        "{summary}"
    );
    let (code, summary) = run(&bin.path().join("other-name").display().to_string());
    assert_eq!(code, Some(1));
    assert!(
        summary.contains("not in the step's `exec` grant"),
        "{summary}"
    );
    // The real case, where rustup is installed: `cargo` does not grant `rustup`.
    if let Some(rustup) = crate::support::which("rustup") {
        let p = one_step(
            r#"mode = "exec", program = "rustup", args = ["run", "stable", "/bin/sh", "-c", "echo escaped"]"#,
            &format!(
                "exec = [\"cargo\"]\nread = [\"{}\"]",
                rustup.parent().unwrap().display()
            ),
            "",
        );
        p.run(&[]).expect_code(1);
        let summary = p.step("attack")["summary"].as_str().unwrap().to_string();
        assert!(
            summary.contains("not in the step's `exec` grant"),
            "{summary}"
        );
    }
}

#[test]
fn loader_variables_pass_only_when_granted() {
    let with =
        r#"mode = "exec", program = "echo", args = ["hi"], env = { LD_PRELOAD = "/tmp/evil.so" }"#;
    let p = one_step(with, r#"exec = ["echo"]"#, "");
    p.run(&[]).expect_code(1);
    let summary = p.step("attack")["summary"].as_str().unwrap().to_string();
    assert!(
        summary.contains("the plugin may not set `LD_PRELOAD`")
            && summary.contains(r#"add "LD_PRELOAD" under [stage.step.grants] env"#),
        "{summary}"
    );
    let granted = one_step(
        with,
        r#"exec = ["echo"]
env = ["LD_PRELOAD"]"#,
        "",
    );
    granted.run(&[]).expect_code(0);
    for (name, value) in [("BASH_ENV", "/tmp/x"), ("GIT_CONFIG_COUNT", "1")] {
        let p = one_step(
            &format!(r#"mode = "exec", program = "echo", env = {{ {name} = "{value}" }}"#),
            r#"exec = ["echo"]"#,
            "",
        );
        p.run(&[]).expect_code(1);
    }
}

#[test]
fn udp_reaches_only_the_sandbox_name_server() {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let (_l, tcp_port) = tcp_listener();
    // UDP to a non-resolver port on the host's loopback and to a public resolver;
    // then a name lookup, answered only for granted names.
    let script = format!(
        "echo x > /dev/udp/127.0.0.1/{udp_port}; echo x > /dev/udp/8.8.8.8/53 2>&1; echo public=$?; \
         cat /etc/resolv.conf | grep nameserver; getent hosts localhost; getent hosts example.com; echo lookup=$?"
    );
    let p = one_step(
        &bash(&script),
        &format!("exec = [\"bash\"]\nnet = [\"localhost:{tcp_port}\"]"),
        "",
    );
    p.run(&[]).expect_code(0);
    let mut buf = [0u8; 16];
    assert!(
        udp.recv_from(&mut buf).is_err(),
        "no datagram reached the host"
    );
    let out = output(&p.step("attack"), "stdout");
    assert!(out.contains("public=1"), "{out}");
    assert!(out.contains("lookup=2"), "{out}");
    assert!(
        p.step_log("attack")
            .contains("denied name lookup of `example.com`: not in the step's `net` grant"),
        "{}",
        p.step_log("attack")
    );
}

#[test]
fn tcp_reaches_only_granted_addresses() {
    // The granted address, and the same port on another address of the machine.
    let (granted, port, other) = (0..20)
        .find_map(|_| {
            let (granted, port) = tcp_listener();
            let other = TcpListener::bind(("127.0.0.2", port)).ok()?;
            Some((granted, port, other))
        })
        .expect("a port free on 127.0.0.1 and 127.0.0.2");
    granted.set_nonblocking(true).unwrap();
    other.set_nonblocking(true).unwrap();
    let (_l2, other_port) = tcp_listener();
    let script = format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port} && echo granted=ok; \
         (exec 4<>/dev/tcp/127.0.0.1/{other_port}) 2>/dev/null; echo other_port=$?; \
         (exec 5<>/dev/tcp/127.0.0.2/{port}) 2>/dev/null; echo other_host=$?; \
         (exec 6<>/dev/tcp/10.0.0.1/{port}) 2>/dev/null; echo far_host=$?"
    );
    let p = one_step(
        &bash(&script),
        &format!("exec = [\"bash\"]\nnet = [\"127.0.0.1:{port}\"]"),
        "",
    );
    p.run(&[]).expect_code(0);
    let out = output(&p.step("attack"), "stdout");
    assert!(out.contains("granted=ok"), "{out}");
    for refused in ["other_port=1", "other_host=1", "far_host=1"] {
        assert!(out.contains(refused), "{refused}: {out}");
    }
    assert!(
        other.accept().is_err(),
        "the same port on another address was reached"
    );
    // The granted connection really reached the test's listener.
    let deadline = Instant::now() + Duration::from_secs(2);
    while granted.accept().is_err() {
        assert!(
            Instant::now() < deadline,
            "the granted connection never arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_grant_that_does_not_resolve_opens_nothing() {
    let (listener, port) = tcp_listener();
    listener.set_nonblocking(true).unwrap();
    let p = one_step(
        &bash(&format!(
            "(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; echo loopback=$?"
        )),
        &format!("exec = [\"bash\"]\nnet = [\"no-such-host.invalid:{port}\"]"),
        "",
    );
    p.run(&[]).expect_code(0);
    let out = output(&p.step("attack"), "stdout");
    assert!(out.contains("loopback=1"), "{out}");
    assert!(
        listener.accept().is_err(),
        "nothing reached the port on the machine"
    );
    assert!(
        p.step_log("attack")
            .contains("net grant no-such-host.invalid")
    );
}
