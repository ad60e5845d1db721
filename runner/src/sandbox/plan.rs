//! What a step's sandbox is made of, and what each program run in it is, decided in
//! the runner and carried to the sandbox's processes (see [`super::init`]). Plain data.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A step's sandbox: made once per step, holding every program the step runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxPlan {
    /// The step's part of the file system, made on top of the base every sandbox has
    /// (see [`super::mounts::base`]), in order.
    pub mounts: Vec<MountPlan>,
    /// Landlock, applied on top of the namespaces.
    pub landlock: LandlockPlan,
    /// Network: `None` means no network at all (loopback only).
    pub net: Option<NetPlan>,
    /// Resource limits set with `setrlimit` (used where no cgroup enforces them).
    pub rlimits: RlimitPlan,
}

/// One program, run in a step's sandbox.
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
    /// Files to make in the sandbox's `/tmp` first (mode 0600): `(name, content)`.
    pub files: Vec<(String, String)>,
}

/// One entry of the sandbox's mount table. Targets are absolute paths inside the
/// sandbox; they are mounted below the new root, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountPlan {
    /// A folder or file of the machine, recursively, at the same path. Unless
    /// `follow_symlinks`, a symlink anywhere in `source` is refused (a step could have
    /// swapped a folder for one).
    Bind {
        source: PathBuf,
        writable: bool,
        follow_symlinks: bool,
    },
    /// A fresh tmpfs.
    Tmpfs {
        target: PathBuf,
        size: u64,
        mode: u32,
    },
    /// A new size for a tmpfs of the base table.
    Resize { target: PathBuf, size: u64 },
    /// A symbolic link (e.g. `/bin -> usr/bin` on merged-/usr systems).
    Symlink { target: PathBuf, points_to: PathBuf },
    /// An empty, read-only placeholder over a path (secrets such as /etc/shadow).
    Mask { target: PathBuf },
    /// A file with the given content, read-only (e.g. the resolver configuration).
    File { target: PathBuf, content: String },
}

impl MountPlan {
    /// Where this mount appears inside the sandbox.
    pub fn target(&self) -> &Path {
        match self {
            MountPlan::Bind { source, .. } => source,
            MountPlan::Tmpfs { target, .. }
            | MountPlan::Resize { target, .. }
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
    /// Folders that may be listed and nothing more: the root, whose entries are only
    /// the sandbox's own mounts.
    pub list: Vec<PathBuf>,
    /// TCP ports the programs may connect to.
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

/// What the runner asks of a sandbox's holder and then its init, on the control
/// socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum InitRequest {
    /// To the prepared holder: build the sandbox; the descriptor is its plan (a memfd
    /// holding a [`SandboxPlan`]).
    Build,
    /// Run a program; the descriptors are its plan (a memfd holding a
    /// [`ProgramPlan`]), stdin, stdout and stderr.
    Run,
    /// Kill every process in the sandbox and empty its `/tmp`; answered `Emptied`.
    KillAll,
}

/// What a sandbox reports to the runner, on the control socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum InitReport {
    /// The holder has joined the cgroups and made the user and network namespaces; it
    /// waits for `Build`.
    Prepared,
    /// The network is ready; the descriptors are the listeners, then the resolver.
    Network,
    /// The sandbox is built and waits for programs.
    Ready,
    /// The sandbox could not be set up, or a program could not be executed.
    Failed { stage: String, error: String },
    /// The program asked for has been started.
    Started,
    /// The program ended with this wait status.
    Exited { status: i32 },
    /// Every process in the sandbox is gone.
    Emptied,
}
