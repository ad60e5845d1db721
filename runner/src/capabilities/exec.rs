//! The `process` import: running native programs for steps that drive toolchains.
//!
//! A program runs only if the step's `exec` grant names it: the name the plugin asked
//! for must be the granted name (or the absolute path that name is found at on PATH,
//! or the granted absolute path). Resolving symlinks is not enough, because one binary
//! often stands for many programs (every rustup proxy is the same file).
//!
//! It gets a clean environment: PATH, TMPDIR, the granted variables and those the
//! plugin passes, except that variables which change what a program loads or runs
//! (`LD_PRELOAD`, `BASH_ENV`, `GIT_CONFIG_*`, ...) pass only when the `env` grant names
//! them. It runs in a sandbox of its own ([`crate::sandbox`]) under the step's limits;
//! its output streams into the step log line by line and is also returned to the
//! plugin, capped; it is killed, with everything it started, at its timeout or the
//! step's, whichever comes first.
//!
//! A granted program may itself start other programs (cargo runs build scripts, git
//! runs hooks and aliases): the real boundary is the sandbox's file, network and
//! process confinement, which every program started inside it shares.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::egress::NetAccess;
use super::env::EnvAccess;
use super::files::FileAccess;
use super::secrets::SecretAccess;
use crate::capabilities::logs::{Source, StepLog};
use crate::host::bindings::sluice::plugin::process as wit;
use crate::sandbox::cgroup::{Counters, StepCgroup};
use crate::sandbox::mounts::{self, Layout};
use crate::sandbox::plan::{MountPlan, NetPlan, ProgramPlan, RlimitPlan, SandboxPlan};
use crate::sandbox::{Sandbox, StepEnvironment, net};

/// Output returned to the plugin per stream, at most.
pub const CAPTURE_LIMIT: usize = 8 << 20;

/// Variables that change what a program loads or runs, by exact name.
const LOADER_VARIABLES: &[&str] = &[
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "IFS",
    "CDPATH",
    "GLOBIGNORE",
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    "LOCPATH",
    "NLSPATH",
    "MALLOC_CONF",
    "RES_OPTIONS",
    "LOCALDOMAIN",
    "GIT_EXEC_PATH",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_PROXY_COMMAND",
    "GIT_ASKPASS",
    "GIT_EDITOR",
    "GIT_PAGER",
    "GIT_EXTERNAL_DIFF",
    "GIT_SEQUENCE_EDITOR",
    "GIT_TEMPLATE_DIR",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "SSH_ASKPASS",
    "EDITOR",
    "VISUAL",
    "PAGER",
    "PYTHONSTARTUP",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONUSERBASE",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "PERL5DB",
    "RUBYOPT",
    "RUBYLIB",
    "NODE_OPTIONS",
    "NODE_PATH",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "RUSTC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTDOC",
    "RUSTUP_TOOLCHAIN",
    "RUSTUP_HOME",
    "CARGO_HOME",
    "CARGO_BUILD_RUSTC",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTDOC",
    "GOFLAGS",
    "GOTOOLCHAIN",
    "CC",
    "CXX",
    "LD",
    "AR",
    "MAKEFLAGS",
    "MAKEFILES",
    "HOME",
    "XDG_CONFIG_HOME",
    "PATH",
    "TMPDIR",
];

/// Prefixes of such variables.
const LOADER_PREFIXES: &[&str] = &[
    "LD_",
    "GIT_CONFIG",
    "BASH_FUNC_",
    "DYLD_",
    "CARGO_TARGET_",
    "CARGO_REGISTRIES_",
    "CARGO_ALIAS_",
    "NPM_CONFIG_",
    "npm_config_",
];

/// Whether a variable set by a plugin to `value` could make a granted program run
/// other code. Settings that only switch configuration off are harmless.
pub fn changes_what_runs(name: &str, value: &str) -> bool {
    let harmless = matches!(
        (name, value),
        ("GIT_CONFIG_GLOBAL" | "GIT_CONFIG_SYSTEM", "/dev/null") | ("GIT_CONFIG_NOSYSTEM", _)
    );
    !harmless
        && (LOADER_VARIABLES.contains(&name) || LOADER_PREFIXES.iter().any(|p| name.starts_with(p)))
}

