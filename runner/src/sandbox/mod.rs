//! Isolation of everything a step runs natively, and of the runner's own files.
//!
//! The native programs a step starts run in the step's sandbox: new user (no
//! capability on the machine, even for root), PID (nothing outlives the step), mount
//! (only system folders and grants, see [`mounts`]), network (loopback, plus
//! forwarding to granted addresses only, see [`net`] and [`forward`]), IPC and UTS
//! namespaces; every capability dropped, `no_new_privs`, Landlock on top
//! ([`crate::capabilities::confine`]); and the step's limits on memory, processes and
//! TMPDIR size ([`cgroup`], or rlimits where the machine does not delegate cgroups).
//!
//! The pieces, in the order a program meets them:
//! - [`Sandbox::prepare`], before the runner starts any thread: the runner's own
//!   mount namespace ([`runner_ns`]), cgroup support, and the [`launcher`] process;
//! - [`Sandbox::keep_ready`], at the start of a run with native steps: the launcher
//!   forks holders ([`init`]) ahead of need; each joins a cgroup of its own and makes
//!   its user and network namespaces, then waits;
//! - [`Sandbox::open_step`], once per step (started as soon as the step starts): a
//!   prepared holder gets the step's limits and plan ([`plan`]), builds the file
//!   system and forks the sandbox's init, which reports back on a control socket
//!   ([`channel`]);
//! - [`StepEnvironment::run`], per program: the init forks it; its exit status comes
//!   back on the control socket. Between attempts [`StepEnvironment::kill_all`] ends
//!   every process the attempt left behind.

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

use cgroup::{CgroupSupport, StepCgroup};
use forward::{Forwarding, NameTable};
use launcher::{LaunchEvent, Launched, Launcher};
use plan::{InitReport, InitRequest, ProgramPlan, SandboxPlan};
use runner_ns::RunnerIsolation;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    /// Holders already in a cgroup and in their user and network namespaces, waiting
    /// for a step: joining a cgroup can wait for an RCU grace period (10 ms and more)
    /// and a network namespace takes most of a millisecond, so both are done ahead.
    spares: tokio::sync::Mutex<Vec<Spare>>,
    /// How many spares to keep, and how many are being made.
    spares_wanted: AtomicUsize,
    spares_coming: AtomicUsize,
}

