//! Deploying to SSH targets: real sshd hosts on loopback ports ([`crate::sshd`]).
//!
//! The transport tests drive `sluice::targets::transport` itself against two hosts:
//! a bundle streamed with tar, installed under each host's root, hooks run remotely
//! (a daemon that does not hold the hook open, a timeout that kills the hook's
//! process group), the record copy, the remote digest, and a wrong known_hosts entry
//! refused with a message that names the host and the fix.
//!
//! The end-to-end tests run `builtin:deploy` through the `sluice` binary on a pipeline
//! with two SSH targets (the client key a `[secrets]` entry read from a file, the
//! known_hosts granted), check the files and hook effects on both roots, and grep the
//! run folder and the state database for the key.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sluice::host::bindings::sluice::plugin::deploy_targets as wit;
use sluice::targets::transport::{
    ResolvedSource, SshAccess, TargetError, Transport, bundle_digest,
};
use sluice::targets::{HostKeyChecking, TargetKind, TargetSpec};

use crate::sshd::{SshFleet, SshHost, sshd_or_skip};
use crate::support::Project;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn ssh_target(name: &str, host: &SshHost, fleet: &SshFleet, known_hosts: &Path) -> Transport {
    Transport::new(
        TargetSpec {
            name: name.into(),
            group: "zone-a".into(),
            kind: TargetKind::Ssh {
                host: "127.0.0.1".into(),
                port: host.port,
                root: host.root.display().to_string(),
            },
            url: None,
            vars: vec![("GREETING".into(), "it's me".into())],
            pos: sluice::config::SourcePos {
                file: "sluice.toml".into(),
                line: 1,
                column: 1,
            },
        },
        Some(SshAccess {
            user: Some(fleet.user.clone()),
            identity_file: Some(fleet.client_key.clone()),
            known_hosts: Some(known_hosts.to_path_buf()),
            checking: HostKeyChecking::Strict,
        }),
    )
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A small bundle: a page, a start script that leaves a daemon, a hook that hangs.
fn bundle(dir: &Path) -> PathBuf {
    let b = dir.join("bundle");
    write(&b.join("appspec.yml"), "version: 0.0\nos: linux\n", 0o644);
    write(&b.join("web/index.html"), "hello over ssh\n", 0o644);
    write(
        &b.join("scripts/start.sh"),
        "echo \"$GREETING from $SLUICE_TARGET ($LIFECYCLE_EVENT)\" > \"$SLUICE_TARGET_ROOT/started\"\n\
         sleep 300 &\necho $! > \"$SLUICE_TARGET_ROOT/daemon.pid\"\necho started\n",
        0o755,
    );
    write(
        &b.join("scripts/hang.sh"),
        "sleep 300 &\necho $! > \"$SLUICE_TARGET_ROOT/grandchild.pid\"\nsleep 300\n",
        0o755,
    );
    b
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

fn pid_in(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .expect("a pid")
}

/// Kills the processes whose pid files it holds when dropped (daemons the hooks
/// started on the test's hosts), whatever the test did.
struct KillOnDrop(Vec<PathBuf>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for file in &self.0 {
            if let Ok(text) = std::fs::read_to_string(file)
                && let Ok(pid) = text.trim().parse::<i32>()
                && pid > 1
            {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

#[test]
fn the_transport_deploys_over_ssh_to_two_hosts() {
    if sshd_or_skip().is_none() {
        return;
    }
    let fleet = SshFleet::start(2);
    let work = tempfile::tempdir().unwrap();
    let source = bundle(work.path());
    let _daemons = KillOnDrop(
        fleet
            .hosts
            .iter()
            .flat_map(|h| [h.root.join("daemon.pid"), h.root.join("grandchild.pid")])
            .collect(),
    );
    let rt = runtime();
    for (n, host) in fleet.hosts.iter().enumerate() {
        let t = ssh_target(&format!("web-{}", n + 1), host, &fleet, &fleet.known_hosts);
        let root = host.root.display().to_string();
        let staged = rt
            .block_on(t.download_bundle(
                "shop",
                "d-1-1",
                &ResolvedSource::LocalFolder(source.clone()),
            ))
            .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", host.log()));
        assert_eq!(
            staged.archive,
            format!("{root}/var/lib/sluice-deploy/shop/d-1-1/deployment-archive")
        );
        assert_eq!(staged.digest, bundle_digest(&source).unwrap());
        // The digest computed on the host agrees with the runner's.
        assert_eq!(
            rt.block_on(t.archive_digest(&staged.archive)).unwrap(),
            staged.digest
        );
        let start = Path::new(&staged.archive).join("scripts/start.sh");
        assert_eq!(
            std::fs::metadata(&start).unwrap().permissions().mode() & 0o777,
            0o755
        );

        let installed = rt
            .block_on(t.install(&wit::InstallRequest {
                archive: staged.archive.clone(),
                files: vec![wit::FileCopy {
                    source: "web".into(),
                    destination: "/srv/www".into(),
                }],
                exists: wit::FileExistsBehavior::Disallow,
                cleanup: vec![],
                permissions: vec![wit::Permission {
                    object: "/srv/www".into(),
                    pattern: None,
                    except: vec![],
                    owner: None,
                    group: None,
                    mode: Some(0o640),
                    kinds: vec!["file".into()],
                }],
            }))
            .unwrap();
        assert_eq!(installed, [format!("{root}/srv/www/index.html")]);
        let page = host.root.join("srv/www/index.html");
        assert_eq!(std::fs::read_to_string(&page).unwrap(), "hello over ssh\n");
        assert_eq!(
            std::fs::metadata(&page).unwrap().permissions().mode() & 0o777,
            0o640
        );

        // ApplicationStart leaves a daemon behind; the hook still returns at once.
        let begun = Instant::now();
        let outcome = rt
            .block_on(t.run_hook(
                "d-1-1",
                &wit::Hook {
                    event: "ApplicationStart".into(),
                    archive: staged.archive.clone(),
                    script: "scripts/start.sh".into(),
                    env: vec![("LIFECYCLE_EVENT".into(), "ApplicationStart".into())],
                    timeout_ms: 30_000,
                    runas: None,
                },
                Instant::now() + Duration::from_secs(60),
            ))
            .unwrap();
        assert!(
            begun.elapsed() < Duration::from_secs(5),
            "{:?}",
            begun.elapsed()
        );
        assert_eq!(outcome.exit_code, Some(0), "{outcome:?}");
        assert_eq!(outcome.output_tail.trim(), "started");
        assert_eq!(
            std::fs::read_to_string(host.root.join("started")).unwrap(),
            format!("it's me from web-{} (ApplicationStart)\n", n + 1)
        );
        assert!(
            alive(pid_in(&host.root.join("daemon.pid"))),
            "the daemon outlives its hook"
        );

        // A hook past its timeout is killed on the host, with what it started.
        let outcome = rt
            .block_on(t.run_hook(
                "d-1-1",
                &wit::Hook {
                    event: "ValidateService".into(),
                    archive: staged.archive.clone(),
                    script: "scripts/hang.sh".into(),
                    env: vec![],
                    timeout_ms: 1_000,
                    runas: None,
                },
                Instant::now() + Duration::from_secs(60),
            ))
            .unwrap();
        assert!(outcome.timed_out, "{outcome:?}");
        std::thread::sleep(Duration::from_millis(300));
        let grandchild = pid_in(&host.root.join("grandchild.pid"));
        assert!(
            !alive(grandchild),
            "the timed-out hook's child {grandchild} still runs"
        );

        // A missing script is an error, never an outcome.
        let e = rt
            .block_on(t.run_hook(
                "d-1-1",
                &wit::Hook {
                    event: "ValidateService".into(),
                    archive: staged.archive.clone(),
                    script: "scripts/missing.sh".into(),
                    env: vec![],
                    timeout_ms: 1_000,
                    runas: None,
                },
                Instant::now() + Duration::from_secs(60),
            ))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("hook script `scripts/missing.sh` is missing"),
            "{e}"
        );

        // A rollback copies an archive already on the host.
        let again = rt
            .block_on(t.download_bundle(
                "shop",
                "d-1-2",
                &ResolvedSource::Archive(staged.archive.clone()),
            ))
            .unwrap();
        assert_eq!(again.digest, staged.digest);

        let record = serde_json::json!({"current": {"archive": again.archive}, "state": "healthy"})
            .to_string();
        rt.block_on(t.write_record_copy("shop", &record)).unwrap();
        let copy = host.root.join("var/lib/sluice-deploy/shop/record.json");
        assert_eq!(std::fs::read_to_string(copy).unwrap().trim(), record);
    }
}

#[test]
fn a_wrong_known_hosts_entry_is_refused_naming_the_host_and_the_fix() {
    if sshd_or_skip().is_none() {
        return;
    }
    let fleet = SshFleet::start(1);
    let wrong = fleet.wrong_known_hosts();
    let work = tempfile::tempdir().unwrap();
    let source = bundle(work.path());
    let unknown = work.path().join("empty_known_hosts");
    std::fs::write(&unknown, "").unwrap();
    let port = fleet.hosts[0].port.to_string();
    let refusal = |known_hosts: &Path| {
        let t = ssh_target("web-1", &fleet.hosts[0], &fleet, known_hosts);
        let e = runtime()
            .block_on(t.download_bundle(
                "shop",
                "d-1-1",
                &ResolvedSource::LocalFolder(source.clone()),
            ))
            .unwrap_err();
        assert!(matches!(e, TargetError::Unreachable(_)), "{e:?}");
        e.to_string()
            .replace(&port, "PORT")
            .replace(&known_hosts.display().to_string(), "KNOWN_HOSTS")
    };
    insta::assert_snapshot!("wrong_host_key", refusal(&wrong));
    insta::assert_snapshot!("unknown_host_key", refusal(&unknown));
    assert!(
        !fleet.hosts[0].root.join("var").exists(),
        "nothing reaches a host whose key does not match"
    );
}

/// A pipeline deploying `bundle` with `builtin:deploy` to every host of `fleet`, one
/// group per host, with `known_hosts` granted.
fn ssh_pipeline(fleet: &SshFleet, known_hosts: &Path, checking: &str) -> String {
    let mut toml = format!(
        "[pipeline]\nname = \"ssh-fleet\"\n\n[secrets]\ndeploy-key = {{ file = \"{key}\" }}\n\n",
        key = fleet.client_key.display()
    );
    let mut groups = Vec::new();
    for (n, host) in fleet.hosts.iter().enumerate() {
        let group = format!("zone-{}", n + 1);
        toml.push_str(&format!(
            "[[target]]\nname = \"web-{}\"\ngroup = \"{group}\"\nssh = \"{}\"\nroot = \"{}\"\nvars = {{ GREETING = \"hello\" }}\n\n",
            n + 1,
            host.address(),
            host.root.display()
        ));
        groups.push(format!("\"{group}\""));
    }
    let groups = groups.join(", ");
    toml.push_str(&format!(
        "[[stage]]\nname = \"prod\"\n\n[[stage.step]]\nid = \"deploy\"\nuses = \"builtin:deploy\"\n\
         [stage.step.with]\nbundle = \"bundle\"\napplication = \"shop\"\nconfig = \"OneAtATime\"\nwaves = [{groups}]\n\
         [stage.step.grants]\nread = [\"bundle\"]\ntargets = [{groups}]\n\
         ssh = {{ identity = \"deploy-key\", known-hosts = \"{kh}\", user = \"{user}\"{checking} }}\n",
        kh = known_hosts.display(),
        user = fleet.user
    ));
    toml
}

/// The revision: a page, and hooks that log what they saw to the host's root.
fn write_bundle(p: &Project, page: &str) {
    p.write(
        "bundle/appspec.yml",
        "version: 0.0\nos: linux\nfiles:\n  - source: web\n    destination: /srv/www\nfile_exists_behavior: OVERWRITE\n\
         hooks:\n  BeforeInstall:\n    - location: scripts/log.sh\n  AfterInstall:\n    - location: scripts/log.sh\n\
         \x20 ApplicationStart:\n    - location: scripts/log.sh\n      timeout: 30\n  ValidateService:\n    - location: scripts/validate.sh\n      timeout: 30\n",
    );
    p.write("bundle/web/index.html", page);
    p.write(
        "bundle/scripts/log.sh",
        "echo \"$LIFECYCLE_EVENT $APPLICATION_NAME $SLUICE_TARGET $GREETING\" >> \"$SLUICE_TARGET_ROOT/hooks.log\"\n",
    );
    p.write(
        "bundle/scripts/validate.sh",
        "grep -q . \"$SLUICE_TARGET_ROOT/srv/www/index.html\" && echo \"$LIFECYCLE_EVENT $APPLICATION_NAME $SLUICE_TARGET $GREETING\" >> \"$SLUICE_TARGET_ROOT/hooks.log\"\n",
    );
}

/// Every file under `dir` (the state database included) that holds `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_holding(&path, needle));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(path);
        }
    }
    found
}

#[test]
fn builtin_deploy_deploys_to_two_ssh_hosts_and_never_logs_the_key() {
    if sshd_or_skip().is_none() {
        return;
    }
    let fleet = SshFleet::start(2);
    let p = Project::new(&ssh_pipeline(&fleet, &fleet.known_hosts, ""));
    write_bundle(&p, "hello over ssh\n");
    let out = p.run(&[]);
    out.expect_code(0);
    for (n, host) in fleet.hosts.iter().enumerate() {
        let name = format!("web-{}", n + 1);
        assert_eq!(
            std::fs::read_to_string(host.root.join("srv/www/index.html")).unwrap(),
            "hello over ssh\n",
            "{name}"
        );
        let hooks = std::fs::read_to_string(host.root.join("hooks.log")).unwrap();
        assert_eq!(
            hooks,
            [
                "BeforeInstall",
                "AfterInstall",
                "ApplicationStart",
                "ValidateService"
            ]
            .map(|e| format!("{e} shop {name} hello\n"))
            .concat(),
            "{name}"
        );
        let record =
            std::fs::read_to_string(host.root.join("var/lib/sluice-deploy/shop/record.json"))
                .unwrap();
        assert!(record.contains("deployment-archive"), "{name}: {record}");
        // The host's sshd saw the runner's key, and nothing else logged in.
        assert!(host.log().contains("Accepted publickey"), "{}", host.log());
    }
    // The key is a secret: not in the run's logs, records or the state database.
    let key = std::fs::read_to_string(&fleet.client_key).unwrap();
    let body: Vec<&str> = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!body.is_empty());
    for line in body {
        let holding = files_holding(&p.path().join(".sluice"), line.as_bytes());
        assert!(holding.is_empty(), "the private key is in {holding:?}");
        assert!(!out.stdout.contains(line) && !out.stderr.contains(line));
    }
    // A second run deploys nothing new: each host already runs this revision.
    p.run(&[]).expect_code(0);
    let hooks = std::fs::read_to_string(fleet.hosts[0].root.join("hooks.log")).unwrap();
    assert_eq!(hooks.lines().count(), 4, "{hooks}");
}

