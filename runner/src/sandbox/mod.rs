//! Isolation of everything a step runs natively, and of the runner's own files.
//!
//! A native program started through the `process` capability runs in a sandbox of
//! its own: new user (no capability on the machine, even for root), PID (nothing
//! outlives it), mount (only system folders and grants, see [`mounts`]), network
//! (loopback, plus forwarding to granted addresses only, see [`net`] and
//! [`forward`]), IPC and UTS namespaces; every capability dropped, `no_new_privs`,
//! Landlock on top ([`crate::capabilities::confine`]); and the step's limits on
//! memory, processes and TMPDIR size ([`cgroup`], or rlimits where the machine does
//! not delegate cgroups).
//!
//! The pieces, in the order a program meets them:
//! - [`Sandbox::prepare`], before the runner starts any thread: the runner's own
//!   mount namespace ([`runner_ns`]), cgroup support, and the [`launcher`] process;
//! - [`Sandbox::spawn`], per program: the plan ([`plan`]) travels to the launcher,
//!   which forks the sandbox's init ([`init`]) into new namespaces; init builds the
//!   sandbox and starts the program, and reports back on a control socket
//!   ([`channel`]).

pub mod cgroup;
pub mod channel;
pub mod forward;
pub mod init;
pub mod launcher;
pub mod mounts;
pub mod net;
pub mod plan;
pub mod runner_ns;
mod sys;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Instant;

use cgroup::CgroupSupport;
use forward::{Forwarding, NameTable};
use launcher::{LaunchEvent, Launched, Launcher};
use plan::{InitReport, ProgramPlan};
use runner_ns::RunnerIsolation;

use crate::capabilities::logs::StepLog;

pub use sys::{current_thread_id, install_interrupting_handler, landlock_abi, signal_thread};

/// Why a sandboxed program did not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// Native programs cannot be isolated on this machine.
    #[error("native programs cannot be isolated on this machine: {0}")]
    Unavailable(String),
    /// The sandbox could be made, but something in it failed.
    #[error("{stage}: {error}")]
    Setup { stage: String, error: String },
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl SpawnError {
    /// Whether this machine cannot isolate programs at all (as opposed to a problem
    /// with this program or its grants).
    pub fn is_unavailable(&self) -> bool {
        match self {
            SpawnError::Unavailable(_) => true,
            SpawnError::Setup { stage, .. } => stage == "mapping the user",
            SpawnError::Io(_) => false,
        }
    }
}

/// The process-wide part of isolation, made once before the runner starts threads.
pub struct Sandbox {
    isolation: RunnerIsolation,
    launcher: Result<Launcher, String>,
    cgroups: Result<CgroupSupport, String>,
}

impl Sandbox {
    /// Enter the runner's mount namespace, find cgroup support and start the launcher.
    /// Must be called while the process has one thread.
    pub fn prepare() -> Sandbox {
        let isolation = RunnerIsolation::enter();
        let cgroups = CgroupSupport::detect();
        if let Ok(c) = &cgroups {
            c.remove_stale();
        }
        let launcher = Launcher::start().map_err(|e| format!("cannot start the launcher: {e}"));
        Sandbox {
            isolation,
            launcher,
            cgroups,
        }
    }

    /// No isolation at all: for library use and commands that run no step.
    pub fn unavailable(reason: &str) -> Sandbox {
        Sandbox {
            isolation: RunnerIsolation::none(reason),
            launcher: Err(reason.to_string()),
            cgroups: Err(reason.to_string()),
        }
    }

    /// The runner's mount namespace.
    pub fn isolation(&self) -> &RunnerIsolation {
        &self.isolation
    }

    /// Stop every running sandbox and wait until their processes are gone.
    pub async fn shutdown(&self) {
        if let Ok(launcher) = &self.launcher {
            launcher.shutdown(std::time::Duration::from_secs(3)).await;
        }
    }

    /// How step limits can be enforced here.
    pub fn cgroups(&self) -> Result<&CgroupSupport, &str> {
        self.cgroups.as_ref().map_err(String::as_str)
    }

