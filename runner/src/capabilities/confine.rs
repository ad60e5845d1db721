//! Confinement of the native programs a step starts through `process`.
//!
//! A program runs with:
//! - a Landlock ruleset: it can read (and execute) the step's granted folders, the
//!   system's read-only toolchain folders and the program itself; write only the
//!   step's `write` grants, its scratch folder and a few devices; connect over TCP only
//!   to the granted ports, and bind none; and it cannot signal or reach abstract UNIX
//!   sockets of processes outside its sandbox (where the kernel supports scoping);
//! - `no_new_privs`, so set-uid programs cannot regain what Landlock took;
//! - when the step has no `net` grant, a user and network namespace of its own, in
//!   which no network exists at all (Landlock does not cover UDP).
//!
//! The ruleset is built in the runner; the forked child only makes the raw system
//! calls that apply it, which are safe between `fork` and `exec`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreatedAttr, Scope,
};

/// Folders every toolchain needs to read and execute from.
const SYSTEM_READ_ONLY: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/opt",
    "/proc",
    "/sys/devices/system/cpu",
];

/// Devices a program may read and write.
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
];

/// Why a program cannot be confined.
#[derive(Debug, thiserror::Error)]
#[error("native programs cannot be confined on this machine ({reason})")]
pub struct ConfineError {
    reason: String,
}

/// What a confined program may reach.
pub struct ConfinePlan<'a> {
    pub read: Vec<&'a Path>,
    pub write: Vec<&'a Path>,
    /// The program's own file (readable and executable even outside the folders).
    pub program: &'a Path,
    pub tcp_ports: Vec<u16>,
    /// Give the program no network at all.
    pub isolate_network: bool,
}

/// A prepared confinement, applied in the child just before `exec`.
pub struct Confinement {
    ruleset: OwnedFd,
    isolate_network: Option<NamespaceMaps>,
}

/// The contents written to `/proc/self/{setgroups,uid_map,gid_map}` in a new user
/// namespace, prepared before `fork` so that the child only copies bytes.
struct NamespaceMaps {
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
}

impl Confinement {
    /// Build the Landlock ruleset for `plan`.
    pub fn prepare(plan: &ConfinePlan<'_>) -> Result<Confinement, ConfineError> {
        let fail = |e: &dyn std::fmt::Display| ConfineError {
            reason: format!("Landlock: {e}"),
        };
        // Files and TCP ports must be enforceable (ABI 4); the rest is taken where the
        // kernel has it.
        let ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::HardRequirement)
            .handle_access(AccessFs::from_all(ABI::V3))
            .map_err(|e| fail(&e))?
            .handle_access(AccessNet::from_all(ABI::V4))
            .map_err(|e| fail(&e))?
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(AccessFs::from_all(ABI::V5))
            .map_err(|e| fail(&e))?
            .scope(Scope::from_all(ABI::V6))
            .map_err(|e| fail(&e))?;
        let mut created = ruleset.create().map_err(|e| fail(&e))?;
        let read = AccessFs::from_read(ABI::V5);
        let all = AccessFs::from_all(ABI::V5);
        let mut rules: Vec<(PathBuf, landlock::BitFlags<AccessFs>)> = Vec::new();
        for p in SYSTEM_READ_ONLY {
            rules.push((PathBuf::from(p), read));
        }
        for p in DEVICES {
            rules.push((PathBuf::from(p), AccessFs::from_file(ABI::V5)));
        }
        for p in &plan.read {
            rules.push((p.to_path_buf(), read));
        }
        for p in &plan.write {
            rules.push((p.to_path_buf(), all));
        }
        rules.push((
            plan.program.to_path_buf(),
            AccessFs::ReadFile | AccessFs::Execute,
        ));
        for (path, access) in rules {
            // Folders that do not exist on this machine (e.g. /lib32) are skipped.
            let Ok(fd) = PathFd::new(&path) else { continue };
            created = created
                .add_rule(PathBeneath::new(fd, access))
                .map_err(|e| fail(&e))?;
        }
        for port in &plan.tcp_ports {
            created = created
                .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
                .map_err(|e| fail(&e))?;
        }
        let fd: Option<OwnedFd> = created.into();
        let ruleset = fd.ok_or_else(|| ConfineError {
            reason: "the kernel does not support Landlock".into(),
        })?;
        let isolate_network = plan.isolate_network.then(|| {
            let (uid, gid) = own_ids();
            NamespaceMaps {
                uid_map: format!("{uid} {uid} 1\n").into_bytes(),
                gid_map: format!("{gid} {gid} 1\n").into_bytes(),
            }
        });
        Ok(Confinement {
            ruleset,
            isolate_network,
        })
    }

    /// Install this confinement on a command: the child applies it between `fork`
    /// and `exec`.
    pub fn install(self, cmd: &mut tokio::process::Command) {
        let Confinement {
            ruleset,
            isolate_network,
        } = self;
        let closure = move || -> std::io::Result<()> {
            apply_in_child(ruleset.as_raw_fd(), isolate_network.as_ref())
        };
        // SAFETY: `apply_in_child` only makes raw system calls (unshare, open, write,
        // close, prctl, landlock_restrict_self) on data prepared before the fork; it
        // does not allocate, lock, or touch state shared with other threads.
        unsafe {
            cmd.pre_exec(closure);
        }
    }
}

/// This process's effective user and group: the owner of `/proc/self`.
fn own_ids() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self") {
        Ok(m) => (m.uid(), m.gid()),
        Err(_) => (0, 0),
    }
}

/// Runs in the forked child. Only async-signal-safe system calls.
fn apply_in_child(ruleset: i32, maps: Option<&NamespaceMaps>) -> std::io::Result<()> {
    use std::io::Error;
    // SAFETY: plain system calls with valid arguments; the buffers outlive the calls.
    unsafe {
        if let Some(maps) = maps {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) != 0 {
                return Err(Error::last_os_error());
            }
            write_proc(c"/proc/self/setgroups", b"deny\n")?;
            write_proc(c"/proc/self/uid_map", &maps.uid_map)?;
            write_proc(c"/proc/self/gid_map", &maps.gid_map)?;
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(Error::last_os_error());
        }
        if libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0) != 0 {
            return Err(Error::last_os_error());
        }
    }
    Ok(())
}

/// Write `bytes` to a /proc file with raw calls.
///
/// # Safety
/// Only to be called between fork and exec; `path` must be NUL-terminated.
unsafe fn write_proc(path: &std::ffi::CStr, bytes: &[u8]) -> std::io::Result<()> {
    // SAFETY: `path` is a valid C string and `bytes` a valid buffer.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if n != bytes.len() as isize {
            return Err(err);
        }
    }
    Ok(())
}