#[test]
fn builtin_deploy_refuses_a_host_whose_key_is_not_the_known_one() {
    if sshd_or_skip().is_none() {
        return;
    }
    let fleet = SshFleet::start(1);
    let wrong = fleet.wrong_known_hosts();
    let p = Project::new(&ssh_pipeline(&fleet, &wrong, ""));
    write_bundle(&p, "never served\n");
    let out = p.run(&[]);
    assert_ne!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let log = p.step_log("deploy");
    let shown = format!("{}{}{log}", out.stdout, out.stderr);
    let port = fleet.hosts[0].port;
    assert!(
        shown.contains(&format!("the host key of 127.0.0.1 port {port} differs from the one {} has for `[127.0.0.1]:{port}`", wrong.display())),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("ssh-keygen -R '[127.0.0.1]:{port}'")),
        "{shown}"
    );
    assert!(!fleet.hosts[0].root.join("srv").exists());
}

#[test]
fn accept_new_lets_a_first_host_key_in_says_so_and_still_refuses_a_changed_one() {
    if sshd_or_skip().is_none() {
        return;
    }
    let fleet = SshFleet::start(1);
    let p = Project::new("");
    let known_hosts = p.path().join("known_hosts");
    std::fs::write(&known_hosts, "").unwrap();
    p.write(
        "sluice.toml",
        &ssh_pipeline(&fleet, &known_hosts, ", host-key-checking = \"accept-new\""),
    );
    write_bundle(&p, "first contact\n");
    p.run(&[]).expect_code(0);
    assert!(
        p.step_log("deploy")
            .contains("host-key-checking = \"accept-new\""),
        "{}",
        p.step_log("deploy")
    );
    let port = fleet.hosts[0].port;
    let added = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(added.contains(&format!("[127.0.0.1]:{port}")), "{added}");
    assert_eq!(
        std::fs::read_to_string(fleet.hosts[0].root.join("srv/www/index.html")).unwrap(),
        "first contact\n"
    );
    // accept-new is not "anything goes": a changed key is refused.
    std::fs::copy(fleet.wrong_known_hosts(), &known_hosts).unwrap();
    write_bundle(&p, "second\n");
    let out = p.run(&[]);
    assert_ne!(out.code, 0);
    assert!(
        p.step_log("deploy").contains("differs from the one"),
        "{}",
        p.step_log("deploy")
    );
    assert_eq!(
        std::fs::read_to_string(fleet.hosts[0].root.join("srv/www/index.html")).unwrap(),
        "first contact\n"
    );
}