/// The limits of a step's native programs.
#[derive(Debug, Clone, Copy)]
pub struct NativeLimits {
    /// Memory of all its programs together, in bytes.
    pub memory: u64,
    /// Processes and threads at once.
    pub processes: u64,
    /// Size of the private `/tmp` (and `/dev/shm`) of each program.
    pub tmp_size: u64,
}

/// Why a step's sandbox could not be made.
#[derive(Debug, Clone)]
pub struct EnvironmentError {
    /// This machine cannot isolate programs at all.
    pub unavailable: bool,
    pub message: String,
}

/// A step's sandbox and its whole mount table (base and step).
pub struct PreparedEnvironment {
    environment: StepEnvironment,
    mounts: Vec<MountPlan>,
}

/// What every program of one step shares: the step's sandbox (made once, as soon as
/// the step starts), its cgroup, whether the sandbox was described in the log yet,
/// and the limits its programs ran into.
pub struct StepPrograms {
    granted: Arc<Vec<String>>,
    /// Folders searched for programs before the runner's PATH (toolchain `bin`s).
    search_path: Arc<Vec<PathBuf>>,
    files: Arc<FileAccess>,
    net: Arc<NetAccess>,
    sandbox: Arc<Sandbox>,
    limits: NativeLimits,
    log: StepLog,
    cgroup: std::sync::OnceLock<Result<Arc<StepCgroup>, String>>,
    environment: tokio::sync::OnceCell<Result<Arc<PreparedEnvironment>, EnvironmentError>>,
    described: AtomicBool,
    violations: Mutex<Vec<String>>,
    /// What failed programs were denied, as hints naming the grant to add.
    denials: Mutex<Vec<String>>,
    /// The background task making the sandbox ahead of the first program.
    preparing: Mutex<Option<tokio::task::AbortHandle>>,
}

impl StepPrograms {
    pub(crate) fn new(
        granted: Arc<Vec<String>>,
        search_path: Arc<Vec<PathBuf>>,
        files: Arc<FileAccess>,
        net: Arc<NetAccess>,
        sandbox: Arc<Sandbox>,
        limits: NativeLimits,
        log: StepLog,
    ) -> StepPrograms {
        StepPrograms {
            granted,
            search_path,
            files,
            net,
            sandbox,
            limits,
            log,
            cgroup: std::sync::OnceLock::new(),
            environment: tokio::sync::OnceCell::new(),
            described: AtomicBool::new(false),
            violations: Mutex::new(Vec::new()),
            denials: Mutex::new(Vec::new()),
            preparing: Mutex::new(None),
        }
    }

