//! The launcher: a small process forked from the runner before the runner starts any
//! thread, which forks the holder of every step's sandbox ([`super::init`]). Entering
//! namespaces and forking need a single-threaded process, and forking this small one
//! costs a fraction of starting the runner's binary again.
//!
//! Protocol (packets on a socket pair, see [`super::channel`]):
//! - runner → launcher: `Spawn { id }` with the descriptors
//!   `[plan, control, cgroup.procs...]`, `Kill { id }`, and `Shutdown`;
//! - launcher → runner: `Spawned { id }`, `SpawnFailed { id, error }`,
//!   `Exited { id, status }` (the raw wait status of the holder), `ShutDown`.
//!
//! Lifetimes: the launcher dies with the runner (parent-death signal, and the end of
//! its socket), and kills every sandbox when it goes; a sandbox's holder and init die
//! with their parent (parent-death signals), and the kernel kills every process of a
//! PID namespace when its init dies. So no program outlives the runner, even one
//! killed with SIGKILL.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustix::event::{PollFd, PollFlags};
use rustix::process::{Signal, WaitIdOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::channel::{self, AsyncChannel};
use super::init;
use super::sys;

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Spawn {
        id: u64,
    },
    Kill {
        id: u64,
    },
    /// Kill every sandbox, wait until each is gone, answer, and exit.
    Shutdown,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LaunchEvent {
    /// The sandbox's holder process exists.
    Spawned { id: u64 },
    /// It could not be created.
    SpawnFailed { id: u64, error: String },
    /// The holder process ended (raw wait status).
    Exited { id: u64, status: i32 },
    /// Every sandbox is gone; the launcher exits.
    ShutDown,
}

impl LaunchEvent {
    fn id(&self) -> u64 {
        match self {
            LaunchEvent::Spawned { id }
            | LaunchEvent::SpawnFailed { id, .. }
            | LaunchEvent::Exited { id, .. } => *id,
            LaunchEvent::ShutDown => 0,
        }
    }
}

/// The runner's handle on the launcher process.
pub struct Launcher {
    /// The socket until the first spawn, which must happen inside the async runtime.
    socket: Mutex<Option<OwnedFd>>,
    client: tokio::sync::OnceCell<Arc<Client>>,
}

impl Launcher {
    /// Fork the launcher. Must be called while the process has one thread.
    pub fn start() -> io::Result<Launcher> {
        let (ours, theirs) = channel::pair()?;
        let runner = rustix::process::getpid();
        // SAFETY: the caller runs this before any thread is started (see cli::main).
        match unsafe { sys::fork()? } {
            0 => {
                drop(ours);
                let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
                if rustix::process::getppid() != Some(runner) {
                    std::process::exit(0);
                }
                let _ = rustix::thread::set_name(c"sluice-launcher");
                serve(theirs)
            }
            _ => {
                drop(theirs);
                Ok(Launcher {
                    socket: Mutex::new(Some(ours)),
                    client: tokio::sync::OnceCell::new(),
                })
            }
        }
    }

    async fn client(&self) -> io::Result<Arc<Client>> {
        self.client
            .get_or_try_init(|| async {
                let socket = self
                    .socket
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .ok_or_else(|| io::Error::other("the launcher is gone"))?;
                Client::start(socket)
            })
            .await
            .cloned()
    }

    /// Kill every sandbox and wait (at most `wait`) until all their processes are
    /// gone. For a runner that is stopping.
    pub async fn shutdown(&self, wait: std::time::Duration) {
        let Some(client) = self.client.get() else {
            return;
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        if client.wait_for(0, tx).is_err() {
            return;
        }
        if client.outbox.send((Request::Shutdown, Vec::new())).is_ok() {
            let _ = tokio::time::timeout(wait, rx.recv()).await;
        }
    }

    /// Ask for a sandbox. `fds` are `[plan, control, cgroup.procs...]`; they are
    /// closed on our side once sent.
    pub async fn spawn(&self, fds: Vec<OwnedFd>) -> io::Result<Launched> {
        let client = self.client().await?;
        let id = client.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, events) = mpsc::unbounded_channel();
        client.wait_for(id, tx)?;
        client
            .outbox
            .send((Request::Spawn { id }, fds))
            .map_err(|_| io::Error::other("the launcher is gone"))?;
        Ok(Launched {
            id,
            events,
            client,
            done: false,
        })
    }
}

/// One sandbox asked of the launcher. Dropping it before its holder has exited kills
/// the sandbox.
pub struct Launched {
    id: u64,
    events: mpsc::UnboundedReceiver<LaunchEvent>,
    client: Arc<Client>,
    done: bool,
}

impl Launched {
    /// The next event about this sandbox; `None` if the launcher died.
    pub async fn next(&mut self) -> Option<LaunchEvent> {
        let e = self.events.recv().await;
        if matches!(
            e,
            Some(LaunchEvent::Exited { .. } | LaunchEvent::SpawnFailed { .. }) | None
        ) {
            self.done = true;
        }
        e
    }

    /// Kill the sandbox (its holder, and with it every process in it).
    pub fn kill(&self) {
        let _ = self
            .client
            .outbox
            .send((Request::Kill { id: self.id }, Vec::new()));
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        if !self.done {
            self.kill();
        }
        if let Some(waiters) = self
            .client
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            waiters.remove(&self.id);
        }
    }
}

