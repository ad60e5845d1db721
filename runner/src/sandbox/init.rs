//! The init process of one sandbox: PID 1 of a new PID namespace, in new user, mount,
//! network, IPC and UTS namespaces, created by the launcher. It joins the step's
//! cgroups, maps the runner's user to itself, sets up loopback (and the forwarded
//! addresses of `net` grants), builds the file system ([`super::mounts`]), then starts
//! the program in a child process that drops every capability, applies the rlimits and
//! Landlock, and executes it. It reaps everything in the namespace and reports the
//! program's exit status; when it exits, the kernel kills whatever is left.
//!
//! Runs in a fork of the single-threaded launcher, so ordinary Rust is fine here.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;

use rustix::process::{Resource, Rlimit, Signal};

use super::channel;
use super::plan::{InitReport, ProgramPlan};
use super::{mounts, net, sys};

/// Hostname inside every sandbox.
const HOSTNAME: &[u8] = b"sluice-sandbox";

/// Entry point in the child of `clone3`. `fds` are `[plan, stdin, stdout, stderr,
/// control, cgroup.procs...]`.
pub fn run(fds: Vec<OwnedFd>) -> ! {
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
    let mut fds = fds.into_iter();
    let (Some(plan), Some(stdin), Some(stdout), Some(stderr), Some(control)) =
        (fds.next(), fds.next(), fds.next(), fds.next(), fds.next())
    else {
        std::process::exit(121);
    };
    let cgroup_procs: Vec<OwnedFd> = fds.collect();
    let report = |r: &InitReport, fds: &[BorrowedFd<'_>]| {
        let _ = channel::send(control.as_fd(), r, fds);
    };
    let fail = |stage: &str, error: String| -> ! {
        report(
            &InitReport::Failed {
                stage: stage.to_string(),
                error,
            },
            &[],
        );
        std::process::exit(122)
    };
    let plan = match read_plan(plan) {
        Ok(p) => p,
        Err(e) => fail("reading the plan", e.to_string()),
    };
    for procs in &cgroup_procs {
        if let Err(e) = rustix::io::write(procs, b"0") {
            fail("joining the step's cgroup", e.to_string());
        }
    }
    drop(cgroup_procs);
    if let Err(e) = map_ids(plan.uid, plan.gid) {
        fail("mapping the user", e.to_string());
    }
    match net::configure(plan.net.as_ref()) {
        Ok(sockets) => {
            if plan.net.is_some() {
                let borrowed: Vec<BorrowedFd<'_>> = sockets.iter().map(|s| s.as_fd()).collect();
                report(&InitReport::Network, &borrowed);
            }
        }
        Err(e) => fail("setting up the network", e.to_string()),
    }
    if let Err(e) = mounts::build_root(&plan.mounts) {
        fail("building the file system", e.to_string());
    }
    let _ = rustix::system::sethostname(HOSTNAME);

    let (err_read, err_write) = match rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) {
        Ok(p) => p,
        Err(e) => fail("starting the program", e.to_string()),
    };
    // SAFETY: this process is a fork of the single-threaded launcher and has started
    // no thread.
    let pid = match unsafe { sys::fork() } {
        Ok(0) => {
            drop(err_read);
            drop(control);
            let error = exec_program(&plan, stdin, stdout, stderr);
            let mut w = std::fs::File::from(err_write);
            let _ = w.write_all(error.as_bytes());
            std::process::exit(127)
        }
        Ok(pid) => pid,
        Err(e) => fail("starting the program", e.to_string()),
    };
    drop(err_write);
    drop((stdin, stdout, stderr));
    let mut error = String::new();
    let _ = std::fs::File::from(err_read).read_to_string(&mut error);
    if !error.is_empty() {
        fail("executing the program", error);
    }
    report(&InitReport::Started, &[]);
    // Reap everything; the program's own status is what counts.
    loop {
        match rustix::process::wait(rustix::process::WaitOptions::empty()) {
            Ok(Some((reaped, status))) if reaped.as_raw_nonzero().get() == pid => {
                report(
                    &InitReport::Exited {
                        status: status.as_raw(),
                    },
                    &[],
                );
                std::process::exit(0);
            }
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => std::process::exit(123),
        }
    }
}

fn read_plan(fd: OwnedFd) -> std::io::Result<ProgramPlan> {
    let mut text = Vec::new();
    let mut f = std::fs::File::from(fd);
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0))?;
    f.read_to_end(&mut text)?;
    serde_json::from_slice(&text).map_err(std::io::Error::other)
}

/// Map the runner's user and group to themselves, the only ids in the namespace.
fn map_ids(uid: u32, gid: u32) -> std::io::Result<()> {
    std::fs::write("/proc/self/setgroups", b"deny")?;
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1\n"))?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1\n"))?;
    Ok(())
}

/// In the program's process: give up everything, then execute. Returns only on
/// failure, with the reason.
fn exec_program(plan: &ProgramPlan, stdin: OwnedFd, stdout: OwnedFd, stderr: OwnedFd) -> String {
    let step = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    if let Err(e) = rustix::process::setsid() {
        return step("setsid", &e);
    }
    let redirected = rustix::stdio::dup2_stdin(&stdin)
        .and_then(|()| rustix::stdio::dup2_stdout(&stdout))
        .and_then(|()| rustix::stdio::dup2_stderr(&stderr));
    if let Err(e) = redirected {
        return step("redirecting standard streams", &e);
    }
    drop((stdin, stdout, stderr));
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
            if let Err(e) = rustix::process::setrlimit(resource, limit) {
                return step("setting resource limits", &e);
            }
        }
    }
    if let Err(e) = rustix::thread::set_no_new_privs(true) {
        return step("no_new_privs", &e);
    }
    if let Err(e) = crate::capabilities::confine::restrict_self(&plan.landlock) {
        return e.to_string();
    }
    if let Err(e) = drop_capabilities() {
        return step("dropping capabilities", &e);
    }
    let e = std::process::Command::new(&plan.executable)
        .arg0(&plan.argv0)
        .args(&plan.args)
        .env_clear()
        .envs(plan.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&plan.cwd)
        .exec();
    format!("cannot execute {}: {e}", plan.executable.display())
}

/// No capability, now or after any `execve`, even as uid 0 inside the namespace.
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
            // Capabilities newer than this kernel do not exist in the bounding set.
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