/// A prepared holder (see [`init::holder`]) and its cgroup.
struct Spare {
    launched: Launched,
    channel: channel::AsyncChannel,
    cgroup: Option<Arc<StepCgroup>>,
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
        Sandbox::with(isolation, launcher, cgroups)
    }

    /// No isolation at all: for library use and commands that run no step.
    pub fn unavailable(reason: &str) -> Sandbox {
        Sandbox::with(
            RunnerIsolation::none(reason),
            Err(reason.to_string()),
            Err(reason.to_string()),
        )
    }

    fn with(
        isolation: RunnerIsolation,
        launcher: Result<Launcher, String>,
        cgroups: Result<CgroupSupport, String>,
    ) -> Sandbox {
        Sandbox {
            isolation,
            launcher,
            cgroups,
            spares: tokio::sync::Mutex::new(Vec::new()),
            spares_wanted: AtomicUsize::new(0),
            spares_coming: AtomicUsize::new(0),
        }
    }

    /// The runner's mount namespace.
    pub fn isolation(&self) -> &RunnerIsolation {
        &self.isolation
    }

    /// Stop every sandbox and spare and wait until their processes are gone; remove
    /// the spares' cgroups.
    pub async fn shutdown(&self) {
        self.spares_wanted.store(0, Ordering::Relaxed);
        if let Ok(launcher) = &self.launcher {
            launcher.shutdown(std::time::Duration::from_secs(3)).await;
        }
        self.spares.lock().await.clear();
    }

    /// How step limits can be enforced here.
    pub fn cgroups(&self) -> Result<&CgroupSupport, &str> {
        self.cgroups.as_ref().map_err(String::as_str)
    }

    /// Keep `n` holders prepared for steps to come, made in the background.
    pub fn keep_ready(self: &Arc<Self>, n: usize) {
        self.spares_wanted.store(n, Ordering::Relaxed);
        self.refill();
    }

    /// How many prepared holders wait for a step.
    pub async fn ready_holders(&self) -> usize {
        self.spares.lock().await.len()
    }

    fn refill(self: &Arc<Self>) {
        if self.launcher.is_err() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let wanted = self.spares_wanted.load(Ordering::Relaxed);
        let ready = self.spares.try_lock().map(|s| s.len()).unwrap_or(wanted);
        let coming = self.spares_coming.load(Ordering::Relaxed);
        for _ in (ready + coming)..wanted {
            self.spares_coming.fetch_add(1, Ordering::Relaxed);
            let this = self.clone();
            tokio::spawn(async move {
                let spare = this.prepare_holder().await;
                this.spares_coming.fetch_sub(1, Ordering::Relaxed);
                if let Ok(spare) = spare {
                    this.spares.lock().await.push(spare);
                }
            });
        }
    }

    /// Fork a holder into a new cgroup (with default limits, set on claim) and wait
    /// until it is prepared.
    async fn prepare_holder(&self) -> Result<Spare, SpawnError> {
        let launcher = self
            .launcher
            .as_ref()
            .map_err(|e| SpawnError::Unavailable(e.clone()))?;
        let cgroup = match &self.cgroups {
            Ok(support) => Some(Arc::new(StepCgroup::create(
                support,
                crate::config::DEFAULT_STEP_MEMORY,
                u64::from(crate::config::DEFAULT_STEP_PROCESSES),
            )?)),
            Err(_) => None,
        };
        let (control_ours, control_theirs) = channel::pair()?;
        let mut fds = vec![control_theirs];
        if let Some(c) = &cgroup {
            fds.extend(c.procs_files()?);
        }
        let mut launched = launcher.spawn(fds).await?;
        match launched.next().await {
            Some(LaunchEvent::Spawned { .. }) => {}
            Some(LaunchEvent::SpawnFailed { error, .. }) => {
                return Err(SpawnError::Unavailable(error));
            }
            _ => return Err(SpawnError::Unavailable("the launcher stopped".into())),
        }
        let channel = channel::AsyncChannel::new(control_ours)?;
        match channel.recv::<InitReport>().await? {
            Some((InitReport::Prepared, _)) => Ok(Spare {
                launched,
                channel,
                cgroup,
            }),
            Some((InitReport::Failed { stage, error }, _)) => {
                Err(SpawnError::Setup { stage, error })
            }
            _ => Err(SpawnError::Setup {
                stage: "starting the sandbox".into(),
                error: "it ended before it was ready".into(),
            }),
        }
    }

    /// Give a prepared holder the step's limits and plan.
    async fn build(
        spare: &Spare,
        plan: &SandboxPlan,
        memory: u64,
        processes: u64,
    ) -> io::Result<()> {
        if let Some(c) = &spare.cgroup {
            c.set_limits(memory, processes)?;
        }
        spare
            .channel
            .send(&InitRequest::Build, &[json_memfd(plan)?.as_fd()])
            .await
    }

    /// Make a step's sandbox from `plan`, with the step's memory and process limits.
    /// `names` are the granted host names, for the sandbox's name server. Returns the
    /// sandbox and its cgroup (none where cgroups are unavailable).
    pub async fn open_step(
        self: &Arc<Self>,
        plan: &SandboxPlan,
        memory: u64,
        processes: u64,
        names: Arc<NameTable>,
        log: &StepLog,
    ) -> Result<(StepEnvironment, Option<Arc<StepCgroup>>), SpawnError> {
        // A holder that waited may have died meanwhile; then a fresh one is made.
        let claimed = self.spares.lock().await.pop();
        let spare = match claimed {
            Some(spare) => match Self::build(&spare, plan, memory, processes).await {
                Ok(()) => spare,
                Err(_) => {
                    let fresh = self.prepare_holder().await?;
                    Self::build(&fresh, plan, memory, processes).await?;
                    fresh
                }
            },
            None => {
                let fresh = self.prepare_holder().await?;
                Self::build(&fresh, plan, memory, processes).await?;
                fresh
            }
        };
        let Spare {
            launched,
            channel: control,
            cgroup,
        } = spare;
        let mut forwarding = None;
        loop {
            match control.recv::<InitReport>().await? {
                Some((InitReport::Network, sockets)) => {
                    let net = plan.net.as_ref().ok_or_else(|| {
                        io::Error::other("the sandbox set up a network it was not asked for")
                    })?;
                    forwarding = Some(forward::start(sockets, net, names.clone(), log.clone())?);
                }
                Some((InitReport::Ready, _)) => break,
                Some((InitReport::Failed { stage, error }, _)) => {
                    return Err(SpawnError::Setup { stage, error });
                }
                Some(_) | None => {
                    return Err(SpawnError::Setup {
                        stage: "starting the sandbox".into(),
                        error: "it ended before it was ready".into(),
                    });
                }
            }
        }
        // Replace the holder taken, once this step's sandbox no longer competes for
        // the processors.
        self.refill();
        let environment = StepEnvironment {
            _launched: launched,
            control: Arc::new(tokio::sync::Mutex::new(Conversation {
                channel: control,
                unfinished: false,
            })),
            _forwarding: forwarding,
        };
        Ok((environment, cgroup))
    }
}

