//! What one native program's sandbox is made of, decided in the runner and carried to
//! the sandbox's init process: the file system it sees, its network, its limits, and
//! the program to execute. Plain data; [`super::init`] carries it out.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything the init process of one sandbox needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProgramPlan {
    /// The file to execute, as a path inside the sandbox.
    pub executable: PathBuf,
    /// `argv[0]`: the name the program was asked for (rustup proxies read it).
    pub argv0: String,
    pub args: Vec<String>,
    /// The whole environment of the program.
    pub env: Vec<(String, String)>,
    /// Working directory, inside the sandbox.
    pub cwd: PathBuf,
    /// The runner's user and group: mapped to themselves in the new user namespace.
    pub uid: u32,
    pub gid: u32,
    /// The file system, in the order the mounts are made.
    pub mounts: Vec<MountPlan>,
    /// Landlock, applied on top of the mount namespace.
    pub landlock: LandlockPlan,
    /// Network: `None` means no network at all (loopback only).
    pub net: Option<NetPlan>,
    /// Resource limits set with `setrlimit` (used where no cgroup enforces them).
    pub rlimits: RlimitPlan,
    /// How many `cgroup.procs` descriptors follow the fixed ones in the spawn message.
    pub cgroup_fds: usize,
}

/// One entry of the sandbox's mount table. Targets are absolute paths inside the
/// sandbox; the init process mounts them below its new root, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountPlan {
    /// A folder or file of the machine, recursively, at the same path. Symlinks in
    /// `source` are refused (a step could have swapped a folder for one).
    Bind {
        source: PathBuf,
        writable: bool,
        /// Sources that may legitimately contain symlinks (system folders).
        follow_symlinks: bool,
    },
    /// A fresh tmpfs.
    Tmpfs {
        target: PathBuf,
        size: u64,
        mode: u32,
    },
    /// `proc` for the sandbox's PID namespace.
    Proc { target: PathBuf },
    /// A symbolic link (e.g. `/bin -> usr/bin` on merged-/usr systems).
    Symlink { target: PathBuf, points_to: PathBuf },
    /// An empty, read-only placeholder over a path (secrets such as /etc/shadow).
    Mask { target: PathBuf },
    /// A file with the given content, read-only (e.g. the resolver configuration).
    File { target: PathBuf, content: String },
}

impl MountPlan {
    /// Where this mount appears inside the sandbox.
    pub fn target(&self) -> &std::path::Path {
        match self {
            MountPlan::Bind { source, .. } => source,
            MountPlan::Tmpfs { target, .. }
            | MountPlan::Proc { target }
            | MountPlan::Symlink { target, .. }
            | MountPlan::Mask { target }
            | MountPlan::File { target, .. } => target,
        }
    }
}

/// Landlock rules, as paths inside the sandbox.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LandlockPlan {
    /// Readable and executable.
    pub read: Vec<PathBuf>,
    /// Readable, writable, executable.
    pub write: Vec<PathBuf>,
    /// Devices: read and write, no directory operations.
    pub devices: Vec<PathBuf>,
    /// Folders that may be listed (and nothing more): the root, whose entries are
    /// only the sandbox's own mounts.
    pub list: Vec<PathBuf>,
    /// TCP ports the program may connect to.
    pub tcp_ports: Vec<u16>,
}

/// The network of a sandbox with `net` grants: loopback only, with the granted
/// addresses made local and each served by a listener whose connections the runner
/// forwards, plus a name server that answers only for granted names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetPlan {
    /// Addresses to add to the loopback interface (those not already on it).
    pub local_addresses: Vec<IpAddr>,
    /// One TCP listener each, in this order, handed to the runner.
    pub listeners: Vec<SocketAddr>,
    /// The name server's address (UDP), handed to the runner after the listeners.
    pub resolver: SocketAddr,
}

/// `setrlimit` values; `None` leaves the inherited limit.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RlimitPlan {
    /// RLIMIT_NPROC: processes and threads of the user in the sandbox.
    pub processes: Option<u64>,
    /// RLIMIT_DATA: private writable memory per process.
    pub data: Option<u64>,
}

/// What the init process reports to the runner, on the control socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum InitReport {
    /// The network is ready; the descriptors are the listeners, then the resolver.
    Network,
    /// The program has been started.
    Started,
    /// The sandbox could not be set up, or the program could not be executed.
    Failed { stage: String, error: String },
    /// The program ended with this wait status.
    Exited { status: i32 },
}
