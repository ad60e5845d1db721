//! The two processes that make and run a step's sandbox.
//!
//! The **holder**, forked by the launcher ahead of need, joins its cgroups, enters a
//! new user namespace mapping the runner's user to itself, then new network, mount,
//! IPC and UTS namespaces; brings loopback up; builds the base of the file system
//! ([`super::mounts::base`]); forks the **init** into a new PID namespace; and says it
//! is prepared. When a step claims it, it adds the forwarded addresses of the step's
//! `net` grants and the step's mounts, hands the plan to the init, and waits for it.
//!
//! The init, PID 1 of that namespace, mounts `/proc`, waits for the plan, pivots into
//! the new root, applies
//! the rlimits, gives up every capability, sets `no_new_privs` and Landlock, and then
//! serves the runner: it starts each program the runner asks for (a fork that
//! executes it, inheriting all of the above); when the program exits it kills and
//! reaps everything the program started, then reports the program's exit status; on
//! request it kills every process in the sandbox. When it exits, the kernel kills
//! whatever is left in its namespace.
//!
//! Both run in forks of the single-threaded launcher, so ordinary Rust is fine here.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, Resource, Rlimit, Signal};
use rustix::thread::UnshareFlags;

use super::channel;
use super::plan::{InitReport, InitRequest, ProgramPlan, SandboxPlan};
use super::{mounts, net, sys};

/// The control socket, from the sandbox's side.
struct Reporter<'a>(BorrowedFd<'a>);

impl Reporter<'_> {
    fn send(&self, report: &InitReport, fds: &[BorrowedFd<'_>]) {
        let _ = channel::send(self.0, report, fds);
    }

    /// Report what went wrong, and where.
    fn failed(&self, stage: &str, error: String) {
        self.send(
            &InitReport::Failed {
                stage: stage.to_string(),
                error,
            },
            &[],
        );
    }

    /// Report a failure of setting up the sandbox, and end this process.
    fn fail(&self, stage: &str, error: String) -> ! {
        self.failed(stage, error);
        std::process::exit(122)
    }
}

/// Hostname inside every sandbox.
const HOSTNAME: &[u8] = b"sluice-sandbox";

/// How often the init reaps processes that were not the program (orphans).
const REAP_EVERY: Duration = Duration::from_millis(200);

