//! The file system a native program sees: a fresh, read-only root holding only the
//! system's toolchain folders (read-only), the step's grants at their own paths
//! (read-only or writable), a private `/tmp` and `/dev/shm` of a fixed size, a minimal
//! `/dev`, a `/proc` of the sandbox's own processes, and nothing else: no home folder,
//! no `/run`, no foreign UNIX sockets, no other process. Secrets of the machine under
//! `/etc` (shadow passwords, sudoers, SSH host keys, TLS private keys) are masked.
//!
//! The table has two parts. [`base`] is what every sandbox has (system folders, `/dev`,
//! `/tmp`, masks); a prepared holder builds it ahead of need with [`build_base`].
//! [`plan`] decides the rest for a step in the runner (grants, programs, the
//! resolver file, the step's `/tmp` size); the holder adds it with [`build_step`] and
//! the sandbox's init pivots into the result with [`enter_root`].

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

use super::plan::{LandlockPlan, MountPlan};

/// Read-only system folders every toolchain needs.
pub const SYSTEM_FOLDERS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt",
];

/// Devices a program may use.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Files and folders under /etc that hold the machine's secrets.
const SECRETS: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssl/private",
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_ecdsa_key",
    "/etc/ssh/ssh_host_ed25519_key",
    "/etc/ssh/ssh_host_dsa_key",
];

/// What the file system of a step's sandbox is made from.
pub struct Layout<'a> {
    /// Read grants (canonical folders).
    pub read: &'a [PathBuf],
    /// Write grants (canonical folders).
    pub write: &'a [PathBuf],
    /// The granted programs: each as found (may go through symlinks) and the file it
    /// resolves to. One outside every folder is mounted on its own.
    pub programs: &'a [(PathBuf, PathBuf)],
    /// Size of `/tmp` and of `/dev/shm`.
    pub tmp_size: u64,
    /// The resolver configuration to show, for steps with `net` grants.
    pub resolv_conf: Option<String>,
}

/// The mounts every sandbox has, whatever its step: the system folders (read-only),
/// `/sys/devices/system/cpu`, a minimal `/dev`, `/tmp` and `/dev/shm` (resized for
/// the step later), and masks over the machine's secrets. Looked up once per process.
pub fn base() -> Vec<MountPlan> {
    static BASE: std::sync::OnceLock<Vec<MountPlan>> = std::sync::OnceLock::new();
    BASE.get_or_init(look_up_base).clone()
}

fn look_up_base() -> Vec<MountPlan> {
    let mut mounts: Vec<MountPlan> = Vec::new();
    for folder in SYSTEM_FOLDERS {
        let path = Path::new(folder);
        match path.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(to) = std::fs::read_link(path) {
                    mounts.push(MountPlan::Symlink {
                        target: path.to_path_buf(),
                        points_to: to,
                    });
                }
            }
            Ok(m) if m.is_dir() => mounts.push(MountPlan::Bind {
                source: path.to_path_buf(),
                writable: false,
                follow_symlinks: true,
            }),
            _ => {}
        }
    }
    let cpu = Path::new("/sys/devices/system/cpu");
    if cpu.is_dir() {
        mounts.push(MountPlan::Bind {
            source: cpu.to_path_buf(),
            writable: false,
            follow_symlinks: true,
        });
    }
    mounts.push(MountPlan::Tmpfs {
        target: "/dev".into(),
        size: 64 << 10,
        mode: 0o755,
    });
    for d in DEVICES {
        let path = Path::new("/dev").join(d);
        if path.exists() {
            mounts.push(MountPlan::Bind {
                source: path,
                writable: true,
                follow_symlinks: true,
            });
        }
    }
    for (name, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        mounts.push(MountPlan::Symlink {
            target: Path::new("/dev").join(name),
            points_to: to.into(),
        });
    }
    for target in ["/dev/shm", "/tmp"] {
        mounts.push(MountPlan::Tmpfs {
            target: target.into(),
            size: BASE_TMP_SIZE,
            mode: 0o1777,
        });
    }
    mounts.extend(secrets());
    mounts.sort_by_key(|m| m.target().components().count());
    mounts
}