    /// Start making the step's sandbox now, so that it is ready when the plugin
    /// starts its first program. Only for steps that may start programs.
    pub fn prepare(self: &Arc<Self>) {
        if self.granted.is_empty() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let this = self.clone();
        let task = tokio::spawn(async move {
            let _ = this.environment().await;
        });
        *self.preparing.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.abort_handle());
    }

    /// Stop making the sandbox in the background (the step is over). The task holds
    /// the step's log, and with it the run's event stream, which must close when the
    /// run ends; a sandbox half made is dropped, and its holder with it.
    pub fn abandon_preparation(&self) {
        if let Some(task) = self
            .preparing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }

    /// The limits the step's programs exceeded since the last call, as sentences.
    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut *self.violations.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The file accesses failed programs were denied since the last call, each as a
    /// sentence naming the grant that would allow it.
    pub fn take_denials(&self) -> Vec<String> {
        std::mem::take(&mut *self.denials.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn violated(&self, what: String) {
        self.violations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(what);
    }

    /// End every process an attempt left in the sandbox, so that nothing outlives it.
    pub async fn end_attempt(&self) {
        if let Some(Ok(prepared)) = self.environment.get()
            && let Err(e) = prepared.environment.kill_all().await
        {
            self.log
                .line(Source::Runner, &format!("ending the step's programs: {e}"));
        }
    }

    /// The step's sandbox, made on first use.
    async fn environment(&self) -> &Result<Arc<PreparedEnvironment>, EnvironmentError> {
        self.environment
            .get_or_init(|| async {
                let plan = self.plan(self.sandbox.cgroups().is_ok());
                let mounts: Vec<MountPlan> = mounts::base()
                    .into_iter()
                    .chain(plan.mounts.iter().cloned())
                    .collect();
                let (environment, cgroup) = self
                    .sandbox
                    .open_step(
                        &plan,
                        self.limits.memory,
                        self.limits.processes,
                        self.net.names(),
                        &self.log,
                    )
                    .await
                    .map_err(|e| EnvironmentError {
                        unavailable: e.is_unavailable(),
                        message: e.to_string(),
                    })?;
                let _ = self.cgroup.set(cgroup.ok_or_else(|| {
                    self.sandbox
                        .cgroups()
                        .err()
                        .unwrap_or("no cgroup was made")
                        .to_string()
                }));
                Ok(Arc::new(PreparedEnvironment {
                    environment,
                    mounts,
                }))
            })
            .await
    }

    /// The step's sandbox: its file system, network and limits.
    fn plan(&self, in_cgroup: bool) -> SandboxPlan {
        let read: Vec<PathBuf> = self.files.read_only().map(Path::to_path_buf).collect();
        let write: Vec<PathBuf> = self.files.writable().map(Path::to_path_buf).collect();
        let programs: Vec<(PathBuf, PathBuf)> = self
            .granted
            .iter()
            .filter_map(|g| resolve_program_in(g, &self.search_path))
            .map(|r| (r.path, r.file))
            .collect();
        let (mounts, mut landlock) = mounts::plan(&Layout {
            read: &read,
            write: &write,
            programs: &programs,
            tmp_size: self.limits.tmp_size,
            resolv_conf: self.net.any().then(net::resolv_conf),
        });
        landlock.tcp_ports = self.net.ports();
        let net_plan = self.net.any().then(|| {
            let listeners = self.net.addresses();
            let mut local_addresses = Vec::new();
            for a in &listeners {
                if !a.ip().is_loopback() && !local_addresses.contains(&a.ip()) {
                    local_addresses.push(a.ip());
                }
            }
            NetPlan {
                local_addresses,
                listeners,
                resolver: net::RESOLVER,
            }
        });
        let rlimits = if in_cgroup {
            RlimitPlan::default()
        } else {
            RlimitPlan {
                processes: Some(self.limits.processes),
                data: Some(self.limits.memory),
            }
        };
        SandboxPlan {
            mounts,
            landlock,
            net: net_plan,
            rlimits,
        }
    }

    /// Say once per step how its programs are isolated and which limits hold.
    fn describe_once(&self) {
        if self.described.swap(true, Ordering::Relaxed) {
            return;
        }
        let size = |b: u64| bytesize::ByteSize::b(b).to_string();
        let landlock = match super::confine::abi() {
            Some(v) => format!("Landlock ABI {v}"),
            None => "no Landlock (the kernel lacks it)".into(),
        };
        let no_cgroup = Err("no cgroup was made".to_string());
        let limits = match (
            self.cgroup.get().unwrap_or(&no_cgroup),
            self.sandbox.cgroups(),
        ) {
            (Ok(_), Ok(support)) => format!(
                "memory {} for all its programs and {} processes ({})",
                size(self.limits.memory),
                self.limits.processes,
                support.kind()
            ),
            (Err(why), _) => {
                let processes = if rustix::process::geteuid().is_root() {
                    "processes not limited (root is exempt from RLIMIT_NPROC)".to_string()
                } else {
                    format!("{} processes (RLIMIT_NPROC)", self.limits.processes)
                };
                format!(
                    "memory {} per process (RLIMIT_DATA), {processes} (no cgroup: {why})",
                    size(self.limits.memory)
                )
            }
            (Ok(_), Err(_)) => {
                unreachable!("a step cgroup exists only where cgroups are supported")
            }
        };
        self.log.line(
            Source::Runner,
            &format!(
                "native programs run isolated: own user, PID, mount, network, IPC and UTS namespaces, no capabilities, {landlock}; limits: TMPDIR {} (tmpfs), {limits}",
                size(self.limits.tmp_size)
            ),
        );
    }

    /// Record the limits a program ran into.
    fn check_limits(&self, before: Counters, after: Counters, shown: &str) {
        let size = bytesize::ByteSize::b(self.limits.memory);
        if after.oom_kills > before.oom_kills {
            let what = format!(
                "a program was killed for exceeding the step's memory limit of {size} (`{shown}`)"
            );
            self.log.line(Source::Runner, &what);
            self.violated(what);
        }
        if after.process_limit_hits > before.process_limit_hits {
            let what = format!(
                "the step's programs reached its limit of {} processes ({} refused; `{shown}`)",
                self.limits.processes,
                after.process_limit_hits - before.process_limit_hits
            );
            self.log.line(Source::Runner, &what);
            self.violated(what);
        }
    }

    fn counters(&self) -> Counters {
        match self.cgroup.get() {
            Some(Ok(c)) => c.counters(),
            _ => Counters::default(),
        }
    }
}

impl Drop for StepPrograms {
    fn drop(&mut self) {
        // Removing the group waits for its last processes to go: not on a worker.
        if let Some(Ok(cgroup)) = self.cgroup.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn_blocking(move || drop(cgroup));
                }
                Err(_) => drop(cgroup),
            }
        }
    }
}

