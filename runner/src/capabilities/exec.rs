//! The `process` import: running native programs for steps that drive toolchains.
//!
//! A program runs only if the step's `exec` grant names it (by name on PATH or by
//! absolute path; both are compared after resolving symlinks). It gets a clean
//! environment (PATH, TMPDIR, the granted variables and the variables the plugin
//! passes), a working directory inside the step's grants, and the confinement of
//! [`super::confine`]. Its output streams into the step log line by line and is also
//! returned to the plugin, capped. It is killed, with its whole process group, at its
//! timeout or the step's, whichever comes first.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::confine::{ConfinePlan, Confinement};
use super::egress::NetAccess;
use super::env::EnvAccess;
use super::files::FileAccess;
use crate::capabilities::logs::{Source, StepLog};
use crate::host::bindings::sluice::plugin::process as wit;

/// Output returned to the plugin per stream, at most.
pub const CAPTURE_LIMIT: usize = 8 << 20;

/// Everything `process.run` needs for one step.
#[derive(Clone)]
pub struct ExecAccess {
    pub(crate) granted: Arc<Vec<String>>,
    pub(crate) files: Arc<FileAccess>,
    pub(crate) env: Arc<EnvAccess>,
    pub(crate) net: Arc<NetAccess>,
    pub(crate) workdir: PathBuf,
    /// Private temporary folder of the step (TMPDIR), always writable.
    pub(crate) scratch: PathBuf,
    pub(crate) allow_unconfined: bool,
    pub(crate) deadline: Instant,
    pub(crate) log: StepLog,
}

fn denied(msg: String) -> wit::ProcessError {
    wit::ProcessError::Denied(msg)
}

impl ExecAccess {
    /// The `exec` grant that covers `program`, resolved to the file that would run.
    fn authorize(&self, program: &str) -> Result<ResolvedProgram, wit::ProcessError> {
        let granted_list = || {
            if self.granted.is_empty() {
                "none".to_string()
            } else {
                self.granted.join(", ")
            }
        };
        if program.is_empty() {
            return Err(wit::ProcessError::Failed(
                "the program name is empty".into(),
            ));
        }
        if program.contains('/') && !program.starts_with('/') {
            return Err(denied(format!(
                "program `{program}` must be a bare name found on PATH or an absolute path"
            )));
        }
        let resolved = match resolve_program(program) {
            Some(p) => p,
            None if self.granted.iter().any(|g| g == program) => {
                return Err(wit::ProcessError::NotFound(format!(
                    "`{program}` is granted but not installed (searched PATH={})",
                    std::env::var("PATH").unwrap_or_default()
                )));
            }
            None => {
                return Err(denied(format!(
                    "running `{program}` is not allowed: it is not in the step's `exec` grant (granted: {}); add \"{program}\" under [stage.step.grants] exec",
                    granted_list()
                )));
            }
        };
        let covered = self
            .granted
            .iter()
            .any(|g| g == program || resolve_program(g).is_some_and(|r| r.file == resolved.file));
        if covered {
            Ok(resolved)
        } else {
            Err(denied(format!(
                "running `{program}` ({}) is not allowed: it is not in the step's `exec` grant (granted: {}); add \"{program}\" under [stage.step.grants] exec",
                resolved.file.display(),
                granted_list()
            )))
        }
    }

    fn working_dir(&self, cwd: Option<&str>) -> Result<PathBuf, wit::ProcessError> {
        let Some(cwd) = cwd else {
            return Ok(self.workdir.clone());
        };
        let joined = self.workdir.join(cwd);
        let canonical = std::fs::canonicalize(&joined).map_err(|e| {
            wit::ProcessError::Failed(format!("working directory {}: {e}", joined.display()))
        })?;
        if self.files.can_read(&canonical) || canonical.starts_with(&self.scratch) {
            Ok(canonical)
        } else {
            Err(denied(format!(
                "working directory {} is outside the step's `read` and `write` grants",
                canonical.display()
            )))
        }
    }

