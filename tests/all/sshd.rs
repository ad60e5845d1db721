//! Real SSH hosts for the end-to-end tests: Debian's OpenSSH server on loopback ports.
//!
//! [`SshFleet::start`] makes a throwaway client key (`ssh-keygen -t ed25519`), then for
//! each host a throwaway host key, an `sshd_config` (ListenAddress 127.0.0.1, a free
//! port, the host key, `AuthorizedKeysFile` pointing at a test file with the client's
//! public key, no passwords, no PAM, the pid file in the host's temporary folder) and a
//! `root` folder standing for its file system; it starts `/usr/sbin/sshd -D -e -f
//! <config>` under `setpriv --pdeathsig KILL` (a test binary that dies without
//! unwinding takes its sshd with it), waits until the port accepts, and writes a
//! `known_hosts` with every host's key as `[127.0.0.1]:PORT`. Each sshd is killed by
//! PID when the fleet is dropped, whatever the test did.
//!
//! sshd refuses to start without its privilege-separation folder `/run/sshd` when run
//! as root; the harness makes it (an empty root-owned folder, as the package's own
//! service would). Where `sshd` is missing, a test skips with a message outside CI and
//! fails in CI (`CI` set): `.ci/run` installs `openssh-server`.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::which;

/// Debian's sshd; it must be started by its absolute path.
const SSHD: &str = "/usr/sbin/sshd";
/// How long the harness waits for an sshd to accept connections.
const PATIENCE: Duration = Duration::from_secs(20);

/// One SSH host: an sshd on a loopback port and the folder standing for its `/`.
pub struct SshHost {
    child: Option<Child>,
    pub port: u16,
    /// Where its deployments land (the target's `root`).
    pub root: PathBuf,
    /// Its host key's public half (`ssh-ed25519 AAAA...`).
    pub host_key: String,
    dir: PathBuf,
}

impl SshHost {
    /// `127.0.0.1:PORT`, what a target's `ssh` names.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What sshd logged (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SshHost {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Several SSH hosts sharing one client key and one known_hosts file.
pub struct SshFleet {
    pub hosts: Vec<SshHost>,
    /// The client's private key (what a `[secrets]` entry reads).
    pub client_key: PathBuf,
    /// `[127.0.0.1]:PORT ssh-ed25519 ...` for every host.
    pub known_hosts: PathBuf,
    /// The user the hosts accept (the user running the tests).
    pub user: String,
    dir: tempfile::TempDir,
}

/// The `sshd` binary, or `None` (after saying why) when a test should skip; in CI
/// (`CI` set) a missing binary fails the test instead, since `.ci/run` installs it.
#[track_caller]
pub fn sshd_or_skip() -> Option<PathBuf> {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("this test");
    if Path::new(SSHD).is_file() && which("ssh").is_some() && which("ssh-keygen").is_some() {
        return Some(PathBuf::from(SSHD));
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: {SSHD}, ssh or ssh-keygen is missing, and CI must run this test: \
             .ci/run installs Debian's `openssh-server` and `openssh-client`"
        );
    }
    eprintln!(
        "SKIPPED {test}: {SSHD}, ssh or ssh-keygen is missing \
         (`apt-get install --no-install-recommends openssh-server openssh-client`, or run .ci/run)"
    );
    None
}

impl SshFleet {
    /// Start `count` hosts.
    pub fn start(count: usize) -> SshFleet {
        let dir = tempfile::Builder::new()
            .prefix("sluice-sshd-")
            .tempdir()
            .expect("create a folder for the ssh hosts");
        // sshd refuses a world-writable path above its files under StrictModes; the
        // config turns StrictModes off, but keep the folder private anyway.
        set_mode(dir.path(), 0o755);
        let client_key = dir.path().join("client_key");
        keygen(&client_key, "sluice-test-client");
        let public = std::fs::read_to_string(client_key.with_extension("pub"))
            .expect("read the client's public key");
        let user = whoami();
        if user == "root" {
            std::fs::create_dir_all("/run/sshd").expect("make /run/sshd for sshd");
        }
        let mut hosts = Vec::new();
        for n in 1..=count {
            let host_dir = dir.path().join(format!("host-{n}"));
            std::fs::create_dir_all(host_dir.join("root")).expect("make a host's folders");
            let host_key = host_dir.join("host_key");
            keygen(&host_key, &format!("sluice-test-host-{n}"));
            std::fs::write(host_dir.join("authorized_keys"), &public)
                .expect("write authorized_keys");
            hosts.push(start_host(&host_dir, &host_key));
        }
        let known_hosts = dir.path().join("known_hosts");
        let lines: String = hosts
            .iter()
            .map(|h| format!("[127.0.0.1]:{} {}\n", h.port, h.host_key))
            .collect();
        std::fs::write(&known_hosts, lines).expect("write known_hosts");
        SshFleet {
            hosts,
            client_key,
            known_hosts,
            user,
            dir,
        }
    }

    /// A known_hosts file whose entries carry other keys than the hosts' (as after
    /// a host was rebuilt, or an attacker answers in its place).
    pub fn wrong_known_hosts(&self) -> PathBuf {
        let other = self.dir.path().join("other_host_key");
        keygen(&other, "someone-else");
        let key = std::fs::read_to_string(other.with_extension("pub")).expect("read a key");
        let key = key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        let path = self.dir.path().join("wrong_known_hosts");
        let lines: String = self
            .hosts
            .iter()
            .map(|h| format!("[127.0.0.1]:{} {key}\n", h.port))
            .collect();
        std::fs::write(&path, lines).expect("write the wrong known_hosts");
        path
    }
}

/// A new ed25519 key pair at `path` and `path.pub`, without a passphrase.
fn keygen(path: &Path, comment: &str) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Start one sshd for `dir` on a free port (a few tries: a port picked by binding port
/// 0 can be taken again before sshd binds it).
fn start_host(dir: &Path, host_key: &Path) -> SshHost {
    let public = std::fs::read_to_string(host_key.with_extension("pub")).expect("read host key");
    let host_key_public = public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let mut last_log = String::new();
    for _ in 0..3 {
        let port = crate::support::tcp_listener().1;
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {key}\n\
                 AuthorizedKeysFile {dir}/authorized_keys\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\n\
                 UsePAM no\n\
                 PermitRootLogin prohibit-password\n\
                 StrictModes no\n\
                 PidFile {dir}/sshd.pid\n\
                 LogLevel INFO\n",
                key = host_key.display(),
                dir = dir.display(),
            ),
        )
        .expect("write sshd_config");
        let log = std::fs::File::create(dir.join("sshd.log")).expect("create the sshd log");
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--"])
            .arg(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let mut host = SshHost {
            child: Some(child),
            port,
            root: dir.join("root"),
            host_key: host_key_public.clone(),
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return host;
            }
            let exited = host
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
                .is_some();
            if exited || Instant::now() > deadline {
                last_log = host.log();
                host.stop();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("sshd did not start; its log:\n{last_log}");
}