/// Everything `process.run` needs for one attempt of a step.
#[derive(Clone)]
pub struct ExecAccess {
    pub(crate) granted: Arc<Vec<String>>,
    pub(crate) files: Arc<FileAccess>,
    pub(crate) env: Arc<EnvAccess>,
    pub(crate) secrets: Arc<SecretAccess>,
    pub(crate) workdir: PathBuf,
    pub(crate) programs: Arc<StepPrograms>,
    pub(crate) allow_unconfined: bool,
    pub(crate) deadline: Instant,
    pub(crate) log: StepLog,
}

fn denied(msg: String) -> wit::ProcessError {
    wit::ProcessError::Denied(msg)
}

impl ExecAccess {
    /// The program the plugin asked for, if the step's `exec` grant names it.
    fn authorize(&self, program: &str) -> Result<ResolvedProgram, wit::ProcessError> {
        let granted_list = || {
            if self.granted.is_empty() {
                "none".to_string()
            } else {
                self.granted.join(", ")
            }
        };
        let not_granted = |found: Option<&Path>| {
            let found = found
                .map(|p| format!(" ({})", p.display()))
                .unwrap_or_default();
            denied(format!(
                "running `{program}`{found} is not allowed: it is not in the step's `exec` grant (granted: {}); add \"{program}\" under [stage.step.grants] exec",
                granted_list()
            ))
        };
        if program.is_empty() {
            return Err(wit::ProcessError::Failed(
                "the program name is empty".into(),
            ));
        }
        let search_path = &self.programs.search_path;
        let Some(resolved) = resolve_program_in(program, search_path) else {
            if self.granted.iter().any(|g| g == program) {
                return Err(wit::ProcessError::NotFound(format!(
                    "`{program}` is granted but not installed (searched PATH={})",
                    self.search_path_variable()
                )));
            }
            return Err(not_granted(None));
        };
        let named = |grant: &String| {
            grant == program
                || (grant.starts_with('/')
                    && !program.starts_with('/')
                    && resolved.path == Path::new(grant))
                || (!grant.starts_with('/')
                    && program.starts_with('/')
                    && resolve_program_in(grant, search_path)
                        .is_some_and(|g| g.path == Path::new(program)))
        };
        if self.granted.iter().any(named) {
            Ok(resolved)
        } else {
            Err(not_granted(Some(&resolved.path)))
        }
    }