/// The control socket of a step's sandbox, one conversation at a time.
struct Conversation {
    channel: channel::AsyncChannel,
    /// A program's conversation was abandoned (its caller went away); the sandbox
    /// must be emptied before the next one.
    unfinished: bool,
}

impl Conversation {
    /// Kill everything in the sandbox; read until it says it is empty.
    async fn kill_all(&mut self) -> io::Result<()> {
        self.channel.send(&InitRequest::KillAll, &[]).await?;
        loop {
            match self.channel.recv::<InitReport>().await? {
                Some((InitReport::Emptied, _)) => {
                    self.unfinished = false;
                    return Ok(());
                }
                Some(_) => {}
                None => return Err(io::Error::other("the step's sandbox ended")),
            }
        }
    }
}

/// A step's sandbox, alive as long as this value: dropping it ends every process in
/// it.
pub struct StepEnvironment {
    _launched: Launched,
    control: Arc<tokio::sync::Mutex<Conversation>>,
    _forwarding: Option<Forwarding>,
}

impl StepEnvironment {
    /// Start a program in the sandbox; it waits for the one before to be done.
    pub async fn run(
        &self,
        plan: &ProgramPlan,
        stdin: Option<Vec<u8>>,
    ) -> Result<SandboxedChild, SpawnError> {
        let mut conversation = self.control.clone().lock_owned().await;
        if conversation.unfinished {
            conversation.kill_all().await?;
        }
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
            None => (std::fs::File::open("/dev/null").map(OwnedFd::from)?, None),
        };
        let fds = [json_memfd(plan)?, stdin_r, stdout_w, stderr_w];
        let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
        conversation
            .channel
            .send(&InitRequest::Run, &borrowed)
            .await?;
        drop(fds);
        conversation.unfinished = true;
        loop {
            match conversation.channel.recv::<InitReport>().await? {
                Some((InitReport::Started, _)) => break,
                Some((InitReport::Failed { stage, error }, _)) => {
                    conversation.unfinished = false;
                    return Err(SpawnError::Setup { stage, error });
                }
                // A report left over from an abandoned conversation.
                Some(_) => {}
                None => {
                    return Err(SpawnError::Setup {
                        stage: "starting the program".into(),
                        error: "the step's sandbox ended".into(),
                    });
                }
            }
        }
        Ok(SandboxedChild {
            stdout: Some(receiver(stdout_r)?),
            stderr: Some(receiver(stderr_r)?),
            conversation,
            killed: false,
            _stdin: stdin_task.map(AbortOnDrop),
        })
    }

    /// Kill every process the sandbox holds (an attempt is over) and empty its `/tmp`.
    pub async fn kill_all(&self) -> io::Result<()> {
        self.control.lock().await.kill_all().await
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A program running in its step's sandbox.
pub struct SandboxedChild {
    pub stdout: Option<tokio::net::unix::pipe::Receiver>,
    pub stderr: Option<tokio::net::unix::pipe::Receiver>,
    conversation: tokio::sync::OwnedMutexGuard<Conversation>,
    killed: bool,
    _stdin: Option<AbortOnDrop>,
}

impl SandboxedChild {
    /// Wait for the program to end.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            match self.conversation.channel.recv::<InitReport>().await? {
                Some((InitReport::Exited { status }, _)) => {
                    if self.killed {
                        // Everything else it left is being killed; wait for that too.
                        while let Some((report, _)) =
                            self.conversation.channel.recv::<InitReport>().await?
                        {
                            if matches!(report, InitReport::Emptied) {
                                break;
                            }
                        }
                    }
                    self.conversation.unfinished = false;
                    return Ok(ExitStatus::from_raw(status));
                }
                Some(_) => {}
                // The sandbox died (killed for memory, say): so did the program.
                None => return Ok(ExitStatus::from_raw(libc::SIGKILL)),
            }
        }
    }

    /// Kill the program, and with it every process of the step's sandbox.
    pub async fn kill(&mut self) {
        if self
            .conversation
            .channel
            .send(&InitRequest::KillAll, &[])
            .await
            .is_ok()
        {
            self.killed = true;
        }
    }
}

fn json_memfd(value: &impl serde::Serialize) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(c"sluice-plan", rustix::fs::MemfdFlags::CLOEXEC)?;
    write_all(&fd, &serde_json::to_vec(value).map_err(io::Error::other)?)?;
    Ok(fd)
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
