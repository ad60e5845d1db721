//! The operations on one target, for both kinds, as the same small POSIX `sh` scripts:
//! a local target runs each with `sh -c` on this machine, an SSH target feeds it to
//! `sh -s` on the host through the OpenSSH client (`-F /dev/null`, `BatchMode=yes`,
//! the granted key with `IdentitiesOnly=yes`, the granted known_hosts and
//! `StrictHostKeyChecking=yes`, or `accept-new` when the grant says so). Every value in
//! a script is single-quoted ([`sh_quote`]); the key is a file path on the command
//! line, never its content, and nothing secret is logged.
//!
//! Layout on a target (under its root; a local target's root is its folder, made when
//! missing):
//!
//! ```text
//! <root>/var/lib/sluice-deploy/<application>/record.json                      the record copy
//! <root>/var/lib/sluice-deploy/<application>/<deployment-id>/deployment-archive  a bundle
//! <root>/var/lib/sluice-deploy/<application>/<deployment-id>/hook-logs/         hooks' output
//! ```
//!
//! Writing the record copy keeps the newest [`KEEP_ARCHIVES`] deployment folders plus
//! those of every archive the record names (current and last good) and removes the
//! rest. Absolute AppSpec paths land under the root (`/opt/app` is
//! `<root>/opt/app`; with root `/`, the real path).
//!
//! Hooks run as `sh <script>` in their archive folder, with a clean environment (PATH,
//! HOME, the target's vars, SLUICE_TARGET, SLUICE_TARGET_ROOT, then the hook's env),
//! under `timeout -s KILL <seconds>`, which puts the script in its own process group
//! and kills that whole group (the script and whatever it started that did not leave
//! it) at the timeout. The script's output goes to a log file on the target, never to
//! the pipe the runner reads, so a daemon it starts cannot hold the hook open; the
//! runner waits for the script's own exit, then reads the log's tail. Past the
//! timeout plus a grace period the runner also kills the local process group (local)
//! or its ssh client (ssh).
//!
//! ## Bundle digests
//!
//! `sha256:` + the hex sha256 of a manifest: for every regular file under the bundle
//! folder, in byte order of its relative path (`/`-separated, no leading `./`), one
//! line `<x|-> <hex sha256 of its contents> <relative path>\n`, where `x` means some
//! execute bit is set. Folders count only through their files; symlinks and special
//! files are refused. The same manifest is computed on a target with `find`, `sort`,
//! `stat` and `sha256sum` for an archive already there.

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::{HostKeyChecking, SshGrant, TargetKind, TargetSpec};
use crate::host::bindings::sluice::plugin::deploy_targets as wit;

/// Deployment folders kept on a target beyond the ones its record names.
pub const KEEP_ARCHIVES: usize = 5;
/// What a hook's outcome keeps of its output: the last lines...
const TAIL_LINES: usize = 40;
/// ...and at most this many bytes.
const TAIL_BYTES: usize = 8 * 1024;
/// How long the output of a finished script is still read.
const DRAIN: Duration = Duration::from_millis(200);
/// Past a hook's timeout, how long the remote `timeout` gets before the runner kills.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// The PATH of hooks.
const HOOK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Most output kept of an operation's script (the runner's own protocol lines).
const OUTPUT_CAP: usize = 1 << 20;
/// Hooks run by this process, to name their log files.
static HOOK_RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Most bytes `read_archive_file` returns (the contract's 1 MiB).
const MAX_ARCHIVE_FILE: usize = 1 << 20;
/// Exit code the scripts use for "refused, the message says why".
const REFUSED: i32 = 3;

/// Why an operation on a target did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TargetError {
    /// The target could not be reached (ssh failed, its folder is missing).
    #[error("{0}")]
    Unreachable(String),
    /// The operation ran and failed.
    #[error("{0}")]
    Failed(String),
}

/// How a step reaches an SSH target: resolved from its `ssh` grant when it starts.
#[derive(Debug, Clone)]
pub struct SshAccess {
    pub user: Option<String>,
    /// The private key, written to a 0600 file private to the step.
    pub identity_file: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub checking: HostKeyChecking,
}

impl SshAccess {
    /// Resolve an `ssh` grant: the private key (the value of its `identity` secret)
    /// goes to `<private_dir>/ssh-identity`, mode 0600 (OpenSSH refuses keys others can
    /// read), ending with a newline (OpenSSH refuses a key without one).
    pub fn from_grant(
        grant: &SshGrant,
        key: &[u8],
        private_dir: &Path,
    ) -> Result<SshAccess, TargetError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let file = private_dir.join("ssh-identity");
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(private_dir)?;
            let _ = std::fs::remove_file(&file);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&file)?;
            f.write_all(key)?;
            if !key.ends_with(b"\n") {
                f.write_all(b"\n")?;
            }
            Ok(())
        };
        write().map_err(|e| {
            TargetError::Failed(format!(
                "cannot write the ssh identity to {}: {e}",
                file.display()
            ))
        })?;
        Ok(SshAccess {
            user: grant.user.clone(),
            identity_file: Some(file),
            known_hosts: grant.known_hosts.clone(),
            checking: grant.host_key_checking,
        })
    }

    /// The line for the step log when host keys are not all checked strictly.
    pub fn notice(&self) -> Option<String> {
        (self.checking == HostKeyChecking::AcceptNew).then(|| {
            format!(
                "ssh: host-key-checking = \"accept-new\": a host not yet in {} is trusted on first contact and its key added there; a changed key is still refused",
                self.known_hosts
                    .as_deref()
                    .map_or("the known_hosts file".into(), |p| p.display().to_string())
            )
        })
    }
}

/// One target, ready for operations.
#[derive(Debug, Clone)]
pub struct Transport {
    pub spec: TargetSpec,
    pub ssh: Option<SshAccess>,
}

/// Where a bundle comes from, resolved: a local folder (already checked against the
/// step's read grant) or an archive on the target.
#[derive(Debug, Clone)]
pub enum ResolvedSource {
    LocalFolder(PathBuf),
    Archive(String),
}

/// What a script fed to a target came to.
struct ScriptRun {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    /// The runner killed it at its limit.
    killed: bool,
    elapsed: Duration,
}

impl ScriptRun {
    fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
}

/// Data streamed to a script's stdin.
enum Input {
    None,
    /// A tar stream of this local folder's contents.
    TarOf(PathBuf),
}

impl Transport {
    pub fn new(spec: TargetSpec, ssh: Option<SshAccess>) -> Transport {
        Transport { spec, ssh }
    }

    /// The root as the target sees it, without a trailing `/` (`""` for `/`).
    fn root(&self) -> String {
        let root = self.spec.kind.root();
        root.trim_end_matches('/').to_string()
    }

    /// An absolute path of the AppSpec (or of the host) as the target sees it.
    fn on_target(&self, path: &str) -> String {
        let root = self.root();
        if path == "/" {
            if root.is_empty() { "/".into() } else { root }
        } else {
            format!("{root}/{}", path.trim_start_matches('/'))
        }
    }

    /// `<root>/var/lib/sluice-deploy/<application>`.
    fn application_dir(&self, application: &str) -> Result<String, TargetError> {
        check_name("application", application)?;
        Ok(self.on_target(&format!("/var/lib/sluice-deploy/{application}")))
    }