/// Size of `/tmp` before a step sets its own.
const BASE_TMP_SIZE: u64 = 1 << 20;

/// Masks over the machine's secrets that exist here.
fn secrets() -> impl Iterator<Item = MountPlan> {
    SECRETS
        .iter()
        .map(Path::new)
        .filter(|p| p.symlink_metadata().is_ok())
        .map(|p| MountPlan::Mask {
            target: p.to_path_buf(),
        })
}

/// The step's part of the mount table (to build on top of [`base`]) and the Landlock
/// rules for `layout`. `/proc` is in neither table: the sandbox's init mounts it,
/// from inside its PID namespace.
pub fn plan(layout: &Layout<'_>) -> (Vec<MountPlan>, LandlockPlan) {
    let base = base();
    let mut landlock = LandlockPlan {
        list: vec![PathBuf::from("/")],
        ..LandlockPlan::default()
    };
    for m in &base {
        match m {
            MountPlan::Bind {
                source, writable, ..
            } if source.starts_with("/dev") && *writable => {
                landlock.devices.push(source.clone());
            }
            MountPlan::Bind { source, .. } => landlock.read.push(source.clone()),
            _ => {}
        }
    }
    landlock.write.extend(["/dev/shm".into(), "/tmp".into()]);
    landlock.read.push("/proc".into());
    let mut mounts: Vec<MountPlan> = ["/dev/shm", "/tmp"]
        .iter()
        .map(|t| MountPlan::Resize {
            target: t.into(),
            size: layout.tmp_size,
        })
        .collect();

    // Grants, at their own paths, on top of the base (a grant of a system folder
    // covers its bind).
    for (dirs, writable) in [(layout.read, false), (layout.write, true)] {
        for dir in dirs {
            // Writes come second, so a folder both read and written ends writable.
            mounts.retain(|m| m.target() != dir.as_path());
            mounts.push(MountPlan::Bind {
                source: dir.clone(),
                writable,
                follow_symlinks: false,
            });
            if writable {
                landlock.write.push(dir.clone());
            } else {
                landlock.read.push(dir.clone());
            }
        }
    }

    // A grant that covers a masked secret (`/etc`, say) gets the mask again on top,
    // unless the secret itself is what is granted.
    let granted = |p: &Path| layout.read.iter().chain(layout.write).any(|g| g == p);
    let covered = |p: &Path| {
        layout
            .read
            .iter()
            .chain(layout.write)
            .any(|g| p.starts_with(g))
    };
    mounts.extend(secrets().filter(|m| covered(m.target()) && !granted(m.target())));
    if let Some(content) = &layout.resolv_conf {
        // /etc/resolv.conf is often a link into /run; show the file it points at.
        let target = std::fs::canonicalize("/etc/resolv.conf")
            .unwrap_or_else(|_| PathBuf::from("/etc/resolv.conf"));
        mounts.push(MountPlan::File {
            target,
            content: content.clone(),
        });
    }

    // The programs: bind the file of one that is in no folder of the sandbox.
    for (path, file) in layout.programs {
        let table: Vec<MountPlan> = base.iter().chain(&mounts).cloned().collect();
        if executable(&table, path, file).is_none() {
            mounts.push(MountPlan::Bind {
                source: file.clone(),
                writable: false,
                follow_symlinks: false,
            });
            landlock.read.push(file.clone());
        }
    }

    // Parents before children, so that a nested grant or mask lands on top.
    mounts.sort_by_key(|m| m.target().components().count());
    (mounts, landlock)
}