    /// Start one program. `cgroup_procs` are the step group's `cgroup.procs` files;
    /// `names` the granted host names, for the sandbox's name server.
    pub async fn spawn(
        &self,
        plan: &ProgramPlan,
        stdin: Option<Vec<u8>>,
        cgroup_procs: Vec<OwnedFd>,
        names: Arc<NameTable>,
        log: &StepLog,
        deadline: Instant,
    ) -> Result<SandboxedChild, SpawnError> {
        let launcher = self
            .launcher
            .as_ref()
            .map_err(|e| SpawnError::Unavailable(e.clone()))?;
        let plan_fd = rustix::fs::memfd_create(c"sluice-plan", rustix::fs::MemfdFlags::CLOEXEC)
            .map_err(io::Error::from)?;
        let text = serde_json::to_vec(plan).map_err(io::Error::other)?;
        write_all(&plan_fd, &text)?;
        let (stdout_r, stdout_w) = pipe()?;
        let (stderr_r, stderr_w) = pipe()?;
        let (stdin_r, stdin_task) = match stdin {
            Some(bytes) => {
                let (r, w) = pipe()?;
                rustix::io::ioctl_fionbio(&w, true).map_err(io::Error::from)?;
                let mut sender = tokio::net::unix::pipe::Sender::from_owned_fd(w)?;
                let task = tokio::spawn(async move {
                    let _ = tokio::io::AsyncWriteExt::write_all(&mut sender, &bytes).await;
                });
                (r, Some(task))
            }
            None => (
                std::fs::File::open("/dev/null").map(OwnedFd::from)?,
                None,
            ),
        };
        let (control_ours, control_theirs) = channel::pair()?;
        let mut fds = vec![plan_fd, stdin_r, stdout_w, stderr_w, control_theirs];
        fds.extend(cgroup_procs);
        let mut launched = launcher.spawn(fds).await?;
        match launched.next().await {
            Some(LaunchEvent::Spawned { .. }) => {}
            Some(LaunchEvent::SpawnFailed { error, .. }) => return Err(SpawnError::Unavailable(error)),
            _ => return Err(SpawnError::Unavailable("the launcher stopped".into())),
        }
        let control = channel::AsyncChannel::new(control_ours)?;
        let mut forwarding = None;
        loop {
            match control.recv::<InitReport>().await? {
                Some((InitReport::Network, sockets)) => {
                    let net = plan.net.as_ref().ok_or_else(|| {
                        io::Error::other("the sandbox set up a network it was not asked for")
                    })?;
                    forwarding = Some(forward::start(sockets, net, names.clone(), log.clone(), deadline)?);
                }
                Some((InitReport::Started, _)) => break,
                Some((InitReport::Failed { stage, error }, _)) => {
                    return Err(SpawnError::Setup { stage, error });
                }
                Some((InitReport::Exited { .. }, _)) | None => {
                    return Err(SpawnError::Setup {
                        stage: "starting the sandbox".into(),
                        error: "its init process ended early".into(),
                    });
                }
            }
        }
        Ok(SandboxedChild {
            stdout: Some(receiver(stdout_r)?),
            stderr: Some(receiver(stderr_r)?),
            launched,
            control,
            _forwarding: forwarding,
            _stdin: stdin_task.map(AbortOnDrop),
        })
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A program running in its sandbox. Dropping it kills the sandbox.
pub struct SandboxedChild {
    pub stdout: Option<tokio::net::unix::pipe::Receiver>,
    pub stderr: Option<tokio::net::unix::pipe::Receiver>,
    launched: Launched,
    control: channel::AsyncChannel,
    _forwarding: Option<Forwarding>,
    _stdin: Option<AbortOnDrop>,
}

impl SandboxedChild {
    /// Wait for the program to end; everything else in its sandbox dies with it.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Ok(Some((InitReport::Exited { status }, _))) = self.control.recv::<InitReport>().await {
            // The init exits right after reporting; wait for it so the namespace is gone.
            while let Some(e) = self.launched.next().await {
                if matches!(e, LaunchEvent::Exited { .. }) {
                    break;
                }
            }
            return Ok(ExitStatus::from_raw(status));
        }
        // The init died without reporting (it was killed): its own status says how.
        while let Some(e) = self.launched.next().await {
            if let LaunchEvent::Exited { status, .. } = e {
                return Ok(ExitStatus::from_raw(status));
            }
        }
        Err(io::Error::other("the launcher stopped"))
    }

    /// Kill the program and everything in its sandbox.
    pub fn kill(&self) {
        self.launched.kill();
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

fn receiver(fd: OwnedFd) -> io::Result<tokio::net::unix::pipe::Receiver> {
    rustix::io::ioctl_fionbio(&fd, true)?;
    tokio::net::unix::pipe::Receiver::from_owned_fd(fd)
}

fn write_all(fd: &OwnedFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = rustix::io::write(fd.as_fd(), bytes)?;
        bytes = &bytes[n..];
    }
    Ok(())
}