struct Client {
    next_id: AtomicU64,
    /// Who waits for events about which sandbox; `None` once the launcher is gone, so
    /// that nobody starts waiting for an answer that cannot come.
    waiters: Mutex<Option<HashMap<u64, mpsc::UnboundedSender<LaunchEvent>>>>,
    outbox: mpsc::UnboundedSender<(Request, Vec<OwnedFd>)>,
}

impl Client {
    /// Send the events about sandbox `id` to `tx`; an error once the launcher is gone.
    fn wait_for(&self, id: u64, tx: mpsc::UnboundedSender<LaunchEvent>) -> io::Result<()> {
        match self
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            Some(waiters) => {
                waiters.insert(id, tx);
                Ok(())
            }
            None => Err(io::Error::other("the launcher is gone")),
        }
    }

    fn start(socket: OwnedFd) -> io::Result<Arc<Client>> {
        let channel = Arc::new(AsyncChannel::new(socket)?);
        let (outbox, mut queue) = mpsc::unbounded_channel::<(Request, Vec<OwnedFd>)>();
        let client = Arc::new(Client {
            next_id: AtomicU64::new(1),
            waiters: Mutex::new(Some(HashMap::new())),
            outbox,
        });
        let writer = channel.clone();
        tokio::spawn(async move {
            while let Some((request, fds)) = queue.recv().await {
                let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
                if writer.send(&request, &borrowed).await.is_err() {
                    break;
                }
            }
        });
        let weak = Arc::downgrade(&client);
        tokio::spawn(async move {
            loop {
                let event = match channel.recv::<LaunchEvent>().await {
                    Ok(Some((event, _))) => Some(event),
                    _ => None,
                };
                let Some(client) = weak.upgrade() else { break };
                let mut waiters = client.waiters.lock().unwrap_or_else(|e| e.into_inner());
                match event {
                    Some(event) => {
                        if let Some(tx) = waiters.as_ref().and_then(|w| w.get(&event.id())) {
                            let _ = tx.send(event);
                        }
                    }
                    None => {
                        // The launcher is gone: every waiter sees its channel close,
                        // and later ones are refused (`wait_for`).
                        *waiters = None;
                        break;
                    }
                }
            }
        });
        Ok(client)
    }
}

