//! The few system calls the sandbox needs that have no safe wrapper in `rustix`:
//! `fork` in a single-threaded process, `unshare` of namespaces, `mount_setattr`,
//! killing every other process of a PID namespace, signalling one thread, a signal
//! handler, and the Landlock version. Each wrapper states the condition that makes it
//! sound; nothing else in the sandbox is `unsafe`.

use std::ffi::CString;
use std::io;
use std::path::Path;

/// `unshare(2)` of namespaces only (never of the file table or memory).
pub fn unshare_namespaces(flags: rustix::thread::UnshareFlags) -> io::Result<()> {
    let allowed = rustix::thread::UnshareFlags::NEWNS
        | rustix::thread::UnshareFlags::NEWUSER
        | rustix::thread::UnshareFlags::NEWPID
        | rustix::thread::UnshareFlags::NEWNET
        | rustix::thread::UnshareFlags::NEWIPC
        | rustix::thread::UnshareFlags::NEWUTS;
    assert!(allowed.contains(flags), "only namespaces are unshared");
    // SAFETY: unsharing namespaces does not touch the file descriptor table or the
    // address space, which is what could break I/O safety.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(io::Error::from)
}

/// `fork(2)`. Returns the child's pid in the parent, 0 in the child.
///
/// # Safety
/// The calling process must be single-threaded: the child is a copy of it with only
/// the calling thread, so any lock another thread held would stay locked forever.
pub unsafe fn fork() -> io::Result<i32> {
    // SAFETY: the caller guarantees a single thread.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        pid => Ok(pid),
    }
}

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const AT_RECURSIVE: u32 = 0x8000;

/// Make the mount at `path` and every mount below it nosuid, read-only (when
/// `read_only`) and nodev (when `nodev`).
pub fn lock_down_mount_tree(path: &Path, read_only: bool, nodev: bool) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut attr = MountAttr {
        attr_set: MOUNT_ATTR_NOSUID
            | if nodev { MOUNT_ATTR_NODEV } else { 0 }
            | if read_only { MOUNT_ATTR_RDONLY } else { 0 },
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: valid C string and a valid mount_attr of the size passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            AT_RECURSIVE,
            &raw mut attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// From the init of a PID namespace: SIGKILL every other process in it.
pub fn kill_all_but_self() {
    // SAFETY: kill(2) with pid -1 signals every process the caller may signal except
    // itself; in a PID namespace's init that is the namespace. No memory is involved.
    unsafe {
        libc::kill(-1, libc::SIGKILL);
    }
}

/// Send `signal` to one thread of this process.
pub fn signal_thread(tid: i32, signal: i32) {
    // SAFETY: tgkill with this process's id only signals a thread of ours; an id that
    // no longer exists gets ESRCH, which is ignored.
    unsafe {
        libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, signal);
    }
}

/// Install a handler for `signal` that does nothing, without `SA_RESTART`, so that a
/// system call blocked in a thread that receives it returns `EINTR`.
pub fn install_interrupting_handler(signal: i32) -> io::Result<()> {
    extern "C" fn ignore(_: libc::c_int) {}
    // SAFETY: a zeroed sigaction with an empty mask is valid; the handler is
    // async-signal-safe (it does nothing).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = ignore as *const () as usize;
        action.sa_flags = 0;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The thread id of the calling thread.
pub fn current_thread_id() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}

/// The Landlock ABI version this kernel offers, if any.
pub fn landlock_abi() -> Option<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag the call only
    // returns a number.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    (v > 0).then_some(v as u32)
}
