//! The runner's own files out of every step's reach.
//!
//! Run folders, the state store and the compiled-plugin cache usually lie inside
//! folders that steps are granted (`read = ["."]` covers `.sluice/`). The runner
//! therefore runs in a mount namespace of its own (entered before it starts any
//! thread) in which each of its folders is covered by an empty, read-only tmpfs once
//! the runner holds a handle to the real folder. The runner keeps working through
//! those handles; every path a step can name, as a WASI preopen or in a native
//! program's sandbox (whose mounts copy the runner's), shows the empty cover: the real
//! files can be neither read, nor written, nor replaced by links.
//!
//! Where the namespace cannot be made (no privilege and no user namespaces), a grant
//! that covers one of these folders is refused before any step runs, with a message
//! saying what to grant instead.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use rustix::mount::{MountFlags, MountPropagationFlags};

/// Whether the runner could make its own mount namespace.
#[derive(Debug)]
pub struct RunnerIsolation {
    state: Result<(), String>,
}

impl RunnerIsolation {
    /// Enter a private mount namespace (as root), or a user and mount namespace
    /// mapping the runner's own user (otherwise), and make the runner non-dumpable so
    /// that programs running as the same user cannot read its memory or environment.
    /// Must be called while the process has one thread.
    pub fn enter() -> RunnerIsolation {
        let state = enter_namespace();
        // After the namespace: a non-dumpable process cannot write its own id maps.
        let _ =
            rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
        RunnerIsolation { state }
    }

    /// An isolation that was never entered (library use, `validate`).
    pub fn none(reason: &str) -> RunnerIsolation {
        RunnerIsolation {
            state: Err(reason.to_string()),
        }
    }

    /// `Ok` when the runner's folders can be hidden; otherwise why not.
    pub fn can_hide(&self) -> Result<(), &str> {
        self.state.as_ref().map(|_| ()).map_err(String::as_str)
    }

    /// Cover the folder `dir` (a handle the runner keeps using) with an empty,
    /// read-only file system in this namespace.
    pub fn hide(&self, dir: &OwnedFd, shown: &Path) -> io::Result<()> {
        if let Err(why) = &self.state {
            return Err(io::Error::other(why.clone()));
        }
        let target = format!("/proc/self/fd/{}", dir.as_raw_fd());
        rustix::mount::mount(
            "sluice-private",
            target.as_str(),
            "tmpfs",
            MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            c"size=4k,nr_inodes=1,mode=0555",
        )
        .map_err(|e| io::Error::other(format!("cannot hide {} from steps: {e}", shown.display())))
    }
}

fn enter_namespace() -> Result<(), String> {
    let euid = rustix::process::geteuid().as_raw();
    let egid = rustix::process::getegid().as_raw();
    if euid == 0 {
        super::sys::unshare_namespaces(rustix::thread::UnshareFlags::NEWNS)
            .map_err(|e| format!("cannot make a mount namespace: {e}"))?;
    } else {
        super::sys::unshare_namespaces(
            rustix::thread::UnshareFlags::NEWUSER | rustix::thread::UnshareFlags::NEWNS,
        )
        .map_err(|e| format!("cannot make a user namespace: {e}"))?;
        let map = |file: &str, text: String| {
            std::fs::write(file, text).map_err(|e| format!("cannot write {file}: {e}"))
        };
        map("/proc/self/setgroups", "deny".into())?;
        map("/proc/self/uid_map", format!("{euid} {euid} 1\n"))?;
        map("/proc/self/gid_map", format!("{egid} {egid} 1\n"))?;
    }
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| format!("cannot make mounts private: {e}"))
}