    /// A path an operation receives: absolute, without `..`, under the root.
    fn under_root(&self, what: &str, path: &str) -> Result<(), TargetError> {
        let root = self.root();
        let inside = path.starts_with('/')
            && !path.split('/').any(|c| c == "..")
            && (root.is_empty() || path == root || path.starts_with(&format!("{root}/")));
        if inside && !path.contains('\0') {
            Ok(())
        } else {
            Err(self.failed(format!(
                "{what} `{path}` is not an absolute path under the target's root `{}`",
                self.spec.kind.root()
            )))
        }
    }

    /// An archive an operation receives: one this transport made.
    fn check_archive(&self, archive: &str) -> Result<(), TargetError> {
        self.under_root("archive", archive)?;
        let base = self.on_target("/var/lib/sluice-deploy/");
        if archive.starts_with(&base) && archive.ends_with("/deployment-archive") {
            Ok(())
        } else {
            Err(self.failed(format!(
                "archive `{archive}` is not a deployment archive (expected {base}<application>/<deployment-id>/deployment-archive)"
            )))
        }
    }

    fn failed(&self, why: impl std::fmt::Display) -> TargetError {
        TargetError::Failed(format!("target `{}`: {why}", self.spec.name))
    }

    /// DownloadBundle: copy `source` into a new archive folder for `deployment_id`.
    pub async fn download_bundle(
        &self,
        application: &str,
        deployment_id: &str,
        source: &ResolvedSource,
    ) -> Result<wit::StagedBundle, TargetError> {
        check_name("deployment id", deployment_id)?;
        let folder = format!("{}/{deployment_id}", self.application_dir(application)?);
        let archive = format!("{folder}/deployment-archive");
        let prepare = format!(
            "rm -rf {a} {a}.partial && mkdir -p {a}.partial",
            a = sh_quote(&archive)
        );
        let finish = format!("mv {a}.partial {a}", a = sh_quote(&archive));
        let digest = match source {
            ResolvedSource::LocalFolder(src) => {
                // Digest first: it refuses symlinks before anything is copied.
                let digest = bundle_digest(src)?;
                match &self.spec.kind {
                    TargetKind::Local { .. } => {
                        let script = format!(
                            "{prepare} && cp -R -p {s}/. {a}.partial/ && {finish}",
                            s = sh_quote(&src.display().to_string()),
                            a = sh_quote(&archive)
                        );
                        self.expect_ok("DownloadBundle", &script, Input::None)
                            .await?;
                    }
                    TargetKind::Ssh { .. } => {
                        let script = format!(
                            "{prepare} && tar -x --no-same-owner -p -f - -C {a}.partial && {finish}",
                            a = sh_quote(&archive)
                        );
                        self.expect_ok("DownloadBundle", &script, Input::TarOf(src.clone()))
                            .await?;
                    }
                }
                digest
            }
            ResolvedSource::Archive(from) => {
                self.check_archive(from)?;
                let script = format!(
                    "{SCRIPT_HEAD}[ -d {f} ] || refuse {gone}\n{prepare} && cp -R -p {f}/. {a}.partial/ && {finish}",
                    f = sh_quote(from),
                    gone = sh_quote(&format!("archive {from} is not on the target (removed?)")),
                    a = sh_quote(&archive)
                );
                self.expect_ok("DownloadBundle", &script, Input::None)
                    .await?;
                self.archive_digest(&archive).await?
            }
        };
        Ok(wit::StagedBundle { archive, digest })
    }