/// Entry point of the holder, in the launcher's child. `fds` are `[control,
/// cgroup.procs...]`. It makes what does not depend on the step (cgroup membership,
/// which can wait for an RCU grace period; the user and network namespaces, which are
/// slow to create), says it is prepared, and waits for the step's plan.
pub fn holder(fds: Vec<OwnedFd>) -> ! {
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
    let mut fds = fds.into_iter();
    let Some(control) = fds.next() else {
        std::process::exit(121);
    };
    let cgroup_procs: Vec<OwnedFd> = fds.collect();
    let reporter = Reporter(control.as_fd());
    let fail = |stage: &str, error: String| -> ! { reporter.fail(stage, error) };
    for procs in &cgroup_procs {
        if let Err(e) = rustix::io::write(procs, b"0") {
            fail("joining the step's cgroup", e.to_string());
        }
    }
    drop(cgroup_procs);
    let (uid, gid) = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    if let Err(e) = sys::unshare_namespaces(UnshareFlags::NEWUSER) {
        fail(
            "mapping the user",
            format!("cannot make a user namespace: {e}"),
        );
    }
    if let Err(e) = map_ids(uid, gid) {
        fail("mapping the user", e.to_string());
    }
    let namespaces =
        UnshareFlags::NEWNET | UnshareFlags::NEWNS | UnshareFlags::NEWIPC | UnshareFlags::NEWUTS;
    if let Err(e) = sys::unshare_namespaces(namespaces) {
        fail("making namespaces", e.to_string());
    }
    if let Err(e) = net::loopback() {
        fail("setting up the network", e.to_string());
    }
    let root = match mounts::build_base(&mounts::base()) {
        Ok(root) => root,
        Err(e) => fail("building the file system", e.to_string()),
    };
    let _ = rustix::system::sethostname(HOSTNAME);
    if let Err(e) = sys::unshare_namespaces(UnshareFlags::NEWPID) {
        fail("making namespaces", e.to_string());
    }
    // The init waits on this pipe for the step's plan, once the holder has built the
    // step's part of the file system.
    let (go_read, go_write) = match rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) {
        Ok(p) => p,
        Err(e) => fail("starting the sandbox", e.to_string()),
    };
    // SAFETY: this process is a fork of the single-threaded launcher and has started
    // no thread.
    let init_pid = match unsafe { sys::fork() } {
        Ok(0) => {
            drop(go_write);
            init(control, &root, go_read)
        }
        Ok(pid) => pid,
        Err(e) => fail("starting the sandbox", e.to_string()),
    };
    drop(go_read);
    reporter.send(&InitReport::Prepared, &[]);

    let plan: SandboxPlan = match channel::recv::<InitRequest>(control.as_fd()) {
        Ok(Some((InitRequest::Build, fds))) => match fds.into_iter().next().map(read_json) {
            Some(Ok(plan)) => plan,
            Some(Err(e)) => fail("reading the plan", e.to_string()),
            None => fail("reading the plan", "no plan was sent".into()),
        },
        // The runner no longer needs this sandbox (the init dies with the holder).
        _ => std::process::exit(0),
    };
    match net::grants(plan.net.as_ref()) {
        Ok(sockets) => {
            if plan.net.is_some() {
                let borrowed: Vec<BorrowedFd<'_>> = sockets.iter().map(|s| s.as_fd()).collect();
                reporter.send(&InitReport::Network, &borrowed);
            }
        }
        Err(e) => fail("setting up the network", e.to_string()),
    }
    if let Err(e) = mounts::build_step(&root, &plan.mounts) {
        fail("building the file system", e.to_string());
    }
    // Hand over: the init takes the plan, and the control socket, from here.
    let text = serde_json::to_vec(&plan).expect("a plan serialises");
    let mut go = std::fs::File::from(go_write);
    if go.write_all(&text).is_err() {
        std::process::exit(1);
    }
    drop(go);
    drop(control);
    let status = rustix::process::waitpid(
        Pid::from_raw(init_pid),
        rustix::process::WaitOptions::empty(),
    );
    let code = match status {
        Ok(Some((_, s))) => s.exit_status().unwrap_or(1),
        _ => 1,
    };
    std::process::exit(code)
}

/// PID 1 of the sandbox: mount `/proc`, wait for the holder to finish building and
/// send the plan, enter the sandbox, then serve the runner until it hangs up.
fn init(control: OwnedFd, root: &Path, go: OwnedFd) -> ! {
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
    let reporter = Reporter(control.as_fd());
    let fail = |stage: &str, error: String| -> ! { reporter.fail(stage, error) };
    if let Err(e) = mounts::mount_proc(root) {
        fail("building the file system", e.to_string());
    }
    let mut text = Vec::new();
    if std::fs::File::from(go).read_to_end(&mut text).is_err() || text.is_empty() {
        // The holder went away without a step: nothing to do.
        std::process::exit(0);
    }
    let plan: SandboxPlan = match serde_json::from_slice(&text) {
        Ok(p) => p,
        Err(e) => fail("reading the plan", e.to_string()),
    };
    if let Err(e) = mounts::enter_root(root) {
        fail("building the file system", e.to_string());
    }
    if let Err(e) = confine(&plan) {
        fail("confining the sandbox", e);
    }
    reporter.send(&InitReport::Ready, &[]);

    let mut program: Option<(i32, OwnedFd)> = None;
    loop {
        let mut polled = vec![PollFd::new(&control, PollFlags::IN)];
        if let Some((_, pidfd)) = &program {
            polled.push(PollFd::new(pidfd, PollFlags::IN));
        }
        let timeout = rustix::time::Timespec {
            tv_sec: REAP_EVERY.as_secs() as i64,
            tv_nsec: REAP_EVERY.subsec_nanos() as i64,
        };
        let _ = rustix::event::poll(&mut polled, Some(&timeout));
        let request = !polled[0].revents().is_empty();
        drop(polled);
        reap(&mut program, &reporter, false);
        if !request {
            continue;
        }
        match channel::recv::<InitRequest>(control.as_fd()) {
            Ok(Some((InitRequest::Run, fds))) => {
                if program.is_some() {
                    reporter.failed(
                        "starting the program",
                        "another program of the step is still running".into(),
                    );
                    continue;
                }
                match start(fds) {
                    Ok(started) => {
                        program = Some(started);
                        reporter.send(&InitReport::Started, &[]);
                    }
                    Err(error) => reporter.failed("executing the program", error),
                }
            }
            Ok(Some((InitRequest::KillAll, _))) => {
                reap(&mut program, &reporter, true);
                empty_folder(Path::new("/tmp"));
                empty_folder(Path::new("/dev/shm"));
                reporter.send(&InitReport::Emptied, &[]);
            }
            Ok(Some((InitRequest::Build, _))) => {
                reporter.failed("building the sandbox", "it is already built".into())
            }
            // The runner is done with the step (or gone): end everything.
            Ok(None) | Err(_) => {
                sys::kill_all_but_self();
                std::process::exit(0)
            }
        }
    }
}