    /// The program's working folder: `cwd` (inside the grants), else the pipeline's
    /// folder when the step may read it, else its private `/tmp`.
    fn working_dir(&self, cwd: Option<&str>) -> Result<PathBuf, wit::ProcessError> {
        let Some(cwd) = cwd else {
            return Ok(if self.files.can_read(&self.workdir) {
                self.workdir.clone()
            } else {
                PathBuf::from("/tmp")
            });
        };
        let joined = self.workdir.join(cwd);
        let canonical = std::fs::canonicalize(&joined).map_err(|e| {
            wit::ProcessError::Failed(format!("working directory {}: {e}", joined.display()))
        })?;
        if self.files.can_read(&canonical) {
            Ok(canonical)
        } else {
            Err(denied(format!(
                "working directory {} is outside the step's `read` and `write` grants",
                canonical.display()
            )))
        }
    }

    /// PATH for the step's programs: the toolchains' `bin` folders, then the runner's
    /// PATH.
    fn search_path_variable(&self) -> String {
        let runner = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
        self.programs
            .search_path
            .iter()
            .map(|p| p.display().to_string())
            .chain(std::iter::once(runner))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// A program asked for by a path relative to the pipeline folder
    /// (`.venv/bin/pytest`) as an absolute path; other names as they are.
    fn absolute_program(&self, program: &str) -> String {
        if program.contains('/') && !program.starts_with('/') {
            crate::config::normalize(&self.workdir.join(program))
                .display()
                .to_string()
        } else {
            program.to_string()
        }
    }

    /// The environment: PATH, TMPDIR, the granted variables, and the plugin's own,
    /// refusing plugin variables that change what runs unless granted by name.
    fn environment(
        &self,
        requested: &[(String, String)],
    ) -> Result<Vec<(String, String)>, wit::ProcessError> {
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), self.search_path_variable()),
            ("TMPDIR".into(), "/tmp".into()),
        ];
        env.extend(self.env.vars().iter().cloned());
        env.extend(self.secrets.env());
        for (name, value) in requested {
            if changes_what_runs(name, value) && !self.env.granted(name) {
                return Err(denied(format!(
                    "the plugin may not set `{name}`: it changes what programs load or run; it passes only when the step's `env` grant names it (add \"{name}\" under [stage.step.grants] env)"
                )));
            }
            env.retain(|(k, _)| k != name);
            env.push((name.clone(), value.clone()));
        }
        Ok(env)
    }

    /// Run one program to completion.
    pub async fn run(
        &self,
        mut command: wit::Command,
    ) -> Result<wit::Completed, wit::ProcessError> {
        command.program = self.absolute_program(&command.program);
        let program = self.authorize(&command.program)?;
        let cwd = self.working_dir(command.cwd.as_deref())?;
        let env = self.environment(&command.env)?;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let limit = command
            .timeout_ms
            .map(Duration::from_millis)
            .map_or(remaining, |t| t.min(remaining));
        let shown = shell_line(&command.program, &command.args);

        let prepared = match self.programs.environment().await {
            Ok(prepared) => prepared.clone(),
            Err(e) if e.unavailable && self.allow_unconfined => {
                self.log.line(
                    Source::Runner,
                    &format!(
                        "{}; running `{}` unconfined, as the pipeline allows",
                        e.message, command.program
                    ),
                );
                return self
                    .run_unconfined(&command, &program, &cwd, &env, limit, &shown)
                    .await;
            }
            Err(e) if e.unavailable => {
                return Err(denied(format!(
                    "{}; set `allow-unconfined-exec = true` under [pipeline] to accept running native programs unconfined",
                    e.message
                )));
            }
            Err(e) => {
                return Err(wit::ProcessError::Failed(format!(
                    "cannot make the step's sandbox: {}",
                    e.message
                )));
            }
        };
        let executable = mounts::executable(&prepared.mounts, &program.path, &program.file)
            .ok_or_else(|| {
                wit::ProcessError::Failed(format!(
                    "`{}` ({}) is not in the step's sandbox: it was not installed where it is now when the step started",
                    command.program,
                    program.path.display()
                ))
            })?;
        let plan = ProgramPlan {
            executable,
            argv0: command.program.clone(),
            args: command.args.clone(),
            env,
            cwd,
            files: self.secrets.files(),
        };
        let before = self.programs.counters();
        let started = Instant::now();
        let mut child = prepared
            .environment
            .run(&plan, command.stdin.clone())
            .await
            .map_err(|e| {
                wit::ProcessError::Failed(format!("cannot start `{}`: {e}", command.program))
            })?;
        self.programs.describe_once();
        self.log.line(Source::Runner, &format!("$ {shown}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let completed = self
            .supervise(child, stdout, stderr, limit, &shown, started)
            .await?;
        self.programs
            .check_limits(before, self.programs.counters(), &shown);
        if completed.exit_code != Some(0) && !completed.timed_out {
            self.explain_denials(&command.program, &completed, &plan.cwd, &prepared.mounts);
        }
        Ok(completed)
    }

    /// Name, in the step log and for the step's summary, the file accesses the
    /// sandbox denied a failed program (see [`super::denials`]).
    fn explain_denials(
        &self,
        program: &str,
        completed: &wit::Completed,
        cwd: &Path,
        mounts: &[MountPlan],
    ) {
        let mut output = completed.stderr.clone();
        output.push(b'\n');
        output.extend_from_slice(&completed.stdout);
        let shown = program.rsplit('/').next().unwrap_or(program);
        let mut kept = self
            .programs
            .denials
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for denial in super::denials::find(&output, cwd, mounts) {
            let hint = denial.hint(shown, &self.workdir);
            if !kept.contains(&hint) {
                self.log
                    .line(Source::Runner, &format!("access denied: {hint}"));
                kept.push(hint);
            }
        }
    }

    /// Stream a started program's output into the step log, wait for it (killing it
    /// at `limit`), and say how it ended.
    async fn supervise(
        &self,
        mut child: impl Running,
        stdout: impl AsyncRead + Unpin + Send + 'static,
        stderr: impl AsyncRead + Unpin + Send + 'static,
        limit: Duration,
        shown: &str,
        started: Instant,
    ) -> Result<wit::Completed, wit::ProcessError> {
        let out_task = tokio::spawn(capture(stdout, self.log.clone(), Source::Exec));
        let err_task = tokio::spawn(capture(stderr, self.log.clone(), Source::ExecStderr));
        let (status, timed_out) = match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => (status, false),
            Err(_) => {
                child.kill().await;
                let status = child.wait().await;
                self.log.line(
                    Source::Runner,
                    &format!("`{shown}` killed after {} ms (timeout)", limit.as_millis()),
                );
                (status, true)
            }
        };
        let status =
            status.map_err(|e| wit::ProcessError::Failed(format!("waiting for `{shown}`: {e}")))?;
        // An unconfined program's process group dies here; a sandboxed program's
        // descendants are already gone.
        drop(child);
        let (stdout, out_trunc) = out_task.await.unwrap_or_default();
        let (stderr, err_trunc) = err_task.await.unwrap_or_default();
        self.log.finish();
        Ok(completed(
            status,
            timed_out,
            stdout,
            stderr,
            out_trunc || err_trunc,
            started,
        ))
    }

    /// Run a program with no isolation (the pipeline allowed it on a machine that
    /// cannot isolate programs).
    async fn run_unconfined(
        &self,
        command: &wit::Command,
        program: &ResolvedProgram,
        cwd: &Path,
        env: &[(String, String)],
        limit: Duration,
        shown: &str,
    ) -> Result<wit::Completed, wit::ProcessError> {
        let mut cmd = tokio::process::Command::new(&program.path);
        let cwd = if cwd == Path::new("/tmp") {
            std::env::temp_dir()
        } else {
            cwd.to_path_buf()
        };
        cmd.args(&command.args)
            .current_dir(&cwd)
            .env_clear()
            .envs(
                env.iter()
                    .filter(|(k, _)| k != "TMPDIR")
                    .map(|(k, v)| (k, v)),
            )
            .stdin(if command.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        self.log.line(Source::Runner, &format!("$ {shown}"));
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|e| {
            wit::ProcessError::Failed(format!("cannot start `{}`: {e}", program.path.display()))
        })?;
        if let (Some(bytes), Some(mut stdin)) = (command.stdin.clone(), child.stdin.take()) {
            tokio::spawn(async move {
                let _ = stdin.write_all(&bytes).await;
            });
        }
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let group = child.id().map(|p| ProcessGroup(p as i32));
        self.supervise(
            Unconfined { child, group },
            stdout,
            stderr,
            limit,
            shown,
            started,
        )
        .await
    }
}