    /// The digest of an archive on the target.
    pub async fn archive_digest(&self, archive: &str) -> Result<String, TargetError> {
        self.check_archive(archive)?;
        if let TargetKind::Local { .. } = self.spec.kind {
            return bundle_digest(Path::new(archive));
        }
        let out = self
            .expect_ok("digest", &digest_script(archive), Input::None)
            .await?;
        let hex = out.trim();
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(format!("sha256:{hex}"))
        } else {
            Err(self.failed(format!("the digest of {archive} came back as `{hex}`")))
        }
    }

    /// The text of `path` (relative, without `..`) inside `archive`, at most
    /// [`MAX_ARCHIVE_FILE`] bytes: the AppSpec of a revision already on the target.
    pub async fn read_archive_file(
        &self,
        archive: &str,
        path: &str,
    ) -> Result<String, TargetError> {
        self.check_archive(archive)?;
        if path.is_empty()
            || path.starts_with('/')
            || path.contains('\0')
            || path.split('/').any(|c| c == "..")
        {
            return Err(self.failed(format!(
                "`{path}` is not a relative path inside the archive"
            )));
        }
        let file = format!("{archive}/{path}");
        let script = format!(
            "{SCRIPT_HEAD}[ -f {f} ] || refuse {missing}\n\
             [ \"$(wc -c <{f})\" -le {MAX_ARCHIVE_FILE} ] || refuse {big}\n\
             cat {f}\n",
            f = sh_quote(&file),
            missing = sh_quote(&format!("{path} is not a file in archive {archive}")),
            big = sh_quote(&format!(
                "{path} in archive {archive} is larger than {MAX_ARCHIVE_FILE} bytes"
            )),
        );
        self.expect_ok(&format!("reading {path}"), &script, Input::None)
            .await
    }

    /// Install: remove `cleanup`, copy `files`, apply `permissions`; returns the files
    /// copied, as the target sees them.
    pub async fn install(&self, request: &wit::InstallRequest) -> Result<Vec<String>, TargetError> {
        self.check_archive(&request.archive)?;
        let script = self.install_script(request)?;
        let out = self.expect_ok("Install", &script, Input::None).await?;
        Ok(out
            .lines()
            .filter_map(|l| l.strip_prefix("installed "))
            .map(str::to_string)
            .collect())
    }

    fn install_script(&self, request: &wit::InstallRequest) -> Result<String, TargetError> {
        let q = sh_quote;
        let mut s = String::from(SCRIPT_HEAD);
        let needs_root = request
            .permissions
            .iter()
            .find(|p| p.owner.is_some() || p.group.is_some());
        if let Some(p) = needs_root {
            s.push_str(&format!(
                "[ \"$(id -u)\" = 0 ] || refuse {}\n",
                q(&format!(
                    "permissions entry for `{}` sets owner/group, which needs root; the {} is not root (run it as root, or drop owner/group)",
                    p.object,
                    self.who()
                ))
            ));
        }
        for path in &request.cleanup {
            self.under_root("cleanup file", path)?;
            s.push_str(&format!("rm -f -- {}\n", q(path)));
        }
        s.push_str("plan=$(mktemp -d) || exit 1\ntrap 'rm -rf \"$plan\"' EXIT\n");
        for (i, copy) in request.files.iter().enumerate() {
            if copy.source.split('/').any(|c| c == "..") {
                return Err(self.failed(format!(
                    "files source `{}` leaves the bundle (`..`)",
                    copy.source
                )));
            }
            if !copy.destination.starts_with('/') || copy.destination.split('/').any(|c| c == "..")
            {
                return Err(self.failed(format!(
                    "files destination `{}` must be an absolute path without `..`",
                    copy.destination
                )));
            }
            let src = match copy.source.trim_matches('/') {
                "" => request.archive.clone(),
                rel => format!("{}/{rel}", request.archive),
            };
            let dst = self.on_target(&copy.destination);
            // Each copy: a list of relative files and the folder they are relative to.
            s.push_str(&format!(
                "S{i}={src}; D{i}={dst}\n\
                 if [ -d \"$S{i}\" ]; then (cd \"$S{i}\" && find . ! -type d -print) >\"$plan/{i}\"\n\
                 elif [ -e \"$S{i}\" ]; then printf './%s\\n' \"${{S{i}##*/}}\" >\"$plan/{i}\"; S{i}=${{S{i}%/*}}\n\
                 else refuse {missing}; fi\n",
                src = q(&src),
                dst = q(&dst),
                missing = q(&format!(
                    "files source `{}` is not in the bundle",
                    copy.source
                )),
            ));
        }
        let n = request.files.len();
        match request.exists {
            wit::FileExistsBehavior::Disallow => {
                // Check every file before copying any.
                for i in 0..n {
                    s.push_str(&format!(
                        "while IFS= read -r r; do t=\"$D{i}/${{r#./}}\"; if [ -e \"$t\" ] || [ -L \"$t\" ]; then refuse \"$t already exists and file_exists_behavior is DISALLOW (the previous revision did not install it); remove it, or set file_exists_behavior: OVERWRITE or RETAIN\"; fi; done <\"$plan/{i}\"\n"
                    ));
                }
            }
            wit::FileExistsBehavior::Overwrite | wit::FileExistsBehavior::Retain => {}
        }
        let retain = matches!(request.exists, wit::FileExistsBehavior::Retain);
        for i in 0..n {
            s.push_str(&format!(
                "while IFS= read -r r; do r=${{r#./}}; t=\"$D{i}/$r\"\n\
                 {skip}\
                 mkdir -p \"${{t%/*}}\" || exit 1\n\
                 if [ -d \"$t\" ] && [ ! -L \"$t\" ]; then refuse \"$t is a folder; the bundle has a file there\"; fi\n\
                 rm -f -- \"$t\" && cp -p -- \"$S{i}/$r\" \"$t\" || exit 1\n\
                 printf 'installed %s\\n' \"$t\"\n\
                 done <\"$plan/{i}\"\n",
                skip = if retain {
                    "if [ -e \"$t\" ] || [ -L \"$t\" ]; then continue; fi\n"
                } else {
                    ""
                }
            ));
        }
        for p in &request.permissions {
            s.push_str(&self.permission_script(p)?);
        }
        Ok(s)
    }

    /// One `permissions` entry: on the object itself when it is a file, else on the
    /// files and folders under it that `pattern` (default all) matches, minus
    /// `except`, limited to `kinds`.
    fn permission_script(&self, p: &wit::Permission) -> Result<String, TargetError> {
        let q = sh_quote;
        if !p.object.starts_with('/') || p.object.split('/').any(|c| c == "..") {
            return Err(self.failed(format!(
                "permissions object `{}` must be an absolute path without `..`",
                p.object
            )));
        }
        for name in p.owner.iter().chain(&p.group) {
            let ok = !name.is_empty()
                && !name.starts_with('-')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !ok {
                return Err(self.failed(format!(
                    "permissions entry for `{}`: `{name}` is not a user or group name",
                    p.object
                )));
            }
        }
        let object = self.on_target(&p.object);
        let mut actions = Vec::new();
        if let Some(mode) = p.mode {
            if mode > 0o7777 {
                return Err(self.failed(format!(
                    "permissions entry for `{}`: mode {mode:o} is not a file mode",
                    p.object
                )));
            }
            actions.push(format!("chmod {mode:o}"));
        }
        match (&p.owner, &p.group) {
            (Some(o), Some(g)) => actions.push(format!("chown {o}:{g}")),
            (Some(o), None) => actions.push(format!("chown {o}")),
            (None, Some(g)) => actions.push(format!("chgrp {g}")),
            (None, None) => {}
        }
        if actions.is_empty() {
            return Ok(String::new());
        }
        let mut filter = String::new();
        let kinds: Vec<&str> = p.kinds.iter().map(String::as_str).collect();
        match (kinds.contains(&"file"), kinds.contains(&"directory")) {
            (true, false) => filter.push_str(" -type f"),
            (false, true) => filter.push_str(" -type d"),
            _ => filter.push_str(" \\( -type f -o -type d \\)"),
        }
        if let Some(pattern) = p.pattern.as_deref().filter(|p| *p != "**" && !p.is_empty()) {
            filter.push_str(&format!(" -name {}", q(pattern)));
        }
        for except in &p.except {
            if except.starts_with('/') {
                let mapped = self.on_target(except);
                filter.push_str(&format!(" ! -path {m} ! -path {m}/'*'", m = q(&mapped)));
            } else if except.contains('/') {
                let mapped = format!("{object}/{}", except.trim_end_matches('/'));
                filter.push_str(&format!(" ! -path {m} ! -path {m}/'*'", m = q(&mapped)));
            } else {
                filter.push_str(&format!(" ! -name {}", q(except)));
            }
        }
        let mut s = format!(
            "[ -e {o} ] || refuse {missing}\n",
            o = q(&object),
            missing = q(&format!(
                "permissions object `{}` does not exist on the target (at {object})",
                p.object
            ))
        );
        for action in actions {
            s.push_str(&format!(
                "if [ -d {o} ]; then find {o} -mindepth 1{filter} -exec {action} {{}} + || exit 1; else {action} {o} || exit 1; fi\n",
                o = q(&object)
            ));
        }
        Ok(s)
    }

    /// Who runs the scripts, for messages.
    fn who(&self) -> String {
        match (&self.spec.kind, &self.ssh) {
            (TargetKind::Local { .. }, _) => "runner".into(),
            (TargetKind::Ssh { .. }, Some(SshAccess { user: Some(u), .. })) => {
                format!("SSH user `{u}`")
            }
            (TargetKind::Ssh { .. }, _) => "SSH user".into(),
        }
    }

    /// Run one hook script, killed at its timeout or at `deadline`, whichever comes
    /// first.
    pub async fn run_hook(
        &self,
        deployment_id: &str,
        hook: &wit::Hook,
        deadline: Instant,
    ) -> Result<wit::HookOutcome, TargetError> {
        check_name("deployment id", deployment_id)?;
        self.check_archive(&hook.archive)?;
        if hook.script.starts_with('/') || hook.script.split('/').any(|c| c == "..") {
            return Err(self.failed(format!(
                "{} hook `{}` must be a path inside the bundle",
                hook.event, hook.script
            )));
        }
        let now = Instant::now();
        let limit =
            Duration::from_millis(hook.timeout_ms).min(deadline.saturating_duration_since(now));
        if limit.is_zero() {
            return Err(self.failed(format!(
                "{} hook `{}`: no time is left before the step's deadline",
                hook.event, hook.script
            )));
        }
        let event: String = hook
            .event
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let unique = format!(
            "{}-{}",
            std::process::id(),
            HOOK_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let log = format!(
            "{}/hook-logs/{deployment_id}.{event}.{unique}.log",
            hook.archive.trim_end_matches("/deployment-archive")
        );
        let script = self.hook_script(hook, &log, limit);
        let run = self
            .run(&script, Input::None, Some(limit + KILL_GRACE))
            .await?;
        if let Some(line) = run
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("sluice-refused: "))
        {
            return Err(self.failed(line));
        }
        let exit_line = run
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("sluice-exit: "))
            .and_then(|c| c.trim().parse::<i32>().ok());
        let Some(code) = exit_line else {
            if run.killed {
                // Killed by the runner: read what the log has.
                let tail = self.read_tail(&log).await.unwrap_or_default();
                return Ok(wit::HookOutcome {
                    exit_code: None,
                    signal: Some(9),
                    timed_out: true,
                    output_tail: tail,
                    duration_ms: run.elapsed.as_millis() as u64,
                });
            }
            return Err(
                self.unreachable_or_failed(&run, &format!("{} hook `{}`", hook.event, hook.script))
            );
        };
        // After the exit line: the log's tail.
        let tail = run
            .stdout
            .split_once("sluice-exit: ")
            .and_then(|(_, rest)| rest.split_once('\n'))
            .map(|(_, tail)| tail_of(tail))
            .unwrap_or_default();
        // A shell reports death by signal N as 128+N; `timeout -s KILL` kills itself
        // with the script's group, hence 137.
        let (exit_code, signal) = if code > 128 && code <= 128 + 64 {
            (None, Some(code - 128))
        } else {
            (Some(code), None)
        };
        let timed_out =
            run.elapsed + Duration::from_millis(50) >= limit && (signal == Some(9) || code == 124);
        Ok(wit::HookOutcome {
            exit_code,
            signal,
            timed_out,
            output_tail: tail,
            duration_ms: run.elapsed.as_millis() as u64,
        })
    }

    /// The hook wrapper: checks (archive, script, runas), then the script under
    /// `timeout`, its output to `log`; prints `sluice-exit: <code>` and the log's tail.
    fn hook_script(&self, hook: &wit::Hook, log: &str, limit: Duration) -> String {
        let q = sh_quote;
        let mut s = String::from(SCRIPT_HEAD);
        s.push_str(&format!(
            "cd {a} 2>/dev/null || refuse {no_archive}\n\
             [ -f {sc} ] && [ -r {sc} ] || refuse {no_script}\n",
            a = q(&hook.archive),
            sc = q(&hook.script),
            no_archive = q(&format!("archive {} is not on the target", hook.archive)),
            no_script = q(&format!(
                "{} hook script `{}` is missing or not readable in {}",
                hook.event, hook.script, hook.archive
            )),
        ));
        let mut env = vec![("PATH".to_string(), HOOK_PATH.to_string())];
        let mut runas = String::new();
        match &hook.runas {
            Some(user) => {
                let valid = !user.is_empty()
                    && !user.starts_with('-')
                    && user
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
                if !valid {
                    s.push_str(&format!(
                        "refuse {}\n",
                        q(&format!(
                            "{} hook `{}`: runas `{user}` is not a user name",
                            hook.event, hook.script
                        ))
                    ));
                }
                s.push_str(&format!(
                    "[ \"$(id -u)\" = 0 ] || refuse {needs_root}\n\
                     home=$(getent passwd {u} | cut -d: -f6) && [ -n \"$home\" ] || refuse {no_user}\n",
                    u = q(user),
                    needs_root = q(&format!(
                        "{} hook `{}`: runas `{user}` needs the {} to be root",
                        hook.event,
                        hook.script,
                        self.who()
                    )),
                    no_user = q(&format!(
                        "{} hook `{}`: runas user `{user}` does not exist on the target",
                        hook.event, hook.script
                    )),
                ));
                runas = format!("runuser -u {} -- ", q(user));
            }
            None => s.push_str("home=${HOME:-/}\n"),
        }
        env.extend(self.spec.vars.iter().cloned());
        env.push(("SLUICE_TARGET".into(), self.spec.name.clone()));
        env.push(("SLUICE_TARGET_ROOT".into(), self.spec.kind.root()));
        env.extend(hook.env.iter().cloned());
        let assignments: Vec<String> = env
            .iter()
            .filter(|(k, _)| valid_var(k))
            .map(|(k, v)| q(&format!("{k}={v}")))
            .collect();
        let seconds = format!("{}.{:03}", limit.as_secs(), limit.subsec_millis());
        s.push_str(&format!(
            "log={log}\nmkdir -p \"${{log%/*}}\" && : >\"$log\" || exit 1\n\
             {runas}env -i \"HOME=$home\" {assignments} timeout -s KILL {seconds} sh {sc} </dev/null >>\"$log\" 2>&1\n\
             code=$?\nprintf 'sluice-exit: %s\\n' \"$code\"\ntail -c {TAIL_BYTES} \"$log\"\n",
            log = q(log),
            assignments = assignments.join(" "),
            sc = q(&hook.script),
        ));
        s
    }

    /// The tail of a log file on the target.
    async fn read_tail(&self, log: &str) -> Result<String, TargetError> {
        let out = self
            .expect_ok(
                "hook output",
                &format!("tail -c {TAIL_BYTES} {}", sh_quote(log)),
                Input::None,
            )
            .await?;
        Ok(tail_of(&out))
    }

    /// Write the copy of the target's record (JSON) on the target, atomically, then
    /// remove deployment folders beyond the newest [`KEEP_ARCHIVES`] that the record
    /// does not name.
    pub async fn write_record_copy(
        &self,
        application: &str,
        json: &str,
    ) -> Result<(), TargetError> {
        let dir = self.application_dir(application)?;
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| self.failed(format!("the record to write is not JSON: {e}")))?;
        let mut keep = HashSet::new();
        collect_archives(&value, &mut keep);
        let keep: Vec<String> = keep
            .into_iter()
            .filter_map(|a| {
                let rest = a.strip_prefix(&format!("{dir}/"))?;
                let (folder, _) = rest.split_once('/')?;
                Some(folder.to_string())
            })
            .filter(|f| valid_name(f))
            .collect();
        let script = format!(
            "{SCRIPT_HEAD}mkdir -p {d} && cd {d} || exit 1\n\
             printf '%s\\n' {j} >record.json.partial && mv -f record.json.partial record.json || exit 1\n\
             n=0\nfor f in $(ls -1t); do [ -d \"$f\" ] || continue; n=$((n+1)); [ $n -le {KEEP_ARCHIVES} ] && continue\n\
             case ' {k} ' in *\" $f \"*) continue;; esac\nrm -rf -- \"$f\"\ndone\n",
            d = sh_quote(&dir),
            j = sh_quote(json),
            k = keep.join(" "),
        );
        self.expect_ok("record", &script, Input::None).await?;
        Ok(())
    }

    /// Run a script; its stdout when it exits 0, else an error with what it said.
    async fn expect_ok(
        &self,
        what: &str,
        script: &str,
        input: Input,
    ) -> Result<String, TargetError> {
        let run = self.run(script, input, None).await?;
        match run.code() {
            Some(0) => Ok(run.stdout),
            Some(REFUSED) => {
                let why = run
                    .stdout
                    .lines()
                    .find_map(|l| l.strip_prefix("sluice-refused: "));
                Err(self.failed(format!(
                    "{what}: {}",
                    why.unwrap_or_else(|| run.stderr.trim())
                )))
            }
            _ => Err(self.unreachable_or_failed(&run, what)),
        }
    }

    /// The error for a script that failed: ssh's own failures (exit 255) are
    /// `Unreachable`, with a fix for host key problems.
    fn unreachable_or_failed(&self, run: &ScriptRun, what: &str) -> TargetError {
        let stderr = tail_of(run.stderr.trim());
        if let (TargetKind::Ssh { host, port, .. }, Some(255)) = (&self.spec.kind, run.code()) {
            let known_hosts = self
                .ssh
                .as_ref()
                .and_then(|s| s.known_hosts.as_deref())
                .map_or("the granted known_hosts file".into(), |p| {
                    p.display().to_string()
                });
            let entry = if *port == 22 {
                host.clone()
            } else {
                format!("[{host}]:{port}")
            };
            let replace = format!(
                "check the key's fingerprint with whoever runs the host, then replace its line: ssh-keygen -R '{entry}' -f {known_hosts} && ssh-keyscan -p {port} {host} >> {known_hosts}"
            );
            if stderr.contains("HOST IDENTIFICATION HAS CHANGED") {
                return TargetError::Unreachable(format!(
                    "target `{}`: the host key of {host} port {port} differs from the one {known_hosts} has for `{entry}` (the host was rebuilt, or someone else answers in its place); nothing was done on it. If the change is expected, {replace}",
                    self.spec.name
                ));
            }
            if stderr.contains("Host key verification failed")
                || stderr.contains("host key is known")
            {
                return TargetError::Unreachable(format!(
                    "target `{}`: {known_hosts} has no key for `{entry}` ({host} port {port}) and host keys are checked strictly; nothing was done on it. To trust it, check the key's fingerprint with whoever runs the host, then add it: ssh-keyscan -p {port} {host} >> {known_hosts}; or, for a first contact only, grant host-key-checking = \"accept-new\"",
                    self.spec.name
                ));
            }
            return TargetError::Unreachable(format!(
                "target `{}`: ssh to {host} port {port} failed during {what}: {stderr}",
                self.spec.name
            ));
        }
        let mut message = format!("{what} failed");
        match run.status {
            Some(s) => message.push_str(&format!(" ({s})")),
            None => message.push_str(" (killed)"),
        }
        if !stderr.is_empty() {
            message.push_str(&format!(": {stderr}"));
        }
        self.failed(message)
    }

    /// Feed `script` to the target's shell, with `input` on stdin, killed (with its
    /// process group, locally) after `limit`.
    async fn run(
        &self,
        script: &str,
        input: Input,
        limit: Option<Duration>,
    ) -> Result<ScriptRun, TargetError> {
        let started = Instant::now();
        let mut feeder = None;
        let mut command = match &self.spec.kind {
            TargetKind::Local { folder } => {
                std::fs::create_dir_all(folder).map_err(|e| {
                    TargetError::Unreachable(format!(
                        "target `{}`: cannot make its folder {}: {e}",
                        self.spec.name,
                        folder.display()
                    ))
                })?;
                let mut c = Command::new("sh");
                c.arg("-c").arg(script).current_dir(folder);
                c.env_clear().env("PATH", HOOK_PATH).env("LC_ALL", "C").env(
                    "HOME",
                    std::env::var_os("HOME").unwrap_or_else(|| "/".into()),
                );
                c.process_group(0);
                c.stdin(Stdio::null());
                c
            }
            TargetKind::Ssh { host, port, .. } => {
                let mut c = Command::new("ssh");
                c.args(self.ssh_args(host, *port)?);
                match &input {
                    Input::None => {
                        c.arg("sh -s");
                        c.stdin(Stdio::piped());
                    }
                    Input::TarOf(_) => {
                        c.arg(format!("sh -c {}", sh_quote(script)));
                    }
                }
                c.env("LC_ALL", "C");
                c
            }
        };
        if let Input::TarOf(folder) = &input {
            let mut tar = Command::new("tar");
            tar.arg("-C").arg(folder).args(["-cf", "-", "."]);
            tar.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            let mut tar = tar
                .spawn()
                .map_err(|e| self.failed(format!("cannot start tar: {e}")))?;
            let out: Stdio = tar
                .stdout
                .take()
                .expect("piped")
                .try_into()
                .map_err(|e| self.failed(format!("cannot stream the bundle: {e}")))?;
            command.stdin(out);
            feeder = Some(tar);
        }
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            TargetError::Unreachable(format!(
                "target `{}`: cannot start {}: {e}",
                self.spec.name,
                if self.ssh.is_some() { "ssh" } else { "sh" }
            ))
        })?;
        drop(command);
        if let (TargetKind::Ssh { .. }, Input::None) = (&self.spec.kind, &input) {
            let mut stdin = child.stdin.take().expect("piped");
            let script = script.as_bytes().to_vec();
            tokio::spawn(async move {
                let _ = stdin.write_all(&script).await;
                let _ = stdin.shutdown().await;
            });
        }
        let stdout = tokio::spawn(read_capped(child.stdout.take().expect("piped")));
        let stderr = tokio::spawn(read_capped(child.stderr.take().expect("piped")));
        let pid = child.id();
        let mut killed = false;
        let status = match limit {
            None => child.wait().await.ok(),
            Some(limit) => match tokio::time::timeout(limit, child.wait()).await {
                Ok(status) => status.ok(),
                Err(_) => {
                    killed = true;
                    if let (TargetKind::Local { .. }, Some(pid)) = (&self.spec.kind, pid)
                        && let Some(pid) = rustix::process::Pid::from_raw(pid as i32)
                    {
                        let _ =
                            rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                    }
                    let _ = child.kill().await;
                    None
                }
            },
        };
        if let Some(mut tar) = feeder {
            let _ = tokio::time::timeout(DRAIN, tar.wait()).await;
            let _ = tar.kill().await;
        }
        // The script's own process has ended: what is left of its output, briefly.
        let drain = |h: tokio::task::JoinHandle<Vec<u8>>| async move {
            match tokio::time::timeout(DRAIN, h).await {
                Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
                _ => String::new(),
            }
        };
        let stdout = drain(stdout).await;
        let stderr = drain(stderr).await;
        Ok(ScriptRun {
            status,
            stdout,
            stderr,
            killed,
            elapsed: started.elapsed(),
        })
    }

    /// `ssh` options and destination for one target; the key and known_hosts are
    /// files, the user's own ssh config is not read.
    fn ssh_args(&self, host: &str, port: u16) -> Result<Vec<String>, TargetError> {
        let access = self.ssh.as_ref().ok_or_else(|| {
            self.failed("an ssh target needs the step's `ssh` grant (identity, known-hosts)")
        })?;
        let known_hosts = access.known_hosts.as_ref().ok_or_else(|| {
            self.failed("the `ssh` grant has no `known-hosts`; host keys are always checked")
        })?;
        let checking = match access.checking {
            HostKeyChecking::Strict => "yes",
            HostKeyChecking::AcceptNew => "accept-new",
        };
        let mut args = vec![
            "-F".into(),
            "/dev/null".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            format!("StrictHostKeyChecking={checking}"),
            "-o".into(),
            format!("UserKnownHostsFile={}", known_hosts.display()),
            "-o".into(),
            "GlobalKnownHostsFile=/dev/null".into(),
            "-o".into(),
            "ConnectTimeout=15".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
            "-p".into(),
            port.to_string(),
        ];
        if let Some(identity) = &access.identity_file {
            args.extend([
                "-o".into(),
                "IdentitiesOnly=yes".into(),
                "-i".into(),
                identity.display().to_string(),
            ]);
        }
        let destination = match &access.user {
            Some(user) => format!("{user}@{host}"),
            None => host.to_string(),
        };
        args.push("--".into());
        args.push(destination);
        Ok(args)
    }
}