/// Reap children. With `kill`, every other process of the sandbox is killed first and
/// all are waited for; otherwise only those that have ended are taken. When the
/// program is among them, everything it started is killed and reaped too before its
/// exit status is reported: nothing outlives the program that started it (daemons
/// included), and its output pipes close.
fn reap(program: &mut Option<(i32, OwnedFd)>, reporter: &Reporter<'_>, kill: bool) {
    if kill {
        sys::kill_all_but_self();
    }
    let options = if kill {
        rustix::process::WaitOptions::empty()
    } else {
        rustix::process::WaitOptions::NOHANG
    };
    loop {
        match rustix::process::wait(options) {
            Ok(Some((pid, status))) => {
                let ended = pid.as_raw_nonzero().get();
                if program.as_ref().is_some_and(|(p, _)| *p == ended) {
                    *program = None;
                    if !kill {
                        reap(program, reporter, true);
                    }
                    reporter.send(
                        &InitReport::Exited {
                            status: status.as_raw(),
                        },
                        &[],
                    );
                    if !kill {
                        return;
                    }
                }
            }
            // Nothing else has ended (without `kill`), or no child is left.
            Ok(None) | Err(rustix::io::Errno::CHILD) => break,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
    }
}

/// Remove what the step's programs left in one of the sandbox's own folders (`/tmp`,
/// `/dev/shm`), never crossing into another file system: folders granted below
/// `/tmp` (a project under the machine's `/tmp`) are bind mounts of the machine's
/// files, which must survive, so a mount point and everything under it is left alone.
fn empty_folder(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(own) = std::fs::symlink_metadata(dir) else {
        return;
    };
    empty_on_device(dir, own.dev());
}

fn empty_on_device(dir: &Path, device: u64) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        // `symlink_metadata`: a link is removed, never followed.
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.dev() != device {
            // A mount point (a grant): neither it nor anything under it is ours.
            continue;
        }
        if meta.is_dir() {
            empty_on_device(&p, device);
            // Fails (EBUSY, ENOTEMPTY) when a mount point was kept inside; fine.
            let _ = std::fs::remove_dir(&p);
        } else {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// Start one program: `fds` are `[plan, stdin, stdout, stderr]`.
fn start(fds: Vec<OwnedFd>) -> Result<(i32, OwnedFd), String> {
    let mut fds = fds.into_iter();
    let (Some(plan), Some(stdin), Some(stdout), Some(stderr)) =
        (fds.next(), fds.next(), fds.next(), fds.next())
    else {
        return Err("the runner sent an incomplete request".into());
    };
    let plan: ProgramPlan =
        read_json(plan).map_err(|e| format!("reading the program's plan: {e}"))?;
    for (name, content) in &plan.files {
        write_private_file(&Path::new("/tmp").join(name), content)
            .map_err(|e| format!("making /tmp/{name}: {e}"))?;
    }
    let (err_read, err_write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| e.to_string())?;
    // SAFETY: the init is single-threaded.
    let pid = unsafe { sys::fork() }.map_err(|e| e.to_string())?;
    if pid == 0 {
        drop(err_read);
        let error = exec(&plan, stdin, stdout, stderr);
        let mut w = std::fs::File::from(err_write);
        let _ = w.write_all(error.as_bytes());
        std::process::exit(127);
    }
    drop(err_write);
    drop((stdin, stdout, stderr));
    let pidfd = rustix::process::pidfd_open(
        Pid::from_raw(pid).expect("fork returned a pid"),
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| e.to_string())?;
    let mut error = String::new();
    let _ = std::fs::File::from(err_read).read_to_string(&mut error);
    if error.is_empty() {
        Ok((pid, pidfd))
    } else {
        Err(error)
    }
}

/// In the program's process: its own session, its streams, then execute. Everything
/// else (namespaces, rlimits, no capabilities, Landlock) is inherited from the init.
/// Returns only on failure, with the reason.
fn exec(plan: &ProgramPlan, stdin: OwnedFd, stdout: OwnedFd, stderr: OwnedFd) -> String {
    if let Err(e) = rustix::process::setsid() {
        return format!("setsid: {e}");
    }
    let redirected = rustix::stdio::dup2_stdin(&stdin)
        .and_then(|()| rustix::stdio::dup2_stdout(&stdout))
        .and_then(|()| rustix::stdio::dup2_stderr(&stderr));
    if let Err(e) = redirected {
        return format!("redirecting standard streams: {e}");
    }
    drop((stdin, stdout, stderr));
    let e = std::process::Command::new(&plan.executable)
        .arg0(&plan.argv0)
        .args(&plan.args)
        .env_clear()
        .envs(plan.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&plan.cwd)
        .exec();
    format!("cannot execute {}: {e}", plan.executable.display())
}

/// A file only its owner may read, replacing whatever was at `path` (not following
/// a link a program left there).
fn write_private_file(path: &Path, content: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(content.as_bytes())
}

fn read_json<T: serde::de::DeserializeOwned>(fd: OwnedFd) -> std::io::Result<T> {
    let mut text = Vec::new();
    let mut f = std::fs::File::from(fd);
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0))?;
    f.read_to_end(&mut text)?;
    serde_json::from_slice(&text).map_err(std::io::Error::other)
}