/// The path to execute a program (found at `path`, resolving to `file`) by in a
/// sandbox with `mounts`: `path` when it exists there (a rustup proxy must keep its
/// name), else `file` when that was mounted; `None` when neither is in the sandbox.
pub fn executable(mounts: &[MountPlan], path: &Path, file: &Path) -> Option<PathBuf> {
    let visible = |p: &Path| {
        // Through the system folders that are links (`/bin` -> `usr/bin`).
        let p = mounts
            .iter()
            .find_map(|m| match m {
                MountPlan::Symlink { target, points_to } => {
                    p.strip_prefix(target).ok().map(|rest| {
                        target
                            .parent()
                            .unwrap_or(Path::new("/"))
                            .join(points_to)
                            .join(rest)
                    })
                }
                _ => None,
            })
            .unwrap_or_else(|| p.to_path_buf());
        mounts
            .iter()
            .any(|m| matches!(m, MountPlan::Bind { .. }) && p.starts_with(m.target()))
    };
    if visible(path) {
        Some(path.to_path_buf())
    } else if visible(file) {
        Some(file.to_path_buf())
    } else {
        None
    }
}

/// Build [`base`] under a new root, which is returned. Runs in a holder, in its own
/// mount namespace, before it knows its step.
pub fn build_base(mounts: &[MountPlan]) -> io::Result<PathBuf> {
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )?;
    // The new root is staged over /dev in this namespace: every Linux has it, and no
    // grant can name it, so the step's mounts made later still find their sources.
    let stage = Path::new("/dev");
    // Sources first: the staging tmpfs hides what is under it.
    let sources = open_sources(mounts)?;
    tmpfs(
        stage,
        256 << 10,
        0o700,
        MountFlags::NOSUID | MountFlags::NODEV,
    )?;
    let root = stage.join("root");
    std::fs::create_dir(&root)?;
    tmpfs(
        &root,
        1 << 20,
        0o755,
        MountFlags::NOSUID | MountFlags::NODEV,
    )?;
    std::fs::write(stage.join("empty"), b"")?;
    mountpoint(&root.join("proc"), true)?;
    apply(&root, mounts, &sources)?;
    Ok(root)
}

/// Add the step's mounts on top of [`build_base`]'s root and make the root
/// read-only. Runs in the holder once it knows its step.
pub fn build_step(root: &Path, mounts: &[MountPlan]) -> io::Result<()> {
    let sources = open_sources(mounts)?;
    apply(root, mounts, &sources)?;
    rustix::mount::mount_remount(
        root,
        MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV,
        c"",
    )?;
    Ok(())
}

/// Open the source of every bind in `mounts`, refusing symlinks where asked.
fn open_sources(mounts: &[MountPlan]) -> io::Result<HashMap<usize, OwnedFd>> {
    let mut sources = HashMap::new();
    for (i, m) in mounts.iter().enumerate() {
        if let MountPlan::Bind {
            source,
            follow_symlinks,
            ..
        } = m
        {
            let resolve = if *follow_symlinks {
                ResolveFlags::NO_MAGICLINKS
            } else {
                ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
            };
            let fd = rustix::fs::openat2(
                rustix::fs::CWD,
                source.as_path(),
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                resolve,
            )
            .map_err(|e| {
                let why = if e == rustix::io::Errno::LOOP {
                    "a folder on its path was replaced by a symbolic link".to_string()
                } else {
                    e.to_string()
                };
                io::Error::other(format!("{}: {why}", source.display()))
            })?;
            sources.insert(i, fd);
        }
    }
    Ok(sources)
}