/// What every operation script starts with.
const SCRIPT_HEAD: &str =
    "export LC_ALL=C\nrefuse() { printf 'sluice-refused: %s\\n' \"$*\"; exit 3; }\n";

/// The shell computing the bundle digest of `archive` (see the module doc).
fn digest_script(archive: &str) -> String {
    format!(
        "{SCRIPT_HEAD}cd {a} || refuse {missing}\n\
         odd=$(find . ! -type f ! -type d -print | head -n 1)\n\
         [ -z \"$odd\" ] || refuse \"$odd in the archive is not a regular file or folder\"\n\
         find . -type f -print | sort | while IFS= read -r f; do\n\
         case $(stat -c %A \"$f\") in *[xst]*) m=x;; *) m=-;; esac\n\
         h=$(sha256sum <\"$f\" | cut -d' ' -f1)\n\
         printf '%s %s %s\\n' \"$m\" \"$h\" \"${{f#./}}\"\n\
         done | sha256sum | cut -d' ' -f1\n",
        a = sh_quote(archive),
        missing = sh_quote(&format!("archive {archive} is not on the target")),
    )
}

/// `value` single-quoted for a POSIX shell: `'` becomes `'\''`.
pub fn sh_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn check_name(what: &str, s: &str) -> Result<(), TargetError> {
    if valid_name(s) {
        Ok(())
    } else {
        Err(TargetError::Failed(format!(
            "{what} `{s}` must start with a letter or digit and use only letters, digits, `-`, `_` and `.` (it names a folder on the target)"
        )))
    }
}