    /// Run one program to completion.
    pub async fn run(&self, command: wit::Command) -> Result<wit::Completed, wit::ProcessError> {
        let program = self.authorize(&command.program)?;
        let cwd = self.working_dir(command.cwd.as_deref())?;
        std::fs::create_dir_all(&self.scratch).map_err(|e| {
            wit::ProcessError::Failed(format!(
                "cannot create the step's scratch folder {}: {e}",
                self.scratch.display()
            ))
        })?;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let limit = command
            .timeout_ms
            .map(Duration::from_millis)
            .map_or(remaining, |t| t.min(remaining));

        // Run the program as found (a rustup proxy must see its own name in argv[0]);
        // the grant was checked against the file it resolves to.
        let mut cmd = tokio::process::Command::new(&program.path);
        cmd.args(&command.args)
            .current_dir(&cwd)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("TMPDIR", &self.scratch)
            .envs(self.env.vars().iter().map(|(k, v)| (k, v)))
            .envs(command.env.iter().map(|(k, v)| (k, v)))
            .stdin(if command.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);

        let mut read: Vec<&Path> = self.files.readable().collect();
        let mut write: Vec<&Path> = self.files.writable().collect();
        read.push(&cwd);
        write.push(&self.scratch);
        let plan = ConfinePlan {
            read,
            write,
            program: &program.file,
            tcp_ports: self.net.ports(),
            isolate_network: !self.net.any(),
        };
        match Confinement::prepare(&plan) {
            Ok(confinement) => confinement.install(&mut cmd),
            Err(e) if self.allow_unconfined => {
                self.log.line(
                    Source::Runner,
                    &format!(
                        "{e}; running `{}` unconfined, as the pipeline allows",
                        command.program
                    ),
                );
            }
            Err(e) => {
                return Err(denied(format!(
                    "{e}; set `allow-unconfined-exec = true` under [pipeline] to accept running native programs unconfined"
                )));
            }
        }

        let shown = std::iter::once(command.program.as_str())
            .chain(command.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        self.log.line(Source::Runner, &format!("$ {shown}"));
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|e| {
            wit::ProcessError::Failed(format!("cannot start `{}`: {e}", program.path.display()))
        })?;
        // Whatever happens from here on (even the step being cancelled), the program and
        // everything it started are killed when this guard goes away.
        let group = child.id().map(|p| ProcessGroup(p as i32));
        if let (Some(bytes), Some(mut stdin)) = (command.stdin, child.stdin.take()) {
            tokio::spawn(async move {
                let _ = stdin.write_all(&bytes).await;
            });
        }
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let out_task = tokio::spawn(capture(stdout, self.log.clone(), Source::Exec));
        let err_task = tokio::spawn(capture(stderr, self.log.clone(), Source::ExecStderr));

        let (status, timed_out) = match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => (
                status.map_err(|e| {
                    wit::ProcessError::Failed(format!("waiting for `{shown}`: {e}"))
                })?,
                false,
            ),
            Err(_) => {
                if let Some(group) = &group {
                    group.kill();
                }
                let status = child.wait().await.map_err(|e| {
                    wit::ProcessError::Failed(format!("waiting for `{shown}`: {e}"))
                })?;
                self.log.line(
                    Source::Runner,
                    &format!("`{shown}` killed after {} ms (timeout)", limit.as_millis()),
                );
                (status, true)
            }
        };
        // The group may still hold the pipes open (a daemonised grandchild); end it.
        drop(group);
        let (stdout, out_trunc) = out_task.await.unwrap_or_default();
        let (stderr, err_trunc) = err_task.await.unwrap_or_default();
        self.log.finish();
        use std::os::unix::process::ExitStatusExt;
        Ok(wit::Completed {
            exit_code: status.code(),
            signal: status.signal(),
            timed_out,
            stdout,
            stderr,
            truncated: out_trunc || err_trunc,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }
}

/// Read a stream to its end, logging it and keeping up to [`CAPTURE_LIMIT`] bytes.
async fn capture(
    mut stream: impl AsyncRead + Unpin,
    log: StepLog,
    source: Source,
) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                log.output(source, &buf[..n]);
                let room = CAPTURE_LIMIT.saturating_sub(kept.len());
                if room < n {
                    truncated = true;
                }
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    (kept, truncated)
}

/// The process group of a started program (`process_group(0)` made the program its
/// leader); killed when dropped.
struct ProcessGroup(i32);

impl ProcessGroup {
    fn kill(&self) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is
        // involved.
        unsafe {
            libc::kill(-self.0, libc::SIGKILL);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A program found on PATH or by absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedProgram {
    /// The path as found, which is what is executed.
    pub path: PathBuf,
    /// The file it resolves to (symlinks followed), which grants are compared by.
    pub file: PathBuf,
}

/// The program a name refers to: an absolute path, or the first match on PATH.
pub fn resolve_program(program: &str) -> Option<ResolvedProgram> {
    use std::os::unix::fs::PermissionsExt;
    let is_exe = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if program.starts_with('/') {
        let p = PathBuf::from(program);
        is_exe(&p).then_some(p)
    } else {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join(program))
            .find(|p| is_exe(p))
    }?;
    let file = std::fs::canonicalize(&found).ok()?;
    Some(ResolvedProgram { path: found, file })
}

/// The `process` import.
impl wit::Host for crate::host::step::StepState {
    async fn run(&mut self, command: wit::Command) -> Result<wit::Completed, wit::ProcessError> {
        match &self.exec {
            Some(exec) => {
                let exec = exec.clone();
                let result = exec.run(command).await;
                if let Err(wit::ProcessError::Denied(msg)) = &result {
                    self.log.line(Source::Runner, &format!("denied: {msg}"));
                }
                result
            }
            None => Err(denied("`describe` may not run programs".into())),
        }
    }
}