/// Make `mounts` below `root`, in order.
fn apply(root: &Path, mounts: &[MountPlan], sources: &HashMap<usize, OwnedFd>) -> io::Result<()> {
    let stage = root.parent().expect("the root is staged in a folder");
    for (i, m) in mounts.iter().enumerate() {
        let target = root.join(m.target().strip_prefix("/").unwrap_or(m.target()));
        let context = |e: io::Error| io::Error::other(format!("{}: {e}", m.target().display()));
        match m {
            MountPlan::Bind { writable, .. } => {
                let fd = &sources[&i];
                let stat = rustix::fs::fstat(fd).map_err(|e| context(e.into()))?;
                let kind = rustix::fs::FileType::from_raw_mode(stat.st_mode);
                mountpoint(&target, kind == rustix::fs::FileType::Directory).map_err(context)?;
                let src = format!("/proc/self/fd/{}", fd.as_raw_fd());
                rustix::mount::mount_bind_recursive(src.as_str(), &target)
                    .map_err(|e| context(e.into()))?;
                let device = kind == rustix::fs::FileType::CharacterDevice;
                restrict_mount(&target, !writable, !device).map_err(context)?;
            }
            MountPlan::Tmpfs { size, mode, .. } => {
                mountpoint(&target, true).map_err(context)?;
                tmpfs(
                    &target,
                    *size,
                    *mode,
                    MountFlags::NOSUID | MountFlags::NODEV,
                )
                .map_err(context)?;
            }
            MountPlan::Resize { size, .. } => {
                let options = std::ffi::CString::new(format!("size={size}"))
                    .expect("no NUL in mount options");
                rustix::mount::mount_remount(
                    &target,
                    MountFlags::NOSUID | MountFlags::NODEV,
                    options.as_c_str(),
                )
                .map_err(|e| context(e.into()))?;
            }
            MountPlan::Symlink { points_to, .. } => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(context)?;
                }
                std::os::unix::fs::symlink(points_to, &target).map_err(context)?;
            }
            MountPlan::Mask { .. } => {
                if target.is_dir() {
                    tmpfs(
                        &target,
                        4 << 10,
                        0o000,
                        MountFlags::RDONLY
                            | MountFlags::NOSUID
                            | MountFlags::NODEV
                            | MountFlags::NOEXEC,
                    )
                    .map_err(context)?;
                } else if target.exists() {
                    rustix::mount::mount_bind(stage.join("empty"), &target)
                        .map_err(|e| context(e.into()))?;
                    restrict_mount(&target, true, true).map_err(context)?;
                }
            }
            MountPlan::File { content, .. } => {
                let staged = stage.join(format!("file-{i}"));
                std::fs::write(&staged, content).map_err(context)?;
                mountpoint(&target, false).map_err(context)?;
                rustix::mount::mount_bind(&staged, &target).map_err(|e| context(e.into()))?;
                restrict_mount(&target, true, true).map_err(context)?;
            }
        }
    }
    Ok(())
}

/// Mount `/proc` for the calling process's PID namespace at `root/proc`. Runs in the
/// sandbox's init, while the holder is still building.
pub fn mount_proc(root: &Path) -> io::Result<()> {
    rustix::mount::mount(
        "proc",
        root.join("proc"),
        "proc",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        None,
    )
    .map_err(|e| io::Error::other(format!("/proc: {e}")))
}

/// Pivot into `root` (with `/proc` mounted). Runs in the sandbox's init.
pub fn enter_root(root: &Path) -> io::Result<()> {
    rustix::process::chdir(root)?;
    rustix::process::pivot_root(".", ".")?;
    rustix::mount::unmount(".", UnmountFlags::DETACH)?;
    rustix::process::chdir("/")?;
    // `/proc/sys` and friends stay read-only even where Landlock is missing.
    for sub in ["/proc/sys", "/proc/sysrq-trigger"] {
        if Path::new(sub).exists() {
            let _ = rustix::mount::mount_bind(sub, sub).and_then(|()| {
                rustix::mount::mount_remount(
                    sub,
                    MountFlags::BIND
                        | MountFlags::RDONLY
                        | MountFlags::NOSUID
                        | MountFlags::NODEV
                        | MountFlags::NOEXEC,
                    c"",
                )
            });
        }
    }
    Ok(())
}

fn tmpfs(target: &Path, size: u64, mode: u32, flags: MountFlags) -> io::Result<()> {
    let options = std::ffi::CString::new(format!("size={size},mode={mode:o}"))
        .expect("no NUL in mount options");
    rustix::mount::mount("tmpfs", target, "tmpfs", flags, options.as_c_str())?;
    Ok(())
}