fn valid_var(k: &str) -> bool {
    k.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Every string under a key `archive` of a record, at any depth.
fn collect_archives(value: &serde_json::Value, out: &mut HashSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if k == "archive"
                    && let Some(s) = v.as_str()
                {
                    out.insert(s.to_string());
                }
                collect_archives(v, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_archives(v, out)),
        _ => {}
    }
}

/// The last [`TAIL_LINES`] lines and at most [`TAIL_BYTES`] bytes of `text`.
fn tail_of(text: &str) -> String {
    let mut start = text.len().saturating_sub(TAIL_BYTES);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let text = &text[start..];
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

async fn read_capped(mut reader: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => {
                if out.len() < OUTPUT_CAP {
                    out.extend_from_slice(&buf[..n]);
                }
            }
        }
    }
}

/// The digest of a bundle folder (see the module doc for the exact format).
pub fn bundle_digest(folder: &Path) -> Result<String, TargetError> {
    let meta = std::fs::metadata(folder)
        .map_err(|e| TargetError::Failed(format!("bundle folder {}: {e}", folder.display())))?;
    if !meta.is_dir() {
        return Err(TargetError::Failed(format!(
            "bundle {} is not a folder",
            folder.display()
        )));
    }
    let mut files = Vec::new();
    walk(folder, "", &mut files)?;
    files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut manifest = Sha256::new();
    for (rel, path, executable) in files {
        let mut file = std::fs::File::open(&path)
            .map_err(|e| TargetError::Failed(format!("bundle file {}: {e}", path.display())))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| TargetError::Failed(format!("bundle file {}: {e}", path.display())))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let mode = if executable { 'x' } else { '-' };
        manifest.update(format!("{mode} {} {rel}\n", hex::encode(hasher.finalize())).as_bytes());
    }
    Ok(format!("sha256:{}", hex::encode(manifest.finalize())))
}