/// A started program, in its step's sandbox or not.
trait Running {
    async fn wait(&mut self) -> std::io::Result<ExitStatus>;
    /// Kill it and everything it started.
    async fn kill(&mut self);
}

impl Running for crate::sandbox::SandboxedChild {
    async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        crate::sandbox::SandboxedChild::wait(self).await
    }

    async fn kill(&mut self) {
        crate::sandbox::SandboxedChild::kill(self).await
    }
}

/// A program run with no isolation, in a process group of its own (killed when
/// dropped).
struct Unconfined {
    child: tokio::process::Child,
    group: Option<ProcessGroup>,
}

impl Running for Unconfined {
    async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    async fn kill(&mut self) {
        if let Some(g) = &self.group {
            g.kill();
        }
    }
}

fn completed(
    status: ExitStatus,
    timed_out: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    truncated: bool,
    started: Instant,
) -> wit::Completed {
    use std::os::unix::process::ExitStatusExt;
    wit::Completed {
        exit_code: status.code(),
        signal: status.signal(),
        timed_out,
        stdout,
        stderr,
        truncated,
        duration_ms: started.elapsed().as_millis() as u64,
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

/// The process group of an unconfined program; killed when dropped.
struct ProcessGroup(i32);

impl ProcessGroup {
    fn kill(&self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The command as a line that can be pasted into a POSIX shell: every word that needs
/// it is quoted (spaces, quotes, `$`, globs...). A word holding a NUL byte, which no
/// shell can pass, is shown with the byte as `\0` inside single quotes.
pub fn shell_line(program: &str, args: &[String]) -> String {
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(|word| match shlex::try_quote(word) {
            Ok(quoted) => quoted.into_owned(),
            Err(_) => format!("'{}'", word.replace('\'', "'\\''").replace('\0', "\\0")),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A program found on PATH or by absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedProgram {
    /// The path as found, which is what is executed.
    pub path: PathBuf,
    /// The file it resolves to (symlinks followed).
    pub file: PathBuf,
}

/// The program a name refers to: an absolute path, or the first match on PATH.
pub fn resolve_program(program: &str) -> Option<ResolvedProgram> {
    resolve_program_in(program, &[])
}

/// The program a name refers to: an absolute path, or the first match in `first`
/// and then on PATH.
pub fn resolve_program_in(program: &str, first: &[PathBuf]) -> Option<ResolvedProgram> {
    use std::os::unix::fs::PermissionsExt;
    let is_exe = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if program.starts_with('/') {
        let p = PathBuf::from(program);
        is_exe(&p).then_some(p)
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        first
            .iter()
            .cloned()
            .chain(std::env::split_paths(&path))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_that_change_what_runs_are_recognised() {
        for v in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "BASH_ENV",
            "ENV",
            "GIT_CONFIG_COUNT",
            "GIT_CONFIG_KEY_0",
            "BASH_FUNC_x%%",
            "RUSTC_WRAPPER",
            "HOME",
        ] {
            assert!(changes_what_runs(v, "/tmp/x"), "{v}");
        }
        for v in ["CI", "RUST_BACKTRACE", "CARGO_TERM_COLOR", "LANG"] {
            assert!(!changes_what_runs(v, "1"), "{v}");
        }
        assert!(!changes_what_runs("GIT_CONFIG_GLOBAL", "/dev/null"));
        assert!(changes_what_runs(
            "GIT_CONFIG_GLOBAL",
            "/tmp/evil.gitconfig"
        ));
    }
}