/// Create what `target` needs to be mounted on: a folder, or an empty file.
fn mountpoint(target: &Path, dir: bool) -> io::Result<()> {
    if target.symlink_metadata().is_ok() {
        return Ok(());
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if dir {
        std::fs::create_dir(target)
    } else {
        std::fs::write(target, b"")
    }
}

/// Read-only (when asked), no set-uid programs, and no devices (unless it is one),
/// for the mount at `target` and everything below it.
fn restrict_mount(target: &Path, read_only: bool, nodev: bool) -> io::Result<()> {
    match super::sys::lock_down_mount_tree(target, read_only, nodev) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            // Before Linux 5.12: only the top mount can be changed. Flags the mount
            // already has (locked in a user namespace) must be kept.
            let current = rustix::fs::statvfs(target)?;
            let mut flags = MountFlags::BIND | MountFlags::NOSUID;
            if read_only {
                flags |= MountFlags::RDONLY;
            }
            if nodev {
                flags |= MountFlags::NODEV;
            }
            let kept = current.f_flag;
            if kept.contains(rustix::fs::StatVfsMountFlags::NOEXEC) {
                flags |= MountFlags::NOEXEC;
            }
            if kept.contains(rustix::fs::StatVfsMountFlags::NODEV) {
                flags |= MountFlags::NODEV;
            }
            if kept.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
                flags |= MountFlags::RDONLY;
            }
            rustix::mount::mount_remount(target, flags, c"")?;
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_land_on_top_of_system_folders_and_each_other() {
        let read = vec![PathBuf::from("/work/proj")];
        let write = vec![PathBuf::from("/work/proj/target")];
        let programs = vec![(PathBuf::from("/bin/sh"), PathBuf::from("/usr/bin/dash"))];
        let (mounts, landlock) = plan(&Layout {
            read: &read,
            write: &write,
            programs: &programs,
            tmp_size: 1 << 20,
            resolv_conf: None,
        });
        let table: Vec<MountPlan> = base().into_iter().chain(mounts.iter().cloned()).collect();
        let targets: Vec<&Path> = table.iter().map(MountPlan::target).collect();
        let proj = targets
            .iter()
            .position(|t| *t == Path::new("/work/proj"))
            .unwrap();
        let target = targets
            .iter()
            .position(|t| *t == Path::new("/work/proj/target"))
            .unwrap();
        assert!(proj < target, "{targets:?}");
        assert!(targets.contains(&Path::new("/tmp")));
        assert!(landlock.write.contains(&PathBuf::from("/work/proj/target")));
        assert!(!landlock.write.contains(&PathBuf::from("/work/proj")));
        assert_eq!(
            executable(&table, Path::new("/bin/sh"), Path::new("/usr/bin/dash")).as_deref(),
            Some(Path::new("/bin/sh"))
        );
    }

    #[test]
    fn a_program_outside_every_folder_is_bound_alone() {
        let programs = vec![(
            PathBuf::from("/home/me/.local/bin/tool"),
            PathBuf::from("/home/me/tools/tool-1.2"),
        )];
        let (mounts, _) = plan(&Layout {
            read: &[],
            write: &[],
            programs: &programs,
            tmp_size: 1 << 20,
            resolv_conf: None,
        });
        let table: Vec<MountPlan> = base().into_iter().chain(mounts.iter().cloned()).collect();
        assert_eq!(
            executable(
                &table,
                Path::new("/home/me/.local/bin/tool"),
                Path::new("/home/me/tools/tool-1.2")
            )
            .as_deref(),
            Some(Path::new("/home/me/tools/tool-1.2"))
        );
        assert!(mounts.contains(&MountPlan::Bind {
            source: "/home/me/tools/tool-1.2".into(),
            writable: false,
            follow_symlinks: false,
        }));
    }
}