/// The regular files under `dir`: (relative path, path, executable).
fn walk(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<(String, PathBuf, bool)>,
) -> Result<(), TargetError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| TargetError::Failed(format!("bundle folder {}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry
            .map_err(|e| TargetError::Failed(format!("bundle folder {}: {e}", dir.display())))?;
        let path = entry.path();
        let name = entry.file_name().into_string().map_err(|n| {
            TargetError::Failed(format!(
                "bundle file {}: the name {n:?} is not UTF-8",
                path.display()
            ))
        })?;
        if name.contains('\n') {
            return Err(TargetError::Failed(format!(
                "bundle file {}: a name with a newline cannot be deployed",
                path.display()
            )));
        }
        let rel = format!("{prefix}{name}");
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| TargetError::Failed(format!("bundle file {}: {e}", path.display())))?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            return Err(TargetError::Failed(format!(
                "bundle file {} is a symlink; bundles hold regular files and folders only (copy what it points to instead)",
                path.display()
            )));
        } else if kind.is_dir() {
            walk(&path, &format!("{rel}/"), out)?;
        } else if kind.is_file() {
            out.push((rel, path, meta.permissions().mode() & 0o111 != 0));
        } else {
            return Err(TargetError::Failed(format!(
                "bundle file {} is not a regular file or folder",
                path.display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourcePos;

    fn local(folder: &Path) -> Transport {
        local_with_vars(folder, vec![])
    }

    fn local_with_vars(folder: &Path, vars: Vec<(String, String)>) -> Transport {
        Transport::new(
            TargetSpec {
                name: "box-1".into(),
                group: "one-box".into(),
                kind: TargetKind::Local {
                    folder: folder.to_path_buf(),
                },
                url: None,
                vars,
                pos: SourcePos {
                    file: "sluice.toml".into(),
                    line: 1,
                    column: 1,
                },
            },
            None,
        )
    }

    fn write(path: &Path, text: &str, mode: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A bundle: appspec, a web folder, a script.
    fn bundle(dir: &Path) -> PathBuf {
        let b = dir.join("bundle");
        write(&b.join("appspec.yml"), "version: 0.0\nos: linux\n", 0o644);
        write(&b.join("web/index.html"), "v1\n", 0o644);
        write(&b.join("web/css/site.css"), "body{}\n", 0o644);
        write(&b.join("scripts/start.sh"), "echo start\n", 0o755);
        b
    }

    async fn staged(t: &Transport, dir: &Path, id: &str) -> wit::StagedBundle {
        t.download_bundle("shop", id, &ResolvedSource::LocalFolder(bundle(dir)))
            .await
            .unwrap()
    }

    fn hook(archive: &str, script: &str, timeout_ms: u64) -> wit::Hook {
        wit::Hook {
            event: "ApplicationStart".into(),
            archive: archive.into(),
            script: script.into(),
            env: vec![("LIFECYCLE_EVENT".into(), "ApplicationStart".into())],
            timeout_ms,
            runas: None,
        }
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

    #[test]
    fn bundle_digests_cover_paths_contents_and_the_execute_bit() {
        let dir = tempfile::tempdir().unwrap();
        let b = bundle(dir.path());
        let first = bundle_digest(&b).unwrap();
        assert!(first.starts_with("sha256:") && first.len() == 71, "{first}");
        assert_eq!(bundle_digest(&b).unwrap(), first);
        std::fs::set_permissions(
            b.join("scripts/start.sh"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let no_x = bundle_digest(&b).unwrap();
        assert_ne!(no_x, first);
        std::fs::write(b.join("web/index.html"), "v2\n").unwrap();
        assert_ne!(bundle_digest(&b).unwrap(), no_x);
        std::fs::rename(b.join("web/css"), b.join("web/style")).unwrap();
        let renamed = bundle_digest(&b).unwrap();
        assert_ne!(renamed, no_x);
        // An empty folder does not count.
        std::fs::create_dir(b.join("empty")).unwrap();
        assert_eq!(bundle_digest(&b).unwrap(), renamed);
    }

    #[test]
    fn a_symlink_in_a_bundle_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let b = bundle(dir.path());
        std::os::unix::fs::symlink("/etc/passwd", b.join("web/link")).unwrap();
        let e = bundle_digest(&b).unwrap_err().to_string();
        assert!(e.contains("web/link is a symlink"), "{e}");
    }

    #[tokio::test]
    async fn the_shell_digest_on_a_target_equals_the_runners() {
        let dir = tempfile::tempdir().unwrap();
        let t = local(&dir.path().join("box-1"));
        let s = staged(&t, dir.path(), "d-1-1").await;
        // Names whose byte order differs from component order: `a-b` < `a/b`.
        let a = Path::new(&s.archive);
        write(&a.join("a-b"), "1", 0o644);
        write(&a.join("a/b"), "2", 0o4755);
        write(&a.join("a b/c'd"), "3", 0o600);
        let out = t
            .expect_ok("digest", &digest_script(&s.archive), Input::None)
            .await
            .unwrap();
        assert_eq!(format!("sha256:{}", out.trim()), bundle_digest(a).unwrap());
    }

    #[tokio::test]
    async fn read_archive_file_returns_a_staged_appspec_and_refuses_paths_out_of_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let t = local(&dir.path().join("box-1"));
        let s = staged(&t, dir.path(), "d-1-1").await;
        let text = t
            .read_archive_file(&s.archive, "appspec.yml")
            .await
            .unwrap();
        assert_eq!(text, "version: 0.0\nos: linux\n");
        let missing = t
            .read_archive_file(&s.archive, "scripts/none.sh")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("scripts/none.sh is not a file in archive"),
            "{missing}"
        );
        for outside in ["../../record.json", "/etc/passwd", ""] {
            let e = t.read_archive_file(&s.archive, outside).await.unwrap_err();
            assert!(
                e.to_string()
                    .contains("is not a relative path inside the archive"),
                "{e}"
            );
        }
        let not_an_archive = dir.path().join("box-1").display().to_string();
        assert!(
            t.read_archive_file(&not_an_archive, "appspec.yml")
                .await
                .is_err()
        );
        write(
            &Path::new(&s.archive).join("big.txt"),
            &"x".repeat(MAX_ARCHIVE_FILE + 1),
            0o644,
        );
        let big = t
            .read_archive_file(&s.archive, "big.txt")
            .await
            .unwrap_err();
        assert!(big.to_string().contains("larger than"), "{big}");
    }

    #[tokio::test]
    async fn download_bundle_copies_a_folder_into_the_archive_layout_keeping_modes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("box-1");
        let t = local(&root);
        let s = staged(&t, dir.path(), "d-1-1").await;
        assert_eq!(
            s.archive,
            format!(
                "{}/var/lib/sluice-deploy/shop/d-1-1/deployment-archive",
                root.display()
            )
        );
        assert_eq!(s.digest, bundle_digest(&dir.path().join("bundle")).unwrap());
        let script = Path::new(&s.archive).join("scripts/start.sh");
        assert_eq!(
            std::fs::metadata(&script).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert_eq!(
            std::fs::read_to_string(Path::new(&s.archive).join("web/index.html")).unwrap(),
            "v1\n"
        );
        // A rollback copies an archive already on the target.
        let again = t
            .download_bundle("shop", "d-1-2", &ResolvedSource::Archive(s.archive.clone()))
            .await
            .unwrap();
        assert!(again.archive.ends_with("/shop/d-1-2/deployment-archive"));
        assert_eq!(again.digest, s.digest);
        // Only archives this transport made.
        let e = t
            .download_bundle("shop", "d-1-3", &ResolvedSource::Archive("/etc".into()))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("is not an absolute path under the target's root"),
            "{e}"
        );
        let e = t
            .download_bundle(
                "../x",
                "d-1-3",
                &ResolvedSource::LocalFolder(dir.path().join("bundle")),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("application `../x`"), "{e}");
    }

    fn install_request(archive: &str, exists: wit::FileExistsBehavior) -> wit::InstallRequest {
        wit::InstallRequest {
            archive: archive.into(),
            files: vec![
                wit::FileCopy {
                    source: "web".into(),
                    destination: "/opt/app/www".into(),
                },
                wit::FileCopy {
                    source: "scripts/start.sh".into(),
                    destination: "/opt/app/bin".into(),
                },
            ],
            exists,
            cleanup: vec![],
            permissions: vec![],
        }
    }

    #[tokio::test]
    async fn install_copies_files_under_the_root_and_returns_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("box-1");
        let t = local(&root);
        let s = staged(&t, dir.path(), "d-1-1").await;
        let mut installed = t
            .install(&install_request(
                &s.archive,
                wit::FileExistsBehavior::Disallow,
            ))
            .await
            .unwrap();
        installed.sort();
        let r = root.display().to_string();
        assert_eq!(
            installed,
            [
                format!("{r}/opt/app/bin/start.sh"),
                format!("{r}/opt/app/www/css/site.css"),
                format!("{r}/opt/app/www/index.html"),
            ]
        );
        let start = root.join("opt/app/bin/start.sh");
        assert_eq!(
            std::fs::metadata(&start).unwrap().permissions().mode() & 0o777,
            0o755
        );
        // The next revision's Install removes these first: DISALLOW is then satisfied.
        let mut next = install_request(&s.archive, wit::FileExistsBehavior::Disallow);
        next.cleanup = installed.clone();
        assert_eq!(t.install(&next).await.unwrap().len(), 3);
        // A cleanup path outside the root is refused.
        next.cleanup = vec!["/etc/passwd".into()];
        let e = t.install(&next).await.unwrap_err().to_string();
        assert!(
            e.contains(
                "cleanup file `/etc/passwd` is not an absolute path under the target's root"
            ),
            "{e}"
        );
    }

    #[tokio::test]
    async fn disallow_fails_naming_the_existing_file_and_copies_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("box-1");
        let t = local(&root);
        let s = staged(&t, dir.path(), "d-1-1").await;
        write(
            &root.join("opt/app/www/css/site.css"),
            "someone else's\n",
            0o644,
        );
        let e = t
            .install(&install_request(
                &s.archive,
                wit::FileExistsBehavior::Disallow,
            ))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!(
                "{}/opt/app/www/css/site.css already exists and file_exists_behavior is DISALLOW",
                root.display()
            )),
            "{e}"
        );
        assert!(
            !root.join("opt/app/www/index.html").exists(),
            "nothing is copied when one file is in the way"
        );
    }

    #[tokio::test]
    async fn overwrite_replaces_and_retain_keeps_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("box-1");
        let t = local(&root);
        let s = staged(&t, dir.path(), "d-1-1").await;
        let existing = root.join("opt/app/www/index.html");
        write(&existing, "old\n", 0o644);
        let installed = t
            .install(&install_request(
                &s.archive,
                wit::FileExistsBehavior::Retain,
            ))
            .await
            .unwrap();
        assert_eq!(std::fs::read_to_string(&existing).unwrap(), "old\n");
        assert!(
            !installed.iter().any(|p| p.ends_with("/www/index.html")),
            "{installed:?}"
        );
        assert_eq!(installed.len(), 2);
        let installed = t
            .install(&install_request(
                &s.archive,
                wit::FileExistsBehavior::Overwrite,
            ))
            .await
            .unwrap();
        assert_eq!(std::fs::read_to_string(&existing).unwrap(), "v1\n");
        assert_eq!(installed.len(), 3);
    }

    #[tokio::test]
    async fn permissions_apply_modes_by_pattern_except_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("box-1");
        let t = local(&root);
        let s = staged(&t, dir.path(), "d-1-1").await;
        let mut request = install_request(&s.archive, wit::FileExistsBehavior::Disallow);
        request.permissions = vec![
            wit::Permission {
                object: "/opt/app/www".into(),
                pattern: Some("*.html".into()),
                except: vec![],
                owner: None,
                group: None,
                mode: Some(0o600),
                kinds: vec!["file".into()],
            },
            wit::Permission {
                object: "/opt/app/www".into(),
                pattern: None,
                except: vec!["css".into()],
                owner: None,
                group: None,
                mode: Some(0o750),
                kinds: vec!["directory".into()],
            },
        ];
        t.install(&request).await.unwrap();
        let mode = |p: &str| {
            std::fs::metadata(root.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("opt/app/www/index.html"), 0o600);
        assert_eq!(mode("opt/app/www/css/site.css"), 0o644, "pattern *.html");
        assert_ne!(mode("opt/app/www/css"), 0o750, "except css");
        request.permissions = vec![wit::Permission {
            object: "/opt/nothing".into(),
            pattern: None,
            except: vec![],
            owner: None,
            group: None,
            mode: Some(0o600),
            kinds: vec![],
        }];
        request.exists = wit::FileExistsBehavior::Overwrite;
        let e = t.install(&request).await.unwrap_err().to_string();
        assert!(
            e.contains("permissions object `/opt/nothing` does not exist"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_hook_runs_in_its_archive_with_a_clean_environment() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("box-1");
        let t = local_with_vars(&root, vec![("PORT".into(), "18081".into())]);
        let s = staged(&t, dir.path(), "d-1-1").await;
        write(
            &Path::new(&s.archive).join("scripts/env.sh"),
            "pwd\nenv | sort\necho 'to stderr' >&2\nexit 7\n",
            0o644,
        );
        // SAFETY: not read concurrently in this test process by anything that matters.
        let outcome = t
            .run_hook(
                "d-1-1",
                &hook(&s.archive, "scripts/env.sh", 10_000),
                Instant::now() + Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert_eq!(outcome.exit_code, Some(7));
        assert!(!outcome.timed_out);
        let tail = &outcome.output_tail;
        assert!(tail.contains(&s.archive), "{tail}");
        assert!(tail.contains("PORT=18081"), "{tail}");
        assert!(tail.contains("SLUICE_TARGET=box-1"), "{tail}");
        assert!(
            tail.contains(&format!("SLUICE_TARGET_ROOT={}", root.display())),
            "{tail}"
        );
        assert!(tail.contains("LIFECYCLE_EVENT=ApplicationStart"), "{tail}");
        assert!(tail.contains(&format!("PATH={HOOK_PATH}")), "{tail}");
        assert!(tail.contains("to stderr"), "{tail}");
        assert!(
            !tail.contains("CARGO"),
            "the runner's environment does not leak: {tail}"
        );
    }

    #[tokio::test]
    async fn a_missing_hook_script_is_an_error_not_an_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let t = local(&dir.path().join("box-1"));
        let s = staged(&t, dir.path(), "d-1-1").await;
        let e = t
            .run_hook(
                "d-1-1",
                &hook(&s.archive, "scripts/nope.sh", 10_000),
                Instant::now() + Duration::from_secs(60),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ApplicationStart hook script `scripts/nope.sh` is missing or not readable"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_hook_past_its_timeout_is_killed_with_its_grandchildren() {
        let dir = tempfile::tempdir().unwrap();
        let t = local(&dir.path().join("box-1"));
        let s = staged(&t, dir.path(), "d-1-1").await;
        let pid_file = dir.path().join("grandchild.pid");
        write(
            &Path::new(&s.archive).join("scripts/hang.sh"),
            &format!(
                "sleep 300 &\necho $! > {}\necho waiting\nsleep 300\n",
                pid_file.display()
            ),
            0o644,
        );
        let started = Instant::now();
        let outcome = t
            .run_hook(
                "d-1-1",
                &hook(&s.archive, "scripts/hang.sh", 1_000),
                Instant::now() + Duration::from_secs(60),
            )
            .await
            .unwrap();
        assert!(outcome.timed_out, "{outcome:?}");
        assert_eq!(outcome.exit_code, None);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(outcome.output_tail.contains("waiting"), "{outcome:?}");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(!alive(pid), "the hook's grandchild {pid} is still running");
    }

    #[tokio::test]
    async fn the_step_deadline_bounds_a_hook_too() {
        let dir = tempfile::tempdir().unwrap();
        let t = local(&dir.path().join("box-1"));
        let s = staged(&t, dir.path(), "d-1-1").await;
        write(
            &Path::new(&s.archive).join("scripts/hang.sh"),
            "sleep 300\n",
            0o644,
        );
        let outcome = t
            .run_hook(
                "d-1-1",
                &hook(&s.archive, "scripts/hang.sh", 600_000),
                Instant::now() + Duration::from_millis(800),
            )
            .await
            .unwrap();
        assert!(
            outcome.timed_out && outcome.duration_ms < 4_000,
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn a_hook_that_starts_a_daemon_returns_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let t = local(&dir.path().join("box-1"));
        let s = staged(&t, dir.path(), "d-1-1").await;
        let pid_file = dir.path().join("daemon.pid");
        // The daemon keeps the script's stdout and stderr open.
        write(
            &Path::new(&s.archive).join("scripts/start.sh"),
            &format!(
                "sleep 300 &\necho $! > {}\necho started\n",
                pid_file.display()
            ),
            0o644,
        );
        let started = Instant::now();
        let outcome = t
            .run_hook(
                "d-1-1",
                &hook(&s.archive, "scripts/start.sh", 30_000),
                Instant::now() + Duration::from_secs(60),
            )
            .await
            .unwrap();
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let daemon_was_alive = alive(pid);
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid).unwrap(),
            rustix::process::Signal::KILL,
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(outcome.exit_code, Some(0), "{outcome:?}");
        assert!(outcome.output_tail.contains("started"), "{outcome:?}");
        assert!(daemon_was_alive, "the daemon outlives its hook");
    }

    #[tokio::test]
    async fn runas_needs_root_and_an_existing_user() {
        let dir = tempfile::tempdir().unwrap();
        let t = local(&dir.path().join("box-1"));
        let s = staged(&t, dir.path(), "d-1-1").await;
        write(
            &Path::new(&s.archive).join("scripts/who.sh"),
            "id -u\n",
            0o644,
        );
        // The archive must be reachable by the other user.
        let mut p = PathBuf::from(&s.archive);
        while p.starts_with(dir.path()) {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p.pop();
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut h = hook(&s.archive, "scripts/who.sh", 10_000);
        h.runas = Some("nobody".into());
        let root = rustix::process::geteuid().is_root();
        let result = t.run_hook("d-1-1", &h, deadline).await;
        if root {
            let outcome = result.unwrap();
            assert_eq!(outcome.exit_code, Some(0), "{outcome:?}");
            assert_eq!(outcome.output_tail.trim(), "65534");
        } else {
            let e = result.unwrap_err().to_string();
            assert!(
                e.contains("runas `nobody` needs the runner to be root"),
                "{e}"
            );
        }
        h.runas = Some("no-such-user-here".into());
        let e = t
            .run_hook("d-1-1", &h, deadline)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("does not exist on the target") || e.contains("needs the runner to be root"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn the_record_copy_is_written_and_old_archives_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("box-1");
        let t = local(&root);
        let mut archives = Vec::new();
        for n in 1..=8 {
            archives.push(staged(&t, dir.path(), &format!("d-1-{n}")).await.archive);
            // Distinct modification times for `ls -t`.
            std::thread::sleep(Duration::from_millis(20));
        }
        let record = serde_json::json!({
            "current": { "archive": archives[7] },
            "last_good": { "archive": archives[0] },
            "state": "healthy"
        })
        .to_string();
        t.write_record_copy("shop", &record).await.unwrap();
        let app = root.join("var/lib/sluice-deploy/shop");
        assert_eq!(
            std::fs::read_to_string(app.join("record.json"))
                .unwrap()
                .trim(),
            record
        );
        let mut kept: Vec<String> = std::fs::read_dir(&app)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("d-"))
            .collect();
        kept.sort();
        assert_eq!(kept, ["d-1-1", "d-1-4", "d-1-5", "d-1-6", "d-1-7", "d-1-8"]);
        let e = t
            .write_record_copy("shop", "{not json")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("not JSON"), "{e}");
    }

    #[test]
    fn values_are_single_quoted_for_the_shell() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }
}