/// Map the runner's user and group to themselves, the only ids in the namespace.
///
/// This process is a copy of the runner, environment included, so it stays
/// non-dumpable (the programs, same user, cannot read its memory or environment)
/// except while writing its own maps, which a non-dumpable process may not.
fn map_ids(uid: u32, gid: u32) -> std::io::Result<()> {
    use rustix::process::{DumpableBehavior, set_dumpable_behavior};
    set_dumpable_behavior(DumpableBehavior::Dumpable)?;
    let mapped = (|| {
        std::fs::write("/proc/self/setgroups", b"deny")?;
        std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1\n"))?;
        std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1\n"))
    })();
    set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    mapped
}

/// rlimits, no capability now or after any `execve` (even as uid 0), `no_new_privs`,
/// Landlock: for the init and, by inheritance, every program.
fn confine(plan: &SandboxPlan) -> Result<(), String> {
    let limits = [
        (Resource::Nproc, plan.rlimits.processes),
        (Resource::Data, plan.rlimits.data),
        (Resource::Core, Some(0)),
    ];
    for (resource, value) in limits {
        if let Some(v) = value {
            let limit = Rlimit {
                current: Some(v),
                maximum: Some(v),
            };
            rustix::process::setrlimit(resource, limit)
                .map_err(|e| format!("setting resource limits: {e}"))?;
        }
    }
    rustix::thread::set_no_new_privs(true).map_err(|e| format!("no_new_privs: {e}"))?;
    crate::capabilities::confine::restrict_self(&plan.landlock).map_err(|e| e.to_string())?;
    drop_capabilities().map_err(|e| format!("dropping capabilities: {e}"))
}

fn drop_capabilities() -> rustix::io::Result<()> {
    use rustix::thread::{CapabilitiesSecureBits as Bits, CapabilitySet, CapabilitySets};
    rustix::thread::set_capabilities_secure_bits(
        Bits::NO_ROOT
            | Bits::NO_ROOT_LOCKED
            | Bits::NO_SETUID_FIXUP
            | Bits::NO_SETUID_FIXUP_LOCKED
            | Bits::KEEP_CAPS_LOCKED
            | Bits::NO_CAP_AMBIENT_RAISE
            | Bits::NO_CAP_AMBIENT_RAISE_LOCKED,
    )?;
    rustix::thread::clear_ambient_capability_set()?;
    // Every capability number the kernel may know, not only those rustix names.
    for bit in 0..64 {
        match rustix::thread::remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(
            1 << bit,
        )) {
            Ok(()) | Err(rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(e),
        }
    }
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::empty(),
            permitted: CapabilitySet::empty(),
            inheritable: CapabilitySet::empty(),
        },
    )
}