/// The launcher's loop: create sandboxes, report their end, kill them on request, and
/// kill them all when the runner goes away.
fn serve(socket: OwnedFd) -> ! {
    let mut children: HashMap<u64, OwnedFd> = HashMap::new();
    loop {
        let ids: Vec<u64> = children.keys().copied().collect();
        let mut polled: Vec<PollFd<'_>> = Vec::with_capacity(ids.len() + 1);
        polled.push(PollFd::new(&socket, PollFlags::IN));
        for id in &ids {
            polled.push(PollFd::new(&children[id], PollFlags::IN));
        }
        match rustix::event::poll(&mut polled, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => shutdown(&children),
        }
        let socket_ready = !polled[0].revents().is_empty();
        let exited: Vec<u64> = ids
            .iter()
            .zip(&polled[1..])
            .filter(|(_, p)| !p.revents().is_empty())
            .map(|(id, _)| *id)
            .collect();
        drop(polled);
        for id in exited {
            if let Some(pidfd) = children.remove(&id) {
                let status = rustix::process::waitid(
                    rustix::process::WaitId::PidFd(pidfd.as_fd()),
                    WaitIdOptions::EXITED,
                )
                .ok()
                .flatten()
                .map_or(0, |s| wait_status(&s));
                let _ = channel::send(socket.as_fd(), &LaunchEvent::Exited { id, status }, &[]);
            }
        }
        if !socket_ready {
            continue;
        }
        match channel::recv::<Request>(socket.as_fd()) {
            Ok(Some((Request::Spawn { id }, fds))) => {
                // SAFETY: the launcher is single-threaded.
                let forked = unsafe { sys::fork() }.and_then(|pid| {
                    if pid == 0 {
                        return Ok(None);
                    }
                    let pidfd = rustix::process::pidfd_open(
                        rustix::process::Pid::from_raw(pid).expect("fork returned a pid"),
                        rustix::process::PidfdFlags::empty(),
                    )?;
                    Ok(Some(pidfd))
                });
                match forked {
                    Ok(None) => {
                        drop(socket);
                        drop(children);
                        init::holder(fds)
                    }
                    Ok(Some(pidfd)) => {
                        drop(fds);
                        children.insert(id, pidfd);
                        let _ = channel::send(socket.as_fd(), &LaunchEvent::Spawned { id }, &[]);
                    }
                    Err(e) => {
                        drop(fds);
                        let error = format!("cannot start a sandbox: {e}");
                        let _ = channel::send(
                            socket.as_fd(),
                            &LaunchEvent::SpawnFailed { id, error },
                            &[],
                        );
                    }
                }
            }
            Ok(Some((Request::Kill { id }, _))) => {
                if let Some(pidfd) = children.get(&id) {
                    let _ = rustix::process::pidfd_send_signal(pidfd, Signal::KILL);
                }
            }
            Ok(Some((Request::Shutdown, _))) => {
                kill_all(&children);
                for pidfd in children.values() {
                    let _ = rustix::process::waitid(
                        rustix::process::WaitId::PidFd(pidfd.as_fd()),
                        WaitIdOptions::EXITED,
                    );
                }
                let _ = channel::send(socket.as_fd(), &LaunchEvent::ShutDown, &[]);
                std::process::exit(0)
            }
            // The runner is gone (or sent garbage): end every sandbox and stop.
            Ok(None) | Err(_) => shutdown(&children),
        }
    }
}

fn kill_all(children: &HashMap<u64, OwnedFd>) {
    for pidfd in children.values() {
        let _ = rustix::process::pidfd_send_signal(pidfd, Signal::KILL);
    }
}

fn shutdown(children: &HashMap<u64, OwnedFd>) -> ! {
    kill_all(children);
    std::process::exit(0)
}

/// A `waitid` result as the classic wait status integer.
fn wait_status(s: &rustix::process::WaitIdStatus) -> i32 {
    if let Some(code) = s.exit_status() {
        (code & 0xff) << 8
    } else if let Some(sig) = s.terminating_signal() {
        sig & 0x7f
    } else {
        0
    }
}
